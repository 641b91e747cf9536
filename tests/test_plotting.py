import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from i2r_utils.plotting import DPI, PALETTE, place_labels, plot_fields, save_figure  # noqa: E402


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


def test_place_labels_never_overlap_markers_labels_or_the_frame():
    rng = np.random.default_rng(0)
    crowd = rng.normal(size=(40, 2)) * 0.05  # a crowded centre
    far = np.array([[-4.0, -4.0], [4.0, 4.0], [-4.0, 4.0], [4.0, -4.0]])  # four isolated points
    xy = np.r_[crowd, far, [[0.0, 0.0]] * 3]  # and three points on top of each other
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.scatter(*xy.T, s=28)
    ax.set_xlim(-5, 5)
    ax.set_ylim(-5, 5)
    fig.tight_layout()
    placed = place_labels(ax, xy, [f"GENE{i:02d}" for i in range(len(xy))])
    assert placed[40:44].all()  # isolated points are labelled
    assert 0 < placed[:40].sum() < 40  # the crowd only partly
    assert placed[-3:].sum() <= 1  # one label at most for one spot
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == placed.sum()
    frame = ax.get_window_extent(renderer)
    px = ax.transData.transform(xy)
    marker = np.sqrt(28) / 2 * fig.dpi / 72
    for i, b in enumerate(boxes):
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
        assert not any(b.overlaps(o) for o in boxes[i + 1 :])
        dist = np.hypot(px[:, 0] - np.clip(px[:, 0], b.x0, b.x1),
                        px[:, 1] - np.clip(px[:, 1], b.y0, b.y1))  # fmt: skip
        assert dist.min() >= marker
    plt.close(fig)
