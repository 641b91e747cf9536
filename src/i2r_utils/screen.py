"""Which over-expression conditions differ from control: per-condition classification screen.

For every non-control condition a classifier is trained to separate that condition's nuclei
from control (``EMPTY``) nuclei; its balanced accuracy, cross-validated with folds grouped by
well (plate + well), measures how distinguishable the condition is. Balanced accuracy near 0.5
means "looks like control"; the conditions above the elbow of the ranked curve are called
*impactful* (Image2Reg's selection of conditions with a chromatin phenotype).

Features are all non-``Metadata_`` columns of the table (e.g. the output of
:func:`i2r_utils.features.extract_features`).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

__all__ = [
    "call_impactful",
    "call_precision_recall",
    "elbow_threshold",
    "group_keys",
    "grouped_cv_splits",
    "plot_screen",
    "screen_conditions",
    "select_impactful",
]

_SCORE = "balanced_accuracy"


def group_keys(
    df: pd.DataFrame, group_col: str | Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Integer group id per row from one or more metadata columns (e.g. plate + well).

    Parameters
    ----------
    df : pandas.DataFrame
        Table with the grouping columns.
    group_col : str or sequence of str, optional
        Column(s) whose combined values define a group. None means
        ``["Metadata_Plate", "Metadata_Well"]`` when ``Metadata_Plate`` exists, else
        ``["Metadata_Well"]``: wells with the same name on different plates are different
        groups.

    Returns
    -------
    groups : numpy.ndarray
        One integer per row; rows share an id iff they share all ``group_col`` values.
    columns : list of str
        The columns used.

    Raises
    ------
    ValueError
        If a column is missing or has missing values.
    """
    if group_col is None:
        cols = ["Metadata_Plate", "Metadata_Well"] if "Metadata_Plate" in df else ["Metadata_Well"]
    elif isinstance(group_col, str):
        cols = [group_col]
    else:
        cols = list(group_col)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(
            f"group column(s) {missing} not in the table; pass group_col= with the columns "
            "identifying a well, e.g. ['Metadata_Plate', 'Metadata_Well']"
        )
    if df[cols].isna().any().any():
        raise ValueError(f"group column(s) {cols} have missing values; fill or drop those rows")
    groups = df.groupby(cols, sort=True, dropna=False).ngroup().to_numpy()
    return groups, cols


def grouped_cv_splits(
    y: np.ndarray, groups: np.ndarray, n_splits: int = 4, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, grouped K-fold splits: no group is in both the train and test set of a fold.

    Parameters
    ----------
    y : numpy.ndarray
        Class labels, one per sample.
    groups : numpy.ndarray
        Group id (well) per sample.
    n_splits : int, default 4
        Number of folds; must not exceed the number of distinct groups.
    seed : int, default 0
        Seed of the shuffling of groups between folds.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_indices, test_indices)`` per fold, from
        :class:`~sklearn.model_selection.StratifiedGroupKFold` with shuffling.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    n_groups = np.unique(groups).size
    if n_splits < 2 or n_splits > n_groups:
        raise ValueError(f"n_splits must be in 2..{n_groups} (number of groups), got {n_splits}")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros((y.size, 1)), y, groups))


def _make_classifier(classifier: str | BaseEstimator, seed: int):
    if isinstance(classifier, BaseEstimator):
        clf = clone(classifier)
    elif classifier == "logistic":
        clf = LogisticRegression(max_iter=2000)
    elif classifier == "random_forest":
        clf = RandomForestClassifier(
            n_estimators=200, min_samples_leaf=2, n_jobs=1, random_state=seed
        )
    else:
        raise ValueError(
            f"classifier must be 'logistic', 'random_forest' or a scikit-learn estimator, "
            f"got {classifier!r}"
        )
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), clf)


def _condition_seed(seed: int, condition) -> np.random.Generator:
    """Per-condition generator: results of a condition do not depend on the other conditions."""
    return np.random.default_rng([int(seed), zlib.crc32(str(condition).encode())])


