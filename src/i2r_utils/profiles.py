"""Profiles: nucleus -> image (median) -> well (mean) -> condition (mean).

Tables follow the ``Metadata_`` convention; features are all other columns.
"""

from __future__ import annotations

import pandas as pd

from .columns import feature_columns

__all__ = ["IMAGE_KEYS", "WELL_KEYS", "aggregate", "normalize_to_control", "condition_profiles"]

WELL_KEYS = ["Metadata_Plate", "Metadata_Well", "Metadata_Condition"]
IMAGE_KEYS = WELL_KEYS + ["Metadata_Site"]


def aggregate(df: pd.DataFrame, by: list[str], how: str = "mean") -> pd.DataFrame:
    """Aggregate the features of ``df`` over groups of metadata columns.

    Parameters
    ----------
    df : pandas.DataFrame
        Profiling table.
    by : list of str
        Metadata columns defining the groups (kept in the output).
    how : {"mean", "median"}
        Aggregation.

    Returns
    -------
    pandas.DataFrame
        One row per group, with ``Metadata_Count`` (rows aggregated).
    """
    feats = feature_columns(df)
    g = df.groupby(by, sort=True, observed=True)
    out = getattr(g[feats], how)()
    out.insert(0, "Metadata_Count", g.size())
    return out.reset_index()


def normalize_to_control(
    wells: pd.DataFrame,
    control: str = "EMPTY",
    by: str = "Metadata_Plate",
    method: str = "standardize",
) -> pd.DataFrame:
    """Normalise well profiles to the control wells of the same plate.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well-level profiles.
    control : str
        Condition name of the control wells.
    by : str
        Batch column (controls are taken within each value).
    method : {"center", "standardize"}
        Subtract the control mean, and for ``standardize`` also divide by the control
        standard deviation (pooled over plates where a plate has too few controls).

    Returns
    -------
    pandas.DataFrame
        Normalised profiles.
    """
    feats = feature_columns(wells)
    out = wells.copy()
    is_ctl = wells["Metadata_Condition"] == control
    if not is_ctl.any():
        raise ValueError(f"no control wells ({control!r}) to normalise against")
    pooled_sd = wells.loc[is_ctl, feats].std(ddof=0).replace(0, 1.0).fillna(1.0)
    for _, idx in wells.groupby(by).groups.items():
        ctl = wells.loc[idx][is_ctl.loc[idx]]
        if ctl.empty:
            raise ValueError(f"plate {wells.loc[idx[0], by]!r} has no control wells")
        x = wells.loc[idx, feats] - ctl[feats].mean()
        if method == "standardize":
            sd = ctl[feats].std(ddof=0) if len(ctl) >= 3 else pooled_sd
            x = x / sd.where(sd > 0, pooled_sd)
        elif method != "center":
            raise ValueError(f"unknown method {method!r}; use 'center' or 'standardize'")
        out.loc[idx, feats] = x.to_numpy()
    return out


def condition_profiles(
    nuclei: pd.DataFrame, control: str = "EMPTY", normalize: str | None = "standardize"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build well and condition profiles from single-nucleus features.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        One row per nucleus with ``IMAGE_KEYS`` metadata and features.
    control : str
        Control condition.
    normalize : {"standardize", "center", None}
        Per-plate normalisation to control wells before averaging over wells.

    Returns
    -------
    wells : pandas.DataFrame
        Well profiles (normalised).
    conditions : pandas.DataFrame
        Condition profiles (mean of wells), one row per condition.
    """
    cols = [c for c in IMAGE_KEYS if c in nuclei.columns]
    images = aggregate(nuclei[cols + feature_columns(nuclei)], cols, "median")
    images = images.drop(columns="Metadata_Count")
    wells = aggregate(images, WELL_KEYS, "mean").drop(columns="Metadata_Count")
    if normalize:
        wells = normalize_to_control(wells, control, method=normalize)
    conditions = aggregate(
        wells.drop(columns=["Metadata_Plate", "Metadata_Well"]), ["Metadata_Condition"], "mean"
    )
    conditions = conditions.rename(columns={"Metadata_Count": "Metadata_Wells"})
    counts = nuclei.groupby("Metadata_Condition").size().rename("Metadata_Nuclei")
    conditions = conditions.merge(counts, left_on="Metadata_Condition", right_index=True)
    meta = ["Metadata_Condition", "Metadata_Wells", "Metadata_Nuclei"]
    return wells, conditions[meta + feature_columns(conditions)]
