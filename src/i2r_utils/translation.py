"""Translation from condition image profiles to regulatory gene embeddings.

Kernel ridge regression (KRR) maps a condition's image profile to the embedding of its
over-expressed gene; every candidate gene is then ranked by its distance to the prediction
(Image2Reg). Kernels: the closed-form neural tangent kernel (NTK) of a fully connected ReLU
network (:func:`ntk_relu`), linear and RBF.

Everything is done from one eigendecomposition of the training kernel matrix
``K = U diag(lam) U^T``: for every ridge ``alpha`` the hat matrix is
``H = U diag(lam / (lam + alpha)) U^T`` and the leave-one-out (LOO) prediction of row ``i``
is ``(H Y - diag(H) Y)_i / (1 - H_ii)`` (the hat-matrix identity of linear smoothers), so
selecting ``alpha`` by inner LOO on the training conditions, refitting after permuting the
targets and the LOO cross-check over all conditions cost one factorisation.

Inputs are centred on the training conditions' mean and scaled so the training rows have
mean squared norm 1 (one global scale by default, or per-feature standard deviations);
the held-out row never enters that scaling or the choice of ``alpha``. A constant
``bias`` (default 1) is added to every kernel, i.e. a penalised intercept, because the
targets (unit vectors) are not centred.

Directions (``direction``): ``"image_to_gene"`` is Image2Reg's (above);
``"gene_to_image"`` predicts every candidate's image profile from its gene embedding and
ranks candidates by the distance to the observed profile
(:class:`i2r_utils.twoway.GeneToImage`); ``"two_way"`` averages the two rankings
(:func:`i2r_utils.twoway.fuse_ranks`); ``"auto"`` uses the one of the three with the best
leave-one-out score on the training conditions (:func:`inner_direction_scores`: the mean
log rank of each left-out training condition's gene). :class:`TranslationModel` holds the
fitted directions.

Baselines (beside every result): uniform random (``acc(k) = k/N``, expected rank
``(N+1)/2``), the permutation baseline of Image2Reg's ``--random`` (the rows of the training
gene-embedding table are permuted before the fit, ``alpha`` re-selected each time) and the
mean-embedding predictor (predicts the mean training gene embedding, ignoring the image).

Metrics: ``acc(k)`` = fraction of held-out conditions whose true gene has rank <= k
(ranks are 1-based, so Image2Reg's ``rank < k`` with 0-based ranks); the summed area
:func:`topk_auc` is the mean of ``acc(K)`` over K = 10..50 (sum over the 41 values / 41),
which is 30/N for uniform random.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .columns import feature_columns
from .io import InputError
from .twoway import GeneToImage, fuse_ranks, ranks_from_scores

__all__ = [
    "ntk_relu",
    "kernel_matrix",
    "KernelRidge",
    "loo_predictions",
    "Translator",
    "DIRECTIONS",
    "TranslationModel",
    "inner_direction_scores",
    "rank_genes",
    "true_rank",
    "ranks_of",
    "topk_accuracy",
    "topk_auc",
    "uniform_topk",
    "permutation_ranks",
    "fold_space",
    "training_set",
    "translate_held_out",
    "fit_translator",
    "loo_ranks",
    "summarize_results",
]

DEFAULT_ALPHAS = (0.001, 0.01, 0.1, 1.0, 10.0)
DIRECTIONS = ("image_to_gene", "gene_to_image", "two_way")


def _permutations(n: int, n_perm: int, seed: int) -> list[np.ndarray]:
    """Return the permutations of ``n`` training rows every permutation baseline uses."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(n_perm)]


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
        Kernel: ReLU NTK, ``a.b`` or ``exp(-gamma |a - b|^2)``.
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
        d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T
        return np.exp(-gamma * np.maximum(d2, 0))
    raise ValueError(f"unknown kernel {kernel!r}; use 'ntk', 'linear' or 'rbf'")


class KernelRidge:
    """Plain kernel ridge regression (one ``alpha``, inputs used as given).

    Parameters
    ----------
    alpha : float
        Ridge regularisation.
    kernel : {"ntk", "linear", "rbf"}
        Kernel.
    depth : int
        NTK depth.
    gamma : float, optional
        RBF width (default ``1 / n_features``).
    bias : float
        Constant added to the kernel (a penalised intercept).
    """

    def __init__(
        self, alpha: float = 1.0, kernel: str = "ntk", depth: int = 2, gamma=None, bias=0.0
    ):
        self.alpha, self.kernel, self.depth, self.gamma = alpha, kernel, depth, gamma
        self.bias = bias

    def _k(self, a, b):
        g = self.gamma or 1.0 / a.shape[1]
        return kernel_matrix(a, b, self.kernel, self.depth, g) + self.bias

    def fit(self, x: np.ndarray, y: np.ndarray) -> KernelRidge:
        """Fit on inputs ``x`` (n, d) and targets ``y`` (n, k).

        Parameters
        ----------
        x : numpy.ndarray
            Training inputs.
        y : numpy.ndarray
            Training targets.

        Returns
        -------
        KernelRidge
            The fitted model.
        """
        self.x_ = np.asarray(x, float)
        k = self._k(self.x_, self.x_)
        self.coef_ = np.linalg.solve(k + self.alpha * np.eye(len(k)), np.asarray(y, float))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict targets for inputs ``x``.

        Parameters
        ----------
        x : numpy.ndarray
            ``(m, d)`` inputs.

        Returns
        -------
        numpy.ndarray
            ``(m, k)`` predictions.
        """
        return self._k(np.asarray(x, float), self.x_) @ self.coef_


def _hat_matrices(lam: np.ndarray, u: np.ndarray, alphas) -> np.ndarray:
    """Return the ``(A, n, n)`` hat matrices ``U diag(lam/(lam+alpha)) U^T``."""
    shrink = lam[None, :] / (lam[None, :] + np.asarray(alphas, float)[:, None])
    return np.einsum("ij,aj,kj->aik", u, shrink, u)


def _loo_from_hat(h: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return LOO predictions ``(..., n, k)`` from hat matrices and targets."""
    diag = np.diagonal(h, axis1=-2, axis2=-1)[..., None]
    return (h @ y - diag * y) / (1 - diag)


