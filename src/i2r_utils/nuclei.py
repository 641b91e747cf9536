"""Nuclei of chromatin images: 64x64 single-nucleus crops, per-image and per-plate preprocessing.

:func:`preprocess_image` is the one per-image step (read and validate, segment when there
is no mask, filter, crop, hand-crafted features): the screen's plates go through it in
:func:`preprocess_plate`, a user's own images in new-target mode (resampled to the screen's
magnification). :func:`merge_plates` checks and concatenates the plates, :func:`load_crops`
reads crops back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .artifacts import artifact
from .columns import CONTROL
from .io import (
    InputError,
    atomic_path,
    normalize_percentile,
    read_image,
    read_mask,
    read_table,
    write_table,
)
from .nucleus_filter import NucleusFilter, filter_nuclei, too_few_nuclei_message

__all__ = [
    "crop_nuclei",
    "load_crops",
    "merge_plates",
    "plate_outputs",
    "preprocess_image",
    "preprocess_plate",
    "select_plates",
]

_OBJECT_COLUMNS = [
    "Metadata_ObjectNumber", "Metadata_CentroidY", "Metadata_CentroidX", "Metadata_Area",
    "Metadata_BBoxMinY", "Metadata_BBoxMinX", "Metadata_BBoxMaxY", "Metadata_BBoxMaxX",
]  # fmt: skip
_SCREEN_FILTER = NucleusFilter()  # the Image2Reg defaults


# --------------------------------------------------------------------------------------
# crops and one image
# --------------------------------------------------------------------------------------
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
    image, labels : numpy.ndarray
        2-D (normalised) image and its label image.
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


def _rescale(image: np.ndarray, labels: np.ndarray | None, pixel_scale: float):
    """Resample an image (and its labels) by ``1 / pixel_scale`` to the screen's scale."""
    if pixel_scale <= 0:
        raise InputError(f"pixel_scale must be positive, got {pixel_scale}")
    if pixel_scale == 1.0:
        return image, labels
    from skimage.transform import rescale

    factor = 1.0 / pixel_scale
    image = rescale(image, factor, order=1, preserve_range=True, anti_aliasing=factor < 1)
    if labels is not None:
        labels = rescale(labels, factor, order=0, preserve_range=True, anti_aliasing=False)
        labels = labels.astype(np.int32)
    return image.astype(np.float32), labels


def _object_table(kept: dict[str, np.ndarray]) -> pd.DataFrame:
    """Object number, rounded centroid, area and bounding box of the kept nuclei."""
    values = [
        kept["label"],
        np.round(kept["centroid"][:, 0], 2),
        np.round(kept["centroid"][:, 1], 2),
        kept["area"],
        *kept["bbox"].T,
    ]
    return pd.DataFrame(dict(zip(_OBJECT_COLUMNS, values, strict=True)))


def _feature_table(image, labels, object_numbers, feature_params: dict | None) -> pd.DataFrame:
    """Hand-crafted features of the kept nuclei (an empty table with the columns if none)."""
    from .features import extract_features, feature_names

    if len(object_numbers):
        return extract_features(image, labels, object_numbers, **(feature_params or {}))
    keys = ("n_rings", "families", "glcm_distances")
    names = feature_names(**{k: v for k, v in (feature_params or {}).items() if k in keys})
    feats = pd.DataFrame(columns=["Metadata_ObjectNumber", *names], dtype=np.float64)
    feats["Metadata_ObjectNumber"] = feats["Metadata_ObjectNumber"].astype(np.int64)
    return feats


