# %% [markdown]
# # 08 Train and evaluate nucleus segmentation, with test-time augmentation (dataset scope)
# Trains the run's U-Net on real annotated fluorescence nuclei (DSB2018, `annotated_dir`:
# 70 U2OS Hoechst 20x fields like the screen's, 10 other fluorescence fields) and scores it on
# held-out test fields against the classical baseline (Otsu + distance-transform watershed),
# each with and without test-time augmentation (TTA): the thesis' 6 versions (original,
# horizontal and vertical flips, rotations by 90, 180 and 270 degrees) and the full dihedral
# set of 8. The trained U-Net is the model the rest of the project uses wherever masks are
# missing (the nuclei preprocessing, `run_all.py predict` and `run_all.py segment`); it is
# trained once and reused on reruns. Without `annotated_dir`, the first images of the
# synthetic screen in `data_dir` stand in.
# Produces, under `work_dir/segmentation/`: `unet.pt` + `unet.json` (the model, its checksum,
# settings, split and training history), `split.csv` (the fixed split by image),
# `metrics.csv` (per test image and method), `summary.csv` (means per method), `subsets.csv`
# (means per method and subset), `tta_deltas.csv` (per image: TTA minus none); figures
# `figures_dir/fig_segmentation_training`, `fig_segmentation_tta`,
# `fig_segmentation_overlays` (.png, .svg).

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # synthetic screen (stands in without annotated data)
work_dir = "../results/tiny"  # results of this data set
figures_dir = "../results/tiny/figures"  # figure folder
annotated_dir = "../../shared/data/nuclei_dsb2018_fluo"  # annotated nuclei (index.csv, ...)
unet_epochs = 16  # most U-Net epochs of 40 steps (early stopping on the validation fields)
unet_max_minutes = 15.0  # wall-clock safety cap of the U-Net training
segmentation_tta = "d4"  # TTA set of the unet_tta method: d4 (8 versions) or thesis6
max_test_fields = 0  # 0: every test field; N: the first N of each subset (quick runs only)
threads = None  # torch and BLAS threads (None: the libraries' defaults, one per core)
seed = 0  # seed of the U-Net's initialisation and patch sampling

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from skimage.segmentation import find_boundaries

from i2r_utils.artifacts import artifact
from i2r_utils.classical import normalize_percentile, segment_classical
from i2r_utils.io import write_table
from i2r_utils.metrics import classify_instances
from i2r_utils.plotting import PALETTE, save_figure
from i2r_utils.runtime import pin_threads
from i2r_utils.segmentation import evaluate_segmentation, tta_deltas
from i2r_utils.segmentation_data import SPLIT_RULE, load_annotated_fields, split_table
from i2r_utils.tta import apply_transform, invert_transform, merge_instances_tta, resolve_tta
from i2r_utils.unet_training import trained_unet

pin_threads(threads)
source = annotated_dir if (Path(annotated_dir) / "index.csv").is_file() else data_dir
print(f"annotated nuclei: {source}; torch threads: {torch.get_num_threads()}")

# %% [markdown]
# ## The annotated fields and the fixed split by image
# Every field goes to exactly one part by a rule that depends only on its id (the ids are
# hex digests of the images, so their order is unrelated to content): within each subset the
# ids are sorted and position k is **test** when k % 8 is 0 or 4, **val** when k % 8 is 2,
# else **train**. The U-Net learns from the training fields; the validation fields choose its
# stopping epoch and watershed thresholds; the test fields are used for nothing but the
# scores below.

# %%
split = split_table(source)
write_table(split.drop(columns=["image_path", "mask_path", "index_file"]),
            artifact(work_dir, "segmentation_split"))  # fmt: skip
print(SPLIT_RULE)
split.pivot_table(index="subset", columns="split", values="id", aggfunc="count", fill_value=0)

# %% [markdown]
# ## Training the U-Net (or reusing the run's model)
# A small U-Net (3 down-samplings, 8 channels at the first level) predicts per pixel
# background, nucleus interior and nucleus boundary (the inner 1-pixel rim of each nucleus,
# so two touching nuclei are separated by a 2-pixel boundary). Each step draws 8 training
# fields, a random crop of each at a random scale (0.8-1.25 times 128 px, resized to 128 px),
# a random flip / rotation by 90 degrees, and random intensity gain, offset, gamma and noise;
# the loss is a cross-entropy weighing the boundary twice (Adam; the learning rate follows
# the `lr_schedule` of the settings printed below). After every epoch of 40 steps the mean
# mAP_DSB on the validation fields is computed; training stops after `patience` epochs
# without improvement (or `unet_epochs`, or `unet_max_minutes`) and keeps the best epoch's
# weights. The watershed that cuts instances out of the probabilities is then chosen on the
# validation fields (next section). The model is saved with its SHA-256 checksum; a rerun
# with the same settings and data loads it instead of training again.

