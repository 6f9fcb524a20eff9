"""The built-in Pythia 8 generator (recastflow.generate.pythia) and its process cards."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
import importlib.util
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, read_events, read_header
from recastflow.generate.pythia import (
    SEED_MAX,
    SEED_MIN,
    generate_chunk,
    load_card,
    open_width_factor,
    pythia_seed,
    run_pythia,
)
from recastflow.generate.truth import _heavy_flavour

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "processes" / "TChiWH.yaml"
SLHA = Path(__file__).parent.parent / "data" / "TChiWH_700_0_700_0.slha"
# NLO+NLL chi2 chi1+ plus chi2 chi1- from the SLHA file (config/spectra/TChiWH.yaml: the working group's C1+N2
# table and its C1+-N2 table minus C1+N2 at 700 GeV, so the sum is the C1+-N2 table's 9.51032 fb)
XSEC_700 = 6.99008e-03 + 2.52024e-03

EVENT_TYPE = (
    "{weight: float64, particles: var * {pid: int32, charge: float32, px: float64, py: float64, pz: float64, "
    "e: float64}, truth: {hard: var * {pid: int32, status: int32, mother: int32, px: float64, py: float64, "
    "pz: float64, e: float64, m: float64}, mode: string, id1: int32, id2: int32, x1: float64, x2: float64, "
    "q2: float64, bhadrons: var * {pt: float64, eta: float64, phi: float64}, chadrons: var * {pt: float64, "
    "eta: float64, phi: float64}, taus: var * {pt: float64, eta: float64, phi: float64, m: float64, charge: int8, "
    "prongs: int8}}}")


def write_card(folder: Path, **changes: Any) -> Path:
    """Write a copy of the TChiWH card with top-level keys changed (None removes a key)."""
    doc = yaml.safe_load(CARD.read_text())
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = folder / "card.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the card and the SLHA file, used with relative paths like a project."""
    folder = tmp_path_factory.mktemp("gen")
    shutil.copy(CARD, folder / "TChiWH.yaml")
    shutil.copy(SLHA, folder / "TChiWH_700_0.slha")
    return folder


@pytest.fixture(scope="module")
def tchiwh(workdir: Path) -> tuple[ak.Array, dict[str, Any], Path]:
    """300 hadron-level TChiWH events (700, 0), generated once for the module."""
    out = workdir / "tchiwh.parquet"
    header = generate_chunk(workdir / "TChiWH.yaml", workdir / "TChiWH_700_0.slha", point="TChiWH_700_0",
                            n_events=300, seed=11, chunk=0, chunks=1, output=out, progress=False)
    events, on_disk = read_events(out)
    assert on_disk == header
    return events, header, out


# ----------------------------------------------------------------------------- cards


def test_default_card_loads() -> None:
    card = load_card(CARD)
    assert card.name == "TChiWH" and card.sqrt_s_gev == 13000.0 and card.xsec_source == "slha"
    assert card.final_states == ((1000023, 1000024), (1000023, -1000024))
    assert card.forced_settings() == ["24:onMode = off", "24:onIfMatch = 11 12", "24:onIfMatch = 13 14",
                                      "24:onIfMatch = 15 16", "25:onMode = off", "25:onIfMatch = 5 5"]


def test_card_unknown_key(tmp_path: Path) -> None:
    path = write_card(tmp_path, events=1000)
    with pytest.raises(RecastError, match="unknown key.*'events'") as err:
        load_card(path)
    assert err.value.path == str(path) and err.value.field == "(top level)"


def test_card_bad_setting_form(tmp_path: Path) -> None:
    path = write_card(tmp_path, settings=["SUSY:qqbar2chi+-chi0 on"])
    with pytest.raises(RecastError, match="does not match the allowed form") as err:
        load_card(path)
    assert err.value.field == "settings[0]"


@pytest.mark.parametrize("setting, hint", [
    ("Random:seed = 5", "--seed"), ("random:SETSEED = on", "seeds Pythia itself"),
    ("Main:numberOfEvents = 10", "--events"), ("SLHA:file = x.slha", "point's spectrum"),
    ("Beams:eCM = 8000", "sqrt_s_gev"), ("Beams:frameType = 4", "LHE hand-off"),
])
def test_card_forbidden_settings(tmp_path: Path, setting: str, hint: str) -> None:
    path = write_card(tmp_path, settings=["SUSY:qqbar2chi+-chi0 = on", setting])
    with pytest.raises(RecastError, match=f"is set by recastflow.*{hint}") as err:
        load_card(path)
    assert err.value.path == str(path) and err.value.field == "settings[1]"


