"""Loading the real profile sets of ../shared/data into one layout."""

import numpy as np
import pandas as pd
import pytest

from i2r_utils.columns import feature_columns
from i2r_utils.io import InputError
from i2r_utils.realprofiles import (
    CONTROL,
    LINCS_FILE,
    META,
    condition_name,
    load_bbbc021,
    load_lincs_plate,
    load_profile_set,
    treatment_profiles,
)


@pytest.fixture(scope="module")
def lincs(shared_data):
    return load_lincs_plate(shared_data / "profiles_lincs_a549_plate")


@pytest.fixture(scope="module")
def bbbc021(shared_data):
    return load_bbbc021(shared_data / "profiles_bbbc021_wellmean")


def test_lincs_plate_layout_matches_its_readme(lincs):
    assert list(lincs.columns[: len(META)]) == META and lincs.shape == (384, len(META) + 454)
    treated = lincs[lincs.Metadata_Condition != CONTROL]
    assert (lincs.Metadata_Condition == CONTROL).sum() == 24
    assert lincs.Metadata_MoA[lincs.Metadata_Condition == CONTROL].isna().all()
    assert treated.Metadata_MoA.nunique() == 50 and lincs.Metadata_Plate.nunique() == 1
    per_compound = treated.groupby("Metadata_Compound").size().value_counts().to_dict()
    assert per_compound == {6: 56, 12: 2}  # 56 compounds x 6 doses, 2 x 12 wells at 20 uM
    assert all(lincs[f].dtype == np.float64 for f in feature_columns(lincs))


def test_bbbc021_joins_compound_concentration_and_moa(bbbc021):
    assert bbbc021.shape == (632, len(META) + 516)
    assert (bbbc021.Metadata_Condition == CONTROL).sum() == 330  # 6 DMSO wells x 55 plates
    treated = bbbc021[bbbc021.Metadata_Condition != CONTROL]
    assert treated.Metadata_MoA.notna().all() and treated.Metadata_MoA.nunique() == 12
    assert treated.Metadata_Condition.nunique() == 103  # Ljosa et al.: 103 treatments
    assert treated.Metadata_Compound.nunique() == 38
    assert bbbc021.Metadata_Batch.nunique() == 10  # weeks
    assert treated.groupby("Metadata_Condition").Metadata_Batch.nunique().max() == 1
    row = treated[treated.Metadata_Condition == "taxol@0.3"]
    assert len(row) and (row.Metadata_MoA == "Microtubule stabilizers").all()


def test_treatment_profiles_are_well_means_with_constant_metadata(bbbc021):
    t = treatment_profiles(bbbc021)
    assert len(t) == 104 and t.Metadata_Condition.is_unique
    assert "Metadata_Plate" not in t and "Metadata_Batch" in t and "Metadata_MoA" in t
    f = feature_columns(bbbc021)[:5]
    expected = bbbc021.groupby("Metadata_Condition")[f].mean()
    assert np.allclose(t.set_index("Metadata_Condition")[f].loc[expected.index], expected)
    assert t.set_index("Metadata_Condition").loc["DMSO", "Metadata_Wells"] == 330


def test_condition_names_and_bad_inputs(tmp_path):
    names = condition_name(pd.Series(["a", CONTROL]), pd.Series([0.123456, 0.0]))
    assert names.tolist() == ["a@0.12346", CONTROL]
    with pytest.raises(InputError, match="SQ00015054_normalized_feature_select.csv.gz not found"):
        load_lincs_plate(tmp_path)
    with pytest.raises(InputError, match="unknown profile set 'x'"):
        load_profile_set("x", tmp_path)
    pd.DataFrame({"Metadata_Well": ["A01"], "a": [1.0]}).to_csv(tmp_path / LINCS_FILE, index=False)
    with pytest.raises(InputError, match="lacks columns"):
        load_lincs_plate(tmp_path)
