# %% [markdown]
# # 06 Translate the held-out condition to its gene
# Image2Reg's question: given the image profile of a condition whose over-expressed gene we
# pretend not to know, which of the candidate genes is it? Kernel ridge regression between
# condition image profiles and regulatory gene embeddings is trained on the other impactful
# conditions, and every candidate gene is ranked for the held-out condition. The true gene's
# rank is the result; it is judged against baselines that know nothing about images.
#
# The profiles (`representation`) are the trained encoder's (`cnn`, Image2Reg), the
# hand-crafted chromatin features' (`features`) or both side by side (`both`, each block
# weighted alike). Two directions of translation (`direction`):
#
# * `image_to_gene` (Image2Reg): predict the gene embedding from the profile, rank the
#   candidates by the distance of their embedding to the prediction;
# * `gene_to_image`: predict, from every candidate's embedding, the profile its
#   over-expression would give; rank the candidates by the distance of that predicted profile
#   to the observed one;
# * `two_way`: rank by the mean of the two ranks; `auto`: the one of the three with the best
#   leave-one-out score on the training conditions.
#
# Every element of the original Image2Reg translation is a parameter (the `image2reg`
# preset sets them all): the one-hidden-layer ReLU NTK on inputs augmented with a constant 1
# (`depth = 1`, `input_bias = True`), raw condition embeddings (`input_scaling = "none"`),
# ridge 1 (`alpha_grid = []`, `alpha = 1`), L2-normalised gene embeddings (`gene_norm =
# "l2"`) ranked by euclidean distance, and the plain nucleus-mean condition embedding
# (notebook 05, `condition_embedding`). `result.json` names the settings in one line
# (`method_label`).
#
# Produces `out_dir/ranking.csv`, `out_dir/top10.csv`, `out_dir/result.json`,
# `out_dir/top10.{png,svg}`.

# %% tags=["parameters"]
condition = "BRAF"  # held-out condition
work_dir = "../results/tiny"  # results of this data set (genes/, profiles/, screen/)
out_dir = "../results/tiny/BRAF"  # results of this held-out condition
representation = "both"  # profiles translated: "cnn", "features" or "both"
direction = "auto"  # "image_to_gene" (Image2Reg), "gene_to_image", "two_way" or "auto"
kernel = "ntk"  # translation kernel (image to gene): "ntk", "linear" or "rbf"
depth = 2  # hidden layers of the NTK
input_bias = False  # True: constant 1 appended to the inputs (Image2Reg); False: kernel + 1
input_scaling = "global"  # image profiles centred and RMS-scaled ("global") or raw ("none")
gene_norm = "none"  # gene embeddings as they are ("none") or L2-normalised per row ("l2")
alpha = 1.0  # ridge regularisation when alpha_grid is empty (Image2Reg demo: 1)
alpha_grid = [0.001, 0.01, 0.1, 1.0, 10.0]  # ridges tried by inner leave-one-out, empty: alpha
metric = "euclidean"  # distance for ranking: "euclidean" or "cosine"
random_baseline = True  # also compute the re-pairing and full-shuffle baselines
n_permutations = 200  # repeats of each random baseline
seed = 0  # random seed of the permutations
gae_gamma = 0.0  # image-cluster term of the gene autoencoder (> 0: one autoencoder per condition)
candidate_protocol = "all_targets"  # "all_targets" or "new_target" (held-out gene not a target)
threads = None  # torch and BLAS threads (None: the libraries' defaults, usually the cores)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.baselines import full_shuffle_ranks
from i2r_utils.directions import (
    DIRECTIONS,
    INPUT_SCALINGS,
    GeneToImage,
    ImageToGene,
    choose_direction,
    inner_direction_scores,
    method_label,
    rank_candidates,
    training_set,
)
from i2r_utils.genes import target_gene_embeddings
from i2r_utils.io import InputError, read_table, write_json, write_table
from i2r_utils.kernels import KERNELS
from i2r_utils.plotting import save_figure
from i2r_utils.profiles import translation_profiles
from i2r_utils.ranking import (
    GENE_NORMS,
    METRICS,
    fuse_ranks,
    normalise_embeddings,
    ranks_of,
    true_rank,
)
from i2r_utils.ridge import permutations
from i2r_utils.runtime import pin_threads
from i2r_utils.workdir import require_results

