"""Efficiency maps: multi-dimensional binned efficiencies applied as per-event weights.

Where an analysis's selection cannot be reproduced outside the experiment (a tagger, a
trigger, a network on low-level inputs), it may publish the efficiency of that step as a
table binned in truth-level quantities. A selection declares such a map under
``efficiency_maps`` (schema ``selection.schema.json``, ``$defs/efficiency_map``)::

    efficiency_maps:
      eff_tag:
        table: eff_tag.yaml          # HEPData YAML export, or a CSV file
        value: efficiency            # the dependent variable (column) to use
        axes:                        # in the table's order of independent variables
          - {column: "pT [GeV]", expression: "truth_bhadrons[0].pt", unit: GeV}
          - {column: "|eta|",    expression: "abs(truth_bhadrons[0].eta)", unit: "1"}
        out_of_range: clamp          # clamp | zero | error

and applies it with a weight step in a cutflow (``- tagged: {weight: eff_tag}``).

Tables
    *HEPData YAML*: ``independent_variables`` (one per axis, each value a ``{low, high}`` bin)
    and ``dependent_variables`` (each value ``{value: ...}``), one row per cell, as HEPData
    exports a multi-dimensional histogram. *CSV*: a header line with ``<column> low`` and
    ``<column> high`` for each axis (as HEPData's CSV export names them) and the value column.
    The cells must tile a full grid (each axis' bins contiguous, every cell given once).

Bins are half-open [low, high). ``out_of_range`` says what a value outside the table (or
missing) gives: ``clamp`` the nearest bin (a missing value gives 0), ``zero`` an efficiency
of 0, ``error`` stops the selection with the map's name.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recastflow.core.errors import RecastError

OUT_OF_RANGE = ("clamp", "zero", "error")


@dataclass(frozen=True)
class EfficiencyMap:
    """An N-dimensional efficiency table with its axes' expressions."""

    name: str
    edges: tuple[np.ndarray, ...] = field(repr=False)
    values: np.ndarray = field(repr=False)
    expressions: tuple[Any, ...] = ()
    out_of_range: str = "zero"
    source: str = ""

    def lookup(self, coords: Sequence[np.ndarray]) -> np.ndarray:
        """Efficiency of each event from its coordinates (one array per axis).

        Raises:
            RecastError: with ``out_of_range: error``, if any value is outside the table.
        """
        n = len(coords[0]) if coords else 0
        index = []
        inside = np.ones(n, dtype=bool)
        missing = np.zeros(n, dtype=bool)
        for edges, x in zip(self.edges, coords):
            x = np.asarray(x, dtype=np.float64)
            i = np.searchsorted(edges, x, side="right") - 1
            nb = len(edges) - 1
            ok = (i >= 0) & (i < nb) & ~np.isnan(x)
            inside &= ok
            missing |= np.isnan(x)
            index.append(np.clip(i, 0, nb - 1))
        if self.out_of_range == "error" and not inside.all():
            bad = int(np.flatnonzero(~inside)[0])
            values = ", ".join(f"{float(np.asarray(c)[bad]):g}" for c in coords)
            ranges = ", ".join(f"[{e[0]:g}, {e[-1]:g})" for e in self.edges)
            raise RecastError(
                f"an event has ({values}), outside the table {ranges}; declare out_of_range: clamp "
                "or zero if that is intended",
                path=self.source,
                field=f"efficiency_maps.{self.name}",
            )
        eff = self.values[tuple(index)] if n else np.zeros(0)
        if self.out_of_range == "zero":
            eff = np.where(inside, eff, 0.0)
        else:  # clamp: the nearest bin, but nothing for a missing value
            eff = np.where(missing, 0.0, eff)
        return eff

    def env_function(self) -> Any:
        """The function computing the efficiency in a selection environment."""

        def efficiency(env: Any) -> np.ndarray:
            with np.errstate(all="ignore"):
                coords = [
                    np.broadcast_to(np.asarray(env.evaluate(e), dtype=np.float64), (env.n_events,))
                    for e in self.expressions
                ]
            return self.lookup(coords)

        return efficiency


