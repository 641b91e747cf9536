"""End-to-end tests of i2r_utils.fetch against local servers on 127.0.0.1 only.

* an ``http.server`` with Range support and misbehaving variants (dropped connection,
  corrupt bytes, ignored Range, transient 503) for :func:`download`;
* a zip with the Image2Reg demo layout served by it for :func:`fetch_image2reg_demo`;
* a moto S3 server for :func:`fetch_cpg_images` with an anonymous boto3 client.
"""

from __future__ import annotations

import hashlib
import io
import logging
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from i2r_utils import fetch

LOCAL = "127.0.0.1"


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


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
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


@pytest.fixture
def payload(http_server):
    data = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    (http_server.root / "blob.bin").write_bytes(data)
    return data, hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


FAST = {"progress": False, "backoff": 0.01, "timeout": 10}


# --------------------------------------------------------------------------------------------
# download()
# --------------------------------------------------------------------------------------------


def test_download_verifies_and_skips_existing(http_server, payload, tmp_path):
    data, sha, md5 = payload
    dest = tmp_path / "out" / "blob.bin"
    assert (
        fetch.download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, md5=md5, **FAST)
        == dest
    )
    assert dest.read_bytes() == data
    assert not dest.with_name("blob.bin.part").exists()
    n = len(http_server.log)
    fetch.download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    fetch.download(f"{http_server.url}/good/blob.bin", dest, md5=f"md5:{md5}", **FAST)
    assert len(http_server.log) == n  # verified on disk, not downloaded again


