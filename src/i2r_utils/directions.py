"""The two directions of the translation between image profiles and gene embeddings.

``image_to_gene`` (Image2Reg): kernel ridge regression from a condition's image profile to
the embedding of its over-expressed gene (:class:`ImageToGene`); every candidate gene is
ranked by the distance of its embedding to the prediction. ``gene_to_image``: kernel ridge
regression from a gene's embedding to the image profile its over-expression gives
(:class:`GeneToImage`), predicted for every candidate; candidates are ranked by the distance
of their predicted profile to the observed one. The two views err differently (the first
averages gene embeddings, the second interpolates phenotypes over the gene embedding
space); ``two_way`` ranks by the mean of their two ranks, and ``auto`` uses the one of the
three with the best leave-one-out score on the training conditions
(:func:`inner_direction_scores`, :func:`choose_direction`).

Both directions are the closed-form leave-one-out ridge of :mod:`i2r_utils.ridge`, fitted on
the training conditions only (centring, scaling and every choice of ridge or width), with
profiles centred on the training mean and divided by the root-mean-square norm of the
centred training rows. The image-to-gene direction can also be the original Image2Reg
translation exactly (``ImageToGene("ntk", 1, (1.0,), input_bias=True, scaling="none")``:
one-hidden-layer ReLU NTK on raw inputs augmented with a constant 1, ridge 1);
:func:`method_label` names the settings a run used in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import artifact
from .columns import CONTROL, feature_columns
from .io import InputError
from .kernels import augment_bias, kernel_matrix, median_squared_distance, squared_distances
from .ranking import distances, fuse_ranks, ranking_table, ranks_from_scores, true_rank
from .ridge import LooRidge, centre_and_scale

__all__ = [
    "read_translation_settings",
    "DIRECTIONS",
    "DEFAULT_ALPHAS",
    "INPUT_SCALINGS",
    "method_label",
    "training_set",
    "ImageToGene",
    "GeneToImage",
    "rank_candidates",
    "inner_direction_scores",
    "choose_direction",
]

DIRECTIONS = ("image_to_gene", "gene_to_image", "two_way")
DEFAULT_ALPHAS = (0.001, 0.01, 0.1, 1.0, 10.0)
#: Input scalings of the image-to-gene direction: i2r's (centre, one RMS scale) and none.
INPUT_SCALINGS = ("global", "none")


def read_translation_settings(work_dir: str | os.PathLike) -> dict:
    """Return how a run translated its held-out conditions (its first readable ``result.json``).

    Parameters
    ----------
    work_dir : path-like
        Results folder of a run.

    Returns
    -------
    dict
        ``representation``, ``direction`` (the requested one: ``"auto"`` when the run chose
        by leave-one-out, so it is chosen again), ``kernel``, ``depth``, ``metric``,
        ``alphas`` (the ridge grid, or None), ``input_bias``, ``input_scaling`` and
        ``gene_norm``. Without a readable result: the encoder profiles translated image to
        gene with the NTK, as results written before these options.
    """
    settings = {
        "representation": "cnn", "direction": "image_to_gene", "kernel": "ntk", "depth": 2,
        "alphas": None, "metric": "euclidean", "input_bias": False, "input_scaling": "global",
        "gene_norm": "none",
    }  # fmt: skip
    for path in sorted(Path(work_dir).glob(artifact("", "result", condition="*").as_posix())):
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        keys = ("representation", "direction", "kernel", "depth", "metric", "input_bias",
                "input_scaling", "gene_norm")  # fmt: skip
        settings.update({k: res[k] for k in keys if res.get(k) is not None})
        if res.get("direction_requested"):  # "auto": choose again on another training set
            settings["direction"] = res["direction_requested"]
        if res.get("alpha_grid"):
            settings["alphas"] = tuple(res["alpha_grid"])
        break
    return settings


def training_set(
    space: pd.DataFrame,
    gene_emb: pd.DataFrame,
    held_out: str | None,
    train_conditions,
    control: str = CONTROL,
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
        ``x_train`` (raw profiles), ``y_train`` (their genes' embeddings), ``conditions``
        (training names), ``genes`` (their upper-case genes), ``x_test`` (``(1, d)``, or
        None), ``dropped`` (allowed conditions left out, with the reason).
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
        "genes": [n.upper() for n in names],
        "x_test": x_test,
        "dropped": dropped,
    }


@dataclass
class ImageToGene:
    """Kernel ridge regression from image profiles to gene embeddings (Image2Reg).

    Parameters
    ----------
    kernel : {"ntk", "linear", "rbf"}
        Kernel on the scaled profiles (:func:`i2r_utils.kernels.kernel_matrix`).
    depth : int
        NTK hidden layers.
    alphas : sequence of float
        Ridge grid; the value with the smallest closed-form LOO mean squared error on the
        training conditions is used (a single value as it is; with fewer than 3 training
        conditions, where LOO cannot choose, ``fallback_alpha``).
    gamma : float, optional
        RBF width; default ``1 / median squared distance`` between training inputs.
    bias : float
        Constant added to the kernel: an intercept with prior variance ``bias`` (the
        targets, unit vectors, are not centred). Not used with ``input_bias``.
    fallback_alpha : float
        Ridge when LOO cannot choose (Image2Reg's demo value 1).
    scaling : {"global", "feature", "none"}
        Input scaling (:func:`i2r_utils.ridge.centre_and_scale`; ``"none"``: raw inputs, as
        the original).
    input_bias : bool
        Append a constant coordinate 1 to every (scaled) input before the kernel
        (:func:`i2r_utils.kernels.augment_bias`) instead of adding ``bias`` to the kernel: the
        bias inside the network, as the original (with ``kernel="ntk"``, ``depth=1``).

    Attributes
    ----------
    alpha_ : float
        Chosen ridge.
    cv_mse_ : dict
        Ridge -> inner LOO mean squared error.
    ridge_ : LooRidge
        The fitted core.
    """

    kernel: str = "ntk"
    depth: int = 2
    alphas: tuple = DEFAULT_ALPHAS
    gamma: float | None = None
    bias: float = 1.0
    fallback_alpha: float = 1.0
    scaling: str = "global"
    input_bias: bool = False
    alpha_: float = field(init=False, default=np.nan)
    cv_mse_: dict = field(init=False, default_factory=dict)

    def _kernel(self, a: np.ndarray) -> np.ndarray:
        if self.input_bias:
            a, b = augment_bias(a), augment_bias(self.x_)
            return kernel_matrix(a, b, self.kernel, self.depth, self.gamma_)
        return kernel_matrix(a, self.x_, self.kernel, self.depth, self.gamma_) + self.bias

    def fit(self, x: np.ndarray, y: np.ndarray) -> ImageToGene:
        """Fit on raw training profiles ``x`` (n, d) and their gene embeddings ``y`` (n, k).

        Parameters
        ----------
        x : numpy.ndarray
            Training profiles (centred and scaled here with their own statistics).
        y : numpy.ndarray
            Training gene embeddings.

        Returns
        -------
        ImageToGene
            The fitted model.
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        if len(x) < 2 or len(x) != len(y):
            raise ValueError(f"need >= 2 matching training rows; got {len(x)} and {len(y)}")
        self.mu_, self.sd_ = centre_and_scale(x, self.scaling)
        self.x_ = (x - self.mu_) / self.sd_
        if self.gamma is None:
            self.gamma_ = 1.0 / median_squared_distance(self.x_)
        else:
            self.gamma_ = float(self.gamma)
        core = LooRidge({None: self._kernel(self.x_)}, self.alphas, (None, self.fallback_alpha))
        self.ridge_ = core.fit(y)
        self.alpha_ = float(core.choice_[1])
        self.cv_mse_ = {a: m for (_, a), m in core.cv_mse_.items()}
        return self

    def _test_kernel(self, x: np.ndarray) -> np.ndarray:
        return self._kernel((np.atleast_2d(np.asarray(x, float)) - self.mu_) / self.sd_)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted gene embeddings ``(m, k)`` of raw profiles ``x`` (m, d)."""
        return self._test_kernel(x) @ self.ridge_.dual_

    def loo_predictions(self) -> np.ndarray:
        """Closed-form LOO predictions ``(n, k)`` of the training rows, at the chosen ridge."""
        core = self.ridge_
        return core.y_ - core.loo_residuals(core.y_, core.choice_)

    def distances(self, x: np.ndarray, gene_emb: pd.DataFrame, metric: str = "euclidean"):
        """Distance ``(n_candidates,)`` of every candidate embedding to one profile's prediction.

        ``x`` is one raw profile, ``(d,)`` or ``(1, d)``; ``metric`` "euclidean" or "cosine".
        """
        return distances(self.predict(x), gene_emb.to_numpy(float), metric)[0]

    def permuted_distances(
        self, x: np.ndarray, gene_emb: pd.DataFrame, perms, metric: str = "euclidean"
    ) -> np.ndarray:
        """:meth:`distances` ``(len(perms), n_candidates)`` after re-pairing, ridge re-chosen.

        ``perms`` are permutations ``p`` of the training rows
        (:func:`i2r_utils.ridge.permutations`): training profile ``i`` gets the gene
        embedding of row ``p[i]``.
        """
        preds = self.ridge_.permuted_predictions({None: self._test_kernel(x)}, perms)
        preds = np.array([p[0] for p in preds]).reshape(len(perms), -1)
        return distances(preds, gene_emb.to_numpy(float), metric)


@dataclass
class GeneToImage:
    """Kernel ridge regression from gene embeddings to image profiles, over all candidates.

    Kernel on genes: ``k(g, h) = exp(-|e_g - e_h|^2 / (w m))`` with ``m`` the median squared
    distance between candidate embeddings (unsupervised: gene embeddings only) and ``w`` a
    width; width and ridge (noise) are chosen by closed-form LOO on the training conditions.

    Parameters
    ----------
    widths : sequence of float
        Kernel widths ``w`` tried (in units of the median squared distance).
    noises : sequence of float
        Ridges tried.
    fallback : tuple of float
        ``(width, noise)`` used with fewer than 3 training conditions (the width one of
        ``widths``).

    Attributes
    ----------
    width_, noise_ : float
        Chosen width and noise.
    cv_mse_ : dict
        ``(width, noise)`` -> LOO mean squared error.
    predicted_ : numpy.ndarray
        ``(n_candidates, d)`` predicted (scaled) profile of every candidate.
    """

    widths: tuple = (0.25, 0.5, 1.0, 2.0, 4.0)
    noises: tuple = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
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
        self.candidates_, self.pos_ = gene_emb.index, pos
        e = gene_emb.to_numpy(float)
        d2, scale = squared_distances(e, e), median_squared_distance(e)
        self.kernels_ = {w: np.exp(-d2 / (w * scale)) for w in dict.fromkeys(self.widths)}
        self.mu_, self.sd_ = centre_and_scale(x)
        self.y_ = (x - self.mu_) / self.sd_
        train = {w: k[np.ix_(pos, pos)] for w, k in self.kernels_.items()}
        self.ridge_ = LooRidge(train, self.noises, self.fallback).fit(self.y_)
        (self.width_, self.noise_), self.cv_mse_ = self.ridge_.choice_, self.ridge_.cv_mse_
        self.predicted_ = self.kernels_[self.width_][:, pos] @ self.ridge_.dual_
        return self

    def _scaled(self, x: np.ndarray, gene_emb: pd.DataFrame | None) -> np.ndarray:
        if gene_emb is not None and not self.candidates_.equals(gene_emb.index):
            raise ValueError("rank with the candidate table the gene-to-image model was fitted on")
        return ((np.atleast_2d(np.asarray(x, float)) - self.mu_) / self.sd_)[0]

    def distances(self, x: np.ndarray, gene_emb: pd.DataFrame | None = None) -> np.ndarray:
        """Euclidean distance ``(n_candidates,)`` of one raw profile to every predicted one.

        ``gene_emb``, when given, is checked to be the candidate table of the fit.
        """
        xs = self._scaled(x, gene_emb)
        return np.sqrt(((xs[None] - self.predicted_) ** 2).sum(1))

    def permuted_distances(self, x: np.ndarray, perms, gene_emb=None) -> np.ndarray:
        """:meth:`distances` ``(len(perms), n_candidates)`` after re-pairing, grid re-chosen.

        ``perms`` as :meth:`ImageToGene.permuted_distances` uses them: training profile
        ``i`` is paired with the gene of row ``p[i]``.
        """
        xs = self._scaled(x, gene_emb)
        k_test = {w: k[:, self.pos_] for w, k in self.kernels_.items()}
        # gene j now carries the profile paired with it: the profiles re-ordered by p^-1
        preds = self.ridge_.permuted_predictions(k_test, [np.argsort(p) for p in perms])
        out = np.empty((len(perms), len(self.candidates_)))
        for i, pred in enumerate(preds):
            out[i] = np.sqrt(((xs[None] - pred) ** 2).sum(1))
        return out


def _check_direction(direction: str, choices=DIRECTIONS) -> None:
    if direction not in choices:
        raise InputError(f"unknown direction {direction!r}; choose one of {list(choices)}")


def rank_candidates(
    x: np.ndarray,
    gene_emb: pd.DataFrame,
    direction: str,
    image_to_gene: ImageToGene | None = None,
    gene_to_image: GeneToImage | None = None,
    metric: str = "euclidean",
) -> pd.DataFrame:
    """Rank every candidate gene for one raw profile in one direction.

    Parameters
    ----------
    x : numpy.ndarray
        ``(d,)`` or ``(1, d)`` raw profile.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by gene (the table the models were fitted with).
    direction : {"image_to_gene", "gene_to_image", "two_way"}
        Direction(s) used.
    image_to_gene, gene_to_image : fitted models
        The ones ``direction`` needs.
    metric : {"euclidean", "cosine"}
        Distance of the image-to-gene direction.

    Returns
    -------
    pandas.DataFrame
        ``gene``, ``distance``, ``rank`` sorted by rank (:func:`i2r_utils.ranking.
        ranking_table`). ``distance`` is the direction's distance, or for ``two_way`` the
        mean of the two ranks, with ``rank_image_to_gene``, ``distance_image_to_gene``,
        ``rank_gene_to_image`` and ``distance_gene_to_image`` beside it.
    """
    _check_direction(direction)
    views = {}
    if direction != "gene_to_image":
        views["image_to_gene"] = image_to_gene.distances(x, gene_emb, metric)
    if direction != "image_to_gene":
        views["gene_to_image"] = gene_to_image.distances(x, gene_emb)
    if direction != "two_way":
        return ranking_table(gene_emb.index, views[direction])
    mean_rank, rank = fuse_ranks(*views.values())
    columns = {}
    for name, d in views.items():
        columns[f"rank_{name}"], columns[f"distance_{name}"] = ranks_from_scores(d), d
    return ranking_table(gene_emb.index, mean_rank, rank, **columns)


def inner_direction_scores(
    x_train, y_train, train_genes, gene_emb: pd.DataFrame, kernel: str = "ntk",
    depth: int = 2, alphas=DEFAULT_ALPHAS, metric: str = "euclidean", **image_to_gene,
) -> dict[str, float]:  # fmt: skip
    """Leave-one-out score of every direction on the training conditions.

    Each training condition in turn is left out, both directions are fitted on the others
    (ridges and width chosen again by their own inner leave-one-out) and every candidate
    is ranked for it; the score of a direction is the mean log rank of the left-out
    conditions' genes (smaller is better; log so that a few far misses do not dominate).

    Parameters
    ----------
    x_train, y_train : numpy.ndarray
        Raw training profiles and their gene embeddings.
    train_genes : sequence of str
        Gene of every training row.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    kernel, depth, alphas
        :class:`ImageToGene` settings.
    metric : {"euclidean", "cosine"}
        Distance of the image-to-gene direction.
    **image_to_gene
        Further :class:`ImageToGene` settings (``scaling``, ``input_bias``).

    Returns
    -------
    dict
        Direction -> mean log rank; empty with fewer than 4 training conditions (too few
        to fit on the others and choose their ridges).
    """
    x, y = np.asarray(x_train, float), np.asarray(y_train, float)
    if len(x) < 4:
        return {}
    genes = [str(g).upper() for g in train_genes]
    logs = {d: [] for d in DIRECTIONS}
    for j in range(len(x)):
        keep = np.arange(len(x)) != j
        fwd = ImageToGene(kernel, depth, alphas, **image_to_gene).fit(x[keep], y[keep])
        kept = [g for g, k in zip(genes, keep, strict=True) if k]
        rev = GeneToImage().fit(gene_emb, kept, x[keep])
        for d in DIRECTIONS:
            ranking = rank_candidates(x[[j]], gene_emb, d, fwd, rev, metric)
            logs[d].append(np.log(true_rank(ranking, genes[j])))
    return {d: float(np.mean(v)) for d, v in logs.items()}


def choose_direction(scores: dict[str, float]) -> str:
    """Return the direction ``auto`` uses: the best inner score (ties, no scores: two-way).

    Parameters
    ----------
    scores : dict
        :func:`inner_direction_scores` (empty: too few training conditions).

    Returns
    -------
    str
        One of :data:`DIRECTIONS`.
    """
    return min(("two_way", "image_to_gene", "gene_to_image"), key=lambda d: scores.get(d, 0.0))


def _is_original(s: dict) -> bool:
    """Whether the settings are the original Image2Reg translation in every element."""
    return (
        s.get("kernel") == "ntk" and s.get("depth") == 1 and bool(s.get("input_bias"))
        and s.get("input_scaling") == "none" and [float(a) for a in s.get("alphas", ())] == [1.0]
        and s.get("direction") == "image_to_gene" and s.get("metric") == "euclidean"
        and s.get("gene_norm") == "l2" and s.get("representation") == "cnn"
        and s.get("condition_embedding") == "nucleus_mean"
    )  # fmt: skip


def method_label(settings: dict) -> str:
    """Name the translation a run used in one line, honestly (which method, which settings).

    Parameters
    ----------
    settings : dict
        ``kernel``, ``depth``, ``input_bias``, ``input_scaling``, ``alphas`` (the ridge
        grid), ``direction`` (requested), ``direction_used``, ``metric``, ``gene_norm``,
        ``representation``, ``condition_embedding`` (``"profiles"`` or ``"nucleus_mean"``).

    Returns
    -------
    str
        ``"image2reg translation: ..."`` when every element is the original's (nucleus-mean
        encoder embeddings, NTK depth 1 on bias-augmented raw inputs, ridge 1, image to
        gene, euclidean ranking of L2-normalised gene embeddings), else ``"i2r translation:
        ..."``; the settings follow, e.g. ``"..., NTK depth 2, kernel constant 1, centred and
        scaled inputs, ridge by inner LOO over 0.001-10, auto (two_way), ..."``.
    """
    s = settings
    kern = {"ntk": f"NTK depth {s.get('depth')}", "linear": "linear kernel", "rbf": "RBF kernel"}
    alphas = [float(a) for a in s.get("alphas", ())]
    ridge = f"ridge {alphas[0]:g}" if len(alphas) == 1 else (
        f"ridge by inner LOO over {min(alphas):g}-{max(alphas):g}")  # fmt: skip
    direction = s.get("direction", "image_to_gene")
    if direction == "auto":
        direction = f"auto ({s.get('direction_used', '?')})"
    embedding = {"nucleus_mean": "nucleus-mean embeddings", "profiles": "sphered profiles"}
    condition = embedding.get(s.get("condition_embedding"), "profiles")
    parts = [
        f"{s.get('representation', 'cnn')} {condition}",
        kern.get(s.get("kernel"), str(s.get("kernel"))),
        "bias-augmented inputs" if s.get("input_bias") else "kernel constant 1",
        "raw inputs" if s.get("input_scaling") == "none" else "centred and scaled inputs",
        ridge,
        direction.replace("_", " "),
        f"{s.get('metric', 'euclidean')} ranking"
        + (" of L2-normalised gene embeddings" if s.get("gene_norm") == "l2" else ""),
    ]
    return ("image2reg" if _is_original(s) else "i2r") + " translation: " + ", ".join(parts)
