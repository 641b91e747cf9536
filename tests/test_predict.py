"""New-target mode: ``run_all.py predict`` (i2r_pipeline.predict) and notebook 09.

The command line runs the notebook with papermill (a few runs, each starting a kernel). The
method's assertions read the notebook's variables: :func:`run_notebook` executes its code
cells in this process with the given parameters, as papermill would in a kernel.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest
import tifffile

from i2r_pipeline.predict import NOTEBOOK, build_parser, format_top10, main, with_option_hints
from i2r_utils.artifacts import artifact
from i2r_utils.columns import feature_columns as feature_columns_of
from i2r_utils.io import InputError
from i2r_utils.preprocessing import stored_crops

N_FOLDS = 2


def run_notebook(**parameters) -> dict:
    """Execute notebook 09's code cells in-process; return its variables."""
    ns: dict = {}
    for cell in jupytext.read(NOTEBOOK).cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, str(NOTEBOOK), "exec"), ns)
        if "parameters" in cell.metadata.get("tags", []):
            ns.update({"progress": False, **parameters})
    return ns


def _condition_images(screen: Path, condition: str, n: int | None = None):
    meta = pd.read_csv(screen / "metadata.csv")
    rows = meta[meta.Metadata_Condition == condition].head(n)
    return [
        (
            screen / r.Metadata_ImagePath,
            screen / r.Metadata_MaskPath,
            f"{r.Metadata_Plate}_{r.Metadata_Well}_s{r.Metadata_Site}",
        )
        for r in rows.itertuples()
    ]


# --------------------------------------------------------------------------------------------
# A tiny trained results folder, built with the package's public functions
# --------------------------------------------------------------------------------------------


def _screen_crops(screen: Path):
    """Crops, per-nucleus metadata and features of the tiny screen (nuclei.preprocess_image)."""
    from i2r_utils.io import load_metadata
    from i2r_utils.nuclei import preprocess_image

    meta = load_metadata(screen)
    crops, rows, feats = [], [], []
    for rec in meta.itertuples(index=False):
        c, objects, _, f = preprocess_image(rec.Metadata_ImagePath, rec.Metadata_MaskPath)
        crops.append(c)
        feats.append(f.drop(columns="Metadata_ObjectNumber"))
        pairs = zip(objects["Metadata_ObjectNumber"], objects["Metadata_Area"], strict=True)
        for obj, area in pairs:
            rows.append(
                {
                    "Metadata_Plate": rec.Metadata_Plate,
                    "Metadata_Well": rec.Metadata_Well,
                    "Metadata_Site": rec.Metadata_Site,
                    "Metadata_Condition": rec.Metadata_Condition,
                    "Metadata_ImagePath": rec.Metadata_ImagePath,
                    "Metadata_MaskPath": rec.Metadata_MaskPath,
                    "Metadata_ObjectNumber": obj,
                    "Metadata_Area": area,
                }
            )
    nuclei = pd.DataFrame(rows)
    meta = nuclei.drop(columns="Metadata_Area")
    features = pd.concat([meta, pd.concat(feats, ignore_index=True)], axis=1)
    return stored_crops(np.concatenate(crops)), nuclei, features  # as the plate files hold them


def _write_nuclei(results: Path, nuclei: pd.DataFrame, crops: np.ndarray) -> None:
    """The merged nuclei table and per-plate crop files (as notebook 01)."""
    from i2r_utils.io import write_table
    from i2r_utils.nuclei import plate_outputs
    from i2r_utils.preprocessing import store_crops

    nuclei = nuclei.assign(Metadata_CropIndex=nuclei.groupby("Metadata_Plate").cumcount())
    for plate, idx in nuclei.groupby("Metadata_Plate").indices.items():
        path = plate_outputs(artifact(results, "nuclei_dir"), plate)["crops"]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, crops=store_crops(crops[idx]))
    write_table(nuclei, artifact(results, "nuclei"))


