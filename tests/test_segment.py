"""Tests of i2r_pipeline.segment (``python3 run_all.py segment``)."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from segmentation_helpers import synthetic_disks, train_tiny_unet

from i2r_pipeline import cli, options
from i2r_pipeline.segment import build_parser, main
from i2r_utils.artifacts import artifact
from i2r_utils.io import write_json
from i2r_utils.metrics import map_dsb
from i2r_utils.unet import save_unet

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/conftest.py


def _images(folder):
    """An 8-bit PNG, a 16-bit TIFF and a 16-bit PNG of disks; their true labels by stem."""
    folder.mkdir(parents=True)
    truth = {}
    for k, (stem, suffix, dtype) in enumerate(
        [("a", ".png", np.uint8), ("b", ".tif", np.uint16), ("c", ".png", np.uint16)]
    ):
        image, labels = synthetic_disks(shape=(96, 96), n=4, seed=20 + k)
        image = (image // 8).astype(dtype) if dtype == np.uint8 else image.astype(dtype)
        (iio.imwrite if suffix == ".png" else tifffile.imwrite)(folder / f"{stem}{suffix}", image)
        truth[stem] = labels
    return truth


@pytest.fixture(scope="module")
def run_with_model(tmp_path_factory):
    """A results folder holding a tiny U-Net with its information file (checksum)."""
    results = tmp_path_factory.mktemp("results")
    model, _, _ = train_tiny_unet()
    path = artifact(results, "segmentation_model")
    sha = save_unet(model, path)
    write_json({"sha256": sha}, artifact(results, "segmentation_model_info"))
    return results


def test_classical_writes_one_uint16_label_tiff_per_image(tmp_path, capsys):
    truth = _images(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["--images", str(tmp_path / "in"), "--out", str(out), "--method", "classical",
                 "--quiet"]) == 0  # fmt: skip
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a.tif", "b.tif", "c.tif"]
    for stem, labels in truth.items():
        pred = tifffile.imread(out / f"{stem}.tif")
        assert pred.dtype == np.uint16 and pred.shape == labels.shape
        assert pred.max() == 4 and map_dsb(labels, pred.astype(np.int32)) > 0.8
    assert "3 label images (classical)" in capsys.readouterr().out


def test_unet_tta_uses_the_main_jobs_model_and_says_which(tmp_path, run_with_model, capsys):
    _images(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["--images", str(tmp_path / "in"), "--out", str(out), "--results-dir",
            str(run_with_model), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    model_file = artifact(run_with_model, "segmentation_model")
    assert f"the main job's model {model_file} (sha256" in printed and "checked" in printed
    assert "(unet_tta (d4))" in printed
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    # --model, and the pixel scale: a 2x image at pixel scale 2 gives labels of its shape
    big = tmp_path / "big"
    big.mkdir()
    image, _ = synthetic_disks(shape=(64, 64), n=3, seed=1)
    tifffile.imwrite(big / "x.tif", np.kron(image, np.ones((2, 2), dtype=image.dtype)))
    assert main(["--images", str(big), "--out", str(tmp_path / "o2"), "--model", str(model_file),
                 "--method", "unet", "--pixel-scale", "2", "--quiet"]) == 0  # fmt: skip
    assert tifffile.imread(tmp_path / "o2" / "x.tif").shape == (128, 128)
    assert "--model " in capsys.readouterr().out


def test_bad_inputs_end_in_one_line_and_write_nothing(tmp_path, run_with_model, capsys):
    _images(tmp_path / "in")
    images, out = str(tmp_path / "in"), str(tmp_path / "out")
    (tmp_path / "empty").mkdir()
    cases = [
        (["--images", str(tmp_path / "absent")], "image folder not found"),
        (["--images", str(tmp_path / "empty")], "the image folder is empty"),
        (["--images", images, "--pixel-scale", "0"], "--pixel-scale 0: must be a number from"),
        (["--images", images, "--method", "classical", "--model", "m.pt"], "is a U-Net"),
        (["--images", images, "--results-dir", str(tmp_path)], "no trained U-Net. Run the main"),
        (["--images", images, "--model", str(tmp_path / "in" / "b.tif")], "not a U-Net saved"),
    ]
    for extra, message in cases:
        assert main(["--out", out, "--quiet", *extra]) == 1, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("run_all.py segment")
    # the same stem twice; an unreadable image among good ones; --out equal to --images
    iio.imwrite(tmp_path / "in" / "b.png", np.zeros((8, 8), np.uint8))
    assert main(["--images", images, "--out", out, "--method", "classical"]) == 1
    assert "b.png and b.tif have the same name stem" in capsys.readouterr().err
    (tmp_path / "in" / "b.png").unlink()
    (tmp_path / "in" / "d.tif").write_bytes(b"not a tiff")
    assert main(["--images", images, "--out", out, "--method", "classical"]) == 1
    assert "d.tif: cannot be read as a image" in capsys.readouterr().err
    assert main(["--images", images, "--out", images, "--method", "classical"]) == 1
    assert "--out is the image folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pixel-scale", "nan"], "--pixel-scale nan: must be a number from 0.1 to 10"),
        (["--pixel-scale", "inf"], "--pixel-scale inf: must be a number from 0.1 to 10"),
        (["--pixel-scale", "1e6"], "--pixel-scale 1e+06: must be a number from 0.1 to 10"),
        (["--pixel-scale", "1e-9"], "--pixel-scale 1e-09: must be a number from 0.1 to 10"),
        (["--out", "{file}"], "afile is a file, not a folder"),
        (["--out", "{file}/sub"], "afile/sub lies below"),
    ],
)
def test_options_and_output_folder_are_checked_before_any_image(tmp_path, capsys, extra, message):
    afile = tmp_path / "afile"
    afile.write_text("x")
    extra = [e.format(file=afile) for e in extra]
    argv = ["--images", str(tmp_path / "no_images"), "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*argv, "--method", "classical", *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("run_all.py segment: error: ") and err.count("\n") == 1
    assert message in err and not (tmp_path / "out").exists() and afile.read_text() == "x"


def test_default_results_are_the_projects_whatever_the_current_folder(monkeypatch):
    monkeypatch.chdir("/")
    args = build_parser().parse_args(["--images", "x", "--out", "y"])
    assert Path(args.results_dir) == Path(__file__).resolve().parents[1] / "results/default_seed0"


def test_segment_is_a_run_all_command():
    assert cli.COMMANDS["segment"][0] == "i2r_pipeline.segment"
    assert options.preflight(["segment", "--help"], None) == (None, "")
