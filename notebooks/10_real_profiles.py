# %% [markdown]
# # 10 Profile evaluation on real CellProfiler profiles: replicates, mechanisms, sphering
# The profiling metrics of notebook 05, measured on real public well profiles instead of the
# simulator: one LINCS Cell Painting plate (`profile_set = "lincs_plate"`) or the BBBC021
# MoA benchmark (`"bbbc021"`). Run it with `python3 run_all.py --dataset lincs_plate` or
# `--dataset bbbc021` (registry: `i2r_pipeline.datasets`).
#
# Produces, under `work_dir/`: `tables/evaluation.csv` (every metric of each representation:
# as provided, standardised to DMSO, sphered), `tables/shuffled_baseline.csv` (the same
# metrics with shuffled labels), `tables/replicate_map.csv` (copairs replicate mAP and
# p-value per replicate group), `tables/moa_map.csv` (mAP per mechanism),
# `tables/query_enrichment.csv` (per-query odds ratios), `tables/nn_accuracy.csv`
# (nearest-neighbour MoA calls, NSC and NSB), `tables/sphering_sweep.csv` (metrics against
# the sphering regulariser, both conventions), `tables/strong_perturbations.csv`
# (Algorithm 1 ranking with replicate correlations), `summary.json`; figures
# `figures_dir/fig_real_sphering_sweep`, `fig_real_strong_precision`, `fig_real_moa_pca`
# (`.png`, `.svg`).

# %% tags=["parameters"]
profile_set = "bbbc021"  # lincs_plate | bbbc021 | cpg0017 (i2r_utils.realprofiles.LOADERS)
data_dir = "../../shared/data/profiles_bbbc021_wellmean"  # folder of the profile set
work_dir = "../results/bbbc021_quick"  # results of this run
figures_dir = "../results/bbbc021_quick/figures"  # figure folder
replicate_by = "Metadata_Condition"  # replicate groups: Metadata_Condition | Metadata_Compound
sphering_lambda = 0.01  # regulariser of the headline sphering (Algorithm 1: 1e-2)
sphering_convention = "pycytominer"  # headline ZCA convention: pycytominer | deepprofiler
lambda_grid = [1e-4, 1e-1]  # regularisers of the sweep (both conventions)
top = 0.01  # top fraction of the enrichment metrics (thesis: 1 %)
n_shuffles = 2  # shuffled-label draws of the random baseline
null_size = 1000  # copairs null rankings per group (replicate and MoA mAP p-values)
n_null = 100  # random groups per size (replicate-correlation null)
max_moas = 3  # 0: every mechanism; N: only compounds of the first N mechanisms (quick runs)
max_features = 0  # 0: every feature; N: only the first N features (quick runs)
n_moas = 10  # mechanisms coloured in the PCA map
seed = 0  # seed of the shuffles and the nulls

# %% [markdown]
# ## The profiles
# Every profile set is read into one layout (`i2r_utils.realprofiles`): one row per well
# with plate, batch, compound, dose, condition (`compound@dose`), mechanism of action
# (MoA) and the CellProfiler features. The control is the vehicle, DMSO.

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from i2r_utils.artifacts import artifact
from i2r_utils.columns import feature_columns
from i2r_utils.evaluation import (
    average_precisions,
    cosine_similarity,
    mean_average_precisions,
    nearest_neighbour_accuracy,
    query_enrichment_table,
    replicate_average_precisions,
)
from i2r_utils.io import write_json, write_table
from i2r_utils.plotting import save_figure
from i2r_utils.profile_benchmark import (
    METRICS,
    annotated_treatments,
    evaluate_profiles,
    precision_at_k,
    shuffled_baseline,
    sphered,
    sphering_sweep,
    strong_vs_replicates,
)
from i2r_utils.profiles import fit_sphering
from i2r_utils.realprofiles import CONTROL, load_profile_set