def test_download_resumes_after_dropped_connection(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    fetch.download(f"{http_server.url}/drop/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    (first, second) = http_server.log
    assert first[2] is None
    assert second[2] == f"bytes={len(data) // 2}-"  # resumed where the connection dropped


def test_download_resumes_existing_part(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(data[:1000])
    fetch.download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    assert http_server.log[-1][2] == "bytes=1000-"


def test_download_part_already_complete_gets_416(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(data)
    fetch.download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data


def test_download_restarts_when_range_ignored(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(b"garbage-prefix")
    fetch.download(f"{http_server.url}/norange/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data


def test_download_checksum_mismatch_then_repair(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    url = f"{http_server.url}/corrupt/blob.bin"
    with pytest.raises(fetch.ChecksumError) as info:
        fetch.download(url, dest, sha256=sha, **FAST)
    msg = str(info.value)
    assert url in msg and sha in msg
    assert hashlib.sha256(bytes(b ^ 0xFF for b in data)).hexdigest() in msg
    assert "rerun" in msg
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()
    fetch.download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data


def test_download_replaces_corrupt_existing_file(http_server, payload, tmp_path, caplog):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    dest.write_bytes(data[:-1] + b"\x00")
    with caplog.at_level(logging.WARNING, logger="i2r_utils.fetch"):
        fetch.download(f"{http_server.url}/good/blob.bin", dest, sha256=sha, **FAST)
    assert "corrupt" in caplog.text
    assert dest.read_bytes() == data


def test_download_retries_transient_http_error(http_server, payload, tmp_path):
    data, sha, _ = payload
    dest = tmp_path / "blob.bin"
    fetch.download(f"{http_server.url}/flaky/blob.bin", dest, sha256=sha, **FAST)
    assert dest.read_bytes() == data
    assert len(http_server.log) == 2


def test_download_404_is_not_retried(http_server, tmp_path):
    with pytest.raises(fetch.DownloadError, match="HTTP 404"):
        fetch.download(f"{http_server.url}/good/missing.bin", tmp_path / "x", **FAST)
    assert len(http_server.log) == 1
    assert not (tmp_path / "x").exists()


def test_download_gives_up_after_bounded_retries(tmp_path):
    sock = socket.socket()
    sock.bind((LOCAL, 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused
    with pytest.raises(fetch.DownloadError, match="after 3 attempts"):
        fetch.download(f"http://{LOCAL}:{port}/x", tmp_path / "x", retries=2, **FAST)


def test_download_rejects_non_http(tmp_path):
    with pytest.raises(ValueError, match="http"):
        fetch.download("file:///etc/passwd", tmp_path / "x")


# --------------------------------------------------------------------------------------------
# extract()
# --------------------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_extract_zip_atomic_and_idempotent(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"top/x.txt": b"x", "top/sub/y.txt": b"y", "z.txt": b"z"}))
    dest = tmp_path / "dest"
    fetch.extract(archive, dest)
    assert (dest / "top" / "sub" / "y.txt").read_bytes() == b"y"
    assert (dest / ".a.zip.extracted.json").exists()
    assert not [p for p in tmp_path.iterdir() if ".extract-" in p.name]  # temp dir cleaned
    (dest / "z.txt").write_bytes(b"user edit")
    fetch.extract(archive, dest)  # complete: nothing is done
    assert (dest / "z.txt").read_bytes() == b"user edit"


def test_extract_into_existing_dir_and_recover_interrupted(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = dest / "a.zip"  # the archive may live in the destination
    archive.write_bytes(_zip_bytes({"top/x.txt": b"x"}))
    (dest / "unrelated.txt").write_text("keep me")
    fetch.extract(archive, dest)
    assert (dest / "top" / "x.txt").read_bytes() == b"x"
    assert (dest / "unrelated.txt").read_text() == "keep me"
    # simulate an interrupted run: marker gone, pending record left, partial tree present
    (dest / ".a.zip.extracted.json").unlink()
    (dest / ".a.zip.extracting.json").write_text('{"entries": ["top"]}')
    (dest / "top" / "x.txt").write_bytes(b"partial")
    fetch.extract(archive, dest)
    assert (dest / "top" / "x.txt").read_bytes() == b"x"
    assert not (dest / ".a.zip.extracting.json").exists()


def test_extract_refuses_to_overwrite_foreign_entries(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"top/x.txt": b"x"}))
    dest = tmp_path / "dest"
    (dest / "top").mkdir(parents=True)
    (dest / "top" / "mine.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="top"):
        fetch.extract(archive, dest)
    assert (dest / "top" / "mine.txt").read_text() == "mine"


def test_extract_tar_gz(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("pkg/data.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    fetch.extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "data.txt").read_bytes() == b"hello"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_extract_refuses_path_traversal_zip(tmp_path, name):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip_bytes({"fine.txt": b"ok", name: b"evil"}))
    with pytest.raises(fetch.UnsafeArchiveError, match="traversal"):
        fetch.extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_extract_refuses_path_traversal_tar(tmp_path, kind):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        if kind == "symlink":
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../etc"
            tf.addfile(info)
        else:
            info = tarfile.TarInfo("../evil.txt" if kind == "dotdot" else "/tmp/evil.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"e"))
    with pytest.raises(fetch.UnsafeArchiveError, match="Refusing"):
        fetch.extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# --------------------------------------------------------------------------------------------
# Image2Reg demo data
# --------------------------------------------------------------------------------------------


def _tiff(value: int) -> bytes:
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


@pytest.fixture
def demo_zip(http_server):
    data = _zip_bytes({name: _tiff(v) for name, v in DEMO_FILES.items()})
    (http_server.root / "test_data.zip").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_fetch_image2reg_demo_end_to_end(http_server, demo_zip, tmp_path):
    dest = tmp_path / "demo"
    root = fetch.fetch_image2reg_demo(
        dest, base_url=f"{http_server.url}/good", sha256=demo_zip, progress=False
    )
    df = fetch.read_image2reg_layout(root)
    assert list(df.columns) == ["Metadata_Condition", "Metadata_ImagePath", "Metadata_MaskPath"]
    assert df["Metadata_Condition"].tolist() == ["BRAF", "BRAF", "JUN", "UNKNOWN"]
    for img, mask in zip(df["Metadata_ImagePath"], df["Metadata_MaskPath"], strict=True):
        assert Path(img).name == Path(mask).name
        assert "/raw/" in img and "/unet_masks/" in mask
    assert tifffile.imread(df["Metadata_ImagePath"].iloc[3])[0, 0] == 7
    # the test_data folder itself is accepted as root too
    assert len(fetch.read_image2reg_layout(root / "test_data")) == 4
    # rerun: complete, nothing downloaded or extracted
    n = len(http_server.log)
    fetch.fetch_image2reg_demo(
        dest, base_url=f"{http_server.url}/good", sha256=demo_zip, progress=False
    )
    fetch.fetch_image2reg_demo(dest, base_url=f"{http_server.url}/good", progress=False)
    assert len(http_server.log) == n


def test_fetch_image2reg_demo_without_archive_kept(http_server, demo_zip, tmp_path):
    dest = tmp_path / "demo"
    url = f"{http_server.url}/good"
    fetch.fetch_image2reg_demo(dest, base_url=url, md5=None, progress=False, keep_archive=False)
    assert not (dest / "test_data.zip").exists()
    n = len(http_server.log)
    fetch.fetch_image2reg_demo(dest, base_url=url, progress=False, keep_archive=False)
    assert len(http_server.log) == n


def test_fetch_image2reg_demo_bad_checksum(http_server, demo_zip, tmp_path):
    with pytest.raises(fetch.ChecksumError, match="test_data.zip"):
        fetch.fetch_image2reg_demo(
            tmp_path / "demo", base_url=f"{http_server.url}/good", sha256="0" * 64, progress=False
        )
    assert not (tmp_path / "demo" / "test_data").exists()


def _layout(tmp_path) -> Path:
    for name, value in DEMO_FILES.items():
        path = tmp_path / "root" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_tiff(value))
    return tmp_path / "root"


def test_layout_missing_mask_names_file_and_fix(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/sample_data/BRAF/unet_masks/plate1/a01_s2.tif").unlink()
    with pytest.raises(fetch.LayoutError) as info:
        fetch.read_image2reg_layout(root)
    msg = str(info.value)
    assert "a01_s2.tif" in msg and "unet_masks" in msg and "same file name" in msg


def test_layout_empty_raw_folder(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/sample_data/JUN/raw/b02.tif").unlink()
    with pytest.raises(fetch.LayoutError, match=r"raw image folder .*JUN.* is empty"):
        fetch.read_image2reg_layout(root)


def test_layout_empty_mask_folder(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/sample_data/JUN/unet_masks/b02.tif").unlink()
    with pytest.raises(fetch.LayoutError, match=r"mask folder .*JUN.* is empty"):
        fetch.read_image2reg_layout(root)


def test_layout_empty_unknown_is_skipped_unless_required(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/UNKNOWN/images/raw/plate/x1.tif").unlink()
    df = fetch.read_image2reg_layout(root)
    assert "UNKNOWN" not in set(df["Metadata_Condition"])
    with pytest.raises(fetch.LayoutError, match="UNKNOWN"):
        fetch.read_image2reg_layout(root, include_unknown=True)
    assert len(fetch.read_image2reg_layout(root, include_unknown=False)) == 3


def test_layout_not_found(tmp_path):
    with pytest.raises(fetch.LayoutError, match="test_data"):
        fetch.read_image2reg_layout(tmp_path)


# --------------------------------------------------------------------------------------------
# Plate maps and file names
# --------------------------------------------------------------------------------------------


def test_parse_image_names_default_patterns():
    df = fetch.parse_image_names(
        [
            "x/41744_a01_s3_w1C0FFEE00-1111-2222-3333-444455556666.tif",
            "x/41744_a01_s3_w1_thumbC0FFEE.tif",  # thumbnail: skipped
            "y/Images/r02c11f04p01-ch5sk1fk1fl1.tiff",
            "z/load_data.csv",
        ]
    )
    assert df["Metadata_Well"].tolist() == ["A01", "B11"]
    assert df["Metadata_Site"].tolist() == [3, 4]
    assert df["Metadata_Channel"].tolist() == ["1", "5"]


def test_normalize_well():
    assert [fetch.normalize_well(w) for w in ["a01", "A1", "p24", " b07 "]] == [
        "A01",
        "A01",
        "P24",
        "B07",
    ]


def test_join_platemap_and_errors():
    images = pd.DataFrame(
        {"Metadata_Plate": ["1", "1", "2"], "Metadata_Well": ["A01", "A02", "A03"]}
    )
    pm = pd.DataFrame({"well_position": ["a01", "a02"], "gene_name": ["BRAF", "JUN"]})
    out = fetch.join_platemap(images, pm)
    assert out["Metadata_Condition"].tolist()[:2] == ["BRAF", "JUN"]
    assert pd.isna(out["Metadata_Condition"].iloc[2])
    pm_plate = pd.DataFrame({"plate": ["1", "2"], "well": ["A1", "A3"], "gene": ["X", "Y"]})
    out = fetch.join_platemap(images, pm_plate, well_col="well", gene_col="gene", plate_col="plate")
    assert (
        out["Metadata_Condition"].tolist()[0] == "X"
        and out["Metadata_Condition"].tolist()[2] == "Y"
    )
    with pytest.raises(KeyError, match="available"):
        fetch.join_platemap(images, pm, gene_col="symbol")
    with pytest.raises(ValueError, match="more than once"):
        fetch.join_platemap(images, pd.concat([pm, pm]))


# --------------------------------------------------------------------------------------------
# Cell Painting Gallery against a local moto S3 server
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch, tmp_path):
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


@pytest.fixture(scope="module")
def moto_url():
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


BATCH = fetch.ROHBAN_BATCH
IMG_PREFIX = f"cpg0017-rohban-pathways/broad/images/{BATCH}/images"
# plate map subset: a03 ATF4, a04 TSC2, a12 Luciferase, b03 EIF2A
PLATEMAP_TSV = (
    "well_position\tgene_name\tpert_name\n"
    "a03\tATF4\tATF4_WT.1\n"
    "a04\tTSC2\tTSC2_WT\n"
    "a12\tLuciferase\tLuciferase_CTRL\n"
    "b03\tEIF2A\tEIF2A_WT.1\n"
)


def _object_bytes(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest() * 50  # 1600 distinct bytes per object


@pytest.fixture
def cpg_bucket(moto_url, monkeypatch):
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
        s3.put_object(Bucket=bucket, Key=key, Body=_object_bytes(key), ACL="public-read")
    s3.put_object(
        Bucket=bucket, Key=fetch.ROHBAN_PLATEMAP_KEY, Body=PLATEMAP_TSV.encode(), ACL="public-read"
    )
    return bucket


def _client_with_log(moto_url):
    client = fetch.make_s3_client(moto_url)
    calls = []
    client.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **kw: calls.append(dict(params))
    )
    return client, calls


def test_fetch_cpg_images_end_to_end(moto_url, cpg_bucket, tmp_path):
    dest = tmp_path / "cpg"
    df = fetch.fetch_cpg_images(
        dest,
        genes=["ATF4", "TSC2"],
        plates=["41744", "41754"],
        bucket=cpg_bucket,
        endpoint_url=moto_url,
        progress=False,
    )
    assert list(df.columns[:5]) == [
        "Metadata_Plate",
        "Metadata_Well",
        "Metadata_Site",
        "Metadata_Condition",
        "Metadata_ImagePath",
    ]
    # 41744: 2 wells x 2 sites; 41754 (Phenix, DNA given as channel token 1 here): A03, A04
    assert df[["Metadata_Plate", "Metadata_Well", "Metadata_Site"]].values.tolist() == [
        ["41744", "A03", 1],
        ["41744", "A03", 2],
        ["41744", "A04", 1],
        ["41744", "A04", 2],
        ["41754", "A03", 1],
        ["41754", "A04", 1],
    ]
    assert df["Metadata_Condition"].tolist() == ["ATF4", "ATF4", "TSC2", "TSC2", "ATF4", "TSC2"]
    assert set(df["Metadata_Channel"]) == {"1"}
    for path, key in zip(df["Metadata_ImagePath"], df["Metadata_ObjectKey"], strict=True):
        assert Path(path).read_bytes() == _object_bytes(key)
        assert Path(path).is_relative_to(dest)
    assert not list(dest.rglob("*.part"))
    assert (dest / "platemaps" / "TAORF_REFERENCE_SET.txt").exists()

    # rerun: everything verified on disk, nothing downloaded
    client, calls = _client_with_log(moto_url)
    df2 = fetch.fetch_cpg_images(
        dest,
        genes=["ATF4", "TSC2"],
        plates=["41744", "41754"],
        bucket=cpg_bucket,
        client=client,
        progress=False,
    )
    pd.testing.assert_frame_equal(df, df2)
    assert calls == []

    # a corrupt file (same size) and a partial download are repaired / resumed
    bad = Path(df["Metadata_ImagePath"].iloc[0])
    bad.write_bytes(b"\x00" * bad.stat().st_size)
    resumed = Path(df["Metadata_ImagePath"].iloc[1])
    content = resumed.read_bytes()
    resumed.unlink()
    resumed.with_name(resumed.name + ".part").write_bytes(content[:700])
    fetch.fetch_cpg_images(
        dest,
        genes=["ATF4", "TSC2"],
        plates=["41744", "41754"],
        bucket=cpg_bucket,
        client=client,
        progress=False,
    )
    assert bad.read_bytes() == _object_bytes(df["Metadata_ObjectKey"].iloc[0])
    assert resumed.read_bytes() == content
    ranges = [c.get("Range") for c in calls]
    assert sorted(ranges, key=str) == [None, "bytes=700-"]


def test_fetch_cpg_images_all_plates_other_channel_and_local_platemap(
    moto_url, cpg_bucket, tmp_path
):
    pm = tmp_path / "pm.tsv"
    pm.write_text(PLATEMAP_TSV)
    df = fetch.fetch_cpg_images(
        tmp_path / "cpg",
        genes="Luciferase",
        bucket=cpg_bucket,
        endpoint_url=moto_url,
        platemap=pm,
        channel="Mito",
        sites=[2],
        progress=False,
    )
    assert df[
        ["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Channel"]
    ].values.tolist() == [["41744", "A12", 2, "5"]]


def test_fetch_cpg_images_errors(moto_url, cpg_bucket, tmp_path):
    kw = {"bucket": cpg_bucket, "endpoint_url": moto_url, "progress": False}
    with pytest.raises(ValueError, match="No image folder for plate 99999"):
        fetch.fetch_cpg_images(tmp_path, genes=["ATF4"], plates=["99999"], **kw)
    with pytest.raises(ValueError, match="No images of genes"):
        fetch.fetch_cpg_images(tmp_path, genes=["NOTAGENE"], plates=["41744"], **kw)
    with pytest.raises(ValueError, match="file name patterns"):
        fetch.fetch_cpg_images(tmp_path, genes=["ATF4"], plates=["41744"], channel="9", **kw)
    with pytest.raises(FileNotFoundError, match="Plate map"):
        fetch.fetch_cpg_images(
            tmp_path, genes=["ATF4"], plates=["41744"], platemap="nope.tsv", **kw
        )
    assert not list(tmp_path.rglob("*.tif"))


def test_s3_errors_are_bounded_and_clear(tmp_path):
    pytest.importorskip("boto3")
    sock = socket.socket()
    sock.bind((LOCAL, 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    client = fetch.make_s3_client(f"http://{LOCAL}:{port}", retries={"max_attempts": 1})
    with pytest.raises(fetch.DownloadError, match="Could not list"):
        fetch.fetch_cpg_images(tmp_path, genes=["ATF4"], client=client, progress=False)
    with pytest.raises(fetch.DownloadError, match="after 2 attempts"):
        fetch._s3_download(
            client, "b", "k.tif", tmp_path / "k.tif", 10, None, retries=1, backoff=0.01
        )
    assert not (tmp_path / "k.tif").exists()


# --------------------------------------------------------------------------------------------
# Command line (python3 run_all.py data ...)
# --------------------------------------------------------------------------------------------


def test_main_demo_and_layout(http_server, demo_zip, tmp_path, capsys):
    dest = tmp_path / "demo"
    argv = ["demo", "--dest", str(dest), "--base-url", f"{http_server.url}/good", "--quiet"]
    assert fetch.main([*argv, "--sha256", demo_zip]) == 0
    index = pd.read_csv(dest / "images.csv")
    assert index["Metadata_Condition"].tolist() == ["BRAF", "BRAF", "JUN", "UNKNOWN"]
    assert "4 images of 3 conditions" in capsys.readouterr().out
    (dest / "images.csv").unlink()
    assert fetch.main(["layout", "--root", str(dest)]) == 0
    assert (dest / "images.csv").is_file()
    # a wrong checksum is reported with the fix, and nothing is written
    assert fetch.main([*argv[:2], str(tmp_path / "bad"), *argv[3:], "--md5", "0" * 32]) == 1
    assert "Checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "images.csv").exists()


def test_main_cpg(moto_url, cpg_bucket, tmp_path, capsys):
    dest = tmp_path / "cpg"
    argv = ["cpg", "--dest", str(dest), "--bucket", cpg_bucket, "--endpoint-url", moto_url]
    assert fetch.main([*argv, "--genes", "ATF4,TSC2", "--plates", "41744", "--quiet"]) == 0
    index = pd.read_csv(dest / "images.csv")
    assert index["Metadata_Condition"].tolist() == ["ATF4", "ATF4", "TSC2", "TSC2"]
    from i2r_utils.nuclei import load_screen_metadata

    meta = load_screen_metadata(dest)  # the pipeline's reader: images to segment
    assert (meta["Metadata_MaskPath"] == "").all()
    assert [Path(p).read_bytes() for p in meta["Metadata_ImagePath"]] == [
        Path(p).read_bytes() for p in index["Metadata_ImagePath"]
    ]
    assert fetch.main([*argv, "--genes", "NOTAGENE", "--plates", "41744", "--quiet"]) == 1
    assert "No images of genes" in capsys.readouterr().err
