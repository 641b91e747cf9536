# %% [markdown]
# # 03 Embed genes
# Regulatory gene embeddings from the gene-gene network with expression node features.
#
# 1. Targets = every over-expressed condition of the screen (read from `metadata.csv`
#    only: no image data and no screen result, so the candidate set is the same for every
#    held-out condition and cannot know a held-out condition's phenotype).
# 2. Candidate interactome = union of one shortest path between every pair of targets plus
#    the `k_hop` neighbourhood of every target (a documented, one-parameter stand-in for
#    Image2Reg's prize-collecting Steiner tree). These candidates are the genes ranked by
#    notebook 06.
# 3. Graph convolutional autoencoder on the candidate interactome (edge + feature
#    reconstruction), L2-normalised embeddings, deterministic with `seed`.
# 4. Quality: link-prediction ROC AUC on held-out edges against a spectral embedding.
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

# %%
from pathlib import Path

import torch

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

torch.set_num_threads(1)
graph = load_network(Path(data_dir) / network_file)
expression = load_expression(Path(data_dir) / expression_file)
targets = target_genes(data_dir)
candidates, cand_info = candidate_interactome(graph, targets, k_hop)
_, no_expression = match_genes(graph.nodes, expression.index)
print(
    f"network: {graph.number_of_nodes()} genes, {graph.number_of_edges()} edges; "
    f"{len(no_expression)} network genes without expression features"
)
print(f"{cand_info['n_targets']} targets in the network, missing: {cand_info['targets_missing']}")
print(
    f"candidate interactome: {cand_info['n_candidates']} genes, "
    f"{cand_info['n_candidate_edges']} edges (k_hop={k_hop})"
)

# %%
params = GAEParams(dim=gene_dim, epochs=gae_epochs, seed=seed)
emb, info = embed_genes(candidates, expression, params)
link = link_prediction_auc(candidates, expression, params, link_test_fraction, link_splits)
info.update(
    candidates=cand_info,
    link_prediction=link,
    targets=targets,
    network_genes_without_expression=len(no_expression),
)
out = Path(work_dir) / "genes"
write_table(emb.reset_index(), out / "gene_embeddings.parquet")
write_json(info, out / "gene_embedding_info.json")
print(f"embedded {info['n_genes']} candidate genes; unmatched features: {info['unmatched']}")
print(
    f"link prediction ({link['n_splits']} splits x {link['n_test_edges']} held-out edges): "
    f"mean ROC AUC graph autoencoder {link['auc_gae']:.3f} vs spectral embedding "
    f"{link['auc_spectral']:.3f}"
)
