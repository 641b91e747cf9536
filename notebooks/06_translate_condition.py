# %% [markdown]
# # 06 Translate the held-out condition to its gene
# Kernel ridge regression (closed-form ReLU NTK by default) maps condition image profiles
# to regulatory gene embeddings. The profiles (`representation`) are the trained encoder's
# (`cnn`, Image2Reg), the hand-crafted chromatin features' (`features`) or both side by side
# (`both`, each block weighted alike). It uses the fold space of the held-out condition (the
# profiles embedded by the encoder that never saw it: `Metadata_Fold` == its fold), trains
# on the impactful conditions other than the held-out one whose gene is a candidate, and
# chooses the ridge by closed-form leave-one-out on those training conditions only. Every
# candidate gene is ranked (also when the held-out condition is not impactful), by
# `direction`: `image_to_gene` (Image2Reg: distance of each candidate's embedding to the
# predicted embedding), `gene_to_image` (distance of the observed profile to the profile
# predicted from each candidate's embedding), `two_way` (the mean of the two ranks) or
# `auto` (the one of the three with the best leave-one-out score on the training
# conditions: the mean log rank of each left-out training condition's gene).
#
# Baselines beside the result: uniform random (expected rank (N+1)/2), the permutation
# baseline (training gene embeddings permuted before each fit, Image2Reg's `--random`) and
# the mean-embedding predictor; the linear and RBF kernels and the cosine distance are
# recorded for comparison, and so are the ranks of each direction alone.
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
alpha = 1.0  # ridge regularisation when alpha_grid is empty (Image2Reg demo: 1)
alpha_grid = [0.001, 0.01, 0.1, 1.0, 10.0]  # ridges tried by inner leave-one-out, empty: alpha
metric = "euclidean"  # distance for ranking: "euclidean" or "cosine"
random_baseline = True  # also compute the permutation baseline
n_permutations = 200  # permutations for the baseline
seed = 0  # random seed of the permutations

# %%
from pathlib import Path

from i2r_utils.io import read_table, write_json, write_table
from i2r_utils.plotting import plot_top_genes, save_figure
from i2r_utils.profiles import translation_profiles
from i2r_utils.translation import fold_space, training_set, translate_held_out

work = Path(work_dir)
genes = read_table(work / "genes" / "gene_embeddings.parquet").set_index("gene")
folds = read_table(work / "profiles" / "fold_assignment.csv")
profiles = translation_profiles(work / "profiles", representation)
impactful = read_table(work / "screen" / "impactful.csv")["Metadata_Condition"].tolist()
space, fold = fold_space(profiles, folds, condition)
ts = training_set(space, genes, condition, impactful)
print(
    f"{condition}: {representation} profiles, fold space {fold}, "
    f"{len(ts['conditions'])} training conditions "
    f"({', '.join(ts['conditions'])}); left out: {ts['dropped']}"
)

# %%
ranking, result = translate_held_out(
    ts["x_train"],
    ts["y_train"],
    ts["x_test"],
    genes,
    condition,
    kernel=kernel,
    depth=depth,
    alphas=alpha_grid or [alpha],
    metric=metric,
    n_permutations=n_permutations if random_baseline else 0,
    seed=seed,
    direction=direction,
    train_genes=[c.upper() for c in ts["conditions"]],
)
result = {
    "condition": condition,
    "fold": fold,
    "impactful": condition in impactful,
    "representation": representation,
    "train_conditions": ts["conditions"],
    "n_train_conditions": len(ts["conditions"]),
    **result,
}
write_table(ranking, Path(out_dir) / "ranking.csv")
write_table(ranking.head(10), Path(out_dir) / "top10.csv")
write_json(result, Path(out_dir) / "result.json")
n = result["n_candidates"]
print(
    f"{condition}: true gene ranked {result['true_rank']} of {n} "
    f"({result['direction']}"
    + (" chosen by leave-one-out" if direction == "auto" else "")
    + f"; image to gene: alpha={result['alpha']:g}, {kernel} depth {depth}, {metric})"
)
print(
    f"baselines: uniform expected rank {(n + 1) / 2:.1f}; mean-embedding predictor rank "
    f"{result['mean_embedding_rank']}"
    + (
        f"; permutation mean rank {result['permutation_mean_rank']:.1f} (95% band "
        f"{result['permutation_rank_band'][0]:.0f}-{result['permutation_rank_band'][1]:.0f})"
        if random_baseline
        else ""
    )
)
print("comparison (direction or image-to-gene kernel/metric -> rank):", result["comparison"])
print("top 10:", ", ".join(result["top10"]))

# %%
fig = plot_top_genes(
    ranking, condition, 10, f"held-out {condition}: true gene rank {result['true_rank']} of {n}",
    direction=result["direction"],
)
save_figure(fig, Path(out_dir) / "top10")
