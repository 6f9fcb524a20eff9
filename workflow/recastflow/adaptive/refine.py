"""Where the next points go: cells of the scan's plane whose corners' verdicts differ are split.

The coarse grid (the scan file's axes) cuts the plane into rectangular cells between neighbouring axis
values. A cell is *open* when its corner points (those that meet the scan's constraints) disagree on the
observed or on the expected verdict: the contour passes through it. Each round splits every open cell that is
still larger than the resolution, in the directions that locate the contour (:func:`split_axes`):

- along x where the contour crosses a bottom or top edge (neighbours along x disagree), along y where it
  crosses a side;
- along the other axis too where the contour is slanted across the cell: its crossings of the two opposite
  edges (log CLs interpolated along each edge) lie further apart than the resolution.

A contour that runs straight across a cell is so located with half the points of splitting the cell into
quarters, and a bend or a tip still gets quarters. The new corners become the next round's points. Cells are
split in order of how close their corners' CLs are to 1 - CL, so that a point budget is spent where the
contour is most likely to be; the order, and so the points, are a function of the verdicts alone
(deterministic).

A coarse cell that the scan's constraints cut (a corner outside the allowed region, e.g. beyond a kinematic
edge) is also split once when its allowed corners are all excluded (observed or expected): an exclusion often
ends before the edge (compressed spectra), and the contour then enters the cell through the constraint's
boundary, which no corner sees. The split's new corners (the allowed ones) probe that side; from then on the
usual rule applies. A cut cell whose allowed corners are all allowed-and-not-excluded is left alone: an island
of exclusion at the edge is not looked for.

A contour that enters and leaves a coarse cell through the same edge, or an island smaller than a cell, is not
seen: the coarse grid must be fine enough for the contour's shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Cell", "Outcome", "Refinement", "Split", "coarse_cells", "leaves", "refine", "split_axes"]

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
class Split:
    """A cell split in a round, and along which axes (halves along one, quarters along both).

    Attributes:
        cell: the cell.
        along_x: split at the middle of its x range.
        along_y: split at the middle of its y range.
    """

    cell: Cell
    along_x: bool
    along_y: bool

    def children(self) -> tuple[Cell, ...]:
        """The cells the split makes."""
        return self.cell.children(self.along_x, self.along_y)


@dataclass(frozen=True)
class Refinement:
    """One round's split cells and new points.

    Attributes:
        split: the cells split, in order, with their directions.
        points: the new points, in order (each once, none already known).
        done: no further round: the reason (resolution reached, rounds or budget used up), or "".
    """

    split: tuple[Split, ...]
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


def _wide(cell: Cell, resolution: tuple[float, float]) -> tuple[bool, bool]:
    return cell.x1 - cell.x0 > resolution[0], cell.y1 - cell.y0 > resolution[1]


def _crossing(a: Point, b: Point, oa: Outcome, ob: Outcome, kind: str, alpha: float) -> float | None:
    """Where along the edge a -> b the contour of ``kind`` crosses (0..1), or None if the ends agree."""
    if kind not in oa.excluded or kind not in ob.excluded or oa.excluded[kind] == ob.excluded[kind]:
        return None
    la = math.log10(max(oa.cls.get(kind, alpha), 1e-300) / alpha)
    lb = math.log10(max(ob.cls.get(kind, alpha), 1e-300) / alpha)
    return min(1.0, max(0.0, la / (la - lb))) if la != lb else 0.5


def split_axes(
    cell: Cell, known: Mapping[Point, Outcome], resolution: tuple[float, float], alpha: float
) -> tuple[bool, bool]:
    """Along which axes an open cell is split: those that locate its contour (see the module's description).

    Args:
        cell: an open cell.
        known: the decided points (the cell's corners among them).
        resolution: cell size per axis below which a cell is not split along it.
        alpha: 1 - CL.

    Returns:
        ``(along_x, along_y)``; both False when the cell needs no split at this resolution.
    """
    wide_x, wide_y = _wide(cell, resolution)
    bl, br, tl, tr = corners = cell.corners()
    if any(c not in known for c in corners):
        # a cell the constraints cut: where the contour meets the edge of the allowed region is not known from
        # the corners, so the cell is split as far as the resolution allows
        return wide_x, wide_y
    kinds = sorted({k for c in corners for k in known[c].excluded})

    def crossings(a: Point, b: Point) -> dict[str, float]:
        out = {k: _crossing(a, b, known[a], known[b], k, alpha) for k in kinds}
        return {k: v for k, v in out.items() if v is not None}

    bottom, top, left, right = crossings(bl, br), crossings(tl, tr), crossings(bl, tl), crossings(br, tr)
    along_x = wide_x and bool(bottom or top)
    along_y = wide_y and bool(left or right)
    width, height = cell.x1 - cell.x0, cell.y1 - cell.y0
    for k in kinds:
        # a contour slanted across the cell: its crossings of opposite edges further apart than the resolution
        if k in bottom and k in top and abs(bottom[k] - top[k]) * width > resolution[0]:
            along_y = along_y or wide_y
        if k in left and k in right and abs(left[k] - right[k]) * height > resolution[1]:
            along_x = along_x or wide_x
    # a split along one axis alone stops where the halves would be more than twice as long (in units of the
    # resolution) along the contour as across it: the contour between the crossings is interpolated, and long
    # thin cells interpolate it badly
    nx, ny = width / resolution[0], height / resolution[1]
    if along_x and not along_y and wide_y and ny / (nx / 2.0) > 2.0:
        along_y = True
    if along_y and not along_x and wide_x and nx / (ny / 2.0) > 2.0:
        along_x = True
    return along_x, along_y


def leaves(coarse: Sequence[Cell], history: Iterable[Iterable[Split]]) -> list[Cell]:
    """The cells after the splits of earlier rounds.

    Args:
        coarse: the coarse grid's cells.
        history: per earlier round, its splits.
    """
    current = list(coarse)
    for splits in history:
        done = {split.cell: split for split in splits}
        nxt: list[Cell] = []
        for cell in current:
            nxt.extend(done[cell].children() if cell in done else (cell,))
        current = nxt
    return current


def _probe_cut_cell(cell: Cell, outcomes: Sequence[Outcome], kinds: set[str], admits: Callable[[Point], bool]) -> bool:
    """Whether a cell the constraints cut is split to look for a contour entering through the constraint.

    True when a corner is outside the allowed region and, for some CLs kind, every allowed corner is excluded
    (see the module's description).
    """
    if all(admits(c) for c in cell.corners()):
        return False
    return any(all(o.excluded.get(k, False) for o in outcomes) for k in kinds)


def _distance(outcome: Outcome, alpha: float) -> float:
    """How far a point's CLs is from the threshold (decades): small near the contour."""
    return min((abs(math.log10(max(v, 1e-300) / alpha)) for v in outcome.cls.values()), default=math.inf)


def refine(
    coarse: Sequence[Cell],
    history: Sequence[Sequence[Split]],
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
        history: the splits of each earlier round (``len(history)`` rounds so far).
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
    candidates: list[tuple[float, Cell, Split]] = []
    coarse_set = set(coarse)
    for cell in leaves(coarse, history):
        outcomes = [known[c] for c in cell.corners() if c in known]
        if len(outcomes) < 2:
            continue
        kinds = {k for o in outcomes for k in o.excluded}
        open_ = any(len({o.excluded[k] for o in outcomes if k in o.excluded}) > 1 for k in kinds)
        if not open_ and not (cell in coarse_set and _probe_cut_cell(cell, outcomes, kinds, admits)):
            continue
        along = split_axes(cell, known, resolution, alpha)
        if any(along):
            candidates.append((min(_distance(o, alpha) for o in outcomes), cell, Split(cell, *along)))
    if not candidates:
        return Refinement((), (), "resolution reached: no open cell is larger than the resolution")
    candidates.sort(key=lambda c: (c[0], c[1]))
    budget = None if max_points is None else max_points - len(known)
    split: list[Split] = []
    new: dict[Point, None] = {}
    exhausted = False
    for _, _, chosen in candidates:
        corners = [
            c for child in chosen.children() for c in child.corners() if c not in known and c not in new and admits(c)
        ]
        fresh = list(dict.fromkeys(corners))
        if budget is not None and len(new) + len(fresh) > budget:
            exhausted = True
            break
        split.append(chosen)
        new.update(dict.fromkeys(fresh))
    done = ""
    if exhausted and not split:
        done = f"point budget ({max_points}) used up"
    return Refinement(tuple(split), tuple(new), done)
