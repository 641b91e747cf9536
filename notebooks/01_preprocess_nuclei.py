# %% [markdown]
# # 01 Preprocess nuclei
# Validates images and masks, filters nuclei (Image2Reg defaults, pixel units) and cuts
# 64x64 single-nucleus crops, one compact file per plate.
# Produces `work_dir/nuclei/crops/<plate>.npz`, `work_dir/nuclei/nuclei.parquet`,
# `work_dir/nuclei/filter_counts.csv`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder with metadata.csv
work_dir = "../results/tiny"  # results of this data set
crop_size = 64  # crop side in pixels
pixel_scale = 1.0  # linear scale relative to 20x (filters scale with it)

# %%
from pathlib import Path

from i2r_utils.io import load_metadata, write_table
from i2r_utils.nuclei import NucleusFilter, preprocess_screen

out = Path(work_dir) / "nuclei"
meta = load_metadata(data_dir)
nuclei = preprocess_screen(meta, out, NucleusFilter(pixel_scale=pixel_scale), size=crop_size)
write_table(nuclei, out / "nuclei.parquet")
print(f"{len(nuclei)} nuclei kept from {len(meta)} images")
nuclei.groupby("Metadata_Condition").size().describe()

# %%
import pandas as pd

counts = pd.read_csv(out / "filter_counts.csv")
counts.filter(regex="n_objects|removed_|n_kept").sum()