# %%
settings = {"epochs": unet_epochs, "max_seconds": 60.0 * unet_max_minutes, "seed": seed}
model, info = trained_unet(artifact(work_dir, "segmentation_model"), source, settings,
                           progress=True)  # fmt: skip
hist = info["history"]
print(
    f"U-Net {'reused' if info['reused'] else 'trained'}: {hist['steps']} steps "
    f"({len(hist['epoch_loss'])} epochs, stopped by {hist['stopped']}, best epoch "
    f"{hist.get('best_epoch')}) in {info['seconds']:.0f} s on {info['device']} with "
    f"{info['threads']} threads; sha256 {info['sha256'][:12]}\nsettings: {info['settings']}"
)
fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(7.5, 2.8), layout="constrained")
epochs = np.arange(1, len(hist["epoch_loss"]) + 1)
ax_loss.plot(epochs, hist["epoch_loss"], marker="o", ms=3)
ax_loss.set(xlabel="epoch (40 steps of 8 patches)", ylabel="training loss (weighted CE)")
ax_val.plot(epochs[: len(hist["val_map_dsb"])], hist["val_map_dsb"], marker="o", ms=3,
            color=PALETTE["bluish green"])  # fmt: skip
if hist.get("best_epoch"):
    ax_val.axvline(hist["best_epoch"], color="0.4", ls="--", lw=1, label="kept (best) epoch")
    ax_val.legend(fontsize=8, loc="lower right")
ax_val.set(xlabel="epoch", ylabel="validation mAP_DSB (no TTA)")
for ax in (ax_loss, ax_val):
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
fig.suptitle(f"U-Net training on {len(info['split']['train'])} fields, early stopping on "
             f"{len(info['split']['val'])} validation fields", fontsize=9)  # fmt: skip
save_figure(fig, Path(figures_dir) / "fig_segmentation_training")

# %% [markdown]
# ## Cutting instances out of the probabilities (chosen on the validation fields)
# The foreground is where P(interior) + P(boundary) exceeds a threshold. Two seeding rules
# compete: **interior** seeds are the connected pieces of P(interior) > a second threshold,
# which keeps two nuclei together wherever the network missed the thin boundary between
# them; **distance** seeds are the maxima at least `h` px high of the (smoothed) distance
# from the interior's edge, so two round interiors joined by a neck get one seed each. The
# seeds are grown by watershed inside the foreground; objects smaller than `min_size` px
# (15, 30 or 50: specks of background and fragments) are then removed. Every combination of
# the grid is scored on the validation fields (no TTA); the best mAP_DSB is kept with the
# model.

# %%
grid = pd.DataFrame(info["postprocess_validation"])
best_of_rule = grid.loc[grid.groupby("seeds")["map_dsb"].idxmax()]
print(f"chosen on {len(info['split']['val'])} validation fields: {info['postprocess']}")
best_of_rule.round(3)

# %% [markdown]
# ## The held-out test fields and the classical baseline
# The classical method: percentile normalisation, Gaussian smoothing (sigma 1 px) minus a
# broad Gaussian background (sigma 20 px), Otsu threshold, hole filling, removal of objects
# under 15 px, then a watershed of the distance transform seeded by its local maxima (at
# least 6 px apart) to split touching nuclei. The example field is the test field with the
# most nuclei.

# %%
test = load_annotated_fields(source, "test")
if max_test_fields:  # quick runs: the first fields of each subset, said in the output
    keep = test["table"].groupby("subset", sort=False).head(max_test_fields).index
    rows = [test["table"].index.get_loc(i) for i in keep]
    test = {**test, "table": test["table"].loc[keep],
            **{k: [test[k][r] for r in rows] for k in ("images", "masks", "names")}}  # fmt: skip
    print(f"quick run: only the first {max_test_fields} test fields of each subset")
subsets = dict(zip(test["names"], test["table"]["subset"], strict=True))
k_example = int(np.argmax([m.max() for m in test["masks"]]))
image, truth = test["images"][k_example], test["masks"][k_example]
classical = segment_classical(image)
print(f"{len(test['names'])} test fields; example: {classical.max()} objects found, "
      f"{truth.max()} annotated")  # fmt: skip

# %% [markdown]
# ## Test-time augmentation: the transform sets and de-augmentation
# Each method also runs on transformed copies of the field; every output is transformed back
# (de-augmented) so that all versions describe the original field. For the U-Net the
# de-augmented probability maps are averaged before the watershed. `thesis6` is the thesis'
# set; `d4` adds the two transposes (all 8 symmetries of the square).

