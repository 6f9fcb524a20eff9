"""Scans: a model over a grid of parameter values, one complete SLHA spectrum per point.

A scan file (schema ``scan.schema.json``, e.g. ``config/scans/TChiWH_1Lbb.yaml``) names

- the model: a spectrum card (``model:``, see :mod:`recastflow.generate.spectrum`) or an SLHA template
  (``template:``) whose numbers may be ``{axis}`` placeholders, both relative to the scan file;
- the axes: each a list of ``values`` or an inclusive ``range`` with a ``step`` (values computed as
  ``lo + i * step`` in decimal arithmetic, so 0.1-steps do not drift);
- ``constraints``: conditions over the axes (``m_N1 < m_C1N2 - 125``), parsed with :mod:`ast` and
  evaluated by this module (numbers, axis names, ``+ - * /``, unary ``-``, comparisons, ``and``/``or``/
  ``not``, ``abs``/``min``/``max``; nothing else, never ``eval``);
- ``cross_section``: ``tables`` (the LHC SUSY Cross Section Working Group's tables at the point's masses;
  a point outside a table's range is refused, never extrapolated), ``slha`` (the template's own
  ``XSECTION`` blocks, accepted only where they match the point's masses, see
  :mod:`recastflow.generate.xsec_check`) or ``pythia-lo`` (no ``XSECTION`` is written and the process
  card must take Pythia's LO ``sigmaGen``: ``xsec.source: generator``. Today a process card with
  ``xsec.source: slha`` refuses a spectrum without ``XSECTION`` ("no XSECTION for the pair(s) ..."),
  and one with ``generator`` normalises to ``sigmaGen`` divided by the open-width factor of the forced
  decays and marks the events ``xsec_estimated``; :func:`check_xsec_source` makes the scan's choice and
  the card's agree, so neither is picked silently).

Every point is checked when the scan is loaded (before any event is made): the card's parameter bounds
and open decays, the template's spectrum as ``generate`` checks it (``MODSEL``, every sparticle in
``MASS``, possible decays), the tables' ranges. Point names are ``<name>_<value>_<value>`` in axis order,
values without a trailing ``.0`` and with ``p`` for the decimal point (``TChiWH_650_50``, ``X_12p5_0``).

Run ``python -m recastflow.generate.scan SCAN --list`` or ``--write-slha FOLDER``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import itertools
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from recastflow.core.config import load_validated
from recastflow.core.errors import RecastError

if TYPE_CHECKING:
    from recastflow.generate.xsec_check import XsecComparison

#: The cross-section sources a scan may name, and the process card's ``xsec.source`` each needs.
PROCESS_XSEC_SOURCE: dict[str, str] = {"tables": "slha", "slha": "slha", "pythia-lo": "generator"}

#: At most this many points before constraints (a typo in a step must not build millions of points).
MAX_POINTS = 100_000

#: The functions a constraint may call, with their number of arguments (minimum, maximum or None).
FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    "abs": (abs, 1, 1),
    "min": (min, 2, None),
    "max": (max, 2, None),
}

_ALLOWED_TEXT = "numbers, axis names, + - * /, unary -, comparisons, and/or/not, abs/min/max"


@dataclass(frozen=True)
class Axis:
    """One scanned parameter.

    Attributes:
        name: the parameter (a spectrum card's parameter or a template's placeholder).
        values: its values, in the file's order (a range: increasing).
        label: its label for tables and plots.
    """

    name: str
    values: tuple[float, ...]
    label: str


@dataclass(frozen=True)
class ScanPoint:
    """One point of a scan.

    Attributes:
        name: ``<scan name>_<value>_<value>`` (file-safe).
        values: axis name -> value (GeV), in axis order.
    """

    name: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class Scan:
    """A scan, as read from its file, with its points (after constraints).

    Attributes:
        name: the scan's name (prefix of the point names).
        path: the scan file.
        sha256: sha256 of its bytes (named in the written SLHA files).
        description: free text.
        model_name: the model's name (process card ``config/processes/<model_name>.yaml``, official contours).
        axes: the axis names, in file order (point-name order).
        axis_values: axis name -> its values.
        constraints: the constraints' text.
        points: the points that meet every constraint, in axis order (first axis outermost).
        model: the spectrum card, or None.
        template: the SLHA template, or None.
        cross_section: ``"tables"``, ``"slha"`` or ``"pythia-lo"``.
        final_states: for a template with ``tables``: the pairs whose XSECTION blocks are written.
        adaptive: the file's ``adaptive`` section as written (read by :mod:`recastflow.adaptive.spec`), or None.
    """

    name: str
    path: Path
    sha256: str
    description: str
    model_name: str
    axes: tuple[str, ...]
    axis_values: Mapping[str, tuple[float, ...]]
    axis_labels: Mapping[str, str]
    constraints: tuple[str, ...]
    points: tuple[ScanPoint, ...]
    model: Path | None
    template: Path | None
    cross_section: str
    final_states: tuple[tuple[int, int], ...] | None
    adaptive: Mapping[str, Any] | None = None

    def axis_label(self, axis: str) -> str:
        """The label of an axis for tables and plots (the file's ``label``, default ``<name> [GeV]``).

        Args:
            axis: the axis name.
        """
        return self.axis_labels[axis]

    @property
    def process_xsec_source(self) -> str:
        """The ``xsec.source`` the process card must have: ``"slha"`` or ``"generator"`` (Pythia's LO)."""
        return PROCESS_XSEC_SOURCE[self.cross_section]

    def point(self, name: str) -> ScanPoint:
        """Return a point by name.

        Args:
            name: the point's name.

        Raises:
            RecastError: no such point.
        """
        for p in self.points:
            if p.name == name:
                return p
        raise RecastError(f"no point {name!r} in the scan ({len(self.points)} points)", path=str(self.path))


# -- reading ------------------------------------------------------------------------------------------
def load_scan(path: Path) -> Scan:
    """Read a scan file, build its points and check every one of them.

    Args:
        path: the scan (YAML).

    Returns:
        The scan.

    Raises:
        RecastError: one line naming the file and the field: schema errors, a missing model or template,
            an empty or bad axis, a constraint that is not allowed or names no axis, constraints that
            remove every point, a point the model or template refuses, a point outside a cross-section
            table's range.
    """
    path = Path(path)
    doc = load_validated(path, "scan")
    where = str(path)
    has_model, has_template = "model" in doc, "template" in doc
    if has_model == has_template:
        raise RecastError(
            "give either 'model' (a spectrum card) or 'template' (an SLHA file), "
            + ("not both" if has_model else "none is given"),
            path=where,
            field="model" if has_model else None,
        )
    key = "model" if has_model else "template"
    target = (path.parent / doc[key]).resolve()
    if not target.is_file():
        raise RecastError(f"{doc[key]!r} is not a file (relative to the scan file)", path=where, field=key)
    axes = tuple(_axis(name, spec, where) for name, spec in doc["axes"].items())
    names = [a.name for a in axes]
    constraints = tuple(doc.get("constraints", []))
    checks = [_compile(text, names, where, f"constraints[{k}]") for k, text in enumerate(constraints)]
    total = 1
    for a in axes:
        total *= len(a.values)
    if total > MAX_POINTS:
        raise RecastError(f"{total} points before constraints, more than {MAX_POINTS}; use a larger step", path=where)
    points = []
    for combo in itertools.product(*(a.values for a in axes)):
        values = dict(zip(names, combo, strict=True))
        if all(_evaluate(tree, values, where, f"constraints[{k}]") for k, tree in enumerate(checks)):
            points.append(ScanPoint(point_name(doc["name"], combo), MappingProxyType(values)))
    if not points:
        raise RecastError(
            f"the constraints remove every one of the {total} points; loosen them or change the axes",
            path=where,
            field="constraints",
        )
    seen: dict[str, ScanPoint] = {}
    for p in points:
        if p.name in seen:
            raise RecastError(f"two points have the name {p.name!r}; give distinct axis values", path=where)
        seen[p.name] = p
    cross_section = doc["cross_section"]
    final_states = tuple((int(f[0]), int(f[1])) for f in doc["final_states"]) if "final_states" in doc else None
    if final_states is not None and (has_model or cross_section != "tables"):
        raise RecastError(
            "only used with a template and cross_section 'tables' (a spectrum card names its own processes)",
            path=where,
            field="final_states",
        )
    if has_template and cross_section == "tables" and final_states is None:
        raise RecastError(
            "a template with cross_section 'tables' needs 'final_states': the produced pairs, "
            "e.g. [[1000023, 1000024], [1000023, -1000024]]",
            path=where,
            field="final_states",
        )
    if has_model and cross_section == "slha":
        raise RecastError(
            "a spectrum card writes its XSECTION from the working group's tables: use 'tables' (or 'pythia-lo')",
            path=where,
            field="cross_section",
        )
    scan = Scan(
        name=doc["name"],
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        description=" ".join(str(doc.get("description", "")).split()),
        model_name=doc.get("model_name") or (_card_name(target) if has_model else doc["name"]),
        axes=tuple(names),
        axis_values=MappingProxyType({a.name: a.values for a in axes}),
        axis_labels=MappingProxyType({a.name: a.label for a in axes}),
        constraints=constraints,
        points=tuple(points),
        model=target if has_model else None,
        template=target if has_template else None,
        cross_section=cross_section,
        final_states=final_states,
        adaptive=doc.get("adaptive"),
    )
    if has_model:
        _check_model_points(scan)
    else:
        _check_template(scan)
    return scan


def admits(scan: Scan, values: Mapping[str, float]) -> bool:
    """Whether values of the scan's axes meet every constraint of the scan file.

    Args:
        scan: the scan.
        values: a value for every axis.
    """
    where = str(scan.path)
    return all(
        _evaluate(_compile(text, scan.axes, where, f"constraints[{k}]"), values, where, f"constraints[{k}]")
        for k, text in enumerate(scan.constraints)
    )


def new_point(scan: Scan, values: Mapping[str, float]) -> ScanPoint:
    """A point that is not on the scan file's grid (an adaptive scan's refinement), checked like the grid's.

    Args:
        scan: the scan.
        values: a value for every axis (they must meet the constraints).

    Returns:
        The point, named like the grid's points.

    Raises:
        RecastError: a constraint or the model refuses the values.
    """
    ordered = {a: float(values[a]) for a in scan.axes}
    point = ScanPoint(point_name(scan.name, list(ordered.values())), MappingProxyType(ordered))
    if not admits(scan, ordered):
        raise RecastError(f"point {point.name} does not meet the constraints", path=str(scan.path), field="constraints")
    one = dataclasses.replace(scan, points=(point,))
    if scan.model is not None:
        _check_model_points(one)
    else:
        _check_template(one)
    return point


def _card_name(card: Path) -> str:
    from recastflow.generate.spectrum import load_spectrum_card

    return load_spectrum_card(card).name


def _axis(name: str, spec: Mapping[str, Any], where: str) -> Axis:
    """One axis's values: a list, or ``lo + i * step`` in decimal arithmetic (no float drift)."""
    field = f"axes.{name}"
    label = str(spec.get("label") or f"{name} [GeV]")
    if ("values" in spec) == ("range" in spec):
        raise RecastError("give either 'values' or 'range' with 'step'", path=where, field=field)
    if "values" in spec:
        if "step" in spec:
            raise RecastError("'step' belongs to a 'range'", path=where, field=f"{field}.step")
        values = tuple(float(v) for v in spec["values"])
        if len(set(values)) != len(values):
            raise RecastError("a value is given twice", path=where, field=f"{field}.values")
        return Axis(name, values, label)
    if "step" not in spec:
        raise RecastError("a 'range' needs a 'step'", path=where, field=f"{field}.step")
    lo_in, hi_in = spec["range"]
    # the YAML numbers as written (repr is the shortest text that reads back to the same float)
    lo, hi, step = Decimal(repr(float(lo_in))), Decimal(repr(float(hi_in))), Decimal(repr(float(spec["step"])))
    if hi < lo:
        raise RecastError(
            f"range [{lo}, {hi}] is empty: give [lo, hi] with lo <= hi", path=where, field=f"{field}.range"
        )
    count = int((hi - lo) / step) + 1
    if count > MAX_POINTS:
        raise RecastError(f"{count} values; use a larger step", path=where, field=f"{field}.step")
    return Axis(name, tuple(float(lo + i * step) for i in range(count)), label)


def point_name(scan_name: str, values: Sequence[float]) -> str:
    """The file-safe name of a point: ``<scan>_<v1>_<v2>``.

    Args:
        scan_name: the scan's name.
        values: the point's values, in axis order.

    Returns:
        E.g. ``TChiWH_650_50``; 12.5 is written ``12p5`` and -5 ``m5``.
    """
    return "_".join([scan_name, *(_value_text(v) for v in values)])


def _value_text(value: float) -> str:
    if value == int(value):
        text = str(int(value))
    else:
        # positional notation of the shortest repr: 1e-05 -> 0.00001, never an exponent
        text = format(Decimal(repr(value)), "f")
    return text.replace("-", "m").replace(".", "p")


# -- constraints ----------------------------------------------------------------------------------------
_COMPARE: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}
_ARITHMETIC: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def _compile(text: str, axes: Sequence[str], where: str, field: str) -> ast.expr:
    """Parse a constraint and check every node: a condition over numbers and axis names, nothing else."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise RecastError(
            f"{text!r} is not a condition ({detail}); allowed: {_ALLOWED_TEXT}", path=where, field=field
        ) from None
    body = tree.body
    # first every node's kind (breadth-first from the top: the outermost offence is named), then the types
    for node in ast.walk(body):
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise RecastError(
                f"{text!r}: the call {ast.unparse(node.func)!r} is not allowed; allowed: {_ALLOWED_TEXT}",
                path=where,
                field=field,
            )
        if not isinstance(node, _ALLOWED_NODES):
            shown = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
            raise RecastError(
                f"{text!r}: {type(node).__name__} ({shown!r}) is not allowed; allowed: {_ALLOWED_TEXT}",
                path=where,
                field=field,
            )
    _check_node(body, "bool", text, axes, where, field)
    return body


#: The syntax a constraint may use (operators are checked again, one by one, by _check_node).
_ALLOWED_NODES = (
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Compare,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Eq,
    ast.NotEq,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Call,
)


def _check_node(node: ast.expr, kind: str, text: str, axes: Sequence[str], where: str, field: str) -> None:
    """Refuse any node outside the allowed grammar; ``kind`` is what the parent needs: "bool" or "num"."""

    def refuse(what: str) -> RecastError:
        return RecastError(f"{text!r}: {what} is not allowed; allowed: {_ALLOWED_TEXT}", path=where, field=field)

    is_condition = isinstance(node, ast.Compare | ast.BoolOp) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    )
    if kind == "bool" and not is_condition:
        raise RecastError(
            f"{text!r}: {ast.unparse(node)!r} is a number, not a condition; compare it, e.g. 'm_N1 < m_C1N2 - 10'",
            path=where,
            field=field,
        )
    if kind == "num" and is_condition:
        raise refuse(f"the condition {ast.unparse(node)!r} used as a number")
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check_node(v, "bool", text, axes, where, field)
    elif isinstance(node, ast.Compare):
        if not all(type(op) in _COMPARE for op in node.ops):
            raise refuse("the comparison 'in', 'is'")
        for v in (node.left, *node.comparators):
            _check_node(v, "num", text, axes, where, field)
    elif isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            _check_node(node.operand, "bool", text, axes, where, field)
        elif isinstance(node.op, ast.USub | ast.UAdd):
            _check_node(node.operand, "num", text, axes, where, field)
        else:
            raise refuse(f"the operator {type(node.op).__name__}")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            raise refuse(f"the operator {type(node.op).__name__}")
        _check_node(node.left, "num", text, axes, where, field)
        _check_node(node.right, "num", text, axes, where, field)
    elif isinstance(node, ast.Constant):
        # bool is an int: True/False are not numbers here
        if type(node.value) not in (int, float):
            raise refuse(f"the constant {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id not in axes:
            raise RecastError(
                f"{text!r}: unknown name {node.id!r}; the axes are {', '.join(axes)}", path=where, field=field
            )
    elif isinstance(node, ast.Call):
        func = node.func.id if isinstance(node.func, ast.Name) else None
        if func not in FUNCTIONS:
            raise refuse(f"the call {ast.unparse(node.func)!r}")
        _, least, most = FUNCTIONS[func]
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise refuse(f"keyword or starred arguments of {func}")
        if len(node.args) < least or (most is not None and len(node.args) > most):
            raise RecastError(
                f"{text!r}: {func} takes {least if most == least else f'at least {least}'} argument(s)",
                path=where,
                field=field,
            )
        for a in node.args:
            _check_node(a, "num", text, axes, where, field)
    else:
        raise refuse(f"{type(node).__name__} ({ast.unparse(node)!r})")


def _evaluate(node: ast.expr, values: Mapping[str, float], where: str, field: str) -> float:
    """Evaluate a checked constraint tree (see :func:`_check_node`) at one point; booleans are 0/1."""
    if isinstance(node, ast.BoolOp):
        parts = (bool(_evaluate(v, values, where, field)) for v in node.values)
        return float(all(parts) if isinstance(node.op, ast.And) else any(parts))
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values, where, field)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comp, values, where, field)
            if not _COMPARE[type(op)](left, right):
                return 0.0
            left = right
        return 1.0
    if isinstance(node, ast.UnaryOp):
        inner = _evaluate(node.operand, values, where, field)
        if isinstance(node.op, ast.Not):
            return float(not inner)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left, values, where, field), _evaluate(node.right, values, where, field)
        if isinstance(node.op, ast.Div) and b == 0:
            shown = ", ".join(f"{k}={v:g}" for k, v in values.items())
            raise RecastError(f"division by zero in {ast.unparse(node)!r} at {shown}", path=where, field=field)
        return _ARITHMETIC[type(node.op)](a, b)
    if isinstance(node, ast.Constant):
        return float(node.value)  # type: ignore[arg-type]  # int or float: checked by _check_node
    if isinstance(node, ast.Name):
        return float(values[node.id])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return float(FUNCTIONS[node.func.id][0](*(_evaluate(a, values, where, field) for a in node.args)))
    raise RecastError(f"cannot evaluate {ast.unparse(node)!r}", path=where, field=field)  # refused by _check_node


# -- checks of every point ----------------------------------------------------------------------------------
def _reworded(exc: RecastError, path: Path | str, field: str) -> RecastError:
    """The same message, naming another file and field (a temporary file's name would mean nothing)."""
    prefix = (f"{exc.path}: " if exc.path else "") + (f"{exc.field}: " if exc.field else "")
    message = str(exc)[len(prefix) :] if str(exc).startswith(prefix) else str(exc)
    inner = f" ({exc.field})" if exc.field else ""
    return RecastError(message, path=str(path), field=f"{field}{inner}")


def _check_model_points(scan: Scan) -> None:
    """Every point against the spectrum card (bounds, open decays) and the tables' ranges."""
    from recastflow.generate.spectrum import load_spectrum_card, obtain_tables, point_values

    assert scan.model is not None
    card = load_spectrum_card(scan.model)
    axes = list(scan.axes)
    if set(axes) != set(card.parameters):
        raise RecastError(
            f"the axes ({', '.join(axes)}) must be the card's parameters ({', '.join(card.parameters)})",
            path=str(scan.path),
            field="axes",
        )
    tables = [obtain_tables(p) for p in card.processes] if scan.cross_section == "tables" else []
    for point in scan.points:
        try:
            point_values(card, point.values)
        except RecastError as exc:
            raise _reworded(exc, scan.path, f"point {point.name}") from None
        for k, pt in enumerate(tables):
            mass = point.values[pt.process.mass]
            try:
                pt.at(mass)
            except RecastError as exc:
                raise RecastError(
                    f"point {point.name}: {pt.process.mass} = {mass:g} GeV: {str(exc).split(': ', 2)[-1]} "
                    "(restrict the axes or constraints)",
                    path=str(scan.path),
                    field=f"cross_section (model {scan.model.name}, cross_sections.processes[{k}])",
                ) from None


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _check_template(scan: Scan) -> None:
    """The template's placeholders name the axes (each at least once), and every point's spectrum passes."""
    assert scan.template is not None
    text = _template_source(scan.template)
    axes = list(scan.axes)
    used: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        data = line.split("#", 1)[0]
        for name in _PLACEHOLDER.findall(data):
            if name not in axes:
                raise RecastError(
                    f"line {n}: placeholder {{{name}}} is not an axis (axes: {', '.join(axes)})",
                    path=str(scan.template),
                    field="placeholders",
                )
            used.add(name)
        rest = _PLACEHOLDER.sub("", data)
        if "{" in rest or "}" in rest:
            raise RecastError(
                f"line {n}: an unmatched brace; write placeholders as {{axis}}",
                path=str(scan.template),
                field="placeholders",
            )
    unused = [a for a in axes if a not in used]
    if unused:
        raise RecastError(
            f"the template has no placeholder for axis/axes {', '.join(unused)}: they would change nothing; "
            f"write {{{unused[0]}}} where the value goes",
            path=str(scan.path),
            field="axes",
        )
    with tempfile.TemporaryDirectory(prefix="recastflow-scan-") as tmp:
        for point in scan.points:
            _template_point(scan, point, Path(tmp) / "point.slha")


def _template_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecastError(f"cannot read the template ({exc})", path=str(path)) from None


# -- writing -------------------------------------------------------------------------------------------
def _header(scan: Scan, point: ScanPoint) -> list[str]:
    shown = ", ".join(f"{k}={v:g}" for k, v in point.values.items())
    lines = [
        f"# Point {point.name} ({shown}, GeV) of the scan {scan.name}, written by recastflow (recastflow.generate.scan)",
        # not the scan file's sha256: adding points to the scan must leave the existing points' files as they are
        # (the workflow would otherwise make their events again)
        f"# from the scan file {scan.path.name}.",
    ]
    if scan.cross_section == "pythia-lo":
        lines.append("# cross_section: pythia-lo: no XSECTION; the process card must use xsec.source: generator")
        lines.append("#   (Pythia 8's LO sigmaGen divided by the open-width factor of forced decays).")
    elif scan.cross_section == "slha":
        lines.append("# cross_section: slha: the template's XSECTION, checked against the working group's tables")
        lines.append("#   at this point's masses (recastflow.generate.xsec_check).")
    return lines


def _strip_xsections(text: str) -> str:
    """The SLHA text without its XSECTION blocks (their header line, value lines and comments inside)."""
    out, skipping = [], False
    for line in text.splitlines():
        if line[:1] and not line[:1].isspace() and not line.startswith("#"):
            skipping = line.split()[0].upper() == "XSECTION"
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def _substitute(text: str, values: Mapping[str, float]) -> str:
    """Replace ``{axis}`` placeholders outside comments with the point's values, as SLHA numbers."""
    out = []
    for line in text.splitlines():
        data, sep, comment = line.partition("#")
        data = _PLACEHOLDER.sub(lambda m: f"{values[m.group(1)] + 0.0:.8E}", data)
        out.append(data + sep + comment)
    return "\n".join(out) + "\n"


def _template_point(scan: Scan, point: ScanPoint, output: Path) -> Path:
    """Write one point from the template to ``output`` and check it; errors name the template and point."""
    from recastflow.generate.slha import read_slha
    from recastflow.generate.xsec_check import check_slha_xsections, tables_xsection_text

    assert scan.template is not None
    text = _substitute(_template_source(scan.template), point.values)
    if scan.cross_section != "slha":
        text = _strip_xsections(text)
    body = "\n".join(_header(scan, point)) + "\n" + text
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    try:
        info = read_slha(tmp)
        if scan.cross_section == "tables":
            assert scan.final_states is not None
            # the XSECTION blocks are computed from the written spectrum's own masses and states
            block = tables_xsection_text(
                info, scan.final_states, sqrt_s_gev=13000.0, path=str(scan.path), field=f"point {point.name}"
            )
            tmp.write_text(body + block, encoding="utf-8")
            info = read_slha(tmp)
        elif scan.cross_section == "slha":
            _check_slha_xsections(scan, point, check_slha_xsections(info))
    except RecastError as exc:
        tmp.unlink(missing_ok=True)
        if exc.path == str(scan.path):
            raise
        raise _reworded(exc, scan.template, f"point {point.name}") from None
    _replace_if_changed(tmp, output)
    return output


def _check_slha_xsections(scan: Scan, point: ScanPoint, comparisons: Sequence[XsecComparison]) -> None:
    """With ``cross_section: slha`` every pair needs a value the tables confirm (others cannot be trusted)."""
    assert scan.template is not None
    rows = list(comparisons)
    if not rows:
        raise RecastError(
            "the template has no XSECTION block; use cross_section 'tables' or 'pythia-lo'",
            path=str(scan.template),
            field=f"point {point.name}",
        )
    for final in sorted({c.final for c in rows}):
        mine = [c for c in rows if c.final == final]
        if not any(c.status == "agrees" for c in mine):
            raise RecastError(
                f"the XSECTION of {list(final)} cannot be checked against this point's masses "
                f"({'; '.join(sorted({c.reason for c in mine}))}); use cross_section 'tables' or 'pythia-lo'",
                path=str(scan.template),
                field=f"point {point.name}",
            )


def write_point_slha(scan: Scan, point: ScanPoint, output: Path) -> Path:
    """Write the complete SLHA file of one point.

    Args:
        scan: the scan (:func:`load_scan`).
        point: one of its points.
        output: the file to write (written whole: a temporary file renamed into place).

    Returns:
        The output path.

    Raises:
        RecastError: the point's spectrum or cross-section is refused (see :func:`load_scan`).
    """
    output = Path(output)
    if scan.template is not None:
        return _template_point(scan, point, output)
    from recastflow.generate.spectrum import load_spectrum_card, spectrum_text

    assert scan.model is not None
    card = load_spectrum_card(scan.model)
    if scan.cross_section == "pythia-lo":
        # the card without its processes writes no XSECTION: generation must take Pythia's sigmaGen
        card = dataclasses.replace(card, processes=())
    try:
        text = spectrum_text(card, point.values)
    except RecastError as exc:
        raise _reworded(exc, scan.path, f"point {point.name}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text("\n".join(_header(scan, point)) + "\n" + text, encoding="utf-8")
    _replace_if_changed(tmp, output)
    return output


def _replace_if_changed(tmp: Path, output: Path) -> None:
    """Move ``tmp`` over ``output`` unless ``output`` already holds the same bytes (then its time stamp, which
    the workflow's rerun decisions read, stays as it is)."""
    if output.is_file() and output.read_bytes() == tmp.read_bytes():
        tmp.unlink()
    else:
        tmp.replace(output)


def write_scan_slhas(scan: Scan, folder: Path) -> dict[str, Path]:
    """Write every point's SLHA file as ``<folder>/<point name>.slha``.

    Args:
        scan: the scan.
        folder: where to write (created).

    Returns:
        Point name -> path, in point order.
    """
    folder = Path(folder)
    return {p.name: write_point_slha(scan, p, folder / f"{p.name}.slha") for p in scan.points}


def check_xsec_source(scan: Scan, xsec_source: str, *, card_path: Path | str) -> None:
    """Refuse a process card whose ``xsec.source`` contradicts the scan's ``cross_section``.

    ``tables`` and ``slha`` write XSECTION blocks that only a card with ``xsec.source: slha`` uses;
    ``pythia-lo`` writes none, so the card must say ``generator`` (a card with ``slha`` would refuse
    every point, one with ``generator`` under ``tables`` would silently ignore the tables).

    Args:
        scan: the scan.
        xsec_source: the process card's ``xsec.source``.
        card_path: the process card (for the message).

    Raises:
        RecastError: they disagree.
    """
    wanted = scan.process_xsec_source
    if xsec_source != wanted:
        raise RecastError(
            f"xsec.source is {xsec_source!r}, but the scan {scan.path.name} has cross_section "
            f"{scan.cross_section!r}, which needs xsec.source: {wanted}",
            path=str(card_path),
            field="xsec.source",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: list a scan's points or write their SLHA files.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0, or 1 after a one-line error on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m recastflow.generate.scan",
        description="List the points of a scan, or write each point's SLHA spectrum.",
    )
    parser.add_argument("scan", type=Path, help="the scan file (YAML)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="print one line per point: name and values")
    what.add_argument("--write-slha", type=Path, metavar="FOLDER", help="write <FOLDER>/<point>.slha for every point")
    args = parser.parse_args(argv)
    try:
        scan = load_scan(args.scan)
        if args.list:
            for p in scan.points:
                print(p.name, " ".join(f"{k}={v:g}" for k, v in p.values.items()))
            print(f"# {len(scan.points)} points; cross-section: {scan.cross_section}", file=sys.stderr)
        else:
            for path in write_scan_slhas(scan, args.write_slha).values():
                print(path)
    except RecastError as exc:
        print(f"recastflow: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
