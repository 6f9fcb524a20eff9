"""The real Snakemake workflow, end to end, on a small synthetic bundle."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_workflow

BIN = Path(sys.executable).parent
PROFILE = ("--workflow-profile", "workflow/profiles/default")  # as `make run` passes it


def snakemake(cwd, *args):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    return subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def add_reference(project, value, rtol):
    a = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    doc = yaml.safe_load(a.read_text())
    doc["references"] = [{"grid": "TOYGRID", "point": "P1", "quantity": "cls_obs", "value": value, "rtol": rtol,
                          "source": "test"}]
    a.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.slow
def test_workflow_end_to_end(project):
    copy_workflow(project)
    cfg = yaml.safe_load((project / "config" / "config.yaml").read_text())
    cfg["fit_plots"] = ["TOYGRID/P2"]
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    # the reference is our own first result: this exercises the check rule's pass path
    first = snakemake(project, "results/limits/TOYGRID/batches/b000.json")
    assert first.returncode == 0, first.stderr[-3000:]
    cls_p1 = json.loads((project / "results/limits/TOYGRID/batches/b000.json").read_text())["points"][1]["cls_obs"]
    add_reference(project, cls_p1, 1e-9)

    proc = snakemake(project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads((project / "results/limits/TOYGRID/limits.json").read_text())
    assert [p["point"] for p in table["points"]] == ["P0", "P1", "P2"]
    assert table["summary"] == {"trusted": 3, "flagged": 0, "failed": 0, "fallback": 0}
    assert table["points"][1]["mu_ul_obs"] > 0 and table["points"][0]["mu_ul_obs"] is None
    csv = (project / "results/limits/TOYGRID/limits.csv").read_text().splitlines()
    assert len(csv) == 4 and csv[0].startswith("point,m1,m2,status,method,cls_obs")
    assert (project / "results/limits/TOYGRID/exclusion.png").stat().st_size > 10_000
    assert "1 of 1 values within tolerance" in (project / "results/check/TOY.txt").read_text()
    assert any((project / "results/limits/TOYGRID/fitplots/P2").glob("*.png"))
    html = (project / "results/report/index.html").read_text()
    assert "TOYGRID" in html and "data:image/png;base64," in html
    # a second run has nothing to do
    again = snakemake(project)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_failing_check_fails_the_workflow(project):
    copy_workflow(project)
    add_reference(project, 0.5, 1e-5)
    proc = snakemake(project)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "FAIL" in out and "value" in out and "reference" in out and "rtol" in out
    assert not (project / "results/check/TOY.txt").exists()
    assert not (project / "results/report/index.html").exists()


@pytest.mark.slow
def test_bad_config_stops_before_any_job(project):
    copy_workflow(project)
    cfg = project / "config" / "config.yaml"
    cfg.write_text(cfg.read_text() + "upper_limit: [TOYGRID/P1]\n")
    proc = snakemake(project)
    assert proc.returncode != 0
    assert "unknown key(s) 'upper_limit'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (project / "results").exists()


@pytest.mark.slow
def test_configfile_replaces_default_and_config_overrides_work(project):
    copy_workflow(project)
    (project / "other.yaml").write_text(yaml.safe_dump({"grids": ["TOYGRID"], "cl": 0.9}))
    proc = snakemake(project, "results/limits/TOYGRID/batches/b000.json", "--configfile", "other.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((project / "results/limits/TOYGRID/batches/b000.json").read_text())["points"][1]
    # cl comes from other.yaml; no upper limit because other.yaml (unlike config/config.yaml) asks for none
    assert rec["cl"] == 0.9 and rec["mu_ul_obs"] is None

    # --config overrides apply on top of the file: the changed settings re-run the job, which gets them
    # as options (the file still says cl 0.95 and method fast, and the job never reads it)
    proc = snakemake(project, "-p", "results/limits/TOYGRID/batches/b000.json", "--config", "cl=0.8",
                     "limits={method: exact}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    batch = json.loads((project / "results/limits/TOYGRID/batches/b000.json").read_text())
    assert batch["method"] == "exact" and {p["cl"] for p in batch["points"]} == {0.8}
    assert {p["software"]["method"] for p in batch["points"]} == {"exact"}
    assert batch["points"][1]["mu_ul_obs"] is not None  # upper_limits of config/config.yaml still apply
    assert "--cl 0.8 --method exact" in proc.stdout + proc.stderr
    assert "--config" not in "".join(l for l in (proc.stdout + proc.stderr).splitlines() if "recastflow " in l)

    # an override is validated like the file, before any job
    proc = snakemake(project, "-n", "--config", "cl=2")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "configuration error" in out and "--config cl" in out and "cl" in out and "Traceback" not in out, out
    proc = snakemake(project, "-n", "--config", "limits={method: slow}")
    assert proc.returncode != 0 and "'slow'" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    # the wall-clock bound of the fits (issue 26) reaches the job as an option; a point past it fails with the reason
    proc = snakemake(project, "-p", "results/limits/TOYGRID/batches/b000.json", "--config", "fit={timeout_s: 1.0e-6}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--fit-timeout 1e-06" in proc.stdout + proc.stderr
    batch = json.loads((project / "results/limits/TOYGRID/batches/b000.json").read_text())
    assert {p["status"] for p in batch["points"]} == {"failed"}
    assert all("fit.timeout_s = 1e-06 s" in p["issues"][-1] for p in batch["points"]), batch["points"][0]["issues"]


@pytest.mark.slow
def test_interrupted_run_resumes_with_the_same_command(project):
    """Ctrl-C during a job leaves a partial output marked incomplete; the same command redoes it."""
    import signal
    import time

    copy_workflow(project)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    # a shell starts background commands with SIGINT ignored: restore the default, or the SIGINT below is lost
    proc = subprocess.Popen([str(BIN / "snakemake"), "--cores", "1", *PROFILE], cwd=project, env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = project / "logs" / "limits" / "TOYGRID"
    deadline = time.monotonic() + 120
    while not (started.is_dir() and any(started.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0  # it was interrupted, not finished
    again = snakemake(project, *PROFILE)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "IncompleteFilesException" not in again.stdout + again.stderr
    assert json.loads((project / "results/limits/TOYGRID/limits.json").read_text())["summary"]["trusted"] == 3

    # an output that exists but was never marked complete (Snakemake stopped after the job wrote it)
    import base64

    marker = project / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(b"results/limits/TOYGRID/limits.json").decode()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    third = snakemake(project, *PROFILE)
    assert third.returncode == 0, (third.stdout + third.stderr)[-3000:]
    assert "limits_table" in third.stdout + third.stderr  # redone, not trusted
