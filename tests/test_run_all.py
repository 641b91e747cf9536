"""run_all.py end to end: bootstrap, stages, scopes, parameters, reruns, executors; smoke run.

Most tests drive the stub notebooks of ``tests/stubs`` (stdlib only, about a second each)
through ``--notebooks-dir``; the smoke test runs the real notebooks on the tiny screen.
The parts of the driver (``i2r_pipeline``) have their own test modules.
"""

import ast
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from i2r_pipeline.pipeline import RUN_KEYS, Pipeline, load_config
from i2r_pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
STUBS = ROOT / "tests" / "stubs"
STUB_CONFIG = """\
size: tiny
seed: 0
conditions: [A, B]
n_folds: 2
pixel_scale: 1.0
alpha: 1.0
"""


def load_run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RUN_ALL = load_run_all()


def test_bootstrap_is_standard_library_only_and_hands_over(monkeypatch, capsys):
    tree = ast.parse((ROOT / "run_all.py").read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= set(sys.stdlib_module_names) | {"__future__"}, top
    monkeypatch.setenv("I2R_NO_VENV", "1")
    monkeypatch.setattr(RUN_ALL.os, "execv", lambda *a: pytest.fail("re-executed"))
    assert RUN_ALL.bootstrap("dev") is None
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--list"])
    assert RUN_ALL.main() == 0
    assert "06_translate_condition       condition" in capsys.readouterr().out


def run_all(*args, check=True):
    env = {**os.environ, "I2R_NO_VENV": "1"}
    for var in ("I2R_EXECUTOR", "I2R_WORKERS", "I2R_SCHEDULER_ADDRESS", "I2R_DASK_CLUSTER"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, str(ROOT / "run_all.py"), *args], cwd=ROOT, env=env,
        capture_output=True, text=True, check=check,
    )  # fmt: skip


def stub_args(tmp, results, notebooks=STUBS):
    cfg = tmp / "stub.yaml"
    cfg.write_text(STUB_CONFIG)
    return ["--config", str(cfg), "--notebooks-dir", str(notebooks), "--data-dir",
            str(tmp / "data"), "--results-dir", str(tmp / results), "--figures-dir",
            str(tmp / f"fig-{results}")]  # fmt: skip


def injected(path):
    """Parameters papermill injected into an executed notebook."""
    return json.loads(Path(path).read_text())["metadata"]["papermill"]["parameters"]


def files(root, *patterns):
    return {str(p.relative_to(root)): p.read_text() for pat in patterns for p in root.glob(pat)}


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    """The whole stub pipeline, local executor, conditions A and B, two folds; run twice."""
    tmp = tmp_path_factory.mktemp("stub")
    return tmp, run_all(*stub_args(tmp, "local")), run_all(*stub_args(tmp, "local"))


def test_scopes_units_parameters_and_rerun(stub_run):
    tmp, out, again = stub_run
    res = tmp / "local"
    units = {
        "dataset": ["_dataset"], "plate": ["_plates/P1", "_plates/P2"],
        "fold": ["_folds/fold0", "_folds/fold1"], "condition": ["A", "B"], "summary": ["_summary"],
    }  # fmt: skip
    for stage in STAGES:
        for sub in units[stage.scope]:
            assert (res / sub / f"{stage.name}.ipynb").is_file(), (stage.name, sub)
            assert json.loads((res / sub / f"{stage.name}.done.json").read_text())["key"]
    # exactly the declared config keys and scope parameters
    w, d = str(res), str(tmp / "data")
    expect = {
        "_dataset/00_simulate_screen": {"data_dir": d, "size": "tiny", "seed": 0},
        "_plates/P2/01_preprocess_nuclei": {
            "data_dir": d, "work_dir": w, "plate": "P2", "pixel_scale": 1.0},
        "_dataset/02_screen_conditions": {"work_dir": w, "n_folds": 2},
        "_folds/fold1/04_train_encoder": {"work_dir": w, "fold": 1, "n_folds": 2, "seed": 0},
        "_dataset/05_build_profiles": {"work_dir": w, "n_folds": 2},
        "B/06_translate_condition": {
            "condition": "B", "work_dir": w, "out_dir": str(res / "B"), "alpha": 1.0, "seed": 0},
        "_summary/07_summarize_conditions": {
            "work_dir": w, "figures_dir": str(tmp / "fig-local"), "conditions": "A,B"},
    }  # fmt: skip
    for nb, params in expect.items():
        assert injected(res / f"{nb}.ipynb") == params, nb
    assert re.search(r"^B +1 +3 +- +image-to-gene +B, A, C$", out.stdout, re.M), out.stdout
    # a quiet console: no kernel warnings, and plain lines (no progress bars) in a log
    assert "IPKernelApp" not in out.stderr and "\r" not in out.stdout + out.stderr
    # the fold assignment is written once (02) and read by every fold (04) and by 05
    folds = (res / "screen" / "fold_assignment.csv").read_text()
    assert folds == "condition,fold\nA,0\nB,1\nC,0\n"
    held_out = [json.loads((res / "encoders" / f"fold{k}" / "encoder.json").read_text())
                for k in (0, 1)]  # fmt: skip
    assert [h["held_out"] for h in held_out] == [["A", "C"], ["B"]]
    manifest = json.loads((res / "A" / "manifest.json").read_text())
    assert manifest["git"]["commit"] and manifest["inputs_sha256"]
    # rerun: every unit complete and skipped
    assert again.stdout.count("complete (skipped)") == 12 and "ran in" not in again.stdout
    assert not list(STUBS.glob("*.ipynb"))  # notebooks stay sources


