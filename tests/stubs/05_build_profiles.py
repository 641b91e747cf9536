# %% [markdown]
# # Stub 05: profiles from every fold
# Writes `work_dir/profiles/profiles.json`.

# %%
import json
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set
n_folds = 3  # number of folds

# %%
folds = [
    json.loads((Path(work_dir) / "encoders" / f"fold{k}" / "encoder.json").read_text())
    for k in range(n_folds)
]
out = Path(work_dir) / "profiles"
out.mkdir(parents=True, exist_ok=True)
(out / "profiles.json").write_text(json.dumps(folds))
