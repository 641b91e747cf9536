"""Benchmark nucleus segmentation on the held-out DSB2018 fluorescence test fields (not a test).

Trains the run's U-Net on the fixed training / validation split
(:func:`i2r_utils.unet_training.trained_unet`, skipped when ``--model`` already holds a model of
the same settings), then scores classical, U-Net, U-Net + TTA (thesis' 6 versions) and
U-Net + TTA (D4, 8 versions) on the test fields and prints the issue's targets as measured:

- U2OS test fields: U-Net + TTA mAP_DSB >= 0.60 and AP@0.5 >= 0.85; TTA better than none;
- the other fluorescence fields: reported;
- training time (wall clock and CPU time, threads, device) and inference fields of 520 x 696
  per second per core without TTA (CPU time per U2OS field, so other load on the machine
  does not count).

Usage::

    python benchmarks/bench_segmentation.py [--threads 1] [--model /tmp/unet.pt] [--epochs 16]

The data are read from ``../shared/data/nuclei_dsb2018_fluo`` beside the repository.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from i2r_utils.segmentation import evaluate_segmentation
from i2r_utils.segmentation_data import load_annotated_fields
from i2r_utils.unet_training import trained_unet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuclei_dsb2018_fluo"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help="the nuclei_dsb2018_fluo folder")
    p.add_argument("--model", type=Path, help="model file to reuse or write (default: temporary)")
    p.add_argument("--epochs", type=int, default=16, help="most U-Net epochs of 40 steps")
    p.add_argument("--max-minutes", type=float, default=15.0, help="training wall-clock cap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    p.add_argument("--no-classical", action="store_true", help="skip the classical baseline")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = args.model or Path(tempfile.mkdtemp(prefix="i2r-seg-")) / "unet.pt"
    settings = {"epochs": args.epochs, "max_seconds": 60 * args.max_minutes, "seed": args.seed}
    model, info = trained_unet(model_path, args.data, settings, progress=True)
    hist = info["history"]
    print(f"model {model_path} ({'reused' if info['reused'] else 'trained'}); load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"training: {hist['steps']} steps, stopped by {hist['stopped']}, best epoch "
          f"{hist.get('best_epoch')}, {info['seconds']:.0f} s wall, {hist['cpu_seconds']:.0f} s "
          f"CPU, {info['threads']} threads on {info['device']}; validation mAP_DSB per epoch "
          f"{[round(v, 3) for v in hist['val_map_dsb']]}; "
          f"watershed {info['postprocess']}")  # fmt: skip
    test = load_annotated_fields(args.data, "test")
    methods = {
        "U-Net": {"method": "unet", "model": model},
        "U-Net+TTA6": {"method": "unet", "model": model, "tta": "thesis6"},
        "U-Net+TTA8": {"method": "unet", "model": model, "tta": "d4"},
    }
    if not args.no_classical:
        methods = {"classical": {"method": "classical"}, **methods}
    scores, _ = evaluate_segmentation(test["images"], test["masks"], test["names"], methods)
    subsets = dict(zip(test["names"], test["table"]["subset"], strict=True))
    scores["subset"] = scores["image"].map(subsets)
    cols = ["map_dsb", "ap50", "pixel_iou", "seconds", "cpu_seconds"]
    table = scores.groupby(["subset", "method"], sort=False)[cols].mean()
    table["n"] = scores.groupby(["subset", "method"], sort=False).size()
    print(table.round(3).to_string())
    u2os = scores[scores["subset"] == "u2os_520x696"].pivot(index="image", columns="method")
    for tta in ("U-Net+TTA6", "U-Net+TTA8"):
        m, ap = u2os["map_dsb"][tta].mean(), u2os["ap50"][tta].mean()
        delta = (u2os["map_dsb"][tta] - u2os["map_dsb"]["U-Net"]).to_numpy()
        d_iou = (u2os["pixel_iou"][tta] - u2os["pixel_iou"]["U-Net"]).to_numpy()
        print(f"U2OS {tta}: mAP_DSB {m:.3f} (target >= 0.60: {'met' if m >= 0.6 else 'MISSED'}), "
              f"AP@0.5 {ap:.3f} (target >= 0.85: {'met' if ap >= 0.85 else 'MISSED'}); TTA delta "
              f"mAP_DSB mean {delta.mean():+.4f} ({(delta > 0).sum()} up, {(delta < 0).sum()} "
              f"down), pixel IoU mean {d_iou.mean():+.4f}")  # fmt: skip
    cpu = u2os["cpu_seconds"]["U-Net"].mean()  # all threads' CPU time: per core already
    print(f"inference without TTA: {1 / cpu:.2f} fields of 520x696 per CPU second "
          f"(CPU {cpu:.2f} s per field with {torch.get_num_threads()} threads; wall "
          f"{u2os['seconds']['U-Net'].mean():.2f} s; target >= 2 per second per core)")  # fmt: skip
    by_method = scores.pivot(index="image", columns="method", values="map_dsb")
    delta = (by_method["U-Net+TTA8"] - by_method["U-Net"]).to_numpy()
    print(f"all test fields: TTA8 minus none, mAP_DSB mean {np.mean(delta):+.4f}")


if __name__ == "__main__":
    main()
