# %% [markdown]
# # 11 The real interactome: iRefIndex v14 and the screen's ORF genes
# The gene embeddings of the main job are computed on the simulator's network. This notebook
# runs the same steps on the real protein-protein interaction network Image2Reg uses
# (iRefIndex v14, MIScore costs; `../shared/data/network_irefindex_v14`) for the real genes
# of the Image2Reg screen (the over-expressed ORFs of Rohban et al. 2017, from its plate map),
# with both candidate-interactome rules, and checks the graph autoencoder against the
# spectral baseline by link prediction, on the candidate interactomes and on the whole
# pruned network (about 13,000 genes: the sparse adjacency makes this fit in memory).
#
# Produces `work_dir/real_interactome/pruning.csv` (genes and edges after each pruning
# step), `work_dir/real_interactome/interactomes.csv` (per rule: genes, edges, coverage of
# the 41 impactful genes and of BRAF, JUN, RAF1, SMAD4, SREBF1, link-prediction AUCs),
# `work_dir/real_interactome/gene_embeddings_{rule}.parquet`,
# `work_dir/real_interactome/info.json` and `figures_dir/fig_real_interactome.{png,svg}`.

# %% tags=["parameters"]
work_dir = "../results/real"  # results of this analysis
figures_dir = "../results/real/figures"  # figure folder
data_dir = "../../shared/data/network_irefindex_v14"  # the iRefIndex v14 folder
network_path = ""  # cost list; "": iRefIndex_v14_MIScore_interactome_C9.costs.txt in data_dir
plate_map = ""  # ORF genes; "": the Rohban et al. plate map in data_dir's sibling orf_rohban2017
k_hop = 1  # shortest_path rule: k-hop neighbourhood of every target
gae_arch = "i2r"  # autoencoder: "i2r" or "image2reg"
gae_hidden = 64  # hidden size (Image2Reg: 1024)
gene_dim = 32  # embedding size (Image2Reg: 1024)
gae_epochs = 300  # autoencoder training epochs
link_test_fraction = 0.1  # fraction of edges held out for the link-prediction AUC
link_splits = 2  # random edge splits averaged (candidate interactomes)
full_network_epochs = 100  # autoencoder epochs on the whole pruned network (0: skip)
seed = 0  # random seed of the autoencoder and the edge split

# %% [markdown]
# ## The network and Image2Reg's pruning
# iRefIndex v14 lists 182,002 interactions with a cost of 1 - MIScore confidence; a pair
# listed twice keeps its most confident edge. Image2Reg prunes it before the Steiner tree:
# edges with a cost of 0.594 or more are dropped, the largest connected component is kept,
# and genes whose degree is above the 99.9 % degree quantile (hubs that would connect
# everything to everything) are removed.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from i2r_utils.artifacts import artifact
from i2r_utils.gae import GAEParams, embed_genes, link_prediction_auc
from i2r_utils.interactome import (
    INTERACTOMES,
    build_interactome,
    load_network,
    plate_map_genes,
    prune_network,
)
from i2r_utils.io import write_json, write_table
from i2r_utils.plotting import save_figure
from i2r_utils.simulate import IMPACTFUL_GENES

torch.set_num_threads(1)
network_path = network_path or f"{data_dir}/iRefIndex_v14_MIScore_interactome_C9.costs.txt"
plate_map = plate_map or f"{data_dir}/../orf_rohban2017/plate_map_augmented_metadata.csv"
network = load_network(network_path)
pruned, steps = prune_network(network)
pruning = pd.DataFrame(steps).set_index("step")
pruning

# %% [markdown]
# ## The screen's genes
# The targets are every over-expressed gene of the Rohban et al. plate map (controls have
# none); the 41 genes Image2Reg called impactful and the five held out by default are the
# genes whose coverage matters for the translation.

# %%
orf_genes = plate_map_genes(plate_map)
named = ["BRAF", "JUN", "RAF1", "SMAD4", "SREBF1"]
print(
    f"{len(orf_genes)} ORF genes; {sum(g in network for g in orf_genes)} in iRefIndex, "
    f"{sum(g in pruned for g in orf_genes)} in the pruned network; impactful genes in the "
    f"pruned network: {sum(g in pruned for g in IMPACTFUL_GENES)}/{len(IMPACTFUL_GENES)}"
)

# %% [markdown]
# ## Both candidate interactomes
# `shortest_path` (i2r): one shortest path between every pair of targets plus their `k_hop`
# neighbourhood. `pcst` (Image2Reg): the subgraph induced by a prize-collecting Steiner tree,
# uniform prizes on the targets (the U2OS expression prizes of the original are not
# available here) and iRefIndex's own costs, beta scanned from 0.1 upwards until the tree
# covers every target it can reach. For each, the graph autoencoder is trained on the
# interactome and scored by link prediction on held-out edges against the spectral baseline.

