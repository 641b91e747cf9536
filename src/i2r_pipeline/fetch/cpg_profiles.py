"""Per-well CellProfiler profiles of the Cell Painting Gallery, merged with their plate map.

The defaults fetch the well-level profiles of Rohban et al. 2017 (``cpg0017-rohban-pathways``,
re-profiled by the Gallery in 2023 with the profiling recipe) from the public bucket
``cellpainting-gallery``. Their key layout is the Gallery's
``<dataset>/<source>/workspace/profiles/<batch>/<plate>/<plate>_<stage>.csv.gz``, one file
per plate and recipe stage (:data:`PROFILE_STAGES`); the five plates of the batch
``2013_10_11_SIGMA2_Pilot`` share the plate map ``TAORF_REFERENCE_SET``.

:func:`fetch_cpg_profiles` checks every name that becomes a local path, downloads each plate's
file (resumable, atomic, verified by size and md5 ETag, complete files kept; see
:func:`~i2r_pipeline.fetch.s3.download_object`), joins the plate map on the well and writes
one merged per-well table, :data:`i2r_utils.cpg_profiles.CPG_PROFILES_FILE`, plus a JSON
manifest of what was fetched. :func:`i2r_utils.cpg_profiles.load_cpg_profiles` reads it for
the real-profile evaluation.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from i2r_utils.cpg_profiles import CPG_PROFILES_FILE
from i2r_utils.io import InputError, file_digest, write_json, write_table

from .cpg import CPG_BUCKET, CPG_REGION, ROHBAN_BATCH, ROHBAN_PLATEMAP_KEY, ROHBAN_PLATES
from .platemap import normalize_well, read_platemap
from .s3 import download_object, list_pages, make_s3_client

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_FILE",
    "PROFILE_STAGES",
    "ROHBAN_PROFILE_MD5",
    "ROHBAN_PROFILE_PREFIX",
    "ROHBAN_PROFILE_STAGE",
    "fetch_cpg_profiles",
    "merge_plate_profiles",
    "profile_plan",
]

#: Key prefix of one plate's profiles; ``{batch}`` and ``{plate}`` are filled in.
ROHBAN_PROFILE_PREFIX = "cpg0017-rohban-pathways/broad/workspace/profiles/{batch}/{plate}/"
#: Profiling-recipe stages published per plate (file ``<plate>_<stage>.csv.gz``; ``""`` is the
#: un-annotated aggregate ``<plate>.csv.gz``). Sizes of plate 41744: 5.7, 5.7, 5.6, 1.1 MB.
PROFILE_STAGES = ("", "augmented", "normalized", "normalized_feature_select_batch")
#: Default stage: normalised to the whole plate (MAD robustize) and feature-selected over the
#: batch, so every plate has the same columns; the smallest file (about 1 MB per plate).
ROHBAN_PROFILE_STAGE = "normalized_feature_select_batch"
#: md5 and size of each published file, as pinned by the DVC files of the Gallery's profiling
#: repository broadinstitute/cpg0017-rohban-pathways (commit 281d3da, ``profiles/<batch>/<plate>/
#: <file>.dvc``). A fetched file is compared with its pin and the result is kept in the manifest.
ROHBAN_PROFILE_MD5 = {
    "41744.csv.gz": ("ae7940626b81ac5c04a563dff4866e2c", 5675739),
    "41744_augmented.csv.gz": ("1674b2780cdd229497e1a6f27ce30ccc", 5701105),
    "41744_normalized.csv.gz": ("9a96b5aa33c9f26e2e6f4106701ec5fc", 5558528),
    "41744_normalized_feature_select_batch.csv.gz": ("7ca069abbbd3d26c527563efa670aaa3", 1054824),
    "41754.csv.gz": ("84a5266e74ed03c000ed89e8fa81073d", 5706801),
    "41754_augmented.csv.gz": ("fab44e8aaab0d0141d0df990dc474ab7", 5732344),
    "41754_normalized.csv.gz": ("e60253bb432aad6c9187385728c35e9e", 5585778),
    "41754_normalized_feature_select_batch.csv.gz": ("7c9423f2858a04363350819b22529677", 1060491),
    "41755.csv.gz": ("b4d5992c814accc640b312ce34e5fba1", 5705510),
    "41755_augmented.csv.gz": ("cac2cfd4721155ef2c82df19449fa1eb", 5731189),
    "41755_normalized.csv.gz": ("93546c2f60889ce483e13932ef83ad0f", 5588286),
    "41755_normalized_feature_select_batch.csv.gz": ("4eb717b7d2b7ba9a1b6dbfdf96f00756", 1060105),
    "41756.csv.gz": ("f99e1a73c91516c57ee6ef8f83c3d555", 5698652),
    "41756_augmented.csv.gz": ("c3f92c41f66f5750be40461c3edb595f", 5724222),
    "41756_normalized.csv.gz": ("3e6b9a448297839ed14803a9899c9208", 5583254),
    "41756_normalized_feature_select_batch.csv.gz": ("8f286721d9229aedec2ea2928c12adc0", 1059416),
    "41757.csv.gz": ("40dff928ed494dcb1d82cc8f184bfe11", 5705645),
    "41757_augmented.csv.gz": ("cd4842ea62ae55ad726213e208ff47fe", 5731175),
    "41757_normalized.csv.gz": ("f71fcdbed4afda3dd8c7c35b1c312e0a", 5565457),
    "41757_normalized_feature_select_batch.csv.gz": ("7317923b254c9ff9f7d657775cb24194", 1058177),
}
#: JSON manifest written beside the merged table: source, keys, sizes, ETags, shape.
MANIFEST_FILE = "cpg0017_profiles.json"

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _safe_name(value: Any, what: str) -> str:
    """Return `value` as a single, harmless path component or raise an InputError."""
    text = str(value)
    if not _SAFE_NAME.fullmatch(text) or ".." in text:
        raise InputError(
            f"{what} {text!r} cannot be used as a local file or folder name: use letters, "
            "digits, '.', '_' and '-' only (no '/', no '..', not absolute)."
        )
    return text


def _inside(dest: Path, path: Path) -> Path:
    """Return `path`, checking that it resolves inside `dest`."""
    if not path.resolve().is_relative_to(dest.resolve()):
        raise InputError(f"{path} would be written outside the destination folder {dest}")
    return path


def profile_plan(
    dest: str | os.PathLike,
    plates: Iterable[str],
    prefix: str = ROHBAN_PROFILE_PREFIX,
    batch: str = ROHBAN_BATCH,
    stage: str = ROHBAN_PROFILE_STAGE,
) -> pd.DataFrame:
    """Decide which object of each plate to fetch and where; no network access.

    Parameters
    ----------
    dest : path-like
        Destination folder; plate ``P`` goes to ``dest/P/<file name>``.
    plates : iterable of str
        Plate names.
    prefix : str, default ROHBAN_PROFILE_PREFIX
        Key prefix of one plate's profiles with ``{plate}`` (required) and ``{batch}``.
    batch : str, default ROHBAN_BATCH
        Fills ``{batch}``.
    stage : str, default ROHBAN_PROFILE_STAGE
        Profiling-recipe stage: file ``<plate>_<stage>.csv.gz`` (``""``: ``<plate>.csv.gz``).

    Returns
    -------
    pandas.DataFrame
        One row per plate: ``plate``, ``key`` and ``path`` (local destination).

    Raises
    ------
    InputError
        No plate, a plate listed twice, ``{plate}`` missing from `prefix`, or a plate, batch or
        stage that is not a safe file name.
    """
    dest = Path(dest)
    plates = [_safe_name(p, "plate") for p in plates]
    if not plates or len(set(plates)) < len(plates):
        raise InputError(f"give each plate once, at least one; got {plates}")
    if "{plate}" not in prefix:
        raise InputError(f"prefix must contain the '{{plate}}' placeholder, got {prefix!r}")
    batch = _safe_name(batch, "batch")
    suffix = f"_{_safe_name(stage, 'stage')}" if stage else ""
    rows = []
    for plate in plates:
        name = f"{plate}{suffix}.csv.gz"
        key = prefix.format(batch=batch, plate=plate).rstrip("/") + "/" + name
        rows.append((plate, key, _inside(dest, dest / plate / name)))
    return pd.DataFrame(rows, columns=["plate", "key", "path"])


def _remote(client: Any, bucket: str, key: str) -> tuple[int, str | None]:
    """Size and ETag of one object; a missing one is reported with its folder's contents."""
    for page in list_pages(client, bucket, key):
        for obj in page.get("Contents", []):
            if obj["Key"] == key:
                return int(obj["Size"]), obj.get("ETag")
    folder = key.rsplit("/", 1)[0] + "/"
    found = [
        o["Key"][len(folder) :]
        for p in list_pages(client, bucket, folder)
        for o in p.get("Contents", [])
    ]
    raise InputError(
        f"s3://{bucket}/{key} does not exist; {folder} holds {sorted(found)[:12] or 'nothing'}. "
        "Check the plate names, `stage`, `batch` and `prefix`."
    )