# %%
tta_sets = {"thesis6": resolve_tta("thesis6"), "d4": resolve_tta("d4")}
for name, transforms in tta_sets.items():
    assert all(
        np.array_equal(invert_transform(apply_transform(image, t), t), image) for t in transforms
    )
    print(f"{name}: {len(transforms)} versions {transforms}")

# %% [markdown]
# ## Instance voting (classical + TTA)
# Label images cannot be averaged. The objects of the de-augmented versions are matched to
# the objects of the first version (IoU >= 0.5, one-to-one); an object is kept if it is found
# in a strict majority of the versions, and its mask is the pixels it covers in a strict
# majority of them (the thesis' rule for Mask R-CNN, applied here to the classical method).

# %%
versions = [
    invert_transform(segment_classical(apply_transform(image, t)), t) for t in tta_sets["thesis6"]
]
voted = merge_instances_tta(versions)
print(f"objects per version {[int(v.max()) for v in versions]} -> {voted.max()} after voting")

# %% [markdown]
# ## Scores on the test fields
# Every test field is segmented by each method and compared with its annotation: mAP_DSB
# (the 2018 Data Science Bowl score: the mean over IoU thresholds 0.50, 0.55, ..., 0.95 of
# TP / (TP + FP + FN), objects matched one-to-one at IoU above the threshold), AP at IoU 0.5
# and the pixel IoU of the foreground. StarDist reports AP@0.5 = 0.835 on its DSB2018 test
# subset (a reference, not the same images). Times: wall clock and CPU time per field.

# %%
methods = {
    "classical": {"method": "classical"},
    "classical+TTA6": {"method": "classical", "tta": "thesis6"},
    "U-Net": {"method": "unet", "model": model},
    "U-Net+TTA6": {"method": "unet", "model": model, "tta": "thesis6"},
    "U-Net+TTA8": {"method": "unet", "model": model, "tta": "d4"},
}
scores, preds = evaluate_segmentation(test["images"], test["masks"], test["names"], methods,
                                      progress=True)  # fmt: skip
scores["subset"] = scores["image"].map(subsets)
write_table(scores, artifact(work_dir, "segmentation_metrics"))
columns = ["map_dsb", "ap50", "pixel_iou", "seconds", "cpu_seconds"]
summary = scores.groupby("method", sort=False)[columns].mean()
summary["n_images"] = scores.groupby("method", sort=False).size()
summary["stardist_dsb_ap50_reference"] = 0.835
summary = summary.reset_index()
write_table(summary, artifact(work_dir, "segmentation_summary"))
summary.round(3)

# %% [markdown]
# ## U2OS fields versus other fluorescence fields
# The U2OS Hoechst 20x fields are the kind of images of the Image2Reg screen; the other
# fluorescence fields (other cells, magnifications and sizes) test how far the model carries.
# Targets on the U2OS test fields: U-Net + TTA mAP_DSB >= 0.60 and AP@0.5 >= 0.85.

# %%
by_subset = scores.groupby(["subset", "method"], sort=False)[columns].mean()
by_subset["n_images"] = scores.groupby(["subset", "method"], sort=False).size()
by_subset = by_subset.reset_index()
write_table(by_subset, artifact(work_dir, "segmentation_subsets"))
by_subset.pivot(index="method", columns="subset", values=["map_dsb", "ap50"]).round(3)

# %% [markdown]
# ## Per-image TTA deltas
# For each test field: the score with TTA minus without (one dot per field, as in the thesis;
# positive = TTA helps: blue, worse: vermillion, Okabe-Ito colours), for mAP_DSB and for the
# pixel IoU the thesis reports. Black bar:
# mean.

# %%
pairs = {"classical": "classical+TTA6", "U-Net": "U-Net+TTA6"}
pairs_d4 = {"U-Net": "U-Net+TTA8"}
deltas = {m: pd.concat([tta_deltas(scores, pairs, m), tta_deltas(scores, pairs_d4, m)], axis=1)
          for m in ("map_dsb", "pixel_iou")}  # fmt: skip
