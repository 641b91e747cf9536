"""Hand-crafted chromatin features per nucleus.

One row per labelled nucleus, with ``Metadata_ObjectNumber`` (the label value) and feature
columns named ``Nuclei_<Family>_<Name>`` so that pycytominer's ``infer_cp_features`` picks them
up. Families (see :data:`FEATURE_FAMILIES`):

``AreaShape``
    Area, perimeter, eccentricity, solidity, extent, major/minor axis length, form factor
    (``4 * pi * area / perimeter**2``) and aspect ratio (major / minor axis length), from
    :func:`skimage.measure.regionprops_table`.
``Intensity``
    Mean, standard deviation, min, max, integrated (sum), median, lower/upper quartiles, skewness
    and excess kurtosis of the raw intensities inside the mask.
``Texture``
    Haralick/GLCM statistics (contrast, correlation, energy, homogeneity, angular second moment,
    entropy) averaged over 4 angles at each distance in ``glcm_distances``, computed on the
    nucleus bounding box quantised to ``glcm_levels`` grey levels using only mask pixels; and the
    normalised histogram (plus its entropy) of the uniform local binary pattern (P=8, R=1).
    Mask pixels are mapped to ``1..glcm_levels`` by the nucleus' own min-max range, outside
    pixels to level 0, which is dropped from the GLCM; angles 0, 45, 90, 135 degrees.
``Chromatin``
    Heterochromatin foci (count, mean area, area fraction, intensity ratio foci / nucleoplasm,
    fraction of the integrated intensity in foci, mean normalised distance of foci to the border),
    radial intensity distribution in ``n_rings`` concentric rings (fraction of the intensity and
    relative intensity per ring, intensity-weighted mean depth) and the displacement between the
    intensity centre of mass and the geometric centre.

Foci detection (parameters ``foci_*`` of :func:`extract_features`)
------------------------------------------------------------------
``foci_method="tophat"`` (default): white top-hat with a disk of radius ``foci_radius`` (3 px) of
the nucleus smoothed by a Gaussian of ``foci_sigma`` (1 px; 0 disables it), outside pixels set to
the nucleus median; foci pixels have a top-hat above both the nucleus mean + ``foci_k`` (3)
standard deviations of the top-hat and ``foci_min_contrast`` (0.1) times the nucleus median
intensity. Bright structures wider than about ``2 * foci_radius + 1`` pixels are not foci.
``foci_method="threshold"``: foci pixels have a smoothed intensity above both the nucleus mean +
``foci_k`` standard deviations and ``(1 + foci_min_contrast)`` times the nucleus median (bright
rims also count). Foci are 8-connected components of at least ``foci_min_area`` (3) pixels;
``foci_min_contrast`` guards against calling noise foci in flat nuclei.

Conventions
-----------
* Normalised depth of a nucleus pixel: ``r = (d - 1) / (d_max - 1)`` where ``d`` is its
  Euclidean distance to the nearest background pixel (1 for border pixels) and ``d_max`` the
  largest such distance in the nucleus; ``r = 0`` on the border and ``1`` at the innermost pixel.
  Ring ``k`` (1-based) of ``n`` holds the pixels with ``(k - 1) / n <= r < k / n`` (the last ring
  also holds ``r = 1``): **ring 1 is at the border, ring n at the centre**.
* Values that are undefined for a nucleus are ``NaN``: e.g. the foci intensity ratio and foci
  border distance of a nucleus without foci, a GLCM distance larger than the nucleus, the
  relative intensity of an empty ring of a tiny nucleus, the form factor of a zero-perimeter
  object. Skewness and kurtosis of a constant nucleus are 0; the GLCM correlation of a constant
  nucleus is 1 (the scikit-image convention).
* Everything is deterministic.

Examples
--------
>>> import numpy as np
>>> yy, xx = np.mgrid[:64, :64]
>>> labels = ((yy - 32) ** 2 + (xx - 32) ** 2 <= 15**2).astype(np.int32)
>>> image = np.where(labels > 0, 100.0, 0.0)
>>> df = extract_features(image, labels)
>>> df.shape[0], round(float(df["Nuclei_AreaShape_Eccentricity"].iloc[0]), 2)
(1, 0.0)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.feature import graycomatrix, local_binary_pattern
from skimage.measure import regionprops_table
from skimage.morphology import disk, white_tophat

__all__ = [
    "FEATURE_FAMILIES",
    "FEATURE_NAME_PATTERN",
    "extract_features",
    "feature_names",
]

#: Feature families, in output column order.
FEATURE_FAMILIES: tuple[str, ...] = ("AreaShape", "Intensity", "Texture", "Chromatin")

#: Regular expression every feature column produced here matches.
FEATURE_NAME_PATTERN = (
    r"^Nuclei_(AreaShape|Intensity|Texture|Chromatin)_[A-Za-z0-9]+(_[A-Za-z0-9]+)*$"
)

_PREFIX = "Nuclei"
_GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
_GLCM_PROPS = ("Contrast", "Correlation", "Energy", "Homogeneity", "ASM", "Entropy")
_LBP_P = 8
_LBP_R = 1
_AREASHAPE = (
    ("Area", "area"),
    ("Perimeter", "perimeter"),
    ("Eccentricity", "eccentricity"),
    ("Solidity", "solidity"),
    ("Extent", "extent"),
    ("MajorAxisLength", "axis_major_length"),
    ("MinorAxisLength", "axis_minor_length"),
)
_INTENSITY = (
    "Mean",
    "Std",
    "Min",
    "Max",
    "Integrated",
    "Median",
    "LowerQuartile",
    "UpperQuartile",
    "Skewness",
    "Kurtosis",
)
_FOCI = (
    "FociCount",
    "FociMeanArea",
    "FociAreaFraction",
    "FociIntensityRatio",
    "FociIntegratedFraction",
    "FociBorderDistance",
)


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def _check_families(families: Sequence[str] | None) -> tuple[str, ...]:
    if families is None:
        return FEATURE_FAMILIES
    if isinstance(families, str):
        families = [families]
    unknown = [f for f in families if f not in FEATURE_FAMILIES]
    if unknown:
        raise ValueError(
            f"unknown feature families {unknown}; choose from {list(FEATURE_FAMILIES)}"
        )
    if not families:
        raise ValueError(f"families is empty; choose from {list(FEATURE_FAMILIES)}")
    # canonical order, no duplicates
    return tuple(f for f in FEATURE_FAMILIES if f in set(families))


def _names(family: str, n_rings: int, glcm_distances: Sequence[int]) -> list[str]:
    p = f"{_PREFIX}_{family}_"
    if family == "AreaShape":
        names = [n for n, _ in _AREASHAPE] + ["FormFactor", "AspectRatio"]
    elif family == "Intensity":
        names = list(_INTENSITY)
    elif family == "Texture":
        names = [f"{prop}_{d}" for d in glcm_distances for prop in _GLCM_PROPS]
        names += [f"LBP_Bin{b}" for b in range(_LBP_P + 2)] + ["LBP_Entropy"]
    elif family == "Chromatin":
        names = list(_FOCI)
        names += [f"RadialFrac_Ring{k}of{n_rings}" for k in range(1, n_rings + 1)]
        names += [f"RadialRel_Ring{k}of{n_rings}" for k in range(1, n_rings + 1)]
        names += ["RadialMeanDepth", "CenterMassDisplacement", "CenterMassDisplacementNorm"]
    else:  # pragma: no cover - guarded by _check_families
        raise ValueError(family)
    return [p + n for n in names]


def feature_names(
    n_rings: int = 4,
    families: Sequence[str] | None = None,
    glcm_distances: Sequence[int] = (1, 3),
) -> list[str]:
    """List the feature columns :func:`extract_features` returns, in order.

    Parameters
    ----------
    n_rings : int, default 4
        Number of concentric rings of the radial intensity distribution.
    families : sequence of str, optional
        Subset of :data:`FEATURE_FAMILIES`; all families when None.
    glcm_distances : sequence of int, default (1, 3)
        Pixel distances of the grey-level co-occurrence matrices.

    Returns
    -------
    list of str
        Column names ``Nuclei_<Family>_<Name>`` (without ``Metadata_ObjectNumber``).
    """
    fams = _check_families(families)
    return [n for f in fams for n in _names(f, int(n_rings), tuple(glcm_distances))]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _validate(image, labels) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (rows, cols), got shape {image.shape}")
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D label image, got shape {labels.shape}")
    if image.shape != labels.shape:
        raise ValueError(
            f"image and labels must have the same shape, got image {image.shape} "
            f"and labels {labels.shape}"
        )
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an integer label image (0 = background, 1..N = nuclei), got dtype "
            f"{labels.dtype}; label a binary mask with skimage.measure.label(mask) or cast "
            "integer-valued arrays with labels.astype(np.int32)"
        )
    if image.dtype == bool or not (
        np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
    ):
        raise ValueError(f"image must be a float or integer intensity image, got {image.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative (0 = background, 1..N = nuclei)")
    if not labels.any():
        raise ValueError("labels contain no nuclei (all pixels are 0 = background)")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image[labels > 0]).all():
        raise ValueError("image has NaN or infinite values inside labelled nuclei")
    return image, labels


# --------------------------------------------------------------------------------------------
# per-family computations on one nucleus
# --------------------------------------------------------------------------------------------
def _areashape_table(labels: np.ndarray, object_numbers: np.ndarray, n_present: int) -> np.ndarray:
    if n_present != object_numbers.size:
        labels = np.where(np.isin(labels, object_numbers), labels, 0)
    props = ["label"] + [p for _, p in _AREASHAPE]
    tab = regionprops_table(labels, properties=props)
    order = np.searchsorted(tab["label"], object_numbers)
    cols = [np.asarray(tab[p], dtype=np.float64)[order] for _, p in _AREASHAPE]
    area, perim, major, minor = cols[0], cols[1], cols[5], cols[6]
    with np.errstate(divide="ignore", invalid="ignore"):
        ff = np.where(perim > 0, 4 * np.pi * area / np.where(perim > 0, perim, 1) ** 2, np.nan)
        ar = np.where(minor > 0, major / np.where(minor > 0, minor, 1), np.nan)
    return np.column_stack(cols + [ff, ar])


def _intensity(vals: np.ndarray) -> list[float]:
    mean = vals.mean()
    dev = vals - mean
    m2 = np.mean(dev**2)
    q1, med, q3 = np.percentile(vals, [25, 50, 75])
    scale = max(abs(mean), 1.0)
    if m2 <= (1e-12 * scale) ** 2:
        skew = kurt = 0.0
    else:
        skew = np.mean(dev**3) / m2**1.5
        kurt = np.mean(dev**4) / m2**2 - 3.0
    return [mean, np.sqrt(m2), vals.min(), vals.max(), vals.sum(), med, q1, q3, skew, kurt]


def _glcm(img: np.ndarray, mask: np.ndarray, vals: np.ndarray, levels: int, distances) -> list:
    lo, hi = vals.min(), vals.max()
    q = np.zeros(img.shape, dtype=np.uint8 if levels < 255 else np.uint16)
    if hi > lo:
        qi = np.floor((vals - lo) / (hi - lo) * levels).astype(np.int64)
        q[mask] = 1 + np.minimum(qi, levels - 1)
    else:
        q[mask] = 1
    g = graycomatrix(q, distances=list(distances), angles=list(_GLCM_ANGLES), levels=levels + 1)
    g = g[1:, 1:].astype(np.float64)  # drop level 0 = outside the nucleus
    # symmetric co-occurrences
    g = g + g.transpose(1, 0, 2, 3)
    sums = g.sum(axis=(0, 1))  # (n_dist, n_angle)
    valid = sums > 0
    p = g / np.where(valid, sums, 1.0)
    lv = np.arange(1, levels + 1, dtype=np.float64)
    i = lv[:, None, None, None]
    j = lv[None, :, None, None]
    diff2 = (i - j) ** 2
    contrast = (p * diff2).sum(axis=(0, 1))
    asm = (p**2).sum(axis=(0, 1))
    energy = np.sqrt(asm)
    homog = (p / (1.0 + diff2)).sum(axis=(0, 1))
    mu_i = (p * i).sum(axis=(0, 1))
    mu_j = (p * j).sum(axis=(0, 1))
    di = i - mu_i
    dj = j - mu_j
    var_i = (p * di**2).sum(axis=(0, 1))
    var_j = (p * dj**2).sum(axis=(0, 1))
    cov = (p * di * dj).sum(axis=(0, 1))
    den = np.sqrt(var_i * var_j)
    corr = np.where(den > 1e-15, cov / np.where(den > 1e-15, den, 1.0), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -plogp.sum(axis=(0, 1))
    out = []
    n_valid = valid.sum(axis=1)  # per distance
    for d in range(len(distances)):
        for arr in (contrast, corr, energy, homog, asm, entropy):
            if n_valid[d] == 0:
                out.append(np.nan)
            else:
                out.append(arr[d][valid[d]].mean())
    return out


def _lbp(img: np.ndarray, mask: np.ndarray, vals: np.ndarray) -> list:
    lo, hi = vals.min(), vals.max()
    img8 = np.full(img.shape, 0, dtype=np.uint8)
    if hi > lo:
        img8[mask] = np.round((vals - lo) / (hi - lo) * 255).astype(np.uint8)
    # outside pixels: the nucleus median, so that border codes are not dominated by background
    img8[~mask] = np.uint8(np.median(img8[mask]))
    codes = local_binary_pattern(img8, _LBP_P, _LBP_R, method="uniform")
    inner = ndi.binary_erosion(mask, structure=np.ones((3, 3), bool))
    sel = inner if inner.any() else mask
    hist = np.bincount(codes[sel].astype(np.int64), minlength=_LBP_P + 2)[: _LBP_P + 2]
    hist = hist / hist.sum()
    nz = hist[hist > 0]
    return list(hist) + [float(-(nz * np.log2(nz)).sum()) + 0.0]


def _depth(mask: np.ndarray) -> np.ndarray:
    """Normalised depth r in [0, 1] (0 = border, 1 = innermost) of the mask pixels."""
    d = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1][mask]
    dmax = d.max()
    if dmax <= 1.0:
        return np.zeros_like(d)
    return (d - 1.0) / (dmax - 1.0)


def _foci(
    img: np.ndarray,
    mask: np.ndarray,
    vals: np.ndarray,
    depth: np.ndarray,
    method: str,
    radius: int,
    k: float,
    min_area: int,
    sigma: float,
    min_contrast: float,
) -> list:
    filled = np.where(mask, img, np.median(vals))
    if sigma > 0:
        filled = ndi.gaussian_filter(filled, sigma, mode="nearest")
    if method == "tophat":
        resp = white_tophat(filled, footprint=disk(radius))
        r_in = resp[mask]
        thr = max(r_in.mean() + k * r_in.std(), min_contrast * abs(np.median(vals)))
    else:  # "threshold"
        resp = filled
        r_in = resp[mask]
        thr = max(r_in.mean() + k * r_in.std(), (1 + min_contrast) * np.median(vals))
    cand = mask & (resp > thr)
    n_pix = vals.size
    total = vals.sum()
    if cand.any():
        lab, n = ndi.label(cand, structure=np.ones((3, 3), bool))
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = sizes >= min_area
        keep[0] = False
        lab_in = lab[mask]
        kept_in = keep[lab_in]
        n_foci = int(keep.sum())
    else:
        n_foci = 0
    if n_foci == 0:
        frac_int = 0.0 if total != 0 else np.nan
        return [0.0, 0.0, 0.0, np.nan, frac_int, np.nan]
    foci_area = int(kept_in.sum())
    foci_vals = vals[kept_in]
    rest = vals[~kept_in]
    rest_mean = rest.mean() if rest.size else np.nan
    ratio = foci_vals.mean() / rest_mean if rest.size and rest_mean != 0 else np.nan
    frac_int = foci_vals.sum() / total if total != 0 else np.nan
    # mean normalised depth of each focus, then averaged over foci
    ids = lab_in[kept_in]
    dsum = np.bincount(ids, weights=depth[kept_in], minlength=lab.max() + 1)
    dcnt = np.bincount(ids, minlength=lab.max() + 1)
    border_dist = float(np.mean(dsum[keep] / dcnt[keep]))
    return [float(n_foci), foci_area / n_foci, foci_area / n_pix, ratio, frac_int, border_dist]


def _radial(mask: np.ndarray, vals: np.ndarray, depth: np.ndarray, n_rings: int) -> list:
    ring = np.minimum((depth * n_rings).astype(np.int64), n_rings - 1)
    total = vals.sum()
    area = np.bincount(ring, minlength=n_rings).astype(np.float64)
    inten = np.bincount(ring, weights=vals, minlength=n_rings)
    if total != 0:
        frac = inten / total
        afrac = area / vals.size
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(area > 0, frac / np.where(area > 0, afrac, 1.0), np.nan)
        mean_depth = float((depth * vals).sum() / total)
    else:
        frac = np.full(n_rings, np.nan)
        rel = np.full(n_rings, np.nan)
        mean_depth = np.nan
    rr, cc = np.nonzero(mask)
    gr, gc = rr.mean(), cc.mean()
    if total != 0:
        ir, ic = (rr * vals).sum() / total, (cc * vals).sum() / total
        disp = float(np.hypot(ir - gr, ic - gc))
        disp_norm = disp / np.sqrt(vals.size / np.pi)
    else:
        disp = disp_norm = np.nan
    return list(frac) + list(rel) + [mean_depth, disp, disp_norm]


# --------------------------------------------------------------------------------------------
# steps of extract_features
# --------------------------------------------------------------------------------------------
#: Keys of the per-step timings (see ``timings`` of :func:`extract_features`).
_TIMED_STEPS = (
    "AreaShape",
    "Intensity",
    "Texture.GLCM",
    "Texture.LBP",
    "Chromatin.Foci",
    "Chromatin.Radial",
)


def _check_options(n_rings, glcm_levels, glcm_distances, foci, metadata) -> tuple[dict, dict]:
    """Validate the parameters; return the options of :func:`_nucleus_features` and metadata."""
    foci_method, foci_radius, _, foci_min_area, _, _ = foci
    n_rings = int(n_rings)
    if n_rings < 1:
        raise ValueError(f"n_rings must be >= 1, got {n_rings}")
    glcm_distances = tuple(int(d) for d in glcm_distances)
    if not glcm_distances or min(glcm_distances) < 1:
        raise ValueError(f"glcm_distances must be positive integers, got {glcm_distances}")
    if not 2 <= int(glcm_levels) <= 256:
        raise ValueError(f"glcm_levels must be in 2..256, got {glcm_levels}")
    if foci_method not in ("tophat", "threshold"):
        raise ValueError(f"foci_method must be 'tophat' or 'threshold', got {foci_method!r}")
    if foci_radius < 1:
        raise ValueError(f"foci_radius must be >= 1, got {foci_radius}")
    if foci_min_area < 1:
        raise ValueError(f"foci_min_area must be >= 1, got {foci_min_area}")
    metadata = dict(metadata or {})
    bad = [k for k in metadata if not str(k).startswith("Metadata_")]
    if bad or "Metadata_ObjectNumber" in metadata:
        raise ValueError(
            f"metadata keys must start with 'Metadata_' and not be Metadata_ObjectNumber, got {bad}"
        )
    opts = {"n_rings": n_rings, "glcm_levels": int(glcm_levels), "glcm_distances": glcm_distances,
            "foci": foci}  # fmt: skip
    return opts, metadata


def _objects(labels: np.ndarray, object_numbers) -> tuple[list, np.ndarray, np.ndarray]:
    """Bounding-box slices of the labels, the labels present, and the labels to measure."""
    slices = ndi.find_objects(labels)
    present = np.array([i + 1 for i, s in enumerate(slices) if s is not None], dtype=np.int64)
    if object_numbers is None:
        return slices, present, present
    objs = np.asarray(object_numbers, dtype=np.int64).ravel()
    missing = np.setdiff1d(objs, present)
    if missing.size:
        raise ValueError(
            f"object_numbers {missing[:10].tolist()} do not occur in labels "
            f"(present: {present.size} labels, {present.min()}..{present.max()})"
        )
    if np.unique(objs).size != objs.size:
        raise ValueError("object_numbers contains duplicates")
    return slices, present, objs


def _nucleus_features(
    img: np.ndarray, mask: np.ndarray, fams: tuple[str, ...], opts: dict, t: dict[str, float]
) -> list[float]:
    """Intensity, Texture and Chromatin features of one nucleus (its padded bounding box).

    ``opts`` holds ``n_rings``, ``glcm_levels``, ``glcm_distances`` and the arguments of
    :func:`_foci`; the seconds of each step are added to ``t``.
    """
    vals = img[mask]
    depth = _depth(mask) if "Chromatin" in fams else None
    vec: list[float] = []
    if "Intensity" in fams:
        t0 = time.perf_counter()
        vec += _intensity(vals)
        t["Intensity"] += time.perf_counter() - t0
    if "Texture" in fams:
        t0 = time.perf_counter()
        vec += _glcm(img, mask, vals, opts["glcm_levels"], opts["glcm_distances"])
        t1 = time.perf_counter()
        vec += _lbp(img, mask, vals)
        t["Texture.GLCM"] += t1 - t0
        t["Texture.LBP"] += time.perf_counter() - t1
    if "Chromatin" in fams:
        t0 = time.perf_counter()
        method, radius, k, min_area, sigma, min_contrast = opts["foci"]
        vec += _foci(img, mask, vals, depth, method, int(radius), float(k), int(min_area),
                     float(sigma), float(min_contrast))  # fmt: skip
        t1 = time.perf_counter()
        vec += _radial(mask, vals, depth, opts["n_rings"])
        t["Chromatin.Foci"] += t1 - t0
        t["Chromatin.Radial"] += time.perf_counter() - t1
    return vec


def _crop(image: np.ndarray, labels: np.ndarray, sl, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 image and mask of nucleus ``n`` in its bounding box grown by one pixel."""
    rows, cols = labels.shape
    r0, r1 = max(sl[0].start - 1, 0), min(sl[0].stop + 1, rows)
    c0, c1 = max(sl[1].start - 1, 0), min(sl[1].stop + 1, cols)
    return image[r0:r1, c0:c1].astype(np.float64), labels[r0:r1, c0:c1] == n


