"""Safe, atomic, idempotent extraction of zip and tar archives."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from i2r_utils.io import InputError, temp_folder, write_json

logger = logging.getLogger(__name__)

__all__ = ["extract", "extraction_marker"]


def extraction_marker(archive: Path, dest_dir: Path) -> Path:
    """Return the marker that :func:`extract` writes once `archive` is fully unpacked.

    Parameters
    ----------
    archive : pathlib.Path
        The archive.
    dest_dir : pathlib.Path
        The folder it is unpacked into.

    Returns
    -------
    pathlib.Path
        ``dest_dir/.<archive name>.extracted.json``.
    """
    return dest_dir / f".{archive.name}.extracted.json"


def _unsafe_name(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return True
    return ".." in PurePosixPath(normalized).parts


def _refuse(archive: Path, name: str, why: str) -> InputError:
    return InputError(
        f"Refusing to extract {archive}: member {name!r} {why}. Nothing was extracted. "
        "The archive is malformed or malicious: do not unpack it, download it again from "
        "the original source."
    )


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    if _unsafe_name(member.name):
        raise _refuse(archive, member.name, "has an absolute path or '..' (path traversal)")
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
        target = posixpath.normpath(str(base / link))
        if link.startswith("/") or target == ".." or target.startswith("../"):
            raise _refuse(archive, member.name, f"links outside the destination ({link!r})")
    if member.isdev():
        raise _refuse(archive, member.name, "is a device or FIFO")


def _check_members(archive: Path) -> str:
    """Validate every member name of `archive`; return ``"zip"`` or ``"tar"``."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if _unsafe_name(info.filename):
                    raise _refuse(
                        archive, info.filename, "has an absolute path or '..' (path traversal)"
                    )
        return "zip"
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            for member in tf.getmembers():
                _check_tar_member(archive, member)
        return "tar"
    raise InputError(f"{archive} is neither a zip nor a tar archive (.tar, .tar.gz, .tgz, ...)")


def _read_record(path: Path) -> dict:
    """Read a marker written by :func:`extract`; ``{}`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _unpack(archive: Path, kind: str, tmp: Path) -> None:
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
    else:
        with tarfile.open(archive, "r:*") as tf:
            tf.extractall(tmp, filter="data")


def _move_into(archive: Path, tmp: Path, dest_dir: Path, record: dict, previous: list[str]) -> None:
    """Move the unpacked entries of `tmp` into the existing `dest_dir`, then mark it done.

    Entries recorded by an earlier (possibly interrupted) extraction of the same archive are
    replaced; any other existing entry of the same name is never overwritten.
    """
    entries = record["entries"]
    marker = extraction_marker(archive, dest_dir)
    pending = dest_dir / f".{archive.name}.extracting.json"
    ours = set(previous) | set(_read_record(pending).get("entries", []))
    clashes = [e for e in entries if e not in ours and os.path.lexists(dest_dir / e)]
    if clashes:
        raise FileExistsError(
            f"Cannot extract {archive.name} into {dest_dir}: {', '.join(clashes)} already "
            "exist(s) there and were not created by extracting this archive. Move them away "
            "or extract into another folder."
        )
    write_json({"entries": sorted(ours | set(entries))}, pending)
    for entry in entries:
        target = dest_dir / entry
        if os.path.lexists(target):
            _remove(target)
        os.replace(tmp / entry, target)
    write_json(record, marker)
    pending.unlink()


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a zip or tar (optionally gz/bz2/xz compressed) archive atomically and safely.

    All members are checked first: absolute paths, ``..`` components, links pointing outside
    the destination and device files are refused before anything is written. The archive is
    then unpacked into a temporary folder beside `dest_dir` and moved into place with
    :func:`os.replace`: when `dest_dir` does not exist the whole folder is renamed in one
    step; otherwise each top-level entry of the archive is renamed into `dest_dir`. A
    completion marker ``.<archive name>.extracted.json`` is written last, so an interrupted
    run leaves no marker and is redone; a rerun after a complete extraction of the same
    archive (same size) does nothing.

    Parameters
    ----------
    archive : str or os.PathLike
        The ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2`` or ``.tar.xz`` file.
    dest_dir : str or os.PathLike
        Folder that receives the archive's top-level entries.

    Returns
    -------
    pathlib.Path
        `dest_dir`.

    Raises
    ------
    InputError
        A member would be written outside `dest_dir`, or `archive` is not a zip or tar
        archive.
    FileExistsError
        A top-level entry of the archive already exists in `dest_dir` and was not produced by
        an earlier extraction of this archive (it is never overwritten).
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    size = archive.stat().st_size
    marker = extraction_marker(archive, dest_dir)
    previous: list[str] = []
    if marker.exists():
        info = _read_record(marker)
        if info.get("size") == size:
            logger.info("%s was already extracted to %s: nothing to do", archive.name, dest_dir)
            return dest_dir
        logger.info("%s changed since it was extracted: extracting it again", archive)
        previous = list(info.get("entries", []))

    kind = _check_members(archive)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_folder(dest_dir.parent, f".{dest_dir.name}.extract-")
    try:
        _unpack(archive, kind, tmp)
        record = {"archive": archive.name, "size": size, "entries": sorted(os.listdir(tmp))}
        if dest_dir.exists():
            _move_into(archive, tmp, dest_dir, record, previous)
        else:
            write_json(record, tmp / marker.name)
            os.replace(tmp, dest_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir
