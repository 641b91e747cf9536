"""Tests of i2r_pipeline.fetch.image2reg: the Zenodo demo archive and its layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile
from fetch_servers import DEMO_FILES, serve_demo_zip, tiff_bytes

from i2r_pipeline.fetch.image2reg import fetch_image2reg_demo, read_image2reg_layout
from i2r_utils.io import InputError

pytestmark = pytest.mark.usefixtures("no_real_aws")  # fixtures: tests/conftest.py


@pytest.fixture
def demo_zip(http_server):
    return serve_demo_zip(http_server)


def test_fetch_image2reg_demo_end_to_end(http_server, demo_zip, tmp_path):
    dest = tmp_path / "demo"
    root = fetch_image2reg_demo(
        dest, base_url=f"{http_server.url}/good", sha256=demo_zip, progress=False
    )
    df = read_image2reg_layout(root)
    assert list(df.columns) == ["Metadata_Condition", "Metadata_ImagePath", "Metadata_MaskPath"]
    assert df["Metadata_Condition"].tolist() == ["BRAF", "BRAF", "JUN", "UNKNOWN"]
    for img, mask in zip(df["Metadata_ImagePath"], df["Metadata_MaskPath"], strict=True):
        assert Path(img).name == Path(mask).name
        assert "/raw/" in img and "/unet_masks/" in mask
    assert tifffile.imread(df["Metadata_ImagePath"].iloc[3])[0, 0] == 7
    # the test_data folder itself is accepted as root too
    assert len(read_image2reg_layout(root / "test_data")) == 4
    # rerun: complete, nothing downloaded or extracted
    n = len(http_server.log)
    fetch_image2reg_demo(dest, base_url=f"{http_server.url}/good", sha256=demo_zip, progress=False)
    fetch_image2reg_demo(dest, base_url=f"{http_server.url}/good", progress=False)
    assert len(http_server.log) == n


def test_fetch_image2reg_demo_without_archive_kept(http_server, demo_zip, tmp_path):
    dest = tmp_path / "demo"
    url = f"{http_server.url}/good"
    fetch_image2reg_demo(dest, base_url=url, md5=None, progress=False, keep_archive=False)
    assert not (dest / "test_data.zip").exists()
    n = len(http_server.log)
    fetch_image2reg_demo(dest, base_url=url, progress=False, keep_archive=False)
    assert len(http_server.log) == n


def test_fetch_image2reg_demo_bad_checksum(http_server, demo_zip, tmp_path):
    with pytest.raises(InputError, match="Checksum mismatch.*test_data.zip"):
        fetch_image2reg_demo(
            tmp_path / "demo", base_url=f"{http_server.url}/good", sha256="0" * 64, progress=False
        )
    assert not (tmp_path / "demo" / "test_data").exists()


def _layout(tmp_path) -> Path:
    for name, value in DEMO_FILES.items():
        path = tmp_path / "root" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tiff_bytes(value))
    return tmp_path / "root"


def test_layout_missing_mask_names_file_and_fix(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/sample_data/BRAF/unet_masks/plate1/a01_s2.tif").unlink()
    with pytest.raises(InputError) as info:
        read_image2reg_layout(root)
    msg = str(info.value)
    assert "a01_s2.tif" in msg and "unet_masks" in msg and "same file name" in msg


def test_layout_empty_raw_folder(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/sample_data/JUN/raw/b02.tif").unlink()
    with pytest.raises(InputError, match=r"raw image folder .*JUN.* is empty"):
        read_image2reg_layout(root)


def test_layout_empty_mask_folder(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/sample_data/JUN/unet_masks/b02.tif").unlink()
    with pytest.raises(InputError, match=r"mask folder .*JUN.* is empty"):
        read_image2reg_layout(root)


def test_layout_skips_hidden_files_and_folders(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/sample_data/JUN/raw/.hidden.tif").write_bytes(tiff_bytes(9))
    (root / "test_data/sample_data/JUN/raw/.cache").mkdir()
    (root / "test_data/sample_data/JUN/raw/.cache/c.tif").write_bytes(tiff_bytes(9))
    assert len(read_image2reg_layout(root)) == 4


def test_layout_empty_unknown_is_skipped_unless_required(tmp_path):
    root = _layout(tmp_path)
    (root / "test_data/UNKNOWN/images/raw/plate/x1.tif").unlink()
    df = read_image2reg_layout(root)
    assert "UNKNOWN" not in set(df["Metadata_Condition"])
    with pytest.raises(InputError, match="UNKNOWN"):
        read_image2reg_layout(root, include_unknown=True)
    assert len(read_image2reg_layout(root, include_unknown=False)) == 3


def test_layout_not_found(tmp_path):
    with pytest.raises(InputError, match="test_data"):
        read_image2reg_layout(tmp_path)
