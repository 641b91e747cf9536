"""The Image2Reg demo data on Zenodo (record 8360327, DOI ``10.5281/zenodo.8360327``), its layout.

The README of uhlerlab/image2reg names DOI 10.5281/zenodo.8354979, the record of ``demo.zip``
(layout ``demo/<GENE>/images/{raw,unet_masks}``); the authors' demo script
(``image2reg_demo_new_data.sh``) downloads ``test_data.zip`` from record 8360327 since their
commit c1d9b73 ("updated doi"). This module fetches what the script fetches.

One zip archive with the layout ``test_data/sample_data/<GENE>/{raw,unet_masks}/...`` and
``test_data/UNKNOWN/images/{raw,unet_masks}/plate/...``.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pandas as pd

from i2r_utils.io import IMAGE_SUFFIXES, InputError, list_images_below

from .archive import extract, extraction_marker
from .http import download

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE2REG_DEMO_BASE_URL",
    "IMAGE2REG_DEMO_DOI",
    "IMAGE2REG_DEMO_FILENAME",
    "fetch_image2reg_demo",
    "read_image2reg_layout",
]

#: DOI of the Zenodo record with the Image2Reg demo data.
IMAGE2REG_DEMO_DOI = "10.5281/zenodo.8360327"
#: Base URL of the files of that record; ``<base>/<filename>`` is the download link.
IMAGE2REG_DEMO_BASE_URL = "https://zenodo.org/records/8360327/files"
#: The archive of the demo data in that record.
IMAGE2REG_DEMO_FILENAME = "test_data.zip"


def fetch_image2reg_demo(
    dest_dir: str | os.PathLike,
    base_url: str = IMAGE2REG_DEMO_BASE_URL,
    filename: str = IMAGE2REG_DEMO_FILENAME,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    keep_archive: bool = True,
    **download_kwargs: Any,
) -> Path:
    """Download and unpack the Image2Reg demo data from Zenodo (DOI 10.5281/zenodo.8360327).

    Downloads ``<base_url>/<filename>`` to ``dest_dir/<filename>`` with
    :func:`~i2r_pipeline.fetch.http.download` and unpacks it into `dest_dir` with
    :func:`~i2r_pipeline.fetch.archive.extract`, which yields ``dest_dir/test_data/...``.
    Read the result with :func:`read_image2reg_layout`. Rerunning after a complete run does
    nothing (no network access).

    No checksum is built in because none could be verified when this was written: pass the
    one shown on the Zenodo record page (https://doi.org/10.5281/zenodo.8360327, "md5:...")
    as `md5` (or a sha256 you computed) to have the download verified. Without one the sha256
    of the downloaded archive is logged so that it can be pinned.

    Parameters
    ----------
    dest_dir : str or os.PathLike
        Folder for the archive and its contents.
    base_url : str, default IMAGE2REG_DEMO_BASE_URL
        URL of the record's files folder (tests point it at a local server).
    filename : str, default "test_data.zip"
        The archive in that folder.
    sha256, md5 : str, optional
        Expected checksum of the archive.
    progress : bool, default True
        Show a progress bar.
    keep_archive : bool, default True
        Keep the archive after unpacking (set False to save disk space).
    **download_kwargs
        Passed to ``download`` (``timeout``, ``retries``, ``backoff``, ``chunk_size``).

    Returns
    -------
    pathlib.Path
        `dest_dir`, which contains ``test_data/``.
    """
    dest_dir = Path(dest_dir)
    archive = dest_dir / filename
    if extraction_marker(archive, dest_dir).exists() and not archive.exists():
        logger.info("Image2Reg demo data already in %s: nothing to do", dest_dir)
        return dest_dir
    url = f"{base_url.rstrip('/')}/{urllib.parse.quote(filename)}"
    download(url, archive, sha256=sha256, md5=md5, progress=progress, **download_kwargs)
    extract(archive, dest_dir)
    if not keep_archive:
        archive.unlink()
    return dest_dir


def _layout_groups(
    root: Path, base: Path, include_unknown: bool | None
) -> list[tuple[str, Path, Path, bool]]:
    """Return ``(condition, raw folder, mask folder, required)`` for each condition folder."""
    sample = base / "sample_data"
    unknown = base / "UNKNOWN"
    if not sample.is_dir() and not unknown.is_dir():
        raise InputError(
            f"{root} does not contain the Image2Reg layout: expected test_data/sample_data/<GENE>/"
            "{raw,unet_masks}/ and/or test_data/UNKNOWN/images/{raw,unet_masks}/plate/. Run "
            "fetch_image2reg_demo() or point `root` at the folder that contains test_data/."
        )
    groups: list[tuple[str, Path, Path, bool]] = []
    if sample.is_dir():
        for gene_dir in sorted(
            p for p in sample.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            groups.append((gene_dir.name, gene_dir / "raw", gene_dir / "unet_masks", True))
    if unknown.is_dir() and include_unknown is not False:
        images = unknown / "images"
        plate_dirs = (images / "raw" / "plate", images / "unet_masks" / "plate")
        groups.append(("UNKNOWN", *plate_dirs, bool(include_unknown)))
    if not groups:
        raise InputError(f"{sample} contains no <GENE> folders and UNKNOWN was excluded")
    return groups


def _pair_condition(
    condition: str, raw_dir: Path, mask_dir: Path, required: bool
) -> list[tuple[str, str, str]]:
    """Pair the raw images of one condition with their masks: ``(condition, image, mask)``."""
    exts = "/".join(IMAGE_SUFFIXES)
    raws = [p.relative_to(raw_dir) for p in list_images_below(raw_dir)]
    if not raws:
        if not required:
            logger.info("%s holds no images: skipping the UNKNOWN condition", raw_dir)
            return []
        raise InputError(
            f"The raw image folder {raw_dir} of condition {condition} is empty or missing (no "
            f"{exts} files). Put the raw chromatin images of {condition} there, or remove the "
            "condition's folder."
        )
    masks = {p.relative_to(mask_dir) for p in list_images_below(mask_dir)}
    if not masks:
        raise InputError(
            f"The mask folder {mask_dir} of condition {condition} is empty or missing (no "
            f"{exts} files), but {raw_dir} holds {len(raws)} raw images. Put one nuclear "
            "segmentation mask per raw image there, named exactly like the raw image."
        )
    missing = [r for r in raws if r not in masks]
    if missing:
        first = missing[0]
        raise InputError(
            f"The raw image {raw_dir / first} has no mask: expected {mask_dir / first} (the "
            f"same file name in {mask_dir}). {len(missing)} of {len(raws)} raw images of "
            f"{condition} lack a mask. Add the masks with exactly the raw images' file names, "
            "or remove the raw images that have none."
        )
    return [(condition, str(raw_dir / rel), str(mask_dir / rel)) for rel in raws]


def read_image2reg_layout(
    root: str | os.PathLike, include_unknown: bool | None = None
) -> pd.DataFrame:
    """Index the raw images and nuclear masks of the Image2Reg demo layout.

    The layout (``root`` may be the folder containing ``test_data`` or ``test_data`` itself)::

        test_data/sample_data/<GENE>/raw/...                 raw chromatin images
        test_data/sample_data/<GENE>/unet_masks/...          masks, same relative path
        test_data/UNKNOWN/images/raw/plate/...               images of an unknown condition
        test_data/UNKNOWN/images/unet_masks/plate/...        their masks

    Every raw image must have a mask with exactly the same file name (and sub-folder) in the
    corresponding mask folder; Image2Reg pairs them by name. Masks without a raw image are
    ignored. Images are the files the pipeline reads (:data:`i2r_utils.io.IMAGE_SUFFIXES`);
    hidden files and folders are skipped.

    Parameters
    ----------
    root : str or os.PathLike
        Folder containing ``test_data/`` (e.g. the return value of
        :func:`fetch_image2reg_demo`), or the ``test_data`` folder.
    include_unknown : bool or None, default None
        ``None``: include ``UNKNOWN`` if its raw folder holds images, skip it if empty (the
        demo ships it empty for the user to fill). ``True``: it must hold images. ``False``:
        skip it.

    Returns
    -------
    pandas.DataFrame
        One row per raw image with ``Metadata_Condition`` (gene or ``"UNKNOWN"``),
        ``Metadata_ImagePath`` and ``Metadata_MaskPath`` (absolute paths as str), sorted by
        condition and path.

    Raises
    ------
    InputError
        No ``sample_data``/``UNKNOWN`` folder, an empty raw folder, an empty mask folder, or a
        raw image without an equally named mask. The message names the folder or file and
        the fix.
    """
    root = Path(root).resolve()
    base = root / "test_data" if (root / "test_data").is_dir() else root
    rows = []
    for group in _layout_groups(root, base, include_unknown):
        rows += _pair_condition(*group)
    if not rows:
        raise InputError(f"No images found under {base}")
    return pd.DataFrame(
        rows, columns=["Metadata_Condition", "Metadata_ImagePath", "Metadata_MaskPath"]
    )
