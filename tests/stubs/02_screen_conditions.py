# %% [markdown]
# # Stub 02: merge the plates; assign the conditions to folds
# Writes `work_dir/nuclei/nuclei.csv` and `work_dir/screen/fold_assignment.csv`.

# %%
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set
n_folds = 3  # folds of held-out conditions

# %%
plates = sorted((Path(work_dir) / "nuclei" / "plates").glob("*.csv"))
merged = "".join(p.read_text() for p in plates)
(Path(work_dir) / "nuclei" / "nuclei.csv").write_text(merged)
conditions = sorted({line.split(",")[1] for line in merged.splitlines() if line} - {"EMPTY"})
rows = ["condition,fold"] + [f"{c},{i % n_folds}" for i, c in enumerate(conditions)]
(Path(work_dir) / "screen").mkdir(parents=True, exist_ok=True)
(Path(work_dir) / "screen" / "fold_assignment.csv").write_text("\n".join(rows) + "\n")
