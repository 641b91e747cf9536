"""The per-well CellProfiler profiles of the ORF screen (cpg0017) in the real-profile layout.

The fetcher of the Cell Painting Gallery profiles
(:func:`i2r_pipeline.fetch.cpg_profiles.fetch_cpg_profiles`) writes one merged table,
:data:`CPG_PROFILES_FILE`: one row per well of every fetched plate with ``Metadata_Plate``,
``Metadata_Well`` (``A01`` style), the plate map's columns with a ``Metadata_`` prefix
(``Metadata_gene_name``, ``Metadata_pert_name``, ``Metadata_broad_sample``,
``Metadata_ASSAY_WELL_ROLE``, ...) and the features. :func:`load_cpg_profiles` reads it
into the layout of :mod:`i2r_utils.realprofiles` (:data:`~i2r_utils.realprofiles.META`), so
that the real-profile evaluation runs on it unchanged:

* a treatment (``Metadata_Compound`` and ``Metadata_Condition``) is an ORF construct
  (``Metadata_pert_name``, e.g. ``BRAF_V600E``): its replicates are its wells on the plates;
* the "mechanism" (``Metadata_MoA``) is the construct's gene (``Metadata_gene_name``), so the
  MoA metrics ask whether a construct finds the other constructs of its own gene;
* the control wells (role ``CTRL``: LacZ, Luciferase, eGFP ORFs) carry the evaluation's
  control name :data:`~i2r_utils.realprofiles.CONTROL`; the untreated ``EMPTY`` wells (role
  ``Untreated``, never transfected) are left out unless asked for;
* the batch is the plate; there is no dose (``Metadata_Dose`` is missing).

The wells' own labels stay in ``Metadata_Gene``, ``Metadata_Construct`` and
``Metadata_Role``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import feature_columns
from .io import InputError
from .realprofiles import CONTROL, META

logger = logging.getLogger(__name__)

__all__ = [
    "CPG_PROFILES_FILE",
    "CONTROL_ROLES",
    "UNTREATED_ROLES",
    "load_cpg_profiles",
]

#: The merged per-well table the profile fetcher writes into its destination folder.
CPG_PROFILES_FILE = "cpg0017_profiles.parquet"
#: Plate-map roles of the control wells (the Rohban plate map: ``CTRL`` = LacZ, Luciferase, eGFP).
CONTROL_ROLES = ("CTRL",)
#: Plate-map roles of the wells that were never transfected (``EMPTY``).
UNTREATED_ROLES = ("Untreated",)
#: Labels of each well kept beside :data:`~i2r_utils.realprofiles.META`.
EXTRA = ["Metadata_Gene", "Metadata_Construct", "Metadata_Role"]


def _labels(df: pd.DataFrame, path: Path, gene_col: str, construct_col: str, role_col: str):
    """Return gene, construct and role of every well as stripped strings."""
    need = ["Metadata_Plate", "Metadata_Well", gene_col, construct_col, role_col]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(
            f"{path} lacks columns {missing}; it should be the table written by the profile "
            "fetcher (`run_all.py data cpg-profiles`), or pass the plate-map column names."
        )
    return [df[c].astype(str).str.strip() for c in (gene_col, construct_col, role_col)]


def _finite_features(df: pd.DataFrame, path: Path) -> list[str]:
    """Feature columns that are numeric and finite in every well (others are left out)."""
    feats = feature_columns(df)
    values = df[feats].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(values).all(axis=0)
    if not ok.any():
        raise InputError(f"{path} has no feature column that is finite in every well")
    if not ok.all():
        logger.warning(
            "%s: %d of %d feature columns have missing or non-numeric values in some well and "
            "are left out (e.g. %s)",
            path,
            int((~ok).sum()),
            len(feats),
            [f for f, good in zip(feats, ok, strict=True) if not good][:3],
        )
    return [f for f, good in zip(feats, ok, strict=True) if good]


def load_cpg_profiles(
    folder: str | os.PathLike,
    keep_untreated: bool = False,
    gene_col: str = "Metadata_gene_name",
    construct_col: str = "Metadata_pert_name",
    role_col: str = "Metadata_ASSAY_WELL_ROLE",
) -> pd.DataFrame:
    """Load the fetched cpg0017 well profiles into the real-profile layout.

    Parameters
    ----------
    folder : path-like
        Folder with :data:`CPG_PROFILES_FILE` (the fetcher's destination).
    keep_untreated : bool, default False
        Keep the untreated (``EMPTY``) wells as a treatment of their own.
    gene_col, construct_col, role_col : str
        Plate-map columns of gene, construct and well role in the merged table.

    Returns
    -------
    pandas.DataFrame
        :data:`~i2r_utils.realprofiles.META`, ``Metadata_Gene``, ``Metadata_Construct``,
        ``Metadata_Role`` and the features (float64) that are finite in every well, one row
        per well.

    Raises
    ------
    InputError
        The file or a needed column is missing, no control well is left, or no feature is
        finite in every well.
    """
    path = Path(folder) / CPG_PROFILES_FILE
    if not path.is_file():
        raise InputError(
            f"{path} not found; fetch the profiles first (`python3 run_all.py data cpg-profiles "
            f"--dest {folder}`) or point the data folder at the fetcher's destination."
        )
    df = pd.read_parquet(path)
    gene, construct, role = _labels(df, path, gene_col, construct_col, role_col)
    keep = ~role.isin(UNTREATED_ROLES) | keep_untreated
    control = role.isin(CONTROL_ROLES)
    if not (control & keep).any():
        raise InputError(f"{path} has no control well (role {list(CONTROL_ROLES)} in {role_col})")
    compound = construct.where(~control, CONTROL)
    meta = pd.DataFrame({
        "Metadata_Plate": df["Metadata_Plate"].astype(str),
        "Metadata_Well": df["Metadata_Well"].astype(str),
        "Metadata_Batch": df["Metadata_Plate"].astype(str),
        "Metadata_Compound": compound,
        "Metadata_Dose": np.nan,
        "Metadata_Condition": compound,
        "Metadata_MoA": gene.where(~control & ~role.isin(UNTREATED_ROLES)),
        "Metadata_Gene": gene,
        "Metadata_Construct": construct,
        "Metadata_Role": role,
    })  # fmt: skip
    feats = _finite_features(df, path)
    out = pd.concat([meta[META + EXTRA], df[feats].astype(np.float64)], axis=1)
    return out[keep.to_numpy()].reset_index(drop=True)
