import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from i2r_utils.plotting import plot_fields, plot_top_genes, plot_topk_curves, save_figure  # noqa: E402


def test_figures_are_written(tmp_path):
    ranking = pd.DataFrame({"gene": list("ABCDE"), "distance": np.arange(5.0), "rank": range(1, 6)})
    fig = plot_top_genes(ranking, "C", 3)
    colors = [p.get_facecolor() for p in fig.axes[0].patches]
    assert len(colors) == 3 and len({c for c in colors}) == 2  # true gene highlighted
    assert fig.axes[0].get_xlabel() == "distance of gene embedding to prediction"
    two = plot_top_genes(ranking, "C", 3, direction="two_way")
    assert two.axes[0].get_xlabel() == "mean rank over the two directions"
    paths = save_figure(fig, tmp_path / "top")
    assert all((tmp_path / f"top.{e}").stat().st_size > 1000 for e in ("png", "svg")) and paths
    ks = np.arange(1, 51)
    fig = plot_topk_curves({"m": ks / 50, "p": (ks / 100, ks / 120, ks / 80)}, 100)
    assert len(fig.axes[0].lines) == 3
    fig = plot_fields([np.random.rand(8, 8)] * 3, ["a", "b", "c"], ncols=2)
    assert [a.get_title() for a in fig.axes[:3]] == ["a", "b", "c"]


def test_topk_band_and_translation_embedding(tmp_path):
    from i2r_utils.plotting import plot_translation_embedding

    ks = np.arange(1, 51)
    fig = plot_topk_curves({"m": ks / 50, "p": (ks / 100, ks / 120, ks / 80)}, [40, 60])
    assert np.isclose(fig.axes[0].lines[-1].get_ydata()[-1], (1 + 50 / 60) / 2)  # mean min(k/N,1)
    assert len(fig.axes[0].collections) == 1  # the permutation band
    rng = np.random.default_rng(0)
    emb = pd.DataFrame(rng.normal(size=(20, 5)), index=[f"G{i}" for i in range(20)])
    items = [("c1", "g3", emb.loc["G3"].to_numpy() + 0.1, 1), ("c2", "G7", np.zeros(5), 9)]
    fig = plot_translation_embedding(emb, items, "t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["c1 (rank 1)", "c2 (rank 9)"]
    assert np.allclose(ax.lines[0].get_xydata()[0], ax.collections[1].get_offsets()[0])
    save_figure(fig, tmp_path / "emb")
    assert (tmp_path / "emb.png").stat().st_size > 1000
