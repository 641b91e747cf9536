"""Fetch the public data of Image2Reg: resumable, checksummed downloads and safe extraction.

Two public sources are covered:

* the Image2Reg demo data on Zenodo (DOI ``10.5281/zenodo.8354979``), one zip archive with the
  layout ``test_data/sample_data/<GENE>/{raw,unet_masks}/...`` and
  ``test_data/UNKNOWN/images/{raw,unet_masks}/plate/...``
  (:func:`fetch_image2reg_demo`, :func:`read_image2reg_layout`);
* the raw images of Rohban et al. 2017 (``cpg0017-rohban-pathways``) in the public, anonymous
  S3 bucket ``cellpainting-gallery`` of the Cell Painting Gallery (:func:`fetch_cpg_images`).

Every download streams to ``<dest>.part``, resumes a partial file with an HTTP ``Range``
request, retries connection errors with exponential backoff, verifies the checksum and only
then moves the file to its destination with :func:`os.replace`, so a destination file is
always complete. Nothing here touches the network at import time.

``boto3`` is only needed by :func:`fetch_cpg_images` and is imported lazily.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from tqdm import tqdm

logger = logging.getLogger(__name__)

__all__ = [
    "CPG_BUCKET",
    "CPG_REGION",
    "DEFAULT_CHANNEL_MAP",
    "DEFAULT_FILENAME_PATTERNS",
    "IMAGE2REG_DEMO_BASE_URL",
    "IMAGE2REG_DEMO_DOI",
    "IMAGE2REG_DEMO_FILENAME",
    "IMAGE_EXTENSIONS",
    "ROHBAN_BATCH",
    "ROHBAN_IMAGE_PREFIX",
    "ROHBAN_PLATEMAP_KEY",
    "ROHBAN_PLATES",
    "ChecksumError",
    "DownloadError",
    "LayoutError",
    "UnsafeArchiveError",
    "download",
    "extract",
    "fetch_cpg_images",
    "fetch_image2reg_demo",
    "file_checksum",
    "join_platemap",
    "main",
    "make_s3_client",
    "normalize_well",
    "parse_image_names",
    "read_image2reg_layout",
    "read_platemap",
]

# --------------------------------------------------------------------------------------------
# Sources. Nothing below is contacted unless a fetch function is called.
# --------------------------------------------------------------------------------------------

#: DOI of the Zenodo record with the Image2Reg demo data.
IMAGE2REG_DEMO_DOI = "10.5281/zenodo.8354979"
#: Base URL of the files of that record; ``<base>/<filename>`` is the download link.
IMAGE2REG_DEMO_BASE_URL = "https://zenodo.org/records/8354979/files"
#: The archive of the demo data in that record.
IMAGE2REG_DEMO_FILENAME = "test_data.zip"

#: The public Cell Painting Gallery bucket (anonymous access, AWS Registry of Open Data).
CPG_BUCKET = "cellpainting-gallery"
#: Region of :data:`CPG_BUCKET`.
CPG_REGION = "us-east-1"
#: Batch of the Rohban et al. 2017 plates in ``cpg0017-rohban-pathways``.
ROHBAN_BATCH = "2013_10_11_SIGMA2_Pilot"
#: Plate barcodes of that batch.
ROHBAN_PLATES = ("41744", "41754", "41755", "41756", "41757")
#: Key prefix of one plate's images; ``{batch}`` and ``{plate}`` are filled in. This follows the
#: Cell Painting Gallery convention ``<dataset>/<source>/images/<batch>/images/<plate>/``.
ROHBAN_IMAGE_PREFIX = "cpg0017-rohban-pathways/broad/images/{batch}/images/{plate}/"
#: Key of the plate map (tab separated, columns ``well_position`` and ``gene_name``) shared by
#: all five plates (``barcode_platemap.csv`` maps each plate to ``TAORF_REFERENCE_SET``).
ROHBAN_PLATEMAP_KEY = (
    "cpg0017-rohban-pathways/broad/workspace/metadata/platemaps/"
    "2013_10_11_SIGMA2_Pilot/platemap/TAORF_REFERENCE_SET.txt"
)

#: File name patterns tried in order by :func:`parse_image_names`. Each names the groups
#: ``well`` (or ``row`` and ``col``), ``site`` and ``channel``:
#:
#: * ImageXpress (Rohban 2017, Broad): ``<anything>_<well>_s<site>_w<channel><GUID>.tif``,
#:   e.g. ``41744_a01_s1_w1A3C5...tif``; thumbnails (``_w1_thumb...``) do not match.
#: * Opera Phenix / CellProfiler style (JUMP): ``r01c01f01p01-ch1sk1fk1fl1.tiff``.
DEFAULT_FILENAME_PATTERNS = (
    r"_(?P<well>[A-Pa-p]\d{1,2})_s(?P<site>\d+)_w(?P<channel>\d)[^_/]*\.tiff?$",
    r"^r(?P<row>\d{2})c(?P<col>\d{2})f(?P<site>\d{2})p\d{2}-ch(?P<channel>\d+)sk\d+fk\d+fl\d+\.tiff?$",
)
#: Stain name -> channel token in the file name. ``w1`` is Hoechst (DNA) in the Broad
#: ImageXpress Cell Painting protocol used by Rohban et al. 2017 (JUMP Phenix plates use
#: ``ch5`` for DNA: pass ``channel="5"`` there).
DEFAULT_CHANNEL_MAP = {"DNA": "1", "ER": "2", "RNA": "3", "AGP": "4", "Mito": "5"}

#: File extensions counted as images by :func:`read_image2reg_layout`.
IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

_USER_AGENT = "i2r-utils (+https://github.com/uhlerlab/image2reg re-implementation)"
_RETRY_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class DownloadError(RuntimeError):
    """A download failed for good (HTTP error, or retries exhausted)."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected checksum."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the destination directory."""


class LayoutError(ValueError):
    """A data folder does not follow the expected Image2Reg layout."""


class _Incomplete(OSError):
    """The connection closed before the announced number of bytes arrived (retryable)."""


class _RetryableHTTP(OSError):
    """A transient HTTP status (5xx, 429, ...) (retryable)."""


_RETRYABLE = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    _Incomplete,
    _RetryableHTTP,
)


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


def file_checksum(
    path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20
) -> str:
    """Return the hex digest of a file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    algorithm : str, default "sha256"
        Any :func:`hashlib.new` algorithm name, e.g. ``"md5"``.
    chunk_size : int, default 1 MiB
        Bytes read at a time.

    Returns
    -------
    str
        Lower-case hex digest.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _expected_checksums(sha256: str | None, md5: str | None) -> dict[str, str]:
    expected = {}
    for name, value in (("sha256", sha256), ("md5", md5)):
        if value:
            value = value.strip().lower()
            if value.startswith(f"{name}:"):  # Zenodo shows checksums as "md5:<hex>"
                value = value[len(name) + 1 :]
            if not re.fullmatch(r"[0-9a-f]+", value):
                raise ValueError(f"{name} checksum {value!r} is not a hex digest")
            expected[name] = value
    return expected


