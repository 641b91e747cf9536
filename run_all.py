#!/usr/bin/env python3
"""Run the compendium: set up the environment, then hand over to the driver.

    python3 run_all.py          # main job on the embedded default synthetic screen
    python3 run_all.py test     # lint, unit tests, papermill smoke run of every notebook
    python3 run_all.py --help   # every option and sub-command (i2r_pipeline.options)

``--help``, ``--list`` and a mistyped command are answered first, by the driver's
standard-library-only option parser, before anything is installed. Then the Python version
is checked (3.11). The first run creates ``.venv`` and installs the pinned project into it
(set I2R_NO_VENV=1 to use the current interpreter, e.g. a conda env from environment.yml).
This file only uses the standard library: it sets up the environment, then hands over to
``i2r_pipeline.cli.main`` (the driver: stages, units, executors, done markers, manifests).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
#: The Python the project needs (pyproject.toml: requires-python = ">=3.11,<3.12").
PYTHON = (3, 11)


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def driver_module(name: str):
    """Import ``i2r_pipeline.<name>``, from this checkout's ``src`` when not installed yet.

    Only the package's standard-library-only modules (``options``, ``stages``) are loaded
    this way, before the environment exists; ``sys.path`` is left as it is.
    """
    if "i2r_pipeline" not in sys.modules:
        init = ROOT / "src" / "i2r_pipeline" / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            "i2r_pipeline", init, submodule_search_locations=[str(init.parent)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["i2r_pipeline"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"i2r_pipeline.{name}")


def check_python(version: tuple | None = None) -> None:
    """Stop with one line unless this is the Python the project needs (pyproject.toml).

    Parameters
    ----------
    version : tuple, optional
        ``(major, minor, micro, ...)``; default the running interpreter's.

    Raises
    ------
    SystemExit
        Status 1, naming the version found, the one needed and how to get it.
    """
    version = tuple(sys.version_info if version is None else version)
    if version[:2] != PYTHON:
        found, need = ".".join(map(str, version[:3])), "%d.%d" % PYTHON
        raise SystemExit(
            f"run_all.py: Python {found} found, but the project needs Python {need} "
            f"(pyproject.toml); run `python{need} run_all.py`, or use the conda env: "
            "`conda env create -f environment.yml`, `conda activate i2r`, "
            "`I2R_NO_VENV=1 python run_all.py`."
        )


def _venv_version() -> tuple:
    """Return the ``(major, minor)`` of the Python that made ``.venv`` (``()`` if unknown)."""
    cfg = VENV / "pyvenv.cfg"
    if not cfg.is_file():
        return ()
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return tuple(int(v) for v in value.strip().split(".")[:2] if v.isdigit())
    return ()


def _run_setup(cmd: list, **kwargs) -> None:
    """Run one set-up command; one line naming it and the way out when it fails."""
    rc = subprocess.run(cmd, **kwargs).returncode
    if rc:
        raise SystemExit(
            f"run_all.py: set-up step `{' '.join(map(str, cmd[1:4]))} ...` failed (exit "
            f"status {rc}, output above); fix the cause and rerun: {VENV} is not used until "
            "an install has succeeded."
        )


def _stamp() -> Path:
    """Path of the stamp of the last successful install (``pyproject`` hash, ``extras``)."""
    return VENV / ".i2r-installed.json"


def _read_stamp() -> dict:
    """Return the stamp's content; empty when it is missing or unreadable."""
    try:
        stamp = json.loads(_stamp().read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def bootstrap(extras: str) -> None:
    """Create .venv with the pinned project installed, and re-execute inside it.

    Parameters
    ----------
    extras : str
        Comma-separated pyproject extras the command needs (``""``: the plain project).

    Notes
    -----
    Every package, direct or indirect, is installed at its version in
    ``requirements-lock.txt`` (a pip constraints file: the environment the tests passed in).
    The stamp (:func:`_stamp`: hash of ``pyproject.toml`` and the lock, extras installed) is removed
    before and written only after a successful install, so a half-finished install is
    redone by the next call. An install adds the extras installed before, so ``test``
    (``dev``) after the main job upgrades the same ``.venv``. A ``.venv`` made by another
    Python than 3.11 is recreated.
    """
    if os.environ.get("I2R_NO_VENV") == "1" or Path(sys.prefix).resolve() == VENV.resolve():
        return
    need = {e for e in extras.split(",") if e}
    want = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "requirements-lock.txt").read_bytes()
    ).hexdigest()
    stamp = _read_stamp()
    have = set(stamp.get("extras", []))
    if stamp.get("pyproject") != want or _venv_version() != PYTHON or not need <= have:
        need |= have
        _stamp().unlink(missing_ok=True)
        if not _venv_python().is_file() or _venv_version() != PYTHON:
            print(f"[setup] creating {VENV}", flush=True)
            _run_setup([sys.executable, "-m", "venv", "--clear", str(VENV)])
        spec = f"{ROOT}[{','.join(sorted(need))}]" if need else str(ROOT)
        label = f" [{','.join(sorted(need))}]" if need else ""
        print(
            f"[setup] installing the pinned project{label} (first run: a few minutes)", flush=True
        )
        pip = [str(_venv_python()), "-m", "pip", "install", "--disable-pip-version-check"]
        _run_setup([*pip, "-q", "-c", str(ROOT / "requirements-lock.txt"), "-e", spec])
        _run_setup(
            [str(_venv_python()), "-m", "ipykernel", "install", "--sys-prefix", "--name",
             "python3", "--display-name", "Python 3 (i2r)"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        # JupyterLab opens the jupytext notebooks (notebooks/*.py) as notebooks
        _run_setup(
            [str(_venv_python()), "-m", "i2r_pipeline.labsettings"], stdout=subprocess.DEVNULL
        )
        _stamp().write_text(json.dumps({"pyproject": want, "extras": sorted(need)}))
    os.execv(str(_venv_python()), [str(_venv_python()), str(ROOT / "run_all.py"), *sys.argv[1:]])


def main() -> int:
    """Answer --help/--list/usage errors, set up the environment, then run the driver."""
    argv = sys.argv[1:]
    answered, extras = driver_module("options").preflight(argv, ROOT)
    if answered is not None:
        return answered
    check_python()
    bootstrap(extras)
    from i2r_pipeline.cli import main as cli_main

    return cli_main(argv, root=ROOT)


if __name__ == "__main__":
    sys.exit(main())
