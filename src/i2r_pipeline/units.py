"""One unit of a stage: its papermill run, its done marker and its declared outputs.

A *unit* is one papermill execution of one notebook with one set of parameters (a plate,
a fold, a held-out condition, or the whole data set). :func:`run_unit` keeps the same
contract whatever runs it (an executor of :mod:`i2r_pipeline.executor`, in this process or
a Dask worker): the unit is skipped when its *done marker*
(``<exec_dir>/<stage>.done.json``) holds the hash of its parameters, notebook source and
upstream digest and every output it recorded still exists; otherwise its declared outputs
are removed, the notebook is executed into ``<exec_dir>/<stage>.ipynb`` and the marker is
written atomically after success only. This module is the one place that writes and reads
done markers (:func:`marker_path`, :func:`read_marker`).

The marker also records :func:`package_digest`, the hash of the ``i2r_utils`` sources the
unit ran with. It is not part of the key (a change to the package does not rerun every
stage); :func:`made_with_other_package` tells which complete units predate the package
in use, and :meth:`UnitResult.describe` says so in the log line of a skipped unit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import i2r_utils
from i2r_utils.io import write_json

from .notebooks import execute
from .outputs import output_digests, outputs_present, remove_outputs, same_data

__all__ = [
    "QUIET_KERNEL",
    "Unit",
    "UnitResult",
    "marker_path",
    "read_marker",
    "upstream_digest",
    "unit_key",
    "is_complete",
    "error_message",
    "made_with_other_package",
    "package_digest",
    "run_unit",
]

#: Arguments of every unit's kernel: its own log is silent (e.g. "Kernel is running over TCP
#: without encryption" warnings, and "KeyboardInterrupt caught in kernel" when the SIGINT
#: that jupyter_client sends at every kernel shutdown lands on a busy machine); a failing
#: cell is reported through papermill (the unit's error and its executed notebook). Progress
#: bars show on a terminal only, so that logs get plain lines (``tqdm(disable=None)``).
QUIET_KERNEL = ("--IPKernelApp.log_level=CRITICAL",)


@dataclass(frozen=True)
class Unit:
    """One papermill run: a notebook, its parameters and where the executed copy goes.

    Attributes
    ----------
    stage : str
        Notebook name without extension, e.g. ``"06_translate_condition"``.
    label : str
        The unit within its stage, for reports: ``"dataset"``, a plate, ``"fold0"``, a
        condition or ``"summary"``.
    notebook : str
        The ``.ipynb`` to execute (with a kernelspec).
    source : str
        The notebook's source file (hashed together with the parameters).
    parameters : dict
        Parameters injected by papermill.
    exec_dir : str
        Folder of the executed notebook and of the done marker.
    cwd : str
        Working directory of the kernel (the notebooks folder, so relative defaults work).
    kernel_name : str
        Jupyter kernel to run the notebook with.
    upstream : str
        Digest of the done markers of the units this one reads from ("" for none); part
        of :func:`unit_key`.
    key_parameters : dict, optional
        The parameters as they enter :func:`unit_key` when they differ from ``parameters``:
        folders relative to the results or project folder (so a moved results folder stays
        complete), without parameters that only say where figures go. Default: ``parameters``.
    outputs : dict
        The files the unit writes: id (independent of where the folders are) -> path.
        Removed before the unit runs; a recorded one that is missing makes the unit
        incomplete (:mod:`i2r_pipeline.outputs`).
    """

    stage: str
    label: str
    notebook: str
    source: str
    parameters: dict = field(default_factory=dict)
    exec_dir: str = "."
    cwd: str = "."
    kernel_name: str = "python3"
    upstream: str = ""
    key_parameters: dict | None = None
    outputs: dict = field(default_factory=dict)

    @property
    def output(self) -> Path:
        """Path of the executed notebook (partially executed when the unit failed)."""
        return Path(self.exec_dir) / f"{self.stage}.ipynb"

    @property
    def marker(self) -> Path:
        """Path of the done marker, written after success only."""
        return marker_path(self.exec_dir, self.stage)


@dataclass
class UnitResult:
    """What became of a unit.

    Attributes
    ----------
    unit : Unit
        The unit.
    status : {"ran", "skipped", "failed"}
        ``skipped``: an identical run was already complete.
    seconds : float
        Wall time of the papermill run (0 when skipped).
    error : str or None
        ``"<ExceptionName>: <message>"`` when the unit failed.
    host : str
        Host name of the process that ran the unit.
    """

    unit: Unit
    status: str
    seconds: float = 0.0
    error: str | None = None
    host: str = ""

    @property
    def ok(self) -> bool:
        """True unless the unit failed."""
        return self.status != "failed"

    def describe(self) -> str:
        """One line for the log, e.g. ``ran in 3.2 s``."""
        if self.status == "skipped":
            older = made_with_other_package(self.unit)
            if older:
                return (
                    f"complete (skipped), made with another i2r_utils (package {older}, now "
                    f"{package_digest()}): rerun with --force for the package's changes"
                )
            return "complete (skipped)"
        if self.status == "ran":
            return f"ran in {self.seconds:.1f} s"
        return f"FAILED: {self.error} (notebook: {self.unit.output})"


def marker_path(exec_dir: str | os.PathLike, stage: str) -> Path:
    """Return the path of the done marker of ``stage``'s unit in ``exec_dir``."""
    return Path(exec_dir) / f"{stage}.done.json"