def _build_profiles(
    results: Path, tables: dict[int, pd.DataFrame], assignment: pd.DataFrame, features
):
    """Fold-space and feature condition profiles and sphering transforms (as notebook 05)."""
    from i2r_utils.io import write_table
    from i2r_utils.profiles import build_profiles

    feat_ps = build_profiles(features)
    feat_ps.sphering.save(artifact(results, "sphering_features"))
    write_table(feat_ps.conditions_after, artifact(results, "features_condition_profiles"))

    rows = []
    for fold, table in tables.items():  # as notebooks/05_build_profiles
        ps = build_profiles(table)
        ps.sphering.save(artifact(results, "sphering_fold", fold=fold))
        cond = ps.conditions_after.copy()
        cond.insert(0, "Metadata_Fold", fold)
        rows.append(cond)
    write_table(pd.concat(rows, ignore_index=True), artifact(results, "cnn_condition_profiles"))
    folds = assignment[["Metadata_Condition", "Metadata_Fold"]]
    write_table(folds, artifact(results, "folds"))


@pytest.fixture(scope="module")
def trained_results(tmp_path_factory, tiny_screen):
    """``results/<data>/`` of a tiny main job: screen, genes, fold encoders, profiles."""
    import torch

    from i2r_utils.encoder import (
        EncoderParams,
        embed,
        embedding_table,
        save_encoder,
    )
    from i2r_utils.io import write_table
    from i2r_utils.screen import fold_assignment
    from i2r_utils.training import fold_training_set, train_encoder, well_groups

    torch.set_num_threads(1)
    screen = tiny_screen
    results = tmp_path_factory.mktemp("nt_results")
    for sub in ("screen", "genes", "profiles", "encoders"):
        (results / sub).mkdir()
    truth = pd.read_csv(screen / "truth" / "conditions.csv")
    impactful = truth.loc[truth.has_phenotype, "Metadata_Condition"].tolist()
    write_table(pd.DataFrame({"Metadata_Condition": impactful}), artifact(results, "impactful"))
    genes = pd.read_csv(screen / "truth" / "genes.csv")["gene"].str.upper()
    emb = np.random.default_rng(0).normal(size=(len(genes), 8))
    gene_table = pd.DataFrame(emb, columns=[f"e{i}" for i in range(8)])
    gene_table.insert(0, "gene", genes.to_numpy())
    write_table(gene_table, artifact(results, "gene_embeddings"))

    crops, nuclei, features = _screen_crops(screen)
    _write_nuclei(results, nuclei, crops)
    nuclei = nuclei.drop(columns="Metadata_Area")
    conditions = sorted(set(nuclei.Metadata_Condition) - {"EMPTY"})
    assignment = fold_assignment(conditions, N_FOLDS, 0, impactful)
    params = EncoderParams(
        arch="small", epochs=2, samples_per_class=16, batch_size=64, width=8, embedding_dim=16
    )
    tables = {}
    for fold in range(N_FOLDS):
        held = assignment.loc[assignment.Metadata_Fold == fold, "Metadata_Condition"].tolist()
        labels = nuclei.Metadata_Condition.astype(str).to_numpy()
        keep, _ = fold_training_set(labels, impactful, held)
        model, info = train_encoder(
            crops[keep], labels[keep], well_groups(nuclei)[keep], params, "cpu", progress=False
        )
        save_encoder(artifact(results, "encoder_dir", fold=fold), model, params,
                     {**info, "held_out": held})  # fmt: skip
        tables[fold] = embedding_table(nuclei, embed(model, crops, device="cpu"))
    _build_profiles(results, tables, assignment, features)
    return {"screen": screen, "results": results, "assignment": assignment, "impactful": impactful,
            "tables": tables}  # fmt: skip


def _user_folders(screen: Path, condition: str, dest: Path, masks: bool = True):
    raw, msk = dest / "raw", dest / "masks"
    raw.mkdir(parents=True)
    msk.mkdir()
    for img, mask, name in _condition_images(screen, condition):
        shutil.copy(img, raw / f"{name}.tif")
        if masks:
            shutil.copy(mask, msk / f"{name}.tif")
    return raw, msk


def _fold_of(trained, condition):
    a = trained["assignment"]
    return int(a.loc[a.Metadata_Condition == condition, "Metadata_Fold"].iloc[0])


