"""Profile evaluation (thesis metrics): mAP, folds of enrichment, hits in the top 1 %.

Condition profiles are compared by cosine similarity. A pair of conditions is *positive*
when they share an annotation (on the synthetic screen: the network community of the
over-expressed gene).

* mAP: the mean over query conditions of the average precision of retrieving the
  same-annotation conditions among all others, computed with copairs.
* Folds of enrichment: the odds ratio of same-annotation pairs among the top 1 % most
  similar pairs versus the rest (one-sided Fisher exact test; Haldane's +0.5 correction
  when a cell is empty).
* Hits in the top 1 %: the number of same-annotation pairs among them.

Fold spaces: the profiles of different fold encoders live in different spaces and are not
comparable. :func:`evaluate_fold_spaces` evaluates within each space, using as queries only
the conditions held out by that space's encoder (pairs with at least one of them), and
averages over spaces; a single-space representation is evaluated with the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from copairs.map import average_precision
from scipy.stats import fisher_exact

from .columns import feature_columns

__all__ = [
    "cosine_similarity",
    "average_precisions",
    "pair_enrichment",
    "evaluate_space",
    "evaluate_fold_spaces",
]


def cosine_similarity(x: np.ndarray) -> np.ndarray:
    """Cosine similarity between the rows of ``x`` (zero rows have similarity 0).

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` profiles.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` similarities.
    """
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    xn = x / np.where(norm > 0, norm, 1.0)
    return xn @ xn.T


def average_precisions(
    profiles: pd.DataFrame, annotation: str = "Metadata_Annotation"
) -> pd.DataFrame:
    """Average precision of every condition retrieving its same-annotation conditions.

    Parameters
    ----------
    profiles : pandas.DataFrame
        One row per condition: ``Metadata_Condition``, ``annotation`` and features.
    annotation : str
        Annotation column; rows with a missing annotation are dropped.

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Condition``, ``annotation``, ``average_precision``, ``n_pos_pairs``,
        ``n_total_pairs`` (copairs' cosine-similarity ranking, self excluded); conditions
        without any positive get NaN.
    """
    df = profiles[profiles[annotation].notna()].reset_index(drop=True)
    meta = df[["Metadata_Condition", annotation]].astype(str)
    feats = df[feature_columns(df)].to_numpy(np.float64)
    ap = average_precision(
        meta, feats, pos_sameby=[annotation], pos_diffby=["Metadata_Condition"],
        neg_sameby=[], neg_diffby=[annotation], progress_bar=False,
    )  # fmt: skip
    keep = ["Metadata_Condition", annotation, "average_precision", "n_pos_pairs", "n_total_pairs"]
    return ap[keep].reset_index(drop=True)


def pair_enrichment(
    sim: np.ndarray, same: np.ndarray, pair_mask: np.ndarray | None = None, top: float = 0.01
) -> dict:
    """Folds of enrichment and hits of same-annotation pairs in the top fraction of pairs.

    Parameters
    ----------
    sim : numpy.ndarray
        ``(n, n)`` similarity matrix.
    same : numpy.ndarray
        ``(n, n)`` boolean: the two conditions share an annotation.
    pair_mask : numpy.ndarray, optional
        ``(n, n)`` boolean: pairs to consider (all distinct pairs when None).
    top : float
        Fraction of the most similar pairs (at least one pair).

    Returns
    -------
    dict
        ``fold_enrichment`` (odds ratio), ``p_value`` (one-sided Fisher), ``hits`` (positive
        pairs in the top), ``n_top``, ``n_pairs``, ``n_positive_pairs``.
    """
    n = sim.shape[0]
    iu = np.triu_indices(n, 1)
    keep = np.ones(len(iu[0]), bool) if pair_mask is None else pair_mask[iu]
    s, pos = sim[iu][keep], same[iu][keep].astype(bool)
    n_pairs = len(s)
    n_top = max(1, int(round(top * n_pairs)))
    order = np.argsort(-s, kind="stable")
    in_top = np.zeros(n_pairs, bool)
    in_top[order[:n_top]] = True
    a, b = int((pos & in_top).sum()), int((~pos & in_top).sum())
    c, d = int((pos & ~in_top).sum()), int((~pos & ~in_top).sum())
    _, p = fisher_exact([[a, b], [c, d]], alternative="greater")
    cells = np.array([a, b, c, d], float)
    if (cells == 0).any():
        cells += 0.5
    odds = cells[0] * cells[3] / (cells[1] * cells[2])
    return {
        "fold_enrichment": float(odds),
        "p_value": float(p),
        "hits": a,
        "n_top": n_top,
        "n_pairs": n_pairs,
        "n_positive_pairs": int(pos.sum()),
    }


def evaluate_space(
    profiles: pd.DataFrame,
    annotation: str = "Metadata_Annotation",
    queries: Sequence[str] | None = None,
    top: float = 0.01,
) -> dict:
    """mAP, folds of enrichment and hits of one profile space.

    Parameters
    ----------
    profiles : pandas.DataFrame
        One row per condition (``Metadata_Condition``, ``annotation``, features); the
        retrieval set. Rows without annotation are ignored.
    annotation : str
        Annotation column.
    queries : sequence of str, optional
        Conditions used as queries (mAP) and required in a pair (enrichment); all when None.
    top : float
        Top fraction of pairs for the enrichment.

    Returns
    -------
    dict
        ``mAP``, ``n_queries`` (queries with at least one positive) and the keys of
        :func:`pair_enrichment`.
    """
    df = profiles[profiles[annotation].notna()].reset_index(drop=True)
    conds = df["Metadata_Condition"].astype(str).to_numpy()
    is_query = np.ones(len(df), bool) if queries is None else np.isin(conds, list(queries))
    ap = average_precisions(df, annotation)
    ap = ap[ap["Metadata_Condition"].isin(conds[is_query])]["average_precision"].dropna()
    sim = cosine_similarity(df[feature_columns(df)].to_numpy())
    lab = df[annotation].astype(str).to_numpy()
    same = lab[:, None] == lab[None, :]
    pair_mask = is_query[:, None] | is_query[None, :]
    enr = pair_enrichment(sim, same, pair_mask, top)
    return {"mAP": float(ap.mean()) if len(ap) else np.nan, "n_queries": int(len(ap)), **enr}


def evaluate_fold_spaces(
    profiles: pd.DataFrame,
    folds: pd.DataFrame,
    annotation: str = "Metadata_Annotation",
    top: float = 0.01,
) -> pd.DataFrame:
    """Evaluate each fold space on its held-out conditions and average over spaces.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Condition profiles with ``annotation``; with a ``Metadata_Fold`` column, one space per
        fold (rows of fold-space k are evaluated with the conditions of fold k as queries);
        without it, a single space evaluated with each fold's queries in turn.
    folds : pandas.DataFrame
        ``Metadata_Condition``, ``Metadata_Fold``: the fold assignment of the conditions.
    annotation : str
        Annotation column.
    top : float
        Top fraction of pairs for the enrichment.

    Returns
    -------
    pandas.DataFrame
        One row per fold (``fold`` = k) and a ``fold`` = "mean" row: mAP (query-weighted
        over folds), fold_enrichment (mean), hits (sum), p_value (per fold; NaN in the mean
        row), n_queries, n_top, n_pairs (sums).
    """
    rows = []
    for k, fk in folds.groupby("Metadata_Fold", sort=True):
        space = profiles
        if "Metadata_Fold" in profiles.columns:
            space = profiles[profiles["Metadata_Fold"] == k]
        res = evaluate_space(space, annotation, fk["Metadata_Condition"].tolist(), top)
        rows.append({"fold": str(k), **res})
    out = pd.DataFrame(rows)
    w = out["n_queries"].to_numpy(float)
    mean = {
        "fold": "mean",
        "mAP": float(np.nansum(out["mAP"] * w) / w.sum()) if w.sum() else np.nan,
        "fold_enrichment": float(out["fold_enrichment"].mean()),
        "p_value": np.nan,
    }
    for c in ("hits", "n_queries", "n_top", "n_pairs", "n_positive_pairs"):
        mean[c] = int(out[c].sum())
    return pd.concat([out, pd.DataFrame([mean])], ignore_index=True)
