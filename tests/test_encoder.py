import json

import numpy as np
import pandas as pd
import pytest

from i2r_utils.encoder import (
    EncoderParams,
    ResNet18Encoder,
    build_model,
    embed,
    embedding_table,
    load_encoder,
    prepare_inputs,
    read_encoder_info,
    save_encoder,
)
from i2r_utils.io import InputError

SEED = 0
FAST = EncoderParams(arch="small", width=4, embedding_dim=8, epochs=1, samples_per_class=16)


def test_resnet18_one_channel_input_size():
    model = build_model(EncoderParams(input_size=32), n_classes=5)
    assert isinstance(model, ResNet18Encoder) and model.backbone.conv1.in_channels == 1
    emb = embed(model, np.random.default_rng(0).random((3, 64, 64), np.float32))
    assert emb.shape == (3, 512) and np.isfinite(emb).all()
    again = embed(build_model(EncoderParams(input_size=32), 5), np.zeros((1, 64, 64), np.float32))
    assert again.shape == (1, 512)
    with pytest.raises(ValueError, match="arch"):
        EncoderParams(arch="vgg")


def test_embed_logits_and_empty_input():
    model = build_model(FAST, n_classes=3)
    crops = np.random.default_rng(SEED).random((5, 64, 64), np.float32)
    assert embed(model, crops, logits=True).shape == (5, 3)
    assert embed(model, crops, batch_size=2).shape == (5, 8)
    np.testing.assert_allclose(embed(model, crops, batch_size=2), embed(model, crops), atol=1e-6)
    assert embed(model, crops[:0]).shape == (0, 8)


def test_embedding_table_keeps_metadata():
    nuclei = pd.DataFrame(
        {"Metadata_Plate": "P1", "Metadata_Well": ["w1", "w2"], "Metadata_Condition": ["A", "B"]}
    ).assign(x=1.0)
    tab = embedding_table(nuclei, np.ones((2, 3)))
    assert tab.columns.tolist()[-3:] == ["cnn_0", "cnn_1", "cnn_2"] and "x" not in tab


def test_save_and_load_encoder_roundtrip(tmp_path):
    model = build_model(FAST, n_classes=3)
    crops = np.random.default_rng(SEED).random((6, 64, 64), np.float32)
    info = {"classes": ["A", "C", "EMPTY"], "held_out": ["B", "N"], "val_balanced_accuracy": 0.5}
    record = save_encoder(tmp_path, model, FAST, info)
    assert record["checkpoint"] == "encoder.pt" and record["params"]["arch"] == "small"
    assert json.loads((tmp_path / "encoder.json").read_text()) == record
    loaded, linfo = load_encoder(tmp_path)
    assert linfo["held_out"] == ["B", "N"] and read_encoder_info(tmp_path) == linfo
    np.testing.assert_array_equal(embed(loaded, crops), embed(model, crops))
    with pytest.raises(InputError, match="train the encoder of this fold"):
        read_encoder_info(tmp_path / "missing")
    (tmp_path / "encoder.pt").unlink()
    with pytest.raises(InputError, match="encoder.pt: not found"):
        load_encoder(tmp_path)


# --- the two-branch Image2Reg network -------------------------------------------------------
TWO = EncoderParams(arch="image2reg", input_size=32, latent_dim=16)


def _two_branch_inputs(n=4, size=32, seed=SEED):
    rng = np.random.default_rng(seed)
    crops = (rng.integers(0, 256, (n, 64, 64)) / 255).astype(np.float32)
    return crops, rng.integers(0, 256, (n, size, size)).astype(np.uint8)


