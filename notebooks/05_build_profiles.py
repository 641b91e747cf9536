# %% [markdown]
# # 05 Build and evaluate profiles: CNN fold spaces, hand-crafted features, untrained baseline
# Condition profiles for three representations of the nuclei:
#
# * **trained encoder**: one profile space per fold (`encoders/fold<k>/embeddings.parquet`);
#   profiles of different fold spaces are *not comparable*, so each space gets its own
#   sphering transform and is evaluated on its own held-out conditions;
# * **hand-crafted features** (`nuclei/features/<plate>.parquet`, `Nuclei_*` columns);
# * **untrained encoder**: the same ResNet18, randomly initialised, same pipeline.
#
# Produces, under `work_dir/profiles/`: `cnn_condition_profiles.parquet` (`Metadata_Fold`,
# `Metadata_HeldOut`, `Metadata_Condition`, ..., `cnn_*`; sphered, or with
# `condition_embedding = "nucleus_mean"` the plain nucleus means, `Metadata_ConditionEmbedding`),
# `cnn_well_profiles.parquet`, `sphering_fold<k>.npz` (load with
# `i2r_utils.profiles.load_sphering`), `features_{condition,well}_profiles.parquet`,
# `sphering_features.npz`, `untrained_condition_profiles.parquet`, `sphering_untrained.npz`,
# `strong_perturbations.csv`, `evaluation.csv`; figures `figures_dir/fig_profile_evaluation`
# and `figures_dir/fig_profile_map` (`.png`, `.svg`).

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder (truth/genes.csv gives the annotation)
work_dir = "../results/tiny"  # results of this data set
figures_dir = "../results/tiny/figures"  # figure folder
n_folds = 2  # number of folds of conditions, as in notebook 04
sphering_lambda = 0.01  # ZCA regulariser (singular values or eigenvalues, by convention)
sphering_convention = "pycytominer"  # ZCA convention: pycytominer | deepprofiler (thesis)
seed = 0  # random seed of the untrained encoder and of the random-profile baseline
condition_embedding = "profiles"  # "profiles" (sphered) or "nucleus_mean" (Image2Reg: plain mean)
threads = None  # torch and BLAS threads (None: the libraries' defaults, usually the cores)

# %% [markdown]
# ## The fold encoders
# Each fold's encoder must hold out exactly the conditions of its fold in the fold
# assignment (`screen/fold_assignment.csv`).

# %%
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from i2r_utils.artifacts import artifact
from i2r_utils.columns import CONTROL, feature_columns
from i2r_utils.context import load_context
from i2r_utils.encoder import EncoderParams, build_model, embed, embedding_table, read_encoder_info
from i2r_utils.evaluation import enrichment_intervals, evaluate_fold_spaces
from i2r_utils.io import InputError, read_table, write_table
from i2r_utils.nuclei import load_crops
from i2r_utils.plotting import PALETTE, place_labels, save_figure
from i2r_utils.profiles import (
    CONDITION_EMBEDDINGS,
    build_profiles,
    nucleus_means,
    strong_perturbations,
)
from i2r_utils.runtime import pin_threads

pin_threads(threads)

if condition_embedding not in CONDITION_EMBEDDINGS:
    raise InputError(
        f"unknown condition_embedding {condition_embedding!r}; use one of "
        f"{list(CONDITION_EMBEDDINGS)}"
    )

nuclei = read_table(artifact(work_dir, "nuclei"))
impactful = read_table(artifact(work_dir, "impactful"))["Metadata_Condition"].astype(str).tolist()
folds = read_table(artifact(work_dir, "folds"))
if sorted(folds["Metadata_Fold"].unique()) != list(range(n_folds)):
    raise InputError(
        f"{artifact(work_dir, 'folds')}: folds {sorted(folds['Metadata_Fold'].unique())} do not "
        f"match n_folds={n_folds}; rerun notebooks 02 and 04 with the same n_folds."
    )
