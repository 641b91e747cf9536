"""Figures shared by the notebooks (matplotlib; functions return the Figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_fields", "plot_top_genes", "plot_topk_curves", "save_figure"]


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


def plot_top_genes(ranking: pd.DataFrame, true_gene: str, k: int = 10, title: str = ""):
    """Bar chart of the ``k`` most likely genes, the true gene highlighted.

    Parameters
    ----------
    ranking : pandas.DataFrame
        ``gene``, ``distance``, ``rank`` sorted by rank.
    true_gene : str
        The over-expressed gene.
    k : int
        Genes to show.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    top = ranking.head(k).iloc[::-1]
    colors = ["tab:red" if g.upper() == true_gene.upper() else "tab:grey" for g in top["gene"]]
    fig, ax = plt.subplots(figsize=(5, 0.3 * k + 1.2))
    ax.barh(top["gene"], top["distance"], color=colors)
    ax.set_xlabel("distance of gene embedding to prediction")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_topk_curves(curves: dict, n_candidates: int, kmax: int = 50):
    """Top-k accuracy curves of the method and baselines, with uniform random k/N.

    Parameters
    ----------
    curves : dict
        Label to accuracy array over k = 1..kmax (optionally a ``(mean, low, high)`` tuple
        for a band).
    n_candidates : int
        Number of candidate genes (for the k/N line).
    kmax : int
        Largest k.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    ks = np.arange(1, kmax + 1)
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, acc in curves.items():
        if isinstance(acc, tuple):
            mean, lo, hi = acc
            (line,) = ax.plot(ks, mean, label=label)
            ax.fill_between(ks, lo, hi, color=line.get_color(), alpha=0.2)
        else:
            ax.plot(ks, acc, label=label, lw=2)
    ax.plot(ks, ks / n_candidates, "k--", label=f"uniform random (k/{n_candidates})")
    ax.set_xlabel("k")
    ax.set_ylabel("top-k accuracy")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
