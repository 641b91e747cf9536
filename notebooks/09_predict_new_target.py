# %% [markdown]
# # 09 Predict the over-expressed gene of a new target
# New-target mode, as Image2Reg's demo does for its `UNKNOWN` condition: the trained
# pipeline of a completed main job (`results_dir`) ranks every candidate gene for a folder
# of raw chromatin images of one unknown condition. `python3 run_all.py predict --images DIR
# [--masks DIR] [--segmentation unet_tta|unet|classical] --out DIR` checks the inputs, runs this notebook with papermill (the
# executed copy goes to the output folder) and prints the 10 most likely genes.
# A bad input stops the run with a message naming the file and the fix before anything is
# written; with `on_error = "skip"` a bad image is reported and skipped instead.
# Produces, in `out_dir`: `ranking.csv` (every candidate gene: rank, gene, score, distance),
# `top10.csv`, `images.csv` (per image: status, nuclei, filter counts, error) and
# `prediction.json` (fold, preprocessing, condition embedding, gene table, translation
# settings, training conditions, counts).
# Every choice the main job made is read from its results folder, so the new target is
# cut, embedded and translated exactly as its held-out conditions were.

# %% tags=["parameters"]
images_dir = "../data/synthetic/tiny/images/P01"  # folder of raw chromatin images (tif/png)
masks_dir = "../data/synthetic/tiny/masks/P01"  # label masks named like the images ("": segment)
results_dir = "../results/tiny"  # results folder of a completed main job
out_dir = "../results/tiny/new_target"  # where the outputs go
fold = 0  # fold whose encoder, sphering and profile space are used
exclude_condition = ""  # screen condition left out of the translation's training set
pixel_scale = 1.0  # linear pixel scale of the images relative to the screen's (0.5 for 10x)
match_resolution = True  # pixel_scale < 1: train the translation on the screen seen at that scale
screen_dir = ""  # the screen's data folder ("": the one the main job's manifests record)
on_error = "stop"  # a bad image stops the run ("stop") or is reported and skipped ("skip")
min_nuclei = 2  # fewest nuclei in all images together
segmentation = "unet_tta"  # images without masks: unet_tta | unet | classical
model_path = ""  # U-Net model file ("": the main job's segmentation/unet.pt)
progress = True  # progress bar over the images

# %%
from pathlib import Path

import numpy as np
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.columns import feature_columns
from i2r_utils.directions import (
    DEFAULT_ALPHAS,
    GeneToImage,
    ImageToGene,
    choose_direction,
    inner_direction_scores,
    rank_candidates,
    read_translation_settings,
    training_set,
)
from i2r_utils.domain import check_domain, nucleus_stats, reference_stats
from i2r_utils.encoder import embed, embedding_table, load_encoder
from i2r_utils.genes import gene_protocol, new_target_gene_embeddings
from i2r_utils.io import (
    InputError,
    missing_mask_error,
    pair_images_masks,
    read_table,
    write_json,
    write_table,
)
from i2r_utils.nuclei import preprocess_image_context
from i2r_utils.nucleus_filter import too_few_nuclei_message
from i2r_utils.preprocessing import read_preprocessing, stored_crops
from i2r_utils.profiles import (
    aggregate,
    build_profiles,
    combine_representation,
    load_sphering,
    nucleus_means,
    translation_profiles,
)
from i2r_utils.progress import tqdm
from i2r_utils.ranking import normalise_embeddings
from i2r_utils.reference import degraded_nuclei, screen_folder
from i2r_utils.unet_training import load_trained_unet

# %% [markdown]
# ## The main job's settings
# The new target is translated as the main job translated its held-out conditions: the same
# representation (encoder profiles `cnn`, hand-crafted `features` or `both`), direction,
# kernel, input bias and scaling, ridge grid, gene normalisation and metric, read from a
# `<condition>/result.json` of the main job. A direction the main job chose automatically
# (`auto`) is chosen again on this training set. Results written before these options
# translated the encoder profiles image to gene.
#
# Three more records of the main job: the crop options and nucleus filters of the screen's
# preprocessing (`nuclei/preprocessing/<plate>.json`; a folder written before they were
# recorded gets i2r's defaults, with the context window of its stored windows), the
# encoder's condition embedding (`Metadata_ConditionEmbedding` of the encoder profiles:
# sphered `profiles`, or Image2Reg's plain `nucleus_mean`) and how its gene tables were
# built (image-cluster weight `gamma`, candidate protocol, seed: the per-condition
# `<condition>/gene_embedding_info.json`, if any).

