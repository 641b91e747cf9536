"""Annotated fluorescence nuclei for training and scoring segmentation, with a fixed split.

The data set is the folder ``nuclei_dsb2018_fluo`` (80 DSB2018 fluorescence fields with
instance labels: ``index.csv``, ``images/<id>.png``, ``labels/<id>.tif``). Every image goes
to exactly one of ``train``, ``val`` or ``test`` by a fixed rule that depends only on the
image ids (:func:`split_images`), so the split is the same on every machine and for every
seed, and the test images are never seen by training or by any choice made on the
validation images.

The rule (:data:`SPLIT_RULE`): within each subset (``u2os_520x696``, ``diverse``) the ids
(hex digests of the images, i.e. in random order with respect to their content) are sorted;
the image at position ``k`` is ``test`` when ``k % 8`` is 0 or 4, ``val`` when ``k % 8`` is
2, else ``train``. For the 80 images: U2OS 43 / 9 / 18 and other fluorescence 6 / 1 / 3
(train / val / test).

Without that folder, a screen folder with ``metadata.csv`` and masks (the synthetic screen)
can stand in: its first :data:`MAX_SCREEN_IMAGES` images (sorted by path) form one subset,
``screen``, split by the same rule on their paths.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from i2r_utils.io import InputError, file_digest, load_metadata, read_image, read_mask

__all__ = [
    "MAX_SCREEN_IMAGES",
    "SPLITS",
    "SPLIT_RULE",
    "load_annotated_fields",
    "read_index",
    "split_images",
    "split_table",
]

#: The three parts of the split, in order.
SPLITS = ("train", "val", "test")
#: The split rule in words (also written into the model's information file).
SPLIT_RULE = (
    "per subset, ids sorted; position k: test if k % 8 in (0, 4), val if k % 8 == 2, else train"
)
_INDEX_COLUMNS = ("id", "subset", "height", "width", "n_nuclei")
#: Images of a screen folder used when it stands in for the annotated nuclei.
MAX_SCREEN_IMAGES = 40


def _screen_index(folder: Path) -> pd.DataFrame:
    """Index of the first images of a screen folder with masks (``metadata.csv``)."""
    meta = load_metadata(folder).sort_values("Metadata_ImagePath").head(MAX_SCREEN_IMAGES)
    ids = [str(Path(p).relative_to(folder)) for p in meta["Metadata_ImagePath"]]
    return pd.DataFrame(
        {"id": ids, "subset": "screen", "image_path": meta["Metadata_ImagePath"].to_numpy(),
         "mask_path": meta["Metadata_MaskPath"].to_numpy(), "index_file": "metadata.csv"}
    )  # fmt: skip


def read_index(folder: str | os.PathLike) -> pd.DataFrame:
    """Read and check ``index.csv`` of an annotated nuclei folder.

    Parameters
    ----------
    folder : path-like
        Folder with ``index.csv``, ``images/`` and ``labels/``; or a screen folder with
        ``metadata.csv`` and masks (see the module's description).

    Returns
    -------
    pandas.DataFrame
        The index, one row per image (``id`` as str), with ``image_path``, ``mask_path``
        and ``index_file`` (the file the index was read from).

    Raises
    ------
    InputError
        When the folder or the index is missing or lacks a column.
    """
    folder = Path(folder)
    index = folder / "index.csv"
    if not index.is_file() and (folder / "metadata.csv").is_file():
        return _screen_index(folder)
    if not index.is_file():
        raise InputError(
            f"{index}: annotated nuclei index not found; point the annotated-data setting at "
            "the nuclei_dsb2018_fluo folder of ../shared/data (index.csv, images/, labels/)."
        )
    table = pd.read_csv(index, dtype={"id": str, "subset": str})
    missing = [c for c in _INDEX_COLUMNS if c not in table.columns]
    if missing or table.empty:
        raise InputError(
            f"{index}: expected columns {list(_INDEX_COLUMNS)} and at least one row, got "
            f"columns {list(table.columns)} and {len(table)} rows; use the index.csv shipped "
            "with the data set."
        )
    table["image_path"] = [str(folder / "images" / f"{i}.png") for i in table["id"]]
    table["mask_path"] = [str(folder / "labels" / f"{i}.tif") for i in table["id"]]
    table["index_file"] = "index.csv"
    return table


def split_images(index: pd.DataFrame) -> pd.Series:
    """Assign every image to ``train``, ``val`` or ``test`` by the fixed rule (:data:`SPLIT_RULE`).

    Parameters
    ----------
    index : pandas.DataFrame
        ``id`` and ``subset`` per image (:func:`read_index`).

    Returns
    -------
    pandas.Series
        The part of each image, indexed like ``index``.
    """
    split = pd.Series("train", index=index.index, dtype=object)
    for _, ids in index.groupby("subset", sort=True)["id"]:
        position = pd.Series(np.arange(len(ids)), index=ids.sort_values().index)
        k = position % 8
        split[k.index[k.isin([0, 4])]] = "test"
        split[k.index[k == 2]] = "val"
    return split


def split_table(folder: str | os.PathLike) -> pd.DataFrame:
    """Return the index of an annotated nuclei folder with its ``split`` column.

    Parameters
    ----------
    folder : path-like
        The ``nuclei_dsb2018_fluo`` folder.

    Returns
    -------
    pandas.DataFrame
        :func:`read_index` plus ``split`` (``train``, ``val`` or ``test``).
    """
    table = read_index(folder)
    table["split"] = split_images(table)
    return table


def load_annotated_fields(folder: str | os.PathLike, parts: str | tuple[str, ...] = SPLITS) -> dict:
    """Load the images and instance labels of some parts of the split.

    Parameters
    ----------
    folder : path-like
        The ``nuclei_dsb2018_fluo`` folder.
    parts : str or tuple of str
        Parts to load (``"train"``, ``"val"``, ``"test"``).

    Returns
    -------
    dict
        ``table`` (the index rows loaded, with a ``split`` column, in index order),
        ``images`` (float32 arrays), ``masks`` (int32 label images), ``names`` (ids) and
        ``index_sha256`` (checksum of ``index.csv`` or of the screen's ``metadata.csv``).

    Raises
    ------
    InputError
        A missing folder, index, image or label file, or an unknown part.
    """
    parts = (parts,) if isinstance(parts, str) else tuple(parts)
    if not parts or any(p not in SPLITS for p in parts):
        raise InputError(f"parts must name some of {SPLITS}, got {parts}.")
    folder = Path(folder)
    table = split_table(folder)
    table = table[table["split"].isin(parts)].reset_index(drop=True)
    images, masks = [], []
    for image_path, mask_path in zip(table["image_path"], table["mask_path"], strict=True):
        image = read_image(image_path)
        images.append(image)
        masks.append(read_mask(mask_path, image.shape))
    return {
        "table": table,
        "images": images,
        "masks": masks,
        "names": table["id"].tolist(),
        "index_sha256": file_digest(folder / table["index_file"].iloc[0]),
    }
