from pathlib import Path

import pytest

from i2r_utils.artifacts import ARTIFACTS, artifact


def test_artifact_fills_fields_under_work_dir():
    assert artifact("w", "impactful") == Path("w/screen/impactful.csv")
    assert artifact(Path("w"), "plate_crops", plate="P1") == Path("w/nuclei/crops/P1.npz")
    assert artifact("w", "result", condition="JUN") == Path("w/JUN/result.json")


def test_artifact_names_are_unique_paths():
    assert len(set(ARTIFACTS.values())) == len(ARTIFACTS)


def test_unknown_name_and_missing_field_are_clear():
    with pytest.raises(KeyError, match="unknown artefact 'nope'"):
        artifact("w", "nope")
    with pytest.raises(KeyError, match="needs fold"):
        artifact("w", "encoder_embeddings")
