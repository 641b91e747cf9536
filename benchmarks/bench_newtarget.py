"""The new-target mode tried as a new user would, on every impactful condition of a screen.

Run (after a completed main job; the default data set needs the default main job):
``.venv/bin/python benchmarks/bench_newtarget.py [--results-dir results/default_seed0]
[--data-dir data/synthetic/default_seed0] [--conditions A,B] [--masks|--segment]``

For each impactful condition of the results folder (``screen/impactful.csv``) whose gene is a
candidate, the condition's raw images and masks are linked into a fresh temporary folder pair
(flat, named ``<plate>_<well>_s<site>.tif``), and the new-target command
``python3 run_all.py predict`` (:func:`i2r_pipeline.predict.main`, which runs
``notebooks/09_predict_new_target.py``) runs on them with ``--fold`` = the condition's fold
(``screen/fold_assignment.csv``, so the encoder never saw it) and ``--exclude-condition`` =
the condition (so the translation is not trained on it).
It reports per condition the rank of the condition's gene, and prints how many conditions get
their gene in the top 10 and the mean rank, beside the main job's own held-out rank of the
condition (``<condition>/result.json``) where it exists. The table goes to
``<results-dir>/newtarget_benchmark.csv`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from i2r_pipeline import predict
from i2r_utils.artifacts import artifact
from i2r_utils.io import InputError, read_table, write_table

ROOT = Path(__file__).resolve().parents[1]


def link_condition(meta: pd.DataFrame, condition: str, dest: Path, masks: bool) -> int:
    """Link one condition's images (and masks) into ``dest/raw`` (and ``dest/masks``)."""
    rows = meta[meta["Metadata_Condition"] == condition]
    (dest / "raw").mkdir(parents=True)
    if masks:
        (dest / "masks").mkdir()
    for r in rows.itertuples(index=False):
        name = f"{r.Metadata_Plate}_{r.Metadata_Well}_s{r.Metadata_Site}.tif"
        os.symlink(Path(r.Metadata_ImagePath).resolve(), dest / "raw" / name)
        if masks:
            os.symlink(Path(r.Metadata_MaskPath).resolve(), dest / "masks" / name)
    return len(rows)


def pipeline_rank(results_dir: Path, condition: str):
    """The main job's held-out rank of a condition, or None."""
    path = artifact(results_dir, "result", condition=condition)
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("true_rank")


def run(results_dir: Path, data_dir: Path, conditions=None, masks=True, out=None, quiet=True):
    """Run the benchmark; return the per-condition table."""
    from i2r_utils.io import load_metadata

    meta = load_metadata(data_dir)
    folds = read_table(artifact(results_dir, "folds"))
    fold_of = dict(zip(folds["Metadata_Condition"], folds["Metadata_Fold"], strict=True))
    impactful = read_table(artifact(results_dir, "impactful"))["Metadata_Condition"]
    genes = read_table(artifact(results_dir, "gene_embeddings"))["gene"]
    candidates = set(genes.astype(str).str.upper())
    todo = [c for c in impactful if c.upper() in candidates]
    if conditions:
        todo = [c for c in todo if c in conditions]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_newtarget_") as tmp:
        for condition in todo:
            folder = Path(tmp) / condition
            n_images = link_condition(meta, condition, folder, masks)
            argv = [
                "--images", str(folder / "raw"),
                "--results-dir", str(results_dir),
                "--out", str(folder / "out"),
                "--fold", str(int(fold_of[condition])),
                "--exclude-condition", condition,
                "--on-error", "skip",
            ] + (["--masks", str(folder / "masks")] if masks else [])  # fmt: skip
            if quiet:
                argv.append("--quiet")
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
                rc = predict.main(argv)
            seconds = time.perf_counter() - t0
            if rc != 0:
                rows.append({"condition": condition, "rank": np.nan, "error": f"exit {rc}"})
                continue
            ranking = pd.read_csv(artifact(folder / "out", "prediction_ranking"))
            info = json.loads(artifact(folder / "out", "prediction_info").read_text())
            hit = ranking.loc[ranking["gene"].str.upper() == condition.upper(), "rank"]
            rows.append(
                {
                    "condition": condition,
                    "fold": int(fold_of[condition]),
                    "n_images": n_images,
                    "n_images_used": info["n_images_used"],
                    "n_nuclei": info["n_nuclei"],
                    "rank": int(hit.iloc[0]),
                    "n_candidates": info["n_candidates"],
                    "pipeline_rank": pipeline_rank(results_dir, condition),
                    "top3": ",".join(info["top10"][:3]),
                    "seconds": round(seconds, 2),
                    "error": "",
                }
            )
    table = pd.DataFrame(rows)
    write_table(table, out or results_dir / "newtarget_benchmark.csv")
    return table


def main(argv=None) -> int:
    """Parse arguments, run the benchmark and print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results/default_seed0")
    ap.add_argument("--data-dir", help="screen folder (default data/synthetic/<results name>)")
    ap.add_argument("--conditions", help="comma-separated subset of impactful conditions")
    ap.add_argument("--segment", action="store_true", help="no masks: segment the nuclei")
    ap.add_argument("--out", help="table path (default <results-dir>/newtarget_benchmark.csv)")
    ap.add_argument("--verbose", action="store_true", help="print every prediction")
    args = ap.parse_args(argv)
    results_dir = Path(args.results_dir)
    data_dir = Path(args.data_dir or ROOT / "data" / "synthetic" / results_dir.name)
    conditions = args.conditions.split(",") if args.conditions else None
    t0 = time.perf_counter()
    try:
        table = run(results_dir, data_dir, conditions, not args.segment, args.out, not args.verbose)
    except InputError as exc:
        print(f"bench_newtarget: error: {exc}")
        return 1
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(table.to_string(index=False))
    if table.empty or table["rank"].isna().all():
        print(f"\nno condition could be predicted ({len(table)} tried); see the errors above")
        return 1
    ok = table.dropna(subset=["rank"])
    n_top10 = int((ok["rank"] <= 10).sum())
    print(
        f"\nnew-target mode ({'segmented' if args.segment else 'given masks'}): "
        f"{n_top10} of {len(table)} conditions have their gene in the top 10 "
        f"(mean rank {ok['rank'].mean():.1f} of {int(ok['n_candidates'].max())} candidates; "
        f"{len(table) - len(ok)} failed); {time.perf_counter() - t0:.0f} s in all"
    )
    both = ok.dropna(subset=["pipeline_rank"])
    if len(both):
        print(
            f"main job held-out ranks of the same {len(both)} conditions: "
            f"{int((both['pipeline_rank'] <= 10).sum())} in the top 10, mean rank "
            f"{both['pipeline_rank'].mean():.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
