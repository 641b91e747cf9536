"""Gene-gene networks, the candidate interactome and graph-autoencoder gene embeddings.

Networks load from edge lists (``gene1 gene2 [weight]`` as TSV/CSV, or STRING-style
``protein1 protein2 combined_score``); node features from a genes x samples table or an
AnnData ``.h5ad`` file (genes are the ``var`` axis). Gene symbols are matched
case-insensitively (everything is upper-cased) and genes that cannot be matched are reported.

The candidate interactome (the genes that are ranked for a held-out condition) is built
from the network and the list of over-expressed target genes only -- no image data, no
screen result -- so it is the same for every held-out condition and cannot leak a held-out
condition's phenotype. Rule (:func:`candidate_interactome`): the union of one shortest path
between every pair of targets in the same connected component, plus the ``k_hop``
neighbourhood of every target. It replaces Image2Reg's prize-collecting Steiner tree with a
deterministic rule that has one parameter.

The embedding is a two-layer graph convolutional autoencoder (Kipf & Welling 2016) trained
to reconstruct both the edges (inner-product decoder, negative sampling) and the node
features (linear decoder); embeddings are L2-normalised and deterministic for a given seed.
Its quality is measured by link prediction on held-out edges against a spectral embedding
(Laplacian eigenmaps) of the same training graph (:func:`link_prediction_auc`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from itertools import combinations
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .columns import CONTROL
from .io import InputError

__all__ = [
    "load_network",
    "load_expression",
    "match_genes",
    "target_genes",
    "candidate_interactome",
    "GAEParams",
    "GraphAutoencoder",
    "embed_genes",
    "spectral_embedding",
    "split_edges",
    "link_prediction_auc",
]


def _read_delimited(path: Path, **kw) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, **kw)
    return pd.read_csv(path, sep=r"\s+", engine="python", **kw)


def load_network(
    path: str | Path, aliases: Mapping[str, str] | None = None, min_weight: float = 0.0
) -> nx.Graph:
    """Load an undirected gene network from an edge list.

    Parameters
    ----------
    path : path-like
        ``.csv`` (comma) or whitespace/tab separated file with two gene columns
        (``gene1``/``gene2``, ``protein1``/``protein2``, or else the first two columns)
        and optionally ``weight``, ``combined_score`` (STRING, 0-1000, divided by 1000)
        or ``score``.
    aliases : mapping, optional
        Identifier -> gene symbol (e.g. STRING protein id -> preferred name), applied
        case-insensitively; identifiers without an alias are kept as they are.
    min_weight : float
        Edges with a (rescaled) weight below this are dropped.

    Returns
    -------
    networkx.Graph
        Graph over upper-case gene symbols with a ``weight`` edge attribute; nodes are
        inserted in sorted order so every traversal is deterministic.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: network file not found.")
    try:
        df = _read_delimited(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot parse the edge list ({err}).") from err
    if df.shape[1] < 2 or df.empty:
        raise InputError(f"{path}: needs at least two columns (gene1, gene2) and one edge.")
    cols = [str(c).lower() for c in df.columns]
    df.columns = cols
    pairs = [("gene1", "gene2"), ("protein1", "protein2")]
    a, b = next(((x, y) for x, y in pairs if x in cols and y in cols), (cols[0], cols[1]))
    wcol = next((c for c in ("weight", "combined_score", "score") if c in cols), None)
    w = pd.to_numeric(df[wcol], errors="coerce") if wcol else pd.Series(1.0, index=df.index)
    if w.isna().any():
        raise InputError(f"{path}: column {wcol!r} has non-numeric values.")
    if wcol == "combined_score" and w.max() > 1:
        w = w / 1000.0
    amap = {str(k).upper(): str(v).upper() for k, v in (aliases or {}).items()}
    u = df[a].astype(str).str.upper().map(lambda s: amap.get(s, s))
    v = df[b].astype(str).str.upper().map(lambda s: amap.get(s, s))
    edges = pd.DataFrame({"u": u, "v": v, "w": w.astype(float)})
    edges = edges[(edges.u != edges.v) & (edges.w >= min_weight)]
    edges[["u", "v"]] = np.sort(edges[["u", "v"]].to_numpy(), axis=1)
    edges = edges.groupby(["u", "v"], sort=True)["w"].max().reset_index()
    g = nx.Graph()
    g.add_nodes_from(sorted(set(edges.u) | set(edges.v)))
    g.add_weighted_edges_from(edges.itertuples(index=False, name=None))
    return g


def load_expression(path: str | Path, gene_column: str | None = None) -> pd.DataFrame:
    """Load expression node features as a genes x samples table.

    Parameters
    ----------
    path : path-like
        CSV/TSV whose first column is the gene symbol and other columns are samples, or an
        AnnData ``.h5ad`` file (cells/samples x genes; needs the optional ``anndata``
        package).
    gene_column : str, optional
        For ``.h5ad``: the ``var`` column holding gene symbols (default ``var_names``).

    Returns
    -------
    pandas.DataFrame
        Numeric table indexed by upper-case gene symbol (duplicate symbols averaged).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: expression table not found.")
    if path.suffix.lower() == ".h5ad":
        try:
            import anndata
        except ImportError as err:
            raise InputError(
                f"{path}: reading AnnData (.h5ad) needs the optional package 'anndata' "
                "(pip install anndata), or export a genes x samples CSV instead."
            ) from err
        ad = anndata.read_h5ad(path)
        x = ad.X.toarray() if hasattr(ad.X, "toarray") else np.asarray(ad.X)
        genes = ad.var[gene_column] if gene_column else ad.var_names
        df = pd.DataFrame(x.T, index=pd.Index(genes).astype(str), columns=ad.obs_names)
    else:
        df = pd.read_csv(path, sep="," if path.suffix.lower() == ".csv" else "\t", index_col=0)
        try:
            df = df.apply(pd.to_numeric, errors="raise")
        except ValueError as err:
            raise InputError(f"{path}: expression values must be numeric ({err}).") from err
    df.index = pd.Index(df.index.astype(str).str.upper(), name="gene")
    if df.index.has_duplicates:
        df = df.groupby(level=0, sort=False).mean()
    return df


def match_genes(query: Iterable[str], reference: Iterable[str]) -> tuple[dict, list[str]]:
    """Match gene symbols case-insensitively.

    Parameters
    ----------
    query : iterable of str
        Symbols to look up.
    reference : iterable of str
        Known symbols.

    Returns
    -------
    mapping : dict
        Query symbol -> matching reference symbol.
    unmatched : list of str
        Query symbols with no match, in query order.
    """
    ref = {}
    for r in reference:
        ref.setdefault(str(r).upper(), r)
    mapping, unmatched = {}, []
    for q in query:
        hit = ref.get(str(q).upper())
        if hit is None:
            unmatched.append(q)
        else:
            mapping[q] = hit
    return mapping, unmatched


def target_genes(data_dir: str | Path, control: str = CONTROL) -> list[str]:
    """Over-expressed target genes of a screen, from its metadata only (no image data).

    Parameters
    ----------
    data_dir : path-like
        Screen folder with ``metadata.csv`` (``Metadata_Condition`` and optionally
        ``Metadata_Gene``), or else ``truth/conditions.csv``.
    control : str
        Control condition (not a target).

    Returns
    -------
    list of str
        Sorted upper-case gene symbols of every non-control condition.
    """
    data_dir = Path(data_dir)
    for table in (data_dir / "metadata.csv", data_dir / "truth" / "conditions.csv"):
        if table.is_file():
            meta = pd.read_csv(table)
            break
    else:
        raise InputError(
            f"{data_dir}: neither metadata.csv nor truth/conditions.csv found; the target "
            "genes are the screen's over-expressed conditions."
        )
    if "Metadata_Condition" not in meta:
        raise InputError(f"{table}: missing column Metadata_Condition.")
    meta = meta[meta["Metadata_Condition"].astype(str) != control]
    col = "Metadata_Gene" if "Metadata_Gene" in meta else "Metadata_Condition"
    return sorted({str(g).upper() for g in meta[col].dropna()})


def candidate_interactome(
    graph: nx.Graph, targets: Iterable[str], k_hop: int = 1
) -> tuple[nx.Graph, dict]:
    """Candidate interactome covering the target genes (documented simple rule).

    The node set is the union of (i) one shortest path (hop count; networkx's
    deterministic choice on a sorted graph) between every pair of targets that lie in
    the same connected component and (ii) every gene within ``k_hop`` hops of a target.
    With ``k_hop = 0`` it is only the path union (a Steiner-tree-like backbone).

    Parameters
    ----------
    graph : networkx.Graph
        Full gene network.
    targets : iterable of str
        Target gene symbols (case-insensitive).
    k_hop : int
        Neighbourhood radius added around every target.

    Returns
    -------
    subgraph : networkx.Graph
        Induced subgraph on the candidate genes (a copy, sorted node order).
    info : dict
        ``targets_missing`` (not in the network), counts, ``rule`` and ``k_hop``.
    """
    if k_hop < 0:
        raise ValueError("k_hop must be >= 0")
    mapping, missing = match_genes(targets, graph.nodes)
    found = sorted(set(mapping.values()))
    if not found:
        raise InputError(
            f"none of the {len(missing)} target genes is in the network; check the gene "
            "symbols of the edge list against the screen's conditions."
        )
    nodes = set(found)
    comp = {n: i for i, c in enumerate(nx.connected_components(graph)) for n in c}
    path_nodes = set()
    for s, t in combinations(found, 2):
        if comp[s] == comp[t]:
            path_nodes.update(nx.shortest_path(graph, s, t))
    nodes |= path_nodes
    for t in found:
        nodes |= set(nx.single_source_shortest_path_length(graph, t, cutoff=k_hop))
    sub = nx.Graph()
    sub.add_nodes_from(sorted(nodes))
    sub.add_edges_from((u, v, d) for u, v, d in graph.edges(data=True) if u in nodes and v in nodes)
    info = {
        "rule": "union of shortest paths between targets + k-hop neighbourhood of targets",
        "k_hop": k_hop,
        "n_targets": len(found),
        "targets_missing": list(missing),
        "n_candidates": sub.number_of_nodes(),
        "n_candidate_edges": sub.number_of_edges(),
        "n_path_genes": len(path_nodes),
        "n_network_genes": graph.number_of_nodes(),
    }
    return sub, info


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
        Random seed (weights and negative samples).
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


def _node_features(genes: list[str], features: pd.DataFrame | None):
    if features is None:
        return np.eye(len(genes), dtype=np.float32), []
    feat = features.copy()
    feat.index = feat.index.astype(str).str.upper()
    feat = feat[~feat.index.duplicated()]
    unmatched = [g for g in genes if g not in feat.index]
    x = feat.reindex(genes).to_numpy(np.float64)
    mu, sd = np.nanmean(x, 0), np.nanstd(x, 0)
    x = (x - mu) / np.where(sd > 0, sd, 1.0)
    return np.nan_to_num(x, nan=0.0).astype(np.float32), unmatched


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
        Gene network (node names are upper-cased in the output).
    features : pandas.DataFrame, optional
        Node features indexed by gene (case-insensitive match), standardised per column.
        Genes without features get zeros (the column mean) and are reported; with no
        table, one-hot identity features are used.
    params : GAEParams
        Training parameters.
    progress : bool
        Show a progress bar.

    Returns
    -------
    embeddings : pandas.DataFrame
        L2-normalised embeddings indexed by upper-case gene (columns ``emb_0`` ...).
    info : dict
        ``unmatched`` genes (no features), final losses, gene and edge counts, params.
    """
    genes = sorted(str(g).upper() for g in graph.nodes)
    if len(genes) < 3:
        raise InputError("the gene network has fewer than 3 genes; check the edge list.")
    g = nx.relabel_nodes(graph, {n: str(n).upper() for n in graph.nodes}, copy=True)
    x, unmatched = _node_features(genes, features)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    a_hat = torch.tensor(_norm_adj(g, genes), dtype=torch.float32)
    xt = torch.tensor(x)
    idx = {n: i for i, n in enumerate(genes)}
    pos = np.array(sorted((idx[u], idx[v]) for u, v in g.edges), dtype=np.int64).reshape(-1, 2)
    model = GraphAutoencoder(x.shape[1], params.hidden, params.dim)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    bce = nn.BCEWithLogitsLoss()
    n = len(genes)
    target = torch.cat([torch.ones(len(pos)), torch.zeros(len(pos))])
    edge_loss = feat_loss = torch.tensor(float("nan"))
    for _ in tqdm(range(params.epochs), desc="graph autoencoder", disable=not progress):
        z = model(a_hat, xt)
        neg = rng.integers(0, n, size=pos.shape)
        pairs = torch.from_numpy(np.concatenate([pos, neg]))
        logits = (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(1)
        edge_loss = bce(logits, target) if len(pos) else torch.tensor(0.0)
        feat_loss = ((model.dec(z) - xt) ** 2).mean()
        loss = edge_loss + params.feature_weight * feat_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = model(a_hat, xt).double().numpy()
    z = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    emb = pd.DataFrame(z, index=pd.Index(genes, name="gene"))
    emb.columns = [f"emb_{i}" for i in range(z.shape[1])]
    return emb, {
        "unmatched": unmatched,
        "edge_loss": float(edge_loss.detach()),
        "feature_loss": float(feat_loss.detach()),
        "n_genes": n,
        "n_edges": g.number_of_edges(),
        "params": asdict(params),
    }


def spectral_embedding(graph: nx.Graph, dim: int = 32) -> pd.DataFrame:
    """Spectral embedding of a network (baseline for link prediction), L2-normalised.

    With ``L = I - D^-1/2 A D^-1/2 = V diag(lam) V^T`` the embedding of gene ``i`` is
    ``V[i, 1:dim+1] * sqrt(max(1 - lam, 0))``: the Laplacian eigenvectors with the ``dim``
    smallest non-trivial eigenvalues, weighted so that inner products are the best
    rank-``dim`` approximation of the normalised adjacency (its positive part). Unweighted
    Laplacian eigenmaps score neighbours negatively once high-frequency vectors are
    included, so the weighting gives the baseline its best chance.

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
    a = nx.to_numpy_array(g, nodelist=genes, weight="weight")
    dinv = 1 / np.sqrt(np.maximum(a.sum(1), 1e-12))
    lap = np.eye(len(genes)) - dinv[:, None] * a * dinv[None, :]
    lam, vec = np.linalg.eigh(lap)
    dim = min(dim, len(genes) - 2)
    z = vec[:, 1 : dim + 1] * np.sqrt(np.clip(1 - lam[1 : dim + 1], 0, None))
    z = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    return pd.DataFrame(z, index=pd.Index(genes, name="gene"))


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
