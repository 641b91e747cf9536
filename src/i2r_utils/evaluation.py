"""Profile evaluation (thesis metrics): mAP, folds of enrichment, hits in the top 1 %.

Condition profiles are compared by cosine similarity. A pair of conditions is *positive*
when they share an annotation (on the synthetic screen: the network community of the
over-expressed gene).

* mAP: the mean over query conditions of the average precision of retrieving the
  same-annotation conditions among all others, computed with copairs.
* Folds of enrichment: the odds ratio of same-annotation pairs among the top 1 % most
  similar pairs versus the rest (one-sided Fisher exact test; Haldane's +0.5 correction
  when a cell is empty).
* Hits in the top 1 %: the number of same-annotation pairs among them.

Fold spaces: the profiles of different fold encoders live in different spaces and are not
comparable. :func:`evaluate_fold_spaces` evaluates within each space, using as queries only
the conditions held out by that space's encoder (pairs with at least one of them), and
averages over spaces; a single-space representation is evaluated with the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from copairs.map import average_precision
from scipy.stats import fisher_exact

from .columns import feature_columns

__all__ = [
    "cosine_similarity",
    "average_precisions",
    "pair_enrichment",
    "evaluate_space",
    "evaluate_fold_spaces",
    "plot_profile_evaluation",
    "plot_profile_map",
]


def cosine_similarity(x: np.ndarray) -> np.ndarray:
    """Cosine similarity between the rows of ``x`` (zero rows have similarity 0).

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` profiles.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` similarities.
    """
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    xn = x / np.where(norm > 0, norm, 1.0)
    return xn @ xn.T


def average_precisions(
    profiles: pd.DataFrame, annotation: str = "Metadata_Annotation"
) -> pd.DataFrame:
    """Average precision of every condition retrieving its same-annotation conditions.

    Parameters
    ----------
    profiles : pandas.DataFrame
        One row per condition: ``Metadata_Condition``, ``annotation`` and features.
    annotation : str
        Annotation column; rows with a missing annotation are dropped.

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Condition``, ``annotation``, ``average_precision``, ``n_pos_pairs``,
        ``n_total_pairs`` (copairs' cosine-similarity ranking, self excluded); conditions
        without any positive get NaN.
    """
    df = profiles[profiles[annotation].notna()].reset_index(drop=True)
    meta = df[["Metadata_Condition", annotation]].astype(str)
    feats = df[feature_columns(df)].to_numpy(np.float64)
    ap = average_precision(
        meta, feats, pos_sameby=[annotation], pos_diffby=["Metadata_Condition"],
        neg_sameby=[], neg_diffby=[annotation], progress_bar=False,
    )  # fmt: skip
    keep = ["Metadata_Condition", annotation, "average_precision", "n_pos_pairs", "n_total_pairs"]
    return ap[keep].reset_index(drop=True)


def pair_enrichment(
    sim: np.ndarray, same: np.ndarray, pair_mask: np.ndarray | None = None, top: float = 0.01
) -> dict:
    """Folds of enrichment and hits of same-annotation pairs in the top fraction of pairs.

    Parameters
    ----------
    sim : numpy.ndarray
        ``(n, n)`` similarity matrix.
    same : numpy.ndarray
        ``(n, n)`` boolean: the two conditions share an annotation.
    pair_mask : numpy.ndarray, optional
        ``(n, n)`` boolean: pairs to consider (all distinct pairs when None).
    top : float
        Fraction of the most similar pairs (at least one pair).

    Returns
    -------
    dict
        ``fold_enrichment`` (odds ratio), ``p_value`` (one-sided Fisher), ``hits`` (positive
        pairs in the top), ``n_top``, ``n_pairs``, ``n_positive_pairs``.
    """
    n = sim.shape[0]
    iu = np.triu_indices(n, 1)
    keep = np.ones(len(iu[0]), bool) if pair_mask is None else pair_mask[iu]
    s, pos = sim[iu][keep], same[iu][keep].astype(bool)
    n_pairs = len(s)
    n_top = max(1, int(round(top * n_pairs)))
    order = np.argsort(-s, kind="stable")
    in_top = np.zeros(n_pairs, bool)
    in_top[order[:n_top]] = True
    a, b = int((pos & in_top).sum()), int((~pos & in_top).sum())
    c, d = int((pos & ~in_top).sum()), int((~pos & ~in_top).sum())
    _, p = fisher_exact([[a, b], [c, d]], alternative="greater")
    cells = np.array([a, b, c, d], float)
    if (cells == 0).any():
        cells += 0.5
    odds = cells[0] * cells[3] / (cells[1] * cells[2])
    return {
        "fold_enrichment": float(odds),
        "p_value": float(p),
        "hits": a,
        "n_top": n_top,
        "n_pairs": n_pairs,
        "n_positive_pairs": int(pos.sum()),
    }


def evaluate_space(
    profiles: pd.DataFrame,
    annotation: str = "Metadata_Annotation",
    queries: Sequence[str] | None = None,
    top: float = 0.01,
) -> dict:
    """mAP, folds of enrichment and hits of one profile space.

    Parameters
    ----------
    profiles : pandas.DataFrame
        One row per condition (``Metadata_Condition``, ``annotation``, features); the
        retrieval set. Rows without annotation are ignored.
    annotation : str
        Annotation column.
    queries : sequence of str, optional
        Conditions used as queries (mAP) and required in a pair (enrichment); all when None.
    top : float
        Top fraction of pairs for the enrichment.

    Returns
    -------
    dict
        ``mAP``, ``n_queries`` (queries with at least one positive) and the keys of
        :func:`pair_enrichment`.
    """
    df = profiles[profiles[annotation].notna()].reset_index(drop=True)
    conds = df["Metadata_Condition"].astype(str).to_numpy()
    is_query = np.ones(len(df), bool) if queries is None else np.isin(conds, list(queries))
    ap = average_precisions(df, annotation)
    ap = ap[ap["Metadata_Condition"].isin(conds[is_query])]["average_precision"].dropna()
    sim = cosine_similarity(df[feature_columns(df)].to_numpy())
    lab = df[annotation].astype(str).to_numpy()
    same = lab[:, None] == lab[None, :]
    pair_mask = is_query[:, None] | is_query[None, :]
    enr = pair_enrichment(sim, same, pair_mask, top)
    return {"mAP": float(ap.mean()) if len(ap) else np.nan, "n_queries": int(len(ap)), **enr}


def evaluate_fold_spaces(
    profiles: pd.DataFrame,
    folds: pd.DataFrame,
    annotation: str = "Metadata_Annotation",
    top: float = 0.01,
) -> pd.DataFrame:
    """Evaluate each fold space on its held-out conditions and average over spaces.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Condition profiles with ``annotation``; with a ``Metadata_Fold`` column, one space per
        fold (rows of fold-space k are evaluated with the conditions of fold k as queries);
        without it, a single space evaluated with each fold's queries in turn.
    folds : pandas.DataFrame
        ``Metadata_Condition``, ``Metadata_Fold`` (:func:`i2r_utils.encoder.fold_assignment`).
    annotation : str
        Annotation column.
    top : float
        Top fraction of pairs for the enrichment.

    Returns
    -------
    pandas.DataFrame
        One row per fold (``fold`` = k) and a ``fold`` = "mean" row: mAP (query-weighted
        over folds), fold_enrichment (mean), hits (sum), p_value (per fold; NaN in the mean
        row), n_queries, n_top, n_pairs (sums).
    """
    rows = []
    for k, fk in folds.groupby("Metadata_Fold", sort=True):
        space = profiles
        if "Metadata_Fold" in profiles.columns:
            space = profiles[profiles["Metadata_Fold"] == k]
        res = evaluate_space(space, annotation, fk["Metadata_Condition"].tolist(), top)
        rows.append({"fold": str(k), **res})
    out = pd.DataFrame(rows)
    w = out["n_queries"].to_numpy(float)
    mean = {
        "fold": "mean",
        "mAP": float(np.nansum(out["mAP"] * w) / w.sum()) if w.sum() else np.nan,
        "fold_enrichment": float(out["fold_enrichment"].mean()),
        "p_value": np.nan,
    }
    for c in ("hits", "n_queries", "n_top", "n_pairs", "n_positive_pairs"):
        mean[c] = int(out[c].sum())
    return pd.concat([out, pd.DataFrame([mean])], ignore_index=True)


def plot_profile_evaluation(table: pd.DataFrame, chance_map: float | None = None):
    """Scatter of mAP vs folds of enrichment per representation, before/after sphering.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with ``representation``, ``sphering`` ("before"/"after"), ``mAP``,
        ``fold_enrichment``, ``hits`` (the "mean" rows of :func:`evaluate_fold_spaces`).
    chance_map : float, optional
        mAP of a random ranking, drawn as a dashed line.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    reps = list(dict.fromkeys(table["representation"]))
    colors = dict(zip(reps, plt.cm.tab10.colors, strict=False))
    markers = {"before": "o", "after": "s"}
    for rep in reps:
        sub = table[table["representation"] == rep].set_index("sphering")
        if {"before", "after"} <= set(sub.index):
            ax.annotate(
                "", xy=(sub.loc["after", "mAP"], sub.loc["after", "fold_enrichment"]),
                xytext=(sub.loc["before", "mAP"], sub.loc["before", "fold_enrichment"]),
                arrowprops={"arrowstyle": "->", "color": colors[rep], "alpha": 0.6},
            )  # fmt: skip
        for stage, r in sub.iterrows():
            ax.scatter(r["mAP"], r["fold_enrichment"], s=70, color=colors[rep],
                       marker=markers.get(stage, "^"), edgecolor="k", zorder=3)  # fmt: skip
            ax.annotate(f"{int(r['hits'])}", (r["mAP"], r["fold_enrichment"]),
                        textcoords="offset points", xytext=(6, 4), fontsize=7)  # fmt: skip
    if chance_map is not None:
        ax.axvline(chance_map, ls="--", c="grey", lw=1)
        ax.text(chance_map, ax.get_ylim()[1], " random", va="top", fontsize=7, color="grey")
    ax.axhline(1.0, ls=":", c="grey", lw=1)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[r], label=r) for r in reps]
    handles += [
        plt.Line2D([], [], marker=m, ls="", color="w", markeredgecolor="k", label=f"{s} sphering")
        for s, m in markers.items()
    ]
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="best")
    ax.set_xlabel("mAP (retrieving same-community conditions)")
    ax.set_ylabel("folds of enrichment (top 1 % pairs)")
    ax.set_title(
        "Condition profiles, mean over fold spaces (queries: each space's held-out "
        "conditions)\nnumbers: same-community hits in the top 1 % of pairs",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def plot_profile_map(spaces: dict, annotation: str = "Metadata_Annotation"):
    """PCA maps of condition profiles coloured by annotation, one panel per space.

    Parameters
    ----------
    spaces : dict
        Title -> condition profiles (``Metadata_Condition``, ``annotation``, features).
    annotation : str
        Colouring column.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    fig, axes = plt.subplots(1, len(spaces), figsize=(3.6 * len(spaces), 3.6), squeeze=False)

    def _name(v):
        if pd.isna(v):
            return None
        return (
            str(int(v)) if isinstance(v, float | np.floating) and float(v).is_integer() else str(v)
        )

    labels = sorted({_name(v) for df in spaces.values() for v in df[annotation].dropna()})
    colors = dict(zip(labels, plt.cm.tab10.colors, strict=False))
    for ax, (title, df) in zip(axes[0], spaces.items(), strict=True):
        x = df[feature_columns(df)].to_numpy(np.float64)
        xy = PCA(2, random_state=0).fit_transform(x) if len(x) > 2 else np.zeros((len(x), 2))
        names = df[annotation].map(_name).to_numpy()
        held = np.zeros(len(df), bool)
        if "Metadata_HeldOut" in df:
            held = df["Metadata_HeldOut"].to_numpy(bool)
            if held.any():
                title += "\n(diamonds: conditions held out by this encoder)"
        for lab in [*labels, None]:
            for marker, part in (("o", ~held), ("D", held)):
                m = np.array([n == lab for n in names]) & part
                if m.any():
                    ax.scatter(
                        *xy[m].T, s=28, marker=marker, color=colors.get(lab, "lightgrey"),
                        edgecolor="k", lw=0.4, label=(lab or "none") if marker == "o" else None,
                    )  # fmt: skip
        if len(df) <= 60:
            for (px, py), cond in zip(xy, df["Metadata_Condition"], strict=True):
                ax.annotate(
                    str(cond), (px, py), fontsize=5, xytext=(2, 2), textcoords="offset points"
                )
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    axes[0, -1].legend(title="community", frameon=False, fontsize=7, title_fontsize=8,
                       loc="center left", bbox_to_anchor=(1, 0.5))  # fmt: skip
    fig.tight_layout()
    return fig