def _run_main(argv) -> tuple[int, str, str]:
    """``main(argv)`` with its stdout and stderr captured (usable in module fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def braf_run(trained_results, tmp_path_factory):
    """One papermill run of ``run_all.py predict`` on BRAF's images (its fold, excluded)."""
    cond = "BRAF"
    tmp = tmp_path_factory.mktemp("braf")
    raw, masks = _user_folders(trained_results["screen"], cond, tmp / "user")
    fold = _fold_of(trained_results, cond)
    argv = [
        "--images", str(raw), "--masks", str(masks),
        "--results-dir", str(trained_results["results"]), "--out", str(tmp / "out"),
        "--fold", str(fold), "--exclude-condition", cond, "--quiet",
    ]  # fmt: skip
    rc, printed, err = _run_main(argv)
    params = {"images_dir": str(raw), "masks_dir": str(masks), "out_dir": str(tmp / "nb"),
              "results_dir": str(trained_results["results"]), "fold": fold,
              "exclude_condition": cond}  # fmt: skip
    return {"rc": rc, "printed": printed, "err": err, "argv": argv, "out": tmp / "out",
            "raw": raw, "masks": masks, "fold": fold, "cond": cond, "params": params}  # fmt: skip


# --------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------


def test_new_target_end_to_end(trained_results, braf_run, capsys):
    results, out, cond, fold = (
        trained_results["results"], braf_run["out"], braf_run["cond"], braf_run["fold"]
    )  # fmt: skip
    assert braf_run["rc"] == 0, braf_run["err"]
    printed = braf_run["printed"]
    assert "The 10 most likely over-expressed genes" in printed
    ranking = pd.read_csv(out / "ranking.csv")
    top10 = pd.read_csv(out / "top10.csv")
    n_genes = len(pd.read_parquet(artifact(results, "gene_embeddings")))
    assert len(ranking) == n_genes and ranking["rank"].tolist() == list(range(1, n_genes + 1))
    assert ranking["score"].is_monotonic_decreasing and ranking["distance"].is_monotonic_increasing
    pd.testing.assert_frame_equal(top10, ranking.head(10))
    for gene in top10["gene"]:
        assert gene in printed
    info = json.loads((out / "prediction.json").read_text())
    assert cond not in info["train_conditions"] and info["n_images_skipped"] == 0
    assert cond in info["encoder_held_out"]
    report = pd.read_csv(out / "images.csv")
    assert (report["status"] == "ok").all() and report["n_nuclei"].sum() == info["n_nuclei"]
    # the executed notebook is kept beside the outputs, never in place
    assert (out / "09_predict_new_target.ipynb").is_file()
    assert not list(NOTEBOOK.parent.glob("*.ipynb"))
    # the new-target profile of a screen condition is that condition's screen profile
    ns = run_notebook(**braf_run["params"])
    prof = pd.read_parquet(artifact(results, "cnn_condition_profiles"))
    row = prof[(prof.Metadata_Fold == fold) & (prof.Metadata_Condition == cond)]
    screen_profile = row[[c for c in row.columns if c.startswith("cnn_")]].to_numpy(float)[0]
    # (one well per plate and equal control wells per plate: pooled-control centring of the
    # new target equals the screen's per-plate centring averaged over plates)
    np.testing.assert_allclose(ns["vector"], screen_profile, atol=1e-8)
    pd.testing.assert_frame_equal(ns["ranking"], ranking, check_dtype=False)  # deterministic
    assert capsys.readouterr().out == ""  # no message for a leakage-free run
    # a fold whose encoder saw the condition: warned, with the leakage-free fold
    other = 1 - fold
    run_notebook(**{**braf_run["params"], "fold": other})
    assert capsys.readouterr().out.splitlines() == [
        f"warning: the encoder of fold {other} was trained with {cond}; for a "
        f"leakage-free evaluation pass --fold {fold}."
    ]
    argv = braf_run["argv"]
    assert main([*argv[:6], "--out", str(out.parent / "x"), "--fold", "7"]) == 1
    assert "no encoder of fold 7" in capsys.readouterr().err
    # without masks: the nuclei are segmented (classical, or a U-Net with TTA) and the
    # prediction still runs
    no_masks = {**braf_run["params"], "masks_dir": "", "exclude_condition": ""}
    seg = run_notebook(**no_masks, segmentation="classical")
    assert seg["info"]["segmented"] and seg["info"]["n_nuclei"] > 0
    written = json.loads((out.parent / "nb" / "prediction.json").read_text())
    assert written["segmented"] and written["segmentation"] == "classical"
    from segmentation_helpers import train_tiny_unet

    from i2r_utils.unet import save_unet

    unet_file = out.parent / "unet" / "unet.pt"
    save_unet(train_tiny_unet()[0], unet_file)
    seg = run_notebook(**no_masks, model_path=str(unet_file), progress=False)
    assert seg["info"]["segmentation"] == "unet_tta" and str(unet_file) in capsys.readouterr().out
    assert seg["segment_params"]["tta"] == "d4" and seg["info"]["segmentation_model"]


