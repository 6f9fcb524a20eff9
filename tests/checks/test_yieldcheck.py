"""Front-end validation against the published 1Lbb signal patches (real ATLAS files)."""

import json
import math
from pathlib import Path

import pytest

from recastflow.analyses.bundle import load_analysis, load_grid
from recastflow.checks.runner import CheckOutputs, check_yields, yields_verdict
from recastflow.checks.yields import (
    compare_yields,
    fidelity,
    format_yield_table,
    low_stat_warning,
    plot_yield_summary,
    plot_yields,
    published_yields,
    rows_to_json,
)
from recastflow.core.errors import CheckFailed, RecastError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle():
    analysis = load_analysis("ATLAS-SUSY-2019-08", REPO / "config" / "analyses")
    grid = load_grid("TChiWH_1Lbb", REPO / "config" / "signals")
    return analysis, grid, analysis.workspace("Wh").load()


def write_yields(folder: Path, regions: dict, scale: float) -> Path:
    doc = {"format": "recastflow-yields/1",
           "regions": {k: {"yields": [v * scale for v in b], "stat": [0.01] * len(b)} for k, b in regions.items()}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "yields.json").write_text(json.dumps(doc))
    return folder / "yields.json"


def test_published_patch_yields(bundle):
    analysis, grid, bkg = bundle
    ref = analysis.yield_references.for_values({"m_C1N2": 700, "m_N1": 0})
    y = published_yields(ref.patch, bkg, analysis.workspace("Wh"), analysis)
    assert sum(sum(y[r]) for r in analysis.yield_references.signal_regions) == pytest.approx(17.65, abs=0.01)
    assert len(y["SRLMEM_mct2"]) == 3 and len(y["WREM_cuts"]) == 1


def test_agreement_passes_and_a_30_percent_excess_fails(bundle, tmp_path):
    analysis, grid, bkg = bundle
    files = {}
    for point, scale in (("TChiWH_700_0", 1.0), ("TChiWH_900_0", 1.3)):
        p = grid.point(point)
        ref = analysis.yield_references.for_values(p.values)
        files[point] = write_yields(tmp_path / point, published_yields(ref.patch, bkg, analysis.workspace("Wh"), analysis), scale)
    rows = {r.point: r for r in compare_yields(grid, analysis, files, bkg)}
    assert rows["TChiWH_700_0"].passed and rows["TChiWH_700_0"].deviation == pytest.approx(0.0, abs=1e-12)
    assert not rows["TChiWH_900_0"].passed and rows["TChiWH_900_0"].deviation == pytest.approx(0.3)
    text = format_yield_table(list(rows.values()), analysis, analysis.yield_references)
    assert "1 of 2 gated points within tolerance" in text and "FAIL" in text
    # stat 0.01 per bin: the allowed deviation is rtol plus twice that, relative to ATLAS's total
    row = rows["TChiWH_900_0"]
    assert row.allowed == pytest.approx(row.rtol + 2 * row.sr_total_stat / row.sr_total_atlas)
    plot_yields(list(rows.values()), analysis, analysis.yield_references, tmp_path / "y.png")
    assert (tmp_path / "y.png").stat().st_size > 1000 and (tmp_path / "y.pdf").is_file()


def test_our_own_mc_statistics_widen_the_tolerance(bundle, tmp_path):
    analysis, grid, bkg = bundle
    p = grid.point("TChiWH_900_0")
    ref = analysis.yield_references.for_values(p.values)
    atlas = published_yields(ref.patch, bkg, analysis.workspace("Wh"), analysis)
    # 30% high, but with a 10% MC-statistical uncertainty on the total: within 25% + 2 x 10%
    doc = {"format": "recastflow-yields/1",
           "regions": {k: {"yields": [v * 1.3 for v in b], "stat": [0.0] * len(b)} for k, b in atlas.items()}}
    total = sum(sum(atlas[r]) for r in analysis.yield_references.signal_regions)
    first = analysis.yield_references.signal_regions[0]
    doc["regions"][first]["stat"][0] = 0.1 * total
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "yields.json").write_text(json.dumps(doc))
    (row,) = compare_yields(grid, analysis, {"TChiWH_900_0": tmp_path / "y" / "yields.json"}, bkg)
    assert row.deviation == pytest.approx(0.3) and row.allowed == pytest.approx(row.rtol + 0.2)
    assert row.passed


