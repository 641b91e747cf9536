"""Weakly supervised CNN image encoder: condition labels as the pretext task.

The encoder classifies the condition of each nucleus crop; its penultimate layer is the
nucleus embedding. It never sees the conditions it is asked to leave out: those crops are
removed before any batch is built (:func:`training_mask`). Checkpoints are keyed by
everything that determines them, so a rerun with the same inputs trains nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from tqdm.auto import tqdm

from .io import atomic_path

__all__ = [
    "EncoderParams",
    "SmallCNN",
    "pick_device",
    "training_mask",
    "augment",
    "train_encoder",
    "embed",
    "load_or_train_encoder",
]


@dataclass(frozen=True)
class EncoderParams:
    """Training parameters of the image encoder.

    Attributes
    ----------
    width : int
        Channels of the first convolution (doubling twice).
    embedding_dim : int
        Size of the nucleus embedding.
    epochs : int
        Most epochs (early stopping may end sooner).
    samples_per_class : int
        Crops drawn per class each epoch (balanced classes).
    batch_size : int
        Mini-batch size.
    lr, weight_decay : float
        Adam settings.
    patience : int
        Epochs without validation improvement before stopping.
    seed : int
        Random seed (initialisation, sampling, augmentation).
    """

    width: int = 16
    embedding_dim: int = 128
    epochs: int = 12
    samples_per_class: int = 128
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 0


class SmallCNN(nn.Module):
    """A compact CNN for 1-channel 64x64 nucleus crops.

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
            nn.AvgPool2d(2),  # 64 -> 32: nuclei are ~30 px wide; halves the cost
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch ``(n, 1, h, w)``."""
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return embeddings for a batch ``(n, 1, h, w)``."""
        return self.features(x)


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