def _platemap_target(platemap: str | os.PathLike | pd.DataFrame, dest: Path) -> Path | None:
    """Local destination of a plate map given as an object key; None for a DataFrame or file."""
    if isinstance(platemap, pd.DataFrame) or Path(platemap).is_file():
        return None
    name = _safe_name(str(platemap).rsplit("/", 1)[-1], "plate map")
    return _inside(dest, dest / "platemaps" / name)


def _fetch_platemap(
    platemap: str | os.PathLike | pd.DataFrame,
    local: Path | None,
    client: Any,
    bucket: str,
    kw: dict,
) -> pd.DataFrame:
    """Return the plate map: given, a local file, or the object `platemap` (fetched to `local`)."""
    if isinstance(platemap, pd.DataFrame):
        return platemap.copy()
    if local is None:
        return read_platemap(platemap)
    size, etag = _remote(client, bucket, str(platemap))
    download_object(client, bucket, str(platemap), local, size, etag, **kw)
    return read_platemap(local)


def _pin_check(path: Path, pins: dict) -> dict:
    """md5 of a fetched file and whether it matches its pin (None: no pin for this name)."""
    md5 = file_digest(path, "md5")
    pin = pins.get(path.name)
    same = None if pin is None else pin[0] == md5
    if same is False:
        logger.warning(
            "%s differs from the file pinned by the Gallery's profiling repository (md5 %s, "
            "pinned %s): the published profiles may have been updated",
            path,
            md5,
            pin[0],
        )
    return {"md5": md5, "matches_pin": same}


