"""Context windows: the field of view around each nucleus, the second input of Image2Reg's encoder.

Image2Reg's encoder sees every nucleus twice: its masked 64x64 crop and a large window of
the field image centred on it (neighbours, local density, the position in the colony).
The window is cut as the original code cuts it:

1. :func:`field_to_uint8`: a 16-bit field image is rescaled with its 0.1 and 99.9
   percentiles to 8 bits -- the low percentile is subtracted and the result divided by the
   HIGH percentile (not by the range), clipped to [0, 1], times 255, truncated to uint8.
2. :func:`context_windows`: the 8-bit image is padded by the window size on every side with
   its 1st-percentile grey value, and a ``window`` x ``window`` square whose top-left corner
   is ``int(centroid) - window // 2`` is cut for every nucleus and resized (bilinear, PIL)
   to the encoder's input size.

The windows are stored per plate, compactly as uint8, beside the crops
(:func:`write_plate_context`, :func:`load_context`; row = ``Metadata_CropIndex``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .artifacts import artifact
from .io import InputError, atomic_path

__all__ = [
    "field_to_uint8",
    "context_windows",
    "plate_context_path",
    "write_plate_context",
    "load_context",
]


def field_to_uint8(image: np.ndarray) -> np.ndarray:
    """Rescale a field image to uint8 as the original encoder's data set does.

    When any pixel exceeds 255: ``lo, hi`` = the 0.1 and 99.9 percentiles; if ``hi > 255`` the
    image becomes ``(image - lo) / hi``; then it is clipped to [0, 1] and multiplied by 255.
    An image whose pixels are all <= 255 is taken as 8-bit. The result is truncated to uint8.

    Parameters
    ----------
    image : numpy.ndarray
        2-D field image (raw grey values, e.g. 16-bit).

    Returns
    -------
    numpy.ndarray
        uint8 image of the same shape.
    """
    image = np.asarray(image, dtype=np.float64)
    if (image > 255).any():
        lo, hi = np.percentile(image, [0.1, 99.9])
        if hi > 255:
            image = (image - lo) / hi
        image = np.clip(image, 0, 1) * 255
    return np.clip(image, 0, 255).astype(np.uint8)


def context_windows(
    field_u8: np.ndarray, centroids: np.ndarray, window: int = 448, out_size: int = 224
) -> np.ndarray:
    """Cut a ``window``-px square centred on each nucleus and resize it to ``out_size``.

    Parameters
    ----------
    field_u8 : numpy.ndarray
        uint8 field image (:func:`field_to_uint8`).
    centroids : numpy.ndarray
        ``(n, 2)`` nucleus centroids (row, col); truncated to integers as the original does.
    window : int
        Window side in pixels (448 in the original).
    out_size : int
        Side of the stored window (the encoder's input size; 224 in the original).

    Returns
    -------
    numpy.ndarray
        ``(n, out_size, out_size)`` uint8 windows; outside the field they show the
        1st-percentile grey value of the field.
    """
    if window < 2 or out_size < 1:
        raise ValueError(f"context window {window} px / size {out_size} px: both must be >= 2")
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((len(centroids), out_size, out_size), np.uint8)
    if not len(centroids):
        return out
    fill = int(np.percentile(field_u8, 1))
    padded = np.pad(np.asarray(field_u8, np.uint8), window, constant_values=fill)
    half = window // 2
    for i, (r, c) in enumerate(centroids.astype(np.int64)):  # int(): truncation, as the original
        top, left = r + window - half, c + window - half
        win = padded[top : top + window, left : left + window]
        if out_size != window:
            win = np.asarray(Image.fromarray(win).resize((out_size, out_size), Image.BILINEAR))
        out[i] = win
    return out


def plate_context_path(out_dir: str | Path, plate: str) -> Path:
    """Path of a plate's context windows in the nuclei folder (artifact ``plate_context``).

    Parameters
    ----------
    out_dir : path-like
        The nuclei folder (``work_dir/nuclei``).
    plate : str
        Plate name.

    Returns
    -------
    pathlib.Path
        ``<out_dir>/context/<plate>.npz``.
    """
    base = artifact(".", "nuclei_dir")
    return Path(out_dir) / artifact(".", "plate_context", plate=plate).relative_to(base)


def write_plate_context(path: str | Path, windows: np.ndarray, window: int) -> None:
    """Write a plate's context windows (uint8, compressed) atomically.

    Parameters
    ----------
    path : path-like
        :func:`plate_context_path`.
    windows : numpy.ndarray
        ``(n, s, s)`` uint8 windows, row = ``Metadata_CropIndex``.
    window : int
        The window side they were cut with (recorded, checked on loading).
    """
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, context=windows.astype(np.uint8), window=np.int64(window))


def load_context(
    out_dir: str | Path, nuclei: pd.DataFrame, window: int | None = None
) -> np.ndarray:
    """Load the context windows of the rows of ``nuclei`` (in that order).

    Parameters
    ----------
    out_dir : path-like
        The nuclei folder (``work_dir/nuclei``).
    nuclei : pandas.DataFrame
        Rows with ``Metadata_Plate`` and ``Metadata_CropIndex``.
    window : int, optional
        Window side the caller expects; another recorded side is an error.

    Returns
    -------
    numpy.ndarray
        ``(n, s, s)`` uint8 windows.
    """
    parts, order = [], []
    pos = pd.Series(np.arange(len(nuclei)))
    for plate, idx in pos.groupby(nuclei["Metadata_Plate"].astype(str).to_numpy(), sort=True):
        path = plate_context_path(out_dir, plate)
        if not path.is_file():
            raise InputError(
                f"{path}: context windows missing; the two-branch encoder needs them: run the "
                "nuclei preprocessing with context_window > 0 (e.g. 448) first."
            )
        rows = nuclei["Metadata_CropIndex"].to_numpy()[idx.to_numpy()]
        with np.load(path) as z:
            arr, recorded = z["context"], int(z["window"])
        if window is not None and recorded != window:
            raise InputError(
                f"{path}: windows of {recorded} px, but context_window = {window}; run the "
                "nuclei preprocessing again with the same context_window."
            )
        if len(rows) and rows.max() >= len(arr):
            raise InputError(
                f"{path}: has {len(arr)} windows but the table asks for index {rows.max()}; "
                "run the nuclei preprocessing of this plate again."
            )
        parts.append(arr[rows])
        order.append(idx.to_numpy())
    if not parts:
        return np.zeros((0, 1, 1), np.uint8)
    out = np.empty((len(nuclei), *parts[0].shape[1:]), np.uint8)
    out[np.concatenate(order)] = np.concatenate(parts)
    return out
