"""A small U-Net for nucleus segmentation: model, inference and model files.

The network (:class:`UNet`) predicts three classes per pixel: background, nucleus interior and
nucleus boundary (:func:`unet_targets`); it is trained by :mod:`i2r_utils.unet_training`.
:func:`predict_unet` averages the de-augmented probability maps of the test-time transforms;
instances are the seeded watershed of the foreground (interior + boundary) from the connected
components of the interior or from the maxima of its distance map
(:func:`probabilities_to_labels`). :func:`save_unet` and
:func:`load_unet` write and read one model file, with its SHA-256 checksum.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed
from torch import nn

from i2r_utils.classical import normalize_percentile, remove_small, validate_image
from i2r_utils.io import InputError, file_digest, save_torch
from i2r_utils.tta import apply_transform, invert_transform, resolve_tta

__all__ = [
    "MODEL_FORMAT",
    "UNet",
    "load_unet",
    "predict_unet",
    "probabilities_to_labels",
    "save_unet",
    "unet_targets",
]

#: Format tag of the files written by :func:`save_unet`.
MODEL_FORMAT = "i2r_utils.unet/1"

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
    postprocess : dict, optional
        Keyword arguments of :func:`probabilities_to_labels` chosen for this model (e.g. on
        validation images); stored with the model and used by default.
    """

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 3,
        in_channels: int = 1,
        out_channels: int = 3,
        percentiles: tuple[float, float] = _PERCENTILES,
        postprocess: dict | None = None,
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
            "postprocess": dict(postprocess or {}),
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


def unet_targets(mask: np.ndarray, boundary_width: int = 1) -> np.ndarray:
    """Convert an instance mask to the 3-class U-Net target.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D integer label image (0 = background).
    boundary_width : int, optional
        Width of the boundary rim in pixels: a pixel of an object is boundary when a pixel
        within this city-block distance belongs to another label or to the background.

    Returns
    -------
    numpy.ndarray
        int64 array: 0 background, 1 interior, 2 boundary (the inner rim of each object, so
        touching nuclei are separated by a boundary ``2 * boundary_width`` pixels wide).
    """
    mask = np.asarray(mask)
    if boundary_width < 1:
        raise ValueError(f"boundary_width must be >= 1, got {boundary_width}.")
    # a pixel is interior when every pixel within the city-block ball carries its label
    # (width 1: the inner boundary of skimage's find_boundaries, 4-connected)
    ball = ndi.iterate_structure(ndi.generate_binary_structure(2, 1), boundary_width)
    same = (ndi.maximum_filter(mask, footprint=ball, mode="nearest") == mask) & (
        ndi.minimum_filter(mask, footprint=ball, mode="nearest") == mask
    )
    boundary = (mask > 0) & ~same
    target = (mask > 0).astype(np.int64)
    target[boundary] = 2
    return target


def _device(device: str | torch.device | None) -> torch.device:
    """Return ``device``, or cuda when available else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --- inference -------------------------------------------------------------------------


@torch.inference_mode()
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
    seeds: str = "interior",
    h: float = 3.0,
    smooth: float = 1.0,
) -> np.ndarray:
    """Recover instances from U-Net probabilities with a seeded watershed.

    The foreground is ``P(interior) + P(boundary) > fg_threshold`` and the interior mask
    ``P(interior) > seed_threshold`` inside it. With ``seeds="interior"`` the seeds are the
    connected components of the interior mask, grown by watershed on ``1 - P(interior)``.
    With ``seeds="distance"`` the seeds are the regional maxima of height ``h`` (h-maxima)
    of the interior mask's Euclidean distance transform, smoothed by a Gaussian of sigma
    ``smooth`` (found on every second row and column, for speed), grown by watershed on the
    negative distance: interiors that touch through a thin neck (the network missed the
    boundary between two nuclei) are split at the neck.
    Foreground components without a seed become objects of their own.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(3, H, W)`` probabilities of background, interior and boundary.
    fg_threshold : float, optional
        Threshold of the foreground probability.
    seed_threshold : float, optional
        Threshold of the interior probability.
    min_size : int, optional
        Objects smaller than this many pixels are removed.
    seeds : {"interior", "distance"}, optional
        How the watershed is seeded (see above).
    h : float, optional
        Least height, in pixels of distance, of a maximum that seeds its own object
        (``seeds="distance"``).
    smooth : float, optional
        Gaussian sigma, in pixels, applied to the distance map (``seeds="distance"``).

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
    inner = (interior > seed_threshold) & foreground
    if seeds == "interior":
        labels = watershed(1.0 - interior, ndi.label(inner)[0], mask=foreground)
    elif seeds == "distance":
        dist = ndi.distance_transform_edt(inner)
        if smooth > 0:
            dist = ndi.gaussian_filter(dist, smooth)
        # h-maxima on every second pixel: a quarter of the cost, nuclei are >= 10 px wide
        peaks = h_maxima(dist[::2, ::2], h).astype(bool)
        peaks = np.repeat(np.repeat(peaks, 2, axis=0), 2, axis=1)[: dist.shape[0], : dist.shape[1]]
        markers = ndi.label(peaks & inner)[0]
        labels = watershed(-dist, markers, mask=foreground)
    else:
        raise ValueError(f"seeds must be 'interior' or 'distance', got {seeds!r}.")
    orphans = ndi.label(foreground & (labels == 0))[0]
    labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return remove_small(labels, min_size)


# --- model files -----------------------------------------------------------------------


def save_unet(model: UNet, path: str | os.PathLike) -> str:
    """Save a :class:`UNet` (configuration + weights) to one file, atomically.

    Parameters
    ----------
    model : UNet
        The network (any device; the weights are saved from the CPU).
    path : path-like
        Destination (``.pt``); its folder is created.

    Returns
    -------
    str
        SHA-256 checksum of the written file (give it to :func:`load_unet` to verify).
    """
    payload = {
        "format": MODEL_FORMAT,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    save_torch(payload, path)
    return file_digest(path)


def load_unet(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    sha256: str | None = None,
) -> UNet:
    """Load a :class:`UNet` written by :func:`save_unet`, in eval mode.

    Parameters
    ----------
    path : path-like
        Model file.
    device : str or torch.device, optional
        Defaults to ``"cuda"`` if available, else ``"cpu"``.
    sha256 : str, optional
        Expected checksum; a different file is an error.

    Returns
    -------
    UNet
        The network on ``device``, in eval mode.

    Raises
    ------
    InputError
        A missing file, a checksum mismatch, or a file that is not a saved U-Net.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: U-Net model file not found; pass the unet.pt of a main job.")
    if sha256 is not None and file_digest(path) != sha256:
        raise InputError(
            f"{path}: checksum differs from the one recorded when it was trained (file changed "
            "or truncated); delete it and rerun the main job to train it again."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ValueError("no U-Net format tag")
        model = UNet(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # unpickling, a missing key, wrong shapes: one clear line
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"{path}: not a U-Net saved by i2r ({type(exc).__name__}: {reason}); pass the "
            "segmentation/unet.pt of a main job's results folder."
        ) from None
    return model.to(_device(device)).eval()
