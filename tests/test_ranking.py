import numpy as np
import pandas as pd
import pytest

from i2r_utils.ranking import (
    distances,
    fuse_ranks,
    image2reg_score,
    metric_row,
    normalise_embeddings,
    ranking_table,
    ranks_from_scores,
    ranks_of,
    summarize_results,
    topk_accuracy,
    topk_auc,
    true_rank,
    uniform_image2reg_score,
    uniform_topk,
)


def _rank(pred, emb, metric="euclidean"):
    return ranking_table(emb.index, distances(pred, emb.to_numpy(float), metric)[0])


def test_ranks_and_fusion_by_hand():
    assert ranks_from_scores(np.array([0.3, 0.1, 0.3, 0.2])).tolist() == [3, 1, 4, 2]
    # views: a ranks [1, 2, 3, 4], b ranks [4, 1, 2, 3] -> mean [2.5, 1.5, 2.5, 3.5]
    a, b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([9.0, 1.0, 2.0, 3.0])
    mean_rank, rank = fuse_ranks(a, b)
    assert mean_rank.tolist() == [2.5, 1.5, 2.5, 3.5]
    assert rank.tolist() == [2, 1, 3, 4]  # the tie at 2.5 goes to the first view's better rank
    # row-wise on a stack, and one view is that view's own ranking
    _, stacked = fuse_ranks(np.stack([a, a[::-1]]), np.stack([b, b]))
    assert stacked[0].tolist() == rank.tolist()
    assert fuse_ranks(b)[1].tolist() == ranks_from_scores(b).tolist()
    with pytest.raises(ValueError):
        fuse_ranks()


def test_ranking_helpers_and_metrics():
    emb = pd.DataFrame([[1, 0], [0, 1], [0.6, 0.8]], index=["A", "B", "C"])
    r = _rank(np.array([0.9, 0.1]), emb)
    assert list(r.gene) == ["A", "C", "B"] and true_rank(r, "c") == 2
    assert list(r["rank"]) == [1, 2, 3] and r["distance"].is_monotonic_increasing
    assert list(_rank(np.array([1.0, 1.0]), emb, "cosine").gene)[0] == "C"
    ties = ranking_table(["x", "y", "z"], np.array([1.0, 0.0, 1.0]))
    assert list(ties.gene) == ["y", "x", "z"]  # ties keep the table order
    preds = np.array([[0.9, 0.1], [1.0, 1.0], [0.0, 2.0]])
    assert list(ranks_of(preds, emb, ["C", "C", "b"])) == [2, 1, 1]
    with pytest.raises(KeyError):
        true_rank(r, "Z")
    with pytest.raises(KeyError, match="not candidates"):
        ranks_of(preds, emb, "Z")
    with pytest.raises(ValueError, match="metric"):
        distances(np.array([1.0, 0.0]), emb.to_numpy(float), "manhattan")
    assert np.allclose(topk_accuracy([1, 2, 5], [1, 2, 5]), [1 / 3, 2 / 3, 1])
    n = 200
    assert topk_auc(np.arange(1, n + 1)) == pytest.approx(30 / n)  # uniform ranks
    assert topk_auc([1, 3, 9]) == 1.0 and topk_auc([60, 70]) == 0.0
    assert np.allclose(uniform_topk([10, 300], n), [0.05, 1.0])


def test_unit_norm_candidates_rank_the_same_by_euclidean_and_cosine():
    rng = np.random.default_rng(3)
    emb = pd.DataFrame(rng.normal(size=(30, 5)), index=[f"G{i}" for i in range(30)])
    emb = emb.div(np.linalg.norm(emb, axis=1), axis=0)
    p = rng.normal(size=5) * 0.3
    assert list(_rank(p, emb).gene) == list(_rank(p, emb, "cosine").gene)


