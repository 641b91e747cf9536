"""Resumable downloads through a ``<dest>.part`` file, shared by the HTTP and S3 fetchers.

A download streams into ``<dest>.part``; an interrupted run leaves that file so that the
next run resumes it. Only once its checksum matches is it renamed to ``<dest>`` (the one
:func:`os.replace` that commits a download), so a destination file is always complete. The
``.part`` file is deliberately not an :func:`i2r_utils.io.atomic_path` temporary file: that
one is removed on failure, which would throw the resumable bytes away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from i2r_utils.io import InputError, file_digest

logger = logging.getLogger(__name__)

__all__ = [
    "checksum_mismatches",
    "commit_part",
    "expected_checksums",
    "new_folders",
    "part_path",
    "wait_before_retry",
]


def part_path(dest: Path) -> Path:
    """Return the partial file ``<dest>.part`` that a download of `dest` writes to.

    Parameters
    ----------
    dest : pathlib.Path
        The destination file.

    Returns
    -------
    pathlib.Path
        ``<dest>.part`` in the same folder.
    """
    return dest.with_name(dest.name + ".part")


def expected_checksums(sha256: str | None, md5: str | None) -> dict[str, str]:
    """Normalise expected checksums to ``{algorithm: lower-case hex digest}``.

    Parameters
    ----------
    sha256, md5 : str, optional
        Hex digests; a ``"md5:"`` (or ``"sha256:"``) prefix, as Zenodo shows them, is
        accepted. Missing or empty values are left out.

    Returns
    -------
    dict
        The given checksums.

    Raises
    ------
    InputError
        A value is not a hex digest.
    """
    expected = {}
    for name, value in (("sha256", sha256), ("md5", md5)):
        if value:
            value = value.strip().lower()
            if value.startswith(f"{name}:"):  # Zenodo shows checksums as "md5:<hex>"
                value = value[len(name) + 1 :]
            if not re.fullmatch(r"[0-9a-f]+", value):
                raise InputError(f"{name} checksum {value!r} is not a hex digest")
            expected[name] = value
    return expected


def checksum_mismatches(path: Path, expected: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Return ``(algorithm, expected, received)`` for each checksum of `path` that differs.

    Parameters
    ----------
    path : pathlib.Path
        The file to check.
    expected : mapping
        ``{algorithm: hex digest}`` as returned by :func:`expected_checksums`.

    Returns
    -------
    list of tuple
        Empty when every checksum matches (or none is expected).
    """
    out = []
    for algorithm, value in expected.items():
        got = file_digest(path, algorithm)
        if got != value:
            out.append((algorithm, value, got))
    return out


def commit_part(
    part: Path,
    dest: Path,
    bad: list[tuple[str, str, str]],
    source: str,
    note: str = "",
    fix: str = ": rerun to download it again.",
) -> None:
    """Move a verified partial file into place, or delete it and report the mismatch.

    Parameters
    ----------
    part : pathlib.Path
        The downloaded ``.part`` file.
    dest : pathlib.Path
        Its destination.
    bad : list of tuple
        The mismatches found (:func:`checksum_mismatches`); empty when it verified.
    source : str
        The URL or ``s3://`` address downloaded, named in the error.
    note : str, optional
        Text after the mismatch details (e.g. what the checksum is).
    fix : str, optional
        The end of the message: how to repair it.

    Raises
    ------
    InputError
        `bad` is not empty; `part` was deleted and nothing was written to `dest`.
    """
    if bad:
        part.unlink()
        detail = "; ".join(f"expected {a} {e}, received {g}" for a, e, g in bad)
        raise InputError(
            f"Checksum mismatch for {source}: {detail}{note}. The download was deleted and "
            f"nothing was written to {dest}{fix}"
        )
    os.replace(part, dest)


def wait_before_retry(
    source: str,
    exc: BaseException,
    attempt: int,
    retries: int,
    backoff: float,
    part: Path,
    hint: str = "",
) -> None:
    """Sleep before retry number `attempt`, or give up once `retries` are used.

    The delay is ``backoff * 2 ** (attempt - 1)`` seconds.

    Parameters
    ----------
    source : str
        What is downloaded, named in the log and the error.
    exc : BaseException
        The error of the failed attempt.
    attempt : int
        Number of the retry about to be made (1 for the first).
    retries : int
        Retries allowed after the first attempt.
    backoff : float
        Seconds before the first retry.
    part : pathlib.Path
        The partial file, kept for the next run when it holds bytes (an empty one is
        removed; the message says which).
    hint : str, optional
        Further advice appended to the error message.

    Raises
    ------
    InputError
        All retries failed (chained to `exc`).
    """
    if attempt > retries:
        size = part.stat().st_size if part.is_file() else 0
        if size:
            kept = f"The partial file {part} ({size} bytes) was kept: rerun to resume{hint}."
        else:
            part.unlink(missing_ok=True)
            kept = f"Nothing was received or kept: rerun once the source can be reached{hint}."
        raise InputError(
            f"Could not download {source} after {retries + 1} attempts (last error: {exc!r}). "
            + kept
        ) from exc
    delay = backoff * 2 ** (attempt - 1)
    logger.warning(
        "Download of %s failed (%r); retry %d/%d in %.1f s (resuming)",
        source,
        exc,
        attempt,
        retries,
        delay,
    )
    time.sleep(delay)


@contextlib.contextmanager
def new_folders(folder: Path) -> Iterator[Path]:
    """Create ``folder`` (and its parents); remove the ones made here if the block fails empty.

    A failed download then leaves no empty destination folder behind; one that holds a
    partial file (to resume) stays.

    Parameters
    ----------
    folder : pathlib.Path
        The folder to create.

    Yields
    ------
    pathlib.Path
        ``folder``.

    Raises
    ------
    InputError
        The folder cannot be created (a file is in the way, no permission).
    """
    missing, up = [], folder.absolute()
    while not up.exists() and up != up.parent:
        missing.append(up)
        up = up.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the folder {folder} ({exc.strerror}); is a file in the way? Pass "
            "another destination."
        ) from None
    try:
        yield folder
    except BaseException:
        for made in missing:  # deepest first; stops at the first one that is not empty
            try:
                made.rmdir()
            except OSError:
                break
        raise