def loo_predictions(k: np.ndarray, y: np.ndarray, alphas) -> np.ndarray:
    """Closed-form leave-one-out KRR predictions for several ridges, one factorisation.

    Parameters
    ----------
    k : numpy.ndarray
        ``(n, n)`` training kernel matrix.
    y : numpy.ndarray
        ``(n, p)`` targets.
    alphas : float or sequence of float
        Ridge values.

    Returns
    -------
    numpy.ndarray
        ``(A, n, p)`` predictions for row ``i`` of a model fitted without row ``i``
        (``(n, p)`` when ``alphas`` is a scalar).
    """
    scalar = np.ndim(alphas) == 0
    lam, u = np.linalg.eigh((k + k.T) / 2)
    out = _loo_from_hat(_hat_matrices(lam, u, np.atleast_1d(alphas)), np.asarray(y, float))
    return out[0] if scalar else out


@dataclass
class Translator:
    """KRR from image profiles to gene embeddings, ``alpha`` chosen by inner LOO.

    Parameters
    ----------
    kernel : {"ntk", "linear", "rbf"}
        Kernel.
    depth : int
        NTK hidden layers.
    alphas : sequence of float
        Ridge grid; the value with the smallest closed-form LOO mean squared error on the
        training conditions is used (a single value is used as it is; with fewer than 3
        training conditions, where LOO cannot choose, ``fallback_alpha``).
    gamma : float, optional
        RBF width; default ``1 / median squared distance`` between training inputs.
    bias : float
        Constant added to the kernel: an intercept with prior variance ``bias`` (the
        targets are not centred, so an exact closed-form LOO is kept).
    fallback_alpha : float
        Ridge used when the grid has several values but there are fewer than 3 training
        conditions (Image2Reg's demo value 1 by default).
    scaling : {"global", "feature"}
        Input scaling after centring on the training mean: ``"global"`` divides by the
        root-mean-square norm of the centred training rows (robust with few training
        conditions; the profiles are already sphered), ``"feature"`` standardises every
        feature by its training standard deviation and divides by ``sqrt(d)``. Either way
        the training rows have mean squared norm 1.

    Attributes
    ----------
    alpha_ : float
        Chosen ridge.
    cv_mse_ : dict
        Inner LOO mean squared error per ridge.
    """

    kernel: str = "ntk"
    depth: int = 2
    alphas: tuple = DEFAULT_ALPHAS
    gamma: float | None = None
    bias: float = 1.0
    fallback_alpha: float = 1.0
    scaling: str = "global"
    alpha_: float = field(init=False, default=np.nan)
    cv_mse_: dict = field(init=False, default_factory=dict)

    def _scale(self, x):
        return (np.asarray(x, float) - self.mu_) / self.sd_

    def _k(self, a, b):
        return kernel_matrix(a, b, self.kernel, self.depth, self.gamma_) + self.bias

    def fit(self, x: np.ndarray, y: np.ndarray) -> Translator:
        """Fit on raw training profiles ``x`` (n, d) and gene embeddings ``y`` (n, k).

        Parameters
        ----------
        x : numpy.ndarray
            Training profiles (standardised here with their own mean and sd).
        y : numpy.ndarray
            Training gene embeddings.

        Returns
        -------
        Translator
            The fitted model.
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        if len(x) < 2 or len(x) != len(y):
            raise ValueError(f"need >= 2 matching training rows; got {len(x)} and {len(y)}")
        self.mu_ = x.mean(0)
        if self.scaling == "feature":
            sd = x.std(0)
            self.sd_ = np.where(sd > 0, sd, 1.0) * np.sqrt(x.shape[1])
        elif self.scaling == "global":
            rms = np.sqrt(((x - self.mu_) ** 2).sum(1).mean())
            self.sd_ = np.full(x.shape[1], rms if rms > 0 else 1.0)
        else:
            raise ValueError(f"unknown scaling {self.scaling!r}; use 'global' or 'feature'")
        self.x_ = self._scale(x)
        self.y_ = y
        if self.gamma is None:
            d2 = ((self.x_[:, None] - self.x_[None]) ** 2).sum(-1)
            med = np.median(d2[np.triu_indices(len(x), 1)])
            self.gamma_ = 1.0 / med if med > 0 else 1.0
        else:
            self.gamma_ = float(self.gamma)
        self.lam_, self.u_ = np.linalg.eigh(self._k(self.x_, self.x_))
        self.lam_ = np.clip(self.lam_, 0, None)
        self.alpha_grid_ = np.asarray(self.alphas, float).ravel()
        self.hats_ = _hat_matrices(self.lam_, self.u_, self.alpha_grid_)
        self.alpha_, self.cv_mse_ = self._select(y)
        self.coef_ = self._coef(self.alpha_) @ y
        return self

    def _select(self, y):
        if len(self.alpha_grid_) == 1:
            return float(self.alpha_grid_[0]), {}
        if len(y) < 3:
            return float(self.fallback_alpha), {}
        with np.errstate(divide="ignore", invalid="ignore"):
            mse = ((_loo_from_hat(self.hats_, y) - y) ** 2).mean(axis=(1, 2))
        mse = np.nan_to_num(mse, nan=np.inf)
        return float(self.alpha_grid_[int(np.argmin(mse))]), dict(
            zip(self.alpha_grid_.tolist(), mse.tolist(), strict=True)
        )

    def _coef(self, alpha):
        """Return ``(K + alpha I)^-1`` from the eigendecomposition."""
        return (self.u_ / (self.lam_ + alpha)) @ self.u_.T

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict gene embeddings for raw profiles ``x`` (m, d).

        Parameters
        ----------
        x : numpy.ndarray
            Profiles with the training features.

        Returns
        -------
        numpy.ndarray
            ``(m, k)`` predicted embeddings.
        """
        return self._k(self._scale(np.atleast_2d(x)), self.x_) @ self.coef_

    def permuted_predictions(
        self, x: np.ndarray, n_perm: int, seed: int = 0, perms=None
    ) -> np.ndarray:
        """Predictions after permuting the training gene-embedding rows (``alpha`` re-chosen).

        Parameters
        ----------
        x : numpy.ndarray
            ``(1, d)`` raw profile.
        n_perm : int
            Permutations.
        seed : int
            Random seed.
        perms : sequence of numpy.ndarray, optional
            The permutations to use (default: ``n_perm`` drawn from ``seed``); row ``i``
            of the training profiles gets the gene embedding of row ``p[i]``.

        Returns
        -------
        numpy.ndarray
            ``(n_perm, k)`` predictions.
        """
        if perms is None:
            perms = _permutations(len(self.y_), n_perm, seed)
        kx = self._k(self._scale(np.atleast_2d(x)), self.x_)[0]
        grid = {*self.alpha_grid_.tolist(), float(self.fallback_alpha)}
        weights = {a: kx @ self._coef(a) for a in grid}
        out = np.empty((len(perms), self.y_.shape[1]))
        for i, p in enumerate(perms):
            yp = self.y_[p]
            alpha, _ = self._select(yp)
            out[i] = weights[alpha] @ yp
        return out


