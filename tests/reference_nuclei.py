"""Naive reference of the nucleus filters and small label images, for tests and benchmarks.

:func:`filter_nuclei_regionprops` computes every property of every object with
:func:`skimage.measure.regionprops` (solidity included) and applies the filters of
:class:`i2r_utils.nucleus_filter.NucleusFilter` one after the other;
:func:`i2r_utils.nucleus_filter.filter_nuclei` must give identical results.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import regionprops

from i2r_utils.nucleus_filter import FILTERS, NucleusFilter


def filter_nuclei_regionprops(labels: np.ndarray, filt: NucleusFilter | None = None):
    """Filter the objects of a label image from regionprops; ``(kept, counts)`` as the fast path.

    ``kept`` has ``label``, ``area``, ``bbox``, ``centroid`` and ``solidity`` of the kept nuclei.
    """
    filt = filt or NucleusFilter()
    h, w = np.shape(labels)
    lo, hi, max_bbox = filt.area_limits
    rows = []
    for p in regionprops(np.asarray(labels)):
        major = p.axis_major_length
        rows.append(
            {
                "label": p.label,
                "area": int(p.area),
                "bbox": p.bbox,
                "centroid": p.centroid,
                "border": p.bbox[0] == 0 or p.bbox[1] == 0 or p.bbox[2] == h or p.bbox[3] == w,
                "bbox_area": p.area_bbox,
                "eccentricity": p.eccentricity,
                "aspect": p.axis_minor_length / major if major > 0 else -1.0,
                "solidity": p.solidity,
            }
        )
    counts = {"n_objects": len(rows)}
    tests = {
        "border": lambda r: not (filt.drop_border and r["border"]),
        "area": lambda r: lo <= r["area"] <= hi,
        "bbox_area": lambda r: r["bbox_area"] <= max_bbox,
        "eccentricity": lambda r: r["eccentricity"] <= filt.max_eccentricity,
        "aspect_ratio": lambda r: r["aspect"] >= filt.min_aspect_ratio,
        "solidity": lambda r: r["solidity"] >= filt.min_solidity,
    }
    for name in FILTERS:
        kept = [r for r in rows if tests[name](r)]
        counts[f"removed_{name}"] = len(rows) - len(kept)
        rows = kept
    counts["n_kept"] = len(rows)
    out = {
        "label": np.array([r["label"] for r in rows], np.int64),
        "area": np.array([r["area"] for r in rows], np.int64),
        "bbox": np.array([r["bbox"] for r in rows], np.int64).reshape(-1, 4),
        "centroid": np.array([r["centroid"] for r in rows], np.float64).reshape(-1, 2),
        "solidity": np.array([r["solidity"] for r in rows], np.float64),
    }
    return out, counts


def disks():
    lab = np.zeros((200, 200), np.int32)
    yy, xx = np.mgrid[:200, :200]
    for i, (cy, cx, r) in enumerate([(50, 50, 15), (120, 60, 8), (100, 150, 20), (5, 100, 15)], 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = i
    return lab


def odd_shapes(seed=0):
    """Convex and non-convex objects (L, U, rings, thin bars) on a 300x300 canvas."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((300, 300), np.int32)
    k = 0
    for r in range(0, 300, 50):
        for c in range(0, 300, 50):
            k += 1
            h, w = rng.integers(8, 45, 2)
            block = np.ones((h, w), bool)
            kind = k % 4
            if kind == 1:  # L shape
                block[: h // 2, w // 3 :] = False
            elif kind == 2:  # U shape
                block[: 2 * h // 3, w // 3 : 2 * w // 3] = False
            elif kind == 3:  # ring-like frame
                block[2:-2, 2:-2] = h < 12 or w < 12
            lab[r + 2 : r + 2 + h, c + 2 : c + 2 + w][block] = k
    return lab
