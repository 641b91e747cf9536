"""Pipeline: units per scope, parameters, upstream digests, configuration and stage checks.

The notebooks are the stubs of ``tests/stubs``; nothing is executed here (see
``test_run_all.py`` for whole runs).
"""

import json
from pathlib import Path

import pytest

from i2r_pipeline import PipelineError
from i2r_pipeline.executor import marker_path, unit_key
from i2r_pipeline.pipeline import (
    DEFAULT_N_FOLDS,
    RUN_KEYS,
    Pipeline,
    check_config,
    load_config,
    load_run_config,
    plan,
    relocatable,
    select_stages,
    write_condition_manifest,
)
from i2r_pipeline.stages import STAGES, Stage, stage_named
from i2r_utils.columns import CONTROL

ROOT = Path(__file__).resolve().parents[1]
STUBS = ROOT / "tests" / "stubs"
CONFIG = {"size": "tiny", "seed": 0, "conditions": ["A", "B"], "n_folds": 2,
          "pixel_scale": 1.0, "alpha": 1.0}  # fmt: skip


def make_pipe(tmp, cfg=None, nb_dir=STUBS, all_conditions=False, metadata=True):
    paths = {"data": tmp / "data", "work": tmp / "res", "figures": tmp / "fig"}
    if metadata:
        paths["data"].mkdir(parents=True, exist_ok=True)
        rows = [f"{p},W{i},{c}" for p in ("P2", "P1") for i, c in enumerate([CONTROL, "A", "C"])]
        text = "Metadata_Plate,Metadata_Well,Metadata_Condition\n" + "\n".join(rows) + "\n"
        (paths["data"] / "metadata.csv").write_text(text)
    return Pipeline(dict(CONFIG if cfg is None else cfg), paths, nb_dir, all_conditions, repo=ROOT)


