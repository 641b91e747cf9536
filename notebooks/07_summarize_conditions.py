# %% [markdown]
# # 05 Summarise the held-out conditions (figure: top-k accuracy)
# Collects every held-out condition's result: the rank of the true gene, top-1/5/10
# accuracy of the method beside the permutation baseline and uniform random (k/N), and the
# area under the top-k curve summed over K = 10..50 as Image2Reg reports.
# Produces `work_dir/summary.csv`, `work_dir/summary_metrics.csv` and
# `figures_dir/fig_topk_accuracy.{png,svg}`.

# %% tags=["parameters"]
work_dir = "../results/tiny"  # results of this data set
figures_dir = "../results/tiny/figures"  # where the figure goes
conditions = ""  # comma-separated held-out conditions (empty: every one with a result)

# %%
import json
from pathlib import Path

import numpy as np
import pandas as pd

from i2r_utils.io import write_table
from i2r_utils.plotting import plot_topk_curves, save_figure
from i2r_utils.translation import topk_accuracy

if conditions:
    paths = [Path(work_dir) / c / "result.json" for c in conditions.split(",")]
else:
    paths = sorted(Path(work_dir).glob("*/result.json"))
if not paths:
    raise FileNotFoundError(f"no result.json under {work_dir}; run notebook 04 first")
results = [json.loads(p.read_text()) for p in paths]
n = results[0]["n_candidates"]
summary = pd.DataFrame(
    {"condition": r["condition"], "true_rank": r["true_rank"],
     "permutation_mean_rank": r.get("permutation_mean_rank", np.nan),
     "top10": " ".join(r["top10"])} for r in results
)
write_table(summary, Path(work_dir) / "summary.csv")
summary

# %%
ks = np.arange(1, 51)
ranks = summary.true_rank.to_numpy()
acc = topk_accuracy(ranks, ks)
curves = {f"Image2Reg NTK ({len(ranks)} held-out)": acc}
rows = [{"method": "method", "mean_rank": ranks.mean(),
         **{f"top{k}": acc[k - 1] for k in (1, 5, 10)},
         "auc_k10_50": acc[9:50].sum() / 41}]
if all("permutation_ranks" in r for r in results):
    perm = np.array([r["permutation_ranks"] for r in results])  # conditions x permutations
    per_perm = np.stack([topk_accuracy(perm[:, j], ks) for j in range(perm.shape[1])])
    lo, hi = np.percentile(per_perm, [2.5, 97.5], axis=0)
    pacc = per_perm.mean(0)
    curves["permutation baseline (mean, 95% band)"] = (pacc, lo, hi)
    rows.append({"method": "permutation", "mean_rank": perm.mean(),
                 **{f"top{k}": pacc[k - 1] for k in (1, 5, 10)},
                 "auc_k10_50": pacc[9:50].sum() / 41})
uni = ks / n
rows.append({"method": "uniform random k/N", "mean_rank": (n + 1) / 2,
             **{f"top{k}": uni[k - 1] for k in (1, 5, 10)}, "auc_k10_50": uni[9:50].sum() / 41})
metrics = pd.DataFrame(rows)
write_table(metrics, Path(work_dir) / "summary_metrics.csv")
fig = plot_topk_curves(curves, n)
save_figure(fig, Path(figures_dir) / "fig_topk_accuracy")
metrics.round(3)
