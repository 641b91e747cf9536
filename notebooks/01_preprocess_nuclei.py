# %% [markdown]
# # 01 Preprocess nuclei (plate scope)
# For each plate (parameter `plate`; `""` = every plate, one after the other): validates
# images and masks (images without a mask are segmented with the classical method), filters
# nuclei with the Image2Reg defaults (one `NucleusFilter`; counts of what each filter removed
# per image), cuts 64x64 crops normalised per image (nucleus mask applied) and extracts the
# hand-crafted chromatin features. A plate whose files exist is skipped; different plates can
# run in parallel (nothing shared is written).
# Produces, per plate, under `work_dir/nuclei/`: `plates/<plate>.parquet` (Metadata_ per
# nucleus, bbox, crop index), `crops/<plate>.npz`, `features/<plate>.parquet`
# (Metadata_ + Nuclei_<Family>_<Name>), `filter_counts/<plate>.csv`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder with metadata.csv
work_dir = "../results/tiny"  # results of this data set
plate = ""  # plate to process (empty: every plate, one after the other)
crop_size = 64  # crop side in pixels
apply_mask = True  # zero the pixels outside the nucleus in each crop
pixel_scale = 1.0  # linear scale relative to 20x (area filters scale with its square)
min_area = 400  # smallest nucleus area, px at 20x
max_area = 4000  # largest nucleus area, px at 20x
max_bbox_area = 4000  # largest bounding-box area, px at 20x
max_eccentricity = 1.0  # largest eccentricity
min_solidity = 0.1  # smallest area / convex area
min_aspect_ratio = 0.1  # smallest minor / major axis
drop_border = True  # drop nuclei touching the image border
segment_method = "classical"  # segmentation for images without a mask

# %%
from pathlib import Path

import pandas as pd

from i2r_utils.nuclei import NucleusFilter, load_screen_metadata, preprocess_plate, select_plates

filt = NucleusFilter(
    min_area=min_area, max_area=max_area, max_bbox_area=max_bbox_area,
    max_eccentricity=max_eccentricity, min_solidity=min_solidity,
    min_aspect_ratio=min_aspect_ratio, drop_border=drop_border, pixel_scale=pixel_scale,
)  # fmt: skip
out = Path(work_dir) / "nuclei"
meta = load_screen_metadata(data_dir)
plates = select_plates(meta, plate)
print(f"{len(meta)} images, plates to process: {plates}; {filt}")
runs = [
    preprocess_plate(meta, p, out, filt, size=crop_size, apply_mask=apply_mask,
                     segment_method=segment_method)
    for p in plates
]  # fmt: skip
pd.DataFrame(runs).drop(columns="paths")

# %% [markdown]
# What each filter removed, summed over the images of each processed plate.

# %%
counts = pd.concat(pd.read_csv(r["paths"]["filter_counts"]) for r in runs)
counts.groupby("Metadata_Plate")[counts.filter(regex="n_objects|removed_|n_kept").columns].sum()
