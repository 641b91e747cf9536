"""Smoke: run_all.py executes every notebook with papermill on the tiny screen."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_all(*args, check=True):
    env = {**os.environ, "I2R_NO_VENV": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run_all.py"), *args], cwd=ROOT, env=env,
        capture_output=True, text=True, check=check,
    )  # fmt: skip


@pytest.mark.smoke
def test_every_notebook_runs_on_tiny_screen(tmp_path):
    args = ["--size", "tiny", "--conditions", "BRAF", "--data-dir", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / "res"), "--figures-dir", str(tmp_path / "fig"),
            "--config", str(ROOT / "config" / "default.yaml")]  # fmt: skip
    out = run_all(*args)
    from run_all import STAGES  # noqa: PLC0415

    res = tmp_path / "res"
    for name, scope in STAGES:
        sub = {"dataset": "_dataset", "condition": "BRAF", "summary": "_summary"}[scope]
        assert (res / sub / f"{name}.ipynb").is_file(), name
    result = json.loads((res / "BRAF" / "result.json").read_text())
    assert 1 <= result["true_rank"] <= result["n_candidates"] == 60
    assert len(result["top10"]) == 10 and len(result["permutation_ranks"]) == 200
    assert "BRAF: true gene rank" in out.stdout and "top 10:" in out.stdout
    manifest = json.loads((res / "BRAF" / "manifest.json").read_text())
    assert manifest["git"]["commit"] and all(manifest["inputs_sha256"].values())
    assert (tmp_path / "fig" / "fig_topk_accuracy.png").stat().st_size > 5000
    assert (res / "summary_metrics.csv").is_file()
    # rerun: every stage is complete and skipped
    again = run_all(*args)
    assert again.stdout.count("complete (skipped)") == len(STAGES)
    # notebooks stay sources: nothing executed in place
    assert not list((ROOT / "notebooks").glob("*.ipynb"))


def test_unknown_config_key_and_stage_fail_clearly(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text((ROOT / "config" / "default.yaml").read_text() + "\nepohcs: 3\n")
    out = run_all("--config", str(cfg), "--size", "tiny", "--data-dir", str(tmp_path / "d"),
                  "--results-dir", str(tmp_path / "r"), check=False)  # fmt: skip
    assert out.returncode != 0 and "epohcs" in out.stderr
    out = run_all("--stages", "09", check=False)
    assert out.returncode != 0 and "unknown stages ['09']" in out.stderr
    assert "00_simulate_screen" in run_all("--list").stdout
