"""Weakly supervised CNN image encoder, trained per fold of held-out conditions.

The encoder classifies the condition of each nucleus crop among the impactful conditions
plus the control (weak supervision); its penultimate layer is the nucleus embedding.

Leakage-free embeddings with K trainings instead of one per condition: every non-control
condition is assigned to exactly one of K folds (:func:`fold_assignment`); the encoder of
fold k is trained without any crop of a fold-k condition (:func:`training_mask`) and then
embeds every nucleus. A condition is therefore always embedded by an encoder that never saw
it; K = number of conditions is leave-one-condition-out. Checkpoints are keyed by
everything that determines them (:func:`load_or_train_fold`), so a rerun trains nothing.

Architectures: ``resnet18`` (torchvision, random init, ``weights=None``, first convolution
adapted to one channel, 512-d embedding) and ``small`` (:class:`SmallCNN`, for fast tests).
Crops (64x64) are area-pooled to ``input_size`` before the network; 32 px keeps a whole
fold's training at a few thousand crops per minute on two CPU cores.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from tqdm.auto import tqdm

from .io import InputError, atomic_path, write_json

__all__ = [
    "CONTROL",
    "ARCHS",
    "EncoderParams",
    "SmallCNN",
    "ResNet18Encoder",
    "build_model",
    "pick_device",
    "fold_classes",
    "training_mask",
    "prepare_crops",
    "augment",
    "balanced_batches",
    "train_encoder",
    "embed",
    "embedding_table",
    "load_or_train_fold",
    "embed_fold",
    "load_encoder",
    "read_encoder_info",
    "untrained_embeddings",
]

CONTROL = "EMPTY"
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


def fold_classes(
    impactful: Sequence[str], held_out: Sequence[str], control: str = CONTROL
) -> list[str]:
    """Training classes of a fold: impactful conditions not held out, plus the control.

    Parameters
    ----------
    impactful : sequence of str
        Impactful conditions of the screen.
    held_out : sequence of str
        Conditions of the fold (never trained on).
    control : str
        Control condition (always a class).

    Returns
    -------
    list of str
        Sorted class names.
    """
    classes = sorted(({str(c) for c in impactful} - {str(c) for c in held_out}) | {control})
    if len(classes) < 2:
        raise ValueError("fewer than two training classes: add impactful conditions")
    return classes


def training_mask(conditions: np.ndarray, exclude: Sequence[str]) -> np.ndarray:
    """Boolean mask of the crops an encoder may see (conditions not excluded).

    Parameters
    ----------
    conditions : numpy.ndarray
        Condition label of every crop.
    exclude : sequence of str
        Held-out conditions.

    Returns
    -------
    numpy.ndarray
        True for crops the encoder may train on.
    """
    return ~np.isin(np.asarray(conditions).astype(str), [str(c) for c in exclude])


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


def augment(x: torch.Tensor, gen: torch.Generator, crop_prob: float = 0.5) -> torch.Tensor:
    """Random crop/shift, dihedral transform, brightness (10 %) and contrast (20 %) per crop.

    Parameters
    ----------
    x : torch.Tensor
        Batch ``(n, 1, h, w)``.
    gen : torch.Generator
        Random generator.
    crop_prob : float
        Probability that a crop is replaced by a random window of 80-100 % of its side,
        resized back (a zoom with a shift).

    Returns
    -------
    torch.Tensor
        Augmented batch.
    """
    n = x.shape[0]
    if crop_prob > 0:
        use = torch.rand(n, generator=gen) < crop_prob
        scale = torch.where(use, 0.8 + 0.2 * torch.rand(n, generator=gen), torch.ones(n))
        shift = (1 - scale)[:, None] * (2 * torch.rand(n, 2, generator=gen) - 1)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = scale
        theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        if use.any():
            grid = F.affine_grid(theta[use], list(x[use].shape), align_corners=False)
            x = x.clone()
            x[use] = F.grid_sample(x[use], grid, align_corners=False)
    k = torch.randint(0, 4, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for kk in range(4):
        for ff in (False, True):
            sel = (k == kk) & (flip == ff)
            if sel.any():
                xs = torch.rot90(x[sel], kk, dims=(2, 3))
                out[sel] = torch.flip(xs, dims=(3,)) if ff else xs
    contrast = 1 + 0.2 * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    bright = 0.1 * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    fg = out > 0
    return torch.where(fg, out * contrast + bright, out)


def balanced_batches(
    y: np.ndarray, per_class: int, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Index batches of one epoch with ``per_class`` draws of every class (balanced).

    Parameters
    ----------
    y : numpy.ndarray
        Integer class of every training crop.
    per_class : int
        Crops drawn per class (with replacement when a class has fewer).
    batch_size : int
        Batch size.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    list of numpy.ndarray
        Positions into ``y``, shuffled, split into batches.
    """
    idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        idx.append(rng.choice(members, per_class, replace=len(members) < per_class))
    order = rng.permutation(np.concatenate(idx))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _val_split(y: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random well per class (of classes with two or more wells) goes to validation."""
    val = np.zeros(len(y), bool)
    for c in np.unique(y):
        wells = np.unique(groups[y == c])
        if len(wells) >= 2:
            val |= (y == c) & (groups == rng.choice(wells))
    return val


@torch.no_grad()
def _refresh_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int, dev) -> None:
    """Recompute BatchNorm running statistics on ``x`` (the current weights' true stats).

    With few optimiser steps per epoch the exponential running averages lag far behind
    the weights, and eval-mode predictions are then close to constant.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size].to(dev).contiguous(memory_format=torch.channels_last))
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m
    model.eval()


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


