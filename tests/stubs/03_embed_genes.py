# %% [markdown]
# # Stub 03: gene embeddings
# Writes `work_dir/genes/genes.json`.

# %%
import json
from pathlib import Path

# %% tags=["parameters"]
data_dir = "stub-data"  # screen folder
work_dir = "stub-results"  # results of this data set
seed = 0  # random seed

# %%
out = Path(work_dir) / "genes"
out.mkdir(parents=True, exist_ok=True)
(out / "genes.json").write_text(json.dumps({"seed": seed, "genes": ["A", "B", "C"]}))
