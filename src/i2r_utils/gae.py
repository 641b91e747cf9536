"""Graph-autoencoder gene embeddings and their link-prediction check.

Two encoders (``GAEParams.arch``), both with an inner-product edge decoder trained on the
network's edges against random non-edges (negative sampling):

* ``i2r``: two GCN layers (ReLU between) with a linear decoder of the node features
  (Kipf & Welling 2016); loss = edge loss + ``feature_weight`` x feature reconstruction.
* ``image2reg`` (the original, ``src/models/ae.py``): GCN -> PReLU -> GCN -> PReLU ->
  linear, GCN layers with their bias after the propagation as in PyG ``GCNConv``, on the
  unweighted graph; loss = edge loss (the original's alpha 1, beta 0).

Both may add Image2Reg's image-cluster term (``gamma``): the cross-entropy of a linear
classifier that predicts, from a gene's embedding, the cluster of its condition's image
profile (:func:`image_clusters`); genes without a label are masked. The labels must come
from the training conditions of a fold only, so no held-out information enters.

The normalised adjacency ``D^-1/2 (A + I) D^-1/2`` is a dense tensor up to
:data:`DENSE_MAX_NODES` genes (fastest, and the numbers of the small screens) and a
``torch`` sparse tensor above, so a 10,000+ gene network trains in memory; identity node
features (no expression table) are sparse too, and their reconstruction is skipped there.
Embeddings are L2-normalised and deterministic for a given seed. Their quality is measured
by link prediction on held-out edges against a spectral embedding (Laplacian eigenmaps) of
the same training graph (:func:`link_prediction_auc`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from .io import InputError
from .progress import tqdm

__all__ = [
    "GAE_ARCHS",
    "DENSE_MAX_NODES",
    "GAEParams",
    "GraphAutoencoder",
    "Image2RegAutoencoder",
    "normalized_adjacency",
    "image_clusters",
    "embed_genes",
    "spectral_embedding",
    "split_edges",
    "link_prediction_auc",
]

#: Encoder architectures of :class:`GAEParams`.
GAE_ARCHS = ("i2r", "image2reg")
#: Largest network (genes) whose adjacency and identity features are dense tensors.
DENSE_MAX_NODES = 4096


@dataclass(frozen=True)
class GAEParams:
    """Graph autoencoder parameters.

    Attributes
    ----------
    hidden, dim : int
        Hidden and embedding sizes (Image2Reg: 1024 and 1024).
    epochs : int
        Full-batch training epochs.
    lr : float
        Adam learning rate.
    feature_weight : float
        Weight of the feature reconstruction loss beside the edge loss (``i2r`` only).
    seed : int
        Random seed (weights and negative samples).
    arch : {"i2r", "image2reg"}
        Encoder architecture (module docstring).
    gamma : float
        Weight of the image-cluster cross-entropy (0: no such term).
    """

    hidden: int = 64
    dim: int = 32
    epochs: int = 300
    lr: float = 0.01
    feature_weight: float = 1.0
    seed: int = 0
    arch: str = "i2r"
    gamma: float = 0.0


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if x.is_sparse:
        return torch.sparse.mm(x, layer.weight.T) + layer.bias
    return layer(x)


class GraphAutoencoder(nn.Module):
    """Two-layer GCN encoder with inner-product edge and linear feature decoders (``i2r``).

    Parameters
    ----------
    n_features : int
        Node feature size.
    hidden, dim : int
        Hidden and embedding sizes.
    """

    def __init__(self, n_features: int, hidden: int, dim: int):
        super().__init__()
        self.w1 = nn.Linear(n_features, hidden)
        self.w2 = nn.Linear(hidden, dim)
        self.dec = nn.Linear(dim, n_features)

    def forward(self, a_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Return node embeddings from the normalised adjacency and features."""
        h = torch.relu(a_hat @ _linear(self.w1, x))
        return a_hat @ self.w2(h)