def train_encoder(
    crops: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    params: EncoderParams = EncoderParams(),
    device: str | None = None,
    progress: bool = True,
    batch_hook: Callable[[str, np.ndarray], None] | None = None,
):
    """Train the encoder to classify conditions, with a validation split grouped by well.

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` training crops (held-out conditions already removed).
    labels : numpy.ndarray
        Condition of each crop; the sorted unique labels are the classes.
    groups : numpy.ndarray
        Well identifier of each crop; one well per class (of classes with two or more)
        goes to validation, so no well is in both splits.
    params : EncoderParams
        Architecture and training parameters.
    device : str, optional
        Device; CUDA when available when None.
    progress : bool
        Show a progress bar.
    batch_hook : callable, optional
        Called as ``batch_hook(split, labels)`` with the condition names of every crop the
        model sees: ``split`` "train" for every training batch, "calibration" for the crops
        that refresh the BatchNorm statistics each epoch and "val" for the validation set;
        e.g. to audit leakage.

    Returns
    -------
    model : torch.nn.Module
        The encoder at its best validation epoch (on the CPU).
    info : dict
        ``classes``, ``history`` (per-epoch loss and validation balanced accuracy),
        ``best_epoch``, ``val_balanced_accuracy``, ``chance``, ``train_crops_per_s``,
        ``n_train_crops``, ``n_val_crops``, ``train_seconds``.
    """
    labels = np.asarray(labels).astype(str)
    groups = np.asarray(groups).astype(str)
    rng = np.random.default_rng([params.seed, 11])
    gen = torch.Generator().manual_seed(params.seed)
    torch.set_flush_denormal(True)  # denormals after a few Adam steps slow CPUs ~10x
    classes = np.unique(labels)
    y = np.searchsorted(classes, labels)
    val = _val_split(y, groups, rng)
    tr_idx = np.flatnonzero(~val)
    dev = pick_device(device)
    model = build_model(params, len(classes)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = -(-len(classes) * params.samples_per_class // params.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda step: (
            0.5 * (1 + np.cos(np.pi * min(step / (params.epochs * steps_per_epoch), 1)))
            if params.cosine
            else 1.0
        ),
    )
    x_all = prepare_crops(crops, params.input_size)
    y_all = torch.from_numpy(y)
    if batch_hook is not None and val.any():
        batch_hook("val", classes[y[val]])
    best, best_state, history, wait, seen, seconds = -np.inf, None, [], 0, 0, 0.0
    t_start = time.perf_counter()
    bar = tqdm(range(params.epochs), desc="train encoder", disable=not progress)
    for epoch in bar:
        model.train()
        t0, losses = time.perf_counter(), []
        for b in balanced_batches(y[tr_idx], params.samples_per_class, params.batch_size, rng):
            b = tr_idx[b]
            if batch_hook is not None:
                batch_hook("train", classes[y[b]])
            xb = augment(x_all[b], gen, params.crop_prob).to(dev)
            xb = xb.contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(xb), y_all[b].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            seen += len(b)
        seconds += time.perf_counter() - t0
        calib = tr_idx[rng.choice(len(tr_idx), min(len(tr_idx), 512), replace=False)]
        if batch_hook is not None:
            batch_hook("calibration", classes[y[calib]])
        _refresh_batchnorm(model, x_all[calib], params.batch_size, dev)
        if val.any():
            logits = embed(model, crops[val], device=str(dev), logits=True)
            score = balanced_accuracy_score(y[val], logits.argmax(1))
        else:
            score = -float(np.mean(losses))
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_bacc": float(score)})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_bacc=f"{score:.3f}")
        if score > best:
            best, wait = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
            if wait >= params.patience:
                break
    model = model.cpu()
    model.load_state_dict(best_state)
    info = {
        "classes": classes.tolist(),
        "history": history,
        "best_epoch": int(np.argmax([h["val_bacc"] for h in history])),
        "val_balanced_accuracy": float(best) if val.any() else None,
        "chance": 1.0 / len(classes),
        "train_crops_per_s": seen / max(seconds, 1e-9),
        "train_seconds": time.perf_counter() - t_start,
        "n_train_crops": int(len(tr_idx)),
        "n_val_crops": int(val.sum()),
        "device": str(dev),
    }
    return model, info


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


