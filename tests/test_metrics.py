"""Tests of i2r_utils.metrics against hand-computed cases and independent computations."""

import numpy as np
import pytest
from skimage.metrics import contingency_table
from sklearn.metrics import jaccard_score

from i2r_utils.metrics import (
    DSB_THRESHOLDS,
    average_precision_dsb,
    classify_instances,
    map_dsb,
    match_instances,
    pixel_iou,
    segmentation_scores,
)


def ap_at(true, pred, t=0.5):
    """DSB average precision TP / (TP + FP + FN) at one IoU threshold (a pair matches if > t)."""
    return float(average_precision_dsb(true, pred, [t])[0])


def square(shape, top, left, size, label=1, out=None):
    out = np.zeros(shape, dtype=np.int32) if out is None else out
    out[top : top + size, left : left + size] = label
    return out


def brute_force_iou(true, pred):
    t_ids = [i for i in np.unique(true) if i != 0]
    p_ids = [j for j in np.unique(pred) if j != 0]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for a, i in enumerate(t_ids):
        for b, j in enumerate(p_ids):
            inter = np.sum((true == i) & (pred == j))
            union = np.sum((true == i) | (pred == j))
            iou[a, b] = inter / union
    return iou


def random_labels(rng, shape=(40, 50), n=12):
    """Random overlapping rectangles painted in order (later ones cover earlier ones)."""
    img = np.zeros(shape, dtype=np.int32)
    for k in range(1, n + 1):
        r, c = rng.integers(0, shape[0] - 5), rng.integers(0, shape[1] - 5)
        h, w = rng.integers(3, 15, size=2)
        img[r : r + h, c : c + w] = k
    return img


# --- IoU matrix -------------------------------------------------------------------------


def test_shifted_squares_iou_exact():
    # 10x10 squares shifted by 2 columns: intersection 80, union 120 -> IoU 2/3.
    true = square((30, 30), 5, 5, 10)
    pred = square((30, 30), 5, 7, 10)
    iou = match_instances(true, pred)
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(80 / 120)
    # shift by 1 row and 1 column: intersection 81, union 119
    pred = square((30, 30), 6, 6, 10, label=7)
    assert match_instances(true, pred)[0, 0] == pytest.approx(81 / 119)


def test_iou_matrix_labels_and_order():
    true = square((20, 20), 0, 0, 4, label=5)
    square((20, 20), 10, 10, 4, label=2, out=true)
    pred = square((20, 20), 10, 10, 4, label=9)
    iou, tl, pl = match_instances(true, pred, return_labels=True)
    np.testing.assert_array_equal(tl, [2, 5])
    np.testing.assert_array_equal(pl, [9])
    np.testing.assert_allclose(iou, [[1.0], [0.0]])


@pytest.mark.parametrize("seed", range(5))
def test_iou_matrix_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    true = random_labels(rng)
    pred = random_labels(rng)
    np.testing.assert_allclose(match_instances(true, pred), brute_force_iou(true, pred))


def test_intersections_agree_with_skimage_contingency_table():
    rng = np.random.default_rng(42)
    true = random_labels(rng, n=15)
    pred = random_labels(rng, n=9)
    iou, tl, pl = match_instances(true, pred, return_labels=True)
    cont = contingency_table(true, pred).toarray()
    inter = cont[np.ix_(tl, pl)]
    area_t = cont[tl].sum(axis=1)
    area_p = cont[:, pl].sum(axis=0)
    np.testing.assert_allclose(iou, inter / (area_t[:, None] + area_p[None, :] - inter))


