"""One run per folder: a second one stops at once with one line naming the first."""

import json

import pytest

from i2r_pipeline import PipelineError
from i2r_pipeline.lock import folder_lock, lock_path


def test_second_lock_refuses_clearly_and_the_lock_is_released(tmp_path):
    folder = tmp_path / "results" / "run"
    assert lock_path(folder) == tmp_path / "results" / ".run.lock"
    with folder_lock(folder, "results folder") as path:
        holder = json.loads(path.read_text())
        assert set(holder) == {"pid", "host", "started"}
        assert not folder.exists()  # beside the folder: a stage that creates it finds it empty
        with pytest.raises(PipelineError) as err:
            with folder_lock(folder, "results folder"):
                pytest.fail("two holders")
        msg = str(err.value)
        assert f"pid {holder['pid']} on {holder['host']}" in msg and str(folder) in msg
        assert "is using the results folder" in msg and "\n" not in msg
        with folder_lock(tmp_path / "other"):  # another folder is free
            pass
    with folder_lock(folder):  # released at the end of the block
        pass
