# %% [markdown]
# # Stub 07: summary of the conditions
# Writes `work_dir/summary.csv`, `work_dir/summary_metrics.csv`.

# %%
import json
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set
figures_dir = "stub-figures"  # figures
conditions = ""  # comma-separated held-out conditions

# %%
rows = [json.loads((Path(work_dir) / c / "result.json").read_text()) for c in conditions.split(",")]
lines = ["condition,true_rank"] + [f"{r['condition']},{r['true_rank']}" for r in rows]
(Path(work_dir) / "summary.csv").write_text("\n".join(lines) + "\n")
(Path(work_dir) / "summary_metrics.csv").write_text(f"metric,value\nn,{len(rows)}\n")
