"""Object-based MET significance (recastflow.emulate.metsig), checked against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.emulate.card import load_card
from recastflow.emulate.metsig import event_met_significance, met_significance, settings_from_doc

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "detectors" / "ATLAS-Run2.yaml"


def one_jet(met_phi: float, soft: float = 8.0) -> float:
    """A 100 GeV jet along x with sigma_pT = 10 GeV and sigma_phi = 0.02 (2 GeV across), MET 100 GeV."""
    objects = [(np.array([100.0]), np.array([0.0]), np.array([10.0]), np.array([0.02]))]
    return float(met_significance(np.array([100.0]), np.array([met_phi]), objects, soft)[0])


def test_met_across_the_jet() -> None:
    # covariance xx = 10^2 + 8^2 = 164, yy = 2^2 + 8^2 = 68, xy = 0; MET along y: sigma_L^2 = 68, rho = 0
    assert one_jet(math.pi / 2) == pytest.approx(100.0 / math.sqrt(68.0), rel=1e-12)


def test_met_at_45_degrees_uses_the_correlation() -> None:
    # in the MET frame: sigma_L^2 = sigma_T^2 = (164 + 68) / 2 = 116, cov_LT = (68 - 164) / 2 = -48,
    # so sigma_L^2 (1 - rho^2) = 116 - 48^2 / 116
    assert one_jet(math.pi / 4) == pytest.approx(100.0 / math.sqrt(116.0 - 48.0**2 / 116.0), rel=1e-12)


def test_near_total_correlation_is_ignored() -> None:
    # no soft term, no azimuthal resolution: the covariance is all along x, rho = -1 at 45 degrees -> set to 0
    objects = [(np.array([100.0]), np.array([0.0]), np.array([10.0]), np.array([0.0]))]
    s = met_significance(np.array([100.0]), np.array([math.pi / 4]), objects, 0.0, max_abs_rho=0.9)
    assert s[0] == pytest.approx(100.0 / math.sqrt(50.0), rel=1e-12)


def test_jagged_collections_sum_per_event() -> None:
    # event 0: two jets along x and y (10 GeV each way) + soft 0: isotropic 100 -> S = MET / 10
    # event 1: no jet, soft 0: no covariance -> 0
    pt = ak.Array([[100.0, 100.0], []])
    phi = ak.Array([[0.0, math.pi / 2], []])
    sig_pt = ak.Array([[10.0, 10.0], []])
    sig_phi = ak.Array([[0.1, 0.1], []])  # 10 GeV across each jet
    s = met_significance(np.array([50.0, 50.0]), np.array([0.3, 0.3]), [(pt, phi, sig_pt, sig_phi)], 0.0)
    np.testing.assert_allclose(s, [50.0 / math.sqrt(200.0), 0.0])


def test_reconstructed_events_use_the_cards_resolutions() -> None:
    card = load_card(CARD)
    doc = yaml.safe_load(CARD.read_text())
    section = {k: v for k, v in doc["met_significance"].items() if k != "jet_resolution"}
    section["soft_term_resolution"] = 8.0
    settings = settings_from_doc(section, doc, str(CARD))
    assert settings.jet_resolution is None  # without the table: the card's smearing resolution
    jet = {"pt": 100.0, "eta": 0.0, "phi": 0.0, "m": 0.0, "btag": False, "flavour": 0}
    reco = ak.Array([{"jets": [jet], "electrons": [], "muons": [], "met": {"pt": 100.0, "phi": 0.0}}])
    # card: |eta| < 1.2, N = 3.5 GeV, S = 0.70, C = 0.030 -> sigma/pT = sqrt(0.035^2 + 0.49/100 + 0.03^2);
    # MET along the jet: only the longitudinal terms count, 8.3815 GeV and the 8 GeV soft term
    rel = math.sqrt(0.035**2 + 0.49 / 100 + 0.03**2)
    assert rel * 100 == pytest.approx(8.3815, abs=1e-3)
    expected = 100.0 / math.sqrt((rel * 100) ** 2 + 8.0**2)
    assert event_met_significance(reco, card, settings, 20.0)[0] == pytest.approx(expected, rel=1e-6)


def test_the_atlas_card_assumes_atlas_resolution_tables() -> None:
    # |eta| < 0.2 at 100 GeV: 0.1032 (max of data and simulation JER); the azimuth above 100 GeV 0.0176;
    # the soft term 10 GeV. MET across the jet: sigma_L^2 = (100 x 0.0176)^2 + 10^2
    card = load_card(CARD)
    settings = card.met_significance
    assert settings is not None and settings.soft_resolution == 10.0
    jet = {"pt": 100.0, "eta": 0.0, "phi": 0.0, "m": 0.0, "btag": False, "flavour": 0}
    along = ak.Array([{"jets": [jet], "electrons": [], "muons": [], "met": {"pt": 100.0, "phi": 0.0}}])
    across = ak.Array([{"jets": [jet], "electrons": [], "muons": [], "met": {"pt": 100.0, "phi": math.pi / 2}}])
    assert event_met_significance(along, card, settings, 20.0)[0] == pytest.approx(
        100.0 / math.sqrt(10.32**2 + 10.0**2), rel=1e-9
    )
    assert event_met_significance(across, card, settings, 20.0)[0] == pytest.approx(
        100.0 / math.sqrt(1.76**2 + 10.0**2), rel=1e-5
    )


def test_values_must_match_the_edges() -> None:
    doc = yaml.safe_load(CARD.read_text())
    doc["met_significance"]["jet_phi_resolution"]["values"] = [0.05]
    with pytest.raises(RecastError) as info:
        settings_from_doc(doc["met_significance"], doc, "card.yaml")
    assert str(info.value).startswith("card.yaml: met_significance.jet_phi_resolution.values: ")


def test_unknown_card_field_names_file_and_field(tmp_path: Path) -> None:
    doc = yaml.safe_load(CARD.read_text())
    doc["met_significance"]["soft_resolution"] = 10.0  # the key is soft_term_resolution
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(RecastError) as info:
        load_card(path)
    message = str(info.value)
    assert str(path) in message and "met_significance" in message and "\n" not in message


def _table_doc() -> dict:
    # two pT points, two |eta| bins: 20% -> 10% centrally, 30% -> 15% forward
    return {"pt_points": [20.0, 80.0], "eta_edges": [0.0, 2.5, 4.5], "values": [[0.20, 0.30], [0.10, 0.15]]}


def test_jet_resolution_table_interpolates_in_log_pt() -> None:
    doc = yaml.safe_load(CARD.read_text())
    section = dict(doc["met_significance"], jet_resolution=_table_doc())
    table = settings_from_doc(section, doc, str(CARD)).jet_resolution
    assert table is not None
    # 40 GeV is half-way between 20 and 80 in ln pT: (0.20 + 0.10) / 2; below / above the points the end values;
    # |eta| 3.0 the forward bin, |eta| 5 (beyond the last edge) the last bin
    got = table.relative(np.array([40.0, 10.0, 500.0, 40.0, 40.0]), np.array([1.0, 0.0, 0.0, 3.0, 5.0]))
    np.testing.assert_allclose(got, [0.15, 0.20, 0.10, 0.225, 0.225], rtol=1e-12)


def test_significance_takes_the_table_over_the_smearing_resolution() -> None:
    card = load_card(CARD)
    doc = yaml.safe_load(CARD.read_text())
    section = dict(doc["met_significance"], jet_resolution=_table_doc(), soft_term_resolution=10.0)
    settings = settings_from_doc(section, doc, str(CARD))
    jet = {"pt": 80.0, "eta": 0.0, "phi": 0.0, "m": 0.0, "btag": False, "flavour": 0}
    reco = ak.Array([{"jets": [jet], "electrons": [], "muons": [], "met": {"pt": 100.0, "phi": 0.0}}])
    # MET along the jet: sigma_L^2 = (0.10 x 80)^2 + 10^2 = 164, no correlation (the jet's axes are the MET's)
    assert event_met_significance(reco, card, settings, 20.0)[0] == pytest.approx(100.0 / math.sqrt(164.0), rel=1e-12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pt_points": [80.0, 20.0]}, "met_significance.jet_resolution.pt_points"),
        ({"values": [[0.2, 0.3]]}, "met_significance.jet_resolution.values"),
        ({"values": [[0.2], [0.1]]}, "met_significance.jet_resolution.values[0]"),
    ],
)
def test_jet_resolution_table_shapes_are_checked(change: dict, field: str) -> None:
    doc = yaml.safe_load(CARD.read_text())
    section = dict(doc["met_significance"], jet_resolution=dict(_table_doc(), **change))
    with pytest.raises(RecastError) as info:
        settings_from_doc(section, doc, "card.yaml")
    assert str(info.value).startswith(f"card.yaml: {field}: ")
