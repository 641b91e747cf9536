import json

import numpy as np
import pandas as pd
import pytest
import torch

from i2r_utils.encoder import (
    EncoderParams,
    ResNet18Encoder,
    augment,
    balanced_batches,
    build_model,
    embed,
    embedding_table,
    fold_assignment,
    fold_classes,
    load_encoder,
    load_or_train_fold,
    train_encoder,
    training_mask,
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


def test_fold_assignment_partitions_and_loo():
    conds = ["EMPTY", "A", "B", "C", "D", "E", "N1", "N2"] * 3
    fa = fold_assignment(conds, 3, seed=1, impactful=["A", "B", "C", "D", "E"])
    assert sorted(fa.Metadata_Condition) == ["A", "B", "C", "D", "E", "N1", "N2"]
    assert fa.Metadata_Fold.value_counts().max() - fa.Metadata_Fold.value_counts().min() <= 1
    imp_per_fold = fa[fa.Metadata_Impactful].Metadata_Fold.value_counts()
    assert imp_per_fold.max() - imp_per_fold.min() <= 1  # classes spread evenly
    assert fa.equals(fold_assignment(conds, 3, seed=1, impactful=["A", "B", "C", "D", "E"]))
    loo = fold_assignment(conds, 7, seed=0)
    assert loo.Metadata_Fold.nunique() == 7 and loo.Metadata_Fold.value_counts().eq(1).all()
    with pytest.raises(ValueError, match="n_folds"):
        fold_assignment(conds, 8)
    assert fold_classes(["A", "B", "C"], ["B", "N1"]) == ["A", "C", "EMPTY"]


def test_heldout_never_reaches_training_batches(tmp_path):
    conds = ("EMPTY", "A", "B", "C", "N")
    crops, labels, wells = toy(300, conds=conds)
    nuclei = toy_nuclei(labels, wells)
    seen = {"train": set(), "val": set(), "calibration": set()}
    hook = lambda split, lab: seen[split].update(lab.tolist())  # noqa: E731
    model, info = load_or_train_fold(
        crops, nuclei, ["A", "B", "C"], ["B", "N"], tmp_path, "k", FAST, progress=False,
        batch_hook=hook,
    )  # fmt: skip
    assert seen["train"] == {"EMPTY", "A", "C"} and seen["val"] <= {"EMPTY", "A", "C"}
    assert seen["calibration"] <= {"EMPTY", "A", "C"}
    assert info["classes"] == ["A", "C", "EMPTY"] and info["held_out"] == ["B", "N"]
    assert not info["reused"] and (tmp_path / "encoder.pt").is_file()
    assert json.loads((tmp_path / "encoder.json").read_text())["key"] == info["key"]
    assert training_mask(labels, ["B"]).sum() == (labels != "B").sum()
    # a rerun with the same parameters and data trains nothing
    seen2 = []
    again_model, again = load_or_train_fold(
        crops, nuclei, ["A", "B", "C"], ["B", "N"], tmp_path, "k", FAST, progress=False,
        batch_hook=lambda s, lab: seen2.append(s),
    )  # fmt: skip
    assert again["reused"] and seen2 == []
    assert np.allclose(embed(model, crops[:5]), embed(again_model, crops[:5]))
    loaded, linfo = load_encoder(tmp_path)
    assert linfo["held_out"] == ["B", "N"]
    assert np.allclose(embed(loaded, crops[:5]), embed(model, crops[:5]))
    # other data -> retrained
    _, other = load_or_train_fold(
        crops, nuclei, ["A", "B", "C"], ["B", "N"], tmp_path, "k2", FAST, progress=False
    )
    assert not other["reused"]


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


def test_resnet18_one_channel_input_size():
    model = build_model(EncoderParams(input_size=32), n_classes=5)
    assert isinstance(model, ResNet18Encoder) and model.backbone.conv1.in_channels == 1
    emb = embed(model, np.random.default_rng(0).random((3, 64, 64), np.float32))
    assert emb.shape == (3, 512) and np.isfinite(emb).all()
    again = embed(build_model(EncoderParams(input_size=32), 5), np.zeros((1, 64, 64), np.float32))
    assert again.shape == (1, 512)
    with pytest.raises(ValueError, match="arch"):
        EncoderParams(arch="vgg")


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


def test_embedding_table_keeps_metadata():
    nuclei = toy_nuclei(np.array(["A", "B"]), np.array(["w1", "w2"])).assign(x=1.0)
    tab = embedding_table(nuclei, np.ones((2, 3)))
    assert tab.columns.tolist()[-3:] == ["cnn_0", "cnn_1", "cnn_2"] and "x" not in tab


def test_embed_fold_and_untrained_are_cached(tmp_path):
    from i2r_utils.encoder import embed_fold, read_encoder_info, untrained_embeddings

    crops, labels, wells = toy(60)
    nuclei = toy_nuclei(labels, wells)
    model, _ = load_or_train_fold(
        crops, nuclei, ["A", "B"], [], tmp_path, "k", FAST, progress=False
    )
    first = embed_fold(model, crops, nuclei, tmp_path, progress=False)
    table = pd.read_parquet(tmp_path / "embeddings.parquet")
    assert not first["embeddings_reused"] and table.shape == (60, 4 + 8)
    assert embed_fold(model, crops, nuclei, tmp_path, progress=False)["embeddings_reused"]
    assert read_encoder_info(tmp_path)["n_nuclei"] == 60
    with pytest.raises(Exception, match="04_train_encoder"):
        read_encoder_info(tmp_path / "missing")
    unt = untrained_embeddings(crops, nuclei, FAST, tmp_path / "u", "k", progress=False)
    again = untrained_embeddings(crops, nuclei, FAST, tmp_path / "u", "k", progress=False)
    assert unt.equals(again) and unt.filter(like="cnn_").shape == (60, 8)
