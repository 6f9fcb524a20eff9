"""Official contours from an upper-limit map, contour geometry, and the bundle's official_limits."""

from pathlib import Path

import numpy as np
import pytest

from recastflow.analyses.bundle import OfficialLimitsRef, TheoryXsec, load_analysis
from recastflow.analyses.fetch import Source
from recastflow.core.errors import RecastError
from recastflow.report.contours import Contour, contour_distance_along, crossings_along, interpolated_contour
from recastflow.report.official import official_contours, read_hepdata_contour, read_smodels_map

REPO = Path(__file__).resolve().parents[2]


def _write_map(path: Path, entries, expected=None) -> Path:
    def block(items):
        rows = [f"[[[{a:.4E}*GeV,{b:.4E}*GeV],[{a:.4E}*GeV,{b:.4E}*GeV]],{ul:.6E}*pb]" for a, b, ul in items]
        return "[" + ",\n".join(rows) + "]"

    text = "txName: TSynth\nconstraint: [[['W']],[['higgs']]]\naxes: [[x, y], [x, y]]\n"
    text += "upperLimits: " + block(entries) + "\n"
    if expected is not None:
        text += "expectedUpperLimits: " + block(expected) + "\n"
    path.write_text(text)
    return path


def _xsec_sources(tmp_path: Path, monkeypatch) -> TheoryXsec:
    """A synthetic theory table sigma(m) = exp(-m / 100) pb, served from a mirror folder."""
    import hashlib
    import json

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    masses = np.arange(100.0, 1201.0, 50.0)
    csv = "mass [GeV], xsec [pb]\n" + "".join(f"{m:.1f}, {np.exp(-m / 100.0):.12e}\n" for m in masses)
    info = {
        "columns": [{"name": "m", "unit": "GeV"}, {"name": "xsec", "unit": "pb"}],
        "parameters": [{"column": "m"}],
        "values": [{"column": "xsec"}],
    }
    (mirror / "synth.csv").write_text(csv)
    (mirror / "synth.info").write_text(json.dumps(info))
    monkeypatch.setenv("RECASTFLOW_MIRROR", str(mirror))
    monkeypatch.setenv("RECASTFLOW_CACHE", str(tmp_path / "cache"))

    def src(name: str) -> Source:
        data = (mirror / name).read_bytes()
        return Source(name=name, file=name, sha256=hashlib.sha256(data).hexdigest())

    return TheoryXsec(values=src("synth.csv"), info=src("synth.info"), mass="mx")


def _ref(ul: Path, xsec: TheoryXsec, **kw) -> OfficialLimitsRef:
    return OfficialLimitsRef(
        model="TSynth",
        coordinates={"mx": (0, 0), "my": (0, 1)},
        fixed={},
        upper_limits=ul,
        upper_limits_text=str(ul.name),
        format="smodels",
        cross_section=xsec,
        contours={},
        figure="",
        bundle=ul.parent / "analysis.yaml",
        **kw,
    )


def test_contour_of_a_synthetic_map_is_where_sigma_equals_the_limit(tmp_path, monkeypatch):
    # sigma = exp(-mx/100) and UL = exp(-(600 - my)/100): r = exp((600 - my - mx)/100) crosses 1 on
    # mx + my = 600, a straight line that linear interpolation of log r reproduces exactly
    xsec = _xsec_sources(tmp_path, monkeypatch)
    grid = [(mx, my) for mx in range(200, 1001, 100) for my in range(0, 401, 100) if my < mx]
    entries = [(mx, my, float(np.exp(-(600.0 - my) / 100.0))) for mx, my in grid]
    expected = [(mx, my, float(np.exp(-(500.0 - my) / 100.0))) for mx, my in grid]  # r_exp = 1 on mx + my = 500
    ul = _write_map(tmp_path / "TSynth.txt", entries, expected)
    (tmp_path / "analysis.yaml").write_text("")
    out = official_contours(_ref(ul, xsec), "mx", "my")
    assert out.observed is not None and out.expected is not None
    pts = np.array(out.observed.points())
    assert np.allclose(pts[:, 0] + pts[:, 1], 600.0, atol=1e-6)
    exp_pts = np.array(out.expected.points())
    assert np.allclose(exp_pts[:, 0] + exp_pts[:, 1], 500.0, atol=1e-6)
    assert crossings_along(out.observed, {"my": 0}, "mx") == pytest.approx([600.0])
    assert crossings_along(out.observed, {"my": 200}, "mx") == pytest.approx([400.0])
    assert len(out.r_values) == len(grid)