infos = [read_encoder_info(artifact(work_dir, "encoder_dir", fold=k)) for k in range(n_folds)]
for k, info in enumerate(infos):
    expected = sorted(folds.loc[folds.Metadata_Fold == k, "Metadata_Condition"].astype(str))
    if sorted(info["held_out"]) != expected:
        raise InputError(
            f"{artifact(work_dir, 'encoder_info', fold=k)}: held-out conditions differ from "
            f"{artifact(work_dir, 'folds')}; rerun notebook 04 for every fold after notebook 02."
        )
pd.DataFrame(
    [
        {
            "fold": k,
            "held_out": len(i["held_out"]),
            "classes": len(i["classes"]),
            "val_bacc": i["val_balanced_accuracy"],
            "chance": i["chance"],
        }
        for k, i in enumerate(infos)
    ]
).round(3)

# %% [markdown]
# ## Aggregation levels and sphering on the control wells
# For every representation (`i2r_utils.profiles.build_profiles`):
#
# 1. nucleus -> image: the **median** of the image's nuclei (robust to a few odd nuclei);
# 2. image -> well: the **mean** of the well's images;
# 3. batch correction: every plate is standardised to its own `EMPTY` wells, then a ZCA
#    sphering transform fitted on all control wells is applied (pycytominer's
#    `Spherize(ZCA)` convention by default, DeepProfiler's with `sphering_convention:
#    deepprofiler`; regulariser `sphering_lambda`): control variation becomes
#    white noise, so a condition's profile measures how it differs from the control;
# 4. well -> condition: the **mean** of the condition's wells, before and after sphering.
#
# The fitted transform is saved, so a new target's images are profiled in the same space.
#
# ## Trained encoder: one profile space per fold
# The encoder of fold k embedded every nucleus; its profiles get their own sphering
# transform. `Metadata_HeldOut` marks the conditions that encoder never saw: only those are
# leakage-free in fold space k.

# %%
cnn_wells, cnn_conds, sets = [], [], {}
for k in range(n_folds):
    emb = read_table(artifact(work_dir, "encoder_embeddings", fold=k))
    ps = build_profiles(emb, sphering_lambda, convention=sphering_convention)
    ps.sphering.save(artifact(work_dir, "sphering_fold", fold=k))
    held = set(infos[k]["held_out"])
    for df, out in ((ps.wells_after, cnn_wells), (ps.conditions_after, cnn_conds)):
        df = df.copy()
        df.insert(0, "Metadata_Fold", k)
        df.insert(1, "Metadata_HeldOut", df["Metadata_Condition"].isin(held))
        out.append(df)
    sets[f"fold{k}"] = ps
cnn_wells = pd.concat(cnn_wells, ignore_index=True)
cnn_conds = pd.concat(cnn_conds, ignore_index=True)
write_table(cnn_wells, artifact(work_dir, "cnn_well_profiles"))
if condition_embedding == "profiles":
    write_table(cnn_conds, artifact(work_dir, "cnn_condition_profiles"))
ps0 = sets["fold0"]
print(
    f"{len(cnn_conds)} condition profiles in {n_folds} fold spaces, {cnn_conds.shape[1]} columns; "
    f"fold 0: {len(ps0.wells)} wells from {int(ps0.wells.Metadata_Images.sum())} images and "
    f"{int(ps0.wells.Metadata_Nuclei.sum())} nuclei; sphering fitted on "
    f"{ps0.sphering.n_controls} control wells"
)

# %% [markdown]
# ## The original's condition embedding: the plain nucleus mean (`condition_embedding`)
# Image2Reg embeds a condition as the plain mean of its nuclei's embeddings: no image or
# well level, no normalisation to the plate's controls, no sphering, the control left out.
# With `condition_embedding = "nucleus_mean"` these means, one table per fold space (the
# fold's encoder), are the encoder profiles the translation reads
# (`cnn_condition_profiles.parquet`, marked `Metadata_ConditionEmbedding = nucleus_mean`);
# the sphered profiles above still serve the strong perturbations, the evaluation and the
# maps below. The hand-crafted features (representations `features`, `both`) keep their
# sphered profiles: they are not encoder embeddings.

