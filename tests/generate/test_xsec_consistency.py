"""XSECTION blocks against the LHC SUSY Cross Section Working Group tables (recastflow.generate.xsec_check)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recastflow.core.errors import RecastError
from recastflow.generate.slha import read_slha
from recastflow.generate.spectrum import load_spectrum_card, obtain_tables
from recastflow.generate.xsec_check import (
    KNOWN_PROCESSES,
    TOLERANCE_NLO_NLL,
    check_slha_file,
    check_slha_xsections,
    matching_mass,
    state_of,
    table_value,
)

REPO = Path(__file__).resolve().parents[2]
TCHIWH = sorted((REPO / "config" / "signals" / "slha" / "TChiWH").glob("*.slha"))
SLHA_700 = REPO / "config" / "signals" / "slha" / "TChiWH" / "TChiWH_700_0.slha"
CARD = REPO / "config" / "spectra" / "TChiWH.yaml"

#: an XSECTION header line and the value line after it (as recastflow writes them)
XSEC = re.compile(r"^XSECTION\s+(\S+)\s+2212 2212 2 (-?\d+) (-?\d+)\n\s+\d+\s+(\d+)\s+\d+\s+\S+\s+\S+\s+\d+\s+(\S+)", re.M)


def with_masses(tmp_path: Path, m_c1n2: str, source: Path = SLHA_700, name: str = "edited.slha") -> Path:
    """A copy of an SLHA file with chi_2^0 and chi_1^+ moved to another mass (the XSECTION block left as it was)."""
    text = source.read_text()
    for pid in ("1000023", "1000024"):
        text, n = re.subn(rf"^(\s+{pid}\s+)\S+", rf"\g<1>{m_c1n2}", text, count=1, flags=re.M)
        assert n == 1
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_repository_tchiwh_files_pass() -> None:
    assert len(TCHIWH) >= 7
    for path in TCHIWH:
        comparisons = check_slha_file(path)
        # both chargino signs compared, both agree
        assert [c.status for c in comparisons] == ["agrees", "agrees"], (path, comparisons)
        for c in comparisons:
            assert c.table_pb is not None and abs(c.slha_pb - c.table_pb) <= 1e-8 * c.table_pb


def test_the_700_gev_block_used_at_650_gev_is_refused(tmp_path: Path) -> None:
    path = with_masses(tmp_path, "6.50000000E+02", name="TChiWH_650_from_700.slha")
    with pytest.raises(RecastError) as err:
        check_slha_file(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: XSECTION 13000 -> 1000023 1000024: ")
    assert "does not belong to this file's masses" in message
    assert "at m(1000023/1000024) = 650 GeV is 0.0100188" in message
    assert "it is the table's value at m = 700 GeV" in message
    assert "Fix:" in message
    # a 700 GeV file is accepted at its own masses: the refusal is about the mass, not the block
    assert [c.status for c in check_slha_file(SLHA_700)] == ["agrees", "agrees"]


def test_a_small_mass_change_inside_the_band_is_accepted_a_larger_one_refused(tmp_path: Path) -> None:
    # the 700 GeV value at 705 GeV: 3 % from the table, inside its 10 % uncertainty
    assert {c.status for c in check_slha_file(with_masses(tmp_path, "705", name="a.slha"))} == {"agrees"}
    # at 600 GeV the 700 GeV value is 51 % low
    with pytest.raises(RecastError, match="at m = 700 GeV"):
        check_slha_file(with_masses(tmp_path, "600", name="b.slha"))


def test_lo_values_are_skipped_and_nlo_values_compared(tmp_path: Path) -> None:
    text = with_masses(tmp_path, "650").read_text()
    lo = tmp_path / "lo.slha"
    lo.write_text(text.replace("  0  2  0  1.0  1.0  0 ", "  0  0  0  1.0  1.0  0 "))
    comparisons = check_slha_file(lo)
    assert [c.status for c in comparisons] == ["skipped", "skipped"]
    assert all("LO value" in c.reason for c in comparisons)
    nlo = tmp_path / "nlo.slha"
    nlo.write_text(text.replace("  0  2  0  1.0  1.0  0 ", "  0  1  0  1.0  1.0  0 "))
    with pytest.raises(RecastError, match=r"NLO cross-section 0\.00699008 pb does not belong"):
        check_slha_file(nlo)


def test_scale_variations_are_not_compared(tmp_path: Path) -> None:
    path = tmp_path / "kappa.slha"
    line = "  0  2  0  1.0  1.0  0   6.99008000E-03  resummino  LHCSUSYXSWG-2017-06-15\n"
    path.write_text(SLHA_700.read_text().replace(line, line + "  0  2  0  2.0  2.0  0   4.0E-03  resummino\n"))
    statuses = [(c.final, c.status) for c in check_slha_file(path)]
    assert statuses.count(((1000023, 1000024), "skipped")) == 1
    assert statuses.count(((1000023, 1000024), "agrees")) == 1


def test_the_wino_table_is_not_applied_to_higgsinos_nor_with_light_squarks(tmp_path: Path) -> None:
    text = with_masses(tmp_path, "650").read_text()
    # chi_2^0 made a higgsino (rows 2 and 3 of NMIX exchanged in content): the wino table does not apply
    higgsino = text.replace("  2  2   1.00000000E+00", "  2  2   0.00000000E+00").replace(
        "  2  3   0.00000000E+00", "  2  3   1.00000000E+00"
    )
    path = tmp_path / "higgsino.slha"
    path.write_text(higgsino)
    assert state_of(read_slha(path), 1000023) == "higgsino"
    comparisons = check_slha_file(path)
    assert [c.status for c in comparisons] == ["skipped", "skipped"]
    assert "the wino table does not apply (1000023 is higgsino)" in comparisons[0].reason
    # a light first-generation squark: t-channel exchange changes the cross-section, no comparison
    light = re.sub(r"^(\s+1000001\s+)\S+", r"\g<1>2.00000000E+03", text, count=1, flags=re.M)
    path = tmp_path / "light.slha"
    path.write_text(light)
    assert all("decoupled squarks" in c.reason for c in check_slha_file(path))


def test_a_non_degenerate_pair_is_not_compared(tmp_path: Path) -> None:
    text = re.sub(r"^(\s+1000024\s+)\S+", r"\g<1>6.00000000E+02", SLHA_700.read_text(), count=1, flags=re.M)
    path = tmp_path / "split.slha"
    path.write_text(text)
    assert all("mass-degenerate" in c.reason for c in check_slha_file(path))


def test_provider_agrees_with_the_repository_files_to_their_printed_precision() -> None:
    """The spectrum card's tables and xsec_check's tables give each file's XSECTION value, digit for digit."""
    card = load_spectrum_card(CARD)
    tables = {tuple(sorted(p.final_state)): obtain_tables(p) for p in card.processes}
    known = {k.final_state: k for k in KNOWN_PROCESSES if k.states == "wino"}
    checked = 0
    for path in TCHIWH:
        info = read_slha(path)
        mass = info.masses[1000023]
        for sqrt_s, a, b, order, printed in XSEC.findall(path.read_text()):
            final = tuple(sorted((int(a), int(b))))
            assert float(sqrt_s) == 13000.0 and int(order) == 2
            # 9 significant digits as printed (e.g. 6.99008000E-03)
            assert f"{tables[final].at(mass)[0]:.8E}" == printed, (path, final)
            assert f"{table_value(known[final], mass)[0]:.8E}" == printed, (path, final)
            checked += 1
    assert checked == 2 * len(TCHIWH)


