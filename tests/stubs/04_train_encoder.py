# %% [markdown]
# # Stub 04: one fold's encoder
# Reads `work_dir/screen/fold_assignment.csv`; writes `work_dir/encoders/fold<k>/encoder.json`.

# %%
import csv
import json
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set
fold = 0  # fold of held-out conditions
n_folds = 3  # number of folds
seed = 0  # random seed

# %%
with open(Path(work_dir) / "screen" / "fold_assignment.csv") as fh:
    held_out = [r["condition"] for r in csv.DictReader(fh) if int(r["fold"]) == fold]
out = Path(work_dir) / "encoders" / f"fold{fold}"
out.mkdir(parents=True, exist_ok=True)
info = {"fold": fold, "n_folds": n_folds, "seed": seed, "held_out": held_out}
(out / "encoder.json").write_text(json.dumps(info))
