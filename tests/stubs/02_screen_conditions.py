# %% [markdown]
# # Stub 02: merge the plates
# Writes `work_dir/nuclei/nuclei.csv`.

# %%
from pathlib import Path

# %% tags=["parameters"]
work_dir = "stub-results"  # results of this data set

# %%
plates = sorted((Path(work_dir) / "nuclei" / "plates").glob("*.csv"))
(Path(work_dir) / "nuclei" / "nuclei.csv").write_text("".join(p.read_text() for p in plates))
