# %% [markdown]
# # 12 Translate the screen's real readouts to the over-expressed gene
# Image2Reg's premise: what an over-expressed gene does to cells maps onto the gene's place in
# the regulatory network, so a readout of the perturbation can be translated to a point in the
# gene-embedding space and the gene read off as the nearest candidate. Everything else in this
# compendium tests the machinery on a simulator that builds the premise in. Here the readouts
# are real measurements of the same ORF constructs as Image2Reg's screen (Rohban et al. 2017,
# U2OS), and the network is the real one Image2Reg uses (iRefIndex v14):
#
# * `l1000`: the L1000 expression signature of each over-expressed gene (978 landmark genes,
#   mean over its replicate wells minus the vector-control wells of the plate);
# * `idr`: its Cell Painting phenotype annotations (enriched / de-enriched cell classes, cell
#   density, morphological cluster; IDR idr0033);
# * `both`: the two side by side, each block standardised.
#
# Each gene is held out in turn; i2r's translation is fitted on every other gene and ranks all
# candidate genes for the held-out readout. Two candidate protocols: the held-out gene is in
# the interactome (built once from all the screen's genes), or the interactome is rebuilt
# without it as a target (it is then a candidate only if the network brings it back; if not,
# a miss). Baselines that know nothing about the readout tell whether the ranks carry signal.
#
# Produces `work_dir/readouts/coverage.csv`, `work_dir/readouts/own_landmark_check.csv`,
# `work_dir/readouts/<readout>/<protocol>/{holdout.parquet,metrics.csv}`,
# `work_dir/readouts/<readout>/summary.json` and `figures_dir/fig_readouts_topk_<readout>.{png,svg}`.

# %% tags=["parameters"]
data_dir = "../../shared/data/orf_rohban2017"  # real readouts of the screen's ORFs
network_file = ""  # PPI cost list; "": iRefIndex v14 in the data folder's sibling network folder
work_dir = "../results/rohban_readouts"  # results of this data set
figures_dir = "../results/rohban_readouts/figures"  # figure folder
readout = "l1000"  # "l1000", "idr" or "both"
own_landmark = "drop_targets"  # L1000: "drop_targets" (all targets' landmarks) or "mask_own"
protocol = "both"  # "in_interactome", "rebuilt_without" or "both"
held_out = "named"  # genes held out: "named" (BRAF JUN RAF1 SMAD4 SREBF1), "impactful", "all"
directions = ["image_to_gene", "two_way"]  # of image_to_gene, gene_to_image, two_way, auto
kernel = "ntk"  # image-to-gene kernel: "ntk", "linear" or "rbf"
depth = 2  # NTK hidden layers
alpha_grid = [0.001, 0.01, 0.1, 1.0, 10.0]  # ridges, chosen by inner LOO on training genes
metric = "euclidean"  # distance of the image-to-gene ranking
interactome = "pcst"  # candidate interactome: "pcst" (Image2Reg) or "shortest_path" (i2r)
network_pruning = "image2reg"  # "image2reg" (cost cut 0.594, largest component, hub cut) or "none"
k_hop = 0  # shortest_path: neighbourhood radius around targets (0: paths only)
gene_dim = 32  # gene embedding size
gae_epochs = 100  # graph autoencoder epochs
n_permutations = 20  # permutation baseline repeats per held-out gene (image to gene)
n_shuffles = 10  # full-shuffle (Image2Reg --random) repeats per held-out gene
seed = 0  # seed of the autoencoder, permutations and shuffles

# %%
import hashlib
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from i2r_utils.artifacts import artifact
from i2r_utils.directions import ImageToGene
from i2r_utils.holdout import KS, holdout_gene, summarise_holdout
from i2r_utils.io import InputError, read_table, write_json, write_table
from i2r_utils.plotting import save_figure
from i2r_utils.progress import tqdm
from i2r_utils.readouts import (
    IMAGE2REG_IMPACTFUL,
    NAMED_GENES,
    own_landmark_check,
    readout_profiles,
    screen_genes,
)

