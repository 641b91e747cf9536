"""Run provenance: what produced a result (git commit, parameters, input checksums)."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from i2r_utils.io import file_digest, write_json

__all__ = ["git_state", "package_versions", "write_manifest"]

_PACKAGES = ["i2r-utils", "numpy", "pandas", "torch", "scikit-learn", "scikit-image", "papermill"]


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


def write_manifest(path, parameters: dict, inputs: list, repo=".") -> Path:
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

    Returns
    -------
    pathlib.Path
        The written manifest.
    """
    checksums = {str(p): (file_digest(p) if Path(p).is_file() else None) for p in map(Path, inputs)}
    return write_json(
        {
            "git": git_state(repo),
            "packages": package_versions(),
            "parameters": parameters,
            "inputs_sha256": checksums,
        },
        path,
    )
