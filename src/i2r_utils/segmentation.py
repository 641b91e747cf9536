"""Nucleus segmentation: one entry point over the methods, and their evaluation.

:func:`segment_nuclei` turns a 2-D fluorescence image into an int32 label image
(0 = background, 1..n = nuclei) with one of the methods:

* ``method="classical"``: :func:`i2r_utils.classical.segment_classical` (Otsu threshold and
  distance-transform watershed; also importable from here).
* ``method="unet"``: a trained :class:`i2r_utils.unet.UNet`; instances from its
  probabilities by :func:`i2r_utils.unet.probabilities_to_labels`.
* ``tta``: test-time augmentation over the dihedral group D4 (:mod:`i2r_utils.tta`). For the
  U-Net the de-augmented probability maps are averaged; for the classical method the
  de-augmented label images are merged by instance voting
  (:func:`i2r_utils.tta.merge_instances_tta`).

Evaluation on annotated images: :func:`load_annotated_nuclei` (real annotated tiles, or the
synthetic screen as a fallback), :func:`evaluate_segmentation` (scores of
:func:`i2r_utils.metrics.segmentation_scores` per image and method) and :func:`tta_deltas`
(per-image change of a score with TTA).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.segmentation import relabel_sequential
from tqdm.auto import tqdm

from i2r_utils.classical import segment_classical, validate_image
from i2r_utils.metrics import segmentation_scores
from i2r_utils.tta import apply_transform, invert_transform, merge_instances_tta, resolve_tta
from i2r_utils.unet import UNet, predict_unet, probabilities_to_labels

__all__ = [
    "annotated_tiles",
    "evaluate_segmentation",
    "load_annotated_nuclei",
    "segment_classical",
    "segment_nuclei",
    "tta_deltas",
]


def segment_nuclei(
    image: np.ndarray,
    method: str = "classical",
    model: UNet | None = None,
    tta: str | Sequence[str] | None = None,
    **params,
) -> np.ndarray:
    """Segment the nuclei of a 2-D image into an instance label image.

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluorescence image (integer or float dtype), nuclei bright.
    method : {"classical", "unet"}, optional
        ``"classical"``: :func:`~i2r_utils.classical.segment_classical`; ``"unet"``:
        :func:`~i2r_utils.unet.predict_unet` followed by
        :func:`~i2r_utils.unet.probabilities_to_labels`.
    model : UNet, optional
        Trained network, required for ``method="unet"`` (see
        :func:`~i2r_utils.unet.train_unet`).
    tta : str, sequence of str or None, optional
        Test-time augmentation (see :func:`~i2r_utils.tta.resolve_tta`). U-Net: the
        de-augmented probability maps are averaged; classical: the de-augmented label images
        are merged with :func:`~i2r_utils.tta.merge_instances_tta`.
    **params
        Keyword arguments of :func:`~i2r_utils.classical.segment_classical` or of
        :func:`~i2r_utils.unet.probabilities_to_labels` (U-Net).

    Returns
    -------
    numpy.ndarray
        int32 label image of the image's shape, 0 = background, nuclei 1..n.
    """
    img = validate_image(image)
    names = resolve_tta(tta)
    if method == "classical":
        if model is not None:
            raise ValueError("method='classical' takes no model; use method='unet' to use it.")
        if not names:
            return segment_classical(img, **params)
        versions = [
            invert_transform(segment_classical(apply_transform(img, n), **params), n) for n in names
        ]
        return merge_instances_tta(versions)
    if method == "unet":
        if model is None:
            raise ValueError("method='unet' needs a trained model; get one with train_unet.")
        return probabilities_to_labels(predict_unet(model, img, tta=names), **params)
    raise ValueError(f"unknown method {method!r}; use 'classical' or 'unet'.")


# --- evaluation on annotated images ----------------------------------------------------


def annotated_tiles(
    image: np.ndarray, mask: np.ndarray, tile_size: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Cut an annotated image and its labels into non-overlapping square tiles.

    Objects cut by a tile edge stay (partially) in each tile; every tile's labels are
    renumbered 1..n. Pixels beyond the last full tile are dropped.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    mask : numpy.ndarray
        Instance labels of the same shape.
    tile_size : int
        Tile side in pixels (at most the image's shorter side).

    Returns
    -------
    images, masks : list of numpy.ndarray
        Tiles in row-major order.
    names : list of str
        ``"r<row>c<col>"`` of each tile's top-left pixel.
    """
    image, mask = np.asarray(image), np.asarray(mask)
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be equal 2-D shapes.")
    if not 8 <= tile_size <= min(image.shape):
        raise ValueError(f"tile_size must be in 8..{min(image.shape)}, got {tile_size}.")
    imgs, masks, names = [], [], []
    for r in range(0, image.shape[0] - tile_size + 1, tile_size):
        for c in range(0, image.shape[1] - tile_size + 1, tile_size):
            sl = (slice(r, r + tile_size), slice(c, c + tile_size))
            imgs.append(image[sl])
            masks.append(relabel_sequential(mask[sl].astype(np.int32))[0])
            names.append(f"r{r}c{c}")
    return imgs, masks, names