timings = {}
t0 = time.perf_counter()
wells = load_profile_set(profile_set, data_dir)
if max_moas:
    keep = sorted(wells["Metadata_MoA"].dropna().unique())[:max_moas]
    wells = wells[wells["Metadata_MoA"].isin(keep) | (wells["Metadata_Condition"] == CONTROL)]
    wells = wells.reset_index(drop=True)
    print(f"quick run: only the compounds of {keep} and the controls")
if max_features:
    feats = feature_columns(wells)
    wells = wells[[c for c in wells if c not in feats] + feats[:max_features]]
    print(f"quick run: only the first {max_features} of {len(feats)} features")
timings["load"] = time.perf_counter() - t0
treated = wells[wells["Metadata_Condition"] != CONTROL]
overview = pd.Series({
    "wells": len(wells),
    "control wells": int((wells["Metadata_Condition"] == CONTROL).sum()),
    "features": len(feature_columns(wells)),
    "plates": wells["Metadata_Plate"].nunique(),
    "batches": wells["Metadata_Batch"].nunique(),
    "compounds": treated["Metadata_Compound"].nunique(),
    "treatments (compound@dose)": treated["Metadata_Condition"].nunique(),
    "treatments with a MoA": treated.dropna(subset=["Metadata_MoA"])["Metadata_Condition"].nunique(),
    "mechanisms": treated["Metadata_MoA"].nunique(),
    f"replicate groups ({replicate_by})": treated[replicate_by].nunique(),
})  # fmt: skip
overview

# %% [markdown]
# ## Three representations, and sphering on the control wells
# * **as provided**: the features of the file (LINCS: already normalised per plate and
#   feature-selected; BBBC021: raw per-well means);
# * **standardised**: every plate centred on its own DMSO wells and divided by the pooled
#   within-plate DMSO standard deviation (step 1 of `i2r_utils.profiles.fit_sphering`);
# * **sphered**: then a ZCA transform fitted on all DMSO wells, so that control variation
#   becomes white noise. Two conventions (`i2r_utils.whitening`): pycytominer's (the
#   regulariser lambda added to the singular values of the centred controls, missing ranks
#   filled with the smallest singular value) and DeepProfiler's / the thesis's
#   (`W = U (Delta + lambda)^(-1/2) U^T` from the covariance eigen-decomposition).
#
# With fewer control wells than features (LINCS: 24 wells, 454 features) the controls span
# only a small subspace; how the transform treats the rest is exactly where the two
# conventions differ.

# %%
t0 = time.perf_counter()
reps = {
    "as provided": wells,
    "standardised to DMSO": fit_sphering(wells, sphering_lambda, CONTROL).standardize(wells),
    f"sphered ({sphering_convention}, lambda {sphering_lambda:g})": sphered(
        wells, sphering_lambda, sphering_convention
    ),
}
headline = list(reps)[-1]
timings["sphering"] = time.perf_counter() - t0

# %% [markdown]
# ## The metrics
# For each representation (`i2r_utils.profile_benchmark.evaluate_profiles`):
#
# * **replicate mAP** (copairs, "phenotypic activity"): every treated well ranks the other
#   wells of its replicate group (`replicate_by`: the same compound at any dose on the
#   LINCS plate, the same compound and dose in BBBC021) against the DMSO wells by cosine
#   similarity; average precision per well, mean per group, mean over groups;
# * on **treatment profiles** (the mean of a treatment's wells; never comparing two
#   treatments of the same compound):
#   * **MoA mAP**: each treatment retrieves the treatments of *other* compounds with its
#     mechanism, against the treatments of other mechanisms (mean over treatments that have
#     such a partner);
#   * **folds of enrichment, pooled** (i2r's first form): the odds ratio of same-MoA pairs
#     among the top 1 % most similar pairs of all pairs; **hits, pooled**: the same-MoA
#     pairs among them;
#   * **folds of enrichment, per query** (the thesis's form): for every treatment its own
#     top 1 % most similar treatments against the rest, the odds ratio of its 2 x 2 table,
#     averaged over treatments; **hits, per query**: the treatments with at least one
#     same-MoA treatment in their own top 1 %;
#   * **NSC / NSB accuracy** (Ljosa et al. 2013): each treatment takes the mechanism of its
#     most similar treatment of another compound (NSC) and also of another batch (NSB).
#
# The random baseline shuffles the labels (replicate groups over treated wells, mechanisms
# over compounds) and recomputes everything on the headline representation.

