import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from i2r_utils.simulate import screen_params, simulate_network, simulate_screen


def test_network_is_connected_scale_free_like():
    import networkx as nx

    graph, genes, expr, heat = simulate_network(screen_params("default"), seed=1)
    assert nx.is_connected(graph) and graph.number_of_nodes() == 300
    deg = np.array([d for _, d in graph.degree])
    assert deg.max() >= 5 * np.median(deg)  # hubs
    assert expr.shape == (300, 40) and (expr.to_numpy() >= 0).all()
    # expression is smooth on the network: neighbours correlate more than random pairs
    x = expr.to_numpy() - expr.to_numpy().mean(1, keepdims=True)
    idx = {g: i for i, g in enumerate(genes.gene)}
    corr = np.corrcoef(x)
    nb = np.mean([corr[idx[u], idx[v]] for u, v in graph.edges])
    assert nb > np.mean(corr[np.triu_indices(300, 1)]) + 0.1


def test_screen_is_deterministic_and_complete(tiny_screen, tmp_path):
    again = simulate_screen(tmp_path / "again", "tiny", 0, progress=False)
    meta = pd.read_csv(tiny_screen / "metadata.csv")
    for rel in meta.Metadata_ImagePath[:3]:
        assert np.array_equal(tifffile.imread(tiny_screen / rel), tifffile.imread(again / rel))
    img = tifffile.imread(tiny_screen / meta.Metadata_ImagePath[0])
    mask = tifffile.imread(tiny_screen / meta.Metadata_MaskPath[0])
    assert img.dtype == np.uint16 and img.shape == mask.shape and mask.max() >= 1
    assert set(meta.groupby("Metadata_Plate").Metadata_Condition.apply(lambda c: "EMPTY" in set(c)))
    truth = pd.read_csv(tiny_screen / "truth" / "conditions.csv")
    null = truth[~truth.has_phenotype & (truth.Metadata_Condition != "EMPTY")]
    assert len(null) == 2 and (null.filter(like="shift_").to_numpy() == 0).all()
    assert json.loads((tiny_screen / "screen.json").read_text())["seed"] == 0
    # reuse the same screen, refuse a different one in the same folder
    assert simulate_screen(tiny_screen, "tiny", 0, progress=False) == tiny_screen
    with pytest.raises(FileExistsError, match="other parameters"):
        simulate_screen(tiny_screen, "tiny", 1, progress=False)


def test_bad_size_is_clear():
    with pytest.raises(ValueError, match="unknown screen size"):
        screen_params("huge")
    with pytest.raises(ValueError, match="unknown screen parameters"):
        screen_params("tiny", n_gens=3)
