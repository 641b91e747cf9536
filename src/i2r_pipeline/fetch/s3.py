"""Anonymous listing and resumable, verified downloads from public S3 buckets.

``boto3`` (the ``fetch`` extra) is imported only when a function here is called.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from i2r_utils.io import InputError

from .partfile import (
    checksum_mismatches,
    commit_part,
    new_folders,
    part_path,
    wait_before_retry,
)

logger = logging.getLogger(__name__)

__all__ = ["download_object", "list_pages", "make_s3_client"]

#: Error codes after which a resumed (ranged, conditional) request starts over.
_RESTART_CODES = ("PreconditionFailed", "412", "InvalidRange", "416")
#: Seconds to wait for a connection, and for each read of an answer.
CONNECT_TIMEOUT, READ_TIMEOUT = 10, 20
#: botocore's own attempts per request (silent); downloads add retries that warn.
MAX_ATTEMPTS = 2


def make_s3_client(endpoint_url: str | None = None, region: str = "us-east-1", **config_kwargs):
    """Create an anonymous (unsigned) boto3 S3 client for a public bucket.

    No credentials are read or sent (``botocore.UNSIGNED``). A server that accepts the
    connection and never answers fails a request after :data:`MAX_ATTEMPTS` times
    :data:`READ_TIMEOUT` seconds (:data:`CONNECT_TIMEOUT` for one that does not accept).

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
        # few silent botocore attempts: the downloads retry with a warning of their own
        "retries": {"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
    }
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    options.update(config_kwargs)
    return boto3.session.Session().client(
        "s3", region_name=region, endpoint_url=endpoint_url, config=Config(**options)
    )


def list_pages(client: Any, bucket: str, prefix: str, delimiter: str | None = None) -> list[dict]:
    """List the objects below a key prefix: every ``list_objects_v2`` page.

    Parameters
    ----------
    client : botocore S3 client
        See :func:`make_s3_client`.
    bucket : str
        The bucket.
    prefix : str
        Key prefix.
    delimiter : str, optional
        ``"/"`` to list the sub-"folders" (``CommonPrefixes``) instead of every object.

    Returns
    -------
    list of dict
        The response pages (``Contents`` and/or ``CommonPrefixes``).

    Raises
    ------
    InputError
        The listing failed (network, bucket, endpoint).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    paginator = client.get_paginator("list_objects_v2")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    try:
        return list(paginator.paginate(**kwargs))
    except (BotoCoreError, ClientError) as exc:
        raise InputError(
            f"Could not list s3://{bucket}/{prefix}: {exc}. Check the network connection, "
            "`bucket`, `prefix` and `endpoint_url`."
        ) from exc


def _advance(bar: tqdm | None, n: int) -> None:
    if bar is not None:
        bar.update(n)


def _rewind(bar: tqdm | None, mark: int) -> None:
    """Move the progress bar back to `mark` (the bytes of a failed attempt are undone)."""
    if bar is not None:
        bar.update(mark - bar.n)


def _part_offset(part: Path, size: int) -> int:
    """Bytes already in `part`; a partial file larger than the object is discarded."""
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        part.unlink()
        offset = 0
    return offset


def _get_into_part(
    client: Any,
    bucket: str,
    key: str,
    part: Path,
    offset: int,
    size: int,
    etag: str | None,
    bar: tqdm | None,
    chunk_size: int,
) -> None:
    """One attempt: append the bytes from `offset` on to `part`. Raises on a short body."""
    _advance(bar, offset)
    if offset >= size:
        return
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if offset:
        kwargs["Range"] = f"bytes={offset}-"
        if etag:
            kwargs["IfMatch"] = etag  # resume only if the object is unchanged
    response = client.get_object(**kwargs)
    written, mode = offset, "ab"
    if offset and not response.get("ContentRange"):  # Range ignored: full body
        _advance(bar, -offset)
        written, mode = 0, "wb"
    with open(part, mode) as fh:
        for chunk in response["Body"].iter_chunks(chunk_size):
            fh.write(chunk)
            written += len(chunk)
            _advance(bar, len(chunk))
    if written < size:
        raise ConnectionError(f"connection closed after {written} of {size} bytes")


def _existing_is_complete(dest: Path, size: int, expected: dict, source: str) -> bool:
    """Say whether `dest` holds the object; remove it (with a warning) when it does not."""
    if not dest.exists():
        return False
    if dest.stat().st_size == size and not checksum_mismatches(dest, expected):
        return True
    logger.warning(
        "%s exists but is corrupt or incomplete: downloading it again from %s", dest, source
    )
    dest.unlink()
    return False


def _fetch_with_retries(
    client: Any,
    bucket: str,
    key: str,
    part: Path,
    size: int,
    etag: str | None,
    bar: tqdm | None,
    chunk_size: int,
    retries: int,
    backoff: float,
) -> None:
    """Fetch the object into `part`, resuming it; retry connection errors, restart on change."""
    from botocore.exceptions import BotoCoreError, ClientError

    source = f"s3://{bucket}/{key}"
    attempt = 0
    while True:
        offset = _part_offset(part, size)
        mark = bar.n if bar is not None else 0
        try:
            _get_into_part(client, bucket, key, part, offset, size, etag, bar, chunk_size)
            break
        except ClientError as exc:
            _rewind(bar, mark)
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _RESTART_CODES and offset:
                logger.info("%s changed or cannot be resumed: starting over", source)
                part.unlink(missing_ok=True)
                continue
            raise InputError(f"Could not download {source}: {exc}") from exc
        except (BotoCoreError, OSError) as exc:
            _rewind(bar, mark)
            attempt += 1
            wait_before_retry(source, exc, attempt, retries, backoff, part)


def download_object(
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

    The object streams to ``<dest>.part``; a partial file left by an interrupted run is
    resumed with a ranged request that only succeeds if the object is unchanged (its ETag).
    Connection errors are retried with exponential backoff. The ETag of an object uploaded
    in one part is its md5 and is checked; multipart ETags (with ``-``) are not.

    Parameters
    ----------
    client : botocore S3 client
        See :func:`make_s3_client`.
    bucket, key : str
        The object.
    dest : pathlib.Path
        Destination file; parent folders are created.
    size : int
        Size of the object in bytes (from the listing).
    etag : str or None
        ETag of the object (from the listing).
    bar : tqdm, optional
        Progress bar advanced by the bytes of this object.
    chunk_size : int, default 1 MiB
        Bytes read at a time.
    retries : int, default 5
        Retries on connection errors (on top of botocore's own).
    backoff : float, default 1.0
        Seconds before the first retry; doubled each retry.

    Returns
    -------
    bool
        True if bytes were transferred, False if `dest` was already complete.

    Raises
    ------
    InputError
        The request failed for good, retries were exhausted, or the download does not have
        the expected size or md5 (it is then deleted).
    """
    etag_md5 = etag.strip('"').lower() if etag and "-" not in etag else None  # multipart: no md5
    expected = {"md5": etag_md5} if etag_md5 else {}
    source = f"s3://{bucket}/{key}"
    if _existing_is_complete(dest, size, expected, source):
        _advance(bar, size)
        return False
    with new_folders(dest.parent):  # removed again when nothing was received
        part = part_path(dest)
        _fetch_with_retries(
            client, bucket, key, part, size, etag, bar, chunk_size, retries, backoff
        )
        got_size = part.stat().st_size
        bad = [("size", str(size), str(got_size))] if got_size != size else []
        bad = bad or checksum_mismatches(part, expected)
        note = " (the ETag is the md5 of objects uploaded in one part)"
        commit_part(part, dest, bad, source, note=note)
    return True
