# %% [markdown]
# # 04 Translate the held-out condition to its gene
# Kernel ridge regression with the ReLU NTK maps condition image profiles to regulatory
# gene embeddings (trained on every other condition); every candidate gene is ranked by
# distance to the held-out condition's prediction. The permutation baseline refits after
# shuffling the training gene embeddings (Image2Reg's `--random`).
# Produces `out_dir/ranking.csv`, `out_dir/top10.csv`, `out_dir/result.json`,
# `out_dir/top10.{png,svg}`.

# %% tags=["parameters"]
condition = "BRAF"  # held-out condition
work_dir = "../results/tiny"  # results of this data set
out_dir = "../results/tiny/BRAF"  # results of this held-out condition
alpha = 1.0  # ridge regularisation (Image2Reg demo: 1)
depth = 2  # hidden layers of the NTK
metric = "euclidean"  # distance for ranking: "euclidean" or "cosine"
random_baseline = True  # also compute the permutation baseline
n_permutations = 200  # permutations for the baseline
seed = 0  # random seed of the permutations

# %%
from pathlib import Path

from i2r_utils.io import read_table, write_json, write_table
from i2r_utils.plotting import plot_top_genes, save_figure
from i2r_utils.translation import (
    KernelRidge,
    permutation_ranks,
    rank_genes,
    training_pairs,
    true_rank,
)

genes = read_table(Path(work_dir) / "genes" / "gene_embeddings.parquet").set_index("gene")
profiles = read_table(Path(out_dir) / "condition_profiles.parquet")
x_tr, y_tr, x_te, train_conditions = training_pairs(profiles, genes, condition)
model = KernelRidge(alpha=alpha, kernel="ntk", depth=depth).fit(x_tr, y_tr)
ranking = rank_genes(model.predict(x_te)[0], genes, metric)
rank = true_rank(ranking, condition)
n = len(genes)
result = {
    "condition": condition, "true_rank": rank, "n_candidates": n,
    "n_train_conditions": len(train_conditions), "top10": ranking.gene.head(10).tolist(),
}
if random_baseline:
    perm = permutation_ranks(x_tr, y_tr, x_te, genes, condition, n_permutations, seed,
                             metric, alpha=alpha, kernel="ntk", depth=depth)
    result.update(permutation_mean_rank=float(perm.mean()),
                  permutation_ranks=perm.tolist())
write_table(ranking, Path(out_dir) / "ranking.csv")
write_table(ranking.head(10), Path(out_dir) / "top10.csv")
write_json(result, Path(out_dir) / "result.json")
print(f"{condition}: true gene ranked {rank} of {n}"
      + (f" (permutation baseline mean rank {perm.mean():.1f})" if random_baseline else ""))
print("top 10:", ", ".join(result["top10"]))

# %%
fig = plot_top_genes(ranking, condition, 10,
                     f"held-out {condition}: true gene rank {rank} of {n}")
save_figure(fig, Path(out_dir) / "top10")
