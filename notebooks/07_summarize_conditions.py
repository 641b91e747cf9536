# %% [markdown]
# # 07 Summarise the held-out conditions (figures: top-k accuracy, translation embedding)
# Collects every held-out condition's `result.json` (notebook 06): the rank of the true
# gene, and for the method and each baseline (re-pairing permutation and the original's
# full shuffle: mean and 95% band over repeats; mean-embedding predictors, the mean of the
# training genes and the mean of all candidates; uniform random k/N; other kernels and the
# cosine distance) the mean rank, top-1/5/10 accuracy, the area under the top-k curve
# summed over K = 10..50 (`auc_k10_50` = sum of acc(K) over the 41 values of K / 41, in
# [0, 1]; uniform random gives 30/N; acc(K) = fraction of conditions whose true gene is
# within the first K) and, beside it, the Image2Reg score (`image2reg_score`, the paper's
# 0.602 vs 0.311: S = sum over K in {10, 20, 30, 40, 50} of (1/K) sum_{k<=K} acc(k);
# uniform random gives 155/(2N) for N >= 50). A held-out gene that is not a candidate
# (new-target protocol) is a miss at every k and counts with rank N + 1 in the mean rank.
# Cross-check: in the fixed fold space of each fold, closed-form leave-one-out of the
# image-to-gene direction over all impactful conditions (one factorisation, ridge `alpha`).
#
# Produces `work_dir/summary.csv`, `work_dir/summary_metrics.csv`,
# `work_dir/loo_crosscheck.csv`, `work_dir/loo_crosscheck_metrics.csv`,
# `figures_dir/fig_topk_accuracy.{png,svg}` and
# `figures_dir/fig_translation_embedding.{png,svg}`.

# %% tags=["parameters"]
work_dir = "../results/tiny"  # results of this data set
figures_dir = "../results/tiny/figures"  # where the figures go
conditions = "BRAF"  # comma-separated held-out conditions, empty: every one with a result
representation = "both"  # profiles of the leave-one-out cross-check: "cnn", "features", "both"
kernel = "ntk"  # kernel of the leave-one-out cross-check
depth = 2  # hidden layers of the NTK
input_bias = False  # cross-check inputs: constant 1 appended (True) or kernel + 1 (False)
input_scaling = "global"  # cross-check inputs: centred and RMS-scaled ("global") or raw ("none")
gene_norm = "none"  # gene embeddings as they are ("none") or L2-normalised per row ("l2")
alpha = 1.0  # ridge of the leave-one-out cross-check
metric = "euclidean"  # distance for ranking
n_embedding_conditions = 6  # conditions drawn in the 2-D embedding figure
threads = None  # torch and BLAS threads (None: the libraries' defaults, usually the cores)

# %%
import json
import textwrap
from pathlib import Path

import matplotlib.patheffects as pe
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.directions import ImageToGene, training_set
from i2r_utils.io import InputError, read_table, write_table
from i2r_utils.plotting import PALETTE, save_figure
from i2r_utils.profiles import translation_profiles
from i2r_utils.ranking import (
    SCORE_KS,
    normalise_embeddings,
    ranks_of,
    summarize_results,
    uniform_topk,
)
from i2r_utils.runtime import pin_threads

pin_threads(threads)

# %% [markdown]
# ## Results of the held-out conditions
# One row per held-out condition: the true gene's rank, the baselines' ranks and every
# comparison (kernel/distance of the image-to-gene direction, each direction alone).

# %%
work = Path(work_dir)
if conditions:
    paths = [artifact(work, "result", condition=c) for c in conditions.split(",")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"no result for {missing}; run notebook 06 for these conditions.")
else:
    paths = sorted(work.glob(artifact(work, "result", condition="*").relative_to(work).as_posix()))
if not paths:
    raise InputError(f"no */result.json under {work}; run notebook 06 first.")
results = [json.loads(p.read_text()) for p in paths]
summary = pd.DataFrame(
    {
        "condition": r["condition"],
        "fold": r.get("fold"),
        "impactful": r.get("impactful"),
        "true_gene_is_candidate": r.get("true_gene_is_candidate", True),
        "true_rank": r["true_rank"],
        "n_candidates": r["n_candidates"],
        "alpha": r.get("alpha"),
        "permutation_mean_rank": r.get("permutation_mean_rank"),
        "shuffle_mean_rank": r.get("shuffle_mean_rank"),
        "mean_embedding_rank": r.get("mean_embedding_rank"),
        "mean_candidates_rank": r.get("mean_candidates_rank"),
        **{f"rank_{k}": v for k, v in r.get("comparison", {}).items()},
        "top10": " ".join(r["top10"]),
    }
    for r in results
)
write_table(summary, artifact(work, "summary"))
summary

# %% [markdown]
# ## Metrics of the method and every baseline
# Over all held-out conditions, and over the impactful ones alone when some are not. The
# random baselines' `top10`, `auc_k10_50` and `image2reg_score` are the mean over repeats,
# with the 2.5 and 97.5 percentiles (`_lo`, `_hi`). The method row names the translation's
# settings (`method_label` of `result.json`).