def load_annotated_nuclei(
    annotated_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    tile_size: int = 128,
    n_fallback: int = 16,
) -> dict:
    """Load annotated nuclei for a segmentation evaluation, real data first.

    If ``annotated_dir`` holds ``img2d.tif`` and ``mask2d.tif`` (the StarDist/DSB2018 example
    of ``../shared/data``), they are cut into tiles of ``tile_size``; otherwise the first
    ``n_fallback`` images and masks of the synthetic screen in ``data_dir`` are used.

    Parameters
    ----------
    annotated_dir : path-like
        Folder with ``img2d.tif`` and ``mask2d.tif``.
    data_dir : path-like, optional
        Screen folder with ``metadata.csv`` (fallback).
    tile_size : int
        Tile side for the real image.
    n_fallback : int
        Synthetic images to use in the fallback.

    Returns
    -------
    dict
        ``images``, ``masks``, ``names`` (lists) and ``source`` (a description).
    """
    from i2r_utils.io import InputError, load_metadata, read_image, read_mask

    annotated_dir = Path(annotated_dir)
    img_path, msk_path = annotated_dir / "img2d.tif", annotated_dir / "mask2d.tif"
    if img_path.is_file() and msk_path.is_file():
        image = read_image(img_path)
        mask = read_mask(msk_path, image.shape)
        images, masks, names = annotated_tiles(image, mask, tile_size)
        source = f"{annotated_dir.name}: real DSB2018 image {image.shape}, {tile_size}px tiles"
        return {"images": images, "masks": masks, "names": names, "source": source}
    if data_dir is None:
        raise InputError(
            f"{img_path}: annotated nuclei not found and no data_dir fallback given; pass the "
            "folder with img2d.tif and mask2d.tif, or data_dir of a synthetic screen."
        )
    meta = load_metadata(data_dir).head(n_fallback)
    images = [read_image(p) for p in meta["Metadata_ImagePath"]]
    masks = [read_mask(m, i.shape) for m, i in zip(meta["Metadata_MaskPath"], images, strict=True)]
    names = [Path(p).stem for p in meta["Metadata_ImagePath"]]
    names = [f"{pl}/{n}" for pl, n in zip(meta["Metadata_Plate"], names, strict=True)]
    source = f"synthetic screen {data_dir} ({len(images)} images; {img_path} not found)"
    return {"images": images, "masks": masks, "names": names, "source": source}


def evaluate_segmentation(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    names: Sequence[str],
    methods: dict[str, dict],
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, list[np.ndarray]]]:
    """Segment every image with every method and score it against its annotation.

    Parameters
    ----------
    images, masks : sequence of numpy.ndarray
        Images and ground-truth instance labels.
    names : sequence of str
        One name per image.
    methods : dict
        Method name -> keyword arguments of :func:`segment_nuclei` (``method``, ``model``,
        ``tta``, ...).
    progress : bool
        Show a progress bar.

    Returns
    -------
    scores : pandas.DataFrame
        One row per (image, method): ``image``, ``method``, the scores of
        :func:`i2r_utils.metrics.segmentation_scores` and ``seconds``.
    predictions : dict
        Method name -> predicted label images (in image order).
    """
    rows, preds = [], {m: [] for m in methods}
    for img, mask, name in tqdm(
        list(zip(images, masks, names, strict=True)), desc="segment", disable=not progress
    ):
        for m, kwargs in methods.items():
            start = time.perf_counter()
            labels = segment_nuclei(img, **kwargs)
            seconds = time.perf_counter() - start
            preds[m].append(labels)
            rows.append({"image": name, "method": m, **segmentation_scores(mask, labels),
                         "seconds": seconds})  # fmt: skip
    return pd.DataFrame(rows), preds


def tta_deltas(
    scores: pd.DataFrame, pairs: dict[str, str], metric: str = "map_dsb"
) -> pd.DataFrame:
    """Per-image change of a score with test-time augmentation.

    Parameters
    ----------
    scores : pandas.DataFrame
        Output of :func:`evaluate_segmentation` (columns ``image``, ``method``, ``metric``).
    pairs : dict
        Method without TTA -> the same method with TTA (both in ``scores["method"]``).
    metric : str
        Score column; default mAP_DSB.

    Returns
    -------
    pandas.DataFrame
        Indexed by image (in the order of the first method's rows), one column per pair,
        named by the method with TTA: ``score with TTA - score without`` (positive = TTA
        helps).
    """
    columns = {}
    for base, tta in pairs.items():
        a = scores[scores["method"] == base].set_index("image")[metric]
        b = scores[scores["method"] == tta].set_index("image")[metric].loc[a.index]
        columns[tta] = b - a
    return pd.DataFrame(columns)