def test_inputs_validated():
    with pytest.raises(ValueError, match="same shape"):
        match_instances(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(TypeError, match="integer label image"):
        match_instances(np.zeros((3, 3)), np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="negative"):
        match_instances(-np.ones((3, 3), int), np.zeros((3, 3), int))


# --- average precision -----------------------------------------------------------------


def test_thresholds_are_dsb():
    np.testing.assert_allclose(
        DSB_THRESHOLDS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    )


def test_perfect_prediction_scores_one_even_with_relabelling():
    rng = np.random.default_rng(0)
    true = random_labels(rng)
    pred = np.where(true > 0, true + 100, 0)
    assert map_dsb(true, pred) == 1.0
    assert ap_at(true, pred) == 1.0
    assert pixel_iou(true, pred) == 1.0


def test_ap_of_shifted_square_steps_at_its_iou():
    true = square((30, 30), 5, 5, 10)
    pred = square((30, 30), 5, 7, 10)  # IoU = 2/3
    ap = average_precision_dsb(true, pred)
    expected = (DSB_THRESHOLDS < 2 / 3).astype(float)  # 1 match below, 0/2 above
    np.testing.assert_allclose(ap, expected)
    assert map_dsb(true, pred) == pytest.approx(4 / 10)  # thresholds 0.50..0.65 pass


def test_iou_exactly_at_threshold_is_not_a_match():
    true = square((20, 20), 0, 0, 4)  # 16 px
    pred = np.zeros_like(true)
    pred[0:2, 0:4] = 1  # top half: IoU = 8/16 = 0.5 exactly
    assert match_instances(true, pred)[0, 0] == 0.5
    assert ap_at(true, pred, 0.5) == 0.0
    assert ap_at(true, pred, 0.49) == 1.0


def test_missing_object():
    true = square((40, 40), 2, 2, 8, label=1)
    square((40, 40), 20, 20, 8, label=2, out=true)
    pred = square((40, 40), 2, 2, 8, label=1)
    # TP = 1, FN = 1 -> 1/2 at every threshold
    np.testing.assert_allclose(average_precision_dsb(true, pred), 0.5)
    assert map_dsb(true, pred) == pytest.approx(0.5)


def test_extra_object():
    true = square((40, 40), 2, 2, 8, label=1)
    pred = square((40, 40), 2, 2, 8, label=1)
    square((40, 40), 20, 20, 8, label=2, out=pred)
    square((40, 40), 30, 5, 5, label=3, out=pred)
    # TP = 1, FP = 2 -> 1/3
    assert map_dsb(true, pred) == pytest.approx(1 / 3)
    assert pixel_iou(true, pred) == pytest.approx(64 / (64 + 64 + 25))


def test_split_object():
    # A 10x10 true object predicted as two halves of 10x6 and 10x4:
    # IoUs 0.6 and 0.4 -> at t=0.5,0.55: TP=1, FP=1, FN=0 -> 1/2; above 0.6: TP=0 -> 0/3.
    true = square((30, 30), 0, 0, 10)
    pred = np.zeros_like(true)
    pred[0:10, 0:6] = 1
    pred[0:10, 6:10] = 2
    np.testing.assert_allclose(match_instances(true, pred), [[0.6, 0.4]])
    expected = np.where(DSB_THRESHOLDS < 0.6, 0.5, 0.0)
    np.testing.assert_allclose(average_precision_dsb(true, pred), expected)
    assert map_dsb(true, pred) == pytest.approx(2 * 0.5 / 10)
    assert pixel_iou(true, pred) == 1.0


def test_low_threshold_uses_one_to_one_matching():
    # One true object overlapping two predictions with IoU 0.4 and 0.3: only one can match.
    true = square((30, 30), 0, 0, 10)
    pred = np.zeros_like(true)
    pred[0:10, 0:4] = 1
    pred[0:10, 4:7] = 2
    assert ap_at(true, pred, 0.2) == pytest.approx(1 / 2)  # TP=1, FP=1, FN=0


def test_empty_cases():
    empty = np.zeros((10, 10), dtype=np.int32)
    obj = square((10, 10), 2, 2, 3)
    assert map_dsb(empty, empty) == 1.0
    assert map_dsb(empty, obj) == 0.0
    assert map_dsb(obj, empty) == 0.0
    assert ap_at(empty, obj) == 0.0
    assert pixel_iou(empty, empty) == 1.0
    assert pixel_iou(obj, empty) == 0.0
    assert match_instances(empty, obj).shape == (0, 1)


def test_image_without_background():
    true = np.ones((4, 4), dtype=np.int32)
    pred = np.ones((4, 4), dtype=np.int32) * 3
    assert map_dsb(true, pred) == 1.0


def test_pixel_iou_agrees_with_sklearn():
    rng = np.random.default_rng(3)
    true, pred = random_labels(rng), random_labels(rng)
    expected = jaccard_score((true > 0).ravel(), (pred > 0).ravel())
    assert pixel_iou(true, pred) == pytest.approx(expected)


def test_bad_thresholds():
    obj = square((10, 10), 2, 2, 3)
    with pytest.raises(ValueError, match="thresholds"):
        average_precision_dsb(obj, obj, [1.0])


# --- real image -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mask(shared_data):
    path = shared_data / "nuclei_stardist_example" / "mask2d.tif"
    if not path.exists():
        pytest.skip(f"real example data not found at {path}")
    import tifffile

    return tifffile.imread(path)


def test_real_mask_iou_matrix_and_self_score(real_mask):
    assert real_mask.shape == (512, 512)
    iou = match_instances(real_mask, real_mask)
    assert iou.shape == (125, 125)
    np.testing.assert_allclose(np.diag(iou), 1.0)
    assert map_dsb(real_mask, real_mask) == 1.0
    # Shifting every object by one pixel lowers IoU; compare to brute force on a crop.
    shifted = np.roll(real_mask, 1, axis=1)
    crop = (slice(0, 128), slice(0, 128))
    np.testing.assert_allclose(
        match_instances(real_mask[crop], shifted[crop]),
        brute_force_iou(real_mask[crop], shifted[crop]),
    )
    assert 0.0 < map_dsb(real_mask, shifted) < 1.0


def test_classify_instances_hand_case():
    true = square((40, 40), 2, 2, 8, label=3)  # matched (IoU 1)
    square((40, 40), 20, 20, 8, label=5, out=true)  # missed -> FN
    square((40, 40), 30, 2, 6, label=7, out=true)  # predicted with IoU 0.5 exactly -> FN
    pred = square((40, 40), 2, 2, 8, label=1)
    pred[30:33, 2:8] = 2  # top half of label 7 (IoU 18/36) -> FP
    pred[10:14, 30:34] = 4  # nothing there -> FP
    cls = classify_instances(true, pred)
    assert cls["tp_true"].tolist() == [3] and cls["tp_pred"].tolist() == [1]
    assert cls["fn"].tolist() == [5, 7] and cls["fp"].tolist() == [2, 4]
    # counts agree with the AP definition TP / (TP + FP + FN)
    assert ap_at(true, pred, 0.5) == pytest.approx(1 / (1 + 2 + 2))
    loose = classify_instances(true, pred, threshold=0.4)
    assert loose["tp_true"].tolist() == [3, 7] and loose["fn"].tolist() == [5]
    empty = classify_instances(np.zeros_like(true), np.zeros_like(true))
    assert all(v.size == 0 for v in empty.values())


def test_segmentation_scores():
    true = square((30, 30), 5, 5, 10)
    pred = square((30, 30), 5, 7, 10, label=4)  # IoU 2/3
    s = segmentation_scores(true, pred)
    assert s["map_dsb"] == pytest.approx(0.4) and s["ap50"] == 1.0
    assert s["pixel_iou"] == pytest.approx(80 / 120)
    assert (s["n_true"], s["n_pred"]) == (1, 1)


# --- cross-check against an independent matcher ------------------------------------------


def reference_ap(true, pred, threshold):
    """StarDist-style matching written independently: brute-force IoU, then the one-to-one
    assignment of maximal total IoU among pairs with IoU > threshold (scipy's
    linear_sum_assignment); AP = TP / (TP + FP + FN) as in the DSB 2018 definition."""
    from scipy.optimize import linear_sum_assignment

    iou = brute_force_iou(true, pred)
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0
    if n_true == 0 or n_pred == 0:
        return 0.0
    eligible = np.where(iou > threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(-eligible)
    tp = int(np.sum(iou[rows, cols] > threshold))
    return tp / (tp + (n_pred - tp) + (n_true - tp))


@pytest.mark.parametrize("seed", range(6))
def test_ap_matches_an_independent_hungarian_matcher(seed):
    rng = np.random.default_rng(100 + seed)
    true = random_labels(rng, n=10)
    pred = random_labels(rng, n=9) if seed % 2 else np.roll(true, seed, axis=1)
    thresholds = [0.1, 0.3, *DSB_THRESHOLDS]
    ours = average_precision_dsb(true, pred, thresholds)
    ref = [reference_ap(true, pred, t) for t in thresholds]
    np.testing.assert_allclose(ours, ref)
    assert map_dsb(true, pred) == pytest.approx(np.mean(ref[2:]))


def test_real_mask_perturbations_match_the_independent_matcher(real_mask):
    from scipy import ndimage as ndi

    crop = real_mask[:160, :160]
    eroded = np.where(ndi.binary_erosion(crop > 0, iterations=2), crop, 0)
    merged = np.where(crop == np.unique(crop)[2], np.unique(crop)[1], crop)  # two become one
    for pred in (np.roll(crop, 3, axis=0), eroded, merged):
        for t in (0.5, 0.75, 0.9):
            assert ap_at(crop, pred, t) == pytest.approx(reference_ap(crop, pred, t))
