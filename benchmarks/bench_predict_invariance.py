"""Does `predict` give the same answer for the same nuclei saved another way?

Run (a few minutes per variant on 2 CPU cores, after the main job):
``.venv/bin/python benchmarks/bench_predict_invariance.py [--results-dir results/default_seed0]
[--data-dir data/synthetic/default_seed0] [--condition BRAF] [--out results/bench_invariance]``

The fields of one screen condition (with their masks) are written in six versions and each
goes through ``run_all.py predict`` with the fold whose encoder never saw the condition and
the condition left out of the translation (``--exclude-condition``):

``16bit``      the screen's files (the reference);
``12bit``      12-bit data in a 16-bit file (intensities / 16);
``8bit``       an 8-bit export (ImageJ's conversion: each image's min..max to 0..255);
``bright2``    twice the exposure (intensities x 2);
``binned2x2``  2x2 binning (mean of 4 pixels; masks by nearest neighbour) with
               ``--pixel-scale 0.5`` (the translation trained on the screen binned the
               same way, ``--match-resolution``, the default);
``binned2x2_unmatched``  the same with ``--no-match-resolution`` (the screen as it is);
``onepixel``   an all-zero image with one pixel set, with the real masks (must be refused).

Prints, per version: the exit status, the rank of the true gene among the candidates, how
many of the reference's top 10 are in its top 10, the largest rank change of a reference
top-10 gene, the warnings `predict` printed; writes ``<out>/invariance.csv``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from i2r_pipeline import predict
from i2r_utils.artifacts import artifact
from i2r_utils.io import load_metadata, read_table, write_table

ROOT = Path(__file__).resolve().parents[1]


def _bin2(a: np.ndarray) -> np.ndarray:
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    return a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


VARIANTS = {
    "16bit": (lambda im: im, lambda m: m, 1.0),
    "12bit": (lambda im: np.round(im / 16).astype(np.uint16), lambda m: m, 1.0),
    "8bit": (
        lambda im: np.round((im - im.min()) / max(np.ptp(im), 1) * 255).astype(np.uint8),
        lambda m: m,
        1.0,
    ),
    "bright2": (lambda im: np.clip(im * 2.0, 0, 65535).astype(np.uint16), lambda m: m, 1.0),
    "binned2x2": (lambda im: np.round(_bin2(im)).astype(np.uint16), lambda m: m[::2, ::2], 0.5),
    "onepixel": (
        lambda im: np.where(np.arange(im.size).reshape(im.shape) == im.size // 2, 1000, 0).astype(
            np.uint16
        ),
        lambda m: m,
        1.0,
    ),
}

VARIANTS["binned2x2_unmatched"] = VARIANTS["binned2x2"]  # run with --no-match-resolution


def write_variant(rows: pd.DataFrame, name: str, out: Path) -> tuple[Path, Path, float]:
    """Write the condition's fields and masks as variant ``name``; return folders and scale."""
    to_image, to_mask, scale = VARIANTS[name]
    images, masks = out / name / "images", out / name / "masks"
    for d in (images, masks):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for rec in rows.itertuples(index=False):
        stem = Path(rec.Metadata_ImagePath).stem
        image = tifffile.imread(rec.Metadata_ImagePath).astype(np.float64)
        tifffile.imwrite(images / f"{stem}.tif", to_image(image))
        tifffile.imwrite(masks / f"{stem}.tif", to_mask(tifffile.imread(rec.Metadata_MaskPath)))
    return images, masks, scale


def run_variant(args, name: str, fold: int, rows: pd.DataFrame) -> dict:
    """Run predict on one variant; return its row of the table."""
    images, masks, scale = write_variant(rows, name, args.out)
    dest = args.out / name / "prediction"
    argv = ["--images", str(images), "--masks", str(masks), "--results-dir",
            str(args.results_dir), "--out", str(dest), "--fold", str(fold), "--quiet",
            "--exclude-condition", args.condition, "--pixel-scale", str(scale)]  # fmt: skip
    if name.endswith("_unmatched"):
        argv.append("--no-match-resolution")
    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        rc = predict.main(argv)
    text = buf_out.getvalue() + buf_err.getvalue()
    lines = text.splitlines()
    warnings = list(dict.fromkeys(ln for ln in lines if ln.startswith(("warning:", "run_all.py"))))
    row = {"variant": name, "pixel_scale": scale, "exit": rc, "messages": " | ".join(warnings)}
    if rc == 0:
        ranking = pd.read_csv(artifact(dest, "prediction_ranking"))
        row["rank_true"] = int(ranking.loc[ranking["gene"] == args.condition, "rank"].min())
        row["n_candidates"] = len(ranking)
        row["top10"] = " ".join(ranking["gene"].head(10))
    return row


def main(argv=None) -> int:
    """Write the variants, run predict on each and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results-dir", type=Path, default=ROOT / "results" / "default_seed0")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data/synthetic/default_seed0")
    p.add_argument("--condition", default="BRAF")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_invariance")
    args = p.parse_args(argv)
    meta = load_metadata(args.data_dir)
    rows = meta[meta["Metadata_Condition"] == args.condition]
    folds = read_table(artifact(args.results_dir, "folds"))
    fold = int(folds.loc[folds["Metadata_Condition"] == args.condition, "Metadata_Fold"].iloc[0])
    print(f"{args.condition}: {len(rows)} fields; fold {fold} (its encoder never saw them)")
    table = []
    for name in args.variants:
        table.append(run_variant(args, name, fold, rows))
        print({k: v for k, v in table[-1].items() if k != "top10"}, flush=True)
    df = pd.DataFrame(table)
    if "16bit" in set(df["variant"]) and "top10" in df:
        ref = df.set_index("variant").loc["16bit"]
        ref_rank = pd.read_csv(artifact(args.out / "16bit" / "prediction", "prediction_ranking"))
        ref_top = ref["top10"].split()
        ref_rank = ref_rank.set_index("gene")["rank"]
        shared, shift = [], []
        for r in df.itertuples(index=False):
            if not isinstance(r.top10, str):
                shared.append(np.nan), shift.append(np.nan)
                continue
            shared.append(len(set(ref_top) & set(r.top10.split())))
            rk = pd.read_csv(artifact(args.out / r.variant / "prediction", "prediction_ranking"))
            rk = rk.set_index("gene")["rank"]
            shift.append(int(max(abs(rk[g] - ref_rank[g]) for g in ref_top)))
        df["top10_shared_with_16bit"] = shared
        df["max_rank_change_of_ref_top10"] = shift
    write_table(df, args.out / "invariance.csv")
    cols = ["variant", "exit", "rank_true", "n_candidates", "top10_shared_with_16bit",
            "max_rank_change_of_ref_top10"]  # fmt: skip
    print(df[[c for c in cols if c in df]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
