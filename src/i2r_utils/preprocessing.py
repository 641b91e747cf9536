"""The screen's nucleus preprocessing, recorded so that new images are cut the same way.

The plate step writes, beside its crops, the options it cut them with
(:func:`write_preprocessing`: crop side, mask, crop centre and scaling, large crops, context
window and its stored size, and the nucleus filters). :func:`read_preprocessing` reads them
back for images that are not part of the screen (new-target mode). A results folder written
before the options were recorded gets i2r's defaults, with the context window read from the
stored windows when there are any. :func:`store_crops` and :func:`stored_crops` are the
crops' storage round trip (8 bits for per-crop min-max scaled crops, float16 otherwise), so
that new crops reach the encoder with the precision the screen's did.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from .artifacts import artifact
from .io import InputError, write_json
from .nucleus_filter import NucleusFilter

__all__ = [
    "PREPROCESSING_DEFAULTS",
    "write_preprocessing",
    "read_preprocessing",
    "store_crops",
    "stored_crops",
]

#: Options of the plate step a results folder records (i2r's defaults).
PREPROCESSING_DEFAULTS = {
    "crop_size": 64,
    "apply_mask": True,
    "crop_centre": "centroid",
    "crop_scaling": "image",
    "drop_large_crops": False,
    "context_window": 0,
    "context_size": 32,
    "feature_scaling": "raw",  # folders written before it was recorded measured raw intensities
}


def write_preprocessing(path: str | os.PathLike, filt: NucleusFilter, **options) -> Path:
    """Write the options a plate was preprocessed with (JSON, atomically).

    Parameters
    ----------
    path : path-like
        ``artifact(work_dir, "plate_preprocessing", plate=...)``.
    filt : NucleusFilter
        The nucleus filters.
    **options
        Keys of :data:`PREPROCESSING_DEFAULTS` (others are an error).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    unknown = sorted(set(options) - set(PREPROCESSING_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown preprocessing options {unknown}")
    record = {**PREPROCESSING_DEFAULTS, **options, "filter": asdict(filt)}
    return write_json(record, path)


def _stored_context(work: Path) -> dict:
    """Context window and size of the stored windows of a folder without a record."""
    for path in sorted(artifact(work, "plate_context", plate="*").parent.glob("*.npz")):
        with np.load(path) as z:
            return {"context_window": int(z["window"]), "context_size": int(z["context"].shape[-1])}
    return {}


def read_preprocessing(work_dir: str | os.PathLike) -> dict:
    """Return the options the screen's plates were preprocessed with.

    Parameters
    ----------
    work_dir : path-like
        Results folder of a run.

    Returns
    -------
    dict
        The keys of :data:`PREPROCESSING_DEFAULTS`, ``filter`` (a :class:`NucleusFilter`) and
        ``recorded`` (False: a folder written before the options were recorded, i2r's
        defaults and the context window of its stored windows, if any).

    Raises
    ------
    InputError
        An unreadable record, or plates preprocessed with different options.
    """
    work = Path(work_dir)
    records = {}
    for path in sorted(artifact(work, "plate_preprocessing", plate="*").parent.glob("*.json")):
        try:
            records[path] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            msg = f"{path}: unreadable ({exc}); rerun the nuclei preprocessing."
            raise InputError(msg) from None
    if not records:
        out = {**PREPROCESSING_DEFAULTS, **_stored_context(work)}
        return {**out, "filter": NucleusFilter(), "recorded": False}
    first, *rest = records.items()
    for path, rec in rest:
        if rec != first[1]:
            raise InputError(
                f"{path}: preprocessed with other options than {first[0]}; rerun the nuclei "
                "preprocessing of every plate with one configuration."
            )
    rec = dict(first[1])
    known = {f.name for f in fields(NucleusFilter)}
    filt = NucleusFilter(**{k: v for k, v in rec.pop("filter", {}).items() if k in known})
    out = {**PREPROCESSING_DEFAULTS, **{k: rec[k] for k in PREPROCESSING_DEFAULTS if k in rec}}
    return {**out, "filter": filt, "recorded": True}


def store_crops(crops: np.ndarray, crop_scaling: str = "image") -> np.ndarray:
    """Crops as the plate files store them.

    Parameters
    ----------
    crops : numpy.ndarray
        Crops in [0, 1].
    crop_scaling : {"image", "crop"}
        ``"crop"``: min-max scaled crops, multiples of 1/255, stored exactly as uint8;
        ``"image"``: float16.

    Returns
    -------
    numpy.ndarray
        uint8 or float16 crops.
    """
    if crop_scaling == "crop":
        return np.round(np.asarray(crops) * 255).astype(np.uint8)
    return np.asarray(crops).astype(np.float16)


def stored_crops(crops: np.ndarray, crop_scaling: str = "image") -> np.ndarray:
    """Crops as they come back from the plate files (:func:`i2r_utils.nuclei.load_crops`).

    Parameters
    ----------
    crops : numpy.ndarray
        Crops in [0, 1].
    crop_scaling : {"image", "crop"}
        See :func:`store_crops`.

    Returns
    -------
    numpy.ndarray
        float32 crops with the precision of the stored ones.
    """
    stored = store_crops(crops, crop_scaling)
    out = stored.astype(np.float32)
    return out / 255 if stored.dtype == np.uint8 else out
