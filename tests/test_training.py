import numpy as np
import pandas as pd
import pytest
import torch

from i2r_utils.encoder import EncoderParams, embed
from i2r_utils.io import InputError
from i2r_utils.training import (
    augment,
    balanced_batches,
    fold_classes,
    fold_training_set,
    train_encoder,
    training_mask,
    validation_split,
    well_groups,
)

SEED = 0
FAST = EncoderParams(arch="small", width=4, embedding_dim=8, epochs=1, samples_per_class=16)


def toy(n=240, seed=SEED, conds=("EMPTY", "A", "B")):
    """Bright disks of two sizes and a dim class: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    labels = np.array(conds)[np.arange(n) % len(conds)]
    crops = np.zeros((n, 64, 64), np.float32)
    radius = {c: 10 + 6 * (i % 2) for i, c in enumerate(conds)}
    level = {c: 0.9 if i % 3 != 2 else 0.4 for i, c in enumerate(conds)}
    for i, lab in enumerate(labels):
        r = radius[lab] + rng.normal(0, 1)
        crops[i][(yy - 32) ** 2 + (xx - 32) ** 2 <= r * r] = level[lab]
    wells = np.array([f"w{i % 4}" for i in range(n)])
    return crops, labels, wells


def toy_nuclei(labels, wells):
    return pd.DataFrame(
        {
            "Metadata_Plate": "P1",
            "Metadata_Well": wells,
            "Metadata_Site": 1,
            "Metadata_Condition": labels,
        }
    )


def test_fold_classes_and_training_set():
    assert fold_classes(["A", "B", "C"], ["B", "N1"]) == ["A", "C", "EMPTY"]
    with pytest.raises(ValueError, match="two training classes"):
        fold_classes(["A"], ["A"])
    labels = np.array(["EMPTY", "A", "B", "C", "N", "A"])
    assert training_mask(labels, ["B"]).tolist() == [True, True, False, True, True, True]
    keep, classes = fold_training_set(labels, ["A", "B", "C"], ["B", "N"])
    assert classes == ["A", "C", "EMPTY"]
    assert keep.tolist() == [True, True, False, True, False, True]  # N: held out, not a class
    with pytest.raises(InputError, match=r"\['D'\] have no nuclei"):
        fold_training_set(labels, ["A", "D"], [])
    groups = well_groups(toy_nuclei(["A", "B"], ["w1", "w2"]))
    assert groups.tolist() == ["P1/w1", "P1/w2"]


def test_heldout_never_reaches_training_batches():
    conds = ("EMPTY", "A", "B", "C", "N")
    crops, labels, wells = toy(300, conds=conds)
    nuclei = toy_nuclei(labels, wells)
    keep, classes = fold_training_set(labels, ["A", "B", "C"], ["B", "N"])
    groups = well_groups(nuclei)
    seen = {"train": set(), "val": set(), "calibration": set()}
    hook = lambda split, lab: seen[split].update(lab.tolist())  # noqa: E731
    _, info = train_encoder(
        crops[keep], labels[keep], groups[keep], FAST, progress=False, batch_hook=hook
    )
    assert seen["train"] == {"EMPTY", "A", "C"} and seen["val"] <= {"EMPTY", "A", "C"}
    assert seen["calibration"] <= {"EMPTY", "A", "C"}
    assert info["classes"] == classes == ["A", "C", "EMPTY"]
    assert training_mask(labels, ["B"]).sum() == (labels != "B").sum()


def test_validation_split_takes_one_well_per_class():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    groups = np.array(["a", "a", "b", "b", "c", "d", "e", "e"])
    val = validation_split(y, groups, np.random.default_rng(SEED))
    for c in (0, 1):  # one of the two wells of each class with two wells
        assert len(set(groups[(y == c) & val])) == 1 and (~val[y == c]).any()
    assert not val[y == 2].any()  # a class with a single well keeps it for training


def test_encoder_learns_and_is_deterministic():
    crops, labels, wells = toy()
    params = EncoderParams(
        arch="small", width=8, embedding_dim=16, epochs=2, samples_per_class=128, lr=5e-3
    )
    _, info = train_encoder(crops, labels, wells, params, progress=False)
    assert info["val_balanced_accuracy"] > 0.8  # chance 1/3, on wells never trained on
    assert info["chance"] == pytest.approx(1 / 3) and info["n_val_crops"] > 0
    m1, _ = train_encoder(crops, labels, wells, FAST, progress=False)
    m2, _ = train_encoder(crops, labels, wells, FAST, progress=False)
    assert np.array_equal(embed(m1, crops[:8]), embed(m2, crops[:8]))
    assert embed(m1, crops).shape == (len(crops), 8)


def test_early_stopping_keeps_the_best_epoch():
    crops, labels, wells = toy(120)
    params = EncoderParams(arch="small", width=4, embedding_dim=8, epochs=6, patience=1,
                           samples_per_class=16, lr=0.0)  # fmt: skip
    _, info = train_encoder(crops, labels, wells, params, progress=False)
    scores = [h["val_bacc"] for h in info["history"]]
    assert len(scores) < 6  # no learning: stops after `patience` epochs without improvement
    assert info["val_balanced_accuracy"] == max(scores) and info["best_epoch"] == 0


def test_balanced_batches_balance_classes():
    y = np.array([0] * 90 + [1] * 5 + [2] * 20)
    batches = balanced_batches(y, 30, 16, np.random.default_rng(0))
    drawn = y[np.concatenate(batches)]
    assert np.bincount(drawn).tolist() == [30, 30, 30] and max(map(len, batches)) == 16


def test_augment_keeps_shape_and_background():
    x = torch.zeros(8, 1, 16, 16)
    x[:, :, 4:8, 4:10] = 0.5
    out = augment(x, torch.Generator().manual_seed(0), crop_prob=0.0)
    assert out.shape == x.shape and (out == 0).sum() == (x == 0).sum()
    zoom = augment(x, torch.Generator().manual_seed(0), crop_prob=1.0)
    assert zoom.shape == x.shape and not torch.equal(zoom, out)
    same = augment(x, torch.Generator().manual_seed(0), crop_prob=1.0)
    assert torch.equal(zoom, same)