table = pd.concat(deltas, axis=1)
table.columns = [f"{m}:{c}" for m, c in table.columns]
table.insert(0, "subset", table.index.map(subsets))
write_table(table.reset_index(), artifact(work_dir, "segmentation_deltas"))
rng = np.random.default_rng(seed)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
for ax, (metric, d) in zip(axes, deltas.items(), strict=True):
    for k, name in enumerate(d.columns):
        delta = d[name].to_numpy()
        colors = np.where(
            delta > 0, PALETTE["blue"], np.where(delta < 0, PALETTE["vermillion"], "0.5")
        )
        ax.scatter(k + rng.uniform(-0.15, 0.15, delta.size), delta, s=18, c=colors, alpha=0.85,
                   zorder=3)  # fmt: skip
        ax.hlines(delta.mean(), k - 0.28, k + 0.28, color="k", lw=2, zorder=4)
        ax.annotate(f"mean {delta.mean():+.3f}\n{(delta > 0).sum()} up, {(delta < 0).sum()} "
                    "down", (k, 1.0), xycoords=("data", "axes fraction"), ha="center",
                    va="top", fontsize=7)  # fmt: skip
    ax.axhline(0, color="0.3", ls="--", lw=1)
    ax.set_xticks(range(d.shape[1]))
    base = {**{t: b for b, t in pairs.items()}, **{t: b for b, t in pairs_d4.items()}}
    ax.set_xticklabels([f"{t}\nvs {base[t]}" for t in d.columns], fontsize=8)
    ax.set_xlim(-0.6, d.shape[1] - 0.4)
    lim = max(0.02, float(np.nanmax(np.abs(ax.get_ylim()))))
    ax.set_ylim(-lim * 1.1, lim * 1.45)
    ax.set_ylabel(f"change of {'mAP_DSB' if metric == 'map_dsb' else 'pixel IoU'} per field")
    ax.grid(axis="y", alpha=0.3)
fig.suptitle(f"TTA minus no TTA on {len(test['names'])} held-out test fields", fontsize=9)
save_figure(fig, Path(figures_dir) / "fig_segmentation_tta")
table.groupby("subset").mean(numeric_only=True).round(4).T

# %% [markdown]
# ## Overlays of the best and the worst test field
# The test fields with the highest and the lowest U-Net + TTA8 mAP_DSB: the annotation, then
# each method's prediction. Green fill: predictions matching an annotated nucleus (IoU > 0.5,
# true positives); orange fill: unmatched predictions (false positives); purple outline:
# missed nuclei (false negatives).

# %%
colors = {"TP": (0.10, 0.62, 0.47), "FP": (0.85, 0.37, 0.01), "FN": (0.46, 0.44, 0.90)}
shown = ["classical", "U-Net", "U-Net+TTA8"]
ranked = scores[scores["method"] == "U-Net+TTA8"].reset_index(drop=True)
picks = {"best": int(ranked["map_dsb"].idxmax()), "worst": int(ranked["map_dsb"].idxmin())}
fig, axes = plt.subplots(2, 1 + len(shown), figsize=(3.2 * (1 + len(shown)), 5.6),
                         layout="constrained", squeeze=False)  # fmt: skip
for row, (which, k) in zip(axes, picks.items(), strict=True):
    truth_k = test["masks"][k]
    gray = np.clip(normalize_percentile(test["images"][k], 1, 99.8), 0, 1)
    panels = [("annotation", [(truth_k, np.unique(truth_k[truth_k > 0]), (0.9, 0.9, 0.9), False)])]
    for name in shown:
        pred = preds[name][k]
        cls = classify_instances(truth_k, pred, 0.5)
        layers = [(pred, cls["tp_pred"], colors["TP"], True), (pred, cls["fp"], colors["FP"], True),
                  (truth_k, cls["fn"], colors["FN"], False)]  # fmt: skip
        score = scores[(scores["image"] == test["names"][k]) & (scores["method"] == name)]
        panels.append((f"{name}: mAP_DSB {score['map_dsb'].iloc[0]:.2f}\n"
                       f"{cls['tp_pred'].size} TP, {cls['fp'].size} FP, {cls['fn'].size} FN",
                       layers))  # fmt: skip
    for ax, (title, layers) in zip(row, panels, strict=True):
        rgb = np.repeat(gray[..., None], 3, axis=2) * 0.85
        for labels, keep, color, fill in layers:
            sel = np.isin(labels, keep) & (labels > 0)
            edge = find_boundaries(np.where(sel, labels, 0), mode="inner" if fill else "thick")
            if fill:
                rgb[sel] = 0.55 * rgb[sel] + 0.45 * np.array(color)
            rgb[edge] = color
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    row[0].set_title(f"{which}: {subsets[test['names'][k]]} {test['names'][k][:8]}\nannotation "
                     f"({truth_k.max()} nuclei)", fontsize=8)  # fmt: skip
legend = {"TP": "TP (IoU > 0.5)", "FP": "FP", "FN": "FN (outline)"}
fig.legend(handles=[Patch(color=c, label=legend[k]) for k, c in colors.items()],
           loc="outside lower center", ncol=3, fontsize=8, frameon=False)  # fmt: skip
save_figure(fig, Path(figures_dir) / "fig_segmentation_overlays")
