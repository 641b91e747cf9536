"""``python3 run_all.py predict``: new-target mode from the command line.

:func:`main` parses the options, checks what can be checked without processing an image (the
image and mask folders, the pairing of images and masks, the results folder of the main
job), runs ``notebooks/09_predict_new_target.py`` with papermill and prints the 10 most
likely over-expressed genes. The notebook is the method; this module is its command line.

Every input problem ends in one line naming the file and the fix, exit status 1 and nothing
written: the checks here fail before the notebook starts, an input error the notebook finds
(a bad image, too few nuclei) is reported the same way. The executed notebook is saved in
the output folder beside the tables, only when the run succeeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from i2r_utils.artifacts import artifact
from i2r_utils.directions import read_translation_settings
from i2r_utils.io import InputError, atomic_path, missing_mask_error, pair_images_masks
from i2r_utils.reference import screen_folder

from .notebooks import execute, to_ipynb
from .segment import DEFAULT_RESULTS, check_options
from .units import QUIET_KERNEL

__all__ = [
    "NOTEBOOK",
    "DEFAULT_RESULTS",
    "build_parser",
    "check_inputs",
    "with_option_hints",
    "format_top10",
    "main",
]

#: The notebook of new-target mode.
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "09_predict_new_target.py"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python3 run_all.py predict``.

    Returns
    -------
    argparse.ArgumentParser
        The parser.
    """
    p = argparse.ArgumentParser(
        prog="run_all.py predict",
        description=(
            "Predict the over-expressed gene of your own chromatin images with the trained "
            "pipeline of a completed main job; prints the 10 most likely genes."
        ),
    )
    p.add_argument("--images", required=True, help="folder of raw chromatin images (tif/png)")
    p.add_argument(
        "--masks", help="folder of label masks named like the images (default: segment nuclei)"
    )
    p.add_argument(
        "--results-dir",
        default=str(DEFAULT_RESULTS),
        help="results of a completed main job (default: the project's results/default_seed0)",
    )
    p.add_argument(
        "--segmentation",
        choices=["classical", "unet", "unet_tta"],
        default="unet_tta",
        help="segmentation of images without masks: the main job's U-Net with test-time "
        "augmentation (default), without it, or the classical method",
    )
    p.add_argument(
        "--model", help="U-Net model file (default: the main job's segmentation/unet.pt)"
    )
    p.add_argument("--out", required=True, help="output folder (ranking.csv, top10.csv, ...)")
    p.add_argument(
        "--pixel-scale",
        type=float,
        default=1.0,
        help="linear pixel scale relative to the screen's 20x images (0.5 for 10x, 2 for 40x)",
    )
    p.add_argument(
        "--match-resolution",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --pixel-scale below 1, train the translation on the screen's images recorded "
        "at that scale (default; a minute or two more)",
    )
    p.add_argument(
        "--screen-dir",
        help="the screen's data folder, for --match-resolution (default: the one the main "
        "job's manifests record)",
    )
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a bad image stops the run before writing (stop) or is reported and skipped",
    )
    p.add_argument(
        "--fold", type=int, default=0, help="fold whose encoder and profile space to use"
    )
    p.add_argument(
        "--exclude-condition", help="screen condition left out of the translation's training set"
    )
    p.add_argument("--min-nuclei", type=int, default=2, help="fewest nuclei in all images together")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(
            f"{path}: {what} not found. --results-dir must be the results folder of a completed "
            "main job (`python3 run_all.py`, e.g. results/default_seed0)."
        )


def check_inputs(args: argparse.Namespace) -> None:
    """Check the options, the folders and the results folder before any image is processed.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of :func:`build_parser`.

    Raises
    ------
    InputError
        See :func:`i2r_pipeline.segment.check_options`; a missing part of the results
        folder (encoder of the fold, profiles, sphering transforms, gene embeddings,
        impactful conditions; the U-Net when images are to be segmented with it); a missing
        or empty image or mask folder; with ``--on-error stop``, an image without its mask.
    """
    check_options(args)
    results = Path(args.results_dir)
    needed = [
        ("encoders", "encoders folder"),
        ("cnn_condition_profiles", "condition profiles"),
        ("gene_embeddings", "gene embeddings"),
        ("impactful", "impactful conditions"),
    ]
    if read_translation_settings(results)["representation"] != "cnn":
        needed.append(("sphering_features", "sphering of the features"))
    for name, what in needed:
        path = results / "encoders" if name == "encoders" else artifact(results, name)
        _need(path, what)
    pairs = pair_images_masks(args.images, args.masks, strict=False)
    fold_dir = artifact(results, "encoder_dir", fold=args.fold)
    if not fold_dir.is_dir():
        found = sorted(p.name for p in fold_dir.parent.glob("fold*"))
        raise InputError(
            f"{fold_dir}: no encoder of fold {args.fold}; this results folder has {found}. "
            "Pass one of those with --fold."
        )
    _need(artifact(results, "sphering_fold", fold=args.fold), f"sphering of fold {args.fold}")
    if args.masks is None and args.segmentation != "classical":
        model = Path(args.model) if args.model else artifact(results, "segmentation_model")
        if not model.is_file():
            raise InputError(
                f"{model}: no trained U-Net to segment the images. Rerun the main job "
                "(python3 run_all.py) to train it, pass --model PATH or --masks DIR, or use "
                "--segmentation classical."
            )
    if args.pixel_scale < 1 and getattr(args, "match_resolution", False):
        if args.screen_dir and not Path(args.screen_dir).is_dir():
            raise InputError(
                f"--screen-dir {args.screen_dir}: not a folder; pass the screen's data folder "
                "(the one the main job read) or --no-match-resolution."
            )
        if not args.screen_dir:
            screen_folder(results)  # the recorded screen folder must still be there
    lacking = pairs[pairs["Metadata_MaskPath"] == ""]
    if args.masks is not None and args.on_error == "stop" and len(lacking):
        error = missing_mask_error(lacking["Metadata_ImagePath"].iloc[0], args.masks)
        raise InputError(
            f"{error} (stopped before writing anything; rerun with --on-error skip to skip bad "
            "images)"
        )


