import re

import numpy as np
import pandas as pd
import pytest
from pycytominer.cyto_utils import infer_cp_features

from i2r_utils.features import (
    FEATURE_FAMILIES,
    FEATURE_NAME_PATTERN,
    extract_features,
    feature_names,
)

SHAPE = (100, 100)


def disk_labels(r=20, center=(50, 50), shape=SHAPE, value=1):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (((yy - center[0]) ** 2 + (xx - center[1]) ** 2) <= r**2).astype(np.int32) * value


def gaussian_spots(centers, amp=150.0, sigma=1.5, shape=SHAPE):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape)
    for y, x in centers:
        out += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return out


@pytest.fixture(scope="module")
def two_nuclei():
    rng = np.random.default_rng(1)
    labels = disk_labels(12, (30, 30), shape=(80, 120)) + disk_labels(
        15, (40, 85), shape=(80, 120), value=3
    )
    image = np.where(labels > 0, 300.0, 10.0) + rng.normal(0, 5, labels.shape)
    image += gaussian_spots([(28, 28), (45, 80), (35, 90)], shape=labels.shape)
    return np.clip(image, 0, None).astype(np.uint16), labels


def test_disk_shape_features():
    r = 20
    labels = disk_labels(r)
    image = np.where(labels > 0, 100.0, 0.0)
    df = extract_features(image, labels)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["Metadata_ObjectNumber"] == 1
    assert row["Nuclei_AreaShape_Area"] == pytest.approx(np.pi * r**2, rel=0.02)
    assert row["Nuclei_AreaShape_Eccentricity"] < 0.05
    assert row["Nuclei_AreaShape_Solidity"] > 0.95
    assert row["Nuclei_AreaShape_FormFactor"] == pytest.approx(1.0, abs=0.12)
    assert row["Nuclei_AreaShape_AspectRatio"] == pytest.approx(1.0, abs=0.02)
    assert row["Nuclei_AreaShape_MajorAxisLength"] == pytest.approx(2 * r, rel=0.03)
    # uniform nucleus: constant intensities, no foci, no texture contrast
    assert row["Nuclei_Intensity_Mean"] == pytest.approx(100.0)
    assert row["Nuclei_Intensity_Std"] == pytest.approx(0.0, abs=1e-9)
    assert row["Nuclei_Intensity_Skewness"] == 0.0
    assert row["Nuclei_Intensity_Integrated"] == pytest.approx(100.0 * row["Nuclei_AreaShape_Area"])
    assert row["Nuclei_Chromatin_FociCount"] == 0
    assert row["Nuclei_Texture_Contrast_1"] == 0.0
    assert row["Nuclei_Texture_Correlation_1"] == 1.0
    # for a uniform nucleus the relative intensity of every ring is 1
    rel = row.filter(like="RadialRel").to_numpy(dtype=float)
    np.testing.assert_allclose(rel, 1.0)
    assert row.filter(like="RadialFrac").sum() == pytest.approx(1.0)


def test_ellipse_eccentricity_and_aspect_ratio():
    yy, xx = np.mgrid[:100, :100]
    labels = ((((yy - 50) / 30.0) ** 2 + ((xx - 50) / 15.0) ** 2) <= 1).astype(np.int32)
    df = extract_features(np.ones(labels.shape), labels, families=["AreaShape"])
    ecc = np.sqrt(1 - (15 / 30) ** 2)
    assert df["Nuclei_AreaShape_Eccentricity"].iloc[0] == pytest.approx(ecc, abs=0.02)
    assert df["Nuclei_AreaShape_AspectRatio"].iloc[0] == pytest.approx(2.0, rel=0.03)


