"""Run the compendium: execute the notebooks with papermill (``python3 run_all.py``).

    python3 run_all.py                 # main job on the embedded default synthetic screen
    python3 run_all.py test            # lint, unit tests, papermill smoke run of every notebook
    python3 run_all.py predict ...     # rank genes for a new target (i2r_pipeline.predict)
    python3 run_all.py segment ...     # nucleus label images for a folder (i2r_pipeline.segment)
    python3 run_all.py data ...        # fetch public data (i2r_pipeline.fetch)
    python3 run_all.py --dataset NAME  # a real-data notebook (--list) into results/NAME/

Options (main job): --size tiny|default, --conditions A,B | --all-conditions,
--stages 00,03, --data-dir, --results-dir, --figures-dir, --seed, --no-random-baseline,
--force (rerun units already complete), --dry-run, --list, --notebooks-dir.
Parallel units (plates, folds, conditions) on Dask: --executor dask [--workers N]
[--scheduler-address tcp://host:8786 | --cluster slurm|pbs]; environment variables
I2R_EXECUTOR, I2R_WORKERS, I2R_SCHEDULER_ADDRESS, I2R_DASK_CLUSTER give the defaults.

The first run creates ``.venv`` and installs the pinned project into it (set
I2R_NO_VENV=1 to use the current interpreter, e.g. a conda env from environment.yml).
"""

# Standard library only (and the stdlib-only modules of this package): run_all.py answers
# --help, --list and mistyped commands with this module before it installs anything.
from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from .datasets import DATASETS, dataset_lines
from .stages import STAGES

__all__ = [
    "COMMANDS",
    "EXTRAS",
    "build_parser",
    "parse_args",
    "list_stages",
    "unknown_command",
    "preflight",
]

# Subcommands implemented in modules of this package: name -> (module, what it does).
COMMANDS = {
    "predict": ("i2r_pipeline.predict", "rank candidate genes for a new target"),
    "data": ("i2r_pipeline.fetch", "fetch public data"),
    "segment": ("i2r_pipeline.segment", "segment nuclei into label images"),
}
#: Optional dependencies (pyproject extras) each command installs; the main job adds
#: ``cluster`` with ``--executor dask``.
EXTRAS = {"test": "dev", "predict": "", "data": "fetch", "main": "", "segment": ""}


def _env_int(name: str):
    value = os.environ.get(name)
    return int(value) if value else None


def build_parser(root: Path) -> argparse.ArgumentParser:
    """Return the parser of the main job's options.

    Parameters
    ----------
    root : pathlib.Path
        The project folder (defaults of the configuration and notebooks).

    Returns
    -------
    argparse.ArgumentParser
        The parser; ``--help`` shows this module's docstring.
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
    ap.add_argument(
        "--figures-dir",
        help="where the figures go (default figures/<name of the results folder>, e.g. "
        "figures/default_seed0); not part of any unit's hash: missing figures are redrawn",
    )
    ap.add_argument("--notebooks-dir", default=str(root / "notebooks"), help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--no-random-baseline", action="store_true")
    ap.add_argument("--force", action="store_true", help="rerun units already complete")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="check the configuration, print each selected stage's units and whether each "
        "would run or is complete; run nothing",
    )
    ap.add_argument("--list", action="store_true", help="list the stages and data sets and exit")
    ap.add_argument(
        "--dataset",
        choices=[d.name for d in DATASETS],
        help="run this real-data notebook (see --list) into results/<name>/ instead of the "
        "main job",
    )
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
    return ap


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

    Raises
    ------
    SystemExit
        Status 0 after ``--help``; status 2 with argparse's one-line usage error for an
        unknown option or argument (e.g. a mistyped command such as ``tets``).
    """
    return build_parser(root).parse_args(argv)


def list_stages() -> None:
    """Print each stage's name and scope, then each ``--dataset``, one a line (``--list``)."""
    for stage in STAGES:
        print(f"{stage.name:28s} {stage.scope}")
    print("\n".join(dataset_lines()))


def unknown_command(word: str) -> str:
    """Return the one-line error for a first argument that is neither a command nor an option.

    Parameters
    ----------
    word : str
        The first argument, e.g. ``"tets"``.

    Returns
    -------
    str
        ``run_all.py: unknown command 'tets' (did you mean 'test'?); ...``.
    """
    known = ["test", *COMMANDS]
    close = difflib.get_close_matches(word, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"run_all.py: unknown command {word!r}{hint}; commands: {', '.join(known)}, or none "
        "for the main job; see python3 run_all.py --help"
    )


def preflight(argv: list[str], root: Path) -> tuple[int | None, str]:
    """Answer what needs no environment, and say which extras the command needs.

    Parameters
    ----------
    argv : list of str
        Arguments after ``run_all.py``.
    root : pathlib.Path
        The project folder.

    Returns
    -------
    (int or None, str)
        An exit status when the call is answered already (``--list``), else None; and
        the pyproject extras to install, comma-separated (``""`` for none).

    Raises
    ------
    SystemExit
        Status 0 after ``--help``; status 2 after a usage error: an unknown command
        (:func:`unknown_command`) or an option :func:`parse_args` rejects.
    """
    if argv and argv[0] == "test":
        return None, EXTRAS["test"]
    if argv and argv[0] in COMMANDS:
        return None, EXTRAS[argv[0]]
    if argv and not argv[0].startswith("-"):
        print(unknown_command(argv[0]), file=sys.stderr)
        raise SystemExit(2)
    args = parse_args(argv, root)
    if args.list:
        list_stages()
        return 0, ""
    return None, "cluster" if args.executor == "dask" else EXTRAS["main"]