def mark(pipe, stage, sub, run):
    """A done marker of one unit, as the executor writes it."""
    path = marker_path(pipe.paths["work"] / sub, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": "k", "run": run}))


def test_units_per_scope_carry_exactly_the_declared_parameters(tmp_path):
    pipe = make_pipe(tmp_path)
    res, d = tmp_path / "res", str(tmp_path / "data")
    w = str(res)
    labels = {s.name: [u.label for u in pipe.units(s)] for s in STAGES}
    assert labels["01_preprocess_nuclei"] == ["P1", "P2"]
    assert labels["04_train_encoder"] == ["fold0", "fold1"]
    assert labels["06_translate_condition"] == ["A", "B"]
    assert labels["07_summarize_conditions"] == ["summary"]
    assert labels["00_simulate_screen"] == ["dataset"]
    units = {(u.stage, u.label): u for s in STAGES for u in pipe.units(s)}
    expect = {
        ("00_simulate_screen", "dataset"): {"data_dir": d, "size": "tiny", "seed": 0},
        ("01_preprocess_nuclei", "P2"): {
            "data_dir": d, "work_dir": w, "plate": "P2", "pixel_scale": 1.0},
        ("02_screen_conditions", "dataset"): {"work_dir": w, "n_folds": 2},
        ("04_train_encoder", "fold1"): {"work_dir": w, "fold": 1, "n_folds": 2, "seed": 0},
        ("05_build_profiles", "dataset"): {"work_dir": w, "n_folds": 2},
        ("06_translate_condition", "B"): {
            "condition": "B", "work_dir": w, "out_dir": str(res / "B"), "alpha": 1.0, "seed": 0},
        ("07_summarize_conditions", "summary"): {
            "work_dir": w, "figures_dir": str(tmp_path / "fig"), "conditions": "A,B"},
    }  # fmt: skip
    for key, params in expect.items():
        assert units[key].parameters == params, key
    exec_dirs = {k: Path(u.exec_dir).relative_to(res).as_posix() for k, u in units.items()}
    assert exec_dirs[("01_preprocess_nuclei", "P1")] == "_plates/P1"
    assert exec_dirs[("04_train_encoder", "fold0")] == "_folds/fold0"
    assert exec_dirs[("06_translate_condition", "A")] == "A"
    assert exec_dirs[("07_summarize_conditions", "summary")] == "_summary"
    unit = units[("06_translate_condition", "A")]
    assert unit.source == str(STUBS / "06_translate_condition.py") and unit.cwd == str(STUBS)
    assert Path(unit.notebook).parent == res / ".notebooks"
    assert unit.output == res / "A" / "06_translate_condition.ipynb"
    assert not list(STUBS.glob("*.ipynb"))


def test_conditions_folds_and_plates_fail_clearly(tmp_path):
    pipe = make_pipe(tmp_path, all_conditions=True)
    assert pipe.conditions() == ["A", "C"] and pipe.cfg["conditions"] == ["A", "C"]
    assert make_pipe(tmp_path, {"n_folds": DEFAULT_N_FOLDS}).n_folds() == 3
    assert make_pipe(tmp_path, {}).n_folds() == DEFAULT_N_FOLDS
    with pytest.raises(PipelineError, match="n_folds must be a positive integer, not 0"):
        make_pipe(tmp_path, {**CONFIG, "n_folds": 0}).n_folds()
    empty = make_pipe(tmp_path / "empty", metadata=False)
    with pytest.raises(PipelineError, match=r"metadata.csv is missing; run stage 00 first"):
        empty.plates()
    with pytest.raises(PipelineError, match="--all-conditions needs"):
        make_pipe(tmp_path / "empty", metadata=False, all_conditions=True).conditions()
    with pytest.raises(PipelineError, match=r"notebook .*09_nothing.py is missing"):
        pipe.source("09_nothing")
    with pytest.raises(ValueError, match="unknown scope 'well'"):
        pipe.unit_specs("well")


def test_upstream_digest_follows_the_stages_read_from(tmp_path):
    pipe = make_pipe(tmp_path)
    enc, prof = stage_named("04_train_encoder"), stage_named("05_build_profiles")
    assert pipe.upstream(stage_named("00_simulate_screen")) == ""
    before = {s.name: pipe.upstream(s) for s in STAGES if s.reads}
    assert all(len(v) == 64 for v in before.values())  # missing markers count as such
    # stage 04 now reads the fold assignment of stage 02: a new 02 run changes its digest
    mark(pipe, "02_screen_conditions", "_dataset", "r1")
    after = {s.name: pipe.upstream(s) for s in STAGES if s.reads}
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"04_train_encoder", "05_build_profiles", "06_translate_condition"}
    # a plate's marker changes the stages that read plates, not the others
    mark(pipe, "01_preprocess_nuclei", "_plates/P2", "r2")
    again = {s.name: pipe.upstream(s) for s in STAGES if s.reads}
    assert {k for k in after if after[k] != again[k]} == {
        "02_screen_conditions", "04_train_encoder", "05_build_profiles"}  # fmt: skip
    # the digest is the same as long as the markers are; stages outside `stages` are left out
    assert pipe.upstream(enc) == again["04_train_encoder"]
    only_plates = [stage_named("01_preprocess_nuclei")]
    mark(pipe, "02_screen_conditions", "_dataset", "r3")
    assert pipe.upstream(enc, only_plates) == pipe.upstream(prof, only_plates)
    assert pipe.upstream(enc) != again["04_train_encoder"]
    # every unit of a stage gets the digest of its stage
    assert {u.upstream for u in pipe.units(enc)} == {pipe.upstream(enc)}


