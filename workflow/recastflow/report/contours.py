"""Exclusion contours as coordinates: interpolated on a triangulation, and compared along a line.

The exclusion plot draws contours with ``tricontour``; the same interpolation is done here without a
figure, so that the contour a reader sees is the one written to HEPData and compared with ATLAS's.
A field (log10 CLs, or log10 r with r = sigma_theory / sigma_UL) is interpolated linearly on a Delaunay
triangulation of the points, chosen in unit-scaled coordinates (masses on the two axes can differ by an
order of magnitude, and triangles chosen in raw units would be long and thin across the short axis).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # headless: the workflow has no display

import itertools

import matplotlib.tri as mtri
import numpy as np
from matplotlib.figure import Figure

from recastflow.core.errors import RecastError

__all__ = [
    "Contour",
    "contour_distance_along",
    "contour_separation",
    "crossings_along",
    "interpolated_contour",
    "triangulate",
]


@dataclass(frozen=True)
class Contour:
    """A contour in a plane of two named parameters.

    Attributes:
        x: the parameter on the horizontal axis (e.g. ``m_C1N2``).
        y: the parameter on the vertical axis (e.g. ``m_N1``).
        lines: polylines, each an ``(n, 2)`` array of (x, y) coordinates.
        label: what the contour is (for legends and HEPData descriptions).
    """

    x: str
    y: str
    lines: tuple[np.ndarray, ...]
    label: str = ""

    def __bool__(self) -> bool:
        return any(len(line) >= 2 for line in self.lines)

    def points(self) -> list[tuple[float, float]]:
        """Every vertex of every line, in order (lines are not separated)."""
        return [(float(a), float(b)) for line in self.lines for a, b in line]


def _unit_scale(values: np.ndarray) -> np.ndarray:
    """Map values linearly onto [0, 1] (constant arrays map to 0)."""
    span = float(np.ptp(values))
    return (values - values.min()) / span if span > 0 else values - values.min()


def triangulate(x: np.ndarray, y: np.ndarray) -> mtri.Triangulation | None:
    """A Delaunay triangulation of the points in data coordinates, chosen in unit-scaled ones.

    Returns:
        The triangulation, or None when there are fewer than three points or they lie on a line.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return None
    try:
        scaled = mtri.Triangulation(_unit_scale(x), _unit_scale(y))
    except (ValueError, RuntimeError):
        return None
    if len(scaled.triangles) == 0:
        return None
    return mtri.Triangulation(x, y, triangles=scaled.triangles)


def interpolated_contour(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    level: float,
    *,
    names: tuple[str, str],
    label: str = "",
) -> Contour:
    """The contour ``values == level`` of a field known at scattered points (linear on triangles).

    Args:
        x: horizontal coordinates of the points.
        y: vertical coordinates.
        values: the field at each point (finite).
        level: the contour level.
        names: the parameters of the two axes.
        label: what the contour is.

    Returns:
        The contour; it has no lines when the points cannot be triangulated or the field never
        crosses the level.
    """
    xs, ys, zs = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(values, dtype=float)
    empty = Contour(names[0], names[1], (), label)
    if not (len(xs) == len(ys) == len(zs)):
        raise RecastError(f"{len(xs)} x, {len(ys)} y and {len(zs)} values: one each per point", field="values")
    if len(zs) and not np.all(np.isfinite(zs)):
        raise RecastError("the field to contour has values that are not finite", field="values")
    tri = triangulate(xs, ys)
    if tri is None or not (zs.min() < level < zs.max()):
        return empty
    # a figure that is never shown or saved: tricontour is matplotlib's marching-triangles implementation,
    # the one the exclusion plot draws with
    ax = Figure().subplots()
    cs = ax.tricontour(tri, zs, levels=[level])
    lines: list[np.ndarray] = []
    for path in cs.get_paths():
        for poly in path.to_polygons(closed_only=False):
            arr = np.asarray(poly, dtype=float)
            if len(arr) >= 2:
                lines.append(arr)
    return Contour(names[0], names[1], tuple(lines), label)


