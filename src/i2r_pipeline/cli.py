"""Command line: the main job, its final answer, ``test``, ``predict`` and ``data``.

The options and the help text are in :mod:`i2r_pipeline.options` (standard library only,
so ``run_all.py`` answers ``--help`` before any install).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

from . import PipelineError
from .answer import report
from .config import validate_config
from .executor import make_executor
from .lock import folder_lock
from .options import COMMANDS, list_stages, parse_args
from .pipeline import (
    Pipeline,
    check_config,
    load_config,
    load_run_config,
    plan,
    run_pipeline,
    select_stages,
)
from .realdata import dataset_job

#: The one line printed after Ctrl-C.
INTERRUPTED = (
    "run_all.py: interrupted; the unit that was running left no outputs (completed units "
    "keep theirs); rerun the same command to go on."
)

__all__ = [
    "INTERRUPTED",
    "COMMANDS",
    "parse_args",
    "make_pipeline",
    "main_job",
    "print_plan",
    "report",
    "run_tests",
    "run_command",
    "main",
]


def make_pipeline(args: argparse.Namespace, root: Path) -> tuple[Pipeline, list]:
    """Build the configured pipeline and the selected stages from parsed options.

    Parameters
    ----------
    args : argparse.Namespace
        Options of :func:`parse_args`.
    root : pathlib.Path
        The project folder (default data, results and figures folders; git state).

    Returns
    -------
    (Pipeline, list of Stage)
        The pipeline, its configuration checked (keys and values), and the stages to run.
    """
    stages = select_stages(args.stages)
    cfg = load_run_config(args.config, root / "config" / "default.yaml")
    for key in ("size", "seed"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.no_random_baseline:
        cfg["random_baseline"] = False
    if args.conditions is not None:
        cfg["conditions"] = [c.strip() for c in args.conditions.split(",") if c.strip()]
        if not cfg["conditions"]:
            raise PipelineError(
                f"--conditions {args.conditions!r} names no condition; give e.g. --conditions "
                "BRAF,JUN, or leave the option out for the configured ones."
            )
    data = Path(args.data_dir or root / "data" / "synthetic" / f"{cfg['size']}_seed{cfg['seed']}")
    work = Path(args.results_dir or root / "results" / data.name).resolve()
    paths = {
        "data": data.resolve(),
        "work": work,  # the run's own figures folder: another size or seed keeps its own
        "figures": Path(args.figures_dir or root / "figures" / work.name).resolve(),
    }
    all_conditions = args.all_conditions and args.conditions is None
    pipe = Pipeline(cfg, paths, Path(args.notebooks_dir), all_conditions, repo=root)
    check_config(pipe, keys=load_config(args.config))  # the defaults' keys are declared
    validate_config(cfg)
    pipe.check_screen()
    return pipe, stages


def main_job(argv: list[str], root: Path) -> int:
    """Run the stages for the chosen data set and held-out conditions.

    Parameters
    ----------
    argv : list of str
        Options of the main job.
    root : pathlib.Path
        The project folder.

    Returns
    -------
    int
        Exit status: 1 when a unit failed.
    """
    args = parse_args(argv, root)
    if args.list:
        list_stages()
        return 0
    if args.dataset:
        return dataset_job(args, root)
    if args.executor == "local" and (args.workers or args.scheduler_address):
        raise PipelineError("--workers/--scheduler-address need --executor dask.")
    pipe, stages = make_pipeline(args, root)
    if args.dry_run:
        print_plan(plan(pipe, stages, args.force))
        return 0
    t0 = time.perf_counter()
    with (
        folder_lock(pipe.paths["work"], "results folder"),
        folder_lock(pipe.paths["data"], "data folder"),
    ):
        try:
            ex = make_executor(args.executor, args.workers, args.scheduler_address, args.cluster)
        except (ImportError, ValueError) as exc:
            raise PipelineError(str(exc)) from None
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
    if any(s.scope in ("condition", "summary") for s in stages):
        report(pipe.paths["work"], pipe.conditions())
    return 0


def print_plan(steps: list) -> None:
    """Print what a run would do (:func:`i2r_pipeline.pipeline.plan`), a block per stage.

    Parameters
    ----------
    steps : list
        ``(stage, [(label, "run" | "complete"), ...], note)`` per stage.
    """
    for stage, rows, note in steps:
        n_run = sum(status == "run" for _, status in rows)
        head = f"[dry-run] {stage.name}: {len(rows)} unit(s) - {n_run} would run, "
        head += f"{len(rows) - n_run} complete"
        print(head + (f" ({note})" if note else ""))
        for label, status in rows:
            print(f"  {label}: {'would run' if status == 'run' else 'complete'}")


def run_tests(argv: list[str], root: Path) -> int:
    """Lint, then the unit tests and the papermill smoke run.

    Parameters
    ----------
    argv : list of str
        Arguments for pytest (default ``-q``).
    root : pathlib.Path
        The project folder (where the commands run).

    Returns
    -------
    int
        Exit status of the first step that failed, else 0.
    """
    py = sys.executable
    steps = [
        [py, "-m", "ruff", "check", "src", "tests", "benchmarks", "notebooks", "run_all.py"],
        [py, "-m", "ruff", "format", "--check", "src", "tests", "benchmarks", "run_all.py"],
        [py, "-m", "pytest", *(argv or ["-q"])],
    ]
    for cmd in steps:
        print("[test] " + " ".join(cmd[2:]), flush=True)
        rc = subprocess.run(cmd, cwd=root).returncode
        if rc:
            return rc
    return 0


def run_command(name: str, argv: list[str]) -> int:
    """Dispatch a subcommand to ``<module>.main(argv)`` (imported only now).

    Parameters
    ----------
    name : str
        A key of :data:`COMMANDS`.
    argv : list of str
        Arguments after the subcommand.

    Returns
    -------
    int
        The subcommand's exit status.
    """
    module, what = COMMANDS[name]
    try:
        entry = importlib.import_module(module).main
    except (ImportError, AttributeError) as exc:
        raise SystemExit(
            f"run_all.py {name} ({what}) needs {module}.main(argv), which this checkout does "
            f"not provide ({type(exc).__name__}: {exc})."
        ) from None
    return int(entry(argv) or 0)


def main(argv: list[str] | None = None, root: str | Path | None = None) -> int:
    """Dispatch: ``test`` runs the tests, ``predict``/``data`` a subcommand, else the main job.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after ``run_all.py`` (default ``sys.argv[1:]``).
    root : path-like, optional
        The project folder (default: the current directory).

    Returns
    -------
    int
        Exit status; 130 after Ctrl-C, with one line (:data:`INTERRUPTED`).

    Raises
    ------
    SystemExit
        With ``run_all.py: <message>`` for a problem the user can fix (e.g. another run
        holds the results folder, :mod:`i2r_pipeline.lock`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    root = Path(root or Path.cwd()).resolve()
    try:
        if argv and argv[0] == "test":
            return run_tests(argv[1:], root)
        if argv and argv[0] in COMMANDS:
            return run_command(argv[0], argv[1:])
    except KeyboardInterrupt:
        print("run_all.py: interrupted.", file=sys.stderr, flush=True)
        return 130
    try:
        return main_job(argv, root)
    except PipelineError as exc:
        raise SystemExit(f"run_all.py: {exc}") from None
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr, flush=True)
        return 130
