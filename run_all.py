#!/usr/bin/env python3
"""Run the compendium: set up the environment, then execute the notebooks with papermill.

    python3 run_all.py            # main job on the embedded default synthetic screen
    python3 run_all.py test       # unit tests + papermill smoke run of every notebook

Options (main job): --size tiny|default, --conditions A,B | --all-conditions,
--stages 00,03, --data-dir, --results-dir, --figures-dir, --seed, --no-random-baseline,
--force (rerun stages already complete), --list.

The first run creates ``.venv`` and installs the pinned project into it (set
I2R_NO_VENV=1 to use the current interpreter, e.g. a conda env from environment.yml).
This file only uses the standard library until the environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"

# The one ordered list of stages: (notebook, scope). Scope "dataset" runs once per data
# set, "condition" once per held-out condition, "summary" once after all conditions.
STAGES = [
    ("00_simulate_screen", "dataset"),  # synthetic screen: images, masks, network, truth
    ("01_preprocess_nuclei", "dataset"),  # filtered nuclei, 64x64 crops per plate
    ("02_embed_genes", "dataset"),  # graph-autoencoder gene embeddings
    ("03_train_encoder", "condition"),  # CNN without the held-out condition; profiles
    ("04_translate_condition", "condition"),  # NTK kernel regression; ranked genes
    ("05_summarize_conditions", "summary"),  # summary table; top-k accuracy figure
]


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def bootstrap(extras: str) -> None:
    """Create .venv with the pinned project installed, and re-execute inside it."""
    if os.environ.get("I2R_NO_VENV") == "1" or Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / f".installed-{extras}"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == want):
        if not _venv_python().is_file():
            print(f"[setup] creating {VENV}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        print("[setup] installing the pinned project (first run takes a few minutes)", flush=True)
        pip = [str(_venv_python()), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, "-q", "-e", f"{ROOT}[{extras}]"], check=True)
        subprocess.run(
            [str(_venv_python()), "-m", "ipykernel", "install", "--sys-prefix", "--name",
             "python3", "--display-name", "Python 3 (i2r)"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        stamp.write_text(want)
    os.execv(str(_venv_python()), [str(_venv_python()), str(ROOT / "run_all.py"), *sys.argv[1:]])


def load_config(path: Path) -> dict:
    """Read the YAML configuration."""
    import yaml

    return yaml.safe_load(path.read_text())


def notebook_parameters(name: str) -> dict:
    """Parameters declared by a notebook's tagged parameters cell."""
    import papermill as pm

    return pm.inspect_notebook(str(_ipynb(name)))


def _ipynb(name: str) -> Path:
    """Generate the .ipynb of a jupytext source (papermill needs a kernelspec)."""
    import jupytext

    src = ROOT / "notebooks" / f"{name}.py"
    out = ROOT / "results" / ".notebooks" / f"{name}.ipynb"
    if not out.is_file() or out.stat().st_mtime < src.stat().st_mtime:
        nb = jupytext.read(src)
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp.ipynb")
        jupytext.write(nb, tmp, fmt="ipynb")
        os.replace(tmp, out)
    return out


def stage_parameters(name: str, scope: str, cfg: dict, paths: dict, condition=None) -> dict:
    """Resolve the parameters a stage receives; fail on any the notebook does not declare."""
    pool = {
        "data_dir": str(paths["data"]),
        "work_dir": str(paths["work"]),
        "figures_dir": str(paths["figures"]),
        "size": cfg["size"],
        "seed": cfg["seed"],
        "random_baseline": cfg["random_baseline"],
        "n_permutations": cfg["n_permutations"],
        "epochs": cfg["epochs"],
        "samples_per_class": cfg["samples_per_class"],
        "alpha": cfg["alpha"],
        "depth": cfg["depth"],
        "metric": cfg["metric"],
        "pixel_scale": cfg["pixel_scale"],
    }
    if scope == "condition":
        pool.update(condition=condition, out_dir=str(paths["work"] / condition))
    if scope == "summary":
        pool["conditions"] = ",".join(cfg["conditions"])
    declared = notebook_parameters(name)
    return {k: v for k, v in pool.items() if k in declared}


def check_config(cfg: dict, stages) -> None:
    """Fail on configuration keys that no notebook declares (they would be ignored)."""
    declared = set().union(*(notebook_parameters(name) for name, _ in stages))
    unknown = sorted(k for k in cfg if k not in declared and k not in ("conditions", "size"))
    if unknown:
        raise SystemExit(
            f"run_all.py: configuration keys {unknown} are not parameters of any "
            "notebook; fix the spelling in the config file."
        )


