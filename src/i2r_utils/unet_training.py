"""Training of the nucleus U-Net: augmented patches, early stopping, the run's model file.

:func:`train_unet` optimises a :class:`i2r_utils.unet.UNet` on random patches of annotated
images. Every patch is a random crop at a random scale (scale jitter), transformed by a random
element of the dihedral group (flips, rotations by 90 degrees, transposes), with random
intensity gain, offset, gamma and noise; the 3-class target (background, interior, boundary)
is computed on the transformed instance labels, so touching nuclei stay separated. With
validation images, the mean mAP_DSB on them is computed after every epoch; training stops
when it has not improved for ``patience`` epochs and the best weights are kept (early
stopping). :func:`tune_postprocessing` then picks the watershed thresholds and seeding rule on the
same validation images.

:func:`trained_unet` is the model of a run: it loads ``model_path`` when the file exists, its
checksum matches and it was trained with the same settings on the same data, and otherwise
trains it on the fixed training / validation split of :mod:`i2r_utils.segmentation_data`
(never on the test images), saves it and its information file (settings, split, checksum,
history, time). Concurrent callers (parallel plates) wait on a lock instead of training twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from skimage.transform import resize
from torch import nn

from i2r_utils.classical import normalize_percentile, remove_small, validate_image
from i2r_utils.io import InputError, file_digest, write_json
from i2r_utils.metrics import average_precision_dsb, map_dsb
from i2r_utils.segmentation_data import SPLIT_RULE, load_annotated_fields, split_table
from i2r_utils.tta import D4_TRANSFORMS, apply_transform
from i2r_utils.unet import (
    _PERCENTILES,
    UNet,
    _device,
    load_unet,
    predict_unet,
    probabilities_to_labels,
    save_unet,
    unet_targets,
)

from .progress import tqdm

__all__ = [
    "TRAINING_DEFAULTS",
    "info_path",
    "load_trained_unet",
    "train_unet",
    "trained_unet",
    "tune_postprocessing",
]

#: Settings of the run's U-Net (:func:`trained_unet`). A step of 8 patches of 128 px costs
#: ~0.5 CPU seconds with 8 base channels (1 thread); 640 steps + 16 validations fit ~4 min on
#: 2 idle cores.
TRAINING_DEFAULTS: dict = {
    "epochs": 16,  # most epochs of steps_per_epoch steps
    "steps_per_epoch": 40,
    "patience": 6,  # epochs without a better validation mAP_DSB before stopping
    "val_seeds": "distance",  # watershed seeds of the per-epoch validation score
    "max_seconds": 900.0,  # wall-clock safety cap of the training (validation included)
    "patch_size": 128,
    "batch_size": 8,
    "lr": 2e-3,
    "lr_schedule": "cosine",  # or "constant"; cosine: annealed to 0 over epochs * steps_per_epoch
    "base_channels": 8,
    "depth": 3,
    "boundary_weight": 2.0,
    "boundary_width": 1,  # px of the boundary class inside each nucleus
    "scale_range": [0.8, 1.25],
    "min_sizes": [15, 30, 50],  # smallest object kept (px) tried with each watershed setting
    "seed": 0,
}
# Watershed settings tried on the validation images: thresholds x seeding rule.
_POSTPROCESS_GRID = [
    {"fg_threshold": f, "seed_threshold": s, "seeds": "interior"}
    for f in (0.4, 0.5, 0.6)
    for s in (0.4, 0.5, 0.6, 0.7)
] + [
    {"fg_threshold": f, "seed_threshold": s, "seeds": "distance", "h": h}
    for f in (0.5, 0.6)
    for s in (0.4, 0.5, 0.6)
    for h in (2.0, 3.0, 4.0)
]


# --- augmented patches -----------------------------------------------------------------


def _prepare(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], name: str = "images"
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Normalised float32 images and int32 label images, checked pairwise."""
    if len(images) != len(masks) or len(images) == 0:
        raise ValueError(
            f"need as many {name} as masks (at least one), got {len(images)} and {len(masks)}."
        )
    imgs, labs = [], []
    for k, (img, mask) in enumerate(zip(images, masks, strict=True)):
        img = normalize_percentile(validate_image(img, f"{name}[{k}]"), *_PERCENTILES)
        mask = np.asarray(mask)
        if mask.shape != img.shape or not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(
                f"masks[{k}] must be an integer label image of shape {img.shape}, "
                f"got shape {mask.shape} and dtype {mask.dtype}."
            )
        imgs.append(img)
        labs.append(mask.astype(np.int32))
    return imgs, labs