def _mismatches(path: Path, expected: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Return ``(algorithm, expected, received)`` for each checksum that does not match."""
    out = []
    for algorithm, value in expected.items():
        got = file_checksum(path, algorithm)
        if got != value:
            out.append((algorithm, value, got))
    return out


# --------------------------------------------------------------------------------------------
# HTTP download
# --------------------------------------------------------------------------------------------


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    chunk_size: int = 1 << 20,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = 5,
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
    timeout : float, default 60
        Socket timeout in seconds for connecting and for each read.
    retries : int, default 5
        Retries after the first attempt on connection errors (bounded).
    backoff : float, default 1.0
        Seconds before the first retry; doubled for each further retry.

    Returns
    -------
    pathlib.Path
        `dest`.

    Raises
    ------
    ChecksumError
        The downloaded bytes do not match `sha256`/`md5`; nothing is left at `dest` and the
        partial file is removed.
    DownloadError
        A non-retryable HTTP error (e.g. 404), or all retries failed (the partial file is
        kept so that a rerun resumes).
    ValueError
        `url` is not an HTTP(S) URL or a checksum is not a hex digest.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"download() only fetches http(s) URLs, got {url!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = _expected_checksums(sha256, md5)

    if dest.exists():
        if not expected:
            logger.info("%s exists and no checksum was given: not downloading it again", dest)
            return dest
        bad = _mismatches(dest, expected)
        if not bad:
            logger.info("%s exists with the expected checksum: not downloading it again", dest)
            return dest
        algorithm, exp, got = bad[0]
        logger.warning(
            "%s exists but is corrupt or incomplete (%s %s, expected %s): downloading it again "
            "from %s",
            dest,
            algorithm,
            got,
            exp,
            url,
        )
        dest.unlink()

    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch_to_part(url, part, chunk_size=chunk_size, progress=progress, timeout=timeout)
            break
        except DownloadError:
            raise
        except _RETRYABLE as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"Could not download {url} after {retries + 1} attempts (last error: "
                    f"{exc!r}). The partial file {part} was kept: rerun to resume, or check "
                    "your network connection and the URL."
                ) from exc
            delay = backoff * 2 ** (attempt - 1)
            logger.warning(
                "Download of %s failed (%r); retry %d/%d in %.1f s (resuming)",
                url,
                exc,
                attempt,
                retries,
                delay,
            )
            time.sleep(delay)

    bad = _mismatches(part, expected)
    if bad:
        part.unlink()
        detail = "; ".join(f"expected {a} {e}, received {g}" for a, e, g in bad)
        raise ChecksumError(
            f"Checksum mismatch for {url}: {detail}. The download was deleted and nothing was "
            f"written to {dest}. The transfer may have been corrupted or the file changed "
            "upstream: rerun to download it again; if the mismatch persists, compare the "
            "expected checksum with the one published by the data provider (e.g. on the Zenodo "
            "record page) and pass that one."
        )
    if not expected:
        logger.info(
            "Downloaded %s without verification; its sha256 is %s (pass sha256=... to pin it)",
            dest,
            file_checksum(part, "sha256"),
        )
    os.replace(part, dest)
    return dest


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


def _fetch_to_part(
    url: str, part: Path, *, chunk_size: int, progress: bool, timeout: float
) -> None:
    """Fetch `url` into `part`, resuming from its current size. Raises retryable errors."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _parse_content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total == offset:  # the partial file is already complete
                return
            logger.info("Server refused to resume %s (HTTP 416): starting over", url)
            part.unlink()
            return _fetch_to_part(
                url, part, chunk_size=chunk_size, progress=progress, timeout=timeout
            )
        exc.close()
        if exc.code in _RETRY_HTTP_CODES:
            raise _RetryableHTTP(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(
            f"Could not download {url}: HTTP {exc.code} {exc.reason}. Check that the URL is "
            "correct and publicly accessible."
        ) from exc

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if offset and response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start is not None and start != offset:
                logger.info(
                    "Server resumed %s at byte %d, not %d: starting over", url, start, offset
                )
                part.unlink()
                raise _Incomplete("server resumed at the wrong offset")
            mode = "ab"
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                logger.info("Server ignored the Range request for %s: starting over", url)
            offset, mode, total = 0, "wb", length

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
        raise _Incomplete(f"connection closed after {received} of {total} bytes")
    if total is not None and received > total:
        part.unlink()
        raise _Incomplete(f"received {received} bytes but {total} were announced")


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------


def _unsafe_name(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return True
    return ".." in PurePosixPath(normalized).parts


def _check_members(archive: Path) -> str:
    """Validate every member name of `archive`; return ``"zip"`` or ``"tar"``."""

    def refuse(name: str, why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"Refusing to extract {archive}: member {name!r} {why}. Nothing was extracted. "
            "The archive is malformed or malicious: do not unpack it, download it again from "
            "the original source."
        )

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if _unsafe_name(info.filename):
                    raise refuse(info.filename, "has an absolute path or '..' (path traversal)")
        return "zip"
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            for member in tf.getmembers():
                if _unsafe_name(member.name):
                    raise refuse(member.name, "has an absolute path or '..' (path traversal)")
                if member.issym() or member.islnk():
                    link = member.linkname.replace("\\", "/")
                    base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
                    target = posixpath.normpath(str(base / link))
                    if link.startswith("/") or target == ".." or target.startswith("../"):
                        raise refuse(member.name, f"links outside the destination ({link!r})")
                if member.isdev():
                    raise refuse(member.name, "is a device or FIFO")
        return "tar"
    raise ValueError(f"{archive} is neither a zip nor a tar archive (.tar, .tar.gz, .tgz, ...)")


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _extraction_marker(archive: Path, dest_dir: Path) -> Path:
    return dest_dir / f".{archive.name}.extracted.json"


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a zip or tar (optionally gz/bz2/xz compressed) archive atomically and safely.

    All members are checked first: absolute paths, ``..`` components, links pointing outside
    the destination and device files are refused with :class:`UnsafeArchiveError` before
    anything is written. The archive is then unpacked into a temporary folder beside
    `dest_dir` and moved into place with :func:`os.replace`: when `dest_dir` does not exist
    the whole folder is renamed in one step; otherwise each top-level entry of the archive is
    renamed into `dest_dir`. A completion marker ``.<archive name>.extracted.json`` is written
    last, so an interrupted run leaves no marker and is redone; a rerun after a complete
    extraction of the same archive (same size) does nothing.

    Parameters
    ----------
    archive : str or os.PathLike
        The ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2`` or ``.tar.xz`` file.
    dest_dir : str or os.PathLike
        Folder that receives the archive's top-level entries.

    Returns
    -------
    pathlib.Path
        `dest_dir`.

    Raises
    ------
    UnsafeArchiveError
        A member would be written outside `dest_dir`.
    FileExistsError
        A top-level entry of the archive already exists in `dest_dir` and was not produced by
        an earlier extraction of this archive (it is never overwritten).
    ValueError
        `archive` is not a zip or tar archive.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    size = archive.stat().st_size
    marker = _extraction_marker(archive, dest_dir)
    pending = dest_dir / f".{archive.name}.extracting.json"
    previous: list[str] = []
    if marker.exists():
        info = _read_json(marker)
        if info.get("size") == size:
            logger.info("%s was already extracted to %s: nothing to do", archive.name, dest_dir)
            return dest_dir
        logger.info("%s changed since it was extracted: extracting it again", archive)
        previous = list(info.get("entries", []))

    kind = _check_members(archive)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.extract-", dir=dest_dir.parent))
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive, "r:*") as tf:
                tf.extractall(tmp, filter="data")
        entries = sorted(os.listdir(tmp))
        record = {"archive": archive.name, "size": size, "entries": entries}

        if not dest_dir.exists():
            _write_json(tmp / marker.name, record)
            os.replace(tmp, dest_dir)
            return dest_dir

        ours = set(previous) | set(_read_json(pending).get("entries", []))
        clashes = [e for e in entries if e not in ours and os.path.lexists(dest_dir / e)]
        if clashes:
            raise FileExistsError(
                f"Cannot extract {archive.name} into {dest_dir}: {', '.join(clashes)} already "
                "exist(s) there and were not created by extracting this archive. Move them away "
                "or extract into another folder."
            )
        _write_json(pending, {"entries": sorted(ours | set(entries))})
        for entry in entries:
            target = dest_dir / entry
            if os.path.lexists(target):
                _remove(target)
            os.replace(tmp / entry, target)
        _write_json(marker, record)
        pending.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir


# --------------------------------------------------------------------------------------------
# Image2Reg demo data (Zenodo)
# --------------------------------------------------------------------------------------------


def fetch_image2reg_demo(
    dest_dir: str | os.PathLike,
    base_url: str = IMAGE2REG_DEMO_BASE_URL,
    filename: str = IMAGE2REG_DEMO_FILENAME,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    keep_archive: bool = True,
    **download_kwargs: Any,
) -> Path:
    """Download and unpack the Image2Reg demo data from Zenodo (DOI 10.5281/zenodo.8354979).

    Downloads ``<base_url>/<filename>`` to ``dest_dir/<filename>`` with :func:`download` and
    unpacks it into `dest_dir` with :func:`extract`, which yields ``dest_dir/test_data/...``.
    Read the result with :func:`read_image2reg_layout`. Rerunning after a complete run does
    nothing (no network access).

    No checksum is built in because none could be verified when this was written: pass the
    one shown on the Zenodo record page (https://doi.org/10.5281/zenodo.8354979, "md5:...")
    as `md5` (or a sha256 you computed) to have the download verified. Without one the sha256
    of the downloaded archive is logged so that it can be pinned.

    Parameters
    ----------
    dest_dir : str or os.PathLike
        Folder for the archive and its contents.
    base_url : str, default IMAGE2REG_DEMO_BASE_URL
        URL of the record's files folder (tests point it at a local server).
    filename : str, default "test_data.zip"
        The archive in that folder.
    sha256, md5 : str, optional
        Expected checksum of the archive.
    progress : bool, default True
        Show a progress bar.
    keep_archive : bool, default True
        Keep the archive after unpacking (set False to save disk space).
    **download_kwargs
        Passed to :func:`download` (``timeout``, ``retries``, ``backoff``, ``chunk_size``).

    Returns
    -------
    pathlib.Path
        `dest_dir`, which contains ``test_data/``.
    """
    dest_dir = Path(dest_dir)
    archive = dest_dir / filename
    marker = _extraction_marker(archive, dest_dir)
    if marker.exists() and not archive.exists():
        logger.info("Image2Reg demo data already in %s: nothing to do", dest_dir)
        return dest_dir
    url = f"{base_url.rstrip('/')}/{urllib.parse.quote(filename)}"
    download(url, archive, sha256=sha256, md5=md5, progress=progress, **download_kwargs)
    extract(archive, dest_dir)
    if not keep_archive:
        archive.unlink()
    return dest_dir


def _list_images(folder: Path, extensions: Sequence[str]) -> list[PurePosixPath]:
    """Image files below `folder` (recursive, hidden files skipped) as sorted relative paths."""
    if not folder.is_dir():
        return []
    exts = {e.lower() for e in extensions}
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in exts:
                rel = Path(dirpath, name).relative_to(folder)
                out.append(PurePosixPath(rel.as_posix()))
    return sorted(out)


def read_image2reg_layout(
    root: str | os.PathLike,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    include_unknown: bool | None = None,
) -> pd.DataFrame:
    """Index the raw images and nuclear masks of the Image2Reg demo layout.

    The layout (``root`` may be the folder containing ``test_data`` or ``test_data`` itself)::

        test_data/sample_data/<GENE>/raw/...                 raw chromatin images
        test_data/sample_data/<GENE>/unet_masks/...          masks, same relative path
        test_data/UNKNOWN/images/raw/plate/...               images of an unknown condition
        test_data/UNKNOWN/images/unet_masks/plate/...        their masks

    Every raw image must have a mask with exactly the same file name (and sub-folder) in the
    corresponding mask folder; Image2Reg pairs them by name. Masks without a raw image are
    ignored.

    Parameters
    ----------
    root : str or os.PathLike
        Folder containing ``test_data/`` (e.g. the return value of
        :func:`fetch_image2reg_demo`), or the ``test_data`` folder.
    extensions : sequence of str, default IMAGE_EXTENSIONS
        File extensions counted as images (case-insensitive).
    include_unknown : bool or None, default None
        ``None``: include ``UNKNOWN`` if its raw folder holds images, skip it if empty (the
        demo ships it empty for the user to fill). ``True``: it must hold images. ``False``:
        skip it.

    Returns
    -------
    pandas.DataFrame
        One row per raw image with ``Metadata_Condition`` (gene or ``"UNKNOWN"``),
        ``Metadata_ImagePath`` and ``Metadata_MaskPath`` (absolute paths as str), sorted by
        condition and path.

    Raises
    ------
    LayoutError
        No ``sample_data``/``UNKNOWN`` folder, an empty raw folder, an empty mask folder, or a
        raw image without an equally named mask. The message names the folder or file and
        the fix.
    """
    root = Path(root).resolve()
    base = root / "test_data" if (root / "test_data").is_dir() else root
    sample = base / "sample_data"
    unknown = base / "UNKNOWN"
    if not sample.is_dir() and not unknown.is_dir():
        raise LayoutError(
            f"{root} does not contain the Image2Reg layout: expected test_data/sample_data/<GENE>/"
            "{raw,unet_masks}/ and/or test_data/UNKNOWN/images/{raw,unet_masks}/plate/. Run "
            "fetch_image2reg_demo() or point `root` at the folder that contains test_data/."
        )

    groups: list[tuple[str, Path, Path, bool]] = []
    if sample.is_dir():
        for gene_dir in sorted(
            p for p in sample.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            groups.append((gene_dir.name, gene_dir / "raw", gene_dir / "unet_masks", True))
    if unknown.is_dir() and include_unknown is not False:
        images = unknown / "images"
        groups.append(
            (
                "UNKNOWN",
                images / "raw" / "plate",
                images / "unet_masks" / "plate",
                bool(include_unknown),
            )
        )
    if not groups:
        raise LayoutError(f"{sample} contains no <GENE> folders and UNKNOWN was excluded")

    exts = "/".join(extensions)
    rows = []
    for condition, raw_dir, mask_dir, required in groups:
        raws = _list_images(raw_dir, extensions)
        if not raws:
            if not required:
                logger.info("%s holds no images: skipping the UNKNOWN condition", raw_dir)
                continue
            raise LayoutError(
                f"The raw image folder {raw_dir} of condition {condition} is empty or missing (no "
                f"{exts} files). Put the raw chromatin images of {condition} there, or remove the "
                "condition's folder."
            )
        masks = _list_images(mask_dir, extensions)
        if not masks:
            raise LayoutError(
                f"The mask folder {mask_dir} of condition {condition} is empty or missing (no "
                f"{exts} files), but {raw_dir} holds {len(raws)} raw images. Put one nuclear "
                "segmentation mask per raw image there, named exactly like the raw image."
            )
        mask_set = set(masks)
        missing = [r for r in raws if r not in mask_set]
        if missing:
            first = missing[0]
            raise LayoutError(
                f"The raw image {raw_dir / first} has no mask: expected {mask_dir / first} (the "
                f"same file name in {mask_dir}). {len(missing)} of {len(raws)} raw images of "
                f"{condition} lack a mask. Add the masks with exactly the raw images' file names, "
                "or remove the raw images that have none."
            )
        for rel in raws:
            rows.append((condition, str(raw_dir / rel), str(mask_dir / rel)))
    if not rows:
        raise LayoutError(f"No images found under {base}")
    return pd.DataFrame(
        rows, columns=["Metadata_Condition", "Metadata_ImagePath", "Metadata_MaskPath"]
    )


# --------------------------------------------------------------------------------------------
# Plate maps and image file names
# --------------------------------------------------------------------------------------------


def normalize_well(well: Any) -> str:
    """Normalise a well name to upper-case row letter(s) and two-digit column, e.g. ``A01``.

    Parameters
    ----------
    well : object
        ``"a01"``, ``"A1"``, ``"A01"``, ``"AA12"`` ...

    Returns
    -------
    str
        The normalised name; strings that do not look like a well are returned stripped and
        upper-cased.
    """
    text = str(well).strip()
    m = re.fullmatch(r"([A-Za-z]{1,2})0*(\d{1,3})", text)
    if not m:
        return text.upper()
    return f"{m.group(1).upper()}{int(m.group(2)):02d}"


def _row_letters(row: int) -> str:
    letters = ""
    while row > 0:
        row, rem = divmod(row - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def parse_image_names(
    keys: Iterable[str], patterns: Sequence[str] = DEFAULT_FILENAME_PATTERNS
) -> pd.DataFrame:
    """Parse well, site and channel out of image file names.

    Each pattern is a regular expression searched in the file name (the part after the last
    ``/``) with named groups ``well`` (or ``row`` and ``col``, 1-based numbers), ``site`` and
    ``channel``; the first pattern that matches wins (matching is case-insensitive). See
    :data:`DEFAULT_FILENAME_PATTERNS` for the ImageXpress
    (``<plate>_<well>_s<site>_w<channel><GUID>.tif``) and Phenix
    (``r01c01f01p01-ch1sk1fk1fl1.tiff``) defaults. Names that match no pattern (thumbnails,
    CSV files, ...) are skipped.

    Parameters
    ----------
    keys : iterable of str
        Object keys or file paths.
    patterns : sequence of str, default DEFAULT_FILENAME_PATTERNS
        Regular expressions as described above.

    Returns
    -------
    pandas.DataFrame
        Columns ``Metadata_ObjectKey`` (the input), ``Metadata_Well`` (normalised, e.g.
        ``A01``), ``Metadata_Site`` (int) and ``Metadata_Channel`` (str, leading zeros removed).
    """
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    rows = []
    for key in keys:
        name = str(key).rsplit("/", 1)[-1]
        for rx in compiled:
            m = rx.search(name)
            if not m:
                continue
            groups = m.groupdict()
            if groups.get("well"):
                well = normalize_well(groups["well"])
            else:
                well = f"{_row_letters(int(groups['row']))}{int(groups['col']):02d}"
            rows.append((str(key), well, int(groups["site"]), str(int(groups["channel"]))))
            break
    return pd.DataFrame(
        rows, columns=["Metadata_ObjectKey", "Metadata_Well", "Metadata_Site", "Metadata_Channel"]
    )


def read_platemap(path: str | os.PathLike) -> pd.DataFrame:
    """Read a plate map (CSV or TSV) with every column as text.

    Parameters
    ----------
    path : str or os.PathLike
        ``.txt``/``.tsv`` files are read as tab separated, ``.csv`` as comma separated, others
        with the separator sniffed.

    Returns
    -------
    pandas.DataFrame
        The plate map; ``NA`` and empty cells stay strings.
    """
    suffix = Path(path).suffix.lower()
    sep = {".txt": "\t", ".tsv": "\t", ".csv": ","}.get(suffix)
    kwargs: dict[str, Any] = {"sep": sep} if sep else {"sep": None, "engine": "python"}
    return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)


def join_platemap(
    images_df: pd.DataFrame,
    platemap_df: pd.DataFrame,
    well_col: str = "well_position",
    gene_col: str = "gene_name",
    plate_col: str | None = None,
    image_well_col: str = "Metadata_Well",
    image_plate_col: str = "Metadata_Plate",
    condition_col: str = "Metadata_Condition",
) -> pd.DataFrame:
    """Map each image to the gene of its well in a plate map.

    Wells are compared after :func:`normalize_well` (so ``a01``, ``A1`` and ``A01`` match).
    The Rohban et al. 2017 plate map ``TAORF_REFERENCE_SET.txt`` has columns
    ``well_position`` and ``gene_name`` and is shared by all plates; for plate maps that
    differ between plates give `plate_col` to join on plate and well.

    Parameters
    ----------
    images_df : pandas.DataFrame
        Images with a well column (and a plate column when `plate_col` is given).
    platemap_df : pandas.DataFrame
        The plate map.
    well_col, gene_col : str
        Well and gene columns of the plate map.
    plate_col : str, optional
        Plate column of the plate map; ``None`` joins on the well only.
    image_well_col, image_plate_col : str
        Well and plate columns of `images_df`.
    condition_col : str, default "Metadata_Condition"
        Name of the gene column added to the result.

    Returns
    -------
    pandas.DataFrame
        `images_df` (same rows and order) with `condition_col` added; images whose well is not
        in the plate map get a missing value (and a logged warning).

    Raises
    ------
    KeyError
        A named column is missing (the message lists the available columns).
    ValueError
        The plate map lists a well twice (per plate).
    """
    for frame, cols, what in (
        (platemap_df, [well_col, gene_col] + ([plate_col] if plate_col else []), "plate map"),
        (images_df, [image_well_col] + ([image_plate_col] if plate_col else []), "image table"),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise KeyError(
                f"The {what} has no column(s) {missing}; available: {list(frame.columns)}. Pass "
                "the right column names (well_col/gene_col/plate_col or image_*_col)."
            )
    keys = ["_plate", "_well"] if plate_col else ["_well"]
    pm = pd.DataFrame({"_well": platemap_df[well_col].map(normalize_well)})
    if plate_col:
        pm["_plate"] = platemap_df[plate_col].astype(str).str.strip()
    pm[condition_col] = platemap_df[gene_col].astype(str).str.strip()
    dup = pm.duplicated(keys, keep=False)
    if dup.any():
        raise ValueError(
            f"The plate map lists these wells more than once: "
            f"{sorted(set(map(tuple, pm.loc[dup, keys].values.tolist())))[:10]}"
        )
    out = images_df.drop(columns=[condition_col], errors="ignore").copy()
    left = pd.DataFrame({"_well": out[image_well_col].map(normalize_well)}, index=out.index)
    if plate_col:
        left["_plate"] = out[image_plate_col].astype(str).str.strip()
    merged = left.merge(pm, on=keys, how="left")
    out[condition_col] = merged[condition_col].to_numpy()
    n_missing = int(out[condition_col].isna().sum())
    if n_missing:
        logger.warning(
            "%d of %d images have a well that is not in the plate map", n_missing, len(out)
        )
    return out


# --------------------------------------------------------------------------------------------
# Cell Painting Gallery (anonymous S3)
# --------------------------------------------------------------------------------------------


def make_s3_client(endpoint_url: str | None = None, region: str = CPG_REGION, **config_kwargs: Any):
    """Create an anonymous (unsigned) boto3 S3 client for a public bucket.

    No credentials are read or sent (``botocore.UNSIGNED``).

    Parameters
    ----------
    endpoint_url : str, optional
        S3 endpoint; ``None`` is AWS itself. Tests pass a local moto server. A custom endpoint
        uses path-style addressing.
    region : str, default "us-east-1"
        Region of the bucket.
    **config_kwargs
        Extra :class:`botocore.config.Config` options.

    Returns
    -------
    botocore.client.S3
        The client.
    """
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    options: dict[str, Any] = {
        "signature_version": UNSIGNED,
        "retries": {"max_attempts": 5, "mode": "standard"},
        "connect_timeout": 30,
        "read_timeout": 60,
    }
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    options.update(config_kwargs)
    return boto3.session.Session().client(
        "s3", region_name=region, endpoint_url=endpoint_url, config=Config(**options)
    )


def _s3_download(
    client: Any,
    bucket: str,
    key: str,
    dest: Path,
    size: int,
    etag: str | None,
    *,
    bar: tqdm | None = None,
    chunk_size: int = 1 << 20,
    retries: int = 5,
    backoff: float = 1.0,
) -> bool:
    """Download one object, resumable and atomic, verified by size and md5 ETag.

    Returns True if bytes were transferred, False if `dest` was already complete.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    etag_md5 = etag.strip('"').lower() if etag and "-" not in etag else None  # multipart: no md5
    expected = {"md5": etag_md5} if etag_md5 else {}
    source = f"s3://{bucket}/{key}"

    def advance(n: int) -> None:
        if bar is not None:
            bar.update(n)

    if dest.exists():
        if dest.stat().st_size == size and not _mismatches(dest, expected):
            advance(size)
            return False
        logger.warning(
            "%s exists but is corrupt or incomplete: downloading it again from %s", dest, source
        )
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if offset > size:
            part.unlink()
            offset = 0
        advance(offset)
        written = offset
        try:
            if offset < size:
                kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
                if offset:
                    kwargs["Range"] = f"bytes={offset}-"
                    if etag:
                        kwargs["IfMatch"] = etag  # resume only if the object is unchanged
                response = client.get_object(**kwargs)
                mode = "ab"
                if offset and not response.get("ContentRange"):  # Range ignored: full body
                    advance(-offset)
                    written, mode = 0, "wb"
                with open(part, mode) as fh:
                    for chunk in response["Body"].iter_chunks(chunk_size):
                        fh.write(chunk)
                        written += len(chunk)
                        advance(len(chunk))
                if written < size:
                    raise _Incomplete(f"connection closed after {written} of {size} bytes")
            break
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412", "InvalidRange", "416") and offset:
                logger.info("%s changed or cannot be resumed: starting over", source)
                advance(-written)
                part.unlink(missing_ok=True)
                continue
            raise DownloadError(f"Could not download {source}: {exc}") from exc
        except (BotoCoreError, OSError) as exc:
            advance(-written)
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"Could not download {source} after {retries + 1} attempts (last error: "
                    f"{exc!r}). The partial file {part} was kept: rerun to resume."
                ) from exc
            delay = backoff * 2 ** (attempt - 1)
            logger.warning(
                "Download of %s failed (%r); retry %d/%d in %.1f s",
                source,
                exc,
                attempt,
                retries,
                delay,
            )
            time.sleep(delay)

    got_size = part.stat().st_size
    bad = [("size", str(size), str(got_size))] if got_size != size else _mismatches(part, expected)
    if bad:
        part.unlink()
        detail = "; ".join(f"expected {a} {e}, received {g}" for a, e, g in bad)
        raise ChecksumError(
            f"Checksum mismatch for {source}: {detail} (the ETag is the md5 of objects uploaded "
            f"in one part). The download was deleted and nothing was written to {dest}: rerun to "
            "download it again."
        )
    os.replace(part, dest)
    return True


def _load_platemap(
    platemap: Any, client: Any, bucket: str, dest_dir: Path, **kw: Any
) -> pd.DataFrame:
    if isinstance(platemap, pd.DataFrame):
        return platemap.copy()
    if Path(platemap).exists():
        return read_platemap(platemap)
    key = str(platemap)
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise FileNotFoundError(
            f"Plate map {key!r} is neither a local file nor an object of s3://{bucket} ({exc}). "
            "Pass the path of a local plate map, a DataFrame, or the object key."
        ) from exc
    local = dest_dir / "platemaps" / key.rsplit("/", 1)[-1]
    _s3_download(client, bucket, key, local, int(head["ContentLength"]), head.get("ETag"), **kw)
    return read_platemap(local)


def _list_s3(client: Any, bucket: str, prefix: str, delimiter: str | None = None) -> list[dict]:
    from botocore.exceptions import BotoCoreError, ClientError

    paginator = client.get_paginator("list_objects_v2")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    try:
        return list(paginator.paginate(**kwargs))
    except (BotoCoreError, ClientError) as exc:
        raise DownloadError(
            f"Could not list s3://{bucket}/{prefix}: {exc}. Check the network connection, "
            "`bucket`, `prefix` and `endpoint_url`."
        ) from exc


def fetch_cpg_images(
    dest_dir: str | os.PathLike,
    genes: str | Iterable[str],
    plates: Iterable[str] | None = None,
    bucket: str = CPG_BUCKET,
    prefix: str = ROHBAN_IMAGE_PREFIX,
    batch: str = ROHBAN_BATCH,
    endpoint_url: str | None = None,
    region: str = CPG_REGION,
    platemap: str | os.PathLike | pd.DataFrame = ROHBAN_PLATEMAP_KEY,
    platemap_well_col: str = "well_position",
    platemap_gene_col: str = "gene_name",
    platemap_plate_col: str | None = None,
    channel: str = "DNA",
    channel_map: Mapping[str, str] | None = None,
    filename_patterns: Sequence[str] = DEFAULT_FILENAME_PATTERNS,
    sites: Iterable[int] | None = None,
    progress: bool = True,
    client: Any = None,
    retries: int = 5,
    backoff: float = 1.0,
) -> pd.DataFrame:
    """Download the images of one channel of the wells of some genes from the Cell Painting Gallery.

    Defaults fetch the DNA (Hoechst) images of Rohban et al. 2017 (``cpg0017-rohban-pathways``)
    from the public bucket ``cellpainting-gallery`` anonymously. Steps: list the plate folders
    ``prefix`` (with ``{batch}``; the ``{plate}`` part is listed), list every object below the
    selected plate folders, parse well/site/channel from the file names
    (:func:`parse_image_names`), keep `channel`, map wells to genes with the plate map
    (:func:`join_platemap`), keep `genes`, and download each object to
    ``dest_dir/<plate folder>/<path below the plate folder>`` (resumable, atomic, verified by
    size and by the ETag, which is the md5 of objects uploaded in one part). Files already
    complete are not downloaded again.

    A plate folder matches plate ``P`` if it is named ``P`` or starts with ``P__`` (the
    Gallery's ``<barcode>__<timestamp>`` style); ``Metadata_Plate`` is the barcode.

    Parameters
    ----------
    dest_dir : str or os.PathLike
        Where the images (and the downloaded plate map, under ``platemaps/``) go.
    genes : str or iterable of str
        Genes (plate-map values, e.g. ``"BRAF"``, controls ``"LacZ"``, ``"Luciferase"``,
        ``"EMPTY"``) whose wells are fetched.
    plates : iterable of str, optional
        Plate barcodes; ``None`` takes every plate folder found.
    bucket : str, default "cellpainting-gallery"
        The bucket.
    prefix : str, default ROHBAN_IMAGE_PREFIX
        Key prefix of one plate's images with the placeholders ``{plate}`` (required) and
        ``{batch}``.
    batch : str, default ROHBAN_BATCH
        Fills ``{batch}``.
    endpoint_url : str, optional
        S3 endpoint; ``None`` is AWS. Tests point it at a local moto server.
    region : str, default "us-east-1"
        Bucket region.
    platemap : str, os.PathLike or pandas.DataFrame, default ROHBAN_PLATEMAP_KEY
        A DataFrame, a local CSV/TSV file, or the key of one in `bucket` (downloaded).
    platemap_well_col, platemap_gene_col : str
        Well and gene columns of the plate map.
    platemap_plate_col : str, optional
        Plate column of the plate map, when it differs between plates.
    channel : str, default "DNA"
        Stain name looked up in `channel_map`, or the channel token itself (e.g. ``"5"``).
    channel_map : mapping, optional
        Stain -> channel token; defaults to :data:`DEFAULT_CHANNEL_MAP` (ImageXpress order,
        ``w1`` = DNA).
    filename_patterns : sequence of str, default DEFAULT_FILENAME_PATTERNS
        File name regular expressions, see :func:`parse_image_names`.
    sites : iterable of int, optional
        Keep only these fields of view.
    progress : bool, default True
        Show one progress bar over all bytes.
    client : botocore S3 client, optional
        Use this client instead of :func:`make_s3_client` ``(endpoint_url, region)``.
    retries : int, default 5
        Retries per object on connection errors (on top of botocore's own).
    backoff : float, default 1.0
        Seconds before the first retry; doubled each retry.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site``,
        ``Metadata_Condition`` (gene), ``Metadata_ImagePath`` (str), plus
        ``Metadata_Channel`` and ``Metadata_ObjectKey``; sorted by plate, well and site.

    Raises
    ------
    ValueError
        No gene given, ``{plate}`` missing from `prefix`, a requested plate has no folder, no
        image matched the file name patterns and channel, or none of `genes` has images.
    DownloadError, ChecksumError
        A download failed or did not verify.
    """
    genes = [genes] if isinstance(genes, str) else list(genes)
    if not genes:
        raise ValueError("Give at least one gene")
    if "{plate}" not in prefix:
        raise ValueError(f"prefix must contain the '{{plate}}' placeholder, got {prefix!r}")
    dest_dir = Path(dest_dir)
    client = client if client is not None else make_s3_client(endpoint_url, region)
    channel_map = DEFAULT_CHANNEL_MAP if channel_map is None else channel_map
    channel_token = str(int(channel_map.get(channel, channel)))
    kw = {"retries": retries, "backoff": backoff}

    head, tail = prefix.split("{plate}", 1)
    parent = head.format(batch=batch)
    folders = []
    for page in _list_s3(client, bucket, parent, delimiter="/"):
        folders += [
            cp["Prefix"][len(parent) :].rstrip("/") for cp in page.get("CommonPrefixes", [])
        ]
    if plates is None:
        selected = [(f.split("__")[0], f) for f in folders]
    else:
        selected = []
        for plate in [str(p) for p in plates]:
            matches = [f for f in folders if f == plate or f.startswith(plate + "__")]
            if not matches:
                raise ValueError(
                    f"No image folder for plate {plate} under s3://{bucket}/{parent}; found "
                    f"{sorted(folders)[:20]}{' ...' if len(folders) > 20 else ''}. Check `plates`, "
                    "`prefix` and `batch`."
                )
            selected += [(plate, f) for f in matches]
    if not selected:
        raise ValueError(
            f"No plate folders under s3://{bucket}/{parent}; check `prefix` and `batch`"
        )

    objects = []
    for plate, folder in selected:
        folder_prefix = parent + folder + "/" + tail.format(batch=batch).lstrip("/")
        for page in _list_s3(client, bucket, folder_prefix):
            for obj in page.get("Contents", []):
                objects.append(
                    {
                        "Metadata_Plate": plate,
                        "_folder": folder,
                        "_rel": obj["Key"][len(parent) + len(folder) + 1 :],
                        "Metadata_ObjectKey": obj["Key"],
                        "_size": int(obj["Size"]),
                        "_etag": obj.get("ETag"),
                    }
                )
    listing = pd.DataFrame(
        objects,
        columns=["Metadata_Plate", "_folder", "_rel", "Metadata_ObjectKey", "_size", "_etag"],
    )
    parsed = parse_image_names(listing["Metadata_ObjectKey"], filename_patterns)
    images = listing.merge(parsed, on="Metadata_ObjectKey", how="inner")
    images = images[images["Metadata_Channel"] == channel_token]
    if sites is not None:
        images = images[images["Metadata_Site"].isin([int(s) for s in sites])]
    if images.empty:
        raise ValueError(
            f"None of the {len(listing)} objects below the selected plate folders matched the "
            f"file name patterns with channel {channel!r} (token {channel_token!r}). Check "
            "`filename_patterns`, `channel` and `channel_map` against the object names."
        )

    platemap_df = _load_platemap(platemap, client, bucket, dest_dir, **kw)
    images = join_platemap(
        images.reset_index(drop=True),
        platemap_df,
        well_col=platemap_well_col,
        gene_col=platemap_gene_col,
        plate_col=platemap_plate_col,
    )
    known = set(platemap_df[platemap_gene_col].astype(str).str.strip())
    unknown_genes = [g for g in genes if g not in known]
    if unknown_genes:
        logger.warning("Genes not in the plate map: %s", unknown_genes)
    images = images[images["Metadata_Condition"].isin(genes)].reset_index(drop=True)
    if images.empty:
        raise ValueError(
            f"No images of genes {genes} on the selected plates. Genes in the plate map include "
            f"{sorted(known)[:30]}."
        )
    for gene in genes:
        if gene in known and not (images["Metadata_Condition"] == gene).any():
            logger.warning(
                "Gene %s is in the plate map but has no images on the selected plates", gene
            )

    paths = [
        dest_dir / folder / rel
        for folder, rel in zip(images["_folder"], images["_rel"], strict=True)
    ]
    with tqdm(
        total=int(images["_size"].sum()),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"{bucket} images",
        disable=not progress,
    ) as bar:
        for path, key, size, etag in zip(
            paths, images["Metadata_ObjectKey"], images["_size"], images["_etag"], strict=True
        ):
            _s3_download(client, bucket, key, path, int(size), etag, bar=bar, **kw)

    images["Metadata_ImagePath"] = [str(p.resolve()) for p in paths]
    columns = [
        "Metadata_Plate",
        "Metadata_Well",
        "Metadata_Site",
        "Metadata_Condition",
        "Metadata_ImagePath",
        "Metadata_Channel",
        "Metadata_ObjectKey",
    ]
    return (
        images[columns]
        .sort_values(["Metadata_Plate", "Metadata_Well", "Metadata_Site"])
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------
# Command line: ``python3 run_all.py data ...``
# --------------------------------------------------------------------------------------------


def _build_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="run_all.py data",
        description=(
            "Fetch the public Image2Reg data: the demo archive from Zenodo "
            f"(DOI {IMAGE2REG_DEMO_DOI}) or Rohban et al. 2017 DNA images from the Cell Painting "
            "Gallery. Downloads are resumable and checksum-verified: rerun an interrupted or "
            "corrupt fetch to repair it."
        ),
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="{demo,cpg,layout}")
    demo = sub.add_parser("demo", help="the Image2Reg demo archive (Zenodo)")
    demo.add_argument("--dest", default="data/image2reg_demo", help="destination folder")
    demo.add_argument("--md5", help="expected md5 of the archive (as shown on Zenodo)")
    demo.add_argument("--sha256", help="expected sha256 of the archive")
    demo.add_argument("--base-url", default=IMAGE2REG_DEMO_BASE_URL, help="files URL of the record")
    demo.add_argument("--filename", default=IMAGE2REG_DEMO_FILENAME, help="archive file name")
    demo.add_argument("--no-keep-archive", action="store_true", help="delete the archive after")
    cpg = sub.add_parser("cpg", help="Rohban et al. 2017 images (Cell Painting Gallery, S3)")
    cpg.add_argument("--dest", default="data/rohban2017", help="destination folder")
    cpg.add_argument("--genes", required=True, help="comma-separated genes, e.g. BRAF,JUN")
    cpg.add_argument("--plates", help=f"comma-separated plates (default all of {ROHBAN_PLATES})")
    cpg.add_argument("--sites", help="comma-separated fields of view (default all)")
    cpg.add_argument("--channel", default="DNA", help="stain name or channel token")
    cpg.add_argument("--bucket", default=CPG_BUCKET, help="S3 bucket")
    cpg.add_argument("--endpoint-url", help="S3 endpoint (default AWS)")
    cpg.add_argument("--platemap", default=ROHBAN_PLATEMAP_KEY, help="plate map key or file")
    layout = sub.add_parser("layout", help="index an unpacked Image2Reg demo folder")
    layout.add_argument("--root", default="data/image2reg_demo", help="folder with test_data/")
    for p in (demo, cpg, layout):
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _csv_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _screen_metadata(images: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Return the ``metadata.csv`` of a fetched screen: paths relative to `root`, no masks."""
    root = root.resolve()
    out = images[["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Condition"]].copy()
    out["Metadata_ImagePath"] = [
        Path(p).resolve().relative_to(root).as_posix() for p in images["Metadata_ImagePath"]
    ]
    out["Metadata_MaskPath"] = ""
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python3 run_all.py data {demo,cpg,layout} ...``.

    ``demo`` downloads and unpacks the Image2Reg demo archive into ``--dest`` and writes the
    index of its images and masks to ``<dest>/images.csv``; ``cpg`` downloads the DNA images
    of ``--genes`` from the Cell Painting Gallery into ``--dest`` and writes
    ``<dest>/images.csv`` (plate, well, site, gene, path, object key) and the screen table
    ``<dest>/metadata.csv`` (paths relative to ``--dest``, no masks: the nuclei stage
    segments them), so ``python3 run_all.py --data-dir <dest>`` runs on it; ``layout`` only
    (re)writes the index of an unpacked demo folder. Tables are written atomically.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after ``data``; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success, 1 when a download, checksum, archive or layout error was reported
        (the message says what to do).
    """
    from .io import InputError, write_table

    args = _build_parser().parse_args(argv)
    progress = not args.quiet
    try:
        if args.source == "demo":
            root = fetch_image2reg_demo(
                args.dest,
                base_url=args.base_url,
                filename=args.filename,
                sha256=args.sha256,
                md5=args.md5,
                progress=progress,
                keep_archive=not args.no_keep_archive,
            )
            table, out = read_image2reg_layout(root), Path(root) / "images.csv"
        elif args.source == "layout":
            table, out = read_image2reg_layout(args.root), Path(args.root) / "images.csv"
        else:
            sites = _csv_list(args.sites)
            table = fetch_cpg_images(
                args.dest,
                genes=_csv_list(args.genes) or [],
                plates=_csv_list(args.plates),
                sites=None if sites is None else [int(s) for s in sites],
                channel=args.channel,
                bucket=args.bucket,
                endpoint_url=args.endpoint_url,
                platemap=args.platemap,
                progress=progress,
            )
            out = Path(args.dest) / "images.csv"
            write_table(_screen_metadata(table, Path(args.dest)), Path(args.dest) / "metadata.csv")
            print(
                f"screen metadata written to {Path(args.dest) / 'metadata.csv'} (no masks: the "
                f"nuclei are segmented); run the pipeline on it with `python3 run_all.py "
                f"--data-dir {args.dest}` (include the EMPTY control wells in --genes)"
            )
    except (DownloadError, LayoutError, UnsafeArchiveError, InputError, ValueError) as exc:
        print(f"run_all.py data {args.source}: error: {exc}", file=sys.stderr)
        return 1
    write_table(table, out)
    counts = table.groupby("Metadata_Condition").size()
    print(f"{len(table)} images of {len(counts)} conditions; index written to {out}")
    for condition, n in counts.items():
        print(f"  {condition}: {n} images")
    return 0