def test_map_points_outside_the_cross_section_table_are_left_out_and_said(tmp_path, monkeypatch):
    xsec = _xsec_sources(tmp_path, monkeypatch)  # table covers 100-1200 GeV
    entries = [(mx, my, 1e-3) for mx in (50, 300, 600, 900, 1500) for my in (0, 100)]
    ul = _write_map(tmp_path / "TSynth.txt", entries)
    out = official_contours(_ref(ul, xsec), "mx", "my")
    assert len(out.r_values) == 6
    assert any("4 map point(s) outside" in n for n in out.notes)
    assert any("no expected limits" in n for n in out.notes) and out.expected is None


@pytest.mark.parametrize(
    "body, message",
    [
        ("upperLimits: [[[[1.0*GeV,2.0*GeV],[1.0*GeV,2.0*GeV]],3.0*GeV]]", "masses with GeV, limits with pb"),
        ("upperLimits: [[[[1.0*GeV,2.0*GeV],[1.0*GeV,2.0*GeV]],__import__('os')]]", "is not a list"),
        ("upperLimits: [[[[1.0*GeV,2.0*GeV],[1.0*GeV]],3.0*pb], [[[1.0*GeV],[1.0*GeV]],3.0*pb]]", "lengths"),
        ("upperLimits: [[[[1.0*GeV,2.0*GeV],[1.0*GeV,2.0*GeV]],-3.0*pb]]", "not finite and positive"),
        ("txName: T\n", "no 'upperLimits'"),
    ],
)
def test_bad_maps_are_one_line_errors(tmp_path, body, message):
    path = tmp_path / "m.txt"
    path.write_text(body + "\n")
    with pytest.raises(RecastError, match=message) as err:
        read_smodels_map(path)
    assert "\n" not in str(err.value)


def test_units_are_converted(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("upperLimits: [[[[1.5*TeV,2.0E+01*GeV],[1.5*TeV,20*GeV]],3.0*fb]]\n")
    m = read_smodels_map(path)
    assert m.masses[0, 0].tolist() == [1500.0, 20.0] and m.observed_pb[0] == pytest.approx(0.003)


def test_crossings_and_distance_along_a_line():
    ours = Contour("mx", "my", (np.array([[700.0, 300.0], [790.0, 0.0]]),))
    theirs = Contour("mx", "my", (np.array([[150.0, 0.0], [400.0, 250.0], [740.0, 0.0]]),))
    assert crossings_along(theirs, {"my": 0}, "mx") == pytest.approx([150.0, 740.0])
    assert contour_distance_along(ours, theirs, {"my": 0}, "mx") == pytest.approx(50.0)
    # no crossing: None, not a number
    high = Contour("mx", "my", (np.array([[700.0, 300.0], [790.0, 100.0]]),))
    assert contour_distance_along(high, theirs, {"my": 0}, "mx") is None
    with pytest.raises(RecastError, match="plane"):
        crossings_along(ours, {"m_other": 0}, "mx")


def test_interpolated_contour_without_crossing_is_empty():
    c = interpolated_contour([0, 1, 0, 1], [0, 0, 1, 1], [1, 2, 3, 4], 10.0, names=("a", "b"))
    assert not c and c.lines == ()


def test_hepdata_contour_table_is_read_with_line_breaks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "independent_variables:\n- header: {name: x}\n  values: [{value: 1}, {value: 2}, {value: '-'}, {value: 3}, {value: 4}]\n"
        "dependent_variables:\n- header: {name: y}\n  values: [{value: 5}, {value: 6}, {value: '-'}, {value: 7}, {value: 8}]\n"
    )
    c = read_hepdata_contour(path, "mx", "my", "ATLAS")
    assert [line.tolist() for line in c.lines] == [[[1, 5], [2, 6]], [[3, 7], [4, 8]]]


