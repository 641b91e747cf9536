"""The one ordered list of stages: scopes, order and the stages each one reads from."""

import re

import pytest

from i2r_pipeline.stages import (
    SCOPES,
    STAGES,
    UNIT_PARAMETER,
    Stage,
    check_stages,
    stage_named,
)


def test_stages_are_ordered_scoped_and_read_only_earlier_stages():
    assert check_stages(STAGES) == []
    numbers = [int(re.match(r"(\d\d)_", s.name).group(1)) for s in STAGES]
    assert numbers == sorted(numbers) == list(range(len(STAGES)))
    assert {s.scope for s in STAGES} == set(SCOPES)
    assert set(UNIT_PARAMETER) == {"plate", "fold", "condition"}
    scopes = {s.name: s.scope for s in STAGES}
    assert scopes["01_preprocess_nuclei"] == "plate" and scopes["04_train_encoder"] == "fold"
    assert scopes["06_translate_condition"] == "condition"
    assert scopes["07_summarize_conditions"] == "summary"


def test_reads_fold_in_the_dependencies():
    reads = {s.name: set(s.reads) for s in STAGES}
    assert reads["00_simulate_screen"] == set() and reads["08_evaluate_segmentation"] == set()
    assert reads["01_preprocess_nuclei"] == {"00_simulate_screen"}
    assert reads["02_screen_conditions"] == {"01_preprocess_nuclei"}
    assert reads["03_embed_genes"] == {"00_simulate_screen"}
    # the fold assignment is written by the screen stage and read by 04 and 05
    assert reads["04_train_encoder"] == {"01_preprocess_nuclei", "02_screen_conditions"}
    assert reads["05_build_profiles"] == {
        "01_preprocess_nuclei", "02_screen_conditions", "04_train_encoder"}  # fmt: skip
    assert reads["06_translate_condition"] == {
        "02_screen_conditions", "03_embed_genes", "05_build_profiles"}  # fmt: skip
    assert reads["07_summarize_conditions"] == {"06_translate_condition"}


def test_stage_named_and_check_stages_report_problems():
    assert stage_named("04_train_encoder").scope == "fold"
    with pytest.raises(KeyError, match="no stage 'nope'"):
        stage_named("nope")
    bad = [Stage("a", "dataset", reads=("b",)), Stage("b", "well"), Stage("a", "dataset")]
    problems = check_stages(bad)
    assert problems == [
        "stage a reads b, which is not an earlier stage",
        f"stage b: unknown scope 'well'; one of {SCOPES}",
        "stage a is listed twice",
    ]
    with pytest.raises(AttributeError):
        STAGES[0].scope = "plate"  # frozen