# %%
if condition_embedding == "nucleus_mean":
    means = []
    for k in range(n_folds):
        m = nucleus_means(read_table(artifact(work_dir, "encoder_embeddings", fold=k)))
        m.insert(0, "Metadata_Fold", k)
        m.insert(1, "Metadata_HeldOut", m["Metadata_Condition"].isin(infos[k]["held_out"]))
        m.insert(2, "Metadata_ConditionEmbedding", condition_embedding)
        means.append(m)
    means = pd.concat(means, ignore_index=True)
    write_table(means, artifact(work_dir, "cnn_condition_profiles"))
    print(f"{len(means)} nucleus-mean condition embeddings in {n_folds} fold spaces (no control)")

# %% [markdown]
# ## Baselines: hand-crafted features and the untrained encoder
# The same aggregation and sphering for the hand-crafted chromatin features and for the
# embeddings of a randomly initialised ResNet18 (same architecture and input size as the
# trained encoders, seed `seed`): what the training adds.

# %%
feat_files = sorted(artifact(work_dir, "features_dir").glob("*.parquet"))
if not feat_files:
    raise InputError(f"{artifact(work_dir, 'features_dir')}: no feature tables; run notebook 01.")
features = pd.concat([read_table(p) for p in feat_files], ignore_index=True)
feat_ps = build_profiles(features, sphering_lambda, convention=sphering_convention)
feat_ps.sphering.save(artifact(work_dir, "sphering_features"))
write_table(feat_ps.wells_after, artifact(work_dir, "features_well_profiles"))
write_table(feat_ps.conditions_after, artifact(work_dir, "features_condition_profiles"))

crops = load_crops(artifact(work_dir, "nuclei_dir"), nuclei)
untrained_model = build_model(EncoderParams(**{**infos[0]["params"], "seed": seed}), n_classes=1)
context = None  # the two-branch encoder also sees each nucleus' stored context window
if getattr(untrained_model, "two_branch", False):
    context = load_context(artifact(work_dir, "nuclei_dir"), nuclei)
untrained = embedding_table(nuclei, embed(untrained_model, crops, progress=True, context=context))
unt_ps = build_profiles(untrained, sphering_lambda, convention=sphering_convention)
unt_ps.sphering.save(artifact(work_dir, "sphering_untrained"))
write_table(unt_ps.conditions_after, artifact(work_dir, "untrained_condition_profiles"))
print(
    f"hand-crafted: {len(feat_ps.sphering.features)} features; untrained: "
    f"{len(unt_ps.sphering.features)} dimensions"
)

# %% [markdown]
# ## Strong perturbations (thesis Algorithm 1) on sphered well profiles
# Per plate, every well's distance to the median control well, z-scored with the control
# wells' distances; a condition's score sums its mean z over plates. A condition's CNN
# score comes from the fold space in which it was held out.

# %%
ranks = strong_perturbations(feat_ps.wells_after).rename(
    columns={"score": "features_score", "rank": "features_rank", "n_plates": "Metadata_Plates"}
)
cnn_rank = pd.concat(
    [
        strong_perturbations(sets[f"fold{k}"].wells_after).query(
            "Metadata_Condition in @infos[@k]['held_out']"
        )
        for k in range(n_folds)
    ]
)
ranks = ranks.merge(
    cnn_rank[["Metadata_Condition", "score"]].rename(columns={"score": "cnn_score"}),
    on="Metadata_Condition",
)
ranks["cnn_rank"] = ranks["cnn_score"].rank(ascending=False, method="first").astype(int)
ranks["Metadata_Impactful"] = ranks["Metadata_Condition"].isin(impactful)
write_table(ranks, artifact(work_dir, "strong_perturbations"))
n_imp = int(ranks.Metadata_Impactful.sum())
print(
    f"impactful conditions among the top {n_imp} strongest: hand-crafted "
    f"{int(ranks.nsmallest(n_imp, 'features_rank').Metadata_Impactful.sum())}, "
    f"CNN {int(ranks.nsmallest(n_imp, 'cnn_rank').Metadata_Impactful.sum())} (of {n_imp})"
)
ranks.head(10)

