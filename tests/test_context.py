"""Context windows: the original's 8-bit field rescaling, padding, centring and storage."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from i2r_utils.context import (
    context_windows,
    field_to_uint8,
    load_context,
    plate_context_path,
    write_plate_context,
)
from i2r_utils.io import InputError


def test_field_rescaling_subtracts_low_and_divides_by_high_percentile():
    rng = np.random.default_rng(0)
    img = rng.integers(1000, 5000, (50, 60)).astype(np.float32)
    lo, hi = np.percentile(img, [0.1, 99.9])
    expected = np.floor(np.clip((img - lo) / hi, 0, 1) * 255).astype(np.uint8)
    out = field_to_uint8(img)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    # not a range normalisation: with an offset of 1000 the brightest pixels stay far below 255
    assert out.max() < 0.9 * 255
    # an 8-bit image is taken as it is
    small = rng.integers(0, 256, (8, 8)).astype(np.float32)
    np.testing.assert_array_equal(field_to_uint8(small), small.astype(np.uint8))


def test_windows_are_centred_on_the_truncated_centroid_and_padded_grey():
    field = np.full((40, 50), 7, np.uint8)
    field[:, :10] = 3  # 1st percentile of the field: 3
    field[12, 30] = 200
    win = context_windows(field, [[12.9, 30.7]], window=16, out_size=16)
    assert win.shape == (1, 16, 16) and win.dtype == np.uint8
    assert win[0, 8, 8] == 200  # int(12.9), int(30.7) at window // 2
    edge = context_windows(field, [[1.0, 45.0]], window=16, out_size=16)[0]
    assert (edge[:7] == 3).all() and (edge[:, 13:] == 3).all()  # outside the field: grey 3
    assert (edge[7:, 12] == 7).all()  # the last field column, 49
    assert edge[9, 5] == 7  # inside the field


def test_windows_are_resized_bilinearly_as_pil():
    rng = np.random.default_rng(1)
    field = rng.integers(0, 256, (100, 100)).astype(np.uint8)
    win = context_windows(field, [[50, 50]], window=40, out_size=20)[0]
    ref = np.asarray(Image.fromarray(field[30:70, 30:70]).resize((20, 20), Image.BILINEAR))
    np.testing.assert_array_equal(win, ref)
    assert context_windows(field, np.zeros((0, 2)), 40, 20).shape == (0, 20, 20)


def test_store_and_load_in_table_order(tmp_path):
    a = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    b = 100 + np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    write_plate_context(plate_context_path(tmp_path, "P1"), a, 16)
    write_plate_context(plate_context_path(tmp_path, "P2"), b, 16)
    assert plate_context_path(tmp_path, "P1") == tmp_path / "context" / "P1.npz"
    nuclei = pd.DataFrame({"Metadata_Plate": ["P2", "P1", "P1"], "Metadata_CropIndex": [1, 2, 0]})
    out = load_context(tmp_path, nuclei, 16)
    np.testing.assert_array_equal(out, np.stack([b[1], a[2], a[0]]))
    with pytest.raises(InputError, match="same context_window"):
        load_context(tmp_path, nuclei, 448)
    with pytest.raises(InputError, match="context_window > 0"):
        load_context(tmp_path, nuclei.assign(Metadata_Plate="P3"))
    with pytest.raises(InputError, match="index 5"):
        load_context(tmp_path, nuclei.assign(Metadata_CropIndex=5))
