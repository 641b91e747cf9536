"""Test-only helpers of the segmentation tests: synthetic nuclei, U-Net files, TTA deltas.

``tta_map_delta`` was a package function that only tests called; it lives here now.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from i2r_utils.metrics import map_dsb
from i2r_utils.segmentation import segment_nuclei
from i2r_utils.tta import resolve_tta
from i2r_utils.unet import UNet
from i2r_utils.unet_training import train_unet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuclei_stardist_example"


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


def write_annotated_folder(folder, n=8, shape=(64, 64)):
    """A folder in the layout of nuclei_dsb2018_fluo: index.csv, images/*.png, labels/*.tif.

    ``n`` images of disks in two subsets (``u2os_520x696`` and ``diverse``), ids ``a0``, ``a1``,
    ... so that the split rule gives each subset a test and (for 4+ images) a validation image.
    """
    import imageio.v3 as iio
    import pandas as pd
    import tifffile

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(exist_ok=True)
    rows = []
    for k in range(n):
        image, labels = synthetic_disks(shape=shape, n=3, radius=(5, 8), seed=100 + k)
        image_id = f"a{k:02d}"
        iio.imwrite(folder / "images" / f"{image_id}.png", (image // 8).astype(np.uint8))
        tifffile.imwrite(folder / "labels" / f"{image_id}.tif", labels.astype(np.uint16))
        subset = "u2os_520x696" if k < n - 3 else "diverse"
        rows.append((image_id, subset, *shape, int(labels.max()), 0, float(image.mean())))
    columns = ["id", "subset", "height", "width", "n_nuclei", "overlap_px", "img_mean"]
    pd.DataFrame(rows, columns=columns).to_csv(folder / "index.csv", index=False)
    return folder


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