pin_threads(threads)

# %% [markdown]
# ## Inputs
# The candidate genes and their embeddings (notebook 03: graph autoencoder on the candidate
# interactome, one unit vector per gene), the fold of every condition and the impactful
# conditions (notebook 02), and the condition profiles of the chosen representation
# (notebook 05). With `gene_norm = "l2"` every gene embedding is divided by its norm first
# (the original does, before the translation).
#
# The held-out gene need not be a candidate: when the candidates were built without it (the
# new-target protocol), the ranking is still computed, `result.json` records
# `true_gene_is_candidate: false` with rank null, and the summary counts it as a miss at
# every k (rank N + 1 in the mean rank).

# %%
work = Path(work_dir)
require_results(work, "folds")  # run by hand: a missing work_dir names the results folders
for name, value, allowed in (("input_scaling", input_scaling, INPUT_SCALINGS),
                             ("gene_norm", gene_norm, GENE_NORMS)):  # fmt: skip
    if value not in allowed:
        raise InputError(f"unknown {name} {value!r}; choose one of {list(allowed)}")
gene_emb = target_gene_embeddings(
    work, condition, representation, gae_gamma, candidate_protocol, seed
)
genes = normalise_embeddings(gene_emb, gene_norm)
folds = read_table(artifact(work, "folds"))
profiles = translation_profiles(artifact(work, "profiles_dir"), representation)
impactful = read_table(artifact(work, "impactful"))["Metadata_Condition"].tolist()
gene = condition.upper()
is_candidate = gene in genes.index
if not is_candidate:
    print(f"note: {gene} is not among the {len(genes)} candidate genes: a miss at every k")
if direction not in (*DIRECTIONS, "auto"):
    raise InputError(f"unknown direction {direction!r}; choose one of {[*DIRECTIONS, 'auto']}")
alphas = np.atleast_1d(alpha_grid or [alpha]).tolist()  # the ridge grid
model_options = {"scaling": input_scaling, "input_bias": input_bias}  # image to gene
print(f"{len(genes)} candidate genes, {len(impactful)} impactful conditions")

# %% [markdown]
# ## The fold space of the held-out condition
# The conditions are split into folds, and the encoder of fold k was trained without the
# conditions of fold k. Every profile was embedded by every fold's encoder; the rows with
# `Metadata_Fold` equal to the held-out condition's fold come from the encoder that never saw
# it. That fold space is the only one used below, for the training conditions too, so that
# training and held-out profiles are comparable.

# %%
hit = folds.loc[folds["Metadata_Condition"] == condition, "Metadata_Fold"]
if hit.empty:
    raise InputError(
        f"{artifact(work, 'folds')}: condition {condition!r} has no fold; known: "
        f"{sorted(folds['Metadata_Condition'])}. Check the condition name."
    )
fold = int(hit.iloc[0])
space = profiles[pd.to_numeric(profiles["Metadata_Fold"], errors="coerce") == fold]
space = space.reset_index(drop=True)
if condition not in set(space["Metadata_Condition"]):
    raise InputError(
        f"no {representation} profile of {condition!r} in fold space {fold}; rerun "
        f"notebooks 04 and 05 for fold {fold}."
    )
condition_embedding = "profiles"  # notebook 05 marks the original's nucleus means
if "Metadata_ConditionEmbedding" in space:
    condition_embedding = str(space["Metadata_ConditionEmbedding"].iloc[0])

