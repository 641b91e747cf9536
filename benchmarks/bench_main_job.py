"""Wall time and peak memory of the main job and of each stage (not a test).

Runs ``run_all.py --stages <stage>`` for every stage in order, in a fresh temporary
results folder, each as a child process; peak memory is the largest resident set of the
stage's process tree (``wait4`` rusage, papermill kernels included).

    python benchmarks/bench_main_job.py [--size default] [--conditions BRAF,JUN,...]
        [--executor dask --workers 2]

Per-plate, per-fold and per-condition stages run all their units in one child process
(in parallel with ``--executor dask``; peak memory is then that of the whole cluster).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="default")
    ap.add_argument("--conditions", default=None, help="default: config/default.yaml")
    ap.add_argument("--workdir", default=None, help="default: a new temporary folder")
    ap.add_argument("--executor", default="local", choices=["local", "dask"])
    ap.add_argument("--workers", type=int, default=None, help="dask worker processes")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="i2r-bench-"))
    base = [sys.executable, str(ROOT / "run_all.py"), "--size", a.size,
            "--data-dir", str(work / "data"), "--results-dir", str(work / "results"),
            "--figures-dir", str(work / "figures")]  # fmt: skip
    if a.conditions:
        base += ["--conditions", a.conditions]
    base += ["--executor", a.executor] + (["--workers", str(a.workers)] if a.workers else [])
    env = {**os.environ, "I2R_NO_VENV": "1"}
    from i2r_pipeline.stages import STAGES

    rows, t_all = [], time.perf_counter()
    for name, scope in ((s.name, s.scope) for s in STAGES):
        t0 = time.perf_counter()
        proc = subprocess.Popen([*base, "--stages", name], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode()
        if proc.returncode:
            sys.exit(f"{name} failed:\n{err[-3000:]}")
        rows.append((name, scope, time.perf_counter() - t0, usage.ru_maxrss / 1024))
        print(
            f"{name:26s} {scope:9s} {rows[-1][2]:8.1f} s  peak {rows[-1][3]:7.0f} MiB", flush=True
        )
    total = time.perf_counter() - t_all
    print(f"{'main job':26s} {'':9s} {total:8.1f} s  peak {max(r[3] for r in rows):7.0f} MiB")
    print(f"(cores: {os.cpu_count()}; executor: {a.executor}; results in {work})")


if __name__ == "__main__":
    main()
