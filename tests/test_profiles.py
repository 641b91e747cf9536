import numpy as np
import pandas as pd
import pytest

from i2r_utils.io import InputError
from i2r_utils.profiles import aggregate


def nuclei_table():
    rows = []
    for plate, offset in (("P1", 0.0), ("P2", 10.0)):
        for well, cond, shift in (("A01", "EMPTY", 0), ("A02", "EMPTY", 0), ("A03", "EMPTY", 0),
                                  ("B01", "X", 1.0)):  # fmt: skip
            for site in (1, 2):
                for v in (0.0, 1.0, 2.0):
                    rows.append((plate, well, site, cond, v + shift + offset))
    cols = ["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Condition", "f"]
    return pd.DataFrame(rows, columns=cols)


def test_median_then_mean():
    df = nuclei_table()
    df.loc[2, "f"] = 100.0  # an outlier nucleus does not move the image median
    img = aggregate(df, ["Metadata_Plate", "Metadata_Well", "Metadata_Site"], "median")
    assert img.f.iloc[0] == 1.0 and img.Metadata_Count.iloc[0] == 3


# --- fold-space profiles, sphering, strong perturbations ---------------------------------------
from i2r_utils.profiles import (  # noqa: E402
    build_profiles,
    condition_means,
    fit_sphering,
    load_sphering,
    strong_perturbations,
    well_profiles,
    zca_whitening,
)

SEED = 0


