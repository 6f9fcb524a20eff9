"""HEPData submission of a grid's results: structure, validity (hepdata_validator), contours, determinism."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.report.contours import Contour
from recastflow.report.hepdata import limits_table, write_submission
from recastflow.report.plots import exclusion_contours

PARAMS = {"m_C1N2": {"label": "m(χ̃±₁/χ̃⁰₂) [GeV]", "unit": "GeV"}, "m_N1": {"label": "m(χ̃⁰₁) [GeV]", "unit": "GeV"}}


def _records() -> list[dict]:
    """A 4 x 3 grid with log CLs linear in m_C1N2 + m_N1: excluded (CLs < 0.05) where the sum is below 800."""
    out = []
    for mx in (500, 700, 900, 1100):
        for my in (0, 200, 400):
            # log CLs linear in mx + my, 0.05 at 800 and 1 at 1500 (the largest sum): no capping needed
            cls = float(10 ** (np.log10(0.05) * (1500 - mx - my) / 700.0))
            exp = [min(cls * f, 0.99) for f in (0.3, 0.6, 1.0, 1.5, 2.2)]
            out.append(
                {
                    "point": f"P_{mx}_{my}",
                    "values": {"m_C1N2": mx, "m_N1": my},
                    "status": "trusted" if (mx, my) != (1100, 400) else "flagged",
                    "issues": [] if (mx, my) != (1100, 400) else ["fit stopped short"],
                    "cls_obs": cls,
                    "cls_exp": exp,
                    "xsec_pb": 0.01,
                    "mu_ul_obs": 1.2 if mx == 700 else None,
                    "mu_ul_exp": [0.5, 0.7, 1.0, 1.4, 1.9] if mx == 700 else None,
                }
            )
    return out


def _grid_and_analysis():
    grid = SimpleNamespace(
        name="TOY", workspace="Wh", model="TChiWH", plot=("m_C1N2", "m_N1"), parameters=PARAMS, points=()
    )
    analysis = SimpleNamespace(id="ATLAS-SUSY-2019-08", title="A search", sqrt_s_tev=13, luminosity_ifb=139)
    return grid, analysis


def _write(folder: Path, records, contours=None):
    grid, analysis = _grid_and_analysis()
    if contours is None:
        contours = exclusion_contours(records, "m_C1N2", "m_N1", level=0.05)
    files = {k: folder / f"{k}.yaml" for k in ("submission", "limits", "contour_obs", "contour_exp")}
    write_submission(
        records,
        grid,
        analysis,
        cl=0.95,
        submission=files["submission"],
        limits=files["limits"],
        contour_obs=files["contour_obs"],
        contour_exp=files["contour_exp"],
        contours=contours,
    )
    return files


def test_submission_is_valid_hepdata(tmp_path):
    validator = pytest.importorskip("hepdata_validator.full_submission_validator")
    files = _write(tmp_path, _records())
    v = validator.FullSubmissionValidator(autoload_remote_schemas=False)
    ok = v.validate(directory=str(tmp_path))
    messages = [m.message for msgs in v.get_messages().values() for m in msgs]
    assert ok, messages
    # a broken data file is caught by the same validator: the check can fail
    doc = yaml.safe_load(files["limits"].read_text())
    doc["dependent_variables"][0]["values"].pop()
    doc["dependent_variables"][0]["values"].append({"value": None})
    files["limits"].write_text(yaml.safe_dump(doc))
    v = validator.FullSubmissionValidator(autoload_remote_schemas=False)
    assert not v.validate(directory=str(tmp_path))


def test_limits_table_has_one_row_per_point_with_qualifiers(tmp_path):
    records = _records()
    grid, analysis = _grid_and_analysis()
    table = limits_table(records, grid, analysis, cl=0.95)
    ind, dep = table["independent_variables"], table["dependent_variables"]
    assert [v["header"] for v in ind] == [{"name": "m(χ̃±₁/χ̃⁰₂)", "units": "GEV"}, {"name": "m(χ̃⁰₁)", "units": "GEV"}]
    names = [d["header"]["name"] for d in dep]
    assert names[:3] == ["CLs observed", "CLs expected", "Signal cross-section"]
    assert "Observed 95% CL upper limit on mu" in names and "Status" in names and "Flags" in names
    for d in dep:
        assert len(d["values"]) == len(records)
        quals = {q["name"]: q["value"] for q in d["qualifiers"]}
        assert quals["SQRT(S)"] == 13000.0 and quals["LUMINOSITY"] == 139.0 and quals["ANALYSIS"] == "ATLAS-SUSY-2019-08"
    exp = dep[1]["values"][0]
    med = records[0]["cls_exp"][2]
    assert exp["value"] == pytest.approx(med, rel=1e-5)
    assert exp["errors"][0]["asymerror"]["plus"] == pytest.approx(records[0]["cls_exp"][3] - med, rel=1e-5)
    mu = dep[names.index("Observed 95% CL upper limit on mu")]["values"]
    assert [m["value"] for m in mu].count("-") == 9  # computed for the three points at 700 GeV only
    flags = dep[names.index("Flags")]["values"]
    assert flags[-1]["value"] == "fit stopped short" and flags[0]["value"] == "-"


def test_contour_table_is_the_plotted_contour(tmp_path):
    records = _records()
    contours = exclusion_contours(records, "m_C1N2", "m_N1", level=0.05)
    assert contours["observed"] is not None
    files = _write(tmp_path, records, contours)
    doc = yaml.safe_load(files["contour_obs"].read_text())
    xs = [v["value"] for v in doc["independent_variables"][0]["values"]]
    ys = [v["value"] for v in doc["dependent_variables"][0]["values"]]
    got = np.array([(x, y) for x, y in zip(xs, ys) if x != "-"], dtype=float)
    assert np.allclose(got, np.array(contours["observed"].points()), rtol=1e-5)
    # the synthetic CLs is log-linear in m_C1N2 + m_N1, so the interpolated CLs = 0.05 line is m_C1N2 + m_N1 = 800
    # wherever the two trusted triangles that carry it are exact (all but the flagged corner)
    assert np.allclose(got[:, 0] + got[:, 1], 800.0, atol=1.0)


def test_two_lines_are_separated_and_a_missing_contour_is_an_empty_table(tmp_path):
    two = Contour("m_C1N2", "m_N1", (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0], [7.0, 8.0]])))
    files = _write(tmp_path, _records(), {"observed": two, "expected": None})
    obs = yaml.safe_load(files["contour_obs"].read_text())
    assert [v["value"] for v in obs["independent_variables"][0]["values"]] == [1.0, 3.0, "-", 5.0, 7.0]
    exp = yaml.safe_load(files["contour_exp"].read_text())
    assert exp["independent_variables"][0]["values"] == [] and exp["dependent_variables"][0]["values"] == []
    sub = list(yaml.safe_load_all(files["submission"].read_text()))
    assert [d.get("data_file") for d in sub[1:]] == ["limits.yaml", "contour_obs.yaml", "contour_exp.yaml"]
    assert "No contour" in sub[3]["description"]


def test_output_is_byte_identical_and_data_files_must_sit_with_the_submission(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    fa, fb = _write(a, _records()), _write(b, _records())
    assert all(fa[k].read_bytes() == fb[k].read_bytes() for k in fa)
    assert "&id" not in fa["limits"].read_text()  # no YAML anchors: every table spelled out
    grid, analysis = _grid_and_analysis()
    with pytest.raises(RecastError, match="must be in the folder"):
        write_submission(
            _records(), grid, analysis, cl=0.95, submission=a / "submission.yaml", limits=b / "limits.yaml",
            contour_obs=a / "o.yaml", contour_exp=a / "e.yaml", contours={},
        )


def test_units_come_from_the_label_when_the_grid_gives_none():
    grid, analysis = _grid_and_analysis()
    grid.parameters = {k: {"label": v["label"]} for k, v in PARAMS.items()}  # as `recastflow run` writes grids
    table = limits_table(_records(), grid, analysis, cl=0.95)
    assert [v["header"].get("units") for v in table["independent_variables"]] == ["GEV", "GEV"]
