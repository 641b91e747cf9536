"""Tests of i2r_utils.tta (D4 transforms, de-augmentation, instance voting)."""

import numpy as np
import pytest
from segmentation_helpers import synthetic_disks

from i2r_utils.metrics import map_dsb
from i2r_utils.tta import (
    D4_TRANSFORMS,
    apply_transform,
    invert_transform,
    merge_instances_tta,
    resolve_tta,
)


def test_resolve_tta():
    assert resolve_tta(None) == [] and resolve_tta("none") == []
    assert resolve_tta("d4") == list(D4_TRANSFORMS) and len(D4_TRANSFORMS) == 8
    assert resolve_tta(["identity", "fliplr", "identity"]) == ["identity", "fliplr"]
    assert resolve_tta("rot90") == ["rot90"]
    assert resolve_tta("flips") == ["identity", "fliplr", "flipud", "rot180"]
    # the thesis' 6 versions: original, both flips, three rotations (no transposes)
    assert resolve_tta("thesis6") == ["identity", "fliplr", "flipud", "rot90", "rot180", "rot270"]
    image = np.arange(12).reshape(3, 4)
    versions = {apply_transform(image, n).tobytes() for n in resolve_tta("thesis6")}
    assert len(versions) == 6 and apply_transform(image, "transpose").tobytes() not in versions
    with pytest.raises(ValueError, match="unknown TTA"):
        resolve_tta(["identity", "rot45"])


@pytest.mark.parametrize("name", D4_TRANSFORMS)
def test_deaugmentation_is_exact_inverse(name):
    rng = np.random.default_rng(0)
    array = rng.random((5, 7))
    stacked = rng.random((3, 5, 7))  # channels first, as U-Net probabilities
    for a in (array, stacked):
        out = apply_transform(a, name)
        np.testing.assert_array_equal(invert_transform(out, name), a)
    # the 8 transforms are distinct elements of D4
    outputs = {
        (apply_transform(array, n).shape, apply_transform(array, n).tobytes())
        for n in D4_TRANSFORMS
    }
    assert len(outputs) == 8


def test_transforms_match_numpy_definitions():
    a = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(apply_transform(a, "rot90"), np.rot90(a))
    np.testing.assert_array_equal(apply_transform(a, "fliplr"), np.fliplr(a))
    np.testing.assert_array_equal(apply_transform(a, "flipud"), np.flipud(a))
    np.testing.assert_array_equal(apply_transform(a, "transpose"), a.T)
    np.testing.assert_array_equal(apply_transform(a, "antitranspose"), np.rot90(a, 2).T)
    with pytest.raises(ValueError, match="unknown transform"):
        apply_transform(a, "rot45")


def test_merge_identical_inputs_returns_input():
    _, truth = synthetic_disks(seed=3)
    np.testing.assert_array_equal(merge_instances_tta([truth] * 3), truth)
    np.testing.assert_array_equal(merge_instances_tta([truth]), truth)
    shuffled = np.where(truth > 0, 100 - truth, 0)  # same objects, other label values
    merged = merge_instances_tta([truth, shuffled, truth])
    assert map_dsb(truth, merged) == 1.0


def test_merge_majority_vote_drops_minority_object():
    base = np.zeros((40, 40), dtype=np.int32)
    base[5:15, 5:15] = 1
    with_extra = base.copy()
    with_extra[25:35, 25:35] = 2
    merged = merge_instances_tta([base, with_extra, base])
    np.testing.assert_array_equal(merged, base)
    # present in 2 of 3 versions -> kept
    assert merge_instances_tta([with_extra, with_extra, base]).max() == 2


def test_merge_pixelwise_majority_mask():
    versions = []
    for right in (15, 16, 17):  # the square grows by one column in each version
        v = np.zeros((30, 30), dtype=np.int32)
        v[5:15, 5:right] = 4
        versions.append(v)
    merged = merge_instances_tta(versions)
    expected = np.zeros((30, 30), dtype=np.int32)
    expected[5:15, 5:16] = 1  # columns covered in >= 2 of 3 versions
    np.testing.assert_array_equal(merged, expected)


def test_merge_validates_inputs():
    with pytest.raises(ValueError, match="empty"):
        merge_instances_tta([])
    with pytest.raises(ValueError, match="shape"):
        merge_instances_tta([np.zeros((3, 3), int), np.zeros((3, 4), int)])
    with pytest.raises(ValueError, match="min_votes"):
        merge_instances_tta([np.zeros((3, 3), int)], min_votes=2)
