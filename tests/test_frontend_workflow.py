"""The full chain in the real Snakemake workflow on tiny settings: generate -> emulate -> select ->
patch -> limits -> yield check -> report, on the real ATLAS-SUSY-2019-08 bundle."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow
from test_workflow import snakemake


def front_end_project(root: Path, n_events: int, chunks: int) -> Path:
    cfg = root / "config"
    shutil.copytree(REPO / "config" / "analyses" / "ATLAS-SUSY-2019-08", cfg / "analyses" / "ATLAS-SUSY-2019-08")
    shutil.copytree(REPO / "config" / "processes", cfg / "processes")
    shutil.copytree(REPO / "config" / "detectors", cfg / "detectors")
    (cfg / "signals" / "slha" / "TChiWH").mkdir(parents=True)
    shutil.copy(REPO / "config" / "signals" / "slha" / "TChiWH" / "TChiWH_700_0.slha", cfg / "signals" / "slha" / "TChiWH")
    grid = yaml.safe_load((REPO / "config" / "signals" / "TChiWH_1Lbb.yaml").read_text())
    grid.update(name="TINY", points=[p for p in grid["points"] if p["name"] == "TChiWH_700_0"])
    grid["events"].update(n_events=n_events, chunks=chunks)
    (cfg / "signals" / "TINY.yaml").write_text(yaml.safe_dump(grid, allow_unicode=True))
    (cfg / "config.yaml").write_text(yaml.safe_dump({"grids": ["TINY"], "checks": True}))
    copy_workflow(root)
    return root


@pytest.mark.slow
def test_full_chain_end_to_end(default_reference):
    # the session's run of this project (1000 events, 2 chunks) plus a reweighted grid: conftest.py;
    # tests/test_determinism.py checks its bytes against a fresh folder and --cores 1
    project, _ = default_reference
    res = project / "results"
    assert sorted(p.name for p in (res / "generate/TINY/TChiWH_700_0").iterdir()) == ["chunk0.parquet", "chunk1.parquet"]
    yields = json.loads((res / "select/TINY/TChiWH_700_0/yields.json").read_text())
    assert yields["normalisation"]["n_events"] == 1000 and set(yields["regions"]) >= {"SRHMEM_mct2", "TRHMEM_cuts"}
    point = json.loads((res / "limits/TINY/batches/b000.json").read_text())["points"][0]
    assert point["point"] == "TChiWH_700_0" and point["software"]["method"] == "fast"
    assert point["status"] == "trusted" and 0 < point["cls_obs"] < 1
    # sigma(production), the working group's NLO+NLL C1+N2 + C1-N2 at 700 GeV (6.99008 + 2.52024 fb, see
    # config/signals/slha/PROVENANCE.md); the W/h branching fractions are in the yields
    assert point["xsec_pb"] == pytest.approx(0.00951032)
    check = (res / "check/yields/TINY.txt").read_text()
    assert "TChiWH_700_0" in check and "1 of 1 gated points within tolerance" in check
    html = (res / "report/index.html").read_text()
    assert "Front-end validation" in html and "Front-end cutflows" in html


def test_bad_detector_card_stops_the_workflow_before_any_job(tmp_path):
    project = front_end_project(tmp_path, n_events=50, chunks=1)
    card = project / "config" / "detectors" / "ATLAS-Run2.yaml"
    card.write_text(card.read_text() + "\nmagnetic_field_tesla: 2\n")
    proc = snakemake(project, "results/emulate/TINY/ATLAS-Run2/TChiWH_700_0/chunk0.parquet")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ATLAS-Run2.yaml" in out and "magnetic_field_tesla" in out and "Traceback" not in out
    assert not (project / "results").exists()


def recastflow(cwd, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "recastflow", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("edit, expected", [
    (lambda p: p.write_text(p.read_text().replace('mCT: "mct(', 'mCT: "mctt(')),
     ("selection.yaml", "variables.mCT", "mctt")),
    (lambda p: p.write_text(p.read_text().replace("mT_100-160: \"100 < mT < 160\"", "mT_100-160: \"100 < mTT < 160\"")),
     ("selection.yaml", "mTT")),
])
def test_selection_mistakes_stop_validate_and_the_workflow_start(tmp_path, edit, expected):
    project = front_end_project(tmp_path, n_events=10, chunks=1)
    selection = project / "config" / "analyses" / "ATLAS-SUSY-2019-08" / "selection.yaml"
    assert "mT_100-160: \"100 < mT < 160\"" in selection.read_text()
    edit(selection)
    proc = recastflow(project, "validate")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert all(e in proc.stderr for e in expected), proc.stderr
    dry = snakemake(project, "-n")
    assert dry.returncode != 0 and all(e in dry.stdout + dry.stderr for e in expected)
    assert not (project / "results").exists()


def test_missing_sparticle_mass_in_slha_stops_validate(tmp_path):
    project = front_end_project(tmp_path, n_events=10, chunks=1)
    slha = project / "config" / "signals" / "slha" / "TChiWH" / "TChiWH_700_0.slha"
    slha.write_text("\n".join(l for l in slha.read_text().splitlines() if not l.strip().startswith("1000024 ")))
    proc = recastflow(project, "validate")
    assert proc.returncode == 1 and "TChiWH_700_0.slha" in proc.stderr and "1000024" in proc.stderr, proc.stderr
