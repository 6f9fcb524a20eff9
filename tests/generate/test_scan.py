"""Scans: points from axes and constraints, one complete SLHA spectrum each (recastflow.generate.scan)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.generate.scan import (
    check_xsec_source,
    load_scan,
    main,
    point_name,
    write_point_slha,
    write_scan_slhas,
)
from recastflow.generate.slha import SPARTICLES, read_slha
from recastflow.generate.spectrum import load_spectrum_card, obtain_tables
from recastflow.generate.xsec_check import check_slha_file

REPO = Path(__file__).resolve().parents[2]
SCAN = REPO / "config" / "scans" / "TChiWH_1Lbb.yaml"
CARD = REPO / "config" / "spectra" / "TChiWH.yaml"
SIGNALS = REPO / "config" / "signals" / "slha" / "TChiWH"
SLHA_700 = SIGNALS / "TChiWH_700_0.slha"


def scan_file(tmp_path: Path, doc: dict, name: str = "scan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def model_scan(tmp_path: Path, **changes: object) -> Path:
    """A small scan of the TChiWH card (given as an absolute path: the scan file sits in tmp_path)."""
    doc = {
        "name": "T",
        "model": str(CARD),
        "axes": {"m_C1N2": {"values": [300, 650]}, "m_N1": {"range": [0, 100], "step": 50}},
        "constraints": ["m_N1 < m_C1N2 - 130"],
        "cross_section": "tables",
    }
    doc.update(changes)
    return scan_file(tmp_path, doc)


def template(tmp_path: Path, *, drop: str | None = None, xsection: bool = True) -> Path:
    """The 700 GeV TChiWH spectrum as a template: chi_1^+, chi_2^0 at {m_C1N2}, chi_1^0 at {m_N1}."""
    text = SLHA_700.read_text()
    text = re.sub(r"^(\s+100002[34]\s+)\S+", r"\g<1>{m_C1N2}", text, flags=re.M)
    text = re.sub(r"^(\s+1000022\s+)\S+", r"\g<1>{m_N1}", text, flags=re.M)
    lines = text.splitlines()
    if drop == "MODSEL":
        lines = [line for line in lines if not line.startswith("BLOCK MODSEL") and "# general MSSM" not in line]
    elif drop is not None:
        lines = [line for line in lines if not line.strip().startswith(drop + " ")]
    if not xsection:
        lines = [line for line in lines if not line.startswith("XSECTION") and "LHCSUSYXSWG" not in line]
    path = tmp_path / "template.slha"
    path.write_text("\n".join(lines) + "\n")
    return path


def template_scan(tmp_path: Path, tpl: Path, **changes: object) -> Path:
    doc = {
        "name": "W",
        "template": tpl.name,
        "axes": {"m_C1N2": {"values": [650, 700]}, "m_N1": {"values": [0]}},
        "cross_section": "tables",
        "final_states": [[1000023, 1000024], [1000023, -1000024]],
    }
    doc.update(changes)
    for key in [k for k, v in doc.items() if v is None]:
        doc.pop(key)
    return scan_file(tmp_path, doc)


# -- the repository's scan ---------------------------------------------------------------------------------
def test_the_tchiwh_1lbb_scan_has_at_least_30_points_and_writes_every_spectrum(tmp_path: Path) -> None:
    scan = load_scan(SCAN)
    assert len(scan.points) >= 30
    assert scan.cross_section == "tables" and scan.process_xsec_source == "slha"
    assert scan.model == CARD.resolve() and scan.template is None and scan.model_name == "TChiWH"
    assert scan.axes == ("m_C1N2", "m_N1") and scan.axis_label("m_N1") == "m(χ̃⁰₁) [GeV]"
    for p in scan.points:
        # the constraints hold, the name is the values
        assert p.values["m_N1"] <= p.values["m_C1N2"] - 130
        assert p.name == f"TChiWH_{p.values['m_C1N2']:g}_{p.values['m_N1']:g}"
    # points on both sides of ATLAS's 740 GeV edge along m_N1 = 0, every 25 GeV
    on_axis = sorted(p.values["m_C1N2"] for p in scan.points if p.values["m_N1"] == 0)
    assert {650, 675, 700, 725, 750, 775, 800} <= set(on_axis)
    written = write_scan_slhas(scan, tmp_path / "slha")
    assert list(written) == [p.name for p in scan.points]
    for name, path in written.items():
        assert path == tmp_path / "slha" / f"{name}.slha"
        assert [c.status for c in check_slha_file(path)] == ["agrees", "agrees"]
    # the points the repository already has: the same file as the spectrum card writes, after the scan's header
    shared = [p.name for p in scan.points if (SIGNALS / f"{p.name}.slha").is_file()]
    assert len(shared) >= 3
    for name in shared:
        lines = written[name].read_text().splitlines()
        assert lines[0].startswith(f"# Point {name} (") and "TChiWH_1Lbb.yaml" in lines[1]
        assert lines[2:] == (SIGNALS / f"{name}.slha").read_text().splitlines()


def test_point_names_are_file_safe() -> None:
    assert point_name("TChiWH", [650.0, 50.0]) == "TChiWH_650_50"
    assert point_name("X", [12.5, 0.0]) == "X_12p5_0"
    assert point_name("X", [-5.0, 1e-05]) == "X_m5_0p00001"
    assert point_name("X", [1100.0]) == "X_1100"


def test_ranges_are_inclusive_without_float_drift(tmp_path: Path) -> None:
    scan = load_scan(
        template_scan(
            tmp_path,
            template(tmp_path),
            axes={"m_C1N2": {"values": [700]}, "m_N1": {"range": [0, 0.3], "step": 0.1}},
            constraints=[],
        )
    )
    assert scan.axis_values["m_N1"] == (0.0, 0.1, 0.2, 0.3)
    assert [p.name for p in scan.points] == ["W_700_0", "W_700_0p1", "W_700_0p2", "W_700_0p3"]
    scan = load_scan(model_scan(tmp_path, axes={"m_C1N2": {"range": [600, 700], "step": 40}, "m_N1": {"values": [0]}}))
    assert scan.axis_values["m_C1N2"] == (600.0, 640.0, 680.0)  # 700 is not on the grid


def test_constraints_use_and_or_not_abs_min_max(tmp_path: Path) -> None:
    constraints = ["not (m_N1 > 60) and abs(-m_N1) <= max(m_N1, 0) or min(m_C1N2, 1) == 2", "m_C1N2 / 2 - 1 * 0 > m_N1"]
    scan = load_scan(model_scan(tmp_path, constraints=constraints))
    assert [p.name for p in scan.points] == ["T_300_0", "T_300_50", "T_650_0", "T_650_50"]


# -- bad scans ---------------------------------------------------------------------------------------------
def one_line(err: pytest.ExceptionInfo[RecastError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "constraint, expected",
    [
        ("m_X < m_C1N2", "unknown name 'm_X'; the axes are m_C1N2, m_N1"),
        ("__import__('os').system('true')", "the call \"__import__('os').system\" is not allowed"),
        ("__import__('os')", "the call '__import__' is not allowed"),
        ("m_N1.__class__ == 0", "Attribute ('m_N1.__class__') is not allowed"),
        ("m_N1 ** 2 < 4", "Pow ('Pow') is not allowed"),
        ("[m_N1][0] < 4", "Subscript"),
        ("m_N1 < 'a'", "the constant 'a' is not allowed"),
        ("(lambda: 1)() < 2", "is not allowed"),
        ("m_N1 in [1, 2]", "is not allowed"),
        ("m_N1 is 2", "Is ('Is') is not allowed"),
        ("m_N1 < True", "the constant True is not allowed"),
        ("m_N1", "is a number, not a condition"),
        ("m_N1 < ", "is not a condition (invalid syntax)"),
        ("abs(m_N1, 2) < 1", "abs takes 1 argument(s)"),
        ("max(m_N1) < 1", "max takes at least 2 argument(s)"),
        ("min(*[1, 2]) < 1", "Starred ('*[1, 2]') is not allowed"),
        ("min(m_N1, key=abs) < 1", "keyword ('keyword') is not allowed"),
        ("(m_N1 < 1) + 1 > 0", "used as a number is not allowed"),
    ],
)
def test_bad_constraints_are_refused_naming_file_and_field(tmp_path: Path, constraint: str, expected: str) -> None:
    path = model_scan(tmp_path, constraints=["m_N1 >= 0", constraint])
    with pytest.raises(RecastError) as err:
        load_scan(path)
    message = one_line(err)
    assert message.startswith(f"{path}: constraints[1]: ")
    assert expected in message


def test_division_by_zero_in_a_constraint_names_the_point(tmp_path: Path) -> None:
    with pytest.raises(RecastError, match=r"division by zero in 'm_C1N2 / m_N1' at m_C1N2=300, m_N1=0"):
        load_scan(model_scan(tmp_path, constraints=["m_C1N2 / m_N1 > 1"]))


def test_constraints_that_remove_every_point_are_refused(tmp_path: Path) -> None:
    path = model_scan(tmp_path, constraints=["m_N1 > m_C1N2"])
    with pytest.raises(RecastError) as err:
        load_scan(path)
    assert one_line(err) == (
        f"{path}: constraints: the constraints remove every one of the 6 points; loosen them or change the axes"
    )


def test_a_mass_outside_the_cross_section_table_is_refused_never_extrapolated(tmp_path: Path) -> None:
    # a card without the parameter bounds, so that the table's range is what refuses the point
    card = yaml.safe_load(CARD.read_text())
    card["parameters"]["m_C1N2"].pop("maximum")
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    path = model_scan(tmp_path, model="card.yaml", axes={"m_C1N2": {"values": [1900, 2100]}, "m_N1": {"values": [0]}})
    with pytest.raises(RecastError) as err:
        load_scan(path)
    message = one_line(err)
    assert message.startswith(f"{path}: cross_section (model card.yaml, cross_sections.processes[0]): point T_2100_0: ")
    assert "m_C1N2 = 2100 GeV: mass 2100 GeV is outside the table's range 100-2000 GeV" in message
    assert "never extrapolated" in message
    # the same point from a template with the tables
    tpl = template(tmp_path)
    path = template_scan(tmp_path, tpl, axes={"m_C1N2": {"values": [2100]}, "m_N1": {"values": [0]}})
    with pytest.raises(RecastError) as err:
        load_scan(path)
    message = one_line(err)
    assert message.startswith(f"{path}: point W_2100_0: the pair [1000023, 1000024] at 2100 GeV is outside the range")
    assert "never extrapolated" in message


def test_the_card_s_bounds_and_closed_decays_are_refused_naming_the_point(tmp_path: Path) -> None:
    path = model_scan(tmp_path, constraints=[], axes={"m_C1N2": {"values": [300]}, "m_N1": {"values": [0, 200]}})
    with pytest.raises(RecastError) as err:
        load_scan(path)
    message = one_line(err)
    # (300, 0) is fine, (300, 200) cannot decay to h chi_1^0: the refused point is named
    assert message.startswith(f"{path}: point T_300_200 (decays[1].channels[0]): ")
    assert "cannot decay to 25 + 1000022" in message


def test_template_without_modsel_or_a_sparticle_is_refused_naming_the_template(tmp_path: Path) -> None:
    tpl = template(tmp_path, drop="MODSEL")
    with pytest.raises(RecastError) as err:
        load_scan(template_scan(tmp_path, tpl))
    message = one_line(err)
    assert message.startswith(f"{tpl.resolve()}: point W_650_0 (BLOCK MODSEL): no BLOCK MODSEL")
    tpl = template(tmp_path, drop="1000005")
    with pytest.raises(RecastError) as err:
        load_scan(template_scan(tmp_path, tpl))
    message = one_line(err)
    assert message.startswith(f"{tpl.resolve()}: point W_650_0 (BLOCK MASS): BLOCK MASS lacks PDG id(s) 1000005")


def test_template_decays_are_checked_per_point(tmp_path: Path) -> None:
    tpl = template(tmp_path)
    path = template_scan(tmp_path, tpl, axes={"m_C1N2": {"values": [650]}, "m_N1": {"values": [0, 700]}})
    with pytest.raises(RecastError) as err:
        load_scan(path)
    message = one_line(err)
    assert message.startswith(f"{tpl.resolve()}: point W_650_700 (DECAY 1000023): impossible spectrum")


def test_template_placeholders_must_be_axes_and_every_axis_used(tmp_path: Path) -> None:
    tpl = template(tmp_path)
    tpl.write_text(tpl.read_text().replace("{m_N1}", "{m_LSP}"))
    with pytest.raises(RecastError, match=r"placeholders: line \d+: placeholder \{m_LSP\} is not an axis"):
        load_scan(template_scan(tmp_path, tpl))
    tpl.write_text(tpl.read_text().replace("{m_LSP}", "0.0"))
    with pytest.raises(RecastError, match=r"axes: the template has no placeholder for axis/axes m_N1"):
        load_scan(template_scan(tmp_path, tpl))
    tpl.write_text(tpl.read_text().replace("BLOCK MASS", "BLOCK MASS {"))
    with pytest.raises(RecastError, match="an unmatched brace"):
        load_scan(template_scan(tmp_path, tpl, axes={"m_C1N2": {"values": [650]}}))


@pytest.mark.parametrize(
    "doc, expected",
    [
        ({"model": "card.yaml", "template": "t.slha"}, "give either 'model' (a spectrum card) or 'template'"),
        ({"model": "nowhere.yaml"}, "model: 'nowhere.yaml' is not a file"),
        ({"axes": {"m_N1": {"values": [0]}, "m_C1N2": {"range": [1, 2]}}}, "axes.m_C1N2.step: a 'range' needs a 'step'"),
        ({"axes": {"m_N1": {"values": [0, 0]}}}, "axes.m_N1.values: a value is given twice"),
        ({"axes": {"m_N1": {"range": [5, 1], "step": 1}}}, "is empty: give [lo, hi] with lo <= hi"),
        ({"axes": {"m_N1": {"values": [0], "range": [0, 1], "step": 1}}}, "give either 'values' or 'range'"),
        ({"axes": {"m_N1": {"range": [0, 1e9], "step": 1}}}, "1000000001 values; use a larger step"),
        ({"cross_section": "nlo"}, "'nlo' is not allowed; choose one of 'tables', 'slha', 'pythia-lo'"),
        ({"cross_section": "slha"}, "a spectrum card writes its XSECTION from the working group's tables"),
        ({"final_states": [[1000023, 1000024]]}, "final_states: only used with a template"),
        ({"axes": {"m_N1": {"values": [0]}, "m_X": {"values": [0]}}}, "must be the card's parameters"),
    ],
)
def test_bad_scan_files_are_refused(tmp_path: Path, doc: dict, expected: str) -> None:
    base = {
        "name": "T",
        "model": str(CARD),
        "axes": {"m_C1N2": {"values": [700]}, "m_N1": {"values": [0]}},
        "cross_section": "tables",
    }
    if "template" in doc:
        base["model"] = doc.pop("model")
    base.update(doc)
    path = scan_file(tmp_path, base)
    with pytest.raises(RecastError) as err:
        load_scan(path)
    message = one_line(err)
    assert message.startswith(f"{path}: ") and expected in message


# -- templates and cross-section sources ---------------------------------------------------------------------------
def test_template_with_tables_writes_the_cards_cross_sections(tmp_path: Path) -> None:
    scan = load_scan(template_scan(tmp_path, template(tmp_path)))
    assert scan.template == (tmp_path / "template.slha").resolve() and scan.model is None
    assert scan.model_name == "W" and scan.process_xsec_source == "slha"
    out = write_point_slha(scan, scan.point("W_650_0"), tmp_path / "out" / "p.slha")
    info = read_slha(out)
    assert info.mass(1000023) == 650.0 and info.mass(1000024) == 650.0 and info.mass(1000022) == 0.0
    assert all(pid in info.masses for pid in SPARTICLES)
    # one XSECTION per pair (the template's 700 GeV blocks were replaced), equal to the spectrum card's values
    card = load_spectrum_card(CARD)
    expected = {tuple(sorted(p.final_state)): obtain_tables(p).at(650.0)[0] for p in card.processes}
    got = {tuple(sorted(x.final)): x.value_pb for x in info.xsections}
    assert len(info.xsections) == 2 and got == pytest.approx(expected, rel=1e-8)
    assert [c.status for c in check_slha_file(out)] == ["agrees", "agrees"]
    assert not (tmp_path / "out" / "p.slha.tmp").exists()


def test_template_with_slha_cross_section_is_accepted_only_at_its_own_masses(tmp_path: Path) -> None:
    tpl = template(tmp_path)
    ok = load_scan(template_scan(tmp_path, tpl, cross_section="slha", final_states=None, axes={
        "m_C1N2": {"values": [700]}, "m_N1": {"values": [0, 100]}}))
    out = write_point_slha(ok, ok.points[0], tmp_path / "700.slha")
    assert {tuple(sorted(x.final)): x.value_pb for x in read_slha(out).xsections}[(1000023, 1000024)] == 6.99008e-03
    doc = yaml.safe_load((tmp_path / "scan.yaml").read_text())
    doc["axes"]["m_C1N2"]["values"] = [650, 700]
    path = scan_file(tmp_path, doc)
    with pytest.raises(RecastError) as err:
        load_scan(path)
    message = one_line(err)
    assert message.startswith(f"{tpl.resolve()}: point W_650_0 (XSECTION 13000 -> 1000023 1000024): ")
    assert "it is the table's value at m = 700 GeV" in message
    # a template without XSECTION cannot give the cross-section
    tpl = template(tmp_path, xsection=False)
    with pytest.raises(RecastError, match="the template has no XSECTION block; use cross_section 'tables' or 'pythia-lo'"):
        load_scan(path)


def test_pythia_lo_writes_no_xsection_and_needs_a_generator_card(tmp_path: Path) -> None:
    scan = load_scan(model_scan(tmp_path, cross_section="pythia-lo"))
    assert scan.process_xsec_source == "generator"
    out = write_point_slha(scan, scan.points[0], tmp_path / "lo.slha")
    text = out.read_text()
    assert "\nXSECTION" not in text and "xsec.source: generator" in text
    assert read_slha(out).xsections == ()
    check_xsec_source(scan, "generator", card_path="p.yaml")
    with pytest.raises(RecastError) as err:
        check_xsec_source(scan, "slha", card_path="config/processes/TChiWH.yaml")
    assert one_line(err) == (
        "config/processes/TChiWH.yaml: xsec.source: xsec.source is 'slha', but the scan scan.yaml has "
        "cross_section 'pythia-lo', which needs xsec.source: generator"
    )
    with pytest.raises(RecastError, match=r"needs xsec\.source: slha"):
        check_xsec_source(load_scan(model_scan(tmp_path)), "generator", card_path="p.yaml")
    # a template's XSECTION blocks are dropped too
    tpl_scan = load_scan(template_scan(tmp_path, template(tmp_path), cross_section="pythia-lo", final_states=None))
    out = write_point_slha(tpl_scan, tpl_scan.points[0], tmp_path / "tlo.slha")
    assert read_slha(out).xsections == () and "LHCSUSYXSWG" not in out.read_text()


def test_template_tables_refuse_a_pair_without_table_or_with_other_states(tmp_path: Path) -> None:
    tpl = template(tmp_path)
    with pytest.raises(RecastError, match=r"no working-group table recastflow reads for the pair \[-1000006, 1000006\]"):
        load_scan(template_scan(tmp_path, tpl, final_states=[[1000006, -1000006]]))
    with pytest.raises(RecastError, match="needs 'final_states'"):
        load_scan(template_scan(tmp_path, tpl, final_states=None))
    # chi_1^+ chi_1^- of the wino table applies (pure wino chargino); chi_1^0 chi_2^0 is a higgsino table: refused
    with pytest.raises(RecastError, match=r"no working-group table applies to the pair \[1000022, 1000023\]"):
        load_scan(template_scan(tmp_path, tpl, final_states=[[1000022, 1000023]]))


# -- command line --------------------------------------------------------------------------------------------------
def test_command_line_lists_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = model_scan(tmp_path)
    assert main([str(path), "--list"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "T_300_0 m_C1N2=300 m_N1=0",
        "T_300_50 m_C1N2=300 m_N1=50",
        "T_300_100 m_C1N2=300 m_N1=100",
        "T_650_0 m_C1N2=650 m_N1=0",
        "T_650_50 m_C1N2=650 m_N1=50",
        "T_650_100 m_C1N2=650 m_N1=100",
    ]
    assert main([str(path), "--write-slha", str(tmp_path / "slha")]) == 0
    assert sorted(p.name for p in (tmp_path / "slha").iterdir()) == sorted(
        f"{line.split()[0]}.slha" for line in out.out.splitlines()
    )
    bad = model_scan(tmp_path, constraints=["m_N1 > 1000"])
    assert main([str(bad), "--list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("recastflow: ") and "remove every one" in err