def test_units_need_the_unit_parameter(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    src = (STUBS / "01_preprocess_nuclei.py").read_text()
    (nbs / "01_preprocess_nuclei.py").write_text(
        src.replace('plate = ""  # plate to process\n', "")
    )
    pipe = make_pipe(tmp_path, nb_dir=nbs)
    with pytest.raises(PipelineError, match="declares no `plate` parameter; add `plate = ...`"):
        pipe.units(stage_named("01_preprocess_nuclei"))


def test_check_config_accepts_declared_and_run_keys_only(tmp_path):
    assert set(RUN_KEYS) == {"size", "conditions", "n_folds"}
    check_config(make_pipe(tmp_path))  # n_folds is a run key and a parameter of 02, 04, 05
    with pytest.raises(PipelineError, match=r"configuration keys \['epohcs'\] are not"):
        check_config(make_pipe(tmp_path, {**CONFIG, "epohcs": 3}))
    odd = [Stage("03_embed_genes", "well")]
    with pytest.raises(PipelineError, match=r"unknown scopes \['well'\]"):
        check_config(make_pipe(tmp_path, {"seed": 0}), odd)
    cfg = load_config(ROOT / "config" / "default.yaml")
    assert cfg["n_folds"] == 3 and cfg["conditions"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == {}


def test_select_stages_by_number_or_name():
    assert select_stages(None) == list(STAGES)
    for empty in ("", ",", " , "):  # an empty list is a mistake, not "every stage"
        with pytest.raises(PipelineError, match="names no stage; see --list"):
            select_stages(empty)
    assert [s.name for s in select_stages("03, 00")] == ["00_simulate_screen", "03_embed_genes"]
    assert select_stages("06_translate_condition") == [stage_named("06_translate_condition")]
    with pytest.raises(PipelineError, match=r"unknown stages \['09'\]; see --list"):
        select_stages("01,09")


def test_condition_manifest(tmp_path):
    pipe = make_pipe(tmp_path)
    write_condition_manifest(pipe, "A")
    manifest = json.loads((tmp_path / "res" / "A" / "manifest.json").read_text())
    assert manifest["git"]["commit"] and manifest["parameters"]["config"] == CONFIG
    # folders relative to the results folder, inputs to the data folder: relocatable
    assert manifest["parameters"]["paths"] == {"work": ".", "data": "../data", "figures": "../fig"}
    inputs = manifest["inputs_sha256"]
    assert inputs["metadata.csv"] and inputs["screen.json"] is None
    assert str(tmp_path) not in json.dumps(manifest)
    # the machine facts the ranks depend on
    runtime = manifest["runtime"]
    assert runtime["torch_threads"] >= 1 and runtime["cpu_capability"]
    assert set(runtime["versions"]) == {"numpy", "scipy", "pandas", "scikit-learn", "torch"}


def complete(pipe, name):
    """Done markers of every unit of a stage, with the keys a run would write."""
    for unit in pipe.units(stage_named(name), generate=False):
        unit.marker.parent.mkdir(parents=True, exist_ok=True)
        unit.marker.write_text(json.dumps({"key": unit_key(unit), "run": name}))


def test_plan_says_what_would_run_and_writes_nothing(tmp_path):
    pipe = make_pipe(tmp_path)
    for name in ("00_simulate_screen", "03_embed_genes", "08_evaluate_segmentation"):
        complete(pipe, name)
    before = sorted(tmp_path.rglob("*"))
    steps = {s.name: (rows, note) for s, rows, note in plan(pipe, STAGES)}
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
    assert steps["00_simulate_screen"] == ([("dataset", "complete")], "")
    assert steps["01_preprocess_nuclei"] == ([("P1", "run"), ("P2", "run")], "")
    assert steps["02_screen_conditions"] == (
        [("dataset", "run")], "reads 01_preprocess_nuclei, which would run")  # fmt: skip
    assert steps["03_embed_genes"] == ([("dataset", "complete")], "")
    assert steps["06_translate_condition"][0] == [("A", "run"), ("B", "run")]
    assert steps["08_evaluate_segmentation"] == ([("dataset", "complete")], "")
    # a stage whose inputs would be recomputed runs even with a matching marker
    complete(pipe, "06_translate_condition")
    steps = {s.name: (rows, note) for s, rows, note in plan(pipe, STAGES)}
    assert steps["06_translate_condition"][0] == [("A", "run"), ("B", "run")]
    only = [stage_named("06_translate_condition")]
    assert plan(pipe, only)[0][1] == [("A", "complete"), ("B", "complete")]
    assert plan(pipe, only, force=True)[0][1:] == ([("A", "run"), ("B", "run")], "--force")
    assert not (tmp_path / "res" / ".notebooks").exists()
    # units that are not known before stage 00 ran
    empty = make_pipe(tmp_path / "empty", metadata=False)
    steps = {s.name: (rows, note) for s, rows, note in plan(empty, STAGES)}
    rows, note = steps["01_preprocess_nuclei"]
    assert rows == [] and note.startswith("units not known yet: ") and "metadata.csv" in note


def test_load_config_fails_clearly(tmp_path):
    path = tmp_path / "c.yaml"
    with pytest.raises(PipelineError, match="cannot read the configuration .*c.yaml"):
        load_config(path)
    path.write_text("size: [tiny\n")
    with pytest.raises(PipelineError, match=r"c.yaml is not valid YAML \(line \d+\); fix"):
        load_config(path)
    path.write_text("- size\n- tiny\n")
    with pytest.raises(PipelineError, match="must map keys to values .*not be a list"):
        load_config(path)
    path.write_text("")
    assert load_config(path) == {}


def test_hashes_ignore_where_the_folders_are_and_outputs_are_declared(tmp_path):
    pipe = make_pipe(tmp_path)
    moved = make_pipe(tmp_path)
    moved.paths = {**pipe.paths, "work": tmp_path / "elsewhere", "figures": tmp_path / "f2"}
    for stage in STAGES:
        a, b = pipe.units(stage, generate=False), moved.units(stage, generate=False)
        assert [unit_key(u) for u in a] == [unit_key(u) for u in b], stage.name
        assert [list(u.outputs) for u in a] == [list(u.outputs) for u in b]
    unit = pipe.units(stage_named("06_translate_condition"), generate=False)[1]
    assert unit.key_parameters["out_dir"] == "<results>/B"
    assert unit.key_parameters["work_dir"] == "<results>"
    assert unit.outputs["<results>/B/result.json"] == str(tmp_path / "res" / "B" / "result.json")
    assert "<results>/B/top10.png" in unit.outputs
    summary = pipe.units(stage_named("07_summarize_conditions"), generate=False)[0]
    assert "figures_dir" not in summary.key_parameters and "figures_dir" in summary.parameters
    assert summary.outputs["<figures>/fig_topk_accuracy.svg"] == str(
        tmp_path / "fig" / "fig_topk_accuracy.svg")  # fmt: skip
    # a folder outside the results and project folders keeps its absolute path in the hash
    assert relocatable({"data_dir": "/x/y", "k": 1}, {"<results>": Path("/r")}) == {
        "data_dir": "/x/y", "k": 1}  # fmt: skip
    # another data folder is another computation
    other = make_pipe(tmp_path / "other")
    other.paths["work"] = pipe.paths["work"]
    first = stage_named("00_simulate_screen")
    assert unit_key(pipe.units(first)[0]) != unit_key(other.units(first)[0])


def test_units_without_done_marker_upstream_are_named(tmp_path):
    pipe = make_pipe(tmp_path)
    summary = stage_named("07_summarize_conditions")
    assert pipe.not_done(summary) == [
        "06_translate_condition [A]", "06_translate_condition [B]"]  # fmt: skip
    mark(pipe, "06_translate_condition", "A", "r1")
    assert pipe.not_done(summary) == ["06_translate_condition [B]"]
    assert pipe.not_done(summary, [summary]) == []  # stages not run are left out


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (["../../../x"], "contains a path separator"),
        (["A", "/etc"], "contains a path separator"),
        ([".."], "starts with '.'"),
        (["_summary"], "is a folder name the run uses itself"),
        (["screen"], "is a folder name the run uses itself"),
    ],
)
def test_condition_names_that_would_write_outside_their_folder_are_refused(
    tmp_path, conditions, message
):
    pipe = make_pipe(tmp_path, {**CONFIG, "conditions": conditions})
    with pytest.raises(PipelineError, match=f"^condition .*{message}"):
        pipe.check_screen()
    with pytest.raises(PipelineError, match=message):
        pipe.units(stage_named("06_translate_condition"), generate=False)
    assert not (tmp_path / "res").exists() and not (tmp_path / "x").exists()


