"""Units: done markers (hash, run id, declared outputs), removal of stale outputs.

The units run the stub notebooks of ``tests/stubs`` (stdlib only, about a second each).
"""

import json
from pathlib import Path

import pytest
from test_executor import make_unit, screen, stage_units

from i2r_pipeline.units import (
    Unit,
    is_complete,
    made_with_other_package,
    marker_path,
    package_digest,
    read_marker,
    run_unit,
    upstream_digest,
)


def test_done_markers_are_written_and_read_here_only(tmp_path):
    unit = make_unit(tmp_path, "03_embed_genes", "dataset", "_dataset", work_dir=str(tmp_path))
    assert unit.marker == marker_path(tmp_path / "_dataset", "03_embed_genes")
    assert unit.marker.name == "03_embed_genes.done.json" and read_marker(unit.marker) == {}
    assert upstream_digest([]) == ""
    missing = upstream_digest([("03_embed_genes", "dataset", tmp_path / "_dataset")])
    assert len(missing) == 64  # a missing marker counts as such
    assert run_unit(unit).status == "ran"
    info = read_marker(unit.marker)
    assert set(info) == {"key", "run", "seconds", "host", "package", "outputs"}
    assert info["seconds"] >= 0 and info["package"] == package_digest()
    first = upstream_digest([("03_embed_genes", "dataset", tmp_path / "_dataset")])
    assert first != missing
    # a forced rerun has a new run id, so whatever reads from the unit reruns
    run_unit(unit, force=True)
    assert read_marker(unit.marker)["key"] == info["key"]
    assert read_marker(unit.marker)["run"] != info["run"]
    assert upstream_digest([("03_embed_genes", "dataset", tmp_path / "_dataset")]) != first
    # a unit with an upstream digest has another key
    later = Unit(**{**unit.__dict__, "upstream": first})
    assert not is_complete(later) and is_complete(unit)
    # unreadable markers count as missing
    unit.marker.write_text("[1, 2]")
    assert read_marker(unit.marker) == {} and not is_complete(unit)
    unit.marker.write_text("{not json")
    assert read_marker(unit.marker) == {} and not is_complete(unit)


def test_units_made_with_another_package_stay_complete_and_are_told(tmp_path):
    unit = make_unit(tmp_path, "03_embed_genes", "dataset", "_dataset", work_dir=str(tmp_path))
    assert len(package_digest()) == 12 and made_with_other_package(unit) is None  # no marker
    run_unit(unit)
    assert made_with_other_package(unit) is None
    info = read_marker(unit.marker)
    unit.marker.write_text(json.dumps({**info, "package": "0123456789ab"}))
    assert is_complete(unit) and made_with_other_package(unit) == "0123456789ab"
    line = run_unit(unit).describe()
    assert line.startswith("complete (skipped), made with another i2r_utils (package 0123456789ab")
    assert "--force" in line
    del info["package"]  # markers written before the digest was recorded
    unit.marker.write_text(json.dumps(info))
    assert is_complete(unit) and made_with_other_package(unit) is None


def test_declared_outputs_removed_before_a_run_recorded_and_redone_when_missing(tmp_path):
    screen(tmp_path)
    plates, conds = stage_units(tmp_path)
    out = tmp_path / "nuclei" / "plates" / "P1.csv"
    fig = tmp_path / "fig" / "fig_p1.png"
    ids = {"<results>/nuclei/plates/P1.csv": str(out), "<figures>/fig_p1.png": str(fig)}
    unit = Unit(**{**plates[0].__dict__, "outputs": ids})
    assert run_unit(unit).status == "ran"
    first = read_marker(unit.marker)
    # the stub writes no figure: only the table is recorded, with its checksum
    assert list(first["outputs"]) == ["<results>/nuclei/plates/P1.csv"] and is_complete(unit)
    # a deleted output makes the unit incomplete; the rerun rewrites the same data, so the
    # run id (what readers of the unit hash) is kept and they stay complete
    out.unlink()
    assert not is_complete(unit) and run_unit(unit).status == "ran" and out.is_file()
    assert read_marker(unit.marker)["run"] == first["run"] and is_complete(unit)
    # a failing rerun leaves none of the earlier run's outputs behind
    bogus = conds[2]
    stale = Path(bogus.exec_dir) / "result.json"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text('{"condition": "BOGUS", "true_rank": 1}')
    bogus = Unit(**{**bogus.__dict__, "outputs": {"<results>/BOGUS/result.json": str(stale)}})
    assert run_unit(bogus).status == "failed"
    assert not stale.exists() and not bogus.marker.exists()


def test_ctrl_c_during_a_unit_leaves_none_of_its_outputs(tmp_path, monkeypatch):
    from i2r_pipeline import units

    out = tmp_path / "half.csv"

    def half_written(*args, **kwargs):
        out.write_text("a\n")  # written before the interruption
        raise KeyboardInterrupt

    monkeypatch.setattr(units, "execute", half_written)
    unit = make_unit(tmp_path, "03_embed_genes", "dataset", "_dataset", work_dir=str(tmp_path))
    unit = Unit(**{**unit.__dict__, "outputs": {"<results>/half.csv": str(out)}})
    with pytest.raises(KeyboardInterrupt):
        run_unit(unit)
    assert not out.exists() and not unit.marker.exists()
