"""Notebooks as the driver runs them: jupytext sources, declared parameters, papermill.

The notebooks are jupytext ``py:percent`` sources. Papermill needs an ``.ipynb`` with a
kernelspec, so :func:`to_ipynb` writes one per source version into a cache folder;
:func:`declared_parameters` reads the tagged ``parameters`` cell (the only parameters the
driver passes); :func:`execute` runs a notebook with papermill into an output path, never
in place.
"""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import jupytext

from . import PipelineError

__all__ = ["KERNELSPEC", "to_ipynb", "declared_parameters", "execute"]

#: Kernelspec written into generated notebooks (papermill needs one to inject parameters).
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def to_ipynb(source: Path, cache_dir: Path) -> Path:
    """Return the ``.ipynb`` of a jupytext source, generated once per source version.

    Parameters
    ----------
    source : pathlib.Path
        The jupytext source, e.g. ``notebooks/06_translate_condition.py``.
    cache_dir : pathlib.Path
        Folder of the generated notebooks (created when missing).

    Returns
    -------
    pathlib.Path
        ``cache_dir / <stem>.<sha256 of the source, 12 hex>.ipynb``, with :data:`KERNELSPEC`;
        written atomically, so concurrent callers never see a partial file.
    """
    source, cache_dir = Path(source), Path(cache_dir)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    out = cache_dir / f"{source.stem}.{digest}.ipynb"
    if not out.is_file():
        nb = jupytext.read(source)
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{source.stem}.{os.getpid()}.tmp.ipynb")
        jupytext.write(nb, tmp, fmt="ipynb")
        os.replace(tmp, out)
    return out


def declared_parameters(source: Path) -> dict[str, str]:
    """Return the parameters a notebook's tagged ``parameters`` cell declares.

    Every assignment of the cell counts (parsed with :mod:`ast`, so comments may contain
    anything).

    Parameters
    ----------
    source : pathlib.Path
        The jupytext source (or ``.ipynb``).

    Returns
    -------
    dict
        Parameter name -> source text of its default, in cell order.

    Raises
    ------
    PipelineError
        When the notebook has no ``parameters`` cell or the cell is not valid Python; the
        message names the notebook.
    """
    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise PipelineError(f"{source} has no `parameters` cell.")
    text = cells[0].source
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise PipelineError(f"the parameters cell of {source} is not valid Python: {exc}") from None
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = ast.get_source_segment(text, node.value)
    return found


def execute(
    ipynb: Path,
    out_ipynb: Path,
    parameters: dict,
    cwd: Path,
    progress: bool = False,
    kernel_name: str = "python3",
    **options,
) -> None:
    """Execute a notebook with papermill into ``out_ipynb`` (never in place).

    Parameters
    ----------
    ipynb : pathlib.Path
        Notebook with a kernelspec (:func:`to_ipynb`).
    out_ipynb : pathlib.Path
        The executed copy; its folder is created. Partially executed when a cell fails.
    parameters : dict
        Parameters papermill injects after the ``parameters`` cell.
    cwd : pathlib.Path
        Working directory of the kernel (the notebooks folder, so relative defaults work).
    progress : bool
        Show papermill's progress bar.
    kernel_name : str
        Jupyter kernel to run the notebook with.
    **options
        Further keyword arguments of ``papermill.execute_notebook`` (e.g. ``stdout_file``).

    Raises
    ------
    ValueError
        When ``out_ipynb`` is ``ipynb`` itself.
    papermill.PapermillExecutionError
        When a cell fails (``ename`` and ``evalue`` hold the error).
    """
    import papermill as pm

    if Path(out_ipynb).resolve() == Path(ipynb).resolve():
        raise ValueError(f"refusing to execute {ipynb} in place; give another output path")
    Path(out_ipynb).parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(ipynb),
        str(out_ipynb),
        parameters=dict(parameters),
        cwd=str(cwd),
        kernel_name=kernel_name,
        progress_bar=progress,
        **options,
    )
