import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from i2r_utils.artifacts import artifact
from i2r_utils.gae import GAEParams
from i2r_utils.genes import (
    build_gene_embeddings,
    gene_protocol,
    gene_setup,
    load_gene_inputs,
    new_target_gene_embeddings,
    target_gene_embeddings,
)
from i2r_utils.io import InputError, read_table, write_json, write_table

TARGETS = ["T0", "T1", "T2", "T3", "T4", "T5"]


def _run(tmp_path, interactome="shortest_path", k_hop=0):
    """A small screen's data folder and a work_dir as the dataset stages leave it."""
    data, work = tmp_path / "data", tmp_path / "work"
    (data / "network").mkdir(parents=True)
    g = nx.connected_caveman_graph(3, 6)
    names = {n: (TARGETS[n // 3] if n % 3 == 0 and n else f"G{n}") for n in g}
    edges = pd.DataFrame([(names[u], names[v], 0.8) for u, v in g.edges])
    edges.columns = ["gene1", "gene2", "weight"]
    edges.loc[len(edges)] = ["T0", "G1", 0.9]  # T0 is a leaf: no path between others uses it
    edges.to_csv(data / "network" / "edges.tsv", sep="\t", index=False)
    pd.DataFrame({"Metadata_Condition": ["EMPTY", *TARGETS]}).to_csv(
        data / "metadata.csv", index=False
    )
    params = GAEParams(hidden=8, dim=4, epochs=60)
    setup = gene_setup(data, "network/edges.tsv", None, interactome, k_hop, params=params)
    inputs = load_gene_inputs(setup)
    _, emb, info = build_gene_embeddings(inputs, setup, inputs["targets"])
    write_table(emb.reset_index(), artifact(work, "gene_embeddings"))
    write_json({**info, "setup": setup}, artifact(work, "gene_embedding_info"))
    folds = pd.DataFrame({"Metadata_Condition": TARGETS, "Metadata_Fold": [0, 1] * 3})
    write_table(folds, artifact(work, "folds"))
    write_table(folds[["Metadata_Condition"]], artifact(work, "impactful"))
    rng = np.random.default_rng(0)
    rows = [
        {"Metadata_Fold": f, "Metadata_Condition": c, "f0": float(i % 2) * 5 + rng.normal(),
         "f1": rng.normal()}
        for f in (0, 1) for i, c in enumerate(["EMPTY", *TARGETS])
    ]  # fmt: skip
    write_table(
        pd.DataFrame(rows), artifact(work, "profiles_dir") / "cnn_condition_profiles.parquet"
    )
    return work


def test_default_returns_the_dataset_table_unchanged(tmp_path):
    work = _run(tmp_path)
    emb = target_gene_embeddings(work, "T1")
    ref = read_table(artifact(work, "gene_embeddings")).set_index("gene")
    pd.testing.assert_frame_equal(emb, ref)
    assert not artifact(work, "target_gene_embeddings", condition="T1").exists()


def test_new_target_protocol_builds_without_the_held_out_gene(tmp_path):
    work = _run(tmp_path, k_hop=0)
    full = read_table(artifact(work, "gene_embeddings")).set_index("gene")
    assert "T0" in full.index  # every target is a candidate under all_targets
    emb = target_gene_embeddings(work, "T0", protocol="new_target")
    assert "T0" not in emb.index and set(emb.index) < set(full.index)
    written = read_table(artifact(work, "target_gene_embeddings", condition="T0"))
    assert list(written["gene"]) == list(emb.index)
    info = json.loads(artifact(work, "target_gene_embedding_info", condition="T0").read_text())
    assert info["held_out_is_candidate"] is False and info["protocol"] == "new_target"
    assert "T0" not in info["candidates"]["targets_missing"]  # not asked for at all


def test_gamma_uses_training_clusters_only(tmp_path):
    work = _run(tmp_path, k_hop=1)
    emb = target_gene_embeddings(work, "T2", gamma=1.0, seed=1)
    info = json.loads(artifact(work, "target_gene_embedding_info", condition="T2").read_text())
    # T2 (fold 0) is held out: the 4 other targets of fold 0's space are labelled, T2 is not
    assert info["n_labelled_genes"] == len(TARGETS) - 1 and info["cluster_loss"] >= 0
    assert "T2" in emb.index and info["gamma"] == 1.0
    full = read_table(artifact(work, "gene_embeddings")).set_index("gene")
    assert not np.allclose(emb.loc[full.index].to_numpy(), full.to_numpy())
    with pytest.raises(InputError, match="protocol"):
        target_gene_embeddings(work, "T2", protocol="leave_out")
    with pytest.raises(InputError, match="no fold"):
        target_gene_embeddings(work, "NOPE", gamma=1.0)


def test_new_target_table_matches_the_held_out_conditions(tmp_path):
    """A screen condition predicted as a new target gets the table its held-out run used."""
    work = _run(tmp_path, k_hop=1)
    full = read_table(artifact(work, "gene_embeddings")).set_index("gene")
    assert gene_protocol(work) == {"gamma": 0.0, "protocol": "all_targets", "seed": 0}
    # an outside target, nothing trained: the dataset-wide table (leakage-free)
    for protocol in ("all_targets", "new_target"):
        emb, info = new_target_gene_embeddings(work, 0, TARGETS, protocol=protocol)
        assert info["source"] == "dataset"
        pd.testing.assert_frame_equal(emb, full)
    train = [t for t in TARGETS if t != "T2"]
    for gamma, protocol in ((1.0, "all_targets"), (0.0, "new_target"), (1.0, "new_target")):
        held = target_gene_embeddings(work, "T2", gamma=gamma, protocol=protocol, seed=1)
        assert gene_protocol(work) == {"gamma": gamma, "protocol": protocol, "seed": 1}
        emb, info = new_target_gene_embeddings(
            work, 0, train, "T2", gamma=gamma, protocol=protocol, seed=1
        )
        assert info["source"] == "trained" and info["gamma"] == gamma
        pd.testing.assert_frame_equal(emb, held)
    # gamma > 0 for an outside target: clusters of every training condition of the fold
    emb, info = new_target_gene_embeddings(work, 0, TARGETS, gamma=1.0, seed=1)
    assert info["n_labelled_genes"] == len(TARGETS)
    assert not np.allclose(emb.loc[full.index].to_numpy(), full.to_numpy())
