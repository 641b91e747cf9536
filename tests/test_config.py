"""Static checks of configuration values: one line naming the key, the value, what is allowed."""

from pathlib import Path

import pytest

from i2r_pipeline import PipelineError
from i2r_pipeline.config import CHECKS, validate_config
from i2r_pipeline.pipeline import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_passes_and_every_default_key_is_checked():
    cfg = load_config(ROOT / "config" / "default.yaml")
    validate_config(cfg)
    assert set(cfg) <= set(CHECKS)
    validate_config({})  # keys that are absent are not checked


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("direction", "autoo", "one of image_to_gene, gene_to_image, two_way, auto"),
        ("representation", "cnns", "one of cnn, features, both"),
        ("kernel", "poly", "one of ntk, linear, rbf"),
        ("metric", "manhattan", "one of euclidean, cosine"),
        ("size", "huge", "one of tiny, default"),
        ("encoder_arch", "vit", "one of resnet18, small"),
        ("n_folds", 1, "an integer >= 2"),
        ("threads", 0, "a positive integer, or null for each notebook's default"),
        ("threads", "two", "a positive integer, or null for each notebook's default"),
        ("epochs", "eight", "an integer >= 1"),
        ("epochs", 0, "an integer >= 1"),
        ("n_permutations", 2.5, "an integer >= 1"),
        ("n_permutations", True, "an integer >= 1"),
        ("seed", -1, "an integer >= 0"),
        ("encoder_seed", -1, "null (the run's seed) or an integer >= 0"),
        ("encoder_seed", "one", "null (the run's seed) or an integer >= 0"),
        ("conditions", "BRAF", "a non-empty list of condition names"),
        ("conditions", [], "a non-empty list of condition names"),
        ("pixel_scale", float("nan"), "a number from 0.1 to 10, the linear pixel scale"),
        ("pixel_scale", float("inf"), "a number from 0.1 to 10"),
        ("pixel_scale", 1e6, "a number from 0.1 to 10"),
        ("pixel_scale", 1e-9, "a number from 0.1 to 10"),
        ("pixel_scale", 0, "a number from 0.1 to 10"),
        ("alpha", 0, "a finite number > 0"),
        ("sphering_lambda", -0.1, "a finite number >= 0"),
        ("alpha_grid", [1.0, -1.0], "a list of positive numbers"),
        ("screen_threshold", "elbw", '"elbow" or a number in (0, 1]'),
        ("random_baseline", "yes", "true or false"),
        ("input_bias", "yes", "true or false"),
        ("input_scaling", "raw", "one of global, none"),
        ("gene_norm", "L2", "one of none, l2"),
        ("condition_embedding", "mean", "one of profiles, nucleus_mean"),
    ],
)
def test_bad_values_name_key_value_and_allowed(key, value, allowed):
    cfg = load_config(ROOT / "config" / "default.yaml")
    cfg[key] = value
    with pytest.raises(PipelineError) as info:
        validate_config(cfg)
    msg = str(info.value)
    assert msg.startswith(f"configuration key {key} = {value!r}: must be {allowed}"), msg
    assert "\n" not in msg


def test_good_edge_values_pass():
    for key, value in [("screen_threshold", 0.665), ("alpha_grid", []), ("k_hop", 0),
                       ("sphering_lambda", 0), ("pixel_scale", 2), ("n_folds", 2),
                       ("pixel_scale", 0.1), ("pixel_scale", 10)]:  # fmt: skip
        validate_config({key: value})


def test_not_a_mapping():
    with pytest.raises(PipelineError, match="must be a mapping of keys to values, not list"):
        validate_config(["size", "tiny"])


