"""The workflow on a real (one-node, localhost) Slurm cluster with workflow/profiles/slurm.

The cluster is started by tests/cluster/slurm-start.sh (install Slurm first with
tests/cluster/install-slurm.sh; needs root) and stopped by tests/cluster/slurm-stop.sh.
The same toy project is run once locally and once through Slurm; the results must be byte-identical.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow

BIN = Path(sys.executable).parent
CLUSTER = REPO / "tests" / "cluster"
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# the jobs behind the toy project's tables: patch, one limits batch (the 3 points), limits_table
EXPECTED_JOBS = {"patch": 1, "limits_batch": 1, "limits_table": 1}
RESULTS = ["results/limits/TOYGRID/limits.json", "results/limits/TOYGRID/limits.csv"]


def _why_not_runnable() -> str | None:
    for cmd in ("sbatch", "slurmctld"):
        if shutil.which(cmd, path=SBIN_PATH) is None:
            return f"Slurm is not installed ({cmd} not found; run tests/cluster/install-slurm.sh)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not importable (pip install snakemake-executor-plugin-slurm==2.8.0)"
    return None


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{SBIN_PATH}", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    scratch = tmp_path_factory.mktemp("slurm-cluster")
    start = subprocess.run(["bash", str(CLUSTER / "slurm-start.sh"), str(scratch)], capture_output=True, text=True,
                           env=_env(), timeout=120)
    try:
        assert start.returncode == 0, f"slurm-start.sh failed:\n{start.stdout}\n{start.stderr}"
        yield scratch
    finally:
        subprocess.run(["bash", str(CLUSTER / "slurm-stop.sh"), str(scratch)], capture_output=True, text=True,
                       env=_env(), timeout=120)


def _snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, capture_output=True, text=True, env=_env(),
                          timeout=600)


def _result_files(root: Path) -> dict[str, bytes]:
    files = sorted(root.glob("results/limits/TOYGRID/batches/*.json")) + [root / r for r in RESULTS]
    return {str(f.relative_to(root)): f.read_bytes() for f in files}


@pytest.mark.slow
def test_slurm_profile_gives_the_local_results(slurm_cluster: Path, project: Path,
                                               tmp_path_factory: pytest.TempPathFactory):
    runs = {}
    for name in ("local", "slurm"):
        dest = tmp_path_factory.mktemp(f"project-{name}")
        shutil.copytree(project / "config", dest / "config")
        copy_workflow(dest)  # Snakefile, rules, envs and every profile (default and slurm)
        runs[name] = dest
    assert (runs["slurm"] / "workflow/profiles/slurm/config.yaml").is_file()

    # the tables are the results compared below; the report level would add ~30 s of Slurm polling
    targets = RESULTS
    local = _snakemake(runs["local"], "--cores", "2", *targets)
    assert local.returncode == 0, local.stderr[-3000:]

    t0 = time.perf_counter()
    # keep the per-job Slurm logs (deleted on success by default): they are part of the evidence below
    remote = _snakemake(runs["slurm"], "--profile", "workflow/profiles/slurm", "--slurm-keep-successful-logs", *targets)
    elapsed = time.perf_counter() - t0
    assert remote.returncode == 0, remote.stderr[-5000:]
    print(f"\nworkflow through Slurm: {elapsed:.1f} s")
    out = remote.stdout + remote.stderr

    # 1. Snakemake submitted every job with sbatch ...
    jobids = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(jobids) == sum(EXPECTED_JOBS.values()), out[-5000:]
    # 2. ... the plugin wrote one Slurm log per job under .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log ...
    logdir = runs["slurm"] / ".snakemake" / "slurm_logs"
    for rule, count in EXPECTED_JOBS.items():
        logs = list((logdir / f"rule_{rule}").rglob("*.log"))
        assert len(logs) == count, (rule, sorted(map(str, logdir.rglob("*"))))
        assert all(log.stem in jobids for log in logs)
    # 3. ... and slurmctld ran them on the node: finished jobs stay in squeue for MinJobAge=600 s, with the
    #    plugin's --comment naming the rule.
    squeue = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(jobids), "-o", "%i|%k|%T|%N"],
                            capture_output=True, text=True, env=_env(), timeout=30)
    assert squeue.returncode == 0, squeue.stderr
    rows = [line.split("|") for line in squeue.stdout.splitlines()]
    assert sorted(r[0] for r in rows) == sorted(jobids), squeue.stdout
    assert all(r[2] == "COMPLETED" and r[3] == "localhost" for r in rows), squeue.stdout
    for rule, count in EXPECTED_JOBS.items():
        assert sum(r[1].startswith(f"rule_{rule}_") or r[1] == f"rule_{rule}" for r in rows) == count, squeue.stdout
    assert not (runs["local"] / ".snakemake" / "slurm_logs").exists()

    # same numbers, byte for byte
    local_files, slurm_files = _result_files(runs["local"]), _result_files(runs["slurm"])
    assert len(local_files) == 3 and local_files.keys() == slurm_files.keys()  # one batch file + two tables
    for path, data in local_files.items():
        assert slurm_files[path] == data, f"{path} differs between the local and the Slurm run"


def test_model_run_through_slurm(slurm_cluster: Path, tmp_path: Path) -> None:
    """`recastflow run --profile slurm`: the model-first command submits its jobs to Slurm and prints the verdict."""
    from recastflow.generate.spectrum import write_spectrum

    slha = write_spectrum(REPO / "config/spectra/TChiWH.yaml", {"m_C1N2": 700, "m_N1": 150}, tmp_path / "m.slha")
    proc = subprocess.run(
        [str(BIN / "recastflow"), "run", str(slha), "--process", "TChiWH", "--analyses", "ATLAS-SUSY-2019-08",
         "--events", "200", "--profile", "slurm", "--cores", "2", "--run-dir", "run"],
        cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert re.search(r"done\s+generate\s+model m 0", proc.stdout), proc.stdout
    assert "verdict:" in proc.stdout
    log = (tmp_path / "run" / "logs" / "snakemake.log").read_text()
    assert len(re.findall(r"has been submitted with SLURM jobid (\d+)", log)) >= 6, log[-3000:]


@pytest.mark.slow
def test_adaptive_scan_through_slurm(slurm_cluster: Path, tmp_path: Path) -> None:
    """`recastflow run --scan --adaptive --profile slurm`: chunks, decisions and a refinement round as Slurm jobs."""
    import yaml

    scan = tmp_path / "scan.yaml"
    scan.write_text(yaml.safe_dump({
        "name": "S",
        "model": str(REPO / "config" / "spectra" / "TChiWH.yaml"),
        # corners on both sides of the 1Lbb contour: one round adds the points between them
        "axes": {"m_C1N2": {"values": [500, 900]}, "m_N1": {"values": [0, 200]}},
        "cross_section": "tables",
        "adaptive": {"events": {"chunk": 100, "min": 100, "max": 200},
                     "refine": {"resolution": {"m_C1N2": 100, "m_N1": 100}, "max_rounds": 1}},
    }))  # fmt: skip
    proc = subprocess.run(
        [str(BIN / "recastflow"), "run", "--scan", str(scan), "--adaptive", "--analyses", "ATLAS-SUSY-2019-08:Wh",
         "--profile", "slurm", "--cores", "2", "--run-dir", "run"],
        cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # four corners; the cell is open (on the observed or the expected verdict) and larger than the resolution
    # along both axes, so one round adds points: two or five, depending on which edges the contour crosses
    added = re.search(r"S through ATLAS-SUSY-2019-08 \(Wh\): (\d+) points in 2 round\(s\)", proc.stdout)
    assert added and int(added.group(1)) in (6, 9), proc.stdout
    log = (tmp_path / "run" / "logs" / "snakemake.log").read_text()
    # each point's generation, emulation and decision went to Slurm (spectra and rounds are local rules)
    assert len(re.findall(r"has been submitted with SLURM jobid (\d+)", log)) >= 18, log[-3000:]
