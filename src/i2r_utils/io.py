"""Reading and validating inputs, image normalisation; atomic writes and checksums.

Every reader here turns bad input into an :class:`InputError` that names the file, says
what is wrong and how to fix it. Every writer writes to a temporary file in the target
folder and renames it into place, so an interrupted run never leaves half-written output.
:func:`normalize_percentile` is the one percentile normalisation of an image (crops,
segmentation).
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
    "save_torch",
    "write_json",
    "write_table",
    "read_table",
    "file_digest",
    "read_image",
    "read_mask",
    "normalize_percentile",
    "load_metadata",
    "relative_paths",
    "list_images",
    "list_images_below",
    "pair_images_masks",
    "missing_mask_error",
    "IMAGE_SUFFIXES",
    "REQUIRED_METADATA",
]

#: File suffixes read as images or masks (case-insensitive).
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")

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
        if tmp.exists():  # mkstemp makes 0600 files; give the output the usual umask mode
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def temp_folder(parent: str | os.PathLike, prefix: str) -> Path:
    """Make a temporary folder to be renamed into place, with the user's usual permissions.

    ``tempfile.mkdtemp`` creates folders readable by their owner only (0700); a data folder
    renamed from it would stay so. This one gets what ``mkdir`` would give (0777 minus the
    umask).

    Parameters
    ----------
    parent : path-like
        Where to make it (the final folder's parent, so the rename stays on one file system).
    prefix : str
        Name prefix, e.g. ``".screen.tmp-"``.

    Returns
    -------
    pathlib.Path
        The new, empty folder.
    """
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


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


def save_torch(obj: object, path: str | os.PathLike) -> Path:
    """Write ``obj`` with ``torch.save``, atomically, the bytes independent of the file name.

    ``torch.save`` to a path names the records inside its zip archive after the file, so
    the same weights saved through a temporary file would get another checksum each time;
    written through a buffer, identical objects give identical files.

    Parameters
    ----------
    obj : object
        What to save (tensors, dicts of tensors and plain values).
    path : path-like
        Destination file.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
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


def read_image(path: str | os.PathLike, allow_blank: bool = True) -> np.ndarray:
    """Read a single-channel chromatin image (TIFF or PNG) as float32.

    Parameters
    ----------
    path : path-like
        Image file.
    allow_blank : bool
        Accept an image whose pixels all have the same value; when False that is an
        :class:`InputError` (an exported mask or an empty channel, not a chromatin image).

    Returns
    -------
    numpy.ndarray
        2-D float32 image.
    """
    path = Path(path)
    img = _squeeze(_read_any(path, "image"))
    if img.ndim == 3 and img.shape[-1] in (3, 4) and _same_channels(img[..., :3]):
        img = img[..., 0]  # a grey image saved as RGB(A)
    if img.ndim != 2:
        raise InputError(
            f"{path}: image has shape {img.shape}; expected a single-channel 2-D image "
            "(multi-channel images are not supported). Export the DNA (chromatin) channel "
            "alone, one plane per file."
        )
    if img.dtype == bool or not (
        np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)
    ):
        raise InputError(
            f"{path}: image has dtype {img.dtype}; expected 8- or 16-bit grey values (or "
            "float). Export the raw chromatin image, not a mask or a rendering."
        )
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError(f"{path}: image has NaN or infinite pixels; re-export the raw image.")
    if not allow_blank and img.size and float(img.max()) == float(img.min()):
        raise InputError(
            f"{path}: image is blank (every pixel is {img.flat[0]:g}). Check that the file is "
            "the chromatin (DNA) channel, exported with its intensities."
        )
    return img


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
        2-D int32 label image: the ids as saved, or 1..N when the largest id is above the
        number of pixels (sparse ids such as 10**9 or uint32 ids >= 2**31).
    """
    path = Path(path)
    mask = _squeeze(_read_any(path, "mask"))
    if mask.ndim != 2:
        raise InputError(
            f"{path}: mask has shape {mask.shape}; expected a 2-D label image "
            "(multi-channel masks are not supported). Save the labels as one plane, "
            "0 = background and one integer per nucleus (not an RGB rendering)."
        )
    if mask.dtype == bool:
        raise InputError(
            f"{path}: mask is binary (True/False); expected an instance label image with one "
            "integer per nucleus. Label the connected components first, e.g. "
            "skimage.measure.label(mask), or leave out the masks to segment the nuclei."
        )
    if not np.issubdtype(mask.dtype, np.integer) and not (
        np.issubdtype(mask.dtype, np.floating) and np.all(np.mod(mask, 1) == 0)
    ):
        raise InputError(
            f"{path}: mask has non-integer values (dtype {mask.dtype}); expected integer "
            "labels, 0 = background. Save the instance labels, not probabilities."
        )
    if image_shape is not None and tuple(mask.shape) != tuple(image_shape):
        raise InputError(
            f"{path}: mask shape {mask.shape} differs from its image shape {tuple(image_shape)}. "
            "The mask must be computed on the same image at the same size."
        )
    values, inverse = np.unique(mask, return_inverse=True)
    if values.size and values[0] < 0:
        raise InputError(f"{path}: mask has negative labels; expected 0 = background, 1..N.")
    positive = values[values > 0]
    if len(positive) == 1 and (n_objects := _n_components(mask > 0)) > 1:
        raise InputError(
            f"{path}: mask looks binary (one value, {positive[0]:g}, shared by {n_objects} "
            "separate objects); expected one integer label per nucleus. Label the connected "
            "components first, e.g. skimage.measure.label(mask)."
        )
    return _compact_labels(mask, values, inverse)


def _compact_labels(mask: np.ndarray, values: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Return the labels as int32; sparse ids (largest above the pixel count) as 1..N.

    Ids are the nuclei's object numbers and are kept when they are at most the number of
    pixels (always so for 1..N labels). Larger ids (e.g. 10**9, or uint32 ids >= 2**31
    that int32 cannot hold) would make every per-label table as long as the largest id:
    they are renumbered 1..N in the order of the ids, 0 staying background.
    """
    if not values.size or values[-1] <= mask.size:
        return mask.astype(np.int32)
    labels = inverse.reshape(mask.shape) + (0 if values[0] == 0 else 1)
    return labels.astype(np.int32)


