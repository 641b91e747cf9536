"""Kernels of the translation: the closed-form ReLU neural tangent kernel, linear and RBF.

:func:`augment_bias` appends a constant coordinate 1 to every input: the NTK of depth 1 on
augmented inputs is the original Image2Reg kernel (a one-hidden-layer ReLU network with a
bias), ``(|x~||y~| / pi) (sin t + (pi - t) cos t) + (x~.y~)(pi - t) / pi`` with
``x~ = [x, 1]`` and ``cos t = x~.y~ / (|x~||y~|)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "KERNELS",
    "squared_distances",
    "median_squared_distance",
    "augment_bias",
    "ntk_relu",
    "kernel_matrix",
]

KERNELS = ("ntk", "linear", "rbf")


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared euclidean distances between the rows of ``a`` and ``b``.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(n, d)`` and ``(m, d)`` arrays.

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` distances ``|a|^2 + |b|^2 - 2 a.b``, clipped at 0.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T
    return np.maximum(d2, 0)


def median_squared_distance(x: np.ndarray) -> float:
    """Median squared distance between the distinct pairs of rows of ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` array.

    Returns
    -------
    float
        The median; 1.0 when it is not positive or ``x`` has fewer than 2 rows (a neutral
        length scale).
    """
    if len(x) < 2:
        return 1.0
    med = float(np.median(squared_distances(x, x)[np.triu_indices(len(x), 1)]))
    return med if med > 0 else 1.0


def augment_bias(x: np.ndarray) -> np.ndarray:
    """Append a constant coordinate 1 to every row: ``[x, 1]``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` inputs.

    Returns
    -------
    numpy.ndarray
        ``(n, d + 1)`` float inputs, last column 1 (the bias of the network's first layer).
    """
    x = np.atleast_2d(np.asarray(x, float))
    return np.hstack([x, np.ones((len(x), 1))])


def ntk_relu(x: np.ndarray, y: np.ndarray | None = None, depth: int = 2) -> np.ndarray:
    """Closed-form NTK of a fully connected ReLU network (infinite width, He scaling).

    Network: ``h_1 = W_1 x``, ``h_{l+1} = W_{l+1} sqrt(2/n_l) relu(h_l)`` for ``depth``
    hidden layers, scalar linear output, standard normal weights, no biases (NTK
    parameterisation). Recursion (Jacot et al. 2018; Arora et al. 2019):
    ``S0 = x.y``, ``T0 = S0``; for each hidden layer, with
    ``cos t = S_{h-1}(x,y) / sqrt(|x|^2 |y|^2)``,
    ``S_h = sqrt(|x|^2 |y|^2) / pi * (sin t + (pi - t) cos t)``,
    ``Sdot_h = (pi - t) / pi`` and ``T_h = T_{h-1} Sdot_h + S_h``. The diagonal is
    ``(depth + 1) |x|^2``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` inputs.
    y : numpy.ndarray, optional
        ``(m, d)`` inputs; ``x`` when None.
    depth : int
        Number of hidden ReLU layers (>= 1).

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` kernel matrix.
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    x = np.asarray(x, float)
    y = x if y is None else np.asarray(y, float)
    s = x @ y.T
    norm = np.sqrt(np.outer(np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)))
    norm = norm.clip(1e-12)
    theta = s.copy()
    for _ in range(depth):
        cos = np.clip(s / norm, -1.0, 1.0)
        t = np.arccos(cos)
        s = norm / np.pi * (np.sin(t) + (np.pi - t) * cos)
        theta = theta * (np.pi - t) / np.pi + s
    return theta


def kernel_matrix(
    a: np.ndarray, b: np.ndarray, kernel: str = "ntk", depth: int = 2, gamma: float = 1.0
) -> np.ndarray:
    """Kernel matrix between the rows of ``a`` and ``b``.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(n, d)`` and ``(m, d)`` inputs.
    kernel : {"ntk", "linear", "rbf"}
        Kernel: ReLU NTK (:func:`ntk_relu`), ``a.b`` or ``exp(-gamma |a - b|^2)``.
    depth : int
        NTK hidden layers.
    gamma : float
        RBF width.

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` matrix.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if kernel == "ntk":
        return ntk_relu(a, b, depth)
    if kernel == "linear":
        return a @ b.T
    if kernel == "rbf":
        return np.exp(-gamma * squared_distances(a, b))
    raise ValueError(f"unknown kernel {kernel!r}; use 'ntk', 'linear' or 'rbf'")
