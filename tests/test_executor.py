"""Executors: done markers, contained failures, a real Dask LocalCluster of two processes.

The units run the stub notebooks of ``tests/stubs`` (stdlib only, about a second each).
"""

import json
import os
from pathlib import Path

import pytest

from i2r_pipeline.executor import (
    QUIET_KERNEL,
    DaskExecutor,
    LocalExecutor,
    Unit,
    batch_cluster,
    failure_report,
    is_complete,
    make_executor,
    run_unit,
)
from i2r_pipeline.notebooks import to_ipynb
from i2r_utils.columns import CONTROL

STUBS = Path(__file__).parent / "stubs"


def ipynb(name, dest):
    """The stub notebook ``name`` as .ipynb with a kernelspec (papermill needs one)."""
    return str(to_ipynb(STUBS / f"{name}.py", Path(dest)))


def make_unit(tmp, name, label, sub, **params):
    return Unit(
        stage=name, label=label, notebook=ipynb(name, tmp / ".nb"),
        source=str(STUBS / f"{name}.py"), parameters=params, exec_dir=str(tmp / sub),
        cwd=str(STUBS),
    )  # fmt: skip


def screen(work):
    """The inputs of stub stages 01 and 06: metadata, merged nuclei, genes."""
    (work / "data").mkdir(parents=True)
    rows = [f"{p},W{i},{c}" for p in ("P1", "P2") for i, c in enumerate([CONTROL, "A", "B", "C"])]
    text = "Metadata_Plate,Metadata_Well,Metadata_Condition\n" + "\n".join(rows) + "\n"
    (work / "data" / "metadata.csv").write_text(text)
    (work / "nuclei").mkdir()
    nuclei = [f"{p},{c},1.0" for p in ("P1", "P2") for c in (CONTROL, "A", "B", "C")]
    (work / "nuclei" / "nuclei.csv").write_text("\n".join(nuclei) + "\n")
    (work / "genes").mkdir()
    (work / "genes" / "genes.json").write_text(json.dumps({"genes": ["A", "B", "C"]}))


def stage_units(work):
    """Units of a plate stage (P1, P2) and a condition stage with one bogus condition."""
    plates = [
        make_unit(work, "01_preprocess_nuclei", p, f"_plates/{p}", data_dir=str(work / "data"),
                  work_dir=str(work), plate=p, pixel_scale=1.0)
        for p in ("P1", "P2")
    ]  # fmt: skip
    conds = [
        make_unit(work, "06_translate_condition", c, c, condition=c, work_dir=str(work),
                  out_dir=str(work / c), alpha=1.0, seed=0)
        for c in ("A", "B", "BOGUS", "C")
    ]  # fmt: skip
    return plates, conds


def outputs(work):
    """Result files of the stub stages 01 and 06, by relative path."""
    files = [*(work / "nuclei" / "plates").glob("*.csv"), *work.glob("*/result.json")]
    return {str(p.relative_to(work)): p.read_text() for p in sorted(files)}


def test_run_unit_marker_skip_force_and_failure(tmp_path):
    unit = make_unit(tmp_path, "03_embed_genes", "dataset", "_dataset", work_dir=str(tmp_path))
    first = run_unit(unit)
    assert first.status == "ran" and first.ok and first.seconds > 0
    assert json.loads(unit.marker.read_text())["key"] and is_complete(unit)
    assert unit.output.is_file() and (tmp_path / "genes" / "genes.json").is_file()
    assert run_unit(unit).describe() == "complete (skipped)"
    assert run_unit(unit, force=True).status == "ran"
    changed = Unit(**{**unit.__dict__, "parameters": {"work_dir": str(tmp_path), "seed": 1}})
    assert not is_complete(changed) and run_unit(changed).status == "ran"
    # a failing notebook: reported with its message, partial notebook kept, no marker
    bad = make_unit(tmp_path, "06_translate_condition", "X", "X", work_dir=str(tmp_path / "none"),
                    out_dir=str(tmp_path / "X"), condition="X")  # fmt: skip
    res = LocalExecutor().run([bad])[0]
    assert res.status == "failed" and res.error.startswith("FileNotFoundError")
    assert bad.output.is_file() and not bad.marker.exists()
    report = failure_report([first, res])
    assert "1 unit(s) failed" in report and "[X]" in report and str(bad.output) in report
    assert failure_report([first]) == ""