# %%
settings = read_translation_settings(results_dir)
representation = settings["representation"]
use_cnn, use_features = representation in ("cnn", "both"), representation != "cnn"
preprocessing = read_preprocessing(results_dir)
filt = preprocessing["filter"]  # the screen's filters (the images are resampled to its scale)
cnn_profiles = read_table(artifact(results_dir, "cnn_condition_profiles"))
condition_embedding = "profiles"
if "Metadata_ConditionEmbedding" in cnn_profiles:
    condition_embedding = str(cnn_profiles["Metadata_ConditionEmbedding"].iloc[0])
protocol = gene_protocol(results_dir)
model_options = {"scaling": settings["input_scaling"], "input_bias": settings["input_bias"]}
pd.Series({**settings, **{k: v for k, v in preprocessing.items() if k != "filter"},
           "filter": str(filt), "condition_embedding": condition_embedding,
           **{f"gene table {k}": v for k, v in protocol.items()}},
          dtype=object)  # fmt: skip

# %% [markdown]
# ## Read and check the images, the masks and the fold's encoder
# Every image is paired with the equally named mask (same file name, or the same name with
# another image suffix). With a mask folder, an image without its mask is a bad image;
# without one, the nuclei of every image are segmented. A screen condition evaluated as a
# new target must be unseen by the encoder (the fold that holds it out) and by the
# translation (`exclude_condition`).

# %%
if on_error not in ("stop", "skip"):
    raise InputError(f"--on-error must be 'stop' or 'skip', got {on_error!r}")
masks_dir = masks_dir or None
pairs = pair_images_masks(images_dir, masks_dir, strict=False)
model, encoder_info = load_encoder(artifact(results_dir, "encoder_dir", fold=fold))
held_out = [str(c) for c in encoder_info.get("held_out", [])]
impactful = read_table(artifact(results_dir, "impactful"))["Metadata_Condition"].astype(str)
impactful = impactful.tolist()
if exclude_condition and exclude_condition not in impactful:
    print(f"note: {exclude_condition} is not an impactful screen condition: nothing dropped")
elif exclude_condition and held_out and exclude_condition not in held_out:
    folds_path, leak_free = artifact(results_dir, "folds"), "?"
    if folds_path.is_file():
        folds = read_table(folds_path)
        hit = folds.loc[folds["Metadata_Condition"] == exclude_condition, "Metadata_Fold"]
        leak_free = str(int(hit.iloc[0])) if len(hit) else "?"
    print(f"warning: the encoder of fold {fold} was trained with {exclude_condition}; for a "
          f"leakage-free evaluation pass --fold {leak_free}.")  # fmt: skip
pairs

# %% [markdown]
# ## The segmentation model (images without masks)
# Without a mask folder the nuclei of every image are segmented: by default with the U-Net the
# main job trained on annotated fluorescence nuclei (`segmentation/unet.pt`, checked against
# its recorded checksum) and test-time augmentation over the 8 flips and rotations
# (`unet_tta`), or without augmentation (`unet`), or with the classical method.

# %%
segment_params = {}
if not masks_dir and segmentation != "classical":
    seg_path = model_path or artifact(results_dir, "segmentation_model")
    seg_model, seg_info = load_trained_unet(seg_path)
    segment_params = {"model": seg_model, "tta": "d4" if segmentation == "unet_tta" else None}
    print(f"segmentation: {segmentation} with the U-Net {seg_info['description']}")
elif not masks_dir:
    print("segmentation: classical")

# %% [markdown]
# ## Per-image preprocessing
# Each image goes through the step the screen's images went through in notebook 01,
# `i2r_utils.nuclei.preprocess_image_context`, resampled to the screen's magnification first
# (`pixel_scale`): segmentation when there is no mask, the screen's nucleus filters, crops
# cut with the screen's options (crop side, centre, scaling, large nuclei dropped or not)
# and, when the translation uses them, the hand-crafted features. The crops get the
# precision the screen's stored crops have (float16, or 8 bits for per-crop scaling). A
# two-branch encoder (`encoder_arch = image2reg`) also sees the field window around every
# nucleus: cut from the 8-bit field (`field_to_uint8`) with the screen's `context_window`
# and resized to its stored size, as the screen's windows were. The hand-crafted features
# are measured as the screen's were (`feature_scaling`: by default on the image scaled by
# its own percentiles, so the bit depth and exposure do not matter). A blank image, one
# without any nucleus left, or one whose nuclei have no signal in their crops (e.g. a mask
# on an empty channel) is a bad image.

