"""Nucleus filtering, 64x64 single-nucleus crops and per-plate preprocessing.

The filters follow Image2Reg's defaults for 20x U2OS images (pixel units) and live in
one place, :class:`NucleusFilter`. :func:`filter_nuclei` is the fast path: area, bounding
box, centroid and the second moments (eccentricity, axis lengths) of every object come from
one pass over the foreground pixels (:func:`scipy.ndimage.find_objects` and
:func:`numpy.bincount`); the convex hull (solidity) is computed only for objects that
passed every other filter and whose solidity is not already guaranteed by the bound
``solidity >= area / bbox_area``. :func:`filter_nuclei_regionprops` is the naive
reference (every property of every object from :func:`skimage.measure.regionprops`); both
give identical results.

The plate stage (:func:`preprocess_plate`) writes, for one plate, the four files of the
stage contract under ``out_dir`` (``work_dir/nuclei``), each atomically:

* ``plates/<plate>.parquet``: one row per kept nucleus, all columns ``Metadata_`` (image
  metadata, object number, centroid, area, bounding box, ``Metadata_CropIndex``);
* ``crops/<plate>.npz``: ``crops`` array ``(n, 64, 64)`` float16, row = CropIndex;
* ``features/<plate>.parquet``: ``Metadata_`` + ``Nuclei_<Family>_<Name>`` features;
* ``filter_counts/<plate>.csv``: per image, objects found and removed by each filter.

A plate whose four files exist is skipped, so runs resume and plates can run in parallel.
:func:`merge_plates` (dataset stage) checks and concatenates them.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.morphology import convex_hull_image
from tqdm.auto import tqdm

from .io import (
    REQUIRED_METADATA,
    InputError,
    atomic_path,
    load_metadata,
    read_image,
    read_mask,
    read_table,
    write_table,
)

__all__ = [
    "FILTERS",
    "FILTER_PARAMETERS",
    "NucleusFilter",
    "crop_nuclei",
    "filter_nuclei",
    "filter_nuclei_regionprops",
    "load_crops",
    "load_screen_metadata",
    "measure_objects",
    "merge_plates",
    "normalize_image",
    "plate_outputs",
    "preprocess_image",
    "preprocess_plate",
    "preprocess_screen",
    "select_plates",
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

_OBJECT_COLUMNS = [
    "Metadata_ObjectNumber",
    "Metadata_CentroidY",
    "Metadata_CentroidX",
    "Metadata_Area",
    "Metadata_BBoxMinY",
    "Metadata_BBoxMinX",
    "Metadata_BBoxMaxY",
    "Metadata_BBoxMaxX",
]


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


def filter_nuclei_regionprops(
    labels: np.ndarray, filt: NucleusFilter = NucleusFilter()
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Naive reference of :func:`filter_nuclei`: every property of every object by regionprops.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer label image (0 = background).
    filt : NucleusFilter
        Filter thresholds.

    Returns
    -------
    kept : dict of numpy.ndarray
        ``label``, ``area``, ``bbox``, ``centroid`` and ``solidity`` of the kept nuclei.
    counts : dict
        As :func:`filter_nuclei`.
    """
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


