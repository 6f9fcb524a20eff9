"""An adaptive scan's settings: read from the scan file, and every bad input refused in one line up front."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recastflow.adaptive.spec import adaptive_spec, fixed_values, plane_axes, points_needed
from recastflow.core.errors import RecastError
from recastflow.generate.scan import load_scan
from recastflow.run.folder import project_root

ROOT = project_root()


def scan(tmp_path: Path, name: str = "scan.yaml", **adaptive: object) -> Path:
    section = {
        "events": {"chunk": 1000, "min": 2000, "max": 10000},
        "refine": {"resolution": {"m_C1N2": 25, "m_N1": 25}, "max_rounds": 4},
    }
    for key, value in adaptive.items():
        section[key] = value
    doc = {
        "name": "T",
        "model": str(ROOT / "config" / "spectra" / "TChiWH.yaml"),
        "axes": {"m_C1N2": {"range": [400, 1000], "step": 200}, "m_N1": {"range": [0, 300], "step": 100}},
        "constraints": ["m_N1 <= m_C1N2 - 130"],
        "cross_section": "tables",
        "adaptive": section,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_shipped_adaptive_scan_reads() -> None:
    s = load_scan(ROOT / "config" / "scans" / "TChiWH_1Lbb_adaptive.yaml")
    spec = adaptive_spec(s)
    assert (spec.chunk, spec.min_events, spec.max_events) == (1000, 2000, 10000)
    assert spec.stop.looks == 9 and spec.stop.on == ("observed", "expected")
    assert spec.max_points is not None and points_needed(s, spec) <= spec.max_points


def test_settings(tmp_path: Path) -> None:
    spec = adaptive_spec(load_scan(scan(tmp_path, stop={"confidence": 0.9, "decide": ["observed"], "precision": 0.05})))
    assert spec.stop.confidence == 0.9 and spec.stop.on == ("observed",) and spec.stop.precision == 0.05
    assert spec.max_chunks == 10 and spec.min_chunks == 2 and spec.max_rounds == 4
    assert spec.resolution == {"m_C1N2": 25.0, "m_N1": 25.0}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"events": {"chunk": 1000, "min": 5000, "max": 2000}}, "adaptive.events.min", "min (5000) is above max (2000)"),
        ({"events": {"chunk": 1000, "min": 1500, "max": 2000}}, "adaptive.events.min", "not a whole number of chunks"),
        ({"refine": {"resolution": {"m_C1N2": 25, "m_stop": 10}}}, "adaptive.refine.resolution.m_stop",
         "no axis 'm_stop' to refine (not an axis): the scan's plane is m_C1N2, m_N1"),
        ({"refine": {"resolution": {"m_C1N2": 1, "m_N1": 1}, "max_rounds": 8, "max_points": 100}},
         "adaptive.refine.max_points", "cannot reach the resolution"),
        ({"stop": {"confidence": 1.5}}, "adaptive.stop.confidence", ""),
        ({"stop": {"decide": ["obs"]}}, "adaptive.stop.decide", ""),
    ],
)  # fmt: skip
def test_bad_settings_are_refused(tmp_path: Path, changes: dict, field: str, message: str) -> None:
    with pytest.raises(RecastError) as err:
        adaptive_spec(load_scan(scan(tmp_path, **changes)))
    assert err.value.field is not None and err.value.field.startswith(field)
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1
    assert str(tmp_path / "scan.yaml") in str(err.value)


def test_a_scan_without_the_section_or_with_one_axis_is_refused(tmp_path: Path) -> None:
    path = scan(tmp_path)
    doc = yaml.safe_load(path.read_text())
    del doc["adaptive"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match="has no 'adaptive' section"):
        adaptive_spec(load_scan(path))
    one = scan(tmp_path, "one.yaml")
    doc = yaml.safe_load(one.read_text())
    doc["axes"]["m_N1"] = {"values": [0]}
    one.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match="give two axes at least two values each") as err:
        adaptive_spec(load_scan(one))
    assert err.value.field == "axes.m_N1"


def t6bbhh(tmp_path: Path, n1: list[float], **refine: object) -> Path:
    """A three-parameter model: the (m_sbottom, m_neutralino2) plane at a fixed m_neutralino1."""
    doc = {
        "name": "T6bbHH",
        "model": str(ROOT / "config" / "spectra" / "T6bbHH.yaml"),
        "axes": {"m_sbottom": {"values": [800, 1200]}, "m_neutralino2": {"values": [300, 700]},
                 "m_neutralino1": {"values": n1}},
        "constraints": ["m_neutralino2 <= m_sbottom - 50", "m_neutralino1 <= m_neutralino2 - 130"],
        "cross_section": "tables",
        "adaptive": {"events": {"chunk": 1000, "min": 1000, "max": 4000},
                     "refine": {"resolution": {"m_sbottom": 100, "m_neutralino2": 100}, **refine}},
    }  # fmt: skip
    path = tmp_path / "t6bbhh.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_third_parameter_with_one_value_is_fixed(tmp_path: Path) -> None:
    s = load_scan(t6bbhh(tmp_path, [60]))
    adaptive_spec(s)
    assert plane_axes(s) == ("m_sbottom", "m_neutralino2")
    assert fixed_values(s) == {"m_neutralino1": 60.0}


def test_three_axes_of_several_values_or_a_fixed_axis_to_refine_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecastError, match="the scan has 3 axis/axes with several values") as err:
        adaptive_spec(load_scan(t6bbhh(tmp_path, [60, 100])))
    assert err.value.field == "axes" and len(str(err.value).splitlines()) == 1
    bad = t6bbhh(tmp_path, [60], resolution={"m_sbottom": 100, "m_neutralino1": 10})
    with pytest.raises(RecastError, match="'m_neutralino1' to refine \\(a fixed parameter") as err:
        adaptive_spec(load_scan(bad))
    assert err.value.field == "adaptive.refine.resolution.m_neutralino1"


def test_run_refuses_bad_input_in_one_line_before_any_job(tmp_path: Path) -> None:
    bad = scan(tmp_path, "bad.yaml", events={"chunk": 1000, "min": 5000, "max": 2000})
    cases = [
        ([str(bad), "--adaptive", "--analyses", "ATLAS-SUSY-2019-08:Wh"], "min (5000) is above max (2000)"),
        ([str(scan(tmp_path)), "--adaptive"], "give --analyses ID:WORKSPACE (one)"),
        ([str(scan(tmp_path)), "--adaptive", "--analyses", "ATLAS-SUSY-2019-08:Wh", "ATLAS-SUSY-2018-04"],
         "give --analyses ID:WORKSPACE (one)"),
        ([str(scan(tmp_path)), "--adaptive", "--analyses", "ATLAS-SUSY-2019-08:Wh", "--events", "100"],
         "--events does not apply to an adaptive scan"),
    ]  # fmt: skip
    for argv, message in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "recastflow", "run", "--scan", *argv, "--run-dir", str(tmp_path / "r"), "--plan-only"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert proc.returncode == 1, (argv, proc.stdout, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "r").exists()  # nothing half-written


def test_plan_writes_a_run_folder_that_holds_the_whole_scan(tmp_path: Path) -> None:
    from recastflow.run.adaptive import plan_adaptive

    plan = plan_adaptive(scan(tmp_path), analyses=["ATLAS-SUSY-2019-08:Wh"], seed=3, run_dir=tmp_path / "run")
    config = yaml.safe_load(plan.config.read_text())
    assert config["adaptive"] == {"scan": "scan.yaml", "analysis": "ATLAS-SUSY-2019-08", "workspace": "Wh",
                                  "process": "processes/TChiWH.yaml", "detector": "detectors/ATLAS-Run2.yaml",
                                  "seed": 3}  # fmt: skip
    copied = load_scan(plan.scan)
    assert copied.model == (plan.folder / "model" / "TChiWH.yaml").resolve() and len(copied.points) == plan.coarse_points
    # planning again changes nothing (the run resumes)
    before = {p: p.stat().st_mtime_ns for p in plan.folder.rglob("*") if p.is_file()}
    plan_adaptive(scan(tmp_path), analyses=["ATLAS-SUSY-2019-08:Wh"], seed=3, run_dir=tmp_path / "run")
    assert before == {p: p.stat().st_mtime_ns for p in plan.folder.rglob("*") if p.is_file()}


def test_default_run_folder_is_under_the_working_directory_not_the_checkout(tmp_path: Path, monkeypatch) -> None:
    # as for every other run: a user's scan must not write into the recastflow checkout
    from recastflow.run.adaptive import plan_adaptive
    from recastflow.run.folder import project_root

    work = tmp_path / "mine"
    work.mkdir()
    monkeypatch.chdir(work)
    plan = plan_adaptive(scan(tmp_path), analyses=["ATLAS-SUSY-2019-08:Wh"], seed=3)
    assert plan.folder.resolve() == work / "runs" / "T_adaptive"
    assert not (project_root() / "runs" / "T_adaptive").exists()
