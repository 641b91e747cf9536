"""Measure the objects of a label image and apply the nucleus quality filters.

The filters follow Image2Reg's defaults for 20x U2OS images (pixel units) and live in one
place, :class:`NucleusFilter`. :func:`filter_nuclei` measures area, bounding box, centroid
and the second moments (eccentricity, axis lengths) of every object in one pass over the
foreground pixels (:func:`scipy.ndimage.find_objects` and :func:`numpy.bincount`); the
convex hull (solidity) is computed only for objects that passed every other filter and
whose solidity is not already guaranteed by the bound ``solidity >= area / bbox_area``.
:func:`too_few_nuclei_message` says which filter removed the most and what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

__all__ = [
    "FILTERS",
    "FILTER_PARAMETERS",
    "NucleusFilter",
    "filter_nuclei",
    "measure_objects",
    "too_few_nuclei_message",
]

#: Filters in the order they are applied (``removed_<name>`` counts objects each removed).
FILTERS = ("border", "area", "bbox_area", "eccentricity", "aspect_ratio", "solidity")

#: The :class:`NucleusFilter` fields that control each filter.
FILTER_PARAMETERS = {
    "border": ("drop_border",),
    "area": ("min_area", "max_area"),
    "bbox_area": ("max_bbox_area",),
    "eccentricity": ("max_eccentricity",),
    "aspect_ratio": ("min_aspect_ratio",),
    "solidity": ("min_solidity",),
}


@dataclass(frozen=True)
class NucleusFilter:
    """Nucleus quality filters in pixel units (Image2Reg defaults for 20x U2OS).

    Attributes
    ----------
    min_area, max_area : float
        Allowed nucleus area in pixels (at ``pixel_scale`` 1).
    max_bbox_area : float
        Largest bounding-box area in pixels (at ``pixel_scale`` 1).
    max_eccentricity : float
        Largest eccentricity (1.0 keeps all).
    min_solidity : float
        Smallest area / convex-hull area.
    min_aspect_ratio : float
        Smallest minor / major axis length.
    drop_border : bool
        Drop objects touching the image border.
    pixel_scale : float
        Linear scale relative to the 20x images the defaults were tuned on (e.g. 0.5 for
        10x, 2.0 for 40x): the area limits are multiplied by its square.
    """

    min_area: float = 400
    max_area: float = 4000
    max_bbox_area: float = 4000
    max_eccentricity: float = 1.0
    min_solidity: float = 0.1
    min_aspect_ratio: float = 0.1
    drop_border: bool = True
    pixel_scale: float = 1.0

    def __post_init__(self):
        """Reject impossible settings early, with the parameter to change."""
        if self.pixel_scale <= 0:
            raise ValueError(f"pixel_scale must be > 0, got {self.pixel_scale}")
        if self.min_area > self.max_area:
            raise ValueError(
                f"min_area ({self.min_area}) > max_area ({self.max_area}); no nucleus can pass"
            )

    @property
    def area_limits(self) -> tuple[float, float, float]:
        """``(min_area, max_area, max_bbox_area)`` in pixels at this ``pixel_scale``."""
        s2 = self.pixel_scale**2
        return self.min_area * s2, self.max_area * s2, self.max_bbox_area * s2


# --------------------------------------------------------------------------------------
# measuring and filtering
# --------------------------------------------------------------------------------------
def measure_objects(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Measure every object of a label image in one pass over its foreground pixels.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer label image (0 = background).

    Returns
    -------
    dict of numpy.ndarray
        One entry per object (sorted by label): ``label``, ``area``, ``bbox`` ``(n, 4)``
        (min row, min col, max row, max col; max exclusive, as regionprops), ``centroid``
        ``(n, 2)``, ``axis_major_length``, ``axis_minor_length`` and ``eccentricity``
        (from the eigenvalues of the inertia tensor, as :func:`skimage.measure.regionprops`).
    """
    labels = np.asarray(labels)
    slices = ndi.find_objects(labels)
    ids = np.array([i + 1 for i, s in enumerate(slices) if s is not None], dtype=np.int64)
    bbox = np.array(
        [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in slices if s is not None],
        dtype=np.int64,
    ).reshape(-1, 4)
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    lab = flat[fg].astype(np.int64)
    rows, cols = np.divmod(fg, labels.shape[1])
    m = int(lab.max(initial=0)) + 1
    area = np.bincount(lab, minlength=m)[ids].astype(np.int64)
    sy = np.bincount(lab, rows, minlength=m)[ids]
    sx = np.bincount(lab, cols, minlength=m)[ids]
    centroid = np.column_stack([sy / np.maximum(area, 1), sx / np.maximum(area, 1)])
    # central second moments, on coordinates relative to the object's centroid
    pos = np.zeros(m, np.int64)
    pos[ids] = np.arange(ids.size)
    k = pos[lab]
    dy = rows - centroid[k, 0]
    dx = cols - centroid[k, 1]
    n = np.maximum(area, 1)
    a = np.bincount(k, dx * dx, minlength=ids.size) / n  # inertia tensor [[a, -b], [-b, c]]
    c = np.bincount(k, dy * dy, minlength=ids.size) / n
    b = np.bincount(k, dy * dx, minlength=ids.size) / n
    half = np.sqrt(4 * b**2 + (a - c) ** 2) / 2
    l1 = np.clip((a + c) / 2 + half, 0, None)
    l2 = np.clip((a + c) / 2 - half, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        ecc = np.where(l1 == 0, 0.0, np.sqrt(1 - l2 / np.where(l1 == 0, 1, l1)))
    return {
        "label": ids,
        "area": area,
        "bbox": bbox,
        "centroid": centroid,
        "axis_major_length": 4 * np.sqrt(l1),
        "axis_minor_length": 4 * np.sqrt(l2),
        "eccentricity": ecc,
    }


def _select(objs: dict, keep: np.ndarray) -> dict:
    return {k: v[keep] for k, v in objs.items()}


def filter_nuclei(
    labels: np.ndarray, filt: NucleusFilter = NucleusFilter()
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Apply the nucleus filters to a label image (fast path, cheap filters first).

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer label image (0 = background).
    filt : NucleusFilter
        Filter thresholds.

    Returns
    -------
    kept : dict of numpy.ndarray
        The measurements of :func:`measure_objects` restricted to the nuclei that pass
        every filter, plus ``solidity`` (NaN where the bound ``area / bbox_area`` already
        guaranteed the solidity filter, so the convex hull was not computed).
    counts : dict
        ``n_objects``, ``removed_<filter>`` for each of :data:`FILTERS` (applied in that
        order, each counts only objects that passed the previous ones) and ``n_kept``.
    """
    h, w = np.shape(labels)
    objs = measure_objects(labels)
    counts = {"n_objects": int(objs["label"].size)}
    lo, hi, max_bbox = filt.area_limits

    def apply(name, keep):
        counts[f"removed_{name}"] = int((~keep).sum())
        return _select(objs, keep)

    bb = objs["bbox"]
    inside = (bb[:, 0] > 0) & (bb[:, 1] > 0) & (bb[:, 2] < h) & (bb[:, 3] < w)
    objs = apply("border", inside | (not filt.drop_border))
    objs = apply("area", (objs["area"] >= lo) & (objs["area"] <= hi))
    bb = objs["bbox"]
    bbox_area = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
    objs = apply("bbox_area", bbox_area <= max_bbox)
    objs = apply("eccentricity", objs["eccentricity"] <= filt.max_eccentricity)
    major, minor = objs["axis_major_length"], objs["axis_minor_length"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_ok = (major > 0) & (minor / np.where(major > 0, major, 1) >= filt.min_aspect_ratio)
    objs = apply("aspect_ratio", ratio_ok)
    # solidity = area / convex area >= area / bbox area: only compute hulls where that
    # bound does not already pass the filter
    bb = objs["bbox"]
    bbox_area = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
    solidity = np.full(objs["label"].size, np.nan)
    labels = np.asarray(labels)
    for i in np.flatnonzero(objs["area"] / bbox_area < filt.min_solidity):
        r0, c0, r1, c1 = bb[i]
        image = labels[r0:r1, c0:c1] == objs["label"][i]
        solidity[i] = objs["area"][i] / np.sum(convex_hull_image(image))
    objs["solidity"] = solidity
    objs = apply("solidity", ~(solidity < filt.min_solidity))
    counts["n_kept"] = int(objs["label"].size)
    return objs, counts


def too_few_nuclei_message(
    what: str,
    counts: pd.DataFrame,
    filt: NucleusFilter,
    n_kept: int,
    min_nuclei: int = 2,
    magnification: str | None = None,
) -> str:
    """Explain why fewer than ``min_nuclei`` nuclei were kept and which parameter to change.

    Parameters
    ----------
    what : str
        What ran short, with the file to look at (e.g. ``"plate P01 (images in ...)"``).
    counts : pandas.DataFrame
        Per-image filter counts (columns ``n_objects``, ``removed_<filter>``).
    filt : NucleusFilter
        The filters used.
    n_kept, min_nuclei : int
        Nuclei kept and needed.
    magnification : str, optional
        How to set another magnification, when not by ``filt.pixel_scale`` (e.g. the
        option of a command that resamples the images). Such a command applies the
        screen's filters as they are: the message then names no filter setting to edit.

    Returns
    -------
    str
        The message: no object at all, too few objects (no filter removed any), or the
        filter that removed the most and its parameters.
    """
    short = "no nucleus left" if min_nuclei == 1 else f"fewer than {min_nuclei} nuclei"
    fixed = magnification is not None  # a command: the screen's filters, not to be edited
    n_obj = int(counts["n_objects"].sum()) if len(counts) else 0
    if n_obj == 0:
        masks_out = (
            "to segment the nuclei" if fixed else "(empty Metadata_MaskPath) to segment them"
        )
        return (
            f"{what}: {short} after filtering: the masks contain no object at all. Check "
            "that the masks are label images of these images (0 = background, 1..N = "
            f"nuclei), or leave the masks out {masks_out}."
        )
    removed = {f: int(counts[f"removed_{f}"].sum()) for f in FILTERS}
    if not any(removed.values()):
        return (
            f"{what}: {short} after filtering: only {n_obj} object(s) found, and no filter "
            f"removed any ({min_nuclei} needed). Use more images, or images with more nuclei."
        )
    worst = max(removed, key=removed.get)
    params = ", ".join(f"{p}={getattr(filt, p)!r}" for p in FILTER_PARAMETERS[worst])
    detail = ", ".join(f"{f} {n}" for f, n in removed.items() if n)
    head = (
        f"{what}: {short} after filtering ({n_kept} kept of {n_obj} objects; removed by "
        f"filter: {detail}). The {worst!r} filter removed the most"
    )
    if fixed:
        return (
            f"{head} ({params}: the screen's filters, applied to new images alike, so the "
            f"nuclei must look as in the screen). For another magnification than 20x, "
            f"{magnification} Else check that the masks outline these images' nuclei."
        )
    magnification = (
        f"set pixel_scale (now {filt.pixel_scale}; e.g. 0.5 for 10x, 2.0 for 40x): area "
        "limits scale with its square."
    )
    return (
        f"{head}: change NucleusFilter({params}), or, for another magnification than 20x, "
        f"{magnification}"
    )