def test_dask_matches_local_contains_failures_and_reruns_only_missing(stub_run):
    tmp, _, _ = stub_run
    res = tmp / "local"
    pats = ["nuclei/plates/*.csv", "*/result.json"]
    before = files(res, *pats)
    # plates and conditions again on two worker processes; one condition fails
    args = [*stub_args(tmp, "local"), "--executor", "dask", "--workers", "2"]
    out = run_all(*args, "--stages", "01,06", "--force", "--conditions", "A,BOGUS,B,C",
                  check=False)  # fmt: skip
    assert out.returncode == 1
    assert "dask scheduler tcp://127.0.0.1:" in out.stdout and "(2 workers)" in out.stdout
    assert "06_translate_condition [BOGUS]: ValueError: held-out condition 'BOGUS'" in out.stderr
    assert str(res / "BOGUS" / "06_translate_condition.ipynb") in out.stderr
    assert out.stdout.count(": ran in") == 5  # P1, P2, A, B, C
    after = files(res, *pats)
    assert {k: after[k] for k in before} == before and "C/result.json" in after
    # rerun without the bogus condition: the plates were recomputed (forced), so every unit
    # that reads from them, directly or not, runs again; 00, 01, 03 and 08 do not
    again = run_all(*stub_args(tmp, "local"), "--conditions", "A,B,C")
    ran = set(re.findall(r"^\[(\S+)\] (\S+): ran in", again.stdout, re.M))
    assert ran == {
        ("02_screen_conditions", "dataset"), ("04_train_encoder", "fold0"),
        ("04_train_encoder", "fold1"), ("05_build_profiles", "dataset"),
        ("06_translate_condition", "A"), ("06_translate_condition", "B"),
        ("06_translate_condition", "C"), ("07_summarize_conditions", "summary"),
    }, again.stdout  # fmt: skip
    assert again.stdout.count("complete (skipped)") == 5
    # and once more: nothing left to do
    third = run_all(*stub_args(tmp, "local"), "--conditions", "A,B,C")
    assert third.stdout.count("complete (skipped)") == 13 and ": ran in" not in third.stdout


def test_bad_config_stage_scope_and_options_fail_clearly(tmp_path):
    args = stub_args(tmp_path, "r")
    cfg = tmp_path / "stub.yaml"
    cfg.write_text(STUB_CONFIG + "epohcs: 3\n")
    out = run_all(*args, check=False)
    assert out.returncode != 0 and "epohcs" in out.stderr
    out = run_all("--stages", "09", check=False)
    assert out.returncode != 0 and "unknown stages ['09']" in out.stderr
    listing = run_all("--list").stdout
    assert "00_simulate_screen" in listing and "01_preprocess_nuclei         plate" in listing
    out = run_all("--workers", "2", check=False)
    assert out.returncode != 0 and "need --executor dask" in out.stderr
    # a per-plate notebook must declare `plate`
    nbs = tmp_path / "nbs"
    shutil.copytree(STUBS, nbs)
    src = nbs / "01_preprocess_nuclei.py"
    src.write_text(src.read_text().replace('plate = ""  # plate to process\n', ""))
    cfg.write_text(STUB_CONFIG)
    out = run_all(*stub_args(tmp_path, "r", nbs), "--stages", "01", check=False)
    assert out.returncode != 0 and "declares no `plate` parameter" in out.stderr


