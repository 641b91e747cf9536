"""Real Cell Painting / CellProfiler well profiles in one table layout.

Two public profile sets (no images needed) are read into the same columns, so that one
evaluation (:mod:`i2r_utils.profile_benchmark`) serves both:

* ``lincs_plate`` (:func:`load_lincs_plate`): one LINCS Cell Painting plate of A549 cells
  (SQ00015054, normalised and feature-selected CellProfiler profiles from
  cytominer-eval's example data): 384 wells, 454 features, 24 DMSO wells, compounds at six
  doses, 50 mechanisms of action.
* ``bbbc021`` (:func:`load_bbbc021`): the BBBC021 per-well mean CellProfiler profiles of
  Ljosa et al. 2013 (MCF7 cells, 55 plates in 10 weekly batches, 6 DMSO wells per plate),
  joined to compound and concentration through the image table and to the 13 mechanisms
  of action through the MoA table.

Every loader returns one row per well with ``Metadata_Plate``, ``Metadata_Well``,
``Metadata_Batch``, ``Metadata_Compound``, ``Metadata_Dose``, ``Metadata_Condition``
(``<compound>@<dose>``; the control is :data:`CONTROL`), ``Metadata_MoA`` (missing for the
control and unannotated compounds) and the features (float64).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import feature_columns
from .io import InputError

__all__ = [
    "CONTROL",
    "META",
    "LINCS_FILE",
    "BBBC021_FILES",
    "load_lincs_plate",
    "load_bbbc021",
    "LOADERS",
    "load_profile_set",
    "condition_name",
    "treatment_profiles",
]

#: The control (vehicle) of both profile sets.
CONTROL = "DMSO"
#: Metadata columns of every loaded table, in order.
META = [
    "Metadata_Plate", "Metadata_Well", "Metadata_Batch", "Metadata_Compound",
    "Metadata_Dose", "Metadata_Condition", "Metadata_MoA",
]  # fmt: skip
#: The LINCS plate's profile file.
LINCS_FILE = "SQ00015054_normalized_feature_select.csv.gz"
#: The BBBC021 files: well means, image table (compound, concentration), MoA table.
BBBC021_FILES = {
    "wells": "ljosa_jbiomolscreen_2013_per_well_mean.csv.gz",
    "images": "BBBC021_v1_image.csv.gz",
    "moa": "BBBC021_v1_moa.csv",
}


def _need(folder: str | os.PathLike, name: str) -> Path:
    path = Path(folder) / name
    if not path.is_file():
        raise InputError(
            f"{path} not found; point the data folder at the profile set's folder "
            f"(e.g. ../shared/data/<set>, see its README)."
        )
    return path


def condition_name(compound: pd.Series, dose: pd.Series) -> pd.Series:
    """``<compound>@<dose>`` (dose with 5 significant digits); the control keeps its name.

    Parameters
    ----------
    compound, dose : pandas.Series
        Compound names and doses.

    Returns
    -------
    pandas.Series
        Condition names.
    """
    name = compound.astype(str) + "@" + dose.map(lambda v: f"{float(v):.5g}")
    return name.where(compound != CONTROL, CONTROL)


def _finish(meta: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    out = pd.concat([meta[META].reset_index(drop=True), feats.reset_index(drop=True)], axis=1)
    bad = [c for c in feats.columns if not np.isfinite(out[c].to_numpy(np.float64)).all()]
    if bad:
        raise InputError(f"feature columns with missing or infinite values: {bad[:5]}")
    return out.astype({c: np.float64 for c in feats.columns}).copy()


def load_lincs_plate(folder: str | os.PathLike) -> pd.DataFrame:
    """Load the LINCS A549 plate SQ00015054 (normalised, feature-selected well profiles).

    Compound: ``Metadata_broad_sample`` (``DMSO`` for the control); dose:
    ``Metadata_mmoles_per_liter`` (micromolar values, 0.04 to 20); MoA: ``Metadata_moa``
    (combined mechanisms such as ``a|b`` are one label); batch: the plate.

    Parameters
    ----------
    folder : path-like
        Folder with :data:`LINCS_FILE`.

    Returns
    -------
    pandas.DataFrame
        :data:`META` and the 454 features, one row per well.
    """
    df = pd.read_csv(_need(folder, LINCS_FILE), low_memory=False)
    need = ["Metadata_Plate", "Metadata_Well", "Metadata_broad_sample",
            "Metadata_mmoles_per_liter", "Metadata_moa"]  # fmt: skip
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"{Path(folder) / LINCS_FILE} lacks columns {missing}")
    meta = pd.DataFrame({
        "Metadata_Plate": df["Metadata_Plate"].astype(str),
        "Metadata_Well": df["Metadata_Well"].astype(str),
        "Metadata_Batch": df["Metadata_Plate"].astype(str),
        "Metadata_Compound": df["Metadata_broad_sample"].astype(str),
        "Metadata_Dose": df["Metadata_mmoles_per_liter"].astype(float),
        "Metadata_MoA": df["Metadata_moa"],
    })  # fmt: skip
    meta["Metadata_Condition"] = condition_name(meta.Metadata_Compound, meta.Metadata_Dose)
    meta.loc[meta.Metadata_Compound == CONTROL, "Metadata_MoA"] = np.nan
    return _finish(meta, df[feature_columns(df)])


def load_bbbc021(folder: str | os.PathLike) -> pd.DataFrame:
    """Load the BBBC021 per-well mean profiles joined to compound, concentration and MoA.

    Wells are matched to the image table on plate and well (compound, concentration), and
    treatments to the MoA table on compound and concentration; batch: the week of the
    plate name (``Week4_27481`` -> ``Week4``).

    Parameters
    ----------
    folder : path-like
        Folder with the three :data:`BBBC021_FILES`.

    Returns
    -------
    pandas.DataFrame
        :data:`META` and the 516 features, one row per well.

    Raises
    ------
    InputError
        When a file is missing or a well has no compound in the image table.
    """
    wells = pd.read_csv(_need(folder, BBBC021_FILES["wells"]))
    images = pd.read_csv(_need(folder, BBBC021_FILES["images"]))
    moa = pd.read_csv(_need(folder, BBBC021_FILES["moa"]))
    keys = ["Image_Metadata_Plate", "Image_Metadata_Well"]
    cols = ["Image_Metadata_Plate_DAPI", "Image_Metadata_Well_DAPI",
            "Image_Metadata_Compound", "Image_Metadata_Concentration"]  # fmt: skip
    plate_map = images[cols].drop_duplicates()
    plate_map.columns = [*keys, "compound", "concentration"]
    meta = wells[keys].merge(plate_map, on=keys, how="left", validate="one_to_one")
    if meta["compound"].isna().any():
        first = meta[meta["compound"].isna()].iloc[0]
        raise InputError(
            f"well {first[keys[1]]} of plate {first[keys[0]]} has no compound in "
            f"{BBBC021_FILES['images']}; use the image table of the same release."
        )
    meta = meta.merge(moa, on=["compound", "concentration"], how="left", validate="many_to_one")
    meta = pd.DataFrame({
        "Metadata_Plate": meta[keys[0]].astype(str),
        "Metadata_Well": meta[keys[1]].astype(str),
        "Metadata_Batch": meta[keys[0]].astype(str).str.split("_").str[0],
        "Metadata_Compound": meta["compound"].astype(str),
        "Metadata_Dose": meta["concentration"].astype(float),
        "Metadata_MoA": meta["moa"],
    })  # fmt: skip
    meta["Metadata_Condition"] = condition_name(meta.Metadata_Compound, meta.Metadata_Dose)
    meta.loc[meta.Metadata_Compound == CONTROL, "Metadata_MoA"] = np.nan
    return _finish(meta, wells.drop(columns=keys))


def _load_cpg0017(folder: str | os.PathLike) -> pd.DataFrame:
    """Load fetched cpg0017 well profiles (:func:`i2r_utils.cpg_profiles.load_cpg_profiles`)."""
    from .cpg_profiles import load_cpg_profiles  # it imports this module

    return load_cpg_profiles(folder)


#: Loader of each profile set, by name.
LOADERS = {"lincs_plate": load_lincs_plate, "bbbc021": load_bbbc021, "cpg0017": _load_cpg0017}


def load_profile_set(name: str, folder: str | os.PathLike) -> pd.DataFrame:
    """Load the profile set ``name`` (a key of :data:`LOADERS`) from ``folder``.

    Parameters
    ----------
    name : str
        ``"lincs_plate"`` or ``"bbbc021"``.
    folder : path-like
        Its data folder.

    Returns
    -------
    pandas.DataFrame
        Well profiles (:data:`META` and features).
    """
    if name not in LOADERS:
        raise InputError(f"unknown profile set {name!r}; choose one of {sorted(LOADERS)}")
    return LOADERS[name](folder)


def treatment_profiles(wells: pd.DataFrame, by: str = "Metadata_Condition") -> pd.DataFrame:
    """Mean profile of every treatment (consensus of its wells).

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles with :data:`META`.
    by : str
        Treatment column.

    Returns
    -------
    pandas.DataFrame
        One row per treatment: ``by``, the metadata that are constant within it
        (``Metadata_Compound``, ``Metadata_MoA``, ... ; the first value of
        ``Metadata_Batch``), ``Metadata_Wells`` and the mean features.
    """
    feats = feature_columns(wells)
    g = wells.groupby(by, sort=True, observed=True)
    keep = [c for c in META if c != by and c in wells and (g[c].nunique(dropna=False) <= 1).all()]
    if "Metadata_Batch" in wells and "Metadata_Batch" not in keep:
        keep.append("Metadata_Batch")
    meta = g[keep].first()
    meta.insert(0, "Metadata_Wells", g.size())
    return pd.concat([meta, g[feats].mean()], axis=1).reset_index()
