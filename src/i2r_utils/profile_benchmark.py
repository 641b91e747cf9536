"""Profile evaluation of a real well-profile set: every metric of one representation at once.

Works on the well tables of :mod:`i2r_utils.realprofiles` (``Metadata_Plate``,
``Metadata_Batch``, ``Metadata_Compound``, ``Metadata_Condition``, ``Metadata_MoA``,
features; the control condition is ``DMSO``).

* :func:`evaluate_profiles`: replicate mAP (copairs phenotypic activity: a treated well
  retrieves the other wells of its replicate group against the control wells), and, on
  treatment profiles (the mean of a condition's wells), MoA mAP (another compound of the
  same mechanism retrieved against the other mechanisms), folds of enrichment and hits in
  the top 1 % pooled over pairs and per query (thesis form), and the 1-nearest-neighbour
  MoA accuracy, not-same-compound (NSC) and not-same-compound-or-batch (NSB). Same-compound
  pairs are never compared in the treatment-level metrics.
* :func:`shuffle_labels`: the random baseline (replicate groups permuted over treated
  wells, mechanisms permuted over compounds).
* :func:`sphering_sweep`: the metrics after sphering on the control wells, for each
  convention and regulariser.
* :func:`strong_vs_replicates` and :func:`precision_at_k`: the strong-perturbation ranking
  (thesis Algorithm 1) against the reproducibility of each replicate group (median
  pairwise Pearson correlation of its wells above the 95th percentile of random groups).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .columns import feature_columns
from .evaluation import (
    average_precisions,
    cosine_similarity,
    nearest_neighbour_accuracy,
    pair_enrichment,
    query_enrichment,
    replicate_average_precisions,
)
from .profiles import fit_sphering, strong_perturbations
from .progress import tqdm
from .realprofiles import CONTROL, treatment_profiles
from .whitening import SPHERING_CONVENTIONS

__all__ = [
    "METRICS",
    "annotated_treatments",
    "evaluate_profiles",
    "shuffle_labels",
    "shuffled_baseline",
    "sphered",
    "sphering_sweep",
    "replicate_correlation",
    "strong_vs_replicates",
    "precision_at_k",
]

#: The headline metrics of :func:`evaluate_profiles`, in report order.
METRICS = (
    "replicate_mAP", "moa_mAP", "pooled_fold_enrichment", "pooled_hits",
    "query_fold_enrichment", "query_hits", "nsc_accuracy", "nsb_accuracy",
)  # fmt: skip


def annotated_treatments(wells: pd.DataFrame, control: str = CONTROL) -> pd.DataFrame:
    """Treatment profiles with a mechanism of action, the control left out.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles.
    control : str
        Control condition.

    Returns
    -------
    pandas.DataFrame
        :func:`i2r_utils.realprofiles.treatment_profiles` rows with ``Metadata_MoA``.
    """
    treated = wells[(wells["Metadata_Condition"] != control) & wells["Metadata_MoA"].notna()]
    return treatment_profiles(treated)


def _treatment_metrics(t: pd.DataFrame, top: float) -> dict:
    x = t[feature_columns(t)].to_numpy(np.float64)
    moa = t["Metadata_MoA"].astype(str).to_numpy()
    comp = t["Metadata_Compound"].astype(str).to_numpy()
    same, same_comp = moa[:, None] == moa[None, :], comp[:, None] == comp[None, :]
    sim = cosine_similarity(x)
    ap = average_precisions(t, "Metadata_MoA", diffby="Metadata_Compound")["average_precision"]
    pooled = pair_enrichment(sim, same, ~same_comp, top)
    per_query = query_enrichment(sim, same, ~same_comp, top)
    nsc = nearest_neighbour_accuracy(x, moa, exclude=same_comp)
    out = {
        "moa_mAP": float(ap.mean()),
        "moa_queries": int(ap.notna().sum()),
        "pooled_fold_enrichment": pooled["fold_enrichment"],
        "pooled_hits": pooled["hits"],
        "pooled_n_top": pooled["n_top"],
        "query_fold_enrichment": per_query["fold_enrichment"],
        "query_median_odds_ratio": per_query["median_odds_ratio"],
        "query_hits": per_query["hits"],
        "query_n": per_query["n_queries"],
        "nsc_accuracy": float(nsc["correct"].mean()),
        "nsc_n": len(nsc),
        "nsb_accuracy": np.nan,
        "nsb_n": 0,
    }
    batch = t["Metadata_Batch"].astype(str).to_numpy()
    if len(set(batch)) > 1:
        nsb = nearest_neighbour_accuracy(x, moa, exclude=same_comp | (batch[:, None] == batch))
        out.update(nsb_accuracy=float(nsb["correct"].mean()), nsb_n=len(nsb))
    return out


def evaluate_profiles(
    wells: pd.DataFrame, replicate_by: str, top: float = 0.01, control: str = CONTROL
) -> dict:
    """Every metric of one representation of a profile set.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles (:mod:`i2r_utils.realprofiles` layout).
    replicate_by : str
        Replicate groups of the replicate mAP (e.g. ``Metadata_Compound``: other doses of
        the compound; ``Metadata_Condition``: the same compound and dose).
    top : float
        Top fraction of the enrichment metrics.
    control : str
        Control condition (the negatives of the replicate mAP; left out elsewhere).

    Returns
    -------
    dict
        ``replicate_mAP`` (mean over replicate groups of their wells' mean AP),
        ``replicate_groups``; ``moa_mAP`` (mean AP over treatments with a same-MoA
        treatment of another compound), ``moa_queries``; ``pooled_fold_enrichment``,
        ``pooled_hits`` (same-MoA pairs among the top pairs), ``pooled_n_top``;
        ``query_fold_enrichment`` (mean per-query odds ratio),
        ``query_median_odds_ratio``, ``query_hits`` (queries with a same-MoA treatment in
        their own top), ``query_n``; ``nsc_accuracy``, ``nsc_n``, ``nsb_accuracy``,
        ``nsb_n`` (NaN and 0 with a single batch).
    """
    ap = replicate_average_precisions(wells, replicate_by, control)
    per_group = ap.dropna(subset=["average_precision"]).groupby(replicate_by)["average_precision"]
    rep = per_group.mean()
    out = {"replicate_mAP": float(rep.mean()), "replicate_groups": len(rep)}
    out.update(_treatment_metrics(annotated_treatments(wells, control), top))
    return out


def shuffle_labels(
    wells: pd.DataFrame, replicate_by: str, rng: np.random.Generator, control: str = CONTROL
) -> tuple[pd.DataFrame, str]:
    """Random labels: replicate groups permuted over treated wells, MoAs over compounds.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles.
    replicate_by : str
        Replicate column.
    rng : numpy.random.Generator
        Random generator.
    control : str
        Control condition (its wells keep their labels).

    Returns
    -------
    (pandas.DataFrame, str)
        A copy with ``Metadata_MoA`` permuted over the annotated compounds (each compound
        takes another's mechanism, so a compound's doses stay alike) and the permuted
        replicate groups in a new column, and that column's name.
    """
    out = wells.copy()
    treated = (out["Metadata_Condition"] != control).to_numpy()
    col = "Metadata_ShuffledReplicate"
    out[col] = out[replicate_by].astype(str)
    out.loc[treated, col] = rng.permutation(out.loc[treated, col].to_numpy())
    moa = out[treated].groupby("Metadata_Compound")["Metadata_MoA"].first().dropna()
    mapping = dict(zip(moa.index, rng.permutation(moa.to_numpy()), strict=True))
    has = treated & out["Metadata_Compound"].isin(mapping).to_numpy()
    out.loc[has, "Metadata_MoA"] = out.loc[has, "Metadata_Compound"].map(mapping)
    return out, col


def shuffled_baseline(
    wells: pd.DataFrame,
    replicate_by: str,
    n: int = 20,
    seed: int = 0,
    top: float = 0.01,
    control: str = CONTROL,
) -> pd.DataFrame:
    """:func:`evaluate_profiles` with shuffled labels (:func:`shuffle_labels`), ``n`` draws.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles (the representation whose chance level is wanted).
    replicate_by : str
        Replicate column.
    n : int
        Draws.
    seed : int
        Seed of the draws.
    top : float
        Top fraction of the enrichment metrics.
    control : str
        Control condition.

    Returns
    -------
    pandas.DataFrame
        One row per draw (``draw`` and the keys of :func:`evaluate_profiles`).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in tqdm(range(n), desc="shuffled labels", leave=False, disable=None):
        shuffled, col = shuffle_labels(wells, replicate_by, rng, control)
        rows.append({"draw": i, **evaluate_profiles(shuffled, col, top, control)})
    return pd.DataFrame(rows)


def sphered(
    wells: pd.DataFrame, lam: float, convention: str, control: str = CONTROL
) -> pd.DataFrame:
    """Well profiles sphered on the control wells (per-plate standardisation, then ZCA).

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles.
    lam : float
        Regulariser of the convention.
    convention : {"pycytominer", "deepprofiler"}
        ZCA convention.
    control : str
        Control condition.

    Returns
    -------
    pandas.DataFrame
        The sphered wells, same metadata.
    """
    sph = fit_sphering(wells, lam, control, "Metadata_Plate", convention)
    return sph.transform(wells)


def sphering_sweep(
    wells: pd.DataFrame,
    replicate_by: str,
    lambdas: Sequence[float],
    conventions: Sequence[str] = SPHERING_CONVENTIONS,
    top: float = 0.01,
    control: str = CONTROL,
) -> pd.DataFrame:
    """:func:`evaluate_profiles` after sphering, for every convention and regulariser.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles before sphering.
    replicate_by : str
        Replicate column.
    lambdas : sequence of float
        Regularisers.
    conventions : sequence of str
        ZCA conventions.
    top : float
        Top fraction of the enrichment metrics.
    control : str
        Control condition.

    Returns
    -------
    pandas.DataFrame
        One row per (``convention``, ``lam``): the metrics and ``mean_norm`` (the mean
        Euclidean norm of the sphered treated wells).
    """
    rows = []
    grid = [(c, float(lam)) for c in conventions for lam in lambdas]
    for convention, lam in tqdm(grid, desc="sphering sweep", leave=False, disable=None):
        s = sphered(wells, lam, convention, control)
        x = s.loc[s["Metadata_Condition"] != control, feature_columns(s)].to_numpy()
        norm = float(np.linalg.norm(x, axis=1).mean())
        res = evaluate_profiles(s, replicate_by, top, control)
        rows.append({"convention": convention, "lam": lam, **res, "mean_norm": norm})
    return pd.DataFrame(rows)


def _median_corr(x: np.ndarray) -> float:
    c = np.corrcoef(x)
    return float(np.median(c[np.triu_indices(len(x), 1)]))


def replicate_correlation(
    wells: pd.DataFrame, by: str, n_null: int = 1000, seed: int = 0, control: str = CONTROL
) -> pd.DataFrame:
    """Median pairwise Pearson correlation of each replicate group, against random groups.

    The null of a group of ``m`` wells: ``n_null`` random sets of ``m`` treated wells from
    ``m`` different groups; a group is reproducible when its median correlation exceeds
    the null's 95th percentile ("percent replicating").

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles.
    by : str
        Replicate column.
    n_null : int
        Random sets per group size.
    seed : int
        Seed of the null.
    control : str
        Control condition (left out).

    Returns
    -------
    pandas.DataFrame
        ``by``, ``n_wells``, ``replicate_correlation``, ``null_95``, ``reproducible``; one
        row per group of at least two wells.
    """
    treated = wells[wells["Metadata_Condition"] != control].reset_index(drop=True)
    x = treated[feature_columns(treated)].to_numpy(np.float64)
    groups = treated.groupby(by, sort=True).indices
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        raise ValueError(f"no replicate group of {by} has two treated wells")
    rng = np.random.default_rng(seed)
    labels = treated[by].astype(str).to_numpy()
    null = {}
    for m in sorted({len(v) for v in groups.values()}):
        draws = []
        for _ in range(n_null):
            pick = rng.permutation(len(x))
            _, first = np.unique(labels[pick], return_index=True)  # one well per group
            draws.append(_median_corr(x[pick[rng.permutation(first)[:m]]]))
        null[m] = float(np.quantile(draws, 0.95))
    rows = [(k, len(v), _median_corr(x[v]), null[len(v)]) for k, v in groups.items()]
    out = pd.DataFrame(rows, columns=[by, "n_wells", "replicate_correlation", "null_95"])
    out["reproducible"] = out["replicate_correlation"] > out["null_95"]
    return out


def strong_vs_replicates(
    wells: pd.DataFrame, by: str, n_null: int = 1000, seed: int = 0, control: str = CONTROL
) -> pd.DataFrame:
    """Strong-perturbation ranking (thesis Algorithm 1) beside each group's reproducibility.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles (the thesis ranks sphered CellProfiler profiles, lambda 1e-2).
    by : str
        Replicate column: the perturbations ranked (their wells' z-scores averaged per
        plate, summed over plates).
    n_null : int
        Random sets per group size of :func:`replicate_correlation`.
    seed : int
        Seed of the null.
    control : str
        Control condition.

    Returns
    -------
    pandas.DataFrame
        ``by``, ``score``, ``rank`` (1 = strongest), ``n_plates`` and the columns of
        :func:`replicate_correlation`, sorted by rank (groups of one well left out).
    """
    is_ctl = wells["Metadata_Condition"] == control
    ranked = wells.assign(Metadata_Condition=wells[by].where(~is_ctl, control))
    strong = strong_perturbations(ranked, control, "Metadata_Plate")
    strong = strong.rename(columns={"Metadata_Condition": by})
    corr = replicate_correlation(wells, by, n_null, seed, control)
    out = strong.merge(corr, on=by, how="inner").sort_values("rank", ignore_index=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def precision_at_k(ranked: pd.DataFrame, truth: str = "reproducible") -> pd.DataFrame:
    """Precision of the top ``k`` of a ranking, for every ``k``.

    Parameters
    ----------
    ranked : pandas.DataFrame
        Rows in rank order with a boolean ``truth`` column.
    truth : str
        The column that says whether a row is a true positive.

    Returns
    -------
    pandas.DataFrame
        ``k``, ``precision`` (fraction of true rows among the first k) and
        ``baseline`` (the fraction among all rows: the precision of a random ranking).
    """
    hit = ranked[truth].to_numpy(bool)
    k = np.arange(1, len(hit) + 1)
    return pd.DataFrame({"k": k, "precision": np.cumsum(hit) / k, "baseline": hit.mean()})