def close(a, b):
    """Equal JSON values, numbers to 1e-9 relative."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, nan_ok=True)
    return a == b


# Cheaper settings for the smoke run (applied where a notebook declares the parameter).
SMOKE = {"encoder_arch": "small", "epochs": 2, "samples_per_class": 32, "n_folds": 2,
         "n_permutations": 50, "gae_epochs": 100, "unet_epochs": 3,
         "max_test_fields": 2}  # fmt: skip


def smoke_config(tmp_path):
    cfg = load_config(ROOT / "config" / "default.yaml")
    paths = {"work": tmp_path / "probe", "data": tmp_path, "figures": tmp_path}
    pipe = Pipeline(cfg, paths, ROOT / "notebooks")
    declared = set().union(*(pipe.declared(s.name) for s in STAGES))
    cfg.update({k: v for k, v in SMOKE.items() if k in declared or k in RUN_KEYS})
    path = tmp_path / "smoke.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path, cfg


@pytest.mark.smoke
def test_every_notebook_runs_on_tiny_screen(tmp_path):
    cfg_path, cfg = smoke_config(tmp_path)
    args = ["--size", "tiny", "--conditions", "BRAF,JUN", "--data-dir", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / "res"), "--figures-dir", str(tmp_path / "fig"),
            "--config", str(cfg_path)]  # fmt: skip
    out = run_all(*args)
    res = tmp_path / "res"
    plates = sorted(p.name for p in (res / "_plates").iterdir())
    units = {
        "dataset": ["_dataset"], "plate": [f"_plates/{p}" for p in plates],
        "fold": [f"_folds/fold{k}" for k in range(cfg["n_folds"])], "condition": ["BRAF", "JUN"],
        "summary": ["_summary"],
    }  # fmt: skip
    assert len(plates) == 2
    for stage in STAGES:
        for sub in units[stage.scope]:
            assert (res / sub / f"{stage.name}.ipynb").is_file(), (stage.name, sub)
    result = json.loads((res / "BRAF" / "result.json").read_text())
    assert 1 <= result["true_rank"] <= result["n_candidates"]
    assert len(result["top10"]) == 10
    assert len(result["permutation_ranks"]) == cfg["n_permutations"]
    assert "translation: " in out.stdout and re.search(r"^BRAF +\d+ ", out.stdout, re.M)
    assert "Summary (2 conditions" in out.stdout
    manifest = json.loads((res / "BRAF" / "manifest.json").read_text())
    assert manifest["git"]["commit"] and all(manifest["inputs_sha256"].values())
    assert (tmp_path / "fig" / "fig_topk_accuracy.png").stat().st_size > 5000
    assert (res / "summary_metrics.csv").is_file()
    # rerun: every unit is complete and skipped
    again = run_all(*args)
    n_units = sum(len(units[s.scope]) for s in STAGES)
    assert again.stdout.count("complete (skipped)") == n_units
    # the plate and condition stages again on a Dask cluster of two worker processes:
    # identical outputs
    pats = ["nuclei/plates/*", "nuclei/features/*", "nuclei/crops/*", "nuclei/filter_counts/*",
            "BRAF/*.csv", "BRAF/result.json", "JUN/*.csv", "JUN/result.json"]  # fmt: skip
    before = {str(p.relative_to(res)): p.read_bytes() for pat in pats for p in res.glob(pat)}
    dask = run_all(*args, "--stages", "01,06", "--force", "--executor", "dask", "--workers", "2")
    assert "(2 workers)" in dask.stdout and dask.stdout.count(": ran in") == 4
    after = {str(p.relative_to(res)): p.read_bytes() for pat in pats for p in res.glob(pat)}
    assert after.keys() == before.keys() and len(before) >= 14
    for key in before:
        if key.endswith(".parquet"):  # same table; file bytes may carry writer metadata
            pd.testing.assert_frame_equal(pd.read_parquet(res / key), pd.read_parquet(
                io.BytesIO(before[key])), check_exact=True)  # fmt: skip
        elif key.endswith(".npz"):
            a, b = np.load(io.BytesIO(before[key])), np.load(res / key)
            assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files), key
        elif key.endswith(".csv"):  # BLAS threads differ between the runs: last bits may
            pd.testing.assert_frame_equal(pd.read_csv(res / key), pd.read_csv(
                io.BytesIO(before[key])), check_exact=False, rtol=1e-9)  # fmt: skip
        else:
            assert close(json.loads(after[key]), json.loads(before[key])), key
    # notebooks stay sources: nothing executed in place
    assert not list((ROOT / "notebooks").glob("*.ipynb"))


def bare_checkout(tmp_path):
    """run_all.py, pyproject.toml and the driver's sources, without any environment."""
    shutil.copy(ROOT / "run_all.py", tmp_path / "run_all.py")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "src" / "i2r_pipeline", tmp_path / "src" / "i2r_pipeline")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "rc", "stream", "text"),
    [
        (["--help"], 0, "stdout", "python3 run_all.py test"),
        (["--list"], 0, "stdout", "06_translate_condition       condition"),
        (["tets"], 2, "stderr", "run_all.py: unknown command 'tets' (did you mean 'test'?)"),
        (["--size", "huge"], 2, "stderr", "invalid choice: 'huge'"),
    ],
)
def test_help_list_and_typos_answered_before_any_install(tmp_path, args, rc, stream, text):
    # -I -S: no site-packages and no PYTHONPATH, so only the standard library can be used
    repo = bare_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "I2R_NO_VENV"}
    out = subprocess.run([sys.executable, "-I", "-S", str(repo / "run_all.py"), *args],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=10)  # fmt: skip
    assert out.returncode == rc and text in getattr(out, stream), out
    assert "Traceback" not in out.stderr and "[setup]" not in out.stdout
    assert not (repo / ".venv").exists()