@pytest.mark.parametrize("n_spots", [0, 1, 3, 6])
@pytest.mark.parametrize("method", ["tophat", "threshold"])
def test_foci_count(n_spots, method):
    rng = np.random.default_rng(n_spots)
    labels = disk_labels(22)
    centers = [(50, 50), (38, 42), (62, 58), (40, 60), (60, 40), (50, 66)][:n_spots]
    image = np.where(labels > 0, 100.0, 5.0) + rng.normal(0, 3, SHAPE)
    image += gaussian_spots(centers)
    df = extract_features(image, labels, families=["Chromatin"], foci_method=method)
    row = df.iloc[0]
    assert row["Nuclei_Chromatin_FociCount"] == n_spots
    if n_spots:
        assert row["Nuclei_Chromatin_FociIntensityRatio"] > 1.5
        assert 0 < row["Nuclei_Chromatin_FociAreaFraction"] < 0.2
        assert 0 <= row["Nuclei_Chromatin_FociBorderDistance"] <= 1
    else:
        assert row["Nuclei_Chromatin_FociAreaFraction"] == 0
        assert np.isnan(row["Nuclei_Chromatin_FociIntensityRatio"])


def test_foci_peripheral_bias():
    labels = disk_labels(22)
    base = np.where(labels > 0, 100.0, 5.0)
    central = extract_features(base + gaussian_spots([(50, 50)]), labels, families=["Chromatin"])
    rim = extract_features(base + gaussian_spots([(50, 31)]), labels, families=["Chromatin"])
    d_central = central["Nuclei_Chromatin_FociBorderDistance"].iloc[0]
    d_rim = rim["Nuclei_Chromatin_FociBorderDistance"].iloc[0]
    assert d_central > 0.8 and d_rim < 0.3


def test_bright_rim_has_more_outer_ring_intensity():
    labels = disk_labels(20)
    dist = np.hypot(*(np.mgrid[:100, :100] - 50))
    uniform = np.where(labels > 0, 100.0, 0.0)
    rim = np.where(labels > 0, np.where(dist > 15, 250.0, 100.0), 0.0)
    fu = extract_features(uniform, labels, n_rings=4, families=["Chromatin"]).iloc[0]
    fr = extract_features(rim, labels, n_rings=4, families=["Chromatin"]).iloc[0]
    assert fr["Nuclei_Chromatin_RadialFrac_Ring1of4"] > fu["Nuclei_Chromatin_RadialFrac_Ring1of4"]
    assert fr["Nuclei_Chromatin_RadialRel_Ring1of4"] > 1.2
    assert fr["Nuclei_Chromatin_RadialMeanDepth"] < fu["Nuclei_Chromatin_RadialMeanDepth"]
    # ring count follows n_rings
    f6 = extract_features(rim, labels, n_rings=6, families=["Chromatin"])
    assert f6.filter(like="RadialFrac").shape[1] == 6


def test_center_of_mass_displacement():
    labels = disk_labels(20)
    xx = np.mgrid[:100, :100][1]
    sym = np.where(labels > 0, 100.0, 0.0)
    skew = np.where(labels > 0, 100.0 + 4.0 * (xx - 50), 0.0)
    f_sym = extract_features(sym, labels, families=["Chromatin"]).iloc[0]
    f_skew = extract_features(skew, labels, families=["Chromatin"]).iloc[0]
    assert f_sym["Nuclei_Chromatin_CenterMassDisplacement"] == pytest.approx(0, abs=1e-9)
    assert f_skew["Nuclei_Chromatin_CenterMassDisplacement"] > 3


def test_texture_distinguishes_smooth_from_rough():
    rng = np.random.default_rng(0)
    labels = disk_labels(20)
    yy, xx = np.mgrid[:100, :100]
    smooth = np.where(labels > 0, 100.0 + xx, 0.0)
    rough = np.where(labels > 0, 100.0 + rng.normal(0, 20, SHAPE), 0.0)
    fs = extract_features(smooth, labels, families=["Texture"]).iloc[0]
    fr = extract_features(rough, labels, families=["Texture"]).iloc[0]
    assert fs["Nuclei_Texture_Correlation_1"] > 0.9 > fr["Nuclei_Texture_Correlation_1"]
    assert fr["Nuclei_Texture_Contrast_1"] > fs["Nuclei_Texture_Contrast_1"]
    lbp = fr.filter(like="LBP_Bin").to_numpy(dtype=float)
    assert lbp.shape == (10,) and lbp.sum() == pytest.approx(1.0)


