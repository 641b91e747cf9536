"""Each element of the original translation, alone and removed, over screens (seeds).

Run: ``.venv/bin/python benchmarks/bench_translation_elements.py --runs SEED=RESULTS ...
[--out results/bench_translation_elements.csv]``, e.g.
``--runs 1=results/bench_image2reg/seed1/results 2=results/bench_image2reg/seed2/results
0=results/default_seed0``.

Every RESULTS folder is a finished main job with the DEFAULT configuration (its profiles,
fold encoders' nucleus embeddings and shared gene embeddings; ``all_targets``). For every
impactful condition of the screen, held out in the fold space whose encoder never saw it,
the translation runs with:

* ``i2r``: the default translation (both representations, sphered profiles, NTK depth 2,
  kernel bias, centred and scaled inputs, ridge by inner LOO, gene embeddings as they are,
  direction ``auto``);
* ``i2r + <element>``: the default with ONE element set to the original's value;
* ``original``: every element the original's (CNN nucleus-mean embeddings, NTK depth 1 on
  bias-augmented raw inputs, ridge 1, L2-normalised genes, image to gene);
* ``original - <element>``: the original with ONE element set back to i2r's value.

The gene side (interactome, autoencoder) stays the default run's, so only the translation
and the condition embedding change. Prints, per variant, mean rank, top-10 and the Image2Reg
score S per seed and as the mean and standard deviation over the seeds other than the
reported one, and a paired comparison with its reference condition by condition on those
seeds (:func:`paired`); writes every held-out condition's rank to ``--out``. ``--rerank``
only reprints the tables from an earlier ``--out``. Choose defaults on seeds other than
the reported one (0) and report seed 0 beside them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from i2r_utils.artifacts import artifact
from i2r_utils.directions import (
    GeneToImage,
    ImageToGene,
    choose_direction,
    inner_direction_scores,
    rank_candidates,
    training_set,
)
from i2r_utils.genes import target_gene_embeddings
from i2r_utils.io import read_table, write_table
from i2r_utils.profiles import combine_representation, nucleus_means, translation_profiles
from i2r_utils.ranking import image2reg_score, normalise_embeddings, true_rank
from i2r_utils.runtime import pin_threads, runtime_info

#: i2r's default translation (config/default.yaml) and the original's, element by element.
I2R = {
    "representation": "both",
    "condition_embedding": "profiles",
    "depth": 2,
    "input_bias": False,
    "input_scaling": "global",
    "alphas": (0.001, 0.01, 0.1, 1.0, 10.0),
    "gene_norm": "none",
    "direction": "auto",
}
ORIGINAL = {
    "representation": "cnn",
    "condition_embedding": "nucleus_mean",
    "depth": 1,
    "input_bias": True,
    "input_scaling": "none",
    "alphas": (1.0,),
    "gene_norm": "l2",
    "direction": "image_to_gene",
}


def variants() -> dict[str, dict]:
    """Variant name -> translation settings (i2r, i2r + one element, original, original - one)."""
    out = {"i2r": dict(I2R)}
    out.update({f"i2r + {k}={ORIGINAL[k]}": {**I2R, k: ORIGINAL[k]} for k in I2R})
    out["original"] = dict(ORIGINAL)
    out.update({f"original - {k} (={I2R[k]})": {**ORIGINAL, k: I2R[k]} for k in I2R})
    return out


def profile_tables(work: Path) -> dict[tuple[str, str], pd.DataFrame]:
    """Condition profiles of every (representation, condition embedding) pair of a run."""
    pdir = artifact(work, "profiles_dir")
    folds = sorted(int(f) for f in read_table(artifact(work, "folds"))["Metadata_Fold"].unique())
    means = []
    for k in folds:
        m = nucleus_means(read_table(artifact(work, "encoder_embeddings", fold=k)))
        means.append(m.assign(Metadata_Fold=k))
    means = pd.concat(means, ignore_index=True)
    feats = read_table(pdir / "features_condition_profiles.parquet")
    both_means = pd.concat(
        [combine_representation(means[means["Metadata_Fold"] == k].drop(columns="Metadata_Fold"),
                                feats, "both").assign(Metadata_Fold=k) for k in folds],
        ignore_index=True,
    )  # fmt: skip
    return {
        ("cnn", "profiles"): translation_profiles(pdir, "cnn"),
        ("both", "profiles"): translation_profiles(pdir, "both"),
        ("cnn", "nucleus_mean"): means,
        ("both", "nucleus_mean"): both_means,
    }


def rank_one(space, genes, condition, impactful, s: dict) -> int | None:
    """Rank of the held-out condition's gene under translation settings ``s``."""
    gene = condition.upper()
    if gene not in genes.index:
        return None
    ts = training_set(space, genes, condition, impactful)
    opts = {"scaling": s["input_scaling"], "input_bias": s["input_bias"]}
    alphas = list(s["alphas"])
    fwd = ImageToGene("ntk", s["depth"], alphas, **opts).fit(ts["x_train"], ts["y_train"])
    rev = GeneToImage().fit(genes, ts["genes"], ts["x_train"])
    used = s["direction"]
    if used == "auto":
        scores = inner_direction_scores(ts["x_train"], ts["y_train"], ts["genes"], genes,
                                        "ntk", s["depth"], alphas, "euclidean", **opts)  # fmt: skip
        used = choose_direction(scores)
    return true_rank(rank_candidates(ts["x_test"], genes, used, fwd, rev, "euclidean"), gene)