def run_stage(name, params, exec_dir: Path, force: bool) -> str:
    """Execute one notebook with papermill unless an identical run is already complete."""
    import papermill as pm

    src = ROOT / "notebooks" / f"{name}.py"
    key = hashlib.sha256(
        json.dumps({"p": params, "src": src.read_text()}, sort_keys=True).encode()
    ).hexdigest()
    done = exec_dir / f"{name}.done.json"
    if not force and done.is_file() and json.loads(done.read_text()).get("key") == key:
        return "complete (skipped)"
    exec_dir.mkdir(parents=True, exist_ok=True)
    out = exec_dir / f"{name}.ipynb"
    t0 = time.perf_counter()
    pm.execute_notebook(
        str(_ipynb(name)), str(out), parameters=params, cwd=str(ROOT / "notebooks"),
        kernel_name="python3", progress_bar=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    done.write_text(json.dumps({"key": key, "seconds": round(seconds, 1)}))
    return f"ran in {seconds:.1f} s"


def main_job(argv: list[str]) -> int:
    """Run the stages for the chosen data set and held-out conditions."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config" / "default.yaml"))
    ap.add_argument("--size", choices=["tiny", "default"])
    ap.add_argument("--conditions", help="comma-separated held-out conditions")
    ap.add_argument("--all-conditions", action="store_true", help="every non-control condition")
    ap.add_argument("--stages", help="comma-separated stage numbers or names (default: all)")
    ap.add_argument("--data-dir")
    ap.add_argument("--results-dir")
    ap.add_argument("--figures-dir")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--no-random-baseline", action="store_true")
    ap.add_argument("--force", action="store_true", help="rerun stages already complete")
    ap.add_argument("--list", action="store_true", help="list the stages and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, scope in STAGES:
            print(f"{name:28s} {scope}")
        return 0
    from i2r_utils.provenance import write_manifest

    cfg = load_config(Path(args.config))
    for key in ("size", "seed"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.no_random_baseline:
        cfg["random_baseline"] = False
    data = Path(args.data_dir or ROOT / "data" / "synthetic" / f"{cfg['size']}_seed{cfg['seed']}")
    work = Path(args.results_dir or ROOT / "results" / data.name)
    paths = {
        "data": data.resolve(),
        "work": work.resolve(),
        "figures": Path(args.figures_dir or ROOT / "figures").resolve(),
    }
    stages = STAGES
    if args.stages:
        want = args.stages.split(",")
        stages = [s for s in STAGES if any(s[0] == w or s[0].startswith(w + "_") for w in want)]
        unknown = [
            w for w in want if not any(s[0] == w or s[0].startswith(w + "_") for s in STAGES)
        ]
        if unknown:
            raise SystemExit(f"run_all.py: unknown stages {unknown}; see --list")
    if args.conditions:
        cfg["conditions"] = args.conditions.split(",")
    elif args.all_conditions:
        import pandas as pd

        truth = pd.read_csv(paths["data"] / "truth" / "conditions.csv")
        cfg["conditions"] = [c for c in truth.Metadata_Condition if c != "EMPTY"]
    check_config(cfg, STAGES)
    timings = []
    for name, scope in stages:
        units = cfg["conditions"] if scope == "condition" else [None]
        for cond in units:
            params = stage_parameters(name, scope, cfg, paths, cond)
            exec_dir = paths["work"] / (cond or ("_summary" if scope == "summary" else "_dataset"))
            t0 = time.perf_counter()
            status = run_stage(name, params, exec_dir, args.force)
            timings.append((name, cond or "-", time.perf_counter() - t0))
            print(f"[{name}] {cond or scope}: {status}", flush=True)
            if cond and scope == "condition":
                write_manifest(
                    paths["work"] / cond / "manifest.json",
                    {"config": cfg, "paths": {k: str(v) for k, v in paths.items()}},
                    [paths["data"] / "metadata.csv", paths["data"] / "screen.json",
                     paths["data"] / "network" / "edges.tsv",
                     paths["data"] / "network" / "expression.csv"],
                    repo=ROOT,
                )  # fmt: skip
    report(paths["work"], cfg["conditions"])
    return 0


def report(work: Path, conditions: list[str]) -> None:
    """Print each condition's top 10 and the true gene's rank, and the summary metrics."""
    for cond in conditions:
        res = work / cond / "result.json"
        if res.is_file():
            r = json.loads(res.read_text())
            perm = r.get("permutation_mean_rank")
            extra = f"; permutation baseline mean rank {perm:.1f}" if perm is not None else ""
            print(f"\n{cond}: true gene rank {r['true_rank']} of {r['n_candidates']}{extra}")
            print("  top 10: " + ", ".join(r["top10"]))
    metrics = work / "summary_metrics.csv"
    if metrics.is_file():
        print(f"\nsummary ({metrics}):\n" + metrics.read_text())


def run_tests(argv: list[str]) -> int:
    """Lint, then the unit tests and the papermill smoke run."""
    py = sys.executable
    steps = [
        [py, "-m", "ruff", "check", "src", "tests", "benchmarks", "notebooks", "run_all.py"],
        [py, "-m", "ruff", "format", "--check", "src", "tests", "benchmarks", "run_all.py"],
        [py, "-m", "pytest", *(argv or ["-q"])],
    ]
    for cmd in steps:
        print("[test] " + " ".join(cmd[2:]), flush=True)
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc:
            return rc
    return 0


def main() -> int:
    """Dispatch: ``test`` runs the tests, anything else the main job."""
    argv = sys.argv[1:]
    if argv and argv[0] == "test":
        bootstrap("dev")
        return run_tests(argv[1:])
    bootstrap("dev")
    return main_job(argv)


if __name__ == "__main__":
    sys.exit(main())