def _distances(preds: np.ndarray, e: np.ndarray, metric: str) -> np.ndarray:
    preds = np.atleast_2d(np.asarray(preds, float))
    if metric == "euclidean":
        d2 = (preds**2).sum(1)[:, None] + (e**2).sum(1)[None] - 2 * preds @ e.T
        return np.sqrt(np.maximum(d2, 0))
    if metric == "cosine":
        pn = np.linalg.norm(preds, axis=1)[:, None]
        en = np.linalg.norm(e, axis=1)[None]
        return 1 - preds @ e.T / (pn * en).clip(1e-12)
    raise ValueError(f"unknown metric {metric!r}; use 'euclidean' or 'cosine'")


def rank_genes(pred: np.ndarray, gene_emb: pd.DataFrame, metric: str = "euclidean") -> pd.DataFrame:
    """Rank candidate genes by their distance to a predicted embedding.

    Parameters
    ----------
    pred : numpy.ndarray
        Predicted embedding ``(k,)``.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by gene.
    metric : {"euclidean", "cosine"}
        Distance (cosine distance is ``1 - cos``).

    Returns
    -------
    pandas.DataFrame
        ``gene``, ``distance``, ``rank`` (1 = most likely), sorted by rank (ties keep
        the table order).
    """
    d = _distances(np.asarray(pred, float).ravel(), gene_emb.to_numpy(float), metric)[0]
    return rank_genes_by(d, gene_emb.index)


def true_rank(ranking: pd.DataFrame, gene: str) -> int:
    """Rank (1-based) of ``gene`` in a ranking from :func:`rank_genes`.

    Parameters
    ----------
    ranking : pandas.DataFrame
        Output of :func:`rank_genes`.
    gene : str
        The true gene (case-insensitive).

    Returns
    -------
    int
        Its rank.
    """
    hit = ranking.index[ranking["gene"].astype(str).str.upper() == gene.upper()]
    if len(hit) == 0:
        raise KeyError(f"gene {gene!r} is not among the {len(ranking)} candidates")
    return int(ranking.loc[hit[0], "rank"])


def inner_direction_scores(
    x_train, y_train, train_genes, gene_emb: pd.DataFrame, kernel: str = "ntk",
    depth: int = 2, alphas=DEFAULT_ALPHAS, metric: str = "euclidean",
) -> dict[str, float]:  # fmt: skip
    """Leave-one-out score of every direction on the training conditions.

    Each training condition in turn is left out, both directions are fitted on the others
    (ridges chosen again by their own inner leave-one-out) and every candidate is ranked
    for it; the score of a direction is the mean log rank of the left-out conditions'
    genes (smaller is better; log so that a few far misses do not dominate).

    Parameters
    ----------
    x_train, y_train : numpy.ndarray
        Raw training profiles and their gene embeddings.
    train_genes : sequence of str
        Gene of every training row.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    kernel, depth, alphas, metric
        Image-to-gene settings.

    Returns
    -------
    dict
        Direction -> mean log rank.
    """
    x, y = np.asarray(x_train, float), np.asarray(y_train, float)
    genes = [str(g).upper() for g in train_genes]
    logs = {d: [] for d in DIRECTIONS}
    for j in range(len(x)):
        keep = np.arange(len(x)) != j
        model = TranslationModel.fit(
            x[keep], y[keep], [g for g, k in zip(genes, keep, strict=True) if k], gene_emb,
            "two_way", kernel, depth, alphas,
        )  # fmt: skip
        for d in DIRECTIONS:
            view = TranslationModel(d, model.forward, model.reverse)
            logs[d].append(np.log(true_rank(view.rank(x[[j]], gene_emb, metric), genes[j])))
    return {d: float(np.mean(v)) for d, v in logs.items()}


