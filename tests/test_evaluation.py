import numpy as np
import pandas as pd
import pytest

from i2r_utils.evaluation import (
    average_precisions,
    cosine_similarity,
    evaluate_fold_spaces,
    evaluate_space,
    pair_enrichment,
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
