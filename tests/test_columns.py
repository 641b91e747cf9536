import pandas as pd

from i2r_utils.columns import feature_columns, get_featuredata, get_metadata, split


def test_split_by_prefix():
    df = pd.DataFrame({"Metadata_Well": ["A01"], "f1": [1.0], "Metadata_Plate": ["P"], "f2": [2]})
    meta, feat = split(df)
    assert list(meta.columns) == ["Metadata_Well", "Metadata_Plate"]
    assert list(feat.columns) == ["f1", "f2"] == feature_columns(df)
    assert get_metadata(df).shape == (1, 2) and get_featuredata(df).shape == (1, 2)
