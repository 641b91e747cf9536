# %% [markdown]
# # Stub 01: one plate
# Writes `work_dir/nuclei/plates/<plate>.csv` and the kernel's parent process id.

# %%
import csv
import os
from pathlib import Path

# %% tags=["parameters"]
data_dir = "stub-data"  # screen folder
work_dir = "stub-results"  # results of this data set
plate = ""  # plate to process
pixel_scale = 1.0  # pixel scale

# %%
with open(Path(data_dir) / "metadata.csv") as fh:
    rows = [r for r in csv.DictReader(fh) if r["Metadata_Plate"] == plate]
if not rows:
    raise ValueError(f"plate {plate!r} is not in the screen")
out = Path(work_dir) / "nuclei" / "plates"
out.mkdir(parents=True, exist_ok=True)
lines = [
    f"{r['Metadata_Plate']},{r['Metadata_Condition']},{len(r['Metadata_Well']) * pixel_scale}"
    for r in rows
]
(out / f"{plate}.csv").write_text("\n".join(lines) + "\n")
pids = Path(work_dir) / "pids"
pids.mkdir(exist_ok=True)
(pids / f"01_{plate}").write_text(str(os.getppid()))
