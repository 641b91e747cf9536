"""Names that become paths, and output folders: checked before anything is written.

A condition, plate or downloaded object name chosen by a user or read from a remote listing
ends up in a file path. :func:`safe_name` accepts a name only when it is one harmless path
component, :func:`ensure_inside` checks that a built path stays inside its folder, and
:func:`check_output_dir` checks that an output folder can be created and written, so a bad
name or folder ends in one :class:`~i2r_utils.io.InputError` before the first write.
"""

from __future__ import annotations

import os
from pathlib import Path

from .io import InputError

__all__ = ["MAX_NAME_LENGTH", "safe_name", "ensure_inside", "check_output_dir"]

#: Longest name accepted (the usual file-name limit of file systems, in characters).
MAX_NAME_LENGTH = 255


def safe_name(name: object, what: str) -> str:
    """Return ``name`` when it is a single, harmless path component.

    Parameters
    ----------
    name : object
        The name, e.g. a condition or plate name.
    what : str
        What it names, for the message, e.g. ``"condition"`` or ``"--conditions entry"``.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    InputError
        Not a string, empty, ``.``/``..``, starting with ``.``, longer than
        :data:`MAX_NAME_LENGTH`, or containing a path separator (``/`` or a backslash) or a
        control character.
    """
    problem = ""
    if not isinstance(name, str):
        problem = f"is a {type(name).__name__}, not text"
    elif not name.strip():
        problem = "is empty"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator ('/' or '\\')"
    elif name.startswith("."):
        problem = "starts with '.' (a relative or hidden path)"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "contains a control character"
    elif name != name.strip():
        problem = "starts or ends with white space"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"is longer than {MAX_NAME_LENGTH} characters"
    if problem:
        raise InputError(
            f"{what} {name!r} {problem}; it becomes a file or folder name, so use letters, "
            "digits and - _ only (e.g. BRAF)."
        )
    return name


def ensure_inside(base: str | os.PathLike, path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` when it lies inside the folder ``base`` (after resolving ``..``, links).

    Parameters
    ----------
    base : path-like
        The folder everything must stay in (e.g. ``--dest``).
    path : path-like
        The path built from a name (absolute or relative to the current folder).
    what : str
        Where the name came from, for the message, e.g. ``"object key 'a/../../x.tif'"``.

    Returns
    -------
    pathlib.Path
        ``path`` unchanged.

    Raises
    ------
    InputError
        ``path`` resolves to a place outside ``base`` (or to ``base`` itself).
    """
    root = Path(base).resolve()
    target = Path(path).resolve()
    if target == root or not target.is_relative_to(root):
        raise InputError(
            f"{what} would be written to {target}, outside {root}; refusing to write it. "
            "Check the name (it must not contain '..' or start at '/')."
        )
    return Path(path)


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """Check that an output folder exists or can be created, and can be written.

    Nothing is created: the first existing folder on the way up must be writable.

    Parameters
    ----------
    path : path-like
        The output folder.
    option : str
        The option or key that named it, for the message, e.g. ``"--out"``.

    Returns
    -------
    pathlib.Path
        ``path`` as a :class:`pathlib.Path`.

    Raises
    ------
    InputError
        ``path`` is a file, lies below a file, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder; pass a folder path.")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(
            f"{option} {path} lies below {existing}, which is a file; pass a folder path."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"{option} {path}: {existing} is not writable by this user; pass a folder you can "
            "write to, or fix its permissions."
        )
    return path