def test_python_version_is_checked_against_pyproject():
    spec = re.search(r'requires-python = ">=(\d+)\.(\d+),<(\d+)\.(\d+)"',
                     (ROOT / "pyproject.toml").read_text())  # fmt: skip
    low, high = (int(spec[1]), int(spec[2])), (int(spec[3]), int(spec[4]))
    assert RUN_ALL.PYTHON == low and high == (low[0], low[1] + 1)
    assert RUN_ALL.check_python((3, 11, 7, "final", 0)) is None
    for bad in [(3, 12, 1), (3, 13, 0), (3, 10, 14)]:
        with pytest.raises(SystemExit) as info:
            RUN_ALL.check_python(bad)
        msg = str(info.value)
        assert "\n" not in msg and f"Python {'.'.join(map(str, bad))} found" in msg
        assert "needs Python 3.11" in msg and "python3.11 run_all.py" in msg
        assert "environment.yml" in msg


class Reexec(Exception):
    pass


@pytest.fixture
def fake_setup(tmp_path, monkeypatch):
    """bootstrap() against a .venv in tmp_path: set-up commands recorded, not run."""
    venv = tmp_path / ".venv"
    monkeypatch.setattr(RUN_ALL, "VENV", venv)
    monkeypatch.delenv("I2R_NO_VENV", raising=False)
    calls, fail = [], {}

    def run(cmd, **kwargs):
        calls.append([str(c) for c in cmd])
        if cmd[1:3] == ["-m", "venv"]:
            (venv / "bin").mkdir(parents=True, exist_ok=True)
            (venv / "bin" / "python").write_text("")
            (venv / "pyvenv.cfg").write_text(f"version = {fail.get('made_by', '3.11.7')}\n")
        return subprocess.CompletedProcess(cmd, fail.get(cmd[3] if len(cmd) > 3 else "", 0))

    def execv(path, argv):
        raise Reexec(path)

    monkeypatch.setattr(RUN_ALL.subprocess, "run", run)
    monkeypatch.setattr(RUN_ALL.os, "execv", execv)
    return venv, calls, fail


def test_bootstrap_installs_once_and_redoes_a_failed_install(fake_setup, capsys):
    venv, calls, fail = fake_setup
    fail["install"] = 1  # pip fails half-way
    with pytest.raises(SystemExit) as info:
        RUN_ALL.bootstrap("dev")
    assert "failed (exit status 1" in str(info.value) and "\n" not in str(info.value)
    assert (venv / "bin" / "python").is_file() and not (venv / ".i2r-installed.json").exists()
    # next call: the venv is reused but the install is redone; then the stamp is written
    del fail["install"]
    calls.clear()
    with pytest.raises(Reexec):
        RUN_ALL.bootstrap("dev")
    assert [c[2:4] for c in calls] == [
        ["pip", "install"],
        ["ipykernel", "install"],
        ["i2r_pipeline.labsettings"],  # notebooks/*.py open as notebooks in JupyterLab
    ]
    pip = calls[0]  # every package at the lock's version (a constraints file)
    assert pip[pip.index("-c") + 1] == str(RUN_ALL.ROOT / "requirements-lock.txt")
    assert json.loads((venv / ".i2r-installed.json").read_text())["extras"] == ["dev"]
    # and then nothing to install
    calls.clear()
    with pytest.raises(Reexec):
        RUN_ALL.bootstrap("dev")
    assert calls == []


