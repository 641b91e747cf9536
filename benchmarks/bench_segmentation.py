"""Benchmark nucleus segmentation on the real StarDist/DSB2018 example image (4-fold CV).

The 512x512 image is split into its four 256x256 quadrants. For each fold the U-Net is
trained on three quadrants (600 steps by default, capped at --train-seconds; on CPU
unless a GPU is present; the step count is printed, so a capped run is visible) and all
methods are scored on the held-out quadrant: classical, classical + D4 TTA, U-Net and
U-Net + D4 TTA. Prints mAP_DSB, AP@0.5 and timings per fold and averaged.

Usage::

    python benchmarks/bench_segmentation.py [--threads 1] [--train-seconds 90] [--epochs 60] ...

The data are read from ``../shared/data/nuclei_stardist_example`` beside the repository.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from i2r_utils.metrics import segmentation_scores
from i2r_utils.segmentation import segment_nuclei
from i2r_utils.tta import resolve_tta
from i2r_utils.unet import train_unet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuclei_stardist_example"
METHODS = ("classical", "classical+TTA", "unet", "unet+TTA")


def quadrants(array: np.ndarray) -> list[np.ndarray]:
    h, w = array.shape[0] // 2, array.shape[1] // 2
    return [array[:h, :w], array[:h, w:], array[h:, :w], array[h:, w:]]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help="folder with img2d.tif and mask2d.tif")
    p.add_argument("--folds", type=int, nargs="*", default=[0, 1, 2, 3], help="held-out quadrants")
    p.add_argument("--train-seconds", type=float, default=90.0, help="max train s per fold")
    p.add_argument("--epochs", type=int, default=60, help="epochs of --steps-per-epoch steps")
    p.add_argument("--steps-per-epoch", type=int, default=10)
    p.add_argument("--patch-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--base-channels", type=int, default=8)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--boundary-weight", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tta", default="d4", help="'d4', 'flips' or comma-separated transform names")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 1 is fastest for this tiny U-Net, and by far on a busy machine",
    )
    p.add_argument("--progress", action="store_true", help="show the tqdm training bar")
    return p.parse_args()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tta = args.tta if args.tta in ("d4", "flips") else args.tta.split(",")
    tta = resolve_tta(tta)
    image = tifffile.imread(args.data / "img2d.tif")
    mask = tifffile.imread(args.data / "mask2d.tif")
    tiles, truths = quadrants(image), quadrants(mask)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"image {image.shape} {image.dtype}, {len(np.unique(mask)) - 1} nuclei; device {device}, "
        f"torch threads {torch.get_num_threads()}; TTA {len(tta)} transforms"
    )
    print(
        f"U-Net: base {args.base_channels}, depth {args.depth}, patch {args.patch_size}, "
        f"batch {args.batch_size}, lr {args.lr}, {args.train_seconds:.0f} s per fold, "
        f"seed {args.seed}"
    )
    rows = []
    print(
        f"{'fold':>4} {'method':<14} {'mAP_DSB':>8} {'AP@0.5':>7} {'n_pred':>6} {'n_true':>6} "
        f"{'seconds':>8}"
    )
    for fold in args.folds:
        train_idx = [k for k in range(4) if k != fold]
        model, history = train_unet(
            [tiles[k] for k in train_idx],
            [truths[k] for k in train_idx],
            epochs=args.epochs,
            patch_size=args.patch_size,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=device,
            progress=args.progress,
            base_channels=args.base_channels,
            depth=args.depth,
            steps_per_epoch=args.steps_per_epoch,
            boundary_weight=args.boundary_weight,
            max_time_s=args.train_seconds,
        )
        loss = history["loss"]
        print(
            f"fold {fold}: trained {len(loss)} steps in {history['seconds'][0]:.1f} s, "
            f"loss {np.mean(loss[:10]):.3f} -> {np.mean(loss[-10:]):.3f}"
        )
        test, truth = tiles[fold], truths[fold]
        settings = {
            "classical": ("classical", None, None),
            "classical+TTA": ("classical", None, tta),
            "unet": ("unet", model, None),
            "unet+TTA": ("unet", model, tta),
        }
        for name, (method, net, t) in settings.items():
            labels, seconds = timed(segment_nuclei, test, method=method, model=net, tta=t)
            scores = segmentation_scores(truth, labels)
            row = {
                "fold": fold,
                "method": name,
                "map": scores["map_dsb"],
                "ap50": scores["ap50"],
                "n_pred": int(labels.max()),
                "n_true": len(np.unique(truth)) - 1,
                "seconds": seconds,
                "train_seconds": history["seconds"][0] if method == "unet" else 0.0,
            }
            rows.append(row)
            print(
                f"{fold:>4} {name:<14} {row['map']:>8.3f} {row['ap50']:>7.3f} "
                f"{row['n_pred']:>6} {row['n_true']:>6} {seconds:>8.2f}"
            )
    print("\nmean over folds", args.folds)
    print(f"{'method':<14} {'mAP_DSB':>8} {'AP@0.5':>7} {'predict s':>9} {'train s':>8}")
    for name in METHODS:
        sel = [r for r in rows if r["method"] == name]
        print(
            f"{name:<14} {np.mean([r['map'] for r in sel]):>8.3f} "
            f"{np.mean([r['ap50'] for r in sel]):>7.3f} "
            f"{np.mean([r['seconds'] for r in sel]):>9.2f} "
            f"{np.mean([r['train_seconds'] for r in sel]):>8.1f}"
        )
    deltas = {
        base: np.mean([r["map"] for r in rows if r["method"] == f"{base}+TTA"])
        - np.mean([r["map"] for r in rows if r["method"] == base])
        for base in ("classical", "unet")
    }
    rounded = {k: round(float(v), 4) for k, v in deltas.items()}
    print("TTA delta of mean mAP_DSB (merged - original):", rounded)


if __name__ == "__main__":
    main()
