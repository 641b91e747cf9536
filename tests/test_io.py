import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from screen_helpers import small_screen

from i2r_utils.io import (
    InputError,
    atomic_path,
    file_digest,
    load_metadata,
    normalize_percentile,
    read_image,
    read_mask,
    read_table,
    save_torch,
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


def test_atomic_path_gives_outputs_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "x.json")
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


def test_tables_and_json_round_trip(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for suffix in (".parquet", ".csv", ".tsv"):
        pd.testing.assert_frame_equal(read_table(write_table(df, tmp_path / f"t{suffix}")), df)
    write_json({"x": np.int64(3)}, tmp_path / "j.json")
    assert '"x": 3' in (tmp_path / "j.json").read_text()
    with pytest.raises(InputError, match="not found"):
        read_table(tmp_path / "missing.parquet")


def test_save_torch_gives_identical_files_for_identical_objects(tmp_path):
    import torch

    obj = {"w": torch.arange(6.0).reshape(2, 3), "name": "x"}
    a, b = save_torch(obj, tmp_path / "a.pt"), save_torch(obj, tmp_path / "sub" / "b.pt")
    assert file_digest(a) == file_digest(b)  # the file name does not enter the bytes
    assert file_digest(save_torch(obj, a)) == file_digest(b)  # rewriting in place too
    assert torch.equal(torch.load(b, weights_only=True)["w"], obj["w"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.pt", "b.pt", "sub"]


def test_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_digest(tmp_path / "f").startswith("ba7816bf")


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


def test_read_formats(tmp_path):
    import imageio.v3 as iio

    from i2r_utils.io import read_image

    grey = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    for dtype in (np.uint8, np.uint16):
        tifffile.imwrite(tmp_path / f"{dtype.__name__}.tif", grey.astype(dtype))
        np.testing.assert_array_equal(read_image(tmp_path / f"{dtype.__name__}.tif"), grey)
    iio.imwrite(tmp_path / "a.png", grey)
    iio.imwrite(tmp_path / "b.png", grey.astype(np.uint16) * 100)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), grey)
    assert read_image(tmp_path / "b.png").max() == 252 * 100  # 16-bit PNG
    iio.imwrite(tmp_path / "rgb_grey.png", np.stack([grey] * 3, -1))  # grey saved as RGB
    np.testing.assert_array_equal(read_image(tmp_path / "rgb_grey.png"), grey)
    iio.imwrite(tmp_path / "rgb.png", np.stack([grey, grey // 2, grey], -1))
    with pytest.raises(InputError, match=r"rgb\.png.*multi-channel"):
        read_image(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "one.tif", grey[None])  # (1, h, w) is one plane
    assert read_image(tmp_path / "one.tif").shape == (8, 8)
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported format"):
        read_image(tmp_path / "a.jpg")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"broken\.tif: cannot be read"):
        read_image(tmp_path / "broken.tif")


def test_binary_masks_are_rejected(tmp_path):
    two = np.zeros((16, 16), np.uint8)
    two[2:6, 2:6] = two[9:13, 9:13] = 255  # two objects sharing one value
    tifffile.imwrite(tmp_path / "bin.tif", two)
    with pytest.raises(InputError, match=r"bin\.tif: mask looks binary.*skimage\.measure\.label"):
        read_mask(tmp_path / "bin.tif")
    tifffile.imwrite(tmp_path / "bool.tif", two > 0)
    with pytest.raises(InputError, match=r"bool\.tif: mask is (binary|non-integer)"):
        read_mask(tmp_path / "bool.tif")
    one = np.zeros((16, 16), np.uint16)
    one[2:7, 2:7] = 1  # a single nucleus is a valid label image, stray pixels or not
    one[12, 12] = 1
    tifffile.imwrite(tmp_path / "one.tif", one)
    assert read_mask(tmp_path / "one.tif").max() == 1


def test_pair_images_masks(tmp_path):
    from i2r_utils.io import list_images, pair_images_masks

    images, masks = tmp_path / "raw", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    with pytest.raises(InputError, match=r"raw: the image folder is empty.*raw chromatin"):
        pair_images_masks(images, masks)
    with pytest.raises(InputError, match="image folder not found"):
        list_images(tmp_path / "nowhere")
    for name in ("a.tif", "b.tif", "c.TIFF"):
        tifffile.imwrite(images / name, np.ones((4, 4), np.uint16))
    (images / "notes.txt").write_text("ignored")
    with pytest.raises(InputError, match=r"masks: the mask folder is empty.*leave out"):
        pair_images_masks(images, masks)
    tifffile.imwrite(masks / "a.tif", np.zeros((4, 4), np.uint16))
    tifffile.imwrite(masks / "b.png", np.zeros((4, 4), np.uint16))  # same stem is accepted
    with pytest.raises(InputError, match=r"c\.TIFF: no mask with the same file name"):
        pair_images_masks(images, masks)
    table = pair_images_masks(images, masks, strict=False)
    assert table["Metadata_ImageName"].tolist() == ["a", "b", "c"]
    assert [Path(p).name if p else "" for p in table["Metadata_MaskPath"]] == ["a.tif", "b.png", ""]
    assert (pair_images_masks(images)["Metadata_MaskPath"] == "").all()


def test_load_metadata_with_optional_masks(tiny_screen, tmp_path):
    full = load_metadata(tiny_screen)
    pd.testing.assert_frame_equal(load_metadata(tiny_screen, require_masks=False), full)
    without = small_screen(tiny_screen, tmp_path / "b", masks=False)
    meta = load_metadata(without, require_masks=False)
    assert (meta["Metadata_MaskPath"] == "").all() and len(meta) == 6
    with pytest.raises(InputError, match=r"missing columns \['Metadata_MaskPath'\]"):
        load_metadata(without)
    mixed = small_screen(tiny_screen, tmp_path / "c", n=2)
    table = pd.read_csv(mixed / "metadata.csv")
    table.loc[1, "Metadata_MaskPath"] = np.nan  # an empty entry: segment that image only
    table.to_csv(mixed / "metadata.csv", index=False)
    meta = load_metadata(mixed, require_masks=False)
    assert meta["Metadata_MaskPath"].tolist()[1] == "" and meta["Metadata_MaskPath"][0]


def test_no_matching_mask_file(tiny_screen, tmp_path):
    paths = [str(tmp_path / f"masks/P01/other_{i}.tif") for i in range(6)]
    data = small_screen(tiny_screen, tmp_path, Metadata_MaskPath=paths)
    for require in (True, False):
        with pytest.raises(InputError, match="no mask with the same file name") as err:
            load_metadata(data, require_masks=require)
        assert "other_0.tif" in str(err.value)
    partial = pd.read_csv(data / "metadata.csv")
    partial.loc[0, "Metadata_MaskPath"] = ""
    partial.to_csv(data / "metadata.csv", index=False)
    with pytest.raises(InputError, match="leave Metadata_MaskPath empty"):
        load_metadata(data, require_masks=False)


def test_blank_images_only_where_asked(tmp_path):
    tifffile.imwrite(tmp_path / "blank.tif", np.full((8, 8), 7, np.uint16))
    assert read_image(tmp_path / "blank.tif").max() == 7
    with pytest.raises(InputError, match=r"blank\.tif: image is blank \(every pixel is 7\)"):
        read_image(tmp_path / "blank.tif", allow_blank=False)


@pytest.mark.parametrize("kind", ["uint16", "float", "constant", "tiny"])
def test_normalize_percentile_matches_numpy_percentiles(kind):
    rng = np.random.default_rng(1)
    image = {
        "uint16": rng.integers(90, 4000, (64, 80)).astype(np.uint16),
        "float": rng.normal(0.5, 0.2, (64, 80)),
        "constant": np.full((10, 10), 7, np.uint16),
        "tiny": np.array([[3, 9]], np.uint16),
    }[kind].astype(np.float32)
    lo, hi = np.percentile(image, [1, 99.9])
    expected = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    np.testing.assert_allclose(normalize_percentile(image), expected, atol=1e-6)
    # unclipped, other percentiles (the segmentation's normalisation)
    lo, hi = np.percentile(image, [1, 99.8])
    expected = (image - lo) / max(hi - lo, 1e-6)
    out = normalize_percentile(image, 1, 99.8, clip=False)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_list_images_refuses_two_files_with_one_stem(tmp_path):
    from i2r_utils.io import InputError, list_images

    for name in ("a.tif", "a.png", "b.tif"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match=r"a\.png and a\.tif have the same name stem"):
        list_images(tmp_path)
    (tmp_path / "a.png").unlink()
    assert [p.name for p in list_images(tmp_path)] == ["a.tif", "b.tif"]


def test_temp_folder_has_mkdirs_permissions_not_0700(tmp_path):
    import os

    from i2r_utils.io import temp_folder

    old = os.umask(0o022)
    try:
        made = temp_folder(tmp_path, ".x.tmp-")
    finally:
        os.umask(old)
    assert made.parent == tmp_path and made.name.startswith(".x.tmp-")
    assert made.stat().st_mode & 0o777 == 0o755


def test_relative_paths_below_the_screen_folder_only(tmp_path):
    from i2r_utils.io import relative_paths

    table = pd.DataFrame({
        "Metadata_ImagePath": [str(tmp_path / "images" / "a.tif"), "/elsewhere/b.tif"],
        "Metadata_MaskPath": [str(tmp_path / "masks" / "a.tif"), ""],
    })  # fmt: skip
    out = relative_paths(table, tmp_path)
    assert out["Metadata_ImagePath"].tolist() == ["images/a.tif", "/elsewhere/b.tif"]
    assert out["Metadata_MaskPath"].tolist() == ["masks/a.tif", ""]
    assert relative_paths(table, None) is table
    assert table["Metadata_ImagePath"].iloc[0].startswith(str(tmp_path))  # a copy


@pytest.mark.parametrize(
    "offset", [10**8, 10**9, 2**31 + 5, 2**32 - 100], ids=["1e8", "1e9", "2^31", "uint32-max"]
)
def test_sparse_or_huge_label_ids_are_renumbered_on_read(tmp_path, offset):
    """Memory must not grow with the largest id; uint32 ids >= 2**31 must not wrap negative."""
    from i2r_utils.nucleus_filter import filter_nuclei

    labels = np.zeros((64, 64), np.int64)
    labels[5:15, 5:15], labels[30:40, 30:45], labels[50:60, 10:20] = 1, 2, 3
    sparse = np.where(labels > 0, labels * 7 + offset, 0).astype(np.uint32)
    tifffile.imwrite(tmp_path / "m.tif", sparse)
    got = read_mask(tmp_path / "m.tif", (64, 64))
    assert got.dtype == np.int32 and np.array_equal(got, labels)  # 1..N in the ids' order
    _, counts = filter_nuclei(got)  # per-label tables as long as the nuclei, not the largest id
    assert counts["n_objects"] == 3
    # also as float ids (integer-valued) and without background
    tifffile.imwrite(tmp_path / "f.tif", np.where(labels > 0, labels * 1e12, 0))
    assert np.array_equal(read_mask(tmp_path / "f.tif"), labels)
    tifffile.imwrite(tmp_path / "full.tif", (labels + offset).astype(np.uint32))
    assert np.array_equal(read_mask(tmp_path / "full.tif"), labels + 1)


def test_label_ids_up_to_the_pixel_count_are_kept(tmp_path):
    labels = np.zeros((32, 32), np.uint16)
    labels[2:8, 2:8], labels[20:28, 20:28] = 7, 1024  # gaps, largest id = the pixel count
    tifffile.imwrite(tmp_path / "m.tif", labels)
    assert np.array_equal(read_mask(tmp_path / "m.tif"), labels.astype(np.int32))
    labels[labels == 1024] = 1025
    tifffile.imwrite(tmp_path / "m.tif", labels)
    assert sorted(np.unique(read_mask(tmp_path / "m.tif"))) == [0, 1, 2]
