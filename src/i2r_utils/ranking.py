"""Ranking candidate genes and the top-k metrics of a set of held-out conditions.

Ranks are 1-based (1 = most likely) and ties keep the order of the candidate table.
``acc(k)`` is the fraction of held-out conditions whose true gene has rank <= k (Image2Reg's
``rank < k`` with 0-based ranks); the area :func:`topk_auc` is the mean of ``acc(K)`` over
K = 10..50 (the sum over the 41 values / 41), 30/N for a uniformly random ranking of N
candidates. The Image2Reg score :func:`image2reg_score` (the paper's 0.602 vs 0.311) is
``S = sum over K in {10, 20, 30, 40, 50} of (1/K) sum_{k=1..K} acc(k)``, 155/(2N) for a
uniformly random ranking of N >= 50 candidates (0.3112 at N = 249).

A held-out condition whose true gene is not a candidate (rank ``None``; the new-target
candidate protocol) is a miss at every k, and counts with rank N + 1 in the mean and median
rank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .kernels import squared_distances

__all__ = [
    "METRICS",
    "distances",
    "ranks_from_scores",
    "fuse_ranks",
    "ranking_table",
    "true_rank",
    "ranks_of",
    "topk_accuracy",
    "topk_auc",
    "SCORE_KS",
    "image2reg_score",
    "uniform_topk",
    "uniform_image2reg_score",
    "GENE_NORMS",
    "normalise_embeddings",
    "metric_row",
    "RANDOM_BASELINES",
    "MEAN_PREDICTORS",
    "summarize_results",
]

METRICS = ("euclidean", "cosine")
#: The K of the Image2Reg score.
SCORE_KS = (10, 20, 30, 40, 50)
#: Row normalisations of the candidate gene embeddings before the translation.
GENE_NORMS = ("none", "l2")


def normalise_embeddings(gene_emb: pd.DataFrame, how: str = "none") -> pd.DataFrame:
    """Candidate gene embeddings as the translation uses them.

    Parameters
    ----------
    gene_emb : pandas.DataFrame
        Embeddings, one row per gene.
    how : {"none", "l2"}
        ``"none"``: as they are; ``"l2"``: every row divided by its euclidean norm (as the
        original before translation; with unit rows, euclidean and cosine rank alike).

    Returns
    -------
    pandas.DataFrame
        The table (a copy when normalised; zero rows stay zero).
    """
    if how == "none":
        return gene_emb
    if how != "l2":
        raise ValueError(f"unknown gene normalisation {how!r}; use one of {list(GENE_NORMS)}")
    norm = np.linalg.norm(gene_emb.to_numpy(float), axis=1)
    return gene_emb.astype(float).div(np.where(norm > 0, norm, 1.0), axis=0)


def distances(preds: np.ndarray, candidates: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Distance of every prediction to every candidate.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, k)`` or ``(k,)`` predicted embeddings.
    candidates : numpy.ndarray
        ``(N, k)`` candidate embeddings.
    metric : {"euclidean", "cosine"}
        Distance (cosine distance is ``1 - cos``).

    Returns
    -------
    numpy.ndarray
        ``(m, N)`` distances.
    """
    preds = np.atleast_2d(np.asarray(preds, float))
    e = np.asarray(candidates, float)
    if metric == "euclidean":
        return np.sqrt(squared_distances(preds, e))
    if metric == "cosine":
        pn = np.linalg.norm(preds, axis=1)[:, None]
        en = np.linalg.norm(e, axis=1)[None]
        return 1 - preds @ e.T / (pn * en).clip(1e-12)
    raise ValueError(f"unknown metric {metric!r}; use 'euclidean' or 'cosine'")


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of scores (smaller = better) along the last axis; ties keep the order.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(..., n)`` scores.

    Returns
    -------
    numpy.ndarray
        Integer ranks of the same shape.
    """
    scores = np.asarray(scores, float)
    order = np.argsort(scores, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[-1] + 1), axis=-1)
    return ranks


def fuse_ranks(*views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average the rankings of several distance arrays; rank by the mean rank.

    Ties in the mean rank are broken by the first view's rank, then by order. One view
    gives that view's own ranking.

    Parameters
    ----------
    *views : numpy.ndarray
        ``(..., n)`` distances (smaller = more likely), one array per view.

    Returns
    -------
    mean_rank : numpy.ndarray
        ``(..., n)`` mean of the views' 1-based ranks.
    rank : numpy.ndarray
        ``(..., n)`` fused 1-based rank.
    """
    if not views:
        raise ValueError("no rankings to fuse")
    ranks = [ranks_from_scores(d) for d in views]
    total = np.sum(ranks, axis=0)  # integers, so the tie-break key below is exact
    n = total.shape[-1]
    return total / len(ranks), ranks_from_scores(total * (n + 1) + ranks[0])


