"""ZCA whitening in the pycytominer and DeepProfiler (thesis) conventions."""

import numpy as np
import pandas as pd
import pytest

from i2r_utils.whitening import SPHERING_CONVENTIONS, zca_whitening

SEED = 0


def deepprofiler_reference(x, lam):
    """DeepProfiler's WhiteningNormalizer, written out: C = X^T X / n, W = V D^-1/2 V^T."""
    xc = x - x.mean(0)
    s, v = np.linalg.eigh(xc.T @ xc / len(x))
    return v @ np.diag(1.0 / np.sqrt(s + lam)) @ v.T


def test_pycytominer_convention_is_the_default_and_matches_pycytominer():
    from pycytominer.operations.transform import Spherize

    x = np.random.default_rng(SEED).normal(size=(12, 20))  # fewer rows than columns
    mean, w = zca_whitening(x, 1e-2)
    assert np.allclose(w, Spherize(epsilon=1e-2, method="ZCA").fit(pd.DataFrame(x)).W, atol=1e-8)
    assert np.allclose(zca_whitening(x, 1e-2, "pycytominer")[1], w)
    assert np.allclose(mean, x.mean(0))


def test_deepprofiler_convention_whitens_with_lambda_on_the_eigenvalues():
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(200, 4)) @ np.diag([10.0, 3.0, 1.0, 0.2])
    mean, w = zca_whitening(x, 1e-6, "deepprofiler")
    assert np.allclose(w, w.T) and np.allclose(w, deepprofiler_reference(x, 1e-6))
    z = (x - mean) @ w
    assert np.allclose(z.T @ z / len(z), np.eye(4), atol=1e-4)  # covariance X^T X / n
    # lambda on the variances: a direction of variance v is scaled by (v + lam)^-1/2
    for lam in (1e-2, 1.0):
        z = (x - mean) @ zca_whitening(x, lam, "deepprofiler")[1]
        var = np.linalg.eigvalsh(np.cov(x.T, ddof=0))
        got = np.linalg.eigvalsh(np.cov(z.T, ddof=0))
        assert np.allclose(np.sort(got), np.sort(var / (var + lam)))


def test_conventions_differ_where_the_controls_do_not_span():
    rng = np.random.default_rng(SEED)
    x = np.zeros((10, 3))
    x[:, :2] = rng.normal(size=(10, 2))  # the third feature never varies
    null = np.array([0.0, 0.0, 1.0])
    _, w_dp = zca_whitening(x, 1e-4, "deepprofiler")
    assert np.linalg.norm(null @ w_dp) == pytest.approx(1e-4**-0.5)  # lam^-1/2
    _, w_pc = zca_whitening(x, 1e-4, "pycytominer")
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    assert np.linalg.norm(null @ w_pc) == pytest.approx(np.sqrt(9) / (s[1] + 1e-4))  # weakest


@pytest.mark.parametrize("convention", SPHERING_CONVENTIONS)
def test_bad_inputs_fail_clearly(convention):
    with pytest.raises(ValueError, match="at least two"):
        zca_whitening(np.ones((1, 3)), 1e-2, convention)
    with pytest.raises(ValueError, match="identical"):
        zca_whitening(np.ones((4, 3)), 1e-2, convention)
    with pytest.raises(ValueError, match="unknown sphering convention 'zca'"):
        zca_whitening(np.eye(3), 1e-2, "zca")


def test_deepprofiler_needs_a_positive_lambda():
    with pytest.raises(ValueError, match="needs lam > 0"):
        zca_whitening(np.eye(3), 0.0, "deepprofiler")
