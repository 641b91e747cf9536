"""How much do the answers move with the encoder's seed alone?

Run (about 10 minutes per encoder seed on 2 CPU cores, after the main job):
``.venv/bin/python benchmarks/bench_encoder_seeds.py [--encoder-seeds 1 2]
[--base results/default_seed0] [--config config/default.yaml] [--out results/bench_encoder_seeds]``

The screen, its nuclei, the impactful call and the gene embeddings stay those of the main
job in ``--base`` (screen seed ``seed``); only ``encoder_seed`` changes, so the fold
encoders are retrained from another initialisation and sampling order and stages 05-07 are
redone. Every encoder seed gets its own copy of the base results folder
(``<out>/encoder_seed<k>/results``; the stages it does not change are reused through their
done markers), so the benchmark is resumable. The base folder itself is encoder seed
``seed`` (``encoder_seed: null``).

Prints the true gene's rank of every held-out condition per encoder seed, with the mean and
standard deviation over encoder seeds, and the method row of the summary (mean rank,
top-10, Image2Reg score S) per encoder seed with its mean and standard deviation; writes
``<out>/ranks.csv`` and ``<out>/summary.csv``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from i2r_utils.artifacts import artifact
from i2r_utils.io import write_table

ROOT = Path(__file__).resolve().parents[1]
STAGES = "00,01,02,03,04,05,06,07"


def run_seed(k: int, args) -> Path:
    """Run the main job with ``encoder_seed: k`` in its own copy of the base folder."""
    seed_dir = args.out / f"encoder_seed{k}"
    results = seed_dir / "results"
    if not results.exists():
        shutil.copytree(args.base, results)
    cfg = yaml.safe_load(args.config.read_text()) or {}
    cfg["encoder_seed"] = k
    cfg_path = seed_dir / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, str(ROOT / "run_all.py"), "--config", str(cfg_path),
           "--stages", STAGES, "--data-dir", str(args.data_dir), "--results-dir", str(results),
           "--figures-dir", str(seed_dir / "figures")]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(f"[bench] encoder seed {k}: {time.perf_counter() - t0:.1f} s", flush=True)
    return results


def ranks_of(results: Path, conditions) -> dict[str, float]:
    """True-gene rank per held-out condition (NaN: not a candidate)."""
    out = {}
    for c in conditions:
        r = json.loads(artifact(results, "result", condition=c).read_text())["true_rank"]
        out[c] = float("nan") if r is None else float(r)
    return out


def main(argv=None) -> int:
    """Run every encoder seed, print and write the spread."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder-seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--base", type=Path, default=ROOT / "results" / "default_seed0")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data/synthetic/default_seed0")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "default.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_encoder_seeds")
    args = ap.parse_args(argv)
    base_cfg = yaml.safe_load(args.config.read_text()) or {}
    conditions = base_cfg["conditions"]
    runs = {f"{base_cfg.get('seed', 0)} (base)": args.base}
    for k in args.encoder_seeds:
        runs[str(k)] = run_seed(k, args)
    ranks = pd.DataFrame({k: ranks_of(r, conditions) for k, r in runs.items()})
    ranks.columns.name = "encoder seed"
    ranks["mean"], ranks["sd"] = ranks.mean(axis=1), ranks[list(runs)].std(axis=1)
    rows = []
    for k, r in runs.items():
        t = pd.read_csv(artifact(r, "summary_metrics"))
        m = t[t["method"].str.startswith("method") & (t["subset"] == t["subset"].iloc[0])]
        row = m.iloc[0]
        rows.append({"encoder_seed": k, "mean_rank": row["mean_rank"], "top10": row["top10"],
                     "image2reg_score": row["image2reg_score"]})  # fmt: skip
    summary = pd.DataFrame(rows).set_index("encoder_seed")
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(ranks.reset_index(names="condition"), args.out / "ranks.csv")
    write_table(summary.reset_index(), args.out / "summary.csv")
    print("true-gene rank per held-out condition:")
    print(ranks.round(1).to_string())
    print("\nmethod row per encoder seed:")
    print(summary.round(3).to_string())
    print(f"mean +- sd: {summary.mean().round(3).to_dict()} +- {summary.std().round(3).to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
