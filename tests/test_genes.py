import networkx as nx
import numpy as np
import pandas as pd
import pytest

from i2r_utils.genes import (
    GAEParams,
    candidate_interactome,
    embed_genes,
    link_prediction_auc,
    load_expression,
    load_network,
    match_genes,
    spectral_embedding,
    split_edges,
    target_genes,
)
from i2r_utils.io import InputError


def load_string_aliases(path) -> dict[str, str]:
    """STRING ``protein.info`` table -> {upper-case protein id: upper-case preferred name}."""
    df = pd.read_csv(path, sep="\t")
    cols = {c.lower().lstrip("#"): c for c in df.columns}
    pid = cols.get("string_protein_id") or cols.get("protein_external_id")
    name = cols["preferred_name"]
    return dict(zip(df[pid].astype(str).str.upper(), df[name].astype(str).str.upper(), strict=True))


def _caveman(n_comm=4, size=8):
    g = nx.connected_caveman_graph(n_comm, size)
    return nx.relabel_nodes(g, {n: f"g{n}" for n in g})


def test_load_string_style_aliases_and_case(tmp_path):
    p = tmp_path / "string.txt"
    p.write_text("protein1 protein2 combined_score\nbraf RAF1 900\nRAF1 jun 400\njun braf 100\n")
    g = load_network(p, min_weight=0.2)
    assert set(g.nodes) == {"BRAF", "RAF1", "JUN"} and g["BRAF"]["RAF1"]["weight"] == 0.9
    assert not g.has_edge("JUN", "BRAF")  # below min_weight
    info = tmp_path / "info.tsv"
    info.write_text("#string_protein_id\tpreferred_name\n9606.ENSP1\tbraf\n9606.ENSP2\tRaf1\n")
    s = tmp_path / "s.txt"
    s.write_text("protein1 protein2 combined_score\n9606.ENSP1 9606.ensp2 700\n")
    assert load_network(s, load_string_aliases(info)).has_edge("BRAF", "RAF1")
    c = tmp_path / "edges.csv"
    c.write_text("a,b\nX,Y\nY,X\n")
    g = load_network(c)
    assert g.has_edge("X", "Y") and g.number_of_edges() == 1
    with pytest.raises(InputError, match="not found"):
        load_network(tmp_path / "none.tsv")


def test_expression_tables_and_h5ad(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("gene,s1,s2\nbraf,1,2\nBRAF,3,4\njun,0,1\n")
    e = load_expression(p)
    assert e.loc["BRAF", "s2"] == 3 and len(e) == 2  # duplicates (any case) averaged
    h = tmp_path / "e.h5ad"
    h.write_bytes(b"not really hdf5")
    try:
        import anndata  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="anndata"):
            load_expression(h)


def test_match_and_targets(tmp_path):
    mapping, unmatched = match_genes(["braf", "Jun", "XYZ"], ["BRAF", "JUN"])
    assert mapping == {"braf": "BRAF", "Jun": "JUN"} and unmatched == ["XYZ"]
    (tmp_path / "metadata.csv").write_text(
        "Metadata_Condition,Metadata_Plate\nEMPTY,P1\nbraf,P1\nJUN,P2\nBRAF,P2\n"
    )
    assert target_genes(tmp_path) == ["BRAF", "JUN"]
    with pytest.raises(InputError, match="metadata.csv"):
        target_genes(tmp_path / "nowhere")


def test_candidate_interactome_rule():
    g = nx.path_graph(["A", "B", "C", "D", "E", "F", "G"])
    g.add_edges_from([("C", "X"), ("X", "Y"), ("Q", "R")])
    sub, info = candidate_interactome(g, ["a", "E", "nope"], k_hop=0)
    assert set(sub.nodes) == {"A", "B", "C", "D", "E"}  # the path only
    assert info["targets_missing"] == ["nope"] and info["n_targets"] == 2
    sub, _ = candidate_interactome(g, ["A", "E"], k_hop=1)
    assert set(sub.nodes) == {"A", "B", "C", "D", "E", "F"}
    sub, _ = candidate_interactome(g, ["A", "E", "Q"], k_hop=2)
    assert {"G", "Q", "R"} <= set(sub.nodes) and "X" not in sub.nodes  # X is 3 hops away
    sub, _ = candidate_interactome(g, ["A", "E", "Q"], k_hop=3)
    assert "X" in sub.nodes and "Y" not in sub.nodes
    with pytest.raises(InputError):
        candidate_interactome(g, ["nope"])


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
