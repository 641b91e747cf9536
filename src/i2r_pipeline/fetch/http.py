"""Resumable, retried, checksum-verified HTTP(S) downloads.

Every download streams to ``<dest>.part``, resumes a partial file with an HTTP ``Range``
request, retries connection errors with exponential backoff, verifies the checksum and only
then moves the file to its destination (:mod:`.partfile`), so a destination file is always
complete. Nothing here touches the network at import time.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from i2r_utils.io import InputError, file_digest

from .partfile import (
    checksum_mismatches,
    commit_part,
    expected_checksums,
    new_folders,
    part_path,
    wait_before_retry,
)

logger = logging.getLogger(__name__)

__all__ = ["download"]

#: Seconds to wait for a connection and for each read.
TIMEOUT = 20.0
#: Retries after the first attempt.
RETRIES = 3
_USER_AGENT = "i2r-utils (+https://github.com/uhlerlab/image2reg re-implementation)"
_RETRY_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Errors after which a download is retried (resuming its partial file). A transient HTTP
# status or a truncated body is raised as ConnectionError.
_RETRYABLE = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    socket.timeout,
)
_MISMATCH_FIX = (
    ". The transfer may have been corrupted or the file changed upstream: rerun to download "
    "it again; if the mismatch persists, compare the expected checksum with the one published "
    "by the data provider (e.g. on the Zenodo record page) and pass that one."
)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    chunk_size: int = 1 << 20,
    progress: bool = True,
    timeout: float = TIMEOUT,
    retries: int = RETRIES,
    backoff: float = 1.0,
) -> Path:
    """Download a URL to a file: resumable, retried, checksum-verified and atomic.

    The body is streamed to ``dest + ".part"``. If that partial file exists (an interrupted
    earlier run), the download resumes with a ``Range: bytes=N-`` request; a server that
    ignores ``Range`` (answers 200 instead of 206) is handled by starting over. Connection
    errors, truncated bodies and transient HTTP statuses (408, 429, 5xx) are retried up to
    `retries` times with exponential backoff, keeping the partial file. Only after the
    checksum matches is the file moved to `dest` with :func:`os.replace`, so `dest` either
    does not exist or is complete.

    An existing `dest` whose checksum matches is not downloaded again. An existing `dest`
    whose checksum does not match is reported (a ``logging`` warning), removed and
    downloaded again. Without any checksum an existing `dest` is trusted as is.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    dest : str or os.PathLike
        Destination file; parent folders are created.
    sha256, md5 : str, optional
        Expected hex digests (a ``"md5:"`` prefix, as shown on Zenodo, is accepted). When
        both are given both are checked. When neither is given nothing is verified and the
        sha256 of the downloaded file is logged so that it can be pinned.
    chunk_size : int, default 1 MiB
        Bytes read per chunk.
    progress : bool, default True
        Show a tqdm progress bar.
    timeout : float, default :data:`TIMEOUT`
        Seconds to wait for the connection and for each read; a server that accepts the
        connection and never answers fails the attempt after this long (a warning says so
        and when the next attempt starts).
    retries : int, default :data:`RETRIES`
        Retries after the first attempt on connection errors (bounded): an unresponsive
        server ends the download after about ``(retries + 1) * timeout`` seconds plus the
        backoff.
    backoff : float, default 1.0
        Seconds before the first retry; doubled for each further retry.

    Returns
    -------
    pathlib.Path
        `dest`.

    Raises
    ------
    InputError
        `url` is not an HTTP(S) URL or a checksum is not a hex digest; the downloaded bytes
        do not match `sha256`/`md5` (nothing is left at `dest` and the partial file is
        removed); a non-retryable HTTP error (e.g. 404); or all retries failed (the partial
        file is kept so that a rerun resumes).
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(f"download() only fetches http(s) URLs, got {url!r}")
    dest = Path(dest)
    expected = expected_checksums(sha256, md5)
    with new_folders(dest.parent):  # removed again when nothing was received
        if _existing_is_complete(dest, expected, url):
            return dest
        part = part_path(dest)
        options = {"chunk_size": chunk_size, "progress": progress, "timeout": timeout}
        _fetch_with_retries(url, part, retries, backoff, **options)
        bad = checksum_mismatches(part, expected)
        if not expected:
            logger.info(
                "Downloaded %s without verification; its sha256 is %s (pass sha256=... to pin it)",
                dest,
                file_digest(part, "sha256"),
            )
        commit_part(part, dest, bad, url, fix=_MISMATCH_FIX)
    return dest


