import json

from i2r_pipeline.provenance import git_state, package_versions, write_manifest


def test_manifest_records_commit_params_and_checksums(tmp_path):
    (tmp_path / "in.txt").write_bytes(b"abc")
    path = write_manifest(tmp_path / "m.json", {"seed": 1}, [tmp_path / "in.txt", tmp_path / "no"])
    m = json.loads(path.read_text())
    assert m["parameters"] == {"seed": 1}
    assert m["inputs_sha256"][str(tmp_path / "in.txt")].startswith("ba7816bf")
    assert m["inputs_sha256"][str(tmp_path / "no")] is None
    assert m["packages"]["numpy"] and "commit" in m["git"]
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    assert package_versions()["python"].startswith("3.")
