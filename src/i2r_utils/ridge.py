"""Closed-form leave-one-out kernel ridge regression: the core of both translation directions.

Kernel ridge regression with training kernel ``K`` and ridge ``a`` fits the dual
coefficients ``C Y`` with ``C = (K + a I)^-1`` and predicts ``k(x, X) C Y``. Everything is
done from one eigendecomposition per training kernel, ``K = U diag(lam) U^T``, so that
``C = U diag(1 / (lam + a)) U^T`` for every ridge of a grid at once.

Leave-one-out (LOO) needs no refit: the prediction for row ``i`` of a model fitted without
row ``i`` misses its target by ``-[C Y]_i / C_ii`` (the hat-matrix identity of linear
smoothers, ``H = K C = I - a C``). The grid point (kernel width and ridge) with the
smallest LOO mean squared error on the training rows is chosen (ties: the first in grid
order). The permutation baseline re-pairs targets and training rows and chooses again for
every permutation, on the same factorisation.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

__all__ = ["permutations", "centre_and_scale", "LooRidge"]


def permutations(n: int, n_perm: int, seed: int) -> list[np.ndarray]:
    """Draw the permutations of ``n`` training rows that every permutation baseline uses.

    Parameters
    ----------
    n : int
        Training rows.
    n_perm : int
        Permutations.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    list of numpy.ndarray
        ``n_perm`` permutations of ``range(n)``, drawn one after the other.
    """
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(n_perm)]


def centre_and_scale(x: np.ndarray, scaling: str = "global") -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of training rows, so that ``(x - mu) / sd`` has mean squared norm 1.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` training rows.
    scaling : {"global", "feature", "none"}
        ``"global"``: one scale, the root-mean-square norm of the centred rows (robust with
        few rows; sphered profiles need no more). ``"feature"``: every feature's standard
        deviation times ``sqrt(d)``. ``"none"``: no centring and no scaling (centre 0,
        scale 1: the raw inputs, as the original Image2Reg).

    Returns
    -------
    mu, sd : numpy.ndarray
        ``(d,)`` mean and scale (constant features and rows keep scale 1).
    """
    x = np.asarray(x, float)
    if scaling == "none":
        return np.zeros(x.shape[1]), np.ones(x.shape[1])
    mu = x.mean(0)
    if scaling == "feature":
        sd = x.std(0)
        return mu, np.where(sd > 0, sd, 1.0) * np.sqrt(x.shape[1])
    if scaling == "global":
        rms = np.sqrt(((x - mu) ** 2).sum(1).mean())
        return mu, np.full(x.shape[1], rms if rms > 0 else 1.0)
    raise ValueError(f"unknown scaling {scaling!r}; use 'global', 'feature' or 'none'")


class LooRidge:
    """Kernel ridge regression on fixed training kernels, chosen by closed-form LOO.

    The grid is every ``(width, ridge)`` pair: one training kernel per width (a single
    entry when the kernel is fixed), every ridge for each.

    Parameters
    ----------
    kernels : mapping
        Width -> ``(n, n)`` training kernel matrix.
    ridges : sequence of float
        Ridges ``a`` tried with every width.
    fallback : tuple
        ``(width, ridge)`` used when the grid has several points but there are fewer than
        3 training rows, where leave-one-out cannot choose.

    Attributes
    ----------
    grid : list of tuple
        ``(width, ridge)`` in the order ties are broken.
    choice_ : tuple
        The chosen ``(width, ridge)`` (after :meth:`fit`).
    cv_mse_ : dict
        LOO mean squared error per grid point (empty when nothing was chosen).
    dual_ : numpy.ndarray
        ``(n, p)`` dual coefficients ``C Y`` of the chosen point.
    """

    def __init__(self, kernels: Mapping[Hashable, np.ndarray], ridges: Sequence[float], fallback):
        self.ridges = tuple(float(a) for a in np.atleast_1d(ridges))
        self.fallback = tuple(fallback)
        self.eig = {}
        for width, k in kernels.items():
            lam, u = np.linalg.eigh(k)
            self.eig[width] = (np.clip(lam, 0, None), u)
        if self.fallback[0] not in self.eig:
            raise ValueError(f"fallback width {self.fallback[0]!r} has no kernel")
        self.grid = [(w, a) for w in self.eig for a in self.ridges]

    def dual(self, y: np.ndarray, point) -> np.ndarray:
        """Dual coefficients ``(K + a I)^-1 Y`` ``(n, p)`` at grid point ``(width, a)``."""
        lam, u = self.eig[point[0]]
        return u @ ((1.0 / (lam + point[1]))[:, None] * (u.T @ y))

    def loo_residuals(self, y: np.ndarray, point) -> np.ndarray:
        """Target minus LOO prediction, ``[C Y]_i / C_ii`` ``(n, p)``, at ``(width, a)``."""
        lam, u = self.eig[point[0]]
        inv = 1.0 / (lam + point[1])
        cy = u @ (inv[:, None] * (u.T @ y))
        cii = (u**2) @ inv
        return cy / cii[:, None]

    def select(self, y: np.ndarray) -> tuple[tuple, dict]:
        """Grid point with the smallest LOO mean squared error for targets ``y``.

        Parameters
        ----------
        y : numpy.ndarray
            ``(n, p)`` targets.

        Returns
        -------
        point : tuple
            ``(width, ridge)``: the only grid point, the fallback (fewer than 3 rows) or
            the first with the smallest error.
        mse : dict
            Grid point -> LOO mean squared error (empty when nothing was compared).
        """
        if len(self.grid) == 1:
            return self.grid[0], {}
        if len(y) < 3:
            return self.fallback, {}
        mse = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for point in self.grid:
                m = float((self.loo_residuals(y, point) ** 2).mean())
                mse[point] = m if np.isfinite(m) else np.inf
        return min(self.grid, key=mse.get), mse

    def fit(self, y: np.ndarray) -> LooRidge:
        """Choose the grid point for targets ``y`` and fit its dual coefficients.

        Parameters
        ----------
        y : numpy.ndarray
            ``(n, p)`` targets, rows in the order of the training kernels.

        Returns
        -------
        LooRidge
            The fitted model.
        """
        self.y_ = np.asarray(y, float)
        self.choice_, self.cv_mse_ = self.select(self.y_)
        self.dual_ = self.dual(self.y_, self.choice_)
        return self

    def permuted_predictions(self, k_test: Mapping[Hashable, np.ndarray], orders):
        """Predictions after re-ordering the targets, the grid point chosen again each time.

        Parameters
        ----------
        k_test : mapping
            Width -> ``(m, n)`` kernel between the inputs to predict and the training rows.
        orders : sequence of numpy.ndarray
            Row orders: training row ``i`` gets the target of row ``order[i]``.

        Yields
        ------
        numpy.ndarray
            ``(m, p)`` predictions, one array per order.
        """
        for order in orders:
            y = self.y_[order]
            point, _ = self.select(y)
            yield k_test[point[0]] @ self.dual(y, point)