def test_real_tchiwh_map_reproduces_the_published_reach():
    """ATLAS-SUSY-2019-08 (arXiv:1909.09226) excludes m(C1/N2) up to about 740 GeV at m(N1) = 0."""
    analysis = load_analysis("ATLAS-SUSY-2019-08", REPO / "config" / "analyses")
    out = official_contours(analysis.official_limits["TChiWH"], "m_C1N2", "m_N1")
    assert out.observed is not None and out.expected is None
    reach = max(crossings_along(out.observed, {"m_N1": 0}, "m_C1N2"))
    assert 720.0 < reach < 760.0
    # and the LSP reach of the paper's figure: about 250-280 GeV near m(C1/N2) = 600 GeV
    assert 230.0 < max(float(line[:, 1].max()) for line in out.observed.lines) < 300.0


def test_bundle_official_limits_refuse_bad_declarations(tmp_path):
    import shutil

    import yaml

    folder = tmp_path / "ATLAS-SUSY-2019-08"
    shutil.copytree(REPO / "config" / "analyses" / "ATLAS-SUSY-2019-08", folder)
    path = folder / "analysis.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["official_limits"]["TChiWH"]["cross_section"]["values"] = "nope"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match="'nope' is not an entry of 'sources'"):
        load_analysis("ATLAS-SUSY-2019-08", tmp_path)
    doc["official_limits"]["TChiWH"]["cross_section"]["values"] = "xsec_n2x1wino_pm"
    doc["official_limits"]["TChiWH"]["coordinates"]["m_extra"] = [0, 1]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match="same \\[branch, index\\]"):
        load_analysis("ATLAS-SUSY-2019-08", tmp_path)


def test_exclusion_plot_overlays_official_contours_with_energy_label(tmp_path, monkeypatch):
    from recastflow.report import plots

    seen = []
    original = plots.save_png_and_pdf

    def spy(fig, out, pdf=None):
        seen.append(
            {
                "texts": [t.get_text() for ax in fig.axes for t in ax.texts],
                "legend": [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()],
                "lines": [ln.get_xydata().tolist() for ln in fig.axes[0].get_lines()],
            }
        )
        original(fig, out, pdf)

    monkeypatch.setattr(plots, "save_png_and_pdf", spy)
    records = [
        {"point": f"p{x}_{y}", "values": {"mx": x, "my": y}, "status": "trusted", "cls_obs": c, "cls_exp": [c] * 5}
        for x, y, c in [(500, 0, 0.001), (900, 0, 0.5), (500, 400, 0.01), (900, 400, 0.9)]
    ]
    obs = Contour("mx", "my", (np.array([[600.0, 0.0], [650.0, 300.0]]),), "ATLAS official observed (from UL map)")
    exp = Contour("mx", "my", (np.array([[700.0, 0.0], [720.0, 300.0]]),), "ATLAS official expected (from UL map)")
    plots.plot_exclusion(
        records, "mx", "my", tmp_path / "e.png", title="t", xlabel="x", ylabel="y",
        official=(obs, exp), official_notes=("a note on the official contour",), sqrt_s_tev=13, luminosity_ifb=139,
    )
    fig = seen[-1]
    assert "ATLAS official observed (from UL map)" in fig["legend"]
    assert "ATLAS official expected (from UL map)" in fig["legend"]
    assert [[600.0, 0.0], [650.0, 300.0]] in fig["lines"] and [[700.0, 0.0], [720.0, 300.0]] in fig["lines"]
    assert any("139" in t and "13 TeV" in t for t in fig["texts"])
    assert any("a note on the official contour" in " ".join(t.split()) for t in fig["texts"])
    # without official contours: no such legend entry
    plots.plot_exclusion(records, "mx", "my", tmp_path / "f.png", title="t", xlabel="x", ylabel="y")
    assert not any("official" in t for t in seen[-1]["legend"])


