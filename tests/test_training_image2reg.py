"""The original training schedule: under-sampling, grouped splits, weights, flips, stopping."""

import numpy as np
import pytest
import torch

from i2r_utils import training_image2reg as t2r
from i2r_utils.encoder import embed
from i2r_utils.io import InputError
from i2r_utils.training import image_groups, train_encoder
from i2r_utils.training_image2reg import (
    SCHEDULE,
    class_weights,
    flip_batch,
    grouped_splits,
    image2reg_params,
    train_image2reg,
    undersample_control,
)

SEED = 0


def toy(n=360, seed=SEED, conds=("EMPTY", "EMPTY", "A", "B")):
    """Disks of two sizes (A large, EMPTY and B small; B dim) in 30 field images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    labels = np.array(conds)[np.arange(n) % len(conds)]
    radius, level = {"EMPTY": 10, "A": 16, "B": 10}, {"EMPTY": 0.9, "A": 0.9, "B": 0.4}
    crops = np.zeros((n, 64, 64), np.float32)
    for i, lab in enumerate(labels):
        r = radius[lab] + rng.normal(0, 1)
        crops[i][(yy - 32) ** 2 + (xx - 32) ** 2 <= r * r] = level[lab]
    images = np.array([f"P1/w{i % 10}/{i % 3}" for i in range(n)])
    return crops, labels, images


def test_schedule_is_the_originals():
    p = image2reg_params(arch="image2reg", input_size=224, epochs=300)
    assert (p.lr, p.weight_decay, p.batch_size, p.patience, p.cosine) == (1e-5, 1e-3, 64, 5, False)
    assert p.training == "image2reg" and p.latent_dim == 1024 and p.pretrained_weights is None
    assert SCHEDULE["batch_size"] == 64


def test_control_is_undersampled_to_the_largest_other_class():
    labels = np.array(["EMPTY"] * 50 + ["A"] * 12 + ["B"] * 7)
    keep = undersample_control(labels, np.random.default_rng(0))
    kept = labels[keep]
    assert (kept == "EMPTY").sum() == 12 and (kept == "A").sum() == 12 and (kept == "B").sum() == 7
    assert np.all(np.diff(keep) > 0)
    few = np.array(["EMPTY"] * 3 + ["A"] * 12)
    np.testing.assert_array_equal(undersample_control(few, np.random.default_rng(0)), np.arange(15))


def test_splits_are_grouped_by_image_and_60_20_20():
    rng = np.random.default_rng(1)
    groups = np.repeat([f"img{i}" for i in range(40)], 10)
    y = np.repeat(rng.integers(0, 4, 40), 10)
    tr, va, te = grouped_splits(y, groups)
    assert len(np.intersect1d(tr, va)) == len(np.intersect1d(tr, te)) == 0
    assert sorted(np.concatenate([tr, va, te])) == list(range(400))
    for a, b in ((tr, va), (tr, te), (va, te)):
        assert not set(groups[a]) & set(groups[b])
    assert abs(len(te) - 80) <= 20 and abs(len(va) - 80) <= 20
    with pytest.raises(InputError, match="field images"):
        grouped_splits(y[:30], groups[:30])


def test_class_weights_are_inverse_frequencies_summing_to_one():
    w = class_weights(np.array([0] * 10 + [1] * 30), 3)
    np.testing.assert_allclose(w, [0.75, 0.25, 0.0])
    assert w.dtype == np.float32


def test_flips_are_drawn_per_sample_and_branch():
    x = torch.arange(64 * 2 * 3 * 3, dtype=torch.float32).reshape(64, 2, 3, 3)
    out = flip_batch(x, torch.Generator().manual_seed(0))
    kinds = np.zeros((64, 2), int)
    for i in range(64):
        for c in range(2):
            options = [x[i, c], x[i, c].flip(-1), x[i, c].flip(-2), x[i, c].flip(-1, -2)]
            match = [k for k, o in enumerate(options) if torch.equal(out[i, c], o)]
            assert len(match) == 1
            kinds[i, c] = match[0]
    assert len(np.unique(kinds)) == 4 and (kinds[:, 0] != kinds[:, 1]).any()


def test_trains_with_full_batches_only_and_reports_test_accuracy():
    crops, labels, images = toy()
    seen = {"train": [], "val": [], "test": []}
    params = image2reg_params(arch="small", width=4, embedding_dim=8, epochs=3, lr=3e-3,
                              batch_size=32)  # fmt: skip
    model, info = train_encoder(
        crops, labels, images, params, progress=False,
        batch_hook=lambda split, labs: seen[split].append(labs),
    )  # fmt: skip
    assert info["training"] == "image2reg" and info["n_control_dropped"] == 180 - 90
    assert {len(b) for b in seen["train"]} == {32}
    assert len(seen["train"]) == 3 * (info["n_train_crops"] // 32)
    assert info["n_train_crops"] + info["n_val_crops"] + info["n_test_crops"] == 270
    assert info["val_balanced_accuracy"] > 0.5 and info["test_balanced_accuracy"] > 0.5
    assert sum(info["class_weights"].values()) == pytest.approx(1, abs=1e-5)
    assert embed(model, crops[:3]).shape == (3, 8)


def test_early_stopping_after_more_than_patience_epochs_restores_the_best(monkeypatch):
    crops, labels, images = toy(n=200)
    scores = iter([0.4, 0.6, 0.5, 0.6, 0.55, 0.5, 0.5, 0.5, 0.9, 0.9])
    states = []

    def fake_score(model, data, idx, dev):
        if len(idx) and len(states) < 20:
            states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(t2r, "_score", fake_score)
    params = image2reg_params(arch="small", width=4, embedding_dim=8, epochs=20, lr=1e-2,
                              batch_size=32)  # fmt: skip
    model, info = train_image2reg(crops, labels, images, params, progress=False)
    # best at epoch 1; epochs 2..7 do not improve: the 6th (> 5) stops training
    assert len(info["history"]) == 8 and info["best_epoch"] == 1
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, states[1][k])


def test_two_branch_needs_context_and_enough_nuclei():
    crops, labels, images = toy(n=120)
    params = image2reg_params(arch="image2reg", input_size=32, latent_dim=8, epochs=1)
    with pytest.raises(InputError, match="context windows"):
        train_encoder(crops, labels, images, params, progress=False)
    ctx = np.zeros((len(crops), 32, 32), np.uint8)
    with pytest.raises(InputError, match="fewer than one batch of 64"):
        train_encoder(crops, labels, images, params, progress=False, context=ctx)


def test_image_groups():
    import pandas as pd

    nuclei = pd.DataFrame({"Metadata_Plate": ["P1", "P1"], "Metadata_Well": ["A01", "A01"],
                           "Metadata_Site": [1, 2]})  # fmt: skip
    assert image_groups(nuclei).tolist() == ["P1/A01/1", "P1/A01/2"]
