import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from i2r_utils.plotting import plot_fields, save_figure  # noqa: E402


def test_figures_are_written(tmp_path):
    fig, ax = plt.subplots()
    ax.barh(["A", "B", "C"], [1.0, 2.0, 3.0])
    paths = save_figure(fig, tmp_path / "sub" / "top")
    assert paths == [str(tmp_path / "sub" / f"top.{e}") for e in ("png", "svg")]
    assert all((tmp_path / "sub" / f"top.{e}").stat().st_size > 1000 for e in ("png", "svg"))
    fig = plot_fields([np.random.rand(8, 8)] * 3, ["a", "b", "c"], ncols=2)
    assert [a.get_title() for a in fig.axes[:3]] == ["a", "b", "c"]
    assert len(fig.axes) == 4 and not fig.axes[3].images  # the unused panel stays empty