# --------------------------------------------------------------------------------------
# crops
# --------------------------------------------------------------------------------------
def normalize_image(image: np.ndarray, low: float = 1.0, high: float = 99.9) -> np.ndarray:
    """Scale an image to [0, 1] between two percentiles (per-image normalisation).

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    low, high : float
        Percentiles mapped to 0 and 1.

    Returns
    -------
    numpy.ndarray
        float32 image, clipped to [0, 1].
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = _percentiles(image, (low, high))
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def _percentiles(image: np.ndarray, qs) -> list[float]:
    """``np.percentile(image, qs)`` (linear), from a histogram for 16-bit integer images.

    Raw microscopy images are integer valued; a bincount over their range is several times
    faster than the partial sort of :func:`numpy.percentile` and gives the same values.
    """
    flat = image.ravel()
    lo, hi = (flat.min(), flat.max()) if flat.size else (0, 0)
    if not (flat.size and 0 <= lo and hi < 65536 and np.array_equal(flat, np.floor(flat))):
        return [float(v) for v in np.percentile(image, qs)]
    cum = np.cumsum(np.bincount(flat.astype(np.int64), minlength=int(hi) + 1))
    out = []
    for q in qs:
        pos = q / 100 * (flat.size - 1)
        k = int(np.floor(pos))
        a, b = np.searchsorted(cum, [k, min(k + 1, flat.size - 1)], side="right")
        out.append(float(a + (b - a) * (pos - k)))
    return out


def crop_nuclei(
    image: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    object_numbers: np.ndarray,
    size: int = 64,
    apply_mask: bool = True,
) -> np.ndarray:
    """Cut ``size`` x ``size`` crops centred on each nucleus, zero-padded at the borders.

    Parameters
    ----------
    image : numpy.ndarray
        2-D (normalised) image.
    labels : numpy.ndarray
        Label image of the same shape.
    centroids : numpy.ndarray
        ``(n, 2)`` nucleus centres (row, col), rounded to the nearest pixel.
    object_numbers : numpy.ndarray
        Label value of each nucleus (for the mask).
    size : int
        Crop side in pixels.
    apply_mask : bool
        Zero every pixel outside the nucleus' own mask.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size)`` float32 crops.
    """
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((len(centroids), size, size), np.float32)
    if not len(centroids):
        return out
    half = size // 2
    pad_img = np.pad(np.asarray(image, np.float32), half)
    pad_lab = np.pad(labels, half) if apply_mask else None
    starts = np.round(centroids).astype(np.int64)  # +half (padding) -half (corner) cancel
    for i, (r, c) in enumerate(starts):
        crop = pad_img[r : r + size, c : c + size]
        if apply_mask:
            out[i] = np.where(pad_lab[r : r + size, c : c + size] == object_numbers[i], crop, 0)
        else:
            out[i] = crop
    return out


# --------------------------------------------------------------------------------------
# metadata and errors
# --------------------------------------------------------------------------------------
def load_screen_metadata(data_dir: str | Path) -> pd.DataFrame:
    """Load a screen's ``metadata.csv``, allowing images without masks (to be segmented).

    With a mask for every image this is :func:`i2r_utils.io.load_metadata` (all checks,
    including "no mask with the same file name"). When the ``Metadata_MaskPath`` column is
    absent or has empty entries, those images get ``Metadata_MaskPath = ""`` and the
    preprocessing segments them (:func:`preprocess_image`); the other checks still apply.

    Parameters
    ----------
    data_dir : path-like
        Screen folder with ``metadata.csv``.

    Returns
    -------
    pandas.DataFrame
        Metadata with paths joined to ``data_dir`` (``""`` for missing masks).
    """
    data_dir = Path(data_dir)
    table = data_dir / "metadata.csv"
    if not table.is_file():
        return load_metadata(data_dir)  # raises its InputError
    raw = pd.read_csv(table)
    mask_col = "Metadata_MaskPath"
    if mask_col in raw.columns and raw[mask_col].notna().all() and (raw[mask_col] != "").all():
        return load_metadata(data_dir)
    need = [c for c in REQUIRED_METADATA if c != mask_col]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise InputError(f"{table}: missing columns {missing}; expected {REQUIRED_METADATA}.")
    if raw.empty:
        raise InputError(f"{table}: no images listed.")
    masks = raw[mask_col] if mask_col in raw.columns else pd.Series("", index=raw.index)
    raw[mask_col] = ["" if pd.isna(m) or m == "" else str(data_dir / m) for m in masks]
    raw["Metadata_ImagePath"] = [str(data_dir / p) for p in raw["Metadata_ImagePath"]]
    for img, msk in zip(raw["Metadata_ImagePath"], raw[mask_col], strict=True):
        if not Path(img).is_file():
            raise InputError(f"{img}: image listed in {table} is missing.")
        if msk and not Path(msk).is_file():
            raise InputError(
                f"{img}: no mask with the same file name ({msk} is missing). Provide the label "
                f"mask, or leave Metadata_MaskPath empty in {table} to segment the image."
            )
    return raw


def select_plates(meta: pd.DataFrame, plate: str = "") -> list[str]:
    """Plates to process: all (sorted) for ``""``, else the one named.

    Parameters
    ----------
    meta : pandas.DataFrame
        Screen metadata with ``Metadata_Plate``.
    plate : str
        A plate name, or ``""`` for every plate.

    Returns
    -------
    list of str
        Plate names.
    """
    plates = sorted(meta["Metadata_Plate"].astype(str).unique())
    if plate in ("", None):
        return plates
    if str(plate) not in plates:
        raise InputError(
            f"plate {plate!r} is not in the screen metadata (plates: {plates}); pass one of "
            'them, or plate="" for every plate.'
        )
    return [str(plate)]


def too_few_nuclei_message(
    what: str, counts: pd.DataFrame, filt: NucleusFilter, n_kept: int, min_nuclei: int = 2
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
    n_kept : int
        Nuclei kept.
    min_nuclei : int
        Nuclei needed.

    Returns
    -------
    str
        The message.
    """
    n_obj = int(counts["n_objects"].sum()) if len(counts) else 0
    if n_obj == 0:
        return (
            f"{what}: fewer than {min_nuclei} nuclei after filtering: the masks contain no "
            "object at all. Check that the masks are label images of these images (0 = "
            "background, 1..N = nuclei), or leave Metadata_MaskPath empty to segment them."
        )
    removed = {f: int(counts[f"removed_{f}"].sum()) for f in FILTERS}
    worst = max(removed, key=removed.get)
    params = ", ".join(f"{p}={getattr(filt, p)!r}" for p in FILTER_PARAMETERS[worst])
    detail = ", ".join(f"{f} {n}" for f, n in removed.items() if n)
    return (
        f"{what}: fewer than {min_nuclei} nuclei after filtering ({n_kept} kept of {n_obj} "
        f"objects; removed by filter: {detail}). The {worst!r} filter removed the most: "
        f"change NucleusFilter({params}) (parameters of notebooks/01_preprocess_nuclei), "
        f"or, for another magnification than 20x, set pixel_scale (now {filt.pixel_scale}; "
        "e.g. 0.5 for 10x, 2.0 for 40x): area limits scale with its square."
    )


