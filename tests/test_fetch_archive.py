"""Tests of i2r_pipeline.fetch.archive: safe, atomic, idempotent extraction."""

from __future__ import annotations

import io
import tarfile

import pytest
from fetch_servers import zip_bytes

from i2r_pipeline.fetch.archive import extract, extraction_marker
from i2r_utils.io import InputError


def test_extract_zip_atomic_and_idempotent(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"top/x.txt": b"x", "top/sub/y.txt": b"y", "z.txt": b"z"}))
    dest = tmp_path / "dest"
    extract(archive, dest)
    assert (dest / "top" / "sub" / "y.txt").read_bytes() == b"y"
    assert (dest / ".a.zip.extracted.json").exists()
    assert extraction_marker(archive, dest) == dest / ".a.zip.extracted.json"
    assert not [p for p in tmp_path.iterdir() if ".extract-" in p.name]  # temp dir cleaned
    (dest / "z.txt").write_bytes(b"user edit")
    extract(archive, dest)  # complete: nothing is done
    assert (dest / "z.txt").read_bytes() == b"user edit"


def test_extract_into_existing_dir_and_recover_interrupted(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = dest / "a.zip"  # the archive may live in the destination
    archive.write_bytes(zip_bytes({"top/x.txt": b"x"}))
    (dest / "unrelated.txt").write_text("keep me")
    extract(archive, dest)
    assert (dest / "top" / "x.txt").read_bytes() == b"x"
    assert (dest / "unrelated.txt").read_text() == "keep me"
    # simulate an interrupted run: marker gone, pending record left, partial tree present
    (dest / ".a.zip.extracted.json").unlink()
    (dest / ".a.zip.extracting.json").write_text('{"entries": ["top"]}')
    (dest / "top" / "x.txt").write_bytes(b"partial")
    extract(archive, dest)
    assert (dest / "top" / "x.txt").read_bytes() == b"x"
    assert not (dest / ".a.zip.extracting.json").exists()


def test_extract_refuses_to_overwrite_foreign_entries(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"top/x.txt": b"x"}))
    dest = tmp_path / "dest"
    (dest / "top").mkdir(parents=True)
    (dest / "top" / "mine.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="top"):
        extract(archive, dest)
    assert (dest / "top" / "mine.txt").read_text() == "mine"


def test_extract_tar_gz(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("pkg/data.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "data.txt").read_bytes() == b"hello"


def test_extract_rejects_non_archive(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"not an archive")
    with pytest.raises(InputError, match="neither a zip nor a tar"):
        extract(archive, tmp_path / "dest")


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_extract_refuses_path_traversal_zip(tmp_path, name):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(zip_bytes({"fine.txt": b"ok", name: b"evil"}))
    with pytest.raises(InputError, match="traversal"):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_extract_refuses_path_traversal_tar(tmp_path, kind):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        if kind == "symlink":
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../etc"
            tf.addfile(info)
        else:
            info = tarfile.TarInfo("../evil.txt" if kind == "dotdot" else "/tmp/evil.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"e"))
    with pytest.raises(InputError, match="Refusing"):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