torch.set_num_threads(1)
PROTOCOLS = ("in_interactome", "rebuilt_without")
protocols = PROTOCOLS if protocol == "both" else (protocol,)
if not set(protocols) <= set(PROTOCOLS):
    raise InputError(f"unknown protocol {protocol!r}; choose one of {[*PROTOCOLS, 'both']}")
work = Path(work_dir)

# %% [markdown]
# ## Readouts: one profile per over-expressed gene
# The L1000 signature of a gene is the mean, over all its wells (its alleles pooled, as
# Image2Reg pools them), of each well minus the mean of the `ctl_vector` wells of the same
# plate. Where the over-expressed gene is itself one of the 978 landmark genes, its own
# measurement would simply name it; the table below shows how plainly (its value at its own
# landmark, ranked among all genes' values there). With `own_landmark = "drop_targets"` the
# landmark columns of every target gene of the screen are removed from every profile.

# %%
profiles = readout_profiles(data_dir, readout, own_landmark)
screen = screen_genes(data_dir)
print(f"{readout}: {len(profiles)} genes x {profiles.shape[1]} features")
if readout != "idr":
    check = own_landmark_check(data_dir)
    write_table(check, artifact(work, "readout_landmark_check"))
    print(
        f"{len(check)} over-expressed genes are landmarks; their own measurement is the "
        f"highest of all genes for {(check['own_rank'] == 1).sum()} of them "
        f"(removed here: {own_landmark})"
    )
    display(check.sort_values("own_rank").head(10).round(2))  # noqa: F821
if readout != "l1000":
    idr_cols = [c for c in profiles.columns if c.startswith("idr_")]
    print(f"genes with any IDR annotation: {(profiles[idr_cols].abs().sum(axis=1) > 0).sum()}")

# %% [markdown]
# ## Interactome and gene embeddings (the one cell to switch)
# iRefIndex is pruned as Image2Reg prunes it (`network_pruning = "image2reg"`: edges with a
# cost of 0.594 or more dropped, the largest connected component, hubs above the 99.9 %
# degree quantile removed). The candidate interactome is, by default, Image2Reg's: the
# subgraph induced by a prize-collecting Steiner tree over the targets (`interactome =
# "pcst"`, uniform target prizes, the network's costs); `"shortest_path"` is i2r's rule (one
# shortest path between every pair of targets plus their `k_hop` neighbourhood). A small
# graph convolutional autoencoder with one-hot node features embeds its genes
# (L2-normalised). `build_embeddings(targets)` is everything the rest of the notebook needs;
# embeddings are cached in `work_dir` per target set and setting, so the readouts share the
# rebuilt interactomes.

# %%
from i2r_utils.gae import GAEParams, embed_genes
from i2r_utils.interactome import build_interactome, load_network, prune_network

network_file = network_file or str(
    Path(data_dir).parent
    / "network_irefindex_v14"
    / "iRefIndex_v14_MIScore_interactome_C9.costs.txt"
)
network = load_network(network_file)
if network_pruning == "image2reg":
    network, steps = prune_network(network)
    print(
        "pruning:", "; ".join(f"{s['step']}: {s['nodes']} genes, {s['edges']} edges" for s in steps)
    )
gae = GAEParams(dim=gene_dim, epochs=gae_epochs, seed=seed)
SETTING = {"network": Path(network_file).name, "pruning": network_pruning,
           "interactome": interactome, "k_hop": k_hop, "gae": repr(gae)}  # fmt: skip


def build_embeddings(targets) -> tuple[pd.DataFrame, dict]:
    """Candidate interactome of `targets` and its gene embeddings (cached)."""
    targets = sorted(targets)
    key = hashlib.sha256(json.dumps([targets, SETTING]).encode()).hexdigest()[:16]
    path = artifact(work, "readout_embeddings", key=key)
    if path.is_file():
        emb = read_table(path).set_index("gene")
        return emb, json.loads(path.with_suffix(".json").read_text())
    graph, info = build_interactome(network, targets, interactome, k_hop)
    emb, _ = embed_genes(graph, None, gae, progress=False)
    write_table(emb.reset_index(), path)
    write_json(info, path.with_suffix(".json"))
    return emb, info


# %% [markdown]
# ## Coverage: which of the screen's genes the network and the readouts reach
# The screen's genes are the plate map's target genes; the impactful ones are Image2Reg's 41.

# %%
emb_all, info_all = build_embeddings(screen)
groups = {
    "screen genes": screen,
    "Image2Reg impactful": list(IMAGE2REG_IMPACTFUL),
    "named (BRAF JUN RAF1 SMAD4 SREBF1)": list(NAMED_GENES),
}
coverage = pd.DataFrame(
    {
        name: {
            "genes": len(g),
            "in iRefIndex": sum(x in network for x in g),
            "in candidate interactome": sum(x in emb_all.index for x in g),
            f"with {readout} readout": sum(x in profiles.index for x in g),
            "evaluable (both)": sum(x in emb_all.index and x in profiles.index for x in g),
        }
        for name, g in groups.items()
    }
).T
write_table(coverage.rename_axis("group").reset_index(), artifact(work, "readout_coverage"))
print(
    f"candidate interactome: {info_all['n_candidates']} genes, "
    f"{info_all['n_candidate_edges']} edges; targets missing from the network: "
    f"{info_all['targets_missing']}"
)
missing = {n: [x for x in g if x not in emb_all.index or x not in profiles.index] for n, g in
           groups.items() if n != "screen genes"}  # fmt: skip
print("not evaluable:", missing)
coverage

# %% [markdown]
# ## Hold out each gene in turn
# Training genes: every other screen gene with a readout that is a candidate. i2r's
# translation (`image_to_gene` is Image2Reg's direction; `two_way` fuses it with
# gene-to-image; `auto` picks the best of the three by an inner leave-one-out on the training
# genes) is fitted with its ridge (and width) chosen by closed-form leave-one-out on the
# training genes only; nothing is chosen on the held-out gene. Per held-out gene also: the
# permutation baseline (training pairs re-paired, image to gene), Image2Reg's full shuffle
# (`--random`), the mean training embedding and the mean of all candidates as predictions.
#
# `in_interactome`: one interactome from all screen genes. `rebuilt_without`: the interactome
# and its embeddings are rebuilt from the other screen genes only; when the rebuilt network
# does not contain the held-out gene it is a miss for every method alike.

# %%
pool = {"named": NAMED_GENES, "impactful": IMAGE2REG_IMPACTFUL, "all": profiles.index}
if held_out not in pool:
    raise InputError(f"unknown held_out {held_out!r}; choose one of {list(pool)}")
held = [g for g in pool[held_out] if g in profiles.index and g in screen]
model = ImageToGene(kernel, depth, tuple(alpha_grid))
records = {p: [] for p in protocols}
for gene in tqdm(held, desc="held-out genes", disable=None):
    for prot in protocols:
        emb = emb_all
        if prot == "rebuilt_without":
            emb, _ = build_embeddings([g for g in screen if g != gene])
        rec = holdout_gene(
            profiles, emb, gene, profiles.index, directions, model, metric,
            n_permutations, n_shuffles, seed,
        )  # fmt: skip
        rec.update(protocol=prot, impactful=gene in IMAGE2REG_IMPACTFUL)
        records[prot].append(rec)
for prot, recs in records.items():
    write_table(
        pd.DataFrame(recs), artifact(work, "readout_holdout", readout=readout, protocol=prot)
    )
print(f"{len(held)} genes held out ({held_out}), protocols {list(protocols)}")

# %% [markdown]
# ## Results: all held-out genes and the impactful ones
# Top-k accuracy, mean and median rank (a miss counts as `N + 1`), the area (mean `acc(K)`,
# K = 10..50) and Image2Reg's score S (sum over K = 10..50 step 10 of the mean `acc(k)` for
# k <= K; uniform 0.311 at N = 249, here N is the interactome's size). Repeated baselines
# pool their repeats; `score_S_lo`/`_hi` is the 2.5-97.5 % band of S over repeats.

