"""i2r_pipeline: the driver of the Image2Reg compendium, above the method library.

``run_all.py`` sets up the environment and hands over to :func:`i2r_pipeline.cli.main`.
This package knows the notebooks and their order; ``i2r_utils`` (the methods) does not.

Modules
-------
stages      the one ordered list of stages: notebook, scope and the stages it reads from.
pipeline    one main-job run: configuration, paths, units per scope, parameters, upstream
            digests, configuration check, stage selection, per-condition manifests.
executor    runs the units of a stage locally or on a Dask cluster.
units       one unit: its papermill run, done marker (hash, run id, outputs) and contract.
outputs     a unit's declared outputs: removed before it reruns, checked after.
notebooks   jupytext source -> cached .ipynb, declared parameters, papermill execution.
provenance  run manifests: git commit, package versions, parameters, input checksums,
            threads, CPU capability and platform.
lock        one run per results and data folder at a time.
answer      the main job's final answer: chosen direction, ranks, rounded summary.
config      static checks of configuration values (one table), before the first stage.
options     main-job options and help (standard library only: answered before any install).
cli         command line: main job, final report, ``test``, ``predict`` and ``data``.
fetch       ``run_all.py data``: checksummed, resumable downloads of public data.
predict     ``run_all.py predict``: new-target mode through its notebook.
"""

__all__ = ["PipelineError"]


class PipelineError(Exception):
    """A problem the user can fix (configuration, missing input, notebook); no traceback.

    The command line prints the message after ``run_all.py:`` and exits with status 1.
    """
