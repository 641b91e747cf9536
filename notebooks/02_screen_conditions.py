# %% [markdown]
# # 02 Screen the conditions (dataset scope)
# Merges the per-plate outputs of notebook 01 into one nuclei table, then asks, for every
# over-expression condition, whether a classifier on the hand-crafted chromatin features
# separates its nuclei from control (`EMPTY`) nuclei, with cross-validation grouped by well
# (plate + well: no well in both training and test data). Conditions whose balanced accuracy
# is above the elbow of the ranked curve (or a fixed `screen_threshold`) are *impactful*.
# Fallback: if fewer than `min_impactful` conditions pass, the `min_impactful` best-scoring
# conditions are called instead (recorded as `fallback` in `screen/screen_call.json`).
# On a synthetic screen (`data_dir/truth/conditions.csv`) the call is scored against the
# simulated truth (precision and recall). Finally every condition is dealt into one of
# `n_folds` folds of held-out conditions (impactful ones spread evenly), once, here: the
# encoders (notebook 04) and profiles (notebook 05) read this assignment.
# Produces `work_dir/nuclei/nuclei.parquet`, `work_dir/screen/screen.csv`,
# `work_dir/screen/impactful.csv`, `work_dir/screen/screen_call.json`,
# `work_dir/screen/fold_assignment.csv`, `figures_dir/fig_screen.{png,svg}`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder with metadata.csv (and truth/)
work_dir = "../results/tiny"  # results of this data set
figures_dir = "../results/tiny/figures"  # figure folder
screen_threshold = "elbow"  # "elbow" or a balanced accuracy, e.g. 0.665
min_impactful = 3  # fewest impactful conditions (fallback: the best-scoring ones)
n_splits = 4  # most cross-validation folds (grouped by well)
classifier = "logistic"  # "logistic" or "random_forest"
n_folds = 2  # folds of held-out conditions (one encoder each); number of conditions: leave-one-out
seed = 0  # random seed of sampling, CV folds, classifier and fold assignment
threads = None  # torch and BLAS threads (None: the libraries' defaults, usually the cores)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.columns import CONTROL
from i2r_utils.io import load_metadata, write_json, write_table
from i2r_utils.nuclei import merge_plates, select_plates
from i2r_utils.plotting import save_figure
from i2r_utils.runtime import pin_threads
from i2r_utils.screen import (
    call_precision_recall,
    fold_assignment,
    screen_conditions,
    select_impactful,
)

pin_threads(threads)

# %% [markdown]
# ## Merge the plates
# The nuclei kept by the per-plate filters, with their hand-crafted features, become one
# table (`nuclei`: metadata of every nucleus; `features`: metadata + feature columns).

# %%
meta = load_metadata(data_dir, require_masks=False)
nuclei, features, counts = merge_plates(artifact(work_dir, "nuclei_dir"), select_plates(meta))
write_table(nuclei, artifact(work_dir, "nuclei"))
print(f"{len(nuclei)} nuclei kept of {int(counts.n_objects.sum())} objects in {len(counts)} images")
nuclei.groupby("Metadata_Condition").size().describe()

# %% [markdown]
# ## One classifier per condition against control
# For each condition: its nuclei and as many control nuclei (sampled from all control wells)
# form a binary problem; median imputation, standardisation and the classifier are fitted in
# each training fold of a cross-validation grouped by well, and the held-out wells are scored
# by balanced accuracy (0.5: looks like control).

# %%
results = screen_conditions(features, n_splits=n_splits, seed=seed, classifier=classifier)
results.head()

# %% [markdown]
# ## Call the impactful conditions
# Impactful: balanced accuracy above the elbow of the ranked curve (the point farthest from
# the line joining the best and the worst condition) or above a fixed `screen_threshold`;
# with the fallback to the `min_impactful` best conditions.

# %%
called = select_impactful(results, screen_threshold, min_impactful)
thr = called.attrs["impactful_threshold"]
write_table(called, artifact(work_dir, "screen"))
impactful = called.loc[called.impactful, ["Metadata_Condition"]]
assert CONTROL not in set(impactful.Metadata_Condition)
write_table(impactful, artifact(work_dir, "impactful"))
print(
    f"threshold {thr:.3f} ({called.attrs['threshold_rule']}), "
    f"fallback: {called.attrs['fallback']}; {len(impactful)} impactful of {len(called)}"
)
called.round(3)