# %%
tables, curves = {}, {}
for prot, recs in records.items():
    table = pd.DataFrame(recs)
    for subset, rows in (("all", table), ("impactful", table[table["impactful"]])):
        if rows.empty:
            continue
        metrics, curve = summarise_holdout(rows)
        metrics.insert(0, "subset", subset)
        tables[prot, subset], curves[prot, subset] = metrics, curve
    both = pd.concat([tables[k] for k in tables if k[0] == prot])
    write_table(both, artifact(work, "readout_metrics", readout=readout, protocol=prot))
cols = ["subset", "method", "n_genes", "n_missed", "top1", "top5", "top10", "mean_rank",
        "area_k10_50", "score_S", "score_S_lo", "score_S_hi"]  # fmt: skip
for key, metrics in tables.items():
    print(f"--- {readout}, {key[0]}, {key[1]} held-out genes")
    display(metrics.reindex(columns=cols).round(3))  # noqa: F821

# %% [markdown]
# ## What the numbers say
# The premise holds for a readout if the translation ranks the true gene better than every
# baseline that ignores the readout, and by more than the permutation band.

# %%
summary = {"readout": readout, "held_out": held_out, "n_held_out": len(held), "protocols": {}}
for (prot, subset), metrics in tables.items():
    m = metrics.set_index("method")
    best = {k: m.loc[k, "score_S"] for k in m.index if k.startswith("i2r")}
    baselines = {k: m.loc[k, "score_S"] for k in m.index if not k.startswith("i2r")}
    perm = next((k for k in m.index if k.startswith("permutation, image")), None)
    summary["protocols"].setdefault(prot, {})[subset] = {
        "score_S": best,
        "baselines_S": baselines,
        "permutation_band": [m.loc[perm, "score_S_lo"], m.loc[perm, "score_S_hi"]]
        if perm
        else None,
        "n_missed": int(m["n_missed"].iloc[0]),
    }
    i2g = best.get("i2r image to gene", np.nan)
    verdict = "above" if perm and i2g > m.loc[perm, "score_S_hi"] else "not above"
    print(
        f"{prot}, {subset}: image-to-gene S = {i2g:.3f}, {verdict} the permutation band; "
        f"best baseline {max(baselines, key=baselines.get)} S = {max(baselines.values()):.3f}"
    )
write_json(summary, artifact(work, "readout_summary", readout=readout))

# %% [markdown]
# ## Figure: top-k accuracy against the baselines
# One row per protocol, one column per subset of held-out genes (the impactful column only
# when it differs from all): the translation's curves (solid), the permutation and
# full-shuffle baselines (mean with the 2.5-97.5 % band over repeats), the two mean-embedding
# predictors and the uniform random ranking (dashed).

# %%
subsets = ["all"] + (["impactful"] if len(set(held) - set(IMAGE2REG_IMPACTFUL)) else [])
fig, axes = plt.subplots(
    len(protocols), len(subsets), figsize=(5.2 * len(subsets), 4.2 * len(protocols)),
    squeeze=False,
)  # fmt: skip
for (i, prot), (j, subset) in ((a, b) for a in enumerate(protocols) for b in enumerate(subsets)):
    ax, key = axes[i, j], (prot, subset)
    if key not in curves:
        ax.set_axis_off()
        continue
    row = tables[key].iloc[0]
    for label, c in curves[key].items():
        if isinstance(c, tuple):
            (line,) = ax.plot(KS, c[0], lw=1.2, label=label)
            ax.fill_between(KS, c[1], c[2], color=line.get_color(), alpha=0.15)
        else:
            style = {"lw": 2.2} if label.startswith("i2r") else {"lw": 1.2, "ls": "--"}
            ax.plot(KS, c, label=label, **style)
    ax.set_title(
        f"{readout}, {prot.replace('_', ' ')}: {subset} held-out genes\n"
        f"n = {int(row['n_genes'])}, {int(row['n_missed'])} missed, "
        f"N = {row['n_candidates']:.0f} candidates",
        fontsize=9,
    )
    ax.set_xlabel("k (top-k candidates accepted)")
    ax.set_ylabel("top-k accuracy (fraction of held-out genes)")
    ax.set_xlim(1, KS[-1])
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
axes[0, 0].legend(fontsize=7, loc="upper left")
fig.tight_layout()
save_figure(fig, f"{figures_dir}/fig_readouts_topk_{readout}")
