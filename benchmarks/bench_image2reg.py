"""The `image2reg` preset beside i2r's default: seeds x configurations x candidate protocols.

Run (about 10 minutes per seed and configuration on 2 CPU cores):
``.venv/bin/python benchmarks/bench_image2reg.py [--seeds 0 1 2]
[--configs config/default.yaml config/image2reg_cpu.yaml]
[--protocols all_targets new_target] [--out results/bench_image2reg]``

For every seed, the main job runs once per configuration and candidate protocol into ONE
results folder per seed (``<out>/seed<s>/results``), so the stages a change does not touch
(simulation, nuclei, screen and, when the encoder keys agree, the fold encoders) are reused
through the done markers; after each run its ``summary_metrics.csv`` is copied to
``<out>/seed<s>/<config>_<protocol>.csv``. A combination whose copy exists is not run again
(the benchmark is resumable). Stage 08 (segmentation) is left out: it does not depend on
these keys.

Prints, per configuration and protocol, every row of the summary (method, permutation,
full-shuffle, mean-embedding predictors, uniform) with mean rank, top-1/5/10, area
(``auc_k10_50``) and the Image2Reg score S, as the mean and standard deviation over seeds,
and writes all rows to ``<out>/comparison.csv``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from i2r_utils.artifacts import artifact
from i2r_utils.io import write_table

ROOT = Path(__file__).resolve().parents[1]
METRICS = [
    "mean_rank",
    "top1",
    "top5",
    "top10",
    "auc_k10_50",
    "image2reg_score",
    "n_candidates",
    "mean_rank_vs_uniform",
    "image2reg_score_vs_uniform",
]
STAGES = "00,01,02,03,04,05,06,07"


def run_one(config: Path, seed: int, protocol: str, seed_dir: Path, size: str) -> Path:
    """Run the main job for one combination; return the copy of its summary metrics."""
    name = f"{config.stem}_{protocol}"
    copy = seed_dir / f"{name}.csv"
    if copy.is_file():
        print(f"[bench] seed {seed} {name}: done before, reused", flush=True)
        return copy
    cfg = yaml.safe_load(config.read_text()) or {}
    cfg.update({"seed": seed, "size": size, "candidate_protocol": protocol})
    cfg_path = seed_dir / f"{name}.yaml"
    seed_dir.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    results = seed_dir / "results"
    cmd = [sys.executable, str(ROOT / "run_all.py"), "--config", str(cfg_path),
           "--seed", str(seed), "--size", size, "--stages", STAGES,
           "--data-dir", str(ROOT / "data" / "synthetic" / f"{size}_seed{seed}"),
           "--results-dir", str(results),
           "--figures-dir", str(seed_dir / "figures" / name)]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(f"[bench] seed {seed} {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    table = pd.read_csv(artifact(results, "summary_metrics"))
    write_table(table, copy)
    return copy


def collect(copies: dict[tuple[str, str, int], Path]) -> pd.DataFrame:
    """All summary rows, labelled by configuration, protocol and seed."""
    frames = []
    for (config, protocol, seed), path in copies.items():
        t = pd.read_csv(path)
        t["row"] = t["method"].str.replace(r"^method \(.*\)$", "method", regex=True)
        # candidate sets differ (e.g. PCST vs shortest paths): compare against uniform random
        uniform = t[t["row"].str.startswith("uniform")].set_index("subset")
        for m in ("mean_rank", "image2reg_score"):
            t[f"{m}_vs_uniform"] = t[m] / t["subset"].map(uniform[m])
        frames.append(t.assign(config=config, protocol=protocol, seed=seed))
    return pd.concat(frames, ignore_index=True)


def report(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every metric, per configuration/protocol/row."""
    keys = ["config", "protocol", "subset", "row"]
    agg = table.groupby(keys, sort=False)[METRICS].agg(["mean", "std"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg["n_seeds"] = table.groupby(keys, sort=False)["seed"].nunique()
    return agg.reset_index()


def main(argv=None) -> None:
    """Run the combinations, print and write the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--configs", nargs="+", type=Path,
                    default=[ROOT / "config" / "default.yaml",
                             ROOT / "config" / "image2reg_cpu.yaml"])  # fmt: skip
    ap.add_argument("--protocols", nargs="+", default=["all_targets", "new_target"])
    ap.add_argument("--size", default="default")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_image2reg")
    args = ap.parse_args(argv)
    copies = {}
    for seed in args.seeds:
        for config in args.configs:
            for protocol in args.protocols:
                path = run_one(
                    config.resolve(), seed, protocol, args.out / f"seed{seed}", args.size
                )
                copies[(config.stem, protocol, seed)] = path
    table = collect(copies)
    write_table(table, args.out / "comparison.csv")
    summary = report(table)
    write_table(summary, args.out / "comparison_mean_sd.csv")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        groups = summary.groupby(["config", "protocol", "subset"], sort=False)
        for (config, protocol, subset), part in groups:
            n = part["n_seeds"].max()
            print(f"\n== {config}, {protocol}, {subset} (mean +- sd over {n} seeds)")
            shown = part.set_index("row")
            cells = {
                m: shown[f"{m}_mean"].round(3).astype(str)
                + " +- "
                + shown[f"{m}_std"].round(3).astype(str)
                for m in METRICS
            }
            print(pd.DataFrame(cells))


if __name__ == "__main__":
    main()
