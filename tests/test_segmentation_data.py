"""Tests of i2r_utils.segmentation_data (annotated nuclei and their fixed split by image)."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from segmentation_helpers import write_annotated_folder

from i2r_utils.io import InputError
from i2r_utils.segmentation_data import (
    MAX_SCREEN_IMAGES,
    load_annotated_fields,
    read_index,
    split_images,
    split_table,
)

# SHA-256 (first 16 hex) of the sorted test ids joined by commas (21 fields: 18 U2OS, 3 other)
TEST_IDS_SHA256_16 = "21dd8e08932bc6be"


def test_split_rule_by_sorted_id_within_subset():
    ids = [f"{k:02x}" for k in range(20)]
    index = pd.DataFrame({"id": ids[::-1], "subset": ["a"] * 12 + ["b"] * 8})
    split = split_images(index)
    for subset, group in index.assign(split=split).groupby("subset"):
        ordered = group.sort_values("id")["split"].tolist()
        expect = ["test" if k % 8 in (0, 4) else "val" if k % 8 == 2 else "train"
                  for k in range(len(group))]  # fmt: skip
        assert ordered == expect, subset
    # the order of the rows does not matter
    shuffled = index.sample(frac=1, random_state=0)
    pd.testing.assert_series_equal(split_images(shuffled).sort_index(), split.sort_index())


def test_real_split_is_fixed(shared_data):
    folder = shared_data / "nuclei_dsb2018_fluo"
    if not (folder / "index.csv").is_file():
        pytest.skip(f"{folder} not found")
    table = split_table(folder)
    counts = table.groupby(["subset", "split"]).size().to_dict()
    assert counts == {("diverse", "test"): 3, ("diverse", "train"): 6, ("diverse", "val"): 1,
                      ("u2os_520x696", "test"): 18, ("u2os_520x696", "train"): 43,
                      ("u2os_520x696", "val"): 9}  # fmt: skip
    test_ids = ",".join(sorted(table.loc[table["split"] == "test", "id"]))
    # the written-down test set (README): a change of the rule or of the data shows here
    assert hashlib.sha256(test_ids.encode()).hexdigest()[:16] == TEST_IDS_SHA256_16
    data = load_annotated_fields(folder, "val")
    assert len(data["images"]) == 10 and data["images"][0].dtype == np.float32
    pairs = zip(data["images"], data["masks"], strict=True)
    assert all(m.max() > 0 and m.shape == i.shape for i, m in pairs)


def test_synthetic_folder_and_errors(tmp_path):
    folder = write_annotated_folder(tmp_path / "ann", n=8)
    data = load_annotated_fields(folder, ("train", "test"))
    assert set(data["table"]["split"]) == {"train", "test"}
    assert data["names"] == data["table"]["id"].tolist() and len(data["index_sha256"]) == 64
    assert all(m.dtype == np.int32 and m.shape == i.shape
               for i, m in zip(data["images"], data["masks"], strict=True))  # fmt: skip
    with pytest.raises(InputError, match="parts must name"):
        load_annotated_fields(folder, "holdout")
    with pytest.raises(InputError, match="index.csv: annotated nuclei index not found"):
        read_index(tmp_path / "absent")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.csv").write_text("name,size\na,1\n")
    with pytest.raises(InputError, match="expected columns"):
        read_index(tmp_path / "bad")
    (folder / "labels" / "a00.tif").unlink()
    with pytest.raises(InputError, match="a00.tif: mask file not found"):
        load_annotated_fields(folder)


def test_screen_folder_stands_in(tiny_screen):
    table = split_table(tiny_screen)
    assert len(table) <= MAX_SCREEN_IMAGES and set(table["subset"]) == {"screen"}
    assert set(table["split"]) == {"train", "val", "test"}
    data = load_annotated_fields(tiny_screen, "test")
    assert len(data["images"]) == (table["split"] == "test").sum()
    assert data["masks"][0].max() > 0
