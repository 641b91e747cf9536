"""Run the independent units of a pipeline stage, locally or on a Dask cluster.

A *unit* is one papermill execution of one notebook with one set of parameters (a plate,
a fold, a held-out condition, or the whole data set). The pipeline
(:mod:`i2r_pipeline.pipeline`) builds the units of a stage and hands them to an executor;
the stages themselves run one after another.

* :class:`LocalExecutor` (the default) runs the units one after another in this process.
* :class:`DaskExecutor` submits every unit of a stage to a Dask ``distributed`` cluster, one
  papermill run per task, and collects the results as they finish. The cluster is a
  ``LocalCluster`` of worker *processes* on 127.0.0.1, an existing scheduler
  (``scheduler_address``), or a batch-system cluster of ``dask-jobqueue`` (``cluster="slurm"``
  or ``"pbs"``; queue, account, cores, memory and walltime come from the Dask configuration,
  e.g. ``~/.config/dask/jobqueue.yaml`` or ``DASK_JOBQUEUE__SLURM__QUEUE=...``).

Every unit keeps the same contract whatever runs it (:func:`i2r_pipeline.units.run_unit`:
done markers, upstream digests, declared outputs). A failing unit never raises: it returns
a :class:`UnitResult` with the error message and the path of the partially executed
notebook, so the other units of the stage finish and keep their results, and a rerun
executes only the units without a valid marker. The unit names are re-exported here.

``dask`` and ``dask-jobqueue`` are imported only when a Dask executor is made.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import uuid
from collections.abc import Iterable, Sequence

from i2r_utils.progress import tqdm

from .units import (
    QUIET_KERNEL,
    Unit,
    UnitResult,
    error_message,
    is_complete,
    marker_path,
    read_marker,
    run_unit,
    unit_key,
    upstream_digest,
)

__all__ = [
    "Unit",
    "UnitResult",
    "Executor",
    "LocalExecutor",
    "DaskExecutor",
    "EXECUTORS",
    "CLUSTERS",
    "QUIET_KERNEL",
    "marker_path",
    "read_marker",
    "upstream_digest",
    "unit_key",
    "is_complete",
    "run_unit",
    "make_executor",
    "batch_cluster",
    "failure_report",
]

#: Executor names accepted by :func:`make_executor`.
EXECUTORS = ("local", "dask")
#: Kinds of Dask cluster :func:`make_executor` can start (``local``: a ``LocalCluster``).
CLUSTERS = ("local", "slurm", "pbs")


class Executor:
    """Base class: run the units of one stage and return one result per unit.

    Units that are already complete are reported as skipped here, in the calling process,
    and never sent anywhere; subclasses run the others (:meth:`_run`). Use an executor as
    a context manager so that clusters are shut down.
    """

    #: Short name for logs.
    name = "executor"

    def run(self, units: Sequence[Unit], force: bool = False, desc: str = "") -> list[UnitResult]:
        """Run ``units`` (independent of each other) and return their results in order.

        Parameters
        ----------
        units : sequence of Unit
            Units of one stage.
        force : bool
            Rerun units that are complete.
        desc : str
            Label of the progress bar.

        Returns
        -------
        list of UnitResult
            In the order of ``units``.
        """
        results: list[UnitResult | None] = [None] * len(units)
        todo = []
        for i, unit in enumerate(units):
            if not force and is_complete(unit):
                results[i] = UnitResult(unit, "skipped", host=socket.gethostname())
                _log(results[i])
            else:
                todo.append(i)
        if todo:
            done = self._run([units[i] for i in todo], force, desc)
            for i, res in zip(todo, done, strict=True):
                results[i] = res
        return results

    def _run(self, units: Sequence[Unit], force: bool, desc: str) -> list[UnitResult]:
        raise NotImplementedError

    def describe(self) -> str:
        """Return one line saying where the units run."""
        return self.name

    def close(self) -> None:
        """Release the resources of the executor."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _log(result: UnitResult) -> None:
    tqdm.write(f"[{result.unit.stage}] {result.unit.label}: {result.describe()}")


