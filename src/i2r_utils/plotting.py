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

__all__ = ["PALETTE", "DPI", "plot_fields", "save_figure"]

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
