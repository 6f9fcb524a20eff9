"""A tiny default-workflow project and helpers to run it, for the reliability tests.

The project is the default run in miniature: the real ATLAS-SUSY-2019-08 bundle, one TChiWH
point through generate -> emulate -> select -> patch -> limits -> yield check -> report, and a
second grid of two BR points reweighted from it (as TChiWH_1Lbb_BR is in config/config.yaml).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

BIN = Path(sys.executable).parent
PROFILE = ("--workflow-profile", "workflow/profiles/default")  # as `make run` passes it
# the command a user runs (`make run` with CORES=2), and the one to clear a killed run's lock
RUN = ("--cores", "2", *PROFILE)
UNLOCK = (*PROFILE, "--unlock")
# What counts as a final output: every file under results/ but results/benchmarks/, which holds
# each job's wall-clock time and memory (they differ between any two runs by nature). logs/ is
# outside results/ and holds timings too.
# results/fetch/ holds the fetch rule's temporary manifests, there only while a run still needs them.
EXCLUDED = ("benchmarks", "fetch")


def default_project(root: Path, n_events: int = 1000, chunks: int = 2) -> Path:
    """The tiny front-end project plus the BR grid reweighted from its point."""
    from test_frontend_workflow import front_end_project

    root.mkdir(parents=True, exist_ok=True)
    front_end_project(root, n_events=n_events, chunks=chunks)
    cfg = root / "config"
    shutil.copytree(REPO / "config" / "reweighting", cfg / "reweighting")
    br = yaml.safe_load((REPO / "config" / "signals" / "TChiWH_1Lbb_BR.yaml").read_text())
    br["name"] = "TINY_BR"
    for point in br["points"]:
        point["reweight"]["from"] = "TINY/TChiWH_700_0"
    (cfg / "signals" / "TINY_BR.yaml").write_text(yaml.safe_dump(br, allow_unicode=True))
    (cfg / "config.yaml").write_text(yaml.safe_dump({"grids": ["TINY", "TINY_BR"], "checks": True}))
    return root


def snakemake_env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, capture_output=True, text=True,
                          env=snakemake_env())


def is_temporary(path: Path) -> bool:
    """A temporary file of recastflow.core.io (``.<name>.<random>.tmp``): never an output."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def final_outputs(project: Path) -> dict[str, str]:
    """sha256 of every final output under results/ (see EXCLUDED), by path relative to the project."""
    res = project / "results"
    out = {}
    for path in sorted(res.rglob("*")):
        rel = path.relative_to(res)
        if path.is_file() and rel.parts[0] not in EXCLUDED and not is_temporary(path):
            out[str(path.relative_to(project))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temporary_files(project: Path) -> list[Path]:
    return [p for p in (project / "results").rglob("*") if is_temporary(p)]
