import numpy as np
import pandas as pd
import pytest

from i2r_utils.columns import CONTROL
from i2r_utils.screen import (
    call_impactful,
    call_precision_recall,
    elbow_threshold,
    fold_assignment,
    group_keys,
    grouped_cv_splits,
    screen_conditions,
    select_impactful,
)

SHIFTED = {"GENE_A": 1.5, "GENE_B": 1.0}
NULL = ["GENE_N1", "GENE_N2", "GENE_N3"]


def synthetic_table(seed=0, n_per_well=40, n_features=12, well_sd=0.1, shifted=SHIFTED):
    """2 plates; each condition in 2 wells per plate; control in 4 wells per plate.

    Well names repeat across plates (A01 on P1 and P2 are different wells).
    """
    rng = np.random.default_rng(seed)
    rows = []
    conds = {CONTROL: 4, **dict.fromkeys([*shifted, *NULL], 2)}
    for plate in ["P1", "P2"]:
        w = 0
        for cond, n_wells in conds.items():
            for _ in range(n_wells):
                w += 1
                well = f"W{w:02d}"
                x = rng.normal(0, 1, (n_per_well, n_features))
                x += rng.normal(0, well_sd, n_features)  # well effect
                x[:, :3] += shifted.get(cond, 0.0)
                df = pd.DataFrame(x, columns=[f"Nuclei_F_{i}" for i in range(n_features)])
                df.insert(0, "Metadata_Plate", plate)
                df.insert(1, "Metadata_Well", well)
                df.insert(2, "Metadata_Condition", cond)
                rows.append(df)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def table():
    return synthetic_table()


@pytest.fixture(scope="module")
def results(table):
    return screen_conditions(table, progress=False)


def test_shifted_high_null_chance(results):
    res = results.set_index("Metadata_Condition")
    assert set(res.index) == {*SHIFTED, *NULL}
    assert res.loc["GENE_A", "balanced_accuracy"] > 0.85
    assert res.loc["GENE_B", "balanced_accuracy"] > 0.75
    for c in NULL:
        assert 0.35 < res.loc[c, "balanced_accuracy"] < 0.65
    # sorted by decreasing score, shifted ones first
    assert list(results["Metadata_Condition"][:2]) == ["GENE_A", "GENE_B"]
    assert (res["n_folds"] == 4).all()
    assert (res["n_groups"] == 4).all() and (res["n_groups_control"] == 8).all()
    assert (res["n_nuclei"] == 160).all() and (res["n_nuclei_control"] == 160).all()
    assert results.attrs["group_cols"] == ["Metadata_Plate", "Metadata_Well"]


def test_deterministic_and_independent_of_other_conditions(table, results):
    again = screen_conditions(table, progress=False)
    pd.testing.assert_frame_equal(results, again)
    only_a = screen_conditions(table, conditions=["GENE_A"], progress=False)
    pd.testing.assert_frame_equal(
        only_a, results[results["Metadata_Condition"] == "GENE_A"].reset_index(drop=True)
    )
    other = screen_conditions(table, seed=1, progress=False)
    assert not other["balanced_accuracy"].equals(results["balanced_accuracy"])


def test_group_keys_combine_plate_and_well(table):
    g, cols = group_keys(table)
    assert cols == ["Metadata_Plate", "Metadata_Well"]
    assert np.unique(g).size == table[cols].drop_duplicates().shape[0] == 2 * 14
    g_well, _ = group_keys(table, "Metadata_Well")
    assert np.unique(g_well).size == 14  # well names alone collapse the two plates


def test_grouped_splitter_never_shares_a_well(table):
    groups, _ = group_keys(table)
    y = (table["Metadata_Condition"] != CONTROL).to_numpy(int)
    splits = grouped_cv_splits(y, groups, n_splits=4, seed=0)
    assert len(splits) == 4
    seen = np.zeros(len(y), int)
    for tr, te in splits:
        assert set(groups[tr]).isdisjoint(groups[te])
        assert set(y[te]) == {0, 1}
        seen[te] += 1
    assert (seen == 1).all()  # every nucleus tested exactly once
    with pytest.raises(ValueError, match="n_splits"):
        grouped_cv_splits(y, groups, n_splits=100)


def test_grouping_prevents_well_leakage():
    # null conditions with strong well effects: grouped CV stays near chance
    df = synthetic_table(seed=3, well_sd=1.0, shifted={})
    res = screen_conditions(df, progress=False)
    assert res["balanced_accuracy"].mean() < 0.7


def test_max_nuclei_control_ratio_and_random_forest(table):
    res = screen_conditions(
        table,
        max_nuclei_per_condition=50,
        control_ratio=2.0,
        classifier="random_forest",
        conditions=["GENE_A", "GENE_N1"],
        progress=False,
    ).set_index("Metadata_Condition")
    assert (res["n_nuclei"] == 50).all() and (res["n_nuclei_control"] == 100).all()
    assert res.loc["GENE_A", "balanced_accuracy"] > 0.8
    assert 0.3 < res.loc["GENE_N1", "balanced_accuracy"] < 0.7


def test_missing_values_are_imputed(table):
    df = table.copy()
    df.loc[::7, "Nuclei_F_0"] = np.nan
    df["Nuclei_F_allnan"] = np.nan
    res = screen_conditions(df, conditions=["GENE_A"], progress=False)
    assert res["balanced_accuracy"].iloc[0] > 0.85
    assert res.attrs["dropped_features"] == ["Nuclei_F_allnan"]