def ranks_of(
    preds: np.ndarray, gene_emb: pd.DataFrame, genes, metric: str = "euclidean"
) -> np.ndarray:
    """Rank of the true gene for many predictions at once (same tie rule as rank_genes).

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, k)`` predicted embeddings.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    genes : str or sequence of str
        The true gene of every prediction (one string: the same for all).
    metric : {"euclidean", "cosine"}
        Distance.

    Returns
    -------
    numpy.ndarray
        ``(m,)`` 1-based ranks.
    """
    d = _distances(preds, gene_emb.to_numpy(float), metric)
    genes = [genes] * len(d) if isinstance(genes, str) else list(genes)
    pos = gene_emb.index.get_indexer([g.upper() for g in genes])
    if (pos < 0).any():
        raise KeyError(f"genes {[g for g, p in zip(genes, pos, strict=True) if p < 0]} "
                       "are not candidates")  # fmt: skip
    dt = d[np.arange(len(d)), pos][:, None]
    before = (d < dt) | ((d == dt) & (np.arange(d.shape[1])[None] < pos[:, None]))
    return before.sum(1) + 1


def topk_accuracy(ranks, ks) -> np.ndarray:
    """Top-k accuracy: the fraction of (1-based) ranks <= k, for each k.

    Parameters
    ----------
    ranks : array-like
        1-based ranks of the true genes.
    ks : array-like
        Values of k.

    Returns
    -------
    numpy.ndarray
        Accuracy per k.
    """
    r = np.asarray(ranks)[:, None]
    return (r <= np.asarray(ks)[None, :]).mean(0)


def topk_auc(ranks, k_min: int = 10, k_max: int = 50) -> float:
    """Area under the top-k accuracy curve summed over K = k_min..k_max, normalised.

    ``sum_{K=k_min}^{k_max} acc(K) / (k_max - k_min + 1)``, in [0, 1]; uniform random
    over N candidates gives ``(k_min + k_max) / (2 N)`` (30/N for 10..50).

    Parameters
    ----------
    ranks : array-like
        1-based ranks.
    k_min, k_max : int
        Range of K.

    Returns
    -------
    float
        The normalised area.
    """
    return float(topk_accuracy(ranks, np.arange(k_min, k_max + 1)).mean())


def uniform_topk(ks, n_candidates) -> np.ndarray:
    """Top-k accuracy of a uniformly random ranking: ``min(k / N, 1)``.

    Parameters
    ----------
    ks : array-like
        Values of k.
    n_candidates : int or array-like
        N (one per condition: the mean over conditions is returned).

    Returns
    -------
    numpy.ndarray
        Accuracy per k.
    """
    n = np.atleast_1d(np.asarray(n_candidates, float))[:, None]
    return np.minimum(np.asarray(ks, float)[None] / n, 1.0).mean(0)


def permutation_ranks(
    x_train, y_train, x_test, gene_emb: pd.DataFrame, gene: str, n_perm: int = 100,
    seed: int = 0, metric: str = "euclidean", **translator,
) -> np.ndarray:  # fmt: skip
    """Ranks of the true gene when the training gene embeddings are permuted.

    Image2Reg's ``--random``: the rows of the training gene-embedding table are shuffled
    before each fit (``alpha`` re-chosen by inner LOO each time), which breaks the
    image-to-gene correspondence while keeping both distributions.

    Parameters
    ----------
    x_train, y_train : numpy.ndarray
        Raw training profiles and gene embeddings.
    x_test : numpy.ndarray
        ``(1, d)`` held-out profile.
    gene_emb : pandas.DataFrame
        Candidate embeddings.
    gene : str
        True gene of the held-out condition.
    n_perm : int
        Permutations.
    seed : int
        Random seed.
    metric : str
        Distance for ranking.
    **translator
        :class:`Translator` arguments.

    Returns
    -------
    numpy.ndarray
        ``(n_perm,)`` ranks.
    """
    tr = Translator(**translator).fit(x_train, y_train)
    return ranks_of(tr.permuted_predictions(x_test, n_perm, seed), gene_emb, gene, metric)