def test_dask_local_cluster_matches_local_and_contains_failures(tmp_path):
    local, dist = tmp_path / "local", tmp_path / "dask"
    for work in (local, dist):
        screen(work)
    with LocalExecutor() as ex:
        plates_l, conds_l = stage_units(local)
        res_l = ex.run(plates_l) + ex.run(conds_l)
    with make_executor("dask", workers=2) as ex:
        assert isinstance(ex, DaskExecutor) and ex.n_workers() == 2
        assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
        plates_d, conds_d = stage_units(dist)
        res_d = ex.run(plates_d, desc="plates") + ex.run(conds_d, desc="conditions")
        # results in unit order; the bogus condition fails, the others finish
        assert [r.unit.label for r in res_d] == ["P1", "P2", "A", "B", "BOGUS", "C"]
        assert (
            [r.status for r in res_d]
            == [r.status for r in res_l]
            == ["ran"] * 4
            + [
                "failed",
                "ran",
            ]
        )
        bogus = res_d[4]
        assert bogus.error == "ValueError: held-out condition 'BOGUS' is not in the screen"
        assert bogus.unit.output.is_file() and not bogus.unit.marker.exists()
        assert "BOGUS" in failure_report(res_d) and str(bogus.unit.output) in failure_report(res_d)
        # identical outputs; the units ran in two worker processes, not in this one
        assert outputs(dist) == outputs(local) and len(outputs(local)) == 5
        pids = {p.read_text() for p in (dist / "pids").iterdir()}
        assert len(pids) == 2 and str(os.getpid()) not in pids
        # rerun: only what is missing runs (B's result lost, BOGUS still failing)
        conds_d[1].marker.unlink()
        again = ex.run(conds_d)
        assert [r.status for r in again] == ["skipped", "ran", "failed", "skipped"]
        # a second client on the running scheduler (--scheduler-address)
        with make_executor("dask", scheduler_address=ex.client.scheduler.address) as other:
            assert "starts when a unit has to run" in other.describe()
            assert other.run(conds_d[:1])[0].status == "skipped"  # complete: never sent
            assert other.run(conds_d[:1], force=True)[0].status == "ran"
            assert "(2 workers)" in other.describe() and other.cluster is None
        assert ex.n_workers() == 2  # closing the second client left the cluster alone


def test_make_executor_rejects_unknown_names():
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor 'ray'"):
        make_executor("ray")
    with pytest.raises(ValueError, match="unknown Dask cluster 'k8s'"):
        make_executor("dask", cluster="k8s")


def test_batch_cluster_job_script_runs_one_notebook_per_worker():
    import dask

    conf = {"jobqueue.slurm.cores": 4, "jobqueue.slurm.memory": "16GB",
            "jobqueue.slurm.queue": "cpu", "jobqueue.slurm.walltime": "02:00:00",
            "jobqueue.slurm.job-script-prologue": ["export OMP_NUM_THREADS=4"]}  # fmt: skip
    with dask.config.set(conf):
        with batch_cluster("slurm") as cluster:
            script = cluster.job_script()
        ex = make_executor("dask", cluster="slurm", workers=3)  # nothing submitted yet
    assert "#SBATCH -p cpu" in script and "#SBATCH -t 02:00:00" in script
    assert "--resources notebook=1" in script and "export OMP_NUM_THREADS=4" in script
    assert ex.resources == {"notebook": 1} and "starts when a unit" in ex.describe()
    with pytest.raises(ValueError, match="unknown batch system"):
        batch_cluster("lsf")


def test_quiet_kernel_and_no_progress_bar_in_logs(tmp_path, capfd):
    unit = make_unit(tmp_path, "03_embed_genes", "dataset", "_dataset", work_dir=str(tmp_path))
    other = make_unit(tmp_path, "03_embed_genes", "again", "_again", work_dir=str(tmp_path))
    results = LocalExecutor().run([unit, other], desc="03_embed_genes")
    assert [r.status for r in results] == ["ran", "ran"]
    out, err = capfd.readouterr()  # the kernels' output too: they write to these descriptors
    assert "IPKernelApp" not in err and "without encryption" not in err
    assert "\r" not in out + err and "03_embed_genes:" not in err  # no bar when not a tty
    assert "[03_embed_genes] again: ran in" in out
    assert QUIET_KERNEL == ("--IPKernelApp.log_level=CRITICAL",)
