"""The new-target mode: every input error of the troubleshooting table, and end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from i2r_utils.io import InputError
from i2r_utils.newtarget import process_image


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


@pytest.fixture
def folders(tiny_screen, tmp_path):
    """Images and masks of 3 BRAF fields, flat folders, equally named."""
    images, masks = tmp_path / "raw", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for img, msk, name in _condition_images(tiny_screen, "BRAF", 3):
        shutil.copy(img, images / f"{name}.tif")
        shutil.copy(msk, masks / f"{name}.tif")
    return images, masks


def test_process_image_with_and_without_mask(folders):
    images, masks = folders
    img = sorted(images.iterdir())[0]
    crops, counts = process_image(img, masks / img.name, masks)
    assert crops.shape[1:] == (64, 64) and len(crops) == counts["n_kept"] >= 1
    assert not counts["segmented"]
    seg, seg_counts = process_image(img)
    assert seg_counts["segmented"] and abs(len(seg) - len(crops)) <= 2


def test_process_image_errors_name_file_and_fix(folders, tmp_path):
    images, masks = folders
    img = sorted(images.iterdir())[0]
    shape = tifffile.imread(img).shape
    with pytest.raises(InputError, match=rf"{img.name}: no mask with the same file name"):
        process_image(img, "", masks)
    cases = {
        "other_shape.tif": (np.zeros((shape[0] // 2, shape[1]), np.uint16), "differs"),
        "float.tif": (np.full(shape, 0.5, np.float32), "non-integer"),
        "rgb.tif": (np.zeros((*shape, 3), np.uint8), "multi-channel"),
    }
    for name, (arr, message) in cases.items():
        tifffile.imwrite(tmp_path / name, arr)
        with pytest.raises(InputError, match=rf"{name}.*{message}"):
            process_image(img, tmp_path / name, masks)
    pages = tmp_path / "pages.tif"
    tifffile.imwrite(pages, tifffile.imread(img))
    tifffile.imwrite(pages, tifffile.imread(img), append=True)
    with pytest.raises(InputError, match=r"pages\.tif: multi-page TIFF"):
        process_image(pages)
    tifffile.imwrite(tmp_path / "blank.tif", np.full(shape, 7, np.uint16))
    with pytest.raises(InputError, match=r"blank\.tif: image is blank"):
        process_image(tmp_path / "blank.tif")
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros(shape, np.uint16))
    with pytest.raises(InputError, match=r"no object at all"):
        process_image(img, tmp_path / "empty.tif", masks)


def test_too_few_nuclei_says_which_filter_and_parameter(folders, tmp_path):
    images, masks = folders
    img = sorted(images.iterdir())[0]
    labels = tifffile.imread(masks / img.name)
    tiny = np.zeros_like(labels)
    tiny[40:45, 40:45] = 1  # one 25-pixel object: the area filter removes it
    tifffile.imwrite(tmp_path / "tiny.tif", tiny)
    with pytest.raises(InputError, match="no nucleus left after filtering") as err:
        process_image(img, tmp_path / "tiny.tif", masks)
    text = str(err.value)
    assert img.name in text and "'area'" in text and "--pixel-scale" in text


def test_pixel_scale_makes_filters_follow_magnification(folders, tmp_path):
    """A 10x version of a 20x field fails the area filter unless --pixel-scale 0.5."""
    from skimage.transform import rescale

    images, masks = folders
    img = sorted(images.iterdir())[0]
    image = tifffile.imread(img).astype(np.float32)
    labels = tifffile.imread(masks / img.name)
    small = rescale(image, 0.5, order=1, preserve_range=True, anti_aliasing=True)
    small_labels = rescale(labels, 0.5, order=0, preserve_range=True, anti_aliasing=False)
    tifffile.imwrite(tmp_path / "10x.tif", small.astype(np.uint16))
    tifffile.imwrite(tmp_path / "10x_mask.tif", small_labels.astype(np.uint16))
    with pytest.raises(InputError, match="--pixel-scale"):
        process_image(tmp_path / "10x.tif", tmp_path / "10x_mask.tif", tmp_path)
    crops, counts = process_image(
        tmp_path / "10x.tif", tmp_path / "10x_mask.tif", tmp_path, pixel_scale=0.5
    )
    reference, _ = process_image(img, masks / img.name, masks)
    assert abs(len(crops) - len(reference)) <= 1


# --------------------------------------------------------------------------------------------
# A tiny trained results folder, built with the package's public functions
# --------------------------------------------------------------------------------------------

N_FOLDS = 2


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
        for obj in objects["Metadata_ObjectNumber"]:
            rows.append(
                {
                    "Metadata_Plate": rec.Metadata_Plate,
                    "Metadata_Well": rec.Metadata_Well,
                    "Metadata_Site": rec.Metadata_Site,
                    "Metadata_Condition": rec.Metadata_Condition,
                    "Metadata_ObjectNumber": obj,
                }
            )
    nuclei = pd.DataFrame(rows)
    features = pd.concat([nuclei, pd.concat(feats, ignore_index=True)], axis=1)
    return np.concatenate(crops), nuclei, features


def _build_profiles(
    results: Path, tables: dict[int, pd.DataFrame], assignment: pd.DataFrame, features
):
    """Fold-space and feature condition profiles and sphering transforms (as notebook 05)."""
    from i2r_utils.io import write_table
    from i2r_utils.profiles import build_profiles

    feat_ps = build_profiles(features)
    feat_ps.sphering.save(results / "profiles" / "sphering_features.npz")
    write_table(
        feat_ps.conditions_after, results / "profiles" / "features_condition_profiles.parquet"
    )

    rows = []
    for fold, table in tables.items():  # as notebooks/05_build_profiles
        ps = build_profiles(table)
        ps.sphering.save(results / "profiles" / f"sphering_fold{fold}.npz")
        cond = ps.conditions_after.copy()
        cond.insert(0, "Metadata_Fold", fold)
        rows.append(cond)
    write_table(
        pd.concat(rows, ignore_index=True), results / "profiles" / "cnn_condition_profiles.parquet"
    )
    write_table(
        assignment[["Metadata_Condition", "Metadata_Fold"]],
        results / "profiles" / "fold_assignment.csv",
    )


@pytest.fixture(scope="module")
def trained_results(tmp_path_factory, tiny_screen):
    """``results/<data>/`` of a tiny main job: screen, genes, fold encoders, profiles."""
    import torch

    from i2r_utils.encoder import (
        EncoderParams,
        embed,
        embedding_table,
        fold_assignment,
        load_or_train_fold,
    )
    from i2r_utils.io import write_table

    torch.set_num_threads(1)
    screen = tiny_screen
    results = tmp_path_factory.mktemp("nt_results")
    for sub in ("screen", "genes", "profiles", "encoders"):
        (results / sub).mkdir()
    truth = pd.read_csv(screen / "truth" / "conditions.csv")
    impactful = truth.loc[truth.has_phenotype, "Metadata_Condition"].tolist()
    write_table(
        pd.DataFrame({"Metadata_Condition": impactful}), results / "screen" / "impactful.csv"
    )
    genes = pd.read_csv(screen / "truth" / "genes.csv")["gene"].str.upper()
    emb = np.random.default_rng(0).normal(size=(len(genes), 8))
    gene_table = pd.DataFrame(emb, columns=[f"e{i}" for i in range(8)])
    gene_table.insert(0, "gene", genes.to_numpy())
    write_table(gene_table, results / "genes" / "gene_embeddings.parquet")

    crops, nuclei, features = _screen_crops(screen)
    conditions = sorted(set(nuclei.Metadata_Condition) - {"EMPTY"})
    assignment = fold_assignment(conditions, N_FOLDS, 0, impactful)
    params = EncoderParams(
        arch="small", epochs=2, samples_per_class=16, batch_size=64, width=8, embedding_dim=16
    )
    tables = {}
    for fold in range(N_FOLDS):
        held = assignment.loc[assignment.Metadata_Fold == fold, "Metadata_Condition"].tolist()
        model, _ = load_or_train_fold(
            crops,
            nuclei,
            impactful,
            held,
            results / "encoders" / f"fold{fold}",
            "test",
            params,
            device="cpu",
            progress=False,
        )
        tables[fold] = embedding_table(nuclei, embed(model, crops, device="cpu"))
    _build_profiles(results, tables, assignment, features)
    return {"screen": screen, "results": results, "assignment": assignment, "impactful": impactful}


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


def test_new_target_end_to_end(trained_results, tmp_path, capsys):
    from i2r_utils.newtarget import main, predict_new_target

    screen, results = trained_results["screen"], trained_results["results"]
    cond = "BRAF"
    fold = _fold_of(trained_results, cond)
    raw, masks = _user_folders(screen, cond, tmp_path / "user")
    out = tmp_path / "out"
    argv = [
        "--images",
        str(raw),
        "--masks",
        str(masks),
        "--results-dir",
        str(results),
        "--out",
        str(out),
        "--fold",
        str(fold),
        "--exclude-condition",
        cond,
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "The 10 most likely over-expressed genes" in printed
    ranking = pd.read_csv(out / "ranking.csv")
    top10 = pd.read_csv(out / "top10.csv")
    n_genes = len(pd.read_parquet(results / "genes" / "gene_embeddings.parquet"))
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
    # the new-target profile of a screen condition is that condition's screen profile
    res = predict_new_target(
        raw, masks, results, fold=fold, exclude_condition=cond, progress=False, log=lambda m: None
    )
    prof = pd.read_parquet(results / "profiles" / "cnn_condition_profiles.parquet")
    row = prof[(prof.Metadata_Fold == fold) & (prof.Metadata_Condition == cond)]
    screen_profile = row[[c for c in row.columns if c.startswith("cnn_")]].to_numpy(float)[0]
    # (one well per plate and equal control wells per plate: pooled-control centring of the
    # new target equals the screen's per-plate centring averaged over plates)
    np.testing.assert_allclose(res.profile, screen_profile, atol=1e-8)
    pd.testing.assert_frame_equal(res.ranking, ranking, check_dtype=False)  # deterministic
    # a fold whose encoder saw the condition: warned, with the leakage-free fold
    other = 1 - fold
    messages = []
    predict_new_target(
        raw, masks, results, fold=other, exclude_condition=cond, progress=False, log=messages.append
    )
    assert messages == [
        f"warning: the encoder of fold {other} was trained with {cond}; for a "
        f"leakage-free evaluation pass --fold {fold}."
    ]
    assert main([*argv[:6], "--out", str(tmp_path / "x"), "--fold", "7"]) == 1
    assert "no encoder of fold 7" in capsys.readouterr().err
    # without masks: the nuclei are segmented and the prediction still runs
    assert main([*argv[:2], *argv[4:6], "--out", str(tmp_path / "seg"), "--quiet"]) == 0
    assert json.loads((tmp_path / "seg" / "prediction.json").read_text())["segmented"]


def test_new_target_follows_the_main_jobs_representation_and_direction(trained_results, tmp_path):
    """With a main job that translated both profiles two ways, so does the new target."""
    from i2r_utils.newtarget import _rank, format_top10, predict_new_target
    from i2r_utils.profiles import translation_profiles
    from i2r_utils.translation import fit_translator

    screen, cond = trained_results["screen"], "BRAF"
    results = tmp_path / "results"
    shutil.copytree(trained_results["results"], results)
    (results / cond).mkdir()
    settings = {"representation": "both", "direction": "two_way", "direction_requested": "auto",
                "kernel": "ntk", "depth": 2, "metric": "euclidean",
                "alpha_grid": [0.01, 1.0]}  # fmt: skip
    (results / cond / "result.json").write_text(json.dumps(settings))
    fold = _fold_of(trained_results, cond)
    raw, masks = _user_folders(screen, cond, tmp_path / "user")
    res = predict_new_target(
        raw, masks, results, fold=fold, exclude_condition=cond, progress=False, log=lambda m: None
    )
    assert res.info["translation"]["representation"] == "both"
    # "auto" in the main job: chosen again on this training set
    assert res.info["translation"]["direction"] == "auto"
    used_direction = res.info["translation"]["direction_used"]
    # the profile is the screen's combined profile of the condition (encoder and features)
    space = translation_profiles(results / "profiles", "both")
    space = space[space.Metadata_Fold == fold].reset_index(drop=True)
    feats = [c for c in space.columns if not c.startswith("Metadata_")]
    assert any(c.startswith("cnn__") for c in feats) and any(
        c.startswith("features__") for c in feats
    )
    screen_row = space.loc[space.Metadata_Condition == cond, feats].to_numpy(float)[0]
    np.testing.assert_allclose(res.profile, screen_row, atol=1e-8)
    # and the ranking is the two-way ranking of a translation fitted without the condition
    genes = pd.read_parquet(results / "genes" / "gene_embeddings.parquet").set_index("gene")
    train = [c for c in trained_results["impactful"] if c != cond]
    model, used = fit_translator(space, genes, train, alphas=(0.01, 1.0), direction="auto")
    assert used == res.info["train_conditions"] and model.direction == used_direction
    expect = model.rank(screen_row, genes)
    assert res.ranking["gene"].tolist() == expect["gene"].tolist()
    # the two-way table, whichever direction was chosen
    from i2r_utils.translation import TranslationModel

    two = TranslationModel("two_way", model.forward, model.reverse)
    r = _rank(two, screen_row, genes, "euclidean")
    assert {"rank_image_to_gene", "rank_gene_to_image"} <= set(r.columns)
    np.testing.assert_allclose(r["distance"], (r.rank_image_to_gene + r.rank_gene_to_image) / 2)
    assert r["distance"].is_monotonic_increasing and r["score"].is_monotonic_decreasing
    assert "mean rank" in format_top10(r)


def test_new_target_bad_image_stop_or_skip(trained_results, tmp_path, capsys):
    from i2r_utils.newtarget import main

    screen, results = trained_results["screen"], trained_results["results"]
    raw, masks = _user_folders(screen, "JUN", tmp_path / "user")
    bad = sorted(masks.iterdir())[0]
    tifffile.imwrite(bad, np.full(tifffile.imread(bad).shape, 0.5, np.float32))  # non-integer
    out = tmp_path / "out"
    argv = [
        "--images",
        str(raw),
        "--masks",
        str(masks),
        "--results-dir",
        str(results),
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert bad.name in err and "non-integer" in err and "--on-error skip" in err
    assert not out.exists()  # stopped before writing anything
    assert main([*argv, "--on-error", "skip"]) == 0
    captured = capsys.readouterr().out
    assert f"skipped: {bad}" in captured
    report = pd.read_csv(out / "images.csv")
    assert report.loc[report.status == "skipped", "image"].tolist() == [str(raw / bad.name)]
    assert (report.status == "ok").sum() == len(report) - 1


def test_new_target_folder_errors(trained_results, tmp_path, capsys):
    from i2r_utils.newtarget import main

    screen, results = trained_results["screen"], trained_results["results"]
    raw, masks = _user_folders(screen, "JUN", tmp_path / "user")
    base = ["--results-dir", str(results), "--out", str(tmp_path / "out"), "--quiet"]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--images", str(empty), "--masks", str(masks)], "the image folder is empty"),
        (["--images", str(raw), "--masks", str(empty)], "the mask folder is empty"),
        (["--images", str(raw), "--results-dir", str(tmp_path)], "completed main job"),
    ]
    sorted(masks.iterdir())[0].unlink()
    cases.append((["--images", str(raw), "--masks", str(masks)], "no mask with the same file name"))
    for args, message in cases:
        assert main([*base, *args]) == 1, args
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # a mask that removes every nucleus of every image: which filter, which parameter
    for m in masks.iterdir():
        labels = np.zeros(tifffile.imread(m).shape, np.uint16)
        labels[50:55, 50:55] = 1
        tifffile.imwrite(m, labels)
    for r in raw.iterdir():
        if not (masks / r.name).exists():
            r.unlink()
    assert main([*base, "--images", str(raw), "--masks", str(masks), "--on-error", "skip"]) == 1
    err = capsys.readouterr().err
    assert "no usable image" in err
    assert main([*base, "--images", str(raw), "--masks", str(masks)]) == 1
    err = capsys.readouterr().err
    assert "'area' filter" in err and "--pixel-scale" in err


def test_fewer_than_two_nuclei_in_all_images(trained_results, tmp_path, capsys):
    from i2r_utils.newtarget import main, process_image
    from i2r_utils.nuclei import filter_nuclei

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
    assert process_image(img, masks / img.name, masks)[1]["n_kept"] == 1
    out = tmp_path / "out"
    argv = ["--images", str(raw), "--masks", str(masks), "--results-dir", str(results)]
    assert main([*argv, "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"the images in {raw}: fewer than 2 nuclei after filtering" in err
    assert "--pixel-scale" in err and not out.exists()


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

    from i2r_utils.newtarget import predict_new_target

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
    kw = {"fold": _fold_of(trained_results, "SMAD4"), "progress": False, "log": lambda m: None}
    ref = predict_new_target(raw, masks, results, **kw)
    res = predict_new_target(png_raw, png_masks, results, **kw)
    assert res.info["n_images_used"] == ref.info["n_images_used"] == len(list(raw.iterdir()))
    assert res.info["n_nuclei"] == ref.info["n_nuclei"]
    np.testing.assert_allclose(res.profile, ref.profile, atol=0.5)
