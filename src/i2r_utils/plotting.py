"""Figures shared by the notebooks (matplotlib; functions return the Figure).

Importing this module sets the figure defaults of every notebook: the colour cycle is the
colour-blind-safe Okabe-Ito palette (:data:`PALETTE`; Okabe & Ito 2008, "Color Universal
Design"), and :func:`save_figure` writes a 300 dpi PNG and an SVG whose text stays text
(editable in Inkscape or Illustrator, ``svg.fonttype: none``) without a date stamp, so an
unchanged figure gives an unchanged file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler

__all__ = ["PALETTE", "DPI", "place_labels", "plot_fields", "save_figure"]

#: Okabe-Ito colours by name, in cycle order (black last: it is for reference lines).
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish green": "#009E73",
    "vermillion": "#D55E00",
    "sky blue": "#56B4E9",
    "reddish purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
#: Resolution of saved PNGs.
DPI = 300

mpl.rcParams["axes.prop_cycle"] = cycler(color=list(PALETTE.values()))
mpl.rcParams["image.cmap"] = "viridis"  # perceptually uniform and colour-blind safe


def save_figure(fig, path_stem) -> list[str]:
    """Save a figure as PNG (:data:`DPI`) and SVG (editable text) next to each other.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure to save.
    path_stem : path-like
        Destination without suffix.

    Returns
    -------
    list of str
        The written paths.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "i2r"}):
        for ext in ("png", "svg"):
            p = stem.with_suffix(f".{ext}")
            meta = {"Date": None} if ext == "svg" else {}
            fig.savefig(p, dpi=DPI, bbox_inches="tight", metadata=meta)
            out.append(str(p))
    return out


def plot_fields(images, titles, ncols: int = 4):
    """Show chromatin fields of view side by side (contrast per image).

    Parameters
    ----------
    images : sequence of numpy.ndarray
        2-D images.
    titles : sequence of str
        One title per image.
    ncols : int
        Columns of the grid.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, title in zip(axes.ravel(), images, titles, strict=False):
        lo, hi = np.percentile(img, [1, 99.8])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


#: Label positions tried around a point, as unit directions (right first, then around).
_DIRECTIONS = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]
_ALIGN = {-1: "right", 0: "center", 1: "left"}
_VALIGN = {-1: "top", 0: "center", 1: "bottom"}


def place_labels(ax, xy, labels, *, fontsize=6.0, marker_size=28.0, gap=1.5, priority=None):
    """Label scatter points where a label overlaps no other label, no marker and no edge.

    Greedy placement: in ``priority`` order, each label tries eight sides of its point at
    three distances (the two further ones with a thin leader line) and takes the first
    free spot; a label without one is left out, so the figure should say how many points
    are unlabelled (the returned mask). Place labels
    after the final layout (``fig.tight_layout()`` first): the check uses the axes' size on
    the canvas, and a later layout change can reintroduce overlaps.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes with the scatter drawn and its limits final.
    xy : array-like
        ``(n, 2)`` point coordinates, in data units.
    labels : sequence of str
        ``n`` labels.
    fontsize : float
        Label font size (points).
    marker_size : float
        The scatter's ``s`` (points squared): the markers labels must not cover.
    gap : float
        Space between a marker and its label, and between labels (points).
    priority : array-like, optional
        ``n`` scores; higher is labelled first. Default: the distance from the points'
        centre (isolated points first, the crowded centre last).

    Returns
    -------
    numpy.ndarray
        ``n`` booleans: the points that got a label.
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = ax.transData.transform(xy) if len(xy) else np.zeros((0, 2))
    pt = fig.dpi / 72.0  # canvas pixels per point
    radius = (np.sqrt(marker_size) / 2 + gap) * pt  # no label within this of a marker
    reach = np.sqrt(marker_size) / 2 + 2 * gap  # label anchor's distance (points)
    frame = ax.get_window_extent(renderer)
    if priority is None:
        priority = np.linalg.norm(px - px.mean(axis=0), axis=1) if len(px) else []
    taken, placed = [], np.zeros(len(xy), bool)
    for i in np.argsort(-np.asarray(priority, float), kind="stable"):
        for scale in (1, 2.5, 4):
            for dx, dy in _DIRECTIONS:
                off = np.array([dx, dy]) / np.hypot(dx, dy) * reach * scale
                leader = (
                    None
                    if scale == 1
                    else {
                        "arrowstyle": "-",
                        "lw": 0.4,
                        "color": "0.45",
                        "shrinkA": 0.5,
                        "shrinkB": np.sqrt(marker_size) / 2,
                    }
                )  # a thin line to a label set further off
                text = ax.annotate(
                    str(labels[i]), xy[i], xytext=tuple(off), textcoords="offset points",
                    ha=_ALIGN[dx], va=_VALIGN[dy], fontsize=fontsize, arrowprops=leader,
                )  # fmt: skip
                box = text.get_window_extent(renderer).padded(gap * pt / 2)
                if _fits(box, frame, taken, px, radius):
                    taken.append(box)
                    placed[i] = True
                    break
                text.remove()
            if placed[i]:
                break
    return placed


def _fits(box, frame, taken, points, radius) -> bool:
    """Whether ``box`` lies inside ``frame`` and clear of the ``taken`` boxes and markers."""
    inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    if not inside or any(box.overlaps(t) for t in taken):
        return False
    near_x = np.clip(points[:, 0], box.x0, box.x1)  # nearest point of the box to each marker
    near_y = np.clip(points[:, 1], box.y0, box.y1)
    return not bool(np.any(np.hypot(points[:, 0] - near_x, points[:, 1] - near_y) < radius))
