"""The original Image2Reg training schedule of the image encoder (``training: image2reg``).

The schedule of the original leave-one-target-out image models, step by step:

1. :func:`undersample_control`: the control (``EMPTY``) is under-sampled at random to the
   size of the largest other class, before anything else.
2. :func:`grouped_splits`: 60/20/20 train/validation/test split grouped by field image:
   the first fold of a 5-fold ``StratifiedGroupKFold`` is the test set, the first fold of a
   4-fold one over the rest the validation set (no shuffling, as the original).
3. :func:`class_weights`: cross-entropy weighted by the inverse class frequency of the
   training set, weights normalised to sum 1.
4. Every epoch the training nuclei are shuffled and cut into batches of 64, the last
   incomplete batch dropped; each input is flipped horizontally and vertically at random,
   each branch on its own (:func:`flip_batch`); Adam, learning rate 1e-5, weight decay
   1e-3, constant learning rate (:data:`SCHEDULE`).
5. After each epoch the validation balanced accuracy is measured in evaluation mode (the
   BatchNorm running statistics, no recalibration); training stops once it has not improved
   for more than ``patience`` (5) epochs, and the best epoch's weights are restored. The test
   balanced accuracy of those weights is reported.

Deviation: the original's validation and test loaders also drop their last incomplete batch;
here every validation and test nucleus is scored (tiny screens have fewer than 64).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from .columns import CONTROL
from .encoder import EncoderParams, build_model, embed, pick_device, prepare_inputs
from .io import InputError
from .progress import tqdm

__all__ = [
    "SCHEDULE",
    "image2reg_params",
    "undersample_control",
    "grouped_splits",
    "class_weights",
    "flip_batch",
    "train_image2reg",
]

#: The original schedule's optimiser and early-stopping settings (LOTO models).
SCHEDULE = {"lr": 1e-5, "weight_decay": 1e-3, "batch_size": 64, "patience": 5, "cosine": False}


def image2reg_params(**fields) -> EncoderParams:
    """Return encoder parameters with the original schedule (:data:`SCHEDULE`).

    Parameters
    ----------
    **fields
        Other :class:`~i2r_utils.encoder.EncoderParams` fields (``arch``, ``input_size``,
        ``epochs``, ``latent_dim``, ``seed``, ...), applied last.

    Returns
    -------
    EncoderParams
        The parameters.
    """
    return EncoderParams(**{**SCHEDULE, "training": "image2reg", **fields})


def undersample_control(
    labels: np.ndarray, rng: np.random.Generator, control: str = CONTROL
) -> np.ndarray:
    """Positions kept after under-sampling the control to the largest other class.

    Parameters
    ----------
    labels : numpy.ndarray
        Condition of every nucleus.
    rng : numpy.random.Generator
        Draws the control nuclei kept.
    control : str
        Control label.

    Returns
    -------
    numpy.ndarray
        Sorted positions of the nuclei kept (all nuclei of the other classes).
    """
    labels = np.asarray(labels).astype(str)
    is_ctrl = labels == control
    others = labels[~is_ctrl]
    if not is_ctrl.any() or not len(others):
        return np.arange(len(labels))
    largest = int(np.unique(others, return_counts=True)[1].max())
    ctrl = np.flatnonzero(is_ctrl)
    if len(ctrl) > largest:
        ctrl = rng.choice(ctrl, largest, replace=False)
    return np.sort(np.concatenate([np.flatnonzero(~is_ctrl), ctrl]))


def grouped_splits(
    y: np.ndarray, groups: np.ndarray, val_size: float = 0.2, test_size: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation/test positions grouped by field image, stratified by class.

    Parameters
    ----------
    y : numpy.ndarray
        Class of every nucleus.
    groups : numpy.ndarray
        Field image of every nucleus (all nuclei of an image land in one split).
    val_size, test_size : float
        Fractions (0.2 and 0.2: 60/20/20).

    Returns
    -------
    train, val, test : numpy.ndarray
        Positions into ``y``.
    """
    y, groups = np.asarray(y), np.asarray(groups).astype(str)
    n_test, n_val = int(1.0 / test_size), int((1.0 - test_size) / val_size)
    if len(np.unique(groups)) < n_test + n_val - 1:
        raise InputError(
            f"{len(np.unique(groups))} field images: the grouped 60/20/20 split needs at "
            f"least {n_test + n_val - 1}; use more images (or training: i2r)."
        )
    with warnings.catch_warnings():  # few images per class: sklearn warns, splits anyway
        warnings.filterwarnings("ignore", "The least populated class")
        rest, test = next(StratifiedGroupKFold(n_splits=n_test).split(y, y, groups))
        tr, val = next(StratifiedGroupKFold(n_splits=n_val).split(rest, y[rest], groups[rest]))
    return rest[tr], rest[val], test


