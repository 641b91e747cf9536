"""Figures shared by the notebooks (matplotlib; functions return the Figure)."""

from __future__ import annotations

import matplotlib.patheffects as pe
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = [
    "plot_fields",
    "plot_top_genes",
    "plot_topk_curves",
    "plot_translation_embedding",
    "save_figure",
]


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


#: What the ``distance`` column of a ranking is, per translation direction.
DISTANCE_LABELS = {
    "image_to_gene": "distance of gene embedding to prediction",
    "gene_to_image": "distance of predicted profile to observed profile",
    "two_way": "mean rank over the two directions",
}


def plot_top_genes(
    ranking: pd.DataFrame, true_gene: str, k: int = 10, title: str = "",
    direction: str = "image_to_gene",
):  # fmt: skip
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
    direction : {"image_to_gene", "gene_to_image", "two_way"}
        Direction that made the ranking (names the axis, :data:`DISTANCE_LABELS`).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    top = ranking.head(k).iloc[::-1]
    colors = ["tab:red" if g.upper() == true_gene.upper() else "tab:grey" for g in top["gene"]]
    fig, ax = plt.subplots(figsize=(5, 0.3 * k + 1.2))
    ax.barh(top["gene"], top["distance"], color=colors)
    ax.set_xlabel(DISTANCE_LABELS.get(direction, "distance"))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_topk_curves(curves: dict, n_candidates, kmax: int = 50, title: str = ""):
    """Top-k accuracy curves of the method and baselines, with uniform random k/N.

    Parameters
    ----------
    curves : dict
        Label to accuracy array over k = 1..kmax (or a ``(mean, low, high)`` tuple, drawn
        as a line with a shaded band). The first entry is drawn thick.
    n_candidates : int or array-like
        Number of candidate genes (per condition) for the ``min(k/N, 1)`` line.
    kmax : int
        Largest k.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    ks = np.arange(1, kmax + 1)
    n = np.atleast_1d(np.asarray(n_candidates, float))
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    for i, (label, acc) in enumerate(curves.items()):
        if isinstance(acc, tuple):
            mean, lo, hi = (np.asarray(a)[:kmax] for a in acc)
            ax.plot(ks, mean, label=label, color=f"C{i}")
            ax.fill_between(ks, lo, hi, color=f"C{i}", alpha=0.2, lw=0)
        else:
            ax.plot(ks, np.asarray(acc)[:kmax], label=label, lw=2.5 if i == 0 else 1.5,
                    ls="-" if i == 0 else ":", color=f"C{i}")  # fmt: skip
    uni = np.minimum(ks[None] / n[:, None], 1).mean(0)
    label = f"uniform random (k/{n[0]:.0f})" if np.ptp(n) == 0 else "uniform random (k/N)"
    ax.plot(ks, uni, "k--", lw=1, label=label)
    ax.axvspan(10, 50, color="grey", alpha=0.08, lw=0, label="K = 10..50 (summed area)")
    ax.set_xlabel("k (genes shortlisted)")
    ax.set_ylabel("top-k accuracy (true gene within the first k)")
    ax.set_xlim(1, kmax)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.tight_layout()
    return fig


def _free_label_offset(ax, point, placed: list, width: float = 70.0, height: float = 10.0):
    """Pick the label offset (points) around ``point`` farthest from the labels placed so far.

    Candidates: right/left of the point, below/above it. The chosen label centre (in points,
    display coordinates) is appended to ``placed``; returns ``(xytext, ha)``.
    """
    scale = 72.0 / ax.figure.dpi
    x0, y0 = ax.transData.transform(point) * scale
    options = [((6, -12), "left"), ((-6, 8), "right"), ((6, 8), "left"), ((-6, -12), "right")]

    def centre(off, ha):
        return np.array([x0 + off[0] + (width / 2 if ha == "left" else -width / 2), y0 + off[1]])

    def clearance(off, ha):
        c = centre(off, ha)
        if not placed:
            return np.inf
        d = np.abs(np.array(placed) - c) / [width, height * 1.5]
        return float(np.max(d, axis=1).min())

    off, ha = max(options, key=lambda o: clearance(*o))
    placed.append(centre(off, ha))
    return off, ha


def plot_translation_embedding(gene_emb: pd.DataFrame, items: list, title: str = ""):
    """Predicted and true gene embeddings in the first two principal components.

    The PCA is fitted on the candidate gene embeddings (grey dots); for each item the
    true gene is a circle, the prediction a star, joined by a line. Predictions are
    drawn L2-normalised (like the candidates): among unit-norm candidates the Euclidean
    ranking only depends on the prediction's direction.

    Parameters
    ----------
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by gene.
    items : list of tuple
        ``(condition, true_gene, predicted_embedding, true_rank)`` per condition.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    e = gene_emb.to_numpy(float)
    mu = e.mean(0)
    _, sv, vt = np.linalg.svd(e - mu, full_matrices=False)
    proj = (e - mu) @ vt[:2].T
    var = sv[:2] ** 2 / (sv**2).sum()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(proj[:, 0], proj[:, 1], s=12, color="lightgrey", label="candidate genes")
    colors = plt.get_cmap("tab10")
    placed = []  # label centres in points, to keep labels apart
    for i, (cond, gene, pred, rank) in enumerate(items):
        c = colors(i % 10)
        t = proj[gene_emb.index.get_loc(str(gene).upper())]
        pred = np.asarray(pred, float)
        p = (pred / max(np.linalg.norm(pred), 1e-12) - mu) @ vt[:2].T
        ax.plot([t[0], p[0]], [t[1], p[1]], color=c, lw=1, alpha=0.7)
        ax.scatter(*t, s=60, color=c, edgecolor="k", zorder=3)
        ax.scatter(*p, s=140, marker="*", color=c, edgecolor="k", zorder=3)
        xytext, ha = _free_label_offset(ax, t, placed)
        ax.annotate(f"{cond} (rank {rank})", t, textcoords="offset points",
                    xytext=xytext, ha=ha, fontsize=8, color=c, zorder=4,
                    path_effects=[pe.withStroke(linewidth=2.5, foreground="w")])  # fmt: skip
    ax.scatter([], [], s=60, color="w", edgecolor="k", label="true gene")
    ax.scatter([], [], s=140, marker="*", color="w", edgecolor="k", label="prediction (unit norm)")
    ax.set_xlabel(f"PC1 of gene embeddings ({var[0]:.0%})")
    ax.set_ylabel(f"PC2 ({var[1]:.0%})")
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