def test_table_job_writes_the_comparison_to_its_json(tmp_path, capsys):
    """write_table on a TChiWH grid: the official comparison line in the log and the JSON."""
    import json

    from recastflow.analyses.bundle import load_grid
    from recastflow.stats.points import write_table

    analysis = load_analysis("ATLAS-SUSY-2019-08", REPO / "config" / "analyses")
    grid = load_grid("TChiWH_1Lbb", REPO / "config" / "signals")
    # CLs falling in m_C1N2 at m_N1 = 0: our observed contour crosses m_N1 = 0 at 800 GeV (log-linear in m)
    records = []
    for p in grid.points:
        mx, my = p.values["m_C1N2"], p.values["m_N1"]
        c = float(10 ** (np.log10(0.05) * (1100.0 - mx - 0.75 * my) / 300.0))
        records.append({"point": p.name, "values": p.values, "status": "trusted", "cls_obs": c, "cls_exp": [c] * 5})
    (tmp_path / "b.json").write_text(json.dumps({"format": "recastflow-limits-batch", "points": records}))
    lines: list[str] = []
    from recastflow.stats.limits import BATCH_FORMAT

    (tmp_path / "b.json").write_text(json.dumps({"format": BATCH_FORMAT, "points": records}))
    write_table(
        grid, analysis, [tmp_path / "b.json"], cl=0.95, json_out=tmp_path / "t.json", csv_out=tmp_path / "t.csv",
        plot=tmp_path / "e.png", plot_pdf=tmp_path / "e.pdf", log=lines.append,
    )
    doc = json.loads((tmp_path / "t.json").read_text())["official_comparison"]
    assert doc["available"] and doc["along"] == {"fixed": {"m_N1": 0.0}, "axis": "m_C1N2", "unit": "GeV"}
    assert doc["ours"] == pytest.approx(800.0, abs=0.5)
    assert 720.0 < doc["official"] < 760.0
    assert doc["distance"] == pytest.approx(doc["ours"] - doc["official"])
    line = next(x for x in lines if x.startswith("observed contour at m_N1 = 0"))
    assert f"ours {doc['ours']:.0f} GeV, ATLAS {doc['official']:.0f} GeV (distance {doc['distance']:.0f} GeV)" in line


@pytest.mark.parametrize(
    "analysis_id, model, x, y, at, low, high",
    [
        # arXiv:1911.06660 (stau_L + stau_R combined): stau masses from 120 to 390 GeV excluded for a massless LSP
        ("ATLAS-SUSY-2018-04", "TStauStau", "m_stau", "m_N1", 1.0, (110.0, 130.0), (375.0, 405.0)),
        # arXiv:1908.03122, m(N1) = 60 GeV: sbottom masses up to about 1.5 TeV excluded (NNLL-fast cross-section,
        # a whitespace grid in two masses read at the decoupled gluino mass)
        ("ATLAS-SUSY-2018-31", "T6bbHH", "m_sbottom", "m_neutralino2", 600.0, None, (1400.0, 1520.0)),
    ],
)
def test_real_maps_of_the_other_bundles(analysis_id, model, x, y, at, low, high):
    analysis = load_analysis(analysis_id, REPO / "config" / "analyses")
    out = official_contours(analysis.official_limits[model], x, y)
    hits = crossings_along(out.observed, {y: at}, x)
    assert high[0] < max(hits) < high[1]
    if low is not None:
        assert low[0] < min(hits) < low[1]


def test_every_committed_grid_and_spectrum_card_meets_the_official_plane_of_its_model():
    # an axis named differently from the official plane silently drops the official overlay and the contour
    # comparison (the TStauStau grids and spectrum card once said m_N1 where the bundle said m_neutralino1)
    import yaml

    from recastflow.analyses.bundle import load_grid
    from recastflow.report.official import official_for_grid

    analyses = REPO / "config" / "analyses"
    planes: dict[str, set[str]] = {}
    for folder in sorted(p for p in analyses.iterdir() if (p / "analysis.yaml").exists()):
        for model, ref in load_analysis(folder.name, analyses).official_limits.items():
            planes[model] = {c for c in ref.coordinates if c not in ref.fixed}
    assert {"TChiWH", "T6bbHH", "TStauStau"} <= set(planes)
    for card in sorted((REPO / "config" / "spectra").glob("*.yaml")):
        doc = yaml.safe_load(card.read_text())
        if doc["name"] in planes:
            assert planes[doc["name"]] <= set(doc["parameters"]), card.name
    overlaid = []
    for path in sorted((REPO / "config" / "signals").glob("*.yaml")):
        grid = load_grid(path.stem, REPO / "config" / "signals", analyses)
        if grid.model in planes:
            # a grid may plot another plane (a branching-ratio scan), but it names the model's masses as the bundle does
            assert planes[grid.model] <= set(grid.parameters), f"{path.name}: {sorted(grid.parameters)}"
            if grid.plot is not None and official_for_grid(grid, load_analysis(grid.analysis, analyses))[0]:
                overlaid.append(path.stem)
    assert {"TStauStau_validation", "staus_combined", "TChiWH_1Lbb_validation"} <= set(overlaid)