def test_plate_and_condition_names_of_the_screen_are_checked(tmp_path):
    pipe = make_pipe(tmp_path, all_conditions=True)
    meta = pipe.paths["data"] / "metadata.csv"
    meta.write_text(meta.read_text() + "../../up,W9,A\n")
    with pytest.raises(PipelineError, match=r"^plate of .*metadata.csv '../../up' contains a "):
        pipe.check_screen()
    meta.write_text("Metadata_Plate,Metadata_Well,Metadata_Condition\nP1,W1,../c\nP1,W2,A\n")
    with pytest.raises(PipelineError, match=r"^condition '../c' contains a path separator"):
        pipe.units(stage_named("07_summarize_conditions"), generate=False)


def test_more_folds_than_conditions_fail_before_any_stage(tmp_path):
    make_pipe(tmp_path, {**CONFIG, "n_folds": 2}).check_screen()  # conditions A and C
    with pytest.raises(PipelineError, match=r"n_folds = 3, but the screen .*metadata.csv has 2 "
                       "conditions besides EMPTY.* set n_folds to 2..2"):  # fmt: skip
        make_pipe(tmp_path, {**CONFIG, "n_folds": 3}).check_screen()
    # before the synthetic screen exists: the conditions its size will have (tiny: 10)
    make_pipe(tmp_path / "s", {**CONFIG, "n_folds": 10}, metadata=False).check_screen()
    with pytest.raises(PipelineError, match=r"synthetic screen of size 'tiny' .* has 10 "):
        make_pipe(tmp_path / "s", {**CONFIG, "n_folds": 11}, metadata=False).check_screen()


