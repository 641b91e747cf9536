"""Nucleus segmentation: a classical baseline, a small U-Net and test-time augmentation.

Entry point: :func:`segment_nuclei` turns a 2-D fluorescence image into an int32 label
image (0 = background, 1..n = nuclei).

* ``method="classical"``: Gaussian smoothing, background subtraction, Otsu threshold,
  hole filling, small-object removal and a distance-transform watershed seeded by
  :func:`skimage.feature.peak_local_max`.
* ``method="unet"``: a :class:`UNet` (trained with :func:`train_unet`) predicts three
  classes per pixel (background, nucleus interior, nucleus boundary); instances are the
  seeded watershed of the foreground (interior + boundary) from the connected components
  of the interior (foreground minus boundary), see :func:`probabilities_to_labels`.
* ``tta``: test-time augmentation over the dihedral group D4 (:data:`D4_TRANSFORMS`).
  For the U-Net the de-augmented probability maps are averaged; for the classical method
  the de-augmented label images are merged with :func:`merge_instances_tta`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import find_boundaries, relabel_sequential, watershed
from torch import nn
from tqdm.auto import tqdm

from i2r_utils.metrics import classify_instances, map_dsb, segmentation_scores

__all__ = [
    "D4_TRANSFORMS",
    "OVERLAY_COLORS",
    "UNet",
    "annotated_tiles",
    "apply_transform",
    "evaluate_segmentation",
    "invert_transform",
    "load_annotated_nuclei",
    "load_unet",
    "merge_instances_tta",
    "normalize_percentile",
    "plot_segmentation_overlays",
    "plot_tta_deltas",
    "predict_unet",
    "probabilities_to_labels",
    "resolve_tta",
    "save_unet",
    "segment_classical",
    "segment_nuclei",
    "train_unet",
    "tta_map_delta",
    "unet_targets",
]

#: Names of the 8 transforms of the dihedral group D4, acting on the last two axes.
D4_TRANSFORMS = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "fliplr",
    "flipud",
    "transpose",
    "antitranspose",
)

_MODEL_FORMAT = "i2r_utils.unet/1"


# --- input validation and normalisation ------------------------------------------------


def _validate_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a non-empty, finite, real 2-D array; return it as float32."""
    if isinstance(image, torch.Tensor):
        raise TypeError(
            f"{name} must be a numpy array, got a torch.Tensor; pass tensor.cpu().numpy()."
        )
    arr = np.asarray(image)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must have an integer or floating dtype, got {arr.dtype}; "
            "pass the raw intensities, e.g. image.astype(np.float32)."
        )
    if arr.ndim != 2:
        hint = " (drop singleton axes with np.squeeze)" if arr.ndim > 2 and 1 in arr.shape else ""
        raise ValueError(
            f"{name} must be 2-D (rows, columns), got shape {arr.shape}; "
            f"pass one single-channel plane{hint}."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass an image with pixels.")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; replace them, e.g. np.nan_to_num(image).")
    return arr