def _table(out: np.ndarray, names: list[str], objs: np.ndarray, metadata: dict) -> pd.DataFrame:
    """Assemble the output: metadata columns, ``Metadata_ObjectNumber``, the features."""
    df = pd.DataFrame(out, columns=names)
    df.insert(0, "Metadata_ObjectNumber", objs)
    for i, (k, v) in enumerate(metadata.items()):
        df.insert(i, k, v)
    return df


def _add_timings(timings: MutableMapping[str, float], t: dict[str, float], total: float) -> None:
    """Add the step seconds ``t`` and the rest of ``total`` (``"Overhead"``) to ``timings``."""
    for k, v in t.items():
        timings[k] = timings.get(k, 0.0) + v
    timings["Overhead"] = timings.get("Overhead", 0.0) + max(total - sum(t.values()), 0.0)


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def extract_features(
    image: np.ndarray,
    labels: np.ndarray,
    object_numbers: Sequence[int] | np.ndarray | None = None,
    n_rings: int = 4,
    *,
    families: Sequence[str] | None = None,
    glcm_levels: int = 16,
    glcm_distances: Sequence[int] = (1, 3),
    foci_method: str = "tophat",
    foci_radius: int = 3,
    foci_k: float = 3.0,
    foci_min_area: int = 3,
    foci_sigma: float = 1.0,
    foci_min_contrast: float = 0.1,
    metadata: Mapping[str, object] | None = None,
    timings: MutableMapping[str, float] | None = None,
) -> pd.DataFrame:
    """Compute hand-crafted chromatin features for every labelled nucleus.

    Each nucleus is measured in its bounding box, so the cost grows with the nuclei, not with
    the image size. See the module docstring for the definitions and conventions.

    Parameters
    ----------
    image : numpy.ndarray
        2-D chromatin (DNA stain) image, float or integer (e.g. uint16); raw intensities.
    labels : numpy.ndarray
        2-D integer label image of the same shape; 0 = background, ``n > 0`` = nucleus ``n``.
    object_numbers : sequence of int, optional
        Label values to measure (all must occur), in output order; default all, ascending.
    n_rings : int, default 4
        Rings of the radial distribution (ring 1 at the border, ring ``n_rings`` at the centre).
    families : sequence of str, optional
        Subset of :data:`FEATURE_FAMILIES` to compute; all when None.
    glcm_levels, glcm_distances : int and sequence of int, default 16 and (1, 3)
        Grey levels and pixel distances of the GLCM (module docstring, ``Texture``).
    foci_method, foci_radius, foci_k, foci_min_area, foci_sigma, foci_min_contrast : optional
        Foci detection: ``"tophat"`` or ``"threshold"``, top-hat disk radius (px), threshold in
        standard deviations, smallest focus (px), Gaussian smoothing (px, 0: none), smallest
        contrast (fraction of the median); see the module docstring, ``Foci detection``.
    metadata : mapping, optional
        Constant ``Metadata_`` columns added to every row, e.g. ``{"Metadata_Well": "A01"}``.
    timings : dict, optional
        Seconds per step are added to it: ``"AreaShape"``, ``"Intensity"``, ``"Texture.GLCM"``,
        ``"Texture.LBP"``, ``"Chromatin.Foci"``, ``"Chromatin.Radial"``, ``"Overhead"``.

    Returns
    -------
    pandas.DataFrame
        One row per nucleus: the ``metadata`` columns, ``Metadata_ObjectNumber`` and the
        feature columns of :func:`feature_names` (float64), with a default RangeIndex.

    Raises
    ------
    ValueError
        If the shapes differ, the arrays are not 2-D, ``labels`` is not an integer label image
        or has no nuclei, a requested object number is absent, or a parameter is out of range.
    """
    t_start = time.perf_counter()
    image, labels = _validate(image, labels)
    fams = _check_families(families)
    foci = (foci_method, foci_radius, foci_k, foci_min_area, foci_sigma, foci_min_contrast)
    opts, metadata = _check_options(n_rings, glcm_levels, glcm_distances, foci, metadata)
    slices, present, objs = _objects(labels, object_numbers)
    names = feature_names(opts["n_rings"], fams, opts["glcm_distances"])
    out = np.full((objs.size, len(names)), np.nan, dtype=np.float64)
    t: dict[str, float] = dict.fromkeys(_TIMED_STEPS, 0.0)
    col = 0
    if "AreaShape" in fams:  # one regionprops table for all nuclei
        t0 = time.perf_counter()
        block = _areashape_table(labels, objs, present.size)
        out[:, : block.shape[1]] = block
        col = block.shape[1]
        t["AreaShape"] += time.perf_counter() - t0
    if any(f != "AreaShape" for f in fams):  # the others: each nucleus in its bounding box
        for row, n in enumerate(objs):
            img, mask = _crop(image, labels, slices[n - 1], n)
            out[row, col:] = _nucleus_features(img, mask, fams, opts, t)
    df = _table(out, names, objs, metadata)
    if timings is not None:
        _add_timings(timings, t, time.perf_counter() - t_start)
    return df
