"""Run the compendium: execute the notebooks with papermill (``python3 run_all.py``).

    python3 run_all.py                 # main job on the embedded default synthetic screen
    python3 run_all.py test            # lint, unit tests, papermill smoke run of every notebook
    python3 run_all.py predict ...     # rank genes for a new target (i2r_pipeline.predict)
    python3 run_all.py data ...        # fetch public data (i2r_pipeline.fetch)

Options (main job): --size tiny|default, --conditions A,B | --all-conditions,
--stages 00,03, --data-dir, --results-dir, --figures-dir, --seed, --no-random-baseline,
--force (rerun units already complete), --list, --notebooks-dir.
Parallel units (plates, folds, conditions) on Dask: --executor dask [--workers N]
[--scheduler-address tcp://host:8786 | --cluster slurm|pbs]; environment variables
I2R_EXECUTOR, I2R_WORKERS, I2R_SCHEDULER_ADDRESS, I2R_DASK_CLUSTER give the defaults.

The first run creates ``.venv`` and installs the pinned project into it (set
I2R_NO_VENV=1 to use the current interpreter, e.g. a conda env from environment.yml).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from i2r_utils.artifacts import artifact

from . import PipelineError
from .executor import make_executor
from .pipeline import Pipeline, check_config, load_config, run_pipeline, select_stages
from .stages import STAGES

__all__ = [
    "COMMANDS",
    "parse_args",
    "make_pipeline",
    "main_job",
    "report",
    "run_tests",
    "run_command",
    "main",
]

# Subcommands implemented in modules of this package: name -> (module, what it does).
COMMANDS = {
    "predict": ("i2r_pipeline.predict", "rank candidate genes for a new target"),
    "data": ("i2r_pipeline.fetch", "fetch public data"),
}


def _env_int(name: str):
    value = os.environ.get(name)
    return int(value) if value else None


def parse_args(argv: list[str], root: Path) -> argparse.Namespace:
    """Command-line options of the main job.

    Parameters
    ----------
    argv : list of str
        Arguments after ``run_all.py``.
    root : pathlib.Path
        The project folder (defaults of the configuration and notebooks).

    Returns
    -------
    argparse.Namespace
        The options.
    """
    ap = argparse.ArgumentParser(
        prog="run_all.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--config", default=str(root / "config" / "default.yaml"))
    ap.add_argument("--size", choices=["tiny", "default"])
    ap.add_argument("--conditions", help="comma-separated held-out conditions")
    ap.add_argument("--all-conditions", action="store_true", help="every non-control condition")
    ap.add_argument("--stages", help="comma-separated stage numbers or names (default: all)")
    ap.add_argument("--data-dir")
    ap.add_argument("--results-dir")
    ap.add_argument("--figures-dir")
    ap.add_argument("--notebooks-dir", default=str(root / "notebooks"), help=argparse.SUPPRESS)
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
        The pipeline, its configuration checked, and the stages to run.
    """
    stages = select_stages(args.stages)
    cfg = load_config(Path(args.config))
    for key in ("size", "seed"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.no_random_baseline:
        cfg["random_baseline"] = False
    if args.conditions:
        cfg["conditions"] = [c.strip() for c in args.conditions.split(",") if c.strip()]
    data = Path(args.data_dir or root / "data" / "synthetic" / f"{cfg['size']}_seed{cfg['seed']}")
    paths = {
        "data": data.resolve(),
        "work": Path(args.results_dir or root / "results" / data.name).resolve(),
        "figures": Path(args.figures_dir or root / "figures").resolve(),
    }
    all_conditions = args.all_conditions and not args.conditions
    pipe = Pipeline(cfg, paths, Path(args.notebooks_dir), all_conditions, repo=root)
    check_config(pipe)
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
        for stage in STAGES:
            print(f"{stage.name:28s} {stage.scope}")
        return 0
    if args.executor == "local" and (args.workers or args.scheduler_address):
        raise PipelineError("--workers/--scheduler-address need --executor dask.")
    pipe, stages = make_pipeline(args, root)
    try:
        ex = make_executor(args.executor, args.workers, args.scheduler_address, args.cluster)
    except (ImportError, ValueError) as exc:
        raise PipelineError(str(exc)) from None
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
    if any(s.scope in ("condition", "summary") for s in stages):
        report(pipe.paths["work"], pipe.conditions())
    return 0


def report(work: Path, conditions: list[str]) -> None:
    """Print each condition's top 10 and the true gene's rank, and the summary metrics.

    Parameters
    ----------
    work : pathlib.Path
        The results folder.
    conditions : list of str
        Held-out conditions (those without a result are left out).
    """
    for cond in conditions:
        res = artifact(work, "result", condition=cond)
        if res.is_file():
            r = json.loads(res.read_text())
            perm = r.get("permutation_mean_rank")
            extra = f"; permutation baseline mean rank {perm:.1f}" if perm is not None else ""
            print(f"\n{cond}: true gene rank {r['true_rank']} of {r['n_candidates']}{extra}")
            print("  top 10: " + ", ".join(r["top10"]))
    metrics = artifact(work, "summary_metrics")
    if metrics.is_file():
        print(f"\nsummary ({metrics}):\n" + metrics.read_text())


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
        Exit status.

    Raises
    ------
    SystemExit
        With ``run_all.py: <message>`` for a problem the user can fix.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    root = Path(root or Path.cwd()).resolve()
    if argv and argv[0] == "test":
        return run_tests(argv[1:], root)
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    try:
        return main_job(argv, root)
    except PipelineError as exc:
        raise SystemExit(f"run_all.py: {exc}") from None
