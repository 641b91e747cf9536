"""The results folder a notebook reads: a missing one names the folders that hold results.

Run by hand, a notebook reads its ``work_dir`` default (the tiny chain of notebooks run in
order, e.g. ``../results/tiny``), while ``run_all.py`` writes ``results/<size>_seed<seed>``
(the main job: ``results/default_seed0``). :func:`require_results` turns the mismatch into
one line that lists the sibling folders holding the artifact and says what to set.
"""

from __future__ import annotations

import os
from pathlib import Path

from .artifacts import artifact
from .io import InputError

__all__ = ["require_results"]


def require_results(work_dir: str | os.PathLike, name: str, **fields) -> Path:
    """Return ``artifact(work_dir, name, **fields)``, or fail naming where results are.

    Parameters
    ----------
    work_dir : path-like
        The results folder the notebook was given.
    name : str
        An artifact the notebook needs (a key of :data:`i2r_utils.artifacts.ARTIFACTS`,
        e.g. ``"folds"``), written by an earlier step.
    **fields
        Fields of the artifact's path template.

    Returns
    -------
    pathlib.Path
        The artifact's path (it exists).

    Raises
    ------
    InputError
        When it does not exist: the message lists the folders beside ``work_dir`` that
        hold the artifact (set ``work_dir`` to one of them), or says which command writes
        them.
    """
    path = artifact(work_dir, name, **fields)
    if path.exists():
        return path
    parent = Path(work_dir).parent
    found = []
    if parent.is_dir():
        found = sorted(
            str(p) for p in parent.iterdir() if p.is_dir() and artifact(p, name, **fields).exists()
        )
    if found:
        hint = (
            f"results found in {', '.join(found)}: set work_dir (and the folders below it, "
            "e.g. out_dir) in the parameters cell to one of them"
        )
    else:
        hint = (
            "no results beside it either: run `python3 run_all.py` (writes "
            "results/default_seed0; `--size tiny` writes results/tiny_seed0) or the notebooks "
            "before this one with their defaults, then point work_dir at those results"
        )
    raise InputError(f"{path}: not found; {hint}.")
