# %% [markdown]
# # Stub 06: one held-out condition
# Writes `out_dir/result.json`; fails on a condition that is not in the screen.

# %%
import json
import os
import time
from pathlib import Path

# %% tags=["parameters"]
condition = "A"  # held-out condition
work_dir = "stub-results"  # results of this data set
out_dir = "stub-results/A"  # results of this condition
alpha = 1.0  # regularisation
seed = 0  # random seed

# %%
screen = (Path(work_dir) / "nuclei" / "nuclei.csv").read_text()
if f",{condition}," not in screen:
    raise ValueError(f"held-out condition {condition!r} is not in the screen")
time.sleep(0.5)
genes = json.loads((Path(work_dir) / "genes" / "genes.json").read_text())["genes"]
top = sorted(genes, key=lambda g: (g != condition, g))
result = {
    "condition": condition,
    "true_rank": top.index(condition) + 1 if condition in top else 3,
    "n_candidates": len(genes),
    "top10": top,
    "alpha": alpha,
    "seed": seed,
}
Path(out_dir).mkdir(parents=True, exist_ok=True)
(Path(out_dir) / "result.json").write_text(json.dumps(result, sort_keys=True))
pids = Path(work_dir) / "pids"
pids.mkdir(exist_ok=True)
(pids / f"06_{condition}").write_text(str(os.getppid()))
