# %% [markdown]
# # 04 Train the image encoder of one fold (conditions of the fold never seen)
# Every non-control condition belongs to exactly one of `n_folds` folds
# (`i2r_utils.encoder.fold_assignment`, impactful conditions dealt evenly). The encoder of
# fold `fold` is a ResNet18 (1-channel, random init) trained to classify the condition of
# each nucleus among the impactful conditions not in the fold plus `EMPTY` (classes balanced
# every epoch, augmentations, early stopping on held-out wells). It then embeds **all**
# nuclei, so the conditions of this fold get leakage-free embeddings; `n_folds` = number of
# conditions is leave-one-condition-out. A rerun with the same parameters and data trains
# and embeds nothing.
#
# Produces `work_dir/encoders/fold<k>/encoder.pt` (checkpoint), `encoder.json` (classes,
# held-out conditions, validation balanced accuracy vs chance, crops/s) and
# `embeddings.parquet` (`Metadata_` columns + `cnn_0..cnn_511` per nucleus).

# %% tags=["parameters"]
work_dir = "../results/tiny"  # results of this data set
fold = 0  # fold whose conditions are held out (0 .. n_folds-1)
n_folds = 2  # number of folds of conditions; the number of conditions gives leave-one-out
encoder_arch = "resnet18"  # resnet18 | small (fast tests)
input_size = 32  # crops area-pooled to this side (px) before the network
epochs = 8  # most training epochs (early stopping on held-out wells)
samples_per_class = 64  # crops drawn per class each epoch (balanced classes)
seed = 0  # random seed of the fold assignment and of training

# %%
from pathlib import Path

import pandas as pd

from i2r_utils.encoder import (
    EncoderParams,
    embed_fold,
    fold_assignment,
    load_or_train_fold,
    pick_device,
)
from i2r_utils.io import InputError, read_table, sha256_file
from i2r_utils.nuclei import load_crops

nuc_dir = Path(work_dir) / "nuclei"
nuclei = read_table(nuc_dir / "nuclei.parquet")
imp_path = Path(work_dir) / "screen" / "impactful.csv"
impactful_table = read_table(imp_path)
if "Metadata_Condition" not in impactful_table:
    raise InputError(
        f"{imp_path}: no Metadata_Condition column; rerun notebooks/02_screen_conditions."
    )
impactful = impactful_table["Metadata_Condition"].astype(str).tolist()
folds = fold_assignment(nuclei["Metadata_Condition"], n_folds, seed, impactful)
if not 0 <= fold < n_folds:
    raise ValueError(f"fold={fold} is outside 0..{n_folds - 1}")
held_out = folds.loc[folds.Metadata_Fold == fold, "Metadata_Condition"].tolist()
print(
    f"fold {fold}/{n_folds}: {len(held_out)} held-out conditions {held_out}; device {pick_device()}"
)

# %%
crops = load_crops(nuc_dir, nuclei)
inputs = [nuc_dir / "nuclei.parquet", imp_path, *sorted((nuc_dir / "crops").glob("*.npz"))]
data_key = "-".join(sha256_file(p)[:16] for p in inputs)
params = EncoderParams(
    arch=encoder_arch,
    input_size=input_size,
    epochs=epochs,
    samples_per_class=samples_per_class,
    seed=seed,
)
fold_dir = Path(work_dir) / "encoders" / f"fold{fold}"
model, info = load_or_train_fold(crops, nuclei, impactful, held_out, fold_dir, data_key, params)
assert not set(info["classes"]) & set(held_out), "leak: a held-out condition is a training class"
info = {**info, **embed_fold(model, crops, nuclei, fold_dir)}
print(
    f"{len(info['classes'])} classes; validation balanced accuracy (held-out wells) "
    f"{info['val_balanced_accuracy']:.3f} vs chance {info['chance']:.3f}; "
    f"train {info['train_crops_per_s']:.0f} crops/s, embed {info['embed_crops_per_s']:.0f} crops/s; "
    f"checkpoint reused: {info['reused']}, embeddings reused: {info['embeddings_reused']}"
)

# %%
import matplotlib.pyplot as plt

hist = pd.DataFrame(info["history"])
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(hist.epoch, hist.val_bacc, marker="o", label="validation (held-out wells)")
ax.axhline(info["chance"], ls="--", c="k", label="chance")
ax.set_xlabel("epoch")
ax.set_ylabel("balanced accuracy")
ax.legend(frameon=False)
hist.round(3)
