"""Benchmark nucleus filter + crop: the fast path against a naive regionprops loop.

Run: ``.venv/bin/python benchmarks/bench_nuclei.py [--data data/synthetic/tiny] [--repeats 3]``

Reads every image and mask of a screen into memory first (reading is not timed), then times,
on the same images in one run, per image: per-image normalisation, filtering with the
Image2Reg defaults and 64x64 masked crops of the kept nuclei, with

* ``fast``: :func:`i2r_utils.nucleus_filter.filter_nuclei` (one bincount pass over the
  foreground for area, bbox, centroid and moments; convex hulls only where the solidity bound
  is not enough);
* ``naive``: ``filter_nuclei_regionprops`` of ``tests/reference_nuclei.py`` (every property,
  solidity included, for every object from ``skimage.measure.regionprops``).

Prints nuclei per second (objects in the masks, i.e. nuclei considered by the filters; the
kept nuclei per second too), the ratio fast / naive, and checks that both keep the same
nuclei with the same counts and identical crops. The screen is simulated if missing
(``--size``). Single-threaded (``OMP_NUM_THREADS=1`` is set here).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import importlib.util  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from i2r_utils.io import load_metadata, normalize_percentile, read_image, read_mask  # noqa: E402
from i2r_utils.nuclei import crop_nuclei  # noqa: E402
from i2r_utils.nucleus_filter import NucleusFilter, filter_nuclei  # noqa: E402
from i2r_utils.simulate import simulate_screen  # noqa: E402


def _reference():
    """The naive reference filters of the tests (``tests/reference_nuclei.py``)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "reference_nuclei.py"
    spec = importlib.util.spec_from_file_location("reference_nuclei", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.filter_nuclei_regionprops


def run(fn, images, masks, filt):
    """Filter + crop every image with ``fn``; return (n objects, n kept, crops, counts)."""
    n_obj = n_kept = 0
    crops, counts = [], []
    for image, labels in zip(images, masks, strict=True):
        kept, c = fn(labels, filt)
        crops.append(
            crop_nuclei(normalize_percentile(image), labels, kept["centroid"], kept["label"])
        )
        n_obj += c["n_objects"]
        n_kept += c["n_kept"]
        counts.append(c)
    return n_obj, n_kept, crops, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/synthetic/tiny"))
    ap.add_argument("--size", default="tiny", help="simulated screen size if --data is missing")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()

    if not (args.data / "metadata.csv").is_file():
        simulate_screen(args.data, args.size, 0, progress=False)
    meta = load_metadata(args.data)
    images = [read_image(p) for p in meta["Metadata_ImagePath"]]
    masks = [read_mask(p) for p in meta["Metadata_MaskPath"]]
    filt = NucleusFilter()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}; {args.data}: {len(images)} images {images[0].shape}"
    )
    best, out = {}, {}
    for name, fn in (("fast", filter_nuclei), ("naive", _reference())):
        run(fn, images[:2], masks[:2], filt)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out[name] = run(fn, images, masks, filt)
            times.append(time.perf_counter() - t0)
        best[name] = min(times)
    n_obj, n_kept = out["fast"][0], out["fast"][1]
    same = out["fast"][3] == out["naive"][3] and all(
        np.array_equal(a, b) for a, b in zip(out["fast"][2], out["naive"][2], strict=True)
    )
    print(f"{n_obj} nuclei in the masks, {n_kept} kept; best of {args.repeats} runs")
    print(f"{'path':<6} {'seconds':>8} {'nuclei/s':>10} {'kept/s':>9}")
    for name, t in best.items():
        print(f"{name:<6} {t:>8.3f} {n_obj / t:>10,.0f} {n_kept / t:>9,.0f}")
    print(f"ratio fast / naive: {best['naive'] / best['fast']:.1f}x; identical results: {same}")
    if not same:
        raise SystemExit("fast and naive paths disagree")


if __name__ == "__main__":
    main()
