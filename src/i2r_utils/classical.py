"""Classical nucleus segmentation, and the image checks shared by every segmentation method.

:func:`segment_classical`: Gaussian smoothing, background subtraction, Otsu threshold, hole
filling, small-object removal and a distance-transform watershed seeded by
:func:`skimage.feature.peak_local_max`. :func:`validate_image`, :func:`normalize_percentile`
and :func:`remove_small` are also used by the U-Net (:mod:`i2r_utils.unet`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import relabel_sequential, watershed

__all__ = ["normalize_percentile", "remove_small", "segment_classical", "validate_image"]


def validate_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a non-empty, finite, real 2-D array; return it as float32.

    Parameters
    ----------
    image : numpy.ndarray
        The image to check.
    name : str, optional
        Name used in the error messages.

    Returns
    -------
    numpy.ndarray
        The image as float32.

    Raises
    ------
    TypeError
        For a torch tensor, or a boolean or non-numeric dtype.
    ValueError
        For an image that is not 2-D, is empty or holds NaN or inf.
    """
    if isinstance(image, torch.Tensor):
        raise TypeError(
            f"{name} must be a numpy array, got a torch.Tensor; pass tensor.cpu().numpy()."
        )
    arr = np.asarray(image)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must have an integer or floating dtype, got {arr.dtype}; "
            "pass the raw intensities, e.g. image.astype(np.float32)."
        )
    if arr.ndim != 2:
        hint = " (drop singleton axes with np.squeeze)" if arr.ndim > 2 and 1 in arr.shape else ""
        raise ValueError(
            f"{name} must be 2-D (rows, columns), got shape {arr.shape}; "
            f"pass one single-channel plane{hint}."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass an image with pixels.")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; replace them, e.g. np.nan_to_num(image).")
    return arr


def normalize_percentile(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, eps: float = 1e-6
) -> np.ndarray:
    """Rescale an image so that its ``low`` and ``high`` percentiles map to 0 and 1.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image of any real dtype.
    low, high : float, optional
        Percentiles mapped to 0 and 1 (values outside are not clipped).
    eps : float, optional
        Added to the denominator so that a constant image does not divide by zero.

    Returns
    -------
    numpy.ndarray
        float32 image of the same shape.
    """
    img = validate_image(image)
    lo, hi = np.percentile(img, [low, high])
    return ((img - lo) / (hi - lo + eps)).astype(np.float32)


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to 0 and relabel 1..n.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image (0 = background).
    min_size : int
        Smallest object kept, in pixels.

    Returns
    -------
    numpy.ndarray
        int32 label image numbered 1..n.
    """
    labels = np.asarray(labels)
    if min_size > 0 and labels.max(initial=0) > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels.astype(np.int32))[0]


def segment_classical(
    image: np.ndarray,
    sigma: float = 1.0,
    min_distance: int = 6,
    min_size: int = 15,
    footprint_size: int | None = None,
    background_sigma: float | None = 20.0,
) -> np.ndarray:
    """Segment nuclei with Otsu thresholding and a distance-transform watershed.

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluorescence image, nuclei bright on a dark background.
    sigma : float, optional
        Standard deviation (pixels) of the Gaussian smoothing; 0 disables it.
    min_distance : int, optional
        Minimal distance (pixels) between two watershed seeds (peaks of the distance
        transform); smaller values split more.
    min_size : int, optional
        Objects smaller than this many pixels are removed (before and after the watershed).
    footprint_size : int, optional
        Side of the square footprint of :func:`~skimage.feature.peak_local_max`;
        defaults to ``2 * min_distance + 1``.
    background_sigma : float or None, optional
        Standard deviation (pixels, a few nucleus radii) of a Gaussian blur subtracted
        before thresholding to flatten an uneven background; None disables it. Default 20.

    Returns
    -------
    numpy.ndarray
        int32 label image, objects numbered 1..n.
    """
    raw = normalize_percentile(image)
    img = gaussian(raw, sigma=sigma, preserve_range=True) if sigma > 0 else raw
    if background_sigma:
        img = img - gaussian(raw, sigma=background_sigma, preserve_range=True)
    if np.ptp(img) == 0:
        return np.zeros(img.shape, dtype=np.int32)
    foreground = ndi.binary_fill_holes(img > threshold_otsu(img))
    components = remove_small(ndi.label(foreground)[0], min_size)
    foreground = components > 0
    distance = ndi.distance_transform_edt(foreground)
    size = 2 * min_distance + 1 if footprint_size is None else footprint_size
    peaks = peak_local_max(
        distance,
        min_distance=min_distance,
        footprint=np.ones((size, size), dtype=bool),
        labels=components,
        exclude_border=False,
    )
    markers = np.zeros(img.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # Plateaus give several adjacent peaks: merge touching seeds into one marker.
    markers = ndi.label(markers > 0)[0]
    labels = watershed(-distance, markers, mask=foreground)
    return remove_small(labels, min_size)