def ranking_table(genes, distance, rank=None, **columns) -> pd.DataFrame:
    """Ranking of the candidates as a table sorted by rank.

    Parameters
    ----------
    genes : sequence of str
        Candidate genes.
    distance : numpy.ndarray
        ``(n,)`` distance (or score; smaller = more likely) of every candidate.
    rank : numpy.ndarray, optional
        ``(n,)`` 1-based ranks; default the ranks of ``distance`` (:func:`ranks_from_scores`).
    **columns
        Further ``(n,)`` columns, in candidate order.

    Returns
    -------
    pandas.DataFrame
        ``gene``, ``distance``, ``rank`` and ``columns``, sorted by rank (ties keep the
        table order), index 0..n-1.
    """
    distance = np.asarray(distance, float)
    rank = ranks_from_scores(distance) if rank is None else rank
    table = pd.DataFrame({"gene": genes, "distance": distance, "rank": rank, **columns})
    return table.sort_values("rank", kind="stable").reset_index(drop=True)


def true_rank(ranking: pd.DataFrame, gene: str) -> int:
    """Rank of ``gene`` (case-insensitive) in a :func:`ranking_table`.

    Parameters
    ----------
    ranking : pandas.DataFrame
        ``gene`` and ``rank`` columns.
    gene : str
        The true gene.

    Returns
    -------
    int
        Its 1-based rank.
    """
    hit = ranking.index[ranking["gene"].astype(str).str.upper() == gene.upper()]
    if len(hit) == 0:
        raise KeyError(f"gene {gene!r} is not among the {len(ranking)} candidates")
    return int(ranking.loc[hit[0], "rank"])


def ranks_of(preds, gene_emb: pd.DataFrame, genes, metric: str = "euclidean") -> np.ndarray:
    """Rank of the true gene for many predicted embeddings at once.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, k)`` predicted embeddings.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    genes : str or sequence of str
        The true gene of every prediction (one string: the same for all).
    metric : {"euclidean", "cosine"}
        Distance.

    Returns
    -------
    numpy.ndarray
        ``(m,)`` 1-based ranks (ties as :func:`ranks_from_scores`).
    """
    ranks = ranks_from_scores(distances(preds, gene_emb.to_numpy(float), metric))
    genes = [genes] * len(ranks) if isinstance(genes, str) else list(genes)
    pos = gene_emb.index.get_indexer([g.upper() for g in genes])
    if (pos < 0).any():
        missing = [g for g, p in zip(genes, pos, strict=True) if p < 0]
        raise KeyError(f"genes {missing} are not candidates")
    return ranks[np.arange(len(ranks)), pos]


def _ranks(ranks) -> np.ndarray:
    """Ranks as floats, ``None`` (true gene not a candidate) as NaN."""
    return np.array([np.nan if r is None else r for r in np.ravel(ranks)], float).reshape(
        np.shape(ranks)
    )


def topk_accuracy(ranks, ks) -> np.ndarray:
    """Top-k accuracy: the fraction of (1-based) ranks <= k, for each k.

    Parameters
    ----------
    ranks : array-like
        1-based ranks of the true genes; ``None`` or NaN (not a candidate) is a miss.
    ks : array-like
        Values of k.

    Returns
    -------
    numpy.ndarray
        Accuracy per k.
    """
    r = _ranks(ranks)[:, None]
    return (r <= np.asarray(ks)[None, :]).mean(0)


def topk_auc(ranks, k_min: int = 10, k_max: int = 50) -> float:
    """Area under the top-k accuracy curve summed over K = k_min..k_max, normalised.

    ``sum_{K=k_min}^{k_max} acc(K) / (k_max - k_min + 1)``, in [0, 1]; uniform random
    over N candidates gives ``(k_min + k_max) / (2 N)`` (30/N for 10..50).

    Parameters
    ----------
    ranks : array-like
        1-based ranks.
    k_min, k_max : int
        Range of K.

    Returns
    -------
    float
        The normalised area.
    """
    return float(topk_accuracy(ranks, np.arange(k_min, k_max + 1)).mean())


