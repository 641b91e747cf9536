# %% [markdown]
# # 04 Train the image encoder of one fold (conditions of the fold never seen)
# Every non-control condition belongs to exactly one of `n_folds` folds (the fold
# assignment is decided with the impactful conditions, `screen/fold_assignment.csv`). The
# encoder of fold `fold` is a ResNet18 (1-channel, random init) trained to classify the
# condition of each nucleus among the impactful conditions not in the fold plus `EMPTY`. It
# then embeds **all** nuclei, so the conditions of this fold get leakage-free embeddings;
# `n_folds` = number of conditions is leave-one-condition-out. With `encoder_arch =
# "image2reg"` the network is the original Image2Reg one (two ResNet18 branches, nucleus
# crop and its field window, fused by a linear layer whose output is the embedding), and
# with `training = "image2reg"` it is trained with the original schedule.
#
# Produces `work_dir/encoders/fold<k>/encoder.pt` (checkpoint), `encoder.json` (classes,
# held-out conditions, history, validation balanced accuracy vs chance, crops/s) and
# `embeddings.parquet` (`Metadata_` columns + `cnn_0..cnn_511` per nucleus).

# %% tags=["parameters"]
work_dir = "../results/tiny"  # results of this data set
fold = 0  # fold whose conditions are held out (0 .. n_folds-1)
n_folds = 2  # number of folds of conditions; the number of conditions gives leave-one-out
encoder_arch = "resnet18"  # resnet18 | small (fast tests) | image2reg (two branches, the original)
input_size = 32  # crops area-pooled to this side (px) before the network (image2reg: resized)
epochs = 8  # most training epochs (early stopping on held-out wells)
samples_per_class = 64  # crops drawn per class each epoch (balanced classes)
seed = 0  # random seed of training
encoder_seed = None  # seed of the encoder alone (None: seed), for the spread over encoder seeds
threads = None  # torch and BLAS threads (None: the libraries' defaults, usually the cores)
training = "i2r"  # i2r (i2r's recipe) | image2reg (the original schedule)
latent_dim = 1024  # embedding size of the image2reg network (the fusion layer)
pretrained_weights = None  # image2reg: ResNet18 state dict for both branches; None: random init
context_window = 0  # side (px) of the context windows written by the nuclei step
batch_size = 0  # training batch size; 0: the recipe's own (i2r 128, image2reg 64)

# %% [markdown]
# ## The fold's held-out conditions and its classes
# The classes are the impactful conditions that are not in this fold, plus the control.
# Every crop of a held-out condition is removed before anything else: the validation
# split, the training batches and the BatchNorm calibration never see one.

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.context import load_context
from i2r_utils.encoder import EncoderParams, embed, embedding_table, pick_device, save_encoder
from i2r_utils.io import InputError, read_table, write_table
from i2r_utils.nuclei import load_crops
from i2r_utils.runtime import pin_threads
from i2r_utils.training import fold_training_set, image_groups, train_encoder, well_groups
from i2r_utils.training_image2reg import image2reg_params

pin_threads(threads)

folds_path = artifact(work_dir, "folds")
folds = read_table(folds_path)
if sorted(folds["Metadata_Fold"].unique()) != list(range(n_folds)):
    raise InputError(
        f"{folds_path}: folds {sorted(folds['Metadata_Fold'].unique())} do not match "
        f"n_folds={n_folds}; rerun notebooks/02_screen_conditions with the same n_folds."
    )
if not 0 <= fold < n_folds:
    raise ValueError(f"fold={fold} is outside 0..{n_folds - 1}")
held_out = sorted(folds.loc[folds.Metadata_Fold == fold, "Metadata_Condition"].astype(str))
impactful = read_table(artifact(work_dir, "impactful"))["Metadata_Condition"].astype(str).tolist()
nuclei = read_table(artifact(work_dir, "nuclei"))
labels = nuclei["Metadata_Condition"].astype(str).to_numpy()
keep, classes = fold_training_set(labels, impactful, held_out)
print(f"fold {fold}/{n_folds}: {len(held_out)} held-out conditions {held_out}")
print(f"{len(classes)} classes; device {pick_device()}")
groups = image_groups(nuclei) if training == "image2reg" else well_groups(nuclei)
unit = "images" if training == "image2reg" else "wells"
pd.DataFrame({"class": labels[keep], "group": groups[keep]}).groupby("class").agg(
    crops=("group", "size"), **{unit: ("group", "nunique")}
)

