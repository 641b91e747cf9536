#!/usr/bin/env python3
"""Run the compendium: set up the environment, then execute the notebooks with papermill.

    python3 run_all.py                 # main job on the embedded default synthetic screen
    python3 run_all.py test            # lint, unit tests, papermill smoke run of every notebook
    python3 run_all.py predict ...     # rank genes for a new target (i2r_utils.newtarget)
    python3 run_all.py data ...        # fetch public data (i2r_utils.fetch)

Options (main job): --size tiny|default, --conditions A,B | --all-conditions,
--stages 00,03, --data-dir, --results-dir, --figures-dir, --seed, --no-random-baseline,
--force (rerun units already complete), --list, --notebooks-dir.
Parallel units (plates, folds, conditions) on Dask: --executor dask [--workers N]
[--scheduler-address tcp://host:8786 | --cluster slurm|pbs]; environment variables
I2R_EXECUTOR, I2R_WORKERS, I2R_SCHEDULER_ADDRESS, I2R_DASK_CLUSTER give the defaults.

The first run creates ``.venv`` and installs the pinned project into it (set
I2R_NO_VENV=1 to use the current interpreter, e.g. a conda env from environment.yml).
This file only uses the standard library until the environment exists.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
NOTEBOOKS = ROOT / "notebooks"

# The one ordered list of stages: (notebook, scope). Stages run in this order; the units of
# one stage are independent and may run in parallel (--executor dask). Scopes:
#   dataset   once per data set                      -> <work>/_dataset/
#   plate     once per plate of data_dir/metadata.csv -> <work>/_plates/<plate>/
#   fold      once per fold 0..n_folds-1              -> <work>/_folds/fold<k>/
#   condition once per held-out condition             -> <work>/<condition>/
#   summary   once after all conditions               -> <work>/_summary/
STAGES = [
    ("00_simulate_screen", "dataset"),  # synthetic screen: images, masks, network, truth
    ("01_preprocess_nuclei", "plate"),  # segmentation, filters, crops, features of a plate
    ("02_screen_conditions", "dataset"),  # merged nuclei; impactful conditions
    ("03_embed_genes", "dataset"),  # graph-autoencoder gene embeddings
    ("04_train_encoder", "fold"),  # CNN encoder without the fold's held-out conditions
    ("05_build_profiles", "dataset"),  # condition profiles in every fold's space
    ("06_translate_condition", "condition"),  # NTK kernel regression; ranked genes
    ("07_summarize_conditions", "summary"),  # summary table; top-k accuracy figure
    ("08_evaluate_segmentation", "dataset"),  # segmentation accuracy, test-time augmentation
]
# The stages each stage reads from: a unit reruns when a unit of these was recomputed.
DEPENDS = {
    "01_preprocess_nuclei": ["00_simulate_screen"],
    "02_screen_conditions": ["01_preprocess_nuclei"],
    "03_embed_genes": ["00_simulate_screen"],
    "04_train_encoder": ["01_preprocess_nuclei"],
    "05_build_profiles": ["01_preprocess_nuclei", "04_train_encoder"],
    "06_translate_condition": ["02_screen_conditions", "03_embed_genes", "05_build_profiles"],
    "07_summarize_conditions": ["06_translate_condition"],
}
SCOPES = ("dataset", "plate", "fold", "condition", "summary")
# The parameter a notebook of a per-unit scope must declare to know its unit.
UNIT_PARAMETER = {"plate": "plate", "fold": "fold", "condition": "condition"}
# Configuration keys run_all.py itself uses; no notebook needs to declare them.
RUN_KEYS = ("size", "conditions", "n_folds")
DEFAULT_N_FOLDS = 3
CONTROL = "EMPTY"


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def bootstrap(extras: str) -> None:
    """Create .venv with the pinned project installed, and re-execute inside it."""
    if os.environ.get("I2R_NO_VENV") == "1" or Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / f".installed-{extras}"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == want):
        if not _venv_python().is_file():
            print(f"[setup] creating {VENV}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        print("[setup] installing the pinned project (first run takes a few minutes)", flush=True)
        pip = [str(_venv_python()), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, "-q", "-e", f"{ROOT}[{extras}]"], check=True)
        subprocess.run(
            [str(_venv_python()), "-m", "ipykernel", "install", "--sys-prefix", "--name",
             "python3", "--display-name", "Python 3 (i2r)"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        stamp.write_text(want)
    os.execv(str(_venv_python()), [str(_venv_python()), str(ROOT / "run_all.py"), *sys.argv[1:]])


def load_config(path: Path) -> dict:
    """Read the YAML configuration."""
    import yaml

    return yaml.safe_load(Path(path).read_text()) or {}


class Pipeline:
    """One main-job run: configuration, paths, notebooks folder; resolves units lazily.

    Plates are read from ``data_dir/metadata.csv`` and conditions resolved only when a
    stage needs them, i.e. after stage 00 wrote the screen.
    """

    def __init__(self, cfg: dict, paths: dict, nb_dir: Path = NOTEBOOKS, all_conditions=False):
        self.cfg = cfg
        self.paths = paths
        self.nb_dir = Path(nb_dir).resolve()
        self.cache = paths["work"] / ".notebooks"
        self.all_conditions = all_conditions
        self._declared: dict = {}

    # --- notebooks -------------------------------------------------------------------
    def source(self, name: str) -> Path:
        """Return the jupytext source of a stage; a clear error when it is missing."""
        src = self.nb_dir / f"{name}.py"
        if not src.is_file():
            raise SystemExit(f"run_all.py: notebook {src} is missing (stage {name}).")
        return src

    def ipynb(self, name: str) -> Path:
        """Generate the .ipynb of a jupytext source (papermill needs a kernelspec)."""
        import jupytext

        src = self.source(name)
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
        out = self.cache / f"{name}.{digest}.ipynb"  # one per source version
        if not out.is_file():
            nb = jupytext.read(src)
            nb.metadata["kernelspec"] = {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{name}.{os.getpid()}.tmp.ipynb")
            jupytext.write(nb, tmp, fmt="ipynb")
            os.replace(tmp, out)
        return out

    def declared(self, name: str) -> dict:
        """Parameters declared by a notebook's tagged parameters cell: name -> default source.

        Every assignment of the cell counts (parsed with ``ast``, so comments may contain
        anything); a cell that is not valid Python is an error naming the notebook.
        """
        if name not in self._declared:
            import jupytext

            cells = [c for c in jupytext.read(self.source(name)).cells
                     if "parameters" in c.metadata.get("tags", [])]  # fmt: skip
            if not cells:
                raise SystemExit(f"run_all.py: {self.source(name)} has no `parameters` cell.")
            try:
                tree = ast.parse(cells[0].source)
            except SyntaxError as exc:
                raise SystemExit(
                    f"run_all.py: the parameters cell of {self.source(name)} is not valid "
                    f"Python: {exc}"
                ) from None
            found = {}
            for node in tree.body:
                if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                    continue
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        found[t.id] = ast.get_source_segment(cells[0].source, node.value)
            self._declared[name] = found
        return self._declared[name]

    # --- units -----------------------------------------------------------------------
    def n_folds(self) -> int:
        """Return the number of folds (config ``n_folds``, default 3)."""
        n = self.cfg.get("n_folds", DEFAULT_N_FOLDS)
        if not isinstance(n, int) or n < 1:
            raise SystemExit(f"run_all.py: n_folds must be a positive integer, not {n!r}.")
        return n

    def plates(self) -> list[str]:
        """Plates of ``data_dir/metadata.csv`` (written by stage 00 or by ``run_all data``)."""
        import pandas as pd

        meta = self.paths["data"] / "metadata.csv"
        if not meta.is_file():
            raise SystemExit(
                f"run_all.py: {meta} is missing; run stage 00 first (--stages 00) or point "
                "--data-dir at a screen folder with metadata.csv."
            )
        plates = pd.read_csv(meta, usecols=["Metadata_Plate"], dtype=str).Metadata_Plate
        return sorted(plates.dropna().unique())

    def conditions(self) -> list[str]:
        """Held-out conditions: the configured list, or every non-control condition."""
        if self.all_conditions:
            import pandas as pd

            meta = self.paths["data"] / "metadata.csv"
            if not meta.is_file():
                raise SystemExit(f"run_all.py: --all-conditions needs {meta}; run stage 00.")
            conds = pd.read_csv(meta, usecols=["Metadata_Condition"], dtype=str)
            self.cfg["conditions"] = sorted(set(conds.Metadata_Condition.dropna()) - {CONTROL})
            self.all_conditions = False
        return list(self.cfg["conditions"])

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
            return [(c, {"condition": c, "out_dir": str(work / c)}, c) for c in self.conditions()]
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

    def upstream(self, name: str, stages=STAGES) -> str:
        """Digest of the done markers (key and run id) of the stages ``name`` reads from.

        Taken when the stage is about to run, so a unit whose inputs were recomputed since
        its own run (``--force`` included) no longer counts as complete. A missing marker
        counts as such (the stage may run on inputs made outside this pipeline).
        """
        scopes = dict(stages)
        seen = []
        for dep in DEPENDS.get(name, []):
            if dep not in scopes:
                continue
            for label, _, sub in self.unit_specs(scopes[dep]):
                marker = self.paths["work"] / sub / f"{dep}.done.json"
                try:
                    info = json.loads(marker.read_text())
                    seen.append([dep, label, info.get("key"), info.get("run")])
                except (OSError, ValueError):
                    seen.append([dep, label, None, None])
        if not seen:
            return ""
        return hashlib.sha256(json.dumps(seen).encode()).hexdigest()

    def units(self, name: str, scope: str) -> list:
        """Build the units of one stage, ready for an executor."""
        from i2r_utils.executor import Unit

        need = UNIT_PARAMETER.get(scope)
        if need and need not in self.declared(name):
            raise SystemExit(
                f"run_all.py: {self.source(name)} runs once per {scope} but declares no "
                f"`{need}` parameter; add `{need} = ...` to its parameters cell."
            )
        upstream = self.upstream(name)
        return [
            Unit(
                stage=name,
                label=label,
                notebook=str(self.ipynb(name)),
                source=str(self.source(name)),
                parameters=self.parameters(name, scope_params),
                exec_dir=str(self.paths["work"] / sub),
                cwd=str(self.nb_dir),
                upstream=upstream,
            )
            for label, scope_params, sub in self.unit_specs(scope)
        ]


def check_config(pipe: Pipeline, stages=STAGES) -> None:
    """Fail on configuration keys that no notebook declares (they would be ignored)."""
    declared = set().union(*(pipe.declared(name) for name, _ in stages))
    unknown = sorted(k for k in pipe.cfg if k not in declared and k not in RUN_KEYS)
    if unknown:
        raise SystemExit(
            f"run_all.py: configuration keys {unknown} are not parameters of any "
            "notebook; fix the spelling in the config file."
        )
    bad = sorted({scope for _, scope in stages} - set(SCOPES))
    if bad:
        raise SystemExit(f"run_all.py: unknown scopes {bad}; one of {SCOPES}")


def select_stages(spec: str | None, stages=STAGES) -> list:
    """Stages named by a comma-separated list of numbers or names (all when empty)."""
    if not spec:
        return list(stages)
    want = [w.strip() for w in spec.split(",") if w.strip()]

    def hit(name, w):
        return name == w or name.startswith(w + "_")

    unknown = [w for w in want if not any(hit(name, w) for name, _ in stages)]
    if unknown:
        raise SystemExit(f"run_all.py: unknown stages {unknown}; see --list")
    return [s for s in stages if any(hit(s[0], w) for w in want)]


def write_condition_manifest(pipe: Pipeline, condition: str) -> None:
    """Provenance of one held-out condition's results (config, paths, git, input checksums)."""
    from i2r_utils.provenance import write_manifest

    data = pipe.paths["data"]
    write_manifest(
        pipe.paths["work"] / condition / "manifest.json",
        {"config": pipe.cfg, "paths": {k: str(v) for k, v in pipe.paths.items()}},
        [data / "metadata.csv", data / "screen.json", data / "network" / "edges.tsv",
         data / "network" / "expression.csv"],
        repo=ROOT,
    )  # fmt: skip