def normalize_percentile(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, eps: float = 1e-6
) -> np.ndarray:
    """Rescale an image so that its ``low`` and ``high`` percentiles map to 0 and 1.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image of any real dtype.
    low, high : float, optional
        Percentiles mapped to 0 and 1 (values outside are not clipped).
    eps : float, optional
        Added to the denominator so that a constant image does not divide by zero.

    Returns
    -------
    numpy.ndarray
        float32 image of the same shape.
    """
    img = _validate_image(image)
    lo, hi = np.percentile(img, [low, high])
    return ((img - lo) / (hi - lo + eps)).astype(np.float32)


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to 0 and relabel 1..n (int32)."""
    labels = np.asarray(labels)
    if min_size > 0 and labels.max(initial=0) > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels.astype(np.int32))[0]


# --- classical baseline ----------------------------------------------------------------


def segment_classical(
    image: np.ndarray,
    sigma: float = 1.0,
    min_distance: int = 6,
    min_size: int = 15,
    footprint_size: int | None = None,
    background_sigma: float | None = 20.0,
) -> np.ndarray:
    """Segment nuclei with Otsu thresholding and a distance-transform watershed.

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluorescence image, nuclei bright on a dark background.
    sigma : float, optional
        Standard deviation (pixels) of the Gaussian smoothing; 0 disables it.
    min_distance : int, optional
        Minimal distance (pixels) between two watershed seeds (peaks of the distance
        transform); smaller values split more.
    min_size : int, optional
        Objects smaller than this many pixels are removed (before and after the watershed).
    footprint_size : int, optional
        Side of the square footprint of :func:`~skimage.feature.peak_local_max`;
        defaults to ``2 * min_distance + 1``.
    background_sigma : float or None, optional
        Standard deviation (pixels, a few nucleus radii) of a Gaussian blur subtracted
        before thresholding to flatten an uneven background; None disables it. Default 20.

    Returns
    -------
    numpy.ndarray
        int32 label image, objects numbered 1..n.
    """
    raw = normalize_percentile(image)
    img = gaussian(raw, sigma=sigma, preserve_range=True) if sigma > 0 else raw
    if background_sigma:
        img = img - gaussian(raw, sigma=background_sigma, preserve_range=True)
    if np.ptp(img) == 0:
        return np.zeros(img.shape, dtype=np.int32)
    foreground = ndi.binary_fill_holes(img > threshold_otsu(img))
    components = _remove_small(ndi.label(foreground)[0], min_size)
    foreground = components > 0
    distance = ndi.distance_transform_edt(foreground)
    size = 2 * min_distance + 1 if footprint_size is None else footprint_size
    peaks = peak_local_max(
        distance,
        min_distance=min_distance,
        footprint=np.ones((size, size), dtype=bool),
        labels=components,
        exclude_border=False,
    )
    markers = np.zeros(img.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # Plateaus give several adjacent peaks: merge touching seeds into one marker.
    markers = ndi.label(markers > 0)[0]
    labels = watershed(-distance, markers, mask=foreground)
    return _remove_small(labels, min_size)


# --- dihedral test-time augmentation ---------------------------------------------------


def resolve_tta(tta: str | Sequence[str] | None) -> list[str]:
    """Turn a TTA specification into a list of D4 transform names.

    Parameters
    ----------
    tta : str, sequence of str or None
        ``None``, ``"none"`` or an empty sequence: no augmentation; ``"d4"``: the 8 transforms of
        :data:`D4_TRANSFORMS`; ``"flips"``: identity, fliplr, flipud, rot180;
        one transform name or a sequence of names.

    Returns
    -------
    list of str
        Transform names without duplicates, in the given order (empty for no TTA).
    """
    if tta is None:
        return []
    if isinstance(tta, str):
        key = tta.lower()
        if key == "none":
            return []
        if key == "d4":
            return list(D4_TRANSFORMS)
        if key == "flips":
            return ["identity", "fliplr", "flipud", "rot180"]
        tta = [key]
    names = list(dict.fromkeys(tta))
    unknown = [n for n in names if n not in D4_TRANSFORMS]
    if unknown:
        raise ValueError(
            f"unknown TTA transform(s) {unknown}; use None, 'd4', 'flips' "
            f"or a list of names from {D4_TRANSFORMS}."
        )
    return names


def apply_transform(array: np.ndarray, name: str) -> np.ndarray:
    """Apply one D4 transform to the last two axes of an array.

    Parameters
    ----------
    array : numpy.ndarray
        Array with at least 2 dimensions (e.g. an image or a ``(C, H, W)`` map).
    name : str
        One of :data:`D4_TRANSFORMS`.

    Returns
    -------
    numpy.ndarray
        Transformed array (a contiguous copy).
    """
    a = np.asarray(array)
    if name == "identity":
        out = a
    elif name in ("rot90", "rot180", "rot270"):
        out = np.rot90(a, k=int(name[3:]) // 90, axes=(-2, -1))
    elif name == "fliplr":
        out = np.flip(a, axis=-1)
    elif name == "flipud":
        out = np.flip(a, axis=-2)
    elif name == "transpose":
        out = np.swapaxes(a, -2, -1)
    elif name == "antitranspose":
        out = np.swapaxes(np.flip(a, axis=(-2, -1)), -2, -1)
    else:
        raise ValueError(f"unknown transform {name!r}; use one of {D4_TRANSFORMS}.")
    return np.ascontiguousarray(out)


def invert_transform(array: np.ndarray, name: str) -> np.ndarray:
    """Undo :func:`apply_transform` with the same ``name``.

    Parameters
    ----------
    array : numpy.ndarray
        Transformed array (transform acted on the last two axes).
    name : str
        One of :data:`D4_TRANSFORMS`.

    Returns
    -------
    numpy.ndarray
        Array in the original orientation.
    """
    inverse = {"rot90": "rot270", "rot270": "rot90"}.get(name, name)  # others are involutions
    return apply_transform(array, inverse)


def _object_pixels(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Return the positive labels of a flat label array and the flat indices of each."""
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    keep = ids > 0
    return ids[keep], [g for g, k in zip(groups, keep, strict=True) if k]


