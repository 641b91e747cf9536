"""Benchmark of i2r_utils.features.extract_features on synthetic nuclei.

Run: ``.venv/bin/python benchmarks/bench_features.py [--nuclei 400] [--repeats 3] [--seed 0]``

Generates a synthetic chromatin image tiled with elliptical nuclei (radii 10-22 px, random
orientation, smooth intensity gradient, Gaussian noise and 0-8 bright heterochromatin foci),
times ``extract_features`` on all of them and prints nuclei per second overall and the time
spent per feature family (from the ``timings`` hook and from family-only runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from i2r_utils.features import FEATURE_FAMILIES, extract_features


def synthetic_field(n_nuclei: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (image float32, labels int32) with ``n_nuclei`` ellipses on a grid of 56 px cells."""
    rng = np.random.default_rng(seed)
    cell = 56
    n_side = int(np.ceil(np.sqrt(n_nuclei)))
    shape = (n_side * cell, n_side * cell)
    image = rng.normal(20.0, 3.0, shape)  # background
    labels = np.zeros(shape, dtype=np.int32)
    yy, xx = np.mgrid[:cell, :cell].astype(np.float64)
    for i in range(n_nuclei):
        r0, c0 = (i // n_side) * cell, (i % n_side) * cell
        cy, cx = cell / 2 + rng.uniform(-3, 3, 2)
        a = rng.uniform(12, 22)
        b = a * rng.uniform(0.6, 1.0)
        th = rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(th) + (xx - cx) * np.sin(th)
        v = -(yy - cy) * np.sin(th) + (xx - cx) * np.cos(th)
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        tile = rng.uniform(200, 600) * (1 + 0.2 * (u / a)) + rng.normal(0, 15, (cell, cell))
        for _ in range(rng.integers(0, 9)):
            ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.8)
            sy = cy + rad * a * 0.8 * np.cos(ang)
            sx = cx + rad * b * 0.8 * np.sin(ang)
            tile += rng.uniform(200, 600) * np.exp(
                -((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * rng.uniform(1.0, 2.0) ** 2)
            )
        sl = (slice(r0, r0 + cell), slice(c0, c0 + cell))
        image[sl] = np.where(inside, tile, image[sl])
        labels[sl][inside] = i + 1
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def best_of(fn, repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls of ``fn``."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuclei", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    image, labels = synthetic_field(args.nuclei, args.seed)
    n = int(labels.max())
    areas = np.bincount(labels.ravel())[1:]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}"
    )
    print(
        f"image {image.shape} {image.dtype}, {n} nuclei, area median {np.median(areas):.0f} px "
        f"(range {areas.min()}-{areas.max()})"
    )

    extract_features(image, labels)  # warm-up (imports, caches)
    timings: dict[str, float] = {}
    t_all = best_of(lambda: extract_features(image, labels, timings=timings), args.repeats)
    df = extract_features(image, labels)
    print(
        f"\nall families: {df.shape[1] - 1} features, best of {args.repeats}: {t_all:.3f} s "
        f"-> {n / t_all:,.0f} nuclei/s ({1e3 * t_all / n:.2f} ms/nucleus)"
    )

    total = sum(timings.values())
    print("\nper step (timings hook, share of the full run):")
    for k, v in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"  {k:18s} {1e3 * v / args.repeats / n:7.3f} ms/nucleus  {100 * v / total:5.1f} %")

    print("\nper family run alone (best of repeats):")
    for fam in FEATURE_FAMILIES:
        t = best_of(lambda fam=fam: extract_features(image, labels, families=[fam]), args.repeats)
        print(f"  {fam:10s} {t:7.3f} s  {n / t:10,.0f} nuclei/s  {1e3 * t / n:7.3f} ms/nucleus")


if __name__ == "__main__":
    main()