def _key(params: EncoderParams, classes: list[str], held_out: list[str], data_key: str) -> str:
    blob = json.dumps(
        {
            "params": asdict(params),
            "classes": sorted(classes),
            "held_out": sorted(held_out),
            "data": data_key,
            "v": 3,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_train_fold(
    crops: np.ndarray,
    nuclei: pd.DataFrame,
    impactful: Sequence[str],
    held_out: Sequence[str],
    out_dir: str | Path,
    data_key: str,
    params: EncoderParams = EncoderParams(),
    device: str | None = None,
    progress: bool = True,
    batch_hook: Callable[[str, np.ndarray], None] | None = None,
):
    """Return the encoder of one fold, trained without ``held_out``, reusing a checkpoint.

    Training crops are those of the impactful conditions not held out plus the control;
    every crop of a held-out condition is removed before the validation split and the
    batches are built. The checkpoint (``encoder.pt``) and ``encoder.json`` go to
    ``out_dir``; when ``encoder.json`` holds the same key (parameters, classes, held-out
    conditions and ``data_key``) and the checkpoint exists, nothing is trained.

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` crops of all nuclei.
    nuclei : pandas.DataFrame
        One row per crop with ``Metadata_Condition``, ``Metadata_Plate``, ``Metadata_Well``.
    impactful : sequence of str
        Impactful conditions (the classes, with the control).
    held_out : sequence of str
        Conditions of this fold (never seen).
    out_dir : path-like
        Fold folder, e.g. ``work_dir/encoders/fold0``.
    data_key : str
        Identifier of the input data (e.g. checksums), part of the checkpoint key.
    params : EncoderParams
        Architecture and training parameters.
    device : str, optional
        Device; chosen automatically when None.
    progress : bool
        Show progress.
    batch_hook : callable, optional
        See :func:`train_encoder`.

    Returns
    -------
    model : torch.nn.Module
        The trained encoder.
    info : dict
        Training information (see :func:`train_encoder`) plus ``key``, ``held_out``,
        ``params``, ``checkpoint`` and ``reused``.
    """
    out_dir = Path(out_dir)
    labels = nuclei["Metadata_Condition"].astype(str).to_numpy()
    held_out = sorted(str(c) for c in held_out)
    classes = fold_classes(impactful, held_out)
    missing = sorted(set(classes) - set(labels))
    if missing:
        raise InputError(
            f"impactful conditions {missing} have no nuclei; check screen/impactful.csv "
            "against nuclei/nuclei.parquet (rerun notebooks 01 and 02)."
        )
    key = _key(params, classes, held_out, data_key)
    ckpt_path, info_path = out_dir / "encoder.pt", out_dir / "encoder.json"
    if ckpt_path.is_file() and info_path.is_file():
        old = json.loads(info_path.read_text())
        if old.get("key") == key:
            model, _ = load_encoder(out_dir)
            return model, {**old, "reused": True}
    keep = np.isin(labels, classes) & training_mask(labels, held_out)
    groups = nuclei["Metadata_Plate"].astype(str) + "/" + nuclei["Metadata_Well"].astype(str)
    model, info = train_encoder(
        crops[keep], labels[keep], groups.to_numpy()[keep], params, device, progress, batch_hook
    )
    if set(info["classes"]) & set(held_out):  # defensive: cannot happen after the mask
        raise RuntimeError("leak: a held-out condition became a training class")
    info.update(key=key, held_out=held_out, params=asdict(params), data_key=data_key)
    with atomic_path(ckpt_path) as tmp:
        torch.save(
            {"state": model.state_dict(), "params": asdict(params), "classes": info["classes"]},
            tmp,
        )
    write_json({**info, "checkpoint": ckpt_path.name}, info_path)
    return model, {**info, "checkpoint": ckpt_path.name, "reused": False}


def embed_fold(
    model: nn.Module,
    crops: np.ndarray,
    nuclei: pd.DataFrame,
    fold_dir: str | Path,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Embed all nuclei with a fold's encoder into ``fold_dir/embeddings.parquet``.

    Skipped when the file exists and ``encoder.json`` records that it was made by the
    current checkpoint (same ``key``) for the same number of nuclei. ``encoder.json`` gains
    ``embeddings_key``, ``n_nuclei``, ``embed_crops_per_s`` and ``embed_seconds``.

    Parameters
    ----------
    model : torch.nn.Module
        The fold's encoder (:func:`load_or_train_fold`).
    crops : numpy.ndarray
        ``(n, h, w)`` crops of all nuclei.
    nuclei : pandas.DataFrame
        One row per crop; its ``Metadata_`` columns go to the table.
    fold_dir : path-like
        Fold folder holding ``encoder.json``.
    device : str, optional
        Device; chosen automatically when None.
    progress : bool
        Show progress.

    Returns
    -------
    dict
        The updated ``encoder.json`` contents, with ``embeddings_reused``.
    """
    fold_dir = Path(fold_dir)
    info_path, out = fold_dir / "encoder.json", fold_dir / "embeddings.parquet"
    info = json.loads(info_path.read_text())
    if out.is_file() and info.get("embeddings_key") == info["key"]:
        if info.get("n_nuclei") == len(nuclei):
            return {**info, "embeddings_reused": True}
    t0 = time.perf_counter()
    emb = embed(model, crops, device=device, progress=progress)
    seconds = time.perf_counter() - t0
    table = embedding_table(nuclei, emb)
    with atomic_path(out) as tmp:
        table.to_parquet(tmp, index=False)
    info.update(
        embeddings_key=info["key"],
        n_nuclei=len(nuclei),
        embed_seconds=seconds,
        embed_crops_per_s=len(nuclei) / max(seconds, 1e-9),
    )
    write_json(info, info_path)
    return {**info, "embeddings_reused": False}


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
            f"{ckpt_path}: not found; run notebooks/04_train_encoder for this fold (same n_folds)."
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
        raise InputError(
            f"{path}: not found; run notebooks/04_train_encoder for this fold (same n_folds)."
        )
    return json.loads(path.read_text())


def untrained_embeddings(
    crops: np.ndarray,
    nuclei: pd.DataFrame,
    params: EncoderParams,
    out_dir: str | Path,
    data_key: str,
    progress: bool = True,
) -> pd.DataFrame:
    """Embeddings of all nuclei by a randomly initialised encoder (a baseline), cached.

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` crops of all nuclei.
    nuclei : pandas.DataFrame
        One row per crop (``Metadata_`` columns kept).
    params : EncoderParams
        Architecture, input size and seed of the random initialisation.
    out_dir : path-like
        Folder for ``embeddings.parquet`` and ``untrained.json``
        (e.g. ``work_dir/encoders/untrained``); reused when the key matches.
    data_key : str
        Identifier of the crop data.
    progress : bool
        Show progress.

    Returns
    -------
    pandas.DataFrame
        ``Metadata_`` columns and ``cnn_*`` embeddings.
    """
    out_dir = Path(out_dir)
    key = _key(params, ["untrained"], [], data_key)
    info_path, out = out_dir / "untrained.json", out_dir / "embeddings.parquet"
    if info_path.is_file() and out.is_file():
        if json.loads(info_path.read_text()).get("key") == key:
            return pd.read_parquet(out)
    model = build_model(params, n_classes=1)
    table = embedding_table(nuclei, embed(model, crops, progress=progress))
    with atomic_path(out) as tmp:
        table.to_parquet(tmp, index=False)
    write_json({"key": key, "params": asdict(params), "n_nuclei": len(nuclei)}, info_path)
    return table