# --------------------------------------------------------------------------------------
# one image, one plate, the screen
# --------------------------------------------------------------------------------------
def preprocess_image(
    image_path,
    mask_path,
    filt: NucleusFilter = NucleusFilter(),
    size: int = 64,
    apply_mask: bool = True,
    features: bool = True,
    segment_method: str = "classical",
    segment_params: dict | None = None,
    feature_params: dict | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict, pd.DataFrame | None]:
    """Read, validate (or segment), filter, crop and measure the nuclei of one image.

    Parameters
    ----------
    image_path : path-like
        Chromatin image.
    mask_path : path-like or ""
        Its label mask (same file name by convention); ``""`` or None segments the image with
        :func:`i2r_utils.segmentation.segment_nuclei` (``segment_method``).
    filt : NucleusFilter
        Nucleus filters.
    size : int
        Crop side.
    apply_mask : bool
        Zero pixels of other nuclei and background in each crop.
    features : bool
        Also extract the hand-crafted features (:func:`i2r_utils.features.extract_features`)
        of the kept nuclei from the raw image.
    segment_method : str
        ``"classical"`` (or ``"unet"`` with ``segment_params={"model": ...}``) for images
        without a mask.
    segment_params : dict, optional
        Keyword arguments of :func:`~i2r_utils.segmentation.segment_nuclei`.
    feature_params : dict, optional
        Keyword arguments of :func:`~i2r_utils.features.extract_features`.

    Returns
    -------
    crops : numpy.ndarray
        ``(n, size, size)`` float32 crops of the image normalised to [0, 1].
    objects : pandas.DataFrame
        Object number, centroid, area and bounding box (``Metadata_`` columns) per kept
        nucleus.
    counts : dict
        What each filter removed (see :func:`filter_nuclei`).
    feats : pandas.DataFrame or None
        ``Metadata_ObjectNumber`` + feature columns per kept nucleus (None unless
        ``features``).
    """
    image = read_image(image_path)
    if (
        mask_path is None
        or (isinstance(mask_path, float) and np.isnan(mask_path))
        or not str(mask_path)
    ):
        from .segmentation import segment_nuclei

        labels = segment_nuclei(image, method=segment_method, **(segment_params or {}))
    else:
        labels = read_mask(mask_path, image.shape)
    kept, counts = filter_nuclei(labels, filt)
    crops = crop_nuclei(
        normalize_image(image), labels, kept["centroid"], kept["label"], size, apply_mask
    )
    bb = kept["bbox"]
    objects = pd.DataFrame(
        dict(
            zip(
                _OBJECT_COLUMNS,
                [
                    kept["label"],
                    np.round(kept["centroid"][:, 0], 2),
                    np.round(kept["centroid"][:, 1], 2),
                    kept["area"],
                    *bb.T,
                ],
                strict=True,
            )
        )
    )
    feats = None
    if features:
        from .features import extract_features, feature_names

        if len(kept["label"]):
            feats = extract_features(image, labels, kept["label"], **(feature_params or {}))
        else:
            keys = ("n_rings", "families", "glcm_distances")
            names = feature_names(**{k: v for k, v in (feature_params or {}).items() if k in keys})
            feats = pd.DataFrame(columns=["Metadata_ObjectNumber", *names], dtype=np.float64)
            feats["Metadata_ObjectNumber"] = feats["Metadata_ObjectNumber"].astype(np.int64)
    return crops, objects, counts, feats