def image2reg_score(ranks, ks=SCORE_KS) -> float:
    """Image2Reg score: ``sum over K in ks of (1/K) sum_{k=1..K} acc(k)``.

    The paper's number (0.602 vs 0.311 random): the sum of five areas under the top-k curve,
    each the mean accuracy over k = 1..K. A uniformly random ranking of N >= max(ks)
    candidates gives ``sum (K + 1) / (2 N)``, 155/(2N) for K = 10..50.

    Parameters
    ----------
    ranks : array-like
        1-based ranks (``None``/NaN: a miss).
    ks : sequence of int
        The K of the areas.

    Returns
    -------
    float
        The score, in [0, len(ks)].
    """
    acc = topk_accuracy(ranks, np.arange(1, max(ks) + 1))
    return float(sum(acc[:k].mean() for k in ks))


def uniform_topk(ks, n_candidates, is_candidate=None) -> np.ndarray:
    """Top-k accuracy of a uniformly random ranking: ``min(k / N, 1)``.

    Parameters
    ----------
    ks : array-like
        Values of k.
    n_candidates : int or array-like
        N (one per condition: the mean over conditions is returned).
    is_candidate : array-like of bool, optional
        Per condition, whether its true gene is a candidate (a condition whose gene is not
        never finds it: accuracy 0); default all.

    Returns
    -------
    numpy.ndarray
        Accuracy per k.
    """
    n = np.atleast_1d(np.asarray(n_candidates, float))[:, None]
    acc = np.minimum(np.asarray(ks, float)[None] / n, 1.0)
    if is_candidate is not None:
        acc = acc * np.asarray(is_candidate, bool).reshape(-1, 1)
    return acc.mean(0)


def uniform_image2reg_score(n_candidates, is_candidate=None, ks=SCORE_KS) -> float:
    """Return the expected :func:`image2reg_score` of a uniform random ranking (155/(2N)).

    Parameters
    ----------
    n_candidates, is_candidate
        As :func:`uniform_topk`.
    ks : sequence of int
        The K of the areas.

    Returns
    -------
    float
        The closed-form score.
    """
    acc = uniform_topk(np.arange(1, max(ks) + 1), n_candidates, is_candidate)
    return float(sum(acc[:k].mean() for k in ks))


def metric_row(label: str, ranks, n_candidates) -> dict:
    """Metrics of one method over held-out conditions.

    Parameters
    ----------
    label : str
        Method name.
    ranks : array-like
        Rank of every condition's true gene (``None``/NaN: not a candidate, a miss at
        every k and rank N + 1 in the mean and median).
    n_candidates : int or array-like
        Candidates per condition (one value: the same for all).

    Returns
    -------
    dict
        ``method``, ``n_conditions``, ``mean_rank``, ``median_rank``, ``top1``, ``top5``,
        ``top10``, ``auc_k10_50``, ``image2reg_score``, ``n_candidates`` (mean),
        ``n_not_candidate`` (conditions whose true gene is not a candidate).
    """
    ranks = _ranks(ranks)
    n = np.broadcast_to(np.asarray(n_candidates, float), ranks.shape)
    filled = np.where(np.isnan(ranks), n + 1, ranks)
    acc = topk_accuracy(ranks, [1, 5, 10])
    return {
        "method": label,
        "n_conditions": len(ranks),
        "mean_rank": float(filled.mean()),
        "median_rank": float(np.median(filled)),
        **{f"top{k}": float(a) for k, a in zip((1, 5, 10), acc, strict=True)},
        "auc_k10_50": topk_auc(ranks),
        "image2reg_score": image2reg_score(ranks),
        "n_candidates": float(np.mean(n)),
        "n_not_candidate": int(np.isnan(ranks).sum()),
    }


def _baseline_row(label: str, ranks: np.ndarray, n) -> dict:
    """Metrics of a repeated random baseline (``ranks``: conditions x repeats).

    Mean and median rank and the top-1/5 accuracy pool all repeats; ``top10``,
    ``auc_k10_50`` and ``image2reg_score`` are the mean over repeats, with their 2.5 and
    97.5 percentiles (``_lo``, ``_hi``).
    """
    n = np.broadcast_to(np.asarray(n, float), len(ranks))
    row = metric_row(label, ranks.ravel(), np.repeat(n, ranks.shape[1]))
    row["n_conditions"] = len(ranks)
    row["n_not_candidate"] = int(np.isnan(ranks).all(1).sum())
    per = [metric_row("p", ranks[:, j], n) for j in range(ranks.shape[1])]
    for key in ("auc_k10_50", "image2reg_score", "top10"):
        vals = [p[key] for p in per]
        row[key] = float(np.mean(vals))
        row[f"{key}_lo"], row[f"{key}_hi"] = np.percentile(vals, [2.5, 97.5]).tolist()
    return row


