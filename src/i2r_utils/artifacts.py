"""Where each artefact of a run lives: the one place that spells result paths.

Every table, model and figure folder a notebook reads or writes is named here once, relative
to the run's results folder (``work_dir``). Notebooks and the driver ask
:func:`artifact` for a path instead of spelling it, so moving an artefact is a one-line
change.

Examples
--------
>>> from pathlib import Path
>>> artifact("results/x", "impactful").as_posix()
'results/x/screen/impactful.csv'
>>> artifact("results/x", "encoder_embeddings", fold=2).as_posix()
'results/x/encoders/fold2/embeddings.parquet'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ARTIFACTS", "artifact"]

# name -> path relative to work_dir; ``{field}`` parts are filled from keyword arguments.
ARTIFACTS: dict[str, str] = {
    # nuclei: per plate, then merged
    "nuclei_dir": "nuclei",
    "nuclei": "nuclei/nuclei.parquet",
    "plate_crops": "nuclei/crops/{plate}.npz",
    "plate_features": "nuclei/features/{plate}.parquet",
    "plate_filter_counts": "nuclei/filter_counts/{plate}.csv",
    "plate_nuclei": "nuclei/plates/{plate}.parquet",
    "plate_context": "nuclei/context/{plate}.npz",
    "plate_preprocessing": "nuclei/preprocessing/{plate}.json",
    "features_dir": "nuclei/features",
    # screen of conditions against the control
    "screen": "screen/screen.csv",
    "screen_call": "screen/screen_call.json",
    "impactful": "screen/impactful.csv",
    "folds": "screen/fold_assignment.csv",
    # gene embeddings
    "gene_embeddings": "genes/gene_embeddings.parquet",
    "gene_embedding_info": "genes/gene_embedding_info.json",
    # encoders, one per fold of held-out conditions
    "encoder_dir": "encoders/fold{fold}",
    "encoder_checkpoint": "encoders/fold{fold}/encoder.pt",
    "encoder_info": "encoders/fold{fold}/encoder.json",
    "encoder_embeddings": "encoders/fold{fold}/embeddings.parquet",
    # profiles
    "profiles_dir": "profiles",
    "cnn_condition_profiles": "profiles/cnn_condition_profiles.parquet",
    "cnn_well_profiles": "profiles/cnn_well_profiles.parquet",
    "sphering_fold": "profiles/sphering_fold{fold}.npz",
    "features_condition_profiles": "profiles/features_condition_profiles.parquet",
    "features_well_profiles": "profiles/features_well_profiles.parquet",
    "sphering_features": "profiles/sphering_features.npz",
    "untrained_condition_profiles": "profiles/untrained_condition_profiles.parquet",
    "sphering_untrained": "profiles/sphering_untrained.npz",
    "strong_perturbations": "profiles/strong_perturbations.csv",
    "profile_evaluation": "profiles/evaluation.csv",
    # translation, one folder per held-out condition
    "condition_dir": "{condition}",
    "ranking": "{condition}/ranking.csv",
    "top10": "{condition}/top10.csv",
    "result": "{condition}/result.json",
    "manifest": "{condition}/manifest.json",
    "target_gene_embeddings": "{condition}/gene_embeddings.parquet",
    "target_gene_embedding_info": "{condition}/gene_embedding_info.json",
    # summary over held-out conditions
    "summary": "summary.csv",
    "summary_metrics": "summary_metrics.csv",
    "loo_crosscheck": "loo_crosscheck.csv",
    "loo_crosscheck_metrics": "loo_crosscheck_metrics.csv",
    # segmentation evaluation
    "segmentation_dir": "segmentation",
    "segmentation_metrics": "segmentation/metrics.csv",
    "segmentation_summary": "segmentation/summary.csv",
    # the real interactome (iRefIndex) analysis: its own results folder
    "real_network_pruning": "real_interactome/pruning.csv",
    "real_interactomes": "real_interactome/interactomes.csv",
    "real_gene_embeddings": "real_interactome/gene_embeddings_{rule}.parquet",
    "real_interactome_info": "real_interactome/info.json",
    # real profile sets (run_all.py --dataset): relative to results/<dataset>
    "real_evaluation": "tables/evaluation.csv",
    "real_shuffled_baseline": "tables/shuffled_baseline.csv",
    "real_replicate_map": "tables/replicate_map.csv",
    "real_moa_map": "tables/moa_map.csv",
    "real_query_enrichment": "tables/query_enrichment.csv",
    "real_nn_accuracy": "tables/nn_accuracy.csv",
    "real_sphering_sweep": "tables/sphering_sweep.csv",
    "real_strong_perturbations": "tables/strong_perturbations.csv",
    "real_summary": "summary.json",
    # translation of the screen's real per-gene readouts (leave one gene out)
    "readout_coverage": "readouts/coverage.csv",
    "readout_landmark_check": "readouts/own_landmark_check.csv",
    "readout_embeddings": "readouts/embeddings/{key}.parquet",
    "readout_holdout": "readouts/{readout}/{protocol}/holdout.parquet",
    "readout_metrics": "readouts/{readout}/{protocol}/metrics.csv",
    "readout_summary": "readouts/{readout}/summary.json",
    "segmentation_subsets": "segmentation/subsets.csv",
    "segmentation_deltas": "segmentation/tta_deltas.csv",
    "segmentation_split": "segmentation/split.csv",
    "segmentation_model": "segmentation/unet.pt",
    "segmentation_model_info": "segmentation/unet.json",
    # new-target mode: relative to its own output folder (not a main job's work_dir)
    "prediction_ranking": "ranking.csv",
    "prediction_top10": "top10.csv",
    "prediction_images": "images.csv",
    "prediction_info": "prediction.json",
}


def artifact(work_dir: str | os.PathLike, name: str, **fields: object) -> Path:
    """Return the path of one artefact of a run.

    Parameters
    ----------
    work_dir : path-like
        The run's results folder.
    name : str
        A key of :data:`ARTIFACTS`, e.g. ``"impactful"`` or ``"encoder_embeddings"``.
    **fields
        Values of the ``{field}`` parts of the path (``plate``, ``fold``, ``condition``).

    Returns
    -------
    pathlib.Path
        ``work_dir / <relative path>``.

    Raises
    ------
    KeyError
        For an unknown name or a missing field, naming what is known or needed.
    """
    try:
        template = ARTIFACTS[name]
    except KeyError:
        raise KeyError(f"unknown artefact {name!r}; one of {sorted(ARTIFACTS)}") from None
    try:
        rel = template.format(**fields)
    except KeyError as exc:
        raise KeyError(f"artefact {name!r} ({template}) needs {exc.args[0]}=...") from None
    return Path(work_dir) / rel
