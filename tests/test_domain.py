import numpy as np
import pandas as pd
import pytest

from i2r_utils.domain import check_domain, nucleus_stats


def _crops(values, n=20, size=16, side=6):
    crops = np.zeros((n, size, size), np.float32)
    crops[:, 5 : 5 + side, 5 : 5 + side] = np.asarray(values, np.float32).reshape(-1, 1, 1)
    return crops, np.full(n, side * side, float)


def test_signal_is_the_mean_over_the_nucleus():
    crops, areas = _crops(np.linspace(0.1, 0.9, 20))
    stats = nucleus_stats(crops, areas)
    assert np.allclose(stats["signal"], np.linspace(0.1, 0.9, 20), atol=1e-6)
    assert (stats["area"] == 36).all()
    with pytest.raises(ValueError, match="expected"):
        nucleus_stats(crops, areas[:3])


def test_truncated_crop_counts_only_the_pixels_inside():
    crops = np.full((20, 6, 6), 0.5, np.float32)  # the nucleus fills the whole crop
    stats = nucleus_stats(crops, np.full(20, 100.0))  # but is larger than the crop
    assert np.allclose(stats["signal"], 0.5)


def test_screen_like_nuclei_give_no_warning_and_outliers_do():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"area": rng.normal(900, 150, 2000),
                              "signal": rng.uniform(0.2, 0.6, 2000),
                              "detail": rng.normal(0.11, 0.01, 2000)})  # fmt: skip
    same = pd.DataFrame({"area": rng.normal(900, 150, 200), "signal": rng.uniform(0.2, 0.6, 200),
                         "detail": rng.normal(0.11, 0.01, 200)})  # fmt: skip
    ok = check_domain(same, reference)
    assert ok["warnings"] == [] and ok["area"]["fraction_outside"] < 0.1
    small = same.assign(area=same["area"] / 4)  # a 10x image passed without --pixel-scale 0.5
    bad = check_domain(small, reference)
    assert len(bad["warnings"]) == 1 and "--pixel-scale" in bad["warnings"][0]
    assert "below" in bad["warnings"][0] and bad["area"]["fraction_outside"] > 0.9
    dark = same.assign(signal=0.0)
    assert "DNA stain" in check_domain(dark, reference)["warnings"][0]


def test_blurred_crops_have_less_detail():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32]
    disk = ((yy - 16) ** 2 + (xx - 16) ** 2 <= 10**2).astype(float)
    sharp = disk * rng.uniform(0.3, 0.9, (20, 32, 32))  # speckled chromatin
    from scipy import ndimage as ndi

    blurred = np.stack([ndi.uniform_filter(c, 2) * disk for c in sharp])  # 2x2 mean, masked
    area = np.full(20, disk.sum())
    s, b = nucleus_stats(sharp, area), nucleus_stats(blurred, area)
    assert (b["detail"] < 0.7 * s["detail"]).all()
    out = check_domain(b, s)
    assert out["detail"]["fraction_outside"] > 0.9
    assert any("less fine detail" in w for w in out["warnings"])
    tiny = nucleus_stats(np.ones((1, 4, 4)), [16])  # too small to erode: no detail, no warning
    assert np.isnan(tiny["detail"].iloc[0])
