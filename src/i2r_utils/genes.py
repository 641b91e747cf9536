"""The gene-embedding table of a run, dataset-wide or for one held-out condition.

One description of how a run builds its gene embeddings (:func:`gene_setup`: network and
expression files, pruning, interactome rule, autoencoder parameters) is written beside the
dataset-wide table, so that the same recipe can be rerun for one held-out condition.

:func:`target_gene_embeddings` returns the table a held-out condition is translated into:

* ``gamma == 0`` and ``protocol == "all_targets"``: the dataset-wide table, unchanged;
* otherwise, as Image2Reg trains one autoencoder per held-out target, a table trained for
  this condition only: with ``gamma > 0`` the image-cluster term uses KMeans clusters of the
  TRAINING conditions' image profiles of the condition's fold space (the held-out condition
  is not clustered and its gene is masked); with ``protocol == "new_target"`` the interactome
  is built WITHOUT the held-out gene as a target, so the gene is a candidate only when the
  rule reaches it from the other targets.

Nothing is cached in the package; a per-condition table is written under the condition's
results folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import networkx as nx
import pandas as pd

from .artifacts import artifact
from .columns import CONTROL, feature_columns
from .gae import GAEParams, embed_genes, image_clusters
from .interactome import (
    IMAGE2REG_COST_CUT,
    IMAGE2REG_HUB_QUANTILE,
    build_interactome,
    expression_prizes_costs,
    load_expression,
    load_network,
    prune_network,
    target_genes,
)
from .io import InputError, read_table, write_json, write_table

__all__ = [
    "PROTOCOLS",
    "PRUNINGS",
    "N_IMAGE_CLUSTERS",
    "gene_setup",
    "load_gene_inputs",
    "build_gene_embeddings",
    "target_gene_embeddings",
    "gene_protocol",
    "new_target_gene_embeddings",
]

#: Candidate protocols: the held-out gene is a target of the interactome, or it is not.
PROTOCOLS = ("all_targets", "new_target")
#: Network pruning before the interactome: none, or Image2Reg's (cost cut, LCC, hubs).
PRUNINGS = ("none", "image2reg")
#: Image2Reg's number of image clusters (fewer when there are fewer training conditions).
N_IMAGE_CLUSTERS = 10


def _resolve(base: Path, name: str | None) -> str | None:
    if not name:
        return None
    p = Path(name)
    return str((p if p.is_absolute() else base / p).resolve())


def gene_setup(
    data_dir: str | os.PathLike,
    network_file: str,
    expression_file: str | None,
    interactome: str = "shortest_path",
    k_hop: int = 1,
    network_pruning: str = "none",
    expression_path: str | None = None,
    params: GAEParams | None = None,
) -> dict:
    """Describe how the gene embeddings of a run are built (absolute paths).

    Parameters
    ----------
    data_dir : path-like
        Screen folder (``metadata.csv``: the target genes).
    network_file, expression_file : str
        Edge list and node-feature table, relative to ``data_dir`` or absolute
        (``expression_file`` None: identity node features).
    interactome : {"shortest_path", "pcst"}
        Candidate-interactome rule.
    k_hop : int
        Neighbourhood radius of the shortest-path rule.
    network_pruning : {"none", "image2reg"}
        Pruning of the network before the interactome.
    expression_path : str, optional
        Expression table for Image2Reg's prizes and edge costs (``pcst``), relative to
        ``data_dir`` or absolute.
    params : GAEParams, optional
        Autoencoder parameters (default ``GAEParams()``; ``gamma`` is set per held-out
        condition).

    Returns
    -------
    dict
        JSON-serialisable description read by :func:`load_gene_inputs`.
    """
    if network_pruning not in PRUNINGS:
        raise InputError(f"unknown network_pruning {network_pruning!r}; one of {list(PRUNINGS)}")
    base = Path(data_dir)
    return {
        "data_dir": str(base.resolve()),
        "network": _resolve(base, network_file),
        "features": _resolve(base, expression_file),
        "expression": _resolve(base, expression_path),
        "interactome": interactome,
        "k_hop": k_hop,
        "network_pruning": network_pruning,
        "gae": asdict(params or GAEParams()),
    }


def load_gene_inputs(setup: dict) -> dict:
    """Load and prepare what :func:`gene_setup` describes.

    Returns
    -------
    dict
        ``graph`` (pruned, with expression costs when given), ``features`` (or None),
        ``prizes`` (or None), ``targets`` (all screen targets), ``pruning`` (counts per
        step, or []), ``notes`` (one line per substitute used, e.g. uniform prizes).
    """
    graph = load_network(setup["network"])
    features = load_expression(setup["features"]) if setup.get("features") else None
    expression = load_expression(setup["expression"]) if setup.get("expression") else None
    notes, steps, prizes = [], [], None
    if setup["network_pruning"] == "image2reg":
        keep = expression.index if expression is not None else None
        graph, steps = prune_network(graph, IMAGE2REG_COST_CUT, IMAGE2REG_HUB_QUANTILE, keep)
    if expression is not None:
        graph, prizes, info = expression_prizes_costs(graph, expression)
        notes.append(
            f"expression table: edge costs 1-|Spearman r| over {info['n_samples']} samples "
            f"for {info['n_edges_expression_cost']} edges; prizes for {info['n_genes_prize']} "
            "genes" + ("" if prizes else " (no 'logfc' column: uniform target prizes)")
        )
        prizes = prizes or None
    elif setup["interactome"] == "pcst":
        notes.append(
            "no expression table (expression_path): the Steiner tree uses uniform prizes on "
            "the target genes (0 elsewhere) and the network's own edge costs"
        )
    return {
        "graph": graph,
        "features": features,
        "prizes": prizes,
        "targets": target_genes(setup["data_dir"]),
        "pruning": steps,
        "notes": notes,
    }


def build_gene_embeddings(
    inputs: dict,
    setup: dict,
    targets: list[str],
    labels: dict | None = None,
    gamma: float = 0.0,
    seed: int | None = None,
    progress: bool = False,
) -> tuple[nx.Graph, pd.DataFrame, dict]:
    """Interactome of ``targets`` and its autoencoder embeddings.

    Parameters
    ----------
    inputs : dict
        :func:`load_gene_inputs` output.
    setup : dict
        :func:`gene_setup` output.
    targets : list of str
        Target genes of the interactome.
    labels : dict, optional
        Gene -> image cluster (needed when ``gamma > 0``).
    gamma : float
        Weight of the image-cluster term.
    seed : int, optional
        Autoencoder seed (default: the setup's).
    progress : bool
        Show the training progress bar.

    Returns
    -------
    interactome : networkx.Graph
    embeddings : pandas.DataFrame
        Indexed by gene.
    info : dict
        Autoencoder info with ``candidates`` (the interactome's info).
    """
    sub, cand = build_interactome(
        inputs["graph"], targets, setup["interactome"], setup["k_hop"], inputs["prizes"]
    )
    gae = dict(setup["gae"], gamma=float(gamma))
    if seed is not None:
        gae["seed"] = int(seed)
    emb, info = embed_genes(sub, inputs["features"], GAEParams(**gae), progress, labels)
    info["candidates"] = cand
    return sub, emb, info


def _fold_clusters(work: Path, fold: int, train: list, representation: str, seed: int) -> dict:
    """KMeans labels of the profiles of the ``train`` conditions in fold space ``fold``."""
    from .profiles import translation_profiles

    profiles = translation_profiles(artifact(work, "profiles_dir"), representation)
    space = profiles[pd.to_numeric(profiles["Metadata_Fold"], errors="coerce") == int(fold)]
    rows = space[space["Metadata_Condition"].isin(set(train) - {CONTROL})]
    rows = rows.drop_duplicates("Metadata_Condition")
    table = rows.set_index(rows["Metadata_Condition"].astype(str).str.upper())
    return image_clusters(table[feature_columns(rows)], N_IMAGE_CLUSTERS, seed)


def _training_clusters(work: Path, condition: str, representation: str, seed: int) -> dict:
    """KMeans labels of the training conditions' profiles in the condition's fold space."""
    folds = read_table(artifact(work, "folds"))
    hit = folds.loc[folds["Metadata_Condition"] == condition, "Metadata_Fold"]
    if hit.empty:
        raise InputError(f"{artifact(work, 'folds')}: condition {condition!r} has no fold.")
    impactful = set(read_table(artifact(work, "impactful"))["Metadata_Condition"])
    return _fold_clusters(work, int(hit.iloc[0]), impactful - {condition}, representation, seed)


def _trained_table(work: Path, gene: str, labels, gamma: float, protocol: str, seed: int,
                   progress: bool) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Autoencoder trained on the run's recipe, ``gene`` not a target under ``new_target``."""
    info_path = artifact(work, "gene_embedding_info")
    if not info_path.is_file():
        raise InputError(f"{info_path}: not found; build the gene embeddings of this run first.")
    setup = json.loads(info_path.read_text()).get("setup")
    if not setup:
        raise InputError(f"{info_path}: no 'setup'; rebuild the gene embeddings of this run.")
    inputs = load_gene_inputs(setup)
    targets = [t for t in inputs["targets"] if protocol == "all_targets" or t != gene]
    if labels:
        labels.pop(gene, None)  # never the held-out condition's own cluster
    _, emb, info = build_gene_embeddings(inputs, setup, targets, labels, gamma, seed, progress)
    info.update(protocol=protocol, gamma=gamma, held_out_is_candidate=gene in emb.index)
    info["n_labelled_genes"] = sum(g in emb.index for g in labels or {})
    return emb, info


def _check_protocol(gamma: float, protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown candidate protocol {protocol!r}; one of {list(PROTOCOLS)}")
    if gamma < 0:
        raise InputError(f"gae_gamma must be >= 0, got {gamma!r}.")


def target_gene_embeddings(
    work_dir: str | os.PathLike,
    condition: str,
    representation: str = "cnn",
    gamma: float = 0.0,
    protocol: str = "all_targets",
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Gene-embedding table for one held-out condition (module docstring).

    Parameters
    ----------
    work_dir : path-like
        The run's results folder (gene embeddings, folds, impactful, profiles).
    condition : str
        Held-out condition (its gene is the upper-case name).
    representation : str
        Profiles whose training conditions are clustered (as the translation uses them).
    gamma : float
        Weight of the image-cluster term (0: none).
    protocol : {"all_targets", "new_target"}
        Whether the held-out gene is a target of the interactome.
    seed : int
        Autoencoder and KMeans seed.
    progress : bool
        Show the training progress bar.

    Returns
    -------
    pandas.DataFrame
        Embeddings indexed by ``gene``. A trained table is also written to
        ``artifact(work_dir, "target_gene_embeddings", condition=condition)`` with its info.
    """
    _check_protocol(gamma, protocol)
    work = Path(work_dir)
    if gamma == 0 and protocol == "all_targets":
        return read_table(artifact(work, "gene_embeddings")).set_index("gene")
    labels = _training_clusters(work, condition, representation, seed) if gamma > 0 else None
    emb, info = _trained_table(work, condition.upper(), labels, gamma, protocol, seed, progress)
    info = {"condition": condition, **info}
    write_table(emb.reset_index(), artifact(work, "target_gene_embeddings", condition=condition))
    write_json(info, artifact(work, "target_gene_embedding_info", condition=condition))
    return emb


def gene_protocol(work_dir: str | os.PathLike) -> dict:
    """How a run built the gene table of its held-out conditions.

    Parameters
    ----------
    work_dir : path-like
        Results folder of a run.

    Returns
    -------
    dict
        ``gamma``, ``protocol`` and ``seed`` of the first per-condition table's info
        (:func:`target_gene_embeddings`); without one, the dataset-wide table was used:
        ``gamma`` 0, ``"all_targets"`` and the dataset-wide autoencoder's seed.
    """
    work = Path(work_dir)
    out = {"gamma": 0.0, "protocol": "all_targets", "seed": 0}
    base = artifact(work, "gene_embedding_info")
    if base.is_file():
        out["seed"] = int(json.loads(base.read_text()).get("params", {}).get("seed", 0))
    pattern = artifact("", "target_gene_embedding_info", condition="*").as_posix()
    for path in sorted(work.glob(pattern)):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        return {"gamma": float(info.get("gamma", 0.0)),
                "protocol": info.get("protocol", "all_targets"),
                "seed": int(info.get("params", {}).get("seed", out["seed"]))}  # fmt: skip
    return out


def new_target_gene_embeddings(
    work_dir: str | os.PathLike,
    fold: int,
    train_conditions: list[str],
    excluded: str = "",
    representation: str = "cnn",
    gamma: float = 0.0,
    protocol: str = "all_targets",
    seed: int = 0,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Gene-embedding table for a new target (images of an unknown condition).

    The new target's gene is unknown, so it cannot be left out of the interactome: the
    dataset-wide table (built from the screen's targets) is leakage-free, and it is what
    the run's recipe gives when nothing else differs. A table is trained instead when
    ``gamma > 0`` (the image-cluster term, clusters of the ``train_conditions``' profiles
    in fold space ``fold``: the conditions the translation is trained on) or when a screen
    condition is evaluated as a new target (``excluded``) under ``protocol="new_target"``
    (its gene is then not a target), exactly as :func:`target_gene_embeddings` trains the
    table of that held-out condition. Nothing is written.

    Parameters
    ----------
    work_dir : path-like
        The run's results folder.
    fold : int
        Fold space of the new target's profile.
    train_conditions : list of str
        Conditions the translation is trained on (clustered when ``gamma > 0``).
    excluded : str
        Screen condition evaluated as a new target ("" for none).
    representation, gamma, protocol, seed, progress
        As :func:`target_gene_embeddings` (:func:`gene_protocol` reads a run's).

    Returns
    -------
    embeddings : pandas.DataFrame
        Indexed by ``gene``.
    info : dict
        ``source`` (``"dataset"`` or ``"trained"``) and, when trained, the autoencoder's info.
    """
    _check_protocol(gamma, protocol)
    work = Path(work_dir)
    gene = excluded.upper() if excluded else ""
    if gamma == 0 and (protocol == "all_targets" or not gene):
        return read_table(artifact(work, "gene_embeddings")).set_index("gene"), {
            "source": "dataset"
        }
    labels = None
    if gamma > 0:
        labels = _fold_clusters(work, fold, list(train_conditions), representation, seed)
    emb, info = _trained_table(work, gene, labels, gamma, protocol, seed, progress)
    return emb, {"source": "trained", **info}
