"""Refinement on a synthetic CLs field whose contour is known: the refined contour converges to it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recastflow.adaptive.refine import Cell, Outcome, Split, coarse_cells, leaves, refine, split_axes
from recastflow.report.contours import interpolated_contour

ALPHA = 0.05


def true_edge(y: float) -> float:
    """The contour: x = c(y), curved."""
    return 700.0 - 300.0 * (y / 400.0) ** 2


def log_cls(x: float, y: float) -> float:
    """log10(CLs / alpha): negative (excluded) left of the edge, a cubic in the distance (not linear)."""
    return ((x - true_edge(y)) / 150.0) ** 3


def outcome(p: tuple[float, float]) -> Outcome:
    v = log_cls(*p)
    cls = ALPHA * 10**v
    return Outcome(excluded={"observed": v < 0, "expected": v < 0}, cls={"observed": cls, "expected": cls})


def admits(p: tuple[float, float]) -> bool:
    return p[1] <= p[0] - 100


def run_scan(resolution: float, max_rounds: int = 8, max_points: int | None = None):
    xs, ys = [200.0 + 200 * i for i in range(5)], [0.0, 200.0, 400.0]
    known = {(x, y): outcome((x, y)) for x in xs for y in ys if admits((x, y))}
    coarse = coarse_cells(xs, ys)
    history: list[tuple[Split, ...]] = []
    rounds = [len(known)]
    while True:
        r = refine(coarse, history, known, admits=admits, resolution=(resolution, resolution), alpha=ALPHA,
                   max_rounds=max_rounds, max_points=max_points)  # fmt: skip
        if r.done or not (r.split or r.points):
            return known, history, rounds, r
        history.append(r.split)
        for p in r.points:
            assert p not in known
            known[p] = outcome(p)
        rounds.append(len(r.points))


def worst_distance(known) -> float:
    pts = list(known)
    c = interpolated_contour(
        [p[0] for p in pts], [p[1] for p in pts], [log_cls(*p) for p in pts], 0.0, names=("x", "y")
    )
    assert c
    return max(abs(x - true_edge(y)) for x, y in c.points() if 20 <= y <= 380)


def test_contour_converges_to_the_known_one():
    coarse = worst_distance(run_scan(200.0)[0])
    distances = {res: worst_distance(run_scan(res)[0]) for res in (50.0, 25.0, 12.5)}
    # the coarse grid alone misses the curved edge by about 25 GeV; each halving of the resolution brings the
    # contour closer, and everywhere within half the resolution from 25 GeV on
    assert coarse > 20.0
    assert distances[50.0] > distances[25.0] > distances[12.5]
    assert distances[25.0] < 12.5 + 1.0 and distances[12.5] < 6.25 + 1.0


def test_points_only_near_the_contour_and_fewer_than_a_dense_grid():
    known, history, rounds, last = run_scan(25.0)
    assert "resolution reached" in last.done
    dense = sum(1 for x in np.arange(200, 1001, 25) for y in np.arange(0, 401, 25) if admits((x, y)))
    assert len(known) < dense / 3
    # every refined point lies within two coarse cells of the contour, but for the probes of the excluded cells
    # the constraint cuts (within a coarse cell of its edge y = x - 100)
    coarse = {(200.0 + 200 * i, y) for i in range(5) for y in (0.0, 200.0, 400.0)}
    probes = [(x, y) for x, y in known if (x, y) not in coarse and y >= x - 300]
    assert all(abs(x - true_edge(y)) <= 400 for x, y in known if (x, y) not in coarse and (x, y) not in probes)
    # every point meets the constraint
    assert all(admits(p) for p in known)


def test_refinement_is_deterministic():
    a = run_scan(25.0)
    b = run_scan(25.0)
    assert list(a[0]) == list(b[0]) and a[1] == b[1]


def test_budget_stops_refinement():
    known, _, _, last = run_scan(25.0, max_points=30)
    assert len(known) <= 30
    assert "budget" in last.done


def test_rounds_limit():
    known, history, _, last = run_scan(25.0, max_rounds=1)
    assert len(history) == 1 and "1 refinement round" in last.done


def test_leaves_split_only_the_named_cells():
    coarse = coarse_cells([0, 100, 200], [0, 100])
    out = leaves(coarse, [[Split(coarse[0], True, True)]])
    assert len(out) == 5 and Cell(0, 50, 0, 50) in out and coarse[1] in out
    # a split along x only makes halves
    out = leaves(coarse, [[Split(coarse[0], True, False)]])
    assert Cell(0, 50, 0, 100) in out and len(out) == 3


def _plane(edge) -> dict:
    """The corners of the cell [0, 200] x [0, 200] for a contour x = edge(y), excluded left of it."""
    def one(x, y):
        v = (x - edge(y)) / 100.0
        return Outcome(excluded={"observed": v < 0}, cls={"observed": ALPHA * 10**v})

    return {(x, y): one(x, y) for x in (0.0, 200.0) for y in (0.0, 200.0)}


def test_a_straight_contour_is_split_across_it_only_and_a_slanted_one_both_ways():
    cell = Cell(0.0, 200.0, 0.0, 200.0)
    # vertical: located by halving x; y is not needed
    assert split_axes(cell, _plane(lambda y: 110.0), (25.0, 25.0), ALPHA) == (True, False)
    # slanted by 60 across the cell (more than the 25 resolution): both
    assert split_axes(cell, _plane(lambda y: 70.0 + 0.3 * y), (25.0, 25.0), ALPHA) == (True, True)
    # slanted by less than the resolution: x only
    assert split_axes(cell, _plane(lambda y: 100.0 + 0.1 * y), (25.0, 25.0), ALPHA) == (True, False)
    # a corner cut off (the contour crosses the bottom and the left edges): both
    corner = _plane(lambda y: 150.0 - y)
    assert split_axes(cell, corner, (25.0, 25.0), ALPHA) == (True, True)
    # already at the resolution across the contour: no split
    assert split_axes(Cell(0.0, 20.0, 0.0, 200.0), {(x * 0.1, y): o for (x, y), o in _plane(lambda y: 110.0).items()},
                      (25.0, 25.0), ALPHA) == (False, False)  # fmt: skip


@pytest.mark.parametrize("value", [math.inf])
def test_axis_without_resolution_is_never_split(value):
    coarse = coarse_cells([0, 100], [0, 100])
    known = {
        (0.0, 0.0): outcome((900.0, 0.0)),
        (100.0, 0.0): outcome((0.0, 0.0)),
        (0.0, 100.0): outcome((900.0, 0.0)),
        (100.0, 100.0): outcome((0.0, 0.0)),
    }
    r = refine(coarse, [], known, admits=lambda p: True, resolution=(10.0, value), alpha=ALPHA, max_rounds=3,
               max_points=None)  # fmt: skip
    assert r.points == ((50.0, 0.0), (50.0, 100.0))


def test_a_round_of_a_three_parameter_model_keeps_the_fixed_one(tmp_path):
    """next_round on decision files: new points carry the fixed parameter in their values and names."""
    import json
    from pathlib import Path

    import yaml

    from recastflow.adaptive.jobs import AdaptiveRun, next_round
    from recastflow.adaptive.spec import adaptive_spec
    from recastflow.generate.scan import load_scan

    root = Path(__file__).resolve().parents[2]
    doc = {
        "name": "T6bbHH",
        "model": str(root / "config" / "spectra" / "T6bbHH.yaml"),
        "axes": {"m_sbottom": {"values": [800, 1200]}, "m_neutralino2": {"values": [300, 700]},
                 "m_neutralino1": {"values": [60]}},
        "constraints": ["m_neutralino2 <= m_sbottom - 50"],
        "cross_section": "tables",
        "adaptive": {"events": {"chunk": 1000, "min": 1000, "max": 2000},
                     "refine": {"resolution": {"m_sbottom": 200, "m_neutralino2": 400}}},
    }  # fmt: skip
    path = tmp_path / "t6bbhh.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    scan = load_scan(path)
    run = AdaptiveRun(scan, adaptive_spec(scan), None, "RegionA", tmp_path, tmp_path, 1, 0.95)
    decisions = []
    for point in scan.points:
        excluded = point.values["m_sbottom"] < 1000  # the contour between the two columns
        cls = 0.01 if excluded else 0.3
        decision = {"values": dict(point.values), "cls": {"nominal": {"observed": cls, "expected": cls}},
                    "excluded": {"observed": excluded, "expected": excluded}}  # fmt: skip
        decisions.append(tmp_path / f"{point.name}.json")
        decisions[-1].write_text(json.dumps(decision))
    out = next_round(run, 0, [], decisions, tmp_path / "round0.json", log=lambda line: None)
    assert sorted(out["next"]) == ["T6bbHH_1000_300_60", "T6bbHH_1000_700_60"]


def test_an_exclusion_ending_before_the_kinematic_edge_is_found():
    # excluded left of x = 700 and more than 150 GeV below the diagonal: the band between y = x - 150 and the
    # constraint's edge y = x - 100 is allowed and not excluded. The cut coarse cells along the edge have all
    # their allowed corners excluded; without a probe the band's contour would never be seen.
    def band(p):
        v = max(p[0] - 700.0, p[1] - p[0] + 150.0) / 100.0
        cls = ALPHA * 10**v
        return Outcome(excluded={"observed": v < 0}, cls={"observed": cls})

    xs, ys = [200.0 + 200 * i for i in range(5)], [0.0, 200.0, 400.0]
    known = {(x, y): band((x, y)) for x in xs for y in ys if admits((x, y))}
    assert all(o.excluded["observed"] for (x, _), o in known.items() if x < 700)  # the coarse grid sees no band
    coarse = coarse_cells(xs, ys)
    history: list[tuple[Split, ...]] = []
    while True:
        r = refine(coarse, history, known, admits=admits, resolution=(25.0, 25.0), alpha=ALPHA, max_rounds=8,
                   max_points=None)  # fmt: skip
        if r.done or not r.points:
            break
        history.append(r.split)
        known.update({p: band(p) for p in r.points})
    assert all(admits(p) for p in known)
    # along x = 300 the band's lower edge (y = 150) is bracketed within the resolution
    column = sorted((y, o.excluded["observed"]) for (x, y), o in known.items() if x == 300.0)
    last_excluded = max(y for y, e in column if e)
    first_free = min(y for y, e in column if not e)
    assert last_excluded < 150.0 <= first_free and first_free - last_excluded <= 25.0 + 1e-9
