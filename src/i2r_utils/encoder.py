"""The image encoder: a CNN over nucleus crops whose penultimate layer is the embedding.

Architectures: ``resnet18`` (torchvision, random init, ``weights=None``, first convolution
adapted to one channel, 512-d embedding) and ``small`` (:class:`SmallCNN`, for fast tests).
Crops (64x64) are area-pooled to ``input_size`` before the network; 32 px keeps a whole
fold's training at a few thousand crops per minute on two CPU cores.

Leakage-free embeddings with K trainings instead of one per condition: every non-control
condition is assigned to exactly one of K folds (:func:`i2r_utils.screen.fold_assignment`,
decided once with the impactful conditions); the encoder of fold k is trained
(:mod:`i2r_utils.training`) without any crop of a fold-k condition and then embeds every nucleus
(:func:`embed`, :func:`embedding_table`). A condition is therefore always embedded by an encoder
that never saw it; K = number of conditions is leave-one-condition-out. A trained encoder is
written with :func:`save_encoder` and read back with :func:`load_encoder`, e.g. to embed a new
target's nuclei exactly as the screen's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from tqdm.auto import tqdm

from .io import InputError, atomic_path, write_json

__all__ = [
    "ARCHS",
    "EncoderParams",
    "SmallCNN",
    "ResNet18Encoder",
    "build_model",
    "pick_device",
    "prepare_crops",
    "embed",
    "embedding_table",
    "save_encoder",
    "load_encoder",
    "read_encoder_info",
]

ARCHS = ("resnet18", "small")


@dataclass(frozen=True)
class EncoderParams:
    """Architecture and training parameters of the image encoder.

    Attributes
    ----------
    arch : {"resnet18", "small"}
        Network: torchvision ResNet18 (1-channel stem, random init) or :class:`SmallCNN`.
    input_size : int
        Side in pixels the crops are area-pooled to before the network.
    width, embedding_dim : int
        First-block channels and embedding size of ``small`` (ResNet18: 512-d).
    epochs : int
        Most epochs (early stopping may end sooner).
    samples_per_class : int
        Crops drawn per class each epoch (classes balanced every epoch).
    batch_size : int
        Mini-batch size.
    lr, weight_decay : float
        Adam settings; the learning rate follows a cosine decay over ``epochs`` when
        ``cosine`` is True.
    cosine : bool
        Cosine learning-rate decay (per step, to 0 at the last planned epoch).
    patience : int
        Epochs without validation improvement before stopping.
    crop_prob : float
        Probability of the random crop-and-shift augmentation (window of 80-100 % side).
    seed : int
        Random seed (initialisation, validation split, sampling, augmentation).
    """

    arch: str = "resnet18"
    input_size: int = 32
    width: int = 16
    embedding_dim: int = 128
    epochs: int = 8
    samples_per_class: int = 64
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    cosine: bool = True
    patience: int = 3
    crop_prob: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown encoder arch {self.arch!r}; choose one of {ARCHS}")
        if self.input_size < 16:
            raise ValueError(f"input_size={self.input_size} is too small; use 16 or more")


class SmallCNN(nn.Module):
    """A compact CNN for 1-channel nucleus crops (fast tests).

    Parameters
    ----------
    n_classes : int
        Conditions to classify.
    width : int
        Channels of the first block.
    embedding_dim : int
        Size of the embedding (penultimate layer).
    """

    def __init__(self, n_classes: int, width: int = 32, embedding_dim: int = 128):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        w = width
        self.features = nn.Sequential(
            *block(1, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            nn.MaxPool2d(2),
            *block(2 * w, 4 * w),
            nn.MaxPool2d(2),
            *block(4 * w, embedding_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(embedding_dim, n_classes))
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch ``(n, 1, h, w)``."""
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return embeddings for a batch ``(n, 1, h, w)``."""
        return self.features(x)


class ResNet18Encoder(nn.Module):
    """torchvision ResNet18 with a 1-channel stem, random init (no downloads), 512-d embedding.

    Parameters
    ----------
    n_classes : int
        Conditions to classify.
    """

    def __init__(self, n_classes: int):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.fc = nn.Identity()
        self.backbone = net
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, n_classes))
        self.embedding_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch ``(n, 1, h, w)``."""
        return self.head(self.backbone(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return embeddings for a batch ``(n, 1, h, w)``."""
        return self.backbone(x)


def build_model(params: EncoderParams, n_classes: int) -> nn.Module:
    """Return a freshly initialised encoder (seeded by ``params.seed``).

    Parameters
    ----------
    params : EncoderParams
        Architecture (``arch``, ``width``, ``embedding_dim``, ``input_size``) and seed.
    n_classes : int
        Output classes.

    Returns
    -------
    torch.nn.Module
        The model, with ``input_size`` and ``embedding_dim`` attributes.
    """
    torch.manual_seed(params.seed)
    if params.arch == "resnet18":
        model = ResNet18Encoder(n_classes)
    else:
        model = SmallCNN(n_classes, params.width, params.embedding_dim)
    model.input_size = params.input_size
    return model.to(memory_format=torch.channels_last)  # ~20 % faster convolutions on CPU


def pick_device(device: str | None = None) -> torch.device:
    """Return ``device`` or CUDA when available, else CPU.

    Parameters
    ----------
    device : str, optional
        Explicit device name.

    Returns
    -------
    torch.device
        The device to use.
    """
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_crops(crops: np.ndarray, input_size: int) -> torch.Tensor:
    """Return crops as a float32 tensor ``(n, 1, s, s)`` area-pooled to ``input_size``.

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` crops.
    input_size : int
        Target side in pixels.

    Returns
    -------
    torch.Tensor
        Network input.
    """
    x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))[:, None]
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="area")
    return x


@torch.no_grad()
def embed(
    model: nn.Module,
    crops: np.ndarray,
    batch_size: int = 512,
    device: str | None = None,
    logits: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Embed crops with an encoder (crops are pooled to the model's ``input_size``).

    Parameters
    ----------
    model : torch.nn.Module
        Encoder from :func:`build_model`, :func:`train_encoder` or :func:`load_encoder`.
    crops : numpy.ndarray
        ``(n, h, w)`` crops.
    batch_size : int
        Inference batch size.
    device : str, optional
        Device; chosen automatically when None.
    logits : bool
        Return class logits instead of embeddings.
    progress : bool
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        ``(n, embedding_dim)`` float32 embeddings (or ``(n, n_classes)`` logits).
    """
    dev = pick_device(device)
    model = model.to(dev).eval()
    size = getattr(model, "input_size", crops.shape[-1] if len(crops) else 32)
    out = []
    steps = range(0, len(crops), batch_size)
    for i in tqdm(steps, desc="embed", disable=not progress):
        x = prepare_crops(crops[i : i + batch_size], size).to(dev)
        x = x.contiguous(memory_format=torch.channels_last)
        out.append((model(x) if logits else model.embed(x)).float().cpu().numpy())
    if out:
        return np.concatenate(out)
    return np.zeros((0, model.embedding_dim), np.float32)


def embedding_table(meta: pd.DataFrame, emb: np.ndarray, prefix: str = "cnn_") -> pd.DataFrame:
    """Join per-nucleus ``Metadata_`` columns and embeddings into one profiling table.

    Parameters
    ----------
    meta : pandas.DataFrame
        One row per nucleus; its ``Metadata_`` columns are kept.
    emb : numpy.ndarray
        ``(n, d)`` embeddings in the same row order.
    prefix : str
        Feature column prefix.

    Returns
    -------
    pandas.DataFrame
        ``Metadata_`` columns then ``<prefix>0 .. <prefix>{d-1}`` (float32).
    """
    keep = [c for c in meta.columns if str(c).startswith("Metadata_")]
    feats = pd.DataFrame(
        emb.astype(np.float32), columns=[f"{prefix}{i}" for i in range(emb.shape[1])]
    )
    return pd.concat([meta[keep].reset_index(drop=True), feats], axis=1)


def save_encoder(fold_dir: str | Path, model: nn.Module, params: EncoderParams, info: dict) -> dict:
    """Write a trained encoder: ``encoder.pt`` (checkpoint) and ``encoder.json`` (its record).

    Parameters
    ----------
    fold_dir : path-like
        Destination folder, e.g. ``work_dir/encoders/fold0``.
    model : torch.nn.Module
        The trained encoder.
    params : EncoderParams
        Its architecture and training parameters.
    info : dict
        What to record, at least ``classes`` (e.g. the training information of
        :func:`i2r_utils.training.train_encoder` and the held-out conditions).

    Returns
    -------
    dict
        The contents of ``encoder.json``: ``info`` with ``params`` and ``checkpoint``.
    """
    fold_dir = Path(fold_dir)
    ckpt_path = fold_dir / "encoder.pt"
    with atomic_path(ckpt_path) as tmp:
        torch.save(
            {"state": model.state_dict(), "params": asdict(params), "classes": info["classes"]},
            tmp,
        )
    record = {**info, "params": asdict(params), "checkpoint": ckpt_path.name}
    write_json(record, fold_dir / "encoder.json")
    return record


def load_encoder(fold_dir: str | Path) -> tuple[nn.Module, dict]:
    """Load a trained fold encoder from its folder (``encoder.pt`` + ``encoder.json``).

    This is what another command (e.g. the new-target prediction) uses: the model embeds
    64x64 crops with :func:`embed` exactly as the screen's nuclei were embedded.

    Parameters
    ----------
    fold_dir : path-like
        ``work_dir/encoders/fold<k>``.

    Returns
    -------
    model : torch.nn.Module
        The encoder in eval mode on the CPU.
    info : dict
        Contents of ``encoder.json`` (``classes``, ``held_out``, ``params``,
        ``val_balanced_accuracy``, ...).
    """
    info = read_encoder_info(fold_dir)
    ckpt_path = Path(fold_dir) / "encoder.pt"
    if not ckpt_path.is_file():
        raise InputError(
            f"{ckpt_path}: not found; train the encoder of this fold first (same n_folds)."
        )
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    known = {f.name for f in fields(EncoderParams)}
    params = EncoderParams(**{k: v for k, v in ckpt["params"].items() if k in known})
    model = build_model(params, len(ckpt["classes"]))
    model.load_state_dict(ckpt["state"])
    return model.eval(), info


def read_encoder_info(fold_dir: str | Path) -> dict:
    """Read ``encoder.json`` of a fold, with a clear error when it is missing.

    Parameters
    ----------
    fold_dir : path-like
        ``work_dir/encoders/fold<k>``.

    Returns
    -------
    dict
        The training information (``classes``, ``held_out``, ``params``, ...).
    """
    path = Path(fold_dir) / "encoder.json"
    if not path.is_file():
        raise InputError(f"{path}: not found; train the encoder of this fold first (same n_folds).")
    return json.loads(path.read_text())
