"""A small U-Net for nucleus segmentation: model, training and inference.

The network (:class:`UNet`) predicts three classes per pixel: background, nucleus interior and
nucleus boundary (:func:`unet_targets`). It is trained on random patches with random D4
augmentation (:func:`train_unet`); :func:`predict_unet` averages the de-augmented probability
maps of the test-time transforms; instances are the seeded watershed of the foreground
(interior + boundary) from the connected components of the interior
(:func:`probabilities_to_labels`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries, watershed
from torch import nn
from tqdm.auto import tqdm

from i2r_utils.classical import normalize_percentile, remove_small, validate_image
from i2r_utils.tta import D4_TRANSFORMS, apply_transform, invert_transform, resolve_tta

__all__ = ["UNet", "predict_unet", "probabilities_to_labels", "train_unet", "unet_targets"]

# Percentiles that normalise each image before the network (stored with the model).
_PERCENTILES = (1.0, 99.8)


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
        percentiles: tuple[float, float] = _PERCENTILES,
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


# --- training --------------------------------------------------------------------------


def _pad_to(arr: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Pad the last two axes of ``arr`` at the end so each is at least ``size``."""
    pad_r, pad_c = max(0, size - arr.shape[-2]), max(0, size - arr.shape[-1])
    if pad_r == pad_c == 0:
        return arr
    return np.pad(arr, [(0, 0)] * (arr.ndim - 2) + [(0, pad_r), (0, pad_c)], mode=mode)


def _training_data(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], patch_size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Normalised images and 3-class targets, padded to at least one patch."""
    imgs, tgts = [], []
    for k, (img, mask) in enumerate(zip(images, masks, strict=True)):
        img = normalize_percentile(validate_image(img, f"images[{k}]"), *_PERCENTILES)
        mask = np.asarray(mask)
        if mask.shape != img.shape or not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(
                f"masks[{k}] must be an integer label image of shape {img.shape}, "
                f"got shape {mask.shape} and dtype {mask.dtype}."
            )
        imgs.append(_pad_to(img, patch_size, "reflect" if min(img.shape) > 1 else "edge"))
        tgts.append(_pad_to(unet_targets(mask), patch_size, "constant"))
    return imgs, tgts


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


def _seeded_unet(base_channels: int, depth: int, seed: int, dev: torch.device) -> UNet:
    """Build a :class:`UNet` on ``dev``, initialised from ``seed``; global RNGs untouched."""
    cuda_ids = []
    if dev.type == "cuda":
        cuda_ids = [torch.cuda.current_device() if dev.index is None else dev.index]
    with torch.random.fork_rng(devices=cuda_ids):
        torch.manual_seed(seed)
        return UNet(base_channels, depth, percentiles=_PERCENTILES).to(dev)


def _optimise(
    model: UNet, batches, epochs: int, steps_per_epoch: int, loss_fn, lr: float,
    max_time_s: float | None, progress: bool,
) -> dict[str, list[float]]:  # fmt: skip
    """Adam steps on ``batches()`` (numpy ``x, y``) for ``epochs``; return the loss history."""
    dev = next(model.parameters()).device
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {"loss": [], "epoch_loss": []}
    start = time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, desc="train U-Net")
    model.train()
    out_of_time = False
    for _ in range(epochs):
        epoch_losses = []
        for _ in range(steps_per_epoch):
            x, y = batches()
            optimiser.zero_grad()
            loss = loss_fn(model(torch.from_numpy(x).to(dev)), torch.from_numpy(y).to(dev))
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
    return history


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
    images, masks : sequence of numpy.ndarray
        2-D fluorescence images and their instance label images.
    epochs : int, optional
        Number of epochs of ``steps_per_epoch`` optimisation steps.
    patch_size : int, optional
        Side of the square training patches; a multiple of ``2**depth``. Smaller images
        are padded.
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
    imgs, tgts = _training_data(images, masks, patch_size)
    if steps_per_epoch is None:
        total = sum(im.size for im in imgs)
        steps_per_epoch = max(1, round(total / (batch_size * patch_size**2)))
    dev = _device(device)
    rng = np.random.default_rng(seed)
    model = _seeded_unet(base_channels, depth, seed, dev)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 1.0, boundary_weight], device=dev))
    history = _optimise(
        model, lambda: _random_batch(rng, imgs, tgts, patch_size, batch_size), epochs,
        steps_per_epoch, loss_fn, lr, max_time_s, progress,
    )  # fmt: skip
    return model.eval(), history


# --- inference -------------------------------------------------------------------------


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
        Test-time augmentation, see :func:`i2r_utils.tta.resolve_tta`. The probability maps
        of the transformed images are transformed back and averaged.
    device : str or torch.device, optional
        Device to run on; defaults to the device of the model's parameters.

    Returns
    -------
    numpy.ndarray
        float32 array ``(3, H, W)``: probabilities of background, interior, boundary.
    """
    img = normalize_percentile(validate_image(image), *model.config["percentiles"])
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
    return remove_small(labels, min_size)
