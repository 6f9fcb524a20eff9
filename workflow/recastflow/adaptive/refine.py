"""Where the next points go: cells of the scan's plane whose corners' verdicts differ are split.

The coarse grid (the scan file's axes) cuts the plane into rectangular cells between neighbouring axis
values. A cell is *open* when its corner points (those that meet the scan's constraints) disagree on the
observed or on the expected verdict: the contour passes through it. Each round splits every open cell that is
still larger than the resolution along an axis into halves (along that axis) or quarters (along both), and
the new corners become the next round's points. Cells are split in order of how close their corners' CLs are
to 1 - CL, so that a point budget is spent where the contour is most likely to be; the order, and so the
points, are a function of the verdicts alone (deterministic).

A contour that enters and leaves a coarse cell through the same edge, or an island smaller than a cell, is not
seen: the coarse grid must be fine enough for the contour's shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Cell", "Outcome", "Refinement", "coarse_cells", "leaves", "refine"]

Point = tuple[float, float]


@dataclass(frozen=True, order=True)
class Cell:
    """A rectangle of the plane: ``[x0, x1] x [y0, y1]``."""

    x0: float
    x1: float
    y0: float
    y1: float

    def corners(self) -> tuple[Point, Point, Point, Point]:
        """The four corners."""
        return (self.x0, self.y0), (self.x1, self.y0), (self.x0, self.y1), (self.x1, self.y1)

    def children(self, along_x: bool, along_y: bool) -> tuple[Cell, ...]:
        """The halves or quarters of the cell."""
        xs = (self.x0, (self.x0 + self.x1) / 2, self.x1) if along_x else (self.x0, self.x1)
        ys = (self.y0, (self.y0 + self.y1) / 2, self.y1) if along_y else (self.y0, self.y1)
        return tuple(Cell(a, b, c, d) for a, b in itertools.pairwise(xs) for c, d in itertools.pairwise(ys))


@dataclass(frozen=True)
class Outcome:
    """A decided point, as refinement sees it.

    Attributes:
        excluded: CLs kind (``"observed"``, ``"expected"``) -> excluded at the scan's CL.
        cls: CLs kind -> value (for the order in which cells are split).
    """

    excluded: Mapping[str, bool]
    cls: Mapping[str, float]


@dataclass(frozen=True)
class Refinement:
    """One round's split cells and new points.

    Attributes:
        split: the cells split, in order.
        points: the new points, in order (each once, none already known).
        done: no further round: the reason (resolution reached, rounds or budget used up), or "".
    """

    split: tuple[Cell, ...]
    points: tuple[Point, ...]
    done: str


def coarse_cells(xs: Iterable[float], ys: Iterable[float]) -> list[Cell]:
    """The cells between neighbouring values of the two axes.

    Args:
        xs: the first axis's values.
        ys: the second axis's values.
    """
    gx, gy = sorted(set(xs)), sorted(set(ys))
    return [Cell(a, b, c, d) for a, b in itertools.pairwise(gx) for c, d in itertools.pairwise(gy)]


def _split_axes(cell: Cell, resolution: tuple[float, float]) -> tuple[bool, bool]:
    return cell.x1 - cell.x0 > resolution[0], cell.y1 - cell.y0 > resolution[1]


def leaves(coarse: Sequence[Cell], history: Iterable[Iterable[Cell]], resolution: tuple[float, float]) -> list[Cell]:
    """The cells after the splits of earlier rounds.

    Args:
        coarse: the coarse grid's cells.
        history: per earlier round, the cells it split.
        resolution: cell size per axis below which a cell is not split along it.
    """
    current = list(coarse)
    for split in history:
        done = set(split)
        nxt: list[Cell] = []
        for cell in current:
            nxt.extend(cell.children(*_split_axes(cell, resolution)) if cell in done else (cell,))
        current = nxt
    return current


def _distance(outcome: Outcome, alpha: float) -> float:
    """How far a point's CLs is from the threshold (decades): small near the contour."""
    return min((abs(math.log10(max(v, 1e-300) / alpha)) for v in outcome.cls.values()), default=math.inf)


def refine(
    coarse: Sequence[Cell],
    history: Sequence[Sequence[Cell]],
    known: Mapping[Point, Outcome],
    *,
    admits: Callable[[Point], bool],
    resolution: tuple[float, float],
    alpha: float,
    max_rounds: int,
    max_points: int | None,
) -> Refinement:
    """The next round of an adaptive scan.

    Args:
        coarse: the coarse grid's cells.
        history: the cells split by each earlier round (``len(history)`` rounds so far).
        known: every point decided so far (all earlier rounds) -> its outcome.
        admits: whether a point meets the scan's constraints (points that do not are never added).
        resolution: cell size per axis below which a cell is not split along it.
        alpha: 1 - CL.
        max_rounds: refinement rounds allowed after the coarse grid.
        max_points: the budget in points (None: none).

    Returns:
        The cells split and the new points; ``done`` says why there is no further round.
    """
    if len(history) >= max_rounds:
        return Refinement((), (), f"all {max_rounds} refinement round(s) done")
    candidates: list[tuple[float, Cell]] = []
    for cell in leaves(coarse, history, resolution):
        outcomes = [known[c] for c in cell.corners() if c in known]
        if len(outcomes) < 2:
            continue
        kinds = {k for o in outcomes for k in o.excluded}
        open_ = any(len({o.excluded[k] for o in outcomes if k in o.excluded}) > 1 for k in kinds)
        if open_ and any(_split_axes(cell, resolution)):
            candidates.append((min(_distance(o, alpha) for o in outcomes), cell))
    if not candidates:
        return Refinement((), (), "resolution reached: no open cell is larger than the resolution")
    candidates.sort()
    budget = None if max_points is None else max_points - len(known)
    split: list[Cell] = []
    new: dict[Point, None] = {}
    exhausted = False
    for _, cell in candidates:
        corners = [
            c
            for child in cell.children(*_split_axes(cell, resolution))
            for c in child.corners()
            if c not in known and c not in new and admits(c)
        ]
        fresh = list(dict.fromkeys(corners))
        if budget is not None and len(new) + len(fresh) > budget:
            exhausted = True
            break
        split.append(cell)
        new.update(dict.fromkeys(fresh))
    done = ""
    if exhausted and not split:
        done = f"point budget ({max_points}) used up"
    return Refinement(tuple(split), tuple(new), done)
