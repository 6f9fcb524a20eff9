"""Hand-off of LHE, HepMC3 and Delphes files: round trips, weight alignment, clear errors.

Fixtures are written into a temporary folder by tests/data/handoff/make_fixtures.py.
The LHE tests shower a handful of events with Pythia (about 2 s each, mostly its init).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, RECO, read_events
from recastflow.generate.delphes import jet_track_counts
from recastflow.generate.handoff import handoff, load_manifest
from recastflow.generate.hepmc import particle_charges
from recastflow.generate.lhe import align_showered, read_lhe
from recastflow.select.selection import load_selection, run_selection

_spec = importlib.util.spec_from_file_location(
    "handoff_fixtures", Path(__file__).parent.parent / "data" / "handoff" / "make_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

PARTICLES = "var * {pid: int32, charge: float32, px: float64, py: float64, pz: float64, e: float64}"
TRUTH = ("{hard: var * {pid: int32, status: int32, mother: int32, px: float64, py: float64, pz: float64, "
         "e: float64, m: float64}, mode: string, id1: int32, id2: int32, x1: float64, x2: float64, q2: float64, "
         "bhadrons: var * {pt: float64, eta: float64, phi: float64}, chadrons: var * {pt: float64, eta: float64, "
         "phi: float64}, taus: var * {pt: float64, eta: float64, phi: float64, m: float64, charge: int8, "
         "prongs: int8}}")
EVENT_TYPE = f"{{weight: float64, weights: var * float64, particles: {PARTICLES}, truth: {TRUTH}}}"
#: Delphes files carry already-reconstructed objects: their truth taus have no visible mass, charge or prongs
TRUTH_DELPHES = TRUTH.replace(", m: float64, charge: int8, prongs: int8", "")


def expect_error(manifest: Path, output: Path, *fragments: str) -> str:
    """Run the hand-off, expect a RecastError containing every fragment, and no output file."""
    with pytest.raises(RecastError) as exc:
        handoff(manifest, output, progress=False)
    message = str(exc.value)
    for fragment in fragments:
        assert fragment in message, message
    assert not output.exists()
    return message


# ----------------------------------------------------------------------------- manifest


@pytest.mark.parametrize("change, fragments", [
    ({"cross_section": {"value": 1.0, "unit": "nb", "source": "x"}},
     ["cross_section.unit", "'nb' is not allowed", "'pb', 'fb'"]),
    ({"weight_convention": "weighted"}, ["weight_convention", "'weighted' is not allowed"]),
    ({"n_events": None}, ["missing required key: 'n_events'"]),
    ({"file": "../z.lhe"}, ["file: path '../z.lhe'"]),
    ({"file": "missing.lhe"}, ["file: event file", "not found"]),
    ({"sha256": "abc"}, ["sha256", "does not match"]),
    ({"format": "hepmc3", "pythia_settings": ["Tune:pp = 14"]}, ["pythia_settings", "only used for format 'lhe'"]),
    ({"pythia_settings": ["Random:seed = 5"]}, ["pythia_settings[0]", "set by recastflow"]),
    ({"pythia_settings": ["Beams:LHEF = other.lhe"]}, ["pythia_settings[0]", "set by recastflow"]),
    ({"pythia_settings": ["23:onMode = off"]}, ["pythia_settings[0]", "give 'br_factor'"]),
    ({"pythia_settings": ["Tune:pp = 14", "JetMatching:merge = on"]}, ["pythia_settings[1]", "jet matching and merging"]),
    ({"pythia_settings": ["Merging:doKTMerging = on"]}, ["pythia_settings[0]", "hand off its HepMC3 file"]),
    ({"pythia_settings": ["Tune:pp = 14", "PartonLevel:NoSuchKey = on"]},
     ["pythia_settings[1]", "Pythia does not accept 'PartonLevel:NoSuchKey = on'"]),
])
def test_manifest_errors_name_the_field(tmp_path: Path, change: dict[str, Any], fragments: list[str]) -> None:
    fx.write_lhe(tmp_path / "z.lhe")
    manifest = fx.write_manifest(tmp_path, **change)
    message = expect_error(manifest, tmp_path / "out.parquet", str(manifest), *fragments)
    assert "Traceback" not in message


def test_manifest_defaults_and_units(tmp_path: Path) -> None:
    fx.write_lhe(tmp_path / "z.lhe")
    m = load_manifest(fx.write_manifest(tmp_path, cross_section={"value": 250.0, "unit": "fb", "source": "s",
                                                                 "uncertainty": 10.0}))
    assert m.xsec_pb == pytest.approx(0.25) and m.xsec_uncertainty_pb == pytest.approx(0.01)
    assert m.br_factor == 1.0 and m.tolerance == 0.01 and not m.negative_weights and m.file == tmp_path / "z.lhe"
    m = load_manifest(fx.write_manifest(tmp_path, br_factor=0.1, pythia_settings=["23:onMode = off"]))
    assert m.br_factor == 0.1 and m.pythia_settings == ("23:onMode = off",)


def test_sha256_mismatch_and_match(tmp_path: Path) -> None:
    lhe = fx.write_lhe(tmp_path / "z.lhe", 2)
    manifest = fx.write_manifest(tmp_path, n_events=2, sha256="0" * 64)
    expect_error(manifest, tmp_path / "out.parquet", str(manifest), "sha256: the file", "update 'sha256'")
    good = hashlib.sha256(lhe.read_bytes()).hexdigest()
    manifest = fx.write_manifest(tmp_path, n_events=3, sha256=good.upper())
    # the hash passes, so the next check (the count) is the one that fails
    expect_error(manifest, tmp_path / "out.parquet", "n_events", "holds 2 events")


def test_bad_point_name(tmp_path: Path) -> None:
    fx.write_lhe(tmp_path / "z.lhe")
    manifest = fx.write_manifest(tmp_path)
    with pytest.raises(RecastError, match="point: point name 'a b'"):
        handoff(manifest, tmp_path / "o.parquet", point="a b", progress=False)


# ----------------------------------------------------------------------------- LHE


def test_lhe_round_trip_keeps_weights_per_event(tmp_path: Path) -> None:
    fx.write_lhe(tmp_path / "z.lhe", 6)
    manifest = fx.write_manifest(tmp_path, point="Zmm", cross_section={"value": 1.25, "unit": "pb",
                                                                     "source": "MG5 LO", "uncertainty": 0.05})
    out = tmp_path / "out.parquet"
    header = handoff(manifest, out, seed=3, progress=False)
    events, stored = read_events(out, (EVENTS,))
    assert stored == header
    assert str(events.type) == f"6 * {EVENT_TYPE}"
    assert header["format"] == EVENTS and header["point"] == "Zmm" and header["n_events"] == 6
    assert header["xsec_pb"] == 1.25 and header["xsec_source"] == "manifest: MG5 LO"
    assert header["xsec_uncertainty_pb"] == 0.05 and header["br_factor"] == 1.0
    assert header["weight_names"] == ["nominal", "muR2", "muR05"] and header["sum_weights"] == pytest.approx(7.5)
    assert header["chunk"] == {"index": 0, "count": 1} and header["generator"]["name"] == "fixture"
    assert header["generator"]["shower"]["name"] == "pythia8" and isinstance(header["seed"], int)
    assert [s["path"] for s in header["sources"]] == [str(manifest), str(tmp_path / "z.lhe")]
    assert header["handoff"] == {**header["handoff"], "format": "lhe", "weight_convention": "unweighted",
                                 "n_dropped": 0, "warnings": [], "xsec_file_pb": 1.25}
    expected = [[1.25, 1.25 * 1.1 * (1 + 0.01 * i), 1.25 * 1.2 * (1 + 0.01 * i)] for i in range(6)]
    assert np.allclose(ak.to_numpy(events.weights), expected, rtol=1e-9)
    assert set(ak.to_list(events.truth.mode)) == {"Z(mu mu)"}
    assert ak.all(ak.num(events.particles) > 10)  # showered and hadronised


def test_lhe_weights_stay_with_their_events_when_pythia_drops_one(tmp_path: Path) -> None:
    lhe = fx.write_lhe(tmp_path / "z.lhe", 6)
    fx.break_color(lhe, 3)  # Pythia refuses event 3 (unphysical colour flow) and reads on
    manifest = fx.write_manifest(tmp_path, cross_section={"value": 2.0, "unit": "pb", "source": "s"})
    header = handoff(manifest, tmp_path / "out.parquet", progress=False)
    events, _ = read_events(tmp_path / "out.parquet")
    kept = [0, 1, 3, 4, 5]
    assert header["n_events"] == 5 and header["handoff"]["n_dropped"] == 1
    assert np.allclose(ak.to_numpy(events.weights)[:, 1], [1.25 * 1.1 * (1 + 0.01 * i) for i in kept])
    assert header["sum_weights"] == pytest.approx(5 * 1.25) and header["xsec_pb"] == 2.0
    warnings = " ".join(header["handoff"]["warnings"])
    assert "failed on 1 of 6" in warnings and "own cross-section is 1.25 pb" in warnings


def test_lhe_pythia_fails_on_every_event(tmp_path: Path) -> None:
    lhe = fx.write_lhe(tmp_path / "z.lhe", 2)
    fx.break_color(lhe, 1)
    fx.break_color(lhe, 2)
    expect_error(fx.write_manifest(tmp_path, n_events=2), tmp_path / "o.parquet", str(lhe),
                 "Pythia showered none of the 2 events")


def test_alignment_matches_subsequence() -> None:
    lhe = np.array([[1.0, -2.0], [3.0, -4.0], [5.0, -6.0], [7.0, -8.0]])
    weights = np.arange(8.0).reshape(4, 2)
    m = load_manifest_stub()
    assert align_showered(lhe, lhe[[0, 2, 3]] + 1e-7, weights, m).tolist() == [0, 2, 3]
    assert align_showered(lhe, lhe, weights, m).tolist() == [0, 1, 2, 3]
    unknown = np.full((2, 2), np.nan)
    with pytest.raises(RecastError, match="cannot be matched"):
        align_showered(lhe, unknown, weights, m)
    # identical weights everywhere: which events were lost does not matter
    assert align_showered(lhe, unknown, np.ones((4, 2)), m).tolist() == [0, 1]


def load_manifest_stub() -> Any:
    """A stand-in with the attributes align_showered uses in messages."""
    class Stub:
        file = Path("x.lhe")
        path = Path("m.yaml")
    return Stub()


def _lhe_text(tmp_path: Path, n: int = 3) -> str:
    return fx.write_lhe(tmp_path / "z.lhe", n).read_text()


@pytest.mark.parametrize("mangle, fragments", [
    (lambda t: "this is not XML at all\n", ["file: not a well-formed LHE file", "syntax error"]),
    (lambda t: t[: int(len(t) * 0.6)], ["file: not a well-formed LHE file", "truncated"]),
    (lambda t: t[: t.index("<init>")] + t[t.index("</init>") + 8:], ["<init>: bad <init>", "No <init> block"]),
    (lambda t: t.replace("<event>\n 5 1", "<event>\n 6 1", 2).replace("<event>\n 6 1", "<event>\n 5 1", 1),
     ["event 2: the event declares 6 particles but has 5 particle lines"]),
    (lambda t: t.replace("<wgt id='muR2'>", "<wgt id='muR3'>", 1), ["event 1: the event lacks weight(s) 'muR2'"]),
])
def test_malformed_lhe(tmp_path: Path, mangle: Any, fragments: list[str]) -> None:
    text = _lhe_text(tmp_path)
    (tmp_path / "z.lhe").write_text(mangle(text))
    manifest = fx.write_manifest(tmp_path, n_events=3)
    expect_error(manifest, tmp_path / "out.parquet", str(tmp_path / "z.lhe"), *fragments)


def test_lhe_without_weight_list_keeps_all_named_weights(tmp_path: Path) -> None:
    fx.write_lhe(tmp_path / "z.lhe", 3, nominal=[2.0, 1.0, 3.0], strategy=-4)
    content = read_lhe(load_manifest(fx.write_manifest(tmp_path, n_events=3, weights=None)))
    assert content.weight_names == ["nominal", "muR2", "muR05"]
    assert content.nominal.tolist() == [2.0, 1.0, 3.0]  # XWGTUP
    assert content.init_xsec_pb == 1.25 and content.sqrt_s_gev == 13000.0
    assert np.all(np.isfinite(content.incoming)) and content.incoming.shape == (3, 2)


def test_lhe_count_and_weight_names(tmp_path: Path) -> None:
    fx.write_lhe(tmp_path / "z.lhe", 3)
    manifest = fx.write_manifest(tmp_path, n_events=4)
    expect_error(manifest, tmp_path / "o.parquet", str(manifest), "n_events: the file holds 3 events")
    manifest = fx.write_manifest(tmp_path, n_events=3, weights=["nominal", "pdf1"])
    expect_error(manifest, tmp_path / "o.parquet", str(tmp_path / "z.lhe"), "lacks weight(s) 'pdf1'",
                 "'nominal', 'muR2', 'muR05'", f"fix 'weights' in {manifest}")


@pytest.mark.parametrize("nominal, change, fragments", [
    ([1.0, -1.0, 1.0], {}, ["negative_weights", "1 event(s) have negative nominal weights", "event 2"]),
    ([1.0, math.nan, 1.0], {"negative_weights": True}, ["weight: event 2", "nan"]),
    ([1.0, 2.0, 1.0], {}, ["weight_convention: weight_convention is 'unweighted'", "'average' or 'sum-is-xsec'"]),
    ([1.0, 2.0, 1.0], {"weight_convention": "sum-is-xsec", "cross_section": {"value": 5.0, "unit": "fb",
                                                                             "source": "s"}},
     ["cross_section.value: the weights sum to 4 fb but cross_section.value is 5 fb"]),
])
def test_lhe_weight_conventions(tmp_path: Path, nominal: list[float], change: dict[str, Any],
                                fragments: list[str]) -> None:
    fx.write_lhe(tmp_path / "z.lhe", 3, nominal=nominal, strategy=-4)
    manifest = fx.write_manifest(tmp_path, n_events=3, **change)
    expect_error(manifest, tmp_path / "o.parquet", *fragments)


# ----------------------------------------------------------------------------- HepMC3


def hepmc_manifest(tmp_path: Path, n: int = 4, **change: Any) -> Path:
    fields = {"format": "hepmc3", "file": "e.hepmc3", "n_events": n, "weight_convention": "average",
              "weights": ["nominal", "alt"], **change}
    return fx.write_manifest(tmp_path, **fields)


def test_hepmc3_final_state_round_trip(tmp_path: Path) -> None:
    fx.write_hepmc3(tmp_path / "e.hepmc3", 4)
    manifest = hepmc_manifest(tmp_path, weights=None)
    header = handoff(manifest, tmp_path / "o.parquet", progress=False)
    events, _ = read_events(tmp_path / "o.parquet", (EVENTS,))
    assert str(events.type) == f"4 * {EVENT_TYPE}"
    assert header["weight_names"] == ["nominal", "alt"] and header["xsec_pb"] == 1.25
    assert ak.to_list(events.weights[:, 1]) == pytest.approx([1.1, 1.2, 1.3, 1.4])
    assert ak.to_list(events.particles.pid[0]) == [11, -12, 22, 211]
    assert ak.to_list(events.particles.charge[0]) == [-1.0, 0.0, 0.0, 1.0]
    assert events.particles.px[2, 0] == 30.0  # per-event content kept in order
    assert ak.to_list(events.truth.mode) == ["unknown"] * 4 and ak.sum(ak.num(events.truth.hard)) == 0
    assert header["handoff"]["warnings"] == [] and header["seed"] is None


def test_hepmc3_history_gives_truth(tmp_path: Path) -> None:
    fx.write_hepmc3(tmp_path / "e.hepmc3", 2, history=True)
    manifest = hepmc_manifest(tmp_path, n=2)
    handoff(manifest, tmp_path / "o.parquet", progress=False)
    events, _ = read_events(tmp_path / "o.parquet")
    truth = events.truth[0]
    assert ak.to_list(truth.hard.pid) == [2, -2, 23, 15, -15]
    assert ak.to_list(truth.hard.status) == [-21, -21, -22, -23, -23]
    assert ak.to_list(truth.hard.mother) == [-1, -1, 0, 2, 2]
    assert truth.mode == "Z(tau tau)"
    assert (truth.id1, truth.id2, truth.x1, truth.x2) == (2, -2, 0.01, 0.02)
    assert truth.q2 == pytest.approx(fx.MZ ** 2)
    assert ak.to_list(truth.bhadrons.pt) == pytest.approx([24.9])  # B+, not the B*+ that became it
    assert ak.to_list(truth.chadrons.pt) == pytest.approx([15.0])
    # one hadronic tau, seen as its pion (the leptonic tau+ is left out)
    assert ak.to_list(truth.taus.pt) == pytest.approx([math.hypot(20.0, 3.0)])
    final = ak.to_list(events.particles.pid[0])
    assert 15 not in final and 521 not in final and {-211, 16, 321}.issubset(final)


def test_hepmc3_mev_units_are_converted(tmp_path: Path) -> None:
    import pyhepmc

    run_info = pyhepmc.GenRunInfo()
    run_info.weight_names = ["nominal", "alt"]
    with pyhepmc.open(tmp_path / "e.hepmc3", "w") as f:
        ev = fx.hepmc3_event(pyhepmc, 0, run_info, [1.0, 1.0], False)
        ev.set_units(pyhepmc.Units.MEV, pyhepmc.Units.MM)
        f.write(ev)
    handoff(hepmc_manifest(tmp_path, n=1), tmp_path / "o.parquet", progress=False)
    events, _ = read_events(tmp_path / "o.parquet")
    assert events.particles.px[0, 0] == pytest.approx(10.0)


def _hepmc_text(tmp_path: Path) -> str:
    return fx.write_hepmc3(tmp_path / "e.hepmc3", 4).read_text()


def _drop_particle_line(text: str) -> str:
    """Remove one particle line of the second event (the file still ends properly)."""
    lines = text.splitlines(keepends=True)
    second = [i for i, line in enumerate(lines) if line.startswith("E ")][1]
    victim = next(i for i in range(second, len(lines)) if lines[i].startswith("P 4 "))
    return "".join(lines[:victim] + lines[victim + 1:])


@pytest.mark.parametrize("mangle, fragments", [
    (lambda t: "just some text\n1 2 3\n", ["file: not HepMC3 ASCII"]),
    (lambda t: "HepMC::Version 2.06.09\nHepMC::IO_GenEvent-START_EVENT_LISTING\nE 0 0\n", ["file: HepMC2"]),
    (lambda t: t[: t.rindex("E ")], ["file: truncated", "END_EVENT_LISTING"]),
    (lambda t: t[: int(len(t) * 0.7)], ["file: truncated"]),
    (_drop_particle_line, ["event 2: only 1 of 4 events could be parsed"]),
])
def test_malformed_hepmc3(tmp_path: Path, mangle: Any, fragments: list[str]) -> None:
    text = _hepmc_text(tmp_path)
    (tmp_path / "e.hepmc3").write_text(mangle(text))
    manifest = hepmc_manifest(tmp_path)
    expect_error(manifest, tmp_path / "o.parquet", str(tmp_path / "e.hepmc3"), *fragments)


def test_hepmc3_count_and_weights(tmp_path: Path) -> None:
    fx.write_hepmc3(tmp_path / "e.hepmc3", 4)
    expect_error(hepmc_manifest(tmp_path, n=5), tmp_path / "o.parquet", "n_events: the file holds 4 events")
    manifest = hepmc_manifest(tmp_path, weights=["nominal", "MUR2"])
    expect_error(manifest, tmp_path / "o.parquet", str(tmp_path / "e.hepmc3"), "weights: the run info lacks",
                 "'MUR2'", "'nominal', 'alt'")
    fx.write_hepmc3(tmp_path / "e.hepmc3", 4, weights=[[1.0, 1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    expect_error(hepmc_manifest(tmp_path), tmp_path / "o.parquet", "negative_weights", "event 2")


def test_hepmc3_average_off_by_more_than_tolerance_is_a_warning(tmp_path: Path) -> None:
    fx.write_hepmc3(tmp_path / "e.hepmc3", 2, weights=[[2.0, 1.0], [2.0, 1.0]])
    header = handoff(hepmc_manifest(tmp_path, n=2), tmp_path / "o.parquet", progress=False)
    assert "mean weight is 2" in header["handoff"]["warnings"][0] and header["sum_weights"] == 4.0


def test_charges_of_unknown_ids_are_zero() -> None:
    assert particle_charges(np.array([11, -11, 2212, 1000024, 9999999, 0], dtype=np.int32)).tolist() == \
        [-1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- Delphes


def delphes_manifest(tmp_path: Path, n: int = 4, **change: Any) -> Path:
    fields = {"format": "delphes", "file": "d.root", "n_events": n, "weight_convention": "sum-is-xsec",
              "cross_section": {"value": 3.5, "unit": "fb", "source": "Delphes run"}, "weights": None, **change}
    return fx.write_manifest(tmp_path, **fields)


def test_delphes_round_trip(tmp_path: Path) -> None:
    fx.write_delphes(tmp_path / "d.root", 4)
    header = handoff(delphes_manifest(tmp_path), tmp_path / "o.parquet", progress=False)
    events, _ = read_events(tmp_path / "o.parquet", (RECO,))
    assert header["format"] == RECO and header["xsec_pb"] == pytest.approx(0.0035)
    assert header["xsec_source"] == "manifest: Delphes run (weight sum)" and header["weight_names"] == []
    assert str(events.type) == (
        "4 * {weight: float64, jets: var * {pt: float64, eta: float64, phi: float64, m: float64, btag: bool, "
        "flavour: int8}, electrons: var * {pt: float64, eta: float64, phi: float64, charge: int8}, muons: var * "
        "{pt: float64, eta: float64, phi: float64, charge: int8}, photons: var * {pt: float64, eta: float64, "
        f"phi: float64}}, met: {{pt: float64, phi: float64}}, truth: {TRUTH_DELPHES}}}")
    jets = events.jets[1]
    assert ak.to_list(jets.pt) == [81.0, 41.0]  # pT ordered
    assert ak.to_list(jets.btag) == [True, False] and ak.to_list(jets.flavour) == [5, 0]
    assert ak.to_list(ak.num(events.muons)) == [0, 1, 0, 1] and events.muons.charge[1, 0] == 1
    assert events.electrons.charge[0, 0] == -1 and events.met.pt[2] == 52.0
    assert ak.to_list(events.weight) == [0.5, 0.75, 1.0, 1.25]
    assert set(ak.to_list(events.truth.mode)) == {"unknown"}


def test_delphes_jets_count_their_tracks(tmp_path: Path) -> None:
    # a Track branch gives the jets ntracks, so selections with ATLAS's tau veto (ATLAS-SUSY-2018-31) run on Delphes
    fx.write_delphes(tmp_path / "d.root", 4, tracks=True)
    handoff(delphes_manifest(tmp_path), tmp_path / "o.parquet", progress=False)
    events, header = read_events(tmp_path / "o.parquet", (RECO,))
    assert str(events.jets.type.content.content) == (
        "{pt: float64, eta: float64, phi: float64, m: float64, btag: bool, flavour: int8, ntracks: int16}")
    assert ak.to_list(events.jets.ntracks) == [[1, 2]] * 4  # the 80 GeV jet first: one track; the 40 GeV jet two
    bundle = Path(__file__).parents[2] / "config" / "analyses" / "ATLAS-SUSY-2018-31"
    for name in ("selection.yaml", "selection_B.yaml"):  # they read jets.ntracks; without it they stop
        run_selection(events, header, load_selection(bundle / name), 139.0)
    without = ak.with_field(events, events.jets[["pt", "eta", "phi", "m", "btag", "flavour"]], "jets")
    with pytest.raises(RecastError, match="Delphes files: their Track branch"):
        run_selection(without, header, load_selection(bundle / "selection.yaml"), 139.0)
    fx.write_delphes(tmp_path / "d.root", 4, tracks=True, omit=("Track.Phi",))
    expect_error(delphes_manifest(tmp_path), tmp_path / "x.parquet", "Delphes/Track.Phi",
                 "has Track.PT, Track.Eta but lacks Track.Phi")


def test_each_track_goes_to_its_nearest_jet_within_the_jet_radius() -> None:
    jet_eta = ak.Array([[0.0, 0.0, 1.0], [], [0.0]])
    jet_phi = ak.Array([[0.0, 0.5, 3.1], [], [0.0]])
    # event 0: (0, 0.3) is 0.3 from jet 0 and 0.2 from jet 1: jet 1 only; (1.0, -3.1) is 0.083 from jet 2 across
    # phi = pi; (0, -0.41) is outside every jet; (0.1, 0.05) is in jet 0. Event 1 has tracks but no jets.
    # event 2: 0.5 GeV is not above the threshold; |eta| = 2.5 is not inside the tracker.
    track_eta = ak.Array([[0.0, 1.0, 0.0, 0.1], [0.0], [0.0, 0.1, 0.2]])
    track_phi = ak.Array([[0.3, -3.1, -0.41, 0.05], [0.0], [0.0, 0.0, 0.1]])
    track_pt = ak.Array([[1.0, 1.0, 1.0, 1.0], [9.0], [0.5, 0.51, 0.6]])
    counts = jet_track_counts(jet_eta, jet_phi, track_pt, track_eta, track_phi)
    assert ak.to_list(counts) == [[1, 1, 1], [], [2]]
    track_eta = ak.Array([[0.0, 1.0, 0.0, 0.1], [0.0], [0.0, 2.5, 0.2]])
    assert ak.to_list(jet_track_counts(jet_eta, jet_phi, track_pt, track_eta, track_phi))[2] == [1]
    none = jet_track_counts(ak.Array([[], []]), ak.Array([[], []]), ak.Array([[1.0], []]), ak.Array([[0.0], []]),
                            ak.Array([[0.0], []]))
    assert ak.to_list(none) == [[], []]


def test_delphes_named_weights(tmp_path: Path) -> None:
    fx.write_delphes(tmp_path / "d.root", 4)
    header = handoff(delphes_manifest(tmp_path, weights=["nominal", "alt"]), tmp_path / "o.parquet", progress=False)
    events, _ = read_events(tmp_path / "o.parquet")
    assert header["weight_names"] == ["nominal", "alt"]
    assert ak.to_list(events.weights[0]) == pytest.approx([0.5, 0.6])
    expect_error(delphes_manifest(tmp_path, weights=["a", "b", "c"]), tmp_path / "x.parquet",
                 "Delphes/Weight.Weight", "2 Weight.Weight entries")


def test_malformed_delphes(tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    root = tmp_path / "d.root"
    fx.write_delphes(root, 4, tree="Events")
    expect_error(delphes_manifest(tmp_path), out, str(root), "Delphes: no TTree 'Delphes'", "Events (TTree)")
    fx.write_delphes(root, 4, omit=("Jet.BTag", "MissingET.Phi"))
    expect_error(delphes_manifest(tmp_path), out, str(root), "Delphes/Jet.BTag", "lacks branch(es) Jet.BTag, "
                 "MissingET.Phi")
    root.write_text("not root")
    expect_error(delphes_manifest(tmp_path), out, str(root), "file: not a readable ROOT file")
    fx.write_delphes(root, 4)
    expect_error(delphes_manifest(tmp_path, n=3), out, "n_events: the file holds 4 events")
    data = root.read_bytes()
    root.write_bytes(data[: len(data) // 2])
    expect_error(delphes_manifest(tmp_path), out, str(root))


def test_delphes_flat_object_branch_is_refused(tmp_path: Path) -> None:
    import uproot

    branches: dict[str, Any] = {}
    for collection, records in fx.delphes_columns(2).items():
        for leaf in records.fields:
            values = records[leaf]
            # jets as one flat number per event instead of a list
            branches[f"{collection}.{leaf}"] = ak.to_numpy(ak.firsts(values)) if collection == "Jet" else values
    with uproot.recreate(tmp_path / "d.root") as f:
        f.mktree("Delphes", {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()})
        f["Delphes"].extend(branches)
    expect_error(delphes_manifest(tmp_path, n=2), tmp_path / "o.parquet", "Delphes/Jet.PT", "list of numbers")


def test_delphes_rntuple_is_not_a_ttree(tmp_path: Path) -> None:
    import uproot

    with uproot.recreate(tmp_path / "d.root") as f:
        f["Delphes"] = {"x": np.arange(3.0)}  # uproot >= 5.7 writes an RNTuple here
    expect_error(delphes_manifest(tmp_path), tmp_path / "o.parquet", "no TTree 'Delphes'")


def test_the_readers_names_are_still_importable_from_the_old_module() -> None:
    # the LHE, HepMC3 and Delphes readers moved to modules of their own (issue 19); callers of the old path keep working
    import recastflow.generate.delphes as delphes
    import recastflow.generate.handoff as old
    import recastflow.generate.hepmc as hepmc
    import recastflow.generate.lhe as lhe
    from recastflow.generate.handoff import MOVED, read_delphes, scan_hepmc3

    assert read_delphes is delphes.read_delphes and scan_hepmc3 is hepmc.scan_hepmc3
    modules = {m.__name__: m for m in (lhe, hepmc, delphes)}
    for name, module in MOVED.items():
        assert getattr(old, name) is getattr(modules[module], name)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        old.nope  # noqa: B018
