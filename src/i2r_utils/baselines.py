"""The original Image2Reg ``--random`` baseline: the full shuffle of both embedding tables.

The original demo (``run_translation_demo.py --random``) shuffles, once and before anything
else, the rows of the WHOLE gene-embedding table (every candidate, the held-out gene's
included) and of the WHOLE condition-embedding table (the held-out condition's included),
while the gene and condition labels stay in place; the translation then runs as usual on the
scrambled tables. So the training pairs, the held-out input and the identities of the
candidates are all scrambled. :func:`full_shuffle_ranks` repeats this with seeded
permutations. It differs from the re-pairing permutation baseline of
:mod:`i2r_utils.ridge` (training profiles and training genes re-paired, candidates and
held-out profile untouched), and neither is the uniform random ranking the published random
curves show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .columns import CONTROL, feature_columns
from .directions import GeneToImage, ImageToGene, rank_candidates, training_set
from .progress import tqdm
from .ranking import true_rank

__all__ = ["shuffle_pool", "full_shuffle_ranks"]


def shuffle_pool(
    space: pd.DataFrame, held_out: str, train_conditions, control: str = CONTROL
) -> pd.DataFrame:
    """Return the condition-embedding table the original shuffles, from one fold space.

    The original's table holds the screen's targets (the held-out one included, the control
    excluded); here: the rows of ``train_conditions`` and ``held_out`` in the fold space,
    one per condition, without the control.

    Parameters
    ----------
    space, held_out, train_conditions, control
        As :func:`i2r_utils.directions.training_set` (``held_out`` is required here).

    Returns
    -------
    pandas.DataFrame
        The rows, in the order of ``space``.
    """
    keep = set(train_conditions) | {held_out}
    rows = space.drop_duplicates("Metadata_Condition")
    rows = rows[rows["Metadata_Condition"].isin(keep) & (rows["Metadata_Condition"] != control)]
    return rows.reset_index(drop=True)


def full_shuffle_ranks(
    space: pd.DataFrame,
    gene_emb: pd.DataFrame,
    held_out: str,
    train_conditions,
    direction: str = "image_to_gene",
    n: int = 200,
    seed: int = 0,
    metric: str = "euclidean",
    control: str = CONTROL,
    **image_to_gene,
) -> np.ndarray | None:
    """Rank of the held-out gene after the original's full shuffle, ``n`` times.

    Each repeat draws one permutation of the candidate rows and one of the condition rows
    (:func:`shuffle_pool`) from ``numpy.random.default_rng(seed)``, gives every gene label the
    embedding of another row and every condition label the profile of another row, takes the
    training pairs of :func:`i2r_utils.directions.training_set` (same labels) from the
    shuffled tables, fits the translation in ``direction`` (ridges and widths chosen again)
    and ranks the shuffled candidates for the shuffled held-out profile.

    Parameters
    ----------
    space : pandas.DataFrame
        Condition profiles of the held-out condition's fold space.
    gene_emb : pandas.DataFrame
        Candidate embeddings indexed by upper-case gene.
    held_out : str
        Held-out condition.
    train_conditions : iterable of str
        Conditions allowed for training.
    direction : {"image_to_gene", "gene_to_image", "two_way"}
        Direction of the translation (as the method used it).
    n : int
        Repeats.
    seed : int
        Seed of the permutations.
    metric : {"euclidean", "cosine"}
        Distance of the image-to-gene direction.
    control : str
        Control condition.
    **image_to_gene
        :class:`i2r_utils.directions.ImageToGene` settings (``kernel``, ``depth``,
        ``alphas``, ``scaling``, ``input_bias``).

    Returns
    -------
    numpy.ndarray or None
        ``(n,)`` 1-based ranks of the true gene; None when it is not a candidate (a miss
        whatever the shuffle).
    """
    gene = str(held_out).upper()
    if gene not in gene_emb.index:
        return None
    pool = shuffle_pool(space, held_out, train_conditions, control)
    ts = training_set(pool, gene_emb, held_out, train_conditions, control)  # labels only
    pos = pd.Series(np.arange(len(pool)), index=pool["Metadata_Condition"])
    train_rows, test_row = pos[ts["conditions"]].to_numpy(), pos[held_out]
    train_genes = gene_emb.index.get_indexer(ts["genes"])
    e, x = gene_emb.to_numpy(float), pool[feature_columns(pool)].to_numpy(float)
    rng = np.random.default_rng(seed)
    ranks = np.empty(n, int)
    for i in tqdm(range(n), desc="full shuffle", disable=None, leave=False):
        g = pd.DataFrame(e[rng.permutation(len(e))], index=gene_emb.index, columns=gene_emb.columns)
        xs = x[rng.permutation(len(x))]  # condition row j now carries the profile of row p[j]
        x_train, y_train = xs[train_rows], g.to_numpy()[train_genes]
        fwd = rev = None
        if direction != "gene_to_image":
            fwd = ImageToGene(**image_to_gene).fit(x_train, y_train)
        if direction != "image_to_gene":
            rev = GeneToImage().fit(g, ts["genes"], x_train)
        ranking = rank_candidates(xs[[test_row]], g, direction, fwd, rev, metric)
        ranks[i] = true_rank(ranking, gene)
    return ranks
