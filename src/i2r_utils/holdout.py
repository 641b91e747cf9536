"""Leave-one-gene-out translation of per-gene profiles, with its baselines and the score S.

Every gene with a profile is held out in turn: the translation (:mod:`i2r_utils.directions`)
is fitted on the other genes' profiles and gene embeddings (ridges and widths chosen by
their own inner leave-one-out, never on the held-out gene) and every candidate gene is
ranked for the held-out profile. A held-out gene that is not a candidate (the interactome
was built without it and does not reach it) is a miss: it is in no top k, and its rank
counts as ``N + 1`` in the mean rank.

Baselines, per held-out gene:

* ``permutation``: the training profiles and genes are re-paired at random before the fit
  (the grid chosen again each time), in each direction evaluated;
* ``full shuffle`` (Image2Reg's ``--random``): the rows of the whole candidate embedding
  table and of the whole profile table (held-out gene included) are shuffled independently,
  labels left in place, then fitted and ranked image to gene;
* ``mean training embedding`` and ``mean of all candidates``: the prediction is the mean
  embedding of the training genes / of every candidate, whatever the profile;
* ``uniform``: a uniformly random ranking (``k / N``, expected rank ``(N + 1) / 2``).

Scores: ``acc(k)`` = fraction of held-out genes with rank <= k; the area
(:func:`i2r_utils.ranking.topk_auc`, mean of ``acc(K)`` over K = 10..50) and Image2Reg's
JUMP score ``S = sum_{K in 10, 20, .., 50} (1/K) sum_{k<=K} acc(k)`` (:func:`image2reg_score`;
uniform over N candidates: ``sum_K (K + 1) / (2N)``, 0.311 at N = 249).
:func:`image2reg_score`, :func:`full_shuffle_ranks` and the mean-of-all-candidates predictor
are local stand-ins until :mod:`i2r_utils.ranking` provides them.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from .directions import (
    DIRECTIONS,
    GeneToImage,
    ImageToGene,
    choose_direction,
    inner_direction_scores,
    rank_candidates,
)
from .io import InputError
from .ranking import (
    distances,
    fuse_ranks,
    image2reg_score,
    ranks_from_scores,
    topk_accuracy,
    topk_auc,
    true_rank,
)
from .ridge import permutations

__all__ = [
    "KS",
    "SCORE_KS",
    "image2reg_score",
    "uniform_curve",
    "full_shuffle_ranks",
    "holdout_gene",
    "summarise_holdout",
]

KS = np.arange(1, 51)  # k of the top-k curves
SCORE_KS = (10, 20, 30, 40, 50)  # K of the Image2Reg score


def _score_from_curve(acc: np.ndarray) -> float:
    """S from ``acc`` over k = 1..50 (``acc[k - 1]``)."""
    return float(sum(np.mean(acc[:k]) for k in SCORE_KS))


def uniform_curve(n_candidates, present=None, ks=KS) -> np.ndarray:
    """Top-k accuracy of a uniformly random ranking, misses never found.

    Parameters
    ----------
    n_candidates : array-like
        Candidates per held-out gene.
    present : array-like of bool, optional
        Whether each held-out gene is a candidate (default all).
    ks : array-like
        Values of k.

    Returns
    -------
    numpy.ndarray
        ``mean_i present_i min(k / N_i, 1)`` per k.
    """
    n = np.asarray(n_candidates, float)[:, None]
    p = np.ones(len(n)) if present is None else np.asarray(present, float)
    return (p[:, None] * np.minimum(np.asarray(ks, float)[None] / n, 1.0)).mean(0)


def _gene_rng(seed: int, gene: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(gene.encode())])


def full_shuffle_ranks(
    profiles: pd.DataFrame, gene_emb: pd.DataFrame, gene: str, train_genes, n_shuffle: int,
    seed: int = 0, model: ImageToGene | None = None, metric: str = "euclidean",
) -> np.ndarray:  # fmt: skip
    """Ranks of the held-out gene after Image2Reg's ``--random`` shuffle (image to gene).

    Parameters
    ----------
    profiles : pandas.DataFrame
        Profiles indexed by gene (the training genes and ``gene``).
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by gene (``gene`` and the training genes among them).
    gene : str
        Held-out gene.
    train_genes : sequence of str
        Training genes.
    n_shuffle : int
        Shuffles.
    seed : int
        Seed (combined with the gene's name).
    model : ImageToGene, optional
        Unfitted model whose settings are used (default ``ImageToGene()``).
    metric : {"euclidean", "cosine"}
        Distance.

    Returns
    -------
    numpy.ndarray
        ``(n_shuffle,)`` 1-based ranks.
    """
    rng = _gene_rng(seed, gene)
    conds = [*train_genes, gene]
    x = profiles.loc[conds].to_numpy(float)
    e = gene_emb.to_numpy(float)
    pos = gene_emb.index.get_indexer(conds)
    settings = model or ImageToGene()
    out = np.empty(n_shuffle, dtype=int)
    for i in range(n_shuffle):
        xs, es = x[rng.permutation(len(x))], e[rng.permutation(len(e))]
        fit = ImageToGene(settings.kernel, settings.depth, settings.alphas).fit(
            xs[:-1], es[pos[:-1]]
        )
        out[i] = ranks_from_scores(distances(fit.predict(xs[-1:]), es, metric)[0])[pos[-1]]
    return out


def _rank_in(gene_emb: pd.DataFrame, gene: str, dist: np.ndarray) -> int:
    return int(ranks_from_scores(dist)[gene_emb.index.get_loc(gene)])


def holdout_gene(
    profiles: pd.DataFrame, gene_emb: pd.DataFrame, gene: str, train_genes,
    directions=("image_to_gene", "two_way"), model: ImageToGene | None = None,
    metric: str = "euclidean", n_permutations: int = 20, n_shuffle: int = 10, seed: int = 0,
    permuted=("image_to_gene",),
) -> dict:  # fmt: skip
    """Hold out one gene: translate its profile, rank every candidate, and the baselines.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Per-gene profiles indexed by upper-case gene.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene (this fold's interactome).
    gene : str
        Held-out gene (must have a profile).
    train_genes : iterable of str
        Genes allowed for training; those without a profile or not among the candidates,
        and the held-out gene, are left out.
    directions : sequence of str
        Of ``image_to_gene``, ``gene_to_image``, ``two_way`` and ``auto`` (the best of the
        three by inner leave-one-out on the training genes; slow: it refits both directions
        once per training gene).
    model : ImageToGene, optional
        Unfitted image-to-gene settings (kernel, depth, ridge grid); default i2r's.
    metric : {"euclidean", "cosine"}
        Distance of the image-to-gene direction.
    n_permutations, n_shuffle : int
        Permutation and full-shuffle repeats (0: none).
    seed : int
        Seed of both.
    permuted : sequence of str
        Directions evaluated that also get the permutation baseline (the gene-to-image
        one refits a profile-sized ridge grid per permutation: slow with long profiles).

    Returns
    -------
    dict
        ``gene``, ``n_candidates``, ``in_candidates``, ``n_train``, ``rank_<direction>``
        (NaN for a miss), ``auto_direction`` (with ``auto``), ``rank_mean_training``,
        ``rank_mean_candidates``, ``perm_<direction>`` and ``full_shuffle`` (lists).
    """
    unknown = set(directions) - {*DIRECTIONS, "auto"}
    if unknown:
        raise InputError(f"unknown direction(s) {sorted(unknown)}; use {[*DIRECTIONS, 'auto']}")
    gene = gene.upper()
    train = [g for g in dict.fromkeys(train_genes) if g != gene]
    train = [g for g in train if g in profiles.index and g in gene_emb.index]
    n = len(gene_emb)
    rec = {"gene": gene, "n_candidates": n, "in_candidates": gene in gene_emb.index}
    rec["n_train"] = len(train)
    fixed = [d for d in directions if d != "auto"]
    keys = [*fixed, *(["auto"] if "auto" in directions else []), "mean_training"]
    if not rec["in_candidates"]:
        rec.update({f"rank_{k}": np.nan for k in [*keys, "mean_candidates"]})
        return rec
    if len(train) < 2:
        raise InputError(f"{gene}: fewer than 2 training genes with a profile and an embedding.")
    x, y = profiles.loc[train].to_numpy(float), gene_emb.loc[train].to_numpy(float)
    x_test = profiles.loc[[gene]].to_numpy(float)
    settings = model or ImageToGene()
    fwd = ImageToGene(settings.kernel, settings.depth, settings.alphas).fit(x, y)
    rev = GeneToImage().fit(gene_emb, train, x)
    if "auto" in directions:
        scores = inner_direction_scores(x, y, train, gene_emb, settings.kernel, settings.depth,
                                        settings.alphas, metric)  # fmt: skip
        rec["auto_direction"] = choose_direction(scores)
    used = list(dict.fromkeys([*fixed, *([rec["auto_direction"]] if "auto" in directions else [])]))
    for d in used:
        rec[f"rank_{d}"] = true_rank(rank_candidates(x_test, gene_emb, d, fwd, rev, metric), gene)
    if "auto" in directions:
        rec["rank_auto"] = rec[f"rank_{rec['auto_direction']}"]
    e = gene_emb.to_numpy(float)
    rec["rank_mean_training"] = _rank_in(gene_emb, gene, distances(y.mean(0), e, metric)[0])
    rec["rank_mean_candidates"] = _rank_in(gene_emb, gene, distances(e.mean(0), e, metric)[0])
    if n_permutations > 0:
        perms = permutations(len(train), n_permutations, seed)
        views = {
            "image_to_gene": lambda: fwd.permuted_distances(x_test, gene_emb, perms, metric),
            "gene_to_image": lambda: rev.permuted_distances(x_test, perms, gene_emb),
        }
        done, pos = {}, gene_emb.index.get_loc(gene)
        for d in [d for d in used if d in permuted or (d == rec.get("auto_direction"))]:
            parts = [v for v in views if d in (v, "two_way")]
            for v in parts:
                done.setdefault(v, views[v]())
            rec[f"perm_{d}"] = fuse_ranks(*(done[v] for v in parts))[1][:, pos].tolist()
        if "auto" in directions:
            rec["perm_auto"] = rec.pop(f"perm_{rec['auto_direction']}")
            if rec["auto_direction"] in permuted:
                rec[f"perm_{rec['auto_direction']}"] = rec["perm_auto"]
    if n_shuffle > 0:
        rec["full_shuffle"] = full_shuffle_ranks(
            profiles, gene_emb, gene, train, n_shuffle, seed, settings, metric
        ).tolist()
    return rec


def _row(label: str, ranks, n, curve=None) -> dict:
    """One summary row; ``curve`` overrides the top-k curve (uniform)."""
    ranks = np.asarray(ranks, float)
    n = np.asarray(n, float)
    filled = np.where(np.isnan(ranks), n + 1, ranks)
    acc = topk_accuracy(ranks, KS) if curve is None else curve
    return {
        "method": label,
        "n_genes": len(ranks),
        "n_missed": int(np.isnan(ranks).sum()),
        "top1": float(acc[0]),
        "top5": float(acc[4]),
        "top10": float(acc[9]),
        "mean_rank": float(filled.mean()),
        "median_rank": float(np.median(filled)),
        "area_k10_50": float(acc[9:50].mean()) if curve is not None else topk_auc(ranks),
        "score_S": _score_from_curve(acc),
        "n_candidates": float(n.mean()),
    }


def _repeat_rows(label: str, table: pd.DataFrame, col: str) -> tuple[dict, tuple]:
    """Pooled row of a repeated baseline with the 2.5/97.5 % band of S over repeats."""
    found = table["in_candidates"].to_numpy(bool)
    n_rep = min(len(r) for r, f in zip(table[col], found, strict=True) if f) if found.any() else 0
    ranks = np.full((len(table), n_rep), np.nan)
    for i in np.flatnonzero(found):
        ranks[i] = table[col].iloc[i][:n_rep]
    n = table["n_candidates"].to_numpy(float)
    row = _row(f"{label} ({n_rep}x)", ranks.ravel(), np.repeat(n, n_rep))
    row["n_genes"], row["n_missed"] = len(table), int((~found).sum())
    per = [image2reg_score(ranks[:, j]) for j in range(n_rep)]
    row["score_S_lo"], row["score_S_hi"] = np.percentile(per, [2.5, 97.5]).tolist()
    accs = np.stack([topk_accuracy(ranks[:, j], KS) for j in range(n_rep)])
    return row, (accs.mean(0), *np.percentile(accs, [2.5, 97.5], axis=0))


def summarise_holdout(records: list[dict] | pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Metrics of the translation and every baseline over a set of held-out genes.

    Parameters
    ----------
    records : list of dict or pandas.DataFrame
        :func:`holdout_gene` results (all with the same directions and repeats).

    Returns
    -------
    metrics : pandas.DataFrame
        One row per method: ``n_genes``, ``n_missed``, ``top1``, ``top5``, ``top10``,
        ``mean_rank``, ``median_rank`` (a miss counts ``N + 1``), ``area_k10_50``,
        ``score_S`` (repeated baselines: pooled, with ``score_S_lo``/``_hi`` over repeats).
    curves : dict
        Label -> top-k accuracy over k = 1..50 (repeated baselines: ``(mean, lo, hi)``).
    """
    table = pd.DataFrame(records).reset_index(drop=True)
    if table.empty:
        raise InputError("no held-out genes to summarise.")
    n = table["n_candidates"].to_numpy(float)
    rows, curves = [], {}
    methods = [c[5:] for c in table.columns if c.startswith("rank_")]
    names = {
        "mean_training": "mean training embedding",
        "mean_candidates": "mean of all candidates",
    }
    for m in methods:
        label = names.get(m, f"i2r {m.replace('_', ' ')}")
        rows.append(_row(label, table[f"rank_{m}"], n))
        curves[label] = topk_accuracy(table[f"rank_{m}"].to_numpy(float), KS)
    repeated = [c for c in table.columns if c.startswith("perm_")] + ["full_shuffle"]
    for col in repeated if table["in_candidates"].any() else []:
        if col in table.columns:
            what = f"permutation, {col[5:].replace('_', ' ')}" if col != "full_shuffle" else None
            row, band = _repeat_rows(what or "full shuffle, image to gene", table, col)
            rows.append(row)
            curves[row["method"]] = band
    uni = uniform_curve(n, table["in_candidates"].to_numpy(bool))
    expected = np.where(table["in_candidates"], (n + 1) / 2, np.nan)
    row = _row("uniform random (k/N)", expected, n, curve=uni)
    rows.append(row)
    curves[row["method"]] = uni
    return pd.DataFrame(rows), curves
