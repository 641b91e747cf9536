import numpy as np
import pandas as pd
import pytest

from i2r_utils.evaluation import (
    average_precisions,
    cosine_similarity,
    enrichment_intervals,
    evaluate_fold_spaces,
    evaluate_space,
    mean_average_precisions,
    nearest_neighbour_accuracy,
    odds_ratio_interval,
    pair_enrichment,
    query_enrichment,
    query_enrichment_table,
    replicate_average_precisions,
)

SEED = 0


def clustered(n_per=4, n_groups=3, noise=0.1, seed=SEED):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, 8))
    rows = []
    for g in range(n_groups):
        for i in range(n_per):
            x = centres[g] + noise * rng.normal(size=8)
            rows.append({"Metadata_Condition": f"C{g}{i}", "Metadata_Annotation": g,
                         **{f"f{j}": x[j] for j in range(8)}})  # fmt: skip
    return pd.DataFrame(rows)


def test_perfect_clusters_give_map_one_and_enrichment():
    df = clustered()
    ap = average_precisions(df)
    assert np.allclose(ap.average_precision, 1.0) and ap.n_pos_pairs.eq(3).all()
    res = evaluate_space(df, top=0.2)
    assert res["mAP"] == pytest.approx(1.0) and res["hits"] == res["n_top"]
    assert res["fold_enrichment"] > 10 and res["p_value"] < 0.01


def test_ap_matches_hand_computation():
    # query q: ranking by cosine = p1 (pos), n1, p2 (pos) -> AP = (1/1 + 2/3) / 2
    x = np.array([[1, 0], [0.99, 0.1], [0.9, 0.4], [0.5, 0.8]])
    df = pd.DataFrame(x, columns=["a", "b"]).assign(
        Metadata_Condition=["q", "p1", "n1", "p2"], Metadata_Annotation=[0, 0, 1, 0]
    )
    ap = average_precisions(df).set_index("Metadata_Condition").average_precision
    assert ap["q"] == pytest.approx((1 + 2 / 3) / 2)


def test_random_profiles_near_chance_and_enrichment_counts():
    df = clustered(n_per=10, noise=1e6)  # noise dominates: no structure
    res = evaluate_space(df)
    assert 0.15 < res["mAP"] < 0.55 and res["n_top"] == 4  # 1% of 435 pairs
    sim = np.array([[1, 0.9, 0.1], [0.9, 1, 0.2], [0.1, 0.2, 1]])
    same = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], bool)
    enr = pair_enrichment(sim, same, top=0.34)
    assert enr["hits"] == 1 and enr["n_top"] == 1 and enr["n_pairs"] == 3
    assert enr["fold_enrichment"] == pytest.approx((1.5 * 2.5) / (0.5 * 0.5))


def test_fold_spaces_use_their_own_queries():
    df = clustered()
    folds = pd.DataFrame(
        {"Metadata_Condition": df.Metadata_Condition, "Metadata_Fold": np.arange(len(df)) % 2}
    )
    single = evaluate_fold_spaces(df, folds, top=0.1)
    assert single.fold.tolist() == ["0", "1", "mean"] and single.n_queries.iloc[-1] == len(df)
    # fold space 1 is scrambled: only fold 1's queries suffer
    spaces = pd.concat([df.assign(Metadata_Fold=0), df.assign(Metadata_Fold=1)])
    feats = [c for c in df if c.startswith("f")]
    rng = np.random.default_rng(1)
    spaces.loc[spaces.Metadata_Fold == 1, feats] = rng.normal(size=(len(df), len(feats)))
    res = evaluate_fold_spaces(spaces, folds, top=0.1).set_index("fold")
    assert res.loc["0", "mAP"] == pytest.approx(1.0) and res.loc["1", "mAP"] < 0.9
    assert np.allclose(np.diag(cosine_similarity(df[feats].to_numpy())), 1.0)


