import numpy as np
import pandas as pd
import pytest
from reference_nuclei import disks, filter_nuclei_regionprops, odd_shapes
from skimage.measure import regionprops

from i2r_utils.io import load_metadata, read_mask
from i2r_utils.nucleus_filter import (
    FILTERS,
    NucleusFilter,
    filter_nuclei,
    measure_objects,
    too_few_nuclei_message,
)


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


def test_filter_settings_are_validated():
    with pytest.raises(ValueError, match="pixel_scale"):
        NucleusFilter(pixel_scale=0)
    with pytest.raises(ValueError, match="min_area"):
        NucleusFilter(min_area=500, max_area=100)
    assert NucleusFilter(pixel_scale=2.0).area_limits == (1600, 16000, 16000)


def test_too_few_nuclei_message_names_filter_parameter_and_magnification():
    counts = pd.DataFrame({"n_objects": [5, 3], **{f"removed_{f}": [0, 0] for f in FILTERS}})
    counts["removed_area"] = [4, 3]
    counts["removed_border"] = [1, 0]
    msg = too_few_nuclei_message("plate P1 (counts in x.csv)", counts, NucleusFilter(), 0, 2)
    assert msg.startswith("plate P1 (counts in x.csv): fewer than 2 nuclei after filtering")
    assert "'area' filter removed the most" in msg and "min_area=400, max_area=4000" in msg
    assert "border 1, area 7" in msg and "pixel_scale (now 1.0" in msg
    empty = counts.assign(n_objects=0)
    assert "no object at all" in too_few_nuclei_message("image a.tif", empty, NucleusFilter(), 0)


def test_too_few_nuclei_for_a_command_names_no_filter_setting_to_edit():
    """A command applies the screen's filters: its users cannot edit NucleusFilter."""
    counts = pd.DataFrame({"n_objects": [5], **{f"removed_{f}": [0] for f in FILTERS}})
    counts["removed_area"] = [5]
    one = too_few_nuclei_message("image a.tif", counts, NucleusFilter(), 0, 1, "use --zoom.")
    assert one.startswith("image a.tif: no nucleus left after filtering (0 kept of 5 objects")
    assert "'area' filter removed the most (min_area=400, max_area=4000: the screen's" in one
    assert "use --zoom." in one and "NucleusFilter" not in one
    empty = too_few_nuclei_message("a", counts.assign(n_objects=0), NucleusFilter(), 0, 1, "z")
    assert "Metadata_MaskPath" not in empty and "leave the masks out to segment" in empty


def test_too_few_objects_that_no_filter_removed_blame_no_filter():
    """One object, kept: not "removed by filter: ." and not the border filter."""
    counts = pd.DataFrame({"n_objects": [1], **{f"removed_{f}": [0] for f in FILTERS}})
    for magnification in (None, "use --zoom."):
        msg = too_few_nuclei_message(
            "the images in x", counts, NucleusFilter(), 1, 2, magnification
        )
        assert msg == (
            "the images in x: fewer than 2 nuclei after filtering: only 1 object(s) found, and "
            "no filter removed any (2 needed). Use more images, or images with more nuclei."
        )
