"""Front-end validation against the published 1Lbb signal patches (real ATLAS files)."""

import json
from pathlib import Path

import pytest

from recastflow.analyses.bundle import load_analysis, load_grid
from recastflow.checks.yields import compare_yields, format_yield_table, plot_yields, published_yields

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
    text = format_yield_table(list(rows.values()), analysis)
    assert "1 of 2 gated points within tolerance" in text and "FAIL" in text
    # stat 0.01 per bin: the allowed deviation is rtol plus twice that, relative to ATLAS's total
    row = rows["TChiWH_900_0"]
    assert row.allowed == pytest.approx(row.rtol + 2 * row.sr_total_stat / row.sr_total_atlas)
    plot_yields(list(rows.values()), analysis, tmp_path / "y.png")
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
