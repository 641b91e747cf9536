"""Gene-gene networks and the candidate interactome.

Networks load from edge lists (``gene1 gene2 [weight]`` as TSV/CSV, STRING-style
``protein1 protein2 combined_score``, or iRefIndex/OmicsIntegrator-style
``protein1 protein2 cost``); node features from a genes x samples table or an AnnData
``.h5ad`` file (genes are the ``var`` axis). Gene symbols are matched case-insensitively
(everything is upper-cased) and genes that cannot be matched are reported. Every edge carries
a ``weight`` (confidence, larger = more confident) and a ``cost`` (smaller = more confident).

The candidate interactome (the genes that are ranked for a held-out condition) is built from
the network and the list of over-expressed target genes only -- no image data, no screen
result -- so it cannot leak a held-out condition's phenotype. Two rules
(:func:`build_interactome`):

* ``shortest_path`` (i2r): the union of one shortest path between every pair of targets in
  the same connected component, plus the ``k_hop`` neighbourhood of every target
  (:func:`candidate_interactome`); deterministic, one parameter.
* ``pcst`` (Image2Reg): the subgraph INDUCED by the nodes of a prize-collecting Steiner tree
  (``pcst_fast``, unrooted, one tree, strong pruning) whose prizes are min-max scaled and
  multiplied by the smallest ``beta`` in 0.1 .. 9.9 (step 0.1) for which the tree covers every
  target (:func:`pcst_interactome`). Prizes and costs come from an expression table when one
  is given (:func:`expression_prizes_costs`), else uniform target prizes and the network's own
  edge costs.

:func:`prune_network` is Image2Reg's pruning of iRefIndex: edges with cost >= 0.594 dropped,
largest connected component kept, hub genes above the 99.9 % degree quantile removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from .columns import CONTROL
from .io import InputError

__all__ = [
    "INTERACTOMES",
    "IMAGE2REG_COST_CUT",
    "IMAGE2REG_HUB_QUANTILE",
    "PCST_BETAS",
    "load_network",
    "load_expression",
    "match_genes",
    "target_genes",
    "plate_map_genes",
    "prune_network",
    "candidate_interactome",
    "expression_prizes_costs",
    "pcst_interactome",
    "build_interactome",
]

#: Candidate-interactome rules of :func:`build_interactome`.
INTERACTOMES = ("shortest_path", "pcst")
#: Image2Reg's iRefIndex pruning: edges with a cost at or above this are dropped.
IMAGE2REG_COST_CUT = 0.594
#: Image2Reg's iRefIndex pruning: genes with a degree above this quantile are dropped.
IMAGE2REG_HUB_QUANTILE = 0.999
#: Image2Reg's scan of the prize multiplier: 0.1, 0.2, ..., 9.9.
PCST_BETAS = tuple(round(0.1 * i, 1) for i in range(1, 100))


def _read_delimited(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    df = pd.read_csv(path, sep="\t")
    if df.shape[1] < 2:  # not tab separated: any whitespace
        df = pd.read_csv(path, sep=r"\s+", engine="python")
    return df


def _edge_costs(wcol: str | None, w: pd.Series) -> pd.Series:
    """Edge cost (smaller = more confident) of each row, from its weight column."""
    if wcol == "cost":
        return w.astype(float)
    if wcol is None:
        return pd.Series(1.0, index=w.index)
    if w.min() >= 0 and w.max() <= 1:
        return 1.0 - w
    return 1.0 - w / w.abs().max()


def load_network(
    path: str | Path, aliases: Mapping[str, str] | None = None, min_weight: float = 0.0
) -> nx.Graph:
    """Load an undirected gene network from an edge list.

    Parameters
    ----------
    path : path-like
        ``.csv`` (comma) or tab/whitespace separated file with two gene columns
        (``gene1``/``gene2``, ``protein1``/``protein2``, or else the first two columns) and
        optionally ``weight``, ``combined_score`` (STRING, 0-1000, divided by 1000),
        ``score`` or ``cost`` (iRefIndex MIScore cost, ``weight = 1 - cost``).
    aliases : mapping, optional
        Identifier -> gene symbol (e.g. STRING protein id -> preferred name), applied
        case-insensitively; identifiers without an alias are kept as they are.
    min_weight : float
        Edges with a (rescaled) weight below this are dropped.

    Returns
    -------
    networkx.Graph
        Graph over upper-case gene symbols with ``weight`` and ``cost`` edge attributes
        (``cost`` from the file, else ``1 - weight`` for weights in [0, 1], else 1 for an
        unweighted list); nodes are inserted in sorted order so every traversal is
        deterministic. A duplicated pair keeps its most confident edge.
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
    wcol = next((c for c in ("weight", "combined_score", "score", "cost") if c in cols), None)
    w = pd.to_numeric(df[wcol], errors="coerce") if wcol else pd.Series(1.0, index=df.index)
    if w.isna().any():
        raise InputError(f"{path}: column {wcol!r} has non-numeric values.")
    if wcol == "combined_score" and w.max() > 1:
        w = w / 1000.0
    cost = _edge_costs(wcol, w)
    if wcol == "cost":
        w = 1.0 - cost
    amap = {str(k).upper(): str(v).upper() for k, v in (aliases or {}).items()}
    u = df[a].astype(str).str.upper().map(lambda s: amap.get(s, s))
    v = df[b].astype(str).str.upper().map(lambda s: amap.get(s, s))
    edges = pd.DataFrame({"u": u, "v": v, "w": w.astype(float), "c": cost.astype(float)})
    edges = edges[(edges.u != edges.v) & (edges.w >= min_weight)]
    edges[["u", "v"]] = np.sort(edges[["u", "v"]].to_numpy(), axis=1)
    edges = edges.sort_values("w", ascending=False, kind="stable")
    edges = edges.drop_duplicates(["u", "v"]).sort_values(["u", "v"], kind="stable")
    g = nx.Graph()
    g.add_nodes_from(sorted(set(edges.u) | set(edges.v)))
    g.add_edges_from(
        (u, v, {"weight": w, "cost": c}) for u, v, w, c in edges.itertuples(index=False)
    )
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


