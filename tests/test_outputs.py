"""Declared outputs: removal before a run, checksums, presence, same data."""

from i2r_pipeline.outputs import output_digests, outputs_present, remove_outputs, same_data


def test_remove_digest_presence_and_same_data(tmp_path):
    table, fig = tmp_path / "t.csv", tmp_path / "f.png"
    outputs = {"<results>/t.csv": str(table), "<figures>/f.png": str(fig)}
    assert remove_outputs(outputs) == [] and output_digests(outputs) == {}
    table.write_text("a\n1\n")
    fig.write_bytes(b"png")
    digests = output_digests(outputs)
    assert sorted(digests) == ["<figures>/f.png", "<results>/t.csv"]
    assert all(len(v) == 64 for v in digests.values())
    assert outputs_present(digests, outputs) and outputs_present(None, outputs)
    # ids no longer declared are not checked; a recorded file that is gone is
    assert outputs_present({"<results>/old.csv": "x"}, outputs)
    fig.unlink()
    assert not outputs_present(digests, outputs)
    # same data: figures left out; other checksums, other files or no data are not the same
    after = output_digests(outputs)
    assert same_data(digests, after) and not same_data(None, after)
    table.write_text("a\n2\n")
    assert not same_data(digests, output_digests(outputs))
    assert not same_data({}, {}) and not same_data({"<figures>/f.png": "1"}, {})
    assert remove_outputs(outputs) == ["<results>/t.csv"] and not table.exists()
