"""Tests of i2r_utils.segmentation (entry point over the methods, evaluation helpers)."""

import numpy as np
import pandas as pd
import pytest
from segmentation_helpers import synthetic_disks, train_tiny_unet, tta_map_delta
from skimage.transform import rescale

from i2r_utils.metrics import classify_instances, map_dsb
from i2r_utils.segmentation import (
    evaluate_segmentation,
    segment_classical,
    segment_nuclei,
    tta_deltas,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/conftest.py


def test_bad_method_model_and_tta_names():
    image, _ = synthetic_disks(n=2)
    with pytest.raises(ValueError, match="unknown method"):
        segment_nuclei(image, method="magic")
    with pytest.raises(ValueError, match="needs a trained model"):
        segment_nuclei(image, method="unet")
    with pytest.raises(ValueError, match="needs a trained model"):
        segment_nuclei(image, method="unet_tta")
    with pytest.raises(ValueError, match="pixel_scale must be a positive"):
        segment_nuclei(image, pixel_scale=0)
    with pytest.raises(ValueError, match="takes no model"):
        segment_nuclei(image, method="classical", model=object())
    with pytest.raises(ValueError, match="unknown TTA"):
        segment_nuclei(image, tta=["identity", "rot45"])


def test_classical_with_tta():
    image, truth = synthetic_disks(seed=1)
    labels = segment_nuclei(image, tta="d4")
    assert labels.max() == truth.max()
    assert map_dsb(truth, labels) > 0.9
    delta = tta_map_delta([image], [truth], method="classical", tta=["identity", "fliplr", "rot90"])
    assert set(delta) == {"original", "tta", "delta"}
    np.testing.assert_allclose(delta["delta"], delta["tta"] - delta["original"])
    assert delta["original"][0] > 0.9
    np.testing.assert_array_equal(segment_nuclei(image), segment_classical(image))


def test_unet_segments_and_tta_runs():
    model, _, _ = train_tiny_unet()
    image, truth = synthetic_disks(shape=(64, 64), n=4, seed=10)
    labels = segment_nuclei(image, method="unet", model=model, tta="d4")
    assert labels.dtype == np.int32 and labels.shape == image.shape
    # unet_tta is the U-Net with D4 TTA by default, or with the set given
    np.testing.assert_array_equal(segment_nuclei(image, "unet_tta", model), labels)
    np.testing.assert_array_equal(
        segment_nuclei(image, "unet_tta", model, tta="thesis6"),
        segment_nuclei(image, "unet", model, tta="thesis6"),
    )
    delta = tta_map_delta(image, truth, method="unet", model=model, tta="flips")
    assert delta["delta"].shape == (1,)


def test_pixel_scale_resamples_to_the_trained_scale():
    image, truth = synthetic_disks(shape=(128, 128), n=6, radius=(8, 11), seed=2)
    small = rescale(image.astype(float), 0.5, order=1, anti_aliasing=True, preserve_range=True)
    small_truth = rescale(truth, 0.5, order=0, anti_aliasing=False, preserve_range=True)
    small_truth = small_truth.astype(np.int32)
    # nuclei of 4-5 px radius: too small for the 20x defaults; pixel_scale 0.5 restores them
    as_is = segment_nuclei(small)
    scaled = segment_nuclei(small, pixel_scale=0.5)
    assert scaled.shape == small.shape and scaled.dtype == np.int32
    assert scaled.max() == 6 and map_dsb(small_truth, scaled) > 0.5
    assert map_dsb(small_truth, scaled) > map_dsb(small_truth, as_is)


def test_evaluate_tta_deltas_and_overlay_counts():
    pairs = [synthetic_disks(shape=(64, 64), n=3, seed=s) for s in range(3)]
    images, masks = zip(*pairs, strict=True)
    methods = {"classical": {}, "classical+TTA": {"tta": ["identity", "fliplr", "flipud"]}}
    scores, preds = evaluate_segmentation(images, masks, ["a", "b", "c"], methods, progress=False)
    assert len(scores) == 6 and set(scores["method"]) == set(methods)
    assert (scores["cpu_seconds"] >= 0).all() and (scores["seconds"] > 0).all()
    assert (scores["map_dsb"] > 0.8).all() and (scores["n_true"] == 3).all()
    np.testing.assert_array_equal(preds["classical"][1], segment_nuclei(images[1]))
    deltas = tta_deltas(scores, {"classical": "classical+TTA"})
    assert list(deltas.index) == ["a", "b", "c"] and list(deltas.columns) == ["classical+TTA"]
    expected = scores.pivot(index="image", columns="method", values="map_dsb")
    np.testing.assert_allclose(
        deltas["classical+TTA"], (expected["classical+TTA"] - expected["classical"]).to_numpy()
    )
    ap50 = tta_deltas(scores, {"classical": "classical+TTA"}, metric="ap50")
    pd.testing.assert_index_equal(ap50.index, deltas.index)
    # the counts the overlay figure shows: a perfect and a wrong prediction
    wrong = np.zeros_like(masks[0])
    wrong[:5, :5] = 1
    good, bad = classify_instances(masks[0], masks[0]), classify_instances(masks[0], wrong)
    assert [good[k].size for k in ("tp_pred", "fp", "fn")] == [3, 0, 0]
    assert [bad[k].size for k in ("tp_pred", "fp", "fn")] == [0, 1, 3]