class LocalExecutor(Executor):
    """Run the units one after another in this process (the default)."""

    name = "local"

    def _run(self, units: Sequence[Unit], force: bool, desc: str) -> list[UnitResult]:
        results = []
        for unit in tqdm(units, desc=desc or None, unit="unit", leave=False, disable=None):
            results.append(run_unit(unit, force))
            _log(results[-1])
        return results


class DaskExecutor(Executor):
    """Run the units of a stage as tasks on a Dask ``distributed`` cluster.

    The workers need this package and a Jupyter kernel named like the units'
    ``kernel_name`` installed, and must see the same file system.

    Parameters
    ----------
    client : distributed.Client, optional
        A connected client.
    cluster : object, optional
        A cluster started for this executor; closed by :meth:`close`.
    connect : callable, optional
        Called without arguments the first time a unit has to run (so that a rerun with
        nothing missing starts no cluster); returns ``(client, cluster or None)``.
    resources : dict, optional
        Worker resources every unit claims, e.g. ``{"notebook": 1}`` so that a worker with
        several threads still runs one notebook at a time (batch clusters).
    """

    name = "dask"

    def __init__(self, client=None, cluster=None, connect=None, resources=None):
        if client is None and connect is None:
            raise ValueError("DaskExecutor needs a client or a connect function")
        self._client = client
        self.cluster = cluster
        self._connect = connect
        self.resources = resources

    @property
    def client(self):
        """The Dask client; connects (and starts the cluster) on first use."""
        if self._client is None:
            self._client, self.cluster = self._connect()
            tqdm.write(f"[executor] {self.describe()}")
        return self._client

    def _run(self, units: Sequence[Unit], force: bool, desc: str) -> list[UnitResult]:
        """Submit every unit, gather the results as they finish.

        A unit whose task itself fails (e.g. a worker killed by the system) is reported
        as failed like a failing notebook; the other tasks go on.
        """
        from distributed import as_completed

        client = self.client
        futures = {}
        for i, unit in enumerate(units):
            key = f"{unit.stage}-{unit.label}-{uuid.uuid4().hex[:8]}"
            fut = client.submit(
                run_unit, unit, force, key=key, pure=False, resources=self.resources
            )
            futures[fut] = i
        results: list[UnitResult | None] = [None] * len(units)
        bar = tqdm(total=len(units), desc=desc or None, unit="unit", leave=False, disable=None)
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - reported like a notebook failure
                res = UnitResult(units[i], "failed", error=error_message(exc))
            results[i] = res
            _log(res)
            bar.update()
        bar.close()
        return results

    def n_workers(self) -> int:
        """Return the number of workers connected now."""
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def describe(self) -> str:
        """Scheduler address and number of workers (or that the cluster is not up yet)."""
        if self._client is None:
            return "dask (the cluster starts when a unit has to run)"
        return f"dask scheduler {self._client.scheduler.address} ({self.n_workers()} workers)"

    def close(self) -> None:
        """Close the client and any cluster started for it."""
        if self._client is not None:
            self._client.close()
        if self.cluster is not None:
            self.cluster.close()


