"""Weakly supervised training of the image encoder on the conditions of one fold.

The encoder learns to classify the condition of every nucleus crop among the impactful
conditions plus the control; its penultimate layer is the nucleus embedding. The encoder
of a fold never sees a crop of that fold's conditions: :func:`fold_training_set` removes
them before anything else (validation split, batches, BatchNorm calibration).

One training run (:func:`train_encoder`):

1. Validation split by well (:func:`validation_split`): one random well per class goes to
   validation, so no well is in both splits.
2. Every epoch draws ``samples_per_class`` crops of every class (:func:`balanced_batches`),
   augments them (:func:`augment`: zoom and shift, dihedral transform, brightness and
   contrast) and takes Adam steps with a cosine learning-rate decay (:func:`train_epoch`).
3. The BatchNorm statistics are recomputed on training crops (:func:`calibrate_batchnorm`)
   and the balanced accuracy on the validation wells is measured.
4. Early stopping: the weights of the best validation epoch are kept; training stops after
   ``patience`` epochs without improvement.

Everything random is seeded by ``params.seed`` (numpy for the split and sampling, a torch
generator for the augmentation, torch's global seed for initialisation and dropout), so
the same crops and parameters give the same encoder on the same machine and threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from .columns import CONTROL
from .encoder import EncoderParams, build_model, embed, pick_device, prepare_inputs
from .io import InputError
from .progress import tqdm

__all__ = [
    "fold_classes",
    "training_mask",
    "fold_training_set",
    "well_groups",
    "image_groups",
    "augment",
    "balanced_batches",
    "validation_split",
    "TrainingData",
    "cosine_optimizer",
    "train_epoch",
    "calibrate_batchnorm",
    "validation_score",
    "train_encoder",
]

BatchHook = Callable[[str, np.ndarray], None]
DEFAULT_PARAMS = EncoderParams()


# --------------------------------------------------------------------------------------------
# the crops an encoder may learn from
# --------------------------------------------------------------------------------------------


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


def fold_training_set(
    labels: np.ndarray, impactful: Sequence[str], held_out: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Return the crops and classes of a fold's encoder (held-out conditions removed).

    Parameters
    ----------
    labels : numpy.ndarray
        Condition of every crop of the screen.
    impactful : sequence of str
        Impactful conditions (the classes, with the control).
    held_out : sequence of str
        Conditions of the fold: none of their crops is kept.

    Returns
    -------
    keep : numpy.ndarray
        True for the crops of a training class that is not held out.
    classes : list of str
        The training classes (:func:`fold_classes`).
    """
    labels = np.asarray(labels).astype(str)
    classes = fold_classes(impactful, held_out)
    missing = sorted(set(classes) - set(labels))
    if missing:
        raise InputError(
            f"impactful conditions {missing} have no nuclei: the impactful conditions and the "
            "nuclei table come from different runs; call the impactful conditions again on "
            "the current nuclei table."
        )
    return np.isin(labels, classes) & training_mask(labels, held_out), classes


def well_groups(nuclei: pd.DataFrame) -> np.ndarray:
    """Well identifier ``plate/well`` of every nucleus (the validation split's groups).

    Parameters
    ----------
    nuclei : pandas.DataFrame
        One row per crop with ``Metadata_Plate`` and ``Metadata_Well``.

    Returns
    -------
    numpy.ndarray
        ``"<plate>/<well>"`` strings.
    """
    plate, well = nuclei["Metadata_Plate"].astype(str), nuclei["Metadata_Well"].astype(str)
    return (plate + "/" + well).to_numpy()


def image_groups(nuclei: pd.DataFrame) -> np.ndarray:
    """Field-image identifier ``plate/well/site`` of every nucleus (the original's groups).

    Parameters
    ----------
    nuclei : pandas.DataFrame
        One row per crop with ``Metadata_Plate``, ``Metadata_Well`` and ``Metadata_Site``.

    Returns
    -------
    numpy.ndarray
        ``"<plate>/<well>/<site>"`` strings.
    """
    return well_groups(nuclei) + "/" + nuclei["Metadata_Site"].astype(str).to_numpy()


# --------------------------------------------------------------------------------------------
# sampling and augmentation
# --------------------------------------------------------------------------------------------


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