def run_pipeline(pipe: Pipeline, stages, executor, force: bool = False):
    """Run the stages in order, the units of each through ``executor``.

    Returns
    -------
    (list of UnitResult, str)
        All results, and the failure report ("" when nothing failed). A stage with a
        failed unit ends the run after that stage (the others of the stage finish).
    """
    from i2r_utils.executor import failure_report

    every = []
    for name, scope in stages:
        units = pipe.units(name, scope)
        t0 = time.perf_counter()
        results = executor.run(units, force=force, desc=name)
        every += results
        for r in results:
            if scope == "condition" and r.ok:
                write_condition_manifest(pipe, r.unit.label)
        n = {s: sum(r.status == s for r in results) for s in ("ran", "skipped", "failed")}
        print(
            f"[run_all] {name}: {len(units)} unit(s) - {n['ran']} ran, {n['skipped']} "
            f"complete, {n['failed']} failed - {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        report = failure_report(results)
        if report:
            return every, f"stage {name}: {report}"
    return every, ""


def _env_int(name: str):
    value = os.environ.get(name)
    return int(value) if value else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options of the main job."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config" / "default.yaml"))
    ap.add_argument("--size", choices=["tiny", "default"])
    ap.add_argument("--conditions", help="comma-separated held-out conditions")
    ap.add_argument("--all-conditions", action="store_true", help="every non-control condition")
    ap.add_argument("--stages", help="comma-separated stage numbers or names (default: all)")
    ap.add_argument("--data-dir")
    ap.add_argument("--results-dir")
    ap.add_argument("--figures-dir")
    ap.add_argument("--notebooks-dir", default=str(NOTEBOOKS), help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--no-random-baseline", action="store_true")
    ap.add_argument("--force", action="store_true", help="rerun units already complete")
    ap.add_argument("--list", action="store_true", help="list the stages and exit")
    ap.add_argument(
        "--executor",
        choices=["local", "dask"],
        default=os.environ.get("I2R_EXECUTOR", "local"),
        help="local: units one after another (default); dask: units of a stage in parallel",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=_env_int("I2R_WORKERS"),
        help="dask worker processes (default: cores) or batch jobs (default 1)",
    )
    ap.add_argument(
        "--scheduler-address",
        default=os.environ.get("I2R_SCHEDULER_ADDRESS"),
        help="connect to a running dask scheduler, e.g. tcp://10.0.0.5:8786",
    )
    ap.add_argument(
        "--cluster",
        choices=["local", "slurm", "pbs"],
        default=os.environ.get("I2R_DASK_CLUSTER", "local"),
        help="dask cluster to start: local processes, or dask-jobqueue SLURM/PBS jobs "
        "configured in ~/.config/dask/jobqueue.yaml",
    )
    return ap.parse_args(argv)


def make_pipeline(args: argparse.Namespace) -> tuple[Pipeline, list]:
    """Build the configured pipeline and the selected stages from parsed options."""
    stages = select_stages(args.stages)
    cfg = load_config(Path(args.config))
    for key in ("size", "seed"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.no_random_baseline:
        cfg["random_baseline"] = False
    if args.conditions:
        cfg["conditions"] = [c.strip() for c in args.conditions.split(",") if c.strip()]
    data = Path(args.data_dir or ROOT / "data" / "synthetic" / f"{cfg['size']}_seed{cfg['seed']}")
    paths = {
        "data": data.resolve(),
        "work": Path(args.results_dir or ROOT / "results" / data.name).resolve(),
        "figures": Path(args.figures_dir or ROOT / "figures").resolve(),
    }
    all_conditions = args.all_conditions and not args.conditions
    pipe = Pipeline(cfg, paths, Path(args.notebooks_dir), all_conditions)
    check_config(pipe)
    return pipe, stages


def main_job(argv: list[str]) -> int:
    """Run the stages for the chosen data set and held-out conditions."""
    args = parse_args(argv)
    if args.list:
        for name, scope in STAGES:
            print(f"{name:28s} {scope}")
        return 0
    if args.executor == "local" and (args.workers or args.scheduler_address):
        raise SystemExit("run_all.py: --workers/--scheduler-address need --executor dask.")
    pipe, stages = make_pipeline(args)

    from i2r_utils.executor import make_executor

    try:
        ex = make_executor(args.executor, args.workers, args.scheduler_address, args.cluster)
    except (ImportError, ValueError) as exc:
        raise SystemExit(f"run_all.py: {exc}") from None
    t0 = time.perf_counter()
    with ex:
        print(f"[run_all] executor: {ex.describe()}", flush=True)
        _, failed = run_pipeline(pipe, stages, ex, args.force)
    print(f"[run_all] wall time {time.perf_counter() - t0:.1f} s", flush=True)
    if failed:
        print(
            f"\nrun_all.py: {failed}\nThe other units' results are kept; fix the cause and "
            "rerun the same command: only what is missing runs.",
            file=sys.stderr,
        )
        return 1
    if any(scope in ("condition", "summary") for _, scope in stages):
        report(pipe.paths["work"], pipe.conditions())
    return 0


def report(work: Path, conditions: list[str]) -> None:
    """Print each condition's top 10 and the true gene's rank, and the summary metrics."""
    for cond in conditions:
        res = work / cond / "result.json"
        if res.is_file():
            r = json.loads(res.read_text())
            perm = r.get("permutation_mean_rank")
            extra = f"; permutation baseline mean rank {perm:.1f}" if perm is not None else ""
            print(f"\n{cond}: true gene rank {r['true_rank']} of {r['n_candidates']}{extra}")
            print("  top 10: " + ", ".join(r["top10"]))
    metrics = work / "summary_metrics.csv"
    if metrics.is_file():
        print(f"\nsummary ({metrics}):\n" + metrics.read_text())


def run_tests(argv: list[str]) -> int:
    """Lint, then the unit tests and the papermill smoke run."""
    py = sys.executable
    steps = [
        [py, "-m", "ruff", "check", "src", "tests", "benchmarks", "notebooks", "run_all.py"],
        [py, "-m", "ruff", "format", "--check", "src", "tests", "benchmarks", "run_all.py"],
        [py, "-m", "pytest", *(argv or ["-q"])],
    ]
    for cmd in steps:
        print("[test] " + " ".join(cmd[2:]), flush=True)
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc:
            return rc
    return 0


# Subcommands implemented in the package: name -> (module, what it does).
COMMANDS = {
    "predict": ("i2r_pipeline.predict", "rank candidate genes for a new target"),
    "data": ("i2r_utils.fetch", "fetch public data"),
}


def run_command(name: str, argv: list[str]) -> int:
    """Dispatch a subcommand to ``<module>.main(argv)`` (imported only now)."""
    module, what = COMMANDS[name]
    try:
        entry = importlib.import_module(module).main
    except (ImportError, AttributeError) as exc:
        raise SystemExit(
            f"run_all.py {name} ({what}) needs {module}.main(argv), which this checkout does "
            f"not provide ({type(exc).__name__}: {exc})."
        ) from None
    return int(entry(argv) or 0)


def main() -> int:
    """Dispatch: ``test`` runs the tests, ``predict``/``data`` a subcommand, else the main job."""
    argv = sys.argv[1:]
    bootstrap("dev")
    if argv and argv[0] == "test":
        return run_tests(argv[1:])
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    return main_job(argv)


if __name__ == "__main__":
    sys.exit(main())
