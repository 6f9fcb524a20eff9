"""A point's record before its fits: cross-section from the front end, flags from its reweighting."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from recastflow.core.errors import RecastError
from recastflow.stats.points import point_record, reweight_verdicts

GRID = SimpleNamespace(name="G", workspace="main")
ANALYSIS = SimpleNamespace(id="TOY", events_caveat=lambda workspace: None)


def _point(tmp_path: Path, *, xsec_pb: float | None = None, reweight: object = None) -> SimpleNamespace:
    yields = tmp_path / "yields.json"
    yields.write_text(json.dumps({"normalisation": {"xsec_pb": 0.25, "xsec_source": "pythia"}}))
    return SimpleNamespace(name="P", values={"m": 1.0}, xsec_pb=xsec_pb, xsec_source="grid" if xsec_pb else "",
                           from_events=reweight is None, reweight=reweight, yields=yields)


def test_front_end_points_take_the_cross_section_their_yields_are_normalised_to(tmp_path: Path) -> None:
    rec = point_record(GRID, ANALYSIS, _point(tmp_path), cl=0.9)
    assert (rec.xsec_pb, rec.xsec_source, rec.cl, rec.issues) == (0.25, "pythia", 0.9, [])
    # a cross-section the grid states wins
    assert point_record(GRID, ANALYSIS, _point(tmp_path, xsec_pb=1.5), cl=0.95).xsec_pb == 1.5


def test_a_flagged_reweighting_flags_the_point(tmp_path: Path) -> None:
    point = _point(tmp_path, reweight=object())
    flagged = {"point": "P", "verdict": "flagged", "reasons": ["ESS fraction 0.05 < 0.2"]}
    rec = point_record(GRID, ANALYSIS, point, cl=0.95, diagnostics=flagged)
    assert rec.issues == ["reweighting flagged: ESS fraction 0.05 < 0.2"]
    ok = point_record(GRID, ANALYSIS, point, cl=0.95, diagnostics={"point": "P", "verdict": "ok", "reasons": []})
    assert ok.issues == []


def test_diagnostics_files_are_matched_by_the_point_they_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"point": "P1", "verdict": "ok"}))
    b.write_text(json.dumps({"point": "P2", "verdict": "flagged"}))
    assert set(reweight_verdicts([a, b])) == {"P1", "P2"}
    b.write_text(json.dumps({"point": "P1", "verdict": "flagged"}))
    with pytest.raises(RecastError, match=r"b\.json: point: a second diagnostics file for point 'P1'"):
        reweight_verdicts([a, b])
    b.write_text(json.dumps({"verdict": "flagged"}))
    with pytest.raises(RecastError, match=r"b\.json: point: names no 'point'"):
        reweight_verdicts([b])


def test_points_from_events_through_an_unvalidated_workspace_are_flagged(tmp_path: Path) -> None:
    """The bundle's reason reaches every point made here; published patches and validated workspaces are clean."""
    from recastflow.analyses.bundle import load_analysis

    analyses = Path(__file__).resolve().parents[2] / "config" / "analyses"
    sbottom = load_analysis("ATLAS-SUSY-2018-31", analyses)
    region_c = SimpleNamespace(name="T6bbHH_RegionC", workspace="RegionC")
    rec = point_record(region_c, sbottom, _point(tmp_path), cl=0.95)
    assert len(rec.issues) == 1
    assert rec.issues[0].startswith("signal from events through ATLAS-SUSY-2018-31 RegionC not validated: SRC yields")
    published = SimpleNamespace(name="P", values={}, xsec_pb=1.0, xsec_source="grid", from_events=False, reweight=None)
    assert point_record(region_c, sbottom, published, cl=0.95).issues == []
    onelbb = load_analysis("ATLAS-SUSY-2019-08", analyses)  # validated: its Wh workspace carries no reason
    wh = SimpleNamespace(name="TChiWH_1Lbb", workspace="Wh")
    assert point_record(wh, onelbb, _point(tmp_path), cl=0.95).issues == []


def test_an_empty_reason_is_refused(tmp_path: Path) -> None:
    import shutil

    import yaml

    from recastflow.analyses.bundle import load_analysis

    analyses = Path(__file__).resolve().parents[2] / "config" / "analyses"
    shutil.copytree(analyses / "ATLAS-SUSY-2018-31", tmp_path / "ATLAS-SUSY-2018-31")
    path = tmp_path / "ATLAS-SUSY-2018-31" / "analysis.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["workspaces"]["RegionA"]["unvalidated"] = ""
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(RecastError) as err:
        load_analysis("ATLAS-SUSY-2018-31", tmp_path)
    assert "workspaces" in str(err.value) and "unvalidated" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