# %%
t0 = time.perf_counter()
rows = [{"representation": k, **evaluate_profiles(v, replicate_by, top)} for k, v in reps.items()]
timings["evaluation"] = time.perf_counter() - t0
t0 = time.perf_counter()
baseline = shuffled_baseline(reps[headline], replicate_by, n_shuffles, seed, top)
timings["shuffled_baseline"] = time.perf_counter() - t0
write_table(baseline, artifact(work_dir, "real_shuffled_baseline"))
chance = baseline.drop(columns="draw").mean()
rows.append({"representation": f"shuffled labels (mean of {n_shuffles})", **chance.to_dict()})
evaluation = pd.DataFrame(rows)
write_table(evaluation, artifact(work_dir, "real_evaluation"))
show = ["representation", *METRICS]
evaluation[show].round(3)

# %% [markdown]
# ## Replicate and mechanism mAP with copairs' permutation p-values
# copairs compares each group's mAP with `null_size` random rankings of the same size
# (Benjamini-Hochberg corrected across groups); a group is **retrieved** when its corrected
# p-value is below 0.05. The fraction retrieved is the headline of the copairs papers.

# %%
t0 = time.perf_counter()
head = reps[headline]
rep_ap = replicate_average_precisions(head, replicate_by, CONTROL)
rep_map = mean_average_precisions(rep_ap, replicate_by, null_size, seed=seed)
write_table(rep_map, artifact(work_dir, "real_replicate_map"))
treatments = annotated_treatments(head)
moa_ap = average_precisions(treatments, "Metadata_MoA", diffby="Metadata_Compound")
moa_map = mean_average_precisions(moa_ap, "Metadata_MoA", null_size, seed=seed)
write_table(moa_map, artifact(work_dir, "real_moa_map"))
timings["map_p_values"] = time.perf_counter() - t0
print(
    f"replicate groups retrieved (q < 0.05): {int(rep_map.retrieved.sum())} of {len(rep_map)}; "
    f"mechanisms retrieved: {int(moa_map.retrieved.sum())} of {len(moa_map)}"
)
moa_map.sort_values("mAP", ascending=False).round(3)

# %% [markdown]
# ## Folds of enrichment per query, and the nearest-neighbour MoA calls
# The per-query table behind the thesis's numbers (query, its candidates, positives, its
# top size, hits, odds ratio, one-sided Fisher p-value), and every NSC/NSB call.

# %%
x = treatments[feature_columns(treatments)].to_numpy(np.float64)
moa = treatments["Metadata_MoA"].astype(str).to_numpy()
comp = treatments["Metadata_Compound"].astype(str).to_numpy()
batch = treatments["Metadata_Batch"].astype(str).to_numpy()
same_comp = comp[:, None] == comp[None, :]
per_query = query_enrichment_table(cosine_similarity(x), moa[:, None] == moa, ~same_comp, top)
per_query.insert(
    1, "Metadata_Condition", treatments["Metadata_Condition"].to_numpy()[per_query["query"]]
)
write_table(per_query, artifact(work_dir, "real_query_enrichment"))
calls = [nearest_neighbour_accuracy(x, moa, exclude=same_comp).assign(rule="NSC")]
if len(set(batch)) > 1:
    nsb = nearest_neighbour_accuracy(x, moa, exclude=same_comp | (batch[:, None] == batch))
    calls.append(nsb.assign(rule="NSB"))
calls = pd.concat(calls, ignore_index=True)
calls.insert(0, "Metadata_Condition", treatments["Metadata_Condition"].to_numpy()[calls["query"]])
write_table(calls, artifact(work_dir, "real_nn_accuracy"))
print(per_query[["n_candidates", "n_top", "hits", "odds_ratio"]].describe().round(2).to_string())
calls.groupby(["rule", "label"])["correct"].mean().unstack(0).round(2)

