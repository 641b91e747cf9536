import numpy as np
import pandas as pd
import pytest

from i2r_utils.translation import (
    KernelRidge,
    ntk_relu,
    permutation_ranks,
    rank_genes,
    topk_accuracy,
    training_pairs,
    true_rank,
)  # fmt: skip


def test_ntk_against_closed_form_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))
    k = ntk_relu(x, depth=3)
    assert np.allclose(k, k.T) and np.all(np.linalg.eigvalsh(k) > -1e-9)
    # diagonal: (depth + 1) * |x|^2 for the He-scaled ReLU NTK
    assert np.allclose(np.diag(k), 4 * (x**2).sum(1))
    # one hidden layer: compare the NNGP part with a wide random ReLU layer
    from numpy.testing import assert_allclose

    w = rng.standard_normal((5, 200000)) * np.sqrt(2.0)
    feats = np.maximum(x @ w, 0)
    nngp = feats @ feats.T / w.shape[1]
    s0 = x @ x.T
    cos = np.clip(s0 / np.sqrt(np.outer(np.diag(s0), np.diag(s0))), -1, 1)
    t = np.arccos(cos)
    closed = np.sqrt(np.outer(np.diag(s0), np.diag(s0))) / np.pi * (np.sin(t) + (np.pi - t) * cos)
    assert_allclose(nngp, closed, rtol=0.05, atol=0.05)
    assert_allclose(ntk_relu(x, depth=1), s0 * (np.pi - t) / np.pi + closed, atol=1e-9)


def test_kernel_ridge_interpolates_and_matches_sklearn():
    from sklearn.kernel_ridge import KernelRidge as SkKRR

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    ours = KernelRidge(alpha=0.5, kernel="rbf", gamma=0.3).fit(x, y).predict(x[:4])
    ref = SkKRR(alpha=0.5, kernel="rbf", gamma=0.3).fit(x, y).predict(x[:4])
    assert np.allclose(ours, ref)
    fit = KernelRidge(alpha=1e-8).fit(x, y).predict(x)
    assert np.allclose(fit, y, atol=1e-4)
    with pytest.raises(ValueError, match="unknown kernel"):
        KernelRidge(kernel="poly").fit(x, y)


def test_ranking_rank_and_topk():
    emb = pd.DataFrame([[1, 0], [0, 1], [0.7, 0.7]], index=["A", "B", "C"])
    r = rank_genes(np.array([0.9, 0.1]), emb)
    assert list(r.gene) == ["A", "C", "B"] and true_rank(r, "c") == 2
    assert list(rank_genes(np.array([1.0, 1.0]), emb, "cosine").gene)[0] == "C"
    assert np.allclose(topk_accuracy([1, 2, 5], [1, 2, 5]), [1 / 3, 2 / 3, 1])
    with pytest.raises(KeyError):
        true_rank(r, "Z")


def test_learnable_mapping_beats_permutation():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(60)]
    emb = pd.DataFrame(rng.normal(size=(60, 4)), index=genes)
    emb = emb.div(np.linalg.norm(emb, axis=1), axis=0)
    mix = rng.normal(size=(4, 6))
    conds = genes[:30]
    prof = pd.DataFrame(emb.loc[conds].to_numpy() @ mix + 0.05 * rng.normal(size=(30, 6)))
    prof.insert(0, "Metadata_Condition", conds)
    prof = pd.concat([prof, pd.DataFrame([["EMPTY", *np.zeros(6)]], columns=prof.columns)])
    ranks, perm = [], []
    for held in conds[:10]:
        xt, yt, xe, names = training_pairs(prof, emb, held)
        assert held not in names and "EMPTY" not in names and len(names) == 29
        pred = KernelRidge(alpha=0.01, kernel="linear").fit(xt, yt).predict(xe)[0]
        ranks.append(true_rank(rank_genes(pred, emb), held))
        perm.append(
            permutation_ranks(xt, yt, xe, emb, held, 20, 0, kernel="linear", alpha=0.01).mean()
        )
    assert np.mean(ranks) < 3 and np.mean(perm) > 15