def training_mask(conditions: np.ndarray, exclude: list[str]) -> np.ndarray:
    """Boolean mask of the crops an encoder may see (conditions not excluded).

    Parameters
    ----------
    conditions : numpy.ndarray
        Condition label of every crop.
    exclude : list of str
        Held-out conditions.

    Returns
    -------
    numpy.ndarray
        True for crops the encoder may train on.
    """
    return ~np.isin(np.asarray(conditions), list(exclude))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random dihedral transform, brightness (10%) and contrast (20%) per crop.

    Parameters
    ----------
    x : torch.Tensor
        Batch ``(n, 1, h, w)``.
    gen : torch.Generator
        Random generator.

    Returns
    -------
    torch.Tensor
        Augmented batch.
    """
    n = x.shape[0]
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


def _balanced_indices(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    idx = [rng.choice(np.flatnonzero(y == c), per_class) for c in np.unique(y)]
    return rng.permutation(np.concatenate(idx))


@torch.no_grad()
def embed(model: SmallCNN, crops: np.ndarray, batch_size: int = 512, device=None, logits=False):
    """Embed crops with a trained encoder.

    Parameters
    ----------
    model : SmallCNN
        Trained encoder.
    crops : numpy.ndarray
        ``(n, h, w)`` crops.
    batch_size : int
        Inference batch size.
    device : str, optional
        Device; chosen automatically when None.
    logits : bool
        Return class logits instead of embeddings.

    Returns
    -------
    numpy.ndarray
        ``(n, embedding_dim)`` embeddings (or ``(n, n_classes)`` logits).
    """
    dev = pick_device(device)
    model = model.to(dev).eval()
    out = []
    for i in range(0, len(crops), batch_size):
        x = torch.from_numpy(np.asarray(crops[i : i + batch_size], np.float32)[:, None]).to(dev)
        out.append((model(x) if logits else model.embed(x)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.head[1].in_features), np.float32)


def train_encoder(
    crops: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    params: EncoderParams = EncoderParams(),
    device: str | None = None,
    progress: bool = True,
):
    """Train the encoder to classify conditions, with a validation split grouped by well.

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` training crops (held-out conditions already removed).
    labels : numpy.ndarray
        Condition of each crop.
    groups : numpy.ndarray
        Well identifier of each crop; one well per condition (where a condition has two
        or more) goes to validation, so no well is in both splits.
    params : EncoderParams
        Training parameters.
    device : str, optional
        Device; CUDA when available when None.
    progress : bool
        Show a progress bar.

    Returns
    -------
    model : SmallCNN
        The encoder at its best validation epoch.
    info : dict
        ``classes``, ``history`` (per-epoch loss and validation balanced accuracy),
        ``best_epoch``, ``val_balanced_accuracy``, ``chance``, ``train_crops_per_s``.
    """
    rng = np.random.default_rng(params.seed)
    torch.manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    classes = np.unique(labels)
    y = np.searchsorted(classes, labels)
    val = np.zeros(len(y), bool)
    for c in range(len(classes)):
        wells = np.unique(groups[y == c])
        if len(wells) >= 2:
            val |= (y == c) & (groups == rng.choice(wells))
    tr = ~val
    dev = pick_device(device)
    model = SmallCNN(len(classes), params.width, params.embedding_dim).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    x_all = torch.from_numpy(np.asarray(crops, np.float32)[:, None])
    y_all = torch.from_numpy(y)
    tr_idx = np.flatnonzero(tr)
    best, best_state, history, wait, seen, seconds = -1.0, None, [], 0, 0, 0.0
    import time

    bar = tqdm(range(params.epochs), desc="train encoder", disable=not progress)
    for epoch in bar:
        model.train()
        order = tr_idx[_balanced_indices(y[tr], params.samples_per_class, rng)]
        t0, losses = time.perf_counter(), []
        for i in range(0, len(order), params.batch_size):
            b = order[i : i + params.batch_size]
            xb = augment(x_all[b], gen).to(dev)
            loss = loss_fn(model(xb), y_all[b].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        seconds += time.perf_counter() - t0
        seen += len(order)
        if val.any():
            pred = embed(model, crops[val], device=dev, logits=True).argmax(1)
            score = balanced_accuracy_score(y[val], pred)
        else:
            score = -float(np.mean(losses))
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_bacc": float(score)})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_bacc=f"{score:.3f}")
        if score > best:
            best, wait = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
            if wait >= params.patience:
                break
    model.load_state_dict(best_state)
    info = {
        "classes": classes.tolist(),
        "history": history,
        "best_epoch": int(np.argmax([h["val_bacc"] for h in history])),
        "val_balanced_accuracy": float(best) if val.any() else None,
        "chance": 1.0 / len(classes),
        "train_crops_per_s": seen / max(seconds, 1e-9),
        "n_train_crops": int(tr.sum()),
        "n_val_crops": int(val.sum()),
    }
    return model.cpu(), info


def _key(params: EncoderParams, exclude: list[str], data_key: str) -> str:
    blob = json.dumps(
        {"params": asdict(params), "exclude": sorted(exclude), "data": data_key, "v": 1},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_train_encoder(
    crops, labels, groups, exclude, ckpt_dir, data_key, params=EncoderParams(), device=None,
    progress=True,
):  # fmt: skip
    """Return the encoder trained without ``exclude``, from a checkpoint when one exists.

    Parameters
    ----------
    crops, labels, groups : numpy.ndarray
        All crops with their condition and well; crops of ``exclude`` are removed here.
    exclude : list of str
        Conditions the encoder must never see.
    ckpt_dir : path-like
        Checkpoint folder.
    data_key : str
        Identifier of the crop data (e.g. a checksum), part of the checkpoint key.
    params : EncoderParams
        Training parameters.
    device : str, optional
        Device; chosen automatically when None.
    progress : bool
        Show progress.

    Returns
    -------
    model : SmallCNN
        The trained encoder.
    info : dict
        Training information (see :func:`train_encoder`), with ``checkpoint`` and
        ``reused``.
    """
    path = Path(ckpt_dir) / f"encoder_{_key(params, exclude, data_key)}.pt"
    if path.is_file():
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        model = SmallCNN(len(ckpt["info"]["classes"]), params.width, params.embedding_dim)
        model.load_state_dict(ckpt["state"])
        return model, {**ckpt["info"], "checkpoint": str(path), "reused": True}
    keep = training_mask(labels, exclude)
    model, info = train_encoder(crops[keep], labels[keep], groups[keep], params, device, progress)
    info.update(exclude=sorted(exclude), params=asdict(params))
    with atomic_path(path) as tmp:
        torch.save({"state": model.state_dict(), "info": info}, tmp)
    return model, {**info, "checkpoint": str(path), "reused": False}
