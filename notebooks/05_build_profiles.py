# %% [markdown]
# # 05 Build and evaluate profiles: CNN fold spaces, hand-crafted features, untrained baseline
# For each representation, nucleus -> image (median) -> well (mean) -> condition (mean), then
# batch correction: every plate standardised to its `EMPTY` wells and a ZCA sphering transform
# fitted on the control wells (pycytominer's `Spherize(ZCA)` convention, regulariser
# `sphering_lambda`). Representations:
#
# * **trained encoder**: one profile space per fold (`encoders/fold<k>/embeddings.parquet`);
#   profiles of different fold spaces are *not comparable*, so each space gets its own
#   sphering transform and is evaluated on its own held-out conditions;
# * **hand-crafted features** (`nuclei/features/<plate>.parquet`, `Nuclei_*` columns);
# * **untrained encoder**: the same ResNet18, randomly initialised, same pipeline.
#
# Evaluation (thesis metrics, `i2r_utils.evaluation`): mAP of retrieving conditions of the
# same annotation (network community of the over-expressed gene, `data_dir/truth/genes.csv`),
# folds of enrichment and hits in the top 1 % of pairs; queries of fold space k are the
# conditions of fold k, the numbers are averaged over spaces. Also the strong-perturbation
# ranking (thesis Algorithm 1).
#
# Produces, under `work_dir/profiles/`: `fold_assignment.csv`, `cnn_condition_profiles.parquet`
# (`Metadata_Fold`, `Metadata_HeldOut`, `Metadata_Condition`, ..., `cnn_*`; sphered),
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
sphering_lambda = 0.01  # ZCA regulariser added to the control singular values
seed = 0  # random seed of the fold assignment (as in notebook 04) and the baselines

# %%
from pathlib import Path

import numpy as np
import pandas as pd

from i2r_utils.encoder import (
    EncoderParams,
    fold_assignment,
    read_encoder_info,
    untrained_embeddings,
)
from i2r_utils.evaluation import evaluate_fold_spaces, plot_profile_evaluation, plot_profile_map
from i2r_utils.io import InputError, read_table, sha256_file, write_table
from i2r_utils.nuclei import load_crops
from i2r_utils.plotting import save_figure
from i2r_utils.profiles import build_profiles, strong_perturbations

work = Path(work_dir)
prof_dir = work / "profiles"
nuclei = read_table(work / "nuclei" / "nuclei.parquet")
impactful = read_table(work / "screen" / "impactful.csv")["Metadata_Condition"].astype(str).tolist()
folds = fold_assignment(nuclei["Metadata_Condition"], n_folds, seed, impactful)
infos = [read_encoder_info(work / "encoders" / f"fold{k}") for k in range(n_folds)]
for k, info in enumerate(infos):
    expected = sorted(folds.loc[folds.Metadata_Fold == k, "Metadata_Condition"])
    if sorted(info["held_out"]) != expected:
        raise InputError(
            f"{work / 'encoders' / f'fold{k}' / 'encoder.json'}: held-out conditions differ from "
            f"the fold assignment (n_folds={n_folds}, seed={seed}); rerun notebook 04 for every "
            "fold with the same n_folds and seed."
        )
write_table(folds, prof_dir / "fold_assignment.csv")
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
# ## Trained encoder: one profile space per fold

# %%
cnn_wells, cnn_conds, sets = [], [], {}
for k in range(n_folds):
    emb = read_table(work / "encoders" / f"fold{k}" / "embeddings.parquet")
    ps = build_profiles(emb, sphering_lambda)
    ps.sphering.save(prof_dir / f"sphering_fold{k}.npz")
    held = set(infos[k]["held_out"])
    for df, out in ((ps.wells_after, cnn_wells), (ps.conditions_after, cnn_conds)):
        df = df.copy()
        df.insert(0, "Metadata_Fold", k)
        df.insert(1, "Metadata_HeldOut", df["Metadata_Condition"].isin(held))
        out.append(df)
    sets[f"fold{k}"] = ps
cnn_wells = pd.concat(cnn_wells, ignore_index=True)
cnn_conds = pd.concat(cnn_conds, ignore_index=True)
write_table(cnn_wells, prof_dir / "cnn_well_profiles.parquet")
write_table(cnn_conds, prof_dir / "cnn_condition_profiles.parquet")
print(f"{len(cnn_conds)} condition profiles in {n_folds} fold spaces, {cnn_conds.shape[1]} columns")

