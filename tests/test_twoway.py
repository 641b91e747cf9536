"""Tests of the gene-to-image direction and the rank fusion (i2r_utils.twoway)."""

import numpy as np
import pandas as pd
import pytest

from i2r_utils.twoway import GeneToImage, fuse_ranks, ranks_from_scores


def _smooth_screen(n_genes=60, n_train=25, d=5, seed=0):
    """Genes on a 2-D embedding; profiles a smooth function of the embedding plus noise."""
    rng = np.random.default_rng(seed)
    emb = rng.uniform(-1, 1, size=(n_genes, 2))
    w = rng.normal(size=(2, d))
    profiles = np.sin(2 * emb @ w) + 0.01 * rng.normal(size=(n_genes, d))
    genes = pd.DataFrame(emb, index=[f"G{i}" for i in range(n_genes)])
    train = rng.choice(n_genes, n_train, replace=False)
    return genes, profiles, train


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


def test_gene_to_image_recovers_held_out_genes_of_a_smooth_screen():
    genes, profiles, train = _smooth_screen()
    held = [i for i in range(len(genes)) if i not in set(train)]
    model = GeneToImage().fit(genes, genes.index[train], profiles[train])
    ranks = [ranks_from_scores(model.distances(profiles[i]))[i] for i in held]
    # uniform random would give a median rank of about 30 of 60
    assert np.median(ranks) <= 3
    assert model.width_ in model.widths and model.noise_ in model.noises
    # the chosen pair has the smallest leave-one-out error of the grid
    assert model.cv_mse_[(model.width_, model.noise_)] == min(model.cv_mse_.values())


def test_closed_form_loo_equals_refitting():
    genes, profiles, train = _smooth_screen(n_genes=30, n_train=12, seed=1)
    model = GeneToImage(widths=(1.0,), noises=(0.05,)).fit(
        genes, genes.index[train], profiles[train]
    )
    y = model.y_
    k = model._kernel(1.0)[np.ix_(model.pos_, model.pos_)]
    errs = []
    for j in range(len(y)):
        m = np.arange(len(y)) != j
        coef = np.linalg.solve(k[np.ix_(m, m)] + 0.05 * np.eye(m.sum()), y[m])
        errs.append(y[j] - k[j, m] @ coef)
    assert model.cv_mse_[(1.0, 0.05)] == pytest.approx(float((np.array(errs) ** 2).mean()))


def test_permuted_distances_identity_and_shuffle():
    genes, profiles, train = _smooth_screen()
    model = GeneToImage().fit(genes, genes.index[train], profiles[train])
    x = profiles[0]
    ident = model.permuted_distances(x, [np.arange(len(train))])
    np.testing.assert_allclose(ident[0], model.distances(x))
    rng = np.random.default_rng(3)
    perms = [rng.permutation(len(train)) for _ in range(20)]
    shuffled = model.permuted_distances(x, perms)
    assert shuffled.shape == (20, len(genes))
    # re-pairing breaks the relation: the true gene of a training row falls down the list
    i = train[0]
    own = ranks_from_scores(model.distances(profiles[i]))[i]
    perm_ranks = ranks_from_scores(model.permuted_distances(profiles[i], perms))[:, i]
    assert own <= 3 and np.median(perm_ranks) > own


def test_gene_to_image_input_errors():
    genes, profiles, train = _smooth_screen()
    with pytest.raises(KeyError, match="NOPE"):
        GeneToImage().fit(genes, ["NOPE", *genes.index[train[1:]]], profiles[train])
    with pytest.raises(ValueError, match="matching"):
        GeneToImage().fit(genes, genes.index[train], profiles[train[:-1]])
    # two training conditions: leave-one-out cannot choose, the fallback is used
    few = GeneToImage().fit(genes, genes.index[train[:2]], profiles[train[:2]])
    assert (few.width_, few.noise_) == few.fallback and few.cv_mse_ == {}
    assert np.isfinite(few.distances(profiles[0])).all()
