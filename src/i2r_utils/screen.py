"""Which over-expression conditions differ from control: per-condition classification screen.

For every non-control condition a classifier is trained to separate that condition's nuclei
from control nuclei (:data:`i2r_utils.columns.CONTROL`); its balanced accuracy, cross-validated
with folds grouped by well (plate + well), measures how distinguishable the condition is.
Balanced accuracy near 0.5 means "looks like control"; the conditions above the elbow of the
ranked curve are called *impactful* (Image2Reg's selection of conditions with a chromatin
phenotype). :func:`fold_assignment` then deals the conditions into the folds of held-out
conditions used by the encoders and profiles (impactful conditions spread evenly).

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

from i2r_utils.columns import CONTROL

from .progress import tqdm

__all__ = [
    "call_impactful",
    "call_precision_recall",
    "elbow_threshold",
    "fold_assignment",
    "group_keys",
    "grouped_cv_splits",
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


def _check_screen_args(
    df: pd.DataFrame, condition_col: str, n_splits: int, max_nuclei: int | None,
    control_ratio: float, classifier, seed: int,
) -> None:  # fmt: skip
    """Raise ValueError for a missing condition column or an invalid parameter."""
    if condition_col not in df.columns:
        raise ValueError(f"condition column {condition_col!r} not in the table")
    if df[condition_col].isna().any():
        raise ValueError(f"{condition_col} has missing values; label or drop those rows")
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    if max_nuclei is not None and max_nuclei < 2:
        raise ValueError(f"max_nuclei_per_condition must be >= 2, got {max_nuclei}")
    if control_ratio <= 0:
        raise ValueError(f"control_ratio must be > 0, got {control_ratio}")
    _make_classifier(classifier, seed)  # validate early


def _feature_matrix(
    df: pd.DataFrame, features: Sequence[str] | None
) -> tuple[np.ndarray, list[str], list[str]]:
    """Feature matrix without all-NaN columns; the feature columns and the dropped ones."""
    feats = list(features) if features is not None else [
        c for c in df.columns if not str(c).startswith("Metadata_")]  # fmt: skip
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
    return X, feats, dropped


def _fold_scores(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, classifier, seed: int
) -> list[float]:
    """Balanced accuracy on each of ``k`` grouped folds (folds missing a class are skipped)."""
    scores = []
    for tr, te in grouped_cv_splits(y, groups, k, seed):
        if np.unique(y[tr]).size < 2 or np.unique(y[te]).size < 2:
            continue  # a fold without one class cannot be scored
        model = _make_classifier(classifier, seed)
        with warnings.catch_warnings():
            # a column that is all-NaN in one training fold is dropped by the imputer
            warnings.filterwarnings("ignore", "Skipping features without any observed")
            model.fit(X[tr], y[tr])
        scores.append(balanced_accuracy_score(y[te], model.predict(X[te])))
    return scores


def _screen_one(c, X: np.ndarray, cond: np.ndarray, groups: np.ndarray, ctrl_idx: np.ndarray,
                opts: dict) -> dict:  # fmt: skip
    """Sample one condition's and control nuclei, score their classifier: one screen row."""
    rng = _condition_seed(opts["seed"], c)
    idx = np.flatnonzero(cond == c)
    n_g = np.unique(groups[idx]).size
    if n_g < 2:
        col = opts["condition_col"]
        raise ValueError(
            f"condition {c!r} has nuclei from only {n_g} group(s) (well) of "
            f"{opts['group_cols']}; grouped cross-validation needs at least 2 wells per "
            f"condition (ideally >= n_splits={opts['n_splits']}). Drop it "
            f"(df[df[{col!r}] != {c!r}]), pass conditions= without it, or use a finer "
            "group_col (e.g. add Metadata_Site)"
        )
    cap = opts["max_nuclei"]
    if cap is not None and idx.size > cap:
        idx = np.sort(rng.choice(idx, cap, replace=False))
    n_ctrl = min(ctrl_idx.size, max(int(np.ceil(opts["control_ratio"] * idx.size)), 2))
    cidx = np.sort(rng.choice(ctrl_idx, n_ctrl, replace=False))
    sel = np.concatenate([cidx, idx])
    y = np.r_[np.zeros(cidx.size, int), np.ones(idx.size, int)]
    n_g_ctrl = np.unique(groups[cidx]).size
    k = min(opts["n_splits"], np.unique(groups[idx]).size, n_g_ctrl)
    scores = []
    if k >= 2:
        scores = _fold_scores(X[sel], y, groups[sel], k, opts["classifier"], opts["seed"])
    return {
        opts["condition_col"]: c,
        _SCORE: float(np.mean(scores)) if scores else np.nan,
        f"{_SCORE}_sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else np.nan,
        "n_folds": len(scores),
        "n_nuclei": int(idx.size),
        "n_nuclei_control": int(cidx.size),
        "n_groups": int(np.unique(groups[idx]).size),
        "n_groups_control": int(n_g_ctrl),
    }


