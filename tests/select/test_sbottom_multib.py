"""The b-jet pairing functions (maxdr, maxmindr, maxminm) and the ATLAS-SUSY-2018-31 selection file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.core.events import RECO
from recastflow.select.expressions import Scope, compile_expression
from recastflow.select.selection import evaluate_expression, load_selection, run_selection

REPO = Path(__file__).resolve().parents[2]
SELECTION = REPO / "config" / "analyses" / "ATLAS-SUSY-2018-31" / "selection.yaml"


def bjet(pt: float, eta: float, phi: float, m: float = 0.0) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "m": m, "btag": True, "flavour": 5}


def event(jets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"weight": 1.0, "jets": jets, "electrons": [], "muons": [], "photons": [], "met": {"pt": 0.0, "phi": 0.0}}


# event 0: four massless b-jets at eta 0; phi 0 and 3 are the farthest pair (dR = 3); of the other two
# (phi 1.0 and 1.5, dR = 0.5), each 100 GeV: m = sqrt(2 * 100 * 100 * (1 - cos 0.5))
# event 1: three b-jets: a largest pair exists, no second pair
# event 2: one b-jet; event 3: five b-jets, the fifth far in eta so that it joins the largest pair
EVENTS = ak.Array(
    [
        event([bjet(300, 0, 0.0), bjet(200, 0, 3.0), bjet(100, 0, 1.0), bjet(100, 0, 1.5)]),
        event([bjet(300, 0, 0.0), bjet(200, 0, 2.0), bjet(100, 0, 1.0)]),
        event([bjet(300, 0, 0.0)]),
        event([bjet(300, 0, 0.0), bjet(200, 0, 3.0), bjet(100, 0, 1.0), bjet(100, 0, 1.5), bjet(50, 4.0, 0.0)]),
    ]
)


def values(text: str) -> np.ndarray:
    return np.asarray(evaluate_expression(text, EVENTS), dtype=float)


def test_largest_dr_pair() -> None:
    # event 3: jets 1 (eta 0, phi 3) and 4 (eta 4, phi 0): dR = sqrt(16 + 9) = 5
    np.testing.assert_allclose(values("maxdr(jets)"), [3.0, 2.0, math.nan, 5.0])


def test_higgs_candidate_is_the_closest_pair_of_the_rest() -> None:
    # event 3: after removing jets 1 and 4, the closest pair is jets 2 and 3 again (dR 0.5); jet 0 is 1.0 away
    np.testing.assert_allclose(values("maxmindr(jets)"), [0.5, math.nan, math.nan, 0.5])
    m = math.sqrt(2 * 100 * 100 * (1 - math.cos(0.5)))
    np.testing.assert_allclose(values("maxminm(jets)"), [m, math.nan, math.nan, m])


def test_masses_of_the_jets_enter() -> None:
    evs = ak.Array([event([bjet(300, 0, 0.0), bjet(200, 0, 3.0), bjet(100, 0, 1.0, 10.0), bjet(100, 0, 1.5, 10.0)])])
    e = math.sqrt(100**2 + 10**2)
    px = 100 * (math.cos(1.0) + math.cos(1.5))
    py = 100 * (math.sin(1.0) + math.sin(1.5))
    expected = math.sqrt((2 * e) ** 2 - px * px - py * py)
    np.testing.assert_allclose(np.asarray(evaluate_expression("maxminm(jets)", evs)), [expected])


def test_pairing_needs_a_collection() -> None:
    with pytest.raises(RecastError, match="maxdr"):
        compile_expression("maxdr(met.pt)", Scope({}), path="sel.yaml", field="variables.x")


def test_unknown_pairing_function_names_file_and_field(tmp_path: Path) -> None:
    doc = yaml.safe_load(SELECTION.read_text())
    doc["variables"]["m_h_cand"] = "minmaxm(bjets)"
    path = tmp_path / "selection.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(RecastError) as info:
        load_selection(path)
    message = str(info.value)
    assert message.startswith(f"{path}: variables.m_h_cand: ") and "\n" not in message and "maxminm" in message


def test_the_selection_file_loads_with_the_workspace_bins() -> None:
    selection = load_selection(SELECTION)
    regions = {r.name: r.n_bins for r in selection.regions}
    # the RegionA workspace's SR_meff has 3 bins (analysis.yaml, workspaces.RegionA.regions)
    assert regions == {"SR_meff": 3}


def test_masses_of_the_two_largest_dr_pairs() -> None:
    # event 0: the largest-dR pair is jets 0 and 1 (dR 3); the second-largest is jets 1 and 2 (dphi 2.0)
    # event 1: pairs (0,1) dR 2, (0,2) 1, (1,2) 1: the second is (0,2), the lower indices on the tie
    # event 2: one jet, no pair; event 3: jets 1 and 4 (dR 5), then jets 3 and 4 (dR sqrt(16 + 1.5^2))
    def mass(pt1: float, pt2: float, dphi: float) -> float:
        return math.sqrt(2 * pt1 * pt2 * (1 - math.cos(dphi)))

    e3_first = math.sqrt(2 * 200 * 50 * (math.cosh(4.0) - math.cos(3.0)))
    e3_second = math.sqrt(2 * 100 * 50 * (math.cosh(4.0) - math.cos(1.5)))
    np.testing.assert_allclose(values("maxdrm(jets)"), [mass(300, 200, 3.0), mass(300, 200, 2.0), math.nan, e3_first])
    np.testing.assert_allclose(values("maxdr2m(jets)"), [mass(200, 100, 2.0), mass(300, 100, 1.0), math.nan, e3_second])
    # the SRB average Higgs-candidate mass of selection_B.yaml
    np.testing.assert_allclose(
        values("(maxdrm(jets) + maxdr2m(jets)) / 2")[0], (mass(300, 200, 3.0) + mass(200, 100, 2.0)) / 2
    )


def test_two_objects_have_no_second_pair() -> None:
    evs = ak.Array([event([bjet(300, 0, 0.0), bjet(200, 0, 3.0)])])
    assert math.isnan(float(evaluate_expression("maxdr2m(jets)", evs)[0]))
    np.testing.assert_allclose(np.asarray(evaluate_expression("maxdrm(jets)", evs)), [math.sqrt(2 * 300 * 200 * (1 - math.cos(3.0)))])


def test_the_region_b_selection_loads_with_the_workspace_bins() -> None:
    selection = load_selection(SELECTION.with_name("selection_B.yaml"))
    # the RegionB workspace: SR_cuts one bin, CRtt_cuts declared unfilled (analysis.yaml, workspaces.RegionB)
    assert {r.name: r.n_bins for r in selection.regions} == {"SR_cuts": 1}
    assert list(selection.unfilled) == ["CRtt_cuts"]


# -- the tau veto of SRA and SRB (jets with few tracks close to the MET) ------------------------------------------
HEADER = {"format": RECO, "point": "p", "n_events": 4, "sum_weights": 4.0, "xsec_pb": 1.0, "xsec_source": "test",
          "br_factor": 1.0}


def sra_event(light_ntracks: int, light_phi: float = -1.4, light_eta: float = 0.0) -> dict[str, Any]:
    """An event passing SRA-M (m_eff 1.53 TeV) except perhaps for its 100 GeV light jet, a tau candidate when it
    has at most 4 tracks, |eta| < 2.5 and lies within pi/5 of the MET (at phi -1.6)."""

    def jet(pt: float, phi: float, btag: bool, ntracks: int = 20, eta: float = 0.0) -> dict[str, Any]:
        return {"pt": pt, "eta": eta, "phi": phi, "m": 0.0, "btag": btag, "flavour": 5 if btag else 0,
                "ntracks": ntracks}

    soft = {"pt": 1.0, "eta": 0.0, "phi": 0.0, "charge": 1}
    jets = [jet(300, 0.0, True), jet(250, 3.0, True), jet(150, 1.0, True), jet(150, 1.7, True),
            jet(100, light_phi, False, light_ntracks, light_eta), jet(80, 2.0, False)]
    return {"weight": 1.0, "jets": jets, "electrons": [soft], "muons": [soft],
            "photons": [{"pt": 1.0, "eta": 0.0, "phi": 0.0}], "met": {"pt": 500.0, "phi": -1.6}}


def test_the_tau_veto_removes_jets_with_few_tracks_near_the_met() -> None:
    selection = load_selection(SELECTION)
    single = run_selection(ak.Array([sra_event(5)]), {**HEADER, "n_events": 1, "sum_weights": 1.0}, selection, 139.0)
    one = float(sum(single.regions["SR_meff"].yields))
    assert one > 0
    # vetoed: 3 tracks within pi/5; kept: 5 tracks, 3 tracks but 0.8 from the MET, 2 tracks beyond the tracker
    events = ak.Array([sra_event(3), sra_event(5), sra_event(3, light_phi=-0.8), sra_event(2, light_eta=2.6)])
    result = run_selection(events, HEADER, selection, 139.0)
    assert float(sum(result.regions["SR_meff"].yields)) == pytest.approx(3 * one / 4)
    region_b = load_selection(SELECTION.with_name("selection_B.yaml"))
    assert any(c.name == "tau_veto" for r in region_b.regions for c in r.cuts)


def test_events_without_track_counts_say_which_card_makes_them() -> None:
    events = ak.Array([sra_event(5)])
    events = ak.with_field(events, events.jets[["pt", "eta", "phi", "m", "btag", "flavour"]], "jets")
    with pytest.raises(RecastError) as err:
        run_selection(events, {**HEADER, "n_events": 1, "sum_weights": 1.0}, load_selection(SELECTION), 139.0)
    assert err.value.field == "jets.ntracks" and "jets.tracks" in str(err.value) and "\n" not in str(err.value)
