"""What the screen's encoder saw, and whether a new target's nuclei fall inside it.

New-target mode translates images that were never part of the screen. Their nuclei are
resampled to the screen's pixel scale and cut and scaled as the screen's were, so a user's
bit depth and exposure should not matter; what remains can still differ: nuclei much
smaller or larger than the screen's (a wrong ``--pixel-scale``), crops without DNA signal
(the wrong channel, masks that do not belong to the image, an empty image), or less fine
detail than the screen's (images of lower resolution resampled up). Three numbers per nucleus
describe this, measured on the crops exactly as the encoder gets them:

``area``
    Nucleus area in pixels at the screen's scale (``Metadata_Area`` of the object table).
``signal``
    Mean crop intensity over the nucleus: the crop's sum divided by the nucleus area inside
    the crop (crops are masked, 0 outside the nucleus). With the screen's per-image scaling
    it is the nucleus' DNA intensity relative to its field; with per-crop min-max scaling
    its mean relative to its own range. 0 for a nucleus without signal.
``detail``
    Fine detail: the mean absolute Laplacian of the crop over the nucleus eroded by 2 px (so
    the mask's edge does not count), divided by its mean intensity there. Binned, blurred,
    out-of-focus or low-magnification images upsampled to the screen's scale have less
    (2x2-binned copies of the screen's fields: about a third), and their texture features
    and encoder embeddings differ from the screen's. NaN for a nucleus too small to erode.

:func:`reference_stats` draws them for a sample of the screen's nuclei,
:func:`check_domain` compares a new target's nuclei with the screen's central range.

Examples
--------
>>> import numpy as np
>>> crops = np.zeros((2, 8, 8), np.float32); crops[:, 2:6, 2:6] = [[[0.5]], [[0.0]]]
>>> nucleus_stats(crops, [16, 16])["signal"].tolist()
[0.5, 0.0]
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .artifacts import artifact
from .io import read_table
from .nuclei import load_crops

__all__ = ["DOMAIN_STATS", "nucleus_stats", "reference_stats", "check_domain"]

#: The per-nucleus numbers compared with the screen's.
DOMAIN_STATS: tuple[str, ...] = ("area", "signal", "detail")


def nucleus_stats(crops: np.ndarray, areas) -> pd.DataFrame:
    """Area, crop signal and fine detail of each nucleus.

    Parameters
    ----------
    crops : numpy.ndarray
        ``(n, size, size)`` masked crops in [0, 1], as the encoder gets them.
    areas : sequence of float
        Nucleus areas in pixels at the screen's scale, one per crop.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DOMAIN_STATS`, one row per nucleus.
    """
    crops = np.asarray(crops, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if crops.ndim != 3 or len(crops) != len(areas):
        raise ValueError(f"expected (n, h, w) crops and n areas, got {crops.shape}, {areas.shape}")
    inside = np.minimum(areas, crops.shape[1] * crops.shape[2])  # a truncated crop
    signal = crops.reshape(len(crops), -1).sum(axis=1) / np.maximum(inside, 1.0)
    detail = np.full(len(crops), np.nan)
    for i, crop in enumerate(crops):
        core = ndi.binary_erosion(crop > 0, iterations=2)
        if core.sum() >= 10 and crop[core].mean() > 0:
            detail[i] = np.abs(ndi.laplace(crop))[core].mean() / crop[core].mean()
    return pd.DataFrame({"area": areas, "signal": signal, "detail": detail})


def reference_stats(work_dir: str | os.PathLike, n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """:func:`nucleus_stats` of up to ``n`` of the screen's nuclei (a seeded sample).

    Parameters
    ----------
    work_dir : path-like
        Results folder of a main job (its merged nuclei table and stored crops).
    n : int
        Nuclei drawn without replacement (all when fewer).
    seed : int
        Seed of the draw.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DOMAIN_STATS`.
    """
    nuclei = read_table(artifact(work_dir, "nuclei"))
    if len(nuclei) > n:
        pick = np.sort(np.random.default_rng(seed).choice(len(nuclei), n, replace=False))
        nuclei = nuclei.iloc[pick].reset_index(drop=True)
    crops = load_crops(artifact(work_dir, "nuclei_dir"), nuclei)
    return nucleus_stats(crops, nuclei["Metadata_Area"].to_numpy(float))


def check_domain(
    stats: pd.DataFrame,
    reference: pd.DataFrame,
    quantiles: tuple[float, float] = (0.01, 0.99),
    max_outside: float = 0.25,
) -> dict:
    """Compare a new target's nuclei with the screen's central range, stat by stat.

    Parameters
    ----------
    stats : pandas.DataFrame
        :func:`nucleus_stats` of the new target's nuclei.
    reference : pandas.DataFrame
        :func:`reference_stats` of the screen.
    quantiles : (float, float)
        The screen's range: these quantiles of each stat.
    max_outside : float
        Largest fraction of nuclei outside the range that is not reported.

    Returns
    -------
    dict
        Per stat: ``screen_range``, ``median`` (new nuclei), ``screen_median``,
        ``fraction_outside``; and ``warnings``, one sentence per stat whose fraction outside
        exceeds ``max_outside`` (empty when the nuclei look like the screen's).
    """
    out: dict = {"warnings": []}
    hints = {
        "area": "check --pixel-scale (the images' magnification relative to the screen's 20x)",
        "signal": "check that the images are the DNA stain and that the masks belong to them",
        "detail": "the images have less fine detail than the screen's (lower resolution, "
        "binning, blur or focus); use images at the screen's resolution if you have them",
    }
    for name in DOMAIN_STATS:
        ref = reference[name].dropna()
        lo, hi = (float(v) for v in np.quantile(ref, quantiles))
        values = stats[name].dropna().to_numpy(float)
        outside = float(np.mean((values < lo) | (values > hi))) if len(values) else 0.0
        med = float(np.median(values)) if len(values) else float("nan")
        ref_med = float(np.median(ref))
        out[name] = {"screen_range": [lo, hi], "median": med, "screen_median": ref_med,
                     "fraction_outside": outside}  # fmt: skip
        if outside > max_outside:
            side = "below" if med < lo else "above" if med > hi else "outside"
            out["warnings"].append(
                f"{outside:.0%} of the nuclei have a nucleus {name} outside the screen's "
                f"{quantiles[0]:.0%}-{quantiles[1]:.0%} range [{lo:.3g}, {hi:.3g}] (median "
                f"{med:.3g}, {side}; the screen's {ref_med:.3g}): the encoder never saw such "
                f"nuclei and the ranking may be meaningless; {hints[name]}."
            )
    return out