def _screen_inputs(
    df: pd.DataFrame, condition_col: str, control: str, group_col, features, conditions
) -> dict:
    """Check the table; return conditions, control rows, features and wells of the screen."""
    cond = df[condition_col].to_numpy()
    is_ctrl = cond == control
    if not is_ctrl.any():
        seen = pd.unique(df[condition_col])[:10].tolist()
        raise ValueError(
            f"no control rows: no row has {condition_col} == {control!r} (conditions seen: "
            f"{seen}); pass control= with the label of the control wells"
        )
    X, feats, dropped = _feature_matrix(df, features)
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
    return {"cond": cond, "ctrl_idx": ctrl_idx, "X": X, "n_features": len(feats) - len(dropped),
            "dropped": dropped, "groups": groups, "group_cols": gcols, "todo": todo}  # fmt: skip


def _result_table(rows: list[dict], opts: dict, control: str, n_features: int, dropped: list):
    """Build the screen table, sorted by decreasing score, with the parameters in ``attrs``."""
    col, classifier = opts["condition_col"], opts["classifier"]
    columns = [col, _SCORE, f"{_SCORE}_sd", "n_folds", "n_nuclei", "n_nuclei_control",
               "n_groups", "n_groups_control"]  # fmt: skip
    res = pd.DataFrame(rows, columns=columns)
    res = res.sort_values(
        [_SCORE, col], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    res.attrs.update(
        condition_col=col, control=control, group_cols=opts["group_cols"],
        n_splits=opts["n_splits"], seed=opts["seed"],
        classifier=classifier if isinstance(classifier, str) else repr(classifier),
        n_features=n_features, dropped_features=dropped,
    )  # fmt: skip
    return res


def screen_conditions(
    df: pd.DataFrame,
    condition_col: str = "Metadata_Condition",
    control: str = CONTROL,
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

    For each non-control condition, its nuclei (at most ``max_nuclei_per_condition``) and
    ``control_ratio`` times as many control nuclei from all control wells form a binary problem:
    median imputation, standardisation and the classifier are fitted in each training fold of
    ``min(n_splits, wells of the condition, wells of the control)`` folds of
    :func:`grouped_cv_splits` (no well in both training and test data) and scored by balanced
    accuracy. Sampling is seeded by ``seed`` and the condition name: deterministic and
    independent of the other conditions in the table.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per nucleus: ``Metadata_*`` columns (condition, wells) and numeric features.
    condition_col : str, default "Metadata_Condition"
        Column naming the over-expressed gene of each nucleus.
    control : str, default :data:`i2r_utils.columns.CONTROL`
        Label of the control condition in ``condition_col``.
    group_col : str or sequence of str, optional
        Column(s) identifying a well; see :func:`group_keys` (default plate + well).
    n_splits : int, default 4
        Maximum number of cross-validation folds.
    seed : int, default 0
        Seed of the sampling of nuclei, the cross-validation folds and the random forest.
    max_nuclei_per_condition : int, optional
        Cap on the nuclei of a condition (random sample); no cap when None.
    classifier : {"logistic", "random_forest"} or estimator, default "logistic"
        L2 logistic regression (``C=1``), a random forest (200 trees) or any scikit-learn
        classifier (cloned).
    progress : bool, default True
        Show a tqdm progress bar over conditions.
    control_ratio : float, default 1.0
        Control nuclei sampled per condition nucleus (all controls if fewer).
    features, conditions : sequence of str, optional
        Feature columns (default: all non-``Metadata_`` columns) and conditions to screen
        (default: all non-control conditions, sorted).

    Returns
    -------
    pandas.DataFrame
        One row per condition, by decreasing balanced accuracy: ``condition_col``,
        ``balanced_accuracy`` (mean over folds) and its sample sd ``balanced_accuracy_sd``,
        ``n_folds``, ``n_nuclei``, ``n_nuclei_control``, ``n_groups``, ``n_groups_control``.
        ``attrs``: the parameters and ``dropped_features`` (entirely NaN columns; other missing
        values are imputed with the training-fold median).

    Raises
    ------
    ValueError
        If there are no control rows, a condition or the control has nuclei from fewer than 2
        wells, a feature column is not numeric or holds infinite values, or a parameter is
        invalid.
    """
    _check_screen_args(
        df, condition_col, n_splits, max_nuclei_per_condition, control_ratio, classifier, seed
    )
    d = _screen_inputs(df, condition_col, control, group_col, features, conditions)
    opts = {"condition_col": condition_col, "group_cols": d["group_cols"], "n_splits": n_splits,
            "seed": seed, "max_nuclei": max_nuclei_per_condition,
            "control_ratio": control_ratio, "classifier": classifier}  # fmt: skip
    rows = [
        _screen_one(c, d["X"], d["cond"], d["groups"], d["ctrl_idx"], opts)
        for c in tqdm(d["todo"], desc="screen", disable=not progress)
    ]
    return _result_table(rows, opts, control, d["n_features"], d["dropped"])


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
    than ``min_conditions`` conditions (the encoder needs a few classes to train on, and
    translation one to hold out), the ``min_conditions`` best-scoring conditions are called
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
    control: str = CONTROL,
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
    control : str, default :data:`i2r_utils.columns.CONTROL`
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


def fold_assignment(
    conditions: Sequence[str],
    n_folds: int,
    seed: int = 0,
    impactful: Sequence[str] | None = None,
    control: str = CONTROL,
) -> pd.DataFrame:
    """Assign every non-control condition to exactly one of ``n_folds`` folds.

    Impactful conditions are shuffled and dealt round-robin first, the others continue the
    deal, so folds differ by at most one condition and the impactful conditions (the
    encoder's classes) are spread evenly. ``n_folds`` = number of conditions gives
    leave-one-condition-out.

    Parameters
    ----------
    conditions : sequence of str
        Condition labels (duplicates and the control are ignored).
    n_folds : int
        Number of folds, 1 < ``n_folds`` <= number of conditions.
    seed : int
        Random seed of the deal.
    impactful : sequence of str, optional
        Impactful conditions (dealt first); all conditions are treated alike when None.
    control : str
        Control condition, never assigned.

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Condition``, ``Metadata_Fold`` (0..n_folds-1) and ``Metadata_Impactful``,
        sorted by condition.
    """
    conds = sorted({str(c) for c in conditions} - {control})
    if not 2 <= n_folds <= len(conds):
        raise ValueError(f"n_folds={n_folds}: use 2 to {len(conds)} (the number of conditions)")
    imp = set(conds) if impactful is None else {str(c) for c in impactful} & set(conds)
    rng = np.random.default_rng([seed, 7])
    first = list(rng.permutation(sorted(imp)))
    rest = list(rng.permutation(sorted(set(conds) - imp)))
    order = first + rest
    out = pd.DataFrame(
        {
            "Metadata_Condition": order,
            "Metadata_Fold": np.arange(len(order)) % n_folds,
            "Metadata_Impactful": [c in imp for c in order],
        }
    )
    return out.sort_values("Metadata_Condition", ignore_index=True)