# %% [markdown]
# ## Training set
# The impactful conditions other than the held-out one and the control, with a profile in
# this fold space and a gene among the candidates. The held-out condition's profile never
# enters the fit, the scaling or any choice below; it is ranked also when it is not
# impactful itself.

# %%
ts = training_set(space, genes, condition, impactful)
x_train, y_train, train_genes, x_test = ts["x_train"], ts["y_train"], ts["genes"], ts["x_test"]
print(
    f"{condition}: {representation} profiles, fold space {fold}, "
    f"{len(ts['conditions'])} training conditions "
    f"({', '.join(ts['conditions'])}); left out: {ts['dropped']}"
)

# %% [markdown]
# ## Image to gene: kernel ridge regression, ridge by inner leave-one-out
# Profiles are centred on the training mean and scaled so the training rows have mean
# squared norm 1; the kernel (closed-form ReLU NTK by default) plus a constant 1 (a penalised
# intercept) is factorised once, `K = U diag(lam) U^T`. For each ridge of the grid the
# leave-one-out error of every training condition comes in closed form from that
# factorisation (no refit), and the ridge with the smallest mean squared error is used.
#
# The original instead uses the raw condition embeddings (`input_scaling = "none"`), puts
# the bias inside the network (`input_bias`: every input gets a constant coordinate 1, and
# nothing is added to the kernel; with `depth = 1` this is exactly the original's kernel
# `(|x||y|/pi)(sin t + (pi - t) cos t) + (x.y)(pi - t)/pi` on augmented inputs) and a fixed
# ridge 1 (a single-value grid: nothing to choose).

# %%
image_to_gene = ImageToGene(kernel, depth, alphas, **model_options).fit(x_train, y_train)
predicted = image_to_gene.predict(x_test)[0]
print(f"image to gene ({kernel}, depth {depth}): ridge {image_to_gene.alpha_:g}")
pd.Series(image_to_gene.cv_mse_, name="inner LOO mean squared error").rename_axis("ridge")

# %% [markdown]
# ## Gene to image: kernel ridge regression over the candidate genes
# The other way round: a Gaussian kernel on the gene embeddings,
# `exp(-|e_g - e_h|^2 / (w m))` with `m` the median squared distance between candidate
# embeddings, maps a gene to the (scaled) profile of its over-expression. The same
# closed-form leave-one-out core chooses the width `w` and the ridge together, on the
# training conditions; the fitted model predicts a profile for every candidate.

# %%
gene_to_image = GeneToImage().fit(genes, train_genes, x_train)
print(f"gene to image: width {gene_to_image.width_:g}, ridge {gene_to_image.noise_:g}")

# %% [markdown]
# ## Which direction: inner leave-one-out score and the `auto` choice
# With `direction = "auto"`, every training condition in turn is left out, both directions
# are refitted on the others (ridges chosen again) and the left-out gene is ranked in each
# direction and two-way. A direction's score is the mean log rank of those genes (log, so a
# few far misses do not dominate); the smallest score wins, ties and fewer than 4 training
# conditions go to `two_way`.

# %%
scores = {}
if direction == "auto":
    scores = inner_direction_scores(
        x_train, y_train, train_genes, genes, kernel, depth, alphas, metric, **model_options
    )
used = choose_direction(scores) if direction == "auto" else direction
print(f"direction used: {used}", f"(inner scores {scores})" if scores else "")

# %% [markdown]
# ## Rank every candidate
# `image_to_gene`: distance of each candidate's embedding to the predicted embedding;
# `gene_to_image`: distance of the observed profile to each candidate's predicted profile;
# `two_way`: the mean of the two ranks (ties broken by the image-to-gene rank).

# %%
ranking = rank_candidates(x_test, genes, used, image_to_gene, gene_to_image, metric)
rank, n = (true_rank(ranking, gene) if is_candidate else None), len(genes)
print(f"{condition}: true gene ranked {rank if is_candidate else 'nowhere (not a candidate)'} "
      f"of {n} ({used})")  # fmt: skip
