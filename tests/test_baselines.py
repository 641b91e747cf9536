import numpy as np
import pandas as pd

from i2r_utils.baselines import full_shuffle_ranks, shuffle_pool
from i2r_utils.directions import GeneToImage, ImageToGene, rank_candidates, training_set
from i2r_utils.ranking import true_rank


def _screen(n_genes=40, n_cond=15, seed=0):
    """Unit gene embeddings; condition profiles a linear image of them, plus a control."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    emb = pd.DataFrame(rng.normal(size=(n_genes, 4)), index=genes)
    emb = emb.div(np.linalg.norm(emb, axis=1), axis=0)
    conds = genes[:n_cond]
    x = emb.loc[conds].to_numpy() @ rng.normal(size=(4, 6)) + 0.02 * rng.normal(size=(n_cond, 6))
    prof = pd.DataFrame(x, columns=[f"cnn_{i}" for i in range(6)])
    prof.insert(0, "Metadata_Condition", conds)
    extra = pd.DataFrame([["EMPTY", *np.zeros(6)], ["OTHER", *np.ones(6)]], columns=prof.columns)
    return emb, pd.concat([prof, extra], ignore_index=True), conds


def test_shuffle_pool_holds_the_targets_and_the_held_out_only():
    emb, prof, conds = _screen()
    pool = shuffle_pool(prof, "OTHER", conds[:5] + ["EMPTY"])
    assert pool["Metadata_Condition"].tolist() == [*conds[:5], "OTHER"]  # no control


def test_one_full_shuffle_by_hand():
    emb, prof, conds = _screen()
    opts = {"kernel": "ntk", "depth": 1, "alphas": (1.0,), "scaling": "none", "input_bias": True}
    got = full_shuffle_ranks(prof, emb, conds[0], conds, "two_way", 3, seed=4, **opts)
    assert got.shape == (3,) and got.dtype.kind == "i"
    # the same draw written out: gene rows, then condition rows, labels kept
    rng = np.random.default_rng(4)
    g = pd.DataFrame(emb.to_numpy()[rng.permutation(40)], index=emb.index)
    pool = prof[prof.Metadata_Condition.isin(conds)].reset_index(drop=True)
    feats = [c for c in pool if c.startswith("cnn_")]
    pool[feats] = pool[feats].to_numpy()[rng.permutation(len(pool))]
    ts = training_set(pool, g, conds[0], conds)
    fwd = ImageToGene(**opts).fit(ts["x_train"], ts["y_train"])
    rev = GeneToImage().fit(g, ts["genes"], ts["x_train"])
    want = true_rank(rank_candidates(ts["x_test"], g, "two_way", fwd, rev), conds[0])
    assert got[0] == want
    assert full_shuffle_ranks(prof, emb, conds[0], conds, "two_way", 1, seed=4, **opts)[0] == want
    assert full_shuffle_ranks(prof, emb, "NOT_A_GENE", conds, n=2) is None


def test_full_shuffle_destroys_a_learnable_mapping():
    emb, prof, conds = _screen()
    real, shuffled = [], []
    for c in conds[:4]:
        ts = training_set(prof, emb, c, conds)
        fwd = ImageToGene("ntk", 2, (0.01,)).fit(ts["x_train"], ts["y_train"])
        real.append(true_rank(rank_candidates(ts["x_test"], emb, "image_to_gene", fwd), c))
        ranks = full_shuffle_ranks(prof, emb, c, conds, "image_to_gene", 30, seed=1,
                                   kernel="ntk", depth=2, alphas=(0.01,))  # fmt: skip
        shuffled.append(ranks.mean())
    assert np.mean(real) <= 3  # the mapping is learnable
    assert 8 < np.mean(shuffled) < 33  # near the uniform 20.5 of 40 candidates, far from it
