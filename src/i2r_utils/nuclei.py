"""Nuclei of chromatin images: 64x64 single-nucleus crops, per-image and per-plate preprocessing.

:func:`preprocess_image` is the one per-image step (read and validate, segment when there
is no mask, filter, crop, hand-crafted features): the screen's plates go through it in
:func:`preprocess_plate`, a user's own images in new-target mode (resampled to the screen's
magnification). :func:`merge_plates` checks and concatenates the plates, :func:`load_crops`
reads crops back.

Crop options (i2r's defaults first, then Image2Reg's original): a crop is the
``size``-px window centred on the rounded centroid (``crop_centre="centroid"``) or the
nucleus' bounding box centred on a zero canvas as the original pads it (``"bbox"``); it is
cut from the image normalised by its 1st/99.9th percentiles (``crop_scaling="image"``) or
from the raw image and then min-max scaled by its own minimum and maximum and quantised to
8 bits (``"crop"``: per-nucleus contrast normalisation, the absolute DNA intensity is not
kept); nuclei wider or taller than ``size`` are kept, truncated (``drop_large_crops=False``),
or dropped as the original drops them. With ``context_window > 0`` the plate step also
writes the field window around every nucleus (:mod:`i2r_utils.context`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import artifact
from .columns import CONTROL
from .context import context_windows, field_to_uint8, plate_context_path, write_plate_context
from .io import (
    InputError,
    atomic_path,
    normalize_percentile,
    read_image,
    read_mask,
    read_table,
    relative_paths,
    write_table,
)
from .nucleus_filter import NucleusFilter, filter_nuclei, too_few_nuclei_message
from .preprocessing import store_crops
from .progress import tqdm

__all__ = [
    "CROP_CENTRES",
    "CROP_SCALINGS",
    "FEATURE_SCALINGS",
    "crop_nuclei",
    "drop_large_nuclei",
    "minmax_crops",
    "load_crops",
    "merge_plates",
    "plate_outputs",
    "preprocess_image",
    "preprocess_image_context",
    "preprocess_plate",
    "select_plates",
]

_OBJECT_COLUMNS = [
    "Metadata_ObjectNumber", "Metadata_CentroidY", "Metadata_CentroidX", "Metadata_Area",
    "Metadata_BBoxMinY", "Metadata_BBoxMinX", "Metadata_BBoxMaxY", "Metadata_BBoxMaxX",
]  # fmt: skip
_SCREEN_FILTER = NucleusFilter()  # the Image2Reg defaults
CROP_CENTRES = ("centroid", "bbox")  # i2r | the original (bounding box centred on the canvas)
CROP_SCALINGS = ("image", "crop")  # i2r (per image) | the original (per-crop min-max, uint8)
FEATURE_SCALINGS = ("raw", "image")  # features of raw | per-image percentile-scaled intensities


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
    bboxes: np.ndarray | None = None,
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
    bboxes : numpy.ndarray, optional
        ``(n, 4)`` bounding boxes (min row, min col, max row, max col; max exclusive). When
        given, the bounding box is centred on the crop as the original pads it (its row
        ``h // 2`` lands on row ``size // 2 + size % 2``) instead of the centroid.

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
    if bboxes is None:
        starts = np.round(centroids).astype(np.int64)  # +half (padding) -half (corner) cancel
    else:
        bb = np.asarray(bboxes, np.int64).reshape(-1, 4)
        extent = bb[:, 2:] - bb[:, :2]
        starts = bb[:, :2] + extent // 2 - (half + size % 2) + half
    for i, (r, c) in enumerate(starts):
        crop = pad_img[r : r + size, c : c + size]
        if apply_mask:
            out[i] = np.where(pad_lab[r : r + size, c : c + size] == object_numbers[i], crop, 0)
        else:
            out[i] = crop
    return out


def minmax_crops(crops: np.ndarray) -> np.ndarray:
    """Scale every crop by its own minimum and maximum and quantise it to 8 bits.

    As the original stores its padded crops: ``x = crop - min; x = x / max(x)``, times 255,
    truncated to uint8; returned as float32 ``uint8 / 255`` (an all-equal crop stays 0).

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` crops of raw intensities (zero outside the nucleus).

    Returns
    -------
    numpy.ndarray
        ``(n, h, w)`` float32 crops in [0, 1], multiples of 1/255.
    """
    x = np.asarray(crops, np.float64)
    x = x - x.min(axis=(1, 2), keepdims=True)
    top = x.max(axis=(1, 2), keepdims=True)
    x = np.divide(x, top, out=np.zeros_like(x), where=top > 0)
    return ((np.clip(x, 0, 1) * 255).astype(np.uint8) / np.float32(255)).astype(np.float32)


def drop_large_nuclei(kept: dict, counts: dict, size: int) -> tuple[dict, dict]:
    """Drop the nuclei whose bounding box is wider or taller than ``size`` (as the original).

    Parameters
    ----------
    kept : dict of numpy.ndarray
        Per-object arrays of :func:`i2r_utils.nucleus_filter.filter_nuclei`.
    counts : dict
        Its filter counts; ``removed_crop_size`` is added and ``n_kept`` updated.
    size : int
        Crop side in pixels.

    Returns
    -------
    kept, counts
        The nuclei that fit and the updated counts.
    """
    bb = np.asarray(kept["bbox"]).reshape(-1, 4)
    fits = ((bb[:, 2] - bb[:, 0]) <= size) & ((bb[:, 3] - bb[:, 1]) <= size)
    kept = {k: v[fits] for k, v in kept.items()}
    return kept, {**counts, "removed_crop_size": int((~fits).sum()), "n_kept": int(fits.sum())}


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
    crop_centre: str = "centroid",
    crop_scaling: str = "image",
    drop_large_crops: bool = False,
    feature_scaling: str = "raw",
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
    crop_centre : {"centroid", "bbox"}
        Crop centred on the rounded centroid (i2r) or the bounding box centred on the crop
        (the original), see :func:`crop_nuclei`.
    crop_scaling : {"image", "crop"}
        Crops of the image normalised by its 1st/99.9th percentiles (i2r), or of the raw
        image, each min-max scaled by itself and quantised to 8 bits (the original,
        :func:`minmax_crops`).
    drop_large_crops : bool
        Drop nuclei wider or taller than ``size`` (the original; counted as
        ``removed_crop_size``) instead of truncating their crops.
    feature_scaling : {"raw", "image"}
        Hand-crafted features of the raw (resampled) intensities, or of the image minus its
        1st percentile divided by its 1st-99.9th percentile range (not clipped): features
        that do not change with the bit depth or a global intensity scale
        (:func:`i2r_utils.io.normalize_percentile`, ``clip=False``).

    Returns
    -------
    crops : numpy.ndarray
        ``(n, size, size)`` float32 crops in [0, 1].
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
    crops, objects, counts, feats, _ = _preprocess_one(
        image_path, mask_path, filt, size, apply_mask, features, segment_method, segment_params,
        feature_params, pixel_scale, allow_blank, crop_centre, crop_scaling, drop_large_crops,
        feature_scaling=feature_scaling,
    )  # fmt: skip
    return crops, objects, counts, feats


def _preprocess_one(
    image_path, mask_path, filt, size, apply_mask, features, segment_method, segment_params,
    feature_params, pixel_scale, allow_blank, crop_centre, crop_scaling, drop_large_crops,
    context_window: int = 0, context_size: int = 224, feature_scaling: str = "raw",
):  # fmt: skip
    """:func:`preprocess_image`, plus the context windows (None when ``context_window`` is 0)."""
    if crop_centre not in CROP_CENTRES or crop_scaling not in CROP_SCALINGS:
        raise ValueError(
            f"crop_centre={crop_centre!r} / crop_scaling={crop_scaling!r}: choose one of "
            f"{CROP_CENTRES} / {CROP_SCALINGS}"
        )
    if feature_scaling not in FEATURE_SCALINGS:
        raise ValueError(f"feature_scaling={feature_scaling!r}: choose one of {FEATURE_SCALINGS}")
    image = read_image(image_path, allow_blank=allow_blank)
    no_mask = mask_path is None or (isinstance(mask_path, float) and np.isnan(mask_path))
    labels = None if no_mask or not str(mask_path) else read_mask(mask_path, image.shape)
    image, labels = _rescale(image, labels, pixel_scale)
    if labels is None:
        from .segmentation import segment_nuclei

        labels = segment_nuclei(image, method=segment_method, **(segment_params or {}))
    kept, counts = filter_nuclei(labels, filt)
    if drop_large_crops:
        kept, counts = drop_large_nuclei(kept, counts, size)
    source = normalize_percentile(image) if crop_scaling == "image" else image
    bboxes = kept["bbox"] if crop_centre == "bbox" else None
    crops = crop_nuclei(source, labels, kept["centroid"], kept["label"], size, apply_mask, bboxes)
    if crop_scaling == "crop":
        crops = minmax_crops(crops)
    feats = None
    if features:
        scaled = feature_scaling == "image"  # offset and scale of the acquisition removed
        measured = normalize_percentile(image, clip=False) if scaled else image
        feats = _feature_table(measured, labels, kept["label"], feature_params)
    context = None
    if context_window:
        context = context_windows(
            field_to_uint8(image), kept["centroid"], context_window, context_size
        )
    return crops, _object_table(kept), counts, feats, context


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


_IMAGE_OPTIONS = {"filt": _SCREEN_FILTER, "size": 64, "apply_mask": True, "features": True,
                  "segment_method": "classical", "segment_params": None, "feature_params": None,
                  "pixel_scale": 1.0, "allow_blank": True, "crop_centre": "centroid",
                  "crop_scaling": "image", "drop_large_crops": False,
                  "feature_scaling": "raw"}  # fmt: skip


def preprocess_image_context(
    image_path, mask_path, context_window: int = 0, context_size: int = 224, **options
):
    """:func:`preprocess_image` plus the field window around every kept nucleus.

    Parameters
    ----------
    image_path, mask_path
        As :func:`preprocess_image`.
    context_window : int
        Window side in pixels (0: no windows), cut as the plate step cuts them
        (:func:`i2r_utils.context.context_windows` of the resampled image).
    context_size : int
        Side the windows are resized to (the encoder's input size).
    **options
        Keyword arguments of :func:`preprocess_image`.

    Returns
    -------
    tuple
        ``crops, objects, counts, feats`` as :func:`preprocess_image`, and the
        ``(n, context_size, context_size)`` uint8 windows (None when ``context_window`` is 0).
    """
    opts = {**_IMAGE_OPTIONS, **options}
    return _preprocess_one(image_path, mask_path, **opts, context_window=context_window,
                           context_size=context_size)  # fmt: skip


def _preprocess_rows(rows: pd.DataFrame, desc: str, progress: bool, **kwargs):
    """Run :func:`preprocess_image` on every image (row) of a metadata table.

    Returns the crops, object tables and feature tables per image (with the image's
    ``Metadata_`` columns in front), the per-image filter counts, the number of images
    segmented here and the context windows per image (None without ``context_window``).
    """
    opts = {**_IMAGE_OPTIONS, **kwargs, "features": True}
    info_cols = [c for c in rows.columns if str(c).startswith("Metadata_")]
    crops, objs, feats, counts, context = [], [], [], [], []
    n_seg = 0
    records = rows[info_cols].to_dict("records")
    for rec in tqdm(records, desc=desc, disable=not progress):
        mask = rec.get("Metadata_MaskPath", "")
        n_seg += not (isinstance(mask, str) and mask)
        c, o, n, f, w = _preprocess_one(rec["Metadata_ImagePath"], mask, **opts)
        for k, v in reversed(rec.items()):
            o.insert(0, k, v)
            f.insert(0, k, v)
        crops.append(c)
        objs.append(o)
        feats.append(f)
        counts.append({**rec, **n})
        context.append(w)
    return crops, objs, feats, pd.DataFrame(counts), n_seg, context


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
    crop_options: dict | None = None,
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
    crop_options : dict, optional
        ``crop_centre``, ``crop_scaling``, ``drop_large_crops`` (see :func:`preprocess_image`;
        crops of ``crop_scaling="crop"`` are stored as uint8) and ``context_window``,
        ``context_size``: with ``context_window > 0`` the field window around every nucleus
        is also written (:func:`i2r_utils.context.context_windows`, file
        :func:`i2r_utils.context.plate_context_path`).

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
    crop_options = dict(crop_options or {})
    crops, objs, feats, count_df, n_seg, context = _preprocess_rows(
        rows, f"plate {plate}", progress, filt=filt, size=size, apply_mask=apply_mask,
        segment_method=segment_method, segment_params=segment_params,
        feature_params=feature_params, **crop_options,
    )  # fmt: skip
    root = meta.attrs.get("data_dir")  # paths in the tables relative to the screen folder
    count_df = relative_paths(count_df, root)
    write_table(count_df, paths["filter_counts"])
    table = pd.concat(objs, ignore_index=True)
    n_kept = len(table)
    if n_kept < min_nuclei:
        what = f"plate {plate} (per-image counts in {paths['filter_counts']})"
        raise InputError(too_few_nuclei_message(what, count_df, filt, n_kept, min_nuclei))
    table["Metadata_CropIndex"] = np.arange(n_kept)
    crops = np.concatenate(crops)
    crops = store_crops(crops, crop_options.get("crop_scaling", "image"))  # uint8 | float16
    with atomic_path(paths["crops"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, crops=crops)
    if crop_options.get("context_window", 0):
        windows = np.concatenate(context)
        write_plate_context(plate_context_path(out_dir, plate), windows,
                            crop_options["context_window"])  # fmt: skip
    feat_df = pd.concat([f for f in feats if len(f)] or feats[:1], ignore_index=True)
    write_table(relative_paths(feat_df, root), paths["features"])
    write_table(relative_paths(table, root), paths["plates"])
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
        ``(n, size, size)`` float32 crops (uint8-stored crops divided by 255).
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
            part = arr[rows].astype(np.float32)
            parts.append(part / 255 if arr.dtype == np.uint8 else part)
        order.append(idx.to_numpy())
    if not parts:
        return np.zeros((0, 64, 64), np.float32)
    out = np.empty((len(nuclei), *parts[0].shape[1:]), np.float32)
    out[np.concatenate(order)] = np.concatenate(parts)
    return out