def _squeeze(arr: np.ndarray) -> np.ndarray:
    """Drop singleton axes (``(1, h, w)`` or ``(h, w, 1)``) but keep a 2-D image 2-D."""
    while arr.ndim > 2 and 1 in arr.shape:
        arr = arr.squeeze(axis=arr.shape.index(1))
    return arr


def _same_channels(arr: np.ndarray) -> bool:
    return all(np.array_equal(arr[..., 0], arr[..., c]) for c in range(1, arr.shape[-1]))


def _n_components(binary: np.ndarray, min_size: int = 10) -> int:
    """Count the connected objects of at least ``min_size`` pixels (not stray pixels)."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(binary)
    return int((np.bincount(labels.ravel(), minlength=n + 1)[1:] >= min_size).sum())


def normalize_percentile(
    image: np.ndarray, low: float = 1.0, high: float = 99.9, clip: bool = True
) -> np.ndarray:
    """Scale an image so that its ``low`` and ``high`` percentiles map to 0 and 1.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image of any real dtype.
    low, high : float
        Percentiles (linear interpolation, as :func:`numpy.percentile`) mapped to 0 and 1.
    clip : bool
        Clip the result to [0, 1].

    Returns
    -------
    numpy.ndarray
        float32 image of the same shape; a constant image maps to 0.
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = _percentiles(image, (low, high))
    out = (image - lo) / max(hi - lo, 1e-6)
    return (np.clip(out, 0, 1) if clip else out).astype(np.float32)


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


