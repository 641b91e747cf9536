"""Tests of ``python3 run_all.py data ...`` (i2r_pipeline.fetch.main) on local servers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fetch_servers import LOCAL, closed_port, make_cpg_bucket, serve_demo_zip

from i2r_pipeline.fetch import main

pytestmark = pytest.mark.usefixtures("no_real_aws")  # fixtures: tests/conftest.py


def test_main_demo_and_layout(http_server, tmp_path, capsys):
    demo_zip = serve_demo_zip(http_server)
    dest = tmp_path / "demo"
    argv = ["demo", "--dest", str(dest), "--base-url", f"{http_server.url}/good", "--quiet"]
    assert main([*argv, "--sha256", demo_zip]) == 0
    index = pd.read_csv(dest / "images.csv")
    assert index["Metadata_Condition"].tolist() == ["BRAF", "BRAF", "JUN", "UNKNOWN"]
    assert "4 images of 3 conditions" in capsys.readouterr().out
    (dest / "images.csv").unlink()
    assert main(["layout", "--root", str(dest)]) == 0
    assert (dest / "images.csv").is_file()
    # a wrong checksum is reported with the fix, and nothing is written
    assert main([*argv[:2], str(tmp_path / "bad"), *argv[3:], "--md5", "0" * 32]) == 1
    assert "Checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "images.csv").exists()
    # a folder without the layout is reported, not raised
    assert main(["layout", "--root", str(tmp_path / "nothing")]) == 1
    assert "does not contain the Image2Reg layout" in capsys.readouterr().err


def test_main_cpg(moto_url, tmp_path, capsys):
    bucket = make_cpg_bucket(moto_url)
    dest = tmp_path / "cpg"
    argv = ["cpg", "--dest", str(dest), "--bucket", bucket, "--endpoint-url", moto_url]
    assert main([*argv, "--genes", "ATF4,TSC2", "--plates", "41744", "--quiet"]) == 0
    assert "include the EMPTY control wells" in capsys.readouterr().out
    index = pd.read_csv(dest / "images.csv")
    assert index["Metadata_Condition"].tolist() == ["ATF4", "ATF4", "TSC2", "TSC2"]
    from i2r_utils.io import load_metadata

    meta = load_metadata(dest, require_masks=False)  # the pipeline's reader: images to segment
    assert (meta["Metadata_MaskPath"] == "").all()
    assert [Path(p).read_bytes() for p in meta["Metadata_ImagePath"]] == [
        Path(p).read_bytes() for p in index["Metadata_ImagePath"]
    ]
    assert main([*argv, "--genes", "NOTAGENE", "--plates", "41744", "--quiet"]) == 1
    assert "No images of genes" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["demo", "cpg"])
def test_a_dest_that_is_a_file_or_below_one_is_one_line(tmp_path, capsys, source):
    afile = tmp_path / "afile"
    afile.write_text("x")
    extra = ["--genes", "ATF4", "--endpoint-url", f"http://{LOCAL}:1"] if source == "cpg" else []
    for dest, message in [(afile, "afile is a file, not a folder"), (afile / "d", "lies below")]:
        assert main([source, "--dest", str(dest), "--quiet", *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"run_all.py data {source}: error: --dest ") and message in err
        assert err.count("\n") == 1
    assert afile.read_text() == "x"


def test_offline_demo_keeps_no_empty_dest_and_claims_no_partial_file(tmp_path, capsys, monkeypatch):
    from i2r_pipeline.fetch import partfile

    monkeypatch.setattr(partfile.time, "sleep", lambda s: None)  # no backoff waits
    dest = tmp_path / "demo"
    url = f"http://{LOCAL}:{closed_port()}/files"
    assert main(["demo", "--dest", str(dest), "--base-url", url, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("run_all.py data demo: error: Could not download") and "\n" not in err[:-1]
    )
    assert "Nothing was received or kept" in err and ".part" not in err
    assert not dest.exists()
