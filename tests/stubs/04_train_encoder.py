# %% [markdown]
# # Stub 04: one fold's encoder
# Writes `work_dir/encoders/fold<k>/encoder.json`.

# %%
import json
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set
fold = 0  # fold of held-out conditions
n_folds = 3  # number of folds
seed = 0  # random seed

# %%
out = Path(work_dir) / "encoders" / f"fold{fold}"
out.mkdir(parents=True, exist_ok=True)
(out / "encoder.json").write_text(json.dumps({"fold": fold, "n_folds": n_folds, "seed": seed}))