def test_control_regions_are_compared_and_ours_shown_where_atlas_has_none(bundle, tmp_path):
    analysis, grid, bkg = bundle
    p = grid.point("TChiWH_700_0")
    ref = analysis.yield_references.for_values(p.values)
    atlas = published_yields(ref.patch, bkg, analysis.workspace("Wh"), analysis)
    ours = {k: list(v) for k, v in atlas.items()}
    ours["TRHMEM_cuts"] = [2 * atlas["TRHMEM_cuts"][0]]  # a control region twice ATLAS's
    ours["EXTRA_cuts"] = [0.5]  # a region the patch has no signal in
    (row,) = compare_yields(grid, analysis, {"TChiWH_700_0": write_yields(tmp_path / "p", ours, 1.0)}, bkg)
    regions = {g.region: g for g in row.regions}
    assert [g.region for g in row.regions][:3] == list(analysis.yield_references.signal_regions)
    assert regions["TRHMEM_cuts"].ratio == pytest.approx(2.0) and not regions["TRHMEM_cuts"].signal_region
    assert regions["EXTRA_cuts"].atlas is None and regions["EXTRA_cuts"].ours == pytest.approx(0.5)
    assert row.passed  # control regions are reported, not gated
    text = format_yield_table([row], analysis, analysis.yield_references)
    per_region = text.split("Per region")[1].split("Per bin")[0]
    assert "TRHMEM_cuts" in per_region and "2.00 ±" in per_region
    assert "EXTRA_cuts" in per_region and "—" in per_region.split("EXTRA_cuts")[1].splitlines()[0]
    assert "EXTRA_cuts" in text.split("Per bin")[1]
    rec = rows_to_json([row])[0]
    assert {g["region"]: g["ratio"] for g in rec["regions"]}["EXTRA_cuts"] is None
    plot_yields([row], analysis, analysis.yield_references, tmp_path / "y.png")
    assert (tmp_path / "y.png").stat().st_size > 1000


def test_too_few_mc_events_for_the_tolerance_are_warned_about():
    # 20 effective events: +-22%, twice that is far above a 25% tolerance
    n_eff, warning = low_stat_warning(2.0, 2.0 / math.sqrt(20), 0.25, 10_000)
    assert n_eff == pytest.approx(20) and "only ~20 MC events" in warning and "32,000 events would do" in warning
    assert low_stat_warning(2.0, 2.0 / math.sqrt(100), 0.25, 10_000) == (pytest.approx(100), "")
    assert "no MC event" in low_stat_warning(0.0, 0.0, 0.25, None)[1]


def test_a_failed_check_still_writes_table_json_and_plot(bundle, tmp_path, capsys):
    analysis, grid, bkg = bundle
    p = grid.point("TChiWH_900_0")
    ref = analysis.yield_references.for_values(p.values)
    atlas = published_yields(ref.patch, bkg, analysis.workspace("Wh"), analysis)
    f = write_yields(tmp_path / "select" / p.name, atlas, 1.6)
    from dataclasses import replace

    g = replace(grid, points=tuple(replace(q, yields=f) if q.name == p.name else q for q in grid.points))
    out = CheckOutputs(table=tmp_path / "c.txt", json=tmp_path / "c.json", plot=tmp_path / "c.png")
    with pytest.raises(CheckFailed, match="TChiWH_900_0"):
        check_yields(g, analysis, [f], out)
    assert "CHECK FAILED" in (tmp_path / "c.txt").read_text() and (tmp_path / "c.png").stat().st_size > 1000
    assert json.loads((tmp_path / "c.json").read_text())[0]["passed"] is False
    # the workflow's form: the job succeeds, the verdict (run last) fails the run
    check_yields(g, analysis, [f], out, fail=False)
    with pytest.raises(CheckFailed, match="1 of 1 points"):
        yields_verdict(tmp_path / "c.json", tmp_path / "c.passed")
    assert not (tmp_path / "c.passed").exists()
    ok = write_yields(tmp_path / "ok", atlas, 1.0)
    g_ok = replace(grid, points=tuple(replace(q, yields=ok) if q.name == p.name else q for q in grid.points))
    check_yields(g_ok, analysis, [ok], out)
    yields_verdict(tmp_path / "c.json", tmp_path / "c.passed")
    assert "1 of 1 gated points" in (tmp_path / "c.passed").read_text()
    assert "CHECK FAILED" not in (tmp_path / "c.txt").read_text()