# %% [markdown]
# ## Sphering: both conventions, the regulariser swept
# The metrics after sphering with each convention and each lambda of `lambda_grid`
# (`i2r_utils.profile_benchmark.sphering_sweep`), beside the standardised profiles (no
# sphering) and the shuffled-label baseline. `mean_norm` is the mean norm of the sphered
# treated wells: the conventions give profiles of very different sizes, cosine
# similarities much less so.

# %%
t0 = time.perf_counter()
sweep = sphering_sweep(wells, replicate_by, lambda_grid, top=top)
timings["sphering_sweep"] = time.perf_counter() - t0
write_table(sweep, artifact(work_dir, "real_sphering_sweep"))
sweep[["convention", "lam", *METRICS, "mean_norm"]].round(3)

# %% [markdown]
# ### Figure: metrics against the sphering regulariser

# %%
panels = [("replicate_mAP", "replicate mAP"), ("moa_mAP", "MoA mAP (other compounds)"),
          ("query_fold_enrichment", "folds of enrichment\n(per query, mean odds ratio)"),
          ("nsc_accuracy", "NSC 1-NN MoA accuracy")]  # fmt: skip
if sweep["nsb_accuracy"].notna().any():
    panels.append(("nsb_accuracy", "NSB 1-NN MoA accuracy"))
fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4), squeeze=False)
styles = {"pycytominer": ("tab:blue", "o"), "deepprofiler": ("tab:orange", "s")}
unsphered = evaluation.set_index("representation").loc["standardised to DMSO"]
for ax, (col, label) in zip(axes[0], panels, strict=True):
    for conv, sub in sweep.groupby("convention"):
        color, marker = styles.get(conv, ("k", "^"))
        ax.plot(sub["lam"], sub[col], marker=marker, color=color, label=f"sphered, {conv}")
    ax.axhline(unsphered[col], color="grey", ls="--", lw=1, label="standardised, not sphered")
    ax.axhline(chance[col], color="k", ls=":", lw=1, label="shuffled labels")
    ax.set_xscale("log")
    ax.set_xlabel("regulariser lambda")
    ax.set_ylabel(label)
handles, labels = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
fig.suptitle(f"{profile_set}: profile metrics against the sphering regulariser", fontsize=10)
fig.tight_layout(rect=(0, 0.08, 1, 1))
save_figure(fig, Path(figures_dir) / "fig_real_sphering_sweep")

# %% [markdown]
# ## Strong perturbations (thesis Algorithm 1) against replicate reproducibility
# Algorithm 1 ranks perturbations by how far their wells lie from the plate's median DMSO
# well, in units of the DMSO wells' own spread (headline sphered profiles; a perturbation
# is a replicate group). Independently, a group is **reproducible** when the median Pearson
# correlation between its wells exceeds the 95th percentile of random groups of the same
# size. If strength ranks phenotypes that are real, the top of the ranking should be
# reproducible more often than the whole list (the precision of a random ranking).

# %%
t0 = time.perf_counter()
strong = strong_vs_replicates(head, replicate_by, n_null, seed)
timings["strong_perturbations"] = time.perf_counter() - t0
write_table(strong, artifact(work_dir, "real_strong_perturbations"))
prec = precision_at_k(strong)
rho = strong[["score", "replicate_correlation"]].corr(method="spearman").iloc[0, 1]
ks = [k for k in (5, 10, 20, 50) if k <= len(prec)]
print(
    f"{len(strong)} groups, {int(strong.reproducible.sum())} reproducible "
    f"({prec.baseline.iloc[0]:.2f}); Spearman(score, replicate correlation) = {rho:.2f}; "
    + ", ".join(f"precision@{k} = {prec.precision.iloc[k - 1]:.2f}" for k in ks)
)
strong.head(10).round(3)

