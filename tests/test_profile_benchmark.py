"""Evaluation of real profile sets: metrics, shuffled baseline, sphering sweep, Algorithm 1.

The real-data tests use BBBC021 restricted to three mechanisms (69 treated wells and the
330 DMSO wells), and to a few features where copairs runs several times.
"""

import numpy as np
import pandas as pd
import pytest

from i2r_utils.columns import feature_columns
from i2r_utils.evaluation import cosine_similarity
from i2r_utils.profile_benchmark import (
    METRICS,
    annotated_treatments,
    evaluate_profiles,
    precision_at_k,
    replicate_correlation,
    shuffle_labels,
    sphering_sweep,
    strong_vs_replicates,
)
from i2r_utils.profiles import fit_sphering
from i2r_utils.realprofiles import CONTROL, load_bbbc021

SEED = 0


@pytest.fixture(scope="module")
def subset(shared_data):
    wells = load_bbbc021(shared_data / "profiles_bbbc021_wellmean")
    keep = ["Actin disruptors", "Aurora kinase inhibitors", "Cholesterol-lowering"]
    wells = wells[wells.Metadata_MoA.isin(keep) | (wells.Metadata_Condition == CONTROL)]
    wells = wells.reset_index(drop=True)
    return fit_sphering(wells, 1e-2, CONTROL).standardize(wells)


def few_features(wells, n=60):
    """The table with its first ``n`` features only (faster copairs runs)."""
    feats = feature_columns(wells)
    return wells[[c for c in wells if c not in feats] + feats[:n]]


def test_metrics_on_real_treatments_agree_with_hand_computation(subset):
    res = evaluate_profiles(subset, "Metadata_Condition")
    assert set(METRICS) <= set(res) and res["replicate_groups"] == 23
    t = annotated_treatments(subset)
    x = t[feature_columns(t)].to_numpy()
    comp = t.Metadata_Compound.to_numpy()
    sim = np.where(comp[:, None] == comp, -np.inf, cosine_similarity(x))
    nn_moa = t.Metadata_MoA.to_numpy()[sim.argmax(1)]
    assert res["nsc_accuracy"] == pytest.approx(np.mean(nn_moa == t.Metadata_MoA.to_numpy()))
    # about 20 candidates per query: its top 1 % is its nearest neighbour, so the per-query
    # hits are the correct NSC calls
    assert res["query_hits"] == round(res["nsc_accuracy"] * res["nsc_n"])
    assert res["nsb_n"] < res["nsc_n"]  # Cholesterol-lowering: one batch, not scored
    assert res["replicate_mAP"] > 0.9 and res["moa_mAP"] > 0.8


def test_shuffled_labels_keep_compounds_whole_and_fall_to_chance(subset):
    subset = few_features(subset)
    shuffled, col = shuffle_labels(subset, "Metadata_Condition", np.random.default_rng(SEED))
    treated = shuffled[shuffled.Metadata_Condition != CONTROL]
    assert treated.groupby("Metadata_Compound").Metadata_MoA.nunique().max() == 1
    assert sorted(treated[col]) == sorted(treated.Metadata_Condition)
    assert (treated[col] != treated.Metadata_Condition).mean() > 0.8
    assert (shuffled.loc[shuffled.Metadata_Condition == CONTROL, col] == CONTROL).all()
    res = evaluate_profiles(shuffled, col)
    real = evaluate_profiles(subset, "Metadata_Condition")
    assert res["replicate_mAP"] < real["replicate_mAP"] - 0.2
    assert res["nsc_accuracy"] < real["nsc_accuracy"]


def test_sphering_sweep_covers_both_conventions(subset):
    sweep = sphering_sweep(few_features(subset, 40), "Metadata_Condition", [1e-3, 1.0])
    assert sweep[["convention", "lam"]].values.tolist() == [
        ["pycytominer", 1e-3], ["pycytominer", 1.0], ["deepprofiler", 1e-3], ["deepprofiler", 1.0]
    ]  # fmt: skip
    dp = sweep[sweep.convention == "deepprofiler"].mean_norm.to_numpy()
    assert dp[0] > 2 * dp[1]  # lambda on the variances shrinks weak directions
    assert sweep.replicate_mAP.between(0.5, 1).all()


def synthetic_wells(seed=SEED):
    """Two plates; groups A (strong, reproducible), B (weaker, reproducible), C, D (noise)."""
    rng = np.random.default_rng(seed)
    shifts = {"A": rng.normal(size=20) * 3, "B": rng.normal(size=20), "C": 0, "D": 0}
    rows = []
    for plate in ("P1", "P2"):
        for cond, n in (("DMSO", 8), ("A", 2), ("B", 2), ("C", 2), ("D", 2)):
            for _ in range(n):
                x = rng.normal(size=20) + (0 if cond == "DMSO" else shifts[cond])
                meta = {"Metadata_Plate": plate, "Metadata_Condition": cond,
                        "Metadata_Compound": cond}  # fmt: skip
                rows.append({**meta, **{f"f{j}": x[j] for j in range(20)}})
    return pd.DataFrame(rows)


def test_strong_perturbations_against_replicate_correlation():
    wells = synthetic_wells()
    corr = replicate_correlation(wells, "Metadata_Compound", n_null=200).set_index(
        "Metadata_Compound"
    )
    assert corr.n_wells.eq(4).all() and corr.reproducible.tolist() == [True, True, False, False]
    strong = strong_vs_replicates(wells, "Metadata_Compound", n_null=200)
    assert strong.Metadata_Compound.tolist()[:2] == ["A", "B"] and strong["rank"].tolist() == [
        1, 2, 3, 4
    ]  # fmt: skip
    prec = precision_at_k(strong)
    assert prec.precision.tolist() == [1.0, 1.0, 2 / 3, 0.5] and prec.baseline.eq(0.5).all()
    with pytest.raises(ValueError, match="no replicate group"):
        replicate_correlation(wells.drop_duplicates("Metadata_Compound"), "Metadata_Compound")