# %%
NO_SIGNAL = 1e-3  # mean crop intensity over a nucleus below which it has no DNA signal
two_branch = bool(getattr(model, "two_branch", False))
window = preprocessing["context_window"] if two_branch else 0
if two_branch and not window:
    raise InputError(f"{results_dir}: a two-branch encoder but no recorded context window; "
                     "rerun the main job's nuclei preprocessing.")  # fmt: skip
cut = {"filt": filt, "size": preprocessing["crop_size"], "apply_mask": preprocessing["apply_mask"],
       "crop_centre": preprocessing["crop_centre"], "crop_scaling": preprocessing["crop_scaling"],
       "drop_large_crops": preprocessing["drop_large_crops"],
       "feature_scaling": preprocessing["feature_scaling"]}  # fmt: skip
magnification = (
    f"set --pixel-scale of `run_all.py predict` (parameter pixel_scale, now {pixel_scale:g}): "
    "the images are resampled to the screen's scale before filtering."
)
crops, windows, features, stats, rows = [], [], [], [], []
for rec in tqdm(pairs.itertuples(index=False), total=len(pairs), desc="images",
                disable=not progress):  # fmt: skip
    row = {"Metadata_ImageName": rec.Metadata_ImageName, "image": rec.Metadata_ImagePath}
    try:
        if masks_dir and not rec.Metadata_MaskPath:
            raise missing_mask_error(rec.Metadata_ImagePath, masks_dir)
        image_crops, objects, counts, feats, image_windows = preprocess_image_context(
            rec.Metadata_ImagePath, rec.Metadata_MaskPath, window,
            preprocessing["context_size"], **cut, features=use_features,
            pixel_scale=pixel_scale, allow_blank=False, segment_method=segmentation,
            segment_params=segment_params,
        )  # fmt: skip
        if counts["n_kept"] < 1:
            what = f"image {rec.Metadata_ImagePath}"
            table = pd.DataFrame([counts])
            raise InputError(too_few_nuclei_message(what, table, filt, 0, 1, magnification))
        image_crops = stored_crops(image_crops, preprocessing["crop_scaling"])
        image_stats = nucleus_stats(image_crops, objects["Metadata_Area"])
        if (image_stats["signal"] < NO_SIGNAL).all():
            raise InputError(
                f"{rec.Metadata_ImagePath}: its {len(image_crops)} nuclei have no DNA signal "
                "(their crops are empty: the image is blank where the masks are). Check that "
                "it is the DNA (chromatin) channel and that its mask belongs to it.")  # fmt: skip
    except (InputError, ValueError) as exc:  # ValueError: e.g. an image skimage rejects
        if not isinstance(exc, InputError):
            exc = InputError(f"{rec.Metadata_ImagePath}: cannot be processed ({exc})")
        if on_error == "stop":
            raise InputError(f"{exc} (stopped before writing anything; rerun with --on-error "
                             "skip to skip bad images)") from None  # fmt: skip
        print(f"skipped: {exc}")
        rows.append({**row, "status": "skipped", "n_nuclei": 0, "error": str(exc)})
        continue
    crops.append(image_crops)
    stats.append(image_stats)
    windows.append(image_windows)
    features.append(feats)
    rows.append({**row, "status": "ok", "n_nuclei": len(image_crops), **counts,
                 "segmented": not masks_dir, "error": ""})  # fmt: skip
report = pd.DataFrame(rows)
used = report[report["status"] == "ok"]
if used.empty:
    raise InputError(f"{images_dir}: no usable image ({len(report)} skipped, see the messages "
                     "above); nothing was written.")  # fmt: skip
if used["n_nuclei"].sum() < min_nuclei:
    what, n_kept = f"the images in {images_dir}", int(used["n_kept"].sum())
    raise InputError(too_few_nuclei_message(what, used, filt, n_kept, min_nuclei, magnification)
                     + " Nothing was written.")  # fmt: skip
report

