"""Tests of i2r_utils.unet (model, training, inference)."""

import numpy as np
import pytest
import torch
from segmentation_helpers import load_unet, save_unet, synthetic_disks, train_tiny_unet

from i2r_utils.segmentation import segment_nuclei
from i2r_utils.unet import UNet, predict_unet, probabilities_to_labels, train_unet, unet_targets

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/conftest.py


def test_unet_targets():
    mask = np.zeros((10, 10), dtype=np.int32)
    mask[2:7, 2:7] = 1
    t = unet_targets(mask)
    assert set(np.unique(t)) == {0, 1, 2}
    assert (t[3:6, 3:6] == 1).all() and t[2, 4] == 2 and t[0, 0] == 0


@pytest.mark.parametrize("depth", [3, 4])
def test_unet_shapes(depth):
    model = UNet(base_channels=4, depth=depth).eval()
    out = model(torch.zeros(2, 1, 32, 48))
    assert out.shape == (2, 3, 32, 48)
    probs = predict_unet(model, np.random.default_rng(0).random((37, 21)), tta="d4")
    assert probs.shape == (3, 37, 21)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)


def test_training_arguments_are_checked():
    image, mask = synthetic_disks(shape=(64, 64), n=2)
    with pytest.raises(ValueError, match="as many images as masks"):
        train_unet([image], [], progress=False)
    with pytest.raises(ValueError, match="multiple of 2"):
        train_unet([image], [mask], patch_size=30, progress=False)
    with pytest.raises(ValueError, match="masks\\[0\\]"):
        train_unet([image], [mask[:10]], patch_size=32, progress=False)


@pytest.fixture(scope="module")
def tiny_unet():
    return train_tiny_unet()


def test_unet_loss_decreases(tiny_unet):
    _, history, _ = tiny_unet
    loss = np.array(history["loss"])
    assert loss.size == 40 and np.all(np.isfinite(loss))
    assert loss[-5:].mean() < 0.7 * loss[:5].mean()
    assert history["epoch_loss"][-1] < history["epoch_loss"][0]


def test_unet_training_is_deterministic():
    image, mask = synthetic_disks(shape=(64, 64), n=4, seed=7)
    kwargs = dict(epochs=1, patch_size=32, batch_size=2, lr=1e-2, device="cpu", progress=False)
    kwargs.update(base_channels=4, steps_per_epoch=3)
    rng_state = torch.get_rng_state()
    model_a, hist_a = train_unet([image], [mask], seed=5, **kwargs)
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG left untouched
    model_b, hist_b = train_unet([image], [mask], seed=5, **kwargs)
    _, hist_c = train_unet([image], [mask], seed=6, **kwargs)
    assert hist_a["loss"] == hist_b["loss"] != hist_c["loss"]
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_max_time_stops_training():
    image, mask = synthetic_disks(shape=(64, 64), n=4, seed=7)
    kwargs = dict(patch_size=32, batch_size=2, device="cpu", progress=False, base_channels=4)
    _, hist = train_unet([image], [mask], epochs=5, steps_per_epoch=3, max_time_s=0.0, **kwargs)
    assert len(hist["loss"]) == 1 and len(hist["epoch_loss"]) == 1


def test_unet_save_load_round_trip(tiny_unet, tmp_path):
    model, _, images = tiny_unet
    path = save_unet(model, tmp_path / "models" / "unet.pt")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["unet.pt"]
    loaded = load_unet(path, device="cpu")
    assert loaded.config == model.config
    for tta in (None, ["identity", "rot90"]):
        np.testing.assert_array_equal(
            predict_unet(loaded, images[0], tta=tta), predict_unet(model, images[0], tta=tta)
        )
    np.testing.assert_array_equal(
        segment_nuclei(images[0], "unet", loaded), segment_nuclei(images[0], "unet", model)
    )
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(Exception):  # noqa: B017 - torch raises its own unpickling error
        load_unet(tmp_path / "junk.pt")


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
