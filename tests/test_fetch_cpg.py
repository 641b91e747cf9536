"""Tests of i2r_pipeline.fetch.cpg against a local moto S3 server (127.0.0.1 only)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from fetch_servers import (
    IMG_PREFIX,
    LOCAL,
    PLATEMAP_TSV,
    client_with_log,
    closed_port,
    object_bytes,
)

from i2r_pipeline.fetch.cpg import (
    ROHBAN_2017,
    fetch_cpg_images,
    plan_cpg_images,
    screen_metadata,
)
from i2r_pipeline.fetch.s3 import make_s3_client
from i2r_utils.io import InputError

pytestmark = pytest.mark.usefixtures("no_real_aws")  # fixtures: tests/conftest.py


def test_fetch_cpg_images_end_to_end(moto_url, cpg_bucket, tmp_path):
    dest = tmp_path / "cpg"
    dataset = replace(ROHBAN_2017, bucket=cpg_bucket)
    genes, plates = ["ATF4", "TSC2"], ["41744", "41754"]
    df = fetch_cpg_images(
        dest, genes=genes, plates=plates, dataset=dataset, endpoint_url=moto_url, progress=False
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
        assert Path(path).read_bytes() == object_bytes(key)
        assert Path(path).is_relative_to(dest)
    assert not list(dest.rglob("*.part"))
    assert (dest / "platemaps" / "TAORF_REFERENCE_SET.txt").exists()

    # rerun: everything verified on disk, nothing downloaded
    client, calls = client_with_log(moto_url)
    df2 = fetch_cpg_images(
        dest, genes=genes, plates=plates, dataset=dataset, client=client, progress=False
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
    fetch_cpg_images(
        dest, genes=genes, plates=plates, dataset=dataset, client=client, progress=False
    )
    assert bad.read_bytes() == object_bytes(df["Metadata_ObjectKey"].iloc[0])
    assert resumed.read_bytes() == content
    ranges = [c.get("Range") for c in calls]
    assert sorted(ranges, key=str) == [None, "bytes=700-"]

    # the screen table: paths relative to the fetch folder, no masks
    meta = screen_metadata(df, dest)
    assert (
        meta["Metadata_ImagePath"].iloc[0]
        == Path(df["Metadata_ImagePath"].iloc[0]).relative_to(dest.resolve()).as_posix()
    )
    assert (meta["Metadata_MaskPath"] == "").all()


def test_plan_cpg_images_downloads_no_image(moto_url, cpg_bucket, tmp_path):
    client, calls = client_with_log(moto_url)
    dataset = replace(ROHBAN_2017, bucket=cpg_bucket)
    plan = plan_cpg_images(client, tmp_path, ["EIF2A"], plates=["41744"], dataset=dataset)
    assert plan["Metadata_Well"].tolist() == ["B03", "B03"]
    assert [p.relative_to(tmp_path).parts[0] for p in plan["_path"]] == ["41744", "41744"]
    assert [c["Key"] for c in calls] == [dataset.platemap]  # only the plate map
    assert not list(tmp_path.rglob("*.tif"))


def test_fetch_cpg_images_all_plates_other_channel_and_local_platemap(
    moto_url, cpg_bucket, tmp_path
):
    pm = tmp_path / "pm.tsv"
    pm.write_text(PLATEMAP_TSV)
    df = fetch_cpg_images(
        tmp_path / "cpg",
        genes="Luciferase",
        dataset=replace(ROHBAN_2017, bucket=cpg_bucket, platemap=pm),
        endpoint_url=moto_url,
        channel="Mito",
        sites=[2],
        progress=False,
    )
    assert df[
        ["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Channel"]
    ].values.tolist() == [["41744", "A12", 2, "5"]]


def test_fetch_cpg_images_errors(moto_url, cpg_bucket, tmp_path):
    dataset = replace(ROHBAN_2017, bucket=cpg_bucket)
    kw = {"dataset": dataset, "endpoint_url": moto_url, "progress": False}
    with pytest.raises(InputError, match="No image folder for plate 99999"):
        fetch_cpg_images(tmp_path, genes=["ATF4"], plates=["99999"], **kw)
    with pytest.raises(InputError, match="No images of genes"):
        fetch_cpg_images(tmp_path, genes=["NOTAGENE"], plates=["41744"], **kw)
    with pytest.raises(InputError, match="file name patterns"):
        fetch_cpg_images(tmp_path, genes=["ATF4"], plates=["41744"], channel="9", **kw)
    with pytest.raises(InputError, match=r"Plate map 'nope.tsv' is neither a local file"):
        fetch_cpg_images(
            tmp_path,
            genes=["ATF4"],
            plates=["41744"],
            **{**kw, "dataset": replace(dataset, platemap="nope.tsv")},
        )
    with pytest.raises(InputError, match="at least one gene"):
        fetch_cpg_images(tmp_path, genes=[], **kw)
    with pytest.raises(InputError, match="placeholder"):
        fetch_cpg_images(
            tmp_path, genes=["ATF4"], **{**kw, "dataset": replace(dataset, prefix="x/")}
        )
    assert not list(tmp_path.rglob("*.tif"))


def test_fetch_cpg_images_listing_error_is_clear(tmp_path):
    pytest.importorskip("boto3")
    # nothing listens there
    client = make_s3_client(f"http://{LOCAL}:{closed_port()}", retries={"max_attempts": 1})
    with pytest.raises(InputError, match="Could not list"):
        fetch_cpg_images(tmp_path, genes=["ATF4"], client=client, progress=False)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("41744/../../../../../../../escape/41744_a03_s1_w19F3A2B7C.tif", "outside"),
        ("../41744_a03_s1_w19F3A2B7C.tif", "plate folder of s3://"),
    ],
)
def test_remote_names_that_would_write_outside_dest_are_refused_before_writing(
    moto_url, cpg_bucket, tmp_path, key, message
):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    s3.put_object(Bucket=cpg_bucket, Key=f"{IMG_PREFIX}/{key}", Body=b"x" * 10)
    dest = tmp_path / "deep" / "a" / "b" / "dest"
    dataset = replace(ROHBAN_2017, bucket=cpg_bucket)
    with pytest.raises(InputError, match=message):
        fetch_cpg_images(dest, genes=["ATF4"], dataset=dataset, endpoint_url=moto_url,
                         progress=False)  # fmt: skip
    assert not list(tmp_path.rglob("*.*"))  # nothing written, not even the plate map