def crossings_along(contour: Contour, fixed: Mapping[str, float], axis: str) -> list[float]:
    """Where the contour crosses the line on which one parameter is fixed, as values of the other.

    Args:
        contour: the contour.
        fixed: one parameter of the contour's plane and its value, e.g. ``{"m_N1": 0}``.
        axis: the other parameter, whose values are returned.

    Returns:
        The crossings, increasing (a contour that ends on the line counts: the grid's edge often is it).

    Raises:
        RecastError: ``fixed`` and ``axis`` are not the contour's two parameters.
    """
    if len(fixed) != 1:
        raise RecastError(f"fix exactly one parameter, not {len(fixed)}", field="fixed")
    ((name, value),) = fixed.items()
    if {name, axis} != {contour.x, contour.y}:
        raise RecastError(
            f"the contour is in the ({contour.x}, {contour.y}) plane; fixing {name} and reading {axis} is not",
            field="axis",
        )
    fixed_col, free_col = (1, 0) if name == contour.y else (0, 1)
    hits: list[float] = []
    for line in contour.lines:
        f, g = line[:, fixed_col] - float(value), line[:, free_col]
        for i in range(len(line) - 1):
            a, b = f[i], f[i + 1]
            if a == 0.0 and b == 0.0:  # a segment along the line: both ends are on it
                hits += [float(g[i]), float(g[i + 1])]
            elif a * b <= 0.0:
                t = a / (a - b)
                hits.append(float(g[i] + t * (g[i + 1] - g[i])))
    # a vertex on the line is the end of two segments: keep it once
    out: list[float] = []
    for h in sorted(hits):
        if not out or not math.isclose(h, out[-1], rel_tol=0.0, abs_tol=1e-9 * max(1.0, abs(h))):
            out.append(h)
    return out


def contour_distance_along(
    ours: Contour, official: Contour, fixed: Mapping[str, float] | None = None, axis: str = "m_C1N2"
) -> float | None:
    """How far apart two contours' reaches are along a line (GeV for masses).

    The reach of a contour along the line is its largest crossing of it: an exclusion contour in a mass
    plane is quoted as "excluded up to m" at that line (e.g. m(chi_1^0) = 0).

    Args:
        ours: our contour.
        official: the contour to compare with.
        fixed: the line, one parameter and its value (default ``{"m_N1": 0}``).
        axis: the parameter read along the line.

    Returns:
        ``|reach(ours) - reach(official)|``, or None when either contour does not cross the line.
    """
    line = dict(fixed) if fixed is not None else {"m_N1": 0.0}
    a, b = crossings_along(ours, line, axis), crossings_along(official, line, axis)
    if not a or not b:
        return None
    return abs(max(a) - max(b))


def _segments_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest segment of a polyline."""
    a, b = line[:-1], line[1:]
    ab = b - a
    length2 = np.maximum((ab**2).sum(axis=1), 1e-300)
    ap = points[:, None, :] - a[None, :, :]
    t = np.clip((ap * ab[None, :, :]).sum(axis=2) / length2[None, :], 0.0, 1.0)
    nearest = a[None, :, :] + t[:, :, None] * ab[None, :, :]
    return np.sqrt(((points[:, None, :] - nearest) ** 2).sum(axis=2)).min(axis=1)


def _densified(contour: Contour, step: float) -> np.ndarray:
    out = []
    for line in contour.lines:
        for p, q in itertools.pairwise(line):
            n = max(1, math.ceil(float(np.hypot(*(q - p))) / step))
            out.append(p + np.linspace(0.0, 1.0, n, endpoint=False)[:, None] * (q - p))
        out.append(line[-1:])
    return np.concatenate(out) if out else np.empty((0, 2))


def contour_separation(a: Contour, b: Contour, *, step: float = 1.0) -> float | None:
    """The largest distance from a point on either contour to the other (symmetric Hausdorff distance).

    "Within 25 GeV of each other everywhere along the contour" is ``contour_separation(a, b) <= 25``. Both
    contours must be in the same plane with both axes in the same unit (masses in GeV).

    Args:
        a: one contour.
        b: the other.
        step: spacing of the points taken along each contour's segments.

    Returns:
        The distance, or None when either contour has no line.
    """
    if (a.x, a.y) != (b.x, b.y):
        raise RecastError(f"contours in different planes: ({a.x}, {a.y}) and ({b.x}, {b.y})", field="contour")
    if not a or not b:
        return None
    pa, pb = _densified(a, step), _densified(b, step)
    near_b = np.min([_segments_distance(pa, line) for line in b.lines if len(line) >= 2], axis=0)
    near_a = np.min([_segments_distance(pb, line) for line in a.lines if len(line) >= 2], axis=0)
    return float(max(near_b.max(), near_a.max()))
