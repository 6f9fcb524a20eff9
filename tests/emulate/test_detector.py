"""Detector cards: schema errors, bin-shape checks, binned lookups and resolution functions."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recastflow.core.config import read_document
from recastflow.emulate.card import BinnedMap, FlavourMaps, Resolution, Scratch, card_from_doc, load_card
from recastflow.core.errors import RecastError

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "detectors" / "ATLAS-Run2.yaml"


def atlas_doc() -> dict[str, Any]:
    return copy.deepcopy(read_document(CARD))


def write_json(tmp_path: Path, doc: dict[str, Any], name: str = "card.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_atlas_card_loads_with_its_digest() -> None:
    card = load_card(CARD)
    assert card.name == "ATLAS-Run2"
    assert card.sha256 == hashlib.sha256(CARD.read_bytes()).hexdigest()
    assert card.path == str(CARD)
    assert {12, 14, 16, 1000022, 1000039} <= set(card.invisible_pids)
    assert card.jets.algorithm == "anti-kt" and card.jets.radius == 0.4
    # MV2c10 77% working point: b as ATL-PHYS-PUB-2016-012 Fig. 12 (0.76 at 50-60 GeV, 0.80 at 105-150, 0.75 at
    # 200-500, 0.675 above), light ~1/110
    b = card.btag.efficiency.maps[5].lookup(np.array([55.0, 120.0, 300.0, 700.0]), np.full(4, 1.0))
    light = card.btag.efficiency.maps[0].lookup(np.array([50.0]), np.array([1.0]))[0]
    np.testing.assert_allclose(b, [0.76, 0.80, 0.75, 0.675])
    assert light == pytest.approx(1 / 110, rel=0.15)


def test_atlas_card_cites_sources() -> None:
    doc = atlas_doc()
    used = " ".join(s["used_for"] for s in doc["sources"])
    for section in ("jets", "electrons", "muons", "photons", "btag", "met", "taus", "met_significance.jet_resolution"):
        assert section in used
    # papers by arXiv number; ATLAS public notes (not on arXiv) by report number; code by repository and commit
    assert all(
        "arXiv:" in s["ref"] or "ATL-PHYS-PUB-" in s["ref"] or "ATLAS-CONF-" in s["ref"] or "commit" in s["ref"]
        for s in doc["sources"]
    )


def test_unknown_nested_key_names_key_and_file(tmp_path: Path) -> None:
    text = CARD.read_text().replace("  radius: 0.4\n", "  radius: 0.4\n  radious: 0.6\n")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(RecastError) as err:
        load_card(path)
    msg = str(err.value)
    assert str(path) in msg and "'radious'" in msg and "jets" in msg and "allowed:" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / "extra.yaml"
    path.write_text(CARD.read_text() + "\ntracks: {}\n")
    with pytest.raises(RecastError, match=r"extra\.yaml: \(top level\): unknown key\(s\) 'tracks'"):
        load_card(path)


def test_track_count_without_its_eta_bound_names_the_field(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["jets"]["tracks"] = {"min_pt": 0.5}
    path = write_json(tmp_path, doc)
    with pytest.raises(RecastError) as err:
        load_card(path)
    msg = str(err.value)
    assert str(path) in msg and "jets.tracks" in msg and "max_abs_eta" in msg


def test_unknown_key_inside_binned_map(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["btag"]["efficiency"]["c"]["pt_bins"] = [1, 2]
    with pytest.raises(RecastError, match=r"btag\.efficiency\.c: unknown key\(s\) 'pt_bins'"):
        load_card(write_json(tmp_path, doc))


def test_too_few_rows_of_values(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["electrons"]["efficiency"]["values"].pop()
    path = write_json(tmp_path, doc)
    with pytest.raises(RecastError) as err:
        load_card(path)
    msg = str(err.value)
    assert str(path) in msg and "electrons.efficiency.values" in msg and "one row per pT bin" in msg


def test_row_of_wrong_length(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["muons"]["efficiency"]["values"][1].append(0.5)
    with pytest.raises(RecastError, match=r"muons\.efficiency\.values\[1\]: 3 values for 2 \|eta\| bins"):
        load_card(write_json(tmp_path, doc))


def test_edges_must_increase(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["photons"]["efficiency"]["eta_edges"] = [0.0, 1.52, 1.37, 2.37]
    with pytest.raises(RecastError, match=r"photons\.efficiency\.eta_edges: edges must be strictly increasing"):
        load_card(write_json(tmp_path, doc))


def test_resolution_terms_need_one_value_per_bin(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["jets"]["resolution"]["constant"] = [0.03, 0.03]
    with pytest.raises(RecastError, match=r"jets\.resolution\.constant: 2 values for 4 \|eta\| bins"):
        load_card(write_json(tmp_path, doc))


def test_efficiency_above_one_is_refused(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["btag"]["efficiency"]["b"]["values"][0] = [1.5]
    with pytest.raises(RecastError, match=r"btag\.efficiency\.b\.values\[0\]\[0\]: 1\.5 is greater than the maximum"):
        load_card(write_json(tmp_path, doc))


@pytest.mark.parametrize("value, problem", [(float("nan"), "nan is not allowed"), (-0.1, "less than the minimum"),
                                            (1.01, "greater than the maximum")])
def test_efficiency_outside_0_1_or_nan_is_refused(tmp_path: Path, value: float, problem: str) -> None:
    doc = atlas_doc()
    doc["electrons"]["efficiency"]["values"][0][0] = value
    with pytest.raises(RecastError, match=rf"electrons\.efficiency\.values\[0\]\[0\]: .*{problem}") as err:
        load_card(write_json(tmp_path, doc))
    assert err.value.path == str(tmp_path / "card.json")


@pytest.mark.parametrize("where, value", [(("jets", "resolution", "constant", 0), 1e300),
                                          (("muons", "resolution", "sagitta", 0), 5.0),
                                          (("jets", "resolution", "noise", 0), 1e4),
                                          (("met", "soft_term", "resolution"), 1e300)])
def test_absurd_resolutions_are_refused(tmp_path: Path, where: tuple[Any, ...], value: float) -> None:
    doc = atlas_doc()
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    field = ".".join(str(k) for k in where[:-1]) + (f"[{where[-1]}]" if isinstance(where[-1], int) else f".{where[-1]}")
    with pytest.raises(RecastError, match=rf"{re.escape(field)}: .* is greater than the maximum"):
        load_card(write_json(tmp_path, doc))


def test_missing_flavour_map(tmp_path: Path) -> None:
    doc = atlas_doc()
    del doc["btag"]["efficiency"]["tau"]
    with pytest.raises(RecastError, match=r"btag\.efficiency: missing required key: 'tau'"):
        load_card(write_json(tmp_path, doc))


def test_inner_cone_must_be_inside_cone(tmp_path: Path) -> None:
    doc = atlas_doc()
    doc["electrons"]["isolation"]["inner_cone"] = 0.3
    with pytest.raises(RecastError, match=r"electrons\.isolation\.inner_cone"):
        load_card(write_json(tmp_path, doc))


def test_defaults_are_filled() -> None:
    doc = atlas_doc()
    for key in ("algorithm", "radius"):
        del doc["jets"][key]
    for key in ("truth_dr", "hadron_min_pt"):
        del doc["btag"][key]
    card = card_from_doc(doc)
    assert (card.jets.algorithm, card.jets.radius, card.btag.truth_dr, card.btag.hadron_min_pt) == ("anti-kt", 0.4, 0.3, 5.0)


# -- lookups ----------------------------------------------------------------------------
SIMPLE = {"pt_edges": [10.0, 20.0, 50.0], "eta_edges": [0.0, 1.5, 2.5], "values": [[0.1, 0.2], [0.3, 0.4]]}


def simple_map() -> BinnedMap:
    return BinnedMap.from_doc(SIMPLE, "m", "test")


@pytest.mark.parametrize(("pt", "eta", "expected"), [
    (10.0, 0.0, 0.1),      # lower edges are inclusive
    (19.999, 1.4999, 0.1),
    (20.0, 1.5, 0.4),
    (49.9, 0.3, 0.3),
    (50.0, 0.3, 0.3),      # above the last pT edge: the last bin
    (1e5, 2.0, 0.4),
    (9.999, 0.3, 0.0),     # below the first pT edge: 0
    (30.0, 2.5, 0.0),      # at or beyond the last |eta| edge: outside the acceptance
    (30.0, 7.0, 0.0),
    (np.nan, 0.3, 0.0),
])
def test_lookup_at_edges(pt: float, eta: float, expected: float) -> None:
    assert simple_map().lookup(np.array([pt]), np.array([eta]))[0] == expected


def test_fast_lookup_matches_reference() -> None:
    rng = np.random.default_rng(3)
    m = simple_map()
    pt = np.concatenate([rng.uniform(0, 80, 5000), m.pt_edges])
    eta = np.concatenate([rng.uniform(0, 3, 5000), m.eta_edges[:3]])
    np.testing.assert_array_equal(m.lookup(pt, eta), m._reference_lookup(pt, eta))


def test_flavour_maps_match_their_maps() -> None:
    rng = np.random.default_rng(4)
    maps = {5: simple_map(),
            0: BinnedMap.from_doc({"pt_edges": [15.0, 35.0], "eta_edges": [0.0, 2.0], "values": [[0.05]]}, "l", "t")}
    fm = FlavourMaps(maps)
    label = rng.choice([0, 5], 20000).astype(np.int8)
    pt, eta = rng.uniform(0, 80, 20000), rng.uniform(0, 3, 20000)
    expected = np.where(label == 5, maps[5].lookup(pt, eta), maps[0].lookup(pt, eta))
    np.testing.assert_array_equal(fm.lookup(label, pt, eta), expected)


def test_resolution_formula() -> None:
    res = Resolution.from_doc({"variable": "pt", "eta_edges": [0.0, 1.0, 2.5], "noise": [4.0, 5.0],
                               "stochastic": [0.7, 0.8], "constant": [0.03, 0.05], "sagitta": [0.0, 1e-4]}, "r", "t")
    x = np.array([20.0, 100.0, 1000.0, 1000.0, 1000.0])
    eta = np.array([0.5, 0.5, 0.5, 1.5, 9.0])   # beyond the last edge: the last bin
    expected = [np.sqrt((4 / 20) ** 2 + 0.49 / 20 + 0.03**2), np.sqrt((4 / 100) ** 2 + 0.49 / 100 + 0.03**2),
                np.sqrt((4 / 1000) ** 2 + 0.49 / 1000 + 0.03**2)] + \
               [np.sqrt((5 / 1000) ** 2 + 0.64 / 1000 + 0.05**2 + (1e-4 * 1000) ** 2)] * 2
    np.testing.assert_allclose(res.relative(x, eta), expected, rtol=1e-6)


def test_muon_resolution_is_constant_plus_sagitta() -> None:
    card = load_card(CARD)
    rel = card.muons.resolution.relative(np.array([10.0, 1000.0]), np.array([0.5, 0.5]))
    assert rel[0] == pytest.approx(0.017, rel=0.02) and rel[1] == pytest.approx(0.1, rel=0.05)


def test_lookups_with_work_arrays_match() -> None:
    # the response passes a Scratch: same values, and the arrays are reused from call to call
    rng = np.random.default_rng(5)
    card = load_card(CARD)
    scratch = Scratch()
    for n in (1000, 10, 1200, 0):
        pt, eta = rng.uniform(0, 300, n), rng.uniform(0, 3, n)
        label = rng.choice([0, 4, 5, 15], n).astype(np.int8)
        m = card.electrons.efficiency
        np.testing.assert_array_equal(m.lookup(pt, eta, scratch), m._reference_lookup(pt, eta))
        fm = card.btag.efficiency
        np.testing.assert_array_equal(fm.lookup(label, pt, eta, scratch), fm.lookup(label, pt, eta))
        for res in (card.jets.resolution, card.muons.resolution, card.electrons.resolution):
            np.testing.assert_array_equal(res.relative(pt + 1, eta, scratch), res.relative(pt + 1, eta))
    a = scratch.get("x", 100, np.float64)
    assert np.shares_memory(a, scratch.get("x", 90, np.float64)) and len(scratch.get("x", 90, np.float64)) == 90
