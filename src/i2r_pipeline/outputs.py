"""The declared outputs of a unit: removed before it reruns, checked for existence after.

A stage declares the files its units write (``Stage.outputs``, ``Stage.figures``); the
pipeline resolves them for each unit (``Unit.outputs``: an id that does not depend on where
the folders are, e.g. ``<results>/BRAF/result.json``, mapped to the file's path). The
executor (:func:`i2r_pipeline.executor.run_unit`)

* removes them before a unit runs, so that a unit that fails leaves no output of an earlier
  run behind for a later stage to read as if it were current (:func:`remove_outputs`);
* records in the done marker which of them the successful run wrote, with their checksums
  (:func:`output_digests`); a unit one of whose recorded outputs is missing (a deleted
  figure, a figures folder not written yet) is not complete and reruns
  (:func:`outputs_present`);
* keeps the run id of the previous identical run when the rerun rewrote the same data
  outputs, so the stages that read them stay complete (:func:`same_data`).
"""

from __future__ import annotations

from pathlib import Path

from i2r_utils.io import file_digest

__all__ = ["FIGURE_SUFFIXES", "remove_outputs", "output_digests", "outputs_present", "same_data"]

#: Suffixes of figure files: leaves that no stage reads (left out of :func:`same_data`).
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def remove_outputs(outputs: dict) -> list[str]:
    """Delete the declared outputs that exist (before a unit runs).

    Parameters
    ----------
    outputs : dict
        Output id -> path (``Unit.outputs``).

    Returns
    -------
    list of str
        Ids of the files removed.
    """
    removed = []
    for oid, path in outputs.items():
        if Path(path).is_file():
            Path(path).unlink()
            removed.append(oid)
    return removed


def output_digests(outputs: dict) -> dict:
    """Return the SHA-256 of each declared output that exists (after a successful run).

    Parameters
    ----------
    outputs : dict
        Output id -> path.

    Returns
    -------
    dict
        Output id -> hex digest, for the files that exist (a notebook may write some
        outputs only for some data, e.g. a figure that needs an annotation).
    """
    return {oid: file_digest(p) for oid, p in sorted(outputs.items()) if Path(p).is_file()}


def outputs_present(recorded, outputs: dict) -> bool:
    """Return whether every output a done marker recorded exists now.

    Parameters
    ----------
    recorded : dict or list or None
        The marker's ``outputs`` (ids, or ids -> digests); None for markers without one.
    outputs : dict
        Output id -> path of the unit now (ids it no longer declares are not checked).

    Returns
    -------
    bool
        False when a recorded output is missing.
    """
    return all(Path(outputs[oid]).is_file() for oid in (recorded or ()) if oid in outputs)


def same_data(before, after: dict) -> bool:
    """Return whether two runs wrote the same data outputs (figures left out).

    Parameters
    ----------
    before : dict or None
        Output id -> digest recorded by the previous run (None: unknown).
    after : dict
        Output id -> digest of this run.

    Returns
    -------
    bool
        True when both wrote the same non-figure outputs, at least one, with the same
        checksums.
    """
    if not isinstance(before, dict):
        return False

    def data(d):
        return {k: v for k, v in d.items() if not k.endswith(FIGURE_SUFFIXES)}

    return bool(data(after)) and data(before) == data(after)
