# %% [markdown]
# # 01 Preprocess nuclei (plate scope)
# For each plate (parameter `plate`; `""` = every plate, one after the other), every image
# goes through the one per-image step, `i2r_utils.nuclei.preprocess_image` (new-target mode,
# notebook 09, uses the same one): read and validate the image and its mask (an image
# without a mask is segmented with the classical method), filter the nuclei with the
# Image2Reg defaults, cut 64x64 crops normalised per image (nucleus mask applied) and
# extract the hand-crafted chromatin features. Different plates can run in parallel
# (nothing shared is written).
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
segment_method = "unet_tta"  # images without a mask: classical | unet | unet_tta
segmentation_tta = "d4"  # TTA set of unet_tta: d4 (8 versions) or thesis6
annotated_dir = "../../shared/data/nuclei_dsb2018_fluo"  # U-Net training data (if untrained)
unet_epochs = 16  # U-Net training settings: the same as notebook 08's, so one model serves
unet_max_minutes = 15.0
seed = 0
threads = None  # torch and BLAS threads (None: the libraries' defaults, usually the cores)

# %%
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.io import load_metadata
from i2r_utils.nuclei import preprocess_plate, select_plates
from i2r_utils.nucleus_filter import NucleusFilter
from i2r_utils.runtime import pin_threads

pin_threads(threads)

# %% [markdown]
# ## The screen and the nucleus filters
# The metadata table lists every image with its plate, well, site and condition; an empty
# `Metadata_MaskPath` means "segment this image". The filters are applied in order (border,
# area, bounding-box area, eccentricity, aspect ratio, solidity), each counting what it
# removed; the area limits scale with the square of `pixel_scale`.

# %%
filt = NucleusFilter(
    min_area=min_area, max_area=max_area, max_bbox_area=max_bbox_area,
    max_eccentricity=max_eccentricity, min_solidity=min_solidity,
    min_aspect_ratio=min_aspect_ratio, drop_border=drop_border, pixel_scale=pixel_scale,
)  # fmt: skip
meta = load_metadata(data_dir, require_masks=False)
plates = select_plates(meta, plate)
print(f"{len(meta)} images, plates to process: {plates}; {filt}")

# %% [markdown]
# ## The segmentation model for images without a mask
# Only when a plate has images without a mask: the run's U-Net (`work_dir/segmentation/
# unet.pt`, trained on the annotated nuclei of `annotated_dir` on first use, then reused by
# every plate and by notebook 08), or the classical method (`segment_method = "classical"`).

# %%
unmasked = meta["Metadata_Plate"].isin(plates) & (meta["Metadata_MaskPath"] == "")
segment_params = {}
if unmasked.any() and segment_method != "classical":
    from i2r_utils.unet_training import trained_unet

    unet_settings = {"epochs": unet_epochs, "max_seconds": 60.0 * unet_max_minutes, "seed": seed}
    model, info = trained_unet(artifact(work_dir, "segmentation_model"), annotated_dir,
                               unet_settings)  # fmt: skip
    tta = segmentation_tta if segment_method == "unet_tta" else None
    segment_params = {"model": model, "tta": tta}
print(f"{int(unmasked.sum())} images without a mask: {segment_method if unmasked.any() else '-'}")

# %% [markdown]
# ## Preprocess each plate
# Every image of the plate through `preprocess_image`; the plate's four files are written
# atomically, the plate table last. Too few nuclei on a plate stops here with the filter
# that removed the most and the parameter to change (the filter counts are written first).

# %%
out = artifact(work_dir, "nuclei_dir")
runs = [
    preprocess_plate(meta, p, out, filt, size=crop_size, apply_mask=apply_mask,
                     segment_method=segment_method, segment_params=segment_params)
    for p in plates
]  # fmt: skip
pd.DataFrame(runs).drop(columns="paths")

# %% [markdown]
# ## What each filter removed
# Summed over the images of each processed plate.

# %%
counts = pd.concat(pd.read_csv(artifact(work_dir, "plate_filter_counts", plate=p)) for p in plates)
counts.groupby("Metadata_Plate")[counts.filter(regex="n_objects|removed_|n_kept").columns].sum()
