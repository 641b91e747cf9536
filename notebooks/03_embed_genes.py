# %% [markdown]
# # 03 Embed genes
# Regulatory gene embeddings from the gene-gene network with expression node features: the
# space the translation maps image profiles into, and in which candidate genes are ranked.
#
# Produces `work_dir/genes/gene_embeddings.parquet` (column `gene` + `emb_*`, only the
# candidate genes) and `work_dir/genes/gene_embedding_info.json` (with the `setup` that
# rebuilds the table for one held-out condition: `i2r_utils.genes.target_gene_embeddings`).

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder (metadata.csv, network/)
work_dir = "../results/tiny"  # results of this data set
network_file = "network/edges.tsv"  # edge list under data_dir (TSV/CSV, STRING- or iRefIndex-style)
expression_file = "network/expression.csv"  # node features: genes x samples table or .h5ad
interactome = "shortest_path"  # candidate interactome: "shortest_path" (i2r) or "pcst" (Image2Reg)
k_hop = 1  # shortest_path: k-hop neighbourhood of every target added to the paths
network_pruning = "none"  # "none" or "image2reg" (cost cut 0.594, largest component, hub cut)
expression_path = None  # pcst: expression table for prizes (logfc column) and 1-|Spearman| costs
gae_arch = "i2r"  # autoencoder: "i2r" (2 GCN + feature decoder) or "image2reg" (GCN-GCN-linear)
gae_hidden = 64  # hidden size of the autoencoder (Image2Reg: 1024)
gene_dim = 32  # embedding size (Image2Reg: 1024)
gae_epochs = 300  # autoencoder training epochs
link_test_fraction = 0.15  # fraction of edges held out for the link-prediction AUC
link_splits = 5  # random edge splits averaged for the link-prediction AUC
seed = 0  # random seed of the autoencoder and the edge split
threads = None  # torch and BLAS threads (None: 1 torch thread, fastest for this model)

# %% [markdown]
# ## Inputs: the gene network, expression node features and the target genes
# Gene symbols are matched case-insensitively. The targets are every over-expressed
# condition of the screen, read from `metadata.csv` only: no image data and no screen
# result, so the candidate set cannot know a held-out condition's phenotype. With
# `network_pruning = "image2reg"` the network is first pruned as Image2Reg prunes iRefIndex:
# edges with a cost (1 - confidence) of 0.594 or more dropped, the largest connected
# component kept, genes above the 99.9 % degree quantile removed.

# %%
import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.gae import GAEParams, link_prediction_auc
from i2r_utils.genes import build_gene_embeddings, gene_setup, load_gene_inputs
from i2r_utils.interactome import INTERACTOMES, build_interactome, match_genes
from i2r_utils.io import InputError, write_json, write_table
from i2r_utils.runtime import pin_threads

pin_threads(threads, default=1)
params = GAEParams(hidden=gae_hidden, dim=gene_dim, epochs=gae_epochs, seed=seed, arch=gae_arch)
setup = gene_setup(
    data_dir, network_file, expression_file, interactome, k_hop, network_pruning,
    expression_path, params,
)  # fmt: skip
inputs = load_gene_inputs(setup)
graph, expression, targets = inputs["graph"], inputs["features"], inputs["targets"]
_, no_expression = match_genes(graph.nodes, expression.index if expression is not None else [])
for step in inputs["pruning"]:
    print(f"pruning, {step['step']}: {step['nodes']} genes, {step['edges']} edges")
for note in inputs["notes"]:
    print("NOTE:", note)
print(
    f"network: {graph.number_of_nodes()} genes, {graph.number_of_edges()} edges; "
    f"{len(no_expression)} network genes without expression features; "
    f"{len(targets)} target genes"
)

# %% [markdown]
# ## Candidate interactome
# The genes that are ranked for a held-out condition. `shortest_path` (i2r): the union of
# one shortest path between every pair of targets plus the `k_hop` neighbourhood of every
# target, a deterministic one-parameter rule. `pcst` (Image2Reg): a prize-collecting Steiner
# tree (`pcst_fast`, one tree, strong pruning) trades the prizes of the genes it reaches
# against the costs of the edges it uses; the prizes are min-max scaled and multiplied by
# beta, scanned from 0.1 to 9.9 until the tree covers every target, and the interactome is the
# subgraph INDUCED by the tree's genes (all network edges among them, not only the tree's).

