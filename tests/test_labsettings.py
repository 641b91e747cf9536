"""JupyterLab settings: the environment's overrides make jupytext's notebook the .py viewer."""

import json
import sys
from pathlib import Path

import pytest

from i2r_pipeline.labsettings import (
    DOCMANAGER,
    JUPYTEXT_FACTORY,
    LAB_OVERRIDES,
    install,
    lab_settings_dir,
    main,
)
from i2r_utils.io import InputError

LAB = Path(sys.prefix) / "share" / "jupyter"


def test_install_writes_merges_and_is_idempotent(tmp_path):
    path = install(tmp_path / "settings")
    assert path == tmp_path / "settings" / "overrides.json"
    assert json.loads(path.read_text()) == LAB_OVERRIDES
    stamp = path.stat().st_mtime_ns
    assert install(tmp_path / "settings") == path and path.stat().st_mtime_ns == stamp
    # other settings of the environment are kept
    path.write_text(json.dumps({
        DOCMANAGER: {"autosave": False, "defaultViewers": {"markdown": "Markdown Preview"}},
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
    }))  # fmt: skip
    merged = json.loads(install(tmp_path / "settings").read_text())
    assert merged[DOCMANAGER] == {
        "autosave": False,
        "defaultViewers": {"markdown": "Markdown Preview", "python": JUPYTEXT_FACTORY},
    }
    assert merged["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_broken_overrides_file_is_one_clear_error(tmp_path, text, capsys, monkeypatch):
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "overrides.json").write_text(text)
    with pytest.raises(InputError, match=r"overrides.json: .*fix or delete it"):
        install(tmp_path / "settings")
    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path))
    assert lab_settings_dir() == tmp_path / "settings"
    assert main() == 1 and "fix or delete it" in capsys.readouterr().err
    assert (tmp_path / "settings" / "overrides.json").read_text() == text  # left as it was


def test_jupyterlab_reads_the_override_as_the_python_default_viewer(tmp_path):
    """JupyterLab's own settings service applies the file to the Document Manager."""
    settings_utils = pytest.importorskip("jupyterlab_server.settings_utils")
    schemas = LAB / "lab" / "schemas"
    if not (schemas / "@jupyterlab" / "docmanager-extension").is_dir():
        pytest.skip(f"no JupyterLab schemas under {schemas}")
    app_settings = install(tmp_path / "settings").parent
    result, warnings = settings_utils.get_settings(
        str(app_settings), str(schemas), str(tmp_path / "user-settings"), DOCMANAGER
    )
    assert not [w for w in warnings if w]
    assert result["schema"]["properties"]["defaultViewers"]["default"] == {
        "python": JUPYTEXT_FACTORY
    }
    # the factory name is the one the installed jupytext extension registers
    static = LAB / "labextensions" / "jupyterlab-jupytext" / "static"
    if not static.is_dir():
        pytest.skip("jupyterlab-jupytext is not installed in this environment")
    assert any(f'"{JUPYTEXT_FACTORY}"' in p.read_text(errors="ignore") for p in static.glob("*.js"))
