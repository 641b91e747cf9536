"""ZCA whitening (sphering) matrices in the two conventions of the field.

Both conventions rotate into the principal axes of the fitted data (usually the control
wells), rescale each axis towards unit variance and rotate back (``W = U D U^T``, so the
sphered profiles keep the meaning of the original axes). They differ in where the
regulariser ``lam`` goes and in what happens to the directions the data do not span:

* ``"pycytominer"`` (pycytominer's ``Spherize(method="ZCA")``, i2r's default): with the SVD
  of the centred data ``X = U S V^T`` (n rows), ``W = V diag(sqrt(n - 1) / (s + lam)) V^T``;
  ``lam`` is added to the *singular values*, and directions without variance get the
  smallest non-zero singular value (they are scaled like the weakest spanned direction).
* ``"deepprofiler"`` (DeepProfiler's ``WhiteningNormalizer`` and Moshkov's thesis): the
  covariance ``C = X^T X / n`` of the centred data, its eigen-decomposition ``C = U Delta
  U^T`` and ``W = U (Delta + lam)^(-1/2) U^T``; ``lam`` is added to the *eigenvalues*
  (variances), and directions without variance are multiplied by ``lam^(-1/2)``.

For the same ``lam`` the two are very different regularisations (a singular value is
about ``sqrt((n - 1) * variance)``), so a sweep over ``lam`` is the fair comparison.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPHERING_CONVENTIONS", "zca_whitening"]

#: Names of the sphering conventions :func:`zca_whitening` implements.
SPHERING_CONVENTIONS = ("pycytominer", "deepprofiler")


def _pycytominer(xc: np.ndarray, lam: float) -> np.ndarray:
    n, d = xc.shape
    _, s, vt = np.linalg.svd(xc, full_matrices=True)
    tol = s.max(initial=0.0) * max(n, d) * np.finfo(float).eps
    r = int((s > tol).sum())
    if r == 0:
        raise ValueError("control profiles are all identical; cannot fit sphering")
    sigma = np.concatenate([s[:r], np.repeat(s[r - 1], d - r)]) + lam
    return (vt.T / sigma) @ vt * np.sqrt(n - 1)


def _deepprofiler(xc: np.ndarray, lam: float) -> np.ndarray:
    if not np.any(xc):
        raise ValueError("control profiles are all identical; cannot fit sphering")
    cov = xc.T @ xc / xc.shape[0]
    delta, u = np.linalg.eigh(cov)
    delta = np.clip(delta, 0.0, None)  # round-off can make null eigenvalues slightly negative
    return (u / np.sqrt(delta + lam)) @ u.T


def zca_whitening(
    x: np.ndarray, lam: float = 1e-2, convention: str = "pycytominer"
) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening matrix of ``x`` in one of :data:`SPHERING_CONVENTIONS`.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` data the transform is fitted on (e.g. control wells), n >= 2.
    lam : float
        Regulariser: added to the singular values (``"pycytominer"``, its ``epsilon``) or
        to the covariance eigenvalues (``"deepprofiler"``; must then be > 0).
    convention : {"pycytominer", "deepprofiler"}
        See the module docstring.

    Returns
    -------
    mean : numpy.ndarray
        ``(d,)`` column means of ``x``.
    w : numpy.ndarray
        ``(d, d)`` symmetric whitening matrix: ``(y - mean) @ w`` is sphered.

    Raises
    ------
    ValueError
        For fewer than two rows, identical rows, an unknown convention, or ``lam <= 0``
        with the ``"deepprofiler"`` convention (its null directions would be infinite).
    """
    if convention not in SPHERING_CONVENTIONS:
        raise ValueError(
            f"unknown sphering convention {convention!r}; choose one of {SPHERING_CONVENTIONS}"
        )
    x = np.asarray(x, np.float64)
    if x.shape[0] < 2:
        raise ValueError("sphering needs at least two control profiles")
    mean = x.mean(0)
    if convention == "pycytominer":
        return mean, _pycytominer(x - mean, lam)
    if not lam > 0:
        raise ValueError(f"the deepprofiler sphering convention needs lam > 0, not {lam}")
    return mean, _deepprofiler(x - mean, lam)
