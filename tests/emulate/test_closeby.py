"""b-tagging of close-by jets: Delta R to the nearest other jet and the card's efficiency factors."""

from __future__ import annotations

import copy
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from recastflow.core.config import read_document
from recastflow.core.errors import RecastError
from recastflow.emulate.card import card_from_doc
from recastflow.emulate.closeby import close_by_from_doc, nearest_jet_dr
from recastflow.emulate.clustering import jagged
from recastflow.emulate.emulation import respond

CARD = Path(__file__).resolve().parents[2] / "config" / "detectors" / "ATLAS-Run2.yaml"


def brute_force(eta, phi, pt, events, min_pt):
    out = np.full(len(eta), np.inf)
    for i in range(len(eta)):
        for j in range(len(eta)):
            if i != j and events[i] == events[j] and pt[j] >= min_pt:
                dphi = abs(phi[i] - phi[j])
                dphi = min(dphi, 2 * np.pi - dphi)
                out[i] = min(out[i], np.hypot(eta[i] - eta[j], dphi))
    return out


def test_nearest_jet_dr_matches_brute_force():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 7, 60)
    events = np.repeat(np.arange(60), counts)
    n = len(events)
    eta, phi, pt = rng.uniform(-2.5, 2.5, n), rng.uniform(-np.pi, np.pi, n), rng.uniform(10, 200, n)
    got = nearest_jet_dr(eta, phi, pt, events, 30.0)
    np.testing.assert_allclose(got, brute_force(eta, phi, pt, events, 30.0))
    assert np.isinf(got[np.repeat(counts == 1, counts)]).all()  # a lone jet has no neighbour


def test_factors_apply_inside_the_edges_only():
    cb = close_by_from_doc({"dr_edges": [0.0, 0.6, 1.0], "factors": [0.5, 0.8]}, "card")
    np.testing.assert_allclose(cb.factor(np.array([0.1, 0.7, 1.0, 3.0, np.inf])), [0.5, 0.8, 1.0, 1.0, 1.0])
    assert cb.flavours == (5,) and cb.min_pt == 20.0
    with pytest.raises(RecastError, match="one factor per bin") as exc:
        close_by_from_doc({"dr_edges": [0.0, 0.6, 1.0], "factors": [0.5]}, "card")
    assert exc.value.field == "btag.close_by.factors"
    with pytest.raises(RecastError, match="increase"):
        close_by_from_doc({"dr_edges": [0.6, 0.6], "factors": [0.5]}, "card")


def test_close_by_b_jets_are_tagged_less_often_and_others_unchanged():
    doc = copy.deepcopy(read_document(CARD))
    flat = {"pt_edges": [20.0, 1000.0], "eta_edges": [0.0, 2.5]}
    doc["btag"]["efficiency"] = {k: flat | {"values": [[v]]} for k, v in {"b": 0.8, "c": 0.2, "tau": 0.05, "light": 0.01}.items()}
    doc["btag"]["close_by"] = {"dr_edges": [0.0, 1.0], "factors": [0.5]}
    card = card_from_doc(doc)
    rng = np.random.default_rng(9)
    n, k = 20_000, 3
    phi = rng.uniform(-np.pi, np.pi, n * k)
    cols = {"pt": np.full(n * k, 200.0), "eta": np.full(n * k, 1.0), "phi": phi, "px": 200 * np.cos(phi),
            "py": 200 * np.sin(phi), "m": np.full(n * k, 5.0),
            "flavour": np.tile(np.array([5, 5, 0], dtype=np.int8), n)}

    def coll(m, extra):
        z = np.zeros(0)
        return jagged({"pt": z, "eta": z, "phi": z, "px": z, "py": z} | extra, np.full(n, m))

    truth = ak.zip({"jets": jagged(cols, np.full(n, k)), "electrons": coll(0, {"charge": np.zeros(0, np.int8)}),
                    "muons": coll(0, {"charge": np.zeros(0, np.int8)}), "photons": coll(0, {}),
                    "met_truth": ak.zip({"px": np.zeros(n), "py": np.zeros(n)})}, depth_limit=1)
    jets = respond(truth, card, np.random.Generator(np.random.PCG64(1)))["jets"]
    flat_jets = ak.flatten(jets)
    events = np.repeat(np.arange(n), ak.to_numpy(ak.num(jets)))
    dr = nearest_jet_dr(ak.to_numpy(flat_jets.eta), ak.to_numpy(flat_jets.phi), ak.to_numpy(flat_jets.pt), events, 20.0)
    btag, flav = ak.to_numpy(flat_jets.btag), ak.to_numpy(flat_jets.flavour)
    close, far = (flav == 5) & (dr < 1.0), (flav == 5) & (dr >= 1.0)
    assert close.sum() > 5000 and far.sum() > 5000
    assert btag[close].mean() == pytest.approx(0.4, abs=0.02)
    assert btag[far].mean() == pytest.approx(0.8, abs=0.02)
    assert btag[flav == 0].mean() == pytest.approx(0.01, abs=0.005)  # light jets: not in 'flavours'
