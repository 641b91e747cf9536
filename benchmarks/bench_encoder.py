"""Benchmark of the image encoder: training and embedding crops per second, and trainings.

Run: ``.venv/bin/python benchmarks/bench_encoder.py [--arch resnet18] [--sizes 32 64]
[--threads 1 2] [--seconds 8] [--conditions 50] [--n-folds 3]``; the original two-branch
network with its schedule: ``--arch image2reg --sizes 64 224 [--latent-dim 1024]
[--batch-size 64] [--device cuda]`` (nuclei/s = crop + context window pairs per second).

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

from i2r_utils.encoder import EncoderParams, build_model, embed, pick_device, prepare_inputs
from i2r_utils.training import augment
from i2r_utils.training_image2reg import flip_batch, image2reg_params


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _inputs(params: EncoderParams, n: int):
    """Random 64x64 crops and, for the two-branch network, context windows."""
    rng = np.random.default_rng(0)
    crops = rng.random((n, 64, 64), dtype=np.float32)
    if params.arch != "image2reg":
        return crops, None
    return crops, rng.integers(0, 256, (n, params.input_size, params.input_size), np.uint8)


def train_rate(params: EncoderParams, seconds: float, n_classes: int = 28, device=None) -> float:
    """Training nuclei per second (after one warm-up step): input, augmentation, step.

    i2r's recipe: pooled crops, :func:`~i2r_utils.training.augment`, plain cross-entropy;
    the original schedule: crops resized and paired with context windows, random flips,
    class-weighted cross-entropy.
    """
    torch.set_flush_denormal(True)
    dev = pick_device(device)
    model = build_model(params, n_classes).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    gen = torch.Generator().manual_seed(0)
    crops, context = _inputs(params, params.batch_size)
    two = params.arch == "image2reg"
    y = torch.randint(0, n_classes, (params.batch_size,)).to(dev)
    weight = torch.full((n_classes,), 1.0 / n_classes, device=dev)

    pooled = None if two else prepare_inputs(crops, params.input_size)  # i2r pools once

    def step():
        x = pooled if pooled is not None else prepare_inputs(crops, params.input_size, context, two)
        x = flip_batch(x, gen) if params.training == "image2reg" else augment(x, gen)
        x = x.to(dev).contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(model(x), y, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    _sync(dev)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        _sync(dev)
        n += params.batch_size
    return n / (time.perf_counter() - t0)


def embed_rate(params: EncoderParams, seconds: float, device=None) -> float:
    """Embedding nuclei per second of 64x64 crops (resizing to the input size included)."""
    model = build_model(params, 28, weights=False)
    n_crops = 256 if params.arch == "image2reg" else 2048
    crops, context = _inputs(params, n_crops)
    embed(model, crops[:64], device=device, context=None if context is None else context[:64])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        embed(model, crops, device=device, context=context)
        n += len(crops)
    return n / (time.perf_counter() - t0)


def bench_params(args, size: int) -> EncoderParams:
    """Encoder parameters of one measurement (the original schedule for ``image2reg``)."""
    fields = {"arch": args.arch, "input_size": size}
    if args.batch_size:
        fields["batch_size"] = args.batch_size
    if args.arch == "image2reg":
        return image2reg_params(latent_dim=args.latent_dim, **fields)
    return EncoderParams(**fields)


def main() -> None:
    """Parse arguments, run the timings and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "small", "image2reg"])
    ap.add_argument("--latent-dim", type=int, default=1024, help="image2reg embedding size")
    ap.add_argument("--batch-size", type=int, default=0, help="0: the recipe's own")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
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

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {gpu}, "
          f"torch {torch.__version__}; device {pick_device(args.device)}; load average "
          f"before: {os.getloadavg()}")  # fmt: skip
    rows = []
    for size in args.sizes:
        for threads in args.threads:
            torch.set_num_threads(threads)
            params = bench_params(args, size)
            tr = train_rate(params, args.seconds, device=args.device)
            em = embed_rate(params, args.seconds, device=args.device)
            rows.append((size, threads, tr, em))
            print(f"{args.arch} {size}x{size}, batch {params.batch_size}, {threads} thread(s): "
                  f"train {tr:7.1f} nuclei/s, embed {em:7.1f} nuclei/s", flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()}")

    if args.arch == "image2reg":  # the estimate below is i2r's recipe (balanced sampling)
        return
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
