"""Progress bars: no TqdmWarning and few progress lines in an executed notebook."""

import io
import json
import re
from pathlib import Path

import nbformat

from i2r_pipeline.notebooks import execute
from i2r_utils.progress import QUIET_INTERVAL, tqdm

SRC = Path(__file__).resolve().parents[1] / "src"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_quiet_off_a_terminal_and_explicit_arguments_win():
    off = tqdm(range(3), file=io.StringIO())
    assert off.mininterval == QUIET_INTERVAL and off.maxinterval >= QUIET_INTERVAL
    on = tqdm(range(3), file=_Terminal())
    assert on.mininterval == 0.1  # tqdm's own default on a terminal
    own = tqdm(range(3), file=io.StringIO(), mininterval=0.5)
    assert own.mininterval == 0.5
    assert tqdm(range(3), file=_Terminal(), disable=True).disable
    stream = io.StringIO()
    assert sum(tqdm(range(500), file=stream, desc="loop")) == sum(range(500))
    assert stream.getvalue().count("loop") == 2  # the first and the last state only
    stream = io.StringIO()
    bar = tqdm(range(5), file=stream, desc="epochs")
    for i in bar:
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")  # no line of its own
    assert stream.getvalue().count("epochs") == 2 and "loss=0.200" in stream.getvalue()
    term = _Terminal()
    bar = tqdm(range(2), file=term, desc="live")
    bar.set_postfix(loss="1.0")
    assert "loss=1.0" in term.getvalue()  # on a terminal at once


def test_no_module_uses_the_widget_bar():
    """``tqdm.auto`` warns in a Jupyter kernel without ipywidgets: nobody imports it."""
    pattern = re.compile(r"^\s*(from|import)\s+tqdm\.(auto|autonotebook|notebook)\b", re.M)
    sources = [*SRC.rglob("*.py"), *NOTEBOOKS.glob("*.py")]
    offenders = [str(p) for p in sources if pattern.search(p.read_text(encoding="utf-8"))]
    assert not offenders


def test_executed_notebook_has_no_tqdm_warning_and_few_progress_lines(tmp_path):
    modules = sorted(
        f"i2r_utils.{p.stem}"
        for p in (SRC / "i2r_utils").glob("*.py")
        if "from .progress import tqdm" in p.read_text(encoding="utf-8")
    )
    assert len(modules) >= 5  # the package's long loops
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("\n".join(f"import {m}" for m in modules)),
        nbformat.v4.new_code_cell(
            "import time\nfrom i2r_utils.progress import tqdm\n"
            "for _ in tqdm(range(60), desc='slow loop'):\n    time.sleep(0.02)\n"
        ),
    ]
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, src)
    execute(src, tmp_path / "out.ipynb", {}, cwd=tmp_path)
    outputs = [o for c in json.loads((tmp_path / "out.ipynb").read_text())["cells"]
               for o in c.get("outputs", [])]  # fmt: skip
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "TqdmWarning" not in text and "IProgress" not in text
    assert text.count("slow loop") <= 3  # first state, last state (the close may repeat it)
    assert "60/60" in text