def test_two_branch_network_is_the_original_layout():
    import torch
    from torch import nn

    from i2r_utils.encoder import IMAGENET_MEAN, IMAGENET_STD, TwoBranchEncoder

    model = build_model(TWO, n_classes=5, weights=False)
    assert isinstance(model, TwoBranchEncoder) and model.embedding_dim == 16
    for branch in (model.nucleus, model.context):
        assert branch.conv1.in_channels == 3 and branch.fc.out_features == 512
    assert (model.fusion.in_features, model.fusion.out_features) == (1024, 16)
    assert [type(m) for m in model.head] == [nn.BatchNorm1d, nn.PReLU, nn.Linear]
    # pseudo-RGB with the ImageNet mean and standard deviation
    rgb = model._rgb(torch.full((1, 1, 2, 2), 0.5))
    want = (0.5 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(rgb[0, :, 0, 0], want)
    # the embedding is the fusion layer's output of the two concatenated branch outputs
    crops, ctx = _two_branch_inputs()
    emb = embed(model, crops, context=ctx)
    x = prepare_inputs(crops, 32, ctx, two_branch=True)
    with torch.no_grad():
        a, b = model.nucleus(model._rgb(x[:, :1])), model.context(model._rgb(x[:, 1:]))
        ref = model.fusion(torch.cat([a, b], 1)).numpy()
    np.testing.assert_allclose(emb, ref, atol=1e-5)
    assert embed(model, crops, context=ctx, logits=True).shape == (4, 5)
    # the context matters: another window, another embedding
    assert not np.allclose(embed(model, crops, context=255 - ctx), emb, atol=1e-4)


def test_two_branch_inputs_resize_crops_as_pil_and_check_the_context():
    from PIL import Image

    crops, ctx = _two_branch_inputs(size=96)
    x = prepare_inputs(crops, 96, ctx, two_branch=True).numpy()
    u8 = np.round(crops * 255).astype(np.uint8)
    pil = np.stack([np.asarray(Image.fromarray(c).resize((96, 96), Image.BILINEAR)) for c in u8])
    assert np.abs(x[:, 0] - pil / 255).max() <= 1.01 / 255  # bilinear, as the original's Resize
    np.testing.assert_allclose(x[:, 1], ctx / 255, atol=1e-7)
    with pytest.raises(InputError, match="context_window > 0"):
        prepare_inputs(crops, 96, None, two_branch=True)
    with pytest.raises(InputError, match="same input_size"):
        prepare_inputs(crops, 64, ctx, two_branch=True)


def test_pretrained_weights_go_into_both_branches(tmp_path):
    import torch
    import torchvision

    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(ref, tmp_path / "resnet18.pth")
    params = EncoderParams(**{**TWO.__dict__, "pretrained_weights": str(tmp_path / "resnet18.pth")})
    model = build_model(params, n_classes=3)
    for branch in (model.nucleus, model.context):
        torch.testing.assert_close(branch.conv1.weight, ref["conv1.weight"])
        torch.testing.assert_close(
            branch.layer4[1].bn2.running_var, ref["layer4.1.bn2.running_var"]
        )
        assert branch.fc.weight.shape == (512, 512)  # replaced, not loaded
    with pytest.raises(InputError, match="file not found"):
        build_model(EncoderParams(**{**params.__dict__, "pretrained_weights": "nope.pth"}), 3)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="not a torchvision ResNet18"):
        build_model(
            EncoderParams(**{**params.__dict__, "pretrained_weights": str(tmp_path / "bad.pth")}), 3
        )


def test_random_init_is_said_once(monkeypatch):
    import warnings

    from i2r_utils import encoder

    monkeypatch.setattr(encoder, "_SAID_RANDOM_INIT", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model(TWO, 3)
        build_model(TWO, 3)
        build_model(TWO, 3, weights=False)
    said = [w for w in caught if "RANDOM initialisation" in str(w.message)]
    assert len(said) == 1 and "pretrained_weights" in str(said[0].message)


def test_two_branch_save_and_load_without_the_weights_file(tmp_path):
    import torch
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "w.pth")
    params = EncoderParams(**{**TWO.__dict__, "pretrained_weights": str(tmp_path / "w.pth")})
    model = build_model(params, n_classes=3)
    crops, ctx = _two_branch_inputs()
    save_encoder(tmp_path / "fold0", model, params, {"classes": ["A", "B", "EMPTY"]})
    (tmp_path / "w.pth").unlink()  # a checkpoint does not need the initial weights
    loaded, info = load_encoder(tmp_path / "fold0")
    assert info["params"]["latent_dim"] == 16 and loaded.two_branch
    np.testing.assert_array_equal(
        embed(loaded, crops, context=ctx), embed(model, crops, context=ctx)
    )