@pytest.mark.parametrize("setting", ["24:onMode = off", "25:onIfMatch = 5 5", "15:offIfAny = 11", "25:3:bRatio = 1"])
def test_card_decay_switches_need_forced_decays(tmp_path: Path, setting: str) -> None:
    path = write_card(tmp_path, settings=[setting])
    with pytest.raises(RecastError, match="list the decay under 'forced_decays'") as err:
        load_card(path)
    assert err.value.field == "settings[0]"


def test_card_setting_rejected_by_pythia(tmp_path: Path) -> None:
    path = write_card(tmp_path, settings=["SUSY:qqbar2chi+-chi0 = on", "SUSY:idZ = 1000023"])
    with pytest.raises(RecastError, match="Pythia does not accept 'SUSY:idZ = 1000023'") as err:
        load_card(path)
    assert err.value.path == str(path) and err.value.field == "settings[1]"


def test_card_unknown_forced_particle(tmp_path: Path) -> None:
    path = write_card(tmp_path, forced_decays=[{"particle": 9999999, "products": [[5, 5]]}])
    with pytest.raises(RecastError, match="is 9999999 a particle Pythia knows") as err:
        load_card(path)
    assert err.value.field == "forced_decays[0]"


def test_card_forced_particle_twice(tmp_path: Path) -> None:
    path = write_card(tmp_path, forced_decays=[{"particle": 24, "products": [[11, 12]]},
                                               {"particle": 24, "products": [[13, 14]]}])
    with pytest.raises(RecastError, match="listed twice") as err:
        load_card(path)
    assert err.value.field == "forced_decays[1]"


def test_card_final_states_only_for_slha(tmp_path: Path) -> None:
    path = write_card(tmp_path, xsec={"source": "generator", "final_states": [[1000023, 1000024]]})
    with pytest.raises(RecastError, match="only used with source 'slha'") as err:
        load_card(path)
    assert err.value.field == "xsec.final_states"


def test_slha_source_needs_an_slha_file(tmp_path: Path) -> None:
    with pytest.raises(RecastError, match="no SLHA file was given") as err:
        generate_chunk(CARD, None, point="p", n_events=1, seed=1, chunk=0, chunks=1, output=tmp_path / "x.parquet")
    assert err.value.field == "xsec.source"


def test_susy_needs_an_slha_file(tmp_path: Path) -> None:
    path = write_card(tmp_path, xsec={"source": "generator"})
    with pytest.raises(RecastError, match="SUSY processes need the point's SLHA file"):
        generate_chunk(path, None, point="p", n_events=1, seed=1, chunk=0, chunks=1, output=tmp_path / "x.parquet")


def test_bad_chunk_arguments(tmp_path: Path) -> None:
    with pytest.raises(RecastError, match="not within 0..1") as err:
        generate_chunk(CARD, SLHA, point="p", n_events=1, seed=1, chunk=2, chunks=2, output=tmp_path / "x.parquet")
    assert err.value.field == "chunk"
    with pytest.raises(RecastError, match="at least 1"):
        generate_chunk(CARD, SLHA, point="p", n_events=0, seed=1, chunk=0, chunks=1, output=tmp_path / "x.parquet")


def test_unmatched_forced_decay_lists_channels(tmp_path: Path) -> None:
    path = write_card(tmp_path, forced_decays=[{"particle": 25, "products": [[11, 13]]}])
    with pytest.raises(RecastError, match=r"no decay channel of 25 matches \[\[11, 13\]\].*\[5, -5\] \(0.57") as err:
        generate_chunk(path, SLHA, point="p", n_events=1, seed=1, chunk=0, chunks=1, output=tmp_path / "x.parquet",
                       progress=False)
    assert err.value.field == "forced_decays[0]"


# ----------------------------------------------------------------------------- Pythia driver


def test_pythia_seed_is_deterministic_and_in_range() -> None:
    seeds = {pythia_seed(s, c) for s in range(20) for c in range(50)}
    assert len(seeds) == 1000 and all(SEED_MIN <= s <= SEED_MAX for s in seeds)
    assert pythia_seed(3, 4) == pythia_seed(3, 4) != pythia_seed(4, 3)


def test_init_failure_is_explained() -> None:
    with pytest.raises(RecastError, match="no process switched on.*SUSY processes need the point's SLHA file"):
        run_pythia(["SUSY:qqbar2chi+-chi0 = on", "SUSY:idA = 1000023"], 1, 1, label="card.yaml", progress=False)


