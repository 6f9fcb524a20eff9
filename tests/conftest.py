"""Shared fixtures: a small synthetic analysis bundle and grid, written to a temporary folder."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]

# Published material (ATLAS likelihoods, patches) is never in the repository: tests get it through
# the fetch layer like a run does. Here there is no network, so the project's mirror folder
# (../shared/data next to the checkout) is used when RECASTFLOW_MIRROR does not name one.
SHARED_MIRROR = REPO.parent / "shared" / "data"
if not os.environ.get("RECASTFLOW_MIRROR") and SHARED_MIRROR.is_dir():
    os.environ["RECASTFLOW_MIRROR"] = str(SHARED_MIRROR)


def published(*analysis_ids: str) -> dict[str, dict[str, Path]]:
    """Fetch the default bundles' sources (cache, mirror, network) and return their cache folders.

    Args:
        analysis_ids: bundles of config/analyses.

    Returns:
        ``{analysis id: {source name: cache folder}}``; a source that cannot be obtained fails the
        test with the fetch layer's one-line error.
    """
    from recastflow.analyses.bundle import load_analysis

    return {a: load_analysis(a, REPO / "config" / "analyses").fetch_sources() for a in analysis_ids}


def published_file(analysis_id: str, text: str) -> Path:
    """A published file of a default bundle, ``source:<name>[/<member>]`` as bundles write it, fetched."""
    from recastflow.analyses.bundle import load_analysis, resolve_path

    analysis = load_analysis(analysis_id, REPO / "config" / "analyses")
    analysis.fetch_sources()
    return resolve_path(text, analysis.folder, analysis.sources, source=analysis.folder / "analysis.yaml", field="test")


def published_patchset(analysis_id: str, folder: str, labels: list[str], workspace: str) -> dict[str, Any]:
    """A pyhf PatchSet built at test time from an archive's per-point ``patch.<name>.json`` members.

    The patches are unchanged; the point name is the file name without ``patch.`` and ``.json``, the
    values are the numbers in the name (as many as ``labels``), the digest is the workspace's.
    """
    from recastflow.analyses.bundle import load_analysis

    analysis = load_analysis(analysis_id, REPO / "config" / "analyses")
    analysis.fetch_sources()
    ws = analysis.workspace(workspace)
    base = ws.source.path(folder)
    patches = []
    for path in sorted(base.glob("patch.*.json")):
        name = path.name[len("patch."):-len(".json")]
        values = [float(v) for v in name.split("_") if v.replace(".", "", 1).isdigit()][:len(labels)]
        patches.append({"metadata": {"name": name, "values": values}, "patch": json.loads(path.read_text())})
    return {"metadata": {"description": f"{analysis_id} {folder}", "digests": {"sha256": ws.digest},
                         "labels": labels, "references": {"hepdata": analysis.hepdata["record"]}},
            "patches": patches, "version": "1.0.0"}


def small_workspace() -> dict[str, Any]:
    """A 3-channel background-only workspace: SR (2 bins), CR (1 bin), VR (1 bin)."""

    def channel(name: str, bkg: list[float], unc: list[float]) -> dict[str, Any]:
        return {
            "name": name,
            "samples": [{
                "name": "background",
                "data": bkg,
                "modifiers": [
                    {"name": f"staterror_{name}", "type": "staterror", "data": unc},
                    {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                    {"name": "mu_bkg", "type": "normfactor", "data": None},
                ],
            }],
        }

    return {
        "channels": [channel("SR", [10.0, 5.0], [1.0, 0.8]), channel("CR", [100.0], [5.0]), channel("VR", [40.0], [2.0])],
        "observations": [{"name": "SR", "data": [11.0, 4.0]}, {"name": "CR", "data": [104.0]}, {"name": "VR", "data": [38.0]}],
        "measurements": [{"name": "meas", "config": {"poi": "mu_SIG", "parameters": [
            {"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "bounds": [[0.915, 1.085]], "inits": [1.0]}]}}],
        "version": "1.0.0",
    }


def yields_doc(scale: float = 1.0) -> dict[str, Any]:
    return {
        "format": "recastflow-yields/1",
        "regions": {
            "SR": {"yields": [4.0 * scale, 6.0 * scale], "stat": [0.4, 0.5],
                   "systematics": [{"name": "sig_theory", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]},
            "CR": {"yields": [0.5 * scale], "stat": [0.1]},
        },
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with config/, a TOY bundle and a 3-point TOYGRID grid fed by yields files."""
    bundle = tmp_path / "config" / "analyses" / "TOY"
    (bundle / "workspaces").mkdir(parents=True)
    ws_path = bundle / "workspaces" / "BkgOnly.json"
    ws_path.write_text(json.dumps(small_workspace()))
    sha = hashlib.sha256(ws_path.read_bytes()).hexdigest()
    analysis = {
        "id": "TOY", "title": "toy analysis", "paper": {"arxiv": "0000.00000"}, "hepdata": {"record": "ins0000000"},
        "workspaces": {"main": {"file": "workspaces/BkgOnly.json", "sha256": sha,
                                "regions": {"SR": {"channel": "SR", "bins": 2}, "CR": {"channel": "CR", "bins": 1}},
                                "exclude_channels": ["VR"]}},
        "signal": {"poi": "mu_SIG", "mcstat_modifier": "staterror_{channel}", "lumi_modifier": "lumi"},
        "references": [],
    }
    (bundle / "analysis.yaml").write_text(yaml.safe_dump(analysis, sort_keys=False))
    signals = tmp_path / "config" / "signals"
    (signals / "yields").mkdir(parents=True)
    points = []
    for i, scale in enumerate((0.5, 1.0, 3.0)):
        name = f"P{i}"
        (signals / "yields" / f"{name}.json").write_text(json.dumps(yields_doc(scale)))
        points.append({"name": name, "values": {"m1": 100.0 * (i + 1), "m2": 10.0 * i}, "yields": f"yields/{name}.json",
                       "xsec_pb": 0.1})
    grid = {"name": "TOYGRID", "analysis": "TOY", "workspace": "main",
            "parameters": {"m1": {"label": "m1 [GeV]"}, "m2": {"label": "m2 [GeV]"}},
            "plot": {"x": "m1", "y": "m2"}, "points": points}
    (signals / "TOYGRID.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump({"grids": ["TOYGRID"], "upper_limits": ["TOYGRID/P1"]}))
    return tmp_path


@pytest.fixture
def chdir_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def copy_workflow(dest: Path) -> None:
    """Copy the Snakefile and rules next to a test project."""
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    shutil.copytree(REPO / "workflow" / "rules", dest / "workflow" / "rules")
    shutil.copytree(REPO / "workflow" / "profiles", dest / "workflow" / "profiles")
    shutil.copytree(REPO / "envs", dest / "envs")
    shutil.copytree(REPO / "workflow" / "report", dest / "workflow" / "report")


@pytest.fixture(scope="session")
def default_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One uninterrupted run (as `make run CORES=2`) of the tiny default-workflow project of
    workflow_project.py: the project folder and the sha256 of each final output. Shared by the
    fault-injection, determinism and front-end workflow tests (about a minute of work); they copy
    it, never change it. Under pytest-xdist the workers share one run: the first to need it makes
    it, holding a file lock, and the others wait for it."""
    from workflow_project import RUN, default_project, final_outputs, snakemake

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the folder the workers' own temporary folders sit in
    shared = base / "default-reference"
    with open(base / "default-reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        hashes = shared / "final-outputs.json"
        if not hashes.exists():
            shutil.rmtree(shared, ignore_errors=True)  # a failed attempt of another worker
            project = default_project(shared / "project")
            proc = snakemake(project, *RUN)
            assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
            hashes.write_text(json.dumps(final_outputs(project)))
    return shared / "project", json.loads(hashes.read_text())
