"""Tests of i2r_utils.unet_training (augmented patches, early stopping, the run's model)."""

import json

import numpy as np
import pytest
import torch
from segmentation_helpers import synthetic_disks, train_tiny_unet, write_annotated_folder

from i2r_utils.io import InputError
from i2r_utils.unet import unet_targets
from i2r_utils.unet_training import (
    _random_patch,
    info_path,
    load_trained_unet,
    train_unet,
    trained_unet,
    tune_postprocessing,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/conftest.py

TINY = {"epochs": 2, "steps_per_epoch": 3, "patch_size": 32, "batch_size": 2, "base_channels": 4,
        "lr": 1e-2, "patience": 1}  # fmt: skip


def test_training_arguments_are_checked():
    image, mask = synthetic_disks(shape=(64, 64), n=2)
    with pytest.raises(ValueError, match="as many images as masks"):
        train_unet([image], [], progress=False)
    with pytest.raises(ValueError, match="multiple of 2"):
        train_unet([image], [mask], patch_size=30, progress=False)
    with pytest.raises(ValueError, match="masks\\[0\\]"):
        train_unet([image], [mask[:10]], patch_size=32, progress=False)
    with pytest.raises(ValueError, match="val_seeds"):
        train_unet([image], [mask], patch_size=32, val_seeds="peaks", progress=False)
    with pytest.raises(ValueError, match="as many val_images as masks"):
        train_unet([image], [mask], patch_size=32, val_images=[image], progress=False)


def test_patches_without_augmentation_are_crops_with_their_targets():
    image, mask = synthetic_disks(shape=(64, 64), n=4, seed=3)
    img = image.astype(np.float32)
    x, y = _random_patch(np.random.default_rng(0), img, mask, 32, False, (0.8, 1.25))
    assert x.shape == y.shape == (32, 32) and x.dtype == np.float32
    # some D4 transform of some 32x32 crop of the image, its target the same transform
    from i2r_utils.tta import D4_TRANSFORMS, invert_transform

    found = False
    for name in D4_TRANSFORMS:
        xi, yi = invert_transform(x, name), invert_transform(y, name)
        for r in range(33):
            for c in range(33):
                if np.array_equal(img[r : r + 32, c : c + 32], xi):
                    found = np.array_equal(unet_targets(mask[r : r + 32, c : c + 32]), yi)
    assert found


def test_scale_jitter_keeps_labels_on_the_nuclei():
    image, mask = synthetic_disks(shape=(96, 96), n=6, seed=4)
    img = image / image.max()
    rng = np.random.default_rng(1)
    for _ in range(20):
        x, y = _random_patch(rng, img.astype(np.float32), mask, 32, True, (0.5, 2.0))
        assert x.shape == y.shape == (32, 32) and set(np.unique(y)) <= {0, 1, 2}
        if (y > 0).any() and (y == 0).any():  # nuclei brighter than background after jitter
            assert x[y > 0].mean() > x[y == 0].mean()


@pytest.fixture(scope="module")
def tiny_unet():
    return train_tiny_unet()


def test_unet_loss_decreases(tiny_unet):
    _, history, _ = tiny_unet
    loss = np.array(history["loss"])
    assert loss.size == 40 and np.all(np.isfinite(loss))
    assert loss[-5:].mean() < 0.8 * loss[:5].mean()
    assert history["stopped"] == "epochs" and history["cpu_seconds"] > 0


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
    assert len(hist["loss"]) == 1 and len(hist["epoch_loss"]) == 1 and hist["stopped"] == "time"


def test_early_stopping_keeps_the_best_epoch():
    image, mask = synthetic_disks(shape=(64, 64), n=4, seed=7)
    val_image, val_mask = synthetic_disks(shape=(64, 64), n=4, seed=8)
    kwargs = dict(patch_size=32, batch_size=2, device="cpu", progress=False, base_channels=4)
    # lr 0: the validation score never improves after the first epoch -> stop after 1 + 2
    model, hist = train_unet([image], [mask], epochs=10, steps_per_epoch=2, lr=0.0, patience=2,
                             val_images=[val_image], val_masks=[val_mask], **kwargs)  # fmt: skip
    assert hist["stopped"] == "early" and len(hist["val_map_dsb"]) == 3
    assert hist["best_epoch"] == 1 and len(set(hist["val_map_dsb"])) == 1
    # learning: the kept weights are those of the best validation epoch
    model, hist = train_unet([image], [mask], epochs=4, steps_per_epoch=5, lr=1e-2,
                             val_images=[val_image], val_masks=[val_mask], **kwargs)  # fmt: skip
    from i2r_utils.unet_training import _validation_score

    best = max(hist["val_map_dsb"])
    assert hist["best_epoch"] == int(np.argmax(hist["val_map_dsb"])) + 1
    assert _validation_score(model, [val_image], [val_mask]) == pytest.approx(best)
    # the validation score can use the distance seeds (the rule the run's model usually keeps)
    model, hist = train_unet([image], [mask], epochs=2, steps_per_epoch=5, lr=1e-2,
                             val_images=[val_image], val_masks=[val_mask], val_seeds="distance",
                             **kwargs)  # fmt: skip
    post = {"seeds": "distance", "h": 3.0}
    assert _validation_score(model, [val_image], [val_mask], post) == pytest.approx(
        max(hist["val_map_dsb"])
    )


def test_tune_postprocessing_picks_the_best_pair(tiny_unet):
    model, _, images = tiny_unet
    masks = [synthetic_disks(shape=(64, 64), n=4, seed=s)[1] for s in range(3)]
    grid = [
        {"fg_threshold": 0.5, "seed_threshold": 0.5},
        {"fg_threshold": 0.99, "seed_threshold": 0.99},
        {"fg_threshold": 0.5, "seed_threshold": 0.5, "seeds": "distance", "h": 2.0},
    ]
    best, table = tune_postprocessing(model, images, masks, grid=grid)
    assert len(table) == 3 and best["min_size"] == 15  # the default: one size
    assert {k: v for k, v in best.items() if k != "min_size"} in grid
    assert all(0 <= r["ap50"] <= 1 and r["map_dsb"] <= r["ap50"] for r in table)
    assert max(r["map_dsb"] for r in table) == next(
        r["map_dsb"] for r in table if {k: r[k] for k in best} == best
    )


def test_tune_postprocessing_tries_each_smallest_object_size(tiny_unet):
    model, _, images = tiny_unet
    masks = [synthetic_disks(shape=(64, 64), n=4, seed=s)[1] for s in range(3)]
    grid = [{"fg_threshold": 0.5, "seed_threshold": 0.5}, {"fg_threshold": 0.5, "min_size": 5}]
    best, table = tune_postprocessing(model, images, masks, grid=grid, min_sizes=[15, 400])
    assert [r["min_size"] for r in table] == [15, 400, 5] and "min_size" in best
    # a size above every disk (radius <= 10 px: < 400 px) leaves no object: nothing matches
    assert table[1]["ap50"] == 0 and table[0]["ap50"] > 0
    with pytest.raises(ValueError, match="min_sizes"):
        tune_postprocessing(model, images, masks, grid=grid, min_sizes=[])


def test_cosine_schedule_anneals_the_learning_rate():
    image, mask = synthetic_disks(shape=(64, 64), n=4, seed=7)
    kwargs = dict(epochs=2, steps_per_epoch=3, patch_size=32, batch_size=2, lr=1e-2, seed=1)
    kwargs.update(device="cpu", progress=False, base_channels=4)
    _, constant = train_unet([image], [mask], **kwargs)
    _, cosine = train_unet([image], [mask], lr_schedule="cosine", **kwargs)
    assert constant["loss"][0] == cosine["loss"][0]  # same first step, then smaller steps
    assert constant["loss"][1:] != cosine["loss"][1:]
    with pytest.raises(ValueError, match="lr_schedule"):
        train_unet([image], [mask], lr_schedule="step", **kwargs)


def test_wider_boundaries_reach_the_targets():
    image, mask = synthetic_disks(shape=(64, 64), n=4, seed=3)
    img = image.astype(np.float32)
    x, y = _random_patch(np.random.default_rng(0), img, mask, 64, False, (1, 1), 2)
    assert (y == 2).sum() > (unet_targets(mask) == 2).sum()


def test_trained_unet_trains_once_then_reuses(tmp_path):
    data = write_annotated_folder(tmp_path / "annotated", n=8)
    path = tmp_path / "run" / "segmentation" / "unet.pt"
    model, info = trained_unet(path, data, TINY, device="cpu", progress=False)
    assert not info["reused"] and path.is_file() and info_path(path).is_file()
    stored = json.loads(info_path(path).read_text())
    assert stored["sha256"] == info["sha256"] and stored["settings"]["epochs"] == 2
    split = stored["split"]
    assert set(split) == {"train", "val", "test"}
    assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
    assert {"fg_threshold", "seed_threshold", "seeds"} <= set(model.config["postprocess"])
    assert model.config["postprocess"] == stored["postprocess"]
    stamp = path.stat().st_mtime_ns
    again, info2 = trained_unet(path, data, TINY, device="cpu", progress=False)
    assert info2["reused"] and path.stat().st_mtime_ns == stamp
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # without the annotated data a model of the same settings is still reused
    _, info3 = trained_unet(path, tmp_path / "absent", TINY, device="cpu", progress=False)
    assert info3["reused"]
    # other settings: trained again
    _, info4 = trained_unet(path, data, {**TINY, "seed": 1}, device="cpu", progress=False)
    assert not info4["reused"] and path.stat().st_mtime_ns != stamp
    # a changed file is not reused: its checksum no longer matches
    path.write_bytes(path.read_bytes() + b"x")
    _, info5 = trained_unet(path, data, {**TINY, "seed": 1}, device="cpu", progress=False)
    assert not info5["reused"]
    loaded, described = load_trained_unet(path, device="cpu")
    assert "checked" in described["description"]
    with pytest.raises(InputError, match="unknown U-Net settings"):
        trained_unet(path, data, {"epoch": 3})
    with pytest.raises(InputError, match="index.csv: annotated nuclei index not found"):
        trained_unet(tmp_path / "other.pt", tmp_path / "absent", TINY, progress=False)
