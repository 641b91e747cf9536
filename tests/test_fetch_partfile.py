"""Tests of i2r_pipeline.fetch.partfile: expected checksums, verification and commit."""

from __future__ import annotations

import hashlib

import pytest

from i2r_pipeline.fetch.partfile import (
    checksum_mismatches,
    commit_part,
    expected_checksums,
    new_folders,
    part_path,
    wait_before_retry,
)
from i2r_utils.io import InputError


def test_expected_checksums_normalises_and_rejects_non_hex():
    assert expected_checksums(None, "") == {}
    assert expected_checksums(" ABC123 ", "md5:00FF") == {"sha256": "abc123", "md5": "00ff"}
    with pytest.raises(InputError, match="not a hex digest"):
        expected_checksums("xyz", None)


def test_checksum_mismatches_sha256_and_md5(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    sha, md5 = hashlib.sha256(b"hello").hexdigest(), hashlib.md5(b"hello").hexdigest()
    assert checksum_mismatches(path, {"sha256": sha, "md5": md5}) == []
    assert checksum_mismatches(path, {"md5": "0" * 32}) == [("md5", "0" * 32, md5)]


def test_commit_part_moves_verified_file_and_deletes_bad_one(tmp_path):
    dest = tmp_path / "f.bin"
    part = part_path(dest)
    assert part.name == "f.bin.part"
    part.write_bytes(b"ok")
    commit_part(part, dest, [], "http://x/f.bin")
    assert dest.read_bytes() == b"ok" and not part.exists()
    part.write_bytes(b"bad")
    with pytest.raises(InputError, match=r"Checksum mismatch for s3://b/k: expected md5 1, "):
        commit_part(part, tmp_path / "g.bin", [("md5", "1", "2")], "s3://b/k")
    assert not part.exists() and not (tmp_path / "g.bin").exists()


def test_wait_before_retry_is_bounded(tmp_path):
    wait_before_retry("src", OSError("x"), 1, 1, 0.0, tmp_path / "p")  # sleeps 0 s
    with pytest.raises(InputError, match="after 2 attempts") as info:
        wait_before_retry("src", OSError("x"), 2, 1, 0.0, tmp_path / "p")
    assert isinstance(info.value.__cause__, OSError)


def test_wait_before_retry_says_whether_a_partial_file_was_kept(tmp_path):
    part = tmp_path / "x.part"
    part.write_bytes(b"")  # opened, nothing received
    with pytest.raises(InputError, match="Nothing was received or kept: rerun once") as info:
        wait_before_retry("src", OSError("x"), 2, 1, 0.0, part)
    assert "partial file" not in str(info.value) and not part.exists()
    part.write_bytes(b"abc")
    with pytest.raises(InputError, match=r"partial file .*x.part \(3 bytes\) was kept"):
        wait_before_retry("src", OSError("x"), 2, 1, 0.0, part)
    assert part.read_bytes() == b"abc"


def test_new_folders_leave_no_empty_folder_after_a_failure(tmp_path):
    with pytest.raises(OSError, match="offline"), new_folders(tmp_path / "a" / "b"):
        assert (tmp_path / "a" / "b").is_dir()
        raise OSError("offline")
    assert not (tmp_path / "a").exists()
    with pytest.raises(OSError), new_folders(tmp_path / "a" / "b") as folder:
        (folder / "x.part").write_bytes(b"1")  # bytes to resume: kept
        raise OSError("offline")
    assert (tmp_path / "a" / "b" / "x.part").is_file()
    with new_folders(tmp_path / "c"):
        pass
    assert (tmp_path / "c").is_dir()  # success keeps the folder
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"cannot create the folder .*f/g .*a file in the way"):
        with new_folders(tmp_path / "f" / "g"):
            pass
