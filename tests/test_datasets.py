"""``run_all.py --dataset``: the registry (datasets) and its papermill unit (realdata)."""

import json
from argparse import Namespace
from pathlib import Path

import pytest

from i2r_pipeline import PipelineError, cli
from i2r_pipeline.datasets import DATA_ROOTS, DATASETS, Dataset, data_folder, dataset_named
from i2r_pipeline.executor import is_complete
from i2r_pipeline.notebooks import declared_parameters
from i2r_pipeline.realdata import dataset_unit, run_dataset

ROOT = Path(__file__).resolve().parents[1]
FETCHED = {"rohban_profiles"}  # `python3 run_all.py data cpg-profiles`
NOTEBOOKS = ROOT / "notebooks"


def test_registry_entries_are_runnable(shared_data):
    assert len({d.name for d in DATASETS}) == len(DATASETS)
    for ds in DATASETS:
        declared = declared_parameters(NOTEBOOKS / f"{ds.notebook}.py")
        assert set(ds.parameters) <= set(declared), ds.name
        assert {"data_dir", "work_dir", "figures_dir"} <= set(declared)
        fetched = ds.name in FETCHED  # data fetched by the user, not in ../shared/data
        assert fetched or (shared_data / ds.data).is_dir(), ds.name
        assert ds.description
    assert dataset_named("bbbc021").data == "profiles_bbbc021_wellmean"
    with pytest.raises(PipelineError, match="unknown data set 'x'"):
        dataset_named("x")


def test_data_folder_lookup(tmp_path):
    ds = dataset_named("lincs_plate")
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(PipelineError, match="data folder of lincs_plate not found.*--data-dir"):
        data_folder(ds, repo)
    (tmp_path / "shared" / "data" / ds.data).mkdir(parents=True)
    assert DATA_ROOTS[0] == "../shared/data"
    assert data_folder(ds, repo) == (tmp_path / "shared" / "data" / ds.data).resolve()
    with pytest.raises(PipelineError, match="tried .*nowhere"):
        data_folder(ds, repo, str(tmp_path / "nowhere"))


def test_unit_parameters_registry_config_and_paths(tmp_path, shared_data):
    ds = dataset_named("bbbc021")
    paths = {"data": str(shared_data / ds.data), "work": str(tmp_path / "res"), "figures": None}
    cfg = {"seed": 3, "sphering_convention": "deepprofiler", "epochs": 8}
    unit = dataset_unit(ds, ROOT, paths, NOTEBOOKS, cfg)
    p = unit.parameters
    assert p["profile_set"] == "bbbc021" and p["max_moas"] == 0 and p["seed"] == 3
    assert p["sphering_convention"] == "deepprofiler" and "epochs" not in p  # undeclared key
    assert p["work_dir"] == str(tmp_path / "res")
    assert p["figures_dir"] == str(tmp_path / "res" / "figures")
    assert unit.exec_dir == str(tmp_path / "res") and unit.label == "bbbc021"
    bad = Dataset("bad", ds.notebook, ds.data, "x", {"no_such_parameter": 1})
    with pytest.raises(PipelineError, match=r"does not declare \['no_such_parameter'\]"):
        dataset_unit(bad, ROOT, paths, NOTEBOOKS)
    missing = Dataset("gone", "99_none", ds.data, "x")
    with pytest.raises(PipelineError, match="99_none.py of data set gone is missing"):
        dataset_unit(missing, ROOT, paths, NOTEBOOKS)


