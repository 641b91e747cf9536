"""Tests of i2r_pipeline.fetch.http against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
from fetch_servers import FAST, LOCAL, closed_port

from i2r_pipeline.fetch.http import download
from i2r_utils.io import InputError

pytestmark = pytest.mark.usefixtures("no_real_aws")  # fixtures: tests/conftest.py


@pytest.fixture
def payload(http_server):
    data = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    (http_server.root / "blob.bin").write_bytes(data)
    return data, hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def test_download_verifies_and_skips_existing(http_server, payload, tmp_path):
    data, sha, md5 = payload
    dest = tmp_path / "out" / "blob.bin"
    assert download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, md5=md5, **FAST) == dest
    assert dest.read_bytes() == data
    assert not dest.with_name("blob.bin.part").exists()
    n = len(http_server.log)
    download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    download(f"{http_server.url}/good/blob.bin", dest, md5=f"md5:{md5}", **FAST)
    assert len(http_server.log) == n  # verified on disk, not downloaded again


def test_download_resumes_after_dropped_connection(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    download(f"{http_server.url}/drop/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    (first, second) = http_server.log
    assert first[2] is None
    assert second[2] == f"bytes={len(data) // 2}-"  # resumed where the connection dropped


def test_download_resumes_existing_part(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(data[:1000])
    download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    assert http_server.log[-1][2] == "bytes=1000-"


def test_download_part_already_complete_gets_416(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(data)
    download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data


def test_download_restarts_when_range_ignored(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(b"garbage-prefix")
    download(f"{http_server.url}/norange/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data


def test_download_checksum_mismatch_then_repair(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    url = f"{http_server.url}/corrupt/blob.bin"
    with pytest.raises(InputError, match="Checksum mismatch") as info:
        download(url, dest, sha256=sha, **FAST)
    msg = str(info.value)
    assert url in msg and sha in msg
    assert hashlib.sha256(bytes(b ^ 0xFF for b in data)).hexdigest() in msg
    assert "rerun" in msg
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()
    download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data


def test_download_replaces_corrupt_existing_file(http_server, payload, tmp_path, caplog):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.write_bytes(data[:-1] + b"\x00")
    with caplog.at_level(logging.WARNING, logger="i2r_pipeline.fetch.http"):
        download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert "corrupt" in caplog.text
    assert dest.read_bytes() == data


def test_download_retries_transient_http_error(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    download(f"{http_server.url}/flaky/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    assert len(http_server.log) == 2


def test_download_404_is_not_retried(http_server, tmp_path):
    with pytest.raises(InputError, match="HTTP 404"):
        download(f"{http_server.url}/good/missing.bin", tmp_path / "x", **FAST)
    assert len(http_server.log) == 1
    assert not (tmp_path / "x").exists()


def test_download_gives_up_after_bounded_retries(tmp_path):
    url = f"http://{LOCAL}:{closed_port()}/x"  # nothing listens there: connection refused
    with pytest.raises(InputError, match="after 3 attempts") as info:
        download(url, tmp_path / "new" / "x", retries=2, **FAST)
    assert "Nothing was received or kept: rerun once" in str(info.value)
    assert "network connection" in str(info.value) and "partial file" not in str(info.value)
    assert not (tmp_path / "new").exists()  # no empty destination folder left behind


def test_download_rejects_non_http(tmp_path):
    with pytest.raises(ValueError, match="http"):
        download("file:///etc/passwd", tmp_path / "x")


def test_a_server_that_never_answers_fails_in_bounded_time_with_warnings(tmp_path, caplog):
    import socket
    import time

    from i2r_pipeline.fetch import http as fetch_http

    assert fetch_http.TIMEOUT <= 30 and fetch_http.RETRIES <= 3  # ~1.5 min at most by default
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.bin"
        t0 = time.perf_counter()
        with pytest.raises(InputError, match="after 2 attempts"):
            download(url, tmp_path / "x.bin", timeout=0.5, retries=1, backoff=0.01, progress=False)
    assert time.perf_counter() - t0 < 10
    assert "retry 1/1" in caplog.text  # the user hears about the first timeout
