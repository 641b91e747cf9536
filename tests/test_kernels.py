import numpy as np
import pytest

from i2r_utils.kernels import (
    augment_bias,
    kernel_matrix,
    median_squared_distance,
    ntk_relu,
    squared_distances,
)


def _empirical_ntk(x, width, rng):
    """Gradient Gram matrix of a random 2-hidden-layer ReLU net (NTK parameterisation)."""
    w1 = rng.standard_normal((width, x.shape[1]))
    w2 = rng.standard_normal((width, width))
    v = rng.standard_normal(width)
    c = np.sqrt(2 / width)
    h1 = x @ w1.T
    a1 = c * np.maximum(h1, 0)
    h2 = a1 @ w2.T
    a2 = c * np.maximum(h2, 0)
    d2 = c * v[None] * (h2 > 0)  # df/dh2
    d1 = c * (d2 @ w2) * (h1 > 0)  # df/dh1
    return a2 @ a2.T + (d2 @ d2.T) * (a1 @ a1.T) + (d1 @ d1.T) * (x @ x.T)


def test_ntk_closed_form_matches_wide_random_network():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    emp = np.mean([_empirical_ntk(x, 2048, rng) for _ in range(4)], axis=0)
    assert np.abs(emp - ntk_relu(x, depth=2)).max() < 0.25
    assert np.abs(emp - ntk_relu(x, depth=3)).max() > 0.5  # the test can tell depths apart
    k = ntk_relu(x * 2, depth=3)
    assert np.allclose(k, k.T) and np.all(np.linalg.eigvalsh(k) > -1e-9)
    assert np.allclose(np.diag(k), 4 * 4)  # (depth + 1) |x|^2
    with pytest.raises(ValueError):
        ntk_relu(x, depth=0)


def test_kernel_matrix_linear_rbf_and_distances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    direct = ((a[:, None] - b[None]) ** 2).sum(-1)
    assert np.allclose(squared_distances(a, b), direct) and (squared_distances(a, a) >= 0).all()
    assert np.allclose(kernel_matrix(a, b, "linear"), a @ b.T)
    assert np.allclose(kernel_matrix(a, b, "rbf", gamma=0.3), np.exp(-0.3 * direct))
    assert np.allclose(kernel_matrix(a, b), ntk_relu(a, b, 2))
    with pytest.raises(ValueError, match="unknown kernel"):
        kernel_matrix(a, b, "poly")
    pairs = ((a[:, None] - a[None]) ** 2).sum(-1)[np.triu_indices(4, 1)]
    assert median_squared_distance(a) == pytest.approx(np.median(pairs))
    assert median_squared_distance(a[:1]) == 1.0 and median_squared_distance(a[[0, 0]]) == 1.0


def _one_hidden_layer_bias_ntk(x, y):
    """The original Image2Reg kernel, written from its closed form (IMAGE2REG_ORIGINAL 1.9).

    Inputs augmented with a constant 1; with u = x~.y~ / (|x~||y~|), t = arccos u:
    (|x~||y~| / pi)(sin t + (pi - t) u) + (x~.y~)(pi - t) / pi, computed pair by pair.
    """
    out = np.empty((len(x), len(y)))
    for i, a in enumerate(x):
        for j, b in enumerate(y):
            a1, b1 = np.append(a, 1.0), np.append(b, 1.0)
            na, nb, dot = np.sqrt(a1 @ a1), np.sqrt(b1 @ b1), a1 @ b1
            u = min(max(dot / (na * nb), -1.0), 1.0)
            t = np.arccos(u)
            out[i, j] = na * nb / np.pi * (np.sin(t) + (np.pi - t) * u) + dot * (np.pi - t) / np.pi
    return out


def test_depth_one_ntk_on_bias_augmented_inputs_is_the_original_kernel():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(9, 6)) * 4 + 2, rng.normal(size=(5, 6))  # raw, uncentred
    want = _one_hidden_layer_bias_ntk(x, y)
    got = kernel_matrix(augment_bias(x), augment_bias(y), "ntk", depth=1)
    assert np.allclose(got, want, rtol=5e-9, atol=0)
    # without the augmentation, or with two hidden layers, it is another kernel
    assert not np.allclose(kernel_matrix(x, y, "ntk", depth=1), want, rtol=1e-3)
    assert not np.allclose(
        kernel_matrix(augment_bias(x), augment_bias(y), "ntk", 2), want, rtol=1e-3
    )
    aug = augment_bias(x[0])
    assert aug.shape == (1, 7) and aug[0, -1] == 1.0 and np.array_equal(aug[0, :6], x[0])
