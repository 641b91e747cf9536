"""Options of the main job and the pre-install answers (--help, --list, usage errors)."""

import ast
import sys
from pathlib import Path

import pytest

from i2r_pipeline import options
from i2r_pipeline.datasets import dataset_lines
from i2r_pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "i2r_pipeline"


def test_options_and_what_it_imports_are_standard_library_only():
    for name in ("__init__.py", "options.py", "stages.py", "datasets.py"):
        tree = ast.parse((PKG / name).read_text())
        top = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names}  # fmt: skip
        top |= {n.module.split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.level == 0}  # fmt: skip
        assert top <= set(sys.stdlib_module_names) | {"__future__"}, (name, top)
        relative = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
        assert relative <= {"stages", "datasets", None}, (name, relative)


def test_preflight_answers_list_and_names_extras(monkeypatch, capsys):
    monkeypatch.delenv("I2R_EXECUTOR", raising=False)
    assert options.preflight(["--list"], ROOT) == (0, "")
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{s.name:28s} {s.scope}" for s in STAGES] + dataset_lines()
    assert options.preflight([], ROOT) == (None, "")
    assert options.preflight(["--executor", "dask"], ROOT) == (None, "cluster")
    assert options.preflight(["test", "-k", "x"], ROOT) == (None, "dev")
    assert options.preflight(["predict", "--help"], ROOT) == (None, "")
    assert options.preflight(["data", "demo"], ROOT) == (None, "fetch")
    monkeypatch.setenv("I2R_EXECUTOR", "dask")
    assert options.preflight(["--stages", "00"], ROOT) == (None, "cluster")


def test_help_and_usage_errors_exit_before_anything(capsys):
    with pytest.raises(SystemExit) as info:
        options.preflight(["--help"], ROOT)
    assert info.value.code == 0 and "python3 run_all.py test" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        options.preflight(["tets"], ROOT)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("run_all.py: unknown command 'tets' (did you mean 'test'?)")
    with pytest.raises(SystemExit) as info:
        options.preflight(["--sizee", "tiny"], ROOT)
    assert info.value.code == 2 and "unrecognized arguments: --sizee" in capsys.readouterr().err
    assert "did you mean" not in options.unknown_command("xyzzy")


def test_parse_args_defaults(monkeypatch):
    for var in ("I2R_EXECUTOR", "I2R_WORKERS", "I2R_SCHEDULER_ADDRESS", "I2R_DASK_CLUSTER"):
        monkeypatch.delenv(var, raising=False)
    args = options.parse_args([], ROOT)
    assert args.config == str(ROOT / "config" / "default.yaml") and args.executor == "local"
    assert not args.list and not args.force