def screen_wells(n_feat=6, plates=("P1", "P2"), seed=SEED):
    """Well profiles with per-plate offsets, correlated control noise and one strong condition."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n_feat, n_feat))
    rows = []
    for plate in plates:
        offset = rng.normal(0, 3, n_feat)
        for w in range(12):
            cond = "EMPTY" if w < 6 else ("STRONG" if w < 8 else ("WEAK" if w < 10 else "NULL"))
            shift = {"EMPTY": 0, "STRONG": 4.0, "WEAK": 1.0, "NULL": 0}[cond]
            x = rng.normal(size=n_feat) @ mix + offset + shift
            meta = {
                "Metadata_Plate": plate,
                "Metadata_Well": f"W{w:02d}",
                "Metadata_Condition": cond,
            }
            rows.append({**meta, **{f"f{j}": x[j] for j in range(n_feat)}})
    return pd.DataFrame(rows)


def test_zca_matches_pycytominer():
    from pycytominer.operations.transform import Spherize

    x = np.random.default_rng(SEED).normal(size=(30, 5)) @ np.diag([5, 2, 1, 0.5, 0.1])
    mean, w = zca_whitening(x, 1e-3)
    ref = Spherize(epsilon=1e-3, method="ZCA").fit(pd.DataFrame(x))
    assert np.allclose((x - mean) @ w, ref.transform(pd.DataFrame(x)).to_numpy(), atol=1e-8)
    # fewer controls than features: pycytominer's rank completion, no blow-up
    few = np.random.default_rng(1).normal(size=(4, 8))
    mean, w = zca_whitening(few, 1e-2)
    ref = Spherize(epsilon=1e-2, method="ZCA").fit(pd.DataFrame(few))
    assert np.allclose(w, ref.W, atol=1e-8)


def test_sphering_whitens_controls_and_matches_zca_cor():
    from pycytominer.operations.transform import Spherize

    wells = screen_wells(n_feat=5, plates=("P1",))
    sph = fit_sphering(wells, lam=1e-6)
    out = sph.transform(wells)
    ctl = out[out.Metadata_Condition == "EMPTY"][sph.features].to_numpy()
    assert np.allclose(np.cov(ctl.T), np.eye(5), atol=1e-4)
    # one plate: standardise + ZCA is pycytominer's ZCA-cor fitted on the controls
    raw = wells[sph.features]
    ref = Spherize(epsilon=1e-6, method="ZCA-cor").fit(raw[wells.Metadata_Condition == "EMPTY"])
    assert np.allclose(out[sph.features].to_numpy(), ref.transform(raw).to_numpy(), atol=1e-6)


def test_sphering_removes_plate_offsets_and_roundtrips(tmp_path):
    wells = screen_wells()
    sph = fit_sphering(wells, lam=1e-2)
    out = sph.transform(wells)
    ctl = out[out.Metadata_Condition == "EMPTY"]
    assert np.allclose(ctl.groupby("Metadata_Plate")[sph.features].mean(), 0, atol=1e-9)
    path = sph.save(tmp_path / "sphering.npz")
    back = load_sphering(path)
    assert back.features == sph.features and back.lam == sph.lam
    assert np.allclose(back.transform(wells)[sph.features], out[sph.features])
    # the raw-space affine map equals the transform of a table without control rows
    strong = wells[wells.Metadata_Condition == "STRONG"].drop(columns="Metadata_Plate")
    via_map = (strong[sph.features].to_numpy() - back.mean) @ back.W
    assert np.allclose(via_map, back.transform(strong)[sph.features].to_numpy())
    with pytest.raises(Exception, match="feature columns"):
        back.transform(wells.drop(columns="f0"))


def test_well_profiles_and_condition_means():
    nuc = nuclei_table()
    wells = well_profiles(nuc)
    assert wells.Metadata_Nuclei.eq(6).all() and wells.Metadata_Images.eq(2).all()
    conds = condition_means(wells)
    assert conds.set_index("Metadata_Condition").Metadata_Wells.to_dict() == {"EMPTY": 6, "X": 2}
    assert conds.set_index("Metadata_Condition").f["X"] == pytest.approx(1.0 + 5.0 + 1.0)


def test_strong_perturbations_rank_the_strong_condition_first():
    wells = screen_wells()
    sph = fit_sphering(wells)
    ranks = strong_perturbations(sph.standardize(wells))
    assert ranks.Metadata_Condition.tolist()[0] == "STRONG" and "EMPTY" not in set(
        ranks.Metadata_Condition
    )
    assert ranks.n_plates.eq(2).all() and ranks["rank"].tolist() == [1, 2, 3]


def test_combine_blocks_weighs_blocks_alike():
    from i2r_utils.profiles import combine_blocks

    rng = np.random.default_rng(0)
    conds = ["A", "B", "C"]
    big = pd.DataFrame(rng.normal(size=(3, 100)), columns=[f"f{i}" for i in range(100)])
    big.insert(0, "Metadata_Condition", conds)
    small = pd.DataFrame(rng.normal(size=(3, 4)), columns=[f"s{i}" for i in range(4)])
    small.insert(0, "Metadata_Condition", conds[::-1])  # other row order: joined by condition
    out = combine_blocks({"cnn": big, "features": small})
    assert out["Metadata_Condition"].tolist() == conds
    assert [c for c in out.columns if c.startswith("cnn__")] == [f"cnn__f{i}" for i in range(100)]
    np.testing.assert_allclose(out["cnn__f3"], big["f3"] / 10)
    np.testing.assert_allclose(
        out["features__s1"], small.set_index("Metadata_Condition").loc[conds, "s1"] / 2
    )
    # each block's mean squared entry becomes its share: equal weight whatever its size
    for name, n in (("cnn", 100), ("features", 4)):
        block = out[[c for c in out.columns if c.startswith(name + "__")]].to_numpy()
        assert (block**2).sum(1).mean() == pytest.approx(
            ((big if name == "cnn" else small).iloc[:, 1:].to_numpy() ** 2).sum(1).mean() / n
        )
    with pytest.raises(InputError, match="no feature columns"):
        combine_blocks({"a": big[["Metadata_Condition"]]})


def test_translation_profiles_three_representations(tmp_path):
    from i2r_utils.io import write_table
    from i2r_utils.profiles import translation_profiles

    rng = np.random.default_rng(1)
    conds = ["EMPTY", "A", "B"]
    cnn = pd.concat(
        [pd.DataFrame({"Metadata_Fold": k, "Metadata_Condition": conds,
                       "cnn_0": rng.normal(size=3), "cnn_1": rng.normal(size=3)})
         for k in (0, 1)], ignore_index=True,
    )  # fmt: skip
    feats = pd.DataFrame({"Metadata_Condition": conds, "Nuclei_X": rng.normal(size=3)})
    with pytest.raises(InputError, match="cnn_condition_profiles"):
        translation_profiles(tmp_path, "features")
    write_table(cnn, tmp_path / "cnn_condition_profiles.parquet")
    with pytest.raises(InputError, match="features_condition_profiles"):
        translation_profiles(tmp_path, "both")
    write_table(feats, tmp_path / "features_condition_profiles.parquet")
    pd.testing.assert_frame_equal(translation_profiles(tmp_path, "cnn"), cnn)
    f = translation_profiles(tmp_path, "features")
    assert f.groupby("Metadata_Fold").size().to_dict() == {0: 3, 1: 3}
    assert f.loc[f.Metadata_Fold == 1, "Nuclei_X"].tolist() == feats["Nuclei_X"].tolist()
    b = translation_profiles(tmp_path, "both")
    assert list(b.columns) == ["Metadata_Fold", "Metadata_Condition", "cnn__cnn_0", "cnn__cnn_1",
                               "features__Nuclei_X"]  # fmt: skip
    row = b[(b.Metadata_Fold == 1) & (b.Metadata_Condition == "A")].iloc[0]
    src = cnn[(cnn.Metadata_Fold == 1) & (cnn.Metadata_Condition == "A")].iloc[0]
    assert row["cnn__cnn_1"] == pytest.approx(src["cnn_1"] / np.sqrt(2))
    assert row["features__Nuclei_X"] == pytest.approx(feats.loc[1, "Nuclei_X"])
    with pytest.raises(InputError, match="unknown representation"):
        translation_profiles(tmp_path, "pixels")


def test_nucleus_means_are_the_plain_mean_without_the_control():
    from i2r_utils.profiles import condition_means, nucleus_means, well_profiles

    rng = np.random.default_rng(3)
    nuclei = pd.DataFrame(
        {
            "Metadata_Plate": ["P1"] * 7,
            "Metadata_Well": ["A01", "A01", "A02", "B01", "B01", "B01", "C01"],
            "Metadata_Site": [1, 2, 1, 1, 1, 2, 1],
            "Metadata_Condition": ["X", "X", "X", "Y", "Y", "Y", "EMPTY"],
            "cnn_0": rng.normal(size=7).astype(np.float32),
            "cnn_1": rng.normal(size=7).astype(np.float32),
        }
    )
    out = nucleus_means(nuclei)
    assert list(out.columns) == ["Metadata_Condition", "Metadata_Nuclei", "cnn_0", "cnn_1"]
    assert out["Metadata_Condition"].tolist() == ["X", "Y"]  # the control is left out
    assert out["Metadata_Nuclei"].tolist() == [3, 3] and out["cnn_0"].dtype == np.float64
    x = nuclei[nuclei.Metadata_Condition == "X"][["cnn_0", "cnn_1"]].to_numpy(np.float64)
    assert np.allclose(out.iloc[0][["cnn_0", "cnn_1"]].to_numpy(float), x.mean(0))
    # not the image -> well -> condition chain (median of images, mean of wells)
    chain = condition_means(well_profiles(nuclei))
    assert not np.allclose(chain.set_index("Metadata_Condition").loc["X", "cnn_0"],
                           out.iloc[0]["cnn_0"])  # fmt: skip


def test_sphering_convention_is_fitted_saved_and_checked(tmp_path):
    wells = screen_wells()
    pc, dp = fit_sphering(wells, lam=1e-2), fit_sphering(wells, 1e-2, convention="deepprofiler")
    assert pc.convention == "pycytominer" and dp.convention == "deepprofiler"
    assert not np.allclose(pc.zca_w, dp.zca_w)
    back = load_sphering(dp.save(tmp_path / "dp.npz"))
    assert back.convention == "deepprofiler" and np.allclose(back.zca_w, dp.zca_w)
    ps = build_profiles(wells, 1e-2, convention="deepprofiler")
    assert ps.sphering.convention == "deepprofiler"
    with pytest.raises(InputError, match="sphering convention 'zca' unknown"):
        fit_sphering(wells, 1e-2, convention="zca")