def class_weights(y_train: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse class frequencies of the training set, normalised to sum 1 (absent class: 0).

    Parameters
    ----------
    y_train : numpy.ndarray
        Class of every training nucleus.
    n_classes : int
        Number of classes.

    Returns
    -------
    numpy.ndarray
        ``(n_classes,)`` float32 weights.
    """
    counts = np.bincount(np.asarray(y_train), minlength=n_classes).astype(np.float64)
    w = np.divide(len(y_train), counts, out=np.zeros_like(counts), where=counts > 0)
    return (w / w.sum()).astype(np.float32)


def flip_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal and vertical flips (p = 0.5 each), drawn for every sample and channel.

    Parameters
    ----------
    x : torch.Tensor
        ``(n, c, h, w)``; each channel (branch input) is flipped on its own.
    gen : torch.Generator
        Random generator.

    Returns
    -------
    torch.Tensor
        The flipped batch.
    """
    x = x.clone()
    n, c = x.shape[:2]
    horizontal = torch.rand(n, c, generator=gen) < 0.5
    vertical = torch.rand(n, c, generator=gen) < 0.5
    for ch in range(c):
        for sel, axis in ((horizontal[:, ch], -1), (vertical[:, ch], -2)):
            if sel.any():
                x[sel, ch] = torch.flip(x[sel, ch], dims=(axis,))
    return x


def _split(labels, groups, batch_size: int, rng):
    """Classes, integer labels, control nuclei dropped and the train/val/test positions."""
    labels, groups = np.asarray(labels).astype(str), np.asarray(groups).astype(str)
    classes = np.unique(labels)
    y = np.searchsorted(classes, labels)
    keep = undersample_control(labels, rng)
    splits = tuple(keep[s] for s in grouped_splits(y[keep], groups[keep]))
    if len(splits[0]) < batch_size:
        raise InputError(
            f"{len(splits[0])} training nuclei, fewer than one batch of {batch_size} (the last "
            "incomplete batch is dropped); use a larger screen or a smaller batch_size."
        )
    return classes, y, int(len(labels) - len(keep)), splits


def _train_epoch(model, opt, loss_fn, data, train_idx, params, rng, gen, dev, hook) -> list:
    """One epoch: shuffled batches (last incomplete one dropped), flips, one Adam step each."""
    crops, context, y, classes, two = data
    model.train()
    order = rng.permutation(train_idx)
    n_batches = len(order) // params.batch_size
    losses = []
    for i in range(n_batches):
        b = order[i * params.batch_size : (i + 1) * params.batch_size]
        if hook is not None:
            hook("train", classes[y[b]])
        ctx = None if context is None else context[b]
        xb = flip_batch(prepare_inputs(crops[b], params.input_size, ctx, two), gen)
        xb = xb.to(dev).contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(xb), torch.from_numpy(y[b]).to(dev))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _score(model, data, idx, dev) -> float:
    """Balanced accuracy of the model (evaluation mode) on the nuclei ``idx``."""
    crops, context, y, _, _ = data
    ctx = None if context is None else context[idx]
    logits = embed(model, crops[idx], 128, str(dev), logits=True, context=ctx)
    return float(balanced_accuracy_score(y[idx], logits.argmax(1)))


