"""SLHA spectra written by recastflow from a model card (recastflow.generate.spectrum)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.generate.slha import SPARTICLES, read_slha, slha_xsec_pb
from recastflow.generate.spectrum import (
    HIGGS_MASS_GEV,
    load_spectrum_card,
    main,
    obtain_tables,
    spectrum_text,
    write_spectrum,
)

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "spectra" / "TChiWH.yaml"
CARD_WHZ = REPO / "config" / "spectra" / "TChiWHZ.yaml"
MIRROR_TABLES = REPO.parent / "shared" / "data" / "xsec" / "lhc_susy_xs_wg"


def card_copy(tmp_path: Path, edit: dict | None = None, *, remove: tuple[str, ...] = (), source: Path = CARD) -> Path:
    """A copy of a card with top-level keys replaced or removed."""
    doc = yaml.safe_load(source.read_text())
    doc.update(edit or {})
    for key in remove:
        doc.pop(key)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def csv_table(name: str) -> dict[float, float]:
    """A working-group table read straight from the mirror (mass -> fb), independently of the module."""
    path = MIRROR_TABLES / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (the mirror ../shared/data)")
    rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line.strip()]
    return {float(r[0]): float(r[1]) for r in rows}


def xsec_lines(text: str) -> dict[tuple[int, int], float]:
    """XSECTION values of an SLHA text: final state -> pb."""
    lines = text.splitlines()
    out = {}
    for k, line in enumerate(lines):
        if line.startswith("XSECTION"):
            items = line.split()
            out[(int(items[5]), int(items[6]))] = float(lines[k + 1].split()[6])
    return out


# ----------------------------------------------------------------------------- determinism and the committed files


def test_same_card_and_point_give_the_same_bytes(tmp_path: Path) -> None:
    a = write_spectrum(CARD, {"m_C1N2": 712.5, "m_N1": 50}, tmp_path / "a.slha").read_bytes()
    # a copy of the card elsewhere (another path, a fresh load) gives the same file: no paths, dates or state
    other = tmp_path / "other" / "TChiWH.yaml"
    other.parent.mkdir()
    shutil.copy(CARD, other)
    b = write_spectrum(other, {"m_N1": 50.0, "m_C1N2": 712.5}, tmp_path / "b.slha").read_bytes()
    assert a == b
    # and a different point gives a different file
    c = write_spectrum(CARD, {"m_C1N2": 712.5, "m_N1": 60}, tmp_path / "c.slha").read_bytes()
    assert c != a


@pytest.mark.parametrize(
    "card, folder, name",
    [
        *[(CARD, "config/signals/slha/TChiWH", f"TChiWH_{p}.slha") for p in
          ("300_150", "500_0", "700_0", "700_400", "750_100", "800_0", "900_0")],
        (CARD_WHZ, "config/signals/slha/TChiWHZ", "TChiWHZ_700_0.slha"),
        (CARD, "tests/data", "TChiWH_700_0_700_0.slha"),
    ],
)
def test_committed_files_are_the_cards_output(card: Path, folder: str, name: str) -> None:
    """Every committed SLHA file is exactly what its card writes: regenerate it after editing a card."""
    committed = REPO / folder / name
    m, n = name.removesuffix(".slha").split("_")[1:3]
    text = spectrum_text(load_spectrum_card(card), {"m_C1N2": float(m), "m_N1": float(n)})
    assert committed.read_text() == text
    info = read_slha(committed)  # the checks of generate/slha.py pass
    assert info.mass(1000024) == info.mass(1000023) == float(m) and info.mass(1000022) == float(n)
    assert all(pid in info.masses for pid in SPARTICLES) and info.decays == (1000023, 1000024)


def test_the_file_has_every_block_pythia_needs(tmp_path: Path) -> None:
    text = write_spectrum(CARD, {"m_C1N2": 700, "m_N1": 0}, tmp_path / "p.slha").read_text()
    for block in ("MODSEL", "SMINPUTS", "MINPAR", "MASS", "NMIX", "UMIX", "VMIX", "STOPMIX", "SBOTMIX", "STAUMIX",
                  "ALPHA", "HMIX"):
        assert f"\nBLOCK {block} " in text, block
    assert "        25   1.25090000E+02   # h" in text and HIGGS_MASS_GEV == 125.09
    # the header names the producer, the card (by content) and the sources
    assert text.startswith("# SLHA spectrum of the simplified model TChiWH, written by recastflow")
    assert load_spectrum_card(CARD).sha256 in text and "13TeVn2x1wino_envelope_p.csv" in text
    assert "SModelS" not in text and "SUSY-HIT" not in text


def test_decays_are_the_models_and_other_sparticles_are_stable(tmp_path: Path) -> None:
    import pyslha

    doc = pyslha.read(str(write_spectrum(CARD_WHZ, {"m_C1N2": 700, "m_N1": 0}, tmp_path / "z.slha")))
    n2 = doc.decays[1000023]
    assert sorted((tuple(d.ids), d.br) for d in n2.decays) == [((23, 1000022), 0.5), ((25, 1000022), 0.5)]
    assert [(tuple(d.ids), d.br) for d in doc.decays[1000024].decays] == [((24, 1000022), 1.0)]
    for pid in SPARTICLES:
        if pid not in (1000023, 1000024):
            assert doc.decays[pid].totalwidth == 0.0 and not doc.decays[pid].decays, pid


# ----------------------------------------------------------------------------- cross-sections


def test_table_points_are_the_working_groups_values() -> None:
    p, pm = csv_table("13TeVn2x1wino_envelope_p.csv"), csv_table("13TeVn2x1wino_envelope_pm.csv")
    card = load_spectrum_card(CARD)
    for mass in (150.0, 300.0, 700.0, 1025.0, 2000.0):
        x = xsec_lines(spectrum_text(card, {"m_C1N2": mass, "m_N1": 0}))
        assert x[(1000023, 1000024)] == pytest.approx(p[mass] * 1e-3, rel=1e-8)
        # C1-N2 is the sum table minus C1+N2: the two add up to the working group's C1+-N2 value
        assert x[(-1000024, 1000023)] == pytest.approx((pm[mass] - p[mass]) * 1e-3, rel=1e-7)
        assert x[(1000023, 1000024)] + x[(-1000024, 1000023)] == pytest.approx(pm[mass] * 1e-3, rel=1e-8)
    # the numbers the previous files carried at 700 GeV (config/signals/slha/PROVENANCE.md)
    x = xsec_lines(spectrum_text(card, {"m_C1N2": 700, "m_N1": 0}))
    assert x == {(1000023, 1000024): 6.99008e-03, (-1000024, 1000023): 2.52024e-03}


def test_between_table_points_the_interpolation_is_log_linear() -> None:
    p = csv_table("13TeVn2x1wino_envelope_p.csv")
    table = obtain_tables(load_spectrum_card(CARD).processes[0]).table
    # halfway in mass, log-linear is the geometric mean; a quarter of the way, x0^(3/4) x1^(1/4)
    assert table.at(712.5)[0] == pytest.approx(math.sqrt(p[700.0] * p[725.0]) * 1e-3, rel=1e-12)
    assert table.at(706.25)[0] == pytest.approx(p[700.0] ** 0.75 * p[725.0] ** 0.25 * 1e-3, rel=1e-12)
    # strictly between the neighbours, and below the linear interpolation (the cross-section is convex in mass)
    assert p[725.0] * 1e-3 < table.at(712.5)[0] < (p[700.0] + p[725.0]) / 2 * 1e-3
    # the value lands in the file, read back through generate/slha.py
    card = load_spectrum_card(CARD)
    info_text = spectrum_text(card, {"m_C1N2": 712.5, "m_N1": 0})
    assert xsec_lines(info_text)[(1000023, 1000024)] == pytest.approx(math.sqrt(p[700.0] * p[725.0]) * 1e-3, rel=1e-8)


def test_xsection_of_the_file_sums_as_the_generator_reads_it(tmp_path: Path) -> None:
    path = write_spectrum(CARD, {"m_C1N2": 700, "m_N1": 0}, tmp_path / "p.slha")
    value, description = slha_xsec_pb(read_slha(path), 13000.0, [(1000023, 1000024), (1000023, -1000024)], None)
    assert value == pytest.approx(9.51032e-03, rel=1e-12) and "NLO+NLL" in description


@pytest.mark.parametrize("mass", [99.0, 2000.5, 3000.0])
def test_outside_the_table_is_refused(tmp_path: Path, mass: float) -> None:
    table = obtain_tables(load_spectrum_card(CARD).processes[0]).table
    with pytest.raises(RecastError, match=r"outside the table's range 100-2000 GeV.*never extrapolated"):
        table.at(mass)
    if mass < 125.09:
        return  # below the table, chi_2^0 -> h chi_1^0 is closed: the point is refused before (test_bad_points_are_refused)
    # a card without the parameter bounds: the table itself refuses, naming the card and the process
    doc = yaml.safe_load(CARD.read_text())
    doc["parameters"]["m_C1N2"] = {"description": "no bounds"}
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match=rf"m_C1N2 = {mass:g} GeV: .*outside the table's range") as err:
        spectrum_text(load_spectrum_card(path), {"m_C1N2": mass, "m_N1": 0})
    assert err.value.path == str(path) and err.value.field == "cross_sections.processes[0]"
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- bad cards and points


@pytest.mark.parametrize(
    "edit, field, message",
    [
        ({"colour": "red"}, "(top level)", "unknown key"),
        ({"tan_beta": "ten"}, "tan_beta", "expected number"),
        ({"decoupled_mass_gev": -5}, "decoupled_mass_gev", "less than or equal to the minimum"),
        ({"electroweakino_states": "higgsino"}, "electroweakino_states", "is not allowed"),
        ({"masses": [{"particle": 1000024}]}, "masses[0]", "missing required key: 'mass'"),
    ],
)
def test_schema_errors_name_the_file_and_field(tmp_path: Path, edit: dict, field: str, message: str) -> None:
    path = card_copy(tmp_path, edit)
    with pytest.raises(RecastError, match=message) as err:
        load_spectrum_card(path)
    assert err.value.path == str(path) and err.value.field == field
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path}: {field}: ")


def test_missing_key_is_refused(tmp_path: Path) -> None:
    path = card_copy(tmp_path, remove=("decays",))
    with pytest.raises(RecastError, match="missing required key: 'decays'") as err:
        load_spectrum_card(path)
    assert err.value.path == str(path) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "edit, field, message",
    [
        ({"masses": [{"particle": 1000024, "mass": "m_C1"}]}, "masses[0].mass", "'m_C1' is not a parameter"),
        ({"masses": [{"particle": 25, "mass": 125}]}, "masses[0].particle", "25 is not a sparticle"),
        ({"decays": [{"particle": 1000024, "width_gev": 0.01,
                      "channels": [{"br": 0.6, "products": [24, 1000022]}]}]}, "decays[0].channels", "sum to 0.6"),
        ({"decays": [{"particle": 1000024, "width_gev": 0.01,
                      "channels": [{"br": 1.0, "products": [24, 9000001]}]}]},
         "decays[0].channels[0].products", "product 9000001"),
    ],
)
def test_card_consistency_errors(tmp_path: Path, edit: dict, field: str, message: str) -> None:
    path = card_copy(tmp_path, edit)
    with pytest.raises(RecastError, match=message) as err:
        load_spectrum_card(path)
    assert err.value.path == str(path) and err.value.field == field and "\n" not in str(err.value)


def test_undeclared_source_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(CARD.read_text())
    doc["cross_sections"]["processes"][0]["table"] = "nowhere"
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match="'nowhere' is not under 'sources'") as err:
        load_spectrum_card(path)
    assert err.value.field == "cross_sections.processes[0].table"


def test_wrong_table_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECASTFLOW_CACHE", str(tmp_path / "cache"))
    doc = yaml.safe_load(CARD.read_text())
    doc["sources"]["n2x1wino_p"]["sha256"] = "0" * 64
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError) as err:
        spectrum_text(load_spectrum_card(path), {"m_C1N2": 700, "m_N1": 0})
    assert "13TeVn2x1wino_envelope_p.csv" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "values, field, message",
    [
        ({"m_C1N2": 700}, "parameters", "no value for m_N1"),
        ({"m_C1N2": 700, "m_N1": 0, "m_X": 3}, "parameters", "unknown parameter"),
        ({"m_C1N2": 700, "m_N1": -1}, "parameters.m_N1", "give a mass >= 0"),
        ({"m_C1N2": 50, "m_N1": 0}, "parameters.m_C1N2", "outside the card's range"),
        # chi_2^0 -> h chi_1^0 needs m(N2) > m(N1) + 125.09 GeV (on-shell decays of the simplified model)
        ({"m_C1N2": 700, "m_N1": 600}, "decays[1].channels[0]", r"1000023 \(~chi_20\) at 700 GeV cannot decay"),
    ],
)
def test_bad_points_are_refused(values: dict, field: str, message: str) -> None:
    card = load_spectrum_card(CARD)
    with pytest.raises(RecastError, match=message) as err:
        spectrum_text(card, values)
    assert err.value.path == str(CARD) and err.value.field == field


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.slha"
    assert main([str(CARD), "--values", "m_C1N2=700", "m_N1=0", "--output", str(out)]) == 0
    assert out.read_text() == (REPO / "tests" / "data" / "TChiWH_700_0_700_0.slha").read_text()
    assert main([str(CARD), "--values", "m_C1N2=700", "m_N1=abc", "--output", str(tmp_path / "y.slha")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'abc' is not a number" in err and not (tmp_path / "y.slha").exists()


# ----------------------------------------------------------------------------- Pythia


def _pythia(slha: Path, n_events: int) -> tuple[object, list[list[int]]]:
    """Initialise Pythia 8 on an SLHA file for chi_2^0 chi_1^+- production and generate parton-level events."""
    pythia8mc = pytest.importorskip("pythia8mc")
    pythia = pythia8mc.Pythia("", False)
    for setting in ("Beams:eCM = 13000", f"SLHA:file = {slha}", "SUSY:qqbar2chi+-chi0 = on", "SUSY:idA = 1000023",
                    "SUSY:idB = 1000024", "PartonLevel:all = off", "HadronLevel:all = off", "Random:setSeed = on",
                    "Random:seed = 7", "Print:quiet = on"):
        assert pythia.readString(setting)
    if not pythia.init():
        return pythia, []
    events = []
    for _ in range(n_events):
        assert pythia.next()
        events.append([pythia.process[i].id() for i in range(pythia.process.size())])
    return pythia, events


def test_pythia_accepts_the_file_with_susy_on_and_the_masses_as_written(tmp_path: Path) -> None:
    path = write_spectrum(CARD_WHZ, {"m_C1N2": 650, "m_N1": 100}, tmp_path / "p.slha")
    pythia, events = _pythia(path, 200)
    assert len(events) == 200  # init() succeeded: without SUSY (no MODSEL) it fails, see below
    data = pythia.particleData  # type: ignore[attr-defined]
    written = read_slha(path).masses
    for pid in SPARTICLES:
        assert abs(data.m0(pid)) == pytest.approx(abs(written[pid]), rel=1e-9), pid
    # Pythia 8.317 keeps its own SM Higgs mass (125 GeV) whatever BLOCK MASS says: the written 125.09 GeV is
    # for other readers of the file; the h -> b b rate changes by far less than the tests' tolerances
    assert data.mWidth(1000023) == pytest.approx(0.001) and not data.mayDecay(1000022)
    # every event is chi_2^0 chi_1^+- with the simplified model's decays (h or Z from chi_2^0, W from chi_1)
    for ids in events:
        assert 1000023 in ids and (1000024 in ids or -1000024 in ids)
        assert ids.count(1000022) == 2 and (24 in ids or -24 in ids) and (25 in ids or 23 in ids)
    n_h = sum(25 in ids for ids in events)
    assert 60 < n_h < 140  # BR(chi_2^0 -> h chi_1^0) = 0.5: 100 +- 7 of 200


def test_pythia_fails_without_modsel(tmp_path: Path) -> None:
    """The control for the test above: the same file without MODSEL does not initialise (SUSY off)."""
    path = write_spectrum(CARD, {"m_C1N2": 700, "m_N1": 0}, tmp_path / "p.slha")
    text = path.read_text()
    assert "BLOCK MODSEL  # Model selection\n     1     0   # general MSSM\n" in text
    path.write_text(text.replace("BLOCK MODSEL  # Model selection\n     1     0   # general MSSM\n", ""))
    _, events = _pythia(path, 1)
    assert events == []


# ----------------------------------------------------------------------------- NNLL-fast grids (T6bbHH)

CARD_T6 = REPO / "config" / "spectra" / "T6bbHH.yaml"
MIRROR_NNLLFAST = REPO.parent / "shared" / "data" / "xsec" / "nnllfast" / "st_nnlonnll_pdf4lhc15_13TeV_wpresc.grid"


def nnllfast_value(mst: float, mgl: float) -> float:
    """The NNLO+NNLL column (13th) of NNLL-fast's stop grid, read straight from the mirror."""
    if not MIRROR_NNLLFAST.is_file():
        pytest.skip(f"{MIRROR_NNLLFAST} is not here (the mirror ../shared/data)")
    for line in MIRROR_NNLLFAST.read_text().splitlines()[1:]:
        items = line.split()
        if len(items) > 12 and float(items[1]) == mst and float(items[2]) == mgl:
            return float(items[12])
    raise AssertionError(f"no grid row at {mst}, {mgl}")


