"""Gene-gene networks and graph-autoencoder gene embeddings.

Networks load from edge lists (``gene1 gene2 [weight]`` as TSV/CSV, or STRING-style
``protein1 protein2 combined_score``); node features from a genes x samples table. Gene
symbols are matched case-insensitively. The embedding is a two-layer graph convolutional
autoencoder trained to reconstruct both the edges and the node features; embeddings are
L2-normalised and deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .io import InputError

__all__ = ["load_network", "load_expression", "GAEParams", "GraphAutoencoder", "embed_genes"]


def load_network(path: str | Path) -> nx.Graph:
    """Load an undirected gene network from an edge list.

    Parameters
    ----------
    path : path-like
        TSV/CSV with two gene columns (``gene1``/``gene2``, ``protein1``/``protein2``, or
        the first two columns) and optionally ``weight`` or ``combined_score``.

    Returns
    -------
    networkx.Graph
        Graph over upper-case gene symbols with a ``weight`` edge attribute.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: network file not found.")
    sep = "," if path.suffix == ".csv" else r"\s+|\t"
    df = pd.read_csv(path, sep=sep, engine="python")
    if df.shape[1] < 2:
        raise InputError(f"{path}: needs at least two columns (gene1, gene2); got {list(df)}.")
    cols = [c.lower() for c in df.columns]
    a, b = next(
        (
            (x, y)
            for x, y in (("gene1", "gene2"), ("protein1", "protein2"))
            if x in cols and y in cols
        ),
        (cols[0], cols[1]),
    )
    df.columns = cols
    wcol = next((c for c in ("weight", "combined_score", "score") if c in cols), None)
    w = df[wcol].astype(float) if wcol else pd.Series(1.0, index=df.index)
    if wcol == "combined_score" and w.max() > 1:
        w = w / 1000.0
    g = nx.Graph()
    for u, v, ww in zip(
        df[a].astype(str).str.upper(), df[b].astype(str).str.upper(), w, strict=True
    ):
        if u != v:
            g.add_edge(u, v, weight=float(ww))
    return g


def load_expression(path: str | Path) -> pd.DataFrame:
    """Load a genes x samples expression table (first column: gene symbol).

    Parameters
    ----------
    path : path-like
        CSV/TSV file.

    Returns
    -------
    pandas.DataFrame
        Numeric table indexed by upper-case gene symbol.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: expression table not found.")
    df = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index_col=0)
    df.index = df.index.astype(str).str.upper()
    return df.apply(pd.to_numeric, errors="raise")


@dataclass(frozen=True)
class GAEParams:
    """Graph autoencoder parameters.

    Attributes
    ----------
    hidden, dim : int
        Hidden and embedding sizes.
    epochs : int
        Full-batch training epochs.
    lr : float
        Adam learning rate.
    feature_weight : float
        Weight of the feature reconstruction loss beside the edge loss.
    seed : int
        Random seed.
    """

    hidden: int = 64
    dim: int = 32
    epochs: int = 300
    lr: float = 0.01
    feature_weight: float = 1.0
    seed: int = 0


class GraphAutoencoder(nn.Module):
    """Two-layer GCN encoder with inner-product edge and linear feature decoders.

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
        h = torch.relu(a_hat @ self.w1(x))
        return a_hat @ self.w2(h)


def _norm_adj(g: nx.Graph, genes: list[str]) -> np.ndarray:
    a = nx.to_numpy_array(g, nodelist=genes, weight="weight") + np.eye(len(genes))
    d = 1 / np.sqrt(a.sum(1))
    return d[:, None] * a * d[None, :]


def embed_genes(
    graph: nx.Graph,
    features: pd.DataFrame | None = None,
    params: GAEParams = GAEParams(),
    progress: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Embed the genes of a network with a graph convolutional autoencoder.

    Parameters
    ----------
    graph : networkx.Graph
        Gene network.
    features : pandas.DataFrame, optional
        Node features indexed by gene (case-insensitive match). Genes without features get
        zeros and are reported; with no table, one-hot identity features are used.
    params : GAEParams
        Training parameters.
    progress : bool
        Show a progress bar.

    Returns
    -------
    embeddings : pandas.DataFrame
        L2-normalised embeddings indexed by gene (columns ``emb_0`` ...).
    info : dict
        ``unmatched`` genes, final losses.
    """
    genes = sorted(graph.nodes)
    keys = [str(g).upper() for g in genes]
    if len(genes) < 3:
        raise InputError("the gene network has fewer than 3 genes; check the edge list.")
    if features is None:
        x = np.eye(len(genes), dtype=np.float32)
        unmatched = []
    else:
        feat = features.copy()
        feat.index = feat.index.astype(str).str.upper()
        unmatched = [k for k in keys if k not in feat.index]
        x = feat.reindex(keys).fillna(0.0).to_numpy(np.float32)
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    a_hat = torch.tensor(_norm_adj(graph, genes), dtype=torch.float32)
    xt = torch.tensor(x)
    idx = {g: i for i, g in enumerate(genes)}
    pos = np.array([(idx[u], idx[v]) for u, v in graph.edges])
    model = GraphAutoencoder(x.shape[1], params.hidden, params.dim)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    bce = nn.BCEWithLogitsLoss()
    n = len(genes)
    for _ in tqdm(range(params.epochs), desc="graph autoencoder", disable=not progress):
        z = model(a_hat, xt)
        neg = rng.integers(0, n, size=pos.shape)
        pairs = torch.tensor(np.concatenate([pos, neg]))
        target = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
        logits = (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(1)
        edge_loss = bce(logits, target)
        feat_loss = ((model.dec(z) - xt) ** 2).mean()
        loss = edge_loss + params.feature_weight * feat_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = model(a_hat, xt).numpy()
    z = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    emb = pd.DataFrame(z, index=pd.Index(keys, name="gene"))
    emb.columns = [f"emb_{i}" for i in range(z.shape[1])]
    return emb, {
        "unmatched": unmatched,
        "edge_loss": float(edge_loss.detach()),
        "feature_loss": float(feat_loss.detach()),
        "n_genes": n,
        "n_edges": graph.number_of_edges(),
    }
