"""Figures shared by the notebooks (matplotlib; functions return the Figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_fields", "save_figure"]


def save_figure(fig, path_stem) -> list[str]:
    """Save a figure as PNG (150 dpi) and SVG next to each other.

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
    from pathlib import Path

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        p = stem.with_suffix(f".{ext}")
        fig.savefig(p, dpi=150, bbox_inches="tight")
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