@dataclass
class TranslationModel:
    """A fitted translation in one or both directions (see the module docstring).

    Build it with :meth:`fit`; it ranks candidate genes for a raw profile (:meth:`rank`)
    and gives the permutation baseline of the same directions (:meth:`permuted_ranks`).

    Parameters
    ----------
    direction : {"image_to_gene", "gene_to_image", "two_way"}
        Direction(s) used for ranking.
    forward : Translator
        Image-to-gene model (always fitted: its prediction is reported and drawn).
    reverse : GeneToImage or None
        Gene-to-image model (``gene_to_image`` and ``two_way``).
    inner_scores : dict
        With ``direction="auto"`` in :meth:`fit`: the leave-one-out score of every
        direction on the training conditions (:func:`inner_direction_scores`).
    """

    direction: str
    forward: Translator
    reverse: GeneToImage | None = None
    inner_scores: dict = field(default_factory=dict)

    @classmethod
    def fit(
        cls, x_train, y_train, train_genes, gene_emb: pd.DataFrame,
        direction: str = "image_to_gene", kernel: str = "ntk", depth: int = 2,
        alphas=DEFAULT_ALPHAS, metric: str = "euclidean",
    ) -> TranslationModel:  # fmt: skip
        """Fit the requested direction(s) on the training conditions.

        Parameters
        ----------
        x_train, y_train : numpy.ndarray
            Raw training profiles and their gene embeddings.
        train_genes : sequence of str
            Gene of every training row (needed by the gene-to-image direction).
        gene_emb : pandas.DataFrame
            Candidate embeddings indexed by upper-case gene.
        direction : {"image_to_gene", "gene_to_image", "two_way", "auto"}
            Direction(s); ``"auto"`` chooses the one with the best leave-one-out score
            on the training conditions (:func:`inner_direction_scores`; ties and fewer
            than 4 training conditions: ``"two_way"``).
        kernel, depth, alphas
            :class:`Translator` settings of the image-to-gene direction.
        metric : {"euclidean", "cosine"}
            Distance of the image-to-gene direction (used by ``"auto"``).

        Returns
        -------
        TranslationModel
            The fitted model (``direction`` is the chosen one).
        """
        if direction not in (*DIRECTIONS, "auto"):
            raise InputError(
                f"unknown direction {direction!r}; choose one of {[*DIRECTIONS, 'auto']}"
            )
        alphas = tuple(np.atleast_1d(alphas).tolist())
        scores = {}
        if direction == "auto":
            if len(x_train) >= 4:
                scores = inner_direction_scores(
                    x_train, y_train, train_genes, gene_emb, kernel, depth, alphas, metric
                )
            order = ("two_way", "image_to_gene", "gene_to_image")  # tie-break
            direction = min(order, key=lambda d: scores.get(d, 0.0))
        forward = Translator(kernel, depth, alphas).fit(x_train, y_train)
        reverse = None
        if direction != "image_to_gene" or scores:
            reverse = GeneToImage().fit(gene_emb, train_genes, x_train)
        return cls(direction, forward, reverse, scores)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the image-to-gene predicted embedding(s) of raw profile(s) ``x``."""
        return self.forward.predict(x)

    def _views(self, x, gene_emb: pd.DataFrame, metric: str) -> dict[str, np.ndarray]:
        views = {}
        if self.direction != "gene_to_image":
            pred = self.forward.predict(x)
            views["image_to_gene"] = _distances(pred, gene_emb.to_numpy(float), metric)[0]
        if self.reverse is not None:
            self._check_candidates(gene_emb)
            views["gene_to_image"] = self.reverse.distances(x)
        return views

    def _check_candidates(self, gene_emb: pd.DataFrame) -> None:
        if not self.reverse.candidates_.equals(gene_emb.index):
            raise ValueError("rank with the candidate table the gene-to-image model was fitted on")

    def rank(
        self, x: np.ndarray, gene_emb: pd.DataFrame, metric: str = "euclidean"
    ) -> pd.DataFrame:
        """Rank every candidate gene for one raw profile.

        Parameters
        ----------
        x : numpy.ndarray
            ``(d,)`` or ``(1, d)`` raw profile.
        gene_emb : pandas.DataFrame
            Candidate embeddings indexed by gene (the table the model was fitted with).
        metric : {"euclidean", "cosine"}
            Distance of the image-to-gene direction.

        Returns
        -------
        pandas.DataFrame
            ``gene``, ``distance``, ``rank``, sorted by rank. ``image_to_gene``: as
            :func:`rank_genes`. Otherwise ``distance`` is the gene-to-image distance
            (``gene_to_image``) or the mean of the two directions' ranks (``two_way``,
            with ``rank_image_to_gene``, ``rank_gene_to_image``, ``distance_image_to_gene``
            and ``distance_gene_to_image`` beside it).
        """
        x = np.atleast_2d(np.asarray(x, float))
        if self.direction == "image_to_gene":
            return rank_genes(self.forward.predict(x)[0], gene_emb, metric)
        views = self._views(x, gene_emb, metric)
        if self.direction == "gene_to_image":
            return rank_genes_by(views["gene_to_image"], gene_emb.index)
        mean_rank, rank = fuse_ranks(views["image_to_gene"], views["gene_to_image"])
        table = pd.DataFrame({"gene": gene_emb.index, "distance": mean_rank, "rank": rank})
        for name, d in views.items():
            table[f"rank_{name}"] = ranks_from_scores(d)
            table[f"distance_{name}"] = d
        return table.sort_values("rank", kind="stable").reset_index(drop=True)

    def permuted_ranks(
        self, x, gene_emb: pd.DataFrame, gene: str, n_perm: int, seed: int = 0,
        metric: str = "euclidean",
    ) -> np.ndarray:  # fmt: skip
        """Ranks of ``gene`` after re-pairing the training profiles and genes at random.

        The same permutations re-pair both directions (each re-chooses its ridge), so the
        baseline of a fused ranking is the fusion of the baselines.

        Parameters
        ----------
        x : numpy.ndarray
            ``(1, d)`` raw profile.
        gene_emb : pandas.DataFrame
            Candidate embeddings.
        gene : str
            The true gene.
        n_perm : int
            Permutations.
        seed : int
            Random seed.
        metric : str
            Distance of the image-to-gene direction.

        Returns
        -------
        numpy.ndarray
            ``(n_perm,)`` 1-based ranks.
        """
        perms = _permutations(len(self.forward.y_), n_perm, seed)
        pos = gene_emb.index.get_indexer([gene.upper()])[0]
        if pos < 0:
            raise KeyError(f"gene {gene!r} is not a candidate")
        x = np.atleast_2d(np.asarray(x, float))
        views = []
        if self.direction != "gene_to_image":
            preds = self.forward.permuted_predictions(x, n_perm, seed, perms)
            views.append(_distances(preds, gene_emb.to_numpy(float), metric))
        if self.reverse is not None:
            self._check_candidates(gene_emb)
            views.append(self.reverse.permuted_distances(x, perms))
        rank = fuse_ranks(*views)[1] if len(views) > 1 else ranks_from_scores(views[0])
        return rank[:, pos]


def rank_genes_by(distances: np.ndarray, genes: pd.Index) -> pd.DataFrame:
    """Ranking table (``gene``, ``distance``, ``rank``) from per-candidate distances.

    Parameters
    ----------
    distances : numpy.ndarray
        ``(n,)`` distances in the order of ``genes``.
    genes : pandas.Index
        Candidate genes.

    Returns
    -------
    pandas.DataFrame
        Sorted by rank (ties keep the table order).
    """
    order = np.argsort(distances, kind="stable")
    return pd.DataFrame(
        {"gene": genes[order], "distance": np.asarray(distances)[order],
         "rank": np.arange(1, len(order) + 1)}
    )  # fmt: skip


def fold_space(
    profiles: pd.DataFrame, fold_assignment: pd.DataFrame, condition: str
) -> tuple[pd.DataFrame, int]:
    """Rows of the fold space in which ``condition`` is held out.

    Parameters
    ----------
    profiles : pandas.DataFrame
        ``Metadata_Fold``, ``Metadata_Condition`` and features (one row per fold space and
        condition), as ``profiles/cnn_condition_profiles.parquet``.
    fold_assignment : pandas.DataFrame
        ``Metadata_Condition``, ``Metadata_Fold`` (``profiles/fold_assignment.csv``).
    condition : str
        Held-out condition.

    Returns
    -------
    space : pandas.DataFrame
        Profiles with ``Metadata_Fold`` equal to the condition's fold.
    fold : int
        That fold.
    """
    for name, df, cols in (
        ("fold_assignment.csv", fold_assignment, ["Metadata_Condition", "Metadata_Fold"]),
        ("cnn_condition_profiles.parquet", profiles, ["Metadata_Condition", "Metadata_Fold"]),
    ):
        missing = [c for c in cols if c not in df]
        if missing:
            raise InputError(f"profiles/{name}: missing columns {missing}; rerun stage 05.")
    hit = fold_assignment.loc[fold_assignment["Metadata_Condition"] == condition, "Metadata_Fold"]
    if hit.empty:
        raise InputError(
            f"profiles/fold_assignment.csv: condition {condition!r} has no fold; known: "
            f"{sorted(fold_assignment['Metadata_Condition'])}. Check the condition name."
        )
    fold = int(hit.iloc[0])
    space = profiles[pd.to_numeric(profiles["Metadata_Fold"], errors="coerce") == fold]
    if condition not in set(space["Metadata_Condition"]):
        raise InputError(
            f"profiles/cnn_condition_profiles.parquet: no profile of {condition!r} in fold "
            f"space {fold}; rerun stages 04-05 for fold {fold}."
        )
    return space.reset_index(drop=True), fold


def training_set(
    space: pd.DataFrame,
    gene_emb: pd.DataFrame,
    held_out: str | None,
    train_conditions,
    control: str = "EMPTY",
) -> dict:
    """Training matrices of one fold space and the held-out condition's profile.

    Training conditions are ``train_conditions`` (e.g. the impactful ones) other than the
    held-out one and the control, that have a profile and whose gene is a candidate.

    Parameters
    ----------
    space : pandas.DataFrame
        Condition profiles (``Metadata_Condition`` + features) of one fold space.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    held_out : str or None
        Held-out condition (None: no test row).
    train_conditions : iterable of str
        Conditions allowed for training.
    control : str
        Control condition.

    Returns
    -------
    dict
        ``x_train``, ``y_train``, ``conditions`` (training names), ``x_test`` (or None),
        ``dropped`` (allowed conditions left out, with the reason).
    """
    prof = space.drop_duplicates("Metadata_Condition").set_index("Metadata_Condition")
    feats = feature_columns(prof)
    names, dropped = [], {}
    for c in dict.fromkeys(train_conditions):
        if c in (held_out, control):
            continue
        if c not in prof.index:
            dropped[c] = "no profile in this fold space"
        elif str(c).upper() not in gene_emb.index:
            dropped[c] = "gene not among the candidates"
        else:
            names.append(c)
    if len(names) < 2:
        raise InputError(
            f"fewer than 2 training conditions with a profile and a candidate gene "
            f"(dropped: {dropped}); check screen/impactful.csv and the gene embeddings."
        )
    x_test = None
    if held_out is not None:
        if held_out not in prof.index:
            raise InputError(f"held-out condition {held_out!r} has no profile in this fold space.")
        x_test = prof.loc[[held_out], feats].to_numpy(float)
    return {
        "x_train": prof.loc[names, feats].to_numpy(float),
        "y_train": gene_emb.loc[[n.upper() for n in names]].to_numpy(float),
        "conditions": names,
        "x_test": x_test,
        "dropped": dropped,
    }


def translate_held_out(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    gene_emb: pd.DataFrame,
    gene: str,
    kernel: str = "ntk",
    depth: int = 2,
    alphas=DEFAULT_ALPHAS,
    metric: str = "euclidean",
    n_permutations: int = 0,
    seed: int = 0,
    compare: bool = True,
    direction: str = "image_to_gene",
    train_genes=None,
) -> tuple[pd.DataFrame, dict]:
    """Rank every candidate gene for one held-out condition, with the baselines.

    Parameters
    ----------
    x_train, y_train : numpy.ndarray
        Raw training profiles and their gene embeddings.
    x_test : numpy.ndarray
        ``(1, d)`` raw held-out profile.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    gene : str
        True gene of the held-out condition.
    kernel, depth, alphas
        :class:`Translator` settings.
    metric : {"euclidean", "cosine"}
        Distance for ranking (image-to-gene direction).
    n_permutations : int
        Permutations of the permutation baseline (0: none).
    seed : int
        Seed of the permutations.
    compare : bool
        Also rank with the other kernels, the other metric and each direction alone
        (``comparison``).
    direction : {"image_to_gene", "gene_to_image", "two_way", "auto"}
        Translation direction(s) (:meth:`TranslationModel.fit`).
    train_genes : sequence of str, optional
        Gene of every training row; needed unless ``direction`` is ``"image_to_gene"``
        (then, without it, ``comparison`` holds the image-to-gene kernels only).

    Returns
    -------
    ranking : pandas.DataFrame
        ``gene``, ``distance``, ``rank`` of the method (see :meth:`TranslationModel.rank`).
    result : dict
        ``true_rank``, ``n_candidates``, ``top10``, ``direction`` (the one used; with
        ``"auto"`` the chosen one), ``direction_requested``, ``inner_direction_scores``
        (``"auto"`` only), ``alpha``,
        ``inner_cv_mse``, ``predicted_embedding`` (image-to-gene), ``mean_embedding_rank``,
        ``uniform_expected_rank``; with the gene-to-image direction ``reverse_width`` and
        ``reverse_noise``; with permutations, ``permutation_ranks``,
        ``permutation_mean_rank``, ``permutation_rank_band`` (2.5 and 97.5 percentiles;
        the direction used by the method, fixed); with ``compare``, ``comparison``
        (``"kernel/metric"`` of the image-to-gene direction, ``"gene_to_image"`` and
        ``"two_way"`` -> rank).
    """
    gene = gene.upper()
    if gene not in gene_emb.index:
        raise InputError(f"gene {gene!r} is not among the {len(gene_emb)} candidate genes.")
    if train_genes is None and direction != "image_to_gene":
        raise ValueError(f"direction {direction!r} needs train_genes (the training rows' genes)")
    alphas = tuple(np.atleast_1d(alphas).tolist())
    used = TranslationModel.fit(
        x_train, y_train, train_genes, gene_emb, direction, kernel, depth, alphas, metric
    )
    reverse = used.reverse
    if compare and reverse is None and train_genes is not None:  # for the comparison
        reverse = GeneToImage().fit(gene_emb, train_genes, x_train)
    tr = used.forward
    pred = tr.predict(x_test)[0]
    ranking = used.rank(x_test, gene_emb, metric)
    n = len(gene_emb)
    result = {
        "gene": gene,
        "true_rank": true_rank(ranking, gene),
        "n_candidates": n,
        "top10": ranking["gene"].head(10).tolist(),
        "direction": used.direction,
        "direction_requested": direction,
        "inner_direction_scores": used.inner_scores,
        "kernel": kernel,
        "depth": depth,
        "metric": metric,
        "alpha": tr.alpha_,
        "alpha_grid": list(alphas),
        "inner_cv_mse": {str(k): v for k, v in tr.cv_mse_.items()},
        "predicted_embedding": pred.tolist(),
        "mean_embedding_rank": int(ranks_of(y_train.mean(0)[None], gene_emb, gene, metric)[0]),
        "uniform_expected_rank": (n + 1) / 2,
    }
    if used.reverse is not None:
        result["reverse_width"] = used.reverse.width_
        result["reverse_noise"] = used.reverse.noise_
    if n_permutations > 0:
        perm = used.permuted_ranks(x_test, gene_emb, gene, n_permutations, seed, metric)
        result["permutation_ranks"] = perm.tolist()
        result["permutation_mean_rank"] = float(perm.mean())
        result["permutation_rank_band"] = np.percentile(perm, [2.5, 97.5]).tolist()
    if compare:
        comp = {}
        for kern in ("ntk", "linear", "rbf"):
            t = tr if kern == kernel else Translator(kern, depth, alphas).fit(x_train, y_train)
            p = t.predict(x_test)
            for m in ("euclidean", "cosine"):
                comp[f"{kern}/{m}"] = int(ranks_of(p, gene_emb, gene, m)[0])
        for d in ("gene_to_image", "two_way") if train_genes is not None else ():
            other = TranslationModel(d, tr, reverse)
            comp[d] = true_rank(other.rank(x_test, gene_emb, metric), gene)
        result["comparison"] = comp
    return ranking, result


def fit_translator(
    profiles: pd.DataFrame,
    gene_emb: pd.DataFrame,
    conditions,
    kernel: str = "ntk",
    depth: int = 2,
    alphas=DEFAULT_ALPHAS,
    control: str = "EMPTY",
    direction: str = "image_to_gene",
    metric: str = "euclidean",
) -> tuple[TranslationModel, list[str]]:
    """Fit the translation on given conditions (e.g. all impactful ones) of one fold space.

    Use it to rank genes for a new target: ``model, used = fit_translator(space, genes,
    impactful)`` then ``model.rank(new_profile[features], genes)`` where the new profile was
    embedded and sphered like ``space``.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Condition profiles of one fold space (``Metadata_Condition`` + features).
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    conditions : iterable of str
        Training conditions.
    kernel, depth, alphas
        :class:`Translator` settings.
    control : str
        Control condition (never used for training).
    direction : {"image_to_gene", "gene_to_image", "two_way", "auto"}
        Translation direction(s) (:meth:`TranslationModel.fit`).
    metric : {"euclidean", "cosine"}
        Distance of the image-to-gene direction (used by ``"auto"``).

    Returns
    -------
    model : TranslationModel
        The fitted model (``model.forward.alpha_`` is the chosen ridge).
    conditions : list of str
        The conditions actually used.
    """
    ts = training_set(profiles, gene_emb, None, conditions, control)
    genes = [c.upper() for c in ts["conditions"]]
    model = TranslationModel.fit(
        ts["x_train"], ts["y_train"], genes, gene_emb, direction, kernel, depth, alphas, metric
    )
    return model, ts["conditions"]


def loo_ranks(
    space: pd.DataFrame,
    gene_emb: pd.DataFrame,
    conditions,
    kernel: str = "ntk",
    depth: int = 2,
    alpha: float = 1.0,
    metric: str = "euclidean",
    control: str = "EMPTY",
) -> pd.DataFrame:
    """Closed-form leave-one-out ranks over all given conditions of one fold space.

    One factorisation of the kernel over all conditions; the inputs are standardised
    with all of them (the features only, never the genes), and ``alpha`` is fixed, so it
    is a cross-check of the per-condition runs, not a replacement.

    Parameters
    ----------
    space : pandas.DataFrame
        Condition profiles of one fold space.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    conditions : iterable of str
        Conditions (e.g. impactful ones with a candidate gene).
    kernel, depth : str, int
        Kernel.
    alpha : float
        Ridge.
    metric : {"euclidean", "cosine"}
        Distance.
    control : str
        Control condition.

    Returns
    -------
    pandas.DataFrame
        ``condition``, ``loo_rank``, ``mean_embedding_rank`` (mean of the other rows).
    """
    ts = training_set(space, gene_emb, None, conditions, control)
    tr = Translator(kernel, depth, (alpha,)).fit(ts["x_train"], ts["y_train"])
    y = ts["y_train"]
    preds = _loo_from_hat(tr.hats_[0], y)
    genes = [c.upper() for c in ts["conditions"]]
    n = len(y)
    mean_other = (y.sum(0)[None] - y) / (n - 1)
    return pd.DataFrame(
        {
            "condition": ts["conditions"],
            "loo_rank": ranks_of(preds, gene_emb, genes, metric),
            "mean_embedding_rank": ranks_of(mean_other, gene_emb, genes, metric),
        }
    )


def _metric_row(label: str, ranks, n_candidates, ks) -> dict:
    ranks = np.asarray(ranks, float)
    acc = topk_accuracy(ranks, ks)
    return {
        "method": label,
        "n_conditions": len(ranks),
        "mean_rank": float(ranks.mean()),
        "median_rank": float(np.median(ranks)),
        **{f"top{k}": float(acc[k - 1]) for k in (1, 5, 10)},
        "auc_k10_50": topk_auc(ranks),
        "n_candidates": float(np.mean(n_candidates)),
    }


def summarize_results(results: list[dict], kmax: int = 50) -> tuple[pd.DataFrame, dict]:
    """Metrics table and top-k curves of the method and every baseline.

    Parameters
    ----------
    results : list of dict
        ``result.json`` contents of the held-out conditions.
    kmax : int
        Largest k of the curves (>= 50).

    Returns
    -------
    metrics : pandas.DataFrame
        One row per method: ``mean_rank``, ``median_rank``, ``top1``, ``top5``,
        ``top10``, ``auc_k10_50`` (and for the permutation baseline the 2.5/97.5
        percentile over permutations of ``auc_k10_50`` and ``top10``).
    curves : dict
        Label -> top-k accuracy over k = 1..kmax (the permutation entry is a
        ``(mean, low, high)`` tuple).
    """
    ks = np.arange(1, max(kmax, 50) + 1)
    n = [r["n_candidates"] for r in results]
    ranks = [r["true_rank"] for r in results]
    kern = results[0].get("kernel", "ntk").upper()
    direction = results[0].get("direction_requested", results[0].get("direction", "image_to_gene"))
    label = f"{direction.replace('_', '-')}, {kern} KRR"
    label = f"{kern} KRR" if direction == "image_to_gene" else label
    rows = [_metric_row(f"method ({label})", ranks, n, ks)]
    curves = {rows[0]["method"]: topk_accuracy(ranks, ks)}
    if all("permutation_ranks" in r for r in results):
        n_perm = min(len(r["permutation_ranks"]) for r in results)
        perm = np.array([r["permutation_ranks"][:n_perm] for r in results])  # cond x perm
        per = [_metric_row("p", perm[:, j], n, ks) for j in range(n_perm)]
        row = _metric_row("permutation baseline", perm.ravel(), n, ks)
        row["n_conditions"] = len(results)
        for key in ("auc_k10_50", "top10"):
            vals = [p[key] for p in per]
            row[key] = float(np.mean(vals))
            row[f"{key}_lo"], row[f"{key}_hi"] = np.percentile(vals, [2.5, 97.5]).tolist()
        rows.append(row)
        accs = np.stack([topk_accuracy(perm[:, j], ks) for j in range(n_perm)])
        lo, hi = np.percentile(accs, [2.5, 97.5], axis=0)
        curves[f"permutation ({n_perm}x, mean, 95% band)"] = (accs.mean(0), lo, hi)
    me = [r["mean_embedding_rank"] for r in results if "mean_embedding_rank" in r]
    if len(me) == len(results):
        rows.append(_metric_row("mean-embedding predictor", me, n, ks))
        curves["mean-embedding predictor"] = topk_accuracy(me, ks)
    uni = uniform_topk(ks, n)
    rows.append(
        {
            "method": "uniform random (k/N)",
            "n_conditions": len(results),
            "mean_rank": float(np.mean([(m + 1) / 2 for m in n])),
            "median_rank": float(np.mean([(m + 1) / 2 for m in n])),
            **{f"top{k}": float(uni[k - 1]) for k in (1, 5, 10)},
            "auc_k10_50": float(uni[9:50].mean()),
            "n_candidates": float(np.mean(n)),
        }
    )
    if all("comparison" in r for r in results):
        for key in results[0]["comparison"]:
            rows.append(
                _metric_row(f"compare {key}", [r["comparison"][key] for r in results], n, ks)
            )
    return pd.DataFrame(rows), curves
