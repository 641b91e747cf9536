import json

import numpy as np
import pandas as pd
import pytest

from i2r_utils.artifacts import artifact
from i2r_utils.context import write_plate_context
from i2r_utils.io import InputError
from i2r_utils.nuclei import load_crops, plate_outputs, preprocess_image, preprocess_plate
from i2r_utils.nucleus_filter import NucleusFilter
from i2r_utils.preprocessing import (
    PREPROCESSING_DEFAULTS,
    read_preprocessing,
    store_crops,
    stored_crops,
    write_preprocessing,
)


def test_record_round_trip_and_disagreeing_plates(tmp_path):
    filt = NucleusFilter(min_area=300, pixel_scale=0.5)
    options = {"crop_centre": "bbox", "crop_scaling": "crop", "drop_large_crops": True,
               "context_window": 96, "context_size": 32}  # fmt: skip
    for plate in ("P01", "P02"):
        write_preprocessing(artifact(tmp_path, "plate_preprocessing", plate=plate), filt, **options)
    rec = read_preprocessing(tmp_path)
    assert rec["filter"] == filt and rec["recorded"] is True
    assert {k: rec[k] for k in options} == options and rec["crop_size"] == 64
    path = artifact(tmp_path, "plate_preprocessing", plate="P02")
    path.write_text(json.dumps({**json.loads(path.read_text()), "crop_scaling": "image"}))
    with pytest.raises(InputError, match="P02.json: preprocessed with other options"):
        read_preprocessing(tmp_path)
    path.write_text("{")
    with pytest.raises(InputError, match="unreadable"):
        read_preprocessing(tmp_path)
    with pytest.raises(ValueError, match="unknown preprocessing options"):
        write_preprocessing(path, filt, crop_shape="round")


def test_folder_without_a_record_gets_the_defaults_and_its_stored_windows(tmp_path):
    rec = read_preprocessing(tmp_path)
    assert rec["recorded"] is False and rec["filter"] == NucleusFilter()
    assert {k: rec[k] for k in PREPROCESSING_DEFAULTS} == PREPROCESSING_DEFAULTS
    windows = np.zeros((3, 48, 48), np.uint8)
    write_plate_context(artifact(tmp_path, "plate_context", plate="P01"), windows, 200)
    rec = read_preprocessing(tmp_path)
    assert (rec["context_window"], rec["context_size"]) == (200, 48)


@pytest.mark.parametrize("scaling", ["image", "crop"])
def test_stored_crops_are_what_the_plate_files_give_back(tiny_screen, tmp_path, scaling):
    from i2r_utils.io import load_metadata

    meta = load_metadata(tiny_screen).head(1)
    plate = meta["Metadata_Plate"].iloc[0]
    preprocess_plate(meta, plate, tmp_path, progress=False, crop_options={"crop_scaling": scaling})
    nuclei = pd.read_parquet(plate_outputs(tmp_path, plate)["plates"])
    rec = meta.iloc[0]
    crops = preprocess_image(rec.Metadata_ImagePath, rec.Metadata_MaskPath, crop_scaling=scaling)[0]
    assert store_crops(crops, scaling).dtype == (np.uint8 if scaling == "crop" else np.float16)
    np.testing.assert_array_equal(stored_crops(crops, scaling), load_crops(tmp_path, nuclei))
    if scaling == "image":  # the float16 precision is not the float32 crops'
        assert not np.array_equal(stored_crops(crops, scaling), crops)
