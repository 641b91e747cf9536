"""Images of the Cell Painting Gallery (public, anonymous S3), joined to their plate map.

The defaults describe the raw images of Rohban et al. 2017 (``cpg0017-rohban-pathways``) in
the bucket ``cellpainting-gallery`` (:data:`ROHBAN_2017`). Fetching has three steps:
:func:`plan_cpg_images` lists the plates and decides which objects to fetch and where,
:func:`download_cpg_images` downloads them, and :func:`screen_metadata` turns the result
into the ``metadata.csv`` of a screen. :func:`fetch_cpg_images` runs the first two.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from i2r_utils.io import InputError
from i2r_utils.names import ensure_inside, safe_name

from .platemap import (
    DEFAULT_CHANNEL_MAP,
    DEFAULT_FILENAME_PATTERNS,
    join_platemap,
    parse_image_names,
    read_platemap,
)
from .s3 import download_object, list_pages, make_s3_client

logger = logging.getLogger(__name__)

__all__ = [
    "CPG_BUCKET",
    "CPG_REGION",
    "ROHBAN_2017",
    "ROHBAN_BATCH",
    "ROHBAN_IMAGE_PREFIX",
    "ROHBAN_PLATEMAP_KEY",
    "ROHBAN_PLATES",
    "CpgDataset",
    "download_cpg_images",
    "fetch_cpg_images",
    "plan_cpg_images",
    "screen_metadata",
]

#: The public Cell Painting Gallery bucket (anonymous access, AWS Registry of Open Data).
CPG_BUCKET = "cellpainting-gallery"
#: Region of :data:`CPG_BUCKET`.
CPG_REGION = "us-east-1"
#: Batch of the Rohban et al. 2017 plates in ``cpg0017-rohban-pathways``.
ROHBAN_BATCH = "2013_10_11_SIGMA2_Pilot"
#: Plate barcodes of that batch.
ROHBAN_PLATES = ("41744", "41754", "41755", "41756", "41757")
#: Key prefix of one plate's images; ``{batch}`` and ``{plate}`` are filled in. This follows the
#: Cell Painting Gallery convention ``<dataset>/<source>/images/<batch>/images/<plate>/``.
ROHBAN_IMAGE_PREFIX = "cpg0017-rohban-pathways/broad/images/{batch}/images/{plate}/"
#: Key of the plate map (tab separated, columns ``well_position`` and ``gene_name``) shared by
#: all five plates (``barcode_platemap.csv`` maps each plate to ``TAORF_REFERENCE_SET``).
ROHBAN_PLATEMAP_KEY = (
    "cpg0017-rohban-pathways/broad/workspace/metadata/platemaps/"
    "2013_10_11_SIGMA2_Pilot/platemap/TAORF_REFERENCE_SET.txt"
)

_LISTING_COLUMNS = ["Metadata_Plate", "_folder", "_rel", "Metadata_ObjectKey", "_size", "_etag"]
_IMAGE_COLUMNS = [
    "Metadata_Plate",
    "Metadata_Well",
    "Metadata_Site",
    "Metadata_Condition",
    "Metadata_ImagePath",
    "Metadata_Channel",
    "Metadata_ObjectKey",
]


@dataclass(frozen=True)
class CpgDataset:
    """Where a Cell Painting Gallery dataset keeps its images and plate map.

    The defaults describe Rohban et al. 2017 (:data:`ROHBAN_2017`); change fields with
    :func:`dataclasses.replace`, e.g. ``replace(ROHBAN_2017, platemap="my_map.tsv")``.

    Attributes
    ----------
    bucket : str
        The bucket.
    region : str
        Its region.
    prefix : str
        Key prefix of one plate's images with the placeholders ``{plate}`` (required) and
        ``{batch}``. A plate folder matches plate ``P`` if it is named ``P`` or starts with
        ``P__`` (the Gallery's ``<barcode>__<timestamp>`` style).
    batch : str
        Fills ``{batch}``.
    platemap : str, os.PathLike or pandas.DataFrame
        A DataFrame, a local CSV/TSV file, or the key of one in `bucket` (downloaded to
        ``<dest>/platemaps/``).
    platemap_well_col, platemap_gene_col : str
        Well and gene columns of the plate map.
    platemap_plate_col : str or None
        Plate column of the plate map, when it differs between plates.
    channel_map : mapping
        Stain name -> channel token in the file names (ImageXpress order, ``w1`` = DNA).
    filename_patterns : sequence of str
        File name regular expressions, see
        :func:`~i2r_pipeline.fetch.platemap.parse_image_names`.
    """

    bucket: str = CPG_BUCKET
    region: str = CPG_REGION
    prefix: str = ROHBAN_IMAGE_PREFIX
    batch: str = ROHBAN_BATCH
    platemap: str | os.PathLike | pd.DataFrame = ROHBAN_PLATEMAP_KEY
    platemap_well_col: str = "well_position"
    platemap_gene_col: str = "gene_name"
    platemap_plate_col: str | None = None
    channel_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_MAP))
    filename_patterns: Sequence[str] = DEFAULT_FILENAME_PATTERNS


#: Rohban et al. 2017 in the Cell Painting Gallery.
ROHBAN_2017 = CpgDataset()


def _plate_folders(
    client: Any, bucket: str, parent: str, plates: Iterable[str] | None
) -> list[tuple[str, str]]:
    """Return ``(plate barcode, folder name)`` of the selected plate folders below `parent`."""
    folders = []
    for page in list_pages(client, bucket, parent, delimiter="/"):
        folders += [
            cp["Prefix"][len(parent) :].rstrip("/") for cp in page.get("CommonPrefixes", [])
        ]
    where = f"plate folder of s3://{bucket}/{parent}"
    folders = [f for f in folders if f]  # an empty "folder" (a key ending in //) is no plate
    if plates is None:
        selected = [(f.split("__")[0], f) for f in folders]
    else:
        selected = []
        for plate in [str(p) for p in plates]:
            matches = [f for f in folders if f == plate or f.startswith(plate + "__")]
            if not matches:
                raise InputError(
                    f"No image folder for plate {plate} under s3://{bucket}/{parent}; found "
                    f"{sorted(folders)[:20]}{' ...' if len(folders) > 20 else ''}. Check `plates`, "
                    "`prefix` and `batch`."
                )
            selected += [(plate, f) for f in matches]
    if not selected:
        raise InputError(
            f"No plate folders under s3://{bucket}/{parent}; check `prefix` and `batch`"
        )
    for plate, folder in selected:  # remote names become local folders and metadata
        safe_name(folder, where)
        safe_name(plate, f"plate of the {where}")
    return selected


def _list_objects(
    client: Any, bucket: str, parent: str, tail: str, selected: list[tuple[str, str]]
) -> pd.DataFrame:
    """List every object below the selected plate folders (one row per object)."""
    objects = []
    for plate, folder in selected:
        for page in list_pages(client, bucket, parent + folder + "/" + tail.lstrip("/")):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(parent) + len(folder) + 1 :]
                objects.append((plate, folder, rel, obj["Key"], int(obj["Size"]), obj.get("ETag")))
    return pd.DataFrame(objects, columns=_LISTING_COLUMNS)


def _select_images(
    listing: pd.DataFrame, dataset: CpgDataset, channel: str, sites: Iterable[int] | None
) -> pd.DataFrame:
    """Keep the images of `channel` (and `sites`) with well, site and channel parsed."""
    channel_token = _channel_token(dataset, channel)
    parsed = parse_image_names(listing["Metadata_ObjectKey"], dataset.filename_patterns)
    images = listing.merge(parsed, on="Metadata_ObjectKey", how="inner")
    images = images[images["Metadata_Channel"] == channel_token]
    if sites is not None:
        images = images[images["Metadata_Site"].isin([int(s) for s in sites])]
    if images.empty:
        raise InputError(
            f"None of the {len(listing)} objects below the selected plate folders matched the "
            f"file name patterns with channel {channel!r} (token {channel_token!r}). Check "
            "`filename_patterns`, `channel` and `channel_map` against the object names."
        )
    return images.reset_index(drop=True)


def _channel_token(dataset: CpgDataset, channel: str) -> str:
    """Return the channel token of the file names for a stain name (or a token)."""
    return str(int(dataset.channel_map.get(channel, channel)))


def _load_platemap(dataset: CpgDataset, client: Any, dest_dir: Path, **kw: Any) -> pd.DataFrame:
    """Return the plate map: given, read from a local file, or downloaded from the bucket."""
    platemap = dataset.platemap
    if isinstance(platemap, pd.DataFrame):
        return platemap.copy()
    if Path(platemap).exists():
        return read_platemap(platemap)
    key = str(platemap)
    from botocore.exceptions import ClientError

    local = dest_dir / "platemaps" / safe_name(key.rsplit("/", 1)[-1], "plate map file name")
    try:
        head = client.head_object(Bucket=dataset.bucket, Key=key)
    except ClientError as exc:
        raise InputError(
            f"Plate map {key!r} is neither a local file nor an object of s3://{dataset.bucket} "
            f"({exc}). Pass the path of a local plate map (--platemap FILE) or the object key."
        ) from None
    size, etag = int(head["ContentLength"]), head.get("ETag")
    download_object(client, dataset.bucket, key, local, size, etag, **kw)
    return read_platemap(local)


def _assign_genes(
    images: pd.DataFrame, platemap_df: pd.DataFrame, genes: list[str], dataset: CpgDataset
) -> pd.DataFrame:
    """Map each image's well to its gene and keep the images of `genes`."""
    images = join_platemap(
        images,
        platemap_df,
        well_col=dataset.platemap_well_col,
        gene_col=dataset.platemap_gene_col,
        plate_col=dataset.platemap_plate_col,
    )
    known = set(platemap_df[dataset.platemap_gene_col].astype(str).str.strip())
    unknown_genes = [g for g in genes if g not in known]
    if unknown_genes:
        logger.warning("Genes not in the plate map: %s", unknown_genes)
    images = images[images["Metadata_Condition"].isin(genes)].reset_index(drop=True)
    if images.empty:
        raise InputError(
            f"No images of genes {genes} on the selected plates. Genes in the plate map include "
            f"{sorted(known)[:30]}."
        )
    for gene in genes:
        if gene in known and not (images["Metadata_Condition"] == gene).any():
            logger.warning(
                "Gene %s is in the plate map but has no images on the selected plates", gene
            )
    return images


def _split_prefix(dataset: CpgDataset) -> tuple[str, str]:
    """Return the key prefix above the plate folders and the part below one (batch filled)."""
    if "{plate}" not in dataset.prefix:
        raise InputError(f"prefix must contain the '{{plate}}' placeholder, got {dataset.prefix!r}")
    head, tail = dataset.prefix.split("{plate}", 1)
    return head.format(batch=dataset.batch), tail.format(batch=dataset.batch)


def plan_cpg_images(
    client: Any,
    dest_dir: str | os.PathLike,
    genes: list[str],
    plates: Iterable[str] | None = None,
    channel: str = "DNA",
    sites: Iterable[int] | None = None,
    dataset: CpgDataset = ROHBAN_2017,
    **download_kwargs: Any,
) -> pd.DataFrame:
    """Decide which objects to fetch and where: the images of `channel` in the wells of `genes`.

    Lists the plate folders and every object below the selected ones, parses well, site and
    channel from the file names, keeps `channel` (and `sites`), maps wells to genes with the
    plate map (downloaded to ``dest_dir/platemaps/`` when it is an object key) and keeps
    `genes`. No image is downloaded.

    Parameters
    ----------
    client : botocore S3 client
        See :func:`~i2r_pipeline.fetch.s3.make_s3_client`.
    dest_dir : str or os.PathLike
        Where the images will go.
    genes : list of str
        Plate-map values whose wells are fetched.
    plates : iterable of str, optional
        Plate barcodes; ``None`` takes every plate folder found.
    channel : str, default "DNA"
        Stain name looked up in ``dataset.channel_map``, or the channel token itself.
    sites : iterable of int, optional
        Keep only these fields of view.
    dataset : CpgDataset, default ROHBAN_2017
        Where the images and plate map are and how files are named.
    **download_kwargs
        Passed to :func:`~i2r_pipeline.fetch.s3.download_object` for the plate map.

    Returns
    -------
    pandas.DataFrame
        One row per image to fetch: plate, well, site, channel, gene, object key, plus the
        private columns ``_size``, ``_etag`` and ``_path`` (local destination).

    Raises
    ------
    InputError
        ``{plate}`` missing from the prefix, a requested plate has no folder, a plate folder
        name or an object key would write outside `dest_dir` (``..``, ``/``), no image
        matched the file name patterns and channel, none of `genes` has images, the plate
        map is neither a local file nor an object of the bucket, or listing failed.
    """
    dest_dir = Path(dest_dir)
    parent, tail = _split_prefix(dataset)
    selected = _plate_folders(client, dataset.bucket, parent, plates)
    listing = _list_objects(client, dataset.bucket, parent, tail, selected)
    images = _select_images(listing, dataset, channel, sites)
    images["_path"] = [
        ensure_inside(dest_dir, dest_dir / folder / rel, f"object key {key!r}")
        for folder, rel, key in zip(
            images["_folder"], images["_rel"], images["Metadata_ObjectKey"], strict=True
        )
    ]  # every key checked before the plate map or an image is written
    platemap_df = _load_platemap(dataset, client, dest_dir, **download_kwargs)
    return _assign_genes(images, platemap_df, genes, dataset)


def download_cpg_images(
    client: Any, bucket: str, plan: pd.DataFrame, progress: bool = True, **download_kwargs: Any
) -> pd.DataFrame:
    """Download the planned images (resumable, verified; complete files are kept).

    Parameters
    ----------
    client : botocore S3 client
        See :func:`~i2r_pipeline.fetch.s3.make_s3_client`.
    bucket : str
        The bucket.
    plan : pandas.DataFrame
        The result of :func:`plan_cpg_images`.
    progress : bool, default True
        Show one progress bar over all bytes.
    **download_kwargs
        Passed to :func:`~i2r_pipeline.fetch.s3.download_object` (``retries``, ``backoff``).

    Returns
    -------
    pandas.DataFrame
        One row per image: ``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site``,
        ``Metadata_Condition`` (gene), ``Metadata_ImagePath`` (absolute, str),
        ``Metadata_Channel`` and ``Metadata_ObjectKey``; sorted by plate, well and site.
    """
    with tqdm(
        total=int(plan["_size"].sum()),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"{bucket} images",
        disable=not progress,
    ) as bar:
        for path, key, size, etag in zip(
            plan["_path"], plan["Metadata_ObjectKey"], plan["_size"], plan["_etag"], strict=True
        ):
            download_object(client, bucket, key, path, int(size), etag, bar=bar, **download_kwargs)
    images = plan.assign(Metadata_ImagePath=[str(p.resolve()) for p in plan["_path"]])
    return (
        images[_IMAGE_COLUMNS]
        .sort_values(["Metadata_Plate", "Metadata_Well", "Metadata_Site"])
        .reset_index(drop=True)
    )


def fetch_cpg_images(
    dest_dir: str | os.PathLike,
    genes: str | Iterable[str],
    plates: Iterable[str] | None = None,
    channel: str = "DNA",
    sites: Iterable[int] | None = None,
    dataset: CpgDataset = ROHBAN_2017,
    endpoint_url: str | None = None,
    client: Any = None,
    progress: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
) -> pd.DataFrame:
    """Download the images of one channel of the wells of some genes from the Cell Painting Gallery.

    Defaults fetch the DNA (Hoechst) images of Rohban et al. 2017 from the public bucket
    ``cellpainting-gallery`` anonymously: :func:`plan_cpg_images`, then
    :func:`download_cpg_images` into ``dest_dir/<plate folder>/<path below the plate
    folder>`` (resumable, atomic, verified by size and by the ETag, which is the md5 of
    objects uploaded in one part). Files already complete are not downloaded again.

    Parameters
    ----------
    dest_dir : str or os.PathLike
        Where the images (and the downloaded plate map, under ``platemaps/``) go.
    genes : str or iterable of str
        Genes (plate-map ``gene_name`` values, e.g. ``"BRAF"``; controls ``"LacZ"``,
        ``"Luciferase"``, ``"eGFP"`` (role CTRL) and the untreated ``"EMPTY"`` wells) whose
        wells are fetched. Names are the screen's own (``MEK1`` for MAP2K1 S218D/S222D).
    plates : iterable of str, optional
        Plate barcodes; ``None`` takes every plate folder found.
    channel : str, default "DNA"
        Stain name looked up in ``dataset.channel_map``, or the channel token (e.g. ``"5"``).
    sites : iterable of int, optional
        Keep only these fields of view.
    dataset : CpgDataset, default ROHBAN_2017
        Bucket, key layout, plate map and file naming of the dataset.
    endpoint_url : str, optional
        S3 endpoint; ``None`` is AWS. Tests point it at a local moto server.
    client : botocore S3 client, optional
        Use this client instead of ``make_s3_client(endpoint_url, dataset.region)``.
    progress : bool, default True
        Show one progress bar over all bytes.
    retries : int, default 5
        Retries per object on connection errors (on top of botocore's own).
    backoff : float, default 1.0
        Seconds before the first retry; doubled each retry.

    Returns
    -------
    pandas.DataFrame
        See :func:`download_cpg_images`.

    Raises
    ------
    InputError
        No gene given, or see :func:`plan_cpg_images`; a download failed or did not verify.
    """
    genes = [genes] if isinstance(genes, str) else list(genes)
    if not genes:
        raise InputError("Give at least one gene")
    _split_prefix(dataset)  # check the prefix and channel before any network access
    _channel_token(dataset, channel)
    client = client if client is not None else make_s3_client(endpoint_url, dataset.region)
    kw = {"retries": retries, "backoff": backoff}
    plan = plan_cpg_images(client, dest_dir, genes, plates, channel, sites, dataset, **kw)
    return download_cpg_images(client, dataset.bucket, plan, progress=progress, **kw)


def screen_metadata(images: pd.DataFrame, root: str | os.PathLike) -> pd.DataFrame:
    """Return the ``metadata.csv`` table of a fetched screen: paths relative to `root`, no masks.

    Parameters
    ----------
    images : pandas.DataFrame
        The result of :func:`fetch_cpg_images`.
    root : str or os.PathLike
        The screen folder (the ``dest_dir`` of the fetch).

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site``, ``Metadata_Condition``,
        ``Metadata_ImagePath`` (relative to `root`) and an empty ``Metadata_MaskPath`` (the
        nuclei are segmented).
    """
    root = Path(root).resolve()
    out = images[["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Condition"]].copy()
    out["Metadata_ImagePath"] = [
        Path(p).resolve().relative_to(root).as_posix() for p in images["Metadata_ImagePath"]
    ]
    out["Metadata_MaskPath"] = ""
    return out
