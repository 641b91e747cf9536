"""The screen seen at a coarser resolution: a matched reference for new images.

A new target imaged with larger pixels than the screen (``pixel_scale < 1``, e.g. 2x2
binning or a 10x objective) is resampled to the screen's scale before it is cut and
measured, but resampling cannot restore the detail that was never recorded: nucleus
outlines and texture differ, and a translation trained on the screen's sharp nuclei
ranks the coarse ones badly (``benchmarks/bench_predict_invariance.py``). The remedy is to
compare like with like: record the screen's own images as that camera would have
(:func:`degrade`: block means for whole-number factors, as binning does; anti-aliased
resampling otherwise; masks by nearest neighbour), take them through exactly the steps
the new images take (:func:`degraded_nuclei`), and train the translation on the profiles
that result. The encoder is not retrained; only what it and the feature extractor are
given changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from .artifacts import artifact
from .columns import CONTROL
from .io import InputError, read_image, read_mask, read_table
from .nuclei import preprocess_image_context
from .preprocessing import stored_crops
from .progress import tqdm

__all__ = ["degrade", "screen_folder", "degraded_nuclei"]

#: Metadata of an image row of the screen's nuclei table carried to its nuclei.
IMAGE_COLUMNS = ["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Condition"]


def degrade(image: np.ndarray, labels: np.ndarray | None, pixel_scale: float):
    """Record an image (and its labels) with pixels ``1 / pixel_scale`` times larger.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image at the screen's scale.
    labels : numpy.ndarray or None
        Its label mask.
    pixel_scale : float
        Linear scale of the coarse camera relative to the screen's, in (0, 1]. When
        ``1 / pixel_scale`` is a whole number ``f``, every ``f x f`` block is averaged
        (binning; the image is cropped to a multiple of ``f``); otherwise the image is
        resampled with anti-aliasing.

    Returns
    -------
    image : numpy.ndarray
        float32 coarse image.
    labels : numpy.ndarray or None
        int32 coarse labels (nearest neighbour: the top-left pixel of each block).
    """
    if not 0 < pixel_scale <= 1:
        raise InputError(f"degrade: pixel_scale must be in (0, 1], got {pixel_scale}")
    factor = 1.0 / pixel_scale
    whole = int(round(factor))
    if abs(factor - whole) < 1e-6:
        h, w = (image.shape[0] // whole) * whole, (image.shape[1] // whole) * whole
        blocks = image[:h, :w].astype(np.float64).reshape(h // whole, whole, w // whole, whole)
        coarse = blocks.mean(axis=(1, 3)).astype(np.float32)
        lab = None if labels is None else labels[:h:whole, :w:whole].astype(np.int32)
        return coarse, lab
    from skimage.transform import rescale

    coarse = rescale(image.astype(np.float64), pixel_scale, order=1, preserve_range=True,
                     anti_aliasing=True).astype(np.float32)  # fmt: skip
    lab = None
    if labels is not None:
        lab = rescale(labels, pixel_scale, order=0, preserve_range=True, anti_aliasing=False)
        lab = lab.astype(np.int32)
    return coarse, lab


def screen_folder(results_dir: str | os.PathLike) -> Path:
    """Return the screen folder a main job read (its nuclei table's paths start there).

    Parameters
    ----------
    results_dir : path-like
        Results folder of a completed main job.

    Returns
    -------
    pathlib.Path
        The data folder recorded in the run's manifests (``parameters.paths.data``,
        relative to the results folder).

    Raises
    ------
    InputError
        No manifest records it, or the folder is gone.
    """
    work = Path(results_dir)
    for manifest in sorted(work.glob("*/manifest.json")):
        data = json.loads(manifest.read_text()).get("parameters", {}).get("paths", {}).get("data")
        if data:
            folder = (work / data).resolve()
            if folder.is_dir():
                return folder
            raise InputError(
                f"{manifest}: the screen folder {folder} is gone; pass the screen's data "
                "folder with --screen-dir (the folder holding its images and masks)."
            )
    raise InputError(
        f"{work}: no manifest records the screen's data folder; pass it with --screen-dir."
    )


def degraded_nuclei(
    results_dir: str | os.PathLike,
    screen_dir: str | os.PathLike,
    conditions,
    pixel_scale: float,
    cut: dict,
    context_window: int = 0,
    context_size: int = 224,
    features: bool = True,
    segment_params: dict | None = None,
    progress: bool = True,
) -> dict:
    """Cut and measure the screen's nuclei as a coarser camera would have given them.

    Every image of ``conditions`` and of the control is degraded (:func:`degrade`), written
    to a temporary file and taken through :func:`i2r_utils.nuclei.preprocess_image_context`
    with ``pixel_scale``, as a new target's images are.

    Parameters
    ----------
    results_dir : path-like
        Results folder of the main job (its merged nuclei table lists the images).
    screen_dir : path-like
        The screen folder the table's relative paths start from (:func:`screen_folder`).
    conditions : iterable of str
        Screen conditions to include (the control is always included: the sphering is
        fitted on its wells).
    pixel_scale : float
        The new images' scale relative to the screen's, in (0, 1).
    cut : dict
        Crop, filter and feature options of the screen (``filt``, ``size``, ``apply_mask``,
        ``crop_centre``, ``crop_scaling``, ``drop_large_crops``, ``feature_scaling``).
    context_window, context_size : int
        Field windows of a two-branch encoder (0: none).
    features : bool
        Also measure the hand-crafted features.
    segment_params : dict, optional
        ``segment_method`` and ``segment_params`` for images the screen had no mask for.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``meta`` (one row per nucleus: plate, well, site, condition, image name, object
        number and area at the screen's scale), ``crops``
        (stored precision), ``windows`` (or None), ``features`` (metadata + features, or
        None) and ``n_images``.
    """
    screen = Path(screen_dir)
    nuclei = read_table(artifact(results_dir, "nuclei"))
    keep = set(conditions) | {CONTROL}
    cols = [c for c in IMAGE_COLUMNS if c in nuclei] + ["Metadata_ImagePath", "Metadata_MaskPath"]
    images = nuclei.loc[nuclei["Metadata_Condition"].isin(keep), cols].drop_duplicates()
    seg = segment_params or {}
    metas, crops, windows, feats = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="i2r_reference_") as tmp:
        for i, rec in enumerate(tqdm(images.to_dict("records"), desc="screen at your scale",
                                     disable=not progress)):  # fmt: skip
            src = screen / rec["Metadata_ImagePath"]
            if not src.is_file():
                raise InputError(
                    f"{src}: a screen image is missing; pass the screen's data folder with "
                    "--screen-dir, or --no-match-resolution to compare with the screen as it is."
                )
            image = read_image(src)
            mask = rec.get("Metadata_MaskPath") or ""
            labels = read_mask(screen / mask, image.shape) if mask else None
            image, labels = degrade(image, labels, pixel_scale)
            img_path = Path(tmp) / f"{i}.tif"
            tifffile.imwrite(img_path, image)
            mask_path = ""
            if labels is not None:
                mask_path = Path(tmp) / f"{i}_mask.tif"
                tifffile.imwrite(mask_path, labels)
            c, objects, _, f, w = preprocess_image_context(
                img_path, mask_path, context_window, context_size, **cut, features=features,
                pixel_scale=pixel_scale, allow_blank=True,
                segment_method=seg.get("segment_method", "classical"),
                segment_params=seg.get("segment_params"),
            )  # fmt: skip
            if not len(c):
                continue
            info = {k: rec[k] for k in IMAGE_COLUMNS if k in rec}
            info["Metadata_ImageName"] = Path(rec["Metadata_ImagePath"]).as_posix()
            meta = pd.DataFrame([info] * len(c))
            meta["Metadata_ObjectNumber"] = objects["Metadata_ObjectNumber"].to_numpy()
            meta["Metadata_Area"] = objects["Metadata_Area"].to_numpy()
            metas.append(meta)
            crops.append(stored_crops(c, cut["crop_scaling"]))
            windows.append(w)
            if features:
                fcols = [x for x in f.columns if not str(x).startswith("Metadata_")]
                feats.append(pd.concat([meta, f[fcols].reset_index(drop=True)], axis=1))
    if not metas:
        raise InputError(f"{results_dir}: no screen nucleus is left at pixel scale {pixel_scale}.")
    return {
        "meta": pd.concat(metas, ignore_index=True),
        "crops": crops,
        "windows": windows,
        "features": pd.concat(feats, ignore_index=True) if features else None,
        "n_images": len(images),
    }