def _read_plate(path: Path, plate: str) -> pd.DataFrame:
    """One plate's profile file with ``Metadata_Plate`` = `plate` and normalised wells."""
    df = pd.read_csv(path, low_memory=False)
    if "Metadata_Well" not in df.columns:
        raise InputError(f"{path} has no Metadata_Well column: is it a per-well profile file?")
    if "Metadata_Plate" in df.columns:
        other = sorted(set(df["Metadata_Plate"].astype(str)) - {plate})
        if other:
            raise InputError(f"{path} is the file of plate {plate} but holds plates {other[:5]}")
    df["Metadata_Plate"] = plate
    df["Metadata_Well"] = df["Metadata_Well"].map(normalize_well)
    if df["Metadata_Well"].duplicated().any():
        raise InputError(f"{path} lists a well twice: it is not a per-well profile file")
    return df


_MISSING = {"", "nan", "na", "none", "null", "<na>"}


def _agree(a: pd.Series, b: pd.Series) -> pd.Series:
    """Element-wise equality of two annotation columns read by different readers.

    Missing spellings (``NA``, empty, NaN) are equal, and numbers are compared as numbers
    (``468`` equals ``468.0``).
    """
    ta, tb = (x.astype(object).where(x.notna(), "").astype(str).str.strip() for x in (a, b))
    ta, tb = (t.mask(t.str.lower().isin(_MISSING), "") for t in (ta, tb))
    na, nb = (pd.to_numeric(t, errors="coerce") for t in (ta, tb))
    return (ta == tb) | (na.notna() & nb.notna() & (na == nb))


