"""The ``adaptive`` section of a scan file, read and checked before any job runs.

A scan file's axes give the coarse grid: two axes with several values span the plane that is refined, and
any further axis has one value, a fixed parameter of the model (a third mass, say). The section says how
many events a point gets (in chunks, between a minimum and a maximum), when its verdict counts as decided,
and how finely and how far the grid is refined (see :mod:`recastflow.adaptive.stopping` and
:mod:`recastflow.adaptive.refine`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from recastflow.core.errors import RecastError
from recastflow.generate.scan import Scan

__all__ = ["AdaptiveSpec", "StopRule", "adaptive_spec", "fixed_values", "plane_axes", "points_needed"]


@dataclass(frozen=True)
class StopRule:
    """When a point's verdict is decided.

    Attributes:
        confidence: the probability that a decided verdict is the one infinite statistics would give.
        looks: how often a point can be looked at (one per chunk from the minimum to the maximum).
        on: the CLs that must be decided: ``"observed"`` and/or ``"expected"`` (median).
        precision: stop once delta is at most this, decided or not (None: no precision target).
    """

    confidence: float = 0.95
    looks: int = 1
    on: tuple[str, ...] = ("observed", "expected")
    precision: float | None = None

    @property
    def z(self) -> float:
        """The margin of one look, in units of delta: ``Phi^-1(1 - (1 - confidence) / looks)``.

        A point is looked at after every chunk; a margin of ``Phi^-1(confidence)`` at each look would decide
        wrongly far more often than ``1 - confidence`` near the level (each look is another chance for a
        fluctuation). Bonferroni over the possible looks bounds the chance of any wrong decision.
        """
        return NormalDist().inv_cdf(1.0 - (1.0 - self.confidence) / max(1, self.looks))


@dataclass(frozen=True)
class AdaptiveSpec:
    """An adaptive scan's settings.

    Attributes:
        chunk: events per generation job.
        min_events: no verdict before this many events of a point.
        max_events: generation of a point stops here.
        stop: the stopping rule.
        resolution: axis -> the cell size (GeV) below which a cell is not split along that axis.
        max_rounds: refinement rounds after the coarse grid.
        max_points: the budget in points (all rounds), or None.
    """

    chunk: int
    min_events: int
    max_events: int
    stop: StopRule
    resolution: Mapping[str, float]
    max_rounds: int
    max_points: int | None

    @property
    def max_chunks(self) -> int:
        """Chunks of a point that reaches ``max_events``."""
        return self.max_events // self.chunk

    @property
    def min_chunks(self) -> int:
        """Chunks before the first verdict."""
        return self.min_events // self.chunk


def adaptive_spec(scan: Scan) -> AdaptiveSpec:
    """Read the scan's ``adaptive`` section (already schema-checked by :func:`recastflow.generate.scan.load_scan`).

    Args:
        scan: the scan.

    Returns:
        The settings.

    Raises:
        RecastError: one line naming the scan file and the field: no section, a minimum above the maximum,
            event counts that are not whole chunks, a resolution on an axis the scan does not have or on a fixed
            parameter, a scan without exactly two axes of several values, or a resolution finer than the point
            budget can reach.
    """
    where = str(scan.path)
    doc: Mapping[str, Any] | None = scan.adaptive
    if doc is None:
        raise RecastError("the scan has no 'adaptive' section; add one to run it adaptively", path=where)
    several = [axis for axis in scan.axes if len(scan.axis_values[axis]) > 1]
    if len(several) != 2:
        field = (
            "axes"
            if len(several) > 2 or len(scan.axes) < 2
            else f"axes.{next(a for a in scan.axes if a not in several)}"
        )
        raise RecastError(
            f"an adaptive scan refines a plane: give two axes at least two values each (the coarse grid; its cells "
            f"lie between them) and any other axis one value (a fixed parameter); the scan has {len(several)} "
            f"axis/axes with several values",
            path=where,
            field=field,
        )
    events = doc["events"]
    chunk, lo, hi = int(events["chunk"]), int(events["min"]), int(events["max"])
    if lo > hi:
        raise RecastError(f"min ({lo}) is above max ({hi}): give min <= max", path=where, field="adaptive.events.min")
    for key, value in (("min", lo), ("max", hi)):
        if value % chunk:
            raise RecastError(
                f"{value} events is not a whole number of chunks of {chunk}; give a multiple of 'chunk'",
                path=where,
                field=f"adaptive.events.{key}",
            )
    stop_doc = doc.get("stop", {})
    stop = StopRule(
        confidence=float(stop_doc.get("confidence", 0.95)),
        looks=(hi - lo) // chunk + 1,
        on=tuple(stop_doc.get("decide", ("observed", "expected"))),
        precision=float(stop_doc["precision"]) if stop_doc.get("precision") is not None else None,
    )
    refine = doc["refine"]
    resolution = {str(k): float(v) for k, v in refine["resolution"].items()}
    plane = plane_axes(scan)
    for axis in resolution:
        if axis not in plane:
            what = "a fixed parameter (one value)" if axis in scan.axes else "not an axis"
            raise RecastError(
                f"no axis {axis!r} to refine ({what}): the scan's plane is {', '.join(plane)}",
                path=where,
                field=f"adaptive.refine.resolution.{axis}",
            )
    for axis in plane:
        resolution.setdefault(axis, math.inf)  # an axis without a resolution is never split
    spec = AdaptiveSpec(
        chunk=chunk,
        min_events=lo,
        max_events=hi,
        stop=stop,
        resolution=resolution,
        max_rounds=int(refine.get("max_rounds", 6)),
        max_points=int(refine["max_points"]) if refine.get("max_points") is not None else None,
    )
    if spec.max_points is not None:
        need = points_needed(scan, spec)
        if need > spec.max_points:
            raise RecastError(
                f"max_points {spec.max_points} cannot reach the resolution: the coarse grid and a contour "
                f"across the plane need about {need} points; raise max_points or coarsen the resolution",
                path=where,
                field="adaptive.refine.max_points",
            )
    return spec


def _rounds_to(width: float, resolution: float, max_rounds: int) -> int:
    """Halvings of a cell of ``width`` until it is at most ``resolution`` (at most ``max_rounds``)."""
    if not math.isfinite(resolution) or width <= resolution:
        return 0
    return min(max_rounds, math.ceil(math.log2(width / resolution)))


def points_needed(scan: Scan, spec: AdaptiveSpec) -> int:
    """A lower estimate of the points an adaptive scan needs to reach its resolution along one contour.

    The coarse grid's points, and for each round the points added along a contour that crosses the plane
    once from side to side: it crosses about ``extent / cell size`` cells of each round, and a split cell
    adds at least one point that no neighbour shares (a straight contour's cell is halved across it: two edge
    midpoints, each shared with the next cell along the contour; a bend's cell is quartered and adds three).

    Args:
        scan: the scan (two axes).
        spec: its adaptive settings.

    Returns:
        The estimate.
    """
    total = len(scan.points)
    a, b = plane_axes(scan)
    widths = {ax: _largest_gap(scan.axis_values[ax]) for ax in (a, b)}
    extents = {ax: max(scan.axis_values[ax]) - min(scan.axis_values[ax]) for ax in (a, b)}
    rounds = max(_rounds_to(widths[ax], spec.resolution[ax], spec.max_rounds) for ax in (a, b))
    for r in range(1, rounds + 1):
        cells = max(extents[ax] / (widths[ax] / 2**r) for ax in (a, b) if widths[ax] > 0)
        total += math.ceil(cells)
    return total


def plane_axes(scan: Scan) -> tuple[str, str]:
    """The two axes an adaptive scan refines: those with several values, in the scan's order.

    Args:
        scan: a scan that :func:`adaptive_spec` accepted.

    Returns:
        The names of the two axes; every other axis has one value (a fixed parameter).
    """
    a, b = (axis for axis in scan.axes if len(scan.axis_values[axis]) > 1)
    return a, b


def fixed_values(scan: Scan) -> dict[str, float]:
    """The fixed parameters of an adaptive scan: axis -> its one value (empty for a plain two-axis scan)."""
    return {axis: scan.axis_values[axis][0] for axis in scan.axes if len(scan.axis_values[axis]) == 1}


def _largest_gap(values: tuple[float, ...]) -> float:
    ordered = sorted(values)
    return max((y - x for x, y in itertools.pairwise(ordered)), default=0.0)