def plate_outputs(out_dir: str | Path, plate: str) -> dict[str, Path]:
    """Paths of the four per-plate files under ``out_dir`` (``work_dir/nuclei``).

    Parameters
    ----------
    out_dir : path-like
        The nuclei folder.
    plate : str
        Plate name.

    Returns
    -------
    dict of pathlib.Path
        Keys ``crops``, ``features``, ``filter_counts``, ``plates`` (written last).
    """
    out_dir = Path(out_dir)
    return {
        "crops": out_dir / "crops" / f"{plate}.npz",
        "features": out_dir / "features" / f"{plate}.parquet",
        "filter_counts": out_dir / "filter_counts" / f"{plate}.csv",
        "plates": out_dir / "plates" / f"{plate}.parquet",
    }


def preprocess_plate(
    meta: pd.DataFrame,
    plate: str,
    out_dir: str | Path,
    filt: NucleusFilter = NucleusFilter(),
    size: int = 64,
    apply_mask: bool = True,
    min_nuclei: int = 2,
    segment_method: str = "classical",
    segment_params: dict | None = None,
    feature_params: dict | None = None,
    progress: bool = True,
) -> dict:
    """Filter, crop and measure the nuclei of one plate; write its four files atomically.

    Nothing outside the plate's own files is written, so plates can run in parallel. A
    plate whose files all exist is skipped (the plate table is written last).

    Parameters
    ----------
    meta : pandas.DataFrame
        Screen metadata (:func:`load_screen_metadata`); only the rows of ``plate`` are used.
    plate : str
        Plate to process.
    out_dir : path-like
        The nuclei folder (``work_dir/nuclei``).
    filt : NucleusFilter
        Nucleus filters.
    size : int
        Crop side in pixels.
    apply_mask : bool
        Mask each crop with its nucleus mask.
    min_nuclei : int
        Fewest nuclei the plate must keep; fewer is an :class:`~i2r_utils.io.InputError`
        naming the filter that removed most and the parameter to change (the filter
        counts are written first, so they can be inspected).
    segment_method, segment_params, feature_params
        See :func:`preprocess_image`.
    progress : bool
        Show a progress bar over images.

    Returns
    -------
    dict
        ``plate``, ``skipped`` (True when reused), ``n_images``, ``n_nuclei``,
        ``n_segmented`` (images segmented here) and the ``paths``.
    """
    paths = plate_outputs(out_dir, plate)
    rows = meta[meta["Metadata_Plate"].astype(str) == str(plate)]
    if rows.empty:
        raise InputError(f"plate {plate!r} has no images in the metadata table.")
    settings = json.dumps(
        {"filter": asdict(filt), "size": size, "apply_mask": apply_mask,
         "segment_method": segment_method, "segment_params": repr(segment_params),
         "feature_params": repr(feature_params), "min_nuclei": min_nuclei},
        sort_keys=True,
    )  # fmt: skip
    if all(p.is_file() for p in paths.values()):
        done = read_table(paths["plates"])
        if done.attrs.get("settings") == settings:
            return {"plate": plate, "skipped": True, "n_images": len(rows),
                    "n_nuclei": len(done), "n_segmented": 0, "paths": paths}  # fmt: skip
        warnings.warn(
            f"{paths['plates']}: written with other settings; preprocessing plate {plate} again",
            stacklevel=2,
        )
    info_cols = [c for c in rows.columns if str(c).startswith("Metadata_")]
    crops, objs, counts, feats = [], [], [], []
    n_seg = 0
    for rec in tqdm(rows[info_cols].to_dict("records"), desc=f"plate {plate}",
                    disable=not progress):  # fmt: skip
        mask = rec.get("Metadata_MaskPath", "")
        n_seg += not (isinstance(mask, str) and mask)
        c, o, n, f = preprocess_image(
            rec["Metadata_ImagePath"], mask, filt, size, apply_mask, True,
            segment_method, segment_params, feature_params,
        )  # fmt: skip
        for k, v in reversed(rec.items()):
            o.insert(0, k, v)
            f.insert(0, k, v)
        crops.append(c)
        objs.append(o)
        feats.append(f)
        counts.append({**rec, **n})
    count_df = pd.DataFrame(counts)
    write_table(count_df, paths["filter_counts"])
    table = pd.concat(objs, ignore_index=True)
    n_kept = len(table)
    if n_kept < min_nuclei:
        raise InputError(
            too_few_nuclei_message(
                f"plate {plate} (per-image counts in {paths['filter_counts']})",
                count_df,
                filt,
                n_kept,
                min_nuclei,
            )  # fmt: skip
        )
    table["Metadata_CropIndex"] = np.arange(n_kept)
    crops = np.concatenate(crops)
    with atomic_path(paths["crops"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, crops=crops.astype(np.float16))
    feat_df = pd.concat([f for f in feats if len(f)] or feats[:1], ignore_index=True)
    write_table(feat_df, paths["features"])
    table.attrs["settings"] = settings  # stored in the parquet file; checked on reruns
    write_table(table, paths["plates"])
    return {"plate": plate, "skipped": False, "n_images": len(rows), "n_nuclei": n_kept,
            "n_segmented": n_seg, "paths": paths}  # fmt: skip


def merge_plates(
    out_dir: str | Path,
    plates: list[str],
    filt: NucleusFilter = NucleusFilter(),
    min_nuclei: int = 2,
    control: str = "EMPTY",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Concatenate the per-plate tables of the plate stage and check every condition.

    Parameters
    ----------
    out_dir : path-like
        The nuclei folder (``work_dir/nuclei``).
    plates : list of str
        Every plate of the screen (e.g. :func:`select_plates` of the metadata).
    filt : NucleusFilter
        The filters used (for the error message).
    min_nuclei : int
        Fewest nuclei each condition (including ``control``) needs over all plates.
    control : str
        Control condition label (only used in messages).

    Returns
    -------
    nuclei : pandas.DataFrame
        All kept nuclei (the table :func:`load_crops` takes), plates in order.
    features : pandas.DataFrame
        Their hand-crafted features, same row order.
    counts : pandas.DataFrame
        Per-image filter counts of all plates.
    """
    missing = [
        p for p in plates if not all(x.is_file() for x in plate_outputs(out_dir, p).values())
    ]
    if missing:
        raise InputError(
            f"{Path(out_dir) / 'plates'}: plates {missing} are not preprocessed; run "
            f'notebooks/01_preprocess_nuclei with plate="{missing[0]}" (or plate="" for all).'
        )
    tabs = {k: [] for k in ("plates", "features", "filter_counts")}
    for p in plates:
        paths = plate_outputs(out_dir, p)
        for k in tabs:
            tabs[k].append(read_table(paths[k]))
    nuclei, feats, counts = (pd.concat(tabs[k], ignore_index=True) for k in tabs)
    key = ["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_ObjectNumber"]
    if (
        len(nuclei) != len(feats)
        or not (nuclei[key].astype(str).to_numpy() == feats[key].astype(str).to_numpy()).all()
    ):
        raise InputError(
            f"{out_dir}: plate and feature tables disagree (a partial or mixed run); delete "
            f"{out_dir} and rerun notebooks/01_preprocess_nuclei."
        )
    kept = nuclei.groupby("Metadata_Condition").size()
    for cond in sorted(counts["Metadata_Condition"].astype(str).unique()):
        if kept.get(cond, 0) < min_nuclei:
            rows = counts[counts["Metadata_Condition"].astype(str) == cond]
            what = f"condition {cond!r} (per-image counts in {Path(out_dir) / 'filter_counts'})"
            raise InputError(
                too_few_nuclei_message(what, rows, filt, kept.get(cond, 0), min_nuclei)
            )
    return nuclei, feats, counts


def preprocess_screen(
    meta: pd.DataFrame,
    out_dir: str | Path,
    filt: NucleusFilter = NucleusFilter(),
    size: int = 64,
    apply_mask: bool = True,
    min_nuclei: int = 2,
    progress: bool = True,
    **kwargs,
) -> pd.DataFrame:
    """Run :func:`preprocess_plate` on every plate, then :func:`merge_plates`.

    Parameters
    ----------
    meta : pandas.DataFrame
        Screen metadata (:func:`load_screen_metadata`).
    out_dir : path-like
        The nuclei folder.
    filt : NucleusFilter
        Nucleus filters.
    size : int
        Crop side in pixels.
    apply_mask : bool
        Mask each crop with its nucleus mask.
    min_nuclei : int
        Fewest nuclei per plate and per condition.
    progress : bool
        Show progress bars.
    **kwargs
        Further arguments of :func:`preprocess_plate`.

    Returns
    -------
    pandas.DataFrame
        The merged nuclei table.
    """
    plates = select_plates(meta)
    for plate in plates:
        preprocess_plate(meta, plate, out_dir, filt, size, apply_mask, min_nuclei,
                         progress=progress, **kwargs)  # fmt: skip
    return merge_plates(out_dir, plates, filt, min_nuclei)[0]


def load_crops(out_dir: str | Path, nuclei: pd.DataFrame) -> np.ndarray:
    """Load the crops of the rows of ``nuclei`` (in that order) from the per-plate files.

    Parameters
    ----------
    out_dir : path-like
        The nuclei folder (``work_dir/nuclei``, holding ``crops/<plate>.npz``).
    nuclei : pandas.DataFrame
        Rows with ``Metadata_Plate`` and ``Metadata_CropIndex``.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size)`` float32 crops.
    """
    out_dir = Path(out_dir)
    pos = np.arange(len(nuclei))
    parts, order = [], []
    for plate, idx in pd.Series(pos).groupby(nuclei["Metadata_Plate"].to_numpy(), sort=True):
        path = out_dir / "crops" / f"{plate}.npz"
        if not path.is_file():
            raise InputError(f"{path}: crops missing; run notebooks/01_preprocess_nuclei first.")
        rows = nuclei["Metadata_CropIndex"].to_numpy()[idx.to_numpy()]
        with np.load(path) as z:
            arr = z["crops"]
            if len(rows) and rows.max() >= len(arr):
                raise InputError(
                    f"{path}: has {len(arr)} crops but the table asks for index {rows.max()}; "
                    "the nuclei table and the crops come from different runs. Rerun "
                    "notebooks/01_preprocess_nuclei and 02_screen_conditions."
                )
            parts.append(arr[rows].astype(np.float32))
        order.append(idx.to_numpy())
    if not parts:
        return np.zeros((0, 64, 64), np.float32)
    out = np.empty((len(nuclei), *parts[0].shape[1:]), np.float32)
    out[np.concatenate(order)] = np.concatenate(parts)
    return out
