"""One main-job run per results folder (and data folder) at a time.

:func:`folder_lock` holds an exclusive ``flock`` on a lock file beside the folder for the
whole run; a second run on the same folder stops at once with one line naming the run that
holds it. The operating system releases the lock when the process ends, however it ends,
so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from . import PipelineError

__all__ = ["lock_path", "folder_lock"]


def lock_path(folder: str | os.PathLike) -> Path:
    """Return the lock file of ``folder``: ``.<name>.lock`` in its parent folder.

    Beside the folder, not in it, so that a stage that creates the folder finds it empty.
    """
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold the lock of ``folder`` for the duration of the ``with`` block.

    Parameters
    ----------
    folder : path-like
        The results or data folder of a run (need not exist yet).
    what : str
        How to name the folder in the error, e.g. ``"results folder"``.

    Yields
    ------
    pathlib.Path
        The lock file (it holds the pid, host and start time of the run).

    Raises
    ------
    PipelineError
        When another process holds the lock: names it and what to do.
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held open for the whole block
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                holder = json.loads(fh.read() or "{}")
            except ValueError:
                holder = {}
            who = (
                f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
                if holder
                else "another process"
            )
            raise PipelineError(
                f"another run ({who}) is using the {what} {folder}; wait for it to end, or "
                "give this run another folder."
            ) from None
        fh.seek(0)
        fh.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        fh.flush()
        yield path
    finally:
        fh.close()  # releases the lock
