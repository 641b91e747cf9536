"""Reference implementations the translation tests (and benchmarks) compare against.

Plain kernel ridge regression refitted from scratch, the hat-matrix form of closed-form
leave-one-out, the image-to-gene permutation baseline, and a compact version of what
notebook 06 computes for one held-out condition.
"""

from __future__ import annotations

import numpy as np

from i2r_utils.directions import (
    DEFAULT_ALPHAS,
    DIRECTIONS,
    GeneToImage,
    ImageToGene,
    choose_direction,
    inner_direction_scores,
    rank_candidates,
)
from i2r_utils.kernels import kernel_matrix
from i2r_utils.ranking import fuse_ranks, ranks_from_scores, ranks_of, true_rank
from i2r_utils.ridge import permutations


class KernelRidge:
    """Plain kernel ridge regression (one ``alpha``, inputs used as given, one solve)."""

    def __init__(self, alpha=1.0, kernel="ntk", depth=2, gamma=None, bias=0.0):
        self.alpha, self.kernel, self.depth, self.gamma, self.bias = (
            alpha,
            kernel,
            depth,
            gamma,
            bias,
        )

    def _k(self, a, b):
        g = self.gamma or 1.0 / a.shape[1]
        return kernel_matrix(a, b, self.kernel, self.depth, g) + self.bias

    def fit(self, x, y):
        self.x_ = np.asarray(x, float)
        k = self._k(self.x_, self.x_)
        self.coef_ = np.linalg.solve(k + self.alpha * np.eye(len(k)), np.asarray(y, float))
        return self

    def predict(self, x):
        return self._k(np.asarray(x, float), self.x_) @ self.coef_


def loo_predictions(k, y, alphas):
    """Closed-form LOO predictions ``(A, n, p)`` by the hat matrix ``H = K (K + a I)^-1``.

    ``(H Y - diag(H) Y)_i / (1 - H_ii)``; ``(n, p)`` when ``alphas`` is a scalar.
    """
    scalar = np.ndim(alphas) == 0
    lam, u = np.linalg.eigh((k + k.T) / 2)
    shrink = lam[None, :] / (lam[None, :] + np.atleast_1d(alphas).astype(float)[:, None])
    h = np.einsum("ij,aj,kj->aik", u, shrink, u)
    diag = np.diagonal(h, axis1=-2, axis2=-1)[..., None]
    y = np.asarray(y, float)
    out = (h @ y - diag * y) / (1 - diag)
    return out[0] if scalar else out


def permutation_ranks(x_train, y_train, x_test, gene_emb, gene, n_perm=100, seed=0,
                      metric="euclidean", **image_to_gene):  # fmt: skip
    """Image2Reg's ``--random``: ranks of ``gene`` with the training gene embeddings permuted."""
    model = ImageToGene(**image_to_gene).fit(x_train, y_train)
    perms = permutations(len(y_train), n_perm, seed)
    ranks = ranks_from_scores(model.permuted_distances(x_test, gene_emb, perms, metric))
    return ranks[:, gene_emb.index.get_loc(gene.upper())]


def permuted_ranks(x, gene_emb, gene, perms, direction, fwd, rev, metric="euclidean"):
    """Notebook 06's permutation baseline in ``direction``: ranks of ``gene`` per permutation."""
    views = []
    if direction != "gene_to_image":
        views.append(fwd.permuted_distances(x, gene_emb, perms, metric))
    if direction != "image_to_gene":
        views.append(rev.permuted_distances(x, perms, gene_emb))
    return fuse_ranks(*views)[1][:, gene_emb.index.get_loc(gene.upper())]


def held_out_result(ts, gene_emb, gene, direction="image_to_gene", kernel="ntk",
                    alphas=DEFAULT_ALPHAS, n_perm=0, seed=0, metric="euclidean"):  # fmt: skip
    """Notebook 06 in short: ranking and result of one held-out condition (training set ``ts``)."""
    x, y, genes, x_test = ts["x_train"], ts["y_train"], ts["genes"], ts["x_test"]
    fwd = ImageToGene(kernel, 2, alphas).fit(x, y)
    rev = GeneToImage().fit(gene_emb, genes, x)
    scores = {}
    if direction == "auto":
        scores = inner_direction_scores(x, y, genes, gene_emb, kernel, 2, alphas, metric)
    used = choose_direction(scores) if direction == "auto" else direction
    ranking = rank_candidates(x_test, gene_emb, used, fwd, rev, metric)
    result = {
        "direction": used,
        "true_rank": true_rank(ranking, gene),
        "mean_embedding_rank": int(ranks_of(y.mean(0)[None], gene_emb, gene, metric)[0]),
        "comparison": {
            d: true_rank(rank_candidates(x_test, gene_emb, d, fwd, rev, metric), gene)
            for d in DIRECTIONS
        },
        "inner_scores": scores,
        "reverse": rev,
    }
    if n_perm:
        perms = permutations(len(y), n_perm, seed)
        perm = permuted_ranks(x_test, gene_emb, gene, perms, used, fwd, rev, metric)
        result["permutation_mean_rank"] = float(perm.mean())
        result["permutation_rank_band"] = np.percentile(perm, [2.5, 97.5]).tolist()
    return ranking, result