def _crop(img: np.ndarray, mask: np.ndarray, r: int, c: int, side: int) -> tuple:
    """Crop ``side`` x ``side`` at (r, c); parts beyond the image are reflected / background."""
    pad_r, pad_c = max(0, side - img.shape[0]), max(0, side - img.shape[1])
    if pad_r or pad_c:
        img = np.pad(
            img, ((0, pad_r), (0, pad_c)), mode="reflect" if min(img.shape) > 1 else "edge"
        )
        mask = np.pad(mask, ((0, pad_r), (0, pad_c)))
    return img[r : r + side, c : c + side], mask[r : r + side, c : c + side]


def _random_patch(
    rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, size: int, augment: bool,
    scale_range: Sequence[float], boundary_width: int = 1,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One augmented training patch and its 3-class target."""
    lo, hi = scale_range if augment else (1.0, 1.0)
    side = max(8, round(size * float(np.exp(rng.uniform(np.log(lo), np.log(hi))))))
    r = rng.integers(0, max(0, img.shape[0] - side) + 1)
    c = rng.integers(0, max(0, img.shape[1] - side) + 1)
    x, m = _crop(img, mask, r, c, side)
    if side != size:  # scale jitter: bilinear image, nearest-neighbour labels
        x = resize(x, (size, size), order=1, preserve_range=True, anti_aliasing=False)
        idx = ((np.arange(size) + 0.5) * side / size).astype(int)
        m = m[np.ix_(idx, idx)]
    y = unet_targets(m, boundary_width)
    name = D4_TRANSFORMS[rng.integers(len(D4_TRANSFORMS))]
    x, y = apply_transform(x, name), apply_transform(y, name)
    if augment:  # intensity: gain, offset, gamma, noise
        gamma = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        x = np.clip(x, 0, None) ** gamma * np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
        x = x + rng.uniform(-0.1, 0.1) + rng.normal(0, rng.uniform(0, 0.03), x.shape)
    return x.astype(np.float32), y


def _random_batch(
    rng: np.random.Generator, images: list, masks: list, size: int, batch_size: int,
    augment: bool, scale_range: Sequence[float], boundary_width: int = 1,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Draw a batch of patches from images drawn uniformly (each image weighs the same)."""
    pairs = [
        _random_patch(rng, images[k], masks[k], size, augment, scale_range, boundary_width)
        for k in rng.integers(0, len(images), size=batch_size)
    ]
    return np.stack([p[0] for p in pairs])[:, None], np.stack([p[1] for p in pairs])


# --- optimisation with early stopping --------------------------------------------------


def _seeded_unet(base_channels: int, depth: int, seed: int, dev: torch.device) -> UNet:
    """Build a :class:`UNet` on ``dev``, initialised from ``seed``; global RNGs untouched."""
    cuda_ids = []
    if dev.type == "cuda":
        cuda_ids = [torch.cuda.current_device() if dev.index is None else dev.index]
    with torch.random.fork_rng(devices=cuda_ids):
        torch.manual_seed(seed)
        return UNet(base_channels, depth, percentiles=_PERCENTILES).to(dev)


def _validation_score(
    model: UNet, images: Sequence, masks: Sequence, postprocess: dict | None = None
) -> float:
    """Mean mAP_DSB of the model (no TTA; watershed ``postprocess``) on validation images."""
    model.eval()
    scores = [
        map_dsb(m, probabilities_to_labels(predict_unet(model, i), **(postprocess or {})))
        for i, m in zip(images, masks, strict=True)
    ]
    model.train()
    return float(np.mean(scores))


def _optimise(
    model: UNet, batches: Callable, loss_fn, lr: float, epochs: int, steps_per_epoch: int,
    validate: Callable | None, patience: int | None, max_time_s: float | None, progress: bool,
    lr_schedule: str = "constant",
) -> dict:  # fmt: skip
    """Adam steps on ``batches()``; validation after each epoch; keep the best weights."""
    dev = next(model.parameters()).device
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = None
    if lr_schedule == "cosine":  # from lr to 0 over the most steps
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * steps_per_epoch)
    elif lr_schedule != "constant":
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}.")
    hist: dict = {"loss": [], "epoch_loss": [], "val_map_dsb": [], "stopped": "epochs"}
    best, best_state, since_best = -np.inf, None, 0
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(
        total=epochs * steps_per_epoch, disable=None if progress else True, desc="train U-Net"
    )
    model.train()
    for _ in range(epochs):
        losses = []
        for _ in range(steps_per_epoch):
            x, y = batches()
            optimiser.zero_grad()
            loss = loss_fn(model(torch.from_numpy(x).to(dev)), torch.from_numpy(y).to(dev))
            loss.backward()
            optimiser.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(float(loss.detach()))
            bar.update()
            if max_time_s is not None and time.perf_counter() - start > max_time_s:
                hist["stopped"] = "time"
                break
        hist["loss"] += losses
        hist["epoch_loss"].append(float(np.mean(losses)))
        if validate is not None:
            score = validate(model)
            hist["val_map_dsb"].append(score)
            bar.set_postfix(loss=f"{hist['epoch_loss'][-1]:.3f}", val=f"{score:.3f}")
            if score > best + 1e-4:
                best, since_best = score, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
        if hist["stopped"] == "time":
            break
        if patience is not None and validate is not None and since_best >= patience:
            hist["stopped"] = "early"
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
        hist["best_epoch"] = int(np.argmax(hist["val_map_dsb"])) + 1
    hist["seconds"] = [time.perf_counter() - start]
    hist["cpu_seconds"] = time.process_time() - cpu_start
    hist["steps"] = len(hist["loss"])
    return hist