def test_choices_match_the_method_library():
    from i2r_utils.directions import DIRECTIONS, INPUT_SCALINGS
    from i2r_utils.kernels import KERNELS
    from i2r_utils.profiles import CONDITION_EMBEDDINGS, REPRESENTATIONS
    from i2r_utils.ranking import GENE_NORMS

    def allowed(key):
        return CHECKS[key][1].removeprefix("one of ").split(", ")

    assert allowed("direction") == [*DIRECTIONS, "auto"]
    assert allowed("kernel") == list(KERNELS)
    assert allowed("representation") == list(REPRESENTATIONS)
    assert allowed("input_scaling") == list(INPUT_SCALINGS)
    assert allowed("gene_norm") == list(GENE_NORMS)
    assert allowed("condition_embedding") == list(CONDITION_EMBEDDINGS)


def test_image2reg_preset_is_the_original_translation():
    from i2r_utils.directions import method_label

    default = load_config(ROOT / "config" / "default.yaml")
    preset = load_config(ROOT / "config" / "image2reg.yaml")
    validate_config(preset)
    assert set(preset) <= set(CHECKS) and set(default) <= set(preset)
    want = {"condition_embedding": "nucleus_mean", "representation": "cnn", "kernel": "ntk",
            "depth": 1, "input_bias": True, "input_scaling": "none", "alpha_grid": [],
            "alpha": 1.0, "direction": "image_to_gene", "metric": "euclidean",
            "gene_norm": "l2"}  # fmt: skip
    assert {k: preset[k] for k in want} == want
    settings = {**preset, "alphas": preset["alpha_grid"] or [preset["alpha"]]}
    assert method_label(settings).startswith("image2reg translation: ")
    assert method_label({**default, "alphas": default["alpha_grid"]}).startswith("i2r ")


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("crop_centre", "center", "one of centroid, bbox"),
        ("crop_scaling", "minmax", "one of image, crop"),
        ("drop_large_crops", 1, "true or false"),
        ("context_window", 1, "0 (no context windows) or an integer >= 2"),
        ("context_window", 448.0, "0 (no context windows) or an integer >= 2"),
        ("training", "original", "one of i2r, image2reg"),
        ("latent_dim", 0, "an integer >= 1"),
        ("pretrained_weights", "", "null (random initialisation) or the path"),
    ],
)
def test_image2reg_encoder_keys(key, value, allowed):
    with pytest.raises(PipelineError) as info:
        validate_config({key: value})
    assert str(info.value).startswith(f"configuration key {key} = {value!r}: must be {allowed}")


def test_image2reg_encoder_needs_context_windows_and_choices_match_the_library():
    from i2r_utils.encoder import ARCHS, TRAININGS
    from i2r_utils.nuclei import CROP_CENTRES, CROP_SCALINGS

    with pytest.raises(PipelineError, match="needs context windows: set context_window"):
        validate_config({"encoder_arch": "image2reg"})
    validate_config({"encoder_arch": "image2reg", "context_window": 448, "training": "image2reg",
                     "pretrained_weights": "w/resnet18.pth", "latent_dim": 1024})  # fmt: skip

    def allowed(key):
        return CHECKS[key][1].removeprefix("one of ").split(", ")

    assert allowed("encoder_arch") == list(ARCHS) and allowed("training") == list(TRAININGS)
    assert allowed("crop_centre") == list(CROP_CENTRES)
    assert allowed("crop_scaling") == list(CROP_SCALINGS)


def test_cpu_preset_is_the_preset_with_the_default_encoder_element():
    full = load_config(ROOT / "config" / "image2reg.yaml")
    cpu = load_config(ROOT / "config" / "image2reg_cpu.yaml")
    default = load_config(ROOT / "config" / "default.yaml")
    validate_config(cpu)
    encoder = {"crop_centre", "crop_scaling", "drop_large_crops", "context_window",
               "encoder_arch", "input_size", "training", "latent_dim", "epochs"}  # fmt: skip
    assert set(cpu) == set(full)
    assert {k: cpu[k] for k in encoder} == {k: default[k] for k in encoder}
    assert {k: v for k, v in cpu.items() if k not in encoder} == {
        k: v for k, v in full.items() if k not in encoder
    }
    assert full["encoder_arch"] == "image2reg" and full["context_window"] == 448
