"""CPU threads of a notebook and the machine facts that change floating-point results.

Encoder training and other float reductions depend on the number of torch and BLAS threads
and on the CPU instruction set torch dispatches to (e.g. AVX2 vs AVX-512): the same seed
gives bit-identical results only with the same threads on the same kind of CPU.
:func:`pin_threads` sets the threads of a notebook from one configuration value;
:func:`runtime_info` records what a run used.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

__all__ = ["ISA_VARIABLES", "LIBRARIES", "pin_threads", "runtime_info"]

#: Libraries whose versions change numerical results.
LIBRARIES = ("numpy", "scipy", "pandas", "scikit-learn", "torch")

#: Environment variables that cap the instruction set of torch, oneDNN, MKL and OpenBLAS
#: (e.g. to reproduce an AVX2 machine's numbers on an AVX-512 one).
ISA_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "OPENBLAS_CORETYPE",
)


def pin_threads(threads: int | None, default: int | None = None) -> int | None:
    """Pin the torch and BLAS/OpenMP threads of this process.

    Parameters
    ----------
    threads : int or None
        Threads for torch and for the BLAS/OpenMP libraries (numpy, scipy, scikit-learn).
        None: this notebook's ``default``.
    default : int or None
        Torch threads when ``threads`` is None (BLAS left as it is); None leaves both at
        the libraries' defaults (usually the number of cores, or ``OMP_NUM_THREADS``).

    Returns
    -------
    int or None
        Torch threads now in effect; None when nothing was pinned (torch not imported).

    Raises
    ------
    ValueError
        When ``threads`` is not a positive integer.
    """
    if threads is None and default is None:
        return None
    import torch

    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads = {threads!r}: must be a positive integer or None")
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # numpy/scipy BLAS and OpenMP, for this process
        torch.set_num_threads(threads)
    elif default is not None:
        torch.set_num_threads(default)
    return torch.get_num_threads()


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def runtime_info() -> dict:
    """Return the machine facts a result depends on.

    Returns
    -------
    dict
        ``torch_threads`` (in this process), ``blas_threads`` (per BLAS/OpenMP library),
        ``cpu_capability`` (torch's instruction set, e.g. ``AVX2``), ``blas_architecture``
        (the kernels each BLAS library chose, e.g. OpenBLAS' ``Haswell``),
        ``isa_environment`` (those of :data:`ISA_VARIABLES` that are set), ``cpu_count``,
        ``platform``, ``machine``, ``python`` and ``versions`` of :data:`LIBRARIES`.
    """
    import torch
    from threadpoolctl import threadpool_info

    pools = threadpool_info()
    return {
        "torch_threads": torch.get_num_threads(),
        "blas_threads": {p["internal_api"]: p["num_threads"] for p in pools},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas_architecture": {
            p["internal_api"]: p["architecture"] for p in pools if p.get("architecture")
        },
        "isa_environment": {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ},
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in LIBRARIES},
    }