def train_unet(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    epochs: int = 20,
    patch_size: int = 128,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    base_channels: int = 16,
    depth: int = 3,
    steps_per_epoch: int | None = None,
    boundary_weight: float = 2.0,
    max_time_s: float | None = None,
    val_images: Sequence[np.ndarray] | None = None,
    val_masks: Sequence[np.ndarray] | None = None,
    patience: int | None = None,
    augment: bool = True,
    scale_range: Sequence[float] = (0.8, 1.25),
    lr_schedule: str = "constant",
    boundary_width: int = 1,
    val_seeds: str = "interior",
) -> tuple[UNet, dict]:
    """Train a :class:`UNet` on random augmented patches of labelled images.

    Each image is normalised with its own percentiles. Every step draws ``batch_size``
    images uniformly, a random crop of each at a random scale in ``scale_range`` (resized
    to ``patch_size``), a random D4 transform and (``augment``) random intensity gain,
    offset, gamma and Gaussian noise. The loss is a class-weighted cross-entropy
    (background, interior, boundary) optimised with Adam. With the same ``seed`` and device
    and no time cap, training on CPU is deterministic.

    Parameters
    ----------
    images, masks : sequence of numpy.ndarray
        2-D fluorescence images and their instance label images.
    epochs : int, optional
        Most epochs of ``steps_per_epoch`` optimisation steps.
    patch_size : int, optional
        Side of the square training patches; a multiple of ``2**depth``.
    batch_size, lr : int and float, optional
        Patches per step and Adam learning rate.
    seed : int, optional
        Seed of the weight initialisation and of the patch sampling.
    device : str or torch.device, optional
        Defaults to ``"cuda"`` if available, else ``"cpu"``.
    progress : bool, optional
        Show a tqdm progress bar.
    base_channels, depth : int, optional
        U-Net size, see :class:`UNet`.
    steps_per_epoch : int, optional
        Defaults to the number of patches needed to cover all pixels once.
    boundary_weight : float, optional
        Cross-entropy weight of the boundary class (background and interior weigh 1).
    max_time_s : float, optional
        Stop after this many seconds (checked after each step).
    val_images, val_masks : sequence of numpy.ndarray, optional
        Validation images: mean mAP_DSB after every epoch; the best weights are returned.
    patience : int, optional
        Stop after this many epochs without a better validation score (needs validation).
    augment : bool, optional
        Scale jitter and intensity augmentation (D4 transforms are always applied).
    scale_range : sequence of two floats, optional
        Range of the crop side relative to ``patch_size`` (log-uniform).
    lr_schedule : {"constant", "cosine"}, optional
        Learning rate held at ``lr``, or annealed from ``lr`` to 0 along a cosine over the
        most steps (``epochs * steps_per_epoch``).
    boundary_width : int, optional
        Width of the boundary class in the targets, see :func:`i2r_utils.unet.unet_targets`.
    val_seeds : {"interior", "distance"}, optional
        Seeding rule of the watershed that scores the validation images after each epoch
        (thresholds 0.5; ``h`` 3 px for ``"distance"``), see
        :func:`i2r_utils.unet.probabilities_to_labels`.

    Returns
    -------
    model : UNet
        The trained network (best validation epoch if validated), in eval mode.
    history : dict
        ``loss`` (every step), ``epoch_loss``, ``val_map_dsb`` (per epoch), ``best_epoch``
        (with validation), ``stopped`` (``"epochs"``, ``"early"`` or ``"time"``), ``steps``,
        ``seconds`` (wall clock) and ``cpu_seconds`` (CPU time of the process).
    """
    if patch_size % 2**depth:
        raise ValueError(
            f"patch_size must be a multiple of 2**depth = {2**depth}, got {patch_size}."
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
    if val_seeds not in ("interior", "distance"):
        raise ValueError(f"val_seeds must be 'interior' or 'distance', got {val_seeds!r}.")
    imgs, labs = _prepare(images, masks)
    validate = None
    if val_images is not None:
        v_imgs, v_labs = _prepare(val_images, val_masks or [], "val_images")
        post = {"seeds": val_seeds}  # thresholds and h: probabilities_to_labels' defaults
        validate = lambda m: _validation_score(m, v_imgs, v_labs, post)  # noqa: E731
    if steps_per_epoch is None:
        total = sum(im.size for im in imgs)
        steps_per_epoch = max(1, round(total / (batch_size * patch_size**2)))
    dev = _device(device)
    rng = np.random.default_rng(seed)
    model = _seeded_unet(base_channels, depth, seed, dev)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 1.0, boundary_weight], device=dev))
    history = _optimise(
        model,
        lambda: _random_batch(
            rng, imgs, labs, patch_size, batch_size, augment, scale_range, boundary_width
        ),
        loss_fn, lr, epochs, steps_per_epoch, validate, patience, max_time_s, progress,
        lr_schedule,
    )  # fmt: skip
    return model.eval(), history


