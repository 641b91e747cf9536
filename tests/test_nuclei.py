import numpy as np
import pandas as pd
import pytest
import tifffile
from reference_nuclei import disks
from screen_helpers import small_screen

from i2r_utils.context import load_context
from i2r_utils.io import InputError, load_metadata
from i2r_utils.nuclei import (
    crop_nuclei,
    drop_large_nuclei,
    load_crops,
    merge_plates,
    minmax_crops,
    plate_outputs,
    preprocess_image,
    preprocess_image_context,
    preprocess_plate,
    select_plates,
)
from i2r_utils.nucleus_filter import NucleusFilter, filter_nuclei


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


def test_plate_stage_writes_reruns_and_merges(tiny_screen, tmp_path):
    meta = load_metadata(tiny_screen, require_masks=False)
    plates = select_plates(meta)
    assert plates == ["P01", "P02"] and select_plates(meta, "P02") == ["P02"]
    one = preprocess_plate(meta, "P02", tmp_path, progress=False)
    paths = plate_outputs(tmp_path, "P02")
    assert all(p.is_file() for p in paths.values())
    assert not plate_outputs(tmp_path, "P01")["plates"].exists()  # only its own files
    with pytest.raises(InputError, match=r"plates \['P01'\] are not preprocessed.*plate=\"P01\""):
        merge_plates(tmp_path, plates)
    # a rerun recomputes the plate (no cache) and gives the same files
    first = {k: p.read_bytes() for k, p in paths.items() if k != "plates"}
    again = preprocess_plate(meta, "P02", tmp_path, progress=False)
    assert again["n_nuclei"] == one["n_nuclei"]
    assert first == {k: p.read_bytes() for k, p in paths.items() if k != "plates"}
    for plate in plates:
        preprocess_plate(meta, plate, tmp_path, progress=False)
    nuc, feats, counts = merge_plates(tmp_path, plates)
    assert nuc["Metadata_Plate"].tolist() == sorted(nuc["Metadata_Plate"])  # plates in order
    assert all(c.startswith("Metadata_") for c in nuc.columns)
    # image paths relative to the screen folder: the tables stay valid when folders move
    assert nuc["Metadata_ImagePath"].str.startswith("images/").all()
    assert (tiny_screen / nuc["Metadata_ImagePath"].iloc[0]).is_file()
    assert not counts["Metadata_ImagePath"].str.startswith("/").any()
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


def test_images_without_masks_are_segmented(tiny_screen, tmp_path):
    with_masks = load_metadata(small_screen(tiny_screen, tmp_path / "a"), require_masks=False)
    without = load_metadata(
        small_screen(tiny_screen, tmp_path / "b", masks=False), require_masks=False
    )
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
    meta = load_metadata(mixed, require_masks=False)
    assert meta["Metadata_MaskPath"].tolist()[1] == "" and meta["Metadata_MaskPath"][0]
    assert preprocess_plate(meta, "P01", tmp_path / "mix", progress=False)["n_segmented"] == 1


def test_non_integer_and_mismatched_masks(tiny_screen, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    probs = tmp_path / "probs.tif"
    tifffile.imwrite(probs, np.full((160, 160), 0.5, np.float32))
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((100, 160), np.uint16))
    for path, match in ((probs, "non-integer values.*instance labels"), (small, "differs from")):
        data = small_screen(tiny_screen, tmp_path / path.stem, n=2, Metadata_MaskPath=str(path))
        meta = load_metadata(data, require_masks=False)
        with pytest.raises(InputError, match=match) as err:
            preprocess_plate(meta, "P01", tmp_path / "out", progress=False)
        assert str(path) in str(err.value)


def test_too_few_nuclei_name_the_filter_and_parameter(tiny_screen, tmp_path):
    meta = load_metadata(tiny_screen, require_masks=False)
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
    with pytest.raises(
        InputError, match="crops missing; run the nuclei preprocessing of plate P01"
    ):
        load_crops(tmp_path, table)


