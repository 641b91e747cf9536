"""Test-only helpers of the segmentation tests: synthetic nuclei, U-Net files, TTA deltas.

``save_unet``/``load_unet`` and ``tta_map_delta`` were package functions that only tests
called; they live here now.
"""

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from i2r_utils.metrics import map_dsb
from i2r_utils.segmentation import segment_nuclei
from i2r_utils.tta import resolve_tta
from i2r_utils.unet import UNet, train_unet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuclei_stardist_example"
_MODEL_FORMAT = "i2r_utils.unet/1"


def synthetic_disks(shape=(128, 128), n=8, radius=(6, 10), seed=0):
    """Non-touching bright disks on a dark noisy background, with their label image."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, dtype=np.int32)
    centers = []
    while len(centers) < n:
        r = rng.integers(radius[0], radius[1] + 1)
        cy, cx = rng.integers(r + 2, shape[0] - r - 2), rng.integers(r + 2, shape[1] - r - 2)
        if all(np.hypot(cy - y, cx - x) > r + rr + 3 for y, x, rr in centers):
            centers.append((cy, cx, r))
            labels[(rows - cy) ** 2 + (cols - cx) ** 2 <= r**2] = len(centers)
    brightness = rng.uniform(0.6, 1.0, size=n + 1)
    brightness[0] = 0.1
    image = brightness[labels] + rng.normal(0, 0.05, shape)
    return (np.clip(image, 0, None) * 1000).astype(np.uint16), labels


def train_tiny_unet():
    """A 4-channel U-Net trained for 40 steps on three 64x64 images of disks."""
    data = [synthetic_disks(shape=(64, 64), n=4, seed=s) for s in range(3)]
    images, masks = zip(*data, strict=True)
    model, history = train_unet(
        images,
        masks,
        epochs=4,
        patch_size=32,
        batch_size=4,
        lr=1e-2,
        seed=0,
        device="cpu",
        progress=False,
        base_channels=4,
        depth=3,
        steps_per_epoch=10,
    )
    return model, history, images


def save_unet(model: UNet, path) -> Path:
    """Save a UNet (config + state dict) to one file, atomically (temporary file + replace)."""
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


def load_unet(path, device="cpu") -> UNet:
    """Load a UNet written by :func:`save_unet`, in eval mode."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _MODEL_FORMAT:
        raise ValueError(f"{path} is not a U-Net saved by save_unet.")
    model = UNet(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(torch.device(device)).eval()


def tta_map_delta(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    method: str = "classical",
    model: UNet | None = None,
    tta: str | Sequence[str] = "d4",
    **params,
) -> dict[str, np.ndarray]:
    """Per image, mAP_DSB without (``original``) and with TTA (``tta``), and their ``delta``."""
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
