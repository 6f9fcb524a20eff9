"""A small, safe expression language evaluated column-wise over all events at once.

Selection files (``selection.yaml``) write cuts, object requirements and derived variables
as strings such as ``"100 < mT < 160"`` or ``"mct(bjets[0], bjets[1])"``. A string is parsed
with :func:`ast.parse` (mode ``"eval"``), checked against the whitelist below and turned into
a tree of small Python functions that work on whole numpy columns. Nothing is ever handed to
``eval``, ``exec`` or ``compile``: a construct not listed here is refused when the selection
file is loaded, with the file, the field and what is allowed.

Values
    - per-event numbers and conditions (one value per event), e.g. ``mT``, ``weight``;
    - objects: one particle per event, e.g. ``met``, ``leptons[0]``; fields via ``leptons[0].pt``;
    - collections: a variable number of particles per event, e.g. ``jets``; ``jets.pt`` is one
      number per jet (a per-object value) that reductions turn into per-event numbers.

Grammar
    - numbers, ``True``, ``False``, ``inf``, ``pi``;
    - names: collections, variables defined above, ``met``, ``weight``; inside an object's
      ``where`` and overlap cone, the bare fields of that object (``pt``, ``eta``, ``btag``...);
    - fields: ``jets.pt``, ``leptons[0].eta``;
    - indexing of collections or per-object values by an integer constant (``bjets[1]``,
      ``jets.pt[0]``; negative counts from the end);
    - ``+ - * /`` and ``**`` with a constant exponent between -64 and 64, unary ``-``;
    - comparisons ``< <= > >= == !=``, chained (``100 < mT < 160``); ``and``, ``or``, ``not``;
    - functions, see :data:`FUNCTIONS` (e.g. ``abs sqrt min max n sum any m mt mct mt2 dr``).

Missing values
    Indexing past the end of a collection (``bjets[1]`` in an event with one b-jet) gives a
    *missing* object; its fields, and everything computed from them, are missing (NaN).
    **Every comparison with a missing value is False**, ``!=`` included, so a cut on
    ``bjets[1].pt`` rejects events without a second b-jet. ``not`` turns such a False into
    True: ``not (bjets[1].pt > 50)`` accepts events without a second b-jet.
"""

from __future__ import annotations

import ast
import difflib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recastflow.core.errors import RecastError

# The runtime values and the kinematics live in their own modules; their names stay importable from here,
# where the selection code and user notebooks have always found them.
from recastflow.select.columns import Collection, Columns, Layout, Particle, PerObject, pick, take_events
from recastflow.select.kinematics import (
    contransverse_mass,
    delta_phi,
    event_shape,
    higgs_pairing,
    invariant_mass,
    largest_dr_pair_masses,
    stransverse_mass,
    sum_eta,
    sum_pt,
    transverse_mass,
)

#: Longest expression accepted (characters); selections are short, and this bounds parser work.
MAX_LENGTH = 2000
#: Deepest nesting of the syntax tree; the evaluator recurses once per level.
MAX_DEPTH = 40
#: Most syntax-tree nodes in one expression.
MAX_NODES = 400
#: Largest magnitude of a constant exponent of ``**``.
MAX_EXPONENT = 64
#: Largest magnitude of a constant index (``jets[i]``).
MAX_INDEX = 1000

# static kinds of values (also the words used in messages)
NUM, BOOL, OBJ, COLL = "number", "condition", "object", "collection"
JNUM, JBOOL = "per-object number", "per-object condition"
CONSTANTS = {"inf": math.inf, "pi": math.pi}


# --------------------------------------------------------------------------- evaluation environment


