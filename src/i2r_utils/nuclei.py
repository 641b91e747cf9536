"""Nucleus filtering and 64x64 single-nucleus crops.

The filters follow Image2Reg's defaults for 20x U2OS images (pixel units) and live in
one place, :class:`NucleusFilter`. Cheap properties (area, bounding box, border contact)
are computed for all objects first; shape moments and the convex hull (solidity) only for
the objects that pass them. Crops are stored as one compact ``.npz`` per plate with a
``Metadata_`` table linking each crop to plate/well/site/object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.measure import regionprops
from tqdm.auto import tqdm

from .io import InputError, atomic_path, read_image, read_mask, write_table

__all__ = [
    "NucleusFilter",
    "filter_nuclei",
    "normalize_image",
    "crop_nuclei",
    "preprocess_image",
    "preprocess_screen",
    "load_crops",
]


@dataclass(frozen=True)
class NucleusFilter:
    """Nucleus quality filters in pixel units (Image2Reg defaults for 20x U2OS).

    Attributes
    ----------
    min_area, max_area : float
        Allowed nucleus area in pixels.
    max_bbox_area : float
        Largest bounding-box area in pixels.
    max_eccentricity : float
        Largest eccentricity (1.0 keeps all).
    min_solidity : float
        Smallest area / convex-hull area.
    min_aspect_ratio : float
        Smallest minor / major axis length.
    drop_border : bool
        Drop objects touching the image border.
    pixel_scale : float
        Linear scale relative to the 20x images the defaults were tuned on (e.g. 0.5 for
        10x): areas scale with its square.
    """

    min_area: float = 400
    max_area: float = 4000
    max_bbox_area: float = 4000
    max_eccentricity: float = 1.0
    min_solidity: float = 0.1
    min_aspect_ratio: float = 0.1
    drop_border: bool = True
    pixel_scale: float = 1.0


def filter_nuclei(labels: np.ndarray, filt: NucleusFilter = NucleusFilter()):
    """Apply the nucleus filters to a label image.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer label image (0 = background).
    filt : NucleusFilter
        Filter thresholds.

    Returns
    -------
    kept : list of skimage.measure._regionprops.RegionProperties
        Region properties of the nuclei that pass every filter.
    counts : dict
        ``n_objects`` and, per filter, how many objects it removed (filters applied in
        order: border, area, bbox_area, eccentricity, aspect_ratio, solidity).
    """
    s2 = filt.pixel_scale**2
    props = regionprops(labels)
    counts = {"n_objects": len(props)}
    h, w = labels.shape

    def keep(name, pred, objs):
        out = [p for p in objs if pred(p)]
        counts[f"removed_{name}"] = len(objs) - len(out)
        return out

    objs = props
    objs = keep(
        "border",
        lambda p: (
            not filt.drop_border
            or (p.bbox[0] > 0 and p.bbox[1] > 0 and p.bbox[2] < h and p.bbox[3] < w)
        ),
        objs,
    )
    objs = keep("area", lambda p: filt.min_area * s2 <= p.area <= filt.max_area * s2, objs)
    objs = keep("bbox_area", lambda p: p.area_bbox <= filt.max_bbox_area * s2, objs)
    objs = keep("eccentricity", lambda p: p.eccentricity <= filt.max_eccentricity, objs)
    objs = keep(
        "aspect_ratio",
        lambda p: (
            p.axis_major_length > 0
            and p.axis_minor_length / p.axis_major_length >= filt.min_aspect_ratio
        ),
        objs,
    )
    objs = keep("solidity", lambda p: p.solidity >= filt.min_solidity, objs)
    counts["n_kept"] = len(objs)
    return objs, counts


def normalize_image(image: np.ndarray, low: float = 1.0, high: float = 99.9) -> np.ndarray:
    """Scale an image to [0, 1] between two percentiles (per-image normalisation).

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    low, high : float
        Percentiles mapped to 0 and 1.

    Returns
    -------
    numpy.ndarray
        float32 image, clipped to [0, 1].
    """
    lo, hi = np.percentile(image, [low, high])
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def crop_nuclei(image, labels, regions, size: int = 64, apply_mask: bool = True) -> np.ndarray:
    """Cut ``size`` x ``size`` crops centred on each nucleus, zero-padded at the borders.

    Parameters
    ----------
    image : numpy.ndarray
        2-D (normalised) image.
    labels : numpy.ndarray
        Label image of the same shape.
    regions : sequence of RegionProperties
        Nuclei to crop (from :func:`filter_nuclei`).
    size : int
        Crop side in pixels.
    apply_mask : bool
        Zero every pixel outside the nucleus' own mask.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size)`` float32 crops.
    """
    out = np.zeros((len(regions), size, size), np.float32)
    half = size // 2
    pad_img = np.pad(image, half)
    pad_lab = np.pad(labels, half)
    for i, r in enumerate(regions):
        cy, cx = (int(round(c)) + half for c in r.centroid)
        sl = (slice(cy - half, cy - half + size), slice(cx - half, cx - half + size))
        crop = pad_img[sl]
        out[i] = np.where(pad_lab[sl] == r.label, crop, 0) if apply_mask else crop
    return out


def preprocess_image(
    image_path, mask_path, filt=NucleusFilter(), size=64, apply_mask=True
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Read, validate, filter and crop the nuclei of one image.

    Parameters
    ----------
    image_path, mask_path : path-like
        Chromatin image and its label mask (same file name by convention).
    filt : NucleusFilter
        Nucleus filters.
    size : int
        Crop side.
    apply_mask : bool
        Mask out pixels of other nuclei and background in each crop.

    Returns
    -------
    crops : numpy.ndarray
        ``(n, size, size)`` float32 crops.
    objects : pandas.DataFrame
        ``Metadata_ObjectNumber``, centroid and area per kept nucleus.
    counts : dict
        What each filter removed (see :func:`filter_nuclei`).
    """
    image = read_image(image_path)
    labels = read_mask(mask_path, image.shape)
    regions, counts = filter_nuclei(labels, filt)
    crops = crop_nuclei(normalize_image(image), labels, regions, size, apply_mask)
    objects = pd.DataFrame(
        {
            "Metadata_ObjectNumber": [r.label for r in regions],
            "Metadata_CentroidY": [round(r.centroid[0], 2) for r in regions],
            "Metadata_CentroidX": [round(r.centroid[1], 2) for r in regions],
            "Metadata_Area": [int(r.area) for r in regions],
        }
    )
    return crops, objects, counts


