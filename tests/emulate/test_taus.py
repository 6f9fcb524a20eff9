"""Hadronic-tau emulation (recastflow.emulate.taus) against hand computations, and its card checks."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from recastflow.core.errors import RecastError
from recastflow.emulate.card import load_card
from recastflow.emulate.taus import TauCard, emulate_taus, taus_from_doc

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "detectors" / "ATLAS-Run2.yaml"


def flat_map(value: float) -> dict[str, Any]:
    return {"pt_edges": [20.0, 1000.0], "eta_edges": [0.0, 2.5], "values": [[value]]}


def section(**over: Any) -> dict[str, Any]:
    """A tau section with flat, hand-checkable numbers and no smearing."""
    doc: dict[str, Any] = {
        "min_pt": 20.0,
        "max_abs_eta": 2.5,
        "resolution": {"variable": "pt", "eta_edges": [0.0, 2.5], "constant": [0.0]},
        "working_points": {
            "medium": {"efficiency": {"1prong": flat_map(0.6), "3prong": flat_map(0.4)}, "fake_rate": flat_map(0.0)},
            "tight": {"efficiency": {"1prong": flat_map(0.3), "3prong": flat_map(0.2)}, "fake_rate": flat_map(0.0)},
        },
        "triggers": {"ditau": {"working_point": "medium", "min_pt": [95.0, 60.0], "efficiency": 1.0}},
    }
    doc.update(over)
    return doc


def truth_tau(pt: float, prongs: int, charge: int = -1, eta: float = 0.3, phi: float = 0.5) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "m": 0.8, "charge": charge, "prongs": prongs}


def reco_jet(pt: float, flavour: int = 0, eta: float = -1.0, phi: float = 2.0) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "m": 5.0, "flavour": flavour}


def run(
    card: TauCard,
    taus: list[list[dict]],
    jets: list[list[dict]] | None = None,
    met: list[float] | None = None,
    seed: int = 1,
) -> tuple[ak.Array, Any]:
    n = len(taus)
    # no jets: empty lists (the emulation reads no fields from them)
    jets_arr = ak.Array(jets if jets is not None else [[] for _ in range(n)])
    met_arr = ak.Array([{"pt": m, "phi": 0.0} for m in (met or [0.0] * n)])
    return emulate_taus(ak.Array(taus), jets_arr, met_arr, card, seed)


def test_one_prong_tau_keeps_its_visible_momentum_and_passes_at_the_efficiency() -> None:
    card = taus_from_doc(section(), "card.yaml")
    n = 20000
    taus, _ = run(card, [[truth_tau(50.0, 1, charge=1)] for _ in range(n)])
    kept = ak.flatten(taus)
    # no smearing: the visible momentum is the truth one; the charge is the truth charge (no flips set)
    assert set(np.round(ak.to_numpy(kept.pt), 9)) == {50.0}
    assert set(ak.to_numpy(kept.charge)) == {1}
    assert set(ak.to_numpy(kept.prongs)) == {1}
    assert np.all(ak.to_numpy(kept.m) == 0.8)
    medium = ak.to_numpy(kept.medium).sum() / n
    tight = ak.to_numpy(kept.tight).sum() / n
    # binomial: 0.6 and 0.3 within 4 sigma (sigma = sqrt(p (1 - p) / n) ~ 0.0035)
    assert abs(medium - 0.6) < 4 * math.sqrt(0.24 / n)
    assert abs(tight - 0.3) < 4 * math.sqrt(0.21 / n)
    # one uniform number per tau: tight taus are medium taus (nested working points)
    assert not np.any(ak.to_numpy(kept.tight) & ~ak.to_numpy(kept.medium))


def test_three_prong_tau_uses_its_own_map_and_two_prongs_are_not_taus() -> None:
    card = taus_from_doc(section(), "card.yaml")
    n = 20000
    taus, _ = run(card, [[truth_tau(80.0, 3), truth_tau(80.0, 2, phi=-2.0)] for _ in range(n)])
    kept = ak.flatten(taus)
    assert set(ak.to_numpy(kept.prongs)) == {3}
    assert abs(ak.to_numpy(kept.medium).sum() / n - 0.4) < 4 * math.sqrt(0.24 / n)


def test_resolution_and_charge_flip_by_hand() -> None:
    doc = section(
        resolution={"variable": "pt", "eta_edges": [0.0, 2.5], "constant": [0.1]}, charge_flip={"1prong": 0.25}
    )
    doc["working_points"]["medium"]["efficiency"]["1prong"] = flat_map(1.0)
    card = taus_from_doc(doc, "card.yaml")
    n = 20000
    taus, _ = run(card, [[truth_tau(100.0, 1, charge=-1)] for _ in range(n)])
    pt = ak.to_numpy(ak.flatten(taus.pt))
    # sigma/pT = 10% at every pT: mean 100, width 10 GeV (taus above min_pt only: 8 sigma away)
    assert len(pt) == n
    assert abs(pt.mean() - 100.0) < 4 * 10.0 / math.sqrt(n)
    assert abs(pt.std() - 10.0) < 0.3
    flipped = (ak.to_numpy(ak.flatten(taus.charge)) == 1).mean()
    assert abs(flipped - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)


def test_a_jet_fakes_a_tau_only_when_not_matched_to_one() -> None:
    doc = section()
    doc["working_points"]["medium"]["fake_rate"] = flat_map(1.0)
    card = taus_from_doc(doc, "card.yaml")
    taus, _ = run(card, [[], []], jets=[[reco_jet(70.0, flavour=0)], [reco_jet(70.0, flavour=15)]])
    # the light jet becomes a medium (not tight) 1-prong tau with the jet's momentum; the tau-labelled jet does not
    assert ak.num(taus).tolist() == [1, 0]
    fake = taus[0][0]
    assert (fake.pt, fake.eta, fake.phi, fake.m) == (70.0, -1.0, 2.0, 5.0)
    assert fake.prongs == 1 and fake.medium and not fake.tight and fake.charge in (-1, 1)


def test_fake_rate_by_hand() -> None:
    doc = section()
    doc["working_points"]["medium"]["fake_rate"] = flat_map(0.02)
    card = taus_from_doc(doc, "card.yaml")
    n = 50000
    taus, _ = run(card, [[] for _ in range(n)], jets=[[reco_jet(40.0)] for _ in range(n)])
    rate = ak.sum(ak.num(taus)) / n
    assert abs(rate - 0.02) < 4 * math.sqrt(0.02 * 0.98 / n)


def test_trigger_thresholds_and_plateau_efficiency() -> None:
    doc = section()
    for wp in doc["working_points"].values():
        wp["efficiency"]["1prong"] = flat_map(1.0)
    doc["triggers"]["ditau_met"] = {
        "working_point": "tight",
        "min_pt": [50.0, 40.0],
        "min_met": 150.0,
        "efficiency": 1.0,
    }
    card = taus_from_doc(doc, "card.yaml")
    events = [
        [truth_tau(96.0, 1), truth_tau(61.0, 1, phi=-2.0)],  # ditau: both above 95/60
        [truth_tau(94.0, 1), truth_tau(61.0, 1, phi=-2.0)],  # leading below 95
        [truth_tau(200.0, 1), truth_tau(59.0, 1, phi=-2.0)],  # subleading below 60
        [truth_tau(120.0, 1)],  # one tau only
    ]
    _, triggers = run(card, events, met=[151.0, 151.0, 149.0, 200.0])
    assert triggers.ditau.tolist() == [True, False, False, False]
    # ditau_met: 50/40 GeV and MET >= 150: the first two events (MET 151), not the third (149) nor the fourth
    assert triggers.ditau_met.tolist() == [True, True, False, False]
    doc["triggers"]["ditau"]["efficiency"] = 0.7
    card = taus_from_doc(doc, "card.yaml")
    n = 20000
    _, triggers = run(card, [events[0]] * n)
    assert abs(np.mean(ak.to_numpy(triggers.ditau)) - 0.7) < 4 * math.sqrt(0.21 / n)


def test_same_seed_same_taus_other_seed_other_taus() -> None:
    card = taus_from_doc(section(), "card.yaml")
    events = [[truth_tau(50.0 + i, 1 + 2 * (i % 2))] for i in range(200)]
    a, _ = run(card, events, seed=5)
    b, _ = run(card, events, seed=5)
    c, _ = run(card, events, seed=6)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_the_atlas_card_has_taus_with_nested_working_points() -> None:
    taus = load_card(CARD).taus
    assert list(taus.working_points) == ["loose", "medium", "tight"]
    assert set(taus.triggers) == {"ditau", "ditau_met"}
    grid_pt = np.array([20.0, 25.0, 45.0, 99.0, 200.0, 600.0, 2000.0])
    for prongs in (1, 3):
        for eta in (0.5, 1.45, 2.0):
            effs = [
                wp.efficiency[prongs].lookup(grid_pt, np.full(len(grid_pt), eta)) for wp in taus.working_points.values()
            ]
            assert np.all(effs[0] >= effs[1]) and np.all(effs[1] >= effs[2])
            if eta == 1.45:  # the barrel-endcap crack: no taus
                assert np.all(effs[0] == 0)


@pytest.mark.parametrize(
    ("edit", "field", "says"),
    [
        (
            lambda d: d["working_points"].update({"vtight": d["working_points"]["tight"]}),
            "taus.working_points.vtight",
            "unknown working point 'vtight'",
        ),
        (
            lambda d: d["triggers"]["ditau"].update({"working_point": "loose"}),
            "taus.triggers.ditau.working_point",
            "unknown working point 'loose'",
        ),
        (
            lambda d: d["triggers"].update({"single_tau": d["triggers"]["ditau"]}),
            "taus.triggers.single_tau",
            "unknown trigger path",
        ),
        (
            lambda d: d["working_points"]["medium"]["efficiency"]["3prong"].update({"pt_edges": [25.0, 1000.0]}),
            "taus.working_points.medium.efficiency.3prong.pt_edges",
            "would get efficiency 0",
        ),
        (
            lambda d: d["working_points"]["tight"]["fake_rate"].update({"eta_edges": [0.0, 1.37]}),
            "taus.working_points.tight.fake_rate.eta_edges",
            "do not cover",
        ),
    ],
)
def test_bad_tau_sections_name_file_and_field(edit: Any, field: str, says: str) -> None:
    doc = copy.deepcopy(section())
    edit(doc)
    with pytest.raises(RecastError) as err:
        taus_from_doc(doc, "cards/bad.yaml")
    assert err.value.path == "cards/bad.yaml"
    assert err.value.field == field
    assert says in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_tau_section_in_a_card_file_is_one_line(tmp_path: Path) -> None:
    text = CARD.read_text().replace("    medium:\n      efficiency:", "    medum:\n      efficiency:", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(RecastError) as err:
        load_card(bad)
    assert err.value.field == "taus.working_points.medum"
    assert str(bad) in str(err.value.path)
