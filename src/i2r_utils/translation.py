"""Translation from condition image embeddings to regulatory gene embeddings.

Kernel ridge regression with the neural tangent kernel (NTK) of a fully connected ReLU
network, ranking of every candidate gene for a held-out condition, top-k accuracy and
the permutation ("random") baseline of Image2Reg.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "ntk_relu",
    "KernelRidge",
    "rank_genes",
    "true_rank",
    "topk_accuracy",
    "permutation_ranks",
]


def ntk_relu(x: np.ndarray, y: np.ndarray | None = None, depth: int = 2) -> np.ndarray:
    """Closed-form NTK of a fully connected ReLU network (infinite width, He scaling).

    Recursion (Jacot et al. 2018; Arora et al. 2019): ``S0 = x.y``, ``T0 = S0``; for each
    hidden layer ``S_h = sqrt(S_xx S_yy)/pi * (sin t + (pi - t) cos t)``,
    ``Sdot_h = (pi - t)/pi`` with ``cos t = S_{h-1}(x,y)/sqrt(S_xx S_yy)`` and
    ``T_h = T_{h-1} Sdot_h + S_h``.

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
    y = x if y is None else y
    s = x @ y.T
    nx_ = np.einsum("ij,ij->i", x, x)
    ny_ = np.einsum("ij,ij->i", y, y)
    norm = np.sqrt(np.outer(nx_, ny_)).clip(1e-12)
    theta = s.copy()
    for _ in range(depth):
        cos = np.clip(s / norm, -1.0, 1.0)
        t = np.arccos(cos)
        s = norm / np.pi * (np.sin(t) + (np.pi - t) * cos)
        theta = theta * (np.pi - t) / np.pi + s
    return theta


class KernelRidge:
    """Kernel ridge regression with the ReLU NTK, a linear or an RBF kernel.

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
    """

    def __init__(self, alpha: float = 1.0, kernel: str = "ntk", depth: int = 2, gamma=None):
        self.alpha, self.kernel, self.depth, self.gamma = alpha, kernel, depth, gamma

    def _k(self, a, b):
        if self.kernel == "ntk":
            return ntk_relu(a, b, self.depth)
        if self.kernel == "linear":
            return a @ b.T
        if self.kernel == "rbf":
            g = self.gamma or 1.0 / a.shape[1]
            d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T
            return np.exp(-g * np.maximum(d2, 0))
        raise ValueError(f"unknown kernel {self.kernel!r}; use 'ntk', 'linear' or 'rbf'")

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


def rank_genes(pred: np.ndarray, gene_emb: pd.DataFrame, metric: str = "euclidean") -> pd.DataFrame:
    """Rank candidate genes by their distance to a predicted embedding.

    Parameters
    ----------
    pred : numpy.ndarray
        Predicted embedding ``(k,)``.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by gene.
    metric : {"euclidean", "cosine"}
        Distance.

    Returns
    -------
    pandas.DataFrame
        ``gene``, ``distance``, ``rank`` (1 = most likely), sorted by rank.
    """
    e = gene_emb.to_numpy(float)
    p = np.asarray(pred, float).ravel()
    if metric == "euclidean":
        d = np.linalg.norm(e - p, axis=1)
    elif metric == "cosine":
        d = 1 - e @ p / (np.linalg.norm(e, axis=1) * np.linalg.norm(p)).clip(1e-12)
    else:
        raise ValueError(f"unknown metric {metric!r}; use 'euclidean' or 'cosine'")
    order = np.argsort(d, kind="stable")
    return pd.DataFrame(
        {"gene": gene_emb.index[order], "distance": d[order], "rank": np.arange(1, len(d) + 1)}
    )


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
    hit = ranking.index[ranking["gene"].str.upper() == gene.upper()]
    if len(hit) == 0:
        raise KeyError(f"gene {gene!r} is not among the {len(ranking)} candidates")
    return int(ranking.loc[hit[0], "rank"])


def topk_accuracy(ranks, ks) -> np.ndarray:
    """Top-k accuracy: the fraction of ranks <= k, for each k.

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


def permutation_ranks(
    x_train, y_train, x_test, gene_emb: pd.DataFrame, gene: str, n_perm: int = 100, seed: int = 0,
    metric: str = "euclidean", **krr,
) -> np.ndarray:  # fmt: skip
    """Ranks of the true gene when the training pairs are permuted (Image2Reg ``--random``).

    The rows of the training gene-embedding table are shuffled before each fit, which
    breaks the image-to-gene correspondence while keeping both distributions.

    Parameters
    ----------
    x_train, y_train : numpy.ndarray
        Training inputs and targets.
    x_test : numpy.ndarray
        ``(1, d)`` held-out input.
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
    **krr
        :class:`KernelRidge` arguments.

    Returns
    -------
    numpy.ndarray
        ``(n_perm,)`` ranks.
    """
    rng = np.random.default_rng(seed)
    out = np.empty(n_perm, int)
    for i in range(n_perm):
        perm = rng.permutation(len(y_train))
        pred = KernelRidge(**krr).fit(x_train, y_train[perm]).predict(x_test)[0]
        out[i] = true_rank(rank_genes(pred, gene_emb, metric), gene)
    return out


def training_pairs(
    profiles: pd.DataFrame, gene_emb: pd.DataFrame, held_out: str, control: str = "EMPTY"
):
    """Build the translation training set and the held-out input from condition profiles.

    Conditions whose gene is not a candidate (and the control) are left out. Features are
    standardised with the training conditions' mean and standard deviation and scaled by
    ``1/sqrt(d)`` so the kernel sees unit-order inputs.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Condition profiles: ``Metadata_Condition`` and feature columns.
    gene_emb : pandas.DataFrame
        Candidate gene embeddings indexed by upper-case gene symbol.
    held_out : str
        The held-out condition (its gene is what is predicted).
    control : str
        Control condition name.

    Returns
    -------
    x_train : numpy.ndarray
        Training inputs.
    y_train : numpy.ndarray
        Gene embeddings of the training conditions.
    x_test : numpy.ndarray
        ``(1, d)`` input of the held-out condition.
    train_conditions : list of str
        Training condition names.
    """
    from .columns import feature_columns

    prof = profiles.set_index("Metadata_Condition")
    if held_out not in prof.index:
        raise KeyError(f"held-out condition {held_out!r} has no profile; known: {list(prof.index)}")
    if held_out.upper() not in gene_emb.index:
        raise KeyError(f"held-out gene {held_out!r} is not among the candidate genes")
    names = [c for c in prof.index if c not in (held_out, control) and c.upper() in gene_emb.index]
    if len(names) < 2:
        raise ValueError("fewer than 2 training conditions with a candidate gene")
    feats = feature_columns(prof.reset_index())
    x = prof[feats].to_numpy(float)
    rows = prof.index.get_indexer(names)
    mu, sd = x[rows].mean(0), x[rows].std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd / np.sqrt(len(feats))
    y = gene_emb.loc[[n.upper() for n in names]].to_numpy(float)
    return z[rows], y, z[[prof.index.get_loc(held_out)]], names