def test_run_pythia_rejects_bad_setting() -> None:
    with pytest.raises(RecastError, match="does not accept the setting 'Foo:bar = 1'"):
        run_pythia(["Foo:bar = 1"], 1, 1, progress=False)


def test_heavy_flavour_classification() -> None:
    pid = np.array([511, 521, 531, 541, 5122, 5332, 513, 10521, 553, 100553, 411, 421, 431, 4122, 443, 9900441,
                    211, 2212, 5, 4, 5101, 21, 90])
    b, c = _heavy_flavour(pid)
    assert pid[b].tolist() == [511, 521, 531, 541, 5122, 5332, 513, 10521]
    assert pid[c].tolist() == [411, 421, 431, 4122]


def write_lhe(path: Path, n: int) -> None:
    """n LHEF 3 events u ubar -> Z -> mu+ mu- (XWGTUP 2.5 pb, strategy -4, three named weights)."""
    spec = importlib.util.spec_from_file_location("handoff_fixtures", Path(__file__).parent.parent / "data" / "handoff"
                                                  / "make_fixtures.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    fixtures.write_lhe(path, n, names=("mu1", "mu2", "mu05"), xsec_pb=2.5, strategy=-4)


def test_lhe_input_is_showered_with_its_weights(tmp_path: Path) -> None:
    lhe = tmp_path / "z.lhe"
    write_lhe(lhe, 12)
    events, info = run_pythia(["Beams:frameType = 4", f"Beams:LHEF = {lhe}"], 100, 7, label=str(lhe),
                              progress=False)
    assert len(events) == 12 and info["lhe_end"]  # stops at the end of the file
    assert info["weight_names"] == ["mu1", "mu2", "mu05"]
    assert ak.to_list(events.weight) == [2.5] * 12
    assert ak.to_list(events.weights[0]) == pytest.approx([2.5, 2.75, 3.0])  # fixture: nominal * (1 + 0.1 k)
    assert info["sigma_gen_pb"] == pytest.approx(2.5)
    assert set(ak.to_list(events.truth.mode)) == {"Z(mu mu)"}
    hard = events.truth.hard[0]
    assert ak.to_list(hard.pid) == [2, -2, 23, -13, 13] and ak.to_list(hard.mother) == [-1, -1, 0, 2, 2]


# ----------------------------------------------------------------------------- normalisation


def test_open_width_factor_measured() -> None:
    """Pythia folds forced resonance BRs into sigmaGen for W production, not for SUSY pairs."""
    factor = open_width_factor(["Beams:eCM = 13000", "WeakSingleBoson:ffbar2W = on"],
                               ["24:onMode = off", "24:onIfMatch = 11 12"], 5)
    assert factor == pytest.approx(0.1081, abs=2e-4)
    susy = ["Beams:eCM = 13000", f"SLHA:file = {SLHA}", *load_card(CARD).settings]
    assert open_width_factor(susy, load_card(CARD).forced_settings(), 5) == pytest.approx(1.0, abs=1e-12)


def test_header_and_normalisation(tchiwh: tuple[ak.Array, dict[str, Any], Path], workdir: Path) -> None:
    events, header, _ = tchiwh
    assert header["format"] == EVENTS and header["point"] == "TChiWH_700_0"
    assert header["n_events"] == len(events) == 300
    assert header["sum_weights"] == pytest.approx(float(ak.sum(events.weight))) == 300.0
    assert header["xsec_pb"] == pytest.approx(XSEC_700, rel=1e-12) and header["xsec_estimated"] is False
    assert header["xsec_source"] == f"SLHA XSECTION NLO+NLL: {workdir / 'TChiWH_700_0.slha'}"
    brs = {fd["particle"]: fd["branching_fraction"] for fd in header["forced_decays"]}
    assert {fd["particle"]: fd["per_event"] for fd in header["forced_decays"]} == {24: 1, 25: 1}
    assert brs[24] == pytest.approx(0.3242, abs=1e-3) and brs[25] == pytest.approx(0.5769, abs=1e-3)
    assert header["br_factor"] == pytest.approx(brs[24] * brs[25], rel=1e-12)
    assert header["seed"] == pythia_seed(11, 0) and header["chunk"] == {"index": 0, "count": 1}
    gen = header["generator"]
    assert gen["name"] == "pythia8" and gen["version"].startswith("8.3")
    assert f"Random:seed = {header['seed']}" in gen["settings"]
    assert f"SLHA:file = {workdir / 'TChiWH_700_0.slha'}" in gen["settings"]
    assert "25:onIfMatch = 5 5" in gen["settings"] and "Beams:eCM = 13000" in gen["settings"]
    # Pythia's LO estimate is well below the NLO+NLL value but the same order of magnitude
    assert 0.4 * XSEC_700 < gen["sigma_gen_pb"] < XSEC_700
    assert header["weight_names"] == []
    for source, original in zip(header["sources"], ("TChiWH.yaml", "TChiWH_700_0.slha")):
        assert source["path"] == str(workdir / original)
        assert source["sha256"] == hashlib.sha256((workdir / original).read_bytes()).hexdigest()


def test_generator_cross_section(workdir: Path, tmp_path: Path) -> None:
    card = write_card(tmp_path, xsec={"source": "generator"})
    header = generate_chunk(card, workdir / "TChiWH_700_0.slha", point="p", n_events=20, seed=2, chunk=0, chunks=1,
                            output=tmp_path / "g.parquet", progress=False)
    gen = header["generator"]
    assert header["xsec_estimated"] is True and header["xsec_source"].startswith("Pythia 8 sigmaGen (LO)")
    assert gen["open_width_factor"] == pytest.approx(1.0, abs=1e-12)
    assert header["xsec_pb"] == pytest.approx(gen["sigma_gen_pb"] / gen["open_width_factor"], rel=1e-12)
    assert header["br_factor"] == pytest.approx(0.187, abs=1e-3)


# ----------------------------------------------------------------------------- reproducibility


def test_same_arguments_give_identical_files(workdir: Path, tmp_path: Path) -> None:
    def run(chunk: int, name: str) -> Path:
        out = tmp_path / name
        generate_chunk(workdir / "TChiWH.yaml", workdir / "TChiWH_700_0.slha", point="p", n_events=15, seed=4,
                       chunk=chunk, chunks=2, output=out, progress=False)
        return out

    first, again, other = run(0, "a.parquet"), run(0, "b.parquet"), run(1, "c.parquet")
    assert first.read_bytes() == again.read_bytes()
    a, _ = read_events(first)
    c, header = read_events(other)
    assert header["chunk"] == {"index": 1, "count": 2} and read_header(first)["seed"] != header["seed"]
    assert ak.to_list(a.truth.x1) != ak.to_list(c.truth.x1)


# ----------------------------------------------------------------------------- event content


def test_column_types(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    events, _, _ = tchiwh
    assert str(events.type) == f"300 * {EVENT_TYPE}"


def test_hard_record_has_one_w_and_one_h(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    events, _, _ = tchiwh
    for hard in ak.to_list(events.truth.hard):
        pids = [p["pid"] for p in hard]
        assert all(-1 <= p["mother"] < len(hard) for p in hard)
        assert [abs(p) for p in pids].count(24) == 1 and pids.count(25) == 1
        assert pids.count(1000023) == 1 and [abs(p) for p in pids].count(1000024) == 1
        w = next(i for i, p in enumerate(pids) if abs(p) == 24)
        h = pids.index(25)
        assert abs(pids[hard[w]["mother"]]) == 1000024 and pids[hard[h]["mother"]] == 1000023
        w_products = sorted(abs(p["pid"]) for p in hard if p["mother"] == w)
        assert w_products in ([11, 12], [13, 14], [15, 16])
        # charge conservation: W+ -> l+ nu, so the charged lepton has the W's sign
        lepton = next(p["pid"] for p in hard if p["mother"] == w and abs(p["pid"]) in (11, 13, 15))
        assert np.sign(lepton) == -np.sign(pids[w])
        assert sorted(p["pid"] for p in hard if p["mother"] == h) == [-5, 5]
        assert [p["status"] for p in hard[:2]] == [-21, -21] and hard[0]["mother"] == hard[1]["mother"] == -1


def test_both_chargino_signs_are_produced(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    events, _, _ = tchiwh
    hard = events.truth.hard
    charginos = ak.flatten(hard.pid[abs(hard.pid) == 1000024])
    plus = int(ak.sum(charginos > 0))
    # sigma(C1+ N2) / sigma(C1- N2) is about 2.8: expect roughly 220 and 80 of 300
    assert 150 < plus < 270 and len(charginos) == 300


def test_mode_labels(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    events, _, _ = tchiwh
    modes = Counter(ak.to_list(events.truth.mode))
    assert set(modes) == {"W(e nu) h(b b)", "W(mu nu) h(b b)", "W(tau nu) h(b b)"}
    assert all(n > 60 for n in modes.values())  # each about 100 of 300


def test_pdf_info(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    truth = tchiwh[0].truth
    assert ak.all((truth.x1 > 0) & (truth.x1 < 1) & (truth.x2 > 0) & (truth.x2 < 1))
    assert ak.all(truth.q2 > 700.0 ** 2 / 4)
    # q qbar' annihilation: one quark and one antiquark
    assert ak.all((truth.id1 * truth.id2 < 0) & (abs(truth.id1) <= 5) & (abs(truth.id2) <= 5))
    assert ak.all(truth.id1 == truth.hard.pid[:, 0]) and ak.all(truth.id2 == truth.hard.pid[:, 1])


def test_particles_conserve_momentum_and_carry_charges(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    particles = tchiwh[0].particles
    assert np.allclose(ak.to_numpy(ak.sum(particles.e, axis=1)), 13000.0, atol=0.05)
    assert np.allclose(ak.to_numpy(ak.sum(particles.px, axis=1)), 0.0, atol=0.05)
    pid, charge = ak.flatten(particles.pid), ak.flatten(particles.charge)
    assert ak.all(charge[pid == 11] == -1) and ak.all(charge[pid == -13] == 1) and ak.all(charge[pid == 22] == 0)
    assert ak.all(charge[pid == 2212] == 1) and ak.all(charge[abs(pid) == 1000022] == 0)
    # both neutralinos are in the final state, invisible particles included
    assert ak.all(ak.sum(particles.pid == 1000022, axis=1) == 2)


def test_heavy_hadrons_and_taus(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    truth = tchiwh[0].truth
    n_b = ak.to_numpy(ak.num(truth.bhadrons))
    assert np.mean(n_b >= 2) > 0.99  # h -> b b
    assert ak.all(truth.bhadrons.pt > 0) and ak.all(abs(truth.chadrons.phi) <= np.pi)
    assert ak.sum(ak.num(truth.chadrons)) > ak.sum(ak.num(truth.bhadrons))  # b -> c cascades
    is_tau = ak.to_numpy(truth.mode == "W(tau nu) h(b b)")
    n_tau = ak.to_numpy(ak.num(truth.taus))
    # about 65% of taus decay hadronically; taus from b decays are rare
    assert 0.4 < np.mean(n_tau[is_tau] >= 1) < 0.9
    assert np.mean(n_tau[~is_tau] >= 1) < 0.1


def test_visible_tau_is_tau_minus_neutrinos(tchiwh: tuple[ak.Array, dict[str, Any], Path]) -> None:
    truth = tchiwh[0].truth
    # events whose W -> tau nu tau decayed to hadrons (B -> tau nu X also gives a few taus)
    with_tau = truth[(ak.num(truth.taus) == 1) & (truth.mode == "W(tau nu) h(b b)")]
    tau = with_tau.hard[abs(with_tau.hard.pid) == 15]
    tau_pt = np.hypot(ak.to_numpy(ak.flatten(tau.px)), ak.to_numpy(ak.flatten(tau.py)))
    visible_pt = ak.to_numpy(ak.flatten(with_tau.taus.pt))
    # the neutrino takes a share: visible pT below the tau's (up to recoil from photon radiation)
    assert len(visible_pt) == len(tau_pt) > 20 and np.all(visible_pt > 0)
    assert np.mean(visible_pt < 1.02 * tau_pt) > 0.9 and np.median(visible_pt / tau_pt) < 0.9


@pytest.mark.slow
def test_sigma_gen_does_not_include_forced_fractions_for_tchiwh() -> None:
    """Hadron-level measurement behind the normalisation choice (about a minute)."""
    card = load_card(CARD)
    base = ["Beams:eCM = 13000", f"SLHA:file = {SLHA}", *card.settings]
    _, forced = run_pythia([*base, *card.forced_settings()], 400, 9, progress=False)
    _, unforced = run_pythia(base, 400, 9, progress=False)
    diff = forced["sigma_gen_pb"] - unforced["sigma_gen_pb"]
    assert abs(diff) < 4 * np.hypot(forced["sigma_err_pb"], unforced["sigma_err_pb"])


def test_missing_slha_xsection_fails_before_generating(tmp_path: Path) -> None:
    path = write_card(tmp_path, xsec={"source": "slha", "final_states": [[1000023, 1000025]]})
    with pytest.raises(RecastError, match=r"no XSECTION for the pair\(s\) \(1000023, 1000025\)") as err:
        generate_chunk(path, SLHA, point="p", n_events=1, seed=1, chunk=0, chunks=1, output=tmp_path / "x.parquet")
    assert err.value.path == str(SLHA) and not (tmp_path / "x.parquet").exists()
