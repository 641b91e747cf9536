import numpy as np
import pytest
from reference_translation import KernelRidge, loo_predictions

from i2r_utils.kernels import kernel_matrix
from i2r_utils.ridge import LooRidge, centre_and_scale, permutations


def test_kernel_ridge_reference_matches_sklearn():
    from sklearn.kernel_ridge import KernelRidge as SkKRR

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    ours = KernelRidge(alpha=0.5, kernel="rbf", gamma=0.3).fit(x, y).predict(x[:4])
    ref = SkKRR(alpha=0.5, kernel="rbf", gamma=0.3).fit(x, y).predict(x[:4])
    assert np.allclose(ours, ref)
    assert np.allclose(KernelRidge(alpha=1e-8).fit(x, y).predict(x), y, atol=1e-4)
    with pytest.raises(ValueError, match="unknown kernel"):
        KernelRidge(kernel="poly").fit(x, y)


@pytest.mark.parametrize("kernel", ["ntk", "linear", "rbf"])
def test_closed_form_loo_equals_refitting_n_times(kernel):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(15, 4)) / 2, rng.normal(size=(15, 3))
    alphas = [0.01, 0.5, 3.0]
    k = kernel_matrix(x, x, kernel, 2, 0.25)
    core = LooRidge({None: k}, alphas, (None, 1.0))
    hat = loo_predictions(k, y, alphas)  # the hat-matrix form of the same identity
    for a, alpha in enumerate(alphas):
        fast = y - core.loo_residuals(y, (None, alpha))
        np.testing.assert_allclose(fast, hat[a], atol=1e-8)
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            m = KernelRidge(alpha, kernel, 2, 0.25).fit(x[keep], y[keep])
            assert np.allclose(fast[i], m.predict(x[i : i + 1])[0], atol=1e-8)
    assert np.allclose(loo_predictions(k, y, 0.5), hat[1])
    # the fit is plain kernel ridge regression with the chosen ridge
    core.fit(y)
    ref = KernelRidge(core.choice_[1], kernel, 2, 0.25).fit(x, y)
    np.testing.assert_allclose(k @ core.dual_, ref.predict(x), atol=1e-8)


def test_grid_choice_fallback_and_ties():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    kernels = {w: np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / w) for w in (0.5, 2.0)}
    core = LooRidge(kernels, (0.01, 0.1, 1.0), (2.0, 0.1))
    assert core.grid == [(w, a) for w in (0.5, 2.0) for a in (0.01, 0.1, 1.0)]
    point, mse = core.select(y)
    assert mse[point] == min(mse.values()) and set(mse) == set(core.grid)
    for p in core.grid:  # the mean squared LOO error
        assert mse[p] == pytest.approx(float((core.loo_residuals(y, p) ** 2).mean()))
    assert core.select(y[:2]) == ((2.0, 0.1), {})  # too few rows: the fallback
    single = LooRidge({None: kernels[0.5]}, (0.3,), (None, 1.0))
    assert single.select(y[:2]) == ((None, 0.3), {})  # one grid point is used as it is
    twin = LooRidge({0: kernels[0.5], 1: kernels[0.5]}, (0.1,), (0, 0.1))
    assert twin.select(y)[0] == (0, 0.1)  # ties: the first in grid order
    with pytest.raises(ValueError, match="fallback"):
        LooRidge(kernels, (0.1,), (1.0, 0.1))


def test_permuted_predictions_rechoose_on_the_same_factorisation():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    k = kernel_matrix(x, x, "linear") + 1
    core = LooRidge({None: k}, (0.001, 0.1, 10.0), (None, 1.0)).fit(y)
    k_test = {None: kernel_matrix(x[:3], x, "linear") + 1}
    perms = permutations(10, 4, seed=7)
    assert all((a == b).all() for a, b in zip(perms, permutations(10, 4, 7), strict=True))
    ident = next(core.permuted_predictions(k_test, [np.arange(10)]))
    np.testing.assert_allclose(ident, k_test[None] @ core.dual_)
    for p, pred in zip(perms, core.permuted_predictions(k_test, perms), strict=True):
        refit = LooRidge({None: k}, (0.001, 0.1, 10.0), (None, 1.0)).fit(y[p])
        np.testing.assert_allclose(pred, k_test[None] @ refit.dual_)


def test_centre_and_scale():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4)) * [1, 10, 100, 0]
    for scaling, msn in (("global", 1.0), ("feature", 0.75)):  # one constant feature of 4
        mu, sd = centre_and_scale(x, scaling)
        assert np.isclose((((x - mu) / sd) ** 2).sum(1).mean(), msn)
    assert (centre_and_scale(np.ones((3, 2)))[1] == 1).all()
    mu, sd = centre_and_scale(x, "none")  # the original's raw inputs: nothing changes
    assert np.array_equal((x - mu) / sd, x) and mu.shape == sd.shape == (4,)
    with pytest.raises(ValueError, match="scaling"):
        centre_and_scale(x, "zscore")