# %% [markdown]
# ## The call against the simulated truth (only on a synthetic screen)

# %%
truth_path = Path(data_dir) / "truth" / "conditions.csv"
truth = pd.read_csv(truth_path) if truth_path.is_file() else None
call = {
    "threshold": thr,
    "threshold_rule": called.attrs["threshold_rule"],
    "fallback": called.attrs["fallback"],
    "min_impactful": min_impactful,
    "n_conditions": len(called),
    "n_impactful": len(impactful),
    "impactful": impactful.Metadata_Condition.tolist(),
}
if truth is not None:
    call |= call_precision_recall(called, truth)
    print(
        f"precision {call['precision']:.3f}, recall {call['recall']:.3f} "
        f"(false positives {call['false_positives']}, false negatives "
        f"{call['false_negatives']})"
    )
write_json(call, artifact(work_dir, "screen_call"))

# %% [markdown]
# ## Folds of held-out conditions
# Every non-control condition goes to exactly one of `n_folds` folds: the impactful conditions
# (the encoder's classes) are shuffled and dealt round-robin first, the others continue the
# deal. The encoder of fold k never sees a fold-k condition, so every condition is embedded by
# an encoder that did not train on it.

# %%
folds = fold_assignment(
    nuclei["Metadata_Condition"], n_folds, seed, impactful.Metadata_Condition.tolist()
)
write_table(folds, artifact(work_dir, "folds"))
folds.groupby("Metadata_Fold").agg(
    n_conditions=("Metadata_Condition", "size"), n_impactful=("Metadata_Impactful", "sum")
)

# %% [markdown]
# ## Figure: conditions ranked by balanced accuracy
# Red: impactful; dashed: the threshold; dotted: chance; open squares: simulated nulls (no
# phenotype); bars: standard deviation over the cross-validation folds.

# %%
res = called.sort_values("balanced_accuracy", ascending=False, na_position="last", kind="stable")
n = len(res)
x = np.arange(n)
s = res["balanced_accuracy"].to_numpy(dtype=float)
hit = res["impactful"].to_numpy(dtype=bool)
fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * n + 1.5), 4.5), layout="constrained")
ax.errorbar(x, s, yerr=res["balanced_accuracy_sd"].to_numpy(dtype=float), fmt="none",
            ecolor="0.6", elinewidth=0.8, capsize=0, zorder=1)  # fmt: skip
ax.scatter(x[~hit], s[~hit], s=22, color="0.45", zorder=2, label="not impactful")
if hit.any():
    ax.scatter(x[hit], s[hit], s=26, color="tab:red", zorder=3, label="impactful")
if truth is not None:
    nulls = truth.loc[~truth.has_phenotype & (truth.Metadata_Condition != CONTROL),
                      "Metadata_Condition"]  # fmt: skip
    null = res["Metadata_Condition"].isin(set(nulls)).to_numpy()
    if null.any():
        ax.scatter(x[null], s[null], s=90, marker="s", facecolors="none", edgecolors="tab:blue",
                   linewidths=1.2, zorder=4, label="simulated null (no phenotype)")  # fmt: skip
ax.axhline(thr, color="tab:red", ls="--", lw=1, label=f"threshold {thr:.3f}")
ax.axhline(0.5, color="0.3", ls=":", lw=1, label="chance 0.5")
ax.set_xticks(x)
ax.set_xticklabels(res["Metadata_Condition"].astype(str), rotation=90,
                   fontsize=9 if n <= 30 else 7 if n <= 70 else 5)  # fmt: skip
ax.set_xlim(-0.7, n - 0.3)
ax.set_xlabel("condition (ranked)")
ax.set_ylabel("balanced accuracy vs control")
ax.grid(axis="y", alpha=0.3)
ax.legend(loc="upper right", fontsize=8, frameon=False)
rule = called.attrs["threshold_rule"]
note = f"; fallback: top {min_impactful}" if called.attrs["fallback"] else ""
ax.set_title(f"Conditions vs {CONTROL} (hand-crafted features, grouped CV); {rule}{note}")
save_figure(fig, Path(figures_dir) / "fig_screen")
