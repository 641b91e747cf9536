"""Benchmark of the image encoder: training and embedding crops per second, and trainings.

Run: ``.venv/bin/python benchmarks/bench_encoder.py [--arch resnet18] [--sizes 32 64]
[--threads 1 2] [--seconds 8] [--conditions 50] [--n-folds 3]``

Times, for each input size and thread count, the training step of
:func:`i2r_utils.training.train_encoder` (augmentation + forward + backward + Adam, batch
128, 28 classes) and inference with :func:`i2r_utils.encoder.embed` (batch 512), on random
64x64 crops. Prints the load average before and after, because the machine may be shared:
on an oversubscribed CPU two torch threads can be several times slower than one. Also prints
how many encoder trainings the full leave-out evaluation needs (``n_folds``) against
Image2Reg's one per held-out condition (41), and the estimated encoder-stage time of the
main job for a given number of nuclei.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from i2r_utils.encoder import EncoderParams, build_model, embed
from i2r_utils.training import augment


def train_rate(params: EncoderParams, seconds: float, n_classes: int = 28) -> float:
    """Training crops per second (after two warm-up steps)."""
    torch.set_flush_denormal(True)
    model = build_model(params, n_classes).train()
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(params.batch_size, 1, params.input_size, params.input_size)
    y = torch.randint(0, n_classes, (params.batch_size,))

    def step():
        xb = augment(x, gen).contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(model(xb), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += params.batch_size
    return n / (time.perf_counter() - t0)


def embed_rate(params: EncoderParams, seconds: float) -> float:
    """Embedding crops per second of 64x64 crops (pooling to the input size included)."""
    model = build_model(params, 28)
    crops = np.random.default_rng(0).random((2048, 64, 64), dtype=np.float32)
    embed(model, crops[:512])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        embed(model, crops)
        n += len(crops)
    return n / (time.perf_counter() - t0)


def main() -> None:
    """Parse arguments, run the timings and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "small"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement")
    ap.add_argument("--conditions", type=int, default=50, help="non-control conditions")
    ap.add_argument("--impactful", type=int, default=41, help="impactful conditions (classes)")
    ap.add_argument("--n-folds", type=int, default=3)
    ap.add_argument("--nuclei", type=int, default=6000, help="nuclei of the main job")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--samples-per-class", type=int, default=64)
    args = ap.parse_args()

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}; load average before: {os.getloadavg()}")  # fmt: skip
    rows = []
    for size in args.sizes:
        for threads in args.threads:
            torch.set_num_threads(threads)
            params = EncoderParams(arch=args.arch, input_size=size)
            tr, em = train_rate(params, args.seconds), embed_rate(params, args.seconds)
            rows.append((size, threads, tr, em))
            print(f"{args.arch} {size}x{size}, {threads} thread(s): train {tr:6.0f} crops/s, "
                  f"embed {em:6.0f} crops/s", flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()}")

    classes = round(args.impactful * (args.n_folds - 1) / args.n_folds) + 1
    print(f"\ntrainings for the full leave-out evaluation: {args.n_folds} (K folds; K = "
          f"{args.conditions} conditions is leave-one-out) vs Image2Reg's 41 (one per "
          f"held-out impactful gene)")  # fmt: skip
    for size, threads, tr, em in rows:
        train_s = args.epochs * classes * args.samples_per_class / tr
        val_s = args.epochs * 0.25 * args.nuclei * (classes / (args.conditions + 1)) / em
        embed_s = args.nuclei / em
        total = args.n_folds * (train_s + val_s + embed_s)
        print(f"  {size}px, {threads} thread(s): per fold train {train_s:5.0f} s + validation "
              f"{val_s:3.0f} s + embed {embed_s:3.0f} s -> encoder stage ~{total / 60:4.1f} min "
              f"({args.n_folds} folds, {classes} classes, {args.nuclei} nuclei)")  # fmt: skip


if __name__ == "__main__":
    main()
