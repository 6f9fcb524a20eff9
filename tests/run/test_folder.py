"""Run folders of model-first runs: analyses, process cards and parameters chosen, bad choices refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.run.api import plan_model
from recastflow.run.folder import choose_analyses, choose_process, project_root

ROOT = project_root()
SLHA = ROOT / "config" / "signals" / "slha" / "TChiWH" / "TChiWH_700_0.slha"


def test_unknown_analysis_is_refused() -> None:
    with pytest.raises(RecastError, match="'ATLAS-NOPE' is not an analysis bundle; analyses with an event selection"):
        choose_analyses(["ATLAS-NOPE"], ROOT / "config" / "analyses")


def test_unknown_workspace_is_refused() -> None:
    with pytest.raises(RecastError, match="has no workspace 'Nope'"):
        choose_analyses(["ATLAS-SUSY-2019-08:Nope"], ROOT / "config" / "analyses")


def test_process_named_or_refused() -> None:
    processes = ROOT / "config" / "processes"
    assert choose_process("TChiWH", None, processes) == processes / "TChiWH.yaml"
    with pytest.raises(RecastError, match="no process card 'TNope'"):
        choose_process("TNope", None, processes)
    # TChiWH and TChiWHZ both produce chi_2^0 chi_1^+-: the SLHA cannot tell them apart
    with pytest.raises(RecastError, match="cannot tell which process.*give --process"):
        choose_process(None, SLHA, processes)


def test_plan_writes_a_resumable_run_folder(tmp_path: Path) -> None:
    plan = plan_model(SLHA, analyses=["ATLAS-SUSY-2019-08"], process="TChiWH", events=100, run_dir=tmp_path / "r")
    config = yaml.safe_load(plan.config.read_text())
    assert config["grids"] == ["ATLAS-SUSY-2019-08_Wh"]
    grid = yaml.safe_load((tmp_path / "r" / "signals" / "ATLAS-SUSY-2019-08_Wh.yaml").read_text())
    # the model's own parameters, read back from the masses: reference patches and official contours apply
    assert grid["points"][0]["values"] == {"m_C1N2": 700.0, "m_N1": 0.0}
    assert grid["events"]["sample"] == "model"
    assert (tmp_path / "r" / "signals" / "slha" / "TChiWH_700_0.slha").read_bytes() == SLHA.read_bytes()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    plan_model(SLHA, analyses=["ATLAS-SUSY-2019-08"], process="TChiWH", events=100, run_dir=tmp_path / "r")
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert before == after  # the same command again touches nothing: Snakemake then redoes nothing


def test_bad_counts_and_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(RecastError, match="--events must be at least 1"):
        plan_model(SLHA, process="TChiWH", events=0, run_dir=tmp_path / "r")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    with pytest.raises(RecastError, match="not a recastflow run folder"):
        plan_model(SLHA, analyses=["ATLAS-SUSY-2019-08"], process="TChiWH", run_dir=tmp_path / "other")
