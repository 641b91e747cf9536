"""Instance-segmentation metrics on label images.

A label image is a 2-D (or n-D) array of non-negative integers: ``0`` is background and
every positive value is one object (instance). All functions accept a ground-truth label
image ``true`` and a predicted one ``pred`` of the same shape.

Conventions
-----------
* Objects are matched one-to-one when their intersection over union (IoU) is strictly
  greater than a threshold ``t`` (the 2018 Data Science Bowl rule). For ``t >= 0.5`` such
  a match is necessarily unique; below 0.5 a maximum-cardinality matching is used.
* Empty cases: if both images have no object the score is 1.0 (nothing to find, nothing
  wrongly found); if exactly one is empty the score is 0.0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

__all__ = [
    "DSB_THRESHOLDS",
    "average_precision_dsb",
    "classify_instances",
    "map_dsb",
    "match_instances",
    "pixel_iou",
    "segmentation_scores",
]

#: IoU thresholds of the 2018 Data Science Bowl metric: 0.50, 0.55, ..., 0.95.
DSB_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def _check_pair(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two label images and return them as integer arrays."""
    true = np.asarray(true)
    pred = np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(
            f"true and pred must have the same shape, got {true.shape} and {pred.shape}; "
            "crop or resize one of them."
        )
    for name, arr in (("true", true), ("pred", pred)):
        if arr.dtype == bool:
            continue
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"{name} must be an integer label image, got dtype {arr.dtype}; "
                "convert it with skimage.measure.label or .astype(np.int32)."
            )
        if arr.size and arr.min() < 0:
            raise ValueError(f"{name} has negative labels; labels must be >= 0 (0 = background).")
    return true.astype(np.int64, copy=False), pred.astype(np.int64, copy=False)


def match_instances(
    true: np.ndarray, pred: np.ndarray, return_labels: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute the IoU matrix between the instances of two label images.

    The intersections are counted in one pass with a sparse contingency table over the
    pixel pairs (no loop over object pairs).

    Parameters
    ----------
    true : numpy.ndarray
        Ground-truth label image (0 = background).
    pred : numpy.ndarray
        Predicted label image of the same shape.
    return_labels : bool, optional
        If True, also return the labels that index the rows and columns.

    Returns
    -------
    iou : numpy.ndarray
        Float array of shape ``(n_true, n_pred)``; ``iou[i, j]`` is the IoU of the i-th
        true object and the j-th predicted object, objects sorted by label value.
    true_labels, pred_labels : numpy.ndarray
        The labels of the rows and columns, only if ``return_labels`` is True.
    """
    true, pred = _check_pair(true, pred)
    t_ids, t_inv = np.unique(true.ravel(), return_inverse=True)
    p_ids, p_inv = np.unique(pred.ravel(), return_inverse=True)
    # Make sure index 0 is the background so it can be dropped below.
    t_ids, t_inv = _with_background(t_ids, t_inv)
    p_ids, p_inv = _with_background(p_ids, p_inv)
    ones = np.ones(t_inv.size, dtype=np.int64)
    cont = sp.coo_matrix((ones, (t_inv, p_inv)), shape=(t_ids.size, p_ids.size)).toarray()
    area_t = cont.sum(axis=1)[1:]
    area_p = cont.sum(axis=0)[1:]
    inter = cont[1:, 1:].astype(np.float64)
    union = area_t[:, None] + area_p[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    if return_labels:
        return iou, t_ids[1:], p_ids[1:]
    return iou


def _with_background(ids: np.ndarray, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prepend label 0 to ``ids`` (shifting ``inv``) when the image has no background."""
    if ids.size and ids[0] == 0:
        return ids, inv
    return np.concatenate([[0], ids]), inv + 1


def _n_matches(iou: np.ndarray, threshold: float) -> int:
    """Return the number of one-to-one matches with IoU strictly above ``threshold``."""
    hits = iou > threshold
    if threshold >= 0.5:
        # IoU > 0.5 with one object excludes IoU > 0.5 with any other: matches are unique.
        return int(hits.sum())
    if not hits.any():
        return 0
    rows, cols = linear_sum_assignment(hits, maximize=True)
    return int(hits[rows, cols].sum())


def average_precision_dsb(
    true: np.ndarray, pred: np.ndarray, thresholds: np.ndarray | None = None
) -> np.ndarray:
    """Compute the DSB 2018 average precision ``TP / (TP + FP + FN)`` at each threshold.

    Parameters
    ----------
    true : numpy.ndarray
        Ground-truth label image (0 = background).
    pred : numpy.ndarray
        Predicted label image of the same shape.
    thresholds : array_like of float, optional
        IoU thresholds in ``[0, 1)``; a pair matches when IoU > threshold. Defaults to
        :data:`DSB_THRESHOLDS` (0.50, 0.55, ..., 0.95).

    Returns
    -------
    numpy.ndarray
        One score per threshold. 1.0 everywhere when both images are empty, 0.0 when
        exactly one of them is empty.
    """
    thresholds = DSB_THRESHOLDS if thresholds is None else np.atleast_1d(thresholds)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.size == 0 or np.any((thresholds < 0) | (thresholds >= 1)):
        raise ValueError(
            f"thresholds must be a non-empty set of values in [0, 1), got {thresholds}."
        )
    iou = match_instances(true, pred)
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return np.ones(thresholds.size)
    scores = np.empty(thresholds.size)
    for k, t in enumerate(thresholds):
        tp = _n_matches(iou, t)
        scores[k] = tp / (n_true + n_pred - tp)  # TP + FP + FN
    return scores


def map_dsb(true: np.ndarray, pred: np.ndarray) -> float:
    """Compute the 2018 Data Science Bowl score: mean AP over IoU thresholds 0.50:0.05:0.95.

    Parameters
    ----------
    true : numpy.ndarray
        Ground-truth label image (0 = background).
    pred : numpy.ndarray
        Predicted label image of the same shape.

    Returns
    -------
    float
        Score in ``[0, 1]`` (1.0 if both are empty, 0.0 if only one is).
    """
    return float(average_precision_dsb(true, pred, DSB_THRESHOLDS).mean())


def pixel_iou(true: np.ndarray, pred: np.ndarray) -> float:
    """Compute the foreground IoU (Jaccard index) of two label or binary images.

    Parameters
    ----------
    true : numpy.ndarray
        Ground-truth label or boolean image; any non-zero pixel is foreground.
    pred : numpy.ndarray
        Predicted label or boolean image of the same shape.

    Returns
    -------
    float
        ``|true > 0 & pred > 0| / |true > 0 | pred > 0|``; 1.0 if both are empty.
    """
    true, pred = _check_pair(true, pred)
    a = true > 0
    b = pred > 0
    union = np.count_nonzero(a | b)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(a & b) / union)