def test_summary_of_the_method_and_every_baseline():
    rng = np.random.default_rng(0)
    results = [
        {
            "true_rank": int(rng.integers(1, 5)),
            "n_candidates": 60,
            "kernel": "ntk",
            "direction_requested": "image_to_gene",
            "permutation_ranks": rng.integers(1, 61, 20).tolist(),
            "shuffle_ranks": rng.integers(1, 61, 20).tolist(),
            "mean_embedding_rank": int(rng.integers(1, 61)),
            "mean_candidates_rank": int(rng.integers(1, 61)),
            "comparison": {"linear/euclidean": 3, "two_way": 1},
        }
        for _ in range(6)
    ]
    metrics, curves = summarize_results(results)
    assert list(metrics.method) == [
        "method (NTK KRR)", "permutation baseline (training re-pairing)",
        "full-shuffle baseline (original --random)",
        "mean-embedding predictor (mean of the training genes)",
        "mean-embedding predictor (mean of all candidates)",
        "uniform random (k/N)", "compare linear/euclidean", "compare two_way",
    ]  # fmt: skip
    method, perm, uniform = metrics.iloc[0], metrics.iloc[1], metrics.iloc[5]
    assert method.top5 == 1.0 and method.auc_k10_50 == 1.0 and perm.n_conditions == 6
    assert perm.auc_k10_50_lo <= perm.auc_k10_50 <= perm.auc_k10_50_hi
    per = [topk_auc(np.array([r["permutation_ranks"][j] for r in results])) for j in range(20)]
    assert perm.auc_k10_50 == pytest.approx(np.mean(per))
    assert uniform.auc_k10_50 == pytest.approx(np.mean(np.minimum(np.arange(10, 51) / 60, 1)))
    assert uniform.mean_rank == 30.5
    # N = 60 >= 50: the uniform Image2Reg score is 155 / (2N)
    assert uniform.image2reg_score == pytest.approx(155 / 120)
    shuffle = metrics.iloc[2]
    per = [image2reg_score([r["shuffle_ranks"][j] for r in results]) for j in range(20)]
    assert shuffle.image2reg_score == pytest.approx(np.mean(per))
    assert shuffle.image2reg_score_lo <= shuffle.image2reg_score <= shuffle.image2reg_score_hi
    assert metrics.iloc[4].mean_rank == np.mean([r["mean_candidates_rank"] for r in results])
    assert all(len(v if not isinstance(v, tuple) else v[0]) == 50 for v in curves.values())
    two = summarize_results([{**r, "direction_requested": "two_way"} for r in results])[0]
    assert two.method[0] == "method (two-way, NTK KRR)"
    named = summarize_results([{**r, "method_label": "image2reg translation: x"} for r in results])
    assert named[0].method[0] == "method (image2reg translation: x)"


def test_image2reg_score_of_a_uniform_ranking_is_155_over_2n():
    for n in (50, 249, 1000):
        ranks = np.arange(1, n + 1)  # every rank once: acc(k) = k / N exactly
        assert image2reg_score(ranks) == pytest.approx(155 / (2 * n), rel=1e-12)
        assert uniform_image2reg_score(n) == pytest.approx(155 / (2 * n), rel=1e-12)
    assert round(155 / 498, 4) == 0.3112 and image2reg_score(np.arange(1, 250)) == pytest.approx(
        0.31124, abs=1e-5
    )  # the paper's 0.311 at N = 249
    # by hand: ranks 1 and 20 -> acc(k) = 1/2 for k < 20, 1 from k = 20 on
    by_hand = (
        0.5
        + (19 * 0.5 + 1) / 20
        + (19 * 0.5 + 11) / 30
        + (19 * 0.5 + 21) / 40
        + (19 * 0.5 + 31) / 50
    )
    assert image2reg_score([1, 20]) == pytest.approx(by_hand)
    assert image2reg_score([1, 1]) == 5.0 and image2reg_score([51, 300]) == 0.0
    # fewer candidates than 50: acc saturates at 1 from k = N
    assert uniform_image2reg_score(20) == pytest.approx(image2reg_score(np.arange(1, 21)))


def test_a_true_gene_that_is_not_a_candidate_is_a_miss_at_every_k():
    row = metric_row("m", [1, None, 3], [10, 10, 10])
    assert row["top1"] == pytest.approx(1 / 3) and row["top5"] == pytest.approx(2 / 3)
    assert row["top10"] == pytest.approx(2 / 3)  # the miss stays a miss even at k >= N
    assert row["mean_rank"] == pytest.approx((1 + 11 + 3) / 3) and row["median_rank"] == 3
    assert row["n_not_candidate"] == 1
    assert row["image2reg_score"] == pytest.approx(2 / 3 * image2reg_score([1, 3]))
    assert topk_accuracy([np.nan, 2], [50]).tolist() == [0.5]
    results = [
        {"true_rank": 2, "n_candidates": 100, "permutation_ranks": [5, 60],
         "mean_embedding_rank": 7, "comparison": {"two_way": 3}},
        {"true_rank": None, "n_candidates": 99, "true_gene_is_candidate": False,
         "permutation_ranks": [None, None], "mean_embedding_rank": None,
         "comparison": {"two_way": None}},
    ]  # fmt: skip
    metrics = summarize_results(results)[0].set_index("method")
    assert metrics.loc["method (NTK KRR)", "mean_rank"] == (2 + 100) / 2
    assert metrics.loc["method (NTK KRR)", "top10"] == 0.5
    perm = metrics.loc["permutation baseline (training re-pairing)"]
    assert perm.mean_rank == (5 + 60 + 100 + 100) / 4 and perm.n_not_candidate == 1
    uniform = metrics.loc["uniform random (k/N)"]
    assert uniform.mean_rank == (101 / 2 + 100) / 2 and uniform.top10 == pytest.approx(0.05)
    assert uniform.image2reg_score == pytest.approx(155 / 200 / 2)
    assert metrics.loc["compare two_way", "top5"] == 0.5


def test_normalise_embeddings():
    emb = pd.DataFrame([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], index=["A", "B", "C"])
    assert normalise_embeddings(emb) is emb
    unit = normalise_embeddings(emb, "l2")
    assert np.allclose(unit.to_numpy(), [[0.6, 0.8], [0, 0], [1, 0]]) and list(unit.index) == list(
        "ABC"
    )
    with pytest.raises(ValueError, match="gene normalisation"):
        normalise_embeddings(emb, "max")