class Env:
    """Named values for a set of events, computed on first use and kept.

    ``base`` definitions read the input (only the root environment has them); ``derived``
    definitions compute from other names. A sub-environment for a subset of events takes a
    name from the nearest ancestor that already has it, in one step however many subsets
    lie between, and otherwise computes it on the subset only, so that a variable used only
    after the preselection costs only that much.
    """

    def __init__(
        self,
        n_events: int,
        base: Mapping[str, Callable[[Env], Any]],
        derived: Mapping[str, Callable[[Env], Any]],
        parent: tuple[Env, np.ndarray] | None = None,
    ) -> None:
        self.n_events = n_events
        self._base = base
        self._derived = derived
        self._parent = parent  # (parent, positions of these events among the parent's)
        self._cache: dict[Any, Any] = {}
        self._positions: dict[int, np.ndarray] = {}  # id(ancestor) -> positions among its events

    def __getitem__(self, name: str) -> Any:
        return self._get(name, lambda: self._compute(name))

    def evaluate(self, expr: Expression) -> Any:
        """Value of an expression, computed once per environment (shared cuts are reused)."""
        return self._get(("expr", expr.key), lambda: expr.fn(self))

    def subset(self, mask: np.ndarray) -> Env:
        """An environment for the events flagged in ``mask``."""
        return self.take(np.flatnonzero(mask))

    def take(self, kept: np.ndarray) -> Env:
        """An environment for the events at positions ``kept`` (increasing)."""
        return Env(len(kept), self._base, self._derived, (self, kept))

    def has(self, key: Any) -> bool:
        """Whether ``key`` (a name or an expression key) is computed here or in an ancestor."""
        return self._owner(key) is not None

    def _owner(self, key: Any) -> Env | None:
        """This environment or the nearest ancestor that has computed ``key``."""
        env: Env | None = self
        while env is not None:
            if key in env._cache:
                return env
            env = env._parent[0] if env._parent is not None else None
        return None

    def _positions_in(self, ancestor: Env) -> np.ndarray:
        """Positions of these events among those of ``ancestor``."""
        assert self._parent is not None
        parent, kept = self._parent
        if parent is ancestor:
            return kept
        key = id(ancestor)
        if key not in self._positions:
            self._positions[key] = pick(parent._positions_in(ancestor), kept)
        return self._positions[key]

    def _get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key in self._cache:
            return self._cache[key]
        owner = self._parent[0]._owner(key) if self._parent is not None else None
        value = compute() if owner is None else take_events(owner._cache[key], self._positions_in(owner))
        self._cache[key] = value
        return value

    def _compute(self, name: str) -> Any:
        if name in self._derived:
            return self._derived[name](self)
        if self._parent is not None:
            root = self._parent[0]
            while root._parent is not None:
                root = root._parent[0]
            return take_events(root[name], self._positions_in(root))
        if name in self._base:
            return self._base[name](self)
        raise KeyError(name)  # the compiler resolved every name; this is a programming error


class _SelfEnv:
    """Environment of an object's ``where`` and cone: bare names are the object's fields."""

    def __init__(self, env: Env, coll: Collection) -> None:
        self.env = env
        self.coll = coll
        self.n_events = env.n_events

    def __getitem__(self, name: str) -> Any:
        if name in self.coll.names:
            return PerObject(self.coll.field(name), self.coll.layout)
        return self.env[name]

    def evaluate(self, expr: Expression) -> Any:
        """Value of an expression on this collection (not cached: the collection is transient)."""
        return expr.fn(self)


def evaluate_on(expr: Expression, env: Env, coll: Collection) -> Any:
    """Evaluate an expression written for one collection (``where``, overlap cone) on ``coll``."""
    with np.errstate(all="ignore"):
        return expr.fn(_SelfEnv(env, coll))


# --------------------------------------------------------------------------- static kinds and scope


@dataclass(frozen=True)
class Kind:
    """Static type of an expression: what it is and, for per-object values, whose objects."""

    tag: str
    coll: str | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def field_map(self) -> dict[str, str]:
        """Field name -> NUM or BOOL."""
        return dict(self.fields)


def collection_kind(name: str, fields: Mapping[str, str]) -> Kind:
    """Kind of a collection with the given field types (NUM or BOOL)."""
    return Kind(COLL, name, tuple(sorted(fields.items())))


def object_kind(name: str, fields: Mapping[str, str]) -> Kind:
    """Kind of a one-per-event object with the given field types."""
    return Kind(OBJ, name, tuple(sorted(fields.items())))


SELF = "@self"


@dataclass(frozen=True)
class Scope:
    """Names an expression may use.

    Args:
        names: name -> kind, in definition order.
        self_fields: fields usable bare (inside an object's ``where``), or None.
        later: names defined further down the file (for a better message).
    """

    names: Mapping[str, Kind]
    self_fields: Mapping[str, str] | None = None
    later: frozenset[str] = frozenset()


@dataclass(frozen=True, eq=False)
class Expression:
    """A checked expression: its kind and the function that evaluates it on an environment."""

    text: str
    kind: Kind
    fn: Callable[[Any], Any] = field(repr=False)
    key: str = field(repr=False)
    names: frozenset[str] = frozenset()

    def evaluate(self, env: Env) -> Any:
        """Value on all events of ``env`` (cached there)."""
        with np.errstate(all="ignore"):
            return env.evaluate(self)


# --------------------------------------------------------------------------- compiler


def compile_expression(text: str, scope: Scope, *, path: str | None, field: str) -> Expression:
    """Parse, check and compile one expression.

    Args:
        text: the expression as written.
        scope: the names it may use.
        path: the selection file (for messages).
        field: where in the file it is, e.g. ``variables.mbb``.

    Raises:
        RecastError: naming ``path`` and ``field`` and saying what is allowed.
    """
    if not isinstance(text, str):
        raise RecastError(f"expected an expression string, got {type(text).__name__}", path=path, field=field)
    if len(text) > MAX_LENGTH:
        raise RecastError(
            f"expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed", path=path, field=field
        )
    tree = _parse(text, path, field)
    _check_size(tree, path, field)
    compiler = _Compiler(text, scope, path, field)
    kind, fn = compiler.visit(tree.body)
    return Expression(text, kind, _widened(fn), ast.dump(tree.body), frozenset(compiler.used))


