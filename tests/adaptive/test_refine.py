"""Refinement on a synthetic CLs field whose contour is known: the refined contour converges to it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recastflow.adaptive.refine import Cell, Outcome, coarse_cells, leaves, refine
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
    history: list[tuple[Cell, ...]] = []
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
    # every refined point lies within two coarse cells of the contour
    coarse = {(200.0 + 200 * i, y) for i in range(5) for y in (0.0, 200.0, 400.0)}
    assert all(abs(x - true_edge(y)) <= 400 for x, y in known if (x, y) not in coarse)
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
    split = [coarse[0]]
    out = leaves(coarse, [split], (10.0, 10.0))
    assert len(out) == 5 and Cell(0, 50, 0, 50) in out and coarse[1] in out
    # a cell already at the resolution along y is split along x only
    out = leaves(coarse, [split], (10.0, 200.0))
    assert Cell(0, 50, 0, 100) in out and len(out) == 3


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