def test_command_line_dry_run_and_misuse(tmp_path, shared_data, capsys):
    data = str(shared_data / "profiles_lincs_a549_plate")
    args = ["--dataset", "lincs_plate", "--data-dir", data, "--results-dir", str(tmp_path / "r")]
    assert cli.main([*args, "--dry-run"], root=ROOT) == 0
    assert "[dry-run] lincs_plate (10_real_profiles): would run" in capsys.readouterr().out
    assert not (tmp_path / "r" / "10_real_profiles.ipynb").exists()
    with pytest.raises(SystemExit, match="--dataset runs one notebook"):
        cli.main([*args, "--stages", "00"], root=ROOT)
    with pytest.raises(SystemExit):  # argparse: not a registered data set
        cli.main(["--dataset", "nope"], root=ROOT)
    partial = tmp_path / "partial.yaml"  # a partial config overlays the defaults, as for the job
    partial.write_text("seed: 3\n")
    assert cli.main([*args, "--config", str(partial), "--dry-run"], root=ROOT) == 0
    partial.write_text("seed: -1\n")
    with pytest.raises(SystemExit, match="seed = -1"):
        cli.main([*args, "--config", str(partial), "--dry-run"], root=ROOT)


@pytest.mark.smoke
def test_quick_run_writes_results_and_skips_when_complete(tmp_path, shared_data, capsys):
    quick = {"profile_set": "bbbc021", "replicate_by": "Metadata_Condition", "max_moas": 2,
             "max_features": 40, "lambda_grid": [1e-2], "n_shuffles": 1, "null_size": 100,
             "n_null": 20}  # fmt: skip
    ds = Dataset("quick", "10_real_profiles", "profiles_bbbc021_wellmean", "quick", quick)
    paths = {"data": str(shared_data / ds.data), "work": str(tmp_path / "quick")}
    unit = dataset_unit(ds, ROOT, paths, NOTEBOOKS, {"seed": 0})
    assert run_dataset(unit) == 0 and is_complete(unit)
    summary = json.loads((tmp_path / "quick" / "summary.json").read_text())
    assert summary["overview"]["mechanisms"] == 2 and summary["profile_set"] == "bbbc021"
    metrics = summary["metrics"]
    shuffled = next(v for k, v in metrics.items() if k.startswith("shuffled"))
    assert metrics["standardised to DMSO"]["nsc_accuracy"] > shuffled["nsc_accuracy"]
    for name in ("fig_real_sphering_sweep", "fig_real_strong_precision", "fig_real_moa_pca"):
        assert (tmp_path / "quick" / "figures" / f"{name}.png").is_file()
    assert (tmp_path / "quick" / "tables" / "sphering_sweep.csv").is_file()
    capsys.readouterr()
    assert run_dataset(unit) == 0
    assert "quick: complete (skipped)" in capsys.readouterr().out
    assert run_dataset(unit, dry_run=True) == 0 and "complete" in capsys.readouterr().out


def test_failing_notebook_reports_and_returns_one(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (nbs / "failing.py").write_text(
        '# %% tags=["parameters"]\ndata_dir = ""\nwork_dir = ""\nfigures_dir = ""\n\n'
        '# %%\nraise FileNotFoundError(data_dir + " has no profiles")\n'
    )
    ds = Dataset("failing", "failing", "x", "a notebook that fails")
    unit = dataset_unit(ds, ROOT, {"data": str(tmp_path), "work": str(tmp_path / "w")}, nbs)
    assert run_dataset(unit) == 1
    err = capsys.readouterr().err
    assert "FileNotFoundError" in err and "has no profiles" in err and not is_complete(unit)
    assert (tmp_path / "w" / "failing.ipynb").is_file()  # the partial notebook is kept


def test_dataset_job_applies_seed_and_validates_config(tmp_path, shared_data):
    from i2r_pipeline.realdata import dataset_job

    cfg = tmp_path / "c.yaml"
    cfg.write_text("sphering_convention: zca\n")
    data = str(shared_data / "profiles_bbbc021_wellmean")
    args = Namespace(stages=None, conditions=None, all_conditions=False, config=str(cfg),
                     seed=None, data_dir=data, results_dir=str(tmp_path / "r"), figures_dir=None,
                     notebooks_dir=str(NOTEBOOKS), dataset="bbbc021", force=False,
                     dry_run=True)  # fmt: skip
    with pytest.raises(PipelineError, match="sphering_convention = 'zca'"):
        dataset_job(args, ROOT)