def test_query_enrichment_counts_each_query_in_its_own_top():
    # 4 profiles; a-b same annotation, c-d same annotation; similarities by hand
    sim = np.array([[1, 0.9, 0.1, 0.2], [0.9, 1, 0.3, 0.8], [0.1, 0.3, 1, 0.4],
                    [0.2, 0.8, 0.4, 1]])  # fmt: skip
    lab = np.array([0, 0, 1, 1])
    same = lab[:, None] == lab[None, :]
    t = query_enrichment_table(sim, same, top=0.34).set_index("query")  # top 1 of 3
    assert t.n_top.eq(1).all() and t.hits.tolist() == [1, 1, 1, 0]  # d's top is b
    # a: hits 1 of top 1, 1 positive of 3 -> table [[1, 0], [0, 2]]: +0.5 (finite)
    assert t.loc[0, "odds_ratio"] == pytest.approx(1.5 * 2.5 / (0.5 * 0.5))
    assert t.loc[3, "odds_ratio"] == 0.0 and t.loc[3, "p_value"] == pytest.approx(1.0)
    assert t.loc[0, "p_value"] == pytest.approx(1 / 3)  # one-sided Fisher = hypergeometric
    res = query_enrichment(sim, same, top=0.34)
    assert res["hits"] == 3 and res["n_queries"] == 4
    assert res["fold_enrichment"] == pytest.approx(t.odds_ratio.mean())
    # candidates: forbidding a-b leaves a and b without positives (no longer queries)
    cand = ~np.eye(4, dtype=bool)
    cand[0, 1] = cand[1, 0] = False
    assert query_enrichment_table(sim, same, cand, top=0.34)["query"].tolist() == [2, 3]


def test_nearest_neighbour_accuracy_not_same_compound_and_batch():
    x = np.array([[1, 0], [0.99, 0.1], [0.9, 0.3], [0, 1], [0.1, 0.99]])
    moa = ["A", "A", "B", "B", None]
    comp = np.array(["c1", "c1", "c2", "c3", "c4"])
    allowed = nearest_neighbour_accuracy(x, moa).set_index("query")
    assert allowed.predicted.tolist() == ["A", "A", "A", "B"][:4] and len(allowed) == 4
    nsc = nearest_neighbour_accuracy(x, moa, comp[:, None] == comp).set_index("query")
    # rows 0 and 1 share a compound: their only same-MoA partner is excluded -> not scored
    assert nsc.index.tolist() == [2, 3] and nsc.loc[2, "predicted"] == "A"
    assert nsc.loc[3, "neighbour"] == 2 and nsc.loc[3, "correct"]


def test_replicate_average_precision_ranks_replicates_against_controls():
    x = np.array([[1, 0], [0.95, 0.2], [0.2, 1], [0.8, 0.6], [0.5, 0.5], [0, 1.0]])
    wells = pd.DataFrame(x, columns=["f1", "f2"]).assign(
        Metadata_Compound=["t", "t", "u", "u", "DMSO", "DMSO"],
        Metadata_Condition=["t", "t", "u", "u", "DMSO", "DMSO"],
    )
    ap = replicate_average_precisions(wells, "Metadata_Compound", "DMSO")
    assert len(ap) == 4 and ap.n_total_pairs.eq(3).all()  # 1 replicate + 2 controls
    assert ap.Metadata_Compound.tolist() == ["t", "t", "u", "u"]
    # well 0: its replicate (cos 0.98) before both controls -> AP 1; well 2 (0.2, 1): both
    # controls (cos 0.98, 0.83) before its replicate (0.75) -> AP 1/3
    assert ap.average_precision.iloc[0] == pytest.approx(1.0)
    assert ap.average_precision.iloc[2] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no control wells"):
        replicate_average_precisions(wells, "Metadata_Compound", "EMPTY")