# %% [markdown]
# ## Training: balanced sampling, augmentation, early stopping on held-out wells
# One random well of every class (with two or more wells) is set aside for validation, so
# no well is in both splits. Every epoch draws `samples_per_class` crops of every class
# (balanced classes whatever their sizes), augments them (zoom and shift, rotations and
# flips, brightness and contrast) and takes Adam steps with a cosine learning-rate decay.
# After each epoch the BatchNorm statistics are recomputed on training crops and the
# balanced accuracy on the validation wells is measured; the weights of the best epoch are
# kept, and training stops after `patience` epochs without improvement.

#
# The original schedule (`training = "image2reg"`) differs: the control is under-sampled to
# the largest other class, the nuclei are split 60/20/20 into training, validation and test
# sets grouped by field image, every epoch passes once over the shuffled training nuclei in
# batches of 64 (the last incomplete one dropped) with random flips only, the loss is the
# cross-entropy weighted by inverse class frequency, Adam runs at a constant learning rate
# of 1e-5 (weight decay 1e-3), validation uses the BatchNorm running statistics, and
# training stops once the validation balanced accuracy has not improved for more than 5
# epochs (best weights restored; the test balanced accuracy is reported).

# %%
crops = load_crops(artifact(work_dir, "nuclei_dir"), nuclei)
context = None
if encoder_arch == "image2reg":
    context = load_context(artifact(work_dir, "nuclei_dir"), nuclei, context_window)
train_seed = seed if encoder_seed is None else encoder_seed
fields = {"arch": encoder_arch, "input_size": input_size, "epochs": epochs, "seed": train_seed,
          "latent_dim": latent_dim, "pretrained_weights": pretrained_weights}  # fmt: skip
if batch_size:
    fields["batch_size"] = batch_size
if training == "image2reg":
    params = image2reg_params(**fields)
else:
    params = EncoderParams(samples_per_class=samples_per_class, **fields)
model, info = train_encoder(
    crops[keep], labels[keep], groups[keep], params,
    context=None if context is None else context[keep],
)  # fmt: skip
assert not set(info["classes"]) & set(held_out), "leak: a held-out condition is a training class"
test = info.get("test_balanced_accuracy")
print(
    f"{info['n_train_crops']} training and {info['n_val_crops']} validation crops; "
    f"validation balanced accuracy (held-out {unit}) {info['val_balanced_accuracy']:.3f} "
    f"vs chance {info['chance']:.3f} at epoch {info['best_epoch']} of {len(info['history'])}"
    + ("" if test is None else f"; test {test:.3f} ({info['n_test_crops']} crops)")
    + f"; train {info['train_crops_per_s']:.0f} crops/s, {info['seconds_per_epoch']:.1f} s/epoch"
)
hist = pd.DataFrame(info["history"])
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(hist.epoch, hist.val_bacc, marker="o", label=f"validation (held-out {unit})")
ax.axvline(info["best_epoch"], ls=":", c="grey", label="best epoch (kept)")
ax.axhline(info["chance"], ls="--", c="k", label="chance")
ax.set_xlabel("epoch")
ax.set_ylabel("balanced accuracy")
ax.legend(frameon=False)
hist.round(3)

# %% [markdown]
# ## Embedding all nuclei
# The encoder embeds every nucleus of the screen, including the held-out conditions it never
# saw: their embeddings are the leakage-free ones.

# %%
t0 = time.perf_counter()
emb = embed(model, crops, progress=True, context=context)
seconds = time.perf_counter() - t0
write_table(embedding_table(nuclei, emb), artifact(work_dir, "encoder_embeddings", fold=fold))
info.update(
    held_out=held_out,
    n_nuclei=len(nuclei),
    embed_seconds=seconds,
    embed_crops_per_s=len(nuclei) / max(seconds, 1e-9),
)
save_encoder(artifact(work_dir, "encoder_dir", fold=fold), model, params, info)
print(
    f"{len(nuclei)} nuclei embedded ({emb.shape[1]} dimensions), {len(nuclei) / seconds:.0f} crops/s"
)