def plate_map_genes(path: str | Path, column: str = "TARGETGENE") -> list[str]:
    """Over-expressed genes of a real screen's plate map.

    Parameters
    ----------
    path : path-like
        Plate-map CSV (e.g. Rohban et al. 2017 ``plate_map_augmented_metadata.csv``).
    column : str
        Column with the target gene symbol (empty for control wells).

    Returns
    -------
    list of str
        Sorted unique upper-case gene symbols.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: plate map not found.")
    table = pd.read_csv(path)
    if column not in table:
        raise InputError(f"{path}: no column {column!r}; columns: {list(table.columns)}.")
    return sorted({str(g).strip().upper() for g in table[column].dropna() if str(g).strip()})


def _counts(step: str, g: nx.Graph) -> dict:
    return {"step": step, "nodes": g.number_of_nodes(), "edges": g.number_of_edges()}


def prune_network(
    graph: nx.Graph,
    cost_cut: float = IMAGE2REG_COST_CUT,
    hub_quantile: float = IMAGE2REG_HUB_QUANTILE,
    keep_genes: Iterable[str] | None = None,
) -> tuple[nx.Graph, list[dict]]:
    """Image2Reg's pruning of the PPI, step by step.

    Steps, in the original's order: keep only ``keep_genes`` (the genes with expression data,
    when given); drop edges with ``cost >= cost_cut``; keep the largest connected component;
    remove the genes whose degree is above the ``hub_quantile`` quantile of the degrees.

    Parameters
    ----------
    graph : networkx.Graph
        Network with a ``cost`` edge attribute (:func:`load_network`).
    cost_cut : float
        Edges with a cost at or above this are dropped.
    hub_quantile : float
        Degree quantile above which genes are removed (1 keeps every gene).
    keep_genes : iterable of str, optional
        Genes to keep before the other steps (case-insensitive).

    Returns
    -------
    pruned : networkx.Graph
        The pruned network (a copy, sorted node order).
    steps : list of dict
        ``step``, ``nodes``, ``edges`` after each step (the input first).
    """
    steps = [_counts("input", graph)]
    g = graph
    if keep_genes is not None:
        keep = {str(k).upper() for k in keep_genes}
        g = g.subgraph([n for n in g.nodes if str(n).upper() in keep])
        steps.append(_counts("genes with expression", g))
    strong = nx.Graph()
    strong.add_edges_from(
        (u, v, d) for u, v, d in g.edges(data=True) if d.get("cost", 0) < cost_cut
    )
    steps.append(_counts(f"edges with cost < {cost_cut:g}", strong))
    if strong.number_of_nodes():
        strong.remove_nodes_from(set(strong.nodes) - max(nx.connected_components(strong), key=len))
    steps.append(_counts("largest connected component", strong))
    degree = dict(strong.degree)
    cut = np.quantile(list(degree.values()), hub_quantile) if degree else 0
    strong.remove_nodes_from([n for n, d in degree.items() if d > cut])
    steps.append(
        _counts(f"hubs above the {100 * hub_quantile:g} % degree quantile removed", strong)
    )
    g = strong
    return _sorted_copy(g), steps


def _sorted_copy(g: nx.Graph) -> nx.Graph:
    out = nx.Graph()
    out.add_nodes_from(sorted(g.nodes))
    out.add_edges_from(sorted((min(u, v), max(u, v), d) for u, v, d in g.edges(data=True)))
    return out


def expression_prizes_costs(
    graph: nx.Graph, expression: pd.DataFrame
) -> tuple[nx.Graph, dict[str, float], dict]:
    """Image2Reg-style node prizes and edge costs from an expression table.

    Edge cost ``1 - |Spearman r|`` of the two genes' expression over the table's samples
    (Image2Reg: over U2OS single cells); edges with a gene missing from the table keep the
    network's cost. Node prize ``|logfc|`` when the table has a ``logfc`` column (Image2Reg:
    log fold change of U2OS against the mean of the other CCLE lines; that column is not a
    sample), else none (uniform target prizes). Targets get the maximum prize
    (:func:`pcst_interactome`).

    Parameters
    ----------
    graph : networkx.Graph
        Network with ``cost`` edge attributes.
    expression : pandas.DataFrame
        Genes x samples table indexed by upper-case gene, optionally with a ``logfc`` column.

    Returns
    -------
    graph : networkx.Graph
        A copy with the expression-derived costs.
    prizes : dict
        Gene -> prize (empty without a ``logfc`` column).
    info : dict
        ``n_edges_expression_cost``, ``n_genes_prize``, ``n_samples``.
    """
    lower = {str(c).lower(): c for c in expression.columns}
    logfc = expression[lower["logfc"]] if "logfc" in lower else None
    samples = expression.drop(columns=[lower["logfc"]] if logfc is not None else [])
    ranks = samples.rank(axis=1).to_numpy(float, copy=True)
    ranks = np.nan_to_num(ranks - np.nanmean(ranks, axis=1, keepdims=True))  # missing: mean
    ranks /= np.linalg.norm(ranks, axis=1, keepdims=True).clip(1e-12)
    row = {g: i for i, g in enumerate(samples.index)}
    g = graph.copy()
    both = [(u, v) for u, v in g.edges if u in row and v in row]
    if both and samples.shape[1] > 2:
        iu = np.array([row[u] for u, _ in both])
        iv = np.array([row[v] for _, v in both])
        rho = (ranks[iu] * ranks[iv]).sum(1)
        for (u, v), r in zip(both, rho, strict=True):
            g[u][v]["cost"] = float(1 - abs(r))
    prizes = {} if logfc is None else logfc.abs().dropna().astype(float).to_dict()
    info = {
        "n_edges_expression_cost": len(both) if samples.shape[1] > 2 else 0,
        "n_genes_prize": len(prizes),
        "n_samples": samples.shape[1],
    }
    return g, prizes, info


def _pcst_solver():
    """``pcst_fast.pcst_fast``, after checking it on a 4-gene path with a known answer.

    The pcst_fast 1.0.10 wheels return arrays of zeros under numpy 2; the maintained fork
    ``pcst-fast2`` (same module name) does not.
    """
    import pcst_fast

    path = np.array([[0, 1], [1, 2], [2, 3]], dtype=np.int64)
    nodes, _ = pcst_fast.pcst_fast(path, np.array([1.0, 1, 1, 1]), np.array([0.8, 1.8, 2.8]),
                                   -1, 1, "strong", 0)  # fmt: skip
    if sorted(np.asarray(nodes).tolist()) != [0, 1]:
        raise InputError(
            f"pcst_fast ({pcst_fast.__file__}) returns wrong trees with numpy "
            f"{np.__version__}; install the numpy-2 compatible fork: pip install pcst-fast2"
        )
    return pcst_fast.pcst_fast


def _reachable_targets(graph: nx.Graph, found: list[str]) -> list[str]:
    """Targets in the connected component holding the most targets (one tree reaches them)."""
    best: list[str] = []
    for comp in nx.connected_components(graph):
        inside = [t for t in found if t in comp]
        if len(inside) > len(best):
            best = inside
    return best


def pcst_interactome(
    graph: nx.Graph,
    targets: Iterable[str],
    prizes: Mapping[str, float] | None = None,
    betas: Iterable[float] = PCST_BETAS,
) -> tuple[nx.Graph, dict]:
    """Image2Reg's interactome: the subgraph induced by a prize-collecting Steiner tree.

    Prizes (``prizes`` for the genes it names, 0 elsewhere; targets get the maximum, 1 when
    no prizes are given) are min-max scaled and multiplied by ``beta``; ``pcst_fast`` (root
    -1, one tree, strong pruning) is solved with the edges' ``cost`` for each ``beta`` in
    turn, and the first tree that contains every reachable target is kept (when none does,
    the first tree covering the most). Reachable: in the connected component that holds the
    most targets (one tree cannot span two components; after hub removal a few targets may
    be cut off). The interactome is the subgraph of ``graph`` INDUCED by the tree's genes,
    not the tree.

    Parameters
    ----------
    graph : networkx.Graph
        Network with ``cost`` edge attributes.
    targets : iterable of str
        Target gene symbols (case-insensitive).
    prizes : mapping, optional
        Gene -> non-negative prize (e.g. :func:`expression_prizes_costs`).
    betas : iterable of float
        Prize multipliers scanned in order (Image2Reg: 0.1 .. 9.9).

    Returns
    -------
    subgraph : networkx.Graph
        Induced subgraph on the tree's genes (sorted node order).
    info : dict
        ``rule``, ``beta``, ``n_tree_nodes``, ``n_targets``, ``targets_missing`` (not in
        the network), ``targets_unreachable`` (in another component), ``targets_uncovered``
        (not in the tree, unreachable ones included), ``n_candidates``,
        ``n_candidate_edges``, ``n_network_genes``, ``prizes``.
    """
    mapping, missing = match_genes(targets, graph.nodes)
    found = sorted(set(mapping.values()))
    if not found:
        raise InputError(
            f"none of the {len(missing)} target genes is in the network; check the gene "
            "symbols of the edge list against the screen's conditions."
        )
    nodes = sorted(graph.nodes)
    idx = {n: i for i, n in enumerate(nodes)}
    edges = np.array([(idx[u], idx[v]) for u, v in graph.edges], dtype=np.int64).reshape(-1, 2)
    costs = np.array([c for _, _, c in graph.edges(data="cost", default=1.0)], dtype=np.float64)
    p = np.array([float((prizes or {}).get(n, 0.0)) for n in nodes])
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise InputError("node prizes must be finite and non-negative.")
    p[[idx[t] for t in found]] = p.max() if p.max() > 0 else 1.0
    p = (p - p.min()) / (p.max() - p.min()) if p.max() > p.min() else np.ones_like(p)
    reach = _reachable_targets(graph, found)
    tgt = np.array([idx[t] for t in reach])
    solve = _pcst_solver()
    best, best_cov, best_beta = None, -1, None
    for beta in betas:
        vertices, _ = solve(edges, p * float(beta), costs, -1, 1, "strong", 0)
        cov = int(np.isin(tgt, vertices).sum())
        if cov > best_cov:
            best, best_cov, best_beta = vertices, cov, float(beta)
        if cov == len(tgt):
            break
    keep = {nodes[i] for i in best}
    sub = _sorted_copy(graph.subgraph(keep))
    info = {
        "rule": "subgraph induced by a prize-collecting Steiner tree (pcst_fast, strong pruning)",
        "beta": best_beta,
        "n_tree_nodes": len(keep),
        "n_targets": len(found),
        "targets_missing": list(missing),
        "targets_unreachable": [t for t in found if t not in reach],
        "targets_uncovered": [t for t in found if t not in keep],
        "n_candidates": sub.number_of_nodes(),
        "n_candidate_edges": sub.number_of_edges(),
        "n_network_genes": graph.number_of_nodes(),
        "prizes": "uniform on the targets" if not prizes else "given prizes, targets maximal",
    }
    return sub, info


def build_interactome(
    graph: nx.Graph,
    targets: Iterable[str],
    rule: str = "shortest_path",
    k_hop: int = 1,
    prizes: Mapping[str, float] | None = None,
) -> tuple[nx.Graph, dict]:
    """Candidate interactome by one of the rules of :data:`INTERACTOMES`.

    Parameters
    ----------
    graph : networkx.Graph
        Full (pruned) gene network.
    targets : iterable of str
        Target gene symbols.
    rule : {"shortest_path", "pcst"}
        :func:`candidate_interactome` (with ``k_hop``) or :func:`pcst_interactome` (with
        ``prizes``).
    k_hop : int
        Neighbourhood radius of the shortest-path rule.
    prizes : mapping, optional
        Node prizes of the Steiner-tree rule.

    Returns
    -------
    subgraph, info
        As the rule's function returns them; ``info["interactome"]`` names the rule.
    """
    if rule == "shortest_path":
        sub, info = candidate_interactome(graph, targets, k_hop)
    elif rule == "pcst":
        sub, info = pcst_interactome(graph, targets, prizes)
    else:
        raise InputError(f"unknown interactome rule {rule!r}; choose one of {list(INTERACTOMES)}")
    return sub, {"interactome": rule, **info}
