# %% [markdown]
# # 02 Embed genes
# Regulatory gene embeddings from the gene-gene network with expression node features
# (graph convolutional autoencoder, L2-normalised). They come from the network only, never
# from image data, so no held-out condition can leak into them.
# Produces `work_dir/genes/gene_embeddings.parquet` and `gene_embedding_info.json`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # folder with network/edges.tsv and network/expression.csv
work_dir = "../results/tiny"  # results of this data set
gene_dim = 32  # embedding size
seed = 0  # random seed of the autoencoder

# %%
from pathlib import Path

from i2r_utils.genes import GAEParams, embed_genes, load_expression, load_network
from i2r_utils.io import write_json, write_table

graph = load_network(Path(data_dir) / "network" / "edges.tsv")
expression = load_expression(Path(data_dir) / "network" / "expression.csv")
emb, info = embed_genes(graph, expression, GAEParams(dim=gene_dim, seed=seed))
out = Path(work_dir) / "genes"
write_table(emb.reset_index(), out / "gene_embeddings.parquet")
write_json(info, out / "gene_embedding_info.json")
print(f"{info['n_genes']} genes, {info['n_edges']} edges, unmatched features: {info['unmatched']}")