def list_images(folder: str | os.PathLike, what: str = "image") -> list[Path]:
    """List the image files (.tif, .tiff, .png) of a folder, sorted by name.

    Hidden files are skipped; sub-folders are not searched.

    Parameters
    ----------
    folder : path-like
        Folder of raw images or of masks.
    what : {"image", "mask"}
        What the folder should hold (used in the error messages).

    Returns
    -------
    list of pathlib.Path
        The image files.

    Raises
    ------
    InputError
        The folder does not exist, holds no image file, or holds two files with one stem
        (``a.tif`` and ``a.png``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"{folder}: {what} folder not found. Pass the folder that holds the "
            f"{'raw chromatin images' if what == 'image' else 'label masks'}."
        )
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        others = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[:5]
        seen = f" (it holds {others})" if others else ""
        if what == "mask":
            fix = (
                "Put one label mask per raw image there, named exactly like the image, or "
                "leave out the mask folder to segment the nuclei."
            )
        else:
            fix = "Put the raw chromatin images there, one 2-D DNA-channel image per file."
        raise InputError(
            f"{folder}: the {what} folder is empty: no {'/'.join(IMAGE_SUFFIXES)} files{seen}. "
            + fix
        )
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise InputError(
                f"{folder}: {stems[p.stem].name} and {p.name} have the same name stem, so the "
                f"outputs (and the masks) of the two would be confused. Keep one of them, or "
                "rename one."
            )
        stems[p.stem] = p
    return files


def missing_mask_error(image: str | os.PathLike, masks_dir: str | os.PathLike) -> InputError:
    """Return the error for a raw image without an equally named mask.

    Parameters
    ----------
    image : path-like
        The raw image.
    masks_dir : path-like
        The mask folder searched.

    Returns
    -------
    InputError
        The error naming the image, the expected mask path and the fix.
    """
    image, masks_dir = Path(image), Path(masks_dir)
    return InputError(
        f"{image}: no mask with the same file name ({masks_dir / image.name} is missing). "
        "Give every raw image a label mask of the same name in the mask folder, remove the "
        "image, or leave out the mask folder to segment all images."
    )


def pair_images_masks(
    images_dir: str | os.PathLike, masks_dir: str | os.PathLike | None = None, strict=True
) -> pd.DataFrame:
    """Pair each raw image of a folder with the equally named mask of another folder.

    A mask matches an image when it has the same file name; failing that, the same name
    with another image suffix (``a.tif`` and ``a.png``).

    Parameters
    ----------
    images_dir : path-like
        Folder of raw chromatin images.
    masks_dir : path-like, optional
        Folder of label masks; None when the nuclei are to be segmented.
    strict : bool
        Raise for the first image without a mask; otherwise its ``Metadata_MaskPath``
        is empty and the caller reports it (:func:`missing_mask_error`).

    Returns
    -------
    pandas.DataFrame
        ``Metadata_ImageName`` (file name without suffix), ``Metadata_ImagePath`` and
        ``Metadata_MaskPath`` ("" when there is none), sorted by file name.

    Raises
    ------
    InputError
        An empty or missing image or mask folder, or (``strict``) an image without a mask.
    """
    images = list_images(images_dir, "image")
    masks = list_images(masks_dir, "mask") if masks_dir is not None else []
    by_name = {m.name: m for m in masks}
    by_stem: dict[str, Path] = {}
    for m in masks:
        by_stem.setdefault(m.stem, m)
    rows = []
    for img in images:
        mask = by_name.get(img.name) or by_stem.get(img.stem)
        if masks_dir is not None and mask is None and strict:
            raise missing_mask_error(img, masks_dir)
        rows.append((img.stem, str(img), str(mask) if mask is not None else ""))
    return pd.DataFrame(
        rows, columns=["Metadata_ImageName", "Metadata_ImagePath", "Metadata_MaskPath"]
    )


def load_metadata(
    data_dir: str | os.PathLike, check_files: bool = True, require_masks: bool = True
) -> pd.DataFrame:
    """Load and validate the image metadata table of a screen.

    Parameters
    ----------
    data_dir : path-like
        Screen folder holding ``metadata.csv`` with the columns in ``REQUIRED_METADATA``;
        image and mask paths are relative to ``data_dir``.
    check_files : bool
        Check that every image, and every mask the table names, is a file on disk.
    require_masks : bool
        Every image needs its mask. When False, images whose ``Metadata_MaskPath`` is empty
        (or every image, when the column is absent) get ``Metadata_MaskPath = ""``: the
        nuclei preprocessing segments them.

    Returns
    -------
    pandas.DataFrame
        The metadata table with paths joined to ``data_dir`` (``""`` for a missing mask);
        ``attrs["data_dir"]`` is ``data_dir`` (see :func:`relative_paths`).
    """
    data_dir = Path(data_dir)
    table = data_dir / "metadata.csv"
    if not table.is_file():
        raise InputError(
            f"{table}: metadata table not found. Generate a synthetic screen there "
            "(i2r_utils.simulate.simulate_screen), fetch one (`python3 run_all.py data`) or "
            "point data_dir at a screen folder."
        )
    meta = pd.read_csv(table)
    mask_col = "Metadata_MaskPath"
    need = [c for c in REQUIRED_METADATA if require_masks or c != mask_col]
    missing = [c for c in need if c not in meta.columns]
    if missing:
        raise InputError(f"{table}: missing columns {missing}; expected {REQUIRED_METADATA}.")
    if meta.empty:
        raise InputError(f"{table}: no images listed.")
    masks = meta[mask_col] if mask_col in meta.columns else pd.Series("", index=meta.index)
    meta["Metadata_ImagePath"] = [str(data_dir / p) for p in meta["Metadata_ImagePath"]]
    meta[mask_col] = [
        "" if not require_masks and (pd.isna(m) or m == "") else str(data_dir / m) for m in masks
    ]
    fix = (
        "or segment the image first"
        if require_masks
        else f"or leave Metadata_MaskPath empty in {table} to segment the image"
    )
    if check_files:
        for img, msk in zip(meta["Metadata_ImagePath"], meta["Metadata_MaskPath"], strict=True):
            if not Path(img).is_file():
                raise InputError(f"{img}: image listed in {table} is missing.")
            if msk and not Path(msk).is_file():
                raise InputError(
                    f"{img}: no mask with the same file name ({msk} is missing). Provide the "
                    f"label mask {fix}."
                )
    meta.attrs["data_dir"] = str(data_dir)
    return meta


def relative_paths(table: pd.DataFrame, root: str | os.PathLike | None) -> pd.DataFrame:
    """Write the image and mask paths of a table relative to the screen folder ``root``.

    Result tables that carry them stay valid when the data and results folders move
    together; paths outside ``root`` (and ``""``) are kept as they are.

    Parameters
    ----------
    table : pandas.DataFrame
        A table with ``Metadata_ImagePath`` and/or ``Metadata_MaskPath`` columns.
    root : path-like or None
        The screen folder (``attrs["data_dir"]`` of :func:`load_metadata`); None: unchanged.

    Returns
    -------
    pandas.DataFrame
        A copy with POSIX paths relative to ``root`` where they lie below it.
    """
    if root is None:
        return table
    root = Path(root).resolve()
    out = table.copy()
    for col in ("Metadata_ImagePath", "Metadata_MaskPath"):
        if col in out:
            out[col] = [_below(p, root) for p in out[col]]
    return out


def _below(path, root: Path):
    """``path`` relative to ``root`` (POSIX) when it lies below it, else unchanged."""
    if not isinstance(path, str) or not path:
        return path
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Return the hex digest of a file for any :mod:`hashlib` algorithm.

    Parameters
    ----------
    path : path-like
        File to hash.
    algorithm : str
        A :func:`hashlib.new` name, e.g. ``"sha256"`` or ``"md5"`` (the checksum Zenodo
        publishes and the ETag of single-part S3 objects).

    Returns
    -------
    str
        Lower-case hex digest.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def list_images_below(folder: str | os.PathLike) -> list[Path]:
    """List the image files (.tif, .tiff, .png) anywhere below a folder, sorted by path.

    Hidden files and hidden sub-folders are skipped. Unlike :func:`list_images` this
    searches sub-folders and returns an empty list for a missing or empty folder, so the
    caller can say what the folder should hold.

    Parameters
    ----------
    folder : path-like
        Folder to search.

    Returns
    -------
    list of pathlib.Path
        The image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        ]
    return sorted(files)
