"""The main job's final answer: what was chosen, each condition's rank, a rounded summary.

Printed at the end of ``python3 run_all.py`` from the results folder (each held-out
condition's ``result.json`` and the summary's ``summary_metrics.csv``); the full tables stay
in those files.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from i2r_utils.artifacts import artifact

__all__ = ["SHOWN", "method_label", "condition_table", "row_name", "metrics_table", "report"]

#: Columns of the summary metrics shown in the answer: column -> (header, decimals).
SHOWN = {
    "mean_rank": ("mean rank", 1),
    "median_rank": ("median", 1),
    "top1": ("top-1", 2),
    "top5": ("top-5", 2),
    "top10": ("top-10", 2),
    "auc_k10_50": ("area K=10..50", 3),
}


def method_label(results: list[dict]) -> str:
    """Say what the translation did: the direction(s) used, how chosen, kernel, distance.

    Parameters
    ----------
    results : list of dict
        The held-out conditions' ``result.json``.

    Returns
    -------
    str
        E.g. ``"two-way for 5 of 5 (chosen by auto), NTK kernel ridge, both profiles,
        euclidean distance"``.
    """
    if not results:
        return ""
    used = Counter(str(r.get("direction", "image_to_gene")).replace("_", "-") for r in results)
    n = len(results)
    directions = "; ".join(f"{d} for {c} of {n}" for d, c in used.most_common())
    requested = {r.get("direction_requested") for r in results} - {None}
    if requested == {"auto"}:
        directions += " (chosen by auto)"
    first = results[0]
    parts = [directions, f"{str(first.get('kernel', 'ntk')).upper()} kernel ridge"]
    if first.get("representation"):
        parts.append(f"{first['representation']} profiles")
    if first.get("metric"):
        parts.append(f"{first['metric']} distance")
    return ", ".join(parts)


def condition_table(results: list[dict]) -> str:
    """Return one line per held-out condition: true rank, baseline, direction, top 10.

    ``perm.`` is the permutation baseline's mean rank (``-`` without the baseline); a true
    gene that is not a candidate (the new-target protocol) shows as ``miss``.
    """
    head = f"{'condition':<12} {'true rank':>9} {'of':>4} {'perm.':>8}  {'direction':<14} top 10"
    lines = [head]
    for r in results:
        perm = r.get("permutation_mean_rank")
        perm = f"{perm:8.1f}" if isinstance(perm, int | float) else f"{'-':>8}"
        direction = str(r.get("direction", "image_to_gene")).replace("_", "-")
        rank = r.get("true_rank")
        rank = "miss" if rank is None else rank  # the true gene is not a candidate
        lines.append(
            f"{r.get('condition', '?'):<12} {rank:>9} {r['n_candidates']:>4} {perm}  "
            f"{direction:<14} {', '.join(r['top10'])}"
        )
    return "\n".join(lines)


def row_name(method: str) -> str:
    """Return a readable name of a row of ``summary_metrics.csv``.

    ``method (...)`` -> ``translation (as above)``; ``compare ntk/cosine`` (a kernel and
    distance of the image-to-gene direction) -> ``image-to-gene ntk/cosine``;
    ``compare gene_to_image`` -> ``gene-to-image alone``; other rows as they are.
    """
    if method.startswith("method"):
        return "translation (as above)"
    if not method.startswith("compare "):
        return method
    what = method.removeprefix("compare ")
    if "/" in what:
        return f"image-to-gene {what}"
    return f"{what.replace('_', '-')} alone"


def _merge(names: list[str]) -> str:
    """Join names with ``=``, ``a x = a y`` as ``a x = y`` when all share the first word."""
    heads = {n.split(" ", 1)[0] for n in names}
    if len(names) > 1 and len(heads) == 1 and all(" " in n for n in names):
        return heads.pop() + " " + " = ".join(n.split(" ", 1)[1] for n in names)
    return " = ".join(names)


def metrics_table(metrics) -> str:
    """Return the summary metrics rounded, with readable names, identical rows merged.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``summary_metrics.csv``: ``subset``, ``method`` and the columns of :data:`SHOWN`.

    Returns
    -------
    str
        A fixed-width table (:func:`row_name`); rows of a subset whose shown values are
        all equal (e.g. euclidean and cosine distances that rank alike) become one row
        naming each.
    """
    cols = [c for c in SHOWN if c in metrics]
    if not cols or "method" not in metrics:
        return metrics.to_string(index=False)
    subsets = metrics["subset"] if "subset" in metrics else [""] * len(metrics)
    rows: dict = {}
    for sub, (_, row) in zip(subsets, metrics.iterrows(), strict=True):
        values = tuple("" if row[c] != row[c] else f"{row[c]:.{SHOWN[c][1]}f}" for c in cols)
        rows.setdefault((str(sub), values), []).append(row_name(str(row["method"])))
    names = {key: _merge(found) for key, found in rows.items()}
    first = max(len(n) for n in [*names.values(), "method"])
    width = [len(SHOWN[c][0]) for c in cols]

    def line(name, values):
        return "  ".join(
            [f"{name:<{first}}", *(f"{v:>{w}}" for v, w in zip(values, width, strict=True))]
        )

    out, shown = [line("method", [SHOWN[c][0] for c in cols])], None
    for (sub, values), name in names.items():
        if sub != shown and len(set(subsets)) > 1:
            out.append(f"[{sub}]")
        shown = sub
        out.append(line(name, values))
    return "\n".join(out)


def report(work: Path, conditions: list[str]) -> None:
    """Print the final answer of a main-job run.

    Parameters
    ----------
    work : pathlib.Path
        The results folder.
    conditions : list of str
        Held-out conditions (those without a result are left out).
    """
    import pandas as pd

    results = []
    for cond in conditions:
        res = artifact(work, "result", condition=cond)
        if res.is_file():
            results.append({"condition": cond, **json.loads(res.read_text())})
    label = method_label(results)
    if results:
        print(f"\nHeld-out conditions; translation: {label}")
        print(condition_table(results))
    metrics = artifact(work, "summary_metrics")
    if metrics.is_file():
        table = pd.read_csv(metrics)
        facts = []
        if "n_conditions" in table:
            facts.append(f"{int(table['n_conditions'].iloc[0])} conditions")
        if "n_candidates" in table and table["n_candidates"].notna().any():
            facts.append(f"{table['n_candidates'].dropna().iloc[0]:.0f} candidate genes")
        print(f"\nSummary ({'; '.join([*facts, f'full table: {metrics}'])}):")
        print(metrics_table(table))
