import numpy as np
import pandas as pd
import pytest

from i2r_utils.profiles import aggregate, condition_profiles, normalize_to_control


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


def test_plate_effect_removed_by_control_normalisation():
    wells, conds = condition_profiles(nuclei_table(), normalize="center")
    x = conds.set_index("Metadata_Condition").f
    assert x["EMPTY"] == pytest.approx(0) and x["X"] == pytest.approx(1.0)
    assert conds.set_index("Metadata_Condition").Metadata_Wells["X"] == 2
    with pytest.raises(ValueError, match="no control wells"):
        normalize_to_control(wells[wells.Metadata_Condition == "X"])


def test_standardize_divides_by_control_sd():
    wells, _ = condition_profiles(nuclei_table(), normalize=None)
    wells.loc[wells.Metadata_Condition == "EMPTY", "f"] += np.tile([-1.0, 0.0, 1.0], 2)
    out = normalize_to_control(wells, method="standardize")
    ctl = out[out.Metadata_Condition == "EMPTY"].f
    assert ctl.groupby(out.Metadata_Plate).std(ddof=0).round(6).eq(1.0).all()
