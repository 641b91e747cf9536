"""Tests of i2r_utils.segmentation (entry point over the methods, evaluation helpers)."""

import numpy as np
import pandas as pd
import pytest
from segmentation_helpers import DATA, synthetic_disks, train_tiny_unet, tta_map_delta

from i2r_utils.metrics import classify_instances, map_dsb
from i2r_utils.segmentation import (
    annotated_tiles,
    evaluate_segmentation,
    load_annotated_nuclei,
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
    delta = tta_map_delta(image, truth, method="unet", model=model, tta="flips")
    assert delta["delta"].shape == (1,)


def test_annotated_tiles():
    image = np.arange(100 * 70, dtype=float).reshape(100, 70)
    mask = np.zeros((100, 70), np.int32)
    mask[30:40, 25:40] = 9  # crosses the tile border at column 32
    imgs, masks, names = annotated_tiles(image, mask, 32)
    assert len(imgs) == 3 * 2 and names[:3] == ["r0c0", "r0c32", "r32c0"]
    np.testing.assert_array_equal(imgs[3], image[32:64, 32:64])
    assert masks[2].max() == 1 and masks[3].max() == 1  # the cut object, renumbered in both
    assert (masks[2] > 0).sum() + (masks[3] > 0).sum() == 10 * 15 - 2 * 15
    with pytest.raises(ValueError, match="tile_size"):
        annotated_tiles(image, mask, 200)


def test_load_annotated_nuclei_real_and_fallback(tiny_screen, tmp_path):
    fallback = load_annotated_nuclei(tmp_path / "absent", tiny_screen, n_fallback=3)
    assert len(fallback["images"]) == 3 and "synthetic" in fallback["source"]
    assert fallback["images"][0].shape == fallback["masks"][0].shape
    with pytest.raises(Exception, match="annotated nuclei not found"):
        load_annotated_nuclei(tmp_path / "absent")
    if (DATA / "img2d.tif").exists():
        real = load_annotated_nuclei(DATA, tile_size=128)
        assert len(real["images"]) == 16 and "real" in real["source"]


def test_evaluate_tta_deltas_and_overlay_counts():
    pairs = [synthetic_disks(shape=(64, 64), n=3, seed=s) for s in range(3)]
    images, masks = zip(*pairs, strict=True)
    methods = {"classical": {}, "classical+TTA": {"tta": ["identity", "fliplr", "flipud"]}}
    scores, preds = evaluate_segmentation(images, masks, ["a", "b", "c"], methods, progress=False)
    assert len(scores) == 6 and set(scores["method"]) == set(methods)
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