# %%
params = GAEParams(hidden=gae_hidden, dim=gene_dim, epochs=gae_epochs, seed=seed, arch=gae_arch)
rows, infos = [], {}
for rule in INTERACTOMES:
    sub, info = build_interactome(pruned, orf_genes, rule, k_hop)
    emb, _ = embed_genes(sub, None, params)
    write_table(emb.reset_index(), artifact(work_dir, "real_gene_embeddings", rule=rule))
    link = link_prediction_auc(sub, None, params, link_test_fraction, link_splits)
    infos[rule] = {**info, "link_prediction": link}
    rows.append({
        "interactome": rule, "genes": sub.number_of_nodes(), "edges": sub.number_of_edges(),
        "beta": info.get("beta"),
        "ORF genes covered": sum(g in sub for g in orf_genes),
        "impactful covered": sum(g in sub for g in IMPACTFUL_GENES),
        "named covered": sum(g in sub for g in named),
        "impactful missing": ", ".join(g for g in IMPACTFUL_GENES if g not in sub),
        "AUC autoencoder": link["auc_gae"], "AUC spectral": link["auc_spectral"],
    })  # fmt: skip
table = pd.DataFrame(rows).set_index("interactome")
table.round(3)

# %% [markdown]
# ## The autoencoder on the whole pruned network
# The same link-prediction check on every gene of the pruned network (one split): the
# normalised adjacency and the one-hot node features are sparse tensors above 4,096 genes,
# and the spectral baseline uses the leading eigenvectors from a sparse eigensolver.

# %%
if full_network_epochs > 0:
    full_params = GAEParams(
        hidden=gae_hidden, dim=gene_dim, epochs=full_network_epochs, seed=seed, arch=gae_arch
    )
    full_link = link_prediction_auc(pruned, None, full_params, link_test_fraction, 1, True)
    table.loc["whole pruned network"] = {
        "genes": pruned.number_of_nodes(), "edges": pruned.number_of_edges(),
        "AUC autoencoder": full_link["auc_gae"], "AUC spectral": full_link["auc_spectral"],
    }  # fmt: skip
    infos["whole pruned network"] = {"link_prediction": full_link}
table.round(3)

# %% [markdown]
# ## Figure: pruning and link prediction

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
x = range(len(pruning))
ax1.bar([i - 0.2 for i in x], pruning["nodes"], 0.4, label="genes")
ax1.bar([i + 0.2 for i in x], pruning["edges"], 0.4, label="edges")
ax1.set_xticks(list(x), ["input", "cost < 0.594", "largest\ncomponent", "hubs\nremoved"])
ax1.set_yscale("log")
ax1.set_ylim(1e3, 5e5)
for i, (n, e) in enumerate(zip(pruning["nodes"], pruning["edges"], strict=True)):
    ax1.text(i - 0.2, n * 1.1, f"{n:,}", ha="center", fontsize=7)
    ax1.text(i + 0.2, e * 1.1, f"{e:,}", ha="center", fontsize=7)
ax1.set_ylabel("count (log scale)")
ax1.set_title("iRefIndex v14: Image2Reg's pruning", fontsize=10)
ax1.legend(frameon=False, loc="upper right")
auc = table[["AUC autoencoder", "AUC spectral"]].astype(float)
labels = [f"{i}\n({int(g)} genes)" for i, g in zip(auc.index, table["genes"], strict=True)]
pos = range(len(auc))
ax2.bar([i - 0.2 for i in pos], auc["AUC autoencoder"], 0.4, label=f"autoencoder ({gae_arch})")
ax2.bar([i + 0.2 for i in pos], auc["AUC spectral"], 0.4, label="spectral")
ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
ax2.set_xticks(list(pos), labels, fontsize=8)
ax2.set_ylim(0.4, 1)
ax2.set_ylabel("link-prediction ROC AUC")
ax2.set_title("held-out edges vs random non-edges", fontsize=10)
ax2.legend(frameon=False, fontsize=8, loc="upper right")
fig.tight_layout()
save_figure(fig, f"{figures_dir}/fig_real_interactome")

# %% [markdown]
# ## Write the tables

# %%
write_table(pruning.reset_index(), artifact(work_dir, "real_network_pruning"))
write_table(table.reset_index(), artifact(work_dir, "real_interactomes"))
write_json(
    {"orf_genes": orf_genes, "params": vars(params), "interactomes": infos},
    artifact(work_dir, "real_interactome_info"),
)
table.round(3)
