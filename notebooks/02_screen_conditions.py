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
# simulated truth (precision and recall).
# Produces `work_dir/nuclei/nuclei.parquet`, `work_dir/screen/screen.csv`,
# `work_dir/screen/impactful.csv`, `work_dir/screen/screen_call.json`,
# `figures_dir/fig_screen.{png,svg}`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder with metadata.csv (and truth/)
work_dir = "../results/tiny"  # results of this data set
figures_dir = "../results/tiny/figures"  # figure folder
screen_threshold = "elbow"  # "elbow" or a balanced accuracy, e.g. 0.665
min_impactful = 3  # fewest impactful conditions (fallback: the best-scoring ones)
n_splits = 4  # most cross-validation folds (grouped by well)
classifier = "logistic"  # "logistic" or "random_forest"
seed = 0  # random seed of sampling, folds and classifier

# %%
from pathlib import Path

import pandas as pd

from i2r_utils.io import write_json, write_table
from i2r_utils.nuclei import load_screen_metadata, merge_plates, select_plates
from i2r_utils.plotting import save_figure
from i2r_utils.screen import (
    call_precision_recall,
    plot_screen,
    screen_conditions,
    select_impactful,
)

nuc_dir = Path(work_dir) / "nuclei"
meta = load_screen_metadata(data_dir)
nuclei, features, counts = merge_plates(nuc_dir, select_plates(meta))
write_table(nuclei, nuc_dir / "nuclei.parquet")
print(f"{len(nuclei)} nuclei kept of {int(counts.n_objects.sum())} objects in {len(counts)} images")
nuclei.groupby("Metadata_Condition").size().describe()

# %%
results = screen_conditions(features, n_splits=n_splits, seed=seed, classifier=classifier)
called = select_impactful(results, screen_threshold, min_impactful)
thr = called.attrs["impactful_threshold"]
screen_dir = Path(work_dir) / "screen"
write_table(called, screen_dir / "screen.csv")
impactful = called.loc[called.impactful, ["Metadata_Condition"]]
assert "EMPTY" not in set(impactful.Metadata_Condition)
write_table(impactful, screen_dir / "impactful.csv")
print(
    f"threshold {thr:.3f} ({called.attrs['threshold_rule']}), "
    f"fallback: {called.attrs['fallback']}; {len(impactful)} impactful of {len(called)}"
)
called.round(3)

# %% [markdown]
# The call against the simulated truth (only on a synthetic screen).

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
write_json(call, screen_dir / "screen_call.json")

# %%
null = None
if truth is not None:
    null = truth.loc[~truth.has_phenotype & (truth.Metadata_Condition != "EMPTY"),
                     "Metadata_Condition"]  # fmt: skip
fig = plot_screen(called, thr, null_conditions=null)
rule = called.attrs["threshold_rule"]
note = f"; fallback: top {min_impactful}" if called.attrs["fallback"] else ""
fig.axes[0].set_title(f"Conditions vs EMPTY (hand-crafted features, grouped CV); {rule}{note}")
save_figure(fig, Path(figures_dir) / "fig_screen")