# %% [markdown]
# ## The screen at your images' resolution (`pixel_scale < 1`)
# Images with larger pixels than the screen's (binning, a 10x objective) were resampled to
# the screen's scale above, but resampling cannot restore detail that was never recorded:
# their outlines and texture differ from the screen's sharp nuclei, and a translation
# trained on the screen's profiles ranks them badly. With `match_resolution` the screen's
# own images of the training conditions and the control are recorded as such a camera would
# have recorded them (`i2r_utils.reference.degrade`: the mean of every block of pixels for a
# whole-number factor, as binning does), taken through the same steps as the new images
# (resampled back, filtered, cut, measured, embedded by the same encoder), and profiled and
# sphered on their control wells as notebook 05 profiles the screen. The translation below
# is then trained on those profiles, and the new target is sphered with their transforms.
# The encoder is not retrained. This takes a minute or two on a CPU.

# %%
reference_sphering, reference_profiles, reference_info = {}, {}, None
if match_resolution and pixel_scale < 1:
    drop_ref = {exclude_condition.upper()} if exclude_condition else set()
    ref_conditions = [c for c in impactful if c.upper() not in drop_ref]
    ref = degraded_nuclei(
        results_dir, screen_dir or screen_folder(results_dir), ref_conditions, pixel_scale, cut,
        window, preprocessing["context_size"], features=use_features,
        segment_params={"segment_method": segmentation if segment_params else "classical",
                        "segment_params": segment_params}, progress=progress,
    )  # fmt: skip
    ref_tables = {}
    if use_cnn:
        emb = [embed(model, c, context=w) for c, w in zip(ref["crops"], ref["windows"],
                                                            strict=True)]  # fmt: skip
        ref_tables["cnn"] = embedding_table(ref["meta"], np.concatenate(emb))
    if use_features:
        ref_tables["features"] = ref["features"]
    for name, table in ref_tables.items():
        if name == "cnn" and condition_embedding == "nucleus_mean":
            reference_profiles[name] = nucleus_means(table)
            continue
        screen_sph = load_sphering(
            artifact(results_dir, "sphering_fold", fold=fold) if name == "cnn"
            else artifact(results_dir, "sphering_features")
        )  # fmt: skip
        ps = build_profiles(table, screen_sph.lam, convention=screen_sph.convention)
        reference_sphering[name] = ps.sphering
        reference_profiles[name] = ps.conditions_after
    reference_info = {
        "pixel_scale": pixel_scale,
        "n_images": ref["n_images"],
        "n_nuclei": int(len(ref["meta"])),
        "conditions": len(ref_conditions),
    }
    print(f"matched reference: {ref['n_images']} screen images of {len(ref_conditions)} "
          f"training conditions and the control, {len(ref['meta'])} nuclei, recorded at "
          f"pixel scale {pixel_scale:g}")  # fmt: skip
elif pixel_scale < 1:
    print("note: the translation is trained on the screen at its own resolution "
          "(match_resolution off); expect worse ranks for coarse images.")  # fmt: skip

# %% [markdown]
# ## Do these nuclei look like the screen's?
# The encoder and the translation only know the screen's nuclei. Three numbers per nucleus,
# measured on the crops the encoder gets (`i2r_utils.domain`): its area at the screen's
# scale, its mean crop intensity (`signal`) and its fine detail (`detail`, lost with
# resolution). When more than a quarter of the new nuclei fall outside the central 98 % of
# a sample of the screen's nuclei, a warning says which number and what to check; the
# answer is still written, with the comparison in `prediction.json` (`domain`). With a
# matched reference (above) the comparison is with the screen recorded at the images' scale,
# which the translation was trained on.

# %%
if reference_profiles:
    screen_stats = nucleus_stats(np.concatenate(ref["crops"]), ref["meta"]["Metadata_Area"])
else:
    screen_stats = reference_stats(results_dir)
domain = check_domain(pd.concat(stats, ignore_index=True), screen_stats)
for warning in domain["warnings"]:
    print(f"warning: {warning}")
pd.DataFrame({k: v for k, v in domain.items() if k != "warnings"}).T

# %% [markdown]
# ## Embedding with the fold's encoder
# The crops of each image (with their context windows for a two-branch encoder) are
# embedded with the encoder of fold `fold`; the hand-crafted features (representation
# `features` or `both`) are the other per-nucleus table.

