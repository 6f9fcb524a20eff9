"""SLHA reading and checks (recastflow.generate.slha)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recastflow.core.errors import RecastError
from recastflow.generate.slha import SPARTICLES, read_slha, slha_xsec_pb

SLHA = Path(__file__).parent.parent / "data" / "TChiWH_700_0_700_0.slha"
# the file's NLO+NLL values: the working group's C1+N2 table and its C1+-N2 table minus C1+N2 at 700 GeV
# (6.99008 fb; 9.51032 - 6.99008 = 2.52024 fb), as config/spectra/TChiWH.yaml writes them
C1P_N2, C1M_N2 = 6.99008000e-03, 2.52024000e-03


def variant(tmp_path: Path, old: str, new: str) -> Path:
    """Copy the test SLHA file with one piece of text replaced."""
    text = SLHA.read_text()
    assert old in text
    out = tmp_path / "variant.slha"
    out.write_text(text.replace(old, new))
    return out


def test_read_valid_file() -> None:
    info = read_slha(SLHA)
    assert info.path == str(SLHA)
    assert info.mass(1000024) == 700.0 and info.mass(-1000024) == 700.0
    assert info.mass(1000022) == 0.0
    assert info.decays == (1000023, 1000024)
    assert {x.final for x in info.xsections} == {(1000023, 1000024), (-1000024, 1000023)}
    assert all(x.sqrt_s_gev == 13000.0 and x.qcd_order == 2 and x.initial == (2212, 2212) for x in info.xsections)
    assert all(pid in info.masses for pid in SPARTICLES)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecastError, match="SLHA file not found") as err:
        read_slha(tmp_path / "nope.slha")
    assert err.value.path == str(tmp_path / "nope.slha")


def test_not_slha(tmp_path: Path) -> None:
    bad = tmp_path / "bad.slha"
    bad.write_text("DECAY abc 0.1\n")
    with pytest.raises(RecastError, match="not a valid SLHA file") as err:
        read_slha(bad)
    assert err.value.path == str(bad)


def test_mass_not_a_number(tmp_path: Path) -> None:
    path = variant(tmp_path, "   1000023   7.00000000E+02   # ~chi_20", "   1000023     abc   # ~chi_20")
    with pytest.raises(RecastError, match="entry 1000023 has mass 'abc', not a number") as err:
        read_slha(path)
    assert err.value.field == "BLOCK MASS"


def test_missing_modsel(tmp_path: Path) -> None:
    path = variant(tmp_path, "BLOCK MODSEL  # Model selection\n     1     0   #", "#")
    with pytest.raises(RecastError, match="no BLOCK MODSEL") as err:
        read_slha(path)
    assert err.value.field == "BLOCK MODSEL" and err.value.path == str(path)


def test_missing_sparticle_mass(tmp_path: Path) -> None:
    path = variant(tmp_path, "   2000001   1.00000000E+05   # ~d_R (decoupled)\n", "")
    with pytest.raises(RecastError, match=r"lacks PDG id\(s\) 2000001.*500 GeV") as err:
        read_slha(path)
    assert err.value.field == "BLOCK MASS"


def test_xsec_sum_and_description() -> None:
    info = read_slha(SLHA)
    value, description = slha_xsec_pb(info, 13000.0, [(1000023, 1000024), (1000023, -1000024)], None)
    assert value == pytest.approx(C1P_N2 + C1M_N2, rel=1e-12)
    assert description == f"SLHA XSECTION NLO+NLL: {SLHA}"
    assert slha_xsec_pb(info, 13000.0, None, None)[0] == pytest.approx(C1P_N2 + C1M_N2, rel=1e-12)


def test_xsec_pairs_match_in_any_order_but_signs_count() -> None:
    info = read_slha(SLHA)
    assert slha_xsec_pb(info, 13000.0, [(1000024, 1000023)], None)[0] == pytest.approx(C1P_N2)
    assert slha_xsec_pb(info, 13000.0, [(-1000024, 1000023)], None)[0] == pytest.approx(C1M_N2)


def test_xsec_no_match_lists_the_file_content() -> None:
    info = read_slha(SLHA)
    with pytest.raises(RecastError, match=r"at 8000 GeV; the file has: \(1000023, 1000024\) at 13000 GeV") as err:
        slha_xsec_pb(info, 8000.0, None, None)
    assert err.value.field == "XSECTION" and err.value.path == str(SLHA)
    with pytest.raises(RecastError, match=r"no XSECTION for the pair\(s\) \(1000023, 1000025\)"):
        slha_xsec_pb(info, 13000.0, [(1000023, 1000024), (1000023, 1000025)], None)


def test_xsec_order_selection(tmp_path: Path) -> None:
    # add an NLO (order 1) line next to the NLO+NLL one of the chi2 chi1+ process
    nlo = "  0  1  0  0  0  0    6.00000000E-03 Prospino\n"
    path = variant(tmp_path, "  0  2  0  1.0  1.0  0   6.99008000E-03  resummino  LHCSUSYXSWG-2017-06-15\n",
                   "  0  2  0  1.0  1.0  0   6.99008000E-03  resummino  LHCSUSYXSWG-2017-06-15\n" + nlo)
    info = read_slha(path)
    assert slha_xsec_pb(info, 13000.0, [(1000023, 1000024)], None) == (pytest.approx(C1P_N2),
                                                                        f"SLHA XSECTION NLO+NLL: {path}")
    value, description = slha_xsec_pb(info, 13000.0, [(1000023, 1000024)], 1)
    assert value == pytest.approx(6.0e-3) and "XSECTION NLO:" in description
    # the chi2 chi1- process has no NLO line: asking for NLO for both is an error, and the
    # default ("highest") falls back to the highest order both have
    with pytest.raises(RecastError, match="no XSECTION at NLO for"):
        slha_xsec_pb(info, 13000.0, None, 1)
    assert slha_xsec_pb(info, 13000.0, None, None)[0] == pytest.approx(C1P_N2 + C1M_N2)


def test_xsec_ambiguous_central_values(tmp_path: Path) -> None:
    line = "  0  2  0  1.0  1.0  0   6.99008000E-03  resummino  LHCSUSYXSWG-2017-06-15\n"
    path = variant(tmp_path, line, line + "  0  2  0  0  0  0    7.10000000E-03 OtherCode\n")
    with pytest.raises(RecastError, match="2 central-scale XSECTION values"):
        slha_xsec_pb(read_slha(path), 13000.0, None, None)


# ----------------------------------------------------------------------------- physical numbers (issue 26)

@pytest.mark.parametrize("value", ["-6.99008000E-03", "0.0", "inf", "nan"])
def test_xsection_not_finite_and_positive_is_refused(tmp_path: Path, value: str) -> None:
    path = variant(tmp_path, "6.99008000E-03", value)
    with pytest.raises(RecastError, match=r"cross-section .* pb; a cross-section is a finite number > 0") as err:
        read_slha(path)
    assert err.value.field == "XSECTION 13000 -> 1000023 1000024" and err.value.path == str(path)
    assert "\n" not in str(err.value)


def test_nan_mass_is_refused_naming_the_particle(tmp_path: Path) -> None:
    path = variant(tmp_path, "1000023   7.00000000E+02   # ~chi_20", "1000023     nan   # ~chi_20")
    with pytest.raises(RecastError, match=r"1000023 \(~chi_20\) has mass nan") as err:
        read_slha(path)
    assert err.value.field == "BLOCK MASS"


def test_negative_mass_is_legitimate(tmp_path: Path) -> None:
    # the sign of a neutralino mass eigenvalue is a convention of the spectrum generators
    path = variant(tmp_path, "1000022   0.00000000E+00   # ~chi_10 (", "1000022     -10.0   # ~chi_10 (")
    assert read_slha(path).mass(1000022) == -10.0


def test_negative_width_is_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "DECAY   1000023   1.00000000E-03", "DECAY   1000023  -1.00000000E-03")
    with pytest.raises(RecastError, match=r"total width of 1000023 \(~chi_20\) is -0.001") as err:
        read_slha(path)
    assert err.value.field == "DECAY 1000023"


@pytest.mark.parametrize("br", ["-1.00000000E+00", "1.50000000E+00", "nan"])
def test_branching_ratio_outside_0_1_is_refused(tmp_path: Path, br: str) -> None:
    path = variant(tmp_path, "   1.00000000E+00    2        24   1000022", f"   {br}    2        24   1000022")
    with pytest.raises(RecastError, match=rf"the channel to 24, 1000022 has branching ratio {re.escape(br)}; a branching ratio "
                                          r"is between 0 and 1") as err:
        read_slha(path)
    assert err.value.field == "DECAY 1000024" and err.value.path == str(path)


def test_branching_ratios_not_summing_to_one_are_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "   1.00000000E+00    2        24   1000022",
                   "   6.00000000E-01    2        24   1000022")
    with pytest.raises(RecastError, match=r"branching ratios of 1000024 \(~chi_1\+\) sum to 0.6, not 1"):
        read_slha(path)
    # rounding of the last digit is not an error
    ok = variant(tmp_path, "   1.00000000E+00    2        24   1000022",
                 "   4.99900000E-01    2        24   1000022\n   5.00000000E-01    2        24   1000022")
    assert read_slha(ok).decays == (1000023, 1000024)


def test_lsp_heavier_than_the_decaying_sparticle_names_both(tmp_path: Path) -> None:
    path = variant(tmp_path, "1000022   0.00000000E+00   # ~chi_10 (", "1000022     800.0   # ~chi_10 (")
    with pytest.raises(RecastError, match=r"impossible spectrum: 1000023 \(~chi_20\) at 700 GeV decays \(channel 1\) "
                                          r"to 1000022 \(~chi_10\) at 800 GeV, which is heavier") as err:
        read_slha(path)
    assert err.value.path == str(path) and err.value.field == "DECAY 1000023"
