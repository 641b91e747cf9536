"""Command line: options, errors, final report, ``test`` steps and sub-command dispatch.

Whole runs of the stub pipeline through ``run_all.py`` are in ``test_run_all.py``.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from i2r_pipeline import PipelineError, cli
from i2r_pipeline.datasets import DATASETS
from i2r_pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
ENV = ("I2R_EXECUTOR", "I2R_WORKERS", "I2R_SCHEDULER_ADDRESS", "I2R_DASK_CLUSTER")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


def test_list_and_option_errors_name_the_fix(capsys):
    assert cli.main(["--list"], root=ROOT) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == f"{'00_simulate_screen':28s} dataset"
    assert "01_preprocess_nuclei         plate" in listing
    assert len(listing) == len(STAGES) + len(DATASETS)
    with pytest.raises(SystemExit, match=r"^run_all.py: --workers/--scheduler-address need"):
        cli.main(["--workers", "2"], root=ROOT)
    with pytest.raises(SystemExit, match=r"^run_all.py: unknown stages \['09'\]; see --list"):
        cli.main(["--stages", "09"], root=ROOT)
    with pytest.raises(SystemExit) as info:
        cli.main(["--executor", "dask", "--cluster", "k8s"], root=ROOT)
    assert info.value.code == 2 and "invalid choice: 'k8s'" in capsys.readouterr().err


def test_executor_errors_are_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("I2R_DASK_CLUSTER", "k8s")  # defaults from the environment
    args = ["--executor", "dask", "--stages", "00", "--data-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"^run_all.py: unknown Dask cluster 'k8s'"):
        cli.main(args, root=ROOT)


def test_options_environment_defaults_and_pipeline(monkeypatch, tmp_path):
    args = cli.parse_args([], ROOT)
    assert args.executor == "local" and args.workers is None and args.cluster == "local"
    assert args.config == str(ROOT / "config" / "default.yaml")
    assert args.notebooks_dir == str(ROOT / "notebooks")
    monkeypatch.setenv("I2R_EXECUTOR", "dask")
    monkeypatch.setenv("I2R_WORKERS", "3")
    monkeypatch.setenv("I2R_DASK_CLUSTER", "slurm")
    args = cli.parse_args(["--workers", "5"], ROOT)
    assert (args.executor, args.workers, args.cluster) == ("dask", 5, "slurm")
    args = cli.parse_args(["--size", "tiny", "--seed", "2", "--conditions", "A, B,",
                           "--no-random-baseline", "--stages", "06,07"], ROOT)  # fmt: skip
    pipe, stages = cli.make_pipeline(args, ROOT)
    assert [s.name for s in stages] == ["06_translate_condition", "07_summarize_conditions"]
    assert pipe.cfg["size"] == "tiny" and pipe.cfg["seed"] == 2
    assert pipe.cfg["conditions"] == ["A", "B"] and pipe.cfg["random_baseline"] is False
    assert pipe.paths == {
        "data": ROOT / "data" / "synthetic" / "tiny_seed2",
        "work": ROOT / "results" / "tiny_seed2",
        "figures": ROOT / "figures" / "tiny_seed2",  # the run's own figures
    }
    assert pipe.repo == ROOT and pipe.nb_dir == ROOT / "notebooks"
    args = cli.parse_args(["--all-conditions", "--data-dir", str(tmp_path / "d"),
                           "--results-dir", str(tmp_path / "r")], ROOT)  # fmt: skip
    pipe, _ = cli.make_pipeline(args, ROOT)
    assert pipe.all_conditions and pipe.paths["work"] == tmp_path / "r"
    assert not list((ROOT / "results").glob("tiny_seed2"))  # nothing written by building


def test_test_command_lints_then_runs_pytest(monkeypatch, capsys):
    calls = []

    def fake_run(cmd, cwd):
        calls.append((cmd[2:], cwd))
        return subprocess.CompletedProcess(cmd, 1 if cmd[2] == "pytest" else 0)

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    assert cli.main(["test", "-k", "translation"], root=ROOT) == 1
    assert calls == [
        (["ruff", "check", "src", "tests", "benchmarks", "notebooks", "run_all.py"], ROOT),
        (["ruff", "format", "--check", "src", "tests", "benchmarks", "run_all.py"], ROOT),
        (["pytest", "-k", "translation"], ROOT),
    ]
    calls.clear()
    monkeypatch.setattr(cli.subprocess, "run", lambda cmd, cwd: calls.append(cmd) or
                        subprocess.CompletedProcess(cmd, 2))  # fmt: skip
    assert cli.run_tests([], ROOT) == 2 and len(calls) == 1  # stops at the first failure
    assert calls[0][0] == sys.executable
    assert "[test] ruff check src" in capsys.readouterr().out


def test_subcommands_dispatch_lazily(monkeypatch, tmp_path):
    assert cli.COMMANDS["predict"][0] == "i2r_pipeline.predict"
    assert cli.COMMANDS["data"][0] == "i2r_pipeline.fetch"
    (tmp_path / "fake_cmd.py").write_text("def main(argv):\n    return len(argv)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "predict", ("fake_cmd", "test"))
    assert cli.run_command("predict", ["a", "b"]) == 2
    assert cli.main(["predict", "x"], root=ROOT) == 1
    monkeypatch.setitem(cli.COMMANDS, "data", ("i2r_utils.no_such_module", "fetch"))
    with pytest.raises(SystemExit, match=r"needs i2r_utils.no_such_module.main\(argv\)"):
        cli.run_command("data", [])
    assert cli.COMMANDS["predict"] == ("fake_cmd", "test")


def test_dry_run_prints_units_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "make_executor", lambda *a: pytest.fail("executor started"))
    args = ["--dry-run", "--size", "tiny", "--data-dir", str(tmp_path / "d"),
            "--results-dir", str(tmp_path / "r"), "--figures-dir", str(tmp_path / "f")]  # fmt: skip
    assert cli.main(args, root=ROOT) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["[dry-run] 00_simulate_screen: 1 unit(s) - 1 would run, 0 complete",
                       "  dataset: would run"]  # fmt: skip
    plates = [line for line in out if line.startswith("[dry-run] 01_preprocess_nuclei")]
    assert plates[0].startswith("[dry-run] 01_preprocess_nuclei: 0 unit(s) - 0 would run, 0 "
                                "complete (units not known yet: ")  # fmt: skip
    assert len([line for line in out if line.startswith("[dry-run]")]) == len(STAGES)
    assert not list(tmp_path.iterdir())  # nothing written


def test_configuration_values_are_checked_before_the_first_stage(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "run_pipeline", lambda *a, **k: pytest.fail("stages started"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text((ROOT / "config" / "default.yaml").read_text() + "direction: autoo\n")
    msg = ("^run_all.py: configuration key direction = 'autoo': must be one of image_to_gene, "
           "gene_to_image, two_way, auto.$")  # fmt: skip
    with pytest.raises(SystemExit, match=msg):
        cli.main(["--config", str(cfg), "--data-dir", str(tmp_path / "d")], root=ROOT)
    with pytest.raises(SystemExit, match=r"--conditions ',' names no condition"):
        cli.main(["--conditions", ",", "--data-dir", str(tmp_path / "d")], root=ROOT)
    with pytest.raises(SystemExit, match=r"seed = -1: must be an integer >= 0"):
        cli.main(["--seed", "-1", "--dry-run", "--data-dir", str(tmp_path / "d")], root=ROOT)


def test_a_second_run_on_the_same_results_folder_refuses(tmp_path, monkeypatch):
    from i2r_pipeline.lock import folder_lock

    monkeypatch.setattr(cli, "make_executor", lambda *a: pytest.fail("started running"))
    args = ["--size", "tiny", "--results-dir", str(tmp_path / "res"), "--data-dir",
            str(tmp_path / "data")]  # fmt: skip
    with folder_lock(tmp_path / "res"):
        with pytest.raises(SystemExit, match=r"run_all.py: another run \(pid \d+ on .* is using "
                           "the results folder"):  # fmt: skip
            cli.main(args, ROOT)


def test_ctrl_c_ends_in_one_line(monkeypatch, capsys):
    def interrupted(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "main_job", interrupted)
    assert cli.main([], ROOT) == 130
    assert capsys.readouterr().err == cli.INTERRUPTED + "\n"
    monkeypatch.setattr(cli, "run_tests", interrupted)
    assert cli.main(["test"], ROOT) == 130
    assert capsys.readouterr().err == "run_all.py: interrupted.\n"


@pytest.mark.parametrize("value", ["", ",", " , "])
def test_empty_conditions_are_an_error_not_the_defaults(tmp_path, value):
    args = cli.parse_args(["--conditions", value, "--results-dir", str(tmp_path)], ROOT)
    with pytest.raises(PipelineError, match="names no condition; give e.g. --conditions"):
        cli.make_pipeline(args, ROOT)


def test_predict_default_results_are_the_projects_whatever_the_current_folder(monkeypatch):
    from i2r_pipeline.predict import build_parser

    monkeypatch.chdir("/")
    args = build_parser().parse_args(["--images", "x", "--out", "y"])
    assert Path(args.results_dir) == ROOT / "results" / "default_seed0"


def test_a_condition_name_with_a_path_fails_the_dry_run_and_writes_nothing(tmp_path, capsys):
    args = ["--dry-run", "--conditions", "BRAF,../../../x", "--size", "tiny", "--data-dir",
            str(tmp_path / "d"), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    with pytest.raises(SystemExit, match=r"^run_all.py: condition '../../../x' contains a path "):
        cli.main(args, root=ROOT)
    assert capsys.readouterr().out == "" and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("conditions: BRAF\n", r"conditions = 'BRAF': must be a non-empty list"),
        ('epochs: "eight"\n', r"epochs = 'eight': must be an integer >= 1"),
        ("n_folds: 1\n", r"n_folds = 1: must be an integer >= 2"),
        ("n_folds: 60\n", r"n_folds = 60, but the synthetic screen of size 'default'"),
        ("- size\n", r"c.yaml must map keys to values"),
        ("size: [tiny\n", r"c.yaml is not valid YAML"),
    ],
)
def test_a_partial_config_is_checked_over_the_defaults(tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    args = ["--config", str(cfg), "--dry-run", "--data-dir", str(tmp_path / "d")]
    with pytest.raises(SystemExit, match=r"^run_all.py: .*" + message):
        cli.main(args, root=ROOT)


def test_an_empty_or_partial_config_runs_with_the_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    for text in ("", "n_folds: 2\nconditions: [JUN]\n"):
        cfg.write_text(text)
        args = cli.parse_args(["--config", str(cfg), "--results-dir", str(tmp_path / "r")], ROOT)
        pipe, _ = cli.make_pipeline(args, ROOT)  # no KeyError: 'size'
        assert pipe.cfg["size"] == "default" and pipe.cfg["direction"] == "auto"
    assert pipe.cfg["n_folds"] == 2 and pipe.conditions() == ["JUN"]
