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
seed = 0  # random seed of the split and the U-Net
threads = None  # torch and BLAS threads (None: 1 torch thread, fastest for this U-Net)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from skimage.segmentation import find_boundaries

from i2r_utils.artifacts import artifact
from i2r_utils.classical import normalize_percentile, segment_classical
from i2r_utils.io import write_table
from i2r_utils.metrics import classify_instances
from i2r_utils.plotting import save_figure
from i2r_utils.runtime import pin_threads
from i2r_utils.segmentation import evaluate_segmentation, load_annotated_nuclei, tta_deltas
from i2r_utils.tta import apply_transform, invert_transform, merge_instances_tta, resolve_tta
from i2r_utils.unet import predict_unet, probabilities_to_labels, train_unet

pin_threads(threads, default=1)

# %% [markdown]
# ## Annotated tiles
# The annotated image is cut into non-overlapping `tile_size` tiles (objects cut by a tile
# edge stay, partially, in both tiles; labels renumbered per tile). Without the annotated
# image: the first images of the synthetic screen, with their simulated masks.

# %%
data = load_annotated_nuclei(annotated_dir, data_dir, tile_size=tile_size)
print(data["source"])

# %% [markdown]
# ## Training and held-out tiles
# A random `test_fraction` of the tiles is held out: the U-Net never sees them, and every
# score below is computed on them only.

# %%
n = len(data["images"])
order = np.random.default_rng(seed).permutation(n)
n_test = max(1, min(n - 1, round(test_fraction * n)))
test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
print(f"{data['source']}: {n} images, {len(train)} for training, {len(test)} held out")
# the held-out tile with the most nuclei: the example of the method cells and the overlays
k_example = int(np.argmax([data["masks"][i].max() for i in test]))
image, truth = data["images"][test[k_example]], data["masks"][test[k_example]]

# %% [markdown]
# ## Classical baseline
# Percentile normalisation, Gaussian smoothing (sigma 1 px) minus a broad Gaussian background
# (sigma 20 px), Otsu threshold, hole filling, removal of objects under 15 px, then a watershed
# of the distance transform seeded by its local maxima (at least 6 px apart) to split
# touching nuclei.

# %%
classical = segment_classical(image)
print(f"example tile: {classical.max()} objects found, {truth.max()} annotated")

# %% [markdown]
# ## U-Net training
# A small U-Net (3 down-samplings, `unet_base_channels` channels at the first level) predicts
# background, nucleus interior and nucleus boundary per pixel. It is trained on random 64 px
# patches of the training tiles with a random flip/rotation each, by Adam on a cross-entropy
# that weighs the boundary twice. Instances are seeded watersheds: seeds are the connected
# interiors, grown inside the foreground (interior + boundary).

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

# %% [markdown]
# ## Test-time augmentation: the transform set and de-augmentation
# Each method also runs on transformed copies of the image; every output is transformed back
# (de-augmented) so that all versions describe the original image. For the U-Net the
# de-augmented probability maps are averaged before the watershed.

# %%
transforms = resolve_tta(tta)
print(f"TTA {tta!r}: {len(transforms)} transforms {transforms}")
assert all(
    np.array_equal(invert_transform(apply_transform(image, t), t), image) for t in transforms
)
probs = predict_unet(model, image, tta=transforms)
print(f"U-Net+TTA on the example tile: {probabilities_to_labels(probs).max()} objects")

# %% [markdown]
# ## Instance voting (classical + TTA)
# Label images cannot be averaged. The objects of the de-augmented versions are matched to
# the objects of the first version (IoU >= 0.5, one-to-one); an object is kept if it is found
# in a majority of the versions, and its mask is the pixels it covers in a majority of them.

# %%
versions = [invert_transform(segment_classical(apply_transform(image, t)), t) for t in transforms]
voted = merge_instances_tta(versions)
print(f"objects per version {[int(v.max()) for v in versions]} -> {voted.max()} after voting")

# %% [markdown]
# ## Scores on the held-out tiles
# Every held-out tile is segmented by the four methods and compared with its annotation:
# mAP_DSB (the 2018 Data Science Bowl score: mean over IoU thresholds 0.50, 0.55, ..., 0.95
# of TP / (TP + FP + FN), objects matched one-to-one at IoU above the threshold), AP at IoU
# 0.5 and the pixel IoU of the foreground. StarDist reports AP@0.5 = 0.835 on DSB2018.

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
write_table(scores, artifact(work_dir, "segmentation_metrics"))
summary = scores.groupby("method", sort=False)[["map_dsb", "ap50", "pixel_iou", "seconds"]].mean()
summary["n_images"] = scores.groupby("method", sort=False).size()
summary["stardist_dsb_ap50_reference"] = 0.835
summary = summary.reset_index()
write_table(summary, artifact(work_dir, "segmentation_summary"))
summary.round(3)