def validation_split(y: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random well per class (of classes with two or more wells) goes to validation.

    Parameters
    ----------
    y : numpy.ndarray
        Integer class of every crop.
    groups : numpy.ndarray
        Well of every crop.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    numpy.ndarray
        True for the validation crops.
    """
    val = np.zeros(len(y), bool)
    for c in np.unique(y):
        wells = np.unique(groups[y == c])
        if len(wells) >= 2:
            val |= (y == c) & (groups == rng.choice(wells))
    return val


# --------------------------------------------------------------------------------------------
# one training run, step by step
# --------------------------------------------------------------------------------------------


@dataclass
class TrainingData:
    """The crops of one training run, split by well.

    Attributes
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` crops as given (validation embeds these).
    x : torch.Tensor
        The crops as network input (:func:`i2r_utils.encoder.prepare_crops`).
    y : numpy.ndarray
        Integer class of every crop.
    classes : numpy.ndarray
        Class names (sorted); ``classes[y]`` are the labels.
    val : numpy.ndarray
        True for validation crops (:func:`validation_split`).
    train_idx : numpy.ndarray
        Positions of the training crops.
    context : numpy.ndarray or None
        ``(n, s, s)`` uint8 context windows of a two-branch encoder.
    """

    crops: np.ndarray
    x: torch.Tensor
    y: np.ndarray
    classes: np.ndarray
    val: np.ndarray
    train_idx: np.ndarray
    context: np.ndarray | None = None

    @classmethod
    def split(cls, crops, labels, groups, input_size: int, rng, context=None):
        """Classes from the labels, validation wells drawn with ``rng``, network input.

        Parameters
        ----------
        crops : numpy.ndarray
            ``(n, h, w)`` crops.
        labels, groups : numpy.ndarray
            Condition and well of every crop.
        input_size : int
            Side the crops are pooled to.
        rng : numpy.random.Generator
            Draws the validation wells (:func:`validation_split`).
        context : numpy.ndarray, optional
            Context windows: the input is then the two-branch one
            (:func:`i2r_utils.encoder.prepare_inputs`).

        Returns
        -------
        TrainingData
            The run's crops.
        """
        labels, groups = np.asarray(labels).astype(str), np.asarray(groups).astype(str)
        classes = np.unique(labels)
        y = np.searchsorted(classes, labels)
        val = validation_split(y, groups, rng)
        x = prepare_inputs(crops, input_size, context, two_branch=context is not None)
        return cls(crops, x, y, classes, val, np.flatnonzero(~val), context)


def cosine_optimizer(model: nn.Module, params: EncoderParams, n_classes: int):
    """Adam with a per-step cosine learning-rate decay to 0 at the last planned epoch.

    Parameters
    ----------
    model : torch.nn.Module
        The encoder.
    params : EncoderParams
        ``lr``, ``weight_decay``, ``cosine``, ``epochs``, ``samples_per_class`` and
        ``batch_size``.
    n_classes : int
        Classes (steps per epoch = classes x samples per class / batch size).

    Returns
    -------
    optimizer : torch.optim.Adam
        The optimiser.
    scheduler : torch.optim.lr_scheduler.LambdaLR
        Its learning-rate schedule (a constant one when ``params.cosine`` is False).
    """
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    steps = params.epochs * -(-n_classes * params.samples_per_class // params.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda step: 0.5 * (1 + np.cos(np.pi * min(step / steps, 1))) if params.cosine else 1.0,
    )
    return opt, sched


def train_epoch(model, opt, sched, data: TrainingData, params, rng, gen, dev, batch_hook=None):
    """One epoch of balanced, augmented mini-batches with an Adam step each.

    Parameters
    ----------
    model : torch.nn.Module
        The encoder (set to training mode).
    opt, sched
        Optimiser and learning-rate schedule (:func:`cosine_optimizer`).
    data : TrainingData
        The run's crops.
    params : EncoderParams
        ``samples_per_class``, ``batch_size``, ``crop_prob``.
    rng : numpy.random.Generator
        Draws the balanced batches.
    gen : torch.Generator
        Draws the augmentations.
    dev : torch.device
        Device of the model.
    batch_hook : callable, optional
        Called as ``batch_hook("train", labels)`` for every batch.

    Returns
    -------
    list of float
        The loss of every batch.
    """
    model.train()
    loss_fn, losses, tr = nn.CrossEntropyLoss(), [], data.train_idx
    y_all = torch.from_numpy(data.y)
    for b in balanced_batches(data.y[tr], params.samples_per_class, params.batch_size, rng):
        b = tr[b]
        if batch_hook is not None:
            batch_hook("train", data.classes[data.y[b]])
        xb = augment(data.x[b], gen, params.crop_prob).to(dev)
        xb = xb.contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(xb), y_all[b].to(dev))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def _refresh_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int, dev) -> None:
    """Recompute BatchNorm running statistics on ``x`` (the current weights' true stats)."""
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


def calibrate_batchnorm(model, data: TrainingData, batch_size: int, rng, dev, batch_hook=None):
    """Recompute the BatchNorm statistics on up to 512 random training crops.

    With few optimiser steps per epoch the exponential running averages lag far behind
    the weights, and eval-mode predictions are then close to constant. The model is left
    in evaluation mode.

    Parameters
    ----------
    model : torch.nn.Module
        The encoder.
    data : TrainingData
        The run's crops (only training crops are drawn).
    batch_size : int
        Forward batch size.
    rng : numpy.random.Generator
        Draws the calibration crops.
    dev : torch.device
        Device of the model.
    batch_hook : callable, optional
        Called as ``batch_hook("calibration", labels)``.
    """
    tr = data.train_idx
    calib = tr[rng.choice(len(tr), min(len(tr), 512), replace=False)]
    if batch_hook is not None:
        batch_hook("calibration", data.classes[data.y[calib]])
    _refresh_batchnorm(model, data.x[calib], batch_size, dev)


def validation_score(model, data: TrainingData, dev, losses: Sequence[float]) -> float:
    """Balanced accuracy on the validation wells (minus the mean loss when there are none).

    Parameters
    ----------
    model : torch.nn.Module
        The encoder.
    data : TrainingData
        The run's crops.
    dev : torch.device
        Device of the model.
    losses : sequence of float
        The epoch's batch losses (the score without validation wells).

    Returns
    -------
    float
        The score to maximise.
    """
    if not data.val.any():
        return -float(np.mean(losses))
    ctx = None if data.context is None else data.context[data.val]
    logits = embed(model, data.crops[data.val], device=str(dev), logits=True, context=ctx)
    return balanced_accuracy_score(data.y[data.val], logits.argmax(1))


def train_encoder(
    crops: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    params: EncoderParams = DEFAULT_PARAMS,
    device: str | None = None,
    progress: bool = True,
    batch_hook: BatchHook | None = None,
    context: np.ndarray | None = None,
):
    """Train the encoder to classify conditions, with early stopping on held-out wells.

    With ``params.training == "image2reg"`` the original schedule runs instead
    (:func:`i2r_utils.training_image2reg.train_image2reg`, same arguments and outputs;
    ``groups`` are then field images, :func:`image_groups`).

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, h, w)`` training crops (held-out conditions already removed).
    labels : numpy.ndarray
        Condition of each crop; the sorted unique labels are the classes.
    groups : numpy.ndarray
        Well identifier of each crop (:func:`well_groups`); one well per class (of classes
        with two or more) goes to validation, so no well is in both splits.
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
    context : numpy.ndarray, optional
        ``(n, s, s)`` uint8 context windows, required by the two-branch encoder.

    Returns
    -------
    model : torch.nn.Module
        The encoder at its best validation epoch (on the CPU).
    info : dict
        ``classes``, ``history`` (per-epoch loss and validation balanced accuracy),
        ``best_epoch``, ``val_balanced_accuracy``, ``chance``, ``train_crops_per_s``,
        ``train_seconds``, ``seconds_per_epoch``, ``n_train_crops``, ``n_val_crops``,
        ``device``.
    """
    if params.training == "image2reg":
        from .training_image2reg import train_image2reg

        return train_image2reg(crops, labels, groups, params, device, progress, batch_hook, context)
    if params.arch == "image2reg" and context is None:
        raise InputError("the image2reg encoder needs context windows (context_window > 0).")
    rng = np.random.default_rng([params.seed, 11])
    gen = torch.Generator().manual_seed(params.seed)
    torch.set_flush_denormal(True)  # denormals after a few Adam steps slow CPUs ~10x
    data = TrainingData.split(crops, labels, groups, params.input_size, rng, context)
    dev = pick_device(device)
    model = build_model(params, len(data.classes)).to(dev)
    opt, sched = cosine_optimizer(model, params, len(data.classes))
    if batch_hook is not None and data.val.any():
        batch_hook("val", data.classes[data.y[data.val]])
    best, best_state, history, wait, seconds = -np.inf, None, [], 0, 0.0
    t_start = time.perf_counter()
    bar = tqdm(range(params.epochs), desc="train encoder", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        losses = train_epoch(model, opt, sched, data, params, rng, gen, dev, batch_hook)
        seconds += time.perf_counter() - t0
        calibrate_batchnorm(model, data, params.batch_size, rng, dev, batch_hook)
        score = validation_score(model, data, dev, losses)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_bacc": float(score)})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_bacc=f"{score:.3f}")
        if score > best:  # early stopping: keep the best epoch's weights
            best, wait = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
            if wait >= params.patience:
                break
    model = model.cpu()
    model.load_state_dict(best_state)
    n_seen = len(history) * len(data.classes) * params.samples_per_class
    return model, {
        "classes": data.classes.tolist(),
        "history": history,
        "best_epoch": int(np.argmax([h["val_bacc"] for h in history])),
        "val_balanced_accuracy": float(best) if data.val.any() else None,
        "chance": 1.0 / len(data.classes),
        "train_crops_per_s": n_seen / max(seconds, 1e-9),
        "train_seconds": time.perf_counter() - t_start,
        "seconds_per_epoch": (time.perf_counter() - t_start) / max(len(history), 1),
        "n_train_crops": int(len(data.train_idx)),
        "n_val_crops": int(data.val.sum()),
        "device": str(dev),
    }
