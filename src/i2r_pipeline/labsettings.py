"""JupyterLab settings of the environment: the text notebooks open as notebooks.

The notebooks are jupytext ``py:percent`` files. JupyterLab opens a ``.py`` file on a
double click with its *default viewer*, the text editor unless configured; jupytext's
documented fix (``jupytext-config set-default-viewer python``, "More on default viewers"
in jupytext's text-notebooks guide) sets the Document Manager's ``defaultViewers`` to
jupytext's ``Jupytext Notebook`` factory in the *user's* settings. Here the same setting
goes into the environment's settings overrides (``<app dir>/settings/overrides.json``,
where ``<app dir>`` is ``<sys.prefix>/share/jupyter/lab`` or ``$JUPYTERLAB_DIR``), so
that ``jupyter lab`` of this environment opens ``notebooks/*.py`` as notebooks and other
environments and the user's own settings stay untouched (a user setting still wins).

Run ``python -m i2r_pipeline.labsettings`` once in an environment (``run_all.py``'s
setup does it for ``.venv``); it merges into an existing ``overrides.json`` and leaves
its other keys as they are.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from i2r_utils.io import InputError, write_json

__all__ = ["DOCMANAGER", "JUPYTEXT_FACTORY", "LAB_OVERRIDES", "install", "lab_settings_dir"]

#: JupyterLab's Document Manager plugin, which holds the default viewers.
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
#: jupytext's JupyterLab document factory (jupyterlab-jupytext ``FACTORY``).
JUPYTEXT_FACTORY = "Jupytext Notebook"
#: The overrides this project needs: Python files open with jupytext's notebook factory.
LAB_OVERRIDES = {DOCMANAGER: {"defaultViewers": {"python": JUPYTEXT_FACTORY}}}


def lab_settings_dir() -> Path:
    """Return the settings folder of this environment's JupyterLab application directory.

    Returns
    -------
    pathlib.Path
        ``$JUPYTERLAB_DIR/settings`` when set, else ``<sys.prefix>/share/jupyter/lab/settings``
        (JupyterLab's default ``app_settings_dir``).
    """
    app_dir = os.environ.get("JUPYTERLAB_DIR")
    app_dir = Path(app_dir) if app_dir else Path(sys.prefix) / "share" / "jupyter" / "lab"
    return app_dir / "settings"


def _merge(base: dict, extra: dict) -> dict:
    """Return ``base`` with ``extra`` merged in, nested objects key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def install(settings_dir: str | os.PathLike | None = None) -> Path:
    """Merge :data:`LAB_OVERRIDES` into ``settings_dir/overrides.json`` (atomically).

    Parameters
    ----------
    settings_dir : path-like, optional
        JupyterLab's application settings folder; default :func:`lab_settings_dir`.

    Returns
    -------
    pathlib.Path
        The overrides file (left untouched when it already holds the settings).

    Raises
    ------
    InputError
        When an existing ``overrides.json`` is not a JSON object.
    """
    path = Path(settings_dir or lab_settings_dir()) / "overrides.json"
    current = {}
    if path.is_file():
        try:
            current = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON ({err}); fix or delete it.") from None
        if not isinstance(current, dict):
            raise InputError(f"{path}: not a JSON object; fix or delete it.")
    merged = _merge(current, LAB_OVERRIDES)
    if merged != current or not path.is_file():
        write_json(merged, path)
    return path


def main() -> int:
    """Install the overrides into this environment and say where."""
    try:
        path = install()
    except (InputError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"JupyterLab: notebooks/*.py open as notebooks (default viewer set in {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