# --------------------------------------------------------------------------------------------
# one image: the step the plates and new-target mode share
# --------------------------------------------------------------------------------------------
@pytest.fixture
def braf_field(tiny_screen):
    """Image and mask paths of the first BRAF field of the tiny screen."""
    meta = load_metadata(tiny_screen)
    rec = meta[meta.Metadata_Condition == "BRAF"].iloc[0]
    return rec.Metadata_ImagePath, rec.Metadata_MaskPath


def test_preprocess_image_with_and_without_mask(braf_field):
    img, mask = braf_field
    crops, objects, counts, feats = preprocess_image(img, mask)
    assert crops.shape[1:] == (64, 64) and len(crops) == counts["n_kept"] >= 1
    assert len(objects) == len(feats) == len(crops)
    assert (objects["Metadata_ObjectNumber"] == feats["Metadata_ObjectNumber"]).all()
    for no_mask in ("", None, np.nan):  # no mask: the nuclei are segmented
        seg, _, seg_counts, seg_feats = preprocess_image(img, no_mask, features=False)
        assert abs(len(seg) - len(crops)) <= 2 and seg_feats is None
        assert len(seg) == seg_counts["n_kept"]


def test_preprocess_image_errors_name_file_and_fix(braf_field, tmp_path):
    img, mask = braf_field
    shape = tifffile.imread(img).shape
    cases = {
        "other_shape.tif": (np.zeros((shape[0] // 2, shape[1]), np.uint16), "differs"),
        "float.tif": (np.full(shape, 0.5, np.float32), "non-integer"),
        "rgb.tif": (np.zeros((*shape, 3), np.uint8), "multi-channel"),
    }
    for name, (arr, message) in cases.items():
        tifffile.imwrite(tmp_path / name, arr)
        with pytest.raises(InputError, match=rf"{name}.*{message}"):
            preprocess_image(img, tmp_path / name)
    pages = tmp_path / "pages.tif"
    tifffile.imwrite(pages, tifffile.imread(img))
    tifffile.imwrite(pages, tifffile.imread(img), append=True)
    with pytest.raises(InputError, match=r"pages\.tif: multi-page TIFF"):
        preprocess_image(pages, mask)
    tifffile.imwrite(tmp_path / "blank.tif", np.full(shape, 7, np.uint16))
    with pytest.raises(InputError, match=r"blank\.tif: image is blank"):
        preprocess_image(tmp_path / "blank.tif", mask, allow_blank=False)
    assert preprocess_image(tmp_path / "blank.tif", mask)[2]["n_kept"] >= 1  # the screen's way
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros(shape, np.uint16))
    assert preprocess_image(img, tmp_path / "empty.tif")[2]["n_objects"] == 0
    with pytest.raises(InputError, match="pixel_scale must be positive"):
        preprocess_image(img, mask, pixel_scale=0)


def test_too_few_nuclei_in_one_image_counts_the_filter(braf_field, tmp_path):
    img, mask = braf_field
    tiny = np.zeros_like(tifffile.imread(mask))
    tiny[40:45, 40:45] = 1  # one 25-pixel object: the area filter removes it
    tifffile.imwrite(tmp_path / "tiny.tif", tiny)
    crops, _, counts, _ = preprocess_image(img, tmp_path / "tiny.tif")
    assert len(crops) == counts["n_kept"] == 0 and counts["removed_area"] == 1


def test_pixel_scale_resamples_to_the_screens_magnification(braf_field, tmp_path):
    """A 10x version of a 20x field fails the area filter unless pixel_scale is 0.5."""
    from skimage.transform import rescale

    img, mask = braf_field
    image = tifffile.imread(img).astype(np.float32)
    labels = tifffile.imread(mask)
    small = rescale(image, 0.5, order=1, preserve_range=True, anti_aliasing=True)
    small_labels = rescale(labels, 0.5, order=0, preserve_range=True, anti_aliasing=False)
    tifffile.imwrite(tmp_path / "10x.tif", small.astype(np.uint16))
    tifffile.imwrite(tmp_path / "10x_mask.tif", small_labels.astype(np.uint16))
    crops, _, counts, _ = preprocess_image(tmp_path / "10x.tif", tmp_path / "10x_mask.tif")
    assert counts["n_kept"] == 0 and counts["removed_area"] > 0
    crops, _, counts, feats = preprocess_image(
        tmp_path / "10x.tif", tmp_path / "10x_mask.tif", pixel_scale=0.5
    )
    reference = preprocess_image(img, mask)[0]
    assert abs(len(crops) - len(reference)) <= 1 and len(feats) == len(crops)


# --- the original's crops: bounding box centred, min-max per crop, large nuclei dropped ------
def _pad_image_reference(image, size):
    """The original's padding (``pad_image``), written out: the image centred on zeros."""
    out = np.zeros((size, size))
    h, w = image.shape
    mid_r, mid_c = size // 2 + size % 2, size // 2 + size % 2
    out[mid_r - h // 2 : mid_r + (h - h // 2), mid_c - w // 2 : mid_c + (w - w // 2)] = image
    return out


def test_bbox_crops_equal_the_originals_padded_intensity_image():
    rng = np.random.default_rng(0)
    lab = np.zeros((120, 120), np.int32)
    lab[10:27, 30:52] = 1  # 17 x 22 box
    lab[60:90, 70:81] = 2  # 30 x 11 box
    lab[61:64, 71:74] = 0  # a hole: not the nucleus
    img = rng.random((120, 120)).astype(np.float32) + 0.1
    kept, _ = filter_nuclei(lab, NucleusFilter(min_area=1, drop_border=False))
    for size in (64, 45):
        crops = crop_nuclei(img, lab, kept["centroid"], kept["label"], size, True, kept["bbox"])
        for crop, label, (r0, c0, r1, c1) in zip(crops, kept["label"], kept["bbox"], strict=True):
            own = np.where(lab[r0:r1, c0:c1] == label, img[r0:r1, c0:c1], 0)  # intensity_image
            np.testing.assert_array_equal(crop, _pad_image_reference(own, size))


def test_minmax_scales_each_crop_by_itself_to_8_bits():
    crops = np.zeros((2, 4, 4), np.float32)
    crops[0, 1, 1:3] = [1000, 3000]
    crops[1, 2, 2] = 7
    out = minmax_crops(crops)
    assert out.dtype == np.float32 and out.max(axis=(1, 2)).tolist() == [1.0, 1.0]
    assert out[0, 1, 1] == np.float32(int(1000 / 3000 * 255) / 255)  # truncated, not rounded
    np.testing.assert_array_equal(np.round(out * 255), (out * 255).astype(np.float32))
    assert minmax_crops(np.zeros((1, 3, 3))).max() == 0  # an empty crop stays empty


def test_nuclei_larger_than_the_crop_are_dropped_and_counted():
    kept = {"label": np.array([1, 2, 3]),
            "bbox": np.array([[0, 0, 64, 64], [0, 0, 65, 10], [0, 0, 10, 70]])}  # fmt: skip
    small, counts = drop_large_nuclei(kept, {"n_objects": 5, "n_kept": 3}, 64)
    assert small["label"].tolist() == [1] and small["bbox"].shape == (1, 4)
    assert counts == {"n_objects": 5, "n_kept": 1, "removed_crop_size": 2}


def options_of(crop_options: dict) -> dict:
    """The crop options of the plate step that :func:`preprocess_image` takes."""
    return {k: v for k, v in crop_options.items() if not k.startswith("context_")}


def test_plate_with_the_original_crops_and_context_windows(tiny_screen, tmp_path):
    meta = load_metadata(tiny_screen, require_masks=False)
    options = {"crop_centre": "bbox", "crop_scaling": "crop", "drop_large_crops": True,
               "context_window": 96, "context_size": 32}  # fmt: skip
    run = preprocess_plate(meta, "P01", tmp_path, progress=False, crop_options=options)
    with np.load(plate_outputs(tmp_path, "P01")["crops"]) as z:
        assert z["crops"].dtype == np.uint8  # stored compactly
    nuc = pd.read_parquet(plate_outputs(tmp_path, "P01")["plates"])
    crops = load_crops(tmp_path, nuc)
    assert len(crops) == run["n_nuclei"] and np.allclose(crops.max(axis=(1, 2)), 1.0)
    ctx = load_context(tmp_path, nuc, 96)
    assert ctx.shape == (len(nuc), 32, 32) and ctx.dtype == np.uint8 and ctx.std() > 0
    counts = pd.read_csv(plate_outputs(tmp_path, "P01")["filter_counts"])
    assert "removed_crop_size" in counts and counts["n_kept"].sum() == len(nuc)
    # the same image through preprocess_image gives the stored crops
    rec = meta[meta.Metadata_Plate == "P01"].iloc[0]
    one, objs, _, _ = preprocess_image(rec.Metadata_ImagePath, rec.Metadata_MaskPath,
                                       features=False, crop_centre="bbox",
                                       crop_scaling="crop", drop_large_crops=True)  # fmt: skip
    np.testing.assert_array_equal(one, crops[: len(one)])
    # ... and, with its context windows, the stored windows (new-target mode's step)
    two, _, _, _, windows = preprocess_image_context(
        rec.Metadata_ImagePath, rec.Metadata_MaskPath, 96, 32, features=False, **options_of(options)
    )
    np.testing.assert_array_equal(two, one)
    np.testing.assert_array_equal(windows, ctx[: len(one)])
    assert preprocess_image_context(rec.Metadata_ImagePath, rec.Metadata_MaskPath)[4] is None
    with pytest.raises(ValueError, match="crop_scaling"):
        preprocess_image(rec.Metadata_ImagePath, rec.Metadata_MaskPath, crop_scaling="minmax")


def test_scaled_features_do_not_change_with_bit_depth_or_exposure(braf_field, tmp_path):
    """feature_scaling="image": the same field at 12 and 8 bits and twice as bright gives the
    same features (up to the 8-bit rounding); raw features change with the scale."""
    img, mask = braf_field
    image = tifffile.imread(img).astype(np.float64)
    variants = {
        "bright.tif": np.clip(image * 2, 0, 65535).astype(np.uint16),
        "12bit.tif": np.round(image / 16).astype(np.uint16),
        "8bit.tif": np.round((image - image.min()) / np.ptp(image) * 255).astype(np.uint8),
    }
    ref = preprocess_image(img, mask, feature_scaling="image")[3].drop(
        columns="Metadata_ObjectNumber"
    )
    raw = preprocess_image(img, mask)[3].drop(columns="Metadata_ObjectNumber")
    for name, arr in variants.items():
        tifffile.imwrite(tmp_path / name, arr)
        got = preprocess_image(tmp_path / name, mask, feature_scaling="image")[3]
        got = got.drop(columns="Metadata_ObjectNumber")
        mean = "Nuclei_Intensity_Mean"
        assert np.allclose(got[mean], ref[mean], rtol=0.02, atol=0.002), name
        corr = [np.corrcoef(got[c], ref[c])[0, 1] for c in ref if ref[c].std() > 0]
        assert np.nanmedian(corr) > 0.98, name
    bright = preprocess_image(tmp_path / "bright.tif", mask)[3]
    assert np.allclose(bright["Nuclei_Intensity_Mean"], 2 * raw["Nuclei_Intensity_Mean"], rtol=1e-3)
    with pytest.raises(ValueError, match="feature_scaling"):
        preprocess_image(img, mask, feature_scaling="percent")