# %% [markdown]
# ## Profile evaluation: mAP, folds of enrichment, hits in the top 1 %
# Thesis metrics (`i2r_utils.evaluation`), on the annotation of the synthetic screen (the
# network community of the over-expressed gene, `data_dir/truth/genes.csv`): mAP of
# retrieving the conditions of the same annotation (copairs), folds of enrichment and hits
# of same-annotation pairs in the top 1 % of pairs. The queries of fold space k are the
# conditions of fold k; the numbers are averaged over spaces. Random profiles (20 draws)
# give the chance mAP.

# %%
genes_path = Path(data_dir) / "truth" / "genes.csv"
has_annotation = genes_path.is_file()
if not has_annotation:
    print(f"{genes_path} not found: no annotation, profile evaluation skipped")
else:
    community = read_table(genes_path).set_index("gene")["community"]

    def annotate(df):
        return df.assign(Metadata_Annotation=df["Metadata_Condition"].map(community))

    rows = []
    for name, ps in (("hand-crafted features", feat_ps), ("untrained ResNet18", unt_ps)):
        for stage, conds in (("before", ps.conditions_before), ("after", ps.conditions_after)):
            res = evaluate_fold_spaces(annotate(conds), folds)
            rows.append(res.assign(representation=name, sphering=stage))
    for stage in ("before", "after"):
        conds = pd.concat(
            [
                getattr(sets[f"fold{k}"], f"conditions_{stage}").assign(Metadata_Fold=k)
                for k in range(n_folds)
            ]
        )
        res = evaluate_fold_spaces(annotate(conds), folds)
        rows.append(res.assign(representation="trained ResNet18 (fold spaces)", sphering=stage))
    rng = np.random.default_rng(seed)
    base = feat_ps.conditions_after[["Metadata_Condition"]]
    chance = []
    for _ in range(20):  # random profiles: the mAP of a random ranking
        noise = base.assign(**{f"x{j}": rng.normal(size=len(base)) for j in range(8)})
        chance.append(evaluate_fold_spaces(annotate(noise), folds).iloc[-1]["mAP"])
    chance_map = float(np.mean(chance))
    evaluation = pd.concat(rows, ignore_index=True)
    evaluation["chance_mAP"] = chance_map
    cols = ["representation", "sphering", "fold", "mAP", "fold_enrichment", "hits", "p_value"]
    evaluation = evaluation[cols + [c for c in evaluation if c not in cols]]
    write_table(evaluation, artifact(work_dir, "profile_evaluation"))
    evaluation = enrichment_intervals(evaluation)  # 95 % intervals (figure and table below)
    summary = evaluation[evaluation.fold == "mean"]
    print(f"chance mAP {chance_map:.3f}")
    table = summary.assign(
        hits=[f"{h} of {n}" for h, n in zip(summary.hits, summary.n_top, strict=True)],
        fold_enrichment_95ci=[
            f"{lo:.3g}-{hi:.3g}"
            for lo, hi in zip(summary.fold_enrichment_low, summary.fold_enrichment_high,
                              strict=True)
        ],
    )  # fmt: skip
    display_cols = ["representation", "sphering", "mAP", "fold_enrichment",
                    "fold_enrichment_95ci", "hits", "n_queries"]  # fmt: skip
    print(table[display_cols].round(3).to_string(index=False))

# %% [markdown]
# ### Figure: mAP against folds of enrichment, before and after sphering
# One colour per representation, circles before and squares after sphering (an arrow
# joins them). The vertical bars are 95 % confidence intervals of the folds of enrichment:
# Woolf's logit interval of each fold space's odds ratio, propagated to the mean over
# fold spaces by the delta method (`i2r_utils.evaluation.enrichment_intervals`); the
# odds ratios span orders of magnitude, so the axis is logarithmic. The numbers
# "k/n" are the same-community pairs among the n most similar pairs (the top 1 %,
# summed over fold spaces).

