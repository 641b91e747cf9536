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
# (Metadata_ + Nuclei_<Family>_<Name>), `filter_counts/<plate>.csv`; with
# `context_window > 0` also `context/<plate>.npz` (uint8 field window per nucleus), and
# `preprocessing/<plate>.json` (the crop options and filters, read back by new-target mode).

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
crop_centre = "centroid"  # centroid (i2r) | bbox (the original: bounding box centred on the crop)
crop_scaling = "image"  # image (i2r: per-image percentiles) | crop (the original: per-crop min-max)
drop_large_crops = False  # drop nuclei wider/taller than crop_size (the original) or truncate them
feature_scaling = "image"  # hand-crafted features of: image (per-image percentile-scaled) | raw intensities
context_window = 0  # window (px) of field per nucleus for the image2reg encoder (original 448)
input_size = 32  # side (px) the context windows are stored at (the encoder's input size)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.context import load_context
from i2r_utils.io import load_metadata, read_table
from i2r_utils.nuclei import load_crops, preprocess_plate, select_plates
from i2r_utils.nucleus_filter import NucleusFilter
from i2r_utils.preprocessing import write_preprocessing
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

# %% [markdown]
# ## Crops, and the field around each nucleus
# i2r cuts a `crop_size` window centred on the nucleus centroid from the image normalised
# by its 1st and 99.9th percentiles, so a crop keeps the nucleus' DNA intensity relative to
# its field. Image2Reg's original crops differ in three ways, each an option: the nucleus'
# bounding box is centred on a zero canvas (`crop_centre = "bbox"`), nuclei that do not fit
# are dropped (`drop_large_crops`, counted as `removed_crop_size`), and every crop is cut
# from the raw image and min-max scaled by its OWN minimum and maximum to 8 bits
# (`crop_scaling = "crop"`): a per-nucleus contrast normalisation that discards the
# absolute DNA content. The original encoder also sees a `context_window` px square of the
# field around each nucleus (the 16-bit field rescaled by its 0.1/99.9 percentiles --
# minus the low one, divided by the high one --, padded with its 1st-percentile grey),
# resized to `input_size` and stored as uint8. The options and the filters are recorded
# per plate (`i2r_utils.preprocessing.write_preprocessing`), so that new-target mode
# (notebook 09) cuts a new target's nuclei exactly as the screen's were cut.
#
# The hand-crafted features are measured on the image minus its 1st percentile (the
# background and camera offset), divided by its 1st-99.9th percentile range
# (`feature_scaling = "image"`, not clipped). Texture, foci and radial features are ratios or
# use each nucleus' own range already; the intensity family (mean, median, integrated, ...)
# would otherwise carry the acquisition's bit depth and exposure into the profiles, and
# images saved at another bit depth or brightness would get other profiles and another
# answer in new-target mode. `feature_scaling = "raw"` keeps the raw intensities (the
# behaviour before; folders written then are read back as raw).

# %%
out = artifact(work_dir, "nuclei_dir")
crop_options = {"crop_centre": crop_centre, "crop_scaling": crop_scaling,
                "drop_large_crops": drop_large_crops, "context_window": context_window,
                "context_size": input_size, "feature_scaling": feature_scaling}  # fmt: skip
runs = [
    preprocess_plate(meta, p, out, filt, size=crop_size, apply_mask=apply_mask,
                     segment_method=segment_method, segment_params=segment_params,
                     crop_options=crop_options)  # fmt: skip
    for p in plates
]  # fmt: skip
for p in plates:
    write_preprocessing(artifact(work_dir, "plate_preprocessing", plate=p), filt,
                        crop_size=crop_size, apply_mask=apply_mask, **crop_options)  # fmt: skip
pd.DataFrame(runs).drop(columns="paths")

# %% [markdown]
# ## What the encoder sees
# A few nuclei of the first plate: their crops and, when written, their context windows.

# %%
first = read_table(artifact(work_dir, "plate_nuclei", plate=plates[0])).head(6)
rows = [("crop", load_crops(out, first))]
if context_window:
    rows.append((f"context ({context_window} px)", load_context(out, first, context_window)))
fig, axes = plt.subplots(len(rows), len(first), figsize=(1.6 * len(first), 1.7 * len(rows)),
                         squeeze=False)  # fmt: skip
for (name, imgs), ax_row in zip(rows, axes, strict=True):
    for img, ax, cond in zip(imgs, ax_row, first["Metadata_Condition"], strict=False):
        ax.imshow(np.asarray(img, np.float32), cmap="gray")
        ax.set_title(f"{cond}\n{name}", fontsize=7)
        ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## What each filter removed
# Summed over the images of each processed plate.

# %%
counts = pd.concat(pd.read_csv(artifact(work_dir, "plate_filter_counts", plate=p)) for p in plates)
counts.groupby("Metadata_Plate")[counts.filter(regex="n_objects|removed_|n_kept").columns].sum()
