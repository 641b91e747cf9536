"""The gene-to-image direction of the translation, and rank fusion of both directions.

Image2Reg translates one way: a held-out condition's image profile -> a predicted gene
embedding -> candidates ranked by their distance to it (:class:`i2r_utils.translation.
Translator`). The other way round (:class:`GeneToImage`) predicts, from every candidate
gene's embedding, the image profile its over-expression would give (kernel ridge
regression, Gaussian-process posterior mean, trained on the training conditions' pairs),
and ranks the candidates by the distance of that predicted profile to the observed one.
The two views err differently (the first averages gene embeddings, the second
interpolates phenotypes over the gene embedding space), so :func:`fuse_ranks` averages
the two rankings ("two-way" translation).

Kernel on genes: ``k(g, h) = exp(-|e_g - e_h|^2 / (w m))`` with ``m`` the median squared
distance between candidate embeddings (unsupervised: gene embeddings only) and ``w`` a
width; the ridge (noise) ``s``. Both are chosen on the training conditions only, by the
closed-form leave-one-out error of a linear smoother (``r_i = [C Y]_i / C_ii`` with
``C = (K + s I)^-1``). Profiles are centred on the training mean and divided by the
root-mean-square norm of the centred training rows, as the image-to-gene direction does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_WIDTHS", "DEFAULT_NOISES", "GeneToImage", "ranks_from_scores", "fuse_ranks"]

DEFAULT_WIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
DEFAULT_NOISES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass
class GeneToImage:
    """Kernel ridge regression from gene embeddings to image profiles, over all candidates.

    Parameters
    ----------
    widths : sequence of float
        Kernel widths ``w`` tried (in units of the median squared distance between
        candidate embeddings).
    noises : sequence of float
        Ridges ``s`` tried.
    fallback : tuple of float
        ``(width, noise)`` used when there are fewer than 3 training conditions, where
        leave-one-out cannot choose.

    Attributes
    ----------
    width_, noise_ : float
        Chosen by closed-form leave-one-out on the training conditions.
    cv_mse_ : dict
        Leave-one-out mean squared error per ``(width, noise)``.
    predicted_ : numpy.ndarray
        ``(n_candidates, d)`` predicted (scaled) profile of every candidate.
    """

    widths: tuple = DEFAULT_WIDTHS
    noises: tuple = DEFAULT_NOISES
    fallback: tuple = (1.0, 0.1)
    width_: float = field(init=False, default=np.nan)
    noise_: float = field(init=False, default=np.nan)
    cv_mse_: dict = field(init=False, default_factory=dict)

    def fit(self, gene_emb: pd.DataFrame, train_genes, x_train: np.ndarray) -> GeneToImage:
        """Fit on the training conditions' genes and raw profiles.

        Parameters
        ----------
        gene_emb : pandas.DataFrame
            Candidate embeddings indexed by upper-case gene.
        train_genes : sequence of str
            Gene of every training row (case-insensitive, all candidates).
        x_train : numpy.ndarray
            ``(n, d)`` raw training profiles, in the order of ``train_genes``.

        Returns
        -------
        GeneToImage
            The fitted model.
        """
        x = np.asarray(x_train, float)
        genes = [str(g).upper() for g in train_genes]
        pos = gene_emb.index.get_indexer(genes)
        if (pos < 0).any():
            missing = [g for g, p in zip(genes, pos, strict=True) if p < 0]
            raise KeyError(f"training genes {missing} are not candidates")
        if len(x) < 1 or len(x) != len(genes):
            raise ValueError(f"need >= 1 matching training rows; got {len(x)} and {len(genes)}")
        self.candidates_ = gene_emb.index
        e = gene_emb.to_numpy(float)
        d2 = np.maximum((e**2).sum(1)[:, None] + (e**2).sum(1)[None] - 2 * e @ e.T, 0)
        med = np.median(d2[np.triu_indices(len(e), 1)]) if len(e) > 1 else 1.0
        scale = med if med > 0 else 1.0
        # the candidate kernel of every width, once (the fit, the choice and every
        # permutation reuse them)
        self.kernels_ = {w: np.exp(-d2 / (w * scale)) for w in {*self.widths, self.fallback[0]}}
        self.pos_ = pos
        self.mu_ = x.mean(0)
        rms = np.sqrt(((x - self.mu_) ** 2).sum(1).mean())
        self.sd_ = rms if rms > 0 else 1.0
        self.y_ = (x - self.mu_) / self.sd_
        # one eigendecomposition of the training kernel per width
        self.eig_ = {}
        for w, k in self.kernels_.items():
            lam, u = np.linalg.eigh(k[np.ix_(pos, pos)])
            self.eig_[w] = (np.clip(lam, 0, None), u)
        (self.width_, self.noise_), self.cv_mse_ = self._select(self.y_)
        self.predicted_ = self._predict(self.y_, self.width_, self.noise_)
        return self

    def _kernel(self, w: float) -> np.ndarray:
        return self.kernels_[w]

    def _select(self, y: np.ndarray):
        if len(y) < 3:
            return tuple(self.fallback), {}
        mse = {}
        for w in self.widths:
            lam, u = self.eig_[w]
            uty = u.T @ y
            for s in self.noises:
                inv = 1.0 / (lam + s)
                cy = u @ (inv[:, None] * uty)
                cii = (u**2) @ inv
                mse[(w, s)] = float(((cy / cii[:, None]) ** 2).mean())
        best = min(mse, key=mse.get)
        return best, mse

    def _predict(self, y: np.ndarray, w: float, s: float) -> np.ndarray:
        lam, u = self.eig_[w]
        coef = u @ ((1.0 / (lam + s))[:, None] * (u.T @ y))
        return self._kernel(w)[:, self.pos_] @ coef

    def _scale(self, x: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(np.asarray(x, float)) - self.mu_) / self.sd_

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Euclidean distance of a raw profile to every candidate's predicted profile.

        Parameters
        ----------
        x : numpy.ndarray
            ``(d,)`` or ``(1, d)`` raw profile.

        Returns
        -------
        numpy.ndarray
            ``(n_candidates,)`` distances, in the order of the candidate table.
        """
        return np.sqrt(((self._scale(x)[0][None] - self.predicted_) ** 2).sum(1))

    def permuted_distances(self, x: np.ndarray, perms) -> np.ndarray:
        """Distances after re-pairing the training profiles and genes (width and noise re-chosen).

        Parameters
        ----------
        x : numpy.ndarray
            ``(d,)`` or ``(1, d)`` raw profile.
        perms : sequence of numpy.ndarray
            Permutations ``p`` of the training rows as the image-to-gene baseline uses
            them: training profile ``i`` is paired with the gene of row ``p[i]``.

        Returns
        -------
        numpy.ndarray
            ``(len(perms), n_candidates)`` distances.
        """
        xs = self._scale(x)[0]
        out = np.empty((len(perms), len(self.candidates_)))
        for i, p in enumerate(perms):
            y = self.y_[np.argsort(p)]  # gene j now carries the profile paired with it
            (w, s), _ = self._select(y)
            out[i] = np.sqrt(((xs[None] - self._predict(y, w, s)) ** 2).sum(1))
        return out


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of scores (smaller = better) along the last axis; ties keep the order.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(..., n)`` scores.

    Returns
    -------
    numpy.ndarray
        Ranks of the same shape.
    """
    scores = np.asarray(scores, float)
    order = np.argsort(scores, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[-1] + 1), axis=-1)
    return ranks


def fuse_ranks(*distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average the rankings of several distance arrays; rank by the mean rank.

    Ties in the mean rank are broken by the first array's distance, then by order.

    Parameters
    ----------
    *distances : numpy.ndarray
        ``(..., n)`` distances (smaller = more likely), one array per view.

    Returns
    -------
    mean_rank : numpy.ndarray
        ``(..., n)`` mean of the views' 1-based ranks.
    rank : numpy.ndarray
        ``(..., n)`` fused 1-based rank.
    """
    if not distances:
        raise ValueError("no rankings to fuse")
    ranks = [ranks_from_scores(d) for d in distances]
    total = np.sum(ranks, axis=0)  # integers, so the tie-break key below is exact
    n = total.shape[-1]
    return total / len(ranks), ranks_from_scores(total * (n + 1) + ranks[0])