def test_names_pattern_and_pycytominer(two_nuclei):
    image, labels = two_nuclei
    df = extract_features(image, labels, metadata={"Metadata_Well": "A01", "Metadata_Site": 2})
    feats = [c for c in df.columns if not c.startswith("Metadata_")]
    assert feats == feature_names()
    assert all(re.match(FEATURE_NAME_PATTERN, c) for c in feats)
    assert {c.split("_")[1] for c in feats} == set(FEATURE_FAMILIES)
    assert infer_cp_features(df) == feats
    assert infer_cp_features(df, metadata=True) == [
        "Metadata_Well",
        "Metadata_Site",
        "Metadata_ObjectNumber",
    ]
    assert df["Metadata_ObjectNumber"].tolist() == [1, 3]
    assert (df[feats].dtypes == np.float64).all()


def test_deterministic_and_subset(two_nuclei):
    image, labels = two_nuclei
    a = extract_features(image, labels)
    b = extract_features(image, labels)
    pd.testing.assert_frame_equal(a, b)
    sub = extract_features(image, labels, object_numbers=[3])
    pd.testing.assert_frame_equal(sub, a.iloc[[1]].reset_index(drop=True))
    # uint16 and float images give the same features
    c = extract_features(image.astype(np.float64), labels)
    pd.testing.assert_frame_equal(a, c)
    # a family subset gives the same columns as the full run
    tex = extract_features(image, labels, families=["Texture"])
    pd.testing.assert_frame_equal(tex, a[tex.columns])


def test_nuclei_touching_border_and_tiny_objects():
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[:10, :10] = 1  # touches the image corner
    labels[20, 20] = 2  # single pixel
    labels[25:27, 5:8] = 4
    image = np.arange(900, dtype=float).reshape(30, 30)
    df = extract_features(image, labels)
    assert df["Metadata_ObjectNumber"].tolist() == [1, 2, 4]
    assert df.loc[1, "Nuclei_AreaShape_Area"] == 1
    assert df.loc[0, "Nuclei_AreaShape_Area"] == 100
    assert np.isfinite(df.loc[0, feature_names(families=["Intensity"])]).all()


def test_timings_hook(two_nuclei):
    image, labels = two_nuclei
    t = {}
    extract_features(image, labels, timings=t)
    assert {"AreaShape", "Intensity", "Texture.GLCM", "Chromatin.Foci", "Overhead"} <= set(t)
    assert all(v >= 0 for v in t.values())


@pytest.mark.parametrize(
    ("image", "labels", "match"),
    [
        (np.zeros((10, 10)), np.ones((10, 11), int), "same shape"),
        (np.zeros((10, 10)), np.ones((10, 10), float), "integer label image"),
        (np.zeros((10, 10)), np.ones((10, 10), bool), "integer label image"),
        (np.zeros((10, 10)), np.zeros((10, 10), int), "no nuclei"),
        (np.zeros((10, 10, 3)), np.ones((10, 10), int), "2-D"),
        (np.zeros((10, 10)), -np.ones((10, 10), int), "non-negative"),
        (np.full((10, 10), np.nan), np.ones((10, 10), int), "NaN"),
    ],
)
def test_input_errors(image, labels, match):
    with pytest.raises(ValueError, match=match):
        extract_features(image, labels)


def test_parameter_errors(two_nuclei):
    image, labels = two_nuclei
    with pytest.raises(ValueError, match="do not occur"):
        extract_features(image, labels, object_numbers=[2])
    with pytest.raises(ValueError, match="unknown feature families"):
        extract_features(image, labels, families=["Shape"])
    with pytest.raises(ValueError, match="foci_method"):
        extract_features(image, labels, foci_method="blob")
    with pytest.raises(ValueError, match="Metadata_"):
        extract_features(image, labels, metadata={"Well": "A01"})
