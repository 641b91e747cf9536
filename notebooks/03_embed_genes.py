# %% [markdown]
# # 03 Embed genes
# Regulatory gene embeddings from the gene-gene network with expression node features: the
# space the translation maps image profiles into, and in which candidate genes are ranked.
#
# Produces `work_dir/genes/gene_embeddings.parquet` (column `gene` + `emb_*`, only the
# candidate genes) and `work_dir/genes/gene_embedding_info.json`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder (metadata.csv, network/)
work_dir = "../results/tiny"  # results of this data set
network_file = "network/edges.tsv"  # edge list under data_dir (TSV/CSV or STRING-style)
expression_file = "network/expression.csv"  # genes x samples table or .h5ad under data_dir
k_hop = 1  # candidate interactome: k-hop neighbourhood of every target added to the paths
gene_dim = 32  # embedding size
gae_epochs = 300  # autoencoder training epochs
link_test_fraction = 0.15  # fraction of edges held out for the link-prediction AUC
link_splits = 5  # random edge splits averaged for the link-prediction AUC
seed = 0  # random seed of the autoencoder and the edge split
threads = None  # torch and BLAS threads (None: 1 torch thread, fastest for this model)

# %% [markdown]
# ## Inputs: the gene network, expression node features and the target genes
# Gene symbols are matched case-insensitively. The targets are every over-expressed
# condition of the screen, read from `metadata.csv` only: no image data and no screen
# result, so the candidate set is the same for every held-out condition and cannot know a
# held-out condition's phenotype.

# %%
from pathlib import Path

import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.genes import (
    GAEParams,
    candidate_interactome,
    embed_genes,
    link_prediction_auc,
    load_expression,
    load_network,
    match_genes,
    target_genes,
)
from i2r_utils.io import write_json, write_table
from i2r_utils.runtime import pin_threads

pin_threads(threads, default=1)
graph = load_network(Path(data_dir) / network_file)
expression = load_expression(Path(data_dir) / expression_file)
targets = target_genes(data_dir)
_, no_expression = match_genes(graph.nodes, expression.index)
print(
    f"network: {graph.number_of_nodes()} genes, {graph.number_of_edges()} edges; "
    f"{len(no_expression)} network genes without expression features; "
    f"{len(targets)} target genes"
)

# %% [markdown]
# ## Candidate interactome
# The genes that are ranked for a held-out condition: the union of one shortest path
# between every pair of targets plus the `k_hop` neighbourhood of every target (a
# documented, one-parameter stand-in for Image2Reg's prize-collecting Steiner tree).

# %%
candidates, cand_info = candidate_interactome(graph, targets, k_hop)
print(f"{cand_info['n_targets']} targets in the network, missing: {cand_info['targets_missing']}")
print(
    f"candidate interactome: {cand_info['n_candidates']} genes, "
    f"{cand_info['n_candidate_edges']} edges (k_hop={k_hop}); "
    f"{cand_info['n_path_genes']} genes on the shortest paths between targets"
)

# %% [markdown]
# ## Graph convolutional autoencoder
# Two GCN layers on the candidate interactome, trained to reconstruct both its edges
# (inner-product decoder, negative sampling) and the expression features (linear
# decoder); the embeddings are L2-normalised and deterministic with `seed`.

# %%
params = GAEParams(dim=gene_dim, epochs=gae_epochs, seed=seed)
emb, info = embed_genes(candidates, expression, params)
print(
    f"embedded {info['n_genes']} candidate genes; final losses: edges {info['edge_loss']:.3f}, "
    f"features {info['feature_loss']:.3f}; genes without features: {info['unmatched']}"
)

# %% [markdown]
# ## Quality: link prediction on held-out edges
# For each of `link_splits` random edge splits, a fraction `link_test_fraction` of the edges
# is held out (no gene isolated), both the autoencoder and a spectral embedding (Laplacian
# eigenmaps, the baseline) are computed on the remaining graph, and held-out edges are
# scored against as many random non-edges by the inner product of the two embeddings.

# %%
link = link_prediction_auc(candidates, expression, params, link_test_fraction, link_splits)
print(
    f"link prediction ({link['n_splits']} splits x {link['n_test_edges']} held-out edges): "
    f"mean ROC AUC graph autoencoder {link['auc_gae']:.3f} vs spectral embedding "
    f"{link['auc_spectral']:.3f}"
)
pd.DataFrame(
    {"graph autoencoder": link["auc_gae_splits"], "spectral": link["auc_spectral_splits"]}
).rename_axis("split").round(3)

# %% [markdown]
# ## Write the embeddings

# %%
info.update(
    candidates=cand_info,
    link_prediction=link,
    targets=targets,
    network_genes_without_expression=len(no_expression),
)
write_table(emb.reset_index(), artifact(work_dir, "gene_embeddings"))
write_json(info, artifact(work_dir, "gene_embedding_info"))
print(f"{len(emb)} gene embeddings ({emb.shape[1]} dimensions) written")
