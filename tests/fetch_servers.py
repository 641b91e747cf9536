"""Local servers and test data for the tests of i2r_pipeline.fetch (127.0.0.1 only).

* an ``http.server`` with Range support and misbehaving variants (dropped connection,
  corrupt bytes, ignored Range, transient 503);
* a moto S3 server holding a small copy of the Cell Painting Gallery layout;
* the Image2Reg demo layout as a zip archive.

Test modules wrap these in their own fixtures.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tifffile

from i2r_pipeline.fetch.cpg import ROHBAN_BATCH, ROHBAN_PLATEMAP_KEY

LOCAL = "127.0.0.1"
#: Fast download options: no progress bar, short backoff.
FAST = {"progress": False, "backoff": 0.01, "timeout": 10}


# --------------------------------------------------------------------------------------------
# Local HTTP server
# --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Serve ``/<mode>/<file>`` from ``server.root``.

    Modes: ``good`` (Range supported), ``drop`` (the first request of each file sends half the
    body and closes the connection), ``corrupt`` (flipped bytes), ``norange`` (ignores Range),
    ``flaky`` (the first request of each file answers 503).
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        _, mode, name = self.path.split("/", 2)
        rng = self.headers.get("Range")
        with srv.lock:
            srv.log.append((mode, name, rng))
            first = (mode, name) not in srv.seen
            srv.seen.add((mode, name))
        path = srv.root / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if mode == "corrupt":
            data = bytes(b ^ 0xFF for b in data)
        if mode == "flaky" and first:
            self.send_error(503)
            return
        start = 0
        if rng and mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if mode == "drop" and first:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve_http(root: Path):
    """Serve `root` on 127.0.0.1; the server has ``url``, ``root`` and a request ``log``."""
    root.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((LOCAL, 0), _Handler)
    server.daemon_threads = True
    server.root = root
    server.log = []
    server.seen = set()
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server.url = f"http://{LOCAL}:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A local port nothing listens on: connections are refused."""
    sock = socket.socket()
    sock.bind((LOCAL, 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --------------------------------------------------------------------------------------------
# Image2Reg demo layout
# --------------------------------------------------------------------------------------------


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def tiff_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.full((8, 8), value, dtype=np.uint16))
    return buf.getvalue()


DEMO_FILES = {
    "test_data/sample_data/BRAF/raw/plate1/a01_s1.tif": 1,
    "test_data/sample_data/BRAF/raw/plate1/a01_s2.tif": 2,
    "test_data/sample_data/BRAF/unet_masks/plate1/a01_s1.tif": 3,
    "test_data/sample_data/BRAF/unet_masks/plate1/a01_s2.tif": 4,
    "test_data/sample_data/JUN/raw/b02.tif": 5,
    "test_data/sample_data/JUN/unet_masks/b02.tif": 6,
    "test_data/UNKNOWN/images/raw/plate/x1.tif": 7,
    "test_data/UNKNOWN/images/unet_masks/plate/x1.tif": 8,
}


def serve_demo_zip(server) -> str:
    """Put the demo archive ``test_data.zip`` on `server`; return its sha256."""
    data = zip_bytes({name: tiff_bytes(v) for name, v in DEMO_FILES.items()})
    (server.root / "test_data.zip").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# S3 (moto)
# --------------------------------------------------------------------------------------------


def isolate_aws(monkeypatch, tmp_path) -> None:
    """Dummy credentials and no config files, so boto3 can never reach real AWS with ours."""
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "NO_PROXY": f"{LOCAL},localhost",
        "no_proxy": f"{LOCAL},localhost",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


@contextlib.contextmanager
def serve_moto():
    """Run a moto S3 server on 127.0.0.1 and yield its URL (skips without boto3/moto)."""
    pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address=LOCAL, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    assert host == LOCAL
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


BATCH = ROHBAN_BATCH
IMG_PREFIX = f"cpg0017-rohban-pathways/broad/images/{BATCH}/images"
# plate map subset: a03 ATF4, a04 TSC2, a12 Luciferase, b03 EIF2A
PLATEMAP_TSV = (
    "well_position\tgene_name\tpert_name\n"
    "a03\tATF4\tATF4_WT.1\n"
    "a04\tTSC2\tTSC2_WT\n"
    "a12\tLuciferase\tLuciferase_CTRL\n"
    "b03\tEIF2A\tEIF2A_WT.1\n"
)


def object_bytes(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest() * 50  # 1600 distinct bytes per object


def make_cpg_bucket(moto_url: str) -> str:
    """Create a fresh bucket with two Rohban-style plates and the plate map; return its name."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = f"cpg-{len(list(s3.list_buckets()['Buckets']))}"  # fresh bucket per test
    s3.create_bucket(Bucket=bucket)
    keys = []
    # plate 41744: ImageXpress names, 5 channels, 2 sites, 4 wells (+ a thumbnail and a CSV)
    for well in ["a03", "a04", "a12", "b03"]:
        for site in (1, 2):
            for ch in range(1, 6):
                keys.append(f"{IMG_PREFIX}/41744/41744_{well}_s{site}_w{ch}9F3A2B7C.tif")
    keys.append(f"{IMG_PREFIX}/41744/41744_a03_s1_w1_thumb9F3A2B7C.tif")
    keys.append(f"{IMG_PREFIX}/41744/load_data.csv")
    # plate 41754: Gallery-style folder name and Phenix names below Images/
    for row, col in [(1, 3), (1, 4), (2, 3)]:
        for ch in range(1, 6):
            keys.append(
                f"{IMG_PREFIX}/41754__2013-10-11T10_00_00-Measurement1/Images/"
                f"r{row:02d}c{col:02d}f01p01-ch{ch}sk1fk1fl1.tiff"
            )
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=object_bytes(key), ACL="public-read")
    s3.put_object(
        Bucket=bucket, Key=ROHBAN_PLATEMAP_KEY, Body=PLATEMAP_TSV.encode(), ACL="public-read"
    )
    return bucket


def client_with_log(moto_url: str):
    """An S3 client of the local server and the list of its GetObject calls' parameters."""
    from i2r_pipeline.fetch.s3 import make_s3_client

    client = make_s3_client(moto_url)
    calls = []
    client.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **kw: calls.append(dict(params))
    )
    return client, calls