def preprocess_screen(
    meta: pd.DataFrame,
    out_dir: str | Path,
    filt: NucleusFilter = NucleusFilter(),
    size: int = 64,
    apply_mask: bool = True,
    min_nuclei: int = 2,
    progress: bool = True,
) -> pd.DataFrame:
    """Filter and crop the nuclei of a whole screen, one compact file per plate.

    Plates already written (``crops/<plate>.npz`` present) are skipped, so an interrupted
    run resumes where it stopped. Per-image filter counts go to ``filter_counts.csv``.

    Parameters
    ----------
    meta : pandas.DataFrame
        Image metadata from :func:`i2r_utils.io.load_metadata`.
    out_dir : path-like
        Output folder.
    filt : NucleusFilter
        Nucleus filters.
    size : int
        Crop side in pixels.
    apply_mask : bool
        Mask each crop with its nucleus mask.
    min_nuclei : int
        Fewest nuclei a condition needs after filtering.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per crop: image metadata, object metadata and ``Metadata_CropIndex``
        (row in its plate's crop array).
    """
    out_dir = Path(out_dir)
    (out_dir / "crops").mkdir(parents=True, exist_ok=True)
    tables, all_counts = [], []
    plates = sorted(meta["Metadata_Plate"].unique())
    for plate in tqdm(plates, desc="plates", disable=not progress):
        npz = out_dir / "crops" / f"{plate}.npz"
        part = out_dir / "crops" / f"{plate}.parquet"
        counts_part = out_dir / "crops" / f"{plate}_filter_counts.csv"
        if npz.is_file() and part.is_file() and counts_part.is_file():
            tables.append(pd.read_parquet(part))
            all_counts.append(pd.read_csv(counts_part))
            continue
        rows = meta[meta["Metadata_Plate"] == plate]
        crops, objs, counts = [], [], []
        for rec in tqdm(
            rows.itertuples(index=False),
            total=len(rows),
            desc=plate,
            disable=not progress,
            leave=False,
        ):
            c, o, n = preprocess_image(
                rec.Metadata_ImagePath, rec.Metadata_MaskPath, filt, size, apply_mask
            )
            info = {k: getattr(rec, k) for k in rows.columns}
            for k, v in info.items():
                o[k] = v
            crops.append(c)
            objs.append(o)
            counts.append({**info, **n})
        crops = np.concatenate(crops) if crops else np.zeros((0, size, size), np.float32)
        table = pd.concat(objs, ignore_index=True)
        table["Metadata_CropIndex"] = np.arange(len(table))
        table = table[sorted(table.columns, key=lambda c: c != "Metadata_Plate")]
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, crops=crops.astype(np.float16))
        count_df = pd.DataFrame(counts)
        write_table(count_df, counts_part)
        write_table(table, part)
        tables.append(table)
        all_counts.append(count_df)
    nuclei = pd.concat(tables, ignore_index=True)
    write_table(pd.concat(all_counts, ignore_index=True), out_dir / "filter_counts.csv")
    per_cond = nuclei.groupby("Metadata_Condition").size()
    all_conds = set(meta["Metadata_Condition"])
    low = sorted(c for c in all_conds if per_cond.get(c, 0) < min_nuclei)
    if low:
        raise InputError(
            f"conditions {low} have fewer than {min_nuclei} nuclei after filtering; see "
            f"{out_dir / 'filter_counts.csv'} for which filter removed them and adjust "
            f"NucleusFilter (filters: {asdict(filt)}; for another magnification set pixel_scale)."
        )
    return nuclei


def load_crops(out_dir: str | Path, nuclei: pd.DataFrame) -> np.ndarray:
    """Load the crops of the rows of ``nuclei`` (in that order) from the per-plate files.

    Parameters
    ----------
    out_dir : path-like
        Folder given to :func:`preprocess_screen`.
    nuclei : pandas.DataFrame
        Rows with ``Metadata_Plate`` and ``Metadata_CropIndex``.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size)`` float32 crops.
    """
    out_dir = Path(out_dir)
    parts = []
    order = []
    for plate, rows in nuclei.groupby("Metadata_Plate", sort=True):
        path = out_dir / "crops" / f"{plate}.npz"
        if not path.is_file():
            raise InputError(f"{path}: crops missing; run notebooks/01_preprocess_nuclei first.")
        with np.load(path) as z:
            parts.append(z["crops"][rows["Metadata_CropIndex"].to_numpy()].astype(np.float32))
        order.append(rows.index.to_numpy())
    lookup = pd.Series(np.arange(len(nuclei)), index=np.concatenate(order))
    return np.concatenate(parts)[lookup.loc[nuclei.index].to_numpy()]