def test_mean_average_precisions_retrieve_perfect_groups_only():
    df = clustered(n_per=6, n_groups=3, noise=0.05)
    df.loc[df.Metadata_Annotation == 2, ["f0", "f1", "f2"]] = (
        np.random.default_rng(3).normal(size=(6, 3)) * 100
    )  # group 2 scattered
    ap = average_precisions(df)
    out = mean_average_precisions(ap, "Metadata_Annotation", null_size=500).set_index(
        "Metadata_Annotation"
    )
    assert out.loc["0", "retrieved"] and out.loc["1", "retrieved"]
    assert out.loc["0", "mAP"] == pytest.approx(1.0) and out.loc["2", "mAP"] < 0.9
    assert set(out.columns) >= {"mnAP", "p_value", "corrected_p_value"}


def test_woolf_interval_by_hand_against_statsmodels_and_by_coverage():
    low, high = odds_ratio_interval(10, 20, 30, 40)
    se = np.sqrt(1 / 10 + 1 / 20 + 1 / 30 + 1 / 40)  # Woolf's standard error of log OR
    or_ = 10 * 40 / (20 * 30)
    assert (low, high) == pytest.approx((or_ * np.exp(-1.959964 * se), or_ * np.exp(1.959964 * se)))
    from statsmodels.stats.contingency_tables import Table2x2

    assert (low, high) == pytest.approx(
        Table2x2(np.array([[10, 20], [30, 40]])).oddsratio_confint()
    )
    # an empty cell: Haldane's +0.5 everywhere, as in the point estimate; still finite
    low0, high0 = odds_ratio_interval(7, 0, 59, 631)
    assert np.isfinite([low0, high0]).all() and low0 < (7.5 * 631.5) / (0.5 * 59.5) < high0
    with pytest.raises(ValueError, match="level"):
        odds_ratio_interval(1, 2, 3, 4, level=95)
    # coverage: 95 % intervals of binomial 2 x 2 tables cover the true odds ratio ~95 %
    rng = np.random.default_rng(SEED)
    p1, p0, n = 0.3, 0.1, 300
    a, c = rng.binomial(n, p1, 4000), rng.binomial(n, p0, 4000)
    lo, hi = odds_ratio_interval(a, n - a, c, n - c)
    truth = (p1 / (1 - p1)) / (p0 / (1 - p0))
    assert 0.93 < np.mean((lo < truth) & (truth < hi)) < 0.97


def test_enrichment_intervals_of_fold_spaces():
    df = clustered(n_per=6, n_groups=4, noise=0.8)
    folds = pd.DataFrame(
        {"Metadata_Condition": df.Metadata_Condition, "Metadata_Fold": np.arange(len(df)) % 3}
    )
    res = evaluate_fold_spaces(df, folds, top=0.05)
    both = pd.concat([res, evaluate_fold_spaces(df.sample(frac=1, random_state=1), folds)])
    out = enrichment_intervals(both.reset_index(drop=True))
    assert list(out.columns[-2:]) == ["fold_enrichment_low", "fold_enrichment_high"]
    assert (out.fold_enrichment_low < out.fold_enrichment).all()
    assert (out.fold_enrichment < out.fold_enrichment_high).all()
    r = out.iloc[0]  # a fold row: the Woolf interval of the table rebuilt from the counts
    c = r.n_positive_pairs - r.hits
    cells = (r.hits, r.n_top - r.hits, c, r.n_pairs - r.n_top - c)
    assert (r.fold_enrichment_low, r.fold_enrichment_high) == pytest.approx(
        odds_ratio_interval(*cells)
    )
    # the mean row: narrower, relative to its estimate, than a single fold's interval
    mean = out.iloc[3]
    assert mean.fold == "mean"
    width = np.log(out.fold_enrichment_high / out.fold_enrichment_low)
    assert width.iloc[3] < width.iloc[:3].max()
    # one fold: the mean row's interval is that fold's
    one = enrichment_intervals(res.iloc[[0]].assign(fold="0").pipe(
        lambda d: pd.concat([d, d.assign(fold="mean")], ignore_index=True)))  # fmt: skip
    assert one.fold_enrichment_low.iloc[1] == pytest.approx(one.fold_enrichment_low.iloc[0])
    with pytest.raises(ValueError, match="not the mean of its folds"):
        enrichment_intervals(res.assign(fold_enrichment=[1.0, 2.0, 3.0, 9.0]))
