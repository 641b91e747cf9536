import numpy as np
import pandas as pd
import pytest
import tifffile

from i2r_utils.io import (
    InputError,
    atomic_path,
    load_metadata,
    read_image,
    read_mask,
    read_table,
    sha256_file,
    write_json,
    write_table,
)  # fmt: skip


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_tables_and_json_round_trip(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for suffix in (".parquet", ".csv", ".tsv"):
        pd.testing.assert_frame_equal(read_table(write_table(df, tmp_path / f"t{suffix}")), df)
    write_json({"x": np.int64(3)}, tmp_path / "j.json")
    assert '"x": 3' in (tmp_path / "j.json").read_text()
    with pytest.raises(InputError, match="not found"):
        read_table(tmp_path / "missing.parquet")


def test_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f").startswith("ba7816bf")


def test_mask_errors_name_the_file(tmp_path):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, np.zeros((8, 8), np.uint16))
    assert read_image(img).shape == (8, 8)
    bad = tmp_path / "float.tif"
    tifffile.imwrite(bad, np.full((8, 8), 0.5, np.float32))
    with pytest.raises(InputError, match=r"float\.tif.*non-integer"):
        read_mask(bad)
    other = tmp_path / "shape.tif"
    tifffile.imwrite(other, np.zeros((4, 8), np.uint16))
    with pytest.raises(InputError, match=r"shape\.tif.*differs"):
        read_mask(other, (8, 8))
    multi = tmp_path / "rgb.tif"
    tifffile.imwrite(multi, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="2-D"):
        read_mask(multi)
    pages = tmp_path / "pages.tif"
    tifffile.imwrite(pages, np.zeros((8, 8), np.uint16))
    tifffile.imwrite(pages, np.zeros((8, 8), np.uint16), append=True)
    with pytest.raises(InputError, match="multi-page"):
        read_image(pages)


def test_load_metadata_reports_missing_mask(tiny_screen, tmp_path):
    meta = load_metadata(tiny_screen)
    assert meta.Metadata_Condition.eq("EMPTY").any()
    table = pd.read_csv(tiny_screen / "metadata.csv")
    table.loc[0, "Metadata_MaskPath"] = "masks/none.tif"
    (tmp_path / "metadata.csv").write_text(table.to_csv(index=False))
    for col in ("Metadata_ImagePath",):
        table[col] = [str(tiny_screen / p) for p in table[col]]
    table.to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(InputError, match="no mask with the same file name"):
        load_metadata(tmp_path)
    with pytest.raises(InputError, match="metadata table not found"):
        load_metadata(tmp_path / "nowhere")
