"""The main job's final answer: chosen direction, per-condition ranks, rounded summary."""

import json

import pandas as pd

from i2r_pipeline import cli
from i2r_pipeline.answer import condition_table, method_label, metrics_table, report, row_name

RESULT = {"true_rank": 2, "n_candidates": 30, "top10": ["X", "A"], "permutation_mean_rank": 15.25,
          "direction": "two_way", "direction_requested": "auto", "kernel": "ntk",
          "representation": "both", "metric": "euclidean"}  # fmt: skip


def test_method_label_says_which_direction_auto_chose():
    other = {**RESULT, "direction": "image_to_gene"}
    label = method_label([RESULT, RESULT, other])
    assert label == ("two-way for 2 of 3; image-to-gene for 1 of 3 (chosen by auto), "
                     "NTK kernel ridge, both profiles, euclidean distance")  # fmt: skip
    fixed = {**RESULT, "direction_requested": "two_way"}
    assert method_label([fixed]).startswith("two-way for 1 of 1, NTK") and method_label([]) == ""


def test_condition_table_and_row_names():
    table = condition_table([{**RESULT, "condition": "A"}, {**RESULT, "condition": "B",
                             "permutation_mean_rank": None}])  # fmt: skip
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["condition", "true", "rank"]
    assert lines[1].split()[:5] == ["A", "2", "30", "15.2", "two-way"] and lines[1].endswith("X, A")
    assert lines[2].split()[:4] == ["B", "2", "30", "-"]
    miss = condition_table([{**RESULT, "condition": "C", "true_rank": None}]).splitlines()
    assert miss[1].split()[:3] == ["C", "miss", "30"]  # new-target protocol: not a candidate
    assert row_name("method (auto, NTK KRR)") == "translation (as above)"
    assert row_name("compare ntk/cosine") == "image-to-gene ntk/cosine"
    assert row_name("compare gene_to_image") == "gene-to-image alone"
    assert row_name("permutation baseline") == "permutation baseline"


def test_metrics_table_rounds_and_merges_identical_rows():
    rows = [("method (auto, NTK KRR)", 15.6, 0.80487804878), ("compare ntk/euclidean", 19.4, 0.7),
            ("compare ntk/cosine", 19.4, 0.7), ("compare two_way", 15.6, 0.80487804878),
            ("permutation baseline", 21.29, float("nan"))]  # fmt: skip
    metrics = pd.DataFrame(rows, columns=["method", "mean_rank", "auc_k10_50"])
    metrics.insert(0, "subset", "all held-out")
    lines = metrics_table(metrics).splitlines()
    assert lines[0].split() == ["method", "mean", "rank", "area", "K=10..50"]
    assert lines[1].split() == ["translation", "(as", "above)", "=", "two-way", "alone", "15.6",
                                "0.805"]  # fmt: skip
    assert lines[2].split() == [
        "image-to-gene",
        "ntk/euclidean",
        "=",
        "ntk/cosine",
        "19.4",
        "0.700",
    ]
    assert lines[3].split() == ["permutation", "baseline", "21.3"] and len(lines) == 4
    two = pd.concat([metrics, metrics.assign(subset="impactful only")])
    assert "[impactful only]" in metrics_table(two) and "[all held-out]" in metrics_table(two)


def test_report_prints_choice_ranks_and_summary(tmp_path, capsys):
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "result.json").write_text(json.dumps(RESULT))
    cli.report(tmp_path, ["A", "missing"])
    out = capsys.readouterr().out
    assert "translation: two-way for 1 of 1 (chosen by auto), NTK kernel ridge" in out
    assert "missing" not in out and "Summary" not in out
    assert (
        condition_table([{"condition": "A", "true_rank": 1, "n_candidates": 3, "top10": ["A"]}])
        .splitlines()[1]
        .split()[4]
        == "image-to-gene"
    )
    pd.DataFrame({"subset": ["all held-out"], "method": ["method (x)"], "n_conditions": [1],
                  "n_candidates": [30.0], "top1": [1 / 3]}).to_csv(tmp_path / "summary_metrics.csv",
                                                               index=False)  # fmt: skip
    report(tmp_path, ["A"])
    out = capsys.readouterr().out
    pd.DataFrame({"metric": ["n"], "value": [2]}).to_csv(
        tmp_path / "summary_metrics.csv", index=False
    )
    report(tmp_path, [])
    assert capsys.readouterr().out.startswith(f"\nSummary (full table: {tmp_path}")
    assert "Summary (1 conditions; 30 candidate genes; full table: " in out
    assert out.splitlines()[-1].split() == ["translation", "(as", "above)", "0.33"]
