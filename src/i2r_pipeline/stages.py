"""The one ordered list of stages: each stage's notebook, scope and the stages it reads from.

Stages run in the order of :data:`STAGES`; the units of one stage are independent and may
run in parallel (``--executor dask``). Scopes (where the executed notebook of a unit goes):

==========  ===========================================  =============================
scope       units                                        folder under the results
==========  ===========================================  =============================
dataset     once per data set                            ``_dataset/``
plate       once per plate of ``data_dir/metadata.csv``  ``_plates/<plate>/``
fold        once per fold ``0 .. n_folds - 1``           ``_folds/fold<k>/``
condition   once per held-out condition                  ``<condition>/``
summary     once after all conditions                    ``_summary/``
==========  ===========================================  =============================

A unit reruns when a unit of a stage in its ``reads`` was recomputed (done markers with
upstream digests, :mod:`i2r_pipeline.executor`), or when an output it declares
(``outputs``: artefact names of :mod:`i2r_utils.artifacts`; ``figures``: figure names in
the run's figures folder) is missing; its declared outputs are removed before it reruns
(:mod:`i2r_pipeline.outputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SCOPES", "UNIT_PARAMETER", "STAGES", "Stage", "stage_named", "check_stages"]

#: Scopes of stages, in the order of the table above.
SCOPES = ("dataset", "plate", "fold", "condition", "summary")
#: The parameter a notebook of a per-unit scope must declare to know its unit.
UNIT_PARAMETER = {"plate": "plate", "fold": "fold", "condition": "condition"}


@dataclass(frozen=True)
class Stage:
    """One stage of the main job.

    Attributes
    ----------
    name : str
        Notebook name without extension, e.g. ``"06_translate_condition"``.
    scope : str
        One of :data:`SCOPES`: how many units the stage has.
    reads : tuple of str
        Names of the earlier stages whose outputs this stage reads.
    outputs : tuple of str
        Files each unit writes in the results folder: artefact names
        (``i2r_utils.artifacts.ARTIFACTS``, fields filled from the unit's scope), or
        ``<artefact>/<file>`` for a file in an artefact folder.
    figures : tuple of str
        Figures each unit writes in the figures folder, without suffix (``.png`` and
        ``.svg`` each).
    """

    name: str
    scope: str
    reads: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    # synthetic screen: images, masks, network, truth
    Stage("00_simulate_screen", "dataset"),
    # segmentation, filters, crops, features of a plate
    Stage(
        "01_preprocess_nuclei",
        "plate",
        reads=("00_simulate_screen",),
        outputs=(
            "plate_crops",
            "plate_features",
            "plate_filter_counts",
            "plate_nuclei",
            "plate_preprocessing",
        ),  # fmt: skip
    ),
    # merged nuclei; impactful conditions; their fold assignment
    Stage(
        "02_screen_conditions",
        "dataset",
        reads=("01_preprocess_nuclei",),
        outputs=("nuclei", "screen", "screen_call", "impactful", "folds"),
        figures=("fig_screen",),
    ),
    # graph-autoencoder gene embeddings
    Stage(
        "03_embed_genes",
        "dataset",
        reads=("00_simulate_screen",),
        outputs=("gene_embeddings", "gene_embedding_info"),
    ),
    # CNN encoder without the fold's held-out conditions
    Stage(
        "04_train_encoder",
        "fold",
        reads=("01_preprocess_nuclei", "02_screen_conditions"),
        outputs=("encoder_checkpoint", "encoder_info", "encoder_embeddings"),
    ),
    # condition profiles in every fold's space
    Stage(
        "05_build_profiles",
        "dataset",
        reads=("01_preprocess_nuclei", "02_screen_conditions", "04_train_encoder"),
        outputs=(
            "cnn_condition_profiles",
            "cnn_well_profiles",
            "features_condition_profiles",
            "features_well_profiles",
            "sphering_features",
            "untrained_condition_profiles",
            "sphering_untrained",
            "strong_perturbations",
            "profile_evaluation",
        ),  # fmt: skip
        figures=("fig_profile_evaluation", "fig_profile_map"),
    ),
    # NTK kernel regression; ranked genes
    Stage(
        "06_translate_condition",
        "condition",
        reads=("02_screen_conditions", "03_embed_genes", "05_build_profiles"),
        outputs=(
            "result",
            "ranking",
            "top10",
            "manifest",
            "condition_dir/top10.png",
            "condition_dir/top10.svg",
        ),  # fmt: skip
    ),
    # summary table; top-k accuracy figure
    Stage(
        "07_summarize_conditions",
        "summary",
        reads=("06_translate_condition",),
        outputs=("summary", "summary_metrics", "loo_crosscheck", "loo_crosscheck_metrics"),
        figures=("fig_topk_accuracy", "fig_translation_embedding"),
    ),
    # segmentation accuracy, test-time augmentation
    Stage(
        "08_evaluate_segmentation",
        "dataset",
        outputs=("segmentation_metrics", "segmentation_summary"),
        figures=("fig_segmentation_tta", "fig_segmentation_overlays"),
    ),
)


def stage_named(name: str, stages: Sequence[Stage] = STAGES) -> Stage:
    """Return the stage called ``name``.

    Parameters
    ----------
    name : str
        Full stage name, e.g. ``"04_train_encoder"``.
    stages : sequence of Stage
        Where to look.

    Returns
    -------
    Stage
        The stage.

    Raises
    ------
    KeyError
        When no stage has that name.
    """
    for stage in stages:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; one of {[s.name for s in stages]}")


def check_stages(stages: Sequence[Stage] = STAGES) -> list[str]:
    """Return what is wrong with a list of stages (empty when nothing is).

    Parameters
    ----------
    stages : sequence of Stage
        Stages in run order.

    Returns
    -------
    list of str
        One line per problem: a duplicate name, an unknown scope, or a ``reads`` entry
        that is not an earlier stage.
    """
    problems, seen = [], set()
    for stage in stages:
        if stage.name in seen:
            problems.append(f"stage {stage.name} is listed twice")
        if stage.scope not in SCOPES:
            problems.append(f"stage {stage.name}: unknown scope {stage.scope!r}; one of {SCOPES}")
        for dep in stage.reads:
            if dep not in seen:
                problems.append(f"stage {stage.name} reads {dep}, which is not an earlier stage")
        seen.add(stage.name)
    return problems
