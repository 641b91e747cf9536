"""A notebook's missing results folder: one line naming where results are."""

import pytest

from i2r_utils.artifacts import artifact
from i2r_utils.io import InputError
from i2r_utils.workdir import require_results


def test_present_artifact_is_returned(tmp_path):
    path = artifact(tmp_path / "default_seed0", "folds")
    path.parent.mkdir(parents=True)
    path.write_text("Metadata_Condition,Metadata_Fold\n")
    assert require_results(tmp_path / "default_seed0", "folds") == path


def test_missing_results_name_the_folders_that_hold_them(tmp_path):
    for run in ("default_seed0", "tiny_seed0"):
        p = artifact(tmp_path / run, "folds")
        p.parent.mkdir(parents=True)
        p.write_text("x\n")
    (tmp_path / "empty").mkdir()  # a folder without the artifact is not offered
    with pytest.raises(InputError) as info:
        require_results(tmp_path / "tiny", "folds")
    msg = str(info.value)
    assert "\n" not in msg and str(artifact(tmp_path / "tiny", "folds")) in msg
    assert f"{tmp_path / 'default_seed0'}, {tmp_path / 'tiny_seed0'}" in msg
    assert "empty" not in msg and "set work_dir" in msg


def test_no_results_anywhere_names_the_command(tmp_path):
    with pytest.raises(InputError, match=r"run `python3 run_all.py` \(writes results/default"):
        require_results(tmp_path / "results" / "tiny", "folds")
