"""Static checks of the main job's configuration values, before the first stage runs.

:data:`CHECKS` is one table: configuration key -> what its value must be. Keys that are not
in the table are passed on unchecked (their notebooks check them). :func:`validate_config`
reports the first bad value in one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from . import PipelineError

__all__ = ["CHECKS", "PIXEL_SCALE_RANGE", "validate_config", "choice", "integer", "number"]

#: Linear pixel scales accepted (relative to the screen's 20x images): 2x to 200x objectives.
#: The images are resampled by 1 / pixel_scale, so 0.1 already makes them 100 times larger.
PIXEL_SCALE_RANGE = (0.1, 10.0)


def choice(*allowed) -> tuple[Callable, str]:
    """Check: one of ``allowed``."""
    return (lambda v: isinstance(v, str) and v in allowed), "one of " + ", ".join(allowed)


def integer(low: int) -> tuple[Callable, str]:
    """Check: an integer (not a bool) of at least ``low``."""
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), (
        f"an integer >= {low}"
    )


def _real(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def number(low: float = 0.0, strict: bool = True) -> tuple[Callable, str]:
    """Check: a finite number above ``low`` (or at least ``low`` when not ``strict``)."""
    if strict:
        return (lambda v: _real(v) and v > low), f"a finite number > {low:g}"
    return (lambda v: _real(v) and v >= low), f"a finite number >= {low:g}"


def _conditions(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(c, str) and c for c in v)


def _threshold(v) -> bool:
    return v == "elbow" or (_real(v) and 0 < v <= 1)


def _grid(v) -> bool:
    return isinstance(v, list) and all(_real(a) and a > 0 for a in v)


def _optional_path(v) -> bool:
    return v is None or (isinstance(v, str) and bool(v.strip()))


#: Configuration key -> (check, what is allowed).
CHECKS: dict[str, tuple[Callable, str]] = {
    "size": choice("tiny", "default"),
    "seed": integer(0),
    "conditions": (_conditions, "a non-empty list of condition names, e.g. [BRAF, JUN]"),
    "pixel_scale": (
        lambda v: _real(v) and PIXEL_SCALE_RANGE[0] <= v <= PIXEL_SCALE_RANGE[1],
        f"a number from {PIXEL_SCALE_RANGE[0]:g} to {PIXEL_SCALE_RANGE[1]:g}, the linear pixel "
        "scale relative to the screen's 20x images (0.5 for 10x, 2 for 40x)",
    ),
    "screen_threshold": (_threshold, '"elbow" or a number in (0, 1]'),
    "n_folds": integer(2),
    "encoder_arch": choice("resnet18", "small", "image2reg"),
    "input_size": integer(1),
    "epochs": integer(1),
    "samples_per_class": integer(1),
    "encoder_seed": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
        "null (the run's seed) or an integer >= 0",
    ),
    "sphering_lambda": number(0.0, strict=False),
    "k_hop": integer(0),
    "random_baseline": ((lambda v: isinstance(v, bool)), "true or false"),
    "n_permutations": integer(1),
    "direction": choice("image_to_gene", "gene_to_image", "two_way", "auto"),
    "representation": choice("cnn", "features", "both"),
    "kernel": choice("ntk", "linear", "rbf"),
    "depth": integer(1),
    "alpha_grid": (_grid, "a list of positive numbers (empty: use alpha)"),
    "alpha": number(0.0),
    "metric": choice("euclidean", "cosine"),
    "gae_epochs": integer(1),
    "unet_epochs": integer(1),
    # sphering convention (profiles)
    "sphering_convention": choice("pycytominer", "deepprofiler"),
    # nucleus segmentation
    "segment_method": choice("unet_tta", "unet", "classical"),
    "segmentation_tta": choice("d4", "thesis6"),
    "unet_max_minutes": number(0.0),
    # --- Image2Reg's crops, context windows, two-branch encoder and schedule ---
    "crop_centre": choice("centroid", "bbox"),
    "crop_scaling": choice("image", "crop"),
    "drop_large_crops": ((lambda v: isinstance(v, bool)), "true or false"),
    "feature_scaling": choice("image", "raw"),
    "context_window": (
        (lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == 0 or v >= 2)),
        "0 (no context windows) or an integer >= 2, e.g. 448",
    ),
    "training": choice("i2r", "image2reg"),
    "latent_dim": integer(1),
    "batch_size": integer(0),
    "pretrained_weights": (
        (lambda v: v is None or (isinstance(v, str) and bool(v))),
        "null (random initialisation) or the path of a torchvision ResNet18 state dict",
    ),
}

# --- translation elements of the original Image2Reg (i2r_utils.directions, .ranking, .profiles)
CHECKS.update(
    {
        "input_bias": ((lambda v: isinstance(v, bool)), "true or false"),
        "input_scaling": choice("global", "none"),
        "gene_norm": choice("none", "l2"),
        "condition_embedding": choice("profiles", "nucleus_mean"),
    }
)

# --- gene embeddings: interactome rule, pruning, autoencoder, per-target protocol ---
CHECKS.update({
    "interactome": choice("shortest_path", "pcst"),
    "network_pruning": choice("none", "image2reg"),
    "expression_path": (_optional_path, "null or a path to a genes x samples table"),
    "gae_arch": choice("i2r", "image2reg"),
    "gae_hidden": integer(1),
    "gene_dim": integer(1),
    "gae_gamma": number(0.0, strict=False),
    "candidate_protocol": choice("all_targets", "new_target"),
})  # fmt: skip

# --- threads of every notebook (i2r_utils.runtime.pin_threads) ---
CHECKS["threads"] = (
    lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "a positive integer, or null for each notebook's default",
)


def _check_encoder_context(cfg: dict) -> None:
    """Check that the two-branch encoder gets the context windows of the nuclei step."""
    if cfg.get("encoder_arch") == "image2reg" and not cfg.get("context_window", 0):
        raise PipelineError(
            "configuration key encoder_arch = 'image2reg' needs context windows: set "
            "context_window (e.g. 448, the original) above 0."
        )


def validate_config(cfg: dict) -> None:
    """Check every value of ``cfg`` that :data:`CHECKS` knows.

    Parameters
    ----------
    cfg : dict
        The configuration (after the command-line options were applied).

    Raises
    ------
    PipelineError
        At the first bad value: ``configuration key direction = 'autoo': must be one of
        image_to_gene, gene_to_image, two_way, auto.``
    """
    if not isinstance(cfg, dict):
        raise PipelineError(
            f"the configuration must be a mapping of keys to values, not {type(cfg).__name__}."
        )
    for key, (ok, allowed) in CHECKS.items():
        if key in cfg and not ok(cfg[key]):
            raise PipelineError(f"configuration key {key} = {cfg[key]!r}: must be {allowed}.")
    _check_encoder_context(cfg)
