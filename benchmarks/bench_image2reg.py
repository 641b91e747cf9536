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
(the benchmark is resumable; ``--report-only`` runs nothing and reports what is done,
``--markdown`` also prints the README's tables). Stage 08 (segmentation) is left out: it
does not depend on these keys.

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


ROW_NAMES = {
    "method": "method",
    "permutation baseline (training re-pairing)": "permutation (re-pairing)",
    "full-shuffle baseline (original --random)": "full shuffle (original --random)",
    "mean-embedding predictor (mean of the training genes)": "mean of training genes",
    "mean-embedding predictor (mean of all candidates)": "mean of all candidates",
    "uniform random (k/N)": "uniform random",
}


def markdown(table: pd.DataFrame, seed: int) -> str:
    """README tables: every row of one seed, and the method row per seed with mean and sd."""
    t = table[(table["subset"] == "all held-out") & table["row"].isin(ROW_NAMES)]
    head = ("| config | protocol | row | N | mean rank | top-1 | top-5 | top-10 | area | S | "
            "S / uniform S | mean rank / uniform |\n" + "|---" * 12 + "|")  # fmt: skip
    lines = [f"Seed {seed}, every row:", "", head]
    for r in t[t["seed"] == seed].itertuples():
        lines.append(f"| {r.config} | {r.protocol} | {ROW_NAMES[r.row]} | {r.n_candidates:.0f} | "
                     f"{r.mean_rank:.1f} | {r.top1:.2f} | {r.top5:.2f} | {r.top10:.2f} | "
                     f"{r.auc_k10_50:.3f} | {r.image2reg_score:.3f} | "
                     f"{r.image2reg_score_vs_uniform:.2f} | "
                     f"{r.mean_rank_vs_uniform:.2f} |")  # fmt: skip
    seeds = sorted(int(x) for x in t["seed"].unique())
    lines += ["", f"Every row, mean ± sd over seeds {seeds}:", "",
              "| config | protocol | row | mean rank | top-1 | top-5 | top-10 | area | S |",
              "|---" * 9 + "|"]  # fmt: skip
    every = ["mean_rank", "top1", "top5", "top10", "auc_k10_50", "image2reg_score"]
    fmt_all = {"mean_rank": ".1f", "auc_k10_50": ".3f", "image2reg_score": ".3f"}
    for (config, protocol, row), g in t.groupby(["config", "protocol", "row"], sort=False):
        f2 = {c: fmt_all.get(c, ".2f") for c in every}
        vals = " | ".join(f"{g[c].mean():{f2[c]}} ± {g[c].std():{f2[c]}}" for c in every)
        lines.append(f"| {config} | {protocol} | {ROW_NAMES[row]} | {vals} |")
    lines += ["", "The method row per seed:", "",
              "| config | protocol | seed | N | mean rank | top-10 | S | S / uniform S | "
              "mean rank / uniform |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    m = t[t["row"] == "method"]
    cols = ["mean_rank", "top10", "image2reg_score", "image2reg_score_vs_uniform",
            "mean_rank_vs_uniform"]  # fmt: skip
    fmt = {"mean_rank": ".1f", "top10": ".2f", "image2reg_score": ".3f"}
    for (config, protocol), g in m.groupby(["config", "protocol"], sort=False):
        for r in g.sort_values("seed").itertuples():
            vals = " | ".join(f"{getattr(r, c):{fmt.get(c, '.2f')}}" for c in cols)
            lines.append(f"| {config} | {protocol} | {r.seed} | {r.n_candidates:.0f} | {vals} |")
        if g["seed"].nunique() > 1:
            f2 = {c: fmt.get(c, ".2f") for c in cols}
            vals = " | ".join(f"{g[c].mean():{f2[c]}} ± {g[c].std():{f2[c]}}" for c in cols)
            lines.append(f"| {config} | {protocol} | mean ± sd ({g['seed'].nunique()} seeds) | "
                         f"| {vals} |")  # fmt: skip
    return "\n".join(lines)


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
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: report the combinations already done")  # fmt: skip
    ap.add_argument("--markdown", action="store_true", help="also print the README tables")
    args = ap.parse_args(argv)
    copies = {}
    for seed in args.seeds:
        for config in args.configs:
            for protocol in args.protocols:
                seed_dir = args.out / f"seed{seed}"
                if args.report_only:
                    path = seed_dir / f"{config.stem}_{protocol}.csv"
                    if path.is_file():
                        copies[(config.stem, protocol, seed)] = path
                    continue
                path = run_one(config.resolve(), seed, protocol, seed_dir, args.size)
                copies[(config.stem, protocol, seed)] = path
    if not copies:
        print(f"nothing done yet in {args.out}")
        return
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
    if args.markdown:
        print("\n" + markdown(table, min(args.seeds)))


if __name__ == "__main__":
    main()
