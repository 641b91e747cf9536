"""New-target mode: predict the over-expressed gene of the user's own chromatin images.

``python3 run_all.py predict --images DIR [--masks DIR] --out DIR`` (:func:`main`) runs the
trained pipeline of a completed main job on a folder of raw chromatin images, as the
Image2Reg demo does for its ``UNKNOWN`` condition:

1. pair every raw image with the equally named label mask (or segment the nuclei with the
   classical method of :mod:`i2r_utils.segmentation` when no mask folder is given) and
   validate both (:mod:`i2r_utils.io`); rescale to the screen's magnification
   (``--pixel-scale``);
2. filter the nuclei and cut 64x64 crops (:mod:`i2r_utils.nuclei`), and measure their
   hand-crafted chromatin features (:mod:`i2r_utils.features`) when the main job's
   translation uses them;
3. embed the crops with the trained encoder of one fold (:mod:`i2r_utils.encoder`),
   aggregate nucleus -> image (median) -> condition (mean) and apply the screen's sphering
   transforms (:mod:`i2r_utils.profiles`); combine the encoder and feature profiles as the
   main job's ``representation`` does (:func:`i2r_utils.profiles.translation_profiles`);
4. fit the translation kernel ridge regression on the screen's impactful conditions in
   that fold's space and rank every candidate gene (:mod:`i2r_utils.translation`);
5. print the 10 most likely over-expressed genes with their scores and write the tables.

Every input problem is an :class:`~i2r_utils.io.InputError` that names the file and the fix.
With ``--on-error skip`` a bad image is reported and skipped; with ``stop`` (the default) the
run stops at the first bad image before anything is written. Outputs are written
atomically and only at the end, so a stopped run leaves no partial output.

Each pipeline step is one small function (``_load_*``, ``_embed``, ``_sphere``,
``_fit_translation``...), the glue to the modules that own the step.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .columns import feature_columns
from .io import (
    InputError,
    missing_mask_error,
    pair_images_masks,
    read_image,
    read_mask,
    read_table,
    write_json,
    write_table,
)
from .profiles import aggregate, combine_representation, load_sphering, translation_profiles

__all__ = [
    "NewTargetResult",
    "predict_new_target",
    "process_image",
    "filter_message",
    "write_outputs",
    "format_top10",
    "build_parser",
    "main",
]


@dataclass
class NewTargetResult:
    """What :func:`predict_new_target` computed.

    Attributes
    ----------
    ranking : pandas.DataFrame
        Every candidate gene: ``rank``, ``gene``, ``score`` (higher = more likely),
        ``distance`` (image to gene: of its embedding to the predicted one; gene to image:
        of its predicted profile to the observed one; two-way: the mean of the two
        directions' ranks, given beside it with their distances).
    images : pandas.DataFrame
        One row per input image: status (``ok`` or ``skipped``), nuclei kept, filter
        counts and, for skipped images, the error.
    info : dict
        Fold, excluded condition, training conditions, counts, paths.
    profile : numpy.ndarray
        The sphered condition profile of the images.
    """

    ranking: pd.DataFrame
    images: pd.DataFrame
    info: dict = field(default_factory=dict)
    profile: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Step 1-2: images -> nuclei crops (io, segmentation, nuclei)
# --------------------------------------------------------------------------------------------


def _rescale(image: np.ndarray, labels: np.ndarray | None, pixel_scale: float):
    """Resample an image (and its labels) to the screen's magnification."""
    if pixel_scale == 1.0:
        return image, labels
    from skimage.transform import rescale

    factor = 1.0 / pixel_scale
    image = rescale(image, factor, order=1, preserve_range=True, anti_aliasing=factor < 1)
    if labels is not None:
        labels = rescale(labels, factor, order=0, preserve_range=True, anti_aliasing=False).astype(
            np.int32
        )
    return image.astype(np.float32), labels


def _segment(image: np.ndarray) -> np.ndarray:
    """Segment the nuclei of one image with the classical method."""
    from .segmentation import segment_nuclei

    return segment_nuclei(image, method="classical")


def _nucleus_filter():
    """Return the screen's nucleus filters (images are rescaled to the screen's scale)."""
    from .nuclei import NucleusFilter

    return NucleusFilter()


def _filter_and_crop(image: np.ndarray, labels: np.ndarray, filt):
    """Filter the nuclei of one image and cut their crops as the screen's were cut.

    Returns the crops, the filter counts and the labels of the kept nuclei.
    """
    from .nuclei import crop_nuclei, filter_nuclei, normalize_image

    kept, counts = filter_nuclei(labels, filt)
    crops = crop_nuclei(normalize_image(image), labels, kept["centroid"], kept["label"])
    return crops, counts, kept["label"]


def filter_message(what: str, counts, pixel_scale: float = 1.0, min_nuclei: int = 2) -> str:
    """Explain why too few nuclei survived the filters, and what to change.

    The explanation is :func:`i2r_utils.nuclei.too_few_nuclei_message` (which filter
    removed how many nuclei and which parameter to change), followed by the option of this
    command that sets the magnification.

    Parameters
    ----------
    what : str
        What ran short, naming the file or folder (e.g. ``"image a.tif"``).
    counts : dict or pandas.DataFrame
        ``n_objects``, ``n_kept`` and ``removed_<filter>`` counts of
        :func:`i2r_utils.nuclei.filter_nuclei`, of one image (dict) or per image (table).
    pixel_scale : float
        The ``--pixel-scale`` the images were read with.
    min_nuclei : int
        Fewest nuclei needed.

    Returns
    -------
    str
        The message.
    """
    from dataclasses import replace

    from .nuclei import too_few_nuclei_message

    filt = replace(_nucleus_filter(), pixel_scale=pixel_scale)
    table = pd.DataFrame([counts]) if isinstance(counts, dict) else pd.DataFrame(counts)
    table = table[[c for c in table.columns if c == "n_objects" or c.startswith("removed_")]]
    n_kept = int(pd.DataFrame([counts] if isinstance(counts, dict) else counts)["n_kept"].sum())
    msg = too_few_nuclei_message(what, table, filt, n_kept, min_nuclei)
    msg = msg.replace("fewer than 1 nuclei after filtering", "no nucleus left after filtering")
    return (
        f"{msg} In `run_all.py predict` the magnification is --pixel-scale (now "
        f"{pixel_scale:g}; images are resampled to the screen's scale before filtering)."
    )


def process_image(
    image_path,
    mask_path=None,
    masks_dir=None,
    pixel_scale: float = 1.0,
    min_nuclei: int = 1,
    filt=None,
    features: bool = False,
):
    """Read, validate, (segment,) filter, crop (and measure) the nuclei of one image.

    Parameters
    ----------
    image_path : path-like
        Raw chromatin image.
    mask_path : path-like, optional
        Its label mask; "" or None with ``masks_dir`` given means the mask is missing (an
        error); None without ``masks_dir`` means segment the nuclei.
    masks_dir : path-like, optional
        The mask folder (named in the missing-mask error).
    pixel_scale : float
        Linear pixel scale of the images relative to the screen's (0.5 for 10x images when
        the screen is 20x); images are resampled to the screen's scale.
    min_nuclei : int
        Fewest nuclei the image must keep after filtering (an image without any is bad).
    filt : NucleusFilter, optional
        Nucleus filters; the screen's defaults when None.
    features : bool
        Also measure the hand-crafted chromatin features of the kept nuclei (on the image
        at the screen's scale, as notebook 01 does).

    Returns
    -------
    crops : numpy.ndarray
        ``(n, 64, 64)`` crops of the kept nuclei.
    counts : dict
        Filter counts (``n_objects``, ``removed_<filter>``, ``n_kept``) and ``segmented``.
    feats : pandas.DataFrame
        Only with ``features``: one row of features per kept nucleus
        (:func:`i2r_utils.features.extract_features`).

    Raises
    ------
    InputError
        Missing mask, unreadable or invalid image or mask, mask of another shape, blank
        image, or fewer than ``min_nuclei`` nuclei after filtering.
    """
    if pixel_scale <= 0:
        raise InputError(f"--pixel-scale must be positive, got {pixel_scale}")
    if masks_dir is not None and not mask_path:
        raise missing_mask_error(image_path, masks_dir)
    image = read_image(image_path)
    if float(image.max()) == float(image.min()):
        raise InputError(
            f"{image_path}: image is blank (every pixel is {image.flat[0]:g}). Check that the "
            "file is the chromatin (DNA) channel, exported with its intensities."
        )
    labels = read_mask(mask_path, image.shape) if mask_path else None
    image, labels = _rescale(image, labels, pixel_scale)
    segmented = labels is None
    if segmented:
        labels = _segment(image)
    crops, counts, kept = _filter_and_crop(
        image, labels, filt if filt is not None else _nucleus_filter()
    )
    counts = {**counts, "segmented": segmented}
    if counts.get("n_kept", len(crops)) < min_nuclei:
        raise InputError(filter_message(f"image {image_path}", counts, pixel_scale, min_nuclei))
    if not features:
        return crops, counts
    from .features import extract_features

    return crops, counts, extract_features(image, labels, kept)


# --------------------------------------------------------------------------------------------
# Step 3: encoder, aggregation and sphering (encoder, profiles)
# --------------------------------------------------------------------------------------------


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputError(
            f"{path}: {what} not found. --results-dir must be the results folder of a completed "
            "main job (`python3 run_all.py`, e.g. results/default_seed0)."
        )
    return path


def _load_encoder(results_dir: Path, fold: int):
    """Load the trained encoder of one fold; return ``(model, info)``."""
    from .encoder import load_encoder

    fold_dir = results_dir / "encoders" / f"fold{fold}"
    if not fold_dir.is_dir() and (results_dir / "encoders").is_dir():
        found = sorted(p.name for p in (results_dir / "encoders").glob("fold*"))
        raise InputError(
            f"{fold_dir}: no encoder of fold {fold}; this results folder has {found}. "
            "Pass one of those with --fold."
        )
    return load_encoder(_need(fold_dir, f"encoder of fold {fold}"))


def _held_out(info: dict) -> list[str]:
    """Conditions the fold's encoder never saw."""
    return [str(c) for c in info.get("held_out", [])]


def _embed(model, crops: np.ndarray) -> np.ndarray:
    """Embed crops with a trained encoder."""
    from .encoder import embed

    return embed(model, crops)


def _aggregate(per_image: list, names: list[str]) -> pd.DataFrame:
    """Nucleus -> image (median) -> condition (mean), as the screen's profiles.

    ``per_image`` holds per image either an embedding array (columns named as in the
    screen's embedding tables) or a feature table. Returns a one-row raw profile table
    (``Metadata_Condition`` = ``"NEW_TARGET"``).
    """
    from .encoder import embedding_table

    meta = pd.DataFrame(
        {
            "Metadata_Condition": "NEW_TARGET",
            "Metadata_ImageName": np.repeat(names, [len(e) for e in per_image]),
        }
    )
    if isinstance(per_image[0], pd.DataFrame):
        table = pd.concat(per_image, ignore_index=True)
        nuclei = pd.concat([meta, table[feature_columns(table)]], axis=1)
    else:
        nuclei = embedding_table(meta, np.concatenate(per_image))
    images = aggregate(nuclei, ["Metadata_Condition", "Metadata_ImageName"], "median")
    images = images.drop(columns=["Metadata_Count", "Metadata_ImageName"])
    return aggregate(images, ["Metadata_Condition"], "mean").drop(columns="Metadata_Count")


def _sphere(profile: pd.DataFrame, results_dir: Path, name: str) -> pd.DataFrame:
    """Apply one of the screen's batch corrections (``sphering_<name>.npz``) to a raw profile.

    ``name`` is ``fold<k>`` (the encoder of fold ``k``) or ``features``. Without plate or
    control columns the transform centres on the screen's pooled control wells, the way
    :class:`i2r_utils.profiles.Sphering` handles a new target.
    """
    path = results_dir / "profiles" / f"sphering_{name}.npz"
    return load_sphering(_need(path, f"sphering transform {name}")).transform(profile)


# --------------------------------------------------------------------------------------------
# Step 4: translation (translation, genes)
# --------------------------------------------------------------------------------------------


def _fold_profiles(results_dir: Path, fold: int | None, representation: str = "cnn"):
    """Sphered condition profiles of the screen in one fold's space (all folds if None)."""
    prof = translation_profiles(results_dir / "profiles", representation)
    if fold is None:
        return prof
    prof = prof[prof["Metadata_Fold"] == fold]
    if prof.empty:
        raise InputError(
            f"{results_dir / 'profiles'}: no {representation} profiles in the space of fold "
            f"{fold}; check --fold."
        )
    return prof


def _fold_of(results_dir: Path, condition: str) -> str:
    """Return the fold that holds ``condition`` out (``profiles/fold_assignment.csv``), or "?"."""
    path = results_dir / "profiles" / "fold_assignment.csv"
    if not path.is_file():
        return "?"
    folds = read_table(path)
    hit = folds.loc[folds["Metadata_Condition"] == condition, "Metadata_Fold"]
    return str(int(hit.iloc[0])) if len(hit) else "?"


def _impactful(results_dir: Path) -> list[str]:
    path = _need(results_dir / "screen" / "impactful.csv", "impactful conditions")
    return read_table(path)["Metadata_Condition"].astype(str).tolist()


def _gene_embeddings(results_dir: Path) -> pd.DataFrame:
    path = _need(results_dir / "genes" / "gene_embeddings.parquet", "gene embeddings")
    genes = read_table(path).set_index("gene")
    genes.index = genes.index.astype(str).str.upper()
    return genes


def _translation_settings(results_dir: Path) -> dict:
    """Return the main job's translation settings (from a ``result.json``).

    Representation, direction, kernel, depth, ridge grid and metric. Results written
    before the ``representation`` and ``direction`` options translated the encoder's
    profiles (``"cnn"``) from image to gene.
    """
    settings = {
        "representation": "cnn", "direction": "image_to_gene", "kernel": "ntk", "depth": 2,
        "alphas": None, "metric": "euclidean",
    }  # fmt: skip
    for path in sorted(results_dir.glob("*/result.json")):
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        settings.update(
            {
                k: res[k]
                for k in ("representation", "direction", "kernel", "depth", "metric")
                if res.get(k) is not None
            }
        )
        if res.get("direction_requested"):  # "auto": choose again on this training set
            settings["direction"] = res["direction_requested"]
        if res.get("alpha_grid"):
            settings["alphas"] = tuple(res["alpha_grid"])
        break
    return settings


def _fit_translation(results_dir: Path, fold: int, exclude: Sequence[str], settings: dict):
    """Fit the translation on the screen's impactful conditions in one fold's space.

    Returns the fitted translator, the training conditions, the fold space's feature
    columns and the candidate gene embeddings.
    """
    from .translation import fit_translator

    genes = _gene_embeddings(results_dir)
    space = _fold_profiles(results_dir, fold, settings.get("representation", "cnn"))
    drop = {c.upper() for c in exclude}
    conditions = [c for c in _impactful(results_dir) if c.upper() not in drop]
    kwargs = {
        "kernel": settings["kernel"],
        "depth": settings["depth"],
        "direction": settings.get("direction", "image_to_gene"),
        "metric": settings.get("metric", "euclidean"),
    }
    if settings.get("alphas"):
        kwargs["alphas"] = settings["alphas"]
    translator, used = fit_translator(space, genes, conditions, **kwargs)
    return translator, used, feature_columns(space), genes


def _rank(model, profile: np.ndarray, genes: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rank candidate genes with the fitted translation (:class:`TranslationModel`).

    ``distance`` is the direction's distance, or the mean of the two directions' ranks
    (``two_way``, whose per-direction ranks and distances follow).
    """
    ranking = model.rank(np.asarray(profile, float)[None, :], genes, metric)
    d = ranking["distance"].to_numpy(float)
    # score in (0, 1]: 1 for the most likely gene, decaying with the distance relative to
    # the spread over the candidates (higher = more likely)
    ranking["score"] = np.exp(-(d - d.min()) / max(d.std(), 1e-12))
    first = ["rank", "gene", "score", "distance"]
    return ranking[first + [c for c in ranking.columns if c not in first]]


# --------------------------------------------------------------------------------------------
# The whole mode
# --------------------------------------------------------------------------------------------


def predict_new_target(
    images_dir,
    masks_dir=None,
    results_dir="results/default_seed0",
    fold: int = 0,
    exclude_condition: str | None = None,
    pixel_scale: float = 1.0,
    on_error: str = "stop",
    min_nuclei: int = 2,
    progress: bool = True,
    log=print,
) -> NewTargetResult:
    """Rank every candidate gene for a folder of chromatin images of one unknown condition.

    Parameters
    ----------
    images_dir : path-like
        Folder of raw chromatin images (.tif/.tiff 8/16-bit single page, or .png).
    masks_dir : path-like, optional
        Folder of label masks named like the images; None segments the nuclei.
    results_dir : path-like
        Results folder of a completed main job.
    fold : int
        Whose encoder, sphering and profile space to use.
    exclude_condition : str, optional
        A screen condition left out of the translation's training set (evaluation).
    pixel_scale : float
        Linear pixel scale of the images relative to the screen's (0.5 for 10x).
    on_error : {"stop", "skip"}
        What a bad image does: stop the run, or be reported and skipped.
    min_nuclei : int
        Fewest nuclei all images together must keep after filtering (an image without any
        nucleus left is a bad image).
    progress : bool
        Show a progress bar.
    log : callable
        Where progress messages go (``print``).

    Returns
    -------
    NewTargetResult
        Ranking, per-image report, run information and the condition profile.

    Raises
    ------
    InputError
        Bad input (``on_error="stop"``), no usable image, or an incomplete results folder.
    """
    if on_error not in ("stop", "skip"):
        raise InputError(f"--on-error must be 'stop' or 'skip', got {on_error!r}")
    results_dir = Path(results_dir)
    # check the results folder before the (slow) image loop
    settings = _translation_settings(results_dir)
    representation = settings["representation"]
    use_cnn, use_features = representation in ("cnn", "both"), representation != "cnn"
    for rel, what in [
        ("encoders", "encoders folder"),
        ("profiles/cnn_condition_profiles.parquet", "condition profiles"),
        ("genes/gene_embeddings.parquet", "gene embeddings"),
        ("screen/impactful.csv", "impactful conditions"),
    ] + [("profiles/sphering_features.npz", "sphering of the features")] * use_features:
        _need(results_dir / rel, what)
    pairs = pair_images_masks(images_dir, masks_dir, strict=False)
    model, enc_info = _load_encoder(results_dir, fold)
    _need(results_dir / "profiles" / f"sphering_fold{fold}.npz", f"sphering of fold {fold}")
    held_out = _held_out(enc_info)
    if exclude_condition and exclude_condition not in _impactful(results_dir):
        log(f"note: {exclude_condition} is not an impactful screen condition: nothing dropped")
    elif exclude_condition and held_out and exclude_condition not in held_out:
        log(
            f"warning: the encoder of fold {fold} was trained with {exclude_condition}; for a "
            f"leakage-free evaluation pass --fold {_fold_of(results_dir, exclude_condition)}."
        )

    per_image, per_image_feats, rows = [], [], []
    bar = tqdm(pairs.itertuples(index=False), total=len(pairs), desc="images", disable=not progress)
    for rec in bar:
        row = {"Metadata_ImageName": rec.Metadata_ImageName, "image": rec.Metadata_ImagePath}
        try:
            crops, counts, *feats = process_image(
                rec.Metadata_ImagePath,
                rec.Metadata_MaskPath or None,
                masks_dir,
                pixel_scale,
                features=use_features,
            )
        except (InputError, ValueError) as exc:  # ValueError: e.g. an image skimage rejects
            if not isinstance(exc, InputError):
                exc = InputError(f"{rec.Metadata_ImagePath}: cannot be processed ({exc})")
            if on_error == "stop":
                raise InputError(
                    f"{exc} (stopped before writing anything; rerun with --on-error skip to "
                    "skip bad images)"
                ) from None
            log(f"skipped: {exc}")
            rows.append({**row, "status": "skipped", "n_nuclei": 0, "error": str(exc)})
            continue
        per_image.append(_embed(model, crops) if use_cnn else np.empty((len(crops), 0)))
        if use_features:
            per_image_feats.append(feats[0])
        rows.append({**row, "status": "ok", "n_nuclei": len(crops), **counts, "error": ""})
    report = pd.DataFrame(rows)
    if not per_image:
        raise InputError(
            f"{images_dir}: no usable image ({len(report)} skipped, see the messages above); "
            "nothing was written."
        )
    used = report[report["status"] == "ok"]
    if used["n_nuclei"].sum() < min_nuclei:
        raise InputError(
            filter_message(f"the images in {images_dir}", used, pixel_scale, min_nuclei)
            + " Nothing was written."
        )
    used_names = report.loc[report["status"] == "ok", "Metadata_ImageName"].tolist()
    cnn_profile = (
        _sphere(_aggregate(per_image, used_names), results_dir, f"fold{fold}") if use_cnn else None
    )
    feat_profile = (
        _sphere(_aggregate(per_image_feats, used_names), results_dir, "features")
        if use_features
        else None
    )
    profile = combine_representation(cnn_profile, feat_profile, representation)
    translator, names, feats, genes = _fit_translation(
        results_dir, fold, [exclude_condition] if exclude_condition else [], settings
    )
    missing = [f for f in feats if f not in profile.columns]
    if missing:
        raise InputError(
            f"{results_dir}: the {representation} condition profiles of fold {fold} have "
            f"features this run does not produce (e.g. {missing[:3]}); the results folder is "
            "inconsistent, rerun the main job."
        )
    vector = profile[feats].to_numpy(float)[0]
    ranking = _rank(translator, vector, genes, settings["metric"])
    info = {
        "images_dir": str(images_dir),
        "masks_dir": str(masks_dir) if masks_dir is not None else None,
        "segmented": masks_dir is None,
        "results_dir": str(results_dir),
        "fold": fold,
        "encoder_held_out": held_out,
        "exclude_condition": exclude_condition,
        "pixel_scale": pixel_scale,
        "n_images": int(len(report)),
        "n_images_used": int((report["status"] == "ok").sum()),
        "n_images_skipped": int((report["status"] == "skipped").sum()),
        "n_nuclei": int(report["n_nuclei"].sum()),
        "translation": {
            **settings,
            "direction_used": translator.direction,
            "inner_direction_scores": translator.inner_scores,
            "alpha": float(translator.forward.alpha_),
        },
        "n_train_conditions": len(names),
        "train_conditions": names,
        "n_candidates": int(len(genes)),
        "top10": ranking["gene"].head(10).tolist(),
    }
    return NewTargetResult(ranking, report, info, vector)


def write_outputs(result: NewTargetResult, out_dir) -> dict[str, Path]:
    """Write the ranking, top 10, per-image report and run information atomically.

    Parameters
    ----------
    result : NewTargetResult
        Output of :func:`predict_new_target`.
    out_dir : path-like
        Output folder.

    Returns
    -------
    dict
        Name -> written path (``ranking``, ``top10``, ``images``, ``info``).
    """
    out = Path(out_dir)
    return {
        "ranking": write_table(result.ranking, out / "ranking.csv"),
        "top10": write_table(result.ranking.head(10), out / "top10.csv"),
        "images": write_table(result.images, out / "images.csv"),
        "info": write_json(result.info, out / "prediction.json"),
    }


def _direction_text(info: dict) -> str:
    """``two-way`` or, when chosen automatically, ``auto: two-way``."""
    t = info["translation"]
    used = t.get("direction_used", t["direction"]).replace("_", "-")
    return f"auto: {used}" if t["direction"] == "auto" else used


def format_top10(ranking: pd.DataFrame, k: int = 10) -> str:
    """Format the ``k`` most likely genes as a small table, most likely first.

    Parameters
    ----------
    ranking : pandas.DataFrame
        ``rank``, ``gene``, ``score``, ``distance`` (see :func:`predict_new_target`).
    k : int
        Rows shown.

    Returns
    -------
    str
        The table.
    """
    label = (
        "mean rank"
        if "rank_gene_to_image" in ranking and "rank_image_to_gene" in ranking
        else "distance"
    )
    lines = [f"{'rank':>4}  {'gene':<12} {'score':>7} {label:>9}"]
    for r in ranking.head(k).itertuples(index=False):
        dist = f"{r.distance:>9.1f}" if label == "mean rank" else f"{r.distance:>9.3f}"
        lines.append(f"{r.rank:>4}  {r.gene:<12} {r.score:>7.3f} {dist}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python3 run_all.py predict``.

    Returns
    -------
    argparse.ArgumentParser
        The parser.
    """
    p = argparse.ArgumentParser(
        prog="run_all.py predict",
        description=(
            "Predict the over-expressed gene of your own chromatin images with the trained "
            "pipeline of a completed main job; prints the 10 most likely genes."
        ),
    )
    p.add_argument("--images", required=True, help="folder of raw chromatin images (tif/png)")
    p.add_argument(
        "--masks", help="folder of label masks named like the images (default: segment nuclei)"
    )
    p.add_argument(
        "--results-dir", default="results/default_seed0", help="results of a completed main job"
    )
    p.add_argument("--out", required=True, help="output folder (ranking.csv, top10.csv, ...)")
    p.add_argument(
        "--pixel-scale",
        type=float,
        default=1.0,
        help="linear pixel scale relative to the screen's 20x images (0.5 for 10x, 2 for 40x)",
    )
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a bad image stops the run before writing (stop) or is reported and skipped",
    )
    p.add_argument(
        "--fold", type=int, default=0, help="fold whose encoder and profile space to use"
    )
    p.add_argument(
        "--exclude-condition", help="screen condition left out of the translation's training set"
    )
    p.add_argument("--min-nuclei", type=int, default=2, help="fewest nuclei in all images together")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python3 run_all.py predict ...``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after ``predict``; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success; 1 after an input error (printed with the file and the fix).
    """
    args = build_parser().parse_args(argv)
    try:
        result = predict_new_target(
            args.images,
            args.masks,
            args.results_dir,
            fold=args.fold,
            exclude_condition=args.exclude_condition,
            pixel_scale=args.pixel_scale,
            on_error=args.on_error,
            min_nuclei=args.min_nuclei,
            progress=not args.quiet,
        )
    except InputError as exc:
        print(f"run_all.py predict: error: {exc}", file=sys.stderr)
        return 1
    paths = write_outputs(result, args.out)
    info = result.info
    print(
        f"{info['n_images_used']} images ({info['n_images_skipped']} skipped), "
        f"{info['n_nuclei']} nuclei; fold {info['fold']} encoder; translation "
        f"({info['translation']['representation']} profiles, {_direction_text(info)}) trained on "
        f"{info['n_train_conditions']} conditions; {info['n_candidates']} candidate genes."
    )
    print("The 10 most likely over-expressed genes:")
    print(format_top10(result.ranking))
    print(f"Full ranking: {paths['ranking']}; per-image report: {paths['images']}")
    return 0