def tune_postprocessing(
    model: UNet, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], grid=None,
    min_sizes: Sequence[int] = (15,),
) -> tuple[dict, list[dict]]:  # fmt: skip
    """Choose the watershed settings of :func:`probabilities_to_labels` on validation images.

    Parameters
    ----------
    model : UNet
        Trained network.
    images, masks : sequence of numpy.ndarray
        Validation images and labels (never the test images).
    grid : sequence of dict, optional
        Keyword arguments of :func:`probabilities_to_labels` to try; by default both seeding
        rules with thresholds around 0.5 (and h-maxima heights 2-4 px for ``"distance"``).
    min_sizes : sequence of int, optional
        Smallest object kept (``min_size``, px), each tried with every setting of ``grid``
        (objects are cut once, at the smallest, then the small ones removed).

    Returns
    -------
    best : dict
        The settings of the best mean mAP_DSB (first on ties).
    table : list of dict
        Every setting with its mean mAP_DSB and mean AP at IoU 0.5.
    """
    if not min_sizes or min(min_sizes) < 0:
        raise ValueError(f"min_sizes must be one or more sizes >= 0, got {min_sizes}.")
    probs = [predict_unet(model, img) for img in images]
    table = []
    for params in grid or _POSTPROCESS_GRID:
        params = dict(params)  # a grid entry with its own min_size keeps it
        sizes = [params.pop("min_size")] if "min_size" in params else sorted(set(min_sizes))
        cut = [probabilities_to_labels(p, **params, min_size=sizes[0]) for p in probs]
        for size in sizes:
            kept = cut if size == sizes[0] else [remove_small(c, size) for c in cut]
            aps = np.array([average_precision_dsb(m, c) for c, m in zip(kept, masks, strict=True)])
            table.append(
                {**params, "min_size": int(size), "map_dsb": float(aps.mean()),
                 "ap50": float(aps[:, 0].mean())}
            )  # fmt: skip
    best = max(table, key=lambda row: row["map_dsb"])
    return {k: v for k, v in best.items() if k not in ("map_dsb", "ap50")}, table


# --- the run's model -------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def info_path(model_path: str | os.PathLike) -> Path:
    """Return the information file (JSON) beside a model file."""
    return Path(model_path).with_suffix(".json")