def test_patch_pattern_gives_every_point_with_a_published_patch_a_reference(bundle):
    analysis, _, _ = bundle
    refs = analysis.yield_references
    assert refs.patch_pattern == "source:patch_{m_C1N2}_{m_N1}"
    ref = refs.for_values({"m_C1N2": 750.0, "m_N1": 100.0})
    assert ref is not None and ref.patch == analysis.sources["patch_750_100"].path() and ref.rtol == refs.rtol
    assert refs.for_values({"m_C1N2": 650.0, "m_N1": 50.0}) is None  # no such patch published here


def test_a_pattern_field_that_is_not_a_parameter_is_one_line_error(tmp_path):
    import shutil

    import yaml

    folder = tmp_path / "ATLAS-SUSY-2019-08"
    shutil.copytree(REPO / "config" / "analyses" / "ATLAS-SUSY-2019-08", folder)
    doc = yaml.safe_load((folder / "analysis.yaml").read_text())
    doc["yield_references"]["patch_pattern"] = "source:patch_{m_C1}_{m_N1}"
    (folder / "analysis.yaml").write_text(yaml.safe_dump(doc))
    analysis = load_analysis("ATLAS-SUSY-2019-08", tmp_path)
    with pytest.raises(RecastError, match="m_C1") as exc:
        analysis.yield_references.for_values({"m_C1N2": 700.0, "m_N1": 0.0})
    assert exc.value.field == "yield_references.patch_pattern"


def test_verdict_command_fails_with_one_line_and_passes_with_a_marker(tmp_path):
    import subprocess
    import sys

    rows = [{"point": "P1", "gated": True, "passed": False}, {"point": "P2", "gated": False, "passed": True}]
    (tmp_path / "c.json").write_text(json.dumps(rows))
    cfg = REPO / "config"
    settings = ["--analyses-dir", str(cfg / "analyses"), "--signals-dir", str(cfg / "signals"), "--allowed-path", str(cfg)]
    cmd = [sys.executable, "-m", "recastflow", *settings, "check-yields-verdict", "--check", "c.json", "--output", "c.passed"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "P1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "c.passed").exists()
    rows[0]["passed"] = True
    (tmp_path / "c.json").write_text(json.dumps(rows))
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.passed").read_text() == "yield check passed: 1 of 1 gated points within tolerance\n"


def test_an_unvalidated_workspace_is_reported_not_gated_and_counted(bundle, tmp_path):
    from dataclasses import replace

    analysis, grid, bkg = bundle
    ws = analysis.workspace("Wh")
    flagged = replace(analysis, workspaces={**analysis.workspaces, "Wh": replace(ws, unvalidated="yields not yet checked")})
    files = {}
    for point, scale in (("TChiWH_700_0", 1.1), ("TChiWH_900_0", 1.6)):
        ref = analysis.yield_references.for_values(grid.point(point).values)
        files[point] = write_yields(tmp_path / point, published_yields(ref.patch, bkg, ws, analysis), scale)
    rows = {r.point: r for r in compare_yields(grid, flagged, files, bkg)}
    assert not any(r.gated for r in rows.values()) and all(r.passed for r in rows.values())
    assert rows["TChiWH_700_0"].within and not rows["TChiWH_900_0"].within
    assert "marked unvalidated" in rows["TChiWH_900_0"].note
    f = fidelity(list(rows.values()))
    assert (f.n, f.within_rtol, f.within_allowed) == (2, 1, 1) and f.median == pytest.approx(1.35)
    text = format_yield_table(list(rows.values()), flagged, analysis.yield_references)
    assert "yield check: reported, not gated" in text and "fidelity: 1 of 2 points" in text and "median 1.35" in text
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("TChiWH_")}
    assert " in " in lines["TChiWH_700_0"] and " out " in lines["TChiWH_900_0"]
    # the run is not failed by it: the verdict sees no gated point
    out = CheckOutputs(table=tmp_path / "c.txt", json=tmp_path / "c.json", summary=tmp_path / "s.png")
    g = replace(grid, points=tuple(replace(q, yields=files[q.name]) if q.name in files else q for q in grid.points))
    check_yields(g, flagged, list(files.values()), out)
    yields_verdict(tmp_path / "c.json", tmp_path / "c.passed")
    assert (tmp_path / "s.png").stat().st_size > 1000 and (tmp_path / "s.pdf").is_file()