def screen_conditions(
    df: pd.DataFrame,
    condition_col: str = "Metadata_Condition",
    control: str = "EMPTY",
    group_col: str | Sequence[str] | None = None,
    n_splits: int = 4,
    seed: int = 0,
    max_nuclei_per_condition: int | None = None,
    classifier: str | BaseEstimator = "logistic",
    progress: bool = True,
    *,
    control_ratio: float = 1.0,
    features: Sequence[str] | None = None,
    conditions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Cross-validated balanced accuracy of each condition against control nuclei.

    For each non-control condition: its nuclei (at most ``max_nuclei_per_condition``, sampled)
    and ``control_ratio`` times as many control nuclei sampled from all control wells form a
    binary problem; a pipeline median imputation -> standardisation -> classifier is fitted and
    scored by balanced accuracy over ``min(n_splits, groups of the condition, groups of the
    control)`` folds of :func:`grouped_cv_splits`, so no well contributes to both training and
    test data. Standardisation and imputation are fitted inside each training fold. Sampling is
    seeded per condition (``seed`` and the condition name), hence deterministic and independent
    of the other conditions in the table.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per nucleus; ``Metadata_*`` columns (including ``condition_col`` and the group
        columns) and numeric feature columns.
    condition_col : str, default "Metadata_Condition"
        Column naming the over-expressed gene of each nucleus.
    control : str, default "EMPTY"
        Label of the control condition in ``condition_col``.
    group_col : str or sequence of str, optional
        Column(s) identifying a well; see :func:`group_keys` (default plate + well when
        ``Metadata_Plate`` exists, else well).
    n_splits : int, default 4
        Maximum number of cross-validation folds.
    seed : int, default 0
        Seed for the sampling of nuclei, the fold assignment and the random forest.
    max_nuclei_per_condition : int, optional
        Cap on the nuclei of a condition (random sample); no cap when None.
    classifier : {"logistic", "random_forest"} or estimator, default "logistic"
        L2 logistic regression (``C=1``), a random forest (200 trees) or any scikit-learn
        classifier (cloned).
    progress : bool, default True
        Show a tqdm progress bar over conditions.
    control_ratio : float, default 1.0
        Number of control nuclei sampled per condition nucleus (all controls if fewer).
    features : sequence of str, optional
        Feature columns; default all columns not starting with ``Metadata_``.
    conditions : sequence of str, optional
        Conditions to screen; default all non-control conditions (sorted).

    Returns
    -------
    pandas.DataFrame
        One row per condition, sorted by decreasing balanced accuracy, with columns
        ``condition_col``, ``balanced_accuracy`` (mean over folds), ``balanced_accuracy_sd``
        (sample sd over folds), ``n_folds``, ``n_nuclei``, ``n_nuclei_control``, ``n_groups``,
        ``n_groups_control``. ``attrs`` records the parameters and the feature columns dropped
        because they are entirely NaN (``dropped_features``); other missing values are imputed
        with the training-fold median.

    Raises
    ------
    ValueError
        If there are no control rows, a condition or the control has nuclei from fewer than 2
        groups (wells), a feature column is not numeric or holds infinite values, or a
        parameter is invalid.
    """
    if condition_col not in df.columns:
        raise ValueError(f"condition column {condition_col!r} not in the table")
    if df[condition_col].isna().any():
        raise ValueError(f"{condition_col} has missing values; label or drop those rows")
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    if max_nuclei_per_condition is not None and max_nuclei_per_condition < 2:
        raise ValueError(f"max_nuclei_per_condition must be >= 2, got {max_nuclei_per_condition}")
    if control_ratio <= 0:
        raise ValueError(f"control_ratio must be > 0, got {control_ratio}")
    _make_classifier(classifier, seed)  # validate early

    cond = df[condition_col].to_numpy()
    is_ctrl = cond == control
    if not is_ctrl.any():
        seen = pd.unique(df[condition_col])[:10].tolist()
        raise ValueError(
            f"no control rows: no row has {condition_col} == {control!r} (conditions seen: "
            f"{seen}); pass control= with the label of the control wells"
        )
    feats = (
        [c for c in df.columns if not str(c).startswith("Metadata_")]
        if features is None
        else list(features)
    )
    if not feats:
        raise ValueError("no feature columns (all columns start with 'Metadata_')")
    missing = [c for c in feats if c not in df.columns]
    if missing:
        raise ValueError(f"feature columns not in the table: {missing[:10]}")
    non_num = [c for c in feats if not pd.api.types.is_numeric_dtype(df[c])]
    if non_num:
        raise ValueError(
            f"non-numeric feature columns {non_num[:10]}; prefix metadata columns with "
            "'Metadata_' or pass features="
        )
    X = df[feats].to_numpy(dtype=np.float64)
    if np.isinf(X).any():
        bad = [c for c, b in zip(feats, np.isinf(X).any(axis=0), strict=True) if b]
        raise ValueError(f"feature columns with infinite values: {bad[:10]}")
    all_nan = np.isnan(X).all(axis=0)
    dropped = [c for c, b in zip(feats, all_nan, strict=True) if b]
    if all_nan.all():
        raise ValueError("every feature column is entirely NaN")
    if dropped:
        X = X[:, ~all_nan]
    groups, gcols = group_keys(df, group_col)

    ctrl_idx = np.flatnonzero(is_ctrl)
    n_groups_ctrl_all = np.unique(groups[ctrl_idx]).size
    if n_groups_ctrl_all < 2:
        raise ValueError(
            f"control {control!r} has nuclei from only {n_groups_ctrl_all} group(s) of {gcols}; "
            "grouped cross-validation needs control nuclei from at least 2 wells"
        )
    if conditions is None:
        todo = sorted({c for c in cond[~is_ctrl]}, key=str)
    else:
        todo = list(conditions)
        absent = [c for c in todo if c == control or not (cond == c).any()]
        if absent:
            raise ValueError(f"conditions {absent} are the control or absent from {condition_col}")

    rows = []
    for c in tqdm(todo, desc="screen", disable=not progress):
        rng = _condition_seed(seed, c)
        idx = np.flatnonzero(cond == c)
        n_g = np.unique(groups[idx]).size
        if n_g < 2:
            raise ValueError(
                f"condition {c!r} has nuclei from only {n_g} group(s) (well) of {gcols}; "
                "grouped cross-validation needs at least 2 wells per condition (ideally "
                f">= n_splits={n_splits}). Drop it (df[df[{condition_col!r}] != {c!r}]), pass "
                "conditions= without it, or use a finer group_col (e.g. add Metadata_Site)"
            )
        if max_nuclei_per_condition is not None and idx.size > max_nuclei_per_condition:
            idx = np.sort(rng.choice(idx, max_nuclei_per_condition, replace=False))
        n_ctrl = min(ctrl_idx.size, max(int(np.ceil(control_ratio * idx.size)), 2))
        cidx = np.sort(rng.choice(ctrl_idx, n_ctrl, replace=False))
        sel = np.concatenate([cidx, idx])
        y = np.r_[np.zeros(cidx.size, int), np.ones(idx.size, int)]
        g = groups[sel]
        n_g_ctrl = np.unique(groups[cidx]).size
        k = min(n_splits, np.unique(groups[idx]).size, n_g_ctrl)
        scores = []
        Xs = X[sel]
        if k >= 2:
            for tr, te in grouped_cv_splits(y, g, k, seed):
                if np.unique(y[tr]).size < 2 or np.unique(y[te]).size < 2:
                    continue  # a fold without one class cannot be scored
                model = _make_classifier(classifier, seed)
                with warnings.catch_warnings():
                    # a column that is all-NaN in one training fold is dropped by the imputer
                    warnings.filterwarnings("ignore", "Skipping features without any observed")
                    model.fit(Xs[tr], y[tr])
                scores.append(balanced_accuracy_score(y[te], model.predict(Xs[te])))
        rows.append(
            {
                condition_col: c,
                _SCORE: float(np.mean(scores)) if scores else np.nan,
                f"{_SCORE}_sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else np.nan,
                "n_folds": len(scores),
                "n_nuclei": int(idx.size),
                "n_nuclei_control": int(cidx.size),
                "n_groups": int(np.unique(groups[idx]).size),
                "n_groups_control": int(n_g_ctrl),
            }
        )
    res = pd.DataFrame(
        rows,
        columns=[
            condition_col,
            _SCORE,
            f"{_SCORE}_sd",
            "n_folds",
            "n_nuclei",
            "n_nuclei_control",
            "n_groups",
            "n_groups_control",
        ],
    )
    res = res.sort_values(
        [_SCORE, condition_col], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    res.attrs.update(
        {
            "condition_col": condition_col,
            "control": control,
            "group_cols": gcols,
            "n_splits": n_splits,
            "seed": seed,
            "classifier": classifier if isinstance(classifier, str) else repr(classifier),
            "n_features": len(feats) - len(dropped),
            "dropped_features": dropped,
        }
    )
    return res


def elbow_threshold(scores) -> float:
    """Score at the elbow of the descending sorted score curve.

    Rule: sort the scores (NaN dropped) in decreasing order and place them at
    ``x = 0..n-1``; rescale x and the scores to [0, 1]; the elbow is the point farthest
    (perpendicular distance, first one on ties) from the straight line joining the first
    (highest) and last (lowest) points. For the usual screen curve -- a few high scores that
    drop steeply onto a long flat tail near chance -- the elbow is the first point of the tail,
    so conditions scoring **strictly above** the returned value are the ones before the bend
    (see :func:`call_impactful`). If all scores are equal, that value is returned.

    Parameters
    ----------
    scores : array-like
        Balanced accuracies (or any scores), at least 3 non-NaN values.

    Returns
    -------
    float
        The score at the elbow point.

    Raises
    ------
    ValueError
        If fewer than 3 non-NaN scores are given.

    Examples
    --------
    >>> elbow_threshold([0.95, 0.5, 0.93, 0.52, 0.9, 0.55, 0.51, 0.53])
    0.55
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    s = np.sort(s[~np.isnan(s)])[::-1]
    if s.size < 3:
        raise ValueError(f"elbow_threshold needs at least 3 non-NaN scores, got {s.size}")
    span = s[0] - s[-1]
    if span <= 0:
        return float(s[0])
    x = np.arange(s.size) / (s.size - 1)
    y = (s - s[-1]) / span  # 1 -> 0
    dist = np.abs(x + y - 1.0) / np.sqrt(2.0)  # distance to the line through (0, 1) and (1, 0)
    return float(s[int(np.argmax(dist))])


def call_impactful(
    results: pd.DataFrame, threshold: float | None = None, score_col: str = _SCORE
) -> pd.DataFrame:
    """Flag conditions whose score is strictly above a threshold.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`screen_conditions` (or any table with ``score_col``).
    threshold : float, optional
        Balanced-accuracy threshold; the elbow of the scores (:func:`elbow_threshold`) when None.
    score_col : str, default "balanced_accuracy"
        Column holding the scores.

    Returns
    -------
    pandas.DataFrame
        A copy with a boolean ``impactful`` column (``score > threshold``; NaN scores are
        False); the threshold used is stored in ``attrs["impactful_threshold"]``.
    """
    if score_col not in results.columns:
        raise ValueError(f"column {score_col!r} not in results")
    thr = elbow_threshold(results[score_col]) if threshold is None else float(threshold)
    out = results.copy()
    out["impactful"] = (out[score_col] > thr).fillna(False).astype(bool)
    out.attrs = {**results.attrs, "impactful_threshold": thr}
    return out


def select_impactful(
    results: pd.DataFrame,
    threshold: float | str | None = "elbow",
    min_conditions: int = 3,
    score_col: str = _SCORE,
    condition_col: str = "Metadata_Condition",
) -> pd.DataFrame:
    """Call the impactful conditions, with a fallback when the call is too small.

    Rule: conditions scoring strictly above ``threshold`` are impactful (the elbow of the
    ranked scores by default, :func:`elbow_threshold`). **Fallback**: if that leaves fewer
    than ``min_conditions`` conditions (downstream stages need a few classes to train an
    encoder and to hold one out), the ``min_conditions`` best-scoring conditions are called
    instead (ties broken by name), and ``attrs["fallback"]`` is True. A warning says so.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`screen_conditions`.
    threshold : float, str or None, default "elbow"
        A balanced accuracy, its string form (e.g. ``"0.65"``), or ``"elbow"`` / None for
        the elbow rule.
    min_conditions : int, default 3
        Smallest number of conditions the call may return (0 disables the fallback).
    score_col : str, default "balanced_accuracy"
        Score column.
    condition_col : str, default "Metadata_Condition"
        Condition column (used to break ties).

    Returns
    -------
    pandas.DataFrame
        :func:`call_impactful` output sorted by decreasing score; ``attrs`` hold
        ``impactful_threshold``, ``threshold_rule`` ("elbow" or "fixed") and ``fallback``.
    """
    if threshold is None or (isinstance(threshold, str) and threshold.strip().lower() == "elbow"):
        thr, rule = None, "elbow"
    else:
        try:
            thr, rule = float(threshold), "fixed"
        except ValueError:
            raise ValueError(
                f"threshold must be 'elbow' or a balanced accuracy such as 0.65, got {threshold!r}"
            ) from None
    called = call_impactful(results, thr, score_col)
    called = called.sort_values(
        [score_col, condition_col], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    fallback = int(called["impactful"].sum()) < min_conditions
    if fallback:
        n = min(min_conditions, int(called[score_col].notna().sum()))
        warnings.warn(
            f"only {int(called['impactful'].sum())} conditions above the {rule} threshold "
            f"{called.attrs['impactful_threshold']:.3f}; calling the top {n} by {score_col} "
            "impactful instead (fallback rule)",
            stacklevel=2,
        )
        called["impactful"] = np.arange(len(called)) < n
    called.attrs.update(
        {"threshold_rule": rule, "fallback": bool(fallback), "min_conditions": min_conditions}
    )
    return called


def call_precision_recall(
    called: pd.DataFrame,
    truth: pd.DataFrame,
    condition_col: str = "Metadata_Condition",
    truth_col: str = "has_phenotype",
    control: str = "EMPTY",
) -> dict:
    """Precision and recall of the impactful call against known truth (synthetic screens).

    Parameters
    ----------
    called : pandas.DataFrame
        Table with ``condition_col`` and a boolean ``impactful`` column.
    truth : pandas.DataFrame
        Table with ``condition_col`` and a boolean ``truth_col`` (e.g. the simulator's
        ``truth/conditions.csv``); the control row is ignored.
    condition_col : str, default "Metadata_Condition"
        Condition column of both tables.
    truth_col : str, default "has_phenotype"
        True where the condition has a simulated phenotype.
    control : str, default "EMPTY"
        Control label, excluded.

    Returns
    -------
    dict
        ``precision`` (called and true / called; NaN when nothing is called), ``recall``
        (called and true / true; NaN when nothing is true), ``tp``, ``fp``, ``fn``, ``tn``,
        and the sorted lists ``false_positives`` and ``false_negatives``.
    """
    for name, df, col in (("called", called, "impactful"), ("truth", truth, truth_col)):
        if condition_col not in df or col not in df:
            raise ValueError(f"{name} table needs the columns {condition_col!r} and {col!r}")
    t = truth[truth[condition_col] != control].set_index(condition_col)[truth_col].astype(bool)
    c = called.set_index(condition_col)["impactful"].astype(bool)
    absent = sorted(set(c.index) - set(t.index), key=str)
    if absent:
        raise ValueError(f"conditions {absent[:10]} are not in the truth table")
    t = t.loc[c.index]
    tp, fp = int((c & t).sum()), int((c & ~t).sum())
    fn, tn = int((~c & t).sum()), int((~c & ~t).sum())
    return {
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "false_positives": sorted(c.index[c & ~t].astype(str)),
        "false_negatives": sorted(c.index[~c & t].astype(str)),
    }


def plot_screen(
    results: pd.DataFrame,
    threshold: float | None = None,
    ax=None,
    *,
    score_col: str = _SCORE,
    condition_col: str | None = None,
    chance: float | None = 0.5,
    null_conditions=None,
):
    """Rank conditions by balanced accuracy and mark the impactful threshold.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`screen_conditions` or :func:`call_impactful`.
    threshold : float, optional
        Drawn as a horizontal line; conditions above it are highlighted. Nothing is drawn when
        None (the ``impactful`` column, if any, still colours the points).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure sized to the number of conditions when None.
    score_col : str, default "balanced_accuracy"
        Score column; error bars from ``<score_col>_sd`` when present.
    condition_col : str, optional
        Label column; ``results.attrs["condition_col"]``, else ``Metadata_Condition``, else the
        first non-numeric column.
    chance : float or None, default 0.5
        Chance level drawn as a dotted line; None to omit.
    null_conditions : collection of str, optional
        Conditions known to have no phenotype (e.g. simulated nulls), drawn as open squares
        around their points and named in the legend.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.
    """
    import matplotlib.pyplot as plt

    if condition_col is None:
        condition_col = results.attrs.get("condition_col")
        if condition_col not in results.columns:
            condition_col = "Metadata_Condition"
        if condition_col not in results.columns:
            obj = [c for c in results.columns if not pd.api.types.is_numeric_dtype(results[c])]
            if not obj:
                raise ValueError("cannot find the condition column; pass condition_col=")
            condition_col = obj[0]
    res = results.sort_values(score_col, ascending=False, na_position="last", kind="stable")
    n = len(res)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * n + 1.5), 4.5), layout="constrained")
    else:
        fig = ax.figure
    x = np.arange(n)
    s = res[score_col].to_numpy(dtype=float)
    if "impactful" in res.columns:
        hit = res["impactful"].to_numpy(dtype=bool)
    elif threshold is not None:
        hit = s > threshold
    else:
        hit = np.zeros(n, bool)
    sd_col = f"{score_col}_sd"
    yerr = res[sd_col].to_numpy(dtype=float) if sd_col in res.columns else None
    ax.errorbar(x, s, yerr=yerr, fmt="none", ecolor="0.6", elinewidth=0.8, capsize=0, zorder=1)
    ax.scatter(x[~hit], s[~hit], s=22, color="0.45", zorder=2, label="not impactful")
    if hit.any():
        ax.scatter(x[hit], s[hit], s=26, color="tab:red", zorder=3, label="impactful")
    if null_conditions is not None:
        null = res[condition_col].isin(set(null_conditions)).to_numpy()
        if null.any():
            ax.scatter(x[null], s[null], s=90, marker="s", facecolors="none",
                       edgecolors="tab:blue", linewidths=1.2, zorder=4,
                       label="simulated null (no phenotype)")  # fmt: skip
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    if chance is not None:
        ax.axhline(chance, color="0.3", ls=":", lw=1, label=f"chance {chance:g}")
    fontsize = 9 if n <= 30 else 7 if n <= 70 else 5
    ax.set_xticks(x)
    ax.set_xticklabels(res[condition_col].astype(str), rotation=90, fontsize=fontsize)
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_xlabel("condition (ranked)")
    ax.set_ylabel("balanced accuracy vs control" if score_col == _SCORE else score_col)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return fig
