"""Tests of i2r_utils.segmentation (classical, U-Net, test-time augmentation)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from i2r_utils.metrics import map_dsb
from i2r_utils.segmentation import (
    D4_TRANSFORMS,
    UNet,
    annotated_tiles,
    apply_transform,
    evaluate_segmentation,
    invert_transform,
    load_annotated_nuclei,
    load_unet,
    merge_instances_tta,
    plot_segmentation_overlays,
    plot_tta_deltas,
    predict_unet,
    probabilities_to_labels,
    resolve_tta,
    save_unet,
    segment_nuclei,
    train_unet,
    tta_map_delta,
    unet_targets,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuclei_stardist_example"

# mAP_DSB of the classical method (default parameters) on the real example image, measured
# with scikit-image 0.26 / scipy 1.17: 0.390. The bound leaves room for library changes.
REAL_CLASSICAL_MAP_MEASURED = 0.390


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """Tiny models run fastest, and most predictably on a busy machine, on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_disks(shape=(128, 128), n=8, radius=(6, 10), seed=0):
    """Non-touching bright disks on a dark noisy background, with their label image."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, dtype=np.int32)
    centers = []
    while len(centers) < n:
        r = rng.integers(radius[0], radius[1] + 1)
        cy, cx = rng.integers(r + 2, shape[0] - r - 2), rng.integers(r + 2, shape[1] - r - 2)
        if all(np.hypot(cy - y, cx - x) > r + rr + 3 for y, x, rr in centers):
            centers.append((cy, cx, r))
            labels[(rows - cy) ** 2 + (cols - cx) ** 2 <= r**2] = len(centers)
    brightness = rng.uniform(0.6, 1.0, size=n + 1)
    brightness[0] = 0.1
    image = brightness[labels] + rng.normal(0, 0.05, shape)
    return (np.clip(image, 0, None) * 1000).astype(np.uint16), labels


# --- input validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((4, 4, 3)), ValueError, "must be 2-D"),
        (np.zeros(5), ValueError, "must be 2-D"),
        (np.zeros((0, 5)), ValueError, "empty"),
        (np.zeros((5, 5), dtype=bool), TypeError, "got bool"),
        (np.zeros((5, 5), dtype=complex), TypeError, "integer or floating"),
        (np.array([[1.0, np.nan], [0, 1]]), ValueError, "NaN"),
        (torch.zeros(5, 5), TypeError, "torch.Tensor"),
    ],
)
def test_invalid_images_are_rejected(image, error, match):
    with pytest.raises(error, match=match):
        segment_nuclei(image)


def test_bad_method_model_and_tta_names():
    image, _ = synthetic_disks(n=2)
    with pytest.raises(ValueError, match="unknown method"):
        segment_nuclei(image, method="magic")
    with pytest.raises(ValueError, match="needs a trained model"):
        segment_nuclei(image, method="unet")
    with pytest.raises(ValueError, match="unknown TTA"):
        segment_nuclei(image, tta=["identity", "rot45"])


# --- classical -------------------------------------------------------------------------


def test_classical_on_synthetic_disks():
    image, truth = synthetic_disks()
    labels = segment_nuclei(image, method="classical")
    assert labels.dtype == np.int32 and labels.shape == image.shape
    assert labels.max() == truth.max() == 8
    assert map_dsb(truth, labels) > 0.9


def test_classical_splits_two_touching_disks():
    rows, cols = np.indices((64, 96))
    truth = np.zeros((64, 96), dtype=np.int32)
    truth[(rows - 32) ** 2 + (cols - 33) ** 2 <= 100] = 1
    truth[(rows - 32) ** 2 + (cols - 52) ** 2 <= 100] = 2
    image = np.where(truth > 0, 800, 100).astype(np.uint16)
    assert segment_nuclei(image, min_distance=5).max() == 2


def test_constant_image_gives_no_object():
    assert segment_nuclei(np.full((32, 32), 7, dtype=np.uint8)).max() == 0


def test_classical_with_tta():
    image, truth = synthetic_disks(seed=1)
    labels = segment_nuclei(image, tta="d4")
    assert labels.max() == truth.max()
    assert map_dsb(truth, labels) > 0.9
    delta = tta_map_delta([image], [truth], method="classical", tta=["identity", "fliplr", "rot90"])
    assert set(delta) == {"original", "tta", "delta"}
    np.testing.assert_allclose(delta["delta"], delta["tta"] - delta["original"])
    assert delta["original"][0] > 0.9


# --- D4 transforms and instance merging ------------------------------------------------


def test_resolve_tta():
    assert resolve_tta(None) == [] and resolve_tta("none") == []
    assert resolve_tta("d4") == list(D4_TRANSFORMS) and len(D4_TRANSFORMS) == 8
    assert resolve_tta(["identity", "fliplr", "identity"]) == ["identity", "fliplr"]
    assert resolve_tta("rot90") == ["rot90"]


@pytest.mark.parametrize("name", D4_TRANSFORMS)
def test_deaugmentation_is_exact_inverse(name):
    rng = np.random.default_rng(0)
    array = rng.random((5, 7))
    stacked = rng.random((3, 5, 7))  # channels first, as U-Net probabilities
    for a in (array, stacked):
        out = apply_transform(a, name)
        np.testing.assert_array_equal(invert_transform(out, name), a)
    # the 8 transforms are distinct elements of D4
    outputs = {
        (apply_transform(array, n).shape, apply_transform(array, n).tobytes())
        for n in D4_TRANSFORMS
    }
    assert len(outputs) == 8


def test_transforms_match_numpy_definitions():
    a = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(apply_transform(a, "rot90"), np.rot90(a))
    np.testing.assert_array_equal(apply_transform(a, "fliplr"), np.fliplr(a))
    np.testing.assert_array_equal(apply_transform(a, "flipud"), np.flipud(a))
    np.testing.assert_array_equal(apply_transform(a, "transpose"), a.T)
    np.testing.assert_array_equal(apply_transform(a, "antitranspose"), np.rot90(a, 2).T)


def test_merge_identical_inputs_returns_input():
    _, truth = synthetic_disks(seed=3)
    np.testing.assert_array_equal(merge_instances_tta([truth] * 3), truth)
    np.testing.assert_array_equal(merge_instances_tta([truth]), truth)
    shuffled = np.where(truth > 0, 100 - truth, 0)  # same objects, other label values
    merged = merge_instances_tta([truth, shuffled, truth])
    assert map_dsb(truth, merged) == 1.0


def test_merge_majority_vote_drops_minority_object():
    base = np.zeros((40, 40), dtype=np.int32)
    base[5:15, 5:15] = 1
    with_extra = base.copy()
    with_extra[25:35, 25:35] = 2
    merged = merge_instances_tta([base, with_extra, base])
    np.testing.assert_array_equal(merged, base)
    # present in 2 of 3 versions -> kept
    assert merge_instances_tta([with_extra, with_extra, base]).max() == 2


def test_merge_pixelwise_majority_mask():
    versions = []
    for right in (15, 16, 17):  # the square grows by one column in each version
        v = np.zeros((30, 30), dtype=np.int32)
        v[5:15, 5:right] = 4
        versions.append(v)
    merged = merge_instances_tta(versions)
    expected = np.zeros((30, 30), dtype=np.int32)
    expected[5:15, 5:16] = 1  # columns covered in >= 2 of 3 versions
    np.testing.assert_array_equal(merged, expected)


def test_merge_validates_inputs():
    with pytest.raises(ValueError, match="empty"):
        merge_instances_tta([])
    with pytest.raises(ValueError, match="shape"):
        merge_instances_tta([np.zeros((3, 3), int), np.zeros((3, 4), int)])
    with pytest.raises(ValueError, match="min_votes"):
        merge_instances_tta([np.zeros((3, 3), int)], min_votes=2)


# --- U-Net -----------------------------------------------------------------------------


def test_unet_targets():
    mask = np.zeros((10, 10), dtype=np.int32)
    mask[2:7, 2:7] = 1
    t = unet_targets(mask)
    assert set(np.unique(t)) == {0, 1, 2}
    assert (t[3:6, 3:6] == 1).all() and t[2, 4] == 2 and t[0, 0] == 0


@pytest.mark.parametrize("depth", [3, 4])
def test_unet_shapes(depth):
    model = UNet(base_channels=4, depth=depth).eval()
    out = model(torch.zeros(2, 1, 32, 48))
    assert out.shape == (2, 3, 32, 48)
    probs = predict_unet(model, np.random.default_rng(0).random((37, 21)), tta="d4")
    assert probs.shape == (3, 37, 21)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_unet():
    data = [synthetic_disks(shape=(64, 64), n=4, seed=s) for s in range(3)]
    images, masks = zip(*data, strict=True)
    model, history = train_unet(
        images,
        masks,
        epochs=4,
        patch_size=32,
        batch_size=4,
        lr=1e-2,
        seed=0,
        device="cpu",
        progress=False,
        base_channels=4,
        depth=3,
        steps_per_epoch=10,
    )
    return model, history, images


def test_unet_loss_decreases(tiny_unet):
    _, history, _ = tiny_unet
    loss = np.array(history["loss"])
    assert loss.size == 40 and np.all(np.isfinite(loss))
    assert loss[-5:].mean() < 0.7 * loss[:5].mean()
    assert history["epoch_loss"][-1] < history["epoch_loss"][0]


def test_unet_training_is_deterministic():
    image, mask = synthetic_disks(shape=(64, 64), n=4, seed=7)
    kwargs = dict(epochs=1, patch_size=32, batch_size=2, lr=1e-2, device="cpu", progress=False)
    kwargs.update(base_channels=4, steps_per_epoch=3)
    rng_state = torch.get_rng_state()
    model_a, hist_a = train_unet([image], [mask], seed=5, **kwargs)
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG left untouched
    model_b, hist_b = train_unet([image], [mask], seed=5, **kwargs)
    _, hist_c = train_unet([image], [mask], seed=6, **kwargs)
    assert hist_a["loss"] == hist_b["loss"] != hist_c["loss"]
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unet_save_load_round_trip(tiny_unet, tmp_path):
    model, _, images = tiny_unet
    path = save_unet(model, tmp_path / "models" / "unet.pt")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["unet.pt"]
    loaded = load_unet(path, device="cpu")
    assert loaded.config == model.config
    for tta in (None, ["identity", "rot90"]):
        np.testing.assert_array_equal(
            predict_unet(loaded, images[0], tta=tta), predict_unet(model, images[0], tta=tta)
        )
    np.testing.assert_array_equal(
        segment_nuclei(images[0], "unet", loaded), segment_nuclei(images[0], "unet", model)
    )
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(Exception):  # noqa: B017 - torch raises its own unpickling error
        load_unet(tmp_path / "junk.pt")


def test_unet_segments_and_tta_runs(tiny_unet):
    model, _, _ = tiny_unet
    image, truth = synthetic_disks(shape=(64, 64), n=4, seed=10)
    labels = segment_nuclei(image, method="unet", model=model, tta="d4")
    assert labels.dtype == np.int32 and labels.shape == image.shape
    delta = tta_map_delta(image, truth, method="unet", model=model, tta="flips")
    assert delta["delta"].shape == (1,)


def test_probabilities_to_labels_separates_seeds():
    probs = np.zeros((3, 20, 30))
    probs[0] = 1.0
    probs[:, 5:15, 5:25] = [[[0.0]], [[0.0]], [[1.0]]]  # one foreground blob, all boundary
    probs[:, 8:12, 7:12] = [[[0.0]], [[1.0]], [[0.0]]]  # two interior seeds
    probs[:, 8:12, 18:23] = [[[0.0]], [[1.0]], [[0.0]]]
    labels = probabilities_to_labels(probs, min_size=1)
    assert labels.max() == 2
    assert np.count_nonzero(labels) == 200
    with pytest.raises(ValueError, match="shape"):
        probabilities_to_labels(probs[:2])


# --- real image -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_example():
    if not (DATA / "img2d.tif").exists():
        pytest.skip(f"real example data not found at {DATA} (expected ../shared beside the repo)")
    import tifffile

    return tifffile.imread(DATA / "img2d.tif"), tifffile.imread(DATA / "mask2d.tif")


def test_classical_on_real_stardist_example(real_example):
    image, truth = real_example
    labels = segment_nuclei(image, method="classical")
    score = map_dsb(truth, labels)
    assert score > REAL_CLASSICAL_MAP_MEASURED - 0.05, score
    assert 80 < labels.max() < 200


# --- evaluation helpers ----------------------------------------------------------------


def test_annotated_tiles():
    image = np.arange(100 * 70, dtype=float).reshape(100, 70)
    mask = np.zeros((100, 70), np.int32)
    mask[30:40, 25:40] = 9  # crosses the tile border at column 32
    imgs, masks, names = annotated_tiles(image, mask, 32)
    assert len(imgs) == 3 * 2 and names[:3] == ["r0c0", "r0c32", "r32c0"]
    np.testing.assert_array_equal(imgs[3], image[32:64, 32:64])
    assert masks[2].max() == 1 and masks[3].max() == 1  # the cut object, renumbered in both
    assert (masks[2] > 0).sum() + (masks[3] > 0).sum() == 10 * 15 - 2 * 15
    with pytest.raises(ValueError, match="tile_size"):
        annotated_tiles(image, mask, 200)


def test_load_annotated_nuclei_real_and_fallback(tiny_screen, tmp_path):
    fallback = load_annotated_nuclei(tmp_path / "absent", tiny_screen, n_fallback=3)
    assert len(fallback["images"]) == 3 and "synthetic" in fallback["source"]
    assert fallback["images"][0].shape == fallback["masks"][0].shape
    with pytest.raises(Exception, match="annotated nuclei not found"):
        load_annotated_nuclei(tmp_path / "absent")
    if (DATA / "img2d.tif").exists():
        real = load_annotated_nuclei(DATA, tile_size=128)
        assert len(real["images"]) == 16 and "real" in real["source"]


def test_evaluate_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [synthetic_disks(shape=(64, 64), n=3, seed=s) for s in range(3)]
    images, masks = zip(*pairs, strict=True)
    methods = {"classical": {}, "classical+TTA": {"tta": ["identity", "fliplr", "flipud"]}}
    scores, preds = evaluate_segmentation(images, masks, ["a", "b", "c"], methods, progress=False)
    assert len(scores) == 6 and set(scores["method"]) == set(methods)
    assert (scores["map_dsb"] > 0.8).all() and (scores["n_true"] == 3).all()
    np.testing.assert_array_equal(preds["classical"][1], segment_nuclei(images[1]))
    fig = plot_tta_deltas(scores, {"classical": "classical+TTA"})
    dots = fig.axes[0].collections[0].get_offsets()
    assert len(dots) == 3  # one dot per image
    expected = scores.pivot(index="image", columns="method", values="map_dsb")
    np.testing.assert_allclose(
        dots[:, 1], (expected["classical+TTA"] - expected["classical"]).to_numpy()
    )
    plt.close(fig)
    wrong = np.zeros_like(masks[0])
    wrong[:5, :5] = 1
    fig = plot_segmentation_overlays(images[0], masks[0], {"good": masks[0], "bad": wrong})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == "good: 3 TP, 0 FP, 0 FN" and titles[2] == "bad: 0 TP, 1 FP, 3 FN"
    plt.close(fig)