def test_fidelity_counts_points_with_enough_published_events_only():
    from recastflow.checks.yields import YieldRow

    def row(name, ours, atlas, enough=True):
        return YieldRow(name, {}, {}, {}, {}, ours, 0.0, atlas, 0.25, enough, True, "", enough_events=enough,
                        within=abs(ours / atlas - 1) <= 0.25)

    rows = [row("a", 10, 10), row("b", 12, 10), row("c", 7, 10), row("d", 1, 2, enough=False)]
    f = fidelity(rows)
    assert (f.n, f.within_rtol) == (3, 2) and f.median == pytest.approx(1.0)
    assert fidelity([row("d", 1, 2, enough=False)]).median is None


def test_summary_plot_draws_the_plane_and_the_deviations(bundle, tmp_path):
    analysis, grid, bkg = bundle
    files = {}
    for point, scale in (("TChiWH_700_0", 1.0), ("TChiWH_900_0", 1.3), ("TChiWH_500_0", 0.8)):
        ref = analysis.yield_references.for_values(grid.point(point).values)
        files[point] = write_yields(tmp_path / point, published_yields(ref.patch, bkg, analysis.workspace("Wh"), analysis), scale)
    rows = compare_yields(grid, analysis, files, bkg)
    plot_yield_summary(rows, analysis, analysis.yield_references, grid, tmp_path / "s.png", tmp_path / "s.pdf")
    assert (tmp_path / "s.png").stat().st_size > 5000 and (tmp_path / "s.pdf").is_file()


def test_a_workspace_reference_region_of_another_workspace_is_one_line_error(tmp_path):
    import shutil

    import yaml

    folder = tmp_path / "ATLAS-SUSY-2018-31"
    shutil.copytree(REPO / "config" / "analyses" / "ATLAS-SUSY-2018-31", folder)
    doc = yaml.safe_load((folder / "analysis.yaml").read_text())
    doc["workspaces"]["RegionB"]["yield_references"]["signal_regions"] = ["SR_meff"]  # RegionA's
    (folder / "analysis.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match="'SR_meff' is not a region of this workspace") as exc:
        load_analysis("ATLAS-SUSY-2018-31", tmp_path)
    assert exc.value.field == "workspaces.RegionB.yield_references.signal_regions" and "\n" not in str(exc.value)


def test_a_check_without_comparable_points_says_nothing_is_gated(bundle, tmp_path):
    from dataclasses import replace

    analysis, grid, bkg = bundle
    ws = analysis.workspace("Wh")
    refs = replace(analysis.yield_references, min_events=1e6)  # no published point reaches it
    ref = refs.for_values(grid.point("TChiWH_700_0").values)
    files = {"TChiWH_700_0": write_yields(tmp_path / "p", published_yields(ref.patch, bkg, ws, analysis), 1.0)}
    rows = compare_yields(grid, replace(analysis, yield_references=refs), files, bkg)
    assert rows and not any(r.gated or r.enough_events for r in rows)
    text = format_yield_table(rows, analysis, refs)
    assert "yield check: nothing to gate (no point has 1e+06 or more published signal-region events)" in text