def merge_instances_tta(
    label_images: Sequence[np.ndarray], iou_threshold: float = 0.5, min_votes: int | None = None
) -> np.ndarray:
    """Merge several label images of the same scene (e.g. de-augmented TTA outputs).

    Objects are grouped across versions greedily: the objects of the first version start
    one group each, and every object of a later version joins the group whose first
    object it overlaps with IoU >= ``iou_threshold`` (one-to-one per version, maximal
    total IoU), or starts a new group. A group is kept if it has objects in at least
    ``min_votes`` versions, and its mask is the pixel-wise majority vote: the pixels
    covered by its objects in at least ``min_votes`` versions. Pixels claimed by two kept
    groups go to the one with more votes (the earlier group on ties).

    Parameters
    ----------
    label_images : sequence of numpy.ndarray
        Integer label images of identical shape (0 = background).
    iou_threshold : float, optional
        Minimal IoU for two objects to be the same object. Default 0.5.
    min_votes : int, optional
        Number of versions an object (and a pixel) must be present in; defaults to a
        strict majority, ``len(label_images) // 2 + 1``.

    Returns
    -------
    numpy.ndarray
        int32 label image numbered 1..n, groups in the order of the first version's labels.
        Identical inputs give back the input (relabelled 1..n if it was not already).
    """
    if isinstance(label_images, np.ndarray) and label_images.ndim == 2:
        label_images = [label_images]
    stack = [np.asarray(lab) for lab in label_images]
    if not stack:
        raise ValueError("label_images is empty; pass at least one label image.")
    shape = stack[0].shape
    for k, lab in enumerate(stack):
        if lab.shape != shape or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(
                f"label_images[{k}] has shape {lab.shape} and dtype {lab.dtype}; all must be "
                f"integer label images of shape {shape} (invert the TTA transforms first)."
            )
    n = len(stack)
    min_votes = n // 2 + 1 if min_votes is None else int(min_votes)
    if not 1 <= min_votes <= n:
        raise ValueError(f"min_votes must be in [1, {n}], got {min_votes}.")

    refs: list[np.ndarray] = []  # flat pixel indices of each group's first object
    members: list[list[np.ndarray]] = []
    for lab in stack:
        flat = lab.ravel()
        ids, pixels = _object_pixels(flat)
        matched_obj: set[int] = set()
        if refs and ids.size:
            areas = np.array([p.size for p in pixels])
            iou = np.zeros((len(refs), ids.size))
            for g, ref in enumerate(refs):
                hit = flat[ref]
                hit = np.searchsorted(ids, hit[hit > 0])
                inter = np.bincount(hit, minlength=ids.size)
                iou[g] = inter / (ref.size + areas - inter)
            rows, cols = linear_sum_assignment(
                np.where(iou >= iou_threshold, iou, 0.0), maximize=True
            )
            for g, j in zip(rows, cols, strict=True):
                if iou[g, j] >= iou_threshold:
                    members[g].append(pixels[j])
                    matched_obj.add(int(j))
        for j, pix in enumerate(pixels):
            if j not in matched_obj:
                refs.append(pix)
                members.append([pix])

    out = np.zeros(int(np.prod(shape)), dtype=np.int32)
    best = np.zeros(out.size, dtype=np.int32)
    label = 0
    for group in members:
        if len(group) < min_votes:
            continue
        pix, votes = np.unique(np.concatenate(group), return_counts=True)
        win = (votes >= min_votes) & (votes > best[pix])
        if win.any():
            label += 1
            out[pix[win]] = label
            best[pix[win]] = votes[win]
    return relabel_sequential(out.reshape(shape))[0].astype(np.int32)


# --- U-Net -----------------------------------------------------------------------------


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Return two 3x3 convolutions, each followed by batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Small 2-D U-Net with 1 input channel and 3 output logits.

    The output classes are 0 = background, 1 = nucleus interior, 2 = nucleus boundary
    (see :func:`unet_targets`); the foreground probability is the sum of classes 1 and 2.

    Parameters
    ----------
    base_channels : int, optional
        Channels of the first level; doubled at each down-sampling. Default 16.
    depth : int, optional
        Number of 2x down-samplings (3 or 4 is typical). Input sides are padded to a
        multiple of ``2**depth`` by :func:`predict_unet`.
    in_channels, out_channels : int, optional
        Input and output channels (1 and 3).
    percentiles : tuple of float, optional
        Percentiles used to normalise each input image (stored with the model).
    """

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 3,
        in_channels: int = 1,
        out_channels: int = 3,
        percentiles: tuple[float, float] = (1.0, 99.8),
    ):
        super().__init__()
        if base_channels < 1 or depth < 1:
            raise ValueError(f"base_channels and depth must be >= 1, got {base_channels}, {depth}.")
        self.config = {
            "base_channels": int(base_channels),
            "depth": int(depth),
            "in_channels": int(in_channels),
            "out_channels": int(out_channels),
            "percentiles": [float(p) for p in percentiles],
        }
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_prev = in_channels
        for c in chans[:-1]:
            self.down.append(_conv_block(c_prev, c))
            c_prev = c
        self.bottom = _conv_block(chans[-2], chans[-1])
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for c_hi, c_lo in zip(chans[:0:-1], chans[-2::-1], strict=True):
            self.upsample.append(nn.ConvTranspose2d(c_hi, c_lo, 2, stride=2))
            self.up.append(_conv_block(2 * c_lo, c_lo))
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the class logits.

        Parameters
        ----------
        x : torch.Tensor
            Batch of shape ``(N, in_channels, H, W)``, H and W multiples of ``2**depth``.

        Returns
        -------
        torch.Tensor
            Logits of shape ``(N, out_channels, H, W)``.
        """
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottom(x)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips), strict=True):
            x = block(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)