def test_new_target_follows_the_main_jobs_representation_and_direction(
    trained_results, braf_run, tmp_path
):
    """With a main job that translated both profiles two ways, so does the new target."""
    from i2r_utils.directions import (
        GeneToImage,
        ImageToGene,
        choose_direction,
        inner_direction_scores,
        rank_candidates,
        training_set,
    )
    from i2r_utils.profiles import translation_profiles

    cond, fold = braf_run["cond"], braf_run["fold"]
    results = tmp_path / "results"
    shutil.copytree(trained_results["results"], results)
    (results / cond).mkdir()
    settings = {"representation": "both", "direction": "two_way", "direction_requested": "auto",
                "kernel": "ntk", "depth": 2, "metric": "euclidean",
                "alpha_grid": [0.01, 1.0]}  # fmt: skip
    (results / cond / "result.json").write_text(json.dumps(settings))
    params = {**braf_run["params"], "results_dir": str(results), "out_dir": str(tmp_path / "o")}
    ns = run_notebook(**params)
    info = ns["info"]
    assert info["translation"]["representation"] == "both"
    # "auto" in the main job: chosen again on this training set
    assert info["translation"]["direction"] == "auto"
    used_direction = info["translation"]["direction_used"]
    # the profile is the screen's combined profile of the condition (encoder and features)
    space = translation_profiles(results / "profiles", "both")
    space = space[space.Metadata_Fold == fold].reset_index(drop=True)
    feats = [c for c in space.columns if not c.startswith("Metadata_")]
    assert any(c.startswith("cnn__") for c in feats) and any(
        c.startswith("features__") for c in feats
    )
    screen_row = space.loc[space.Metadata_Condition == cond, feats].to_numpy(float)[0]
    np.testing.assert_allclose(ns["vector"], screen_row, atol=1e-8)
    # and the ranking is the ranking of a translation fitted without the condition
    genes = pd.read_parquet(artifact(results, "gene_embeddings")).set_index("gene")
    train = [c for c in trained_results["impactful"] if c != cond]
    ts = training_set(space, genes, None, train)
    x, y, train_genes = ts["x_train"], ts["y_train"], ts["genes"]
    forward = ImageToGene("ntk", 2, (0.01, 1.0)).fit(x, y)
    reverse = GeneToImage().fit(genes, train_genes, x)
    scores = inner_direction_scores(x, y, train_genes, genes, "ntk", 2, (0.01, 1.0))
    assert ts["conditions"] == info["train_conditions"]
    assert choose_direction(scores) == used_direction
    expect = rank_candidates(screen_row, genes, used_direction, forward, reverse)
    assert ns["ranking"]["gene"].tolist() == expect["gene"].tolist()
    # a two-way main job: the two-way table (mean of the two directions' ranks)
    settings = {**settings, "direction_requested": None}
    (results / cond / "result.json").write_text(json.dumps(settings))
    r = run_notebook(**params)["ranking"]
    two = rank_candidates(screen_row, genes, "two_way", forward, reverse)
    assert r["gene"].tolist() == two["gene"].tolist()
    assert {"rank_image_to_gene", "rank_gene_to_image"} <= set(r.columns)
    np.testing.assert_allclose(r["distance"], (r.rank_image_to_gene + r.rank_gene_to_image) / 2)
    assert r["distance"].is_monotonic_increasing and r["score"].is_monotonic_decreasing
    assert "mean rank" in format_top10(r)


# --------------------------------------------------------------------------------------------
# bad inputs: one line naming the file and the fix, exit 1, nothing written
# --------------------------------------------------------------------------------------------