ranking.head(10)

# %% [markdown]
# ## Baselines
# * uniform random ranking: expected rank `(N + 1) / 2` (the published random curves);
# * mean-embedding predictors, whatever the image: the mean of the TRAINING genes'
#   embeddings (`mean_embedding_rank`) and the mean of ALL candidates' embeddings
#   (`mean_candidates_rank`, the paper's "mean of all regulatory embeddings");
# * re-pairing permutation: the training profiles and genes are re-paired at random before
#   the fit (ridges and width chosen again each time), in the direction used; two-way fuses
#   the two directions' permuted rankings under the same permutations;
# * full shuffle (the original's `--random`, `i2r_utils.baselines`): the rows of the whole
#   candidate table and of all condition embeddings (the held-out one included) are
#   shuffled while the labels stay, then the same translation runs, `n_permutations` times.
#
# A held-out gene that is not a candidate is a miss for every baseline (ranks null).


# %%
def rank_of(pred):
    """Rank of the true gene for one predicted embedding (None: not a candidate)."""
    return int(ranks_of(pred[None], genes, gene, metric)[0]) if is_candidate else None


mean_embedding_rank = rank_of(y_train.mean(0))
mean_candidates_rank = rank_of(genes.to_numpy(float).mean(0))
permutation = {}
if random_baseline and n_permutations > 0:
    perms = permutations(len(y_train), n_permutations, seed)  # row i gets the gene of p[i]
    views = []
    if used != "gene_to_image":
        views.append(image_to_gene.permuted_distances(x_test, genes, perms, metric))
    if used != "image_to_gene":
        views.append(gene_to_image.permuted_distances(x_test, perms, genes))
    shuffle = full_shuffle_ranks(space, genes, condition, impactful, used, n_permutations, seed,
                                 metric, kernel=kernel, depth=depth, alphas=alphas,
                                 **model_options)  # fmt: skip
    for key, ranks in (("permutation", None), ("shuffle", shuffle)):
        if key == "permutation" and is_candidate:
            ranks = fuse_ranks(*views)[1][:, genes.index.get_loc(gene)]  # one view: its own
        permutation[f"{key}_ranks"] = ranks.tolist() if is_candidate else [None] * n_permutations
        permutation[f"{key}_mean_rank"] = float(ranks.mean()) if is_candidate else None
        permutation[f"{key}_rank_band"] = (
            np.percentile(ranks, [2.5, 97.5]).tolist() if is_candidate else None
        )
pd.Series({"uniform expected rank": (n + 1) / 2, "mean of training genes": mean_embedding_rank,
           "mean of all candidates": mean_candidates_rank,
           **{k: v for k, v in permutation.items() if not k.endswith("_ranks")}},
          name="rank of the true gene", dtype=object)  # fmt: skip

# %% [markdown]
# ## Comparisons
# The image-to-gene rank with every kernel (NTK, linear, RBF) and both distances, and the
# rank of each direction alone.

# %%
comparison = {}
for kern in KERNELS:
    model = image_to_gene
    if kern != kernel:
        model = ImageToGene(kern, depth, alphas, **model_options).fit(x_train, y_train)
    for m in METRICS:
        comparison[f"{kern}/{m}"] = (
            int(ranks_of(model.predict(x_test), genes, gene, m)[0]) if is_candidate else None
        )
for d in ("gene_to_image", "two_way"):
    other = rank_candidates(x_test, genes, d, image_to_gene, gene_to_image, metric)
    comparison[d] = true_rank(other, gene) if is_candidate else None
comparison

# %% [markdown]
# ## Result
# `ranking.csv` (every candidate), `top10.csv` and `result.json`: the true gene's rank (null
# when it is not a candidate), the direction used and asked for, the fitted ridges, the
# translation settings and their one-line label, the predicted embedding (image to gene),
# the baselines and the comparisons.

