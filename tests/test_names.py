"""Names that become paths, and output folders: refused before anything is written."""

import os

import pytest

from i2r_utils.io import InputError
from i2r_utils.names import check_output_dir, ensure_inside, safe_name


@pytest.mark.parametrize("name", ["BRAF", "HLA-A", "41744", "plate_1", "C1orf112", "a b"])
def test_safe_names_pass_unchanged(name):
    assert safe_name(name, "condition") == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../../../x", "contains a path separator"),
        ("a/b", "contains a path separator"),
        ("a\\b", "contains a path separator"),
        ("/etc", "contains a path separator"),
        ("..", "starts with '.'"),
        (".", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("", "is empty"),
        ("  ", "is empty"),
        ("a\x00b", "contains a control character"),
        ("a\nb", "contains a control character"),
        (" BRAF", "starts or ends with white space"),
        ("x" * 256, "is longer than 255 characters"),
        (3, "is a int, not text"),
        (None, "is a NoneType, not text"),
    ],
)
def test_unsafe_names_end_in_one_line_naming_the_value(name, problem):
    with pytest.raises(InputError) as err:
        safe_name(name, "condition")
    text = str(err.value)
    assert text.startswith(f"condition {name!r} {problem}") and "\n" not in text


def test_ensure_inside(tmp_path):
    base = tmp_path / "dest"
    assert ensure_inside(base, base / "P1" / "a.tif", "key") == base / "P1" / "a.tif"
    for bad in (base / ".." / "x.tif", tmp_path / "elsewhere", base, base / "a" / ".." / ".."):
        with pytest.raises(InputError, match=r"^key would be written to .*, outside .*dest"):
            ensure_inside(base, bad, "key")
    base.mkdir()
    (base / "link").symlink_to(tmp_path)  # a link that leads out counts as outside
    with pytest.raises(InputError, match="outside"):
        ensure_inside(base, base / "link" / "x.tif", "key")


def test_check_output_dir(tmp_path):
    assert check_output_dir(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing created
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InputError, match=r"^--out .*afile is a file, not a folder"):
        check_output_dir(afile, "--out")
    with pytest.raises(InputError, match=r"^--out .*afile/sub lies below .*afile, which is a file"):
        check_output_dir(afile / "sub", "--out")


def test_check_output_dir_not_writable(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # the permission test itself (root may write anywhere, so the answer is faked for it)
    monkeypatch.setattr(os, "access", lambda p, mode: real_access(p, mode) and p != locked)
    with pytest.raises(InputError, match=r"locked is not writable by this user"):
        check_output_dir(locked / "out", "--out")
    check_output_dir(tmp_path / "open", "--out")
