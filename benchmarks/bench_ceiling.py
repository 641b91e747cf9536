"""How far the translation is from what the synthetic screen allows: measured vs true phenotypes.

Run (after a completed main job on a synthetic screen):
``.venv/bin/python benchmarks/bench_ceiling.py [--results-dir results/default_seed0]
[--data-dir data/synthetic/default_seed0]``

For every impactful condition whose gene is a candidate, leave it out, fit the translation
on the other impactful conditions (their gene embeddings from ``genes/``) and rank every
candidate for it, with each direction (image to gene, gene to image, two-way, and the one
``auto`` chooses by leave-one-out on the training conditions) and four
kinds of condition profile:

* ``truth``: the simulator's noise-free phenotype shift of the condition
  (``truth/conditions.csv``, ``shift_*``): no imaging, segmentation, features or encoder
  noise, so the ranks measure what the gene embeddings and the translation can do at best
  on this screen (the ceiling);
* ``features``, ``cnn``, ``both``: the main job's sphered profiles
  (:func:`i2r_utils.profiles.translation_profiles`, the fold space of the condition).

Prints per kind and direction the number of conditions whose gene is in the top 10 and
the mean rank, and writes the per-condition table to ``<results-dir>/ceiling_benchmark.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.directions import (
    DIRECTIONS,
    GeneToImage,
    ImageToGene,
    choose_direction,
    inner_direction_scores,
    rank_candidates,
    training_set,
)
from i2r_utils.io import read_table, write_table
from i2r_utils.profiles import translation_profiles
from i2r_utils.ranking import true_rank

ROOT = Path(__file__).resolve().parents[1]


def truth_space(data_dir: Path, folds: pd.DataFrame) -> pd.DataFrame:
    """The true phenotype shifts as a profile table, repeated in every fold space."""
    truth = pd.read_csv(data_dir / "truth" / "conditions.csv")
    shifts = [c for c in truth.columns if c.startswith("shift_")]
    table = truth[["Metadata_Condition", *shifts]]
    return pd.concat(
        [table.assign(Metadata_Fold=k) for k in sorted(folds["Metadata_Fold"].unique())],
        ignore_index=True,
    )


def run(results_dir: Path, data_dir: Path, alphas=(0.001, 0.01, 0.1, 1.0, 10.0)) -> pd.DataFrame:
    """Leave-one-out ranks of every impactful condition for every profile kind and direction."""
    genes = read_table(artifact(results_dir, "gene_embeddings")).set_index("gene")
    genes.index = genes.index.astype(str).str.upper()
    folds = read_table(artifact(results_dir, "folds"))
    fold_of = dict(zip(folds["Metadata_Condition"], folds["Metadata_Fold"], strict=True))
    impactful = read_table(artifact(results_dir, "impactful"))["Metadata_Condition"]
    todo = [c for c in impactful if c.upper() in genes.index]
    spaces = {"truth": truth_space(data_dir, folds)}
    for rep in ("features", "cnn", "both"):
        spaces[rep] = translation_profiles(artifact(results_dir, "profiles_dir"), rep)
    rows = []
    for kind, profiles in spaces.items():
        for cond in todo:
            space = profiles[profiles["Metadata_Fold"] == fold_of[cond]]
            ts = training_set(space, genes, cond, todo)
            x, y, train_genes = ts["x_train"], ts["y_train"], ts["genes"]
            fwd = ImageToGene(alphas=alphas).fit(x, y)
            rev = GeneToImage().fit(genes, train_genes, x)
            auto = choose_direction(inner_direction_scores(x, y, train_genes, genes, alphas=alphas))
            for direction in (*DIRECTIONS, "auto"):
                chosen = auto if direction == "auto" else direction
                rank = true_rank(rank_candidates(ts["x_test"], genes, chosen, fwd, rev), cond)
                rows.append(
                    {"profiles": kind, "direction": direction, "chosen": chosen,
                     "condition": cond, "rank": rank}
                )  # fmt: skip
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    """Parse arguments, run the benchmark and print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results-dir", default="results/default_seed0")
    ap.add_argument("--data-dir", help="screen folder (default data/synthetic/<results name>)")
    ap.add_argument("--out", help="table path (default <results-dir>/ceiling_benchmark.csv)")
    args = ap.parse_args(argv)
    results_dir = (ROOT / args.results_dir).resolve()
    data_dir = Path(args.data_dir) if args.data_dir else ROOT / "data/synthetic" / results_dir.name
    t0 = time.perf_counter()
    table = run(results_dir, data_dir)
    write_table(table, Path(args.out) if args.out else results_dir / "ceiling_benchmark.csv")
    n = table["condition"].nunique()
    summary = (
        table.groupby(["profiles", "direction"], sort=False)["rank"]
        .agg(top10=lambda r: int((r <= 10).sum()), mean_rank="mean", median_rank="median")
        .reset_index()
    )
    summary["top10"] = summary["top10"].astype(str) + f"/{n}"
    print(f"{n} impactful conditions left out one at a time ({time.perf_counter() - t0:.1f} s):")
    print(summary.round(1).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