# %%
if has_annotation:
    fig, ax = plt.subplots(figsize=(6.6, 4.6))
    reps = list(dict.fromkeys(summary["representation"]))
    colors = dict(zip(reps, PALETTE.values(), strict=False))
    markers = {"before": "o", "after": "s"}
    points, hit_labels = [], []
    for rep in reps:
        sub = summary[summary["representation"] == rep].set_index("sphering")
        ax.annotate(
            "", xy=(sub.loc["after", "mAP"], sub.loc["after", "fold_enrichment"]),
            xytext=(sub.loc["before", "mAP"], sub.loc["before", "fold_enrichment"]),
            arrowprops={"arrowstyle": "->", "color": colors[rep], "alpha": 0.6},
        )  # fmt: skip
        for stage, r in sub.iterrows():
            y = r["fold_enrichment"]
            err = [[y - r["fold_enrichment_low"]], [r["fold_enrichment_high"] - y]]
            ax.errorbar(r["mAP"], y, yerr=err, fmt="none", ecolor=colors[rep], elinewidth=1,
                        capsize=3, alpha=0.8, zorder=2)  # fmt: skip
            ax.scatter(r["mAP"], y, s=70, color=colors[rep], marker=markers[stage],
                       edgecolor="k", zorder=3)  # fmt: skip
            points.append((r["mAP"], y))
            hit_labels.append(f"{int(r['hits'])}/{int(r['n_top'])}")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(mpl.ticker.LogFormatter())  # plain numbers: 1, 10, 100
    ax.yaxis.set_minor_formatter(mpl.ticker.LogFormatter(minor_thresholds=(1, 0.4)))
    ax.axvline(chance_map, ls="--", c="grey", lw=1)
    ax.text(chance_map, 0.98, " random profiles", va="top", fontsize=7, color="grey",
            transform=ax.get_xaxis_transform())  # fmt: skip
    ax.margins(x=0.12)  # room for the k/n labels beside the outermost points
    ax.axhline(1.0, ls=":", c="grey", lw=1)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[r], label=r) for r in reps]
    handles += [
        plt.Line2D([], [], marker=m, ls="", color="w", markeredgecolor="k", label=f"{s} sphering")
        for s, m in markers.items()
    ]
    handles.append(plt.Line2D([], [], color="grey", marker="|", ls="-", label="95 % CI"))
    ax.legend(handles=handles, frameon=False, fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1))  # fmt: skip
    ax.set_xlabel("mAP (retrieving same-community conditions)")
    ax.set_ylabel("folds of enrichment (odds ratio, top 1 % pairs)")
    ax.set_title(
        "Condition profiles, mean over fold spaces (queries: each space's held-out conditions)"
        "\nbars: 95 % CI (Woolf, delta method over spaces); k/n: same-community pairs among "
        "the n top 1 % pairs",
        fontsize=8,
    )
    fig.tight_layout()
    place_labels(ax, points, hit_labels, fontsize=7, marker_size=70)  # on the final layout
    save_figure(fig, Path(figures_dir) / "fig_profile_evaluation")

# %% [markdown]
# ### Figure: maps of the sphered condition profiles, coloured by community
# Hand-crafted features, the untrained encoder and the fold-0 space of the trained encoder
# (diamonds: the conditions that encoder never saw); the control is left out. The colour is
# the annotation the evaluation above scores: the network community of the over-expressed
# gene in the simulated interactome (`truth/genes.csv`). The simulated phenotypes vary
# smoothly on the network, so a representation that captures them places a community's
# conditions together.
#
# * Top row, **PCA**: the two directions of largest variance (a linear projection; the
#   axis labels give the share of the variance each explains).
# * Bottom row, **t-SNE** (scikit-learn, cosine distance as in the evaluation, exact
#   gradients, PCA initialisation, seed `seed`, perplexity `(n - 1) / 3` capped at 30):
#   a non-linear map that keeps each condition's nearest neighbours; distances between
#   far-apart groups and the axes carry no meaning. (UMAP is not a dependency.)
#
# Labels are placed only where they cover no marker and no other label
# (`i2r_utils.plotting.place_labels`, held-out conditions first); each panel says how many
# conditions it labels.