def train_image2reg(
    crops: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    params: EncoderParams,
    device: str | None = None,
    progress: bool = True,
    batch_hook=None,
    context: np.ndarray | None = None,
):
    """Train the encoder with the original schedule (see the module description).

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` crops of the training classes (held-out conditions already removed).
    labels : numpy.ndarray
        Condition of each crop; the sorted unique labels are the classes.
    groups : numpy.ndarray
        Field image of each crop (:func:`i2r_utils.training.image_groups`).
    params : EncoderParams
        Architecture and schedule (:func:`image2reg_params`).
    device : str, optional
        Device; CUDA when available when None.
    progress : bool
        Show a progress bar.
    batch_hook : callable, optional
        Called as ``batch_hook(split, labels)`` for every training batch (``"train"``) and
        once for the validation and test nuclei (``"val"``, ``"test"``).
    context : numpy.ndarray, optional
        ``(n, s, s)`` uint8 context windows, required by the two-branch encoder.

    Returns
    -------
    model : torch.nn.Module
        The encoder at its best validation epoch (on the CPU).
    info : dict
        As :func:`i2r_utils.training.train_encoder`, plus ``test_balanced_accuracy``,
        ``n_test_crops``, ``n_control_dropped``, ``class_weights`` and ``training``.
    """
    two = params.arch == "image2reg"
    if two and context is None:
        raise InputError("the image2reg encoder needs context windows (context_window > 0).")
    rng = np.random.default_rng([params.seed, 13])
    gen = torch.Generator().manual_seed(params.seed)
    torch.set_flush_denormal(True)
    classes, y, n_dropped, (tr, va, te) = _split(labels, groups, params.batch_size, rng)
    data = (crops, context, y, classes, two)
    dev = pick_device(device)
    model = build_model(params, len(classes)).to(dev)
    weights = class_weights(y[tr], len(classes))
    loss_fn = nn.CrossEntropyLoss(weight=torch.from_numpy(weights).to(dev))
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    if batch_hook is not None:
        batch_hook("val", classes[y[va]])
        batch_hook("test", classes[y[te]])
    best, best_state, history, wait, seconds = -np.inf, None, [], 0, 0.0
    t_start = time.perf_counter()
    bar = tqdm(range(params.epochs), desc="train encoder (image2reg)", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        losses = _train_epoch(model, opt, loss_fn, data, tr, params, rng, gen, dev, batch_hook)
        seconds += time.perf_counter() - t0
        score = _score(model, data, va, dev)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_bacc": score})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_bacc=f"{score:.3f}")
        if score > best:  # keep the best epoch's weights
            best, wait = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
            if wait > params.patience:  # the original: stop when the counter exceeds 5
                break
    model.load_state_dict(best_state)
    test = _score(model, data, te, dev)
    n_seen = len(history) * (len(tr) // params.batch_size) * params.batch_size
    return model.cpu(), {
        "classes": classes.tolist(),
        "history": history,
        "best_epoch": int(np.argmax([h["val_bacc"] for h in history])),
        "val_balanced_accuracy": float(best),
        "test_balanced_accuracy": test,
        "chance": 1.0 / len(classes),
        "train_crops_per_s": n_seen / max(seconds, 1e-9),
        "train_seconds": time.perf_counter() - t_start,
        "seconds_per_epoch": (time.perf_counter() - t_start) / len(history),
        "n_train_crops": int(len(tr)),
        "n_val_crops": int(len(va)),
        "n_test_crops": int(len(te)),
        "n_control_dropped": n_dropped,
        "class_weights": dict(zip(classes.tolist(), weights.round(6).tolist(), strict=True)),
        "device": str(dev),
        "training": "image2reg",
    }
