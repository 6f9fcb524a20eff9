"""The select stage: selection files, object building, yields and cutflows, and the output files."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from recastflow.core.config import read_document, validate
from recastflow.core.errors import RecastError
from recastflow.core.events import RECO, SELECTED, read_events, write_events
from recastflow.select.expressions import Collection, Columns, Env, Layout
from recastflow.select.selection import (_Input, descending_order, evaluate_expression, load_selection, mark_overlaps,
                                  run_selection, select_file)

REPO = Path(__file__).resolve().parents[2]
ONE_LBB = REPO / "config/analyses/ATLAS-SUSY-2019-08"


def _bench() -> Any:
    """The benchmark module: its synthetic events and its independent per-event selection."""
    spec = importlib.util.spec_from_file_location("bench_select", REPO / "benchmarks/bench_select.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jet(pt: float, eta: float = 0.0, phi: float = 0.0, btag: bool = False) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "m": 0.0, "btag": btag, "flavour": 5 if btag else 0}


def lep(pt: float, eta: float = 0.0, phi: float = 0.0) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "charge": 1}


def event(weight: float = 1.0, jets: list | None = None, electrons: list | None = None,
          muons: list | None = None, met: float = 0.0) -> dict[str, Any]:
    return {"weight": weight, "jets": jets or [], "electrons": electrons or [], "muons": muons or [],
            "photons": [{"pt": 1.0, "eta": 0.0, "phi": 0.0}][:0], "met": {"pt": met, "phi": 0.0},
            "truth": {"mode": "test"}}


HEADER = {"format": RECO, "point": "p", "n_events": 100, "sum_weights": 10.0, "xsec_pb": 2.0,
          "xsec_source": "test", "br_factor": 0.5}
#: expected events per unit weight: 10 fb^-1 = 1e4 pb^-1, times 2 pb times 0.5 over sum_weights 10
NORM = 10 * 1000 * 2.0 * 0.5 / 10.0

SIMPLE = """
objects:
  good_jets: {from: jets, where: "pt > 30"}
variables:
  ht: "sum(good_jets.pt)"
preselection:
  - one_jet: "n(good_jets) >= 1"
regions:
  SR:
    cuts:
      - ht_100: "ht > 100"
    bins: {variable: ht, edges: [150, 300, .inf]}
  FINITE:
    cuts:
      - ht_100: "ht > 100"
    bins: {variable: ht, edges: [150, 300]}
  CR:
    cuts:
      - low_ht: "ht <= 100"