def preprocess_image(
    image_path,
    mask_path,
    filt: NucleusFilter = _SCREEN_FILTER,
    size: int = 64,
    apply_mask: bool = True,
    features: bool = True,
    segment_method: str = "classical",
    segment_params: dict | None = None,
    feature_params: dict | None = None,
    pixel_scale: float = 1.0,
    allow_blank: bool = True,
) -> tuple[np.ndarray, pd.DataFrame, dict, pd.DataFrame | None]:
    """Read, validate (or segment), filter, crop and measure the nuclei of one image.

    Parameters
    ----------
    image_path : path-like
        Chromatin image.
    mask_path : path-like, "" or None
        Its label mask; ``""`` or None segments the image with
        :func:`i2r_utils.segmentation.segment_nuclei` (``segment_method``, ``"classical"`` or
        ``"unet"`` with ``segment_params={"model": ...}``).
    filt : NucleusFilter
        Nucleus filters.
    size : int
        Crop side.
    apply_mask : bool
        Zero pixels of other nuclei and background in each crop.
    features : bool
        Also extract the hand-crafted features of the kept nuclei from the raw image
        (:func:`i2r_utils.features.extract_features` with ``feature_params``).
    segment_method, segment_params, feature_params
        See ``mask_path`` and ``features``.
    pixel_scale : float
        Linear pixel scale of the image relative to the screen's (0.5: a 10x image, 20x
        screen): image and mask are resampled by ``1 / pixel_scale`` first (unlike
        ``filt.pixel_scale``, which scales the area limits instead).
    allow_blank : bool
        Accept an image whose pixels are all equal (:func:`i2r_utils.io.read_image`).

    Returns
    -------
    crops : numpy.ndarray
        ``(n, size, size)`` float32 crops of the image normalised to [0, 1].
    objects : pandas.DataFrame
        Object number, centroid, area and bounding box (``Metadata_``) per kept nucleus.
    counts : dict
        What each filter removed (see :func:`filter_nuclei`).
    feats : pandas.DataFrame or None
        ``Metadata_ObjectNumber`` + features per kept nucleus (None unless ``features``).

    Raises
    ------
    InputError
        Unreadable or invalid image or mask, a mask of another shape, a blank image (unless
        ``allow_blank``) or a non-positive ``pixel_scale``.
    """
    image = read_image(image_path, allow_blank=allow_blank)
    no_mask = mask_path is None or (isinstance(mask_path, float) and np.isnan(mask_path))
    labels = None if no_mask or not str(mask_path) else read_mask(mask_path, image.shape)
    image, labels = _rescale(image, labels, pixel_scale)
    if labels is None:
        from .segmentation import segment_nuclei

        labels = segment_nuclei(image, method=segment_method, **(segment_params or {}))
    kept, counts = filter_nuclei(labels, filt)
    crops = crop_nuclei(
        normalize_percentile(image), labels, kept["centroid"], kept["label"], size, apply_mask
    )
    feats = _feature_table(image, labels, kept["label"], feature_params) if features else None
    return crops, _object_table(kept), counts, feats


# --------------------------------------------------------------------------------------
# one plate, the screen
# --------------------------------------------------------------------------------------
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


def plate_outputs(out_dir: str | Path, plate: str) -> dict[str, Path]:
    """Paths of the four files of a plate in the nuclei folder (``artifact`` ``plate_*``).

    Parameters
    ----------
    out_dir : path-like
        The nuclei folder (``work_dir/nuclei``).
    plate : str
        Plate name.

    Returns
    -------
    dict of pathlib.Path
        ``crops`` (npz, float16 ``(n, 64, 64)``, row = ``Metadata_CropIndex``), ``features``
        (``Metadata_`` + ``Nuclei_<Family>_<Name>``), ``filter_counts`` (per image, objects
        found and removed by each filter) and ``plates`` (one row per kept nucleus, all
        ``Metadata_``: image metadata, object, centroid, area, bbox, crop index).
    """
    names = {"crops": "plate_crops", "features": "plate_features",
             "filter_counts": "plate_filter_counts", "plates": "plate_nuclei"}  # fmt: skip
    base = artifact(".", "nuclei_dir")
    return {k: Path(out_dir) / artifact(".", v, plate=plate).relative_to(base)
            for k, v in names.items()}  # fmt: skip


def _preprocess_rows(rows: pd.DataFrame, desc: str, progress: bool, **kwargs):
    """Run :func:`preprocess_image` on every image (row) of a metadata table.

    Returns the crops, object tables and feature tables per image (with the image's
    ``Metadata_`` columns in front), the per-image filter counts and the number of images
    segmented here.
    """
    info_cols = [c for c in rows.columns if str(c).startswith("Metadata_")]
    crops, objs, feats, counts = [], [], [], []
    n_seg = 0
    records = rows[info_cols].to_dict("records")
    for rec in tqdm(records, desc=desc, disable=not progress):
        mask = rec.get("Metadata_MaskPath", "")
        n_seg += not (isinstance(mask, str) and mask)
        c, o, n, f = preprocess_image(rec["Metadata_ImagePath"], mask, features=True, **kwargs)
        for k, v in reversed(rec.items()):
            o.insert(0, k, v)
            f.insert(0, k, v)
        crops.append(c)
        objs.append(o)
        feats.append(f)
        counts.append({**rec, **n})
    return crops, objs, feats, pd.DataFrame(counts), n_seg