def test_matching_mass_inverts_the_table() -> None:
    wino_p = KNOWN_PROCESSES[0]
    for mass in (150.0, 437.5, 650.0, 700.0, 1234.0):
        assert matching_mass(wino_p, table_value(wino_p, mass)[0]) == pytest.approx(mass, abs=1e-6)
    assert matching_mass(wino_p, 1e6) is None
    assert matching_mass(wino_p, 1e-12) is None


def test_tolerance_is_what_the_message_says(tmp_path: Path) -> None:
    value, unc, _ = table_value(KNOWN_PROCESSES[0], 700.0)
    edge = value + unc + TOLERANCE_NLO_NLL * value
    line = "  0  2  0  1.0  1.0  0   6.99008000E-03"
    inside = tmp_path / "inside.slha"
    inside.write_text(SLHA_700.read_text().replace(line, f"  0  2  0  1.0  1.0  0 {edge * 0.999:16.8E}"))
    assert check_slha_file(inside)[0].status == "agrees"
    outside = tmp_path / "outside.slha"
    outside.write_text(SLHA_700.read_text().replace(line, f"  0  2  0  1.0  1.0  0 {edge * 1.001:16.8E}"))
    with pytest.raises(RecastError, match=r"plus 5%"):
        check_slha_file(outside)