# %%
metrics, curves = summarize_results(results)
metrics.insert(0, "subset", "all held-out")
impactful_results = [r for r in results if r.get("impactful")]
if 0 < len(impactful_results) < len(results):
    sub, _ = summarize_results(impactful_results)
    metrics = pd.concat([metrics, sub.assign(subset="impactful only")], ignore_index=True)
write_table(metrics, artifact(work, "summary_metrics"))
show = [
    "subset",
    "method",
    "n_conditions",
    "mean_rank",
    "top1",
    "top5",
    "top10",
    "auc_k10_50",
    "image2reg_score",
    "image2reg_score_lo",
    "image2reg_score_hi",
]
metrics[[c for c in show if c in metrics]].round(3)

# %% [markdown]
# ## Figure: top-k accuracy
# The method (thick), the random baselines (mean, shaded 95% band), the mean-embedding
# predictors (dots; at 0 they lie on the axis) and uniform random `min(k/N, 1)`; the shaded
# span is the K range of the area (the mean top-k accuracy over K = 10..50). The legend gives
# each curve's area and Image2Reg score S.

# %%
kmax = 50
ks = np.arange(1, kmax + 1)
n = summary["n_candidates"].to_numpy(float)
in_area = (ks >= 10) & (ks <= 50)  # the area is the mean top-k accuracy over K = 10..50


def legend(label, acc):
    """Curve label with its area (K = 10..50) and Image2Reg score S, wrapped."""
    score = sum(acc[:k].mean() for k in SCORE_KS)
    return textwrap.fill(f"{label}: area {acc[in_area].mean():.2f}, S {score:.3f}", 75)


fig, ax = plt.subplots(figsize=(6.4, 7.2))
for i, (label, acc) in enumerate(curves.items()):
    if isinstance(acc, tuple):  # mean, low, high
        mean, lo, hi = (np.asarray(a)[:kmax] for a in acc)
        ax.plot(ks, mean, label=legend(label, mean), color=f"C{i}")
        ax.fill_between(ks, lo, hi, color=f"C{i}", alpha=0.2, lw=0)
    else:
        acc = np.asarray(acc)[:kmax]
        ax.plot(ks, acc, label=legend(label, acc), lw=2.5 if i == 0 else 1.5,
                ls="-" if i == 0 else ":", color=f"C{i}", marker=None if i == 0 else "o",
                markevery=5, ms=3, clip_on=False, zorder=3)  # fmt: skip
uniform = uniform_topk(ks, n, summary["true_gene_is_candidate"].to_numpy(bool))
label = f"uniform random (k/{n[0]:.0f})" if np.ptp(n) == 0 else "uniform random (k/N)"
ax.plot(ks, uniform, "k--", lw=1, label=legend(label, uniform))
ax.axvspan(10, 50, color="grey", alpha=0.08, lw=0, label="K = 10..50 (area: mean accuracy)")
ax.set_xlabel("k (genes shortlisted)")
ax.set_ylabel("top-k accuracy (true gene within the first k)")
ax.set_xlim(1, kmax)
ax.set_ylim(0, 1.02)
ax.set_title(f"{len(results)} held-out conditions\n"
             "S = sum over K in {10, 20, 30, 40, 50} of the mean top-k accuracy over k <= K", fontsize=9)  # fmt: skip
ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1)
fig.tight_layout()
save_figure(fig, Path(figures_dir) / "fig_topk_accuracy")

# %% [markdown]
# ## Figure: predicted and true gene embeddings
# The candidate gene embeddings (grey) in their first two principal components; for up to
# `n_embedding_conditions` held-out conditions the true gene (circle) and the image-to-gene
# prediction (star), joined by a line and labelled with the true gene's rank in that
# direction and, in brackets, its rank in the direction the run used (the one reported).
# Predictions are drawn at unit norm, like the candidates: among unit-norm candidates the
# euclidean ranking depends only on the prediction's direction. A condition whose gene is
# not in the candidate table is not drawn.

# %%
genes = normalise_embeddings(read_table(artifact(work, "gene_embeddings")).set_index("gene"),
                             gene_norm)  # fmt: skip
e = genes.to_numpy(float)
mu = e.mean(0)
_, sv, vt = np.linalg.svd(e - mu, full_matrices=False)
proj = (e - mu) @ vt[:2].T
var = sv[:2] ** 2 / (sv**2).sum()


def label_offset(ax, point, placed, width=70.0, height=10.0):
    """Offset (points) of a label beside ``point``, the one farthest from those placed."""
    x0, y0 = ax.transData.transform(point) * 72.0 / ax.figure.dpi
    options = [((6, -12), "left"), ((-6, 8), "right"), ((6, 8), "left"), ((-6, -12), "right")]

    def centre(off, ha):
        return np.array([x0 + off[0] + (width / 2 if ha == "left" else -width / 2), y0 + off[1]])

    def clearance(off, ha):
        if not placed:
            return np.inf
        d = np.abs(np.array(placed) - centre(off, ha)) / [width, height * 1.5]
        return float(np.max(d, axis=1).min())

    off, ha = max(options, key=lambda o: clearance(*o))
    placed.append(centre(off, ha))
    return off, ha