"""


def write(tmp_path: Path, text: str, name: str = "selection.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def simple_events() -> ak.Array:
    # ht: 0 (no good jet), 80, 120 (below the first edge), 200, 250, 400, 1000
    return ak.Array([
        event(5.0, [jet(20.0)]),
        event(1.0, [jet(80.0)]),
        event(1.0, [jet(120.0)]),
        event(2.0, [jet(150.0), jet(50.0)]),
        event(-0.5, [jet(250.0)]),
        event(3.0, [jet(400.0)]),
        event(0.25, [jet(1000.0)]),
    ])


def test_yields_and_stat_follow_the_normalisation_by_hand(tmp_path: Path) -> None:
    result = run_selection(simple_events(), HEADER, load_selection(write(tmp_path, SIMPLE)), 10.0)
    sr = result.regions["SR"]
    assert result.normalisation == pytest.approx(NORM)
    # bin [150, 300): weights 2 and -0.5; bin [300, inf): 3 and 0.25; ht = 120 is below the edges
    assert sr.raw == (2, 2)
    np.testing.assert_allclose(sr.yields, [1.5 * NORM, 3.25 * NORM])
    np.testing.assert_allclose(sr.stat, [math.sqrt(4 + 0.25) * NORM, math.sqrt(9 + 0.0625) * NORM])
    doc = result.yields_doc("p")
    validate(doc, "yields", "yields.json")
    assert doc["regions"]["CR"] == {"yields": [1.0 * NORM], "stat": [1.0 * NORM]}
    assert doc["normalisation"] == {"luminosity_ifb": 10.0, "xsec_pb": 2.0, "xsec_source": "test", "br_factor": 0.5,
                                    "n_events": 100, "sum_weights": 10.0}
    assert len(doc["regions"]["SR"]["yields"]) == 2


def test_under_and_overflow_are_not_counted(tmp_path: Path) -> None:
    result = run_selection(simple_events(), HEADER, load_selection(write(tmp_path, SIMPLE)), 10.0)
    finite = result.regions["FINITE"]
    # ht = 120 is below [150, 300) and 400, 1000 above it: only 200 (w 2) and 250 (w -0.5) count
    assert finite.raw == (2,)
    assert (finite.cutflow[-1].name, finite.cutflow[-1].raw) == ("in ht bins", 2)
    np.testing.assert_allclose(finite.yields, [1.5 * NORM])


def test_cutflow_steps_are_preselection_then_region(tmp_path: Path) -> None:
    result = run_selection(simple_events(), HEADER, load_selection(write(tmp_path, SIMPLE)), 10.0)
    steps = result.regions["SR"].cutflow
    assert [s.name for s in steps] == ["all events", "one_jet", "ht_100", "in ht bins"]
    assert [s.raw for s in steps] == [7, 6, 5, 4]  # ht = 120 passes the cut but is below the bins
    assert steps[0].weighted == pytest.approx(sum([5, 1, 1, 2, -0.5, 3, 0.25]) * NORM)
    assert steps[1].weighted == pytest.approx(sum([1, 1, 2, -0.5, 3, 0.25]) * NORM)
    doc = result.cutflow_doc("p")
    assert doc["regions"]["SR"]["edges"] == [150.0, 300.0, "inf"]
    json.dumps(doc, allow_nan=False)  # strict JSON


def test_selected_events_carry_region_bins_and_variables(tmp_path: Path) -> None:
    result = run_selection(simple_events(), HEADER, load_selection(write(tmp_path, SIMPLE)), 10.0)
    sel = result.selected
    assert sel.weight.tolist() == [1.0, 2.0, -0.5, 3.0, 0.25]  # ht 80 (CR) and 200..1000 (SR)
    assert sel.regions.SR.tolist() == [-1, 0, 0, 1, 1]
    assert sel.regions.CR.tolist() == [0, -1, -1, -1, -1]
    assert sel.regions.FINITE.tolist() == [-1, 0, 0, -1, -1]
    assert str(ak.type(sel.regions.SR)).endswith("int8")
    assert sel.variables.ht.tolist() == [80.0, 200.0, 250.0, 400.0, 1000.0]
    assert sel.truth.mode.tolist() == ["test"] * 5


def test_chunking_does_not_change_the_result(tmp_path: Path) -> None:
    bench = _bench()
    reco, header = bench.synthetic_reco(3000, seed=7)
    selection = load_selection(ONE_LBB / "selection.yaml")
    whole = run_selection(reco, header, selection, 139.0)
    pieces = run_selection(reco, header, selection, 139.0, chunk_events=250)
    for name, region in whole.regions.items():
        assert region.raw == pieces.regions[name].raw
        np.testing.assert_allclose(region.yields, pieces.regions[name].yields, rtol=1e-12)
        assert [s.raw for s in region.cutflow] == [s.raw for s in pieces.regions[name].cutflow]
    assert ak.to_list(whole.selected.regions) == ak.to_list(pieces.selected.regions)


# --------------------------------------------------------------------------- objects


OBJECTS = """
objects:
  good_jets: {from: jets, where: "pt > 20"}
  clean_jets:
    from: good_jets
    remove_overlap: [{with: electrons, dr: 0.2}, {with: muons, dr: 0.2}]
  clean_electrons: {from: electrons, remove_overlap: [{with: clean_jets, dr: "min(0.4, 0.04 + 10 / pt)"}]}
  leptons: {merge: [electrons, muons]}
  unsorted: {merge: [electrons, muons], sort_by: null}
regions:
  ALL: {cuts: []}
