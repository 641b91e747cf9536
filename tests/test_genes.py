import networkx as nx
import numpy as np
import pandas as pd
import pytest

from i2r_utils.genes import GAEParams, embed_genes, load_expression, load_network
from i2r_utils.io import InputError


def test_load_string_style_and_case(tmp_path):
    p = tmp_path / "string.txt"
    p.write_text("protein1 protein2 combined_score\nbraf RAF1 900\nRAF1 jun 400\n")
    g = load_network(p)
    assert set(g.nodes) == {"BRAF", "RAF1", "JUN"} and g["BRAF"]["RAF1"]["weight"] == 0.9
    c = tmp_path / "edges.csv"
    c.write_text("a,b\nX,Y\n")
    assert load_network(c).has_edge("X", "Y")
    with pytest.raises(InputError, match="not found"):
        load_network(tmp_path / "none.tsv")


def test_embeddings_unit_norm_deterministic_and_structured(tmp_path):
    g = nx.connected_caveman_graph(4, 8)
    g = nx.relabel_nodes(g, {n: f"g{n}" for n in g})
    feats = pd.DataFrame(
        np.random.default_rng(0).normal(size=(32, 5)), index=[f"G{i}" for i in range(32)]
    )
    feats = feats.drop(index="G0")
    params = GAEParams(epochs=150, seed=3)
    e1, info = embed_genes(g, feats, params, progress=False)
    e2, _ = embed_genes(g, feats, params, progress=False)
    assert np.allclose(e1.to_numpy(), e2.to_numpy())
    assert np.allclose(np.linalg.norm(e1.to_numpy(), axis=1), 1)
    assert info["unmatched"] == ["G0"] and list(e1.index[:2]) == [
        "G0",
        "G1",
    ]  # case-insensitive match, missing one reported
    sim = e1.to_numpy() @ e1.to_numpy().T
    comm = np.array([int(n[1:]) // 8 for n in e1.index])
    same = comm[:, None] == comm[None, :]
    assert sim[same].mean() > sim[~same].mean() + 0.3


def test_expression_table(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("gene,s1,s2\nbraf,1,2\n")
    assert load_expression(p).loc["BRAF", "s2"] == 2
