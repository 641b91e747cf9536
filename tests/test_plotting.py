import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from i2r_utils.plotting import DPI, PALETTE, plot_fields, save_figure  # noqa: E402


def test_figures_are_written(tmp_path):
    fig, ax = plt.subplots()
    ax.barh(["A", "B", "C"], [1.0, 2.0, 3.0])
    paths = save_figure(fig, tmp_path / "sub" / "top")
    assert paths == [str(tmp_path / "sub" / f"top.{e}") for e in ("png", "svg")]
    assert all((tmp_path / "sub" / f"top.{e}").stat().st_size > 1000 for e in ("png", "svg"))
    fig = plot_fields([np.random.rand(8, 8)] * 3, ["a", "b", "c"], ncols=2)
    assert [a.get_title() for a in fig.axes[:3]] == ["a", "b", "c"]
    assert len(fig.axes) == 4 and not fig.axes[3].images  # the unused panel stays empty


def test_300_dpi_editable_svg_text_reproducible_and_colour_blind_palette(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1))
    (line,) = ax.plot([0, 1], [0, 1], label="curve")
    ax.set_xlabel("rank of the true gene")
    save_figure(fig, tmp_path / "a")
    # the default colour cycle is the Okabe-Ito palette
    assert matplotlib.colors.to_hex(line.get_color()) == PALETTE["blue"].lower()
    # 300 dpi: a 2-inch-wide figure is about 600 px wide (tight bounding box)
    png = Image.open(tmp_path / "a.png")
    assert DPI == 300 and round(png.info["dpi"][0]) == 300 and png.size[0] > 450
    svg = (tmp_path / "a.svg").read_text()
    assert "rank of the true gene</text>" in svg  # text, not glyph paths
    assert "<dc:date>" not in svg
    save_figure(fig, tmp_path / "b")
    assert (tmp_path / "b.svg").read_text() == svg  # same figure, same file
    assert matplotlib.rcParams["svg.fonttype"] == "path"  # only while saving