def _widened(fn: Fn) -> Fn:
    """Turn a constant result (``"True"``, ``"2 * pi"``) into one value per event."""

    def evaluate(env: Any) -> Any:
        value = fn(env)
        if isinstance(value, np.ndarray) and value.ndim == 1:
            return value
        if isinstance(value, (np.generic, np.ndarray, float, int, bool)):
            return np.full(env.n_events, value)
        return value

    return evaluate


def _parse(text: str, path: str | None, field: str) -> ast.Expression:
    try:
        with warnings.catch_warnings():
            # Python only warns about "1and x" or "'\d'" (a stray warning line on the terminal,
            # and a syntax error in later Pythons): refuse them now, with the usual one-line error
            warnings.simplefilter("error", SyntaxWarning)
            warnings.simplefilter("error", DeprecationWarning)
            return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        # Python reports offset 0 for an expression that ends too early
        col = exc.offset if exc.offset else len(text.strip()) + 1
        line = f"line {exc.lineno}, " if exc.lineno and exc.lineno > 1 else ""  # YAML block scalars keep newlines
        raise RecastError(
            f"syntax error at {line}column {col} in {text.strip()!r}: {exc.msg}", path=path, field=field
        ) from None
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, parser stack overflow
        raise RecastError(f"cannot parse the expression: {exc}", path=path, field=field) from None