# %%
if has_annotation:
    maps = {
        "hand-crafted features": annotate(feat_ps.conditions_after),
        "untrained ResNet18": annotate(unt_ps.conditions_after),
        "trained ResNet18, fold-0 space": annotate(cnn_conds[cnn_conds.Metadata_Fold == 0]),
    }
    maps = {k: v[v.Metadata_Condition != CONTROL].reset_index(drop=True) for k, v in maps.items()}

    def community_name(v):
        if pd.isna(v):
            return None
        integral = isinstance(v, float | np.floating) and float(v).is_integer()
        return str(int(v)) if integral else str(v)

    def tsne(x):
        perplexity = min(30.0, (len(x) - 1) / 3)
        return TSNE(2, perplexity=perplexity, metric="cosine", init="pca", method="exact",
                    random_state=seed).fit_transform(x)  # fmt: skip

    labels = sorted(
        {community_name(v) for df in maps.values() for v in df.Metadata_Annotation.dropna()},
        key=lambda c: (len(c), c),
    )
    palette = list(PALETTE.values()) if len(labels) <= len(PALETTE) else plt.cm.tab20.colors
    colors = dict(zip(labels, palette, strict=False))
    fig, axes = plt.subplots(2, len(maps), figsize=(3.9 * len(maps), 8.4), squeeze=False)
    layouts = []
    for j, (title, df) in enumerate(maps.items()):
        x = df[feature_columns(df)].to_numpy(np.float64)
        names = df["Metadata_Annotation"].map(community_name).to_numpy()
        held = np.zeros(len(df), bool)
        if "Metadata_HeldOut" in df:
            held = df["Metadata_HeldOut"].to_numpy(bool)
        if len(x) > 3:
            pca = PCA(2, random_state=0).fit(x)
            share = 100 * pca.explained_variance_ratio_
            rows = [(pca.transform(x), [f"PC{i + 1} ({share[i]:.0f} % of variance)"
                                        for i in range(2)]),
                    (tsne(x), ["t-SNE 1", "t-SNE 2"])]  # fmt: skip
        else:
            rows = [(np.zeros((len(x), 2)), ["PC1", "PC2"]), (np.zeros((len(x), 2)), ["", ""])]
        for ax, (xy, axis_labels) in zip(axes[:, j], rows, strict=True):
            for lab in [*labels, None]:
                for marker, part in (("o", ~held), ("D", held)):
                    m = np.array([n == lab for n in names]) & part
                    if m.any():
                        ax.scatter(
                            *xy[m].T,
                            s=28,
                            marker=marker,
                            color=colors.get(lab, "lightgrey"),
                            edgecolor="k",
                            lw=0.4,
                        )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(axis_labels[0], fontsize=8)
            ax.set_ylabel(axis_labels[1], fontsize=8)
            ax.margins(0.08)
            layouts.append((ax, xy, df["Metadata_Condition"].astype(str).tolist(), held))
        axes[0, j].set_title(title, fontsize=9)
    axes[0, 0].annotate("PCA", (-0.16, 0.5), xycoords="axes fraction", rotation=90,
                        fontsize=10, fontweight="bold", va="center", ha="right")  # fmt: skip
    axes[1, 0].annotate("t-SNE", (-0.16, 0.5), xycoords="axes fraction", rotation=90,
                        fontsize=10, fontweight="bold", va="center", ha="right")  # fmt: skip
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[c], markeredgecolor="k",
                          label=c) for c in labels]  # fmt: skip
    if any(h.any() for *_, h in layouts):
        handles.append(plt.Line2D([], [], marker="D", ls="", color="w", markeredgecolor="k",
                                  label="held out by\nthe encoder"))  # fmt: skip
    fig.legend(handles=handles, title="community", frameon=False, fontsize=7,
               title_fontsize=8, loc="center left", bbox_to_anchor=(0.9, 0.5))  # fmt: skip
    fig.suptitle(
        "Sphered condition profiles (control left out); colour: network community of the "
        "over-expressed gene (simulated truth)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0.02, 0, 0.9, 1))
    for ax, xy, conds, held in layouts:  # labels last: they are placed on the final layout
        shown = place_labels(ax, xy, conds, fontsize=5.5, priority=held * 1e9 + np.hypot(
            *(xy - xy.mean(axis=0)).T))  # fmt: skip
        ax.text(0.99, 0.01, f"{shown.sum()} of {len(conds)} labelled", fontsize=6,
                color="0.35", ha="right", va="bottom", transform=ax.transAxes)  # fmt: skip
    save_figure(fig, Path(figures_dir) / "fig_profile_map")