def test_a_partial_config_overlays_the_defaults_and_presets_are_unchanged(tmp_path):
    default = ROOT / "config" / "default.yaml"
    part = tmp_path / "c.yaml"
    part.write_text("n_folds: 5\nconditions: [BRAF]\n")
    cfg = load_run_config(part, default)
    assert cfg == {**load_config(default), "n_folds": 5, "conditions": ["BRAF"]}
    part.write_text("")
    assert load_run_config(part, default) == load_config(default)
    for preset in ("image2reg.yaml", "image2reg_cpu.yaml", "default.yaml"):
        path = ROOT / "config" / preset
        assert load_run_config(path, default) == load_config(path), preset
    assert load_run_config(default, tmp_path / "missing.yaml") == load_config(default)


def test_a_condition_unit_declares_its_result_and_manifest(tmp_path):
    """Declared outputs are removed before a unit reruns: a failing rerun keeps neither."""
    unit = make_pipe(tmp_path).units(stage_named("06_translate_condition"), generate=False)[0]
    for name in ("result.json", "manifest.json", "ranking.csv", "top10.csv"):
        assert unit.outputs[f"<results>/A/{name}"] == str(tmp_path / "res" / "A" / name)


def test_check_config_checks_the_given_keys_only(tmp_path):
    """The driver checks the user's own keys; those of default.yaml belong to the notebooks."""
    cfg = {**load_config(ROOT / "config" / "default.yaml"), **CONFIG}
    pipe = make_pipe(tmp_path, cfg)  # the stub notebooks declare few of the default keys
    with pytest.raises(PipelineError, match="are not parameters of any notebook"):
        check_config(pipe)
    check_config(pipe, keys=CONFIG)
    with pytest.raises(PipelineError, match=r"configuration keys \['epohcs'\]"):
        check_config(pipe, keys=["seed", "epohcs"])
