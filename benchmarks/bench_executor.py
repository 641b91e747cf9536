"""Parallel units on Dask: the plate stage (01) and the per-condition stage (06), 1 vs 2 workers.

Not a test. Prepares a results folder with ``run_all.py --stages 00-05`` (local executor;
skipped where already complete), then, for each worker count, starts a Dask
``LocalCluster`` of that many worker processes on 127.0.0.1 and times, with ``--force``
semantics, every plate unit of stage 01 and every condition unit of stage 06. Prints the
wall times, the 1-worker / 2-worker ratio, and a paper projection of the full Rohban et
al. 2017 screen on N workers from the measured per-unit costs (assumptions printed).

    python benchmarks/bench_executor.py [--size default] [--workers 1,2]
        [--conditions BRAF,JUN,...] [--data-dir DIR] [--workdir DIR]
        [--full-plates 5 --full-sites-per-well 9 --full-nuclei-per-field 50 ...]

``--data-dir`` may point at an existing screen (e.g. ``data/synthetic/default_seed0``)
to skip the simulation; results go to ``<workdir>/results`` (default: a new temporary
folder), never to the main job's folder. Leave ``OMP_NUM_THREADS`` unset: each worker then
gets ``cores / workers`` BLAS/torch threads, so 1 and 2 workers use the same cores.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# --- assumptions of the paper projection (override on the command line) -----------------
# Rohban et al. 2017 ORF screen as used by Image2Reg: cpg0017-rohban-pathways, batch
# 2013_10_11_SIGMA2_Pilot, five 384-well plates (one replicate of the 323 ORF constructs
# each; i2r_pipeline.fetch.cpg.ROHBAN_PLATES), DNA channel only.
FULL = {
    "plates": 5,  # plates (i2r_pipeline.fetch.cpg.ROHBAN_PLATES)
    "wells_per_plate": 384,  # 384-well plates
    "sites_per_well": 9,  # fields of view per well (assumption)
    "field_px": 1080,  # side of an ImageXpress field in pixels (1080 x 1080, 16 bit)
    "nuclei_per_field": 50,  # U2OS nuclei per 20x field (assumption)
    "held_out": 41,  # held-out conditions: Image2Reg's impactful genes
    "folds": 3,  # encoder trainings (n_folds); Image2Reg trains one per held-out gene (41)
    "train_percent": 15,  # nuclei in training conditions: 41 impactful of ~323 ORFs + controls
}


def prepare(args, work):
    """Run stages 00-05 locally (complete ones are skipped) so that 01 and 06 can rerun."""
    cmd = [sys.executable, str(ROOT / "run_all.py"), *run_all_args(args, work),
           "--stages", "00,01,02,03,04,05"]  # fmt: skip
    t0 = time.perf_counter()
    env = {**os.environ, "I2R_NO_VENV": "1"}
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"preparing stages 00-05 failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    print(f"prepared stages 00-05 in {time.perf_counter() - t0:.0f} s ({work / 'results'})")


def run_all_args(args, work):
    out = ["--size", args.size, "--data-dir", str(args.data_dir or work / "data"),
           "--results-dir", str(work / "results"),
           "--figures-dir", str(work / "figures")]  # fmt: skip
    return out + (["--conditions", args.conditions] if args.conditions else [])


def marker_seconds(work, stage):
    """Per-unit seconds of a stage from its done markers (the preparation run)."""
    from i2r_pipeline.executor import marker_path, read_marker

    pattern = marker_path("**", stage).as_posix()
    return [read_marker(p)["seconds"] for p in (work / "results").glob(pattern)]


def count_nuclei(results):
    import pyarrow.parquet as pq

    files = sorted((results / "nuclei" / "plates").glob("*.parquet"))
    return sum(pq.ParquetFile(p).metadata.num_rows for p in files)


def encoder_info(results):
    """Training seconds and crops/s of every fold (encoders/fold*/encoder.json)."""
    infos = [json.loads(p.read_text()) for p in sorted(results.glob("encoders/fold*/encoder.json"))]
    return [(i.get("train_seconds", 0.0), i.get("train_crops_per_s")) for i in infos]


def project(m, screen, a):
    """Paper projection of the full screen on N workers from the measured unit costs."""
    fields_full = a.plates * a.wells_per_plate * a.sites_per_well
    nuclei_full = fields_full * a.nuclei_per_field
    px_ratio = (a.field_px / screen["field_px"]) ** 2
    nuc_ratio = nuclei_full / max(1, screen["nuclei"])
    t_plate = m["s_per_field"] * px_ratio * a.wells_per_plate * a.sites_per_well
    train_crops = m["epochs"] * nuclei_full * a.train_percent / 100
    t_fold = train_crops / m["train_crops_per_s"] + m["s_embed_per_nucleus"] * nuclei_full
    t_cond = m["s_per_condition"]
    t_serial = m["s_nuclei_stages"] * nuc_ratio + m["s_fixed_stages"]
    print("\nPaper projection: the full Rohban et al. 2017 screen (Image2Reg's data), on paper")
    print("assumptions (override with --full-*):")
    print(f"  {a.plates} plates x {a.wells_per_plate} wells x {a.sites_per_well} fields = "
          f"{fields_full} fields of {a.field_px}x{a.field_px} px, {a.nuclei_per_field} nuclei "
          f"per field = {nuclei_full / 1e6:.2f} M nuclei")  # fmt: skip
    print(f"  plate unit (01): cost per field scales with pixels, x{px_ratio:.1f} "
          f"(measured {m['s_per_field']:.3f} s per {screen['field_px']} px field) "
          f"-> {t_plate / 3600:.1f} h per plate")  # fmt: skip
    print(f"  fold unit (04): {m['epochs']} epochs over the {a.train_percent}% of nuclei in "
          f"training conditions at the measured {m['train_crops_per_s']:.0f} crops/s, plus "
          f"embedding all nuclei at the measured {m['s_embed_per_nucleus'] * 1e3:.1f} ms per "
          f"nucleus -> {t_fold / 3600:.1f} h per fold, {a.folds} folds "
          "(Image2Reg: one encoder per held-out gene, i.e. --full-folds 41)")  # fmt: skip
    print(f"  condition unit (06): as measured, {t_cond:.1f} s, {a.held_out} held-out conditions")
    print(f"  serial dataset stages: 02 + 05 scale with nuclei ({m['s_nuclei_stages']:.0f} s "
          f"-> {m['s_nuclei_stages'] * nuc_ratio / 3600:.1f} h), 03 + 07 + 08 as measured "
          f"({m['s_fixed_stages']:.0f} s)")  # fmt: skip
    print("  one CPU worker per unit (no GPU), shared file system, download time not counted;")
    print("  units of a stage are equal, so a stage takes ceil(units / N) unit times")
    cpu_h = (a.plates * t_plate + a.folds * t_fold + a.held_out * t_cond + t_serial) / 3600
    print(f"total ~ {cpu_h:.0f} worker-hours")
    print(f"{'workers':>8s} {'plates h':>9s} {'encoders h':>11s} {'conditions h':>13s} "
          f"{'serial h':>9s} {'total h':>8s}")  # fmt: skip
    for n in (1, 2, 5, 8, 41):
        row = [math.ceil(a.plates / n) * t_plate, math.ceil(a.folds / n) * t_fold,
               math.ceil(a.held_out / n) * t_cond, t_serial]  # fmt: skip
        cells = [f"{v / 3600:{w}.1f}" for v, w in zip(row, (9, 11, 13, 9), strict=True)]
        print(f"{n:8d} " + " ".join(cells) + f" {sum(row) / 3600:8.1f}")
    print(f"(beyond {max(a.plates, a.folds, a.held_out)} workers nothing gets faster: "
          "units are plates, folds and conditions)")  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="default")
    ap.add_argument("--conditions", default=None, help="default: config/default.yaml")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--data-dir", default=None, help="an existing screen (skips stage 00)")
    ap.add_argument("--workdir", default=None, help="default: a new temporary folder")
    for key, value in FULL.items():  # --full-plates, --full-nuclei-per-field, ...
        ap.add_argument(f"--full-{key.replace('_', '-')}", type=int, default=value, dest=key)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="i2r-bench-executor-")).resolve()
    prepare(a, work)

    from i2r_pipeline.cli import make_pipeline, parse_args
    from i2r_pipeline.executor import make_executor
    from i2r_pipeline.stages import stage_named

    pipe, _ = make_pipeline(parse_args(run_all_args(a, work), ROOT), ROOT)
    plates = pipe.units(stage_named("01_preprocess_nuclei"))
    conds = pipe.units(stage_named("06_translate_condition"))
    counts = [int(n) for n in a.workers.split(",")]
    rows = {}
    for n in counts:
        with make_executor("dask", workers=n) as ex:
            t0 = time.perf_counter()
            ex.client.wait_for_workers(n)
            start = time.perf_counter() - t0
            times = []
            for units in (plates, conds):
                if units is plates:  # no plate tables, as in a fresh run
                    shutil.rmtree(pipe.paths["work"] / "nuclei" / "plates", ignore_errors=True)
                t0 = time.perf_counter()
                res = ex.run(units, force=True)
                times.append(time.perf_counter() - t0)
                if not all(r.ok for r in res):
                    sys.exit(f"a unit failed with {n} workers: {[r.error for r in res if r.error]}")
            rows[n] = (start, *times)
    user = os.environ.get("OMP_NUM_THREADS")  # set by the user: every worker gets it
    threads = {n: int(user) if user else max(1, (os.cpu_count() or 1) // n) for n in counts}
    print(f"\nDask LocalCluster on {os.cpu_count()} cores, {len(plates)} plates, "
          f"{len(conds)} conditions ({a.size} screen); threads per worker: {threads}")  # fmt: skip
    print(f"{'workers':>8s} {'cluster start s':>16s} {'01 plates s':>12s} {'06 conditions s':>16s}")
    for n, (start, tp, tc) in rows.items():
        print(f"{n:8d} {start:16.1f} {tp:12.1f} {tc:16.1f}")
    if 1 in rows and 2 in rows:
        print(f"ratio 1 worker / 2 workers: plates {rows[1][1] / rows[2][1]:.2f}x, "
              f"conditions {rows[1][2] / rows[2][2]:.2f}x")  # fmt: skip

    meta = pipe.paths["data"] / "metadata.csv"
    n_fields = sum(1 for _ in meta.open()) - 1
    info = json.loads((pipe.paths["data"] / "screen.json").read_text())
    screen = {
        "field_px": info.get("params", {}).get("image_size", 256),
        "nuclei": count_nuclei(pipe.paths["work"]),
    }
    fold_s = marker_seconds(work, "04_train_encoder") or [0.0]
    enc = encoder_info(pipe.paths["work"]) or [(0.0, None)]
    train_s = sum(e[0] for e in enc) / len(enc)
    rates = [e[1] for e in enc if e[1]]
    n1 = min(rows)
    measured = {
        "s_per_field": rows[n1][1] * n1 / n_fields,
        "s_per_condition": rows[n1][2] * n1 / max(1, len(conds)),
        "epochs": pipe.cfg.get("epochs", 8),
        "train_crops_per_s": sum(rates) / len(rates) if rates else 50.0,
        "s_embed_per_nucleus": max(0.0, sum(fold_s) / len(fold_s) - train_s) / screen["nuclei"],
        "s_nuclei_stages": sum(sum(marker_seconds(work, s)) for s in
                               ("02_screen_conditions", "05_build_profiles")),
        "s_fixed_stages": sum(sum(marker_seconds(work, s)) for s in
                              ("03_embed_genes", "07_summarize_conditions",
                               "08_evaluate_segmentation")),
    }  # fmt: skip
    project(measured, screen, a)


if __name__ == "__main__":
    main()
