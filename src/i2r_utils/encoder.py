"""The image encoder: a CNN over nucleus crops whose penultimate layer is the embedding.

Architectures: ``resnet18`` (torchvision, random init, ``weights=None``, first convolution
adapted to one channel, 512-d embedding), ``small`` (:class:`SmallCNN`, for fast tests) and
``image2reg`` (:class:`TwoBranchEncoder`, the original Image2Reg network: a ResNet18 on the
nucleus crop and one on its context window, fused by a linear layer whose output is the
embedding). Crops (64x64) are area-pooled to ``input_size`` before the one-branch networks;
32 px keeps a whole fold's training at a few thousand crops per minute on two CPU cores.
The two-branch network resizes crops bilinearly to ``input_size`` (224 in the original) and
reads context windows stored at that size (:mod:`i2r_utils.context`).

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
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .io import InputError, save_torch, write_json
from .progress import tqdm

__all__ = [
    "ARCHS",
    "TRAININGS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EncoderParams",
    "SmallCNN",
    "ResNet18Encoder",
    "TwoBranchEncoder",
    "load_pretrained",
    "build_model",
    "pick_device",
    "prepare_crops",
    "prepare_inputs",
    "embed",
    "embedding_table",
    "save_encoder",
    "load_encoder",
    "read_encoder_info",
]

ARCHS = ("resnet18", "small", "image2reg")
TRAININGS = ("i2r", "image2reg")  # i2r's recipe | the original schedule (training_image2reg)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SAID_RANDOM_INIT = False  # the random-init notice is given once per process


@dataclass(frozen=True)
class EncoderParams:
    """Architecture and training parameters of the image encoder.

    Attributes
    ----------
    arch : {"resnet18", "small", "image2reg"}
        Network: torchvision ResNet18 (1-channel stem, random init), :class:`SmallCNN` or
        :class:`TwoBranchEncoder` (nucleus crop + context window, the original).
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
    latent_dim : int
        Embedding size of ``image2reg`` (output of the fusion layer; 1024 in the original).
    pretrained_weights : str or None
        ``image2reg``: a torchvision ResNet18 state dict (e.g. ImageNet weights) loaded
        into both branches; None: random initialisation (said once).
    training : {"i2r", "image2reg"}
        Training recipe: i2r's (:func:`i2r_utils.training.train_encoder`) or the original
        schedule (:mod:`i2r_utils.training_image2reg`).
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
    latent_dim: int = 1024
    pretrained_weights: str | None = None
    training: str = "i2r"

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown encoder arch {self.arch!r}; choose one of {ARCHS}")
        if self.training not in TRAININGS:
            raise ValueError(f"unknown training {self.training!r}; choose one of {TRAININGS}")
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


def _resnet18_branch() -> nn.Module:
    """Return a torchvision ResNet18 (3-channel stem) whose fc is a fresh 512-output layer."""
    net = torchvision.models.resnet18(weights=None)
    net.fc = nn.Linear(512, 512)
    return net