# %% [markdown]
# ## Per-image TTA deltas
# For each held-out image: mAP_DSB with TTA minus without (one dot per image, as in the
# thesis; positive = TTA helps). Black bar: mean.

# %%
pairs = {"classical": "classical+TTA", "U-Net": "U-Net+TTA"}
deltas = tta_deltas(scores, pairs)
rng = np.random.default_rng(seed)
fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(pairs), 3.6), layout="constrained")
for k, name in enumerate(deltas.columns):
    delta = deltas[name].to_numpy()
    colors = np.where(delta > 0, "tab:green", np.where(delta < 0, "tab:red", "0.5"))
    ax.scatter(k + rng.uniform(-0.15, 0.15, delta.size), delta, s=22, c=colors, alpha=0.85,
               zorder=3)  # fmt: skip
    ax.hlines(delta.mean(), k - 0.28, k + 0.28, color="k", lw=2, zorder=4)
    ax.annotate(f"mean {delta.mean():+.3f}\n{(delta > 0).sum()} up, {(delta < 0).sum()} down",
                (k, 1.0), xycoords=("data", "axes fraction"), ha="center", va="top",
                fontsize=8)  # fmt: skip
ax.axhline(0, color="0.3", ls="--", lw=1)
ax.set_xticks(range(len(pairs)))
ax.set_xticklabels([f"{t}\nvs {b}" for b, t in pairs.items()], fontsize=8)
ax.set_xlim(-0.6, len(pairs) - 0.4)
lim = max(0.02, float(np.nanmax(np.abs(ax.get_ylim()))))
ax.set_ylim(-lim * 1.1, lim * 1.35)
ax.set_ylabel("change of mAP_DSB per image (TTA - no TTA)")
ax.grid(axis="y", alpha=0.3)
ax.set_title(f"TTA ({tta}) on {len(test)} held-out images", fontsize=9)
save_figure(fig, Path(figures_dir) / "fig_segmentation_tta")
deltas.round(3)

# %% [markdown]
# ## Overlays on the example tile
# The held-out tile with the most nuclei: the annotation, then each method's prediction.
# Green fill: predictions matching an annotated nucleus (IoU > 0.5, true positives); orange
# fill: unmatched predictions (false positives); purple outline: missed nuclei (false
# negatives).

# %%
colors = {"TP": (0.10, 0.62, 0.47), "FP": (0.85, 0.37, 0.01), "FN": (0.46, 0.44, 0.90)}
gray = np.clip(normalize_percentile(image, 1, 99.8), 0, 1)
panels = [("annotation", [(truth, np.unique(truth[truth > 0]), (0.9, 0.9, 0.9), False)])]
for name in methods:
    pred = preds[name][k_example]
    cls = classify_instances(truth, pred, 0.5)
    layers = [(pred, cls["tp_pred"], colors["TP"], True), (pred, cls["fp"], colors["FP"], True),
              (truth, cls["fn"], colors["FN"], False)]  # fmt: skip
    counts = f"{cls['tp_pred'].size} TP, {cls['fp'].size} FP, {cls['fn'].size} FN"
    panels.append((f"{name}: {counts}", layers))
fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 3.3), layout="constrained")
for ax, (title, layers) in zip(axes, panels, strict=True):
    rgb = np.repeat(gray[..., None], 3, axis=2) * 0.85
    for labels, keep, color, fill in layers:
        sel = np.isin(labels, keep) & (labels > 0)
        edge = find_boundaries(np.where(sel, labels, 0), mode="inner" if fill else "thick")
        if fill:
            rgb[sel] = 0.55 * rgb[sel] + 0.45 * np.array(color)
        rgb[edge] = color
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
legend = {"TP": "TP (IoU > 0.5)", "FP": "FP", "FN": "FN (outline)"}
fig.legend(handles=[Patch(color=c, label=legend[k]) for k, c in colors.items()],
           loc="outside lower center", ncol=3, fontsize=8, frameon=False)  # fmt: skip
fig.suptitle(f"held-out image {data['names'][test[k_example]]}", fontsize=10)
save_figure(fig, Path(figures_dir) / "fig_segmentation_overlays")
