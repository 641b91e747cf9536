"""Command line of ``python3 run_all.py data {demo,cpg,cpg-profiles,layout} ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from i2r_utils.columns import CONTROL
from i2r_utils.cpg_profiles import CPG_PROFILES_FILE
from i2r_utils.io import InputError, write_table
from i2r_utils.names import check_output_dir

from .cpg import (
    CPG_BUCKET,
    ROHBAN_2017,
    ROHBAN_PLATEMAP_KEY,
    ROHBAN_PLATES,
    fetch_cpg_images,
    screen_metadata,
)
from .cpg_profiles import PROFILE_STAGES, ROHBAN_PROFILE_STAGE, fetch_cpg_profiles
from .image2reg import (
    IMAGE2REG_DEMO_BASE_URL,
    IMAGE2REG_DEMO_DOI,
    IMAGE2REG_DEMO_FILENAME,
    fetch_image2reg_demo,
    read_image2reg_layout,
)

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_all.py data",
        description=(
            "Fetch the public Image2Reg data: the demo archive from Zenodo "
            f"(DOI {IMAGE2REG_DEMO_DOI}) or Rohban et al. 2017 DNA images from the Cell Painting "
            "Gallery. Downloads are resumable and checksum-verified: rerun an interrupted or "
            "corrupt fetch to repair it."
        ),
    )
    sub = parser.add_subparsers(
        dest="source", required=True, metavar="{demo,cpg,cpg-profiles,layout}"
    )
    demo = sub.add_parser("demo", help="the Image2Reg demo archive (Zenodo)")
    demo.add_argument("--dest", default="data/image2reg_demo", help="destination folder")
    demo.add_argument("--md5", help="expected md5 of the archive (as shown on Zenodo)")
    demo.add_argument("--sha256", help="expected sha256 of the archive")
    demo.add_argument("--base-url", default=IMAGE2REG_DEMO_BASE_URL, help="files URL of the record")
    demo.add_argument("--filename", default=IMAGE2REG_DEMO_FILENAME, help="archive file name")
    demo.add_argument("--no-keep-archive", action="store_true", help="delete the archive after")
    cpg = sub.add_parser("cpg", help="Rohban et al. 2017 images (Cell Painting Gallery, S3)")
    cpg.add_argument("--dest", default="data/rohban2017", help="destination folder")
    cpg.add_argument(
        "--genes",
        required=True,
        help="comma-separated plate-map genes, e.g. BRAF,JUN,EMPTY (controls: LacZ, "
        "Luciferase, eGFP)",
    )
    cpg.add_argument("--plates", help=f"comma-separated plates (default all of {ROHBAN_PLATES})")
    cpg.add_argument("--sites", help="comma-separated fields of view (default all)")
    cpg.add_argument("--channel", default="DNA", help="stain name or channel token")
    cpg.add_argument("--bucket", default=CPG_BUCKET, help="S3 bucket")
    cpg.add_argument("--endpoint-url", help="S3 endpoint (default AWS)")
    cpg.add_argument("--platemap", default=ROHBAN_PLATEMAP_KEY, help="plate map key or file")
    prof = sub.add_parser("cpg-profiles", help="Rohban et al. 2017 well profiles (cpg0017, S3)")
    prof.add_argument("--dest", default="data/real/cpg0017_profiles", help="destination folder")
    prof.add_argument("--plates", help=f"comma-separated plates (default all of {ROHBAN_PLATES})")
    prof.add_argument(
        "--stage",
        default=ROHBAN_PROFILE_STAGE,
        help=f"profiling-recipe stage, one of {PROFILE_STAGES} ('' = raw aggregate)",
    )
    prof.add_argument("--bucket", default=CPG_BUCKET, help="S3 bucket")
    prof.add_argument("--endpoint-url", help="S3 endpoint (default AWS)")
    prof.add_argument("--platemap", default=ROHBAN_PLATEMAP_KEY, help="plate map key or file")
    layout = sub.add_parser("layout", help="index an unpacked Image2Reg demo folder")
    layout.add_argument("--root", default="data/image2reg_demo", help="folder with test_data/")
    for p in (demo, cpg, prof, layout):
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _csv_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _fetch_demo(args: argparse.Namespace, progress: bool) -> tuple[pd.DataFrame, Path]:
    root = fetch_image2reg_demo(
        args.dest,
        base_url=args.base_url,
        filename=args.filename,
        sha256=args.sha256,
        md5=args.md5,
        progress=progress,
        keep_archive=not args.no_keep_archive,
    )
    return read_image2reg_layout(root), Path(root) / "images.csv"


def _fetch_cpg(args: argparse.Namespace, progress: bool) -> tuple[pd.DataFrame, Path]:
    """Fetch the images and write the screen's ``metadata.csv`` beside them."""
    sites = _csv_list(args.sites)
    dest = Path(args.dest)
    table = fetch_cpg_images(
        dest,
        genes=_csv_list(args.genes) or [],
        plates=_csv_list(args.plates),
        sites=None if sites is None else [int(s) for s in sites],
        channel=args.channel,
        dataset=replace(ROHBAN_2017, bucket=args.bucket, platemap=args.platemap),
        endpoint_url=args.endpoint_url,
        progress=progress,
    )
    write_table(screen_metadata(table, dest), dest / "metadata.csv")
    print(
        f"screen metadata written to {dest / 'metadata.csv'} (no masks: the nuclei are "
        f"segmented); run the pipeline on it with `python3 run_all.py --data-dir {args.dest}` "
        f"(include the {CONTROL} control wells in --genes)"
    )
    return table, dest / "images.csv"


