"""Tests of i2r_utils.unet (model, inference, model files)."""

import numpy as np
import pytest
import torch
from segmentation_helpers import train_tiny_unet

from i2r_utils.io import InputError
from i2r_utils.segmentation import segment_nuclei
from i2r_utils.unet import (
    UNet,
    load_unet,
    predict_unet,
    probabilities_to_labels,
    save_unet,
    unet_targets,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/conftest.py


def test_unet_targets():
    mask = np.zeros((10, 10), dtype=np.int32)
    mask[2:7, 2:7] = 1
    t = unet_targets(mask)
    assert set(np.unique(t)) == {0, 1, 2}
    assert (t[3:6, 3:6] == 1).all() and t[2, 4] == 2 and t[0, 0] == 0
    wide = unet_targets(mask, boundary_width=2)  # two rims: only the centre stays interior
    assert wide[4, 4] == 1 and (wide == 1).sum() == 1 and (wide[2:7, 2:7] > 0).all()
    touching = np.zeros((12, 12), dtype=np.int32)
    touching[2:10, 1:6], touching[2:10, 6:11] = 1, 2
    assert (unet_targets(touching, 2)[:, 4:8] != 1).all()  # 4 px apart where they touch
    with pytest.raises(ValueError, match="boundary_width"):
        unet_targets(mask, boundary_width=0)


@pytest.mark.parametrize("depth", [3, 4])
def test_unet_shapes(depth):
    model = UNet(base_channels=4, depth=depth).eval()
    out = model(torch.zeros(2, 1, 32, 48))
    assert out.shape == (2, 3, 32, 48)
    probs = predict_unet(model, np.random.default_rng(0).random((37, 21)), tta="d4")
    assert probs.shape == (3, 37, 21)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_unet():
    return train_tiny_unet()


def test_unet_save_load_round_trip(tiny_unet, tmp_path):
    model, _, images = tiny_unet
    model.config["postprocess"] = {"seed_threshold": 0.6}
    path = tmp_path / "models" / "unet.pt"
    sha = save_unet(model, path)
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["unet.pt"]
    assert len(sha) == 64
    loaded = load_unet(path, device="cpu", sha256=sha)
    assert loaded.config == model.config and not loaded.training
    for tta in (None, ["identity", "rot90"]):
        np.testing.assert_array_equal(
            predict_unet(loaded, images[0], tta=tta), predict_unet(model, images[0], tta=tta)
        )
    np.testing.assert_array_equal(
        segment_nuclei(images[0], "unet", loaded), segment_nuclei(images[0], "unet", model)
    )
    with pytest.raises(InputError, match="checksum differs"):
        load_unet(path, sha256="0" * 64)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.pt: not a U-Net saved by i2r"):
        load_unet(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a U-Net"):
        load_unet(tmp_path / "other.pt")
    with pytest.raises(InputError, match="not found"):
        load_unet(tmp_path / "absent.pt")


def test_stored_postprocessing_is_the_default(tiny_unet):
    model, _, images = tiny_unet
    probs = predict_unet(model, images[0])
    model.config["postprocess"] = {"fg_threshold": 0.9, "seed_threshold": 0.9}
    try:
        stored = segment_nuclei(images[0], "unet", model)
        np.testing.assert_array_equal(
            stored, probabilities_to_labels(probs, fg_threshold=0.9, seed_threshold=0.9)
        )
        explicit = segment_nuclei(images[0], "unet", model, fg_threshold=0.5, seed_threshold=0.5)
        np.testing.assert_array_equal(explicit, probabilities_to_labels(probs))
    finally:
        model.config["postprocess"] = {}


def test_probabilities_to_labels_separates_seeds():
    probs = np.zeros((3, 20, 30))
    probs[0] = 1.0
    probs[:, 5:15, 5:25] = [[[0.0]], [[0.0]], [[1.0]]]  # one foreground blob, all boundary
    probs[:, 8:12, 7:12] = [[[0.0]], [[1.0]], [[0.0]]]  # two interior seeds
    probs[:, 8:12, 18:23] = [[[0.0]], [[1.0]], [[0.0]]]
    labels = probabilities_to_labels(probs, min_size=1)
    assert labels.max() == 2
    assert np.count_nonzero(labels) == 200
    with pytest.raises(ValueError, match="shape"):
        probabilities_to_labels(probs[:2])


def test_distance_seeds_split_interiors_joined_by_a_neck():
    yy, xx = np.mgrid[:40, :60]
    blob = ((yy - 20) ** 2 + (xx - 18) ** 2 < 12**2) | ((yy - 20) ** 2 + (xx - 42) ** 2 < 12**2)
    blob |= (abs(yy - 20) < 3) & (xx > 18) & (xx < 42)  # a neck: no boundary predicted in it
    probs = np.zeros((3, 40, 60))
    probs[0], probs[1] = ~blob, blob
    assert probabilities_to_labels(probs, min_size=1).max() == 1
    labels = probabilities_to_labels(probs, min_size=1, seeds="distance", h=2.0)
    assert labels.max() == 2 and np.count_nonzero(labels) == blob.sum()
    assert labels[20, 18] != labels[20, 42]
    with pytest.raises(ValueError, match="seeds"):
        probabilities_to_labels(probs, seeds="peaks")
