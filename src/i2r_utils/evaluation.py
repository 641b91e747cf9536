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
* Intervals: :func:`odds_ratio_interval` is Woolf's (logit) confidence interval of an odds
  ratio; :func:`enrichment_intervals` adds it to the folds of enrichment of
  :func:`evaluate_fold_spaces`, the mean over fold spaces by the delta method.

The thesis (Moshkov) forms of the last two are computed per query
(:func:`query_enrichment`): each query's own top 1 % most similar profiles against the
rest, the odds ratios averaged over queries, and the hits counted as queries with at least
one same-annotation profile in their own top 1 %. :func:`replicate_average_precisions`
is copairs' phenotypic-activity mAP (a perturbation's replicates retrieved against the
control wells), :func:`mean_average_precisions` its per-perturbation mean with copairs'
permutation p-values, and :func:`nearest_neighbour_accuracy` the 1-nearest-neighbour
mechanism-of-action accuracy of Ljosa et al. 2013 (not-same-compound, not-same-batch).

Fold spaces: the profiles of different fold encoders live in different spaces and are not
comparable. :func:`evaluate_fold_spaces` evaluates within each space, using as queries only
the conditions held out by that space's encoder (pairs with at least one of them), and
averages over spaces; a single-space representation is evaluated with the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from copairs.map import average_precision, mean_average_precision
from scipy.stats import fisher_exact, hypergeom, norm

from .columns import feature_columns

#: Columns of copairs' average precision the AP tables keep.
AP_COLUMNS = ["average_precision", "normalized_average_precision", "n_pos_pairs", "n_total_pairs"]

__all__ = [
    "AP_COLUMNS",
    "cosine_similarity",
    "average_precisions",
    "replicate_average_precisions",
    "mean_average_precisions",
    "odds_ratio_interval",
    "pair_enrichment",
    "enrichment_intervals",
    "query_enrichment_table",
    "query_enrichment",
    "nearest_neighbour_accuracy",
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
    profiles: pd.DataFrame,
    annotation: str = "Metadata_Annotation",
    diffby: str = "Metadata_Condition",
) -> pd.DataFrame:
    """Average precision of every condition retrieving its same-annotation conditions.

    Parameters
    ----------
    profiles : pandas.DataFrame
        One row per condition: ``Metadata_Condition``, ``annotation``, ``diffby`` and
        features.
    annotation : str
        Annotation column; rows with a missing annotation are dropped.
    diffby : str
        Positives must differ in this column too (e.g. ``Metadata_Compound``: another
        compound of the same mechanism, the not-same-compound rule).

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Condition``, ``diffby`` (when another column), ``annotation`` and
        :data:`AP_COLUMNS` (copairs' cosine-similarity ranking, self excluded); conditions
        without any positive get NaN.
    """
    df = profiles[profiles[annotation].notna()].reset_index(drop=True)
    ids = list(dict.fromkeys(["Metadata_Condition", diffby]))
    meta = df[[*ids, annotation]].astype(str)
    feats = df[feature_columns(df)].to_numpy(np.float64)
    ap = average_precision(
        meta, feats, pos_sameby=[annotation], pos_diffby=[diffby],
        neg_sameby=[], neg_diffby=[annotation], progress_bar=False,
    )  # fmt: skip
    keep = [*ids, annotation, *AP_COLUMNS]
    return ap[keep].reset_index(drop=True)


def replicate_average_precisions(
    wells: pd.DataFrame, by: str, control: str, condition: str = "Metadata_Condition"
) -> pd.DataFrame:
    """Phenotypic activity (copairs): each well retrieves its replicates among the controls.

    A treated well's positives are the other wells with its ``by`` value; its negatives
    are the control wells (other treatments are not ranked). Control wells are not queries.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles with ``by``, ``condition`` and features.
    by : str
        Replicate column, e.g. ``Metadata_Compound`` or ``Metadata_Condition``.
    control : str
        Value of ``condition`` marking the control wells (e.g. ``"DMSO"``).
    condition : str
        Column that marks the controls.

    Returns
    -------
    pandas.DataFrame
        ``by`` and :data:`AP_COLUMNS`, one row per treated well (NaN when it has no
        replicate).
    """
    df = wells.reset_index(drop=True)
    is_ctl = (df[condition] == control).to_numpy()
    if is_ctl.sum() < 1:
        raise ValueError(f"no control wells ({condition} == {control!r}) to rank against")
    ref = np.where(is_ctl, np.arange(len(df)), -1)  # controls: no control-control positives
    meta = pd.DataFrame({by: df[by].astype(str), "Metadata_Reference": ref})
    meta.loc[is_ctl, by] = control
    ap = average_precision(
        meta, df[feature_columns(df)].to_numpy(np.float64),
        pos_sameby=[by, "Metadata_Reference"], pos_diffby=[], neg_sameby=[],
        neg_diffby=[by, "Metadata_Reference"], progress_bar=False,
    )  # fmt: skip
    ap = ap[ap["Metadata_Reference"] == -1]
    return ap[[by, *AP_COLUMNS]].reset_index(drop=True)