def _fetch_profiles(args: argparse.Namespace, progress: bool) -> None:
    """Fetch the per-well profiles; they write their own table and manifest."""
    table = fetch_cpg_profiles(
        args.dest,
        plates=_csv_list(args.plates) or ROHBAN_PLATES,
        bucket=args.bucket,
        endpoint_url=args.endpoint_url,
        stage=args.stage,
        platemap=args.platemap,
        progress=progress,
    )
    n_feat = sum(not c.startswith("Metadata_") for c in table.columns)
    print(
        f"{len(table)} wells of {table['Metadata_Plate'].nunique()} plates, {n_feat} features: "
        f"{Path(args.dest) / CPG_PROFILES_FILE}; evaluate them with `python3 run_all.py "
        f"--dataset rohban_profiles --data-dir {args.dest}`"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python3 run_all.py data {demo,cpg,layout} ...``.

    ``demo`` downloads and unpacks the Image2Reg demo archive into ``--dest`` and writes the
    index of its images and masks to ``<dest>/images.csv``; ``cpg`` downloads the DNA images
    of ``--genes`` from the Cell Painting Gallery into ``--dest`` and writes
    ``<dest>/images.csv`` (plate, well, site, gene, path, object key) and the screen table
    ``<dest>/metadata.csv`` (paths relative to ``--dest``, no masks: the nuclei are
    segmented), so ``python3 run_all.py --data-dir <dest>`` runs on it; ``layout`` only
    (re)writes the index of an unpacked demo folder; ``cpg-profiles`` downloads the per-well
    profiles of the screen (cpg0017) into ``--dest`` and writes their merged table
    (:func:`~i2r_pipeline.fetch.cpg_profiles.fetch_cpg_profiles`). Tables are written
    atomically.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after ``data``; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success, 1 when a download, checksum, archive or layout error was reported
        (the message says what to do).
    """
    args = _build_parser().parse_args(argv)
    progress = not args.quiet
    try:
        if args.source != "layout":
            check_output_dir(args.dest, "--dest")  # before any network access
        if args.source == "demo":
            table, out = _fetch_demo(args, progress)
        elif args.source == "layout":
            table, out = read_image2reg_layout(args.root), Path(args.root) / "images.csv"
        elif args.source == "cpg-profiles":
            _fetch_profiles(args, progress)
            return 0
        else:
            table, out = _fetch_cpg(args, progress)
    except (InputError, ValueError) as exc:
        print(f"run_all.py data {args.source}: error: {exc}", file=sys.stderr)
        return 1
    write_table(table, out)
    counts = table.groupby("Metadata_Condition").size()
    print(f"{len(table)} images of {len(counts)} conditions; index written to {out}")
    for condition, n in counts.items():
        print(f"  {condition}: {n} images")
    return 0