def test_new_target_bad_image_stop_or_skip(trained_results, tmp_path, capsys):
    screen, results = trained_results["screen"], trained_results["results"]
    raw, masks = _user_folders(screen, "JUN", tmp_path / "user")
    bad = sorted(masks.iterdir())[0]
    tifffile.imwrite(bad, np.full(tifffile.imread(bad).shape, 0.5, np.float32))  # non-integer
    out = tmp_path / "out"
    argv = ["--images", str(raw), "--masks", str(masks), "--results-dir", str(results),
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 1  # found by the notebook: reported as one line all the same
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("run_all.py predict: error")
    assert bad.name in captured.err and "non-integer" in captured.err
    assert "--on-error skip" in captured.err
    assert not out.exists()  # stopped before writing anything
    assert main([*argv, "--on-error", "skip"]) == 0
    captured = capsys.readouterr().out
    assert f"skipped: {bad}" in captured
    report = pd.read_csv(out / "images.csv")
    assert report.loc[report.status == "skipped", "image"].tolist() == [str(raw / bad.name)]
    assert (report.status == "ok").sum() == len(report) - 1


def test_empty_image_with_valid_masks_is_refused(trained_results, tmp_path, capsys):
    """An all-zero image with one pixel set, with real masks: no confident answer, exit 1."""
    screen, results = trained_results["screen"], trained_results["results"]
    raw, masks = _user_folders(screen, "JUN", tmp_path / "user")
    for img in raw.iterdir():
        blank = np.zeros(tifffile.imread(img).shape, np.uint16)
        blank[blank.shape[0] // 2, blank.shape[1] // 2] = 1000
        tifffile.imwrite(img, blank)
    out = tmp_path / "out"
    argv = ["--images", str(raw), "--masks", str(masks), "--results-dir", str(results),
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no DNA signal" in err and "DNA (chromatin) channel" in err
    assert not out.exists()


def test_nuclei_unlike_the_screens_are_flagged(trained_results, braf_run, tmp_path):
    """The screen's own fields pass the domain check; 30x fields passed as 20x warn."""
    from skimage.transform import rescale

    info = json.loads((braf_run["out"] / "prediction.json").read_text())
    assert info["domain"]["warnings"] == [] and "warning:" not in braf_run["printed"]
    assert info["domain"]["area"]["fraction_outside"] < 0.25
    big_raw, big_masks = tmp_path / "raw", tmp_path / "masks"
    big_raw.mkdir(), big_masks.mkdir()
    for img in braf_run["raw"].iterdir():  # 1.5x the linear size: nuclei 2.25x the area
        image = rescale(tifffile.imread(img).astype(float), 1.5, preserve_range=True)
        labels = tifffile.imread(braf_run["masks"] / img.name)
        labels = rescale(labels, 1.5, order=0, preserve_range=True, anti_aliasing=False)
        tifffile.imwrite(big_raw / img.name, image.astype(np.uint16))
        tifffile.imwrite(big_masks / img.name, labels.astype(np.uint16))
    params = {**braf_run["params"], "images_dir": str(big_raw), "masks_dir": str(big_masks),
              "out_dir": str(tmp_path / "out")}  # fmt: skip
    ns = run_notebook(**params)
    warning = ns["domain"]["warnings"][0]
    assert "nucleus area" in warning and "--pixel-scale" in warning and "above" in warning


def test_coarse_images_are_ranked_against_the_screen_at_their_scale(
    trained_results, braf_run, tmp_path
):
    """2x2-binned fields with pixel_scale 0.5: the translation learns from the screen binned."""
    raw, masks = tmp_path / "raw", tmp_path / "masks"
    raw.mkdir(), masks.mkdir()
    for img in braf_run["raw"].iterdir():
        image = tifffile.imread(img).astype(float)
        h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        binned = image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        tifffile.imwrite(raw / img.name, np.round(binned).astype(np.uint16))
        tifffile.imwrite(masks / img.name, tifffile.imread(braf_run["masks"] / img.name)[::2, ::2])
    params = {**braf_run["params"], "images_dir": str(raw), "masks_dir": str(masks),
              "pixel_scale": 0.5, "screen_dir": str(trained_results["screen"])}  # fmt: skip
    on = run_notebook(**{**params, "out_dir": str(tmp_path / "on")})
    off = run_notebook(**{**params, "out_dir": str(tmp_path / "off"), "match_resolution": False})
    info = on["reference_info"]
    assert info["pixel_scale"] == 0.5 and info["n_nuclei"] > 0 and off["reference_info"] is None
    assert on["nuclei"] and not off["reference_sphering"]
    for name in on["nuclei"]:  # the new target is sphered with the binned screen's transform
        assert on["sphering"][name] is on["reference_sphering"][name]
    # the domain check compares with the screen at the same scale: no loss of detail there
    assert not any("detail" in w for w in on["domain"]["warnings"])
    assert any("detail" in w for w in off["domain"]["warnings"])
    cols = feature_columns_of(on["space"])
    assert not np.allclose(
        on["space"][cols].to_numpy(float)[:3], off["space"][cols].to_numpy(float)[:3]
    )
    written = json.loads((tmp_path / "on" / "prediction.json").read_text())
    assert written["matched_reference"]["n_images"] == info["n_images"]
    assert (
        json.loads((tmp_path / "off" / "prediction.json").read_text())["matched_reference"] is None
    )


def test_matched_reference_needs_the_screen_folder(trained_results, braf_run, tmp_path):
    """--pixel-scale below 1 checks the screen folder before any image is processed."""
    base = ["--images", str(braf_run["raw"]), "--masks", str(braf_run["masks"]),
            "--results-dir", str(trained_results["results"]), "--pixel-scale", "0.5"]  # fmt: skip
    cases = [
        ([], "no manifest records the screen's data folder; pass it with --screen-dir"),
        (["--screen-dir", str(tmp_path / "nowhere")], "not a folder; pass the screen's data"),
    ]
    for extra, message in cases:
        out = tmp_path / f"out{len(extra)}"
        rc, printed, err = _run_main([*base, *extra, "--out", str(out)])
        assert rc == 1 and message in err and not out.exists()


def test_new_target_folder_errors(trained_results, tmp_path, capsys):
    screen, results = trained_results["screen"], trained_results["results"]
    raw, masks = _user_folders(screen, "JUN", tmp_path / "user")
    base = ["--results-dir", str(results), "--out", str(tmp_path / "out"), "--quiet"]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--images", str(empty), "--masks", str(masks)], "the image folder is empty"),
        (["--images", str(raw), "--masks", str(empty)], "the mask folder is empty"),
        (["--images", str(raw), "--results-dir", str(tmp_path)], "completed main job"),
        (["--images", str(raw), "--pixel-scale", "0"], "--pixel-scale 0: must be a number"),
        (["--images", str(raw)], "no trained U-Net to segment the images"),
        (["--images", str(raw), "--model", str(tmp_path / "m.pt")], "m.pt: no trained U-Net"),
    ]
    sorted(masks.iterdir())[0].unlink()
    cases.append((["--images", str(raw), "--masks", str(masks)], "no mask with the same file name"))
    for args, message in cases:
        assert main([*base, *args]) == 1, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
    # a mask that removes every nucleus of every image: which filter, which parameter
    for m in masks.iterdir():
        labels = np.zeros(tifffile.imread(m).shape, np.uint16)
        labels[50:55, 50:55] = 1
        tifffile.imwrite(m, labels)
    for r in raw.iterdir():
        if not (masks / r.name).exists():
            r.unlink()
    params = {"images_dir": str(raw), "masks_dir": str(masks), "results_dir": str(results),
              "out_dir": str(tmp_path / "out")}  # fmt: skip
    with pytest.raises(InputError, match="no usable image"):
        run_notebook(**params, on_error="skip")
    with pytest.raises(InputError) as err:
        run_notebook(**params)
    text = str(err.value)
    first = sorted(raw.iterdir())[0]
    assert f"image {first}: no nucleus left after filtering" in text
    assert "'area' filter" in text and "--pixel-scale" in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pixel-scale", "nan"], "--pixel-scale nan: must be a number from 0.1 to 10"),
        (["--pixel-scale", "inf"], "--pixel-scale inf: must be a number from 0.1 to 10"),
        (["--pixel-scale", "1e6"], "--pixel-scale 1e+06: must be a number from 0.1 to 10"),
        (["--pixel-scale", "1e-9"], "--pixel-scale 1e-09: must be a number from 0.1 to 10"),
        (["--min-nuclei", "-5"], "--min-nuclei -5: must be at least 1"),
        (["--min-nuclei", "0"], "--min-nuclei 0: must be at least 1"),
        (["--out", "{file}"], "afile is a file, not a folder"),
        (["--out", "{file}/sub"], "afile/sub lies below"),
    ],
)
def test_options_and_output_folder_are_checked_first(tmp_path, capsys, extra, message):
    """Before the results folder, the images or a kernel: one line, exit 1, nothing written."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    extra = [e.format(file=afile) for e in extra]
    argv = ["--images", str(tmp_path / "no_images"), "--results-dir", str(tmp_path / "none"),
            "--out", str(tmp_path / "out"), "--quiet", *extra]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("run_all.py predict: error: ") and err.count("\n") == 1
    assert message in err and not (tmp_path / "out").exists() and afile.read_text() == "x"


def test_too_few_nuclei_name_the_options_a_predict_user_can_change():
    args = build_parser().parse_args(["--images", "i", "--out", "o", "--min-nuclei", "3"])
    msg = with_option_hints("the images in i: fewer than 3 nuclei after filtering (...).", args)
    assert msg.endswith(
        "Options: --pixel-scale (now 1) for another magnification, --masks DIR for label masks "
        "of your own (without it the nuclei are segmented), --min-nuclei (now 3) to accept "
        "fewer nuclei."
    )
    assert with_option_hints("a.tif: cannot be read", args) == "a.tif: cannot be read"


def test_fewer_than_two_nuclei_in_all_images(trained_results, tmp_path):
    from i2r_utils.nuclei import preprocess_image
    from i2r_utils.nucleus_filter import filter_nuclei

    screen, results = trained_results["screen"], trained_results["results"]
    raw, masks = _user_folders(screen, "JUN", tmp_path / "user")
    for extra in sorted(raw.iterdir())[1:]:
        extra.unlink()
        (masks / extra.name).unlink()
    img = next(raw.iterdir())
    labels = tifffile.imread(masks / img.name)
    kept, _ = filter_nuclei(labels)
    one = np.where(labels == kept["label"][0], 1, 0).astype(np.uint16)  # one good nucleus
    tifffile.imwrite(masks / img.name, one)
    assert preprocess_image(img, masks / img.name)[2]["n_kept"] == 1
    out = tmp_path / "out"
    params = {"images_dir": str(raw), "masks_dir": str(masks), "results_dir": str(results),
              "out_dir": str(out)}  # fmt: skip
    with pytest.raises(InputError) as err:
        run_notebook(**params)
    text = str(err.value)
    assert f"the images in {raw}: fewer than 2 nuclei after filtering: only 1 object(s)" in text
    assert "no filter removed any" in text and "border" not in text and not out.exists()
    assert "removed by filter: ." not in text
    args = build_parser().parse_args(["--images", str(raw), "--out", str(out)])
    assert "--min-nuclei (now 2) to accept fewer nuclei" in with_option_hints(text, args)


def test_benchmark_script_runs_on_tiny_results(trained_results, tmp_path, capsys):
    """benchmarks/bench_newtarget.py: every impactful condition as a new user would."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_newtarget.py"
    spec = importlib.util.spec_from_file_location("bench_newtarget", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.csv"
    argv = [
        "--results-dir",
        str(trained_results["results"]),
        "--data-dir",
        str(trained_results["screen"]),
        "--conditions",
        "BRAF,JUN",
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    table = pd.read_csv(out)
    assert table["condition"].tolist() == ["BRAF", "JUN"]
    assert table["rank"].between(1, table["n_candidates"].max()).all()
    assert "of 2 conditions have their gene in the top 10" in capsys.readouterr().out


def test_png_and_8bit_inputs(trained_results, tmp_path):
    """PNG images and masks, and 8-bit TIFF images, run like 16-bit TIFFs."""
    import imageio.v3 as iio

    screen, results = trained_results["screen"], trained_results["results"]
    raw, masks = _user_folders(screen, "SMAD4", tmp_path / "user")
    png_raw, png_masks = tmp_path / "png" / "raw", tmp_path / "png" / "masks"
    png_raw.mkdir(parents=True)
    png_masks.mkdir()
    for i, img in enumerate(sorted(raw.iterdir())):
        image = tifffile.imread(img)
        if i % 2:  # 8-bit TIFF
            tifffile.imwrite(png_raw / img.name, (image / image.max() * 255).astype(np.uint8))
            shutil.copy(masks / img.name, png_masks / img.name)
        else:  # 16-bit PNG image and mask
            iio.imwrite(png_raw / f"{img.stem}.png", image.astype(np.uint16))
            iio.imwrite(png_masks / f"{img.stem}.png", tifffile.imread(masks / img.name))
    kw = {"results_dir": str(results), "fold": _fold_of(trained_results, "SMAD4")}
    ref = run_notebook(**kw, images_dir=str(raw), masks_dir=str(masks), out_dir=str(tmp_path / "a"))
    res = run_notebook(
        **kw, images_dir=str(png_raw), masks_dir=str(png_masks), out_dir=str(tmp_path / "b")
    )
    assert res["info"]["n_images_used"] == ref["info"]["n_images_used"] == len(list(raw.iterdir()))
    assert res["info"]["n_nuclei"] == ref["info"]["n_nuclei"]
    np.testing.assert_allclose(res["vector"], ref["vector"], atol=0.5)


def run_translation_notebook(**parameters) -> dict:
    """Execute notebook 06 (the main job's held-out translation) in-process."""
    path = NOTEBOOK.parent / "06_translate_condition.py"
    ns: dict = {}
    for cell in jupytext.read(path).cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, str(path), "exec"), ns)
            if "parameters" in cell.metadata.get("tags", []):
                ns.update(parameters)
    return ns


