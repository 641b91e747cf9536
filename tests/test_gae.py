import networkx as nx
import numpy as np
import pandas as pd
import pytest

from i2r_utils.gae import (
    GAEParams,
    embed_genes,
    link_prediction_auc,
    spectral_embedding,
    split_edges,
)


def _caveman(n_comm=4, size=8):
    g = nx.connected_caveman_graph(n_comm, size)
    return nx.relabel_nodes(g, {n: f"g{n}" for n in g})


def test_embeddings_unit_norm_deterministic_and_structured():
    g = _caveman()
    feats = pd.DataFrame(
        np.random.default_rng(0).normal(size=(32, 5)), index=[f"G{i}" for i in range(32)]
    )
    feats = feats.drop(index="G0")
    params = GAEParams(epochs=150, seed=3)
    e1, info = embed_genes(g, feats, params, progress=False)
    e2, _ = embed_genes(g, feats, params, progress=False)
    e3, _ = embed_genes(g, feats, GAEParams(epochs=150, seed=4), progress=False)
    assert np.array_equal(e1.to_numpy(), e2.to_numpy())
    assert not np.allclose(e1.to_numpy(), e3.to_numpy())
    assert np.allclose(np.linalg.norm(e1.to_numpy(), axis=1), 1)
    assert info["unmatched"] == ["G0"] and "G1" in e1.index  # case-insensitive match
    sim = e1.to_numpy() @ e1.to_numpy().T
    comm = np.array([int(n[1:]) // 8 for n in e1.index])
    same = comm[:, None] == comm[None, :]
    assert sim[same].mean() > sim[~same].mean() + 0.3


def test_split_edges_and_link_prediction():
    g = _caveman(5, 8)
    train, pos, neg = split_edges(g, 0.2, seed=1)
    assert len(pos) == len(neg) > 0 and min(d for _, d in train.degree) >= 1
    assert not any(train.has_edge(*e) for e in pos) and not any(g.has_edge(*e) for e in neg)
    spec = spectral_embedding(g, 4)
    assert spec.shape == (40, 4) and np.allclose(np.linalg.norm(spec, axis=1), 1)
    res = link_prediction_auc(g, None, GAEParams(epochs=150, dim=8), 0.2, n_splits=2)
    assert res["auc_gae"] > 0.75 and res["auc_spectral"] > 0.75  # clear community structure
    assert len(res["auc_gae_splits"]) == 2 and res["auc_gae_splits"][0] != res["auc_gae_splits"][1]


def test_sparse_adjacency_matches_dense(monkeypatch):
    import i2r_utils.gae as gae

    g = _caveman(3, 6)
    genes = sorted(g.nodes)
    dense = gae.normalized_adjacency(g, genes)
    e_dense, _ = embed_genes(g, None, GAEParams(epochs=40, dim=4, hidden=8), progress=False)
    monkeypatch.setattr(gae, "DENSE_MAX_NODES", 5)  # force the sparse path on a small graph
    sparse = gae.normalized_adjacency(g, genes)
    assert sparse.is_sparse and np.allclose(sparse.to_dense().numpy(), dense.numpy(), atol=1e-7)
    e_sparse, info = embed_genes(g, None, GAEParams(epochs=40, dim=4, hidden=8), progress=False)
    assert np.isnan(info["feature_loss"])  # sparse identity features: no reconstruction
    assert np.allclose(np.linalg.norm(e_sparse.to_numpy(), axis=1), 1)
    spec_sparse = spectral_embedding(g, 2).to_numpy()
    monkeypatch.setattr(gae, "DENSE_MAX_NODES", 4096)
    spec_dense = spectral_embedding(g, 2).to_numpy()
    # same subspace (eigenvectors up to sign/rotation within ties): same Gram matrix
    assert np.allclose(spec_sparse @ spec_sparse.T, spec_dense @ spec_dense.T, atol=1e-6)


def test_image2reg_architecture_learns_communities():
    from i2r_utils.gae import Image2RegAutoencoder

    model = Image2RegAutoencoder(5, 16, 8)
    kinds = [type(m).__name__ for m in model.children()]
    assert kinds == ["Linear", "Linear", "PReLU", "PReLU", "Linear"]
    g = _caveman(4, 8)
    e, info = embed_genes(g, None, GAEParams(epochs=150, arch="image2reg", hidden=16, dim=8))
    assert np.isnan(info["feature_loss"])  # edge loss only (the original's beta = 0)
    sim = e.to_numpy() @ e.to_numpy().T
    comm = np.array([int(n[1:]) // 8 for n in e.index])
    same = comm[:, None] == comm[None, :]
    assert sim[same].mean() > sim[~same].mean() + 0.3


def test_gamma_term_pulls_same_cluster_genes_together():
    from i2r_utils.gae import image_clusters
    from i2r_utils.io import InputError

    g = nx.path_graph([f"G{i}" for i in range(24)])  # no community structure
    rng = np.random.default_rng(0)
    labels = {f"G{i}": int(rng.integers(2)) for i in rng.choice(24, 16, replace=False)}
    p = GAEParams(epochs=200, dim=8, hidden=16)
    e0, _ = embed_genes(g, None, p, progress=False)
    e1, info = embed_genes(g, None, GAEParams(**{**p.__dict__, "gamma": 5.0}), False, labels)
    assert info["cluster_loss"] < 0.3

    def separation(e):
        z = e.loc[list(labels)].to_numpy()
        y = np.array(list(labels.values()))
        sim = z @ z.T
        same = y[:, None] == y[None, :]
        return sim[same].mean() - sim[~same].mean()

    assert separation(e1) > separation(e0) + 0.2
    with pytest.raises(InputError, match="labels"):
        embed_genes(g, None, GAEParams(epochs=1, gamma=1.0), progress=False)
    prof = pd.DataFrame([[0, 0], [0, 0.1], [5, 5], [5, 5.1]], index=["a", "b", "c", "d"])
    lab = image_clusters(prof, n_clusters=10)  # capped at the 4 rows
    assert set(lab) == {"A", "B", "C", "D"} and len(set(lab.values())) == 4
    lab = image_clusters(prof, n_clusters=2)
    assert lab["A"] == lab["B"] != lab["C"] == lab["D"]