@pytest.mark.parametrize(
    "name",
    [
        "1000_450_60", "1100_350_60", "1100_650_60", "1200_350_60", "1200_650_60",
        "1300_650_60", "1300_950_60", "1400_750_60", "1400_950_60", "1500_850_60",
    ],
)
def test_committed_t6bbhh_files_are_the_cards_output(name: str) -> None:
    committed = REPO / "config" / "signals" / "slha" / "T6bbHH" / f"T6bbHH_{name}.slha"
    msb, mn2, mn1 = (float(x) for x in name.split("_"))
    values = {"m_sbottom": msb, "m_neutralino2": mn2, "m_neutralino1": mn1}
    text = spectrum_text(load_spectrum_card(CARD_T6), values)
    assert committed.read_text() == text
    info = read_slha(committed)
    assert info.mass(1000005) == msb and info.mass(1000023) == mn2 and info.mass(1000022) == mn1
    # the XSECTION is NNLL-fast's NNLO+NNLL value at the grid's largest gluino mass (a grid point: no interpolation)
    assert xsec_lines(text) == {(-1000005, 1000005): pytest.approx(nnllfast_value(msb, 5000.0), rel=1e-9)}
    assert "0  3  0" in text  # QCD order code 3: NNLO+NNLL


def test_nnllfast_between_grid_points_is_log_linear() -> None:
    table = obtain_tables(load_spectrum_card(CARD_T6).processes[0]).table
    lo, hi = nnllfast_value(1300.0, 5000.0), nnllfast_value(1400.0, 5000.0)
    assert table.at(1350.0)[0] == pytest.approx(math.sqrt(lo * hi), rel=1e-12)


def test_nnllfast_fixed_value_must_be_a_grid_point(tmp_path: Path) -> None:
    doc = yaml.safe_load(CARD_T6.read_text())
    doc["cross_sections"]["processes"][0]["fixed"] = {"mgl": 5050}
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(RecastError, match="fewer than two mass points"):
        spectrum_text(load_spectrum_card(path), {"m_sbottom": 1300, "m_neutralino2": 950, "m_neutralino1": 60})
    doc["cross_sections"]["processes"][0]["fixed"] = {"mglu": 5000}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(RecastError, match="other parameters are"):
        spectrum_text(load_spectrum_card(path), {"m_sbottom": 1300, "m_neutralino2": 950, "m_neutralino1": 60})