def test_preset_like_prediction_equals_the_main_jobs_held_out_result(
    trained_results, braf_run, tmp_path
):
    """Image2Reg's translation elements and nucleus-mean embedding: 09 reproduces 06."""
    import matplotlib

    from i2r_utils.io import write_table
    from i2r_utils.profiles import nucleus_means

    matplotlib.use("Agg")
    cond, fold = braf_run["cond"], braf_run["fold"]
    results = tmp_path / "results"
    shutil.copytree(trained_results["results"], results)
    means = []
    for k, table in trained_results["tables"].items():  # as notebook 05 with nucleus_mean
        m = nucleus_means(table)
        m.insert(0, "Metadata_Fold", k)
        m.insert(1, "Metadata_ConditionEmbedding", "nucleus_mean")
        means.append(m)
    write_table(pd.concat(means, ignore_index=True), artifact(results, "cnn_condition_profiles"))
    preset = {"representation": "cnn", "direction": "image_to_gene", "kernel": "ntk",
              "depth": 1, "input_bias": True, "input_scaling": "none", "gene_norm": "l2",
              "alpha_grid": [], "alpha": 1.0, "random_baseline": False}  # fmt: skip
    held = run_translation_notebook(condition=cond, work_dir=str(results),
                                    out_dir=str(results / cond), **preset)  # fmt: skip
    assert held["condition_embedding"] == "nucleus_mean" and held["fold"] == fold
    ns = run_notebook(**{**braf_run["params"], "results_dir": str(results),
                         "out_dir": str(tmp_path / "o")})  # fmt: skip
    t = ns["info"]["translation"]
    assert (t["input_bias"], t["input_scaling"], t["gene_norm"]) == (True, "none", "l2")
    assert ns["condition_embedding"] == "nucleus_mean"
    assert ns["info"]["preprocessing"]["recorded"] is False  # a folder without the record
    # the profile is the condition's nucleus mean (no sphering) and the ranking is 06's
    row = held["space"].loc[held["space"].Metadata_Condition == cond]
    np.testing.assert_allclose(ns["vector"], row[ns["columns"]].to_numpy(float)[0], atol=1e-5)
    assert ns["info"]["train_conditions"] == held["ts"]["conditions"]
    assert ns["ranking"]["gene"].tolist() == held["ranking"]["gene"].tolist()
    np.testing.assert_allclose(ns["ranking"]["distance"], held["ranking"]["distance"], atol=1e-6)
    # the settings matter: without the input bias the ranking's distances differ
    result = json.loads((results / cond / "result.json").read_text())
    (results / cond / "result.json").write_text(json.dumps({**result, "input_bias": False}))
    other = run_notebook(**{**braf_run["params"], "results_dir": str(results),
                            "out_dir": str(tmp_path / "p")})  # fmt: skip
    assert not np.allclose(other["ranking"]["distance"], ns["ranking"]["distance"])
