import numpy as np
import pytest

from i2r_utils.io import InputError, load_metadata
from i2r_utils.nuclei import (
    NucleusFilter,
    crop_nuclei,
    filter_nuclei,
    load_crops,
    preprocess_screen,
)


def disks():
    lab = np.zeros((200, 200), np.int32)
    yy, xx = np.mgrid[:200, :200]
    for i, (cy, cx, r) in enumerate([(50, 50, 15), (120, 60, 8), (100, 150, 20), (5, 100, 15)], 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = i
    return lab


def test_filters_count_what_they_remove():
    kept, counts = filter_nuclei(disks())
    assert [r.label for r in kept] == [1, 3]
    assert counts["removed_border"] == 1 and counts["removed_area"] == 1 and counts["n_kept"] == 2
    kept, counts = filter_nuclei(disks(), NucleusFilter(pixel_scale=0.5))  # 10x: smaller areas
    assert [r.label for r in kept] == [1, 2]  # label 3 (area ~1257) now exceeds 4000/4


def test_crops_are_centred_and_masked():
    lab = disks()
    img = (lab > 0).astype(np.float32) + 0.5
    kept, _ = filter_nuclei(lab)
    crops = crop_nuclei(img, lab, kept, 64, apply_mask=True)
    assert crops.shape == (2, 64, 64)
    assert crops[0, 32, 32] == 1.5 and crops[0, 0, 0] == 0
    assert np.isclose((crops[0] > 0).sum(), kept[0].area)


def test_preprocess_screen_resumes(tiny_screen, tmp_path):
    meta = load_metadata(tiny_screen)
    nuc = preprocess_screen(meta, tmp_path, progress=False)
    assert {"Metadata_Plate", "Metadata_Well", "Metadata_ObjectNumber"} <= set(nuc.columns)
    crops = load_crops(tmp_path, nuc.iloc[::-1])
    assert crops.shape == (len(nuc), 64, 64) and 0 <= crops.min() and crops.max() <= 1
    mtime = (tmp_path / "crops" / "P01.npz").stat().st_mtime
    again = preprocess_screen(meta, tmp_path, progress=False)
    assert (tmp_path / "crops" / "P01.npz").stat().st_mtime == mtime and len(again) == len(nuc)


def test_too_few_nuclei_names_the_filter(tiny_screen, tmp_path):
    meta = load_metadata(tiny_screen)
    with pytest.raises(InputError, match="fewer than 2 nuclei.*pixel_scale"):
        preprocess_screen(meta, tmp_path, NucleusFilter(min_area=3900), progress=False)
