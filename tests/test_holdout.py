"""Leave-one-gene-out translation of per-gene profiles, its baselines and the score S."""

import numpy as np
import pandas as pd
import pytest

from i2r_utils.holdout import (
    KS,
    full_shuffle_ranks,
    holdout_gene,
    image2reg_score,
    summarise_holdout,
    uniform_curve,
)
from i2r_utils.io import InputError


def _toy(n_genes=60, n_cand=90, dim=6, noise=0.05, seed=0):
    """Candidates with unit embeddings; profiles of the first genes are a map of them."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n_cand, dim))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    genes = [f"G{i:03d}" for i in range(n_cand)]
    emb = pd.DataFrame(e, index=pd.Index(genes, name="gene"))
    w = rng.normal(size=(dim, 40))
    x = np.tanh(e[:n_genes] @ w) + noise * rng.normal(size=(n_genes, 40))
    return pd.DataFrame(x, index=genes[:n_genes]), emb


def test_score_matches_its_definition_and_the_uniform_value():
    ranks = np.array([1, 3, 12, 49, np.nan])
    acc = [(np.nan_to_num(ranks, nan=1e9) <= k).mean() for k in range(1, 51)]
    expected = sum(np.mean(acc[:k]) for k in (10, 20, 30, 40, 50))
    assert image2reg_score(ranks) == pytest.approx(expected)
    uni = uniform_curve([249] * 3)
    s = sum(np.mean(uni[:k]) for k in (10, 20, 30, 40, 50))
    assert s == pytest.approx(155 / 498)  # Image2Reg's 0.311
    assert uniform_curve([100, 100], [True, False])[9] == pytest.approx(0.05)


def test_translation_finds_genes_when_profiles_follow_the_embedding():
    prof, emb = _toy()
    recs = [
        holdout_gene(prof, emb, g, prof.index, n_permutations=10, n_shuffle=3)
        for g in prof.index[:12]
    ]
    metrics, curves = summarise_holdout(recs)
    m = metrics.set_index("method")
    s_i2g = m.loc["i2r image to gene", "score_S"]
    assert s_i2g > 2 * m.loc["uniform random (k/N)", "score_S"]
    assert s_i2g > m.loc["permutation, image to gene (10x)", "score_S_hi"]
    assert m.loc["i2r image to gene", "mean_rank"] < m.loc["mean of all candidates", "mean_rank"]
    assert len(curves["i2r image to gene"]) == len(KS)
    assert all(len(r["perm_image_to_gene"]) == 10 and len(r["full_shuffle"]) == 3 for r in recs)
    assert all("perm_two_way" not in r for r in recs)  # only image to gene is permuted


def test_no_signal_stays_near_chance():
    prof, emb = _toy(seed=1)
    shuffled = prof.sample(frac=1, random_state=0).set_axis(prof.index)  # profiles re-labelled
    recs = [holdout_gene(shuffled, emb, g, prof.index, n_permutations=0, n_shuffle=0)
            for g in prof.index[:12]]  # fmt: skip
    m = summarise_holdout(recs)[0].set_index("method")
    assert m.loc["i2r image to gene", "top1"] <= 2 / 12


def test_a_gene_that_is_not_a_candidate_is_a_miss():
    prof, emb = _toy()
    without = emb.drop(index="G000")
    rec = holdout_gene(prof, without, "G000", prof.index, n_permutations=5, n_shuffle=2)
    assert rec["in_candidates"] is False and np.isnan(rec["rank_image_to_gene"])
    hit = holdout_gene(prof, emb, "G001", prof.index, n_permutations=5, n_shuffle=2)
    metrics, _ = summarise_holdout([rec, hit])
    m = metrics.set_index("method")
    assert (metrics["n_missed"] == 1).all()
    n = len(without)
    assert m.loc["i2r image to gene", "mean_rank"] == pytest.approx(
        ((n + 1) + hit["rank_image_to_gene"]) / 2
    )
    assert m.loc["uniform random (k/N)", "top10"] == pytest.approx(10 / len(emb) / 2)


def test_full_shuffle_is_reproducible_and_directions_are_checked():
    prof, emb = _toy()
    a = full_shuffle_ranks(prof, emb, "G005", list(prof.index[:20]), 4, seed=3)
    b = full_shuffle_ranks(prof, emb, "G005", list(prof.index[:20]), 4, seed=3)
    assert (a == b).all() and ((a >= 1) & (a <= len(emb))).all()
    rec = holdout_gene(prof, emb, "G005", prof.index[:20], directions=("gene_to_image", "auto"),
                       n_permutations=2, n_shuffle=0)  # fmt: skip
    assert rec["auto_direction"] in ("image_to_gene", "gene_to_image", "two_way")
    assert rec["rank_auto"] == rec[f"rank_{rec['auto_direction']}"] and "perm_auto" in rec
    with pytest.raises(InputError, match="unknown direction"):
        holdout_gene(prof, emb, "G005", prof.index, directions=("sideways",))