def with_option_hints(message: str, args: argparse.Namespace) -> str:
    """Add the options a user can change to a message about too few nuclei.

    The nucleus filters are the screen's and cannot be changed from the command line; the
    pixel scale, the masks and the fewest nuclei can.

    Parameters
    ----------
    message : str
        An input error of the notebook.
    args : argparse.Namespace
        The parsed options.

    Returns
    -------
    str
        ``message``, with the options appended when it is about nuclei after filtering.
    """
    if "after filtering" not in message:
        return message
    masks = f"other label masks than {args.masks}" if args.masks else "label masks of your own"
    return (
        f"{message} Options: --pixel-scale (now {args.pixel_scale:g}) for another "
        f"magnification, --masks DIR for {masks} (without it the nuclei are segmented), "
        f"--min-nuclei (now {args.min_nuclei}) to accept fewer nuclei."
    )


def _direction_text(info: dict) -> str:
    """``two-way`` or, when chosen automatically, ``auto: two-way``."""
    t = info["translation"]
    used = t.get("direction_used", t["direction"]).replace("_", "-")
    return f"auto: {used}" if t["direction"] == "auto" else used


def format_top10(ranking: pd.DataFrame, k: int = 10) -> str:
    """Format the ``k`` most likely genes as a small table, most likely first.

    Parameters
    ----------
    ranking : pandas.DataFrame
        ``rank``, ``gene``, ``score``, ``distance`` (``ranking.csv``; for two-way ranks
        ``distance`` is the mean rank).
    k : int
        Rows shown.

    Returns
    -------
    str
        The table.
    """
    label = (
        "mean rank"
        if "rank_gene_to_image" in ranking and "rank_image_to_gene" in ranking
        else "distance"
    )
    lines = [f"{'rank':>4}  {'gene':<12} {'score':>7} {label:>9}"]
    for r in ranking.head(k).itertuples(index=False):
        dist = f"{r.distance:>9.1f}" if label == "mean rank" else f"{r.distance:>9.3f}"
        lines.append(f"{r.rank:>4}  {r.gene:<12} {r.score:>7.3f} {dist}")
    return "\n".join(lines)


def _parameters(args: argparse.Namespace) -> dict:
    """Return the notebook's parameters for the command-line options."""
    return {
        "images_dir": args.images,
        "masks_dir": args.masks or "",
        "results_dir": args.results_dir,
        "out_dir": args.out,
        "fold": args.fold,
        "exclude_condition": args.exclude_condition or "",
        "pixel_scale": args.pixel_scale,
        "match_resolution": bool(args.match_resolution),
        "screen_dir": args.screen_dir or "",
        "on_error": args.on_error,
        "min_nuclei": args.min_nuclei,
        "segmentation": args.segmentation,
        "model_path": args.model or "",
        "progress": False,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python3 run_all.py predict ...``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after ``predict``; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success; 1 after an input error (printed with the file and the fix).
    """
    from papermill.exceptions import PapermillExecutionError

    args = build_parser().parse_args(argv)
    try:
        check_inputs(args)
    except InputError as exc:
        print(f"run_all.py predict: error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="i2r_predict_") as tmp:
        executed = Path(tmp) / f"{NOTEBOOK.stem}.ipynb"
        try:
            execute(
                to_ipynb(NOTEBOOK, Path(tmp)),
                executed,
                _parameters(args),
                Path.cwd(),
                progress=not args.quiet,
                stdout_file=sys.stdout,  # the notebook's notes, warnings and skipped images
                extra_arguments=list(QUIET_KERNEL),  # no kernel chatter (as the main job)
            )
        except PapermillExecutionError as exc:
            if exc.ename == "InputError":
                message = with_option_hints(exc.evalue, args)
                print(f"run_all.py predict: error: {message}", file=sys.stderr)
                return 1
            failed = out / f"failed_{executed.name}"
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(executed, failed)
            print(
                f"run_all.py predict: error: {exc.ename}: {exc.evalue} (the executed notebook "
                f"is {failed})",
                file=sys.stderr,
            )
            return 1
        with atomic_path(out / executed.name) as dest:
            shutil.copyfile(executed, dest)
    info = json.loads(artifact(out, "prediction_info").read_text())
    ranking = pd.read_csv(artifact(out, "prediction_ranking"))
    print(
        f"{info['n_images_used']} images ({info['n_images_skipped']} skipped), "
        f"{info['n_nuclei']} nuclei; fold {info['fold']} encoder; translation "
        f"({info['translation']['representation']} profiles, {_direction_text(info)}) trained on "
        f"{info['n_train_conditions']} conditions; {info['n_candidates']} candidate genes."
    )
    print("The 10 most likely over-expressed genes:")
    print(format_top10(ranking))
    if info.get("domain", {}).get("warnings"):
        print(
            "warning: these nuclei differ from the screen's (see the warnings above; "
            f"'domain' in {artifact(out, 'prediction_info')}): read the ranking with care."
        )
    print(
        f"Full ranking: {artifact(out, 'prediction_ranking')}; per-image report: "
        f"{artifact(out, 'prediction_images')}"
    )
    return 0
