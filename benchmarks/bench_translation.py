"""Benchmark: closed-form leave-one-out KRR vs refitting n times.

Run: ``.venv/bin/python benchmarks/bench_translation.py [--n 41 100 200] [--alphas 5]``

For n conditions (random 512-d profiles, 32-d unit gene embeddings, ReLU NTK depth 2),
times (a) the closed-form LOO predictions for every ridge of the grid from one
eigendecomposition (:class:`i2r_utils.ridge.LooRidge`, kernel included) and (b) refitting
plain kernel ridge regression (``tests/reference_translation.py``) n times per ridge (kernel
recomputed, as a naive loop would), checks both give the same predictions and prints the
speed-up. n = 41 is Image2Reg's number of impactful conditions.

``--shuffle R`` also times the original's full-shuffle baseline
(:func:`i2r_utils.baselines.full_shuffle_ranks`, R repeats for one held-out condition, 249
candidates as the original's interactome) with the original translation (NTK depth 1 on
bias-augmented raw inputs, ridge 1) and with i2r's (NTK depth 2, centred inputs, ridge by
inner LOO), image to gene and two-way.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from i2r_utils.baselines import full_shuffle_ranks
from i2r_utils.kernels import kernel_matrix
from i2r_utils.ridge import LooRidge


def _reference_module():
    """The tests' plain kernel ridge reference (tests/reference_translation.py), by file path."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tests" / "reference_translation.py"
    spec = importlib.util.spec_from_file_location("reference_translation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KernelRidge = _reference_module().KernelRidge


def bench(n: int, n_alphas: int, d: int = 512, k: int = 32, seed: int = 0) -> dict:
    """Time closed-form LOO vs n refits; return timings and the max difference."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) / np.sqrt(d)
    y = rng.normal(size=(n, k))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    alphas = np.logspace(-3, 1, n_alphas)
    t0 = time.perf_counter()
    core = LooRidge({None: kernel_matrix(x, x, "ntk", 2)}, alphas, (None, 1.0))
    fast = np.stack([y - core.loo_residuals(y, (None, a)) for a in core.ridges])
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = np.empty_like(fast)
    for a, alpha in enumerate(alphas):
        for i in range(n):
            keep = np.arange(n) != i
            slow[a, i] = KernelRidge(alpha, "ntk", 2).fit(x[keep], y[keep]).predict(x[[i]])[0]
    t_slow = time.perf_counter() - t0
    return {
        "n": n,
        "alphas": n_alphas,
        "closed_form_s": t_fast,
        "refit_s": t_slow,
        "speedup": t_slow / t_fast,
        "max_abs_diff": float(np.abs(fast - slow).max()),
    }


def bench_shuffle(n: int, repeats: int, n_genes: int = 249, d: int = 512, seed: int = 0):
    """Time the full-shuffle baseline for one held-out condition; yield one row per setting."""
    rng = np.random.default_rng(seed)
    names = [f"G{i}" for i in range(n_genes)]
    emb = pd.DataFrame(rng.normal(size=(n_genes, 32)), index=names)
    emb = emb.div(np.linalg.norm(emb, axis=1), axis=0)
    space = pd.DataFrame(rng.normal(size=(n + 1, d)), columns=[f"cnn_{i}" for i in range(d)])
    space.insert(0, "Metadata_Condition", names[: n + 1])
    original = {"kernel": "ntk", "depth": 1, "alphas": (1.0,), "scaling": "none",
                "input_bias": True}  # fmt: skip
    i2r = {"kernel": "ntk", "depth": 2, "alphas": (0.001, 0.01, 0.1, 1.0, 10.0)}
    for label, opts in (("original", original), ("i2r", i2r)):
        for direction in ("image_to_gene", "two_way"):
            t0 = time.perf_counter()
            ranks = full_shuffle_ranks(space, emb, names[0], names[1 : n + 1], direction,
                                       repeats, seed, **opts)  # fmt: skip
            yield label, direction, time.perf_counter() - t0, float(ranks.mean())


def main() -> None:
    """Print the benchmark table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[41, 100, 200])
    ap.add_argument("--alphas", type=int, default=5)
    ap.add_argument("--shuffle", type=int, default=0, help="full-shuffle repeats (0: skip)")
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")  # fmt: skip
    print(f"{'n':>5} {'ridges':>6} {'closed-form s':>14} {'refit n times s':>16} "
          f"{'speed-up':>9} {'max |diff|':>11}")  # fmt: skip
    for n in args.n:
        r = bench(n, args.alphas)
        print(f"{r['n']:>5} {r['alphas']:>6} {r['closed_form_s']:>14.4f} {r['refit_s']:>16.3f} "
              f"{r['speedup']:>8.0f}x {r['max_abs_diff']:>11.1e}")  # fmt: skip
    if args.shuffle:
        print(f"\nfull shuffle, {args.shuffle} repeats, one held-out condition, 249 candidates")
        print(f"{'n':>5} {'translation':>12} {'direction':>14} {'s':>8} {'mean rank':>10}")
        for n in args.n:
            for label, direction, sec, mean_rank in bench_shuffle(n, args.shuffle):
                print(f"{n:>5} {label:>12} {direction:>14} {sec:>8.2f} {mean_rank:>10.1f}")


if __name__ == "__main__":
    main()
