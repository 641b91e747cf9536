import networkx as nx
import numpy as np
import pandas as pd
import pytest

from i2r_utils.interactome import (
    IMAGE2REG_COST_CUT,
    build_interactome,
    candidate_interactome,
    expression_prizes_costs,
    load_expression,
    load_network,
    match_genes,
    pcst_interactome,
    plate_map_genes,
    prune_network,
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


def test_cost_columns_and_tab_parsing(tmp_path):
    p = tmp_path / "irefindex.txt"
    p.write_text("protein1\tprotein2\tcost\nA\tB\t0.2\nB\tA\t0.5\nB\tc\t0.7\n")
    g = load_network(p)
    assert g["A"]["B"]["cost"] == pytest.approx(0.2)  # the most confident duplicate kept
    assert g["A"]["B"]["weight"] == pytest.approx(0.8) and g.has_edge("B", "C")
    q = tmp_path / "plain.tsv"
    q.write_text("gene1\tgene2\nA\tB\n")
    assert load_network(q)["A"]["B"]["cost"] == 1.0  # unweighted: unit costs


def test_prune_network_steps():
    g = nx.star_graph(40)  # hub 0 with 40 leaves
    g.add_edges_from([(41, 42), (42, 43), (1, 2)])
    nx.set_edge_attributes(g, 0.1, "cost")
    g[1][2]["cost"] = 0.594  # at the cut: dropped
    pruned, steps = prune_network(g, 0.594, 0.9)
    assert [s["step"].split(" ")[0] for s in steps] == ["input", "edges", "largest", "hubs"]
    assert steps[1]["edges"] == g.number_of_edges() - 1
    assert steps[2]["nodes"] == 41  # the star; 41-43 is a smaller component
    assert 0 not in pruned and pruned.number_of_edges() == 0  # the hub is gone
    _, steps = prune_network(g, 0.594, 1.0, keep_genes=[str(i) for i in range(10)])
    assert steps[1]["step"] == "genes with expression"


def test_pcst_interactome_is_induced_and_covers_targets():
    # two targets joined by a cheap path A-B-C and an expensive detour A-X-C; B-Y is cheap
    g = nx.Graph()
    for u, v, c in [("A", "B", 0.1), ("B", "C", 0.1), ("A", "X", 0.9), ("X", "C", 0.9),
                    ("B", "Y", 0.1), ("Y", "Z", 0.1), ("A", "C", 5.0)]:  # fmt: skip
        g.add_edge(u, v, cost=c)
    sub, info = pcst_interactome(g, ["a", "C", "nope"])
    assert set(sub.nodes) == {"A", "B", "C"} and info["targets_missing"] == ["nope"]
    assert sub.has_edge("A", "C")  # induced: the expensive direct edge is kept
    assert 0.1 < info["beta"] <= 0.5 and info["targets_uncovered"] == []
    _, low = pcst_interactome(g, ["A", "C"], betas=[0.1])  # prizes 0.1 < path cost 0.2
    assert low["targets_uncovered"] and low["beta"] == 0.1
    # a large prize on Z pulls Y and Z into the tree
    sub, info = pcst_interactome(g, ["A", "C"], prizes={"Z": 10.0})
    assert {"Y", "Z"} <= set(sub.nodes)
    sub, info = build_interactome(g, ["A", "C"], "pcst")
    assert info["interactome"] == "pcst"
    with pytest.raises(InputError, match="unknown interactome"):
        build_interactome(g, ["A"], "steiner")


def test_expression_prizes_and_spearman_costs():
    g = nx.Graph()
    g.add_edge("A", "B", cost=0.5)
    g.add_edge("B", "C", cost=0.5)
    g.add_edge("C", "Q", cost=0.3)  # Q has no expression: keeps its cost
    x = np.arange(6.0)
    expr = pd.DataFrame(
        {**{f"s{i}": [x[i], -x[i], x[i] ** 3] for i in range(6)}, "logFC": [1.0, -2.0, 0.0]},
        index=["A", "B", "C"],
    )
    g2, prizes, info = expression_prizes_costs(g, expr)
    assert g2["A"]["B"]["cost"] == pytest.approx(0.0)  # |rho| = 1 (anti-correlated)
    assert g2["B"]["C"]["cost"] == pytest.approx(0.0) and g2["C"]["Q"]["cost"] == 0.3
    assert prizes == {"A": 1.0, "B": 2.0, "C": 0.0} and info["n_samples"] == 6
    assert g["A"]["B"]["cost"] == 0.5  # input untouched


def test_plate_map_genes(tmp_path, shared_data):
    genes = plate_map_genes(shared_data / "orf_rohban2017" / "plate_map_augmented_metadata.csv")
    assert len(genes) > 150 and {"BRAF", "JUN", "RAF1", "SMAD4"} <= set(genes)
    with pytest.raises(InputError, match="no column"):
        (tmp_path / "p.csv").write_text("a,b\n1,2\n")
        plate_map_genes(tmp_path / "p.csv")


@pytest.fixture(scope="module")
def irefindex(shared_data):
    """The real iRefIndex v14 network and its Image2Reg pruning (loaded once)."""
    g = load_network(
        shared_data / "network_irefindex_v14" / "iRefIndex_v14_MIScore_interactome_C9.costs.txt"
    )
    return g, *prune_network(g)


def test_real_irefindex_loads_and_prunes(irefindex):
    g, pruned, steps = irefindex
    # 182,002 rows; 47 are the same pair twice (most confident kept), as Image2Reg counts
    assert (g.number_of_nodes(), g.number_of_edges()) == (15759, 181955)
    assert all(0 <= c <= 1 for *_, c in g.edges(data="cost"))
    assert [s["edges"] for s in steps] == sorted((s["edges"] for s in steps), reverse=True)
    assert nx.is_connected(pruned.subgraph(max(nx.connected_components(pruned), key=len)))
    assert max(c for *_, c in pruned.edges(data="cost")) < IMAGE2REG_COST_CUT
    degree = np.array([d for _, d in g.degree])
    assert max(d for _, d in pruned.degree) < degree.max()  # the largest hubs are gone


def test_real_irefindex_interactomes_cover_named_genes(irefindex):
    _, pruned, _ = irefindex
    named = ["BRAF", "JUN", "RAF1", "SMAD4", "SREBF1"]
    sub, info = pcst_interactome(pruned, named)
    assert info["targets_uncovered"] == [] and set(named) <= set(sub.nodes)
    assert info["n_candidates"] < 60  # a small tree, induced
    sp, _ = candidate_interactome(pruned, named, k_hop=0)
    assert set(named) <= set(sp.nodes)
