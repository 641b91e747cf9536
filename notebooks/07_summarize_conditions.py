# %% [markdown]
# # 07 Summarise the held-out conditions (figures: top-k accuracy, translation embedding)
# Collects every held-out condition's `result.json` (notebook 06): the rank of the true
# gene, and for the method and each baseline (permutation: mean and 95% band over
# permutations; mean-embedding predictor; uniform random k/N; other kernels and the
# cosine distance) the mean rank, top-1/5/10 accuracy and the area under the top-k curve
# summed over K = 10..50 (`auc_k10_50` = sum of acc(K) over the 41 values of K / 41, in
# [0, 1]; uniform random gives 30/N; acc(K) = fraction of conditions whose true gene is
# within the first K).
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
alpha = 1.0  # ridge of the leave-one-out cross-check
metric = "euclidean"  # distance for ranking
n_embedding_conditions = 6  # conditions drawn in the 2-D embedding figure

# %%
import json
from pathlib import Path

import pandas as pd

from i2r_utils.io import InputError, read_table, write_table
from i2r_utils.plotting import plot_topk_curves, plot_translation_embedding, save_figure
from i2r_utils.profiles import translation_profiles
from i2r_utils.translation import loo_ranks, summarize_results

work = Path(work_dir)
if conditions:
    paths = [work / c / "result.json" for c in conditions.split(",")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"no result for {missing}; run notebook 06 for these conditions.")
else:
    paths = sorted(work.glob("*/result.json"))
if not paths:
    raise InputError(f"no */result.json under {work}; run notebook 06 first.")
results = [json.loads(p.read_text()) for p in paths]
summary = pd.DataFrame(
    {
        "condition": r["condition"],
        "fold": r.get("fold"),
        "impactful": r.get("impactful"),
        "true_rank": r["true_rank"],
        "n_candidates": r["n_candidates"],
        "alpha": r.get("alpha"),
        "permutation_mean_rank": r.get("permutation_mean_rank"),
        "mean_embedding_rank": r.get("mean_embedding_rank"),
        **{f"rank_{k}": v for k, v in r.get("comparison", {}).items()},
        "top10": " ".join(r["top10"]),
    }
    for r in results
)
write_table(summary, work / "summary.csv")
summary

# %%
metrics, curves = summarize_results(results)
metrics.insert(0, "subset", "all held-out")
impactful_results = [r for r in results if r.get("impactful")]
if 0 < len(impactful_results) < len(results):
    sub, _ = summarize_results(impactful_results)
    metrics = pd.concat([metrics, sub.assign(subset="impactful only")], ignore_index=True)
write_table(metrics, work / "summary_metrics.csv")
fig = plot_topk_curves(
    curves, summary.n_candidates.to_numpy(), title=f"{len(results)} held-out conditions"
)
save_figure(fig, Path(figures_dir) / "fig_topk_accuracy")
show = [
    "subset",
    "method",
    "n_conditions",
    "mean_rank",
    "top1",
    "top5",
    "top10",
    "auc_k10_50",
    "auc_k10_50_lo",
    "auc_k10_50_hi",
]
metrics[[c for c in show if c in metrics]].round(3)

# %%
genes = read_table(work / "genes" / "gene_embeddings.parquet").set_index("gene")
items = [
    # the star is the image-to-gene prediction, so the rank shown is that direction's
    (r["condition"], r["gene"], r["predicted_embedding"],
     r.get("comparison", {}).get(f"{r.get('kernel', 'ntk')}/{r.get('metric', 'euclidean')}",
                                 r["true_rank"]))
    for r in results[:n_embedding_conditions]
]  # fmt: skip
fig = plot_translation_embedding(
    genes, items, "held-out conditions: image-to-gene prediction vs true gene"
)
save_figure(fig, Path(figures_dir) / "fig_translation_embedding")

# %%
folds = read_table(work / "profiles" / "fold_assignment.csv")
profiles = translation_profiles(work / "profiles", representation)
impactful = read_table(work / "screen" / "impactful.csv")["Metadata_Condition"].tolist()
held_in = dict(zip(folds.Metadata_Condition, folds.Metadata_Fold, strict=True))
loo = []
for fold in sorted(profiles.Metadata_Fold.unique()):
    space = profiles[profiles.Metadata_Fold == fold]
    t = loo_ranks(space, genes, impactful, kernel, depth, alpha, metric)
    t.insert(0, "fold_space", fold)
    t["encoder_saw_condition"] = [held_in.get(c) != fold for c in t.condition]
    loo.append(t)
loo = pd.concat(loo, ignore_index=True)
write_table(loo, work / "loo_crosscheck.csv")
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
write_table(loo_metrics, work / "loo_crosscheck_metrics.csv")
print(f"closed-form LOO (alpha={alpha:g}), impactful conditions the fold's encoder never saw:")
loo_metrics[[c for c in show if c in loo_metrics]].round(3)
