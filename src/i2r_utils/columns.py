"""The ``Metadata_`` column convention of image-based profiling tables.

Metadata columns start with ``Metadata_``; every other column is a feature. This keeps
our tables drop-in compatible with pycytominer and copairs.
"""

from __future__ import annotations

import pandas as pd

PREFIX = "Metadata_"
# The control condition of a screen (empty vector, no over-expressed gene).
CONTROL = "EMPTY"

__all__ = ["CONTROL", "PREFIX", "get_metadata", "get_featuredata", "split", "feature_columns"]


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Return the feature column names (all columns not starting with ``Metadata_``).

    Parameters
    ----------
    df : pandas.DataFrame
        A profiling table.

    Returns
    -------
    list of str
        Feature column names in table order.
    """
    return [c for c in df.columns if not str(c).startswith(PREFIX)]


def get_metadata(df: pd.DataFrame) -> pd.DataFrame:
    """Return the ``Metadata_`` columns of a profiling table.

    Parameters
    ----------
    df : pandas.DataFrame
        A profiling table.

    Returns
    -------
    pandas.DataFrame
        The metadata columns only.
    """
    return df[[c for c in df.columns if str(c).startswith(PREFIX)]]


def get_featuredata(df: pd.DataFrame) -> pd.DataFrame:
    """Return the feature columns of a profiling table.

    Parameters
    ----------
    df : pandas.DataFrame
        A profiling table.

    Returns
    -------
    pandas.DataFrame
        The feature columns only.
    """
    return df[feature_columns(df)]


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a profiling table into metadata and features.

    Parameters
    ----------
    df : pandas.DataFrame
        A profiling table.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(metadata, features)``.
    """
    return get_metadata(df), get_featuredata(df)
