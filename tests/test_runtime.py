"""Threads of a notebook and the machine facts of a run."""

import os
import subprocess
import sys

import pytest

from i2r_utils.runtime import ISA_VARIABLES, LIBRARIES, pin_threads, runtime_info


def in_fresh_process(code):
    """Run ``code`` in a new interpreter (thread settings are per process) and return stdout."""
    return subprocess.run(
        [sys.executable, "-c", "from i2r_utils.runtime import *\n" + code],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip


def test_pin_threads_sets_torch_and_blas_or_keeps_the_defaults():
    info = (
        "import torch, threadpoolctl\nprint(torch.get_num_threads(), "
        "[p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas'])"
    )
    before = in_fresh_process(info)
    # an integer pins torch and the BLAS libraries
    out = in_fresh_process(f"print(pin_threads(3))\n{info}")
    assert out[:2] == ["3", "3"] and out[2:] == ["[3]"]
    # None: the notebook's default for torch, BLAS untouched; no default: nothing changes
    out = in_fresh_process(f"print(pin_threads(None, default=1))\n{info}")
    assert out[:2] == ["1", "1"] and out[2:] == before[1:]
    assert in_fresh_process(f"print(pin_threads(None))\n{info}") == ["None", *before]
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="must be a positive integer or None"):
            pin_threads(bad)


def test_runtime_info_names_threads_cpu_and_versions():
    info = runtime_info()
    assert info["torch_threads"] >= 1 and info["cpu_count"] >= 1
    assert isinstance(info["cpu_capability"], str) and info["cpu_capability"]  # e.g. AVX2
    assert info["platform"] and info["python"].startswith("3.")
    assert set(info["versions"]) == set(LIBRARIES) and info["versions"]["numpy"]
    assert all(n >= 1 for n in info["blas_threads"].values())


def test_runtime_info_records_instruction_set_caps(monkeypatch):
    for var in ISA_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert runtime_info()["isa_environment"] == {}
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    info = runtime_info()
    caps = {"ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell"}
    assert info["isa_environment"] == caps
    assert all(isinstance(a, str) and a for a in info["blas_architecture"].values())
    # in a fresh process the caps take effect: torch reports the capped instruction set
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        capture_output=True, text=True, check=True, env=dict(os.environ),
    ).stdout.split()  # fmt: skip
    assert out[0] in ("AVX2", "DEFAULT")  # DEFAULT: a CPU without AVX2
