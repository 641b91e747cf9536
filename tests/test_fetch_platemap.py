"""Tests of i2r_pipeline.fetch.platemap: image file names and plate maps."""

from __future__ import annotations

import pandas as pd
import pytest

from i2r_pipeline.fetch.platemap import (
    join_platemap,
    normalize_well,
    parse_image_names,
    read_platemap,
)
from i2r_utils.io import InputError


def test_parse_image_names_default_patterns():
    df = parse_image_names(
        [
            "x/41744_a01_s3_w1C0FFEE00-1111-2222-3333-444455556666.tif",
            "x/41744_a01_s3_w1_thumbC0FFEE.tif",  # thumbnail: skipped
            "y/Images/r02c11f04p01-ch5sk1fk1fl1.tiff",
            "z/load_data.csv",
        ]
    )
    assert df["Metadata_Well"].tolist() == ["A01", "B11"]
    assert df["Metadata_Site"].tolist() == [3, 4]
    assert df["Metadata_Channel"].tolist() == ["1", "5"]


def test_normalize_well():
    assert [normalize_well(w) for w in ["a01", "A1", "p24", " b07 "]] == [
        "A01",
        "A01",
        "P24",
        "B07",
    ]


def test_read_platemap_keeps_text(tmp_path):
    path = tmp_path / "pm.txt"
    path.write_text("well_position\tgene_name\na01\tNA\na02\t\n")
    pm = read_platemap(path)
    assert pm["gene_name"].tolist() == ["NA", ""]


def test_join_platemap_and_errors():
    images = pd.DataFrame(
        {"Metadata_Plate": ["1", "1", "2"], "Metadata_Well": ["A01", "A02", "A03"]}
    )
    pm = pd.DataFrame({"well_position": ["a01", "a02"], "gene_name": ["BRAF", "JUN"]})
    out = join_platemap(images, pm)
    assert out["Metadata_Condition"].tolist()[:2] == ["BRAF", "JUN"]
    assert pd.isna(out["Metadata_Condition"].iloc[2])
    pm_plate = pd.DataFrame({"plate": ["1", "2"], "well": ["A1", "A3"], "gene": ["X", "Y"]})
    out = join_platemap(images, pm_plate, well_col="well", gene_col="gene", plate_col="plate")
    assert (
        out["Metadata_Condition"].tolist()[0] == "X"
        and out["Metadata_Condition"].tolist()[2] == "Y"
    )
    with pytest.raises(KeyError, match="available"):
        join_platemap(images, pm, gene_col="symbol")
    with pytest.raises(KeyError, match="image table"):
        join_platemap(images.drop(columns="Metadata_Plate"), pm_plate, "well", "gene", "plate")
    with pytest.raises(InputError, match="more than once"):
        join_platemap(images, pd.concat([pm, pm]))