def merge_plate_profiles(
    tables: dict[str, pd.DataFrame], platemap: pd.DataFrame, well_col: str = "well_position"
) -> pd.DataFrame:
    """Stack per-plate profiles and annotate every well from a plate map shared by the plates.

    Plate-map columns get a ``Metadata_`` prefix (as pycytominer's ``annotate`` does) and are
    joined on the well, normalised on both sides (``a1``, ``a01`` -> ``A01``). A plate-map
    column the profiles already carry (annotated stages) must agree with it in every well;
    features missing on some plate are left out.

    Parameters
    ----------
    tables : dict
        Plate name -> its well profiles (``Metadata_Plate``, ``Metadata_Well``, features).
    platemap : pandas.DataFrame
        The plate map (text columns), one row per well.
    well_col : str, default "well_position"
        Its well column.

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Plate``, ``Metadata_Well``, the plate-map columns, the profiles' other
        metadata, then the features shared by all plates; sorted by plate and well.

    Raises
    ------
    InputError
        The well column is missing or a well is listed twice, a profiled well is not in the
        plate map, or an annotation disagrees with the plate map.
    """
    if well_col not in platemap.columns:
        raise InputError(f"the plate map has no column {well_col!r}: {list(platemap.columns)}")
    pm = platemap.rename(columns=lambda c: c if c.startswith("Metadata_") else f"Metadata_{c}")
    pm = pm.rename(columns={f"Metadata_{well_col}": "Metadata_Well"})
    pm["Metadata_Well"] = pm["Metadata_Well"].map(normalize_well)
    if pm["Metadata_Well"].duplicated().any():
        raise InputError("the plate map lists a well twice; give the plate map of one layout")
    stacked = pd.concat(tables.values(), join="inner", ignore_index=True)
    dropped = sum(len(t.columns) for t in tables.values()) - len(tables) * len(stacked.columns)
    if dropped:
        logger.warning("%d columns are not on every plate and were left out", dropped)
    stacked["Metadata_Well"] = stacked["Metadata_Well"].map(normalize_well)
    unknown = sorted(set(stacked["Metadata_Well"]) - set(pm["Metadata_Well"]))
    if unknown:
        raise InputError(f"wells {unknown[:10]} of the profiles are not in the plate map")
    merged = stacked.merge(pm, on="Metadata_Well", how="left", suffixes=("", "_platemap"))
    for col in [c for c in pm.columns if f"{c}_platemap" in merged.columns]:
        bad = merged.loc[~_agree(merged[col], merged[f"{col}_platemap"]), "Metadata_Plate"]
        if len(bad):
            well = merged.loc[bad.index[0], "Metadata_Well"]
            raise InputError(
                f"{col} of {len(bad)} wells (first: plate {bad.iloc[0]}, well {well}) differs "
                "between the profiles and the plate map: wrong plate map?"
            )
        merged[col] = merged.pop(f"{col}_platemap")
    meta = ["Metadata_Plate", "Metadata_Well"] + [c for c in pm.columns if c != "Metadata_Well"]
    rest = [c for c in merged.columns if c not in meta]
    rest = sorted(rest, key=lambda c: not c.startswith("Metadata_"))  # metadata, then features
    return merged[meta + rest].sort_values(["Metadata_Plate", "Metadata_Well"], ignore_index=True)


