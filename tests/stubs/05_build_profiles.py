# %% [markdown]
# # Stub 05: profiles from every fold
# Reads `work_dir/screen/fold_assignment.csv`; writes `work_dir/profiles/profiles.json`.

# %%
import csv
import json
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set
n_folds = 3  # number of folds

# %%
with open(Path(work_dir) / "screen" / "fold_assignment.csv") as fh:
    fold_of = {r["condition"]: int(r["fold"]) for r in csv.DictReader(fh)}
folds = [
    json.loads((Path(work_dir) / "encoders" / f"fold{k}" / "encoder.json").read_text())
    for k in range(n_folds)
]
if any(fold_of[c] != f["fold"] for f in folds for c in f["held_out"]):
    raise ValueError("an encoder was trained on another fold assignment")
out = Path(work_dir) / "profiles"
out.mkdir(parents=True, exist_ok=True)
(out / "profiles.json").write_text(json.dumps({"folds": folds, "fold_of": fold_of}))