def read_table(
    path: Path,
    columns: Sequence[str],
    value: str | None,
    *,
    source: str,
    field: str,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Read a HEPData YAML or CSV table into bin edges per axis and an N-d value array.

    Args:
        path: the table.
        columns: the independent variables, in axis order (their names in the table).
        value: the dependent variable; may be None if the table has only one.
        source: the selection file (for messages).
        field: its key (for messages).
    """

    def fail(message: str) -> RecastError:
        return RecastError(f"{path.name}: {message}", path=source, field=field)

    if not path.is_file():
        raise fail("table not found")
    if path.suffix.lower() == ".csv":
        boxes, vals = _read_csv(path, columns, value, fail)
    else:
        boxes, vals = _read_hepdata(path, columns, value, fail)
    edges = []
    cells = []
    for axis, col in enumerate(columns):
        pairs = sorted({(lo, hi) for lo, hi in (b[axis] for b in boxes)})
        e = [pairs[0][0]] + [hi for _, hi in pairs]
        if any(pairs[k][1] != pairs[k + 1][0] for k in range(len(pairs) - 1)) or any(hi <= lo for lo, hi in pairs):
            raise fail(f"the bins of {col!r} do not tile a range: {pairs[:6]}{'...' if len(pairs) > 6 else ''}")
        lookup = {p: k for k, p in enumerate(pairs)}
        cells.append([lookup[b[axis]] for b in boxes])
        edges.append(np.asarray(e, dtype=np.float64))
    shape = tuple(len(e) - 1 for e in edges)
    table = np.full(shape, np.nan)
    seen = np.zeros(shape, dtype=bool)
    for row, v in enumerate(vals):
        cell = tuple(c[row] for c in cells)
        if seen[cell]:
            raise fail(f"cell {cell} is given twice")
        seen[cell] = True
        table[cell] = v
    if not seen.all():
        cell = tuple(int(x[0]) for x in np.nonzero(~seen))
        lows = ", ".join(f"{columns[a]} {edges[a][cell[a]]:g}" for a in range(len(columns)))
        raise fail(f"no value for the cell at {lows}: the table must cover a full grid")
    if not (np.isfinite(table).all() and (table >= 0).all()):
        raise fail("efficiencies must be finite numbers >= 0")
    return tuple(edges), table


def _number(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise ValueError(x)
    return float(x)


def _read_hepdata(
    path: Path,
    columns: Sequence[str],
    value: str | None,
    fail: Any,
) -> tuple[list[tuple[tuple[float, float], ...]], list[float]]:
    from recastflow.core.config import read_document

    doc = read_document(path)
    if not isinstance(doc, dict) or "independent_variables" not in doc or "dependent_variables" not in doc:
        raise fail("not a HEPData table (needs independent_variables and dependent_variables)")
    indep = {v["header"]["name"]: v["values"] for v in doc["independent_variables"]}
    dep = {v["header"]["name"]: v["values"] for v in doc["dependent_variables"]}
    for col in columns:
        if col not in indep:
            raise fail(f"no independent variable {col!r} (has: {', '.join(map(repr, indep))})")
    name = value if value is not None else (next(iter(dep)) if len(dep) == 1 else None)
    if name not in dep:
        raise fail(
            f"give 'value': one of {', '.join(map(repr, dep))}"
            if value is None
            else f"no dependent variable {value!r} (has: {', '.join(map(repr, dep))})"
        )
    try:
        boxes = list(zip(*[[(_number(b["low"]), _number(b["high"])) for b in indep[c]] for c in columns]))
        vals = [_number(v["value"]) for v in dep[name]]
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(f"every bin needs numeric low/high and every value a numeric 'value' ({exc!r:.60})") from None
    if len(boxes) != len(vals):
        raise fail(f"{len(boxes)} bins but {len(vals)} values")
    return boxes, vals


def _read_csv(
    path: Path,
    columns: Sequence[str],
    value: str | None,
    fail: Any,
) -> tuple[list[tuple[tuple[float, float], ...]], list[float]]:
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    if not rows:
        raise fail("empty table")
    header = [h.strip() for h in rows[0]]
    pos = {h: i for i, h in enumerate(header)}
    want = [(f"{c} low", f"{c} high") for c in columns]
    for lo, hi in want:
        if lo not in pos or hi not in pos:
            raise fail(f"needs columns {lo!r} and {hi!r} (header: {header})")
    used = {h for pair in want for h in pair}
    rest = [h for h in header if h not in used]
    name = value if value is not None else (rest[0] if len(rest) == 1 else None)
    if name not in pos:
        raise fail(f"no value column {value!r} (header: {header})" if value else f"give 'value': one of {rest}")
    boxes, vals = [], []
    try:
        for r in rows[1:]:
            boxes.append(tuple((_number(r[pos[lo]]), _number(r[pos[hi]])) for lo, hi in want))
            vals.append(_number(r[pos[name]]))
    except (IndexError, ValueError) as exc:
        raise fail(f"a row is not numeric or too short ({exc!r:.60})") from None
    return boxes, vals


def build_map(name: str, spec: Mapping[str, Any], *, source: str, compile_axis: Any) -> EfficiencyMap:
    """Read and check one efficiency-map declaration of a selection file.

    Args:
        name: the map's name.
        spec: its schema-validated declaration.
        source: the selection file.
        compile_axis: compiles an axis expression; returns it, or raises for one that is not
            a number per event.
    """
    from recastflow.core.config import inside

    where = f"efficiency_maps.{name}"
    path = inside(Path(source).parent, spec["table"], source=Path(source), field=f"{where}.table")
    if "sha256" in spec:
        from recastflow.core.io import sha256_file

        if path.is_file() and sha256_file(path) != spec["sha256"].lower():
            raise RecastError(
                f"{spec['table']} does not have the sha256 the selection gives", path=source, field=f"{where}.sha256"
            )
    columns = [a["column"] for a in spec["axes"]]
    edges, values = read_table(path, columns, spec.get("value"), source=source, field=f"{where}.table")
    exprs = tuple(compile_axis(a["expression"], f"{where}.axes[{i}].expression") for i, a in enumerate(spec["axes"]))
    return EfficiencyMap(name, edges, values, exprs, spec["out_of_range"], source)