def load_trained_unet(
    path: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[UNet, dict]:
    """Load a model file, verified against the checksum of its information file if present.

    Parameters
    ----------
    path : path-like
        Model file (``unet.pt``); its information file is ``unet.json`` beside it.
    device : str or torch.device, optional
        Defaults to ``"cuda"`` if available, else ``"cpu"``.

    Returns
    -------
    model : UNet
        The network, in eval mode.
    info : dict
        The information file's content (empty without one) and ``description``: the file
        and whether its checksum was checked, in one line.

    Raises
    ------
    InputError
        A missing file, a checksum mismatch or a file that is not a saved U-Net.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: no trained U-Net. Run the main job (python3 run_all.py) to train it, or "
            "pass the unet.pt of another run's segmentation folder."
        )
    info_file = info_path(path)
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    model = load_unet(path, device, sha256=info.get("sha256"))
    checked = f"sha256 {info['sha256'][:12]} checked" if info.get("sha256") else "no checksum"
    return model, {**info, "description": f"{path} ({checked})"}


def _reusable(model_path: Path, settings: dict, index_sha256: str | None) -> dict | None:
    """Return the stored information when the model file can be reused as it is, else None.

    Without the annotated data (``index_sha256`` None) a model with the same settings is
    reused whatever data it was trained on.
    """
    info_file = info_path(model_path)
    if not (model_path.is_file() and info_file.is_file()):
        return None
    info = json.loads(info_file.read_text())
    same = info.get("settings") == settings and index_sha256 in (None, info.get("index_sha256"))
    if same and file_digest(model_path) == info.get("sha256"):
        return info
    return None


def trained_unet(
    model_path: str | os.PathLike,
    annotated_dir: str | os.PathLike,
    settings: dict | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[UNet, dict]:
    """Load the run's U-Net, training it first when missing or made with other settings.

    Parameters
    ----------
    model_path : path-like
        The model file (``.pt``); its information file is the same path with ``.json``.
    annotated_dir : path-like
        The annotated nuclei folder (``nuclei_dsb2018_fluo``); its training and validation
        images are used, never its test images.
    settings : dict, optional
        Overrides of :data:`TRAINING_DEFAULTS`.
    device : str or torch.device, optional
        Defaults to ``"cuda"`` if available, else ``"cpu"``.
    progress : bool, optional
        Show the training progress bar.

    Returns
    -------
    model : UNet
        The network, in eval mode.
    info : dict
        ``settings``, ``split`` (ids per part), ``split_rule``, ``index_sha256``, ``sha256``
        (of the model file), ``history``, ``postprocess`` (+ its validation table),
        ``seconds``, ``device``, ``threads`` and ``reused`` (True when nothing was trained).
    """
    unknown = sorted(set(settings or {}) - set(TRAINING_DEFAULTS))
    if unknown:
        raise InputError(f"unknown U-Net settings {unknown}; known: {sorted(TRAINING_DEFAULTS)}.")
    settings = {**TRAINING_DEFAULTS, **(settings or {})}
    model_path = Path(model_path)
    index = [Path(annotated_dir) / n for n in ("index.csv", "metadata.csv")]
    index_sha = next((file_digest(p) for p in index if p.is_file()), None)
    with _locked(model_path.parent / f".{model_path.name}.lock"):
        info = _reusable(model_path, settings, index_sha)
        if info is None:
            info = _train_and_save(model_path, annotated_dir, settings, device, progress)
        else:
            info["reused"] = True
    return load_unet(model_path, device, sha256=info["sha256"]), info


def _train_and_save(
    model_path: Path, annotated_dir, settings: dict, device, progress: bool
) -> dict:
    """Train on the fixed training split with early stopping on validation; save both files."""
    train = load_annotated_fields(annotated_dir, "train")
    val = load_annotated_fields(annotated_dir, "val")
    s = settings
    start = time.perf_counter()
    model, history = train_unet(
        train["images"], train["masks"], epochs=s["epochs"], patch_size=s["patch_size"],
        batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"], device=device,
        progress=progress, base_channels=s["base_channels"], depth=s["depth"],
        steps_per_epoch=s["steps_per_epoch"], boundary_weight=s["boundary_weight"],
        max_time_s=s["max_seconds"], val_images=val["images"], val_masks=val["masks"],
        patience=s["patience"], scale_range=s["scale_range"], lr_schedule=s["lr_schedule"],
        boundary_width=s["boundary_width"], val_seeds=s["val_seeds"],
    )  # fmt: skip
    postprocess, table = tune_postprocessing(
        model, val["images"], val["masks"], min_sizes=s["min_sizes"]
    )
    model.config["postprocess"] = postprocess
    seconds = time.perf_counter() - start
    sha = save_unet(model, model_path)
    info = {
        "settings": settings,
        "sha256": sha,
        "index_sha256": train["index_sha256"],
        "split_rule": SPLIT_RULE,
        "split": {p: ids.tolist() for p, ids in split_table(annotated_dir).groupby("split")["id"]},
        "history": history,
        "postprocess": postprocess,
        "postprocess_validation": table,
        "seconds": seconds,
        "device": str(next(model.parameters()).device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    write_json(info, info_path(model_path))
    return {**info, "reused": False}