def unet_targets(mask: np.ndarray) -> np.ndarray:
    """Convert an instance mask to the 3-class U-Net target.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D integer label image (0 = background).

    Returns
    -------
    numpy.ndarray
        int64 array: 0 background, 1 interior, 2 boundary (the inner 1-pixel rim of each
        object, so touching nuclei are separated by a 2-pixel boundary).
    """
    mask = np.asarray(mask)
    boundary = find_boundaries(mask, mode="inner") & (mask > 0)
    target = (mask > 0).astype(np.int64)
    target[boundary] = 2
    return target


def _device(device: str | torch.device | None) -> torch.device:
    """Return ``device``, or cuda when available else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _pad_to(arr: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Pad the last two axes of ``arr`` at the end so each is at least ``size``."""
    pad_r, pad_c = max(0, size - arr.shape[-2]), max(0, size - arr.shape[-1])
    if pad_r == pad_c == 0:
        return arr
    return np.pad(arr, [(0, 0)] * (arr.ndim - 2) + [(0, pad_r), (0, pad_c)], mode=mode)


def _random_batch(
    rng: np.random.Generator,
    images: list[np.ndarray],
    targets: list[np.ndarray],
    patch_size: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw random patches (images chosen in proportion to area) with D4 augmentation."""
    areas = np.array([im.size for im in images], dtype=float)
    xs, ys = [], []
    for k in rng.choice(len(images), size=batch_size, p=areas / areas.sum()):
        img, tgt = images[k], targets[k]
        r = rng.integers(0, img.shape[0] - patch_size + 1)
        c = rng.integers(0, img.shape[1] - patch_size + 1)
        x = img[r : r + patch_size, c : c + patch_size]
        y = tgt[r : r + patch_size, c : c + patch_size]
        name = D4_TRANSFORMS[rng.integers(len(D4_TRANSFORMS))]
        xs.append(apply_transform(x, name))
        ys.append(apply_transform(y, name))
    return np.stack(xs)[:, None], np.stack(ys)


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
) -> tuple[UNet, dict[str, list[float]]]:
    """Train a :class:`UNet` on random augmented patches of labelled images.

    Each image is normalised with its own percentiles; patches are drawn uniformly over
    the pixels of all images and transformed by a random D4 element (flips, rot90,
    transposes). The loss is a class-weighted cross-entropy (background, interior,
    boundary) optimised with Adam. With the same ``seed`` and device, training on CPU is
    deterministic. On CPU a small U-Net often trains fastest with
    ``torch.set_num_threads(1)``, much faster when other processes load the cores.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        2-D fluorescence images.
    masks : sequence of numpy.ndarray
        Instance label images matching ``images``.
    epochs : int, optional
        Number of epochs of ``steps_per_epoch`` optimisation steps.
    patch_size : int, optional
        Side of the square training patches; a multiple of ``2**depth``. Smaller images
        are padded.
    batch_size : int, optional
        Patches per step.
    lr : float, optional
        Adam learning rate.
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

    Returns
    -------
    model : UNet
        The trained network, in eval mode, on ``device``.
    history : dict
        ``"loss"``: loss of every step; ``"epoch_loss"``: mean loss of each epoch;
        ``"seconds"``: training time.
    """
    if len(images) != len(masks) or len(images) == 0:
        raise ValueError(
            f"need as many images as masks (at least one), got {len(images)} and {len(masks)}."
        )
    if patch_size % 2**depth:
        raise ValueError(
            f"patch_size must be a multiple of 2**depth = {2**depth}, got {patch_size}."
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
    percentiles = (1.0, 99.8)
    imgs, tgts = [], []
    for k, (img, mask) in enumerate(zip(images, masks, strict=True)):
        img = normalize_percentile(_validate_image(img, f"images[{k}]"), *percentiles)
        mask = np.asarray(mask)
        if mask.shape != img.shape or not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(
                f"masks[{k}] must be an integer label image of shape {img.shape}, "
                f"got shape {mask.shape} and dtype {mask.dtype}."
            )
        imgs.append(_pad_to(img, patch_size, "reflect" if min(img.shape) > 1 else "edge"))
        tgts.append(_pad_to(unet_targets(mask), patch_size, "constant"))
    if steps_per_epoch is None:
        total = sum(im.size for im in imgs)
        steps_per_epoch = max(1, round(total / (batch_size * patch_size**2)))

    dev = _device(device)
    rng = np.random.default_rng(seed)
    cuda_ids = []
    if dev.type == "cuda":
        cuda_ids = [torch.cuda.current_device() if dev.index is None else dev.index]
    # Seed the weight initialisation without touching the caller's global RNG state.
    with torch.random.fork_rng(devices=cuda_ids):
        torch.manual_seed(seed)
        model = UNet(base_channels, depth, percentiles=percentiles).to(dev)
    weight = torch.tensor([1.0, 1.0, boundary_weight], device=dev)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {"loss": [], "epoch_loss": []}
    start = time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, desc="train U-Net")
    model.train()
    out_of_time = False
    for _ in range(epochs):
        epoch_losses = []
        for _ in range(steps_per_epoch):
            x, y = _random_batch(rng, imgs, tgts, patch_size, batch_size)
            x_t = torch.from_numpy(x).to(dev)
            y_t = torch.from_numpy(y).to(dev)
            optimiser.zero_grad()
            loss = loss_fn(model(x_t), y_t)
            loss.backward()
            optimiser.step()
            epoch_losses.append(float(loss.detach()))
            bar.update()
            bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
            if max_time_s is not None and time.perf_counter() - start > max_time_s:
                out_of_time = True
                break
        history["loss"].extend(epoch_losses)
        history["epoch_loss"].append(float(np.mean(epoch_losses)))
        if out_of_time:
            break
    bar.close()
    history["seconds"] = [time.perf_counter() - start]
    return model.eval(), history


@torch.no_grad()
def predict_unet(
    model: UNet,
    image: np.ndarray,
    tta: str | Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Predict class probabilities for one image, optionally averaged over D4 transforms.

    Parameters
    ----------
    model : UNet
        Trained network.
    image : numpy.ndarray
        2-D fluorescence image.
    tta : str, sequence of str or None, optional
        Test-time augmentation, see :func:`resolve_tta`. The probability maps of the
        transformed images are transformed back and averaged.
    device : str or torch.device, optional
        Device to run on; defaults to the device of the model's parameters.

    Returns
    -------
    numpy.ndarray
        float32 array ``(3, H, W)``: probabilities of background, interior, boundary.
    """
    img = normalize_percentile(_validate_image(image), *model.config["percentiles"])
    dev = next(model.parameters()).device if device is None else _device(device)
    model = model.to(dev).eval()
    mult = 2 ** model.config["depth"]
    names = resolve_tta(tta) or ["identity"]
    total = None
    for name in names:
        x = apply_transform(img, name)
        h, w = x.shape
        pad = ((0, -h % mult), (0, -w % mult))
        x = np.pad(x, pad, mode="reflect" if min(h, w) > max(-h % mult, -w % mult) else "edge")
        logits = model(torch.from_numpy(x)[None, None].to(dev))
        prob = torch.softmax(logits, dim=1)[0, :, :h, :w].cpu().numpy()
        prob = invert_transform(prob, name)
        total = prob if total is None else total + prob
    return (total / len(names)).astype(np.float32)


def probabilities_to_labels(
    probs: np.ndarray,
    fg_threshold: float = 0.5,
    seed_threshold: float = 0.5,
    min_size: int = 15,
) -> np.ndarray:
    """Recover instances from U-Net probabilities with a seeded watershed.

    Seeds are the connected components of ``P(interior) > seed_threshold`` (foreground
    minus boundary); they are grown by watershed on ``1 - P(interior)`` inside the mask
    ``P(interior) + P(boundary) > fg_threshold``. Foreground components without a seed
    become objects of their own.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(3, H, W)`` probabilities of background, interior and boundary.
    fg_threshold : float, optional
        Threshold of the foreground probability.
    seed_threshold : float, optional
        Threshold of the interior probability for the seeds.
    min_size : int, optional
        Objects smaller than this many pixels are removed.

    Returns
    -------
    numpy.ndarray
        int32 label image numbered 1..n.
    """
    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[0] != 3:
        raise ValueError(f"probs must have shape (3, H, W), got {probs.shape}.")
    interior = probs[1]
    foreground = (probs[1] + probs[2]) > fg_threshold
    seeds = ndi.label((interior > seed_threshold) & foreground)[0]
    labels = watershed(1.0 - interior, seeds, mask=foreground)
    orphans = ndi.label(foreground & (labels == 0))[0]
    labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return _remove_small(labels, min_size)


def save_unet(model: UNet, path: str | os.PathLike) -> Path:
    """Save a :class:`UNet` (config + state dict) to one file, atomically.

    The file is written to a temporary file in the same directory and moved into place
    with :func:`os.replace`, so readers never see a partial file.

    Parameters
    ----------
    model : UNet
        Network to save.
    path : str or os.PathLike
        Destination file (conventionally ``.pt``); parent directories are created.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _MODEL_FORMAT,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_unet(path: str | os.PathLike, device: str | torch.device | None = None) -> UNet:
    """Load a :class:`UNet` written by :func:`save_unet`.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`save_unet`.
    device : str or torch.device, optional
        Defaults to ``"cuda"`` if available, else ``"cpu"``.

    Returns
    -------
    UNet
        The network in eval mode.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _MODEL_FORMAT:
        raise ValueError(f"{path} is not a U-Net saved by i2r_utils.segmentation.save_unet.")
    model = UNet(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(_device(device)).eval()


# --- entry points ----------------------------------------------------------------------


def segment_nuclei(
    image: np.ndarray,
    method: str = "classical",
    model: UNet | None = None,
    tta: str | Sequence[str] | None = None,
    **params,
) -> np.ndarray:
    """Segment the nuclei of a 2-D image into an instance label image.

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluorescence image (integer or float dtype), nuclei bright.
    method : {"classical", "unet"}, optional
        ``"classical"``: :func:`segment_classical`; ``"unet"``: :func:`predict_unet`
        followed by :func:`probabilities_to_labels`.
    model : UNet, optional
        Trained network, required for ``method="unet"`` (see :func:`train_unet`,
        :func:`load_unet`).
    tta : str, sequence of str or None, optional
        Test-time augmentation (see :func:`resolve_tta`). U-Net: the de-augmented
        probability maps are averaged; classical: the de-augmented label images are
        merged with :func:`merge_instances_tta`.
    **params
        Keyword arguments of :func:`segment_classical` or of
        :func:`probabilities_to_labels` (U-Net).

    Returns
    -------
    numpy.ndarray
        int32 label image of the image's shape, 0 = background, nuclei 1..n.
    """
    img = _validate_image(image)
    names = resolve_tta(tta)
    if method == "classical":
        if model is not None:
            raise ValueError("method='classical' takes no model; use method='unet' to use it.")
        if not names:
            return segment_classical(img, **params)
        versions = [
            invert_transform(segment_classical(apply_transform(img, n), **params), n) for n in names
        ]
        return merge_instances_tta(versions)
    if method == "unet":
        if model is None:
            raise ValueError(
                "method='unet' needs a trained model; get one with train_unet or load_unet."
            )
        return probabilities_to_labels(predict_unet(model, img, tta=names), **params)
    raise ValueError(f"unknown method {method!r}; use 'classical' or 'unet'.")


def tta_map_delta(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    method: str = "classical",
    model: UNet | None = None,
    tta: str | Sequence[str] = "d4",
    **params,
) -> dict[str, np.ndarray]:
    """Measure, per image, how much test-time augmentation changes mAP_DSB.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        2-D images (a single 2-D array is treated as one image).
    masks : sequence of numpy.ndarray
        Ground-truth label images matching ``images``.
    method, model, tta, **params
        As in :func:`segment_nuclei`; ``tta`` must not be empty.

    Returns
    -------
    dict of numpy.ndarray
        ``"original"``: mAP_DSB without TTA, ``"tta"``: with TTA, ``"delta"``:
        ``tta - original`` (positive = TTA helps); one value per image.
    """
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images, masks = [images], [masks]
    if len(images) != len(masks):
        raise ValueError(f"got {len(images)} images but {len(masks)} masks.")
    if not resolve_tta(tta):
        raise ValueError("tta must name at least one transform, e.g. tta='d4'.")
    original, merged = [], []
    for img, mask in zip(images, masks, strict=True):
        original.append(map_dsb(mask, segment_nuclei(img, method, model, None, **params)))
        merged.append(map_dsb(mask, segment_nuclei(img, method, model, tta, **params)))
    original, merged = np.array(original), np.array(merged)
    return {"original": original, "tta": merged, "delta": merged - original}


# --- evaluation on annotated images ----------------------------------------------------


def annotated_tiles(
    image: np.ndarray, mask: np.ndarray, tile_size: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Cut an annotated image and its labels into non-overlapping square tiles.

    Objects cut by a tile edge stay (partially) in each tile; every tile's labels are
    renumbered 1..n. Pixels beyond the last full tile are dropped.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    mask : numpy.ndarray
        Instance labels of the same shape.
    tile_size : int
        Tile side in pixels (at most the image's shorter side).

    Returns
    -------
    images, masks : list of numpy.ndarray
        Tiles in row-major order.
    names : list of str
        ``"r<row>c<col>"`` of each tile's top-left pixel.
    """
    image, mask = np.asarray(image), np.asarray(mask)
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be equal 2-D shapes.")
    if not 8 <= tile_size <= min(image.shape):
        raise ValueError(f"tile_size must be in 8..{min(image.shape)}, got {tile_size}.")
    imgs, masks, names = [], [], []
    for r in range(0, image.shape[0] - tile_size + 1, tile_size):
        for c in range(0, image.shape[1] - tile_size + 1, tile_size):
            sl = (slice(r, r + tile_size), slice(c, c + tile_size))
            imgs.append(image[sl])
            masks.append(relabel_sequential(mask[sl].astype(np.int32))[0])
            names.append(f"r{r}c{c}")
    return imgs, masks, names


def load_annotated_nuclei(
    annotated_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    tile_size: int = 128,
    n_fallback: int = 16,
) -> dict:
    """Load annotated nuclei for a segmentation evaluation, real data first.

    If ``annotated_dir`` holds ``img2d.tif`` and ``mask2d.tif`` (the StarDist/DSB2018 example
    of ``../shared/data``), they are cut into tiles of ``tile_size``; otherwise the first
    ``n_fallback`` images and masks of the synthetic screen in ``data_dir`` are used.

    Parameters
    ----------
    annotated_dir : path-like
        Folder with ``img2d.tif`` and ``mask2d.tif``.
    data_dir : path-like, optional
        Screen folder with ``metadata.csv`` (fallback).
    tile_size : int
        Tile side for the real image.
    n_fallback : int
        Synthetic images to use in the fallback.

    Returns
    -------
    dict
        ``images``, ``masks``, ``names`` (lists) and ``source`` (a description).
    """
    from i2r_utils.io import InputError, load_metadata, read_image, read_mask

    annotated_dir = Path(annotated_dir)
    img_path, msk_path = annotated_dir / "img2d.tif", annotated_dir / "mask2d.tif"
    if img_path.is_file() and msk_path.is_file():
        image = read_image(img_path)
        mask = read_mask(msk_path, image.shape)
        images, masks, names = annotated_tiles(image, mask, tile_size)
        source = f"{annotated_dir.name}: real DSB2018 image {image.shape}, {tile_size}px tiles"
        return {"images": images, "masks": masks, "names": names, "source": source}
    if data_dir is None:
        raise InputError(
            f"{img_path}: annotated nuclei not found and no data_dir fallback given; pass the "
            "folder with img2d.tif and mask2d.tif, or data_dir of a synthetic screen."
        )
    meta = load_metadata(data_dir).head(n_fallback)
    images = [read_image(p) for p in meta["Metadata_ImagePath"]]
    masks = [read_mask(m, i.shape) for m, i in zip(meta["Metadata_MaskPath"], images, strict=True)]
    names = [Path(p).stem for p in meta["Metadata_ImagePath"]]
    names = [f"{pl}/{n}" for pl, n in zip(meta["Metadata_Plate"], names, strict=True)]
    source = f"synthetic screen {data_dir} ({len(images)} images; {img_path} not found)"
    return {"images": images, "masks": masks, "names": names, "source": source}


def evaluate_segmentation(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    names: Sequence[str],
    methods: dict[str, dict],
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, list[np.ndarray]]]:
    """Segment every image with every method and score it against its annotation.

    Parameters
    ----------
    images, masks : sequence of numpy.ndarray
        Images and ground-truth instance labels.
    names : sequence of str
        One name per image.
    methods : dict
        Method name -> keyword arguments of :func:`segment_nuclei` (``method``, ``model``,
        ``tta``, ...).
    progress : bool
        Show a progress bar.

    Returns
    -------
    scores : pandas.DataFrame
        One row per (image, method): ``image``, ``method``, the scores of
        :func:`i2r_utils.metrics.segmentation_scores` and ``seconds``.
    predictions : dict
        Method name -> predicted label images (in image order).
    """
    rows, preds = [], {m: [] for m in methods}
    for img, mask, name in tqdm(
        list(zip(images, masks, names, strict=True)), desc="segment", disable=not progress
    ):
        for m, kwargs in methods.items():
            start = time.perf_counter()
            labels = segment_nuclei(img, **kwargs)
            seconds = time.perf_counter() - start
            preds[m].append(labels)
            rows.append({"image": name, "method": m, **segmentation_scores(mask, labels),
                         "seconds": seconds})  # fmt: skip
    return pd.DataFrame(rows), preds


def plot_tta_deltas(scores, pairs: dict[str, str], metric: str = "map_dsb", seed: int = 0):
    """Per-image change of a score with test-time augmentation, one dot per image.

    Parameters
    ----------
    scores : pandas.DataFrame
        Output of :func:`evaluate_segmentation`.
    pairs : dict
        Method without TTA -> the same method with TTA (both in ``scores["method"]``).
    metric : str
        Score column; default mAP_DSB.
    seed : int
        Seed of the horizontal jitter.

    Returns
    -------
    matplotlib.figure.Figure
        Dots: ``TTA - no TTA`` per image; black bar: mean; dashed line: no change.
    """
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(pairs), 3.6), layout="constrained")
    for k, (base, tta) in enumerate(pairs.items()):
        a = scores[scores["method"] == base].set_index("image")[metric]
        b = scores[scores["method"] == tta].set_index("image")[metric].loc[a.index]
        delta = (b - a).to_numpy()
        x = k + rng.uniform(-0.15, 0.15, delta.size)
        colors = np.where(delta > 0, "tab:green", np.where(delta < 0, "tab:red", "0.5"))
        ax.scatter(x, delta, s=22, c=colors, alpha=0.85, zorder=3)
        ax.hlines(delta.mean(), k - 0.28, k + 0.28, color="k", lw=2, zorder=4)
        ax.annotate(f"mean {delta.mean():+.3f}\n{(delta > 0).sum()} up, {(delta < 0).sum()} down",
                    (k, 1.0), xycoords=("data", "axes fraction"), ha="center", va="top",
                    fontsize=8)  # fmt: skip
    ax.axhline(0, color="0.3", ls="--", lw=1)
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels([f"{t}\nvs {b}" for b, t in pairs.items()], fontsize=8)
    ax.set_xlim(-0.6, len(pairs) - 0.4)
    lim = max(0.02, float(np.nanmax(np.abs(ax.get_ylim()))))
    ax.set_ylim(-lim * 1.1, lim * 1.35)
    name = {"map_dsb": "mAP_DSB", "ap50": "AP@0.5", "pixel_iou": "pixel IoU"}.get(metric, metric)
    ax.set_ylabel(f"change of {name} per image (TTA - no TTA)")
    ax.grid(axis="y", alpha=0.3)
    return fig


#: Colours of the overlays: true positives, false positives, false negatives.
OVERLAY_COLORS = {"TP": (0.10, 0.62, 0.47), "FP": (0.85, 0.37, 0.01), "FN": (0.46, 0.44, 0.90)}


def plot_segmentation_overlays(
    image: np.ndarray,
    truth: np.ndarray,
    predictions: dict[str, np.ndarray],
    threshold: float = 0.5,
    title: str | None = None,
):
    """Show predictions over the image: true positives, false positives, false negatives.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    truth : numpy.ndarray
        Ground-truth labels.
    predictions : dict
        Method name -> predicted labels.
    threshold : float
        IoU above which a prediction matches an annotated nucleus.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel for the annotation and one per method (TP green fill: matched
        predictions, FP orange fill: unmatched predictions, FN purple outline: missed
        annotated nuclei).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    gray = np.clip(normalize_percentile(image, 1, 99.8), 0, 1)
    n = len(predictions) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.9 * n, 3.3), layout="constrained", squeeze=False)
    axes = axes[0]

    def show(ax, layers, name):
        rgb = np.repeat(gray[..., None], 3, axis=2) * 0.85
        for labels, keep, color, fill in layers:
            sel = np.isin(labels, keep) & (labels > 0)
            edge = find_boundaries(np.where(sel, labels, 0), mode="inner" if fill else "thick")
            if fill:
                rgb[sel] = 0.55 * rgb[sel] + 0.45 * np.array(color)
            rgb[edge] = color
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()

    show(axes[0], [(truth, np.unique(truth[truth > 0]), (0.9, 0.9, 0.9), False)], "annotation")
    for ax, (name, pred) in zip(axes[1:], predictions.items(), strict=True):
        cls = classify_instances(truth, pred, threshold)
        layers = [
            (pred, cls["tp_pred"], OVERLAY_COLORS["TP"], True),
            (pred, cls["fp"], OVERLAY_COLORS["FP"], True),
            (truth, cls["fn"], OVERLAY_COLORS["FN"], False),
        ]
        counts = f"{cls['tp_pred'].size} TP, {cls['fp'].size} FP, {cls['fn'].size} FN"
        show(ax, layers, f"{name}: {counts}")
    labels = {"TP": f"TP (IoU > {threshold})", "FP": "FP", "FN": "FN (outline)"}
    handles = [Patch(color=c, label=labels[k]) for k, c in OVERLAY_COLORS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
