"""The screen recorded at a coarser scale (i2r_utils.reference)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from i2r_utils.artifacts import artifact
from i2r_utils.io import InputError, load_metadata, relative_paths, write_table
from i2r_utils.nuclei import preprocess_image
from i2r_utils.nucleus_filter import NucleusFilter
from i2r_utils.preprocessing import stored_crops
from i2r_utils.reference import degrade, degraded_nuclei, screen_folder


def test_whole_factor_is_binning():
    """pixel_scale 1/2: every 2x2 block averaged, labels from the block's top-left pixel."""
    image = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    labels = np.zeros((5, 7), np.uint16)
    labels[0:2, 2:4] = 3
    coarse, lab = degrade(image, labels, 0.5)
    assert coarse.shape == (2, 3) and lab.shape == (2, 3)
    assert coarse[0, 0] == pytest.approx(image[0:2, 0:2].mean())
    assert coarse[1, 2] == pytest.approx(image[2:4, 4:6].mean())
    assert lab[0, 1] == 3 and lab.dtype == np.int32 and lab.sum() == 3
    same, same_lab = degrade(image, labels, 1.0)
    np.testing.assert_array_equal(same, image)
    np.testing.assert_array_equal(same_lab, labels)


def test_other_factors_resample_and_bad_scales_are_refused():
    image = np.ones((100, 60), np.float32) * 7
    coarse, lab = degrade(image, None, 0.4)
    assert coarse.shape == (40, 24) and lab is None
    np.testing.assert_allclose(coarse, 7, atol=1e-4)  # a flat image stays flat
    for bad in (0, -1, 1.5):
        with pytest.raises(InputError, match="pixel_scale must be in"):
            degrade(image, None, bad)


def test_screen_folder_from_the_manifests(tmp_path):
    work, data = tmp_path / "results" / "run", tmp_path / "data" / "screen"
    (work / "BRAF").mkdir(parents=True)
    with pytest.raises(InputError, match="--screen-dir"):
        screen_folder(work)  # no manifest
    manifest = {"parameters": {"paths": {"data": "../../data/screen", "work": "."}}}
    (work / "BRAF" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="is gone"):
        screen_folder(work)
    data.mkdir(parents=True)
    assert screen_folder(work) == data.resolve()


def test_at_the_screens_scale_the_reference_is_the_screen(tiny_screen, tmp_path):
    """pixel_scale 1: the same crops and features as the screen's own preprocessing."""
    meta = load_metadata(tiny_screen)
    meta = meta[meta["Metadata_Condition"].isin(["EMPTY", "BRAF"])].head(3)
    rows, crops, feats = [], [], []
    for rec in meta.itertuples(index=False):
        c, objects, _, f = preprocess_image(rec.Metadata_ImagePath, rec.Metadata_MaskPath,
                                            feature_scaling="image")  # fmt: skip
        crops.append(stored_crops(c))
        feats.append(f)
        for obj in objects["Metadata_ObjectNumber"]:
            rows.append({"Metadata_Plate": rec.Metadata_Plate, "Metadata_Well": rec.Metadata_Well,
                         "Metadata_Site": rec.Metadata_Site,
                         "Metadata_Condition": rec.Metadata_Condition,
                         "Metadata_ImagePath": rec.Metadata_ImagePath,
                         "Metadata_MaskPath": rec.Metadata_MaskPath,
                         "Metadata_ObjectNumber": obj})  # fmt: skip
    write_table(relative_paths(pd.DataFrame(rows), tiny_screen), artifact(tmp_path, "nuclei"))
    cut = {"filt": NucleusFilter(), "size": 64, "apply_mask": True, "crop_centre": "centroid",
           "crop_scaling": "image", "drop_large_crops": False,
           "feature_scaling": "image"}  # fmt: skip
    ref = degraded_nuclei(tmp_path, tiny_screen, ["BRAF"], 1.0, cut, progress=False)
    assert ref["n_images"] == len(meta) and len(ref["meta"]) == len(rows)
    np.testing.assert_array_equal(np.concatenate(ref["crops"]), np.concatenate(crops))
    expected = pd.concat(feats, ignore_index=True).drop(columns="Metadata_ObjectNumber")
    got = ref["features"][expected.columns]
    np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), rtol=1e-5)
    assert ref["meta"]["Metadata_ObjectNumber"].tolist() == [r["Metadata_ObjectNumber"]
                                                             for r in rows]  # fmt: skip
    half = degraded_nuclei(tmp_path, tiny_screen, ["BRAF"], 0.5, cut, progress=False)
    assert 0 < len(half["meta"]) and not np.allclose(half["crops"][0][0], crops[0][0])
    with pytest.raises(InputError, match="a screen image is missing"):
        degraded_nuclei(tmp_path, tmp_path / "elsewhere", ["BRAF"], 0.5, cut, progress=False)
