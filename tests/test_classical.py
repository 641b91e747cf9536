"""Tests of i2r_utils.classical (image checks and the classical segmentation)."""

import numpy as np
import pytest
import torch
from segmentation_helpers import DATA, synthetic_disks

from i2r_utils.classical import normalize_percentile, remove_small, segment_classical
from i2r_utils.metrics import map_dsb
from i2r_utils.segmentation import segment_nuclei

# mAP_DSB of the classical method (default parameters) on the real example image, measured
# with scikit-image 0.26 / scipy 1.17: 0.390. The bound leaves room for library changes.
REAL_CLASSICAL_MAP_MEASURED = 0.390


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((4, 4, 3)), ValueError, "must be 2-D"),
        (np.zeros(5), ValueError, "must be 2-D"),
        (np.zeros((0, 5)), ValueError, "empty"),
        (np.zeros((5, 5), dtype=bool), TypeError, "got bool"),
        (np.zeros((5, 5), dtype=complex), TypeError, "integer or floating"),
        (np.array([[1.0, np.nan], [0, 1]]), ValueError, "NaN"),
        (torch.zeros(5, 5), TypeError, "torch.Tensor"),
    ],
)
@pytest.mark.parametrize("segment", [segment_nuclei, segment_classical])
def test_invalid_images_are_rejected(segment, image, error, match):
    with pytest.raises(error, match=match):
        segment(image)


def test_normalize_percentile_and_remove_small():
    img = np.arange(1000, dtype=np.uint16).reshape(25, 40)
    out = normalize_percentile(img, 0, 100)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == pytest.approx(1.0)
    labels = np.zeros((10, 10), np.int32)
    labels[0:2, 0:2] = 4  # 4 px, removed
    labels[5:9, 5:9] = 7  # 16 px, kept and renumbered
    kept = remove_small(labels, 5)
    assert kept.dtype == np.int32 and set(np.unique(kept)) == {0, 1}
    assert (kept > 0).sum() == 16


def test_classical_on_synthetic_disks():
    image, truth = synthetic_disks()
    labels = segment_nuclei(image, method="classical")
    assert labels.dtype == np.int32 and labels.shape == image.shape
    assert labels.max() == truth.max() == 8
    assert map_dsb(truth, labels) > 0.9
    np.testing.assert_array_equal(segment_classical(image), labels)


def test_classical_splits_two_touching_disks():
    rows, cols = np.indices((64, 96))
    truth = np.zeros((64, 96), dtype=np.int32)
    truth[(rows - 32) ** 2 + (cols - 33) ** 2 <= 100] = 1
    truth[(rows - 32) ** 2 + (cols - 52) ** 2 <= 100] = 2
    image = np.where(truth > 0, 800, 100).astype(np.uint16)
    assert segment_nuclei(image, min_distance=5).max() == 2


def test_constant_image_gives_no_object():
    assert segment_nuclei(np.full((32, 32), 7, dtype=np.uint8)).max() == 0


@pytest.fixture(scope="module")
def real_example():
    if not (DATA / "img2d.tif").exists():
        pytest.skip(f"real example data not found at {DATA} (expected ../shared beside the repo)")
    import tifffile

    return tifffile.imread(DATA / "img2d.tif"), tifffile.imread(DATA / "mask2d.tif")


def test_classical_on_real_stardist_example(real_example):
    image, truth = real_example
    labels = segment_nuclei(image, method="classical")
    score = map_dsb(truth, labels)
    assert score > REAL_CLASSICAL_MAP_MEASURED - 0.05, score
    assert 80 < labels.max() < 200