# %%
settings = {"representation": representation, "condition_embedding": condition_embedding,
            "kernel": kernel, "depth": depth, "input_bias": input_bias,
            "input_scaling": input_scaling, "alphas": alphas, "direction": direction,
            "direction_used": used, "metric": metric, "gene_norm": gene_norm}  # fmt: skip
result = {
    "condition": condition,
    "fold": fold,
    "impactful": condition in impactful,
    "representation": representation,
    "train_conditions": ts["conditions"],
    "n_train_conditions": len(ts["conditions"]),
    "gene": gene,
    "true_gene_is_candidate": is_candidate,
    "true_rank": rank,
    "n_candidates": n,
    "top10": ranking["gene"].head(10).tolist(),
    "direction": used,
    "direction_requested": direction,
    "inner_direction_scores": scores,
    "kernel": kernel,
    "depth": depth,
    "metric": metric,
    "alpha": image_to_gene.alpha_,
    "alpha_grid": list(alphas),
    "inner_cv_mse": {str(k): v for k, v in image_to_gene.cv_mse_.items()},
    "predicted_embedding": predicted.tolist(),
    "mean_embedding_rank": mean_embedding_rank,
    "uniform_expected_rank": (n + 1) / 2,
}
result.update({"method_label": method_label(settings), "input_bias": input_bias,
               "input_scaling": input_scaling, "gene_norm": gene_norm,
               "condition_embedding": condition_embedding,
               "mean_candidates_rank": mean_candidates_rank})  # fmt: skip
if direction != "image_to_gene":  # the gene-to-image direction can be used
    result["reverse_width"] = gene_to_image.width_
    result["reverse_noise"] = gene_to_image.noise_
result.update(permutation)
result["comparison"] = comparison
out = Path(out_dir)  # run_all.py: artifact(work_dir, "condition_dir", condition=condition)
write_table(ranking, out / artifact(work, "ranking", condition=condition).name)
write_table(ranking.head(10), out / artifact(work, "top10", condition=condition).name)
write_json(result, out / artifact(work, "result", condition=condition).name)
print("top 10:", ", ".join(result["top10"]))

# %% [markdown]
# ## Figure: the ten most likely genes
# One dot per gene at the quantity the ranking sorts by (image to gene: distance of the gene
# embedding to the prediction; gene to image: distance of the predicted profile to the
# observed one; two-way: the mean of the two directions' ranks), so further left is more
# likely. Each label carries the gene's final rank; genes that share their value with another
# are marked "tie" (their order is the image-to-gene rank for two-way, else the candidate
# order). The true gene is red, and the title says where it is when it is not shown.

# %%
labels = {
    "image_to_gene": "distance of gene embedding to prediction",
    "gene_to_image": "distance of predicted profile to observed profile",
    "two_way": "mean rank over the two directions",
}
top = ranking.head(10).iloc[::-1]
tied = ranking["distance"].duplicated(keep=False).to_numpy()[: len(ranking.head(10))][::-1]
names = [
    f"{r}. {g}" + (" (tie)" if t else "")
    for r, g, t in zip(top["rank"], top["gene"], tied, strict=True)
]
colors = ["tab:red" if g.upper() == gene else "tab:grey" for g in top["gene"]]
fig, ax = plt.subplots(figsize=(5.2, 0.3 * 10 + 1.3))
ax.hlines(names, top["distance"].min(), top["distance"], color="lightgrey", lw=1)
ax.scatter(top["distance"], names, color=colors, zorder=3)
ax.set_xlabel(f"{labels[used]} (smaller = more likely)")
if is_candidate:
    where = "shown in red" if rank <= 10 else "not in the top 10"
    where = f"true gene rank {rank} of {n}, {where}"
else:
    where = f"\ntrue gene {gene} not among the {n} candidates (a miss)"
ax.set_title(f"held-out {condition} ({used.replace('_', ' ')}): {where}", fontsize=9)
fig.tight_layout()
save_figure(fig, out / "top10")
