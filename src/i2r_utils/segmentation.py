"""Nucleus segmentation: one entry point over the methods, and their evaluation.

:func:`segment_nuclei` turns a 2-D fluorescence image into an int32 label image
(0 = background, 1..n = nuclei) with one of the methods:

* ``method="classical"``: :func:`i2r_utils.classical.segment_classical` (Otsu threshold and
  distance-transform watershed; also importable from here).
* ``method="unet"``: a trained :class:`i2r_utils.unet.UNet`; instances from its
  probabilities by :func:`i2r_utils.unet.probabilities_to_labels`; ``method="unet_tta"``: the
  same with test-time augmentation (D4 by default).
* ``tta``: test-time augmentation over the dihedral group D4 (:mod:`i2r_utils.tta`). For the
  U-Net the de-augmented probability maps are averaged; for the classical method the
  de-augmented label images are merged by instance voting
  (:func:`i2r_utils.tta.merge_instances_tta`).

Evaluation on annotated images (:mod:`i2r_utils.segmentation_data` loads them):
:func:`evaluate_segmentation` (scores of :func:`i2r_utils.metrics.segmentation_scores` per
image and method) and :func:`tta_deltas` (per-image change of a score with TTA).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from skimage.segmentation import relabel_sequential

from i2r_utils.classical import segment_classical, validate_image
from i2r_utils.metrics import segmentation_scores
from i2r_utils.tta import apply_transform, invert_transform, merge_instances_tta, resolve_tta
from i2r_utils.unet import UNet, predict_unet, probabilities_to_labels

from .progress import tqdm

__all__ = [
    "DEFAULT_TTA",
    "METHODS",
    "evaluate_segmentation",
    "segment_classical",
    "segment_nuclei",
    "tta_deltas",
]


#: Segmentation methods of :func:`segment_nuclei` (``unet_tta``: U-Net with TTA).
METHODS = ("classical", "unet", "unet_tta")
#: Default TTA set of ``method="unet_tta"``.
DEFAULT_TTA = "d4"


def _resample(array: np.ndarray, shape: tuple[int, int], labels: bool) -> np.ndarray:
    """Resize an image (bilinear) or a label image (nearest) to ``shape``."""
    from skimage.transform import resize

    if labels:
        out = resize(array, shape, order=0, preserve_range=True, anti_aliasing=False)
        return relabel_sequential(out.astype(np.int32))[0]
    down = shape[0] < array.shape[0]
    return resize(array, shape, order=1, preserve_range=True, anti_aliasing=down).astype(np.float32)


def segment_nuclei(
    image: np.ndarray,
    method: str = "classical",
    model: UNet | None = None,
    tta: str | Sequence[str] | None = None,
    pixel_scale: float = 1.0,
    **params,
) -> np.ndarray:
    """Segment the nuclei of a 2-D image into an instance label image.

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluorescence image (integer or float dtype), nuclei bright.
    method : {"classical", "unet", "unet_tta"}, optional
        ``"classical"``: :func:`~i2r_utils.classical.segment_classical`; ``"unet"``:
        :func:`~i2r_utils.unet.predict_unet` followed by
        :func:`~i2r_utils.unet.probabilities_to_labels`; ``"unet_tta"``: the same with
        test-time augmentation (``tta``, default :data:`DEFAULT_TTA`).
    model : UNet, optional
        Trained network, required for the U-Net methods (see
        :func:`~i2r_utils.unet_training.trained_unet`).
    tta : str, sequence of str or None, optional
        Test-time augmentation (see :func:`~i2r_utils.tta.resolve_tta`). U-Net: the
        de-augmented probability maps are averaged; classical: the de-augmented label images
        are merged with :func:`~i2r_utils.tta.merge_instances_tta`.
    pixel_scale : float, optional
        Linear pixel scale of the image relative to the 20x images the methods are tuned
        and trained on (0.5 for 10x): the image is resampled by ``1 / pixel_scale`` before
        segmenting and the labels are resampled back to the image's shape.
    **params
        Keyword arguments of :func:`~i2r_utils.classical.segment_classical` or of
        :func:`~i2r_utils.unet.probabilities_to_labels` (U-Net; defaults: the thresholds
        stored with the model).

    Returns
    -------
    numpy.ndarray
        int32 label image of the image's shape, 0 = background, nuclei 1..n.
    """
    img = validate_image(image)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}.")
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise ValueError(f"pixel_scale must be a positive number, got {pixel_scale}.")
    if method == "unet_tta" and tta is None:
        tta = DEFAULT_TTA
    names = resolve_tta(tta)
    if method == "classical" and model is not None:
        raise ValueError("method='classical' takes no model; use method='unet' to use it.")
    if method != "classical" and model is None:
        raise ValueError(f"method={method!r} needs a trained model; get one with trained_unet.")
    work = img
    if pixel_scale != 1.0:
        shape = tuple(max(8, round(n / pixel_scale)) for n in img.shape)
        work = _resample(img, shape, labels=False)
    if method == "classical" and not names:
        labels = segment_classical(work, **params)
    elif method == "classical":
        versions = [
            invert_transform(segment_classical(apply_transform(work, n), **params), n)
            for n in names
        ]
        labels = merge_instances_tta(versions)
    else:
        params = {**model.config.get("postprocess", {}), **params}
        labels = probabilities_to_labels(predict_unet(model, work, tta=names), **params)
    return labels if work is img else _resample(labels, img.shape, labels=True)


# --- evaluation on annotated images ----------------------------------------------------


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
        :func:`i2r_utils.metrics.segmentation_scores`, ``seconds`` (wall clock) and
        ``cpu_seconds`` (CPU time of the process, all threads).
    predictions : dict
        Method name -> predicted label images (in image order).
    """
    rows, preds = [], {m: [] for m in methods}
    for img, mask, name in tqdm(
        list(zip(images, masks, names, strict=True)),
        desc="segment",
        disable=None if progress else True,
    ):
        for m, kwargs in methods.items():
            start, cpu = time.perf_counter(), time.process_time()
            labels = segment_nuclei(img, **kwargs)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            preds[m].append(labels)
            rows.append({"image": name, "method": m, **segmentation_scores(mask, labels),
                         "seconds": seconds, "cpu_seconds": cpu})  # fmt: skip
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