def test_check_slha_xsections_takes_a_read_file() -> None:
    assert len(check_slha_xsections(read_slha(SLHA_700))) == 2


def test_validate_refuses_a_grid_point_with_another_mass_s_xsection(tmp_path: Path) -> None:
    """The front-end preflight (recastflow validate, the workflow's start) refuses the file before any event."""
    from test_frontend_workflow import front_end_project, recastflow

    project = front_end_project(tmp_path, n_events=10, chunks=1)
    slha = project / "config" / "signals" / "slha" / "TChiWH" / "TChiWH_700_0.slha"
    with_masses(slha.parent, "6.50000000E+02", source=slha, name=slha.name)
    proc = recastflow(project, "validate")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "does not belong" in line]
    assert len(lines) == 1 and "TChiWH_700_0.slha: XSECTION 13000 -> 1000023 1000024" in lines[0], proc.stderr
    assert "m = 700 GeV" in lines[0]
    assert not (project / "results").exists()


def test_slepton_pairs_are_compared_with_the_slepton_tables(tmp_path: Path) -> None:
    ll = next(k for k in KNOWN_PROCESSES if k.final_state == (-1000011, 1000011))
    at_300 = table_value(ll, 300.0)[0]
    text = re.sub(r"^(\s+1000011\s+)\S+", r"\g<1>3.00000000E+02", SLHA_700.read_text(), count=1, flags=re.M)

    def with_block(value: float, name: str) -> Path:
        path = tmp_path / name
        block = f"XSECTION   1.30000000E+04  2212 2212 2 1000011 -1000011\n  0  2  0  1.0  1.0  0 {value:16.8E}  resummino\n"
        path.write_text(text + block)
        return path

    assert [c.status for c in check_slha_file(with_block(at_300, "ok.slha"))][-1] == "agrees"
    # the 250 GeV value at 300 GeV: refused, naming 250 GeV
    with pytest.raises(RecastError, match=r"~e_L pair value at m\(1000011\) = 300 GeV .* at m = 250 GeV"):
        check_slha_file(with_block(table_value(ll, 250.0)[0], "bad.slha"))


def test_recastflow_run_s_spectrum_check_refuses_it_too(tmp_path: Path) -> None:
    """checks.preflight.check_model_spectrum (recastflow run <model.slha>) runs the same comparison."""
    from recastflow.checks import preflight

    check = getattr(preflight, "check_model_spectrum", None)
    if check is None:
        pytest.skip("checks.preflight.check_model_spectrum is not there")
    process = REPO / "config" / "processes" / "TChiWH.yaml"
    check(SLHA_700, process)
    with pytest.raises(RecastError, match=r"XSECTION 13000 -> 1000023 1000024: .* at m = 700 GeV"):
        check(with_masses(tmp_path, "6.50000000E+02"), process)