def load_pretrained(branch: nn.Module, path: str | Path) -> None:
    """Load a torchvision ResNet18 state dict (e.g. ImageNet weights) into a branch, fc aside.

    Parameters
    ----------
    branch : torch.nn.Module
        A branch of :class:`TwoBranchEncoder` (its fc stays freshly initialised, as the
        original replaces it).
    path : path-like
        ``.pth`` file with the state dict, read with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"pretrained_weights = {str(path)!r}: file not found; give a torchvision ResNet18 "
            "state dict (e.g. resnet18-f37072fd.pth) or null for random initialisation."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a state dict of tensors; give a ResNet18 state dict.")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = branch.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that do not fit
        missing, unexpected = [str(err).splitlines()[-1].strip()], []
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise InputError(
            f"{path}: not a torchvision ResNet18 state dict (missing or wrong {missing[:3]}, "
            f"unexpected {list(unexpected)[:3]}); give resnet18 weights."
        )


class TwoBranchEncoder(nn.Module):
    """Image2Reg's network: two ResNet18 branches (nucleus, context) fused by a linear layer.

    Input ``(n, 2, s, s)`` in [0, 1]: channel 0 the nucleus crop, channel 1 its context
    window. Each is replicated to three channels (pseudo-RGB), normalised with the ImageNet
    mean and standard deviation and passed through its own ResNet18 whose fc gives 512
    values; the two are concatenated and a linear layer 1024 -> ``latent_dim`` gives the
    embedding. The classifier head is BatchNorm1d -> PReLU -> linear.

    Parameters
    ----------
    n_classes : int
        Conditions to classify.
    latent_dim : int
        Embedding size.
    """

    two_branch = True

    def __init__(self, n_classes: int, latent_dim: int = 1024):
        super().__init__()
        self.nucleus = _resnet18_branch()
        self.context = _resnet18_branch()
        self.fusion = nn.Linear(1024, latent_dim)
        self.head = nn.Sequential(
            nn.BatchNorm1d(latent_dim), nn.PReLU(), nn.Linear(latent_dim, n_classes)
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.embedding_dim = latent_dim

    def _rgb(self, x: torch.Tensor) -> torch.Tensor:
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return the fusion-layer output (the embedding) for a batch ``(n, 2, s, s)``."""
        a = self.nucleus(self._rgb(x[:, :1]))
        b = self.context(self._rgb(x[:, 1:2]))
        return self.fusion(torch.cat([a, b], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch ``(n, 2, s, s)``."""
        return self.head(self.embed(x))


def _say_random_init() -> None:
    global _SAID_RANDOM_INIT
    if not _SAID_RANDOM_INIT:
        _SAID_RANDOM_INIT = True
        warnings.warn(
            "image2reg encoder: pretrained_weights is null, so both ResNet18 branches start "
            "from RANDOM initialisation instead of the original's ImageNet weights; give a "
            "torchvision resnet18 state dict as pretrained_weights to match it.",
            stacklevel=3,
        )


def build_model(params: EncoderParams, n_classes: int, weights: bool = True) -> nn.Module:
    """Return a freshly initialised encoder (seeded by ``params.seed``).

    Parameters
    ----------
    params : EncoderParams
        Architecture (``arch``, ``width``, ``embedding_dim``, ``latent_dim``,
        ``input_size``, ``pretrained_weights``) and seed.
    n_classes : int
        Output classes.
    weights : bool
        Load ``params.pretrained_weights`` (False when a checkpoint follows).

    Returns
    -------
    torch.nn.Module
        The model, with ``input_size`` and ``embedding_dim`` attributes.
    """
    torch.manual_seed(params.seed)
    if params.arch == "resnet18":
        model = ResNet18Encoder(n_classes)
    elif params.arch == "image2reg":
        model = TwoBranchEncoder(n_classes, params.latent_dim)
        if weights and params.pretrained_weights:
            load_pretrained(model.nucleus, params.pretrained_weights)
            load_pretrained(model.context, params.pretrained_weights)
        elif weights:
            _say_random_init()
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


def prepare_inputs(
    crops: np.ndarray, input_size: int, context: np.ndarray | None = None, two_branch=False
) -> torch.Tensor:
    """Return the network input of a batch: crops alone, or crops and context windows.

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` crops in [0, 1].
    input_size : int
        Side of the network input.
    context : numpy.ndarray, optional
        ``(n, input_size, input_size)`` uint8 context windows (two-branch networks).
    two_branch : bool
        Build the ``(n, 2, s, s)`` input of :class:`TwoBranchEncoder`: crops resized
        bilinearly (as the original resizes them), context windows divided by 255.

    Returns
    -------
    torch.Tensor
        ``(n, 1, s, s)`` (area-pooled crops, :func:`prepare_crops`) or ``(n, 2, s, s)``.
    """
    if not two_branch:
        return prepare_crops(crops, input_size)
    if context is None or len(context) != len(crops):
        raise InputError(
            "the two-branch (image2reg) encoder needs a context window per crop; run the "
            "nuclei preprocessing with context_window > 0."
        )
    if context.shape[1:] != (input_size, input_size):
        raise InputError(
            f"context windows are {context.shape[1]} px but input_size = {input_size}; run "
            "the nuclei preprocessing with the same input_size."
        )
    x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))[:, None]
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True)
    ctx = torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32))[:, None] / 255
    return torch.cat([x.clamp(0, 1), ctx], dim=1)


@torch.no_grad()
def embed(
    model: nn.Module,
    crops: np.ndarray,
    batch_size: int = 512,
    device: str | None = None,
    logits: bool = False,
    progress: bool = False,
    context: np.ndarray | None = None,
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
    context : numpy.ndarray, optional
        ``(n, s, s)`` uint8 context windows, required by the two-branch encoder.

    Returns
    -------
    numpy.ndarray
        ``(n, embedding_dim)`` float32 embeddings (or ``(n, n_classes)`` logits).
    """
    dev = pick_device(device)
    model = model.to(dev).eval()
    size = getattr(model, "input_size", crops.shape[-1] if len(crops) else 32)
    two = getattr(model, "two_branch", False)
    out = []
    steps = range(0, len(crops), batch_size)
    for i in tqdm(steps, desc="embed", disable=not progress):
        ctx = None if context is None else context[i : i + batch_size]
        x = prepare_inputs(crops[i : i + batch_size], size, ctx, two).to(dev)
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
    save_torch(
        {"state": model.state_dict(), "params": asdict(params), "classes": info["classes"]},
        ckpt_path,
    )
    record = {**info, "params": asdict(params), "checkpoint": ckpt_path.name}
    write_json(record, fold_dir / "encoder.json")
    return record


def load_encoder(fold_dir: str | Path) -> tuple[nn.Module, dict]:
    """Load a trained fold encoder from its folder (``encoder.pt`` + ``encoder.json``).

    This is what another command (e.g. the new-target prediction) uses: the model embeds
    64x64 crops with :func:`embed` exactly as the screen's nuclei were embedded (a
    two-branch model also needs their context windows, ``model.two_branch``).

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
    model = build_model(params, len(ckpt["classes"]), weights=False)
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