def classify_instances(
    true: np.ndarray, pred: np.ndarray, threshold: float = 0.5
) -> dict[str, np.ndarray]:
    """Split objects into true positives, false positives and false negatives at one IoU.

    Matching is the one used by :func:`average_precision_dsb` (IoU strictly above
    ``threshold``; unique for ``threshold >= 0.5``, maximum matching below).

    Parameters
    ----------
    true : numpy.ndarray
        Ground-truth label image (0 = background).
    pred : numpy.ndarray
        Predicted label image of the same shape.
    threshold : float, optional
        IoU threshold. Default 0.5.

    Returns
    -------
    dict of numpy.ndarray
        ``tp_true`` and ``tp_pred`` (labels of the matched pairs, in matching order),
        ``fn`` (unmatched true labels) and ``fp`` (unmatched predicted labels).
    """
    iou, t_lab, p_lab = match_instances(true, pred, return_labels=True)
    hits = iou > threshold
    if hits.any():
        rows, cols = linear_sum_assignment(hits, maximize=True)
        ok = hits[rows, cols]
        rows, cols = rows[ok], cols[ok]
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    return {
        "tp_true": t_lab[rows],
        "tp_pred": p_lab[cols],
        "fn": np.setdiff1d(t_lab, t_lab[rows]),
        "fp": np.setdiff1d(p_lab, p_lab[cols]),
    }


def segmentation_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Compute the scores reported per image: mAP_DSB, AP at 0.5, pixel IoU and counts.

    Parameters
    ----------
    true : numpy.ndarray
        Ground-truth label image (0 = background).
    pred : numpy.ndarray
        Predicted label image of the same shape.

    Returns
    -------
    dict
        ``map_dsb``, ``ap50`` (DSB AP at IoU 0.5), ``pixel_iou``, ``n_true``, ``n_pred``.
    """
    ap = average_precision_dsb(true, pred)
    return {
        "map_dsb": float(ap.mean()),
        "ap50": float(ap[0]),
        "pixel_iou": pixel_iou(true, pred),
        "n_true": int(np.unique(true[true > 0]).size),
        "n_pred": int(np.unique(pred[pred > 0]).size),
    }