def run(seed: int, work: Path) -> pd.DataFrame:
    """Every variant's rank of every impactful condition of one run."""
    tables = profile_tables(work)
    folds = read_table(artifact(work, "folds")).set_index("Metadata_Condition")["Metadata_Fold"]
    impactful = read_table(artifact(work, "impactful"))["Metadata_Condition"].tolist()
    base = target_gene_embeddings(work, impactful[0], "both")  # gamma 0: the shared table
    genes_by_norm = {how: normalise_embeddings(base, how) for how in ("none", "l2")}
    rows = []
    todo = [(v, s, c) for v, s in variants().items() for c in impactful]
    for name, s, condition in tqdm(todo, desc=f"seed {seed}", mininterval=10):
        genes = genes_by_norm[s["gene_norm"]]
        prof = tables[(s["representation"], s["condition_embedding"])]
        fold = int(folds[condition])
        space = prof[pd.to_numeric(prof["Metadata_Fold"]) == fold].reset_index(drop=True)
        rank = rank_one(space, genes, condition, impactful, s)
        rows.append({"seed": seed, "variant": name, "condition": condition, "rank": rank,
                     "n_candidates": len(genes)})  # fmt: skip
    return pd.DataFrame(rows)


def summarise(ranks: pd.DataFrame) -> pd.DataFrame:
    """Mean rank, top-10 and S per seed and variant."""

    def one(g):
        r = g["rank"].to_numpy(float)
        return pd.Series({"n": len(r), "mean_rank": np.nanmean(r), "top10": np.mean(r <= 10),
                          "S": image2reg_score(r)})  # fmt: skip

    return ranks.groupby(["variant", "seed"], sort=False).apply(one, include_groups=False)


def paired(ranks: pd.DataFrame, seeds) -> pd.DataFrame:
    """Each variant against its reference, condition by condition, on ``seeds``.

    ``i2r + <element>`` is compared with ``i2r`` and ``original - <element>`` with
    ``original``: the mean difference of log ranks (negative: the variant ranks the true
    genes higher), the conditions it ranks better and worse, and the two-sided Wilcoxon
    signed-rank p-value of the non-zero differences (NaN with fewer than 6).
    """
    from scipy.stats import wilcoxon

    d = ranks[ranks["seed"].isin(seeds)].pivot_table(
        index=["seed", "condition"], columns="variant", values="rank"
    )
    rows = []
    for v in d.columns:
        if v == "i2r":
            continue  # "original" is compared with "i2r", "original - x" with "original"
        ref = d["original"] if v.startswith("original -") else d["i2r"]
        x = np.log(d[v]) - np.log(ref)
        nz = x[x != 0]
        p = wilcoxon(nz).pvalue if len(nz) > 5 else np.nan
        rows.append({"variant": v, "reference": "original" if v.startswith("original -") else "i2r",
                     "n": len(x), "mean_dlog_rank": x.mean(), "better": int((x < 0).sum()),
                     "worse": int((x > 0).sum()), "p_wilcoxon": p})  # fmt: skip
    return pd.DataFrame(rows).set_index("variant")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[], help="SEED=RESULTS_DIR")
    parser.add_argument("--rerank", action="store_true", help="reprint the tables of --out")
    parser.add_argument(
        "--report-seed", type=int, default=0, help="the reported screen (not used for choices)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/bench_translation_elements.csv"))
    args = parser.parse_args()
    pin_threads(args.threads)
    t0 = time.perf_counter()
    if args.rerank:
        ranks = pd.read_csv(args.out)
    else:
        frames = []
        for item in args.runs:
            seed, _, path = item.partition("=")
            frames.append(run(int(seed), Path(path)))
        ranks = pd.concat(frames, ignore_index=True)
        write_table(ranks, args.out)
    per_seed = summarise(ranks)
    table = per_seed.reset_index().pivot(index="variant", columns="seed",
                                         values=["mean_rank", "top10", "S"])  # fmt: skip
    table = table.reindex(list(dict.fromkeys(ranks["variant"])))
    choose = per_seed.reset_index()
    choose = choose[choose["seed"] != args.report_seed]
    agg = choose.groupby("variant", sort=False)[["mean_rank", "top10", "S"]].agg(["mean", "std"])
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print(f"\nper seed (N candidates: {ranks.groupby('seed')['n_candidates'].first().to_dict()})")
    print(table.round(3).to_string())
    print(f"\nmean and sd over the seeds other than {args.report_seed} (the choice):")
    print(agg.reindex(table.index).round(3).to_string())
    others = sorted(set(ranks["seed"]) - {args.report_seed})
    if others:
        print(f"\npaired, condition by condition, on seeds {others} (log rank differences):")
        print(paired(ranks, others).round(3).to_string())
    print(f"\n{time.perf_counter() - t0:.0f} s; {runtime_info()}")


if __name__ == "__main__":
    main()
