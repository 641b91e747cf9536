# %% [markdown]
# # 08 Evaluate nucleus segmentation and test-time augmentation (dataset scope)
# Compares the classical baseline (Otsu + distance-transform watershed), a small U-Net
# trained here on CPU, and both with test-time augmentation (TTA over the dihedral group:
# flips and rot90s, de-augmented and merged; U-Net: mean of probability maps; classical:
# object matching at IoU >= 0.5 with majority vote). Data: the real annotated DSB2018
# fluorescence image in `annotated_dir` (../shared/data), cut into tiles and split at random
# into training tiles (U-Net) and held-out test tiles (all scores); if it is missing, images
# of the synthetic screen in `data_dir`. Scores per held-out image: mAP_DSB (mean over IoU
# 0.50:0.05:0.95 of TP/(TP+FP+FN)), AP at IoU 0.5, pixel IoU.
# Produces `work_dir/segmentation/metrics.csv` (per image and method),
# `work_dir/segmentation/summary.csv` (means, with StarDist's DSB reference),
# `figures_dir/fig_segmentation_tta.{png,svg}`, `figures_dir/fig_segmentation_overlays.{png,svg}`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # synthetic screen (fallback when no annotated data)
work_dir = "../results/tiny"  # results of this data set
figures_dir = "../results/tiny/figures"  # figure folder
annotated_dir = "../../shared/data/nuclei_stardist_example"  # real annotated nuclei (img2d, mask2d)
tile_size = 128  # side of the tiles cut from the annotated image
test_fraction = 0.5  # share of tiles held out for testing
unet_epochs = 60  # U-Net training epochs of 10 steps (~0.07-0.15 s per step on 1 core)
unet_base_channels = 8  # U-Net width
tta = "d4"  # test-time augmentation: "d4" (8 transforms) or "flips"
threads = 1  # torch CPU threads (1 is fastest for this small U-Net on a busy machine)
seed = 0  # random seed of the split and the U-Net

# %%
from pathlib import Path

import numpy as np
import torch

from i2r_utils.io import write_table
from i2r_utils.plotting import save_figure
from i2r_utils.segmentation import (
    evaluate_segmentation,
    load_annotated_nuclei,
    plot_segmentation_overlays,
    plot_tta_deltas,
    train_unet,
)

torch.set_num_threads(threads)
data = load_annotated_nuclei(annotated_dir, data_dir, tile_size=tile_size)
n = len(data["images"])
order = np.random.default_rng(seed).permutation(n)
n_test = max(1, min(n - 1, round(test_fraction * n)))
test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
print(f"{data['source']}: {n} images, {len(train)} for training, {len(test)} held out")

# %%
model, history = train_unet(
    [data["images"][i] for i in train], [data["masks"][i] for i in train],
    epochs=unet_epochs, steps_per_epoch=10, patch_size=64, batch_size=8, lr=3e-3, seed=seed,
    device="cpu", base_channels=unet_base_channels, depth=3, progress=False,
)  # fmt: skip
print(
    f"U-Net: {len(history['loss'])} steps in {history['seconds'][0]:.0f} s, "
    f"loss {np.mean(history['loss'][:10]):.3f} -> {np.mean(history['loss'][-10:]):.3f}"
)

# %%
methods = {
    "classical": {"method": "classical"},
    "classical+TTA": {"method": "classical", "tta": tta},
    "U-Net": {"method": "unet", "model": model},
    "U-Net+TTA": {"method": "unet", "model": model, "tta": tta},
}
scores, preds = evaluate_segmentation(
    [data["images"][i] for i in test], [data["masks"][i] for i in test],
    [data["names"][i] for i in test], methods, progress=False,
)  # fmt: skip
seg_dir = Path(work_dir) / "segmentation"
write_table(scores, seg_dir / "metrics.csv")
summary = scores.groupby("method", sort=False)[["map_dsb", "ap50", "pixel_iou", "seconds"]].mean()
summary["n_images"] = scores.groupby("method", sort=False).size()
summary["stardist_dsb_ap50_reference"] = 0.835
summary = summary.reset_index()
write_table(summary, seg_dir / "summary.csv")
summary.round(3)

# %% [markdown]
# Per held-out image: how much TTA changes mAP_DSB (one dot per image, as in the thesis).

# %%
fig = plot_tta_deltas(scores, {"classical": "classical+TTA", "U-Net": "U-Net+TTA"}, seed=seed)
fig.axes[0].set_title(f"TTA ({tta}) on {len(test)} held-out images", fontsize=9)
save_figure(fig, Path(figures_dir) / "fig_segmentation_tta")

# %% [markdown]
# Overlays on the held-out image with the most nuclei.

# %%
k = int(np.argmax([data["masks"][i].max() for i in test]))
fig = plot_segmentation_overlays(
    data["images"][test[k]], data["masks"][test[k]], {m: preds[m][k] for m in methods},
    title=f"held-out image {data['names'][test[k]]}",
)  # fmt: skip
save_figure(fig, Path(figures_dir) / "fig_segmentation_overlays")
