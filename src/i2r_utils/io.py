"""Reading and validating inputs; atomic writes and checksums.

Every reader here turns bad input into an :class:`InputError` that names the file, says
what is wrong and how to fix it. Every writer writes to a temporary file in the target
folder and renames it into place, so an interrupted run never leaves half-written output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

__all__ = [
    "InputError",
    "atomic_path",
    "write_json",
    "write_table",
    "read_table",
    "sha256_file",
    "read_image",
    "read_mask",
    "load_metadata",
    "REQUIRED_METADATA",
]

REQUIRED_METADATA = [
    "Metadata_Plate",
    "Metadata_Well",
    "Metadata_Site",
    "Metadata_Condition",
    "Metadata_ImagePath",
    "Metadata_MaskPath",
]


class InputError(ValueError):
    """Bad input: the message names the file, what is wrong and how to fix it."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and move it into place on success.

    Parameters
    ----------
    path : path-like
        Final destination. Its parent folder is created if needed.

    Yields
    ------
    pathlib.Path
        A temporary file path in the same folder (same file system), to write to.
        It is renamed to ``path`` when the block exits without error and removed
        otherwise.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(obj: object, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON, atomically.

    Parameters
    ----------
    obj : object
        JSON-serialisable object (numpy scalars are converted).
    path : path-like
        Destination file.

    Returns
    -------
    pathlib.Path
        The written path.
    """

    def _default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_default) + "\n")
    return Path(path)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically as parquet or CSV, by the file suffix.

    Parameters
    ----------
    df : pandas.DataFrame
        Table to write.
    path : path-like
        Destination ending in ``.parquet``, ``.csv`` or ``.tsv``.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        elif path.suffix == ".tsv":
            df.to_csv(tmp, index=False, sep="\t")
        else:
            raise ValueError(f"{path}: unsupported table suffix; use .parquet, .csv or .tsv")
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet, CSV or TSV table with a clear error when it is missing.

    Parameters
    ----------
    path : path-like
        Table file.

    Returns
    -------
    pandas.DataFrame
        The table.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: file not found. It is produced by an earlier stage; run "
            "`python run_all.py` (or the notebook that writes it) first."
        )
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Return the SHA-256 hex digest of a file.

    Parameters
    ----------
    path : path-like
        File to hash.
    chunk : int
        Read size in bytes.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_any(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found. Check the path in the metadata table.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                if len(tif.series) > 1 or len(tif.pages) > 1:
                    raise InputError(
                        f"{path}: multi-page TIFF ({len(tif.pages)} pages); expected a single "
                        f"2-D {what}. Save one plane per file (e.g. the DNA channel only)."
                    )
                return tif.asarray()
        if suffix == ".png":
            import imageio.v3 as iio

            return np.asarray(iio.imread(path))
    except InputError:
        raise
    except Exception as exc:  # a corrupt file: report it, not the library's traceback
        raise InputError(
            f"{path}: cannot be read as a {what} ({type(exc).__name__}: {exc}). "
            "Re-export or re-download the file."
        ) from None
    raise InputError(f"{path}: unsupported format {suffix!r}; use .tif, .tiff or .png.")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel chromatin image (TIFF or PNG) as float32.

    Parameters
    ----------
    path : path-like
        Image file.

    Returns
    -------
    numpy.ndarray
        2-D float32 image.
    """
    path = Path(path)
    img = _read_any(path, "image")
    if img.ndim != 2:
        raise InputError(
            f"{path}: image has shape {img.shape}; expected a single-channel 2-D image. "
            "Export the DNA (chromatin) channel alone."
        )
    return img.astype(np.float32)


def read_mask(path: str | os.PathLike, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read and validate a nuclear label mask.

    Parameters
    ----------
    path : path-like
        Mask file: 0 = background, one positive integer per nucleus.
    image_shape : tuple of int, optional
        Shape of the matching image; a mismatch is an error.

    Returns
    -------
    numpy.ndarray
        2-D int32 label image.
    """
    path = Path(path)
    mask = _read_any(path, "mask")
    if mask.ndim != 2:
        raise InputError(
            f"{path}: mask has shape {mask.shape}; expected a 2-D label image "
            "(multi-channel masks are not supported). Save the labels as one plane."
        )
    if not np.issubdtype(mask.dtype, np.integer):
        if np.issubdtype(mask.dtype, np.floating) and np.all(np.mod(mask, 1) == 0):
            mask = mask.astype(np.int64)
        else:
            raise InputError(
                f"{path}: mask has non-integer values (dtype {mask.dtype}); expected integer "
                "labels, 0 = background. Save the instance labels, not probabilities."
            )
    if mask.min() < 0:
        raise InputError(f"{path}: mask has negative labels; expected 0 = background, 1..N.")
    if image_shape is not None and tuple(mask.shape) != tuple(image_shape):
        raise InputError(
            f"{path}: mask shape {mask.shape} differs from its image shape {tuple(image_shape)}. "
            "The mask must be computed on the same image at the same size."
        )
    return mask.astype(np.int32)


def load_metadata(data_dir: str | os.PathLike, check_files: bool = True) -> pd.DataFrame:
    """Load and validate the image metadata table of a screen.

    Parameters
    ----------
    data_dir : path-like
        Screen folder holding ``metadata.csv`` with the columns in ``REQUIRED_METADATA``;
        image and mask paths are relative to ``data_dir``.
    check_files : bool
        Check that every image has an equally named mask file on disk.

    Returns
    -------
    pandas.DataFrame
        The metadata table with absolute paths.
    """
    data_dir = Path(data_dir)
    table = data_dir / "metadata.csv"
    if not table.is_file():
        raise InputError(
            f"{table}: metadata table not found. Generate the synthetic screen with "
            "notebooks/00_simulate_screen or point data_dir at a screen folder."
        )
    meta = pd.read_csv(table)
    missing = [c for c in REQUIRED_METADATA if c not in meta.columns]
    if missing:
        raise InputError(f"{table}: missing columns {missing}; expected {REQUIRED_METADATA}.")
    if meta.empty:
        raise InputError(f"{table}: no images listed.")
    meta["Metadata_ImagePath"] = [str(data_dir / p) for p in meta["Metadata_ImagePath"]]
    meta["Metadata_MaskPath"] = [str(data_dir / p) for p in meta["Metadata_MaskPath"]]
    if check_files:
        for img, msk in zip(meta["Metadata_ImagePath"], meta["Metadata_MaskPath"], strict=True):
            if not Path(img).is_file():
                raise InputError(f"{img}: image listed in {table} is missing.")
            if not Path(msk).is_file():
                raise InputError(
                    f"{img}: no mask with the same file name ({msk} is missing). Provide the "
                    "label mask or segment the image first."
                )
    return meta
