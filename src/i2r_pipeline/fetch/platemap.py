"""Plate maps and image file names: which well, site and channel an image is, and its gene.

The defaults follow the Cell Painting Gallery: ImageXpress names of Rohban et al. 2017 and
Opera Phenix names of JUMP, and the Rohban plate map (columns ``well_position`` and
``gene_name``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from i2r_utils.io import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHANNEL_MAP",
    "DEFAULT_FILENAME_PATTERNS",
    "join_platemap",
    "normalize_well",
    "parse_image_names",
    "read_platemap",
]

#: File name patterns tried in order by :func:`parse_image_names`. Each names the groups
#: ``well`` (or ``row`` and ``col``), ``site`` and ``channel``:
#:
#: * ImageXpress (Rohban 2017, Broad): ``<anything>_<well>_s<site>_w<channel><GUID>.tif``,
#:   e.g. ``41744_a01_s1_w1A3C5...tif``; thumbnails (``_w1_thumb...``) do not match.
#: * Opera Phenix / CellProfiler style (JUMP): ``r01c01f01p01-ch1sk1fk1fl1.tiff``.
DEFAULT_FILENAME_PATTERNS = (
    r"_(?P<well>[A-Pa-p]\d{1,2})_s(?P<site>\d+)_w(?P<channel>\d)[^_/]*\.tiff?$",
    r"^r(?P<row>\d{2})c(?P<col>\d{2})f(?P<site>\d{2})p\d{2}-ch(?P<channel>\d+)sk\d+fk\d+fl\d+\.tiff?$",
)
#: Stain name -> channel token in the file name. ``w1`` is Hoechst (DNA) in the Broad
#: ImageXpress Cell Painting protocol used by Rohban et al. 2017 (JUMP Phenix plates use
#: ``ch5`` for DNA: pass ``channel="5"`` there).
DEFAULT_CHANNEL_MAP = {"DNA": "1", "ER": "2", "RNA": "3", "AGP": "4", "Mito": "5"}


def normalize_well(well: Any) -> str:
    """Normalise a well name to upper-case row letter(s) and two-digit column, e.g. ``A01``.

    Parameters
    ----------
    well : object
        ``"a01"``, ``"A1"``, ``"A01"``, ``"AA12"`` ...

    Returns
    -------
    str
        The normalised name; strings that do not look like a well are returned stripped and
        upper-cased.
    """
    text = str(well).strip()
    m = re.fullmatch(r"([A-Za-z]{1,2})0*(\d{1,3})", text)
    if not m:
        return text.upper()
    return f"{m.group(1).upper()}{int(m.group(2)):02d}"


def _row_letters(row: int) -> str:
    letters = ""
    while row > 0:
        row, rem = divmod(row - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def parse_image_names(
    keys: Iterable[str], patterns: Sequence[str] = DEFAULT_FILENAME_PATTERNS
) -> pd.DataFrame:
    """Parse well, site and channel out of image file names.

    Each pattern is a regular expression searched in the file name (the part after the last
    ``/``) with named groups ``well`` (or ``row`` and ``col``, 1-based numbers), ``site`` and
    ``channel``; the first pattern that matches wins (matching is case-insensitive). See
    :data:`DEFAULT_FILENAME_PATTERNS` for the ImageXpress
    (``<plate>_<well>_s<site>_w<channel><GUID>.tif``) and Phenix
    (``r01c01f01p01-ch1sk1fk1fl1.tiff``) defaults. Names that match no pattern (thumbnails,
    CSV files, ...) are skipped.

    Parameters
    ----------
    keys : iterable of str
        Object keys or file paths.
    patterns : sequence of str, default DEFAULT_FILENAME_PATTERNS
        Regular expressions as described above.

    Returns
    -------
    pandas.DataFrame
        Columns ``Metadata_ObjectKey`` (the input), ``Metadata_Well`` (normalised, e.g.
        ``A01``), ``Metadata_Site`` (int) and ``Metadata_Channel`` (str, leading zeros removed).
    """
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    rows = []
    for key in keys:
        name = str(key).rsplit("/", 1)[-1]
        for rx in compiled:
            m = rx.search(name)
            if not m:
                continue
            groups = m.groupdict()
            if groups.get("well"):
                well = normalize_well(groups["well"])
            else:
                well = f"{_row_letters(int(groups['row']))}{int(groups['col']):02d}"
            rows.append((str(key), well, int(groups["site"]), str(int(groups["channel"]))))
            break
    return pd.DataFrame(
        rows, columns=["Metadata_ObjectKey", "Metadata_Well", "Metadata_Site", "Metadata_Channel"]
    )


def read_platemap(path: str | os.PathLike) -> pd.DataFrame:
    """Read a plate map (CSV or TSV) with every column as text.

    Parameters
    ----------
    path : str or os.PathLike
        ``.txt``/``.tsv`` files are read as tab separated, ``.csv`` as comma separated, others
        with the separator sniffed.

    Returns
    -------
    pandas.DataFrame
        The plate map; ``NA`` and empty cells stay strings.
    """
    suffix = Path(path).suffix.lower()
    sep = {".txt": "\t", ".tsv": "\t", ".csv": ","}.get(suffix)
    kwargs: dict[str, Any] = {"sep": sep} if sep else {"sep": None, "engine": "python"}
    return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)


def join_platemap(
    images_df: pd.DataFrame,
    platemap_df: pd.DataFrame,
    well_col: str = "well_position",
    gene_col: str = "gene_name",
    plate_col: str | None = None,
    image_well_col: str = "Metadata_Well",
    image_plate_col: str = "Metadata_Plate",
    condition_col: str = "Metadata_Condition",
) -> pd.DataFrame:
    """Map each image to the gene of its well in a plate map.

    Wells are compared after :func:`normalize_well` (so ``a01``, ``A1`` and ``A01`` match).
    The Rohban et al. 2017 plate map ``TAORF_REFERENCE_SET.txt`` has columns
    ``well_position`` and ``gene_name`` and is shared by all plates; for plate maps that
    differ between plates give `plate_col` to join on plate and well.

    Parameters
    ----------
    images_df : pandas.DataFrame
        Images with a well column (and a plate column when `plate_col` is given).
    platemap_df : pandas.DataFrame
        The plate map.
    well_col, gene_col : str
        Well and gene columns of the plate map.
    plate_col : str, optional
        Plate column of the plate map; ``None`` joins on the well only.
    image_well_col, image_plate_col : str
        Well and plate columns of `images_df`.
    condition_col : str, default "Metadata_Condition"
        Name of the gene column added to the result.

    Returns
    -------
    pandas.DataFrame
        `images_df` (same rows and order) with `condition_col` added; images whose well is not
        in the plate map get a missing value (and a logged warning).

    Raises
    ------
    KeyError
        A named column is missing (the message lists the available columns).
    InputError
        The plate map lists a well twice (per plate).
    """
    _require_columns(platemap_df, [well_col, gene_col, plate_col], "plate map")
    plate_cols = [image_plate_col] if plate_col else []
    _require_columns(images_df, [image_well_col, *plate_cols], "image table")
    pm, keys = _wells_to_genes(platemap_df, well_col, gene_col, plate_col, condition_col)
    out = images_df.drop(columns=[condition_col], errors="ignore").copy()
    left = pd.DataFrame({"_well": out[image_well_col].map(normalize_well)}, index=out.index)
    if plate_col:
        left["_plate"] = out[image_plate_col].astype(str).str.strip()
    merged = left.merge(pm, on=keys, how="left")
    out[condition_col] = merged[condition_col].to_numpy()
    n_missing = int(out[condition_col].isna().sum())
    if n_missing:
        logger.warning(
            "%d of %d images have a well that is not in the plate map", n_missing, len(out)
        )
    return out


def _require_columns(frame: pd.DataFrame, columns: list[str | None], what: str) -> None:
    """Raise a KeyError naming the missing columns (None entries are not needed)."""
    missing = [c for c in columns if c and c not in frame.columns]
    if missing:
        raise KeyError(
            f"The {what} has no column(s) {missing}; available: {list(frame.columns)}. Pass "
            "the right column names (well_col/gene_col/plate_col or image_*_col)."
        )


def _wells_to_genes(
    platemap_df: pd.DataFrame,
    well_col: str,
    gene_col: str,
    plate_col: str | None,
    condition_col: str,
) -> tuple[pd.DataFrame, list[str]]:
    """Return the plate map as ``(_plate,) _well -> condition_col`` and its key columns."""
    keys = ["_plate", "_well"] if plate_col else ["_well"]
    pm = pd.DataFrame({"_well": platemap_df[well_col].map(normalize_well)})
    if plate_col:
        pm["_plate"] = platemap_df[plate_col].astype(str).str.strip()
    pm[condition_col] = platemap_df[gene_col].astype(str).str.strip()
    dup = pm.duplicated(keys, keep=False)
    if dup.any():
        raise InputError(
            f"The plate map lists these wells more than once: "
            f"{sorted(set(map(tuple, pm.loc[dup, keys].values.tolist())))[:10]}"
        )
    return pm, keys