def _check_size(tree: ast.AST, path: str | None, field: str) -> None:
    # iterative walk: a recursive one could itself overflow on hostile input
    stack, count = [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_NODES:
            raise RecastError(
                f"expression too complex (more than {MAX_DEPTH} levels of nesting or {MAX_NODES} "
                "parts); split it into several variables",
                path=path,
                field=field,
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


_DISALLOWED = {
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Tuple: "tuple",
    ast.List: "list",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.Starred: "'*' unpacking",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "':=' assignment",
    ast.IfExp: "'x if c else y'",
    ast.Slice: "slice",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_ARITH = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.Pow: ("**", np.power),
}
_COMPARE = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: None,
}
ALLOWED = (
    "numbers, True/False/inf/pi, names, fields (x.pt), integer indexing (jets[0]), + - * / **, "
    "comparisons (< <= > >= == !=, chained), and/or/not, and the functions "
)

Fn = Callable[[Any], Any]


class _Compiler:
    """Walks the syntax tree once, checking kinds and building the evaluation functions."""

    def __init__(self, text: str, scope: Scope, path: str | None, field: str) -> None:
        self.text = text
        self.scope = scope
        self.path = path
        self.field = field
        self.used: set[str] = set()

    def fail(self, message: str, node: ast.AST | None = None) -> RecastError:
        """Build the error for a problem at ``node``."""
        where = f" (column {node.col_offset + 1})" if node is not None and hasattr(node, "col_offset") else ""
        return RecastError(f"{message}{where} in {self.text.strip()!r}", path=self.path, field=self.field)

    def visit(self, node: ast.AST) -> tuple[Kind, Fn]:
        """Compile one node."""
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            what = _DISALLOWED.get(type(node), type(node).__name__)
            raise self.fail(f"{what} is not allowed; allowed: {ALLOWED}{', '.join(sorted(FUNCTIONS))}", node)
        return method(node)

    # -- leaves

    def visit_Constant(self, node: ast.Constant) -> tuple[Kind, Fn]:
        value = node.value
        # constants stay numpy scalars; numpy broadcasts them, and results are widened at the end
        if isinstance(value, bool):
            flag = np.bool_(value)
            return Kind(BOOL), lambda env: flag
        if isinstance(value, (int, float)):
            number = np.float64(self._float(value, node))
            return Kind(NUM), lambda env: number
        raise self.fail(f"{type(value).__name__} constants are not allowed; only numbers and True/False", node)

    def _float(self, value: int | float, node: ast.AST) -> float:
        try:
            return float(value)
        except OverflowError:
            raise self.fail("number too large", node) from None

    def visit_Name(self, node: ast.Name) -> tuple[Kind, Fn]:
        name = node.id
        if name.startswith("_"):
            raise self.fail(f"names starting with '_' are not allowed ({name!r})", node)
        if self.scope.self_fields is not None and name in self.scope.self_fields:
            tag = JBOOL if self.scope.self_fields[name] == BOOL else JNUM
            return Kind(tag, SELF), lambda env: env[name]
        if name in self.scope.names:
            self.used.add(name)
            return self.scope.names[name], lambda env: env[name]
        if name in CONSTANTS:
            number = np.float64(CONSTANTS[name])
            return Kind(NUM), lambda env: number
        if name in FUNCTIONS:
            raise self.fail(f"{name!r} is a function; call it, e.g. {FUNCTIONS[name].signature}", node)
        raise self.fail(self._unknown(name), node)

    def _unknown(self, name: str) -> str:
        if name in self.scope.later:
            return f"{name!r} is defined further down the file; define it before it is used"
        known = list(self.scope.names) + list(self.scope.self_fields or ()) + list(CONSTANTS)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        shown = ", ".join(known[:40]) + (", ..." if len(known) > 40 else "")
        return f"unknown name {name!r}{hint} (known here: {shown})"

    # -- fields and indexing

    def visit_Attribute(self, node: ast.Attribute) -> tuple[Kind, Fn]:
        attr = node.attr
        if attr.startswith("_"):
            raise self.fail(f"names starting with '_' are not allowed ({attr!r})", node)
        if isinstance(node.value, ast.Name) and node.value.id in FUNCTIONS and node.value.id not in self.scope.names:
            raise self.fail(f"functions have no attributes ({node.value.id}.{attr})", node)
        kind, inner = self.visit(node.value)
        if kind.tag not in (OBJ, COLL):
            raise self.fail(
                f"{with_article(kind.tag)} has no fields (.{attr}); fields belong to objects and collections", node
            )
        fields = kind.field_map
        if attr not in fields:
            close = difflib.get_close_matches(attr, list(fields), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise self.fail(f"{kind.coll or kind.tag} has no field {attr!r}{hint} (fields: {', '.join(fields)})", node)
        is_bool = fields[attr] == BOOL
        if kind.tag == COLL:

            def per_object(env: Any) -> PerObject:
                coll = inner(env)
                return PerObject(coll.field(attr), coll.layout)

            return Kind(JBOOL if is_bool else JNUM, kind.coll), per_object

        def per_event(env: Any) -> np.ndarray:
            values = inner(env)[attr]
            return values == 1.0 if is_bool else values

        return Kind(BOOL if is_bool else NUM), per_event

    def visit_Subscript(self, node: ast.Subscript) -> tuple[Kind, Fn]:
        kind, inner = self.visit(node.value)
        index = self._int_constant(node.slice, "an index", MAX_INDEX)
        if kind.tag == COLL:
            return Kind(OBJ, kind.coll, kind.fields), lambda env: inner(env).item(index)
        if kind.tag in (JNUM, JBOOL):
            tag = BOOL if kind.tag == JBOOL else NUM
            return Kind(tag), lambda env: _per_object_item(inner(env), index, tag == BOOL)
        raise self.fail(f"only collections and per-object values can be indexed, not {with_article(kind.tag)}", node)

    def _int_constant(self, node: ast.AST, what: str, limit: int) -> int:
        value = _constant_number(node)
        if not isinstance(value, int):
            raise self.fail(f"{what} must be an integer constant such as 0, 1 or -1", node)
        if abs(value) > limit:
            raise self.fail(f"{what} must be between -{limit} and {limit}", node)
        return int(value)

    # -- operators

    def visit_BinOp(self, node: ast.BinOp) -> tuple[Kind, Fn]:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise self.fail(
                f"operator {type(node.op).__name__} is not allowed; use + - * / ** (and/or/not for conditions)", node
            )
        symbol, ufunc = op
        if symbol == "**":
            exponent = _constant_number(node.right)
            if exponent is None or isinstance(exponent, bool) or abs(exponent) > MAX_EXPONENT:
                raise self.fail(
                    f"the exponent of '**' must be a number between -{MAX_EXPONENT} and "
                    f"{MAX_EXPONENT}; use exp/log/sqrt otherwise",
                    node,
                )
        if symbol == "/" and _constant_number(node.right) == 0:
            # a literal zero divisor is a typo, not physics: it would turn every event into inf or nan
            raise self.fail("division by the constant 0", node)
        left, right = self.visit(node.left), self.visit(node.right)
        kind = self._numeric_result(symbol, left[0], right[0], node)
        lf, rf = _as_numbers(left), _as_numbers(right)
        return kind, lambda env: _apply(ufunc, lf(env), rf(env))

    def _numeric_result(self, symbol: str, a: Kind, b: Kind, node: ast.AST) -> Kind:
        for k in (a, b):
            if k.tag not in (NUM, BOOL, JNUM, JBOOL):
                raise self.fail(f"'{symbol}' needs numbers, got {with_article(k.tag)}{_field_hint(k)}", node)
        coll = self._common_coll([a, b], node)
        return Kind(JNUM, coll) if coll else Kind(NUM)

    def _common_coll(self, kinds: Sequence[Kind], node: ast.AST) -> str | None:
        """The collection of the per-object operands (None if all are per event)."""
        colls = {k.coll for k in kinds if _is_jagged(k)}
        if len(colls) > 1:
            # str(): per-object kinds always name their collection, but Kind.coll is typed Optional
            names = " and ".join(sorted("this object" if c == SELF else str(c) for c in colls))
            raise self.fail(
                f"cannot combine per-object values of different collections ({names}); reduce one "
                "first with n/sum/min/max/any/all or pick one object with [i]",
                node,
            )
        return next(iter(colls), None)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> tuple[Kind, Fn]:
        kind, inner = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            if kind.tag not in (BOOL, JBOOL):
                raise self.fail(f"'not' needs a condition, got {with_article(kind.tag)}{_field_hint(kind)}", node)
            return kind, lambda env: _map(np.logical_not, inner(env))
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            self._numeric_result("-", kind, kind, node)
            result = Kind(JNUM, kind.coll) if _is_jagged(kind) else Kind(NUM)
            fn = _as_numbers((kind, inner))
            if isinstance(node.op, ast.UAdd):
                return result, fn
            return result, lambda env: _map(np.negative, fn(env))
        raise self.fail("operator '~' is not allowed; use 'not'", node)

    def visit_BoolOp(self, node: ast.BoolOp) -> tuple[Kind, Fn]:
        word = "and" if isinstance(node.op, ast.And) else "or"
        parts = [self.visit(v) for v in node.values]
        for kind, _ in parts:
            if kind.tag not in (BOOL, JBOOL):
                raise self.fail(
                    f"'{word}' needs conditions, got {with_article(kind.tag)}{_field_hint(kind)}; "
                    "compare it first (e.g. x > 0)",
                    node,
                )
        coll = self._common_coll([k for k, _ in parts], node)
        ufunc = np.logical_and if word == "and" else np.logical_or
        fns = [fn for _, fn in parts]

        def combine(env: Any) -> Any:
            value = fns[0](env)
            for fn in fns[1:]:
                value = _apply(ufunc, value, fn(env))
            return value

        return (Kind(JBOOL, coll) if coll else Kind(BOOL)), combine

    def visit_Compare(self, node: ast.Compare) -> tuple[Kind, Fn]:
        operands = [self.visit(node.left)] + [self.visit(c) for c in node.comparators]
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise self.fail(f"comparison {type(op).__name__} is not allowed; use < <= > >= == !=", node)
        for kind, _ in operands:
            if kind.tag not in (NUM, BOOL, JNUM, JBOOL):
                raise self.fail(
                    f"only numbers and conditions can be compared, not {with_article(kind.tag)}{_field_hint(kind)}",
                    node,
                )
        coll = self._common_coll([k for k, _ in operands], node)
        fns = [_as_numbers(o) for o in operands]
        ops = [_COMPARE[type(op)] for op in node.ops]

        def compare(env: Any) -> Any:
            # each operand evaluated once, so 'a < b < c' costs one b
            values = [fn(env) for fn in fns]
            result = None
            for op, a, b in zip(ops, values, values[1:]):
                step = _apply(op, a, b) if op is not None else _apply(_not_equal, a, b)
                result = step if result is None else _apply(np.logical_and, result, step)
            return result

        return (Kind(JBOOL, coll) if coll else Kind(BOOL)), compare

    # -- calls

    def visit_Call(self, node: ast.Call) -> tuple[Kind, Fn]:
        if not isinstance(node.func, ast.Name):
            raise self.fail(
                "only the listed functions can be called, by name (no methods or attributes); "
                f"functions: {', '.join(sorted(FUNCTIONS))}",
                node,
            )
        name = node.func.id
        spec = FUNCTIONS.get(name)
        if spec is None or name.startswith("_"):
            close = difflib.get_close_matches(name, list(FUNCTIONS), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise self.fail(
                f"{name!r} is not an allowed function{hint} (allowed: {', '.join(sorted(FUNCTIONS))})", node
            )
        if node.keywords:
            raise self.fail(f"{name}() takes no keyword arguments; write {spec.signature}", node)
        n = len(node.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            raise self.fail(f"wrong number of arguments to {name}(): got {n}; write {spec.signature}", node)
        return spec.build(self, node)


def _constant_number(node: ast.AST) -> int | float | None:
    """The value of a number literal, possibly negated, or None."""
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return sign * node.value  # Python ints of any size compare cheaply with the limits
    return None


def with_article(tag: str) -> str:
    """The kind name with its article ("a number", "an object")."""
    return f"an {tag}" if tag[0] in "aeiou" else f"a {tag}"


def _is_jagged(kind: Kind) -> bool:
    return kind.tag in (JNUM, JBOOL)


def _field_hint(kind: Kind) -> str:
    if kind.tag == OBJ:
        return " (use one of its fields, e.g. .pt)"
    if kind.tag == COLL:
        return " (use n(...) or a field such as .pt)"
    return ""


# --------------------------------------------------------------------------- column operations


def _as_numbers(compiled: tuple[Kind, Fn]) -> Fn:
    """Evaluation function returning floats (conditions become 0/1)."""
    kind, fn = compiled
    if kind.tag == BOOL:
        return lambda env: np.asarray(fn(env), dtype=np.float64)
    if kind.tag == JBOOL:
        return lambda env: _map(lambda v: np.asarray(v, dtype=np.float64), fn(env))
    return fn


def _map(func: Callable[[np.ndarray], np.ndarray], value: Any) -> Any:
    """Apply an element-wise function to a per-event column or a per-object value."""
    if isinstance(value, PerObject):
        return PerObject(func(value.values), value.layout)
    return func(value)


def _apply(func: Callable[[np.ndarray, np.ndarray], np.ndarray], a: Any, b: Any) -> Any:
    """Apply a binary element-wise function, broadcasting per-event columns onto objects."""
    if isinstance(a, PerObject):
        return PerObject(func(a.values, b.values if isinstance(b, PerObject) else _spread(a.layout, b)), a.layout)
    if isinstance(b, PerObject):
        return PerObject(func(_spread(b.layout, a), b.values), b.layout)
    return func(a, b)


def _spread(layout: Layout, value: Any) -> Any:
    """A per-event column repeated per object; constants stay scalars."""
    return layout.broadcast(value) if np.ndim(value) else value


def _not_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # IEEE makes NaN != x True; the language promises every comparison with a missing value is False
    return (a != b) & ~np.isnan(a) & ~np.isnan(b)


def _per_object_item(value: PerObject, index: int, is_bool: bool) -> np.ndarray:
    coll = Collection(value.layout, Columns.of({"v": value.values}))
    out = coll.item(index)["v"]
    return out == 1.0 if is_bool else out


def _segment_reduce(ufunc: np.ufunc, value: PerObject, empty: float) -> np.ndarray:
    """Reduce each event's objects with ``ufunc``; ``empty`` for events without objects."""
    counts = value.layout.counts
    out = np.full(len(counts), empty, dtype=np.float64)
    nonempty = counts > 0
    if value.values.size:
        # skipping empty events keeps reduceat's segments exactly one event each
        out[nonempty] = ufunc.reduceat(value.values.astype(np.float64, copy=False), value.layout.offsets[:-1][nonempty])
    return out


def _count(value: PerObject) -> np.ndarray:
    return np.bincount(value.layout.event_index[value.values.astype(bool)], minlength=value.layout.n_events).astype(
        np.float64
    )


def _angular(kind: str, a: Any, b: Any) -> Any:
    """dr or dphi between two objects, or between each object of a collection and one object."""
    if isinstance(b, Collection):
        return _angular(kind, b, a)
    _, eta_b, phi_b, _ = b.kinematics()
    if isinstance(a, Collection):
        lay = a.layout
        eta_a, phi_a = a.field("eta") if "eta" in a.names else 0.0, a.field("phi")
        eta_b = lay.broadcast(eta_b) if np.ndim(eta_b) else eta_b
        phi_b = lay.broadcast(phi_b)
    else:
        lay = None
        _, eta_a, phi_a, _ = a.kinematics()
    d = delta_phi(phi_a, phi_b)
    if kind == "dr":
        d = np.sqrt((eta_a - eta_b) ** 2 + d * d)
    return PerObject(d, lay) if lay is not None else d


# --------------------------------------------------------------------------- function table


@dataclass(frozen=True)
class Function:
    """A whitelisted function: its signature, argument count and builder."""

    name: str
    signature: str
    min_args: int
    max_args: int | None
    doc: str
    build: Callable[[_Compiler, ast.Call], tuple[Kind, Fn]] = field(repr=False)


def _args(c: _Compiler, node: ast.Call, allowed: tuple[str, ...], name: str) -> list[tuple[Kind, Fn]]:
    args = [c.visit(a) for a in node.args]
    for i, (kind, _) in enumerate(args):
        if kind.tag not in allowed:
            wanted = " or ".join(with_article(t) for t in allowed)
            raise c.fail(
                f"argument {i + 1} of {name}() must be {wanted}, got {with_article(kind.tag)}{_field_hint(kind)}", node
            )
    return args


def _elementwise(ufunc: np.ufunc, name: str) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        (arg,) = _args(c, node, (NUM, BOOL, JNUM, JBOOL), name)
        kind = Kind(JNUM, arg[0].coll) if _is_jagged(arg[0]) else Kind(NUM)
        fn = _as_numbers(arg)
        return kind, lambda env: _map(ufunc, fn(env))

    return build


def _build_minmax(ufunc: np.ufunc, name: str) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        args = _args(c, node, (NUM, BOOL, JNUM, JBOOL), name)
        if len(args) == 1:
            if not _is_jagged(args[0][0]):
                raise c.fail(
                    f"{name}(x) of one argument needs per-object values such as jets.pt; "
                    f"or give two or more numbers: {name}(a, b)",
                    node,
                )
            fn = _as_numbers(args[0])
            return Kind(NUM), lambda env: _segment_reduce(ufunc, fn(env), np.nan)
        coll = c._common_coll([k for k, _ in args], node)
        fns = [_as_numbers(a) for a in args]

        def reduce(env: Any) -> Any:
            value = fns[0](env)
            for fn in fns[1:]:
                value = _apply(ufunc, value, fn(env))
            return value

        return (Kind(JNUM, coll) if coll else Kind(NUM)), reduce

    return build


def _build_count(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
    name = node.func.id  # type: ignore[attr-defined]
    ((kind, fn),) = _args(c, node, (COLL, JBOOL, JNUM), name)
    if kind.tag == COLL:
        return Kind(NUM), lambda env: fn(env).layout.counts.astype(np.float64)
    if kind.tag == JNUM:
        return Kind(NUM), lambda env: fn(env).layout.counts.astype(np.float64)
    return Kind(NUM), lambda env: _count(fn(env))


def _build_sum(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
    arg = _args(c, node, (JNUM, JBOOL), "sum")[0]
    fn = _as_numbers(arg)
    return Kind(NUM), lambda env: _segment_reduce(np.add, fn(env), 0.0)


def _build_anyall(which: str) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        ((_, fn),) = _args(c, node, (JBOOL,), which)
        if which == "any":
            return Kind(BOOL), lambda env: _count(fn(env)) > 0
        return Kind(BOOL), lambda env: _count(_map(np.logical_not, fn(env))) == 0

    return build


def _build_particles(
    func: Callable[[list[Particle]], np.ndarray],
    name: str,
) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        fns = [fn for _, fn in _args(c, node, (OBJ,), name)]
        return Kind(NUM), lambda env: func([fn(env) for fn in fns])

    return build


def _build_angular(which: str) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        (ka, fa), (kb, fb) = _args(c, node, (OBJ, COLL), which)
        if ka.tag == COLL and kb.tag == COLL:
            raise c.fail(f"{which}() needs at least one single object, e.g. {which}(jets, leptons[0])", node)
        coll = ka.coll if ka.tag == COLL else kb.coll if kb.tag == COLL else None
        kind = Kind(JNUM, coll) if coll else Kind(NUM)
        return kind, lambda env: _angular(which, fa(env), fb(env))

    return build


def _build_mindphi(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
    args = node.args
    (kc, fc), (ko, fo) = _args(c, ast.Call(func=node.func, args=args[:2], keywords=[]), (COLL, OBJ), "mindphi")
    if kc.tag != COLL or ko.tag != OBJ:
        raise c.fail("write mindphi(collection, object[, n]), e.g. mindphi(jets, met, 4)", node)
    limit = c._int_constant(args[2], "n of mindphi(collection, object, n)", MAX_INDEX) if len(args) == 3 else None
    if limit is not None and limit < 1:
        raise c.fail("n of mindphi(collection, object, n) must be at least 1", node)

    def mindphi(env: Any) -> np.ndarray:
        coll = fc(env)
        d = _angular("dphi", coll, fo(env))
        values = d.values
        if limit is not None:
            values = np.where(coll.layout.local_index < limit, values, np.inf)
        out = _segment_reduce(np.minimum, PerObject(values, d.layout), np.nan)
        return out

    return Kind(NUM), mindphi


def _build_shape(which: str) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        args = node.args
        ((_kind, fn),) = _args(c, ast.Call(func=node.func, args=args[:1], keywords=[]), (COLL,), which)
        r = c._int_constant(args[1], f"r of {which}(collection, r)", 2) if len(args) == 2 else 2
        if r not in (1, 2):
            raise c.fail(f"r of {which}(collection, r) must be 1 (linearised) or 2", node)
        shape = event_shape(which, r)
        return Kind(NUM), lambda env: shape(fn(env))

    return build


def _build_pairing(which: int, name: str) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        ((_kind, fn),) = _args(c, node, (COLL,), name)
        return Kind(NUM), lambda env: higgs_pairing(fn(env))[which]

    return build


def _build_dr_pair_mass(which: int, name: str) -> Callable[[_Compiler, ast.Call], tuple[Kind, Fn]]:
    def build(c: _Compiler, node: ast.Call) -> tuple[Kind, Fn]:
        ((_kind, fn),) = _args(c, node, (COLL,), name)
        return Kind(NUM), lambda env: largest_dr_pair_masses(fn(env))[which]

    return build


def _table() -> dict[str, Function]:
    f = Function
    table = [
        f("abs", "abs(x)", 1, 1, "absolute value", _elementwise(np.abs, "abs")),
        f("sqrt", "sqrt(x)", 1, 1, "square root (NaN below 0)", _elementwise(np.sqrt, "sqrt")),
        f("log", "log(x)", 1, 1, "natural logarithm", _elementwise(np.log, "log")),
        f("exp", "exp(x)", 1, 1, "exponential", _elementwise(np.exp, "exp")),
        f("cos", "cos(x)", 1, 1, "cosine", _elementwise(np.cos, "cos")),
        f("sin", "sin(x)", 1, 1, "sine", _elementwise(np.sin, "sin")),
        f(
            "min",
            "min(a, b, ...) or min(jets.pt)",
            1,
            None,
            "smallest; of one per-object argument: per event (NaN if none)",
            _build_minmax(np.minimum, "min"),
        ),
        f(
            "max",
            "max(a, b, ...) or max(jets.pt)",
            1,
            None,
            "largest; of one per-object argument: per event (NaN if none)",
            _build_minmax(np.maximum, "max"),
        ),
        f(
            "n",
            "n(jets) or n(jets.pt > 50)",
            1,
            1,
            "number of objects, or of objects passing a condition",
            _build_count,
        ),
        f("count", "count(jets) or count(jets.pt > 50)", 1, 1, "same as n", _build_count),
        f("len", "len(jets)", 1, 1, "same as n", _build_count),
        f("sum", "sum(jets.pt)", 1, 1, "sum over each event's objects (0 if none)", _build_sum),
        f("any", "any(jets.btag)", 1, 1, "some object passes (False if none)", _build_anyall("any")),
        f("all", "all(abs(jets.eta) < 2.5)", 1, 1, "every object passes (True if none)", _build_anyall("all")),
        f("m", "m(a, b, ...)", 1, None, "invariant mass of the sum of objects", _build_particles(invariant_mass, "m")),
        f("pt", "pt(a, b, ...)", 1, None, "transverse momentum of the sum of objects", _build_particles(sum_pt, "pt")),
        f("eta", "eta(a, b, ...)", 1, None, "pseudorapidity of the sum of objects", _build_particles(sum_eta, "eta")),
        f(
            "sphericity",
            "sphericity(jets) or sphericity(jets, 1)",
            1,
            2,
            "3/2 (l1 + l2) of the momentum tensor (r = 2, or 1: linearised)",
            _build_shape("sphericity"),
        ),
        f(
            "aplanarity",
            "aplanarity(jets) or aplanarity(jets, 1)",
            1,
            2,
            "3/2 l1 of the momentum tensor (r = 2, or 1: linearised)",
            _build_shape("aplanarity"),
        ),
        f(
            "tsphericity",
            "tsphericity(jets) or tsphericity(jets, 1)",
            1,
            2,
            "2 l2 / (l2 + l3) of the momentum tensor, the transverse sphericity",
            _build_shape("tsphericity"),
        ),
        f(
            "mt",
            "mt(a, met)",
            2,
            2,
            "transverse mass sqrt(2 pT1 pT2 (1 - cos dphi))",
            _build_particles(lambda p: transverse_mass(*p), "mt"),
        ),
        f(
            "mct",
            "mct(a, b)",
            2,
            2,
            "contransverse mass sqrt(2 pT1 pT2 (1 + cos dphi))",
            _build_particles(lambda p: contransverse_mass(*p), "mct"),
        ),
        f(
            "mt2",
            "mt2(a, b, met)",
            3,
            3,
            "stransverse mass of two objects and the missing pT, massless invisible particles",
            _build_particles(lambda p: stransverse_mass(*p), "mt2"),
        ),
        f(
            "dr",
            "dr(a, b) or dr(jets, a)",
            2,
            2,
            "sqrt(deta^2 + dphi^2); per object if one argument is a collection",
            _build_angular("dr"),
        ),
        f(
            "dphi",
            "dphi(a, b) or dphi(jets, a)",
            2,
            2,
            "|dphi| in [0, pi]; per object if one argument is a collection",
            _build_angular("dphi"),
        ),
        f(
            "mindphi",
            "mindphi(jets, met) or mindphi(jets, met, 4)",
            2,
            3,
            "smallest |dphi| between the object and the first n objects of the collection (NaN if none)",
            _build_mindphi,
        ),
        f(
            "maxdr",
            "maxdr(bjets)",
            1,
            1,
            "largest dR between two objects of the collection (NaN with fewer than 2)",
            _build_pairing(0, "maxdr"),
        ),
        f(
            "maxmindr",
            "maxmindr(bjets)",
            1,
            1,
            "smallest dR among pairs of the objects left after removing the largest-dR pair (NaN with fewer than 4)",
            _build_pairing(1, "maxmindr"),
        ),
        f(
            "maxminm",
            "maxminm(bjets)",
            1,
            1,
            "invariant mass of the pair that maxmindr picks: the Higgs candidate of ATLAS-SUSY-2018-31 (NaN with fewer than 4)",
            _build_pairing(2, "maxminm"),
        ),
        f(
            "maxdrm",
            "maxdrm(bjets)",
            1,
            1,
            "invariant mass of the pair that maxdr picks (NaN with fewer than 2)",
            _build_dr_pair_mass(0, "maxdrm"),
        ),
        f(
            "maxdr2m",
            "maxdr2m(bjets)",
            1,
            1,
            "invariant mass of the pair with the second-largest dR; it may share an object with maxdr's pair "
            "(NaN with fewer than 3)",
            _build_dr_pair_mass(1, "maxdr2m"),
        ),
    ]
    return {fn.name: fn for fn in table}


#: Every function an expression may call.
FUNCTIONS: dict[str, Function] = _table()
