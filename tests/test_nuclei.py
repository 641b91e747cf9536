import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.measure import regionprops

from i2r_utils.io import InputError, load_metadata, read_mask
from i2r_utils.nuclei import (
    FILTERS,
    NucleusFilter,
    crop_nuclei,
    filter_nuclei,
    filter_nuclei_regionprops,
    load_crops,
    load_screen_metadata,
    measure_objects,
    merge_plates,
    normalize_image,
    plate_outputs,
    preprocess_plate,
    preprocess_screen,
    select_plates,
)


def disks():
    lab = np.zeros((200, 200), np.int32)
    yy, xx = np.mgrid[:200, :200]
    for i, (cy, cx, r) in enumerate([(50, 50, 15), (120, 60, 8), (100, 150, 20), (5, 100, 15)], 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = i
    return lab


def odd_shapes(seed=0):
    """Convex and non-convex objects (L, U, rings, thin bars) on a 300x300 canvas."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((300, 300), np.int32)
    k = 0
    for r in range(0, 300, 50):
        for c in range(0, 300, 50):
            k += 1
            h, w = rng.integers(8, 45, 2)
            block = np.ones((h, w), bool)
            kind = k % 4
            if kind == 1:  # L shape
                block[: h // 2, w // 3 :] = False
            elif kind == 2:  # U shape
                block[: 2 * h // 3, w // 3 : 2 * w // 3] = False
            elif kind == 3:  # ring-like frame
                block[2:-2, 2:-2] = h < 12 or w < 12
            lab[r + 2 : r + 2 + h, c + 2 : c + 2 + w][block] = k
    return lab


def test_filters_count_what_they_remove():
    kept, counts = filter_nuclei(disks())
    assert kept["label"].tolist() == [1, 3]
    assert counts["removed_border"] == 1 and counts["removed_area"] == 1 and counts["n_kept"] == 2
    assert set(counts) == {"n_objects", "n_kept", *(f"removed_{f}" for f in FILTERS)}
    kept, counts = filter_nuclei(disks(), NucleusFilter(pixel_scale=0.5))  # 10x: smaller areas
    assert kept["label"].tolist() == [1, 2]  # label 3 (area ~1257) now exceeds 4000/4
    kept, _ = filter_nuclei(disks(), NucleusFilter(drop_border=False))
    assert kept["label"].tolist() == [1, 3, 4]


def test_measure_objects_agrees_with_regionprops():
    lab = odd_shapes(1)
    m = measure_objects(lab)
    props = regionprops(lab)
    assert m["label"].tolist() == [p.label for p in props]
    assert m["area"].tolist() == [p.area for p in props]
    assert [tuple(b) for b in m["bbox"]] == [p.bbox for p in props]
    np.testing.assert_array_equal(m["centroid"], [p.centroid for p in props])
    for key in ("eccentricity", "axis_major_length", "axis_minor_length"):
        np.testing.assert_allclose(m[key], [getattr(p, key) for p in props], atol=1e-9)


FILTER_CASES = [
    NucleusFilter(),
    NucleusFilter(min_area=50, max_area=2000, drop_border=False, min_solidity=0.8),
    NucleusFilter(min_area=50, max_bbox_area=900, max_eccentricity=0.85),
    NucleusFilter(min_area=50, min_aspect_ratio=0.55, min_solidity=0.93),
]


@pytest.mark.parametrize("filt", FILTER_CASES)
def test_fast_filters_identical_to_regionprops_loop(filt, tiny_screen):
    images = [odd_shapes(s) for s in range(3)] + [disks()]
    images += [read_mask(p) for p in load_metadata(tiny_screen)["Metadata_MaskPath"][:12]]
    removed = dict.fromkeys(FILTERS, 0)
    for lab in images:
        fast, c_fast = filter_nuclei(lab, filt)
        slow, c_slow = filter_nuclei_regionprops(lab, filt)
        assert c_fast == c_slow
        for key in ("label", "area", "bbox", "centroid"):
            np.testing.assert_array_equal(fast[key], slow[key])
        hull = ~np.isnan(fast["solidity"])  # hulls only where the bound did not suffice
        np.testing.assert_allclose(fast["solidity"][hull], slow["solidity"][hull])
        bb = fast["bbox"]
        bound = fast["area"] / ((bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1]))
        assert (bound[~hull] >= filt.min_solidity).all()
        for f in FILTERS:
            removed[f] += c_fast[f"removed_{f}"]
    if filt.min_solidity > 0.5:
        assert removed["solidity"] > 0  # the hull path is exercised


def test_crops_are_centred_and_masked():
    lab = disks()
    img = (lab > 0).astype(np.float32) + 0.5
    kept, _ = filter_nuclei(lab)
    crops = crop_nuclei(img, lab, kept["centroid"], kept["label"], 64, apply_mask=True)
    assert crops.shape == (2, 64, 64)
    assert crops[0, 32, 32] == 1.5 and crops[0, 0, 0] == 0
    assert (crops[0] > 0).sum() == kept["area"][0]
    raw = crop_nuclei(img, lab, kept["centroid"], kept["label"], 64, apply_mask=False)
    assert raw[0, 0, 0] == 0.5 and (raw[0] > 0).all()
    # a nucleus near the border is zero-padded
    edge = crop_nuclei(img, lab, [[5.0, 100.0]], [4], 64, apply_mask=False)
    assert (edge[0, :20] == 0).all() and edge[0, 32, 32] == 1.5


def test_plate_stage_writes_resumes_and_merges(tiny_screen, tmp_path):
    meta = load_screen_metadata(tiny_screen)
    plates = select_plates(meta)
    assert plates == ["P01", "P02"] and select_plates(meta, "P02") == ["P02"]
    one = preprocess_plate(meta, "P02", tmp_path, progress=False)
    paths = plate_outputs(tmp_path, "P02")
    assert not one["skipped"] and all(p.is_file() for p in paths.values())
    assert not plate_outputs(tmp_path, "P01")["plates"].exists()  # only its own files
    with pytest.raises(InputError, match=r"plates \['P01'\] are not preprocessed.*plate=\"P01\""):
        merge_plates(tmp_path, plates)
    mtime = paths["crops"].stat().st_mtime_ns
    again = preprocess_plate(meta, "P02", tmp_path, progress=False)
    assert again["skipped"] and paths["crops"].stat().st_mtime_ns == mtime
    nuclei = preprocess_screen(meta, tmp_path, progress=False)
    assert paths["crops"].stat().st_mtime_ns == mtime
    # other settings: the plate is processed again
    with pytest.warns(UserWarning, match="other settings"):
        redo = preprocess_plate(meta, "P02", tmp_path, apply_mask=False, progress=False)
    assert not redo["skipped"] and paths["crops"].stat().st_mtime_ns != mtime
    with pytest.warns(UserWarning, match="other settings"):
        preprocess_plate(meta, "P02", tmp_path, progress=False)  # back to the defaults
    nuc, feats, counts = merge_plates(tmp_path, plates)
    pd.testing.assert_frame_equal(nuc, nuclei)
    assert all(c.startswith("Metadata_") for c in nuc.columns)
    assert len(feats) == len(nuc) and feats.columns.str.startswith("Nuclei_").sum() > 40
    assert (feats["Metadata_ObjectNumber"].to_numpy() == nuc["Metadata_ObjectNumber"]).all()
    assert len(counts) == len(meta) and counts["n_kept"].sum() == len(nuc)
    assert (
        counts["n_objects"] == counts.filter(like="removed_").sum(axis=1) + counts["n_kept"]
    ).all()
    # area in the features equals the area measured by the filter
    np.testing.assert_array_equal(feats["Nuclei_AreaShape_Area"], nuc["Metadata_Area"])
    crops = load_crops(tmp_path, nuc.iloc[::-1])
    assert crops.shape == (len(nuc), 64, 64) and 0 <= crops.min() and crops.max() <= 1
    np.testing.assert_array_equal(crops[::-1][:3], load_crops(tmp_path, nuc.iloc[:3]))
    with pytest.raises(InputError, match="not in the screen metadata"):
        select_plates(meta, "P09")


def small_screen(tiny_screen, tmp_path, n=6, masks=True, **edit):
    """A copy of the first ``n`` images of plate P01 with an edited metadata table."""
    meta = pd.read_csv(tiny_screen / "metadata.csv").head(n)
    meta["Metadata_ImagePath"] = [str(tiny_screen / p) for p in meta["Metadata_ImagePath"]]
    meta["Metadata_MaskPath"] = [str(tiny_screen / p) for p in meta["Metadata_MaskPath"]]
    if not masks:
        meta = meta.drop(columns="Metadata_MaskPath")
    for col, values in edit.items():
        meta[col] = values
    tmp_path.mkdir(parents=True, exist_ok=True)
    meta.to_csv(tmp_path / "metadata.csv", index=False)
    return tmp_path


def test_images_without_masks_are_segmented(tiny_screen, tmp_path):
    with_masks = load_screen_metadata(small_screen(tiny_screen, tmp_path / "a"))
    without = load_screen_metadata(small_screen(tiny_screen, tmp_path / "b", masks=False))
    assert (without["Metadata_MaskPath"] == "").all()
    ref = preprocess_plate(with_masks, "P01", tmp_path / "ref", progress=False)
    seg = preprocess_plate(without, "P01", tmp_path / "seg", progress=False)
    assert seg["n_segmented"] == 6 and ref["n_segmented"] == 0
    assert 0.5 * ref["n_nuclei"] <= seg["n_nuclei"] <= 1.5 * ref["n_nuclei"]
    # an empty entry segments that image only
    mixed = small_screen(tiny_screen, tmp_path / "c", n=2)
    table = pd.read_csv(mixed / "metadata.csv")
    table.loc[1, "Metadata_MaskPath"] = np.nan
    table.to_csv(mixed / "metadata.csv", index=False)
    meta = load_screen_metadata(mixed)
    assert meta["Metadata_MaskPath"].tolist()[1] == "" and meta["Metadata_MaskPath"][0]
    assert preprocess_plate(meta, "P01", tmp_path / "mix", progress=False)["n_segmented"] == 1


def test_no_matching_mask_file(tiny_screen, tmp_path):
    paths = [str(tmp_path / f"masks/P01/other_{i}.tif") for i in range(6)]
    data = small_screen(tiny_screen, tmp_path, Metadata_MaskPath=paths)
    with pytest.raises(InputError, match="no mask with the same file name") as err:
        load_screen_metadata(data)
    assert "other_0.tif" in str(err.value)
    partial = pd.read_csv(data / "metadata.csv")
    partial.loc[0, "Metadata_MaskPath"] = ""
    partial.to_csv(data / "metadata.csv", index=False)
    with pytest.raises(InputError, match="leave Metadata_MaskPath empty"):
        load_screen_metadata(data)


def test_non_integer_and_mismatched_masks(tiny_screen, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    probs = tmp_path / "probs.tif"
    tifffile.imwrite(probs, np.full((160, 160), 0.5, np.float32))
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((100, 160), np.uint16))
    for path, match in ((probs, "non-integer values.*instance labels"), (small, "differs from")):
        data = small_screen(tiny_screen, tmp_path / path.stem, n=2, Metadata_MaskPath=str(path))
        meta = load_screen_metadata(data)
        with pytest.raises(InputError, match=match) as err:
            preprocess_plate(meta, "P01", tmp_path / "out", progress=False)
        assert str(path) in str(err.value)


def test_too_few_nuclei_name_the_filter_and_parameter(tiny_screen, tmp_path):
    meta = load_screen_metadata(tiny_screen)
    with pytest.raises(InputError, match="fewer than 2 nuclei") as err:
        preprocess_plate(meta, "P01", tmp_path, NucleusFilter(min_area=3900), progress=False)
    msg = str(err.value)
    assert "plate P01" in msg and "'area' filter removed the most" in msg
    assert "min_area=3900" in msg and "pixel_scale" in msg and "filter_counts/P01.csv" in msg
    assert plate_outputs(tmp_path, "P01")["filter_counts"].is_file()  # counts to inspect
    assert not plate_outputs(tmp_path, "P01")["plates"].exists()  # not marked complete
    with pytest.raises(InputError, match="'border' filter.*drop_border=True"):
        preprocess_plate(meta, "P01", tmp_path / "b", NucleusFilter(min_area=0, max_area=1e9,
                         max_bbox_area=1e9, pixel_scale=1.0), progress=False,
                         min_nuclei=10_000)  # fmt: skip
    # a condition short of nuclei over all plates is caught when plates are merged
    out = tmp_path / "m"
    for plate in select_plates(meta):
        preprocess_plate(meta, plate, out, progress=False)
    first = sorted(meta["Metadata_Condition"].unique())[0]  # conditions are checked in order
    with pytest.raises(InputError, match=f"condition '{first}'.*fewer than 1000 nuclei"):
        merge_plates(out, select_plates(meta), min_nuclei=1000)


def test_load_crops_missing_file(tmp_path):
    table = pd.DataFrame({"Metadata_Plate": ["P01"], "Metadata_CropIndex": [0]})
    with pytest.raises(InputError, match="crops missing.*01_preprocess_nuclei"):
        load_crops(tmp_path, table)


def test_filter_settings_are_validated():
    with pytest.raises(ValueError, match="pixel_scale"):
        NucleusFilter(pixel_scale=0)
    with pytest.raises(ValueError, match="min_area"):
        NucleusFilter(min_area=500, max_area=100)
    assert NucleusFilter(pixel_scale=2.0).area_limits == (1600, 16000, 16000)


@pytest.mark.parametrize("kind", ["uint16", "float", "constant", "tiny"])
def test_normalize_image_matches_numpy_percentiles(kind):
    rng = np.random.default_rng(1)
    image = {
        "uint16": rng.integers(90, 4000, (64, 80)).astype(np.uint16),
        "float": rng.normal(0.5, 0.2, (64, 80)),
        "constant": np.full((10, 10), 7, np.uint16),
        "tiny": np.array([[3, 9]], np.uint16),
    }[kind].astype(np.float32)
    lo, hi = np.percentile(image, [1, 99.9])
    expected = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    np.testing.assert_allclose(normalize_image(image), expected, atol=1e-6)
