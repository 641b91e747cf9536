"""``run_all.py --dataset NAME``: one registered real-data notebook as a papermill unit.

The registry is :mod:`i2r_pipeline.datasets`; this module turns an entry into an executor
unit (:func:`dataset_unit`: parameters, results folder, done marker) and runs it
(:func:`run_dataset`, :func:`dataset_job`), skipping it when an identical run is complete.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from . import PipelineError
from .config import validate_config
from .datasets import Dataset, data_folder, dataset_named
from .executor import LocalExecutor, Unit, is_complete
from .notebooks import declared_parameters, to_ipynb
from .pipeline import load_run_config

__all__ = ["dataset_unit", "run_dataset", "dataset_job"]


def dataset_unit(ds: Dataset, root: Path, paths: dict, nb_dir: Path, cfg: dict | None = None):
    """Build the papermill unit of one data set run.

    Parameters
    ----------
    ds : Dataset
        The data set.
    root : pathlib.Path
        The repository root.
    paths : dict
        Optional ``data``, ``work`` and ``figures`` folders (None: the defaults).
    nb_dir : pathlib.Path
        Folder of the notebook sources.
    cfg : dict, optional
        Configuration keys offered to the notebook (those it declares and the registry
        does not set).

    Returns
    -------
    i2r_pipeline.executor.Unit
        Label ``ds.name``, executed into the results folder.
    """
    source = Path(nb_dir).resolve() / f"{ds.notebook}.py"
    if not source.is_file():
        raise PipelineError(f"notebook {source} of data set {ds.name} is missing.")
    declared = declared_parameters(source)
    unknown = sorted(set(ds.parameters) - set(declared))
    if unknown:
        raise PipelineError(f"{source} does not declare {unknown} (data set {ds.name}).")
    work = Path(paths.get("work") or Path(root) / "results" / ds.name).resolve()
    params = {k: v for k, v in (cfg or {}).items() if k in declared}
    params.update(ds.parameters)
    params.update(
        data_dir=str(data_folder(ds, root, paths.get("data"))),
        work_dir=str(work),
        figures_dir=str(Path(paths.get("figures") or work / "figures").resolve()),
    )
    return Unit(
        stage=ds.notebook,
        label=ds.name,
        notebook=str(to_ipynb(source, work / ".notebooks")),
        source=str(source),
        parameters={k: v for k, v in params.items() if k in declared},
        exec_dir=str(work),
        cwd=str(source.parent),
    )


def run_dataset(unit, force: bool = False, dry_run: bool = False) -> int:
    """Run (or, with ``dry_run``, only report) a data set's unit; print the outcome.

    Returns
    -------
    int
        0, or 1 when the notebook failed.
    """
    if dry_run:
        state = "would run" if force or not is_complete(unit) else "complete"
        print(f"[dry-run] {unit.label} ({unit.stage}): {state}; results in {unit.exec_dir}")
        return 0
    with LocalExecutor() as ex:
        (res,) = ex.run([unit], force=force, desc=unit.label)
    if not res.ok:
        print(f"run_all.py: {unit.label}: {res.error}\n  notebook: {unit.output}", file=sys.stderr)
        return 1
    print(f"[run_all] {unit.label}: results in {unit.exec_dir}", flush=True)
    return 0


def dataset_job(args, root: Path) -> int:
    """``run_all.py --dataset NAME``: run one registered notebook instead of the main job.

    Parameters
    ----------
    args : argparse.Namespace
        Main-job options (:func:`i2r_pipeline.options.parse_args`); ``--config``,
        ``--seed``, ``--data-dir``, ``--results-dir``, ``--figures-dir``,
        ``--notebooks-dir``, ``--force`` and ``--dry-run`` apply.
    root : pathlib.Path
        The repository root.

    Returns
    -------
    int
        Exit status.

    Raises
    ------
    PipelineError
        With options of the main job only (``--stages``, ``--conditions``,
        ``--all-conditions``), a bad configuration, or a missing notebook or data folder.
    """
    if args.stages or args.conditions or args.all_conditions:
        raise PipelineError(
            "--dataset runs one notebook; drop --stages, --conditions and --all-conditions."
        )
    cfg = load_run_config(args.config, root / "config" / "default.yaml")  # as the main job
    if args.seed is not None:
        cfg["seed"] = args.seed
    validate_config(cfg)
    paths = {"data": args.data_dir, "work": args.results_dir, "figures": args.figures_dir}
    unit = dataset_unit(dataset_named(args.dataset), root, paths, Path(args.notebooks_dir), cfg)
    t0 = time.perf_counter()
    rc = run_dataset(unit, args.force, args.dry_run)
    if not args.dry_run:
        print(f"[run_all] wall time {time.perf_counter() - t0:.1f} s", flush=True)
    return rc