# %% [markdown]
# ## Hand-crafted features and the untrained encoder

# %%
feat_files = sorted((work / "nuclei" / "features").glob("*.parquet"))
if not feat_files:
    raise InputError(f"{work / 'nuclei' / 'features'}: no feature tables; run notebook 01.")
features = pd.concat([read_table(p) for p in feat_files], ignore_index=True)
feat_ps = build_profiles(features, sphering_lambda)
feat_ps.sphering.save(prof_dir / "sphering_features.npz")
write_table(feat_ps.wells_after, prof_dir / "features_well_profiles.parquet")
write_table(feat_ps.conditions_after, prof_dir / "features_condition_profiles.parquet")

crops = load_crops(work / "nuclei", nuclei)
params = EncoderParams(**{**infos[0]["params"], "seed": seed})
untrained = untrained_embeddings(
    crops, nuclei, params, work / "encoders" / "untrained",
    data_key=sha256_file(work / "nuclei" / "nuclei.parquet"),
)  # fmt: skip
unt_ps = build_profiles(untrained, sphering_lambda)
unt_ps.sphering.save(prof_dir / "sphering_untrained.npz")
write_table(unt_ps.conditions_after, prof_dir / "untrained_condition_profiles.parquet")
print(f"hand-crafted: {len(feat_ps.sphering.features)} features; untrained: "
      f"{len(unt_ps.sphering.features)} dimensions")  # fmt: skip

# %% [markdown]
# ## Strong perturbations (thesis Algorithm 1) on sphered well profiles
# A condition's CNN score comes from the fold space in which it was held out.

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
write_table(ranks, prof_dir / "strong_perturbations.csv")
n_imp = int(ranks.Metadata_Impactful.sum())
print(
    f"impactful conditions among the top {n_imp} strongest: hand-crafted "
    f"{int(ranks.nsmallest(n_imp, 'features_rank').Metadata_Impactful.sum())}, "
    f"CNN {int(ranks.nsmallest(n_imp, 'cnn_rank').Metadata_Impactful.sum())} (of {n_imp})"
)
ranks.head(10)

# %% [markdown]
# ## Profile evaluation: mAP, folds of enrichment, hits in the top 1 %

# %%
genes_path = Path(data_dir) / "truth" / "genes.csv"
if not genes_path.is_file():
    print(f"{genes_path} not found: no annotation, profile evaluation skipped")
else:
    community = read_table(genes_path).set_index("gene")["community"]

    def annotate(df):
        return df.assign(Metadata_Annotation=df["Metadata_Condition"].map(community))

    spaces = {
        "hand-crafted features": feat_ps,
        "untrained ResNet18": unt_ps,
    }
    rows = []
    for name, ps in spaces.items():
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
    evaluation = pd.concat(rows, ignore_index=True)
    evaluation["chance_mAP"] = float(np.mean(chance))
    cols = ["representation", "sphering", "fold", "mAP", "fold_enrichment", "hits", "p_value"]
    evaluation = evaluation[cols + [c for c in evaluation if c not in cols]]
    write_table(evaluation, prof_dir / "evaluation.csv")
    summary = evaluation[evaluation.fold == "mean"]
    fig = plot_profile_evaluation(summary, chance_map=float(np.mean(chance)))
    save_figure(fig, Path(figures_dir) / "fig_profile_evaluation")
    maps = {
        "hand-crafted features": annotate(feat_ps.conditions_after),
        "untrained ResNet18": annotate(unt_ps.conditions_after),
        "trained ResNet18, fold-0 space": annotate(cnn_conds[cnn_conds.Metadata_Fold == 0]),
    }
    maps = {k: v[v.Metadata_Condition != "EMPTY"] for k, v in maps.items()}
    fig2 = plot_profile_map(maps)
    save_figure(fig2, Path(figures_dir) / "fig_profile_map")
    print(f"chance mAP {np.mean(chance):.3f}")
    display_cols = ["representation", "sphering", "mAP", "fold_enrichment", "hits", "n_queries"]
    print(summary[display_cols].round(3).to_string(index=False))
