"""Notebooks: cached .ipynb with a kernelspec, declared parameters, papermill execution."""

import json
from pathlib import Path

import pytest

from i2r_pipeline import PipelineError
from i2r_pipeline.notebooks import KERNELSPEC, declared_parameters, execute, to_ipynb

STUBS = Path(__file__).parent / "stubs"


def test_to_ipynb_caches_one_notebook_per_source_version(tmp_path):
    src = tmp_path / "nb.py"
    src.write_text((STUBS / "03_embed_genes.py").read_text())
    first = to_ipynb(src, tmp_path / "cache")
    assert first.parent == tmp_path / "cache" and first.name.startswith("nb.")
    nb = json.loads(first.read_text())
    assert nb["metadata"]["kernelspec"] == KERNELSPEC
    assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    stamp = first.stat().st_mtime_ns
    assert to_ipynb(src, tmp_path / "cache") == first and first.stat().st_mtime_ns == stamp
    src.write_text(src.read_text() + "\n# %%\nprint(1)\n")
    second = to_ipynb(src, tmp_path / "cache")
    assert second != first and first.is_file()  # one file per source version
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [first.name, second.name]
    )  # no temporary files left
    assert not list(STUBS.glob("*.ipynb"))


def test_declared_parameters_parse_the_tagged_cell(tmp_path):
    assert declared_parameters(STUBS / "06_translate_condition.py") == {
        "condition": '"A"', "work_dir": '"stub-results"', "out_dir": '"stub-results/A"',
        "alpha": "1.0", "seed": "0"}  # fmt: skip
    src = tmp_path / "nb.py"
    src.write_text(
        '# %% tags=["parameters"]\n'
        "# comments may say anything: x = (\n"
        "a = 1  # a = 2\n"
        "b: float = 0.5\n"
        "c = d = [1, 2]\n"
        "e: int\n"
        "print(a)\n"
    )
    assert declared_parameters(src) == {"a": "1", "b": "0.5", "c": "[1, 2]", "d": "[1, 2]"}
    src.write_text('# %% tags=["parameters"]\na = (\n')
    with pytest.raises(PipelineError, match=r"parameters cell of .*nb.py is not valid Python"):
        declared_parameters(src)
    src.write_text("# %%\na = 1\n")
    with pytest.raises(PipelineError, match=r"nb.py has no `parameters` cell"):
        declared_parameters(src)


def test_execute_writes_elsewhere_with_parameters_never_in_place(tmp_path):
    nb = to_ipynb(STUBS / "03_embed_genes.py", tmp_path / "cache")
    out = tmp_path / "run" / "sub" / "03.ipynb"
    execute(nb, out, {"work_dir": str(tmp_path), "seed": 7}, cwd=STUBS)
    executed = json.loads(out.read_text())
    assert executed["metadata"]["papermill"]["parameters"] == {"work_dir": str(tmp_path), "seed": 7}
    assert json.loads((tmp_path / "genes" / "genes.json").read_text())["seed"] == 7
    with pytest.raises(ValueError, match="in place"):
        execute(nb, nb, {}, cwd=STUBS)
    # a failing cell raises with the notebook's error; the partial notebook is kept
    bad = to_ipynb(STUBS / "06_translate_condition.py", tmp_path / "cache")
    with pytest.raises(Exception) as info:
        execute(bad, tmp_path / "bad.ipynb", {"work_dir": str(tmp_path / "none")}, cwd=STUBS)
    assert info.value.ename == "FileNotFoundError" and (tmp_path / "bad.ipynb").is_file()
    assert not list(STUBS.glob("*.ipynb"))