# %%
names = np.repeat(used["Metadata_ImageName"].tolist(), [len(c) for c in crops])
meta = pd.DataFrame({"Metadata_Condition": "NEW_TARGET", "Metadata_ImageName": names})
nuclei = {}
if use_cnn:
    emb = [embed(model, c, context=w) for c, w in zip(crops, windows, strict=True)]
    nuclei["cnn"] = embedding_table(meta, np.concatenate(emb))
if use_features:
    table = pd.concat(features, ignore_index=True)
    nuclei["features"] = pd.concat([meta, table[feature_columns(table)]], axis=1)
{name: table.shape for name, table in nuclei.items()}

# %% [markdown]
# ## Image medians, the condition profile and the screen's sphering
# As the screen's profiles were built: nucleus -> image (median) -> condition (mean), then
# the screen's batch correction of the same space (`sphering_fold<k>.npz` for the encoder,
# `sphering_features.npz` for the hand-crafted features). Without plate or control wells the
# transform centres the new target on the screen's pooled control wells. With
# representation `both` the two sphered profiles are put side by side. When the main job
# embedded conditions as Image2Reg does (`condition_embedding = nucleus_mean`), the encoder
# profile is instead the plain mean of the new target's nucleus embeddings: no image level,
# no sphering (the hand-crafted features keep theirs, as in the main job).

# %%
paths = {"cnn": artifact(results_dir, "sphering_fold", fold=fold),
         "features": artifact(results_dir, "sphering_features")}  # fmt: skip
sphering = {name: reference_sphering.get(name) or load_sphering(paths[name]) for name in nuclei
            if not (name == "cnn" and condition_embedding == "nucleus_mean")}  # fmt: skip
sphered = {}
for name, table in nuclei.items():
    if name == "cnn" and condition_embedding == "nucleus_mean":
        sphered[name] = nucleus_means(table)
        continue
    by_image = aggregate(table, ["Metadata_Condition", "Metadata_ImageName"], "median")
    by_image = by_image.drop(columns=["Metadata_Count", "Metadata_ImageName"])
    raw = aggregate(by_image, ["Metadata_Condition"], "mean").drop(columns="Metadata_Count")
    sphered[name] = sphering[name].transform(raw)
profile = combine_representation(sphered.get("cnn"), sphered.get("features"), representation)
profile

# %% [markdown]
# ## The screen's training set in this fold's space
# The translation is trained on the screen's impactful conditions (less `exclude_condition`)
# in the profile space of fold `fold`, where the new profile lives.
#
# ## The candidate genes and their embeddings
# The new target's gene is unknown, so it cannot be left out of the interactome: the
# dataset-wide gene table, built from the screen's targets, is already leakage-free for a
# target outside the screen. A table is trained for this prediction, with the main job's
# recipe and seed (`i2r_utils.genes.new_target_gene_embeddings`), in two cases only:
#
# * `gamma > 0` (Image2Reg's image-cluster term): the autoencoder is pulled towards KMeans
#   clusters of image profiles, which must be those of the conditions the translation is
#   trained on -- the screen's training conditions in fold space `fold` -- never the new
#   target's own profile;
# * a screen condition evaluated as a new target (`exclude_condition`) under the
#   `new_target` candidate protocol: its gene is removed from the targets, as the main job
#   removed it for that held-out condition.
#
# With the leakage-free fold, both give the table the main job translated that condition
# into. With `gene_norm = l2` every embedding is then divided by its norm.

# %%
space = translation_profiles(artifact(results_dir, "profiles_dir"), representation)
space = space[space["Metadata_Fold"] == fold]
if reference_profiles:  # the screen at the images' scale replaces its profiles
    space = combine_representation(
        reference_profiles.get("cnn"), reference_profiles.get("features"), representation
    )
    space.insert(0, "Metadata_Fold", fold)
if space.empty:
    raise InputError(f"{artifact(results_dir, 'profiles_dir')}: no {representation} profiles "
                     f"in the space of fold {fold}; check --fold.")  # fmt: skip
