import numpy as np
import torch

from i2r_utils.encoder import (
    EncoderParams,
    augment,
    embed,
    load_or_train_encoder,
    train_encoder,
    training_mask,
)  # fmt: skip


def toy(n=240, seed=0):
    """Two bright-disk sizes and a dim class: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    labels = np.array(["EMPTY", "A", "B"])[np.arange(n) % 3]
    crops = np.zeros((n, 64, 64), np.float32)
    for i, lab in enumerate(labels):
        r = {"EMPTY": 10, "A": 16, "B": 10}[lab] + rng.normal(0, 1)
        crops[i][(yy - 32) ** 2 + (xx - 32) ** 2 <= r * r] = 0.9 if lab != "B" else 0.4
    groups = np.array([f"w{i % 4}" for i in range(n)])
    return crops, labels, groups


def test_heldout_never_reaches_training(tmp_path, monkeypatch):
    crops, labels, groups = toy()
    seen = []
    import i2r_utils.encoder as enc

    real = enc.train_encoder
    monkeypatch.setattr(
        enc, "train_encoder", lambda c, y, g, *a, **k: (seen.extend(y), real(c, y, g, *a, **k))[1]
    )
    params = EncoderParams(epochs=1, samples_per_class=16, width=4, embedding_dim=8)
    model, info = load_or_train_encoder(
        crops, labels, groups, ["B"], tmp_path, "k", params, progress=False
    )
    assert "B" not in seen and "B" not in info["classes"] and not info["reused"]
    assert training_mask(labels, ["B"]).sum() == (labels != "B").sum()
    _, again = load_or_train_encoder(
        crops, labels, groups, ["B"], tmp_path, "k", params, progress=False
    )
    assert again["reused"] and np.allclose(embed(model, crops[:5]), embed(_, crops[:5]))


def test_encoder_learns_and_is_deterministic():
    crops, labels, groups = toy()
    params = EncoderParams(epochs=5, samples_per_class=256, width=8, embedding_dim=16, lr=5e-3)
    m1, info = train_encoder(crops, labels, groups, params, progress=False)
    assert info["val_balanced_accuracy"] > 0.6  # chance 1/3, on wells never trained on
    quick = EncoderParams(epochs=1, samples_per_class=32, width=8, embedding_dim=16)
    m1, _ = train_encoder(crops, labels, groups, quick, progress=False)
    m2, _ = train_encoder(crops, labels, groups, quick, progress=False)
    assert np.allclose(embed(m1, crops[:8]), embed(m2, crops[:8]), atol=1e-5)
    assert embed(m1, crops).shape == (len(crops), 16)


def test_augment_keeps_shape_and_background():
    x = torch.zeros(8, 1, 16, 16)
    x[:, :, 4:8, 4:10] = 0.5
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and (out == 0).sum() == (x == 0).sum()