def test_errors(table):
    with pytest.raises(ValueError, match="no control rows.*control="):
        screen_conditions(table, control="CTRL", progress=False)
    one_well = table[
        (table["Metadata_Condition"] != "GENE_B")
        | ((table["Metadata_Plate"] == "P1") & (table["Metadata_Well"] == "W07"))
    ]
    assert one_well.query("Metadata_Condition == 'GENE_B'")["Metadata_Well"].nunique() == 1
    with pytest.raises(ValueError, match="condition 'GENE_B' has nuclei from only 1 group"):
        screen_conditions(one_well, progress=False)
    bad = table.assign(Nuclei_text="x")
    with pytest.raises(ValueError, match="non-numeric"):
        screen_conditions(bad, progress=False)
    with pytest.raises(ValueError, match="classifier"):
        screen_conditions(table, classifier="svm", progress=False)
    with pytest.raises(ValueError, match="group column"):
        screen_conditions(table, group_col="Metadata_Field", progress=False)


def test_elbow_known_curve():
    curve = [0.95, 0.93, 0.9, 0.55, 0.53, 0.52, 0.51, 0.5]
    rng = np.random.default_rng(0)
    assert elbow_threshold(rng.permutation(curve)) == 0.55
    # a longer tail: 5 hits, 45 near chance
    scores = np.r_[np.linspace(0.95, 0.8, 5), np.linspace(0.6, 0.48, 45)]
    assert elbow_threshold(scores) == pytest.approx(0.6)
    assert elbow_threshold([0.7, 0.7, 0.7]) == 0.7
    assert elbow_threshold([0.9, np.nan, 0.6, 0.5, 0.49]) == 0.6
    with pytest.raises(ValueError, match="at least 3"):
        elbow_threshold([0.9, 0.5])


def test_call_impactful(results):
    called = call_impactful(results)
    assert called.attrs["impactful_threshold"] == elbow_threshold(results["balanced_accuracy"])
    hits = set(called.loc[called["impactful"], "Metadata_Condition"])
    assert hits == set(SHIFTED)
    assert called["impactful"].dtype == bool
    fixed = call_impactful(results, threshold=0.99)
    assert not fixed["impactful"].any()
    assert "impactful" not in results  # input untouched


def ranked(scores):
    return pd.DataFrame(
        {"Metadata_Condition": [f"G{i}" for i in range(len(scores))], "balanced_accuracy": scores}
    )


def test_select_impactful_rules_and_fallback():
    res = ranked([0.95, 0.5, 0.93, 0.52, 0.9, 0.55, 0.51, 0.53])
    elbow = select_impactful(res)
    assert elbow.attrs["threshold_rule"] == "elbow" and not elbow.attrs["fallback"]
    assert elbow.attrs["impactful_threshold"] == 0.55
    assert elbow.loc[elbow.impactful, "Metadata_Condition"].tolist() == ["G0", "G2", "G4"]
    assert elbow["balanced_accuracy"].is_monotonic_decreasing
    fixed = select_impactful(res, "0.52", min_conditions=0)  # string from a config file
    assert fixed.attrs["threshold_rule"] == "fixed" and fixed.impactful.sum() == 5
    with pytest.warns(UserWarning, match="fallback"):
        fb = select_impactful(res, 0.94, min_conditions=3)
    assert fb.attrs["fallback"] and fb.loc[fb.impactful, "Metadata_Condition"].tolist() == [
        "G0",
        "G2",
        "G4",
    ]
    ties = ranked([0.6, 0.6, 0.6, 0.6])
    with pytest.warns(UserWarning):
        called = select_impactful(ties, 0.9, min_conditions=2)
    assert called.loc[called.impactful, "Metadata_Condition"].tolist() == ["G0", "G1"]
    with pytest.raises(ValueError, match="elbow"):
        select_impactful(res, "knee")


def test_call_precision_recall_hand_counted():
    called = ranked([0.9, 0.8, 0.7, 0.6, 0.5]).assign(impactful=[True, True, True, False, False])
    truth = pd.DataFrame(
        {
            "Metadata_Condition": [CONTROL, "G0", "G1", "G2", "G3", "G4"],
            "has_phenotype": [False, True, False, True, True, False],
        }
    )
    pr = call_precision_recall(called, truth)
    assert (pr["tp"], pr["fp"], pr["fn"], pr["tn"]) == (2, 1, 1, 1)
    assert pr["precision"] == pytest.approx(2 / 3) and pr["recall"] == pytest.approx(2 / 3)
    assert pr["false_positives"] == ["G1"] and pr["false_negatives"] == ["G3"]
    none = call_precision_recall(called.assign(impactful=False), truth)
    assert np.isnan(none["precision"]) and none["recall"] == 0
    with pytest.raises(ValueError, match="not in the truth"):
        call_precision_recall(ranked([0.9]).assign(impactful=True), truth.iloc[:1])


def test_fold_assignment_partitions_and_loo():
    conds = [CONTROL, "A", "B", "C", "D", "E", "N1", "N2"] * 3
    fa = fold_assignment(conds, 3, seed=1, impactful=["A", "B", "C", "D", "E"])
    assert sorted(fa.Metadata_Condition) == ["A", "B", "C", "D", "E", "N1", "N2"]
    assert fa.Metadata_Fold.value_counts().max() - fa.Metadata_Fold.value_counts().min() <= 1
    imp_per_fold = fa[fa.Metadata_Impactful].Metadata_Fold.value_counts()
    assert imp_per_fold.max() - imp_per_fold.min() <= 1  # classes spread evenly
    assert fa.equals(fold_assignment(conds, 3, seed=1, impactful=["A", "B", "C", "D", "E"]))
    loo = fold_assignment(conds, 7, seed=0)
    assert loo.Metadata_Fold.nunique() == 7 and loo.Metadata_Fold.value_counts().eq(1).all()
    with pytest.raises(ValueError, match="n_folds"):
        fold_assignment(conds, 8)
    assert list(fa.columns) == ["Metadata_Condition", "Metadata_Fold", "Metadata_Impactful"]
