"""Snakemake at grid scale: planning a 1000-point grid and a no-op re-run of a finished one.

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/bench_grid_plan.py [--points 1000]

Copies the workflow into a temporary folder with one grid of N points (published-patchset grid,
ATLAS-SUSY-2018-31 RegionA), then times, for limits batches of 25 points per job (the default) and,
as the baseline in the same run, one point per job:

  plan    `snakemake -n` (parse, validate the configuration, build the DAG)
  no-op   `snakemake` on a finished grid (its outputs written in dependency order): nothing to do

Targets: plan < 20 s, no-op re-run < 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def project(dest: Path, n: int, per_job: int) -> None:
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copytree(ROOT / "workflow", dest / "workflow", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    # the bundle names its published archive; the run fetches it into the shared cache (no copy here)
    shutil.copytree(ROOT / "config/analyses/ATLAS-SUSY-2018-31", dest / "config/analyses/ATLAS-SUSY-2018-31")
    for sub in ("envs", "containers"):
        shutil.copytree(ROOT / sub, dest / sub)
    grid = yaml.safe_load((ROOT / "config/signals/sbottom_RegionA_full.yaml").read_text())
    grid["name"] = "big"
    grid["points"] = [{"name": f"p{i:04d}", "values": {"m_sbottom": 400 + 10 * (i // 50),
                                                        "m_neutralino2": 200 + 10 * (i % 50), "m_neutralino1": 60}}
                      for i in range(n)]
    (dest / "config/signals/big.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    cfg = {"grids": ["big"], "checks": False, "limits": {"points_per_job": per_job}}
    (dest / "config/config.yaml").write_text(yaml.safe_dump(cfg))


def finish(dest: Path, n: int, per_job: int) -> None:
    """Write the grid's outputs oldest-first, as a finished run leaves them (contents do not matter here)."""
    outputs = ["results/patch/big/patchset.json"]
    outputs += [f"results/limits/big/batches/b{i:03d}.json" for i in range((n + per_job - 1) // per_job)]
    outputs += [f"results/limits/big/{f}" for f in ("limits.json", "limits.csv", "exclusion.png")]
    for i, rel in enumerate(outputs):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
        stamp = time.time() + 1 + i * 1e-3
        os.utime(path, (stamp, stamp))


def timed(cwd: Path, *args: str) -> tuple[float, str]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/default", "--cores", "1",
                           *args], cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    rows = {}
    for per_job in (25, 1):
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp)
            project(dest, args.points, per_job)
            plan, _ = timed(dest, "-n", "results/limits/big/limits.json")
            finish(dest, args.points, per_job)
            noop, out = timed(dest, "results/limits/big/limits.json")
            if "Nothing to be done" not in out:
                sys.exit("the re-run of the touched grid was not a no-op")
            rows[per_job] = (plan, noop)
            print(f"{args.points} points, {per_job:2d} point(s) per limits job: plan {plan:5.1f} s, "
                  f"no-op re-run {noop:5.1f} s", flush=True)
    (plan, noop), (plan1, noop1) = rows[25], rows[1]
    print(f"batched vs one job per point: plan {plan1 / plan:.1f}x faster, no-op re-run {noop1 / noop:.1f}x faster; "
          f"targets plan < 20 s ({'met' if plan < 20 else 'NOT met'}), no-op < 10 s ({'met' if noop < 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
