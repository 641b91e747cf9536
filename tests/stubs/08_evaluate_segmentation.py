# %% [markdown]
# # Stub 08: segmentation evaluation
# Writes `work_dir/segmentation/seg.csv`.

# %%
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set
seed = 0  # random seed

# %%
out = Path(work_dir) / "segmentation"
out.mkdir(parents=True, exist_ok=True)
(out / "seg.csv").write_text(f"seed,ap\n{seed},1.0\n")