def _thread_env(n_workers: int) -> dict:
    """BLAS/OpenMP/torch threads per worker: the cores shared out, unless set by the user."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, n_workers)))
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {k: os.environ.get(k, threads) for k in names}


def _connect(workers, scheduler_address, cluster, wait_timeout):
    """Start or join the cluster; return ``(client, cluster or None)``."""
    from distributed import Client, LocalCluster

    if scheduler_address:
        return Client(scheduler_address), None
    if cluster == "local":
        n = workers or os.cpu_count() or 1
        local = LocalCluster(
            n_workers=n,
            threads_per_worker=1,  # one papermill run per worker process at a time
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0" if importlib.util.find_spec("bokeh") else None,
            memory_limit=0,  # the work happens in kernel subprocesses Dask does not see
            env=_thread_env(n),
        )
        return Client(local), local
    batch = batch_cluster(cluster)
    batch.scale(jobs=workers or 1)
    client = Client(batch)
    client.wait_for_workers(1, timeout=wait_timeout)
    return client, batch


def batch_cluster(kind: str = "slurm"):
    """Make (not scale) a ``dask_jobqueue`` cluster whose workers run one notebook at a time.

    Queue, account, cores, memory, walltime, job-script prologue etc. come from the Dask
    configuration ``jobqueue.<kind>.*`` (``~/.config/dask/jobqueue.yaml`` or
    ``DASK_JOBQUEUE__SLURM__QUEUE=...``). Every worker gets the resource ``notebook=1``
    and every unit claims it, so a job's cores serve one notebook kernel at a time.

    Parameters
    ----------
    kind : {"slurm", "pbs"}
        Batch system.

    Returns
    -------
    dask_jobqueue.JobQueueCluster
        ``cluster.job_script()`` shows the job that ``scale`` submits.
    """
    import dask
    import dask_jobqueue

    classes = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}
    if kind not in classes:
        raise ValueError(f"unknown batch system {kind!r}; choose one of {sorted(classes)}")
    extra = list(dask.config.get(f"jobqueue.{kind}.worker-extra-args", None) or [])
    return classes[kind](worker_extra_args=[*extra, "--resources", "notebook=1"])


def make_executor(
    kind: str = "local",
    workers: int | None = None,
    scheduler_address: str | None = None,
    cluster: str | None = None,
    wait_timeout: float = 600.0,
) -> Executor:
    """Make the executor named ``kind``.

    Parameters
    ----------
    kind : {"local", "dask"}
        ``local``: sequential in this process. ``dask``: a Dask cluster (below), started
        or joined the first time a unit has to run.
    workers : int, optional
        Dask worker processes (``LocalCluster``: default the number of cores; batch
        clusters: jobs of one worker each, default 1).
    scheduler_address : str, optional
        Connect to a running scheduler (``tcp://host:8786``) instead of starting a cluster.
    cluster : {"local", "slurm", "pbs"}, optional
        Cluster to start when no address is given (default ``local``: worker processes on
        127.0.0.1, one thread each). ``slurm`` / ``pbs`` start a ``dask_jobqueue``
        ``SLURMCluster`` / ``PBSCluster`` configured from the Dask configuration
        (``jobqueue.slurm.*`` / ``jobqueue.pbs.*``) and submit ``workers`` jobs.
    wait_timeout : float
        Seconds to wait for the first batch worker to start.

    Returns
    -------
    Executor
        Use it as a context manager.

    Raises
    ------
    ValueError
        On an unknown ``kind`` or ``cluster``.
    ImportError
        When ``dask[distributed]`` (or ``dask-jobqueue`` for batch clusters) is missing.
    """
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; choose one of {EXECUTORS}")
    if kind == "local":
        return LocalExecutor()
    cluster = cluster or "local"
    if cluster not in CLUSTERS:
        raise ValueError(f"unknown Dask cluster {cluster!r}; choose one of {CLUSTERS}")
    if importlib.util.find_spec("distributed") is None:
        raise ImportError(
            "the dask executor needs dask[distributed]: "
            "pip install 'dask[distributed]==2026.8.0' 'distributed==2026.8.0'"
        )
    if cluster != "local" and not scheduler_address:
        if importlib.util.find_spec("dask_jobqueue") is None:
            raise ImportError(
                "a batch cluster needs dask-jobqueue: pip install dask-jobqueue==0.9.0"
            )
    batch = cluster != "local" and not scheduler_address
    return DaskExecutor(
        connect=functools.partial(_connect, workers, scheduler_address, cluster, wait_timeout),
        resources={"notebook": 1} if batch else None,
    )


def failure_report(results: Iterable[UnitResult]) -> str:
    """Summarise the failed units: unit, error and partially executed notebook.

    Parameters
    ----------
    results : iterable of UnitResult
        Results of one or more stages.

    Returns
    -------
    str
        Empty when nothing failed.
    """
    failed = [r for r in results if not r.ok]
    if not failed:
        return ""
    lines = [f"{len(failed)} unit(s) failed:"]
    for r in failed:
        lines.append(f"  {r.unit.stage} [{r.unit.label}]: {r.error}")
        lines.append(f"      partially executed notebook: {r.unit.output}")
    return "\n".join(lines)
