"""ATLAS-SUSY-2018-04 from events in the real Snakemake workflow, on a tiny sample: Pythia stau pairs ->
emulation with hadronic taus -> the two-tau selection -> patch -> limits -> yield check against ATLAS's patch."""

import json
import shutil
from pathlib import Path

import awkward as ak
import pytest
import yaml
from conftest import REPO, copy_workflow
from test_workflow import snakemake

from recastflow.core.events import read_events


def stau_project(root: Path, n_events: int) -> Path:
    cfg = root / "config"
    shutil.copytree(REPO / "config" / "analyses" / "ATLAS-SUSY-2018-04", cfg / "analyses" / "ATLAS-SUSY-2018-04")
    shutil.copytree(REPO / "config" / "processes", cfg / "processes")
    shutil.copytree(REPO / "config" / "detectors", cfg / "detectors")
    (cfg / "signals" / "slha" / "TStauStau").mkdir(parents=True)
    shutil.copy(
        REPO / "config" / "signals" / "slha" / "TStauStau" / "TStauStau_200_1.slha",
        cfg / "signals" / "slha" / "TStauStau",
    )
    grid = yaml.safe_load((REPO / "config" / "signals" / "TStauStau_validation.yaml").read_text())
    grid.update(name="TINYSTAU", points=[p for p in grid["points"] if p["name"] == "TStauStau_200_1"])
    grid["events"].update(n_events=n_events, chunks=1)
    (cfg / "signals" / "TINYSTAU.yaml").write_text(yaml.safe_dump(grid, allow_unicode=True))
    (cfg / "config.yaml").write_text(yaml.safe_dump({"grids": ["TINYSTAU"], "checks": True}))
    copy_workflow(root)
    return root


@pytest.mark.slow
def test_stau_chain_end_to_end(tmp_path):
    project = stau_project(tmp_path, n_events=1000)
    run = snakemake(project)
    assert run.returncode == 0, run.stderr[-3000:]
    res = project / "results"
    reco = next((res / "emulate").rglob("*.parquet"))
    events, _ = read_events(reco)
    # the detector card's taus section: reconstructed taus with their working points, and the two triggers
    assert {"taus", "triggers"} <= set(events.fields)
    assert {"medium", "tight", "prongs", "charge"} <= set(events.taus.fields)
    assert ak.sum(ak.num(events.taus)) > 0
    yields = json.loads((res / "select/TINYSTAU/TStauStau_200_1/yields.json").read_text())
    assert set(yields["regions"]) == {"SR1cut_cuts", "SR2cut_cuts", "QCR1cut_cuts", "QCR2cut_cuts"}
    # NLO+NLL stau_L + stau_R pairs at 200 GeV (working-group slepton tables)
    assert yields["normalisation"]["xsec_pb"] == pytest.approx(0.02194 + 0.008372)
    point = json.loads((res / "limits/TINYSTAU/batches/b000.json").read_text())["points"][0]
    assert point["point"] == "TStauStau_200_1" and 0 < point["cls_obs"] <= 1
    check = (res / "check/yields/TINYSTAU.txt").read_text()
    assert "TStauStau_200_1" in check and "ATLAS" in check