def preprocess_plate(
    meta: pd.DataFrame,
    plate: str,
    out_dir: str | Path,
    filt: NucleusFilter = _SCREEN_FILTER,
    size: int = 64,
    apply_mask: bool = True,
    min_nuclei: int = 2,
    segment_method: str = "classical",
    segment_params: dict | None = None,
    feature_params: dict | None = None,
    progress: bool = True,
) -> dict:
    """Preprocess every image of one plate; write its four files (:func:`plate_outputs`).

    Each file is written atomically, the plate table last; nothing outside the plate's own
    files is written, so plates can run in parallel.

    Parameters
    ----------
    meta : pandas.DataFrame
        Screen metadata (:func:`i2r_utils.io.load_metadata`); the rows of ``plate`` are used.
    plate : str
        Plate to process.
    out_dir : path-like
        The nuclei folder (``work_dir/nuclei``).
    filt, size, apply_mask, segment_method, segment_params, feature_params
        See :func:`preprocess_image`.
    min_nuclei : int
        Fewest nuclei the plate must keep; fewer is an :class:`~i2r_utils.io.InputError`
        naming the filter that removed most and the parameter to change (the filter
        counts are written first, to be inspected).
    progress : bool
        Show a progress bar over images.

    Returns
    -------
    dict
        ``plate``, ``n_images``, ``n_nuclei``, ``n_segmented`` (images segmented here) and
        the ``paths``.
    """
    paths = plate_outputs(out_dir, plate)
    rows = meta[meta["Metadata_Plate"].astype(str) == str(plate)]
    if rows.empty:
        raise InputError(f"plate {plate!r} has no images in the metadata table.")
    crops, objs, feats, count_df, n_seg = _preprocess_rows(
        rows, f"plate {plate}", progress, filt=filt, size=size, apply_mask=apply_mask,
        segment_method=segment_method, segment_params=segment_params,
        feature_params=feature_params,
    )  # fmt: skip
    write_table(count_df, paths["filter_counts"])
    table = pd.concat(objs, ignore_index=True)
    n_kept = len(table)
    if n_kept < min_nuclei:
        what = f"plate {plate} (per-image counts in {paths['filter_counts']})"
        raise InputError(too_few_nuclei_message(what, count_df, filt, n_kept, min_nuclei))
    table["Metadata_CropIndex"] = np.arange(n_kept)
    with atomic_path(paths["crops"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, crops=np.concatenate(crops).astype(np.float16))
    feat_df = pd.concat([f for f in feats if len(f)] or feats[:1], ignore_index=True)
    write_table(feat_df, paths["features"])
    write_table(table, paths["plates"])
    return {"plate": plate, "n_images": len(rows), "n_nuclei": n_kept, "n_segmented": n_seg,
            "paths": paths}  # fmt: skip


def merge_plates(
    out_dir: str | Path,
    plates: list[str],
    filt: NucleusFilter = _SCREEN_FILTER,
    min_nuclei: int = 2,
    control: str = CONTROL,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Concatenate the per-plate tables of :func:`preprocess_plate` and check every condition.

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
        Control condition label.

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
            f"{Path(out_dir) / 'plates'}: plates {missing} are not preprocessed; run the "
            f'nuclei preprocessing with plate="{missing[0]}" (or plate="" for all) first.'
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
            f"{out_dir} and run the nuclei preprocessing of every plate again."
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
        path = plate_outputs(out_dir, plate)["crops"]
        if not path.is_file():
            raise InputError(
                f"{path}: crops missing; run the nuclei preprocessing of plate {plate} first."
            )
        rows = nuclei["Metadata_CropIndex"].to_numpy()[idx.to_numpy()]
        with np.load(path) as z:
            arr = z["crops"]
            if len(rows) and rows.max() >= len(arr):
                raise InputError(
                    f"{path}: has {len(arr)} crops but the table asks for index {rows.max()}; "
                    "the nuclei table and the crops come from different runs. Run the nuclei "
                    "preprocessing and the merge of its plates again."
                )
            parts.append(arr[rows].astype(np.float32))
        order.append(idx.to_numpy())
    if not parts:
        return np.zeros((0, 64, 64), np.float32)
    out = np.empty((len(nuclei), *parts[0].shape[1:]), np.float32)
    out[np.concatenate(order)] = np.concatenate(parts)
    return out