# %%
candidates, emb, info = build_gene_embeddings(inputs, setup, targets, progress=True)
cand_info = info["candidates"]
print(f"{cand_info['n_targets']} targets in the network, missing: {cand_info['targets_missing']}")
print(
    f"candidate interactome ({interactome}): {cand_info['n_candidates']} genes, "
    f"{cand_info['n_candidate_edges']} edges"
    + (f", beta {cand_info['beta']}" if interactome == "pcst" else f" (k_hop={k_hop})")
)

# %% [markdown]
# ## Graph convolutional autoencoder
# `i2r`: two GCN layers on the candidate interactome, trained to reconstruct both its edges
# (inner-product decoder, negative sampling) and the expression features (linear decoder).
# `image2reg`: Image2Reg's GCN -> PReLU -> GCN -> PReLU -> linear encoder with the edge loss
# only. The embeddings are L2-normalised and deterministic with `seed`. (Image2Reg's
# image-cluster term needs the held-out condition, so it is trained per condition by the
# translation when `gae_gamma > 0`.)

# %%
print(
    f"embedded {info['n_genes']} candidate genes ({gae_arch}); final losses: edges "
    f"{info['edge_loss']:.3f}, features {info['feature_loss']:.3f}; genes without features: "
    f"{info['unmatched']}"
)

# %% [markdown]
# ## Quality: link prediction on held-out edges, for both interactome rules
# For each of `link_splits` random edge splits, a fraction `link_test_fraction` of the edges
# is held out (no gene isolated), both the autoencoder and a spectral embedding (Laplacian
# eigenmaps, the baseline) are computed on the remaining graph, and held-out edges are
# scored against as many random non-edges by the inner product of the two embeddings. The
# other rule's interactome is built too, so that the two can be compared on this screen.

# %%
link = link_prediction_auc(candidates, expression, params, link_test_fraction, link_splits)
rows = {}
for rule in INTERACTOMES:
    try:
        sub, ci = (candidates, cand_info) if rule == interactome else build_interactome(
            graph, targets, rule, k_hop, inputs["prizes"]
        )  # fmt: skip
    except InputError as err:  # e.g. a broken pcst_fast build: say so, compare nothing
        print(f"NOTE: the {rule} interactome could not be built for the comparison: {err}")
        continue
    lk = link if rule == interactome else link_prediction_auc(
        sub, expression, params, link_test_fraction, link_splits
    )  # fmt: skip
    covered = sum(t in sub for t in targets)
    rows[rule] = {
        "genes": sub.number_of_nodes(), "edges": sub.number_of_edges(),
        "targets covered": f"{covered}/{len(targets)}",
        "AUC autoencoder": round(lk["auc_gae"], 3), "AUC spectral": round(lk["auc_spectral"], 3),
    }  # fmt: skip
print(
    f"link prediction ({link['n_splits']} splits x {link['n_test_edges']} held-out edges): "
    f"mean ROC AUC graph autoencoder {link['auc_gae']:.3f} vs spectral embedding "
    f"{link['auc_spectral']:.3f}"
)
comparison = pd.DataFrame(rows).T.rename_axis("interactome")
comparison

# %% [markdown]
# ## Write the embeddings

# %%
info.update(
    candidates=cand_info,
    link_prediction=link,
    interactome_comparison=comparison.reset_index().to_dict("records"),
    targets=targets,
    network_genes_without_expression=len(no_expression),
    network_pruning=inputs["pruning"],
    notes=inputs["notes"],
    setup=setup,
)
write_table(emb.reset_index(), artifact(work_dir, "gene_embeddings"))
write_json(info, artifact(work_dir, "gene_embedding_info"))
print(f"{len(emb)} gene embeddings ({emb.shape[1]} dimensions) written")