fig, ax = plt.subplots(figsize=(6, 5))
ax.scatter(proj[:, 0], proj[:, 1], s=12, color="lightgrey", label="candidate genes")
placed = []  # label centres in points, to keep labels apart
drawn = [r for r in results if str(r["gene"]).upper() in genes.index]
for i, r in enumerate(drawn[:n_embedding_conditions]):
    # the star is the image-to-gene prediction, so the rank shown is that direction's
    key = f"{r.get('kernel', 'ntk')}/{r.get('metric', 'euclidean')}"
    rank = r.get("comparison", {}).get(key, r["true_rank"])
    c = list(PALETTE.values())[i % (len(PALETTE) - 1)]  # Okabe-Ito, black left out
    t = proj[genes.index.get_loc(str(r["gene"]).upper())]
    pred = np.asarray(r["predicted_embedding"], float)
    p = (pred / max(np.linalg.norm(pred), 1e-12) - mu) @ vt[:2].T
    ax.plot([t[0], p[0]], [t[1], p[1]], color=c, lw=1, alpha=0.7)
    ax.scatter(*t, s=60, color=c, edgecolor="k", zorder=3)
    ax.scatter(*p, s=140, marker="*", color=c, edgecolor="k", zorder=3)
    xytext, ha = label_offset(ax, t, placed)
    used = r.get("direction", "image_to_gene")
    text = f"{r['condition']}: {rank}" + (
        f" ({r['true_rank']} {used.replace('_', ' ')})" if used != "image_to_gene" else ""
    )
    ax.annotate(text, t, textcoords="offset points",
                xytext=xytext, ha=ha, fontsize=8, color=c, zorder=4,
                path_effects=[pe.withStroke(linewidth=2.5, foreground="w")])  # fmt: skip
ax.scatter([], [], s=60, color="w", edgecolor="k", label="true gene")
ax.scatter([], [], s=140, marker="*", color="w", edgecolor="k", label="prediction (unit norm)")
ax.margins(x=0.25, y=0.08)  # room for the labels inside the axes
ax.set_xlabel(f"PC1 of gene embeddings ({var[0]:.0%})")
ax.set_ylabel(f"PC2 ({var[1]:.0%})")
ax.set_title(
    "held-out conditions: image-to-gene prediction vs true gene\n"
    "label: rank image to gene (rank in the direction used)",
    fontsize=9,
)
ax.legend(frameon=False, fontsize=8)
fig.tight_layout()
save_figure(fig, Path(figures_dir) / "fig_translation_embedding")

# %% [markdown]
# ## Cross-check: closed-form leave-one-out over all impactful conditions
# In each fold space, the image-to-gene ridge (fixed `alpha`) is factorised once over all
# impactful conditions with a candidate gene (with `input_scaling = "global"` the features
# centred and scaled with all of them, never the genes; the kernel as `kernel`, `depth`,
# `input_bias`) and every condition's prediction without it comes in closed form.
# Only the conditions the fold's encoder never saw count in the metrics. The mean-embedding
# predictor here is the mean of the other conditions' gene embeddings.

# %%
folds = read_table(artifact(work, "folds"))
profiles = translation_profiles(artifact(work, "profiles_dir"), representation)
impactful = read_table(artifact(work, "impactful"))["Metadata_Condition"].tolist()
held_in = dict(zip(folds.Metadata_Condition, folds.Metadata_Fold, strict=True))
loo = []
for fold in sorted(profiles.Metadata_Fold.unique()):
    ts = training_set(profiles[profiles.Metadata_Fold == fold], genes, None, impactful)
    y = ts["y_train"]
    model = ImageToGene(kernel, depth, (alpha,), scaling=input_scaling, input_bias=input_bias)
    model.fit(ts["x_train"], y)
    mean_of_others = (y.sum(0)[None] - y) / (len(y) - 1)
    loo.append(
        pd.DataFrame(
            {
                "fold_space": fold,
                "condition": ts["conditions"],
                "loo_rank": ranks_of(model.loo_predictions(), genes, ts["genes"], metric),
                "mean_embedding_rank": ranks_of(mean_of_others, genes, ts["genes"], metric),
                "encoder_saw_condition": [held_in.get(c) != fold for c in ts["conditions"]],
            }
        )
    )
loo = pd.concat(loo, ignore_index=True)
write_table(loo, artifact(work, "loo_crosscheck"))
loo_results = [
    {
        "condition": r.condition,
        "true_rank": r.loo_rank,
        "n_candidates": len(genes),
        "mean_embedding_rank": r.mean_embedding_rank,
    }
    for r in loo[~loo.encoder_saw_condition].itertuples()
]
loo_metrics, _ = summarize_results(loo_results)
write_table(loo_metrics, artifact(work, "loo_crosscheck_metrics"))
print(f"closed-form LOO (alpha={alpha:g}), impactful conditions the fold's encoder never saw:")
loo_metrics[[c for c in show if c in loo_metrics]].round(3)