drop = {exclude_condition.upper()} if exclude_condition else set()
conditions = [c for c in impactful if c.upper() not in drop]
gene_emb, gene_info = new_target_gene_embeddings(
    results_dir, fold, conditions, exclude_condition, representation, **protocol
)
genes = normalise_embeddings(gene_emb, settings["gene_norm"])
genes.index = genes.index.astype(str).str.upper()
columns = feature_columns(space)
missing = [f for f in columns if f not in profile.columns]
if missing:
    raise InputError(
        f"{results_dir}: the {representation} condition profiles of fold {fold} have features "
        f"this run does not produce (e.g. {missing[:3]}); the results folder is inconsistent, "
        "rerun the main job."
    )
vector = profile[columns].to_numpy(float)[0]
pd.Series({"training conditions": len(conditions), "candidate genes": len(genes),
           "features": len(columns)})  # fmt: skip

# %% [markdown]
# ## Translation
# The kernel ridge regression of the main job (its kernel, input bias and scaling, ridge
# grid), fitted on the training set in the main job's direction (`auto`: chosen again by leave-one-out on this training set), then every
# candidate gene ranked for the new profile: image to gene by the distance of its gene
# embedding to the predicted one, gene to image by the distance of its predicted profile to
# the new one, two-way by the mean of the two ranks.

# %%
ts = training_set(space, genes, None, conditions)
x_train, y_train, train_genes = ts["x_train"], ts["y_train"], ts["genes"]
train_conditions = ts["conditions"]
kernel, depth, metric = settings["kernel"], settings["depth"], settings["metric"]
alphas = settings["alphas"] or DEFAULT_ALPHAS
image_to_gene = ImageToGene(kernel, depth, alphas, **model_options).fit(x_train, y_train)
gene_to_image = GeneToImage().fit(genes, train_genes, x_train)
scores = {}
if settings["direction"] == "auto":
    scores = inner_direction_scores(x_train, y_train, train_genes, genes, kernel, depth, alphas,
                                    metric, **model_options)  # fmt: skip
used = choose_direction(scores) if settings["direction"] == "auto" else settings["direction"]
ranking = rank_candidates(vector, genes, used, image_to_gene, gene_to_image, metric)
translation = {
    **settings,
    "direction_used": used,
    "inner_direction_scores": scores,
    "alpha": float(image_to_gene.alpha_),
}
pd.Series({"direction used": used, "image-to-gene ridge": image_to_gene.alpha_,
           "training conditions": len(train_conditions)})  # fmt: skip

# %% [markdown]
# ## Ranking
# A score in (0, 1] per gene: 1 for the most likely, decaying with the distance (or mean
# rank) relative to its spread over the candidates.

# %%
d = ranking["distance"].to_numpy(float)
ranking["score"] = np.exp(-(d - d.min()) / max(d.std(), 1e-12))
first = ["rank", "gene", "score", "distance"]
ranking = ranking[first + [c for c in ranking.columns if c not in first]]
ranking.head(10)

# %% [markdown]
# ## Outputs
# Written at the end only, each file atomically, so a stopped run leaves nothing behind.

# %%
info = {
    "images_dir": str(images_dir),
    "masks_dir": str(masks_dir) if masks_dir is not None else None,
    "segmented": masks_dir is None,
    "segmentation": segmentation if masks_dir is None else "masks",
    "segmentation_model": seg_info["description"] if segment_params else None,
    "results_dir": str(Path(results_dir)),
    "fold": fold,
    "encoder_held_out": held_out,
    "exclude_condition": exclude_condition or None,
    "pixel_scale": pixel_scale,
    "matched_reference": reference_info,
    "preprocessing": {**preprocessing, "filter": vars(filt).copy()},
    "condition_embedding": condition_embedding,
    "gene_embeddings": {
        "source": gene_info["source"],
        **protocol,
        "n_genes": int(len(genes)),
        "gene_norm": settings["gene_norm"],
    },  # fmt: skip
    "n_images": int(len(report)),
    "n_images_used": int((report["status"] == "ok").sum()),
    "n_images_skipped": int((report["status"] == "skipped").sum()),
    "n_nuclei": int(report["n_nuclei"].sum()),
    "domain": domain,
    "translation": translation,
    "n_train_conditions": len(train_conditions),
    "train_conditions": train_conditions,
    "n_candidates": int(len(genes)),
    "top10": ranking["gene"].head(10).tolist(),
}
write_table(ranking, artifact(out_dir, "prediction_ranking"))
write_table(ranking.head(10), artifact(out_dir, "prediction_top10"))
write_table(report, artifact(out_dir, "prediction_images"))
write_json(info, artifact(out_dir, "prediction_info"))
