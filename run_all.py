#!/usr/bin/env python3
"""Run the compendium: set up the environment, then hand over to the driver.

    python3 run_all.py          # main job on the embedded default synthetic screen
    python3 run_all.py test     # lint, unit tests, papermill smoke run of every notebook
    python3 run_all.py --help   # every option and sub-command (i2r_pipeline.options)

``--help``, ``--list`` and a mistyped command are answered first, by the driver's
standard-library-only option parser, before anything is installed. The first run creates
``.venv`` and installs the pinned project into it (set I2R_NO_VENV=1 to use the current
interpreter, e.g. a conda env from environment.yml).
This file only uses the standard library: it sets up the environment, then hands over to
``i2r_pipeline.cli.main`` (the driver: stages, units, executors, done markers, manifests).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


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


def bootstrap(extras: str) -> None:
    """Create .venv with the pinned project installed, and re-execute inside it."""
    if os.environ.get("I2R_NO_VENV") == "1" or Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / f".installed-{extras}"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == want):
        if not _venv_python().is_file():
            print(f"[setup] creating {VENV}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        print("[setup] installing the pinned project (first run takes a few minutes)", flush=True)
        pip = [str(_venv_python()), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, "-q", "-e", f"{ROOT}[{extras}]"], check=True)
        subprocess.run(
            [str(_venv_python()), "-m", "ipykernel", "install", "--sys-prefix", "--name",
             "python3", "--display-name", "Python 3 (i2r)"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        stamp.write_text(want)
    os.execv(str(_venv_python()), [str(_venv_python()), str(ROOT / "run_all.py"), *sys.argv[1:]])


def main() -> int:
    """Answer --help/--list/usage errors, set up the environment, then run the driver."""
    argv = sys.argv[1:]
    answered, extras = driver_module("options").preflight(argv, ROOT)
    if answered is not None:
        return answered
    bootstrap("dev")
    from i2r_pipeline.cli import main as cli_main

    return cli_main(argv, root=ROOT)


if __name__ == "__main__":
    sys.exit(main())