def mean_average_precisions(
    ap: pd.DataFrame, by: str, null_size: int = 10000, threshold: float = 0.05, seed: int = 0
) -> pd.DataFrame:
    """Mean average precision per group, with copairs' permutation p-values (BH-corrected).

    Parameters
    ----------
    ap : pandas.DataFrame
        Average precisions (:func:`replicate_average_precisions`, :func:`average_precisions`).
    by : str
        Group column (e.g. the compound).
    null_size : int
        Random rankings in the null distribution of each group.
    threshold : float
        Significance level of ``retrieved`` (corrected p-value below it).
    seed : int
        Seed of the null distribution.

    Returns
    -------
    pandas.DataFrame
        ``by``, ``mAP``, ``mnAP`` (mean normalised AP: 0 at chance, 1 at best),
        ``p_value``, ``corrected_p_value``, ``retrieved``.
    """
    ap = ap.dropna(subset=["average_precision"])
    out = mean_average_precision(
        ap, [by], null_size=null_size, threshold=threshold, seed=seed, progress_bar=False
    )
    names = {"mean_average_precision": "mAP", "mean_normalized_average_precision": "mnAP",
             "below_corrected_p": "retrieved"}  # fmt: skip
    out = out.rename(columns=names)
    return out[[by, "mAP", "mnAP", "p_value", "corrected_p_value", "retrieved"]].reset_index(
        drop=True
    )


def _corrected_cells(a, b, c, d, zero=(0, 1, 2, 3)) -> np.ndarray:
    """Stack the 2 x 2 cells ``(a, b, c, d)``; +0.5 on each cell of a table with a 0 in ``zero``.

    ``zero`` holds indices into ``(a, b, c, d)``.
    """
    cells = np.stack(np.broadcast_arrays(a, b, c, d)).astype(float)
    return cells + 0.5 * (cells[list(zero)] == 0).any(axis=0)


def _odds_ratio(a, b, c, d, zero=(0, 1, 2, 3)) -> np.ndarray:
    """Odds ratio ``a d / (b c)`` of the cells of :func:`_corrected_cells`."""
    cells = _corrected_cells(a, b, c, d, zero)
    return cells[0] * cells[3] / (cells[1] * cells[2])