def read_marker(path: str | os.PathLike) -> dict:
    """Return a done marker (``key``, ``run``, ``seconds``, ``host``, ``outputs``).

    ``key``: :func:`unit_key`; ``run``: random id; ``outputs``: id -> SHA-256 of each
    declared output the run wrote. Empty when the marker at ``path``
    (:func:`marker_path`) is missing or unreadable.
    """
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def upstream_digest(units: Iterable[tuple[str, str, str | os.PathLike]]) -> str:
    """Return the digest of the done markers of the units another unit reads from.

    Parameters
    ----------
    units : iterable of (stage, label, exec_dir)
        The upstream units. A missing marker counts as such (the inputs may have been made
        outside the pipeline).

    Returns
    -------
    str
        SHA-256 over each unit's stage, label, marker key and run id; ``""`` for no units.
    """
    seen = []
    for stage, label, exec_dir in units:
        info = read_marker(marker_path(exec_dir, stage))
        seen.append([stage, label, info.get("key"), info.get("run")])
    if not seen:
        return ""
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()


def unit_key(unit: Unit) -> str:
    """Return the hash that identifies a complete run of ``unit``.

    Parameters
    ----------
    unit : Unit
        The unit.

    Returns
    -------
    str
        SHA-256 of the parameters (``unit.key_parameters`` when given), the notebook
        source and the upstream digest.
    """
    src = Path(unit.source).read_text()
    params = unit.parameters if unit.key_parameters is None else unit.key_parameters
    content = {"p": params, "src": src}
    if unit.upstream:
        content["up"] = unit.upstream
    payload = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@functools.cache
def package_digest() -> str:
    """Return the SHA-256 (12 hex) of the ``i2r_utils`` source files in use.

    Returns
    -------
    str
        Digest over the relative path and bytes of every ``.py`` file of the package.
    """
    root = Path(i2r_utils.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def made_with_other_package(unit: Unit) -> str | None:
    """Return the package digest a complete unit was made with, if not the one in use.

    Parameters
    ----------
    unit : Unit
        The unit.

    Returns
    -------
    str or None
        The digest recorded in the unit's done marker when it differs from
        :func:`package_digest`; None when they agree or the marker records none.
    """
    recorded = read_marker(unit.marker).get("package")
    return recorded if recorded and recorded != package_digest() else None


def is_complete(unit: Unit) -> bool:
    """Return whether ``unit`` has a done marker matching it and its outputs are all there.

    Parameters
    ----------
    unit : Unit
        The unit.

    Returns
    -------
    bool
        True when an identical run already finished successfully and every output it
        recorded still exists.
    """
    marker = read_marker(unit.marker)
    key = marker.get("key")
    try:
        same = key is not None and key == unit_key(unit)
    except OSError:  # the notebook source is gone
        return False
    return same and outputs_present(marker.get("outputs"), unit.outputs)


def error_message(exc: BaseException) -> str:
    """Short ``Name: message`` of an exception (papermill's cell errors unwrapped)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def run_unit(unit: Unit, force: bool = False) -> UnitResult:
    """Execute one unit with papermill unless an identical run is already complete.

    Runs in whatever process calls it: this one for :class:`LocalExecutor`, a Dask worker
    process for :class:`DaskExecutor`. The notebook's kernel is a subprocess either way.

    Parameters
    ----------
    unit : Unit
        The unit.
    force : bool
        Run even when the done marker says the unit is complete.

    Returns
    -------
    UnitResult
        Never raises for a failing notebook: the error is in the result, the partially
        executed notebook at ``unit.output``, the done marker and the unit's declared
        outputs are left absent (removed before the run).
    """
    host = socket.gethostname()
    if not force and is_complete(unit):
        return UnitResult(unit, "skipped", host=host)
    key = unit_key(unit)
    Path(unit.exec_dir).mkdir(parents=True, exist_ok=True)
    previous = read_marker(unit.marker)
    unit.marker.unlink(missing_ok=True)
    remove_outputs(unit.outputs)
    t0 = time.perf_counter()
    try:
        execute(
            Path(unit.notebook),
            unit.output,
            unit.parameters,
            cwd=Path(unit.cwd),
            progress=False,
            kernel_name=unit.kernel_name,
            extra_arguments=list(QUIET_KERNEL),
        )
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none propagates
        return UnitResult(unit, "failed", time.perf_counter() - t0, error_message(exc), host)
    except KeyboardInterrupt:  # Ctrl-C: what the interrupted run wrote is not an output
        remove_outputs(unit.outputs)
        raise
    seconds = time.perf_counter() - t0
    digests = output_digests(unit.outputs)
    run = uuid.uuid4().hex
    if not force and previous.get("key") == key and same_data(previous.get("outputs"), digests):
        run = previous["run"]  # rewrote missing outputs, same data: readers stay complete
    marker = {"key": key, "run": run, "seconds": round(seconds, 2), "host": host,
              "package": package_digest()}  # fmt: skip
    write_json({**marker, "outputs": digests}, unit.marker)  # atomically, after success only
    return UnitResult(unit, "ran", seconds, host=host)
