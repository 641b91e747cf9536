"""Real-data notebooks run by name: ``python3 run_all.py --dataset <name>``.

:data:`DATASETS` is the registry: each :class:`Dataset` names a notebook of ``notebooks/``,
the data folder it reads (looked up under :data:`DATA_ROOTS`, or given with
``--data-dir``), a one-line description (``--list``) and the notebook parameters that
make the run (e.g. which profile set and which replicate rule). A run is one papermill
unit (:mod:`i2r_pipeline.executor`): the executed notebook, its done marker, tables and
figures go to ``results/<name>/`` (or ``--results-dir``; figures to ``<results>/figures``
unless ``--figures-dir``), and a rerun with nothing changed is skipped.

The notebook gets, of everything below, only the parameters it declares: the registry's
``parameters``, then ``data_dir``, ``work_dir`` and ``figures_dir``, then the keys of the
configuration file (``--config``, ``--seed``) it declares that the registry does not set.
A registry parameter the notebook does not declare is an error.

Registering another data set: append a ``Dataset(...)`` to :data:`DATASETS` (a new
notebook ``notebooks/NN_<name>.py`` with a tagged ``parameters`` cell declaring
``data_dir``, ``work_dir``, ``figures_dir`` and its own parameters).

Standard library only (``--list`` is answered before anything is installed); the runs
themselves are :mod:`i2r_pipeline.realdata`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import PipelineError

__all__ = [
    "Dataset",
    "DATASETS",
    "DATA_ROOTS",
    "dataset_named",
    "dataset_lines",
    "data_folder",
]

#: Where a data set's folder is looked for, relative to the repository root, in order.
DATA_ROOTS = ("../shared/data", "data/real")

#: Regulariser grid of the sphering sweep of the profile data sets (log grid 1e-5 .. 1).
LAMBDA_GRID = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]


@dataclass(frozen=True)
class Dataset:
    """One registered real-data run.

    Attributes
    ----------
    name : str
        The ``--dataset`` name and the results subfolder.
    notebook : str
        Notebook name without extension, in the notebooks folder.
    data : str
        Name of its data folder (under a :data:`DATA_ROOTS` entry).
    description : str
        One line for ``--list``.
    parameters : dict
        Notebook parameters of this run (each must be declared by the notebook).
    """

    name: str
    notebook: str
    data: str
    description: str
    parameters: dict = field(default_factory=dict)


_PROFILE_RUN = {
    "lambda_grid": LAMBDA_GRID,
    "n_shuffles": 20,
    "null_size": 10000,
    "n_null": 1000,
    "max_moas": 0,
    "max_features": 0,
}

DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "lincs_plate",
        "10_real_profiles",
        "profiles_lincs_a549_plate",
        "profile evaluation on one LINCS Cell Painting plate (A549, 384 wells, 50 MoAs)",
        {"profile_set": "lincs_plate", "replicate_by": "Metadata_Compound", **_PROFILE_RUN},
    ),
    Dataset(
        "bbbc021",
        "10_real_profiles",
        "profiles_bbbc021_wellmean",
        "profile evaluation and NSC/NSB MoA accuracy on BBBC021 well means (MCF7, 12 MoAs)",
        {"profile_set": "bbbc021", "replicate_by": "Metadata_Condition", **_PROFILE_RUN},
    ),
    Dataset(
        "rohban_profiles",
        "10_real_profiles",
        "cpg0017_profiles",
        "profile evaluation on the screen's own per-well profiles (cpg0017; fetch first: "
        "run_all.py data cpg-profiles)",
        {"profile_set": "cpg0017", "replicate_by": "Metadata_Condition", **_PROFILE_RUN},
    ),
    Dataset(
        "irefindex",
        "11_real_interactome",
        "network_irefindex_v14",
        "the real iRefIndex v14 interactome for the screen's ORF genes: pruning, both rules, GAE",
        {},
    ),
    Dataset(
        "rohban_readouts",
        "12_real_readouts",
        "orf_rohban2017",
        "image-to-gene translation of the screen ORFs' real L1000 readouts, every gene held out",
        {
            "readout": "l1000",
            "held_out": "all",
            "protocol": "in_interactome",
            "interactome": "pcst",
            "network_pruning": "image2reg",
            "k_hop": 0,
            "directions": ["image_to_gene"],
            "n_permutations": 20,
            "n_shuffles": 10,
        },
    ),
)


def dataset_named(name: str, datasets=DATASETS) -> Dataset:
    """Return the registered data set ``name``.

    Raises
    ------
    PipelineError
        Naming the registered data sets.
    """
    for ds in datasets:
        if ds.name == name:
            return ds
    raise PipelineError(f"unknown data set {name!r}; one of {[d.name for d in datasets]}")


def dataset_lines(datasets=DATASETS) -> list[str]:
    """Lines of ``--list`` for the data sets: name, notebook, description."""
    return [f"--dataset {d.name:18s} {d.notebook}: {d.description}" for d in datasets]


def data_folder(ds: Dataset, root: Path, data_dir: str | None = None) -> Path:
    """Return the data folder of ``ds``: ``data_dir`` or the first of :data:`DATA_ROOTS`.

    Raises
    ------
    PipelineError
        When the folder is not found, naming the places tried.
    """
    tried = [Path(data_dir)] if data_dir else [Path(root) / r / ds.data for r in DATA_ROOTS]
    for path in tried:
        if path.is_dir():
            return path.resolve()
    raise PipelineError(
        f"data folder of {ds.name} not found (tried {', '.join(map(str, tried))}); put "
        f"{ds.data} there or pass --data-dir."
    )