def odds_ratio_interval(a, b, c, d, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Woolf (logit) confidence interval of the odds ratio ``a d / (b c)``.

    ``exp(log OR -/+ z sqrt(1/a + 1/b + 1/c + 1/d))`` with ``z`` the normal quantile of
    ``level``, on the cells of the point estimate of :func:`pair_enrichment` (Haldane's
    +0.5 on every cell of a table with an empty cell), so the interval is centred, on the
    log scale, on the reported folds of enrichment.

    Parameters
    ----------
    a, b, c, d : array-like
        Cells: positives in the top, negatives in the top, positives outside it, negatives
        outside it.
    level : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    tuple of numpy.ndarray
        Lower and upper bounds.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    log_or, se = _log_odds_ratio(a, b, c, d)
    half = norm.ppf(0.5 + level / 2) * se
    return np.exp(log_or - half), np.exp(log_or + half)


def _log_odds_ratio(a, b, c, d) -> tuple[np.ndarray, np.ndarray]:
    """Log odds ratio of :func:`_corrected_cells` and its Woolf standard error."""
    cells = _corrected_cells(a, b, c, d)
    return np.log(cells[0] * cells[3] / (cells[1] * cells[2])), np.sqrt((1.0 / cells).sum(0))


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
    odds = _odds_ratio(a, b, c, d)
    return {
        "fold_enrichment": float(odds),
        "p_value": float(p),
        "hits": a,
        "n_top": n_top,
        "n_pairs": n_pairs,
        "n_positive_pairs": int(pos.sum()),
    }


def query_enrichment_table(
    sim: np.ndarray, same: np.ndarray, candidates: np.ndarray | None = None, top: float = 0.01
) -> pd.DataFrame:
    """Per-query folds of enrichment in the query's own top fraction (thesis form).

    For query ``i`` the candidates are the profiles ``j != i`` with ``candidates[i, j]``;
    its top are its ``max(1, round(top * n_candidates))`` most similar candidates (ties
    broken by order). The 2 x 2 table (same annotation or not, in the top or not) gives
    the sample odds ratio ``a d / (b c)`` and the one-sided Fisher p-value. A query without
    a hit has odds ratio 0; a table with an empty off-diagonal cell (every top profile a
    positive, or every positive in the top) gets +0.5 on every cell so that the ratio stays
    finite. (Haldane's correction on every table with a zero, as in the pooled form, would
    give a query without any hit an odds ratio far above 1 when the top holds few profiles.)

    Parameters
    ----------
    sim : numpy.ndarray
        ``(n, n)`` similarities.
    same : numpy.ndarray
        ``(n, n)`` boolean: same annotation.
    candidates : numpy.ndarray, optional
        ``(n, n)`` boolean: pairs that may be compared (e.g. not the same compound); all
        pairs when None. The diagonal is always excluded.
    top : float
        Fraction of each query's candidates in its top.

    Returns
    -------
    pandas.DataFrame
        One row per query with at least one positive candidate: ``query`` (row index),
        ``n_candidates``, ``n_positives``, ``n_top``, ``hits`` (positives in the top),
        ``odds_ratio``, ``p_value``.
    """
    n = sim.shape[0]
    allowed = np.ones((n, n), bool) if candidates is None else np.asarray(candidates, bool).copy()
    np.fill_diagonal(allowed, False)
    rows = []
    for i in range(n):
        cand = np.flatnonzero(allowed[i])
        pos = np.asarray(same[i, cand], bool)
        if not pos.any():
            continue
        k = max(1, int(round(top * len(cand))))
        order = np.argsort(-sim[i, cand], kind="stable")[:k]
        rows.append((i, len(cand), int(pos.sum()), k, int(pos[order].sum())))
    cols = ["query", "n_candidates", "n_positives", "n_top", "hits"]
    out = pd.DataFrame(rows, columns=cols)
    a, m, npos, k = out.hits, out.n_candidates, out.n_positives, out.n_top
    out["odds_ratio"] = _odds_ratio(a, k - a, npos - a, m - npos - k + a, zero=(1, 2))
    out["p_value"] = hypergeom.sf(a - 1, m, npos, k)  # P(X >= a): one-sided Fisher
    return out


def query_enrichment(
    sim: np.ndarray, same: np.ndarray, candidates: np.ndarray | None = None, top: float = 0.01
) -> dict:
    """Thesis folds of enrichment and hits in the top fraction, per query then averaged.

    Parameters
    ----------
    sim, same, candidates, top
        As :func:`query_enrichment_table`.

    Returns
    -------
    dict
        ``fold_enrichment`` (mean odds ratio over queries), ``median_odds_ratio``,
        ``hits`` (queries with at least one same-annotation profile in their own top),
        ``n_queries`` (queries with at least one positive candidate), ``n_significant``
        (queries with one-sided Fisher p < 0.05).
    """
    t = query_enrichment_table(sim, same, candidates, top)
    empty = t.empty
    return {
        "fold_enrichment": np.nan if empty else float(t.odds_ratio.mean()),
        "median_odds_ratio": np.nan if empty else float(t.odds_ratio.median()),
        "hits": int((t.hits > 0).sum()),
        "n_queries": len(t),
        "n_significant": int((t.p_value < 0.05).sum()),
    }


def nearest_neighbour_accuracy(
    x: np.ndarray, labels: Sequence, exclude: np.ndarray | None = None
) -> pd.DataFrame:
    """1-nearest-neighbour (cosine) classification of every profile by its neighbours' labels.

    Ljosa et al. 2013: a treatment's mechanism is predicted as that of its most similar
    treatment of another compound (not-same-compound, NSC); not-same-compound-or-batch
    (NSB) also excludes the treatments of its batch. A query is scored only when some
    allowed neighbour shares its label (otherwise no answer could be right; under NSB this
    drops the mechanisms found in one batch only, as Ando et al. 2017 do).

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` profiles.
    labels : sequence
        ``n`` labels (missing labels: never a query nor a neighbour).
    exclude : numpy.ndarray, optional
        ``(n, n)`` boolean: pairs that may not be neighbours (the diagonal always).

    Returns
    -------
    pandas.DataFrame
        One row per scored query: ``query`` (row index), ``label``, ``predicted``,
        ``neighbour`` (row index), ``similarity``, ``correct``.
    """
    lab = pd.Series(list(labels), dtype=object)
    known = lab.notna().to_numpy()
    lab = lab.astype(str).to_numpy()
    sim = cosine_similarity(x)
    allowed = known[:, None] & known[None, :]
    if exclude is not None:
        allowed &= ~np.asarray(exclude, bool)
    np.fill_diagonal(allowed, False)
    possible = (allowed & (lab[:, None] == lab[None, :])).any(axis=1)
    masked = np.where(allowed, sim, -np.inf)
    nn = masked.argmax(axis=1)
    q = np.flatnonzero(known & possible)
    return pd.DataFrame({
        "query": q, "label": lab[q], "predicted": lab[nn[q]], "neighbour": nn[q],
        "similarity": masked[q, nn[q]], "correct": lab[q] == lab[nn[q]],
    })  # fmt: skip


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


def enrichment_intervals(evaluation: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Confidence intervals of the folds of enrichment of :func:`evaluate_fold_spaces`.

    A fold row gets the Woolf interval (:func:`odds_ratio_interval`) of its 2 x 2 table,
    rebuilt from ``hits``, ``n_top``, ``n_positive_pairs`` and ``n_pairs``. The ``mean``
    row's folds of enrichment is the mean ``M`` of the K fold spaces' odds ratios; its
    interval propagates the fold intervals (delta method, folds taken as independent;
    a pair of two folds' queries enters both tables, so the interval is slightly narrow):
    ``SE(M)^2 = sum_k (OR_k SE_k)^2 / K^2`` with ``SE_k`` the Woolf standard error of
    ``log OR_k``, and ``M exp(-/+ z SE(M) / M)`` on the log scale (Woolf's for K = 1).

    Parameters
    ----------
    evaluation : pandas.DataFrame
        Output of :func:`evaluate_fold_spaces` (fold rows, then one ``mean`` row), or
        several such blocks stacked; the mean row combines the fold rows above it back to
        the previous mean row.
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    pandas.DataFrame
        ``evaluation`` with ``fold_enrichment_low`` and ``fold_enrichment_high``.
    """
    out = evaluation.copy()
    a = out["hits"].to_numpy(float)
    b = out["n_top"].to_numpy(float) - a
    c = out["n_positive_pairs"].to_numpy(float) - a
    d = out["n_pairs"].to_numpy(float) - out["n_top"].to_numpy(float) - c
    low, high = odds_ratio_interval(a, b, c, d, level)
    se_log = _log_odds_ratio(a, b, c, d)[1]
    odds = out["fold_enrichment"].to_numpy(float)
    z = norm.ppf(0.5 + level / 2)
    start = 0
    for i, fold in enumerate(out["fold"].astype(str)):
        if fold != "mean":
            continue
        k = np.arange(start, i)
        start = i + 1
        if not len(k) or not np.isclose(odds[i], odds[k].mean()):
            raise ValueError(
                f"row {i}: the mean row's folds of enrichment is not the mean of its folds"
            )
        se_mean = np.sqrt(np.sum((odds[k] * se_log[k]) ** 2)) / len(k)
        low[i], high[i] = (
            odds[i] * np.exp(-z * se_mean / odds[i]),
            odds[i] * np.exp(z * se_mean / odds[i]),
        )
    out["fold_enrichment_low"] = low
    out["fold_enrichment_high"] = high
    return out