class Image2RegAutoencoder(nn.Module):
    """Image2Reg's encoder: GCN -> PReLU -> GCN -> PReLU -> linear (``image2reg``).

    A GCN layer is ``A_hat (x W) + b`` (PyG ``GCNConv``: the bias after the propagation).

    Parameters
    ----------
    n_features : int
        Node feature size.
    hidden, dim : int
        Hidden and embedding sizes (original: 1024, 1024).
    """

    def __init__(self, n_features: int, hidden: int, dim: int):
        super().__init__()
        self.conv1 = nn.Linear(n_features, hidden)
        self.conv2 = nn.Linear(hidden, hidden)
        self.act1, self.act2 = nn.PReLU(), nn.PReLU()
        self.out = nn.Linear(hidden, dim)

    @staticmethod
    def _gcn(layer: nn.Linear, a_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        xw = torch.sparse.mm(x, layer.weight.T) if x.is_sparse else x @ layer.weight.T
        return a_hat @ xw + layer.bias

    def forward(self, a_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Return node embeddings from the normalised adjacency and features."""
        h = self.act1(self._gcn(self.conv1, a_hat, x))
        h = self.act2(self._gcn(self.conv2, a_hat, h))
        return self.out(h)


def normalized_adjacency(g: nx.Graph, genes: list[str], weighted: bool = True) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a float32 tensor, sparse above :data:`DENSE_MAX_NODES`.

    Parameters
    ----------
    g : networkx.Graph
        Network over ``genes``.
    genes : list of str
        Node order.
    weighted : bool
        Use the ``weight`` edge attribute (else every edge counts 1).

    Returns
    -------
    torch.Tensor
        Dense ``(n, n)`` tensor, or a coalesced sparse COO tensor for large networks.
    """
    weight = "weight" if weighted else None
    if len(genes) <= DENSE_MAX_NODES:
        a = nx.to_numpy_array(g, nodelist=genes, weight=weight) + np.eye(len(genes))
        d = 1 / np.sqrt(a.sum(1))
        return torch.tensor(d[:, None] * a * d[None, :], dtype=torch.float32)
    a = nx.to_scipy_sparse_array(g, nodelist=genes, weight=weight, format="csr")
    a = (a + sp.identity(len(genes), format="csr")).tocoo()
    d = 1 / np.sqrt(np.asarray(a.sum(1)).ravel())
    vals = d[a.row] * a.data * d[a.col]
    idx = torch.from_numpy(np.vstack([a.row, a.col]).astype(np.int64))
    shape = (len(genes), len(genes))
    vals = torch.tensor(vals, dtype=torch.float32)
    return torch.sparse_coo_tensor(idx, vals, shape, check_invariants=True).coalesce()


def _node_features(genes: list[str], features: pd.DataFrame | None):
    if features is None:
        n = len(genes)
        if n <= DENSE_MAX_NODES:
            return torch.tensor(np.eye(n, dtype=np.float32)), []
        idx = torch.arange(n).repeat(2, 1)
        eye = torch.sparse_coo_tensor(idx, torch.ones(n), (n, n), check_invariants=True)
        return eye.coalesce(), []
    feat = features.copy()
    feat.index = feat.index.astype(str).str.upper()
    feat = feat[~feat.index.duplicated()]
    unmatched = [g for g in genes if g not in feat.index]
    x = feat.reindex(genes).to_numpy(np.float64)
    mu, sd = np.nanmean(x, 0), np.nanstd(x, 0)
    x = (x - mu) / np.where(sd > 0, sd, 1.0)
    return torch.tensor(np.nan_to_num(x, nan=0.0).astype(np.float32)), unmatched


def image_clusters(profiles: pd.DataFrame, n_clusters: int = 10, seed: int = 0) -> dict[str, int]:
    """Cluster labels of condition image profiles (Image2Reg's gamma-term targets).

    Parameters
    ----------
    profiles : pandas.DataFrame
        One row per TRAINING condition (index: its upper-case gene), numeric columns.
    n_clusters : int
        Clusters (Image2Reg: 10), capped at the number of rows.
    seed : int
        KMeans seed.

    Returns
    -------
    dict
        Gene -> cluster label.
    """
    from sklearn.cluster import KMeans

    if len(profiles) < 2:
        raise InputError(
            f"the image-cluster term needs at least 2 training conditions, got {len(profiles)}."
        )
    k = min(n_clusters, len(profiles))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(profiles.to_numpy(float))
    return {str(g).upper(): int(c) for g, c in zip(profiles.index, km.labels_, strict=True)}


def _cluster_head(params: GAEParams, genes: list[str], labels: Mapping[str, int] | None):
    """Linear classifier and per-gene targets of the image-cluster term (or None)."""
    if params.gamma <= 0:
        return None, None
    if not labels:
        raise InputError("gamma > 0 needs image-cluster labels of the training conditions.")
    y = torch.tensor([int(labels.get(g, -1)) for g in genes], dtype=torch.long)
    if int((y >= 0).sum()) == 0:
        raise InputError("none of the labelled genes is in the network; gamma has no target.")
    return nn.Linear(params.dim, int(y.max()) + 1), y


def embed_genes(
    graph: nx.Graph,
    features: pd.DataFrame | None = None,
    params: GAEParams = GAEParams(),
    progress: bool = True,
    labels: Mapping[str, int] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Embed the genes of a network with a graph convolutional autoencoder.

    Parameters
    ----------
    graph : networkx.Graph
        Gene network (node names are upper-cased in the output).
    features : pandas.DataFrame, optional
        Node features indexed by gene (case-insensitive match), standardised per column.
        Genes without features get zeros (the column mean) and are reported; with no
        table, one-hot identity features are used.
    params : GAEParams
        Training parameters.
    progress : bool
        Show a progress bar.
    labels : mapping, optional
        Gene -> image-cluster label of the training conditions (needed when
        ``params.gamma > 0``; other genes are masked).

    Returns
    -------
    embeddings : pandas.DataFrame
        L2-normalised embeddings indexed by upper-case gene (columns ``emb_0`` ...).
    info : dict
        ``unmatched`` genes (no features), final losses, gene and edge counts, params.
    """
    if params.arch not in GAE_ARCHS:
        raise InputError(f"unknown GAE architecture {params.arch!r}; one of {list(GAE_ARCHS)}")
    genes = sorted(str(g).upper() for g in graph.nodes)
    if len(genes) < 3:
        raise InputError("the gene network has fewer than 3 genes; check the edge list.")
    g = nx.relabel_nodes(graph, {n: str(n).upper() for n in graph.nodes}, copy=True)
    xt, unmatched = _node_features(genes, features)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    a_hat = normalized_adjacency(g, genes, weighted=params.arch == "i2r")
    idx = {n: i for i, n in enumerate(genes)}
    pos = np.array(sorted((idx[u], idx[v]) for u, v in g.edges), dtype=np.int64).reshape(-1, 2)
    arch = GraphAutoencoder if params.arch == "i2r" else Image2RegAutoencoder
    model = arch(xt.shape[1], params.hidden, params.dim)
    head, y = _cluster_head(params, genes, labels)
    extra = list(head.parameters()) if head is not None else []
    opt = torch.optim.Adam([*model.parameters(), *extra], lr=params.lr)
    decode_features = params.arch == "i2r" and not xt.is_sparse
    losses = _train(model, opt, a_hat, xt, pos, rng, params, decode_features, head, y, progress)
    with torch.no_grad():
        z = model(a_hat, xt).double().numpy()
    z = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    emb = pd.DataFrame(z, index=pd.Index(genes, name="gene"))
    emb.columns = [f"emb_{i}" for i in range(z.shape[1])]
    return emb, {
        "unmatched": unmatched,
        **losses,
        "n_genes": len(genes),
        "n_edges": g.number_of_edges(),
        "params": asdict(params),
    }


def _train(model, opt, a_hat, xt, pos, rng, params, decode_features, head, y, progress) -> dict:
    """Full-batch training loop; returns the final losses."""
    bce = nn.BCEWithLogitsLoss()
    n = xt.shape[0]
    target = torch.cat([torch.ones(len(pos)), torch.zeros(len(pos))])
    edge_loss = feat_loss = cluster_loss = torch.tensor(float("nan"))
    for _ in tqdm(range(params.epochs), desc="graph autoencoder", disable=not progress):
        z = model(a_hat, xt)
        neg = rng.integers(0, n, size=pos.shape)
        pairs = torch.from_numpy(np.concatenate([pos, neg]))
        logits = (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(1)
        edge_loss = bce(logits, target) if len(pos) else torch.tensor(0.0)
        loss = edge_loss
        if decode_features:
            feat_loss = ((model.dec(z) - xt) ** 2).mean()
            loss = edge_loss + params.feature_weight * feat_loss
        if head is not None:
            cluster_loss = nn.functional.cross_entropy(head(z), y, ignore_index=-1)
            loss = loss + params.gamma * cluster_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = {"edge_loss": float(edge_loss.detach()), "feature_loss": float(feat_loss.detach())}
    if head is not None:
        out["cluster_loss"] = float(cluster_loss.detach())
    return out


def spectral_embedding(graph: nx.Graph, dim: int = 32) -> pd.DataFrame:
    """Spectral embedding of a network (baseline for link prediction), L2-normalised.

    With ``L = I - D^-1/2 A D^-1/2 = V diag(lam) V^T`` the embedding of gene ``i`` is
    ``V[i, 1:dim+1] * sqrt(max(1 - lam, 0))``: the Laplacian eigenvectors with the ``dim``
    smallest non-trivial eigenvalues, weighted so that inner products are the best
    rank-``dim`` approximation of the normalised adjacency (its positive part). Unweighted
    Laplacian eigenmaps score neighbours negatively once high-frequency vectors are
    included, so the weighting gives the baseline its best chance.

    Above :data:`DENSE_MAX_NODES` genes the ``dim + 1`` largest eigenpairs of the sparse
    normalised adjacency (``1 - lam``) come from ``scipy.sparse.linalg.eigsh``.

    Parameters
    ----------
    graph : networkx.Graph
        Gene network.
    dim : int
        Embedding size (capped at ``n - 2``).

    Returns
    -------
    pandas.DataFrame
        Embeddings indexed by upper-case gene.
    """
    genes = sorted(str(g).upper() for g in graph.nodes)
    g = nx.relabel_nodes(graph, {n: str(n).upper() for n in graph.nodes}, copy=True)
    dim = min(dim, len(genes) - 2)
    if len(genes) > DENSE_MAX_NODES:
        z = _sparse_spectral(g, genes, dim)
    else:
        a = nx.to_numpy_array(g, nodelist=genes, weight="weight")
        dinv = 1 / np.sqrt(np.maximum(a.sum(1), 1e-12))
        lap = np.eye(len(genes)) - dinv[:, None] * a * dinv[None, :]
        lam, vec = np.linalg.eigh(lap)
        z = vec[:, 1 : dim + 1] * np.sqrt(np.clip(1 - lam[1 : dim + 1], 0, None))
    z = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    return pd.DataFrame(z, index=pd.Index(genes, name="gene"))


def _sparse_spectral(g: nx.Graph, genes: list[str], dim: int) -> np.ndarray:
    from scipy.sparse.linalg import eigsh

    a = nx.to_scipy_sparse_array(g, nodelist=genes, weight="weight", format="csr")
    dinv = 1 / np.sqrt(np.maximum(np.asarray(a.sum(1)).ravel(), 1e-12))
    m = sp.diags(dinv) @ a @ sp.diags(dinv)
    v0 = np.random.default_rng(0).normal(size=len(genes))
    mu, vec = eigsh(m, k=dim + 1, which="LA", v0=v0)
    order = np.argsort(-mu)  # 1 - lam ascending in lam
    mu, vec = mu[order], vec[:, order]
    return vec[:, 1 : dim + 1] * np.sqrt(np.clip(mu[1 : dim + 1], 0, None))


def split_edges(graph: nx.Graph, test_fraction: float = 0.1, seed: int = 0):
    """Hold out edges for link prediction, with as many sampled non-edges.

    Edges are held out in random order while both end points keep at least one
    training edge, so no gene becomes isolated in the training graph.

    Parameters
    ----------
    graph : networkx.Graph
        Full network.
    test_fraction : float
        Fraction of edges to hold out.
    seed : int
        Random seed.

    Returns
    -------
    train : networkx.Graph
        The network without the held-out edges (all nodes kept).
    pos : list of tuple
        Held-out edges.
    neg : list of tuple
        Node pairs that are not edges of the full network.
    """
    rng = np.random.default_rng(seed)
    edges = sorted(tuple(sorted(e)) for e in graph.edges)
    n_test = max(1, int(round(test_fraction * len(edges))))
    train = graph.copy()
    pos = []
    for i in rng.permutation(len(edges)):
        u, v = edges[i]
        if train.degree(u) > 1 and train.degree(v) > 1:
            train.remove_edge(u, v)
            pos.append((u, v))
            if len(pos) == n_test:
                break
    nodes = sorted(graph.nodes)
    neg: set = set()
    max_neg = len(nodes) * (len(nodes) - 1) // 2 - graph.number_of_edges()
    while len(neg) < min(len(pos), max_neg):
        a, b = rng.choice(len(nodes), 2, replace=False)
        u, v = sorted((nodes[a], nodes[b]))
        if not graph.has_edge(u, v):
            neg.add((u, v))
    return train, pos, sorted(neg)


def link_prediction_auc(
    graph: nx.Graph,
    features: pd.DataFrame | None = None,
    params: GAEParams = GAEParams(),
    test_fraction: float = 0.1,
    n_splits: int = 5,
    progress: bool = False,
) -> dict:
    """Link-prediction ROC AUC of the graph autoencoder and of the spectral baseline.

    For each of ``n_splits`` random edge splits (seeds ``params.seed + i``), both
    embeddings are computed on the training graph (held-out edges removed); a pair is
    scored by the inner product of its two L2-normalised embeddings; held-out edges are
    positives, as many random non-edges negatives. The mean over splits is reported.

    Parameters
    ----------
    graph : networkx.Graph
        Network to evaluate on.
    features : pandas.DataFrame, optional
        Node features for the autoencoder.
    params : GAEParams
        Autoencoder parameters.
    test_fraction : float
        Fraction of edges held out per split.
    n_splits : int
        Random splits averaged.
    progress : bool
        Show the training progress bars.

    Returns
    -------
    dict
        ``auc_gae``, ``auc_spectral`` (means), ``auc_gae_splits``,
        ``auc_spectral_splits``, ``n_test_edges`` (per split), ``test_fraction``,
        ``n_splits``.
    """
    from sklearn.metrics import roc_auc_score

    g = nx.relabel_nodes(graph, {n: str(n).upper() for n in graph.nodes}, copy=True)
    aucs: dict[str, list[float]] = {"gae": [], "spectral": []}
    n_test = 0
    for i in range(n_splits):
        p = replace(params, seed=params.seed + i)
        train, pos, neg = split_edges(g, test_fraction, p.seed)
        pairs = pos + neg
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        n_test = len(pos)
        gae, _ = embed_genes(train, features, p, progress=progress)
        spec = spectral_embedding(train, p.dim)
        for name, emb in (("gae", gae), ("spectral", spec)):
            a = emb.loc[[u for u, _ in pairs]].to_numpy()
            b = emb.loc[[v for _, v in pairs]].to_numpy()
            aucs[name].append(float(roc_auc_score(y, (a * b).sum(1))))
    return {
        "auc_gae": float(np.mean(aucs["gae"])),
        "auc_spectral": float(np.mean(aucs["spectral"])),
        "auc_gae_splits": aucs["gae"],
        "auc_spectral_splits": aucs["spectral"],
        "n_test_edges": n_test,
        "test_fraction": test_fraction,
        "n_splits": n_splits,
    }
