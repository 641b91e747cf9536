"""Tests of i2r_pipeline.fetch.s3 against a local moto S3 server (127.0.0.1 only)."""

from __future__ import annotations

import pytest
from fetch_servers import (
    IMG_PREFIX,
    LOCAL,
    closed_port,
    object_bytes,
)
from tqdm import tqdm

from i2r_pipeline.fetch.s3 import download_object, list_pages, make_s3_client
from i2r_utils.io import InputError

pytestmark = pytest.mark.usefixtures("no_real_aws")  # fixtures: tests/conftest.py


def _first_object(client, bucket):
    (page,) = list_pages(client, bucket, f"{IMG_PREFIX}/41744/")
    obj = page["Contents"][0]
    return obj["Key"], int(obj["Size"]), obj["ETag"]


def test_list_pages_folders_and_objects(moto_url, cpg_bucket):
    client = make_s3_client(moto_url)
    (page,) = list_pages(client, cpg_bucket, f"{IMG_PREFIX}/", delimiter="/")
    folders = [cp["Prefix"].rsplit("/", 2)[-2] for cp in page["CommonPrefixes"]]
    assert folders == ["41744", "41754__2013-10-11T10_00_00-Measurement1"]
    (page,) = list_pages(client, cpg_bucket, f"{IMG_PREFIX}/41744/")
    assert len(page["Contents"]) == 4 * 2 * 5 + 2


def test_download_object_resumes_verifies_and_keeps_progress(moto_url, cpg_bucket, tmp_path):
    client = make_s3_client(moto_url)
    key, size, etag = _first_object(client, cpg_bucket)
    dest = tmp_path / "o.tif"
    dest.with_name("o.tif.part").write_bytes(object_bytes(key)[:500])
    with tqdm(total=size, disable=True) as bar:
        assert download_object(client, cpg_bucket, key, dest, size, etag, bar=bar)
    assert dest.read_bytes() == object_bytes(key)
    assert not download_object(client, cpg_bucket, key, dest, size, etag)  # complete: kept
    with pytest.raises(InputError, match="Checksum mismatch.*ETag is the md5"):
        download_object(client, cpg_bucket, key, tmp_path / "p.tif", size, '"' + "0" * 32 + '"')
    assert not (tmp_path / "p.tif").exists() and not (tmp_path / "p.tif.part").exists()


def test_s3_errors_are_bounded_and_clear(tmp_path):
    pytest.importorskip("boto3")
    # nothing listens there
    client = make_s3_client(f"http://{LOCAL}:{closed_port()}", retries={"max_attempts": 1})
    with pytest.raises(InputError, match="Could not list"):
        list_pages(client, "b", "prefix/")
    with pytest.raises(InputError, match="after 2 attempts"):
        download_object(client, "b", "k.tif", tmp_path / "k.tif", 10, None, retries=1, backoff=0.01)
    assert not (tmp_path / "k.tif").exists()
