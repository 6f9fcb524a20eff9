"""The MET significance in the emulation output: ``met.significance`` of recastflow-reco/1 events."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from recastflow.core.config import read_document
from recastflow.emulate.card import DetectorCard, card_from_doc, load_card
from recastflow.emulate.clustering import jagged
from recastflow.emulate.emulation import emulate
from recastflow.emulate.metsig import event_met_significance, met_significance

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "detectors" / "ATLAS-Run2.yaml"


def particle(pid: int, pt: float, eta: float, phi: float, charge: float = 0.0) -> tuple:
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return (pid, charge, px, py, pz, math.sqrt(px * px + py * py + pz * pz))


def events(rows: list[list[tuple]]) -> ak.Array:
    """recastflow-events/1 records with the given stable particles and an empty truth record."""
    n = len(rows)
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = [p for r in rows for p in r]
    names = ("pid", "charge", "px", "py", "pz", "e")
    dtypes = (np.int32, np.float32, np.float64, np.float64, np.float64, np.float64)
    cols = {k: np.array([p[i] for p in flat], dtype=dt) for i, (k, dt) in enumerate(zip(names, dtypes))}
    hadrons = jagged({k: np.zeros(0) for k in ("pt", "eta", "phi")}, np.zeros(n, dtype=np.int64))
    truth = ak.zip({"bhadrons": hadrons, "chadrons": hadrons, "taus": hadrons,
                    "mode": np.array(["test"] * n, dtype=object).astype(str)}, depth_limit=1)
    return ak.zip({"weight": np.ones(n), "particles": jagged(cols, counts), "truth": truth}, depth_limit=1)


# event 0: two hard pions (two jets) and a neutrino; event 1: a jet, a muon and a neutrino; event 2: nothing
EVENTS = events([
    [particle(211, 150.0, 0.3, 0.2, 1), particle(211, 80.0, -0.8, 2.5, -1), particle(12, 200.0, 0.0, -1.5)],
    [particle(211, 120.0, 1.0, 1.0, 1), particle(13, 40.0, -0.5, -2.0, -1), particle(12, 90.0, 0.4, 2.8)],
    [],
])


@pytest.fixture(scope="module")
def card() -> DetectorCard:
    return load_card(CARD)


def card_without_metsig() -> DetectorCard:
    doc = copy.deepcopy(read_document(CARD))
    del doc["met_significance"]
    return card_from_doc(doc)


def test_emulated_events_carry_the_significance(card: DetectorCard) -> None:
    reco = emulate(EVENTS, card, 3)
    assert reco.met.fields == ["pt", "phi", "significance"]
    assert str(reco.met.significance.type.content) == "float64"
    assert card.met_significance is not None
    expected = event_met_significance(reco, card, card.met_significance)
    np.testing.assert_array_equal(ak.to_numpy(reco.met.significance), expected)


def test_significance_by_hand_on_one_event(card: DetectorCard) -> None:
    # the objects of event 0 with the card's met_significance resolutions, written out: the jets' relative pT
    # resolution interpolated linearly in ln pT between the table's points in their |eta| bin, their
    # azimuthal resolution from the card's pT bins
    reco = emulate(EVENTS, card, 3)
    ev = reco[0]
    settings = card.met_significance
    assert settings is not None and len(ev.electrons) == 0 and len(ev.muons) == 0 and len(ev.jets) == 2
    table = settings.jet_resolution
    assert table is not None
    pt = np.array(ev.jets.pt)
    eta = np.abs(np.array(ev.jets.eta))
    rel = []
    for p, e in zip(pt, eta):
        i = max(k for k, x in enumerate(table.pt_points) if x <= p)
        j = max(k for k, x in enumerate(table.eta_edges[:-1]) if x <= e)
        lo, hi = table.pt_points[i], table.pt_points[i + 1]
        f = math.log(p / lo) / math.log(hi / lo)
        rel.append((1 - f) * table.values[i][j] + f * table.values[i + 1][j])
    rel = np.array(rel)
    # ATLAS's significance assumes more than the smearing resolution (the larger of data and simulation)
    assert np.all(rel > card.jets.resolution.relative(pt, eta))
    sigma_phi = np.array([settings.jet_phi(np.array([p]))[0] for p in pt])
    cxx = cyy = settings.soft_resolution**2
    cxy = 0.0
    for p, ph, r, sp in zip(pt, np.array(ev.jets.phi), rel, sigma_phi):
        par2, perp2 = (r * p) ** 2, (p * sp) ** 2
        c, s = math.cos(ph), math.sin(ph)
        cxx += par2 * c * c + perp2 * s * s
        cyy += par2 * s * s + perp2 * c * c
        cxy += (par2 - perp2) * s * c
    c, s = math.cos(ev.met.phi), math.sin(ev.met.phi)
    var_l = cxx * c * c + cyy * s * s + 2 * cxy * c * s
    var_t = cxx * s * s + cyy * c * c - 2 * cxy * c * s
    rho = ((cyy - cxx) * c * s + cxy * (c * c - s * s)) / math.sqrt(var_l * var_t)
    rho = 0.0 if abs(rho) >= settings.max_abs_rho else rho
    assert ev.met.significance == pytest.approx(ev.met.pt / math.sqrt(var_l * (1 - rho * rho)), rel=1e-9)
    # and the same through metsig's array function
    # (one event: the jets as a jagged list)
    objects = [tuple(ak.Array([list(v)]) for v in (pt, np.array(ev.jets.phi), rel * pt, sigma_phi))]
    direct = met_significance(np.array([ev.met.pt]), np.array([ev.met.phi]), objects, settings.soft_resolution,
                              settings.max_abs_rho)
    assert ev.met.significance == pytest.approx(direct[0], rel=1e-12)


def test_significance_draws_no_random_numbers(card: DetectorCard) -> None:
    # the card's met_significance section adds a column and changes nothing else: same seed, same objects
    with_s, without = emulate(EVENTS, card, 11), emulate(EVENTS, card_without_metsig(), 11)
    assert without.met.fields == ["pt", "phi"]
    for name in ("jets", "electrons", "muons", "photons"):
        assert ak.to_list(with_s[name]) == ak.to_list(without[name])
    assert ak.to_list(with_s.met.pt) == ak.to_list(without.met.pt)
    # deterministic: the same seed gives the same significance
    again = emulate(EVENTS, card, 11)
    assert ak.to_list(again.met.significance) == ak.to_list(with_s.met.significance)