def test_bootstrap_recreates_a_venv_of_another_python(fake_setup):
    venv, calls, fail = fake_setup
    fail["made_by"] = "3.12.3"
    with pytest.raises(Reexec):
        RUN_ALL.bootstrap("dev")  # made by 3.12 (in this fake): the stamp is not trusted
    (venv / "pyvenv.cfg").write_text("home = /x\nversion_info = 3.12.3.final.0\n")
    calls.clear()
    with pytest.raises(Reexec):
        RUN_ALL.bootstrap("dev")
    assert calls[0][1:] == ["-m", "venv", "--clear", str(venv)] and len(calls) == 4


def test_main_checks_the_version_before_installing(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 12, 1, "final", 0))
    monkeypatch.setattr(RUN_ALL, "bootstrap", lambda extras: pytest.fail("installing"))
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--stages", "00"])
    with pytest.raises(SystemExit, match=r"^run_all.py: Python 3.12.1 found, but the project"):
        RUN_ALL.main()


def test_main_job_installs_without_dev_extras_and_test_adds_them(fake_setup, monkeypatch):
    venv, calls, _ = fake_setup
    installs = []

    def bootstrap(extras):
        calls.clear()
        with pytest.raises(Reexec):
            RUN_ALL.bootstrap(extras)
        installs.append([c[-1] for c in calls if c[2:4] == ["pip", "install"]])

    for extras in ["", "dev", "", "cluster", "fetch"]:
        bootstrap(extras)
    root = str(RUN_ALL.ROOT)
    assert installs == [[root], [f"{root}[dev]"], [], [f"{root}[cluster,dev]"],
                        [f"{root}[cluster,dev,fetch]"]]  # fmt: skip
    # main() asks for the extras of the command
    asked = []
    monkeypatch.setattr(RUN_ALL, "bootstrap", lambda extras: asked.append(extras) or 1 / 0)
    for argv in (["--stages", "00"], ["--executor", "dask"], ["test"], ["data", "demo"]):
        monkeypatch.setattr(sys, "argv", ["run_all.py", *argv])
        with pytest.raises(ZeroDivisionError):
            RUN_ALL.main()
    assert asked == ["", "cluster", "dev", "fetch"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    assert {"cluster", "fetch"} <= extras.keys()
    assert {p for k in ("cluster", "fetch") for p in extras[k]} <= set(extras["dev"])


def test_dry_run_after_a_complete_run_says_complete(stub_run):
    tmp, _, _ = stub_run
    res = tmp / "local"
    run_all(*stub_args(tmp, "local"), "--conditions", "A,B")  # whatever ran before
    before = sorted(res.rglob("*"))
    out = run_all(*stub_args(tmp, "local"), "--conditions", "A,B", "--dry-run")
    assert out.stdout.count("[dry-run] ") == len(STAGES) and ": would run" not in out.stdout
    assert out.stdout.count(": complete") == 12 and sorted(res.rglob("*")) == before
    forced = run_all(*stub_args(tmp, "local"), "--stages", "07", "--dry-run", "--force")
    assert "07_summarize_conditions: 1 unit(s) - 1 would run, 0 complete (--force)" in forced.stdout
    assert sorted(res.rglob("*")) == before


def test_a_moved_results_folder_and_another_figures_folder_rerun_nothing(stub_run):
    tmp, _, _ = stub_run
    run_all(*stub_args(tmp, "local"), "--conditions", "A,B")  # whatever ran before
    shutil.copytree(tmp / "local", tmp / "moved")
    args = stub_args(tmp, "moved")
    args[args.index("--figures-dir") + 1] = str(tmp / "elsewhere")
    out = run_all(*args, "--conditions", "A,B")
    assert out.stdout.count("complete (skipped)") == 12 and "ran in" not in out.stdout
    shutil.rmtree(tmp / "moved")