def _fetch_with_retries(url: str, part: Path, retries: int, backoff: float, **options) -> None:
    """Fetch `url` into `part`, retrying (and resuming) on connection errors."""
    attempt = 0
    while True:
        try:
            return _fetch_to_part(url, part, **options)
        except _RETRYABLE as exc:
            attempt += 1
            hint = ", or check your network connection and the URL"
            wait_before_retry(url, exc, attempt, retries, backoff, part, hint)


def _existing_is_complete(dest: Path, expected: dict[str, str], url: str) -> bool:
    """Say whether `dest` can be kept; remove it (with a warning) when it is corrupt."""
    if not dest.exists():
        return False
    if not expected:
        logger.info("%s exists and no checksum was given: not downloading it again", dest)
        return True
    bad = checksum_mismatches(dest, expected)
    if not bad:
        logger.info("%s exists with the expected checksum: not downloading it again", dest)
        return True
    algorithm, exp, got = bad[0]
    logger.warning(
        "%s exists but is corrupt or incomplete (%s %s, expected %s): downloading it again from %s",
        dest,
        algorithm,
        got,
        exp,
        url,
    )
    dest.unlink()
    return False


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` into ``(start, total)``."""
    if not value:
        return None, None
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _open(url: str, part: Path, timeout: float):
    """Request `url`, resuming `part`; return ``(response, offset)``.

    The response is None when the server says (HTTP 416) that `part` is already complete.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout), offset  # noqa: S310 (checked)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _parse_content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total == offset:  # the partial file is already complete
                return None, offset
            logger.info("Server refused to resume %s (HTTP 416): starting over", url)
            part.unlink()
            return _open(url, part, timeout)
        exc.close()
        if exc.code in _RETRY_HTTP_CODES:
            raise ConnectionError(f"HTTP {exc.code} {exc.reason}") from exc
        raise InputError(
            f"Could not download {url}: HTTP {exc.code} {exc.reason}. Check that the URL is "
            "correct and publicly accessible."
        ) from exc


def _resume_point(response, url: str, part: Path, offset: int) -> tuple[int, str, int | None]:
    """Return ``(offset, file mode, total size)`` for writing `response` into `part`."""
    length = response.headers.get("Content-Length")
    length = int(length) if length is not None and length.isdigit() else None
    if offset and response.status == 206:
        start, total = _parse_content_range(response.headers.get("Content-Range"))
        if start is not None and start != offset:
            logger.info("Server resumed %s at byte %d, not %d: starting over", url, start, offset)
            part.unlink()
            raise ConnectionError("server resumed at the wrong offset")
        if total is None and length is not None:
            total = offset + length
        return offset, "ab", total
    if offset:
        logger.info("Server ignored the Range request for %s: starting over", url)
    return 0, "wb", length


def _fetch_to_part(
    url: str, part: Path, *, chunk_size: int, progress: bool, timeout: float
) -> None:
    """Fetch `url` into `part`, resuming from its current size. Raises retryable errors."""
    response, offset = _open(url, part, timeout)
    if response is None:
        return
    with response:
        offset, mode, total = _resume_point(response, url, part, offset)
        received = offset
        with (
            open(part, mode) as fh,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[: -len(".part")],
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(chunk_size):
                fh.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")
    if total is not None and received > total:
        part.unlink()
        raise ConnectionError(f"received {received} bytes but {total} were announced")