"""


def test_overlap_removal_with_fixed_and_pt_dependent_cones(tmp_path: Path) -> None:
    selection = load_selection(write(tmp_path, OBJECTS))
    reco = ak.Array([
        # a jet 0.1 from an electron is removed; the far jet stays
        event(jets=[jet(100.0, 0.0, 0.0), jet(50.0, 2.0, 0.0)], electrons=[lep(30.0, 0.1, 0.0)]),
        # a 20 GeV electron has a 0.4 cone: a jet at dR 0.3 removes it
        event(jets=[jet(100.0, 0.0, 0.0)], electrons=[lep(20.0, 0.3, 0.0)]),
        # a 100 GeV electron has a 0.14 cone: the same jet does not
        event(jets=[jet(100.0, 0.0, 0.0)], electrons=[lep(100.0, 0.3, 0.0)]),
        # across phi = +-pi: dphi = 2 pi - 6.2, near enough to a muon
        event(jets=[jet(100.0, 0.0, 3.1), jet(60.0, 0.0, 0.0)], muons=[lep(30.0, 0.0, -3.1)]),
    ])
    assert evaluate_expression("n(clean_jets)", reco, selection).tolist() == [1, 1, 1, 1]
    assert evaluate_expression("clean_jets[0].pt", reco, selection).tolist() == [50.0, 100.0, 100.0, 60.0]
    # the first electron's jet was removed before the electrons are cleaned, so it stays
    assert evaluate_expression("n(clean_electrons)", reco, selection).tolist() == [1, 0, 1, 0]


def test_merged_collections_are_sorted_by_pt(tmp_path: Path) -> None:
    selection = load_selection(write(tmp_path, OBJECTS))
    reco = ak.Array([
        event(electrons=[lep(10.0)], muons=[lep(30.0), lep(5.0)]),
        event(electrons=[lep(40.0), lep(8.0)], muons=[lep(20.0)]),
        event(muons=[lep(7.0)]),
        event(),
    ])
    assert evaluate_expression("leptons.pt", reco, selection).values.tolist() == [30, 10, 5, 40, 20, 8, 7]
    assert evaluate_expression("n(leptons)", reco, selection).tolist() == [3, 3, 1, 0]
    assert evaluate_expression("leptons[0].m", reco, selection).tolist()[:3] == pytest.approx(
        [0.1056584, 0.000510999, 0.1056584])


def test_unsorted_input_is_sorted_and_sort_by_null_keeps_the_merge_order(tmp_path: Path) -> None:
    selection = load_selection(write(tmp_path, OBJECTS))
    reco = ak.Array([event(jets=[jet(30.0), jet(80.0, 1.0), jet(50.0, 2.0)], electrons=[lep(5.0)], muons=[lep(9.0)]),
                     event(jets=[jet(25.0)])])
    assert evaluate_expression("jets.pt", reco, selection).values.tolist() == [80, 50, 30, 25]
    assert evaluate_expression("good_jets[0].eta", reco, selection).tolist() == [1.0, 0.0]
    assert evaluate_expression("jets.btag", reco, selection).values.tolist() == [False] * 4
    assert evaluate_expression("unsorted.pt", reco, selection).values.tolist() == [5, 9]


def _random_collection(rng: np.random.Generator, counts: np.ndarray) -> Collection:
    n = int(counts.sum())
    columns = {"eta": rng.uniform(-2.5, 2.5, n), "phi": rng.uniform(-np.pi, np.pi, n), "pt": rng.uniform(5.0, 200.0, n)}
    return Collection(Layout(counts), Columns.of(columns))


def _brute_force_overlaps(coll: Collection, other: Collection, cone: Any) -> np.ndarray:
    cones = np.broadcast_to(np.asarray(cone, dtype=float), (coll.size,))
    out = np.zeros(coll.size, dtype=bool)
    c_off, o_off = coll.layout.offsets, other.layout.offsets
    for e in range(coll.layout.n_events):
        for i in range(c_off[e], c_off[e + 1]):
            for j in range(o_off[e], o_off[e + 1]):
                dphi = abs(coll.field("phi")[i] - other.field("phi")[j])
                dphi = min(dphi, 2 * math.pi - dphi)
                if (coll.field("eta")[i] - other.field("eta")[j]) ** 2 + dphi ** 2 < cones[i] ** 2:
                    out[i] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overlap_removal_agrees_with_all_pairs(seed: int) -> None:
    # many small events, empty ones at both ends, a few crowded ones: both collections are
    # walked in turn (the smaller one is walked, the larger one stepped through)
    rng = np.random.default_rng(seed)
    n_events = 400
    few = np.where(rng.random(n_events) < 0.3, 0, rng.poisson(1.0, n_events))
    many = rng.poisson(3.0, n_events) + np.where(rng.random(n_events) < 0.02, 15, 0)
    few[[0, -1]] = many[[0, -1]] = 0
    a, b = _random_collection(rng, few), _random_collection(rng, many)
    filtered = b.filter(rng.random(b.size) < 0.8)  # a collection that is a subset of its columns
    for coll, other in [(a, b), (b, a), (a, filtered), (filtered, a)]:
        for cone in (0.4, np.minimum(0.4, 0.04 + 10.0 / coll.field("pt"))):
            remove = np.zeros(coll.size, dtype=bool)
            mark_overlaps(remove, coll, other, cone)
            np.testing.assert_array_equal(remove, _brute_force_overlaps(coll, other, cone))


def test_descending_order_sorts_only_events_out_of_order() -> None:
    rng = np.random.default_rng(5)
    counts = rng.poisson(2.0, 300)
    counts[[0, 1, -1]] = 0
    values = np.round(rng.uniform(0.0, 10.0, int(counts.sum())), 1)  # ties included
    layout = Layout(counts)
    perm = descending_order(values, layout)
    assert perm is not None
    offsets = layout.offsets
    for e in range(len(counts)):
        part = values[perm[offsets[e]:offsets[e + 1]]]
        assert list(part) == sorted(values[offsets[e]:offsets[e + 1]], reverse=True)
    assert descending_order(values[perm], layout) is None


def test_awkward_layouts_read_alike(tmp_path: Path) -> None:
    # the plain record layout is read from its buffers; sliced, indexed and nullable inputs
    # go through awkward's conversion: all must give the same selection
    bench = _bench()
    reco, header = bench.synthetic_reco(3000, seed=13)
    selection = load_selection(ONE_LBB / "selection.yaml")
    part = reco[1000:]
    optional = ak.with_field(part, ak.with_field(part.jets, ak.mask(part.jets.pt, part.jets.pt > 0), "pt"), "jets")
    optional = ak.with_field(optional, ak.mask(part.met.pt, part.met.pt > 0), ["met", "pt"])
    variants = [part, ak.to_packed(part), reco[np.arange(1000, len(reco))], optional,
                ak.Array(ak.contents.UnmaskedArray.simplified(ak.to_layout(part)))]
    results = [run_selection(v, dict(header, n_events=2000), selection, 139.0, chunk_events=700) for v in variants]
    for result in results[1:]:
        for name, region in results[0].regions.items():
            assert region.raw == result.regions[name].raw
            np.testing.assert_allclose(region.yields, result.regions[name].yields, rtol=1e-12)
            assert [s.raw for s in region.cutflow] == [s.raw for s in result.regions[name].cutflow]
        assert ak.to_list(results[0].selected.variables) == ak.to_list(result.selected.variables)


def test_values_reach_subsets_of_subsets() -> None:
    reco, _ = _bench().synthetic_reco(500, seed=17)
    selection = load_selection(ONE_LBB / "selection.yaml")
    root = Env(len(reco), _Input(reco).definitions(0, len(reco)), selection.definitions)
    rng = np.random.default_rng(0)
    first = rng.random(len(reco)) < 0.6
    root["signal_leptons"]  # computed before the subsets exist: taken through two levels
    level1 = root.subset(first)
    level1["bjets"]  # computed on the first subset only
    second = rng.random(level1.n_events) < 0.5
    level2 = level1.subset(second)
    rows = np.flatnonzero(first)[second]
    for name in ("mbb", "mT", "n_bjets"):
        expected = np.asarray(evaluate_expression(name, reco, selection))[rows]
        np.testing.assert_array_equal(np.asarray(level2[name]), expected, err_msg=name)
    for key in ("pt", "eta", "m"):
        expected = np.asarray(evaluate_expression(f"lepton.{key}", reco, selection))[rows]
        np.testing.assert_array_equal(level2["lepton"][key], expected, err_msg=key)


# --------------------------------------------------------------------------- errors in the file


@pytest.mark.parametrize(("text", "field", "says"), [
    ("regions: {SR: {cuts: []}}\nbogus: 1\n", "(top level)", "unknown key(s) 'bogus'"),
    ("objects: {a: {from: jets, merge: [jets, muons]}}\nregions: {SR: {cuts: []}}\n", "objects.a",
     "exactly one of 'from'"),
    ("objects: {a: {from: jest}}\nregions: {SR: {cuts: []}}\n", "objects.a.from", "did you mean 'jets'"),
    ("objects: {a: {from: b}, b: {from: jets}}\nregions: {SR: {cuts: []}}\n", "objects.a.from",
     "defined further down"),
    ("objects: {a: {from: jets, where: 'jets.pt > 3'}}\nregions: {SR: {cuts: []}}\n", "objects.a.where",
     "bare fields"),
    ("objects: {a: {from: jets, where: 'ptt > 3'}}\nregions: {SR: {cuts: []}}\n", "objects.a.where",
     "did you mean 'pt'"),
    ("objects: {a: {from: jets, sort_by: btag}}\nregions: {SR: {cuts: []}}\n", "objects.a.sort_by", "numeric"),
    ("objects: {a: {from: jets, remove_overlap: [{with: muons, dr: -1}]}}\nregions: {SR: {cuts: []}}\n",
     "objects.a.remove_overlap[0].dr", ">= 0"),
    ("variables: {x: 'y + 1', y: '2'}\nregions: {SR: {cuts: []}}\n", "variables.x", "defined further down"),
    ("variables: {met: '1'}\nregions: {SR: {cuts: []}}\n", "variables.met", "reserved"),
    ("variables: {m: '1'}\nregions: {SR: {cuts: []}}\n", "variables.m", "reserved"),
    ("variables: {x: 'jets.pt'}\nregions: {SR: {cuts: []}}\n", "variables.x", "one value per event"),
    ("variables: {x: '__import__(\"os\")'}\nregions: {SR: {cuts: []}}\n", "variables.x", "not an allowed"),
    ("preselection: [{a: 'met.pt'}]\nregions: {SR: {cuts: []}}\n", "preselection[0].a", "must be a condition"),
    ("preselection: [{a: 'met.pt > 1'}]\nregions: {SR: {cuts: [{a: 'met.pt > 2'}]}}\n",
     "regions.SR.cuts[0].a", "used twice"),
    ("preselection: [{a: 'met.pt > 1', b: 'met.pt > 2'}]\nregions: {SR: {cuts: []}}\n", "preselection[0]",
     "too many properties"),
    ("regions: {SR: {cuts: [], bins: {variable: nope, edges: [1, 2]}}}\n", "regions.SR.bins.variable",
     "not a numeric variable"),
    ("variables: {x: 'met.pt'}\nregions: {SR: {cuts: [], bins: {variable: x, edges: [3, 2]}}}\n",
     "regions.SR.bins.edges", "strictly increasing"),
    ("regions: {SR: {cuts: [{c: 'lambda: 1'}]}}\n", "regions.SR.cuts[0].c", "lambda is not allowed"),
])
def test_bad_selection_files_name_the_file_and_field(tmp_path: Path, text: str, field: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RecastError) as info:
        load_selection(path)
    assert str(info.value).startswith(f"{path}: {field}: "), str(info.value)
    assert says in str(info.value)


def test_missing_input_column_is_named(tmp_path: Path) -> None:
    selection = load_selection(write(tmp_path, SIMPLE))
    reco = ak.Array([{"weight": 1.0, "met": {"pt": 1.0, "phi": 0.0}}])
    with pytest.raises(RecastError, match="no 'jets' column"):
        run_selection(reco, HEADER, selection, 10.0)


def test_header_that_cannot_be_normalised(tmp_path: Path) -> None:
    selection = load_selection(write(tmp_path, SIMPLE))
    with pytest.raises(RecastError, match="sum_weights is 0"):
        run_selection(simple_events(), dict(HEADER, sum_weights=0.0), selection, 10.0)
    with pytest.raises(RecastError, match="luminosity"):
        run_selection(simple_events(), HEADER, selection, -1.0)


# --------------------------------------------------------------------------- files


def _chunks(tmp_path: Path, reco: ak.Array, header: dict[str, Any], n: int = 2) -> list[Path]:
    paths = []
    for i, part in enumerate(np.array_split(np.arange(len(reco)), n)):
        sub = reco[part]
        h = dict(header, chunk={"index": i, "count": n}, n_events=len(sub),
                 sum_weights=float(np.sum(sub.weight.to_numpy())))
        paths.append(tmp_path / f"reco.{i}.parquet")
        write_events(paths[-1], sub, h)
    return paths


def test_select_file_writes_yields_cutflow_and_selected_events(tmp_path: Path) -> None:
    bench = _bench()
    reco, header = bench.synthetic_reco(4000, seed=3)
    inputs = _chunks(tmp_path, reco, header)
    out = tmp_path / "out"
    result = select_file(inputs[::-1], ONE_LBB / "selection.yaml", luminosity_ifb=139.0, point="P1",
                         yields_out=out / "yields.json", cutflow_out=out / "cutflow.json",
                         selected_out=out / "selected.parquet")
    yields = read_document(out / "yields.json")
    validate(yields, "yields", out / "yields.json")
    assert yields["point"] == "P1" and len(yields["regions"]["SRLMEM_mct2"]["yields"]) == 3
    cutflow = read_document(out / "cutflow.json")
    assert cutflow["format"] == "recastflow-cutflow/1" and cutflow["normalisation"]["n_events"] == 4000
    assert yields["normalisation"] == cutflow["normalisation"]
    assert yields["normalisation"]["luminosity_ifb"] == 139.0
    assert yields["normalisation"]["sum_weights"] == pytest.approx(header["sum_weights"])
    events, head = read_events(out / "selected.parquet")
    assert head["format"] == SELECTED and head["n_selected"] == len(events) == len(result.selected)
    assert head["sum_weights"] == pytest.approx(header["sum_weights"]) and head["n_events"] == 4000
    assert head["selection"]["sha256"] == result_sha(ONE_LBB / "selection.yaml")
    assert set(events.regions.fields) == set(yields["regions"])
    in_any = np.zeros(len(events), dtype=bool)
    for name in events.regions.fields:
        in_any |= events.regions[name].to_numpy() >= 0
    assert in_any.all() and len(events) > 0


def result_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_select_file_writes_nothing_when_it_fails(tmp_path: Path) -> None:
    reco = simple_events()
    inputs = _chunks(tmp_path, reco, HEADER, n=1)
    bad = write(tmp_path, SIMPLE.replace("ht > 100", "ht > > 100"), "bad.yaml")
    photons = write(tmp_path, SIMPLE.replace("n(good_jets) >= 1", "n(photons) >= 0 and photons[0].pt > 1"),
                    "photons.yaml")
    outs = {"yields_out": tmp_path / "o/y.json", "cutflow_out": tmp_path / "o/c.json",
            "selected_out": tmp_path / "o/s.parquet"}
    with pytest.raises(RecastError, match="syntax error"):
        select_file(inputs, bad, luminosity_ifb=1.0, point="p", **outs)
    # the photons column holds no records here: its field is missing, found only when running
    with pytest.raises(RecastError, match=r"reco\.0\.parquet.*photons"):
        select_file(inputs, photons, luminosity_ifb=1.0, point="p", **outs)
    with pytest.raises(RecastError, match="chunks"):
        select_file(inputs + [tmp_path / "reco.0.parquet"], write(tmp_path, SIMPLE), luminosity_ifb=1.0,
                    point="p", **outs)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# --------------------------------------------------------------------------- the 1Lbb selection


def test_one_lbb_selection_matches_the_analysis_bundle() -> None:
    selection = load_selection(ONE_LBB / "selection.yaml")
    bundle = read_document(ONE_LBB / "analysis.yaml")
    regions = {name: r["bins"] for ws in bundle["workspaces"].values() for name, r in ws["regions"].items()}
    assert {r.name: r.n_bins for r in selection.regions} == regions
    assert [c.name for c in selection.preselection] == [
        "one_signal_lepton", "2-3_jets", "2_bjets", "met_240", "mT_50", "mbb_50"]


def test_one_lbb_selection_runs_and_agrees_with_a_per_event_loop() -> None:
    bench = _bench()
    reco, header = bench.synthetic_reco(6000, seed=11)
    result = run_selection(reco, header, load_selection(ONE_LBB / "selection.yaml"), 139.0)
    counts = bench.loop_counts(ak.to_list(reco[["jets", "electrons", "muons", "met"]]))
    for name, region in result.regions.items():
        assert list(region.raw) == counts[name], name
        raw = [s.raw for s in region.cutflow]
        assert raw == sorted(raw, reverse=True), f"cutflow of {name} not monotonic: {raw}"
        assert raw[-1] == sum(region.raw)
    assert sum(sum(r.raw) for r in result.regions.values()) > 0
    assert len(result.selected) > 0
