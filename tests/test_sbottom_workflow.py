"""ATLAS-SUSY-2018-31 RegionA from events in the real Snakemake workflow, on a tiny sample: the T6bbHH
spectrum file -> Pythia 8 -> emulation -> the bundle's selection -> patch -> limits -> yield check."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow
from test_workflow import snakemake

POINT = "sbottom_1300_950_60"


def sbottom_project(root: Path, n_events: int) -> Path:
    cfg = root / "config"
    shutil.copytree(REPO / "config" / "analyses" / "ATLAS-SUSY-2018-31", cfg / "analyses" / "ATLAS-SUSY-2018-31")
    shutil.copytree(REPO / "config" / "processes", cfg / "processes")
    shutil.copytree(REPO / "config" / "detectors", cfg / "detectors")
    (cfg / "signals" / "slha" / "T6bbHH").mkdir(parents=True)
    shutil.copy(REPO / "config" / "signals" / "slha" / "T6bbHH" / "T6bbHH_1300_950_60.slha",
                cfg / "signals" / "slha" / "T6bbHH")
    grid = yaml.safe_load((REPO / "config" / "signals" / "T6bbHH_RegionA.yaml").read_text())
    grid.update(name="SB", points=[p for p in grid["points"] if p["name"] == POINT])
    grid["events"].update(n_events=n_events, chunks=1)
    (cfg / "signals" / "SB.yaml").write_text(yaml.safe_dump(grid, allow_unicode=True))
    (cfg / "config.yaml").write_text(yaml.safe_dump({"grids": ["SB"], "checks": True}))
    copy_workflow(root)
    return root


@pytest.mark.slow
def test_sbottom_region_a_from_events(tmp_path):
    project = sbottom_project(tmp_path, n_events=400)
    proc = snakemake(project, "results/limits/SB/batches/b000.json", "results/check/yields/SB.txt")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = project / "results"
    yields = json.loads((res / f"select/SB/{POINT}/yields.json").read_text())
    # the RegionA selection fills SR_meff (SRA-L/M/H); 400 events at 1300_950 select about 45
    assert set(yields["regions"]) == {"SR_meff"} and len(yields["regions"]["SR_meff"]["yields"]) == 3
    assert sum(yields["regions"]["SR_meff"]["yields"]) > 0
    point = json.loads((res / "limits/SB/batches/b000.json").read_text())["points"][0]
    # RegionA is validated (the bundle gives it no 'unvalidated' reason): its CLs from events carries no caveat
    assert point["point"] == POINT and point["status"] == "trusted" and 0 < point["cls_obs"] < 1
    assert not any(issue.startswith("signal from events through") for issue in point["issues"])
    # sigma: NNLL-fast's approximate NNLO+NNLL stop/sbottom pair value at 1300 GeV (gluino at 5 TeV)
    assert point["xsec_pb"] == pytest.approx(8.877627e-4)
    check = (res / "check/yields/SB.txt").read_text()
    assert POINT in check and "SR_meff" in check
