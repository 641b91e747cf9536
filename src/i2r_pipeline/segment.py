"""``python3 run_all.py segment``: nucleus label images for a folder of images.

:func:`main` segments every image of ``--images`` (PNG or TIFF, 8 or 16 bit, one channel)
with the classical method, the U-Net or the U-Net with test-time augmentation (default) and
writes one uint16 label TIFF per image to ``--out``, named ``<stem>.tif`` (0 = background,
1..n = nuclei). Without ``--model`` the U-Net of a completed main job is used
(``<results-dir>/segmentation/unet.pt``, checked against the checksum recorded when it was
trained); the command says which file it uses.

Every input problem ends in one line naming the file and the fix, exit status 1: all images
are read and checked before the first label image is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from i2r_utils.artifacts import artifact
from i2r_utils.io import InputError, atomic_path, list_images, read_image
from i2r_utils.names import check_output_dir
from i2r_utils.progress import tqdm

from .config import CHECKS

__all__ = [
    "DEFAULT_RESULTS",
    "build_parser",
    "check_options",
    "check_inputs",
    "load_model",
    "main",
    "write_labels",
]

_METHODS = ("classical", "unet", "unet_tta")
#: Results of the default main job (the project's, whatever the current folder).
DEFAULT_RESULTS = Path(__file__).resolve().parents[2] / "results" / "default_seed0"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python3 run_all.py segment``.

    Returns
    -------
    argparse.ArgumentParser
        The parser.
    """
    p = argparse.ArgumentParser(
        prog="run_all.py segment",
        description=(
            "Segment the nuclei of a folder of fluorescence images (PNG/TIFF, 8 or 16 bit): "
            "one uint16 label TIFF per image, <stem>.tif, 0 = background."
        ),
    )
    p.add_argument("--images", required=True, help="folder of images (tif/tiff/png)")
    p.add_argument("--out", required=True, help="output folder of the label images")
    p.add_argument(
        "--method",
        choices=_METHODS,
        default="unet_tta",
        help="classical (Otsu + watershed), unet, or unet_tta (U-Net with test-time "
        "augmentation; default)",
    )
    p.add_argument(
        "--model", help="U-Net model file (default: the one the main job in --results-dir trained)"
    )
    p.add_argument(
        "--results-dir",
        default=str(DEFAULT_RESULTS),
        help="results of a completed main job (its segmentation/unet.pt is the default model; "
        "default: the project's results/default_seed0)",
    )
    p.add_argument(
        "--tta",
        choices=["d4", "thesis6"],
        default="d4",
        help="test-time augmentation of unet_tta: d4 (8 flips/rotations) or thesis6 (6 versions)",
    )
    p.add_argument(
        "--pixel-scale",
        type=float,
        default=1.0,
        help="linear pixel scale relative to 20x images (0.5 for 10x, 2 for 40x)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def check_options(args: argparse.Namespace) -> None:
    """Check the options that need no file: pixel scale, fewest nuclei, output folder.

    Shared by ``predict`` (``segment`` has no ``--min-nuclei``).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options with ``pixel_scale`` and ``out`` (``min_nuclei`` when present).

    Raises
    ------
    InputError
        A pixel scale outside :data:`i2r_pipeline.config.PIXEL_SCALE_RANGE` (or NaN), a
        ``--min-nuclei`` below 1, or an ``--out`` that is a file, lies below a file or
        cannot be written.
    """
    ok, allowed = CHECKS["pixel_scale"]
    if not ok(args.pixel_scale):
        raise InputError(f"--pixel-scale {args.pixel_scale:g}: must be {allowed}.")
    if getattr(args, "min_nuclei", 1) < 1:
        raise InputError(
            f"--min-nuclei {args.min_nuclei}: must be at least 1 (the fewest nuclei all "
            "images together must keep; default 2)."
        )
    check_output_dir(args.out, "--out")


def check_inputs(args: argparse.Namespace) -> list[Path]:
    """Check the options and the image folder; return the images to segment.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of :func:`build_parser`.

    Returns
    -------
    list of pathlib.Path
        The image files, sorted by name.

    Raises
    ------
    InputError
        A bad pixel scale or output folder (:func:`check_options`),
        ``--model`` with the classical method, an output folder equal to the image folder,
        a missing or empty image folder, or two images that would write the same
        ``<stem>.tif``.
    """
    check_options(args)
    if args.model and args.method == "classical":
        raise InputError(
            f"--model {args.model} is a U-Net; use it with --method unet or unet_tta, or drop "
            "--model for the classical method."
        )
    images = list_images(args.images, "image")
    if Path(args.out).resolve() == Path(args.images).resolve():
        raise InputError(
            f"{args.out}: --out is the image folder; the label images would replace the "
            "images of the same name. Pass another output folder."
        )
    return images  # list_images refuses two files with one stem (both would write <stem>.tif)


def load_model(args: argparse.Namespace):
    """Load the U-Net of ``--model``, or the main job's; say which.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (``model``, ``results_dir``).

    Returns
    -------
    (UNet, str)
        The network and a one-line description of its file.

    Raises
    ------
    InputError
        No model file, a checksum mismatch or a file that is not a saved U-Net.
    """
    from i2r_utils.unet_training import load_trained_unet

    path = Path(args.model) if args.model else artifact(args.results_dir, "segmentation_model")
    if not path.is_file():
        raise InputError(
            f"{path}: no trained U-Net. Run the main job (python3 run_all.py) to train it, "
            "pass --model PATH, or use --method classical."
        )
    model, info = load_trained_unet(path)
    source = "--model" if args.model else "the main job's model"
    return model, f"{source} {info['description']}"


def write_labels(labels: np.ndarray, path: Path) -> None:
    """Write a label image as a zlib-compressed uint16 TIFF, atomically.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image (0 = background).
    path : pathlib.Path
        Destination ``.tif``.

    Raises
    ------
    InputError
        More than 65,535 objects (they do not fit uint16).
    """
    import tifffile

    if labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise InputError(
            f"{path}: {labels.max()} objects do not fit a uint16 label image; split the image "
            "into tiles."
        )
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels.astype(np.uint16), compression="zlib")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python3 run_all.py segment ...``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after ``segment``; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success; 1 after an input error (printed with the file and the fix).
    """
    from i2r_utils.segmentation import segment_nuclei

    args = build_parser().parse_args(argv)
    try:
        paths = check_inputs(args)
        images = [read_image(p) for p in paths]  # every image checked before any output
        model = None
        if args.method != "classical":
            model, described = load_model(args)
            print(f"U-Net: {described}", flush=True)
    except InputError as exc:
        print(f"run_all.py segment: error: {exc}", file=sys.stderr)
        return 1
    tta = args.tta if args.method == "unet_tta" else None
    out, counts = Path(args.out), []
    for path, image in tqdm(
        list(zip(paths, images, strict=True)), desc="segment", disable=True if args.quiet else None
    ):
        labels = segment_nuclei(
            image, method=args.method, model=model, tta=tta, pixel_scale=args.pixel_scale
        )
        try:
            write_labels(labels, out / f"{path.stem}.tif")
        except InputError as exc:
            print(f"run_all.py segment: error: {exc}", file=sys.stderr)
            return 1
        counts.append(int(labels.max()))
    method = f"{args.method} ({args.tta})" if tta else args.method
    print(
        f"{len(paths)} label images ({method}) in {out}: {sum(counts)} nuclei, "
        f"{min(counts)}-{max(counts)} per image."
    )
    return 0
