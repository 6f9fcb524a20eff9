"""The ATLAS-SUSY-2018-04 selection (two hadronic taus) on hand-made reco events, and mt2()."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from recastflow.core.errors import RecastError
from recastflow.core.events import RECO
from recastflow.select.selection import evaluate_expression, load_selection, run_selection

REPO = Path(__file__).resolve().parents[2]
SELECTION = REPO / "config" / "analyses" / "ATLAS-SUSY-2018-04" / "selection.yaml"
HEADER = {
    "format": RECO,
    "point": "p",
    "n_events": 10,
    "sum_weights": 10.0,
    "xsec_pb": 1.0,
    "xsec_source": "test",
    "br_factor": 1.0,
}


def tau(pt: float, phi: float, charge: int, tight: bool = True, medium: bool = True, eta: float = 0.0) -> dict:
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "m": 1.0,
        "charge": charge,
        "prongs": 1,
        "loose": True,
        "medium": medium,
        "tight": tight,
    }


def event(
    taus: list[dict],
    met: float,
    met_phi: float,
    ditau: bool = True,
    ditau_met: bool = True,
    bjet: bool = False,
    muon: bool = False,
) -> dict[str, Any]:
    # every collection holds one soft object below the selection's thresholds, so that the lists are typed
    soft = {"pt": 5.0, "eta": 0.0, "phi": 3.0, "charge": 1}
    jets = [{"pt": 10.0, "eta": 0.0, "phi": 3.0, "m": 1.0, "btag": False, "flavour": 0}]
    jets += [{"pt": 60.0, "eta": 1.5, "phi": -1.0, "m": 5.0, "btag": True, "flavour": 5}] if bjet else []
    muons = [soft] + ([{"pt": 30.0, "eta": -1.0, "phi": 1.0, "charge": 1}] if muon else [])
    return {
        "weight": 1.0,
        "jets": jets,
        "electrons": [soft],
        "muons": muons,
        "photons": [{"pt": 5.0, "eta": 0.0, "phi": 3.0}],
        "met": {"pt": met, "phi": met_phi},
        "taus": taus,
        "triggers": {"ditau": ditau, "ditau_met": ditau_met},
        "truth": {"mode": "test"},
    }


# back-to-back-ish taus (dphi = 2.5, dR = 2.5 < 3.2) with MET between them: large mT2
LOW = [tau(120.0, 1.25, 1), tau(80.0, -1.25, -1)]
HIGH = [tau(80.0, 1.25, 1, tight=False), tau(60.0, -1.25, -1)]


def events() -> ak.Array:
    return ak.Array(
        [
            event(LOW, 100.0, math.pi),  # 0: SR-lowMass
            event(HIGH, 200.0, math.pi),  # 1: SR-highMass
            event([LOW[0], tau(80.0, -1.25, 1)], 100.0, math.pi),  # 2: same sign
            event(LOW, 100.0, math.pi, bjet=True),  # 3: b-jet
            event(LOW, 100.0, math.pi, ditau=False),  # 4: trigger did not fire
            event(LOW, 100.0, math.pi, muon=True),  # 5: light lepton
            event(
                [LOW[0], tau(80.0, -1.25, -1, tight=False)], 100.0, math.pi
            ),  # 6: one tight tau only (SR-low wants 2)
            event([tau(120.0, 1.25, 1), tau(80.0, 1.0, -1)], 100.0, math.pi),  # 7: collimated pair: m(tau tau) < 120
        ]
    )


def test_selection_puts_each_hand_made_event_where_the_cuts_say() -> None:
    selection = load_selection(SELECTION)
    result = run_selection(events(), HEADER, selection, 139.0)
    assert result.regions["SR1cut_cuts"].raw == (1,)
    assert result.regions["SR2cut_cuts"].raw == (1,)
    rows = result.selected
    regions = {name: ak.to_list(rows["regions", name]) for name in ("SR1cut_cuts", "SR2cut_cuts")}
    assert regions["SR1cut_cuts"].count(0) == 1 and regions["SR2cut_cuts"].count(0) == 1
    # the multijet control regions want fewer than two medium taus: none of these events
    assert result.regions["QCR1cut_cuts"].raw == (0,) and result.regions["QCR2cut_cuts"].raw == (0,)


def test_loose_tau_pair_enters_the_multijet_control_region_with_the_trigger_weight() -> None:
    pair = [tau(120.0, 1.25, 1, medium=False, tight=False), tau(80.0, -1.25, -1, medium=False, tight=False)]
    result = run_selection(ak.Array([event(pair, 100.0, math.pi)] * 2), HEADER, load_selection(SELECTION), 139.0)
    norm = 139.0 * 1000 * 1.0 / 10.0
    assert result.regions["QCR1cut_cuts"].raw == (2,)
    np.testing.assert_allclose(result.regions["QCR1cut_cuts"].yields, [2 * 0.8 * norm])
    assert result.regions["SR1cut_cuts"].raw == (0,)


def test_mt2_matches_a_hand_computation() -> None:
    # two massless visible objects back to back along x with MET along y: the invisible momenta split
    # symmetrically, mT2 = sqrt(2 pT_vis E_T,inv (1 - cos dphi)) of each side at the balanced split
    reco = ak.Array([event([tau(100.0, 0.0, 1), tau(100.0, math.pi, -1)], 0.0, 0.0)])
    value = evaluate_expression("mt2(taus[0], taus[1], met)", reco)
    # with no missing pT the invisible particles are at rest: mT2 = max(m_vis) = 1 GeV (tau mass 1 in the events)
    assert value[0] == pytest.approx(1.0, abs=1e-6)
    # one massless visible object per side and MET along the first one: mT2 = 0 (all on one side, mT = 0)
    reco = ak.Array([event([tau(50.0, 0.0, 1, eta=0.0), tau(50.0, 2.0, -1)], 0.0, 0.0)])
    reco = ak.with_field(reco, ak.Array([[{**t, "m": 0.0} for t in reco.taus[0].to_list()]]), "taus")
    assert evaluate_expression("mt2(taus[0], taus[1], met)", reco)[0] == pytest.approx(0.0, abs=1e-6)


def test_mt2_equals_mct_without_upstream_momentum() -> None:
    # massless visible and invisible particles and MET = -(p1 + p2) (nothing recoils): mT2 equals the
    # contransverse mass sqrt(2 pT1 pT2 (1 + cos dphi)) (Cho, Choi, Kim, Park, arXiv:0810.4853)
    p1, p2, phi2 = 60.0, 40.0, 2.0
    mx, my = -(p1 + p2 * math.cos(phi2)), -(p2 * math.sin(phi2))
    reco = ak.Array([event([tau(p1, 0.0, 1), tau(p2, phi2, -1)], math.hypot(mx, my), math.atan2(my, mx))])
    reco = ak.with_field(reco, ak.Array([[{**t, "m": 0.0} for t in reco.taus[0].to_list()]]), "taus")
    expected = math.sqrt(2 * p1 * p2 * (1 + math.cos(phi2)))
    assert evaluate_expression("mt2(taus[0], taus[1], met)", reco)[0] == pytest.approx(expected, rel=1e-6)
    assert evaluate_expression("mct(taus[0], taus[1])", reco)[0] == pytest.approx(expected, rel=1e-9)


def test_reco_files_without_tight_taus_name_the_missing_field() -> None:
    reco = events()
    reco = ak.with_field(reco, reco.taus[["pt", "eta", "phi", "m", "charge", "prongs", "loose", "medium"]], "taus")
    with pytest.raises(RecastError) as err:
        run_selection(reco, HEADER, load_selection(SELECTION), 139.0)
    assert err.value.field == "taus.tight"
    assert "\n" not in str(err.value)


def test_reco_files_without_taus_name_the_column() -> None:
    reco = events()
    reco = reco[[f for f in reco.fields if f not in ("taus", "triggers")]]
    with pytest.raises(RecastError) as err:
        run_selection(reco, HEADER, load_selection(SELECTION), 139.0)
    assert err.value.field in ("taus", "triggers")
    # and says which detector cards make it
    assert "with a detector card that has a 'taus' section (emulate the events again)" in str(err.value)
