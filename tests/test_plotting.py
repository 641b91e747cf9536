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
    paths = save_figure(fig, tmp_path / "top")
    assert all((tmp_path / f"top.{e}").stat().st_size > 1000 for e in ("png", "svg")) and paths
    ks = np.arange(1, 51)
    fig = plot_topk_curves({"m": ks / 50, "p": (ks / 100, ks / 120, ks / 80)}, 100)
    assert len(fig.axes[0].lines) == 3
    fig = plot_fields([np.random.rand(8, 8)] * 3, ["a", "b", "c"], ncols=2)
    assert [a.get_title() for a in fig.axes[:3]] == ["a", "b", "c"]