def fetch_cpg_profiles(
    dest: str | os.PathLike,
    plates: Iterable[str] = ROHBAN_PLATES,
    bucket: str = CPG_BUCKET,
    endpoint_url: str | None = None,
    prefix: str = ROHBAN_PROFILE_PREFIX,
    batch: str = ROHBAN_BATCH,
    stage: str = ROHBAN_PROFILE_STAGE,
    platemap: str | os.PathLike | pd.DataFrame = ROHBAN_PLATEMAP_KEY,
    platemap_well_col: str = "well_position",
    client: Any = None,
    progress: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
    pins: dict | None = None,
) -> pd.DataFrame:
    """Download per-well profiles of some plates and write one merged, annotated table.

    Every local path is checked before anything is fetched (:func:`profile_plan`). Each
    plate's file goes to ``dest/<plate>/<plate>_<stage>.csv.gz`` (resumable, atomic, verified;
    complete files are not fetched again), the plate map (an object key) to
    ``dest/platemaps/``; the merged table (:func:`merge_plate_profiles`) to
    ``dest/cpg0017_profiles.parquet`` and a manifest to ``dest/cpg0017_profiles.json``.

    Parameters
    ----------
    dest : path-like
        Destination folder (the data folder of the profile evaluation).
    plates : iterable of str, default ROHBAN_PLATES
        Plates to fetch (the five of cpg0017).
    bucket : str, default CPG_BUCKET
        The bucket (public, anonymous access).
    endpoint_url : str, optional
        S3 endpoint; ``None`` is AWS. Tests use a local moto server.
    prefix, batch, stage : str
        Key layout, see :func:`profile_plan`.
    platemap : str, path-like or pandas.DataFrame, default ROHBAN_PLATEMAP_KEY
        The plate map shared by the plates: a DataFrame, a local file or a key of `bucket`.
    platemap_well_col : str, default "well_position"
        Its well column.
    client : botocore S3 client, optional
        Use this client instead of an anonymous one for `endpoint_url`.
    progress : bool, default True
        Show a progress bar over all bytes.
    retries : int, default 5
        Retries per object on connection errors.
    backoff : float, default 1.0
        Seconds before the first retry; doubled each retry.
    pins : dict, optional
        File name -> ``(md5, size)`` expected; default :data:`ROHBAN_PROFILE_MD5`. A file
        that differs is kept with a warning (the S3 ETag already verified the transfer); the
        manifest records its md5 and ``matches_pin`` (true, false, or null without a pin).

    Returns
    -------
    pandas.DataFrame
        The merged table (as written).

    Raises
    ------
    InputError
        An unsafe plate, batch, stage or plate-map name, a missing object (the message lists
        the plate folder), a failed or unverified download, or a file that does not fit the
        plate map.
    """
    dest = Path(dest)
    plan = profile_plan(dest, plates, prefix, batch, stage)
    platemap_local = _platemap_target(platemap, dest)
    client = client if client is not None else make_s3_client(endpoint_url, CPG_REGION)
    kw = {"retries": retries, "backoff": backoff}
    pins = ROHBAN_PROFILE_MD5 if pins is None else pins
    remote = [_remote(client, bucket, key) for key in plan["key"]]
    with tqdm(
        total=sum(size for size, _ in remote),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="cpg profiles",
        disable=not progress,
    ) as bar:
        for (size, etag), key, path in zip(remote, plan["key"], plan["path"], strict=True):
            download_object(client, bucket, key, path, size, etag, bar=bar, **kw)
    pm = _fetch_platemap(platemap, platemap_local, client, bucket, kw)
    tables = {p: _read_plate(path, p) for p, path in zip(plan["plate"], plan["path"], strict=True)}
    merged = merge_plate_profiles(tables, pm, platemap_well_col)
    write_table(merged, dest / CPG_PROFILES_FILE)
    n_meta = sum(c.startswith("Metadata_") for c in merged.columns)
    manifest = {
        "bucket": bucket,
        "stage": stage,
        "platemap": platemap if isinstance(platemap, str) else "given",
        "objects": [
            {"plate": p, "key": k, "size": s, "etag": e, **_pin_check(path, pins)}
            for p, k, path, (s, e) in zip(
                plan["plate"], plan["key"], plan["path"], remote, strict=True
            )
        ],
        "wells": len(merged),
        "features": len(merged.columns) - n_meta,
    }
    write_json(manifest, dest / MANIFEST_FILE)
    return merged
