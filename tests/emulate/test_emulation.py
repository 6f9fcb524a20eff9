"""Detector emulation: truth objects from particles, the columnar response, and the reco files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from recastflow.emulate.clustering import build_truth_objects, jagged
from recastflow.core.config import read_document
from recastflow.emulate.card import DetectorCard, card_from_doc, load_card
from recastflow.emulate import emulation
from recastflow.emulate.clustering import pt_order
from recastflow.emulate.card import Scratch
from recastflow.emulate.emulation import emulate, emulate_file, respond
from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, RECO, read_events, read_header, write_events

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "detectors" / "ATLAS-Run2.yaml"


# -- synthetic inputs -------------------------------------------------------------------
def particle(pid: int, pt: float, eta: float, phi: float, m: float = 0.0, charge: float = 0.0) -> tuple:
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return (pid, charge, px, py, pz, float(np.sqrt(px * px + py * py + pz * pz + m * m)))


def _jagged_records(rows: list[list[tuple]], names: tuple[str, ...], dtypes: tuple[type, ...]) -> ak.Array:
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = [x for r in rows for x in r]
    cols = {n: np.array([x[i] for x in flat], dtype=dt) for i, (n, dt) in enumerate(zip(names, dtypes))}
    return jagged(cols, counts)


def make_events(particles: list[list[tuple]], bhadrons: list[list[tuple]] | None = None,
                chadrons: list[list[tuple]] | None = None, taus: list[list[tuple]] | None = None,
                weights: bool = False) -> ak.Array:
    """recastflow-events/1 records; hadrons/taus are (pt, eta, phi) tuples per event."""
    n = len(particles)
    empty: list[list[tuple]] = [[] for _ in range(n)]
    hadron = ("pt", "eta", "phi"), (np.float64,) * 3
    truth = ak.zip({"bhadrons": _jagged_records(bhadrons or empty, *hadron),
                    "chadrons": _jagged_records(chadrons or empty, *hadron),
                    "taus": _jagged_records(taus or empty, *hadron),
                    "mode": np.array(["test"] * n, dtype=object).astype(str)}, depth_limit=1)
    cols = {"weight": np.linspace(0.5, 1.5, n),
            "particles": _jagged_records(particles, ("pid", "charge", "px", "py", "pz", "e"),
                                         (np.int32, np.float32, np.float64, np.float64, np.float64, np.float64))}
    if weights:
        cols["weights"] = ak.unflatten(np.arange(2.0 * n), np.full(n, 2))
    cols["truth"] = truth
    return ak.zip(cols, depth_limit=1)


def random_events(n: int, seed: int = 7) -> ak.Array:
    """Events with a few hard pions, sometimes an electron, muon, photon or neutrino, and soft stuff."""
    rng = np.random.default_rng(seed)
    events, bh = [], []
    for _ in range(n):
        hard = [(rng.uniform(15, 120), rng.uniform(-2.5, 2.5), rng.uniform(-np.pi, np.pi)) for _ in range(rng.integers(1, 6))]
        parts = [particle(211, pt, eta, phi, 0.14, 1) for pt, eta, phi in hard]
        parts += [particle(22, rng.uniform(0.5, 3), rng.uniform(-4, 4), rng.uniform(-np.pi, np.pi)) for _ in range(10)]
        for pid, q in ((11, -1), (-13, 1), (22, 0), (12, 0)):
            if rng.random() < 0.5:
                parts.append(particle(pid, rng.uniform(12, 80), rng.uniform(-2.3, 2.3), rng.uniform(-np.pi, np.pi), 0, q))
        events.append(parts)
        # a b hadron along the first pion in 30% of the events
        bh.append([(20.0, hard[0][1], hard[0][2])] if rng.random() < 0.3 else [])
    return make_events(events, bhadrons=bh, weights=True)


def modified_card(**changes: Any) -> DetectorCard:
    """The ATLAS card with some sections replaced (dotted keys: 'met.soft_term')."""
    doc = copy.deepcopy(read_document(CARD))
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return card_from_doc(doc)


@pytest.fixture(scope="module")
def card() -> DetectorCard:
    return load_card(CARD)


PERFECT_RES = {"eta_edges": [0.0, 10.0], "constant": [0.0]}
FULL_EFF = {"pt_edges": [0.0, 1e6], "eta_edges": [0.0, 10.0], "values": [[1.0]]}


def perfect_card() -> DetectorCard:
    """No smearing, full efficiency, soft term counted fully and without noise."""
    changes: dict[str, Any] = {"jets.resolution": PERFECT_RES, "met.soft_term": {"scale": 1.0, "resolution": 0.0}}
    for obj in ("electrons", "muons", "photons"):
        changes[f"{obj}.resolution"] = PERFECT_RES
        changes[f"{obj}.efficiency"] = FULL_EFF
    return modified_card(**changes)


# -- truth objects ----------------------------------------------------------------------
def test_two_separated_particles_give_two_jets(card: DetectorCard) -> None:
    events = make_events([[particle(211, 50.0, 0.5, 0.0, 0.14, 1), particle(-211, 30.0, -1.0, 2.0, 0.14, -1)]])
    jets = build_truth_objects(events, card).jets[0]
    assert len(jets) == 2
    np.testing.assert_allclose([jets.pt[0], jets.eta[0], jets.phi[0]], [50.0, 0.5, 0.0], atol=1e-9)
    np.testing.assert_allclose([jets.pt[1], jets.eta[1], jets.phi[1]], [30.0, -1.0, 2.0], atol=1e-9)


def test_two_close_particles_give_one_jet(card: DetectorCard) -> None:
    a, b = particle(211, 50.0, 0.5, 0.0, 0.14, 1), particle(111, 30.0, 0.6, 0.15, 0.135)
    jets = build_truth_objects(make_events([[a, b]]), card).jets[0]
    assert len(jets) == 1
    px, py = a[2] + b[2], a[3] + b[3]
    assert jets.pt[0] == pytest.approx(np.hypot(px, py)) and jets.px[0] == pytest.approx(px)
    e, pz = a[5] + b[5], a[4] + b[4]
    assert jets.m[0] == pytest.approx(np.sqrt(e**2 - px**2 - py**2 - pz**2))


def test_jets_are_sorted_and_cut(card: DetectorCard) -> None:
    parts = [particle(211, pt, eta, phi, 0.14, 1) for pt, eta, phi in
             [(15.0, 0.0, 0.0), (80.0, 1.0, 2.0), (40.0, -1.0, -2.0), (9.0, 0.0, 1.0), (60.0, 3.5, 0.5)]]
    jets = build_truth_objects(make_events([parts]), card).jets[0]
    # 9 GeV is below half the 20 GeV threshold; |eta| 3.5 is outside the jet acceptance
    assert np.allclose(jets.pt, [80.0, 40.0, 15.0])


def test_invisibles_are_not_clustered_and_make_truth_met(card: DetectorCard) -> None:
    events = make_events([[particle(211, 50.0, 0.0, 0.0, 0.14, 1), particle(12, 70.0, 0.0, 2.0),
                           particle(1000022, 30.0, 1.0, -1.0, 100.0)]])
    truth = build_truth_objects(events, card)
    assert len(truth.jets[0]) == 1
    met = truth.met_truth[0]
    # minus the visible sum = the invisible sum here
    assert met.px == pytest.approx(-50.0) and met.py == pytest.approx(0.0, abs=1e-12)


def test_isolated_leptons_and_photons(card: DetectorCard) -> None:
    events = make_events([
        # an isolated electron with a collinear FSR photon inside the inner cone, a muon, a photon
        [particle(11, 40.0, 0.3, 1.0, 0, -1), particle(22, 3.0, 0.31, 1.01),
         particle(-13, 25.0, -1.2, -2.0, 0, 1), particle(22, 30.0, 1.8, 0.0), particle(211, 50.0, -0.5, 2.8, 0.14, 1)],
        # an electron inside a jet (not isolated): clustered with it, not an electron
        [particle(11, 40.0, 0.3, 1.0, 0, -1), particle(211, 20.0, 0.35, 1.1, 0.14, 1)],
        # an electron outside the acceptance |eta| < 2.47: stays a jet input
        [particle(-11, 40.0, 2.6, 0.0, 0, 1)],
    ])
    truth = build_truth_objects(events, card)
    assert truth.electrons[0].charge.tolist() == [-1] and truth.electrons[0].pt[0] == pytest.approx(40.0)
    assert truth.muons[0].charge.tolist() == [1] and truth.photons[0].pt[0] == pytest.approx(30.0)
    assert [len(j) for j in truth.jets] == [1, 1, 1]
    assert truth.jets[0].pt[0] == pytest.approx(50.0)          # isolated objects left the jet inputs
    assert len(truth.electrons[1]) == 0 and truth.jets[1].pt[0] == pytest.approx(60.0, rel=5e-3)
    assert len(truth.electrons[2]) == 0 and truth.jets[2].pt[0] == pytest.approx(40.0)


def test_isolation_threshold(card: DetectorCard) -> None:
    # muon cone 0.3, rel 0.15: 5.5 GeV of neighbours around 40 GeV passes, 6.5 GeV fails
    events = make_events([[particle(13, 40.0, 0.0, 0.0, 0, -1), particle(211, 5.5, 0.2, 0.0, 0.14, 1)],
                          [particle(13, 40.0, 0.0, 0.0, 0, -1), particle(211, 6.5, 0.2, 0.0, 0.14, 1)],
                          [particle(13, 40.0, 0.0, 0.0, 0, -1), particle(211, 30.0, 0.31, 0.0, 0.14, 1)]])
    assert [len(m) for m in build_truth_objects(events, card).muons] == [1, 0, 1]


def _b_jet_with_muon() -> list[tuple]:
    """A 100 GeV charged hadron with a non-isolated 20 GeV muon 0.1 away (a semileptonic b decay)."""
    return [particle(211, 100.0, 0.5, 0.0, 0.14, 1), particle(13, 20.0, 0.6, 0.05, 0.106, -1),
            particle(1000022, 150.0, 0.0, 2.5, 100.0)]


def test_muons_are_jet_inputs_without_exclude_muons() -> None:
    truth = build_truth_objects(make_events([_b_jet_with_muon()]), modified_card(**{"jets.exclude_muons": False}))
    assert len(truth.muons[0]) == 0  # not isolated
    assert truth.jets[0].pt[0] > 115.0  # hadron + muon
    assert "met_muons" not in truth.fields


def test_excluded_muons_leave_the_jet_and_enter_met_at_full_momentum() -> None:
    card = modified_card(**{"jets.exclude_muons": True})
    parts = _b_jet_with_muon()
    truth = build_truth_objects(make_events([parts]), card)
    assert truth.jets[0].pt[0] == pytest.approx(100.0)
    mu = parts[1]
    assert (truth.met_muons[0].px, truth.met_muons[0].py) == pytest.approx((mu[2], mu[3]))
    # unsmeared jet, soft term at half scale without noise: MET = -(jet + muon), the soft term is empty
    changes: dict[str, Any] = {"jets.exclude_muons": True, "jets.resolution": PERFECT_RES,
                               "met.soft_term": {"scale": 0.5, "resolution": 0.0}}
    reco = emulate(make_events([parts]), modified_card(**changes), 1)
    hadron = parts[0]
    assert reco.met[0].pt == pytest.approx(np.hypot(hadron[2] + mu[2], hadron[3] + mu[3]), rel=1e-9)
    # a muon below muons.min_pt is left to the soft term
    soft = [parts[0], particle(13, 4.0, 0.6, 0.05, 0.106, -1)]
    truth = build_truth_objects(make_events([soft]), card)
    assert truth.met_muons[0].px == 0.0 and truth.jets[0].pt[0] == pytest.approx(100.0)


def test_track_counts_are_the_charged_constituents_in_the_tracker() -> None:
    tracks = {"min_pt": 0.5, "max_abs_eta": 2.5}
    # jet 1 at eta 0: three charged pions above 0.5 GeV, one at 0.4 GeV, a photon and a K0L (neutral)
    jet1 = [particle(211, 40.0, 0.0, 0.0, 0.14, 1), particle(-211, 10.0, 0.1, 0.05, 0.14, -1),
            particle(211, 1.0, -0.1, 0.1, 0.14, 1), particle(-211, 0.4, 0.05, -0.1, 0.14, -1),
            particle(22, 15.0, 0.0, -0.05), particle(130, 8.0, 0.1, -0.1, 0.5)]
    # jet 2 at eta 2.6, beyond the tracker: its two charged pions do not count
    jet2 = [particle(211, 30.0, 2.6, 2.0, 0.14, 1), particle(-211, 5.0, 2.65, 2.05, 0.14, -1)]
    events = make_events([jet1 + jet2, jet1])
    truth = build_truth_objects(events, modified_card(**{"jets.tracks": tracks}))
    assert ak.to_list(truth.jets.ntracks) == [[3, 0], [3]]
    reco = emulate(events, modified_card(**{"jets.tracks": tracks, "jets.resolution": PERFECT_RES}), 2)
    assert ak.to_list(reco.jets.ntracks) == [[3, 0], [3]]
    # without jets.tracks the jets carry no count
    doc = copy.deepcopy(read_document(CARD))
    del doc["jets"]["tracks"]
    assert "ntracks" not in ak.fields(emulate(events, card_from_doc(doc), 2).jets)


def test_flavour_labels(card: DetectorCard) -> None:
    jets = [particle(211, 60.0, 0.0, phi, 0.14, 1) for phi in (-2.5, -1.0, 0.5, 2.0, 3.0)]
    events = make_events([jets], bhadrons=[[(30.0, 0.1, 0.5), (3.0, 0.0, 3.0)]],
                         chadrons=[[(20.0, 0.0, 0.45), (20.0, -0.1, -1.0)]], taus=[[(25.0, 0.0, 2.1)]])
    truth = build_truth_objects(events, card).jets[0]
    by_phi = dict(zip(np.round(truth.phi, 2).tolist(), truth.flavour.tolist()))
    # b beats c in the same jet; a b hadron below 5 GeV does not label
    assert by_phi == {-2.5: 0, -1.0: 4, 0.5: 5, 2.0: 15, 3.0: 0}


def test_missing_columns_are_reported(card: DetectorCard) -> None:
    events = make_events([[particle(211, 50.0, 0.0, 0.0)]])
    with pytest.raises(RecastError, match="truth.bhadrons"):
        build_truth_objects(ak.zip({"weight": events.weight, "particles": events.particles,
                                    "truth": ak.zip({"mode": events.truth.mode})}, depth_limit=1), card)
    with pytest.raises(RecastError, match="particles"):
        build_truth_objects(ak.zip({"weight": events.weight}), card)
    with pytest.raises(RecastError, match="weight"):
        emulate(ak.zip({"particles": events.particles, "truth": events.truth}, depth_limit=1), card, 1)


# -- the response -----------------------------------------------------------------------
def truth_objects(n: int, jets_per_event: int, pt: float, eta: float, flavour: np.ndarray | int = 0,
                  electrons_per_event: int = 0) -> ak.Array:
    """Synthetic truth objects (as build_truth_objects makes them) with fixed kinematics."""
    rng = np.random.default_rng(11)

    def coll(k: int, extra: dict[str, np.ndarray]) -> ak.Array:
        m = n * k
        phi = rng.uniform(-np.pi, np.pi, m)
        cols = {"pt": np.full(m, pt), "eta": np.full(m, eta), "phi": phi, "px": pt * np.cos(phi), "py": pt * np.sin(phi)}
        return jagged(cols | extra, np.full(n, k))

    jets = coll(jets_per_event, {"m": np.full(n * jets_per_event, 5.0),
                                 "flavour": np.broadcast_to(np.asarray(flavour, dtype=np.int8), (n * jets_per_event,)).copy()})
    electrons = coll(electrons_per_event, {"charge": np.ones(n * electrons_per_event, dtype=np.int8)})
    empty_l = coll(0, {"charge": np.zeros(0, dtype=np.int8)})
    return ak.zip({"jets": jets, "electrons": electrons, "muons": empty_l, "photons": coll(0, {}),
                   "met_truth": ak.zip({"px": np.zeros(n), "py": np.zeros(n)})}, depth_limit=1)


def within_binomial(k: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(k - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1


def test_btag_rates_follow_the_card() -> None:
    flat = {"pt_edges": [20.0, 1000.0], "eta_edges": [0.0, 2.5]}
    rates = {"b": 0.7, "c": 0.2, "tau": 0.05, "light": 0.01}
    card = modified_card(**{"btag.efficiency": {k: flat | {"values": [[v]]} for k, v in rates.items()}})
    labels = np.tile(np.array([5, 4, 15, 0], dtype=np.int8), 50_000)
    reco = respond(truth_objects(40_000, 5, 200.0, 1.0, labels), card, np.random.Generator(np.random.PCG64(5)))
    jets = ak.flatten(reco["jets"])
    for name, label in (("b", 5), ("c", 4), ("tau", 15), ("light", 0)):
        sel = jets.flavour == label
        assert within_binomial(int(ak.sum(jets.btag[sel])), int(ak.sum(sel)), rates[name]), name
    # beyond the b-tagging |eta| range nothing is tagged
    outside = respond(truth_objects(2000, 5, 200.0, 2.6, 5), card, np.random.Generator(np.random.PCG64(5)))
    assert ak.sum(ak.num(outside["jets"])) == 10_000 and not ak.any(outside["jets"].btag)


def test_efficiency_and_resolution_follow_the_card() -> None:
    card = modified_card(**{"electrons.efficiency": {"pt_edges": [10.0, 1e4], "eta_edges": [0.0, 2.47], "values": [[0.8]]},
                            "electrons.resolution": {"variable": "pt", "eta_edges": [0.0, 2.5], "constant": [0.05]}})
    n = 100_000
    reco = respond(truth_objects(n, 0, 100.0, 0.5, electrons_per_event=1), card, np.random.Generator(np.random.PCG64(9)))
    pt = ak.to_numpy(ak.flatten(reco["electrons"].pt))
    assert within_binomial(len(pt), n, 0.8)
    assert np.mean(pt) == pytest.approx(100.0, abs=0.1) and np.std(pt) == pytest.approx(5.0, rel=0.02)


def test_same_seed_same_output_different_seed_differs(card: DetectorCard) -> None:
    events = random_events(200)
    a, b, c = (ak.to_list(emulate(events, card, seed)) for seed in (1, 1, 2))
    assert a == b and a != c


def test_output_does_not_depend_on_the_block_size(card: DetectorCard, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = np.tile(np.array([5, 4, 15, 0], dtype=np.int8), 3000)
    truth = truth_objects(3000, 4, 45.0, 1.0, labels, electrons_per_event=1)

    def run() -> dict[str, Any]:
        reco = respond(truth, card, np.random.Generator(np.random.PCG64(6)))
        return {k: ak.to_list(v) for k, v in reco.items()}

    whole = run()
    monkeypatch.setattr(emulation, "BLOCK_OBJECTS", 1000)   # blocks of 1024 events: 3 of them
    assert len(emulation._blocks(np.arange(0, 12001, 4))) == 3
    assert run() == whole


def test_normals_are_standard_normal_and_independent_of_the_requests() -> None:
    scratch = Scratch()
    whole = emulation._Normals(np.random.SeedSequence(3)).fill(np.empty(400_001, dtype=np.float32), scratch).copy()
    normals = emulation._Normals(np.random.SeedSequence(3))
    parts = [normals.fill(np.empty(k, dtype=np.float32), scratch).copy() for k in (1, 4095, 0, 3, 100_000, 295_902)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    from scipy import stats
    assert stats.kstest(whole, "norm").pvalue > 1e-4
    assert abs(np.mean(whole)) < 5 / np.sqrt(len(whole)) and np.std(whole) == pytest.approx(1.0, abs=0.005)
    # consecutive pairs (r cos a, r sin a) are uncorrelated
    assert abs(np.corrcoef(whole[:2048], whole[2048:4096])[0, 1]) < 0.1


def test_sums_per_event_sparse_and_dense() -> None:
    rng = np.random.default_rng(4)
    for n_objects in (10, 5000):   # ufunc.at for few objects per event, bincount for many
        events = np.sort(rng.integers(0, 1000, n_objects))
        weights = rng.normal(size=n_objects)
        total, counts = np.ones(1000), np.zeros(1000, dtype=np.int64)
        emulation._add_per_event(total, events, weights)
        emulation._add_per_event(counts, events)
        np.testing.assert_allclose(total, 1 + np.bincount(events, weights, minlength=1000), atol=1e-12)
        np.testing.assert_array_equal(counts, np.bincount(events, minlength=1000))


def test_sort_order_matches_pt_order() -> None:
    rng = np.random.default_rng(2)
    scratch = Scratch()
    for _ in range(50):
        counts = rng.integers(0, 9, rng.integers(1, 300))
        events = np.repeat(np.arange(len(counts)), counts)
        pt = np.round(rng.exponential(30.0, len(events)), int(rng.integers(0, 3)))   # with ties
        ours, theirs = emulation._sort_order(pt, events, scratch), pt_order(pt, counts, events)
        assert (ours is None and theirs is None) or np.array_equal(ours, theirs)


def test_perfect_detector_reproduces_truth() -> None:
    card = perfect_card()
    events = random_events(300)
    truth = build_truth_objects(events, card)
    reco = emulate(events, card, 3)
    # all truth jets pass 0.5 x threshold; with no smearing only those above the threshold stay
    truth_jets = truth.jets[truth.jets.pt >= card.jets.min_pt]
    assert ak.all(ak.num(reco.jets) == ak.num(truth_jets))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(reco.jets.pt)), ak.to_numpy(ak.flatten(truth_jets.pt)))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(reco.jets.m)), ak.to_numpy(ak.flatten(truth_jets.m)))
    # MET: everything visible counted once, exactly
    met_truth = np.hypot(ak.to_numpy(truth.met_truth.px), ak.to_numpy(truth.met_truth.py))
    np.testing.assert_allclose(ak.to_numpy(reco.met.pt), met_truth, atol=1e-9)


def test_met_from_smeared_objects_and_soft_term() -> None:
    card = modified_card(**{"met.soft_term": {"scale": 0.5, "resolution": 0.0}})
    events = random_events(300)
    truth = build_truth_objects(events, card)
    reco = emulate(events, card, 4)
    # recompute: -(reco objects + 0.5 * (visible - truth of reco objects)); a reco object is
    # matched to its truth object by direction (smearing keeps eta and phi)
    for i in range(50):
        # muons outside jets (jets.exclude_muons) count at full momentum: (0.5 - 1) p
        mx = 0.5 * truth.met_truth.px[i] - 0.5 * truth.met_muons.px[i]
        my = 0.5 * truth.met_truth.py[i] - 0.5 * truth.met_muons.py[i]
        for name in ("jets", "electrons", "muons", "photons"):
            for obj in reco[name][i]:
                t = [o for o in truth[name][i] if o.eta == obj.eta and o.phi == obj.phi][0]
                mx -= (obj.pt / t.pt - 0.5) * t.px
                my -= (obj.pt / t.pt - 0.5) * t.py
        assert reco.met[i].pt == pytest.approx(np.hypot(mx, my), abs=1e-4)


def test_objects_are_sorted_by_pt(card: DetectorCard) -> None:
    reco = respond(truth_objects(20_000, 6, 40.0, 0.5), card, np.random.Generator(np.random.PCG64(8)))
    pt = reco["jets"].pt
    assert ak.all(pt[:, 1:] <= pt[:, :-1])
    assert ak.sum(ak.num(pt)) > 100_000


def test_output_conforms_to_the_reco_format(card: DetectorCard) -> None:
    events = random_events(50)
    reco = emulate(events, card, 5)
    assert reco.fields == ["weight", "weights", "jets", "electrons", "muons", "photons", "met", "truth"]
    expected = {
        "jets": {"pt": "float64", "eta": "float64", "phi": "float64", "m": "float64", "btag": "bool", "flavour": "int8",
                 "ntracks": "int16"},
        "electrons": {"pt": "float64", "eta": "float64", "phi": "float64", "charge": "int8"},
        "muons": {"pt": "float64", "eta": "float64", "phi": "float64", "charge": "int8"},
        "photons": {"pt": "float64", "eta": "float64", "phi": "float64"},
    }
    for name, fields in expected.items():
        assert reco[name].fields == list(fields)
        for field, dtype in fields.items():
            assert str(ak.flatten(reco[name][field]).type.content) == dtype, (name, field)
    # met.significance: the card's met_significance section (recastflow.emulate.metsig), added with region C
    assert reco.met.fields == ["pt", "phi", "significance"] and str(reco.met.pt.type.content) == "float64"
    assert str(reco.weight.type.content) == "float64"
    assert ak.to_list(reco.weight) == ak.to_list(events.weight)
    assert ak.to_list(reco.weights) == ak.to_list(events.weights)
    assert ak.to_list(reco.truth) == ak.to_list(events.truth)


def test_empty_inputs(card: DetectorCard) -> None:
    reco = emulate(make_events([[], []]), card, 1)
    assert len(reco) == 2 and ak.sum(ak.num(reco.jets)) == 0
    assert emulate(make_events([[particle(211, 50.0, 0.0, 0.0)]])[:0], card, 1).fields[:2] == ["weight", "jets"]


def header(n: int) -> dict[str, Any]:
    return {"format": EVENTS, "point": "P1", "n_events": n, "sum_weights": float(n), "xsec_pb": 1.5,
            "xsec_source": "test", "br_factor": 1.0, "seed": 42, "chunk": {"index": 0, "count": 1}}


def test_emulate_file_writes_reproducible_reco_files(tmp_path: Path) -> None:
    events = random_events(100)
    src = tmp_path / "events.parquet"
    write_events(src, events, header(len(events)))
    outs = [tmp_path / f"reco{i}.parquet" for i in range(3)]
    for out, seed in zip(outs, (10, 10, 11)):
        written = emulate_file(src, CARD, out, seed=seed)
    assert outs[0].read_bytes() == outs[1].read_bytes() != outs[2].read_bytes()
    h = read_header(outs[0])
    assert h["format"] == RECO and h["emulation_seed"] == 10 and h["point"] == "P1" and h["xsec_pb"] == 1.5
    assert h["detector"] == {"card": str(CARD), "sha256": load_card(CARD).sha256, "name": "ATLAS-Run2"}
    assert written["emulation_seed"] == 11
    reco, _ = read_events(outs[0], (RECO,))
    assert len(reco) == 100 and "btag" in reco.jets.fields


def test_emulate_file_refuses_reco_input(tmp_path: Path) -> None:
    events = random_events(5)
    src = tmp_path / "events.parquet"
    write_events(src, events, header(5))
    reco = tmp_path / "reco.parquet"
    emulate_file(src, CARD, reco, seed=1)
    with pytest.raises(RecastError, match="expected recastflow-events/1"):
        emulate_file(reco, CARD, tmp_path / "again.parquet", seed=1)