def _method_label(result: dict) -> str:
    """Label of the method row: ``result.json``'s ``method_label``, else kernel and direction."""
    if result.get("method_label"):
        return f"method ({result['method_label']})"
    label = f"{result.get('kernel', 'ntk').upper()} KRR"
    direction = result.get("direction_requested", result.get("direction", "image_to_gene"))
    if direction != "image_to_gene":
        label = f"{direction.replace('_', '-')}, {label}"
    return f"method ({label})"


#: Repeated random baselines: result key -> (row label, curve label).
RANDOM_BASELINES = {
    "permutation_ranks": ("permutation baseline (training re-pairing)", "permutation"),
    "shuffle_ranks": ("full-shuffle baseline (original --random)", "full shuffle"),
}
#: Image-blind predictors: result key -> row label.
MEAN_PREDICTORS = {
    "mean_embedding_rank": "mean-embedding predictor (mean of the training genes)",
    "mean_candidates_rank": "mean-embedding predictor (mean of all candidates)",
}


def _uniform_row(n, is_candidate) -> dict:
    """Closed-form metrics of a uniformly random ranking (misses for non-candidates)."""
    n, cand = np.asarray(n, float), np.asarray(is_candidate, bool)
    acc = uniform_topk([1, 5, 10], n, cand)
    mean_rank = float(np.mean(np.where(cand, (n + 1) / 2, n + 1)))
    return {
        "method": "uniform random (k/N)",
        "n_conditions": len(n),
        "mean_rank": mean_rank,
        "median_rank": mean_rank,
        **{f"top{k}": float(a) for k, a in zip((1, 5, 10), acc, strict=True)},
        "auc_k10_50": float(uniform_topk(np.arange(10, 51), n, cand).mean()),
        "image2reg_score": uniform_image2reg_score(n, cand),
        "n_candidates": float(np.mean(n)),
        "n_not_candidate": int((~cand).sum()),
    }


def summarize_results(results: list[dict], kmax: int = 50) -> tuple[pd.DataFrame, dict]:
    """Metrics table and top-k curves of the method and every baseline.

    Parameters
    ----------
    results : list of dict
        ``result.json`` contents of the held-out conditions (``true_rank``, None when the
        true gene is not a candidate, ``n_candidates``; optional ``permutation_ranks``,
        ``shuffle_ranks``, ``mean_embedding_rank``, ``mean_candidates_rank``,
        ``comparison``, ``method_label``, ``true_gene_is_candidate``).
    kmax : int
        Largest k of the curves (>= 50).

    Returns
    -------
    metrics : pandas.DataFrame
        One row per method (:func:`metric_row` columns; for the random baselines the
        2.5/97.5 percentiles over repeats of ``auc_k10_50``, ``image2reg_score`` and
        ``top10``).
    curves : dict
        Label -> top-k accuracy over k = 1..kmax (a random baseline's entry is a
        ``(mean, low, high)`` tuple).
    """
    ks = np.arange(1, max(kmax, 50) + 1)
    n = [r["n_candidates"] for r in results]
    ranks = [r["true_rank"] for r in results]
    rows = [metric_row(_method_label(results[0]), ranks, n)]
    curves = {rows[0]["method"]: topk_accuracy(ranks, ks)}
    for key, (label, short) in RANDOM_BASELINES.items():
        if all(key in r for r in results):
            n_rep = min(len(r[key]) for r in results)
            mat = _ranks([r[key][:n_rep] for r in results])  # conditions x repeats
            rows.append(_baseline_row(label, mat, n))
            accs = np.stack([topk_accuracy(mat[:, j], ks) for j in range(n_rep)])
            lo, hi = np.percentile(accs, [2.5, 97.5], axis=0)
            curves[f"{short} ({n_rep}x, mean, 95% band)"] = (accs.mean(0), lo, hi)
    for key, label in MEAN_PREDICTORS.items():
        if all(key in r for r in results):
            rows.append(metric_row(label, [r[key] for r in results], n))
            curves[label] = topk_accuracy([r[key] for r in results], ks)
    rows.append(_uniform_row(n, [r.get("true_gene_is_candidate", True) for r in results]))
    for key in results[0]["comparison"] if all("comparison" in r for r in results) else ():
        rows.append(metric_row(f"compare {key}", [r["comparison"][key] for r in results], n))
    return pd.DataFrame(rows), curves
