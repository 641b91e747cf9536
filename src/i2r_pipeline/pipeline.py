"""One main-job run: configuration, paths, and the units of each stage.

A :class:`Pipeline` turns a stage (:mod:`i2r_pipeline.stages`) into its units: one per data
set, plate, fold, held-out condition or summary, each with exactly the configuration keys
and scope parameters its notebook declares, and with the digest of the done markers of the
stages it reads from. :func:`run_pipeline` runs the stages in order through an executor
(:mod:`i2r_pipeline.executor`) and writes each condition's ``manifest.json``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from i2r_utils.artifacts import ARTIFACTS, artifact
from i2r_utils.columns import CONTROL
from i2r_utils.io import InputError
from i2r_utils.names import safe_name

from . import PipelineError
from .executor import Unit, failure_report, is_complete, marker_path, upstream_digest
from .notebooks import declared_parameters, to_ipynb
from .provenance import write_manifest
from .stages import SCOPES, STAGES, UNIT_PARAMETER, Stage

__all__ = [
    "RUN_KEYS",
    "DEFAULT_N_FOLDS",
    "UNHASHED",
    "relocatable",
    "checked_name",
    "Pipeline",
    "load_config",
    "load_run_config",
    "check_config",
    "select_stages",
    "write_condition_manifest",
    "plan",
    "run_pipeline",
]

#: Configuration keys the driver itself uses; no notebook needs to declare them.
RUN_KEYS = ("size", "conditions", "n_folds")
#: Number of folds of held-out conditions when the configuration gives none.
DEFAULT_N_FOLDS = 3
#: Parameters that say where figures go, not what is computed: not part of a unit's hash
#: (a unit whose figures are missing reruns, see ``Stage.outputs``).
UNHASHED = ("figures_dir",)
#: Folders of a results folder that a condition's own folder must not be.
RESERVED = frozenset(v.split("/")[0] for v in ARTIFACTS.values() if "/" in v and v[0] != "{")


def checked_name(name: object, what: str, own_folder: bool = True) -> str:
    """Return a condition or plate name that is safe in the paths it becomes.

    Parameters
    ----------
    name : object
        The name (from the configuration, ``--conditions`` or the screen's metadata).
    what : str
        What it is and where it came from, for the message.
    own_folder : bool
        The name becomes a folder of its own in the results folder (a condition's).

    Returns
    -------
    str
        ``name``.

    Raises
    ------
    PipelineError
        Not one harmless path component (:func:`i2r_utils.names.safe_name`); with
        ``own_folder``, starting with ``_`` or equal to a folder the run uses itself
        (:data:`RESERVED`).
    """
    try:
        safe_name(name, what)
    except InputError as exc:
        raise PipelineError(str(exc)) from None
    if own_folder and (name.startswith("_") or name in RESERVED):
        raise PipelineError(
            f"{what} {name!r} is a folder name the run uses itself (names starting with '_' "
            f"and {', '.join(sorted(RESERVED))}); rename it."
        )
    return name


def relocatable(parameters: dict, anchors: dict) -> dict:
    """Return the parameters as they enter a unit's hash: folders relative to anchors.

    Parameters
    ----------
    parameters : dict
        A unit's parameters (folders as absolute paths).
    anchors : dict
        Placeholder -> absolute folder, most specific first, e.g. ``{"<results>": work,
        "<project>": root}``; a path value inside an anchor is replaced by
        ``<placeholder>/<relative path>``.

    Returns
    -------
    dict
        The parameters without :data:`UNHASHED`, path values relocated; other values as
        they are. A moved or copied results folder (or project) gives the same hashes.
    """
    out = {}
    for key, value in parameters.items():
        if key in UNHASHED:
            continue
        if isinstance(value, str) and Path(value).is_absolute():
            for name, folder in anchors.items():
                if Path(value).is_relative_to(folder):
                    value = Path(name, Path(value).relative_to(folder)).as_posix()
                    break
        out[key] = value
    return out


def load_config(path: str | Path) -> dict:
    """Read the YAML configuration.

    Parameters
    ----------
    path : path-like
        The configuration file, e.g. ``config/default.yaml``.

    Returns
    -------
    dict
        Its keys (empty for an empty file).

    Raises
    ------
    PipelineError
        When the file is missing or unreadable, not YAML, or not a mapping.
    """
    import yaml

    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise PipelineError(f"cannot read the configuration {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise PipelineError(f"{path} is not valid YAML{line}; fix the file.") from None
    if cfg is not None and not isinstance(cfg, dict):
        raise PipelineError(
            f"{path} must map keys to values (key: value lines), not be a {type(cfg).__name__}."
        )
    return cfg or {}


def load_run_config(path: str | Path, defaults: str | Path) -> dict:
    """Read a configuration file over the defaults: a partial file changes only its keys.

    Parameters
    ----------
    path : path-like
        The user's configuration (``--config``): any subset of the keys, or a full preset
        such as ``config/image2reg.yaml`` (then the defaults change nothing).
    defaults : path-like
        The full default configuration, ``config/default.yaml`` (skipped when missing).

    Returns
    -------
    dict
        The defaults, updated with the keys of ``path``.

    Raises
    ------
    PipelineError
        See :func:`load_config`.
    """
    cfg = load_config(defaults) if Path(defaults).is_file() else {}
    cfg.update(load_config(path))
    return cfg


class Pipeline:
    """One main-job run: configuration, paths, notebooks folder; resolves units lazily.

    Plates are read from ``data_dir/metadata.csv`` and conditions resolved only when a
    stage needs them, i.e. after the screen was written.

    Parameters
    ----------
    cfg : dict
        Configuration (keys passed to the notebooks that declare them).
    paths : dict
        ``data``, ``work`` (results) and ``figures`` folders.
    nb_dir : path-like
        Folder of the notebook sources.
    all_conditions : bool
        Hold out every non-control condition of the screen instead of ``cfg["conditions"]``.
    repo : path-like
        A folder of the repository, for the git state in manifests.
    """

    def __init__(
        self,
        cfg: dict,
        paths: dict,
        nb_dir: str | Path,
        all_conditions: bool = False,
        repo: str | Path = ".",
    ):
        self.cfg = cfg
        self.paths = paths
        self.nb_dir = Path(nb_dir).resolve()
        self.cache = paths["work"] / ".notebooks"
        self.all_conditions = all_conditions
        self.repo = Path(repo)
        self._declared: dict = {}

    # --- notebooks -------------------------------------------------------------------
    def source(self, name: str) -> Path:
        """Return the jupytext source of a stage; a clear error when it is missing."""
        src = self.nb_dir / f"{name}.py"
        if not src.is_file():
            raise PipelineError(f"notebook {src} is missing (stage {name}).")
        return src

    def ipynb(self, name: str) -> Path:
        """Return the generated .ipynb of a stage's source (papermill needs a kernelspec)."""
        return to_ipynb(self.source(name), self.cache)

    def declared(self, name: str) -> dict:
        """Parameters declared by a stage's notebook: name -> default source text."""
        if name not in self._declared:
            self._declared[name] = declared_parameters(self.source(name))
        return self._declared[name]

    # --- units -----------------------------------------------------------------------
    def n_folds(self) -> int:
        """Return the number of folds (config ``n_folds``, default 3)."""
        n = self.cfg.get("n_folds", DEFAULT_N_FOLDS)
        if not isinstance(n, int) or n < 1:
            raise PipelineError(f"n_folds must be a positive integer, not {n!r}.")
        return n

    def _metadata(self, column: str, need: str) -> list[str]:
        """Sorted distinct values of one column of ``data_dir/metadata.csv``."""
        import pandas as pd

        meta = self.paths["data"] / "metadata.csv"
        if not meta.is_file():
            raise PipelineError(need.format(meta=meta))
        values = pd.read_csv(meta, usecols=[column], dtype=str)[column]
        return sorted(values.dropna().unique())

    def plates(self) -> list[str]:
        """Plates of ``data_dir/metadata.csv`` (written by stage 00 or by ``run_all data``)."""
        need = ("{meta} is missing; run stage 00 first (--stages 00) or point --data-dir at a "
                "screen folder with metadata.csv.")  # fmt: skip
        meta = self.paths["data"] / "metadata.csv"
        return [checked_name(p, f"plate of {meta}", own_folder=False)
                for p in self._metadata("Metadata_Plate", need)]  # fmt: skip

    def conditions(self) -> list[str]:
        """Held-out conditions: the configured list, or every non-control condition."""
        if self.all_conditions:
            need = "--all-conditions needs {meta}; run stage 00."
            conds = self._metadata("Metadata_Condition", need)
            self.cfg["conditions"] = [c for c in conds if c != CONTROL]
            self.all_conditions = False
        return [checked_name(c, "condition") for c in self.cfg["conditions"]]

    def check_screen(self) -> None:
        """Check what can be known before a stage runs: names that become paths, ``n_folds``.

        With the screen's ``metadata.csv``: its plate names, the held-out conditions and
        ``n_folds`` against its conditions; before the screen is simulated, ``n_folds``
        against the conditions the synthetic screen of size ``size`` will have.

        Raises
        ------
        PipelineError
            A name that would write outside its folder, or more folds than conditions.
        """
        meta = self.paths["data"] / "metadata.csv"
        n = self.n_folds()
        if meta.is_file():
            self.plates()
            screen = [c for c in self._metadata("Metadata_Condition", "") if c != CONTROL]
            where = f"the screen {meta}"
        else:
            from i2r_utils.simulate import SIZES

            p = SIZES.get(self.cfg.get("size"))
            screen = [""] * (p.n_impactful + p.n_null) if p else []
            where = f"the synthetic screen of size {self.cfg.get('size')!r} (--size)"
        if meta.is_file() or not self.all_conditions:  # else: known once the screen exists
            self.conditions()
        if screen and n > len(screen):
            raise PipelineError(
                f"n_folds = {n}, but {where} has {len(screen)} conditions besides {CONTROL}: "
                f"each fold needs one; set n_folds to 2..{len(screen)} (the number of "
                "conditions is leave-one-out)."
            )

    def unit_specs(self, scope: str) -> list[tuple[str, dict, str]]:
        """(label, scope parameters, executed-notebook subfolder) of each unit of a scope."""
        work = self.paths["work"]
        if scope == "dataset":
            return [("dataset", {}, "_dataset")]
        if scope == "plate":
            return [(p, {"plate": p}, f"_plates/{p}") for p in self.plates()]
        if scope == "fold":
            n = self.n_folds()
            return [(f"fold{k}", {"fold": k, "n_folds": n}, f"_folds/fold{k}") for k in range(n)]
        if scope == "condition":
            out = {c: str(artifact(work, "condition_dir", condition=c)) for c in self.conditions()}
            return [(c, {"condition": c, "out_dir": d}, c) for c, d in out.items()]
        if scope == "summary":
            return [("summary", {"conditions": ",".join(self.conditions())}, "_summary")]
        raise ValueError(f"unknown scope {scope!r}; one of {SCOPES}")

    def parameters(self, name: str, scope_params: dict) -> dict:
        """Every config key and scope parameter the notebook declares, and nothing else."""
        declared = self.declared(name)
        pool = {k: v for k, v in self.cfg.items() if k != "conditions"}
        pool.update(
            data_dir=str(self.paths["data"]),
            work_dir=str(self.paths["work"]),
            figures_dir=str(self.paths["figures"]),
        )
        if "n_folds" in declared:
            pool["n_folds"] = self.n_folds()
        if "conditions" in declared:
            pool["conditions"] = ",".join(self.conditions())
        pool.update(scope_params)
        return {k: v for k, v in pool.items() if k in declared}

    def upstream(self, stage: Stage, stages: Sequence[Stage] = STAGES) -> str:
        """Digest of the done markers (key and run id) of the stages ``stage`` reads from.

        Taken when the stage is about to run, so a unit whose inputs were recomputed since
        its own run (``--force`` included) no longer counts as complete. A missing marker
        counts as such (the stage may run on inputs made outside this pipeline); a stage
        read from that is not in ``stages`` is left out.
        """
        by_name = {s.name: s for s in stages}
        work = self.paths["work"]
        return upstream_digest(
            (dep, label, work / sub)
            for dep in stage.reads
            if dep in by_name
            for label, _, sub in self.unit_specs(by_name[dep].scope)
        )

    def not_done(self, stage: Stage, stages: Sequence[Stage] = STAGES) -> list[str]:
        """Return the units of the stages ``stage`` reads from that have no done marker.

        Their declared outputs were removed when they last failed (or they never ran in
        this results folder), so ``stage`` would read missing or foreign inputs.

        Returns
        -------
        list of str
            ``"<stage> [<label>]"`` per such unit.
        """
        by_name = {s.name: s for s in stages}
        work = self.paths["work"]
        return [
            f"{dep} [{label}]"
            for dep in stage.reads
            if dep in by_name
            for label, _, sub in self.unit_specs(by_name[dep].scope)
            if not marker_path(work / sub, dep).is_file()
        ]

    def outputs(self, stage: Stage, scope_params: dict) -> dict:
        """Return the files one unit of ``stage`` declares (``Stage.outputs``, ``Stage.figures``).

        Returns
        -------
        dict
            Id -> absolute path; the id is the path under ``<results>`` or ``<figures>``,
            the same wherever those folders are.
        """
        fields = {k: scope_params[k] for k in ("plate", "fold", "condition") if k in scope_params}
        work, out = self.paths["work"], {}
        for entry in stage.outputs:
            name, _, file = entry.partition("/")
            path = artifact(work, name, **fields) / file if file else artifact(work, name, **fields)
            out[Path("<results>", path.relative_to(work)).as_posix()] = str(path)
        for stem in stage.figures:
            for ext in ("png", "svg"):
                out[f"<figures>/{stem}.{ext}"] = str(self.paths["figures"] / f"{stem}.{ext}")
        return out

    def units(self, stage: Stage, generate: bool = True) -> list[Unit]:
        """Build the units of one stage, ready for an executor.

        With ``generate=False`` no ``.ipynb`` is written (the units' ``notebook`` is the
        source): enough to tell whether they are complete (:func:`plan`).
        """
        need = UNIT_PARAMETER.get(stage.scope)
        if need and need not in self.declared(stage.name):
            raise PipelineError(
                f"{self.source(stage.name)} runs once per {stage.scope} but declares no "
                f"`{need}` parameter; add `{need} = ...` to its parameters cell."
            )
        upstream = self.upstream(stage)
        anchors = {"<results>": self.paths["work"], "<project>": self.repo.resolve()}
        units = []
        for label, scope_params, sub in self.unit_specs(stage.scope):
            params = self.parameters(stage.name, scope_params)
            units.append(Unit(
                stage=stage.name,
                label=label,
                notebook=str(self.ipynb(stage.name) if generate else self.source(stage.name)),
                source=str(self.source(stage.name)),
                parameters=params,
                exec_dir=str(self.paths["work"] / sub),
                cwd=str(self.nb_dir),
                upstream=upstream,
                key_parameters=relocatable(params, anchors),
                outputs=self.outputs(stage, scope_params),
            ))  # fmt: skip
        return units


def check_config(
    pipe: Pipeline, stages: Sequence[Stage] = STAGES, keys: Iterable[str] | None = None
) -> None:
    """Fail on configuration keys that no notebook declares (they would be ignored).

    Parameters
    ----------
    pipe : Pipeline
        The configured pipeline.
    stages : sequence of Stage
        The stages whose notebooks count.
    keys : iterable of str, optional
        The keys to check (default: all of ``pipe.cfg``), e.g. those of the user's file;
        the keys of ``config/default.yaml`` are the project's notebooks' parameters.

    Raises
    ------
    PipelineError
        Naming the unknown keys, or unknown scopes of ``stages``.
    """
    declared = set().union(*(pipe.declared(s.name) for s in stages))
    keys = pipe.cfg if keys is None else keys
    unknown = sorted(k for k in keys if k not in declared and k not in RUN_KEYS)
    if unknown:
        raise PipelineError(
            f"configuration keys {unknown} are not parameters of any "
            "notebook; fix the spelling in the config file."
        )
    bad = sorted({s.scope for s in stages} - set(SCOPES))
    if bad:
        raise PipelineError(f"unknown scopes {bad}; one of {SCOPES}")


def select_stages(spec: str | None, stages: Sequence[Stage] = STAGES) -> list[Stage]:
    """Stages named by a comma-separated list of numbers or names (all when None).

    Parameters
    ----------
    spec : str or None
        E.g. ``"00,03"`` or ``"01_preprocess_nuclei"``; None: every stage.
    stages : sequence of Stage
        Stages in run order.

    Returns
    -------
    list of Stage
        The named stages, in run order.

    Raises
    ------
    PipelineError
        Naming the entries that match no stage, or when ``spec`` names none (``","``).
    """
    if spec is None:
        return list(stages)
    want = [w.strip() for w in spec.split(",") if w.strip()]
    if not want:
        raise PipelineError(f"--stages {spec!r} names no stage; see --list")

    def hit(name, w):
        return name == w or name.startswith(w + "_")

    unknown = [w for w in want if not any(hit(s.name, w) for s in stages)]
    if unknown:
        raise PipelineError(f"unknown stages {unknown}; see --list")
    return [s for s in stages if any(hit(s.name, w) for w in want)]


def write_condition_manifest(pipe: Pipeline, condition: str) -> None:
    """Provenance of one held-out condition's results (config, paths, git, inputs, machine).

    Parameters
    ----------
    pipe : Pipeline
        The pipeline that ran the condition.
    condition : str
        The held-out condition.
    """
    data, work = pipe.paths["data"], pipe.paths["work"]
    # folders relative to the results folder: the manifest stays right when it moves
    paths = {k: os.path.relpath(v, work) for k, v in pipe.paths.items()}
    write_manifest(
        artifact(work, "manifest", condition=condition),
        {"config": pipe.cfg, "paths": paths},
        [data / "metadata.csv", data / "screen.json", data / "network" / "edges.tsv",
         data / "network" / "expression.csv"],
        repo=pipe.repo,
        base=data,
    )  # fmt: skip


def plan(pipe: Pipeline, stages: Sequence[Stage], force: bool = False) -> list[tuple]:
    """Return what a run would do: each stage's units and whether each would run.

    Nothing is written and no kernel is started.

    Parameters
    ----------
    pipe : Pipeline
        The configured pipeline.
    stages : sequence of Stage
        The selected stages, in order.
    force : bool
        Every unit would run.

    Returns
    -------
    list of (Stage, list of (str, str), str)
        Per stage: ``(label, "run" | "complete")`` of each unit, and a note: why the
        units would run (``"--force"``, the stages read from that would run), or why they
        are not known yet (e.g. the plates before stage 00 wrote ``metadata.csv``).
    """
    out, running = [], set()
    for stage in stages:
        rerun = [dep for dep in stage.reads if dep in running]
        note = (
            "--force" if force else (f"reads {', '.join(rerun)}, which would run" if rerun else "")
        )
        try:
            units = pipe.units(stage, generate=False)
        except PipelineError as exc:
            out.append((stage, [], f"units not known yet: {exc}"))
            running.add(stage.name)
            continue
        rows = [(u.label, "run" if force or rerun or not is_complete(u) else "complete")
                for u in units]  # fmt: skip
        if any(status == "run" for _, status in rows):
            running.add(stage.name)
        out.append((stage, rows, note))
    return out


def run_pipeline(pipe: Pipeline, stages: Sequence[Stage], executor, force: bool = False):
    """Run the stages in order, the units of each through ``executor``.

    Parameters
    ----------
    pipe : Pipeline
        The configured pipeline.
    stages : sequence of Stage
        The stages to run, in order.
    executor : i2r_pipeline.executor.Executor
        Runs the units of a stage.
    force : bool
        Rerun units that are complete.

    Returns
    -------
    (list of UnitResult, str)
        All results, and the failure report ("" when nothing failed). A stage with a
        failed unit ends the run after that stage (the others of the stage finish).
    """
    every = []
    for stage in stages:
        pipe.check_screen()  # e.g. the plate names of a screen an earlier stage just wrote
        units = pipe.units(stage)
        missing = pipe.not_done(stage)
        if missing:
            print(
                f"[run_all] WARNING: {stage.name} reads units without a done marker (failed "
                f"or never run in this results folder; their outputs are missing or not "
                f"made here): {', '.join(missing)}",
                file=sys.stderr,
                flush=True,
            )
        t0 = time.perf_counter()
        results = executor.run(units, force=force, desc=stage.name)
        every += results
        for r in results:
            if stage.scope == "condition" and r.ok:
                write_condition_manifest(pipe, r.unit.label)
        n = {s: sum(r.status == s for r in results) for s in ("ran", "skipped", "failed")}
        print(
            f"[run_all] {stage.name}: {len(units)} unit(s) - {n['ran']} ran, {n['skipped']} "
            f"complete, {n['failed']} failed - {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        report = failure_report(results)
        if report:
            return every, f"stage {stage.name}: {report}"
    return every, ""