# %% [markdown]
# ### Figure: precision of the top-ranked strong perturbations

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
ax1.plot(prec["k"], prec["precision"], color="tab:red", label="Algorithm 1 ranking")
ax1.axhline(prec["baseline"].iloc[0], color="k", ls=":", label="random ranking")
ax1.set_xlabel("top k strongest perturbations")
ax1.set_ylabel("precision (fraction reproducible)")
ax1.set_ylim(0, 1.05)
ax1.legend(frameon=False, fontsize=8)
colors = np.where(strong["reproducible"], "tab:red", "lightgrey")
ax2.scatter(strong["score"], strong["replicate_correlation"], c=colors, s=14, edgecolor="k", lw=0.3)
ax2.axhline(
    strong["null_95"].median(), color="k", ls=":", lw=1, label="95th percentile, random groups"
)
ax2.set_xscale("log" if (strong["score"] > 0).all() else "symlog")
ax2.set_xlabel("Algorithm 1 score (sum of z over plates)")
ax2.set_ylabel("replicate correlation (median Pearson)")
ax2.legend(frameon=False, fontsize=8, loc="lower right")
ax2.set_title(f"Spearman rho = {rho:.2f}; red: reproducible", fontsize=9)
fig.suptitle(f"{profile_set}: strong perturbations vs replicate reproducibility ({replicate_by})",
             fontsize=10)  # fmt: skip
fig.tight_layout()
save_figure(fig, Path(figures_dir) / "fig_real_strong_precision")

# %% [markdown]
# ## Figure: PCA of the treatment profiles, coloured by mechanism
# Headline sphered treatment profiles, each scaled to unit length first (the metrics use
# cosine similarity, so the map shows directions, not the few very strong profiles); the
# `n_moas` mechanisms with the most treatments in colour, the others grey.

# %%
counts = treatments["Metadata_MoA"].value_counts()
shown = list(counts.index[:n_moas])
unit = x / np.linalg.norm(x, axis=1, keepdims=True)
xy = PCA(2, random_state=0).fit_transform(unit)
fig, ax = plt.subplots(figsize=(8.5, 5))
other = ~treatments["Metadata_MoA"].isin(shown).to_numpy()
if other.any():
    ax.scatter(*xy[other].T, s=12, color="lightgrey", label=f"other ({other.sum()} treatments)")
palette = plt.cm.tab10.colors if len(shown) <= 10 else plt.cm.tab20.colors
for i, name in enumerate(shown):
    m = (treatments["Metadata_MoA"] == name).to_numpy()
    short = name if len(name) <= 38 else name[:35] + "..."
    ax.scatter(*xy[m].T, s=22, color=palette[i % len(palette)], edgecolor="k", lw=0.3,
               label=f"{short} ({m.sum()})")  # fmt: skip
ax.set_xlabel("PC1 (unit-length profiles)")
ax.set_ylabel("PC2 (unit-length profiles)")
ax.set_title(f"{profile_set}: treatment profiles, {headline}", fontsize=9)
ax.legend(title="mechanism (treatments)", fontsize=7, title_fontsize=8, frameon=False,
          loc="center left", bbox_to_anchor=(1.01, 0.5))  # fmt: skip
fig.tight_layout()
save_figure(fig, Path(figures_dir) / "fig_real_moa_pca")

# %% [markdown]
# ## Summary

# %%
summary = {
    "profile_set": profile_set,
    "replicate_by": replicate_by,
    "headline": headline,
    "overview": {k: int(v) for k, v in overview.items()},
    "metrics": evaluation.set_index("representation")[list(METRICS)].to_dict("index"),
    "replicate_groups_retrieved": [int(rep_map.retrieved.sum()), len(rep_map)],
    "mechanisms_retrieved": [int(moa_map.retrieved.sum()), len(moa_map)],
    "strong": {"groups": len(strong), "reproducible": int(strong.reproducible.sum()),
               "spearman": float(rho),
               "precision_at": {k: float(prec.precision.iloc[k - 1]) for k in ks}},
    "seconds": {k: round(v, 1) for k, v in timings.items()},
}  # fmt: skip
write_json(summary, artifact(work_dir, "real_summary"))
print(pd.Series(summary["seconds"]).to_string())
