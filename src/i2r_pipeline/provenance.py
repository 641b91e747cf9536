"""Run provenance: what produced a result (git commit, parameters, input checksums, machine).

Paths in a manifest are relative to the results folder (inputs: to their base folder), so a
moved results folder keeps valid manifests.
"""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from i2r_utils.io import file_digest, write_json
from i2r_utils.runtime import runtime_info

__all__ = ["git_state", "package_versions", "write_manifest"]

_PACKAGES = [
    "i2r-utils", "numpy", "scipy", "pandas", "torch", "scikit-learn", "scikit-image", "papermill",
]  # fmt: skip


def git_state(repo: str | Path = ".") -> dict:
    """Return the git commit of ``repo`` and whether its tracked files have changes.

    Parameters
    ----------
    repo : path-like
        A folder inside the repository.

    Returns
    -------
    dict
        ``commit`` (None outside git) and ``dirty``.
    """

    def run(*args):
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {
            "commit": run("rev-parse", "HEAD"),
            "dirty": bool(run("status", "--porcelain", "-uno")),
        }
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    """Return the installed versions of the key packages.

    Returns
    -------
    dict
        Package name to version (None when missing), plus ``python``.
    """
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(path, parameters: dict, inputs: list, repo=".", base=None) -> Path:
    """Write a run manifest next to a run's outputs.

    Parameters
    ----------
    path : path-like
        Destination ``manifest.json``.
    parameters : dict
        The resolved parameters of the run.
    inputs : list of path-like
        Input files to checksum (missing ones are recorded as such).
    repo : path-like
        Repository folder for the git state.
    base : path-like, optional
        Inputs inside this folder are named relative to it.

    Returns
    -------
    pathlib.Path
        The written manifest, with ``runtime``: threads, CPU capability, platform and the
        versions of the numerical libraries (:func:`i2r_utils.runtime.runtime_info`).
    """

    def name(p: Path) -> str:
        return p.relative_to(base).as_posix() if base and p.is_relative_to(base) else str(p)

    checksums = {name(p): (file_digest(p) if p.is_file() else None) for p in map(Path, inputs)}
    return write_json(
        {
            "git": git_state(repo),
            "packages": package_versions(),
            "runtime": runtime_info(),
            "parameters": parameters,
            "inputs_sha256": checksums,
        },
        path,
    )
