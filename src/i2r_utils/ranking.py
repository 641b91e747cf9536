"""Ranking candidate genes and the top-k metrics of a set of held-out conditions.

Ranks are 1-based (1 = most likely) and ties keep the order of the candidate table.
``acc(k)`` is the fraction of held-out conditions whose true gene has rank <= k (Image2Reg's
``rank < k`` with 0-based ranks); the area :func:`topk_auc` is the mean of ``acc(K)`` over
K = 10..50 (the sum over the 41 values / 41), 30/N for a uniformly random ranking of N
candidates.
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
    "uniform_topk",
    "metric_row",
    "summarize_results",
]

METRICS = ("euclidean", "cosine")


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


def topk_accuracy(ranks, ks) -> np.ndarray:
    """Top-k accuracy: the fraction of (1-based) ranks <= k, for each k.

    Parameters
    ----------
    ranks : array-like
        1-based ranks of the true genes.
    ks : array-like
        Values of k.

    Returns
    -------
    numpy.ndarray
        Accuracy per k.
    """
    r = np.asarray(ranks)[:, None]
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


def uniform_topk(ks, n_candidates) -> np.ndarray:
    """Top-k accuracy of a uniformly random ranking: ``min(k / N, 1)``.

    Parameters
    ----------
    ks : array-like
        Values of k.
    n_candidates : int or array-like
        N (one per condition: the mean over conditions is returned).

    Returns
    -------
    numpy.ndarray
        Accuracy per k.
    """
    n = np.atleast_1d(np.asarray(n_candidates, float))[:, None]
    return np.minimum(np.asarray(ks, float)[None] / n, 1.0).mean(0)


def metric_row(label: str, ranks, n_candidates) -> dict:
    """Metrics of one method over held-out conditions.

    Parameters
    ----------
    label : str
        Method name.
    ranks : array-like
        Rank of every condition's true gene.
    n_candidates : array-like
        Candidates per condition.

    Returns
    -------
    dict
        ``method``, ``n_conditions``, ``mean_rank``, ``median_rank``, ``top1``, ``top5``,
        ``top10``, ``auc_k10_50``, ``n_candidates`` (mean).
    """
    ranks = np.asarray(ranks, float)
    acc = topk_accuracy(ranks, [1, 5, 10])
    return {
        "method": label,
        "n_conditions": len(ranks),
        "mean_rank": float(ranks.mean()),
        "median_rank": float(np.median(ranks)),
        **{f"top{k}": float(a) for k, a in zip((1, 5, 10), acc, strict=True)},
        "auc_k10_50": topk_auc(ranks),
        "n_candidates": float(np.mean(n_candidates)),
    }


def _permutation_row(perm: np.ndarray, n) -> dict:
    """Metrics of the permutation baseline (``perm``: conditions x permutations).

    Mean rank and the top-1/5 accuracy pool all permutations; ``top10`` and ``auc_k10_50``
    are the mean over permutations, with their 2.5 and 97.5 percentiles (``_lo``, ``_hi``).
    """
    per = [metric_row("p", perm[:, j], n) for j in range(perm.shape[1])]
    row = metric_row("permutation baseline", perm.ravel(), n)
    row["n_conditions"] = len(perm)
    for key in ("auc_k10_50", "top10"):
        vals = [p[key] for p in per]
        row[key] = float(np.mean(vals))
        row[f"{key}_lo"], row[f"{key}_hi"] = np.percentile(vals, [2.5, 97.5]).tolist()
    return row


def summarize_results(results: list[dict], kmax: int = 50) -> tuple[pd.DataFrame, dict]:
    """Metrics table and top-k curves of the method and every baseline.

    Parameters
    ----------
    results : list of dict
        ``result.json`` contents of the held-out conditions (``true_rank``,
        ``n_candidates``; optional ``permutation_ranks``, ``mean_embedding_rank``,
        ``comparison``, ``kernel``, ``direction_requested``).
    kmax : int
        Largest k of the curves (>= 50).

    Returns
    -------
    metrics : pandas.DataFrame
        One row per method: ``mean_rank``, ``median_rank``, ``top1``, ``top5``,
        ``top10``, ``auc_k10_50`` (and for the permutation baseline the 2.5/97.5
        percentile over permutations of ``auc_k10_50`` and ``top10``).
    curves : dict
        Label -> top-k accuracy over k = 1..kmax (the permutation entry is a
        ``(mean, low, high)`` tuple).
    """
    ks = np.arange(1, max(kmax, 50) + 1)
    n = [r["n_candidates"] for r in results]
    ranks = [r["true_rank"] for r in results]
    kern = results[0].get("kernel", "ntk").upper()
    direction = results[0].get("direction_requested", results[0].get("direction", "image_to_gene"))
    label = f"{kern} KRR"
    if direction != "image_to_gene":
        label = f"{direction.replace('_', '-')}, {label}"
    rows = [metric_row(f"method ({label})", ranks, n)]
    curves = {rows[0]["method"]: topk_accuracy(ranks, ks)}
    if all("permutation_ranks" in r for r in results):
        n_perm = min(len(r["permutation_ranks"]) for r in results)
        perm = np.array([r["permutation_ranks"][:n_perm] for r in results])  # cond x perm
        rows.append(_permutation_row(perm, n))
        accs = np.stack([topk_accuracy(perm[:, j], ks) for j in range(n_perm)])
        lo, hi = np.percentile(accs, [2.5, 97.5], axis=0)
        curves[f"permutation ({n_perm}x, mean, 95% band)"] = (accs.mean(0), lo, hi)
    me = [r["mean_embedding_rank"] for r in results if "mean_embedding_rank" in r]
    if len(me) == len(results):
        rows.append(metric_row("mean-embedding predictor", me, n))
        curves["mean-embedding predictor"] = topk_accuracy(me, ks)
    uniform = (np.mean([(m + 1) / 2 for m in n]), uniform_topk([1, 5, 10], n))
    rows.append(
        {
            "method": "uniform random (k/N)",
            "n_conditions": len(results),
            "mean_rank": float(uniform[0]),
            "median_rank": float(uniform[0]),
            **{f"top{k}": float(a) for k, a in zip((1, 5, 10), uniform[1], strict=True)},
            "auc_k10_50": float(uniform_topk(np.arange(10, 51), n).mean()),
            "n_candidates": float(np.mean(n)),
        }
    )
    for key in results[0]["comparison"] if all("comparison" in r for r in results) else ():
        rows.append(metric_row(f"compare {key}", [r["comparison"][key] for r in results], n))
    return pd.DataFrame(rows), curves
