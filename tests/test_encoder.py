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
