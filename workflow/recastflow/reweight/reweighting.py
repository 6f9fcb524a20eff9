"""RECAST-style reweighting: yields of new hypotheses from events already simulated and selected.

The detector response and the selection stay fixed, so events generated under a hypothesis
p0(z) and selected once can be given the weight ``r(z) = p1(z) / p0(z)``, evaluated on their
stored truth record z, to give the signal yields of a hypothesis p1 without generating,
emulating or selecting again (K. Cranmer and L. Heinrich, "Recasting through reweighting").
``r`` is the ratio of *differential cross-sections*, so it carries any change of the total
cross-section too: the yields are the source's normalisation
(``luminosity * xsec_pb * br_factor / sum_weights``) times the sum of ``weight * r`` over the
selected events of each bin, and the MC-statistical uncertainty is the same normalisation
times the square root of the sum of ``(weight * r)^2``.

A reweighting spec (YAML, schema ``reweighting.schema.json``) writes ``r`` as a product of
factors, each of one kind:

``decay_modes``
    Branching-fraction reweighting from the truth decay-mode label of each event (e.g.
    ``"W(e nu) h(b b)"``, see :func:`recastflow.generate.truth.mode_labels`): each decay in the
    label is matched against rules, a rule's ``target / generated`` multiplies ``r``.
``expression``
    An analytic density ratio in the selection expression language
    (:mod:`recastflow.select.expressions`) over truth variables: ``x1 x2 q2 id1 id2``, the
    collection ``hard`` and named hard-process particles, and the target's parameters.
``weight``
    A per-event generator weight (an LHE multi-weight entry, read by the LHE hand-off with
    pylhe): ``r = weights[name] / weight``.
``morphing``
    For parameters entering the amplitude polynomially: the per-event weight is a polynomial
    of the parameters, whose coefficients are solved from the weights stored at basis points,
    then evaluated at the target.

Large weights inflate the variance, so every target point gets diagnostics: the Kish
effective sample size of the selected events relative to the unweighted one, the largest
single-event share of the reweighted sum, the fraction of events with ``r`` above a
threshold, and a verdict (``ok`` or ``flagged``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from recastflow.core.config import load_validated
from recastflow.core.errors import RecastError
from recastflow.select.expressions import (
    BOOL,
    NUM,
    Collection,
    Columns,
    Env,
    Expression,
    Kind,
    Layout,
    Particle,
    Scope,
    collection_kind,
    compile_expression,
    object_kind,
)

if TYPE_CHECKING:
    from recastflow.analyses.bundle import Grid

DIAGNOSTICS_FORMAT = "recastflow-reweight-diagnostics/1"
CLOSURE_FORMAT = "recastflow-reweight-closure/1"

#: Per-event numbers of the truth record an expression may use.
TRUTH_NUMBERS: tuple[str, ...] = ("x1", "x2", "q2", "id1", "id2")
#: Fields of hard-process particles (``hard`` and named particles).
HARD_FIELDS: tuple[str, ...] = ("pid", "status", "mother", "px", "py", "pz", "e", "m", "pt", "eta", "phi")
#: One decay of a decay-mode label: the particle and its products, e.g. ``h(b b)``.
DECAY_TOKEN = re.compile(r"([A-Za-z+]+)\(([^)]*)\)")
#: Largest |pull| of a region total at which a reweighted yield still closes on the direct one.
CLOSURE_MAX_PULL = 3.0


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ModeRule:
    """One decay-mode rule: decays it matches get the factor target / generated.

    Attributes:
        match: a decay of the decay-mode label (``"h(b b)"``) or a decaying particle (``"h"``);
            empty for a hard-record rule.
        decay: a hard-record decay, normalised to ``"<|parent|> -> <sorted |products|>"``;
            empty for a label rule.
    """

    match: str
    decay: str
    generated: float
    target: Expression
    field: str

    def matches(self, particle: str, decay: str) -> bool:
        """Whether a label decay (``particle``, its whole text ``decay``) is this rule's."""
        if not self.match:
            return False
        if "(" in self.match:
            return " ".join(self.match.split()) == decay
        return self.match == particle


def hard_decay_key(parent: int, products: list[int]) -> str:
    """Normalised text of a hard-record decay: signs dropped, products sorted."""
    return f"{abs(int(parent))} -> {' '.join(str(p) for p in sorted(abs(int(q)) for q in products))}"


def _parse_decay(text: str) -> str:
    parent, products = text.split("->")
    return hard_decay_key(int(parent), [int(q) for q in products.split()])


@dataclass(frozen=True)
class Factor:
    """One factor of r: kind, where it is in the spec, and its kind-specific settings."""

    kind: str
    field: str
    rules: tuple[ModeRule, ...] = ()
    ratio: Expression | None = None
    # dataclasses.field: in this class body `field` is the attribute above, for type checkers
    particles: dict[str, int] = dataclasses.field(default_factory=dict)
    weight: str = ""
    parameters: tuple[str, ...] = ()
    degree: int = 0
    basis: tuple[tuple[str, tuple[float, ...]], ...] = ()


@dataclass(frozen=True)
class ReweightSpec:
    """A validated reweighting spec."""

    path: Path
    name: str
    description: str
    parameters: tuple[str, ...]
    factors: tuple[Factor, ...]
    allow_negative: bool
    min_ess_fraction: float
    max_weight_share: float
    r_threshold: float


def _parameter_scope(parameters: tuple[str, ...]) -> dict[str, Kind]:
    return {p: Kind(NUM) for p in parameters}


def truth_scope(parameters: tuple[str, ...], particles: Mapping[str, int]) -> dict[str, Kind]:
    """Names a truth expression may use: truth numbers, ``hard``, named particles, parameters."""
    names: dict[str, Kind] = {n: Kind(NUM) for n in TRUTH_NUMBERS}
    names["hard"] = collection_kind("hard", {f: NUM for f in HARD_FIELDS})
    names.update({n: object_kind(n, {f: NUM for f in HARD_FIELDS}) for n in particles})
    names.update(_parameter_scope(parameters))
    return names


def load_spec(path: Path) -> ReweightSpec:
    """Read, validate and compile a reweighting spec.

    Args:
        path: the spec (YAML).

    Raises:
        RecastError: schema violations, expressions using unknown names (truth variables,
            particles or parameters), morphing parameters the spec does not declare, and
            morphing bases that do not determine the polynomial, each naming the field.
    """
    path = Path(path)
    doc = load_validated(path, "reweighting")
    where = str(path)
    parameters = tuple(doc.get("parameters", {}))
    for p in parameters:
        if p in TRUTH_NUMBERS or p == "hard":
            raise RecastError(
                f"parameter {p!r} has the name of a truth variable; rename it", path=where, field=f"parameters.{p}"
            )
    factors = []
    for i, item in enumerate(doc["factors"]):
        kind, body = next(iter(item.items()))
        fld = f"factors[{i}].{kind}"
        if kind == "decay_modes":
            rules = []
            for j, rule in enumerate(body["rules"]):
                target = rule["target"]
                text = repr(float(target)) if isinstance(target, (int, float)) else target
                expr = compile_expression(
                    text, Scope(_parameter_scope(parameters)), path=where, field=f"{fld}.rules[{j}].target"
                )
                _need_number(expr, where, f"{fld}.rules[{j}].target")
                rules.append(
                    ModeRule(
                        rule.get("match", ""),
                        _parse_decay(rule["decay"]) if "decay" in rule else "",
                        float(rule.get("generated", 1.0)),
                        expr,
                        f"{fld}.rules[{j}]",
                    )
                )
            factors.append(Factor(kind, fld, rules=tuple(rules)))
        elif kind == "expression":
            particles = dict(body.get("particles", {}))
            for name in particles:
                if name in TRUTH_NUMBERS or name == "hard" or name in parameters:
                    raise RecastError(
                        f"particle name {name!r} is already a truth variable or parameter; rename it",
                        path=where,
                        field=f"{fld}.particles.{name}",
                    )
            expr = compile_expression(
                body["ratio"], Scope(truth_scope(parameters, particles)), path=where, field=f"{fld}.ratio"
            )
            _need_number(expr, where, f"{fld}.ratio")
            factors.append(Factor(kind, fld, ratio=expr, particles=particles))
        elif kind == "weight":
            factors.append(Factor(kind, fld, weight=body["name"]))
        else:  # morphing
            names = tuple(body["parameters"])
            unknown = [p for p in names if p not in parameters]
            if unknown:
                raise RecastError(
                    f"{', '.join(map(repr, unknown))} not declared under 'parameters' "
                    f"(declared: {', '.join(parameters) or 'none'})",
                    path=where,
                    field=f"{fld}.parameters",
                )
            basis = []
            for j, b in enumerate(body["basis"]):
                if set(b["values"]) != set(names):
                    raise RecastError(
                        f"give exactly the morphing parameters {list(names)}",
                        path=where,
                        field=f"{fld}.basis[{j}].values",
                    )
                basis.append((b["weight"], tuple(float(b["values"][p]) for p in names)))
            exponents = monomial_exponents(len(names), body["degree"])
            matrix = monomial_matrix(np.array([v for _, v in basis]), exponents)
            if len(basis) < len(exponents) or np.linalg.matrix_rank(matrix) < len(exponents):
                raise RecastError(
                    f"a polynomial of degree {body['degree']} in {len(names)} parameter(s) has "
                    f"{len(exponents)} coefficients; the {len(basis)} basis points determine only "
                    f"{np.linalg.matrix_rank(matrix)} of them: add basis points at other parameter values",
                    path=where,
                    field=f"{fld}.basis",
                )
            factors.append(Factor(kind, fld, parameters=names, degree=body["degree"], basis=tuple(basis)))
    diag = doc.get("diagnostics", {})
    return ReweightSpec(
        path=path,
        name=doc["name"],
        description=doc.get("description", ""),
        parameters=parameters,
        factors=tuple(factors),
        allow_negative=bool(doc.get("allow_negative", False)),
        min_ess_fraction=float(diag.get("min_ess_fraction", 0.2)),
        max_weight_share=float(diag.get("max_weight_share", 0.1)),
        r_threshold=float(diag.get("r_threshold", 10.0)),
    )


def _need_number(expr: Expression, path: str, fld: str) -> None:
    if expr.kind.tag not in (NUM, BOOL):
        raise RecastError(f"must give one number per event, but {expr.text!r} is {expr.kind.tag}", path=path, field=fld)


def target_parameters(
    spec: ReweightSpec, given: Mapping[str, float], values: Mapping[str, float], *, source: str, fld: str
) -> dict[str, float]:
    """The values of the spec's parameters for a target point.

    Args:
        spec: the spec.
        given: the point's ``reweight.parameters``.
        values: the point's grid values (used for spec parameters not in ``given``).
        source: the grid file (for messages).
        fld: the point's field in it.
    """
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        raise RecastError(
            f"{', '.join(map(repr, unknown))} not parameters of {spec.path} "
            f"(it has: {', '.join(spec.parameters) or 'none'})",
            path=source,
            field=f"{fld}.parameters",
        )
    out = {}
    for p in spec.parameters:
        value = given.get(p, values.get(p))
        if value is None:
            raise RecastError(
                f"no value for parameter {p!r} of {spec.path}: give it under reweight.parameters or as a grid value",
                path=source,
                field=f"{fld}.parameters",
            )
        if not math.isfinite(float(value)):
            raise RecastError(f"parameter {p!r} is {value}", path=source, field=f"{fld}.parameters")
        out[p] = float(value)
    return out


# ----------------------------------------------------------------------------- morphing


def monomial_exponents(n_parameters: int, degree: int) -> list[tuple[int, ...]]:
    """Exponents of all monomials of total degree <= ``degree``, by degree then lexicographically."""
    out = [e for e in itertools.product(range(degree + 1), repeat=n_parameters) if sum(e) <= degree]
    return sorted(out, key=lambda e: (sum(e), tuple(-x for x in e)))


def monomial_matrix(points: np.ndarray, exponents: list[tuple[int, ...]]) -> np.ndarray:
    """Monomials (columns) evaluated at parameter points (rows of ``points``, one column per parameter)."""
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    return np.stack([np.prod(points ** np.array(e, dtype=np.float64), axis=1) for e in exponents], axis=1)


def morphing_coefficients(
    basis_points: np.ndarray, basis_weights: np.ndarray, degree: int
) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Per-event polynomial coefficients from the weights stored at the basis points.

    Args:
        basis_points: (B, P) parameter values of the B basis points.
        basis_weights: (N, B) weight of each event at each basis point.
        degree: total degree of the polynomial.

    Returns:
        The monomial exponents and the (N, K) coefficients (least squares if B > K).
    """
    exponents = monomial_exponents(np.atleast_2d(basis_points).shape[1], degree)
    matrix = monomial_matrix(basis_points, exponents)
    coefficients, *_ = np.linalg.lstsq(matrix, np.asarray(basis_weights, dtype=np.float64).T, rcond=None)
    return exponents, coefficients.T


def morph(coefficients: np.ndarray, exponents: list[tuple[int, ...]], values: np.ndarray) -> np.ndarray:
    """Per-event weights at parameter values ``values`` (P,) from their coefficients (N, K)."""
    return coefficients @ monomial_matrix(np.asarray(values, dtype=np.float64)[None, :], exponents)[0]


# ----------------------------------------------------------------------------- the ratio


@dataclass
class Truth:
    """The columns of the selected events that reweighting reads."""

    weight: np.ndarray
    modes: list[str] | None
    numbers: dict[str, np.ndarray]
    hard_counts: np.ndarray
    hard: dict[str, np.ndarray]
    weights: ak.Array | None
    weight_names: list[str]
    path: str

    @classmethod
    def of(cls, events: ak.Array, header: Mapping[str, Any], path: str) -> Truth:
        """Take the columns out of a ``recastflow-selected/1`` array."""
        n = len(events)
        fields = events.fields
        # None without a truth column; then tfields is empty, which guards every truth[...] below
        truth: Any = events["truth"] if "truth" in fields else None
        tfields = truth.fields if truth is not None else []
        numbers = {k: ak.to_numpy(truth[k]).astype(np.float64) for k in TRUTH_NUMBERS if k in tfields}
        hard_counts = np.zeros(n, dtype=np.int64)
        hard: dict[str, np.ndarray] = {}
        if "hard" in tfields:
            hard_counts = ak.to_numpy(ak.num(truth["hard"])).astype(np.int64)
            flat = ak.flatten(truth["hard"])
            for k in ("pid", "status", "mother", "px", "py", "pz", "e", "m"):
                hard[k] = ak.to_numpy(flat[k]).astype(np.float64)
            pt = np.hypot(hard["px"], hard["py"])
            with np.errstate(divide="ignore", invalid="ignore"):
                hard["eta"] = np.where(
                    pt > 0, np.arcsinh(hard["pz"] / np.where(pt > 0, pt, 1.0)), np.copysign(np.inf, hard["pz"])
                )
            hard["pt"], hard["phi"] = pt, np.arctan2(hard["py"], hard["px"])
        modes = [str(m) for m in ak.to_list(truth["mode"])] if "mode" in tfields else None
        return cls(
            weight=ak.to_numpy(events["weight"]).astype(np.float64),
            modes=modes,
            numbers=numbers,
            hard_counts=hard_counts,
            hard=hard,
            weights=events["weights"] if "weights" in fields else None,
            weight_names=list(header.get("weight_names") or []),
            path=path,
        )

    def __len__(self) -> int:
        return len(self.weight)


def _parameter_value(expr: Expression, parameters: Mapping[str, float]) -> float:
    base = {p: (lambda env, v=v: np.array([v])) for p, v in parameters.items()}
    value = expr.evaluate(Env(1, base, {}))
    return float(np.asarray(value, dtype=np.float64).reshape(-1)[0])


def _decay_mode_factor(factor: Factor, truth: Truth, parameters: Mapping[str, float], spec: ReweightSpec) -> np.ndarray:
    ratios = []
    for rule in factor.rules:
        target = _parameter_value(rule.target, parameters)
        if not math.isfinite(target) or target < 0:
            raise RecastError(
                f"target is {target} for parameters {dict(parameters)}; a probability must be a finite number >= 0",
                path=str(spec.path),
                field=f"{rule.field}.target",
            )
        ratios.append(target / rule.generated)
    out = np.ones(len(truth))
    if any(rule.match for rule in factor.rules):
        if truth.modes is None or all(m in ("", "unknown") for m in truth.modes):
            raise RecastError(
                "the selected events carry no truth decay modes (hand-off from HepMC3 without a hard "
                "record, or Delphes); decay-mode reweighting needs them",
                path=truth.path,
                field="truth.mode",
            )
        labels, inverse = np.unique(np.array(truth.modes, dtype=object), return_inverse=True)
        per_label = np.ones(len(labels))
        for k, label in enumerate(labels):
            for particle, products in DECAY_TOKEN.findall(label):
                decay = f"{particle}({' '.join(products.split())})"
                for rule, ratio in zip(factor.rules, ratios):
                    if rule.matches(particle, decay):
                        per_label[k] *= ratio
                        break
        out *= per_label[inverse.reshape(-1)]
    if any(rule.decay for rule in factor.rules):
        if not truth.hard or not truth.hard_counts.any():
            raise RecastError(
                "the selected events carry no hard-process record; 'decay' rules need it",
                path=truth.path,
                field="truth.hard",
            )
        by_key: dict[str, float] = {}
        for rule, ratio in zip(factor.rules, ratios):
            if rule.decay:
                by_key.setdefault(rule.decay, ratio)  # the first rule of a decay wins
        event, keys = hard_decays(truth)
        for key in set(keys):
            if key in by_key:
                rows = event[np.array([k == key for k in keys])]
                np.multiply.at(out, rows, by_key[key])
    return out


def hard_decays(truth: Truth) -> tuple[np.ndarray, list[str]]:
    """Every decay in the hard-process records: the event of each and its normalised text."""
    counts = truth.hard_counts
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    event = np.repeat(np.arange(len(counts)), counts)
    pid = truth.hard["pid"].astype(np.int64)
    mother = truth.hard["mother"].astype(np.int64)
    child = np.flatnonzero(mother >= 0)
    parent = offsets[event[child]] + mother[child]
    order = np.lexsort((np.abs(pid[child]), parent))
    child, parent = child[order], parent[order]
    starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]]) if len(parent) else np.zeros(0, dtype=np.int64)
    groups = np.split(np.abs(pid[child]), starts[1:]) if len(parent) else []
    keys = [hard_decay_key(pid[parent[s]], list(g)) for s, g in zip(starts, groups)]
    return event[parent[starts]] if len(parent) else np.zeros(0, dtype=np.int64), keys


def _truth_env(truth: Truth, factor: Factor, parameters: Mapping[str, float]) -> Env:
    n = len(truth)
    base: dict[str, Any] = {}
    for name in TRUTH_NUMBERS:
        if name in factor.ratio.names:  # type: ignore[union-attr]
            if name not in truth.numbers:
                raise RecastError(
                    f"the selected events have no truth.{name}, which {factor.field}.ratio uses",
                    path=truth.path,
                    field=f"truth.{name}",
                )
            base[name] = lambda env, v=truth.numbers[name]: v
    for p, v in parameters.items():
        base[p] = lambda env, v=v: np.full(n, v)
    needs_hard = "hard" in factor.ratio.names or any(p in factor.ratio.names for p in factor.particles)  # type: ignore[union-attr]
    if needs_hard and not truth.hard:
        raise RecastError(
            f"the selected events have no truth.hard record, which {factor.field}.ratio uses",
            path=truth.path,
            field="truth.hard",
        )
    if truth.hard:
        layout = Layout(truth.hard_counts)
        base["hard"] = lambda env: Collection(layout, Columns.of(truth.hard))
        for name, pid in factor.particles.items():
            base[name] = lambda env, pid=pid: _first_particle(truth, layout, pid)
    return Env(n, base, {})


def _first_particle(truth: Truth, layout: Layout, pid: int) -> Particle:
    """Per event, the first hard-process particle with |pid| (NaN fields where there is none)."""
    hits = np.flatnonzero(np.abs(truth.hard["pid"]) == abs(pid))
    events = layout.event_index[hits]
    first_events, first = np.unique(events, return_index=True)
    columns = {}
    for k, values in truth.hard.items():
        col = np.full(len(truth), np.nan)
        col[first_events] = values[hits[first]]
        columns[k] = col
    return Particle.of(columns)


def _expression_factor(factor: Factor, truth: Truth, parameters: Mapping[str, float]) -> np.ndarray:
    env = _truth_env(truth, factor, parameters)
    value = factor.ratio.evaluate(env)  # type: ignore[union-attr]
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (len(truth),)).copy()


def weight_matrix(truth: Truth, names: list[str], spec: ReweightSpec, fld: str) -> np.ndarray:
    """(events, len(names)) matrix of named weights ('nominal' is the nominal weight unless a weight has that name).

    Raises:
        RecastError: a name the sample does not have, or events whose weight vector is
            missing or shorter than the header's weight names.
    """
    stored = truth.weight_names
    columns = []
    matrix = None
    for name in names:
        if name in stored:
            if matrix is None:
                matrix = _stored_weights(truth)
            columns.append(matrix[:, stored.index(name)])
        elif name == "nominal":
            columns.append(truth.weight)
        else:
            raise RecastError(
                f"weight {name!r} is not among the sample's weights "
                f"({', '.join(map(repr, stored)) or 'it has none: only the nominal weight'})",
                path=str(spec.path),
                field=fld,
            )
    return np.stack(columns, axis=1) if columns else np.zeros((len(truth), 0))


def _stored_weights(truth: Truth) -> np.ndarray:
    k = len(truth.weight_names)
    if truth.weights is None:
        raise RecastError(
            f"the header names {k} weights but the events have no 'weights' column", path=truth.path, field="weights"
        )
    counts = ak.to_numpy(ak.num(truth.weights))
    bad = np.flatnonzero(counts != k)
    if len(bad):
        raise RecastError(
            f"selected event {bad[0]} has {counts[bad[0]]} weights, the header names {k} "
            f"({len(bad)} event(s) with a missing or incomplete weight vector); re-run the hand-off "
            "with a file whose events all carry every weight",
            path=truth.path,
            field="weights",
        )
    return ak.to_numpy(ak.flatten(truth.weights)).astype(np.float64).reshape(len(truth), k)


def _over_nominal(target: np.ndarray, truth: Truth, spec: ReweightSpec, fld: str) -> np.ndarray:
    nominal = truth.weight
    bad = np.flatnonzero((nominal == 0) & (target != 0))
    if len(bad):
        raise RecastError(
            f"selected event {bad[0]} has nominal weight 0 but a target weight {target[bad[0]]}: the "
            "ratio is undefined",
            path=str(spec.path),
            field=fld,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nominal == 0, 0.0, target / np.where(nominal == 0, 1.0, nominal))


def event_ratios(spec: ReweightSpec, truth: Truth, parameters: Mapping[str, float]) -> tuple[np.ndarray, dict]:
    """The per-event ratio r of the target to the generated hypothesis.

    Args:
        spec: the spec.
        truth: the selected events' truth record and weights.
        parameters: the target's parameter values.

    Returns:
        r per event, and extra facts for the diagnostics (e.g. morphing condition numbers).

    Raises:
        RecastError: naming the spec and the factor when a factor gives a non-finite or
            (unless ``allow_negative``) negative ratio.
    """
    r = np.ones(len(truth))
    extra: dict[str, Any] = {}
    with np.errstate(all="ignore"):
        for factor in spec.factors:
            if factor.kind == "decay_modes":
                value = _decay_mode_factor(factor, truth, parameters, spec)
            elif factor.kind == "expression":
                value = _expression_factor(factor, truth, parameters)
            elif factor.kind == "weight":
                value = _over_nominal(
                    weight_matrix(truth, [factor.weight], spec, f"{factor.field}.name")[:, 0],
                    truth,
                    spec,
                    f"{factor.field}.name",
                )
            else:
                names = [w for w, _ in factor.basis]
                weights = weight_matrix(truth, names, spec, f"{factor.field}.basis")
                points = np.array([v for _, v in factor.basis])
                exponents, coefficients = morphing_coefficients(points, weights, factor.degree)
                at = np.array([parameters[p] for p in factor.parameters])
                value = _over_nominal(morph(coefficients, exponents, at), truth, spec, factor.field)
                extra.setdefault("morphing_condition", []).append(
                    float(np.linalg.cond(monomial_matrix(points, exponents)))
                )
            _check_ratio(value, factor, spec, truth)
            r = r * value
    # each factor can be finite and their product not (two factors of 1e200): the yields would be infinite
    overflow = np.flatnonzero(~np.isfinite(r))
    if len(overflow):
        raise RecastError(
            f"the product of the {len(spec.factors)} factors is r = {r[overflow[0]]} for selected event "
            f"{overflow[0]} of {truth.path} ({len(overflow)} event(s)); each factor is finite but "
            "their product is not; rescale the factors",
            path=str(spec.path),
            field="factors",
        )
    return r, extra


def _check_ratio(value: np.ndarray, factor: Factor, spec: ReweightSpec, truth: Truth) -> None:
    bad = np.flatnonzero(~np.isfinite(value))
    if len(bad):
        raise RecastError(
            f"gives r = {value[bad[0]]} for selected event {bad[0]} of {truth.path} ({len(bad)} "
            "event(s) with NaN or infinite ratios; a particle the ratio uses may be missing from the "
            "event's hard record)",
            path=str(spec.path),
            field=factor.field,
        )
    if not spec.allow_negative:
        neg = np.flatnonzero(value < 0)
        if len(neg):
            raise RecastError(
                f"gives a negative r = {value[neg[0]]:.6g} for selected event {neg[0]} of {truth.path} "
                f"({len(neg)} event(s)); fix the ratio, or set 'allow_negative: true' if negative "
                "weights are intended",
                path=str(spec.path),
                field=factor.field,
            )


# ----------------------------------------------------------------------------- yields and diagnostics


@dataclass(frozen=True)
class Diagnostics:
    """How far the reweighted sample can be trusted."""

    n_selected: int
    ess: float
    ess_nominal: float
    ess_fraction: float
    max_weight_share: float
    fraction_above: float
    r_threshold: float
    r_min: float
    r_max: float
    r_mean: float
    verdict: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def kish_ess(w: np.ndarray) -> float:
    """Kish effective sample size (sum w)^2 / sum w^2 (0 for an empty or all-zero sample)."""
    s2 = float(np.dot(w, w))
    return float(w.sum()) ** 2 / s2 if s2 > 0 else 0.0


def diagnose(weight: np.ndarray, r: np.ndarray, spec: ReweightSpec) -> Diagnostics:
    """Effective sample size, largest weight share, fraction above threshold, verdict."""
    new = weight * r
    ess, ess0 = kish_ess(new), kish_ess(weight)
    frac = ess / ess0 if ess0 > 0 else 0.0
    total = float(np.abs(new).sum())
    share = float(np.abs(new).max() / total) if total > 0 else 0.0
    above = float(np.mean(r > spec.r_threshold)) if len(r) else 0.0
    reasons = []
    if total == 0:
        reasons.append("no selected event keeps a non-zero weight")
    if frac < spec.min_ess_fraction:
        reasons.append(
            f"effective sample size {ess:.1f} is {frac:.3f} of the unweighted {ess0:.1f}, "
            f"below min_ess_fraction {spec.min_ess_fraction:g}"
        )
    if share > spec.max_weight_share:
        reasons.append(
            f"one event carries {share:.3f} of the reweighted sum, above max_weight_share {spec.max_weight_share:g}"
        )
    return Diagnostics(
        n_selected=len(r),
        ess=ess,
        ess_nominal=ess0,
        ess_fraction=frac,
        max_weight_share=share,
        fraction_above=above,
        r_threshold=spec.r_threshold,
        r_min=float(r.min()) if len(r) else 0.0,
        r_max=float(r.max()) if len(r) else 0.0,
        r_mean=float(r.mean()) if len(r) else 0.0,
        verdict="flagged" if reasons else "ok",
        reasons=tuple(reasons),
    )


def reweighted_yields(
    events: ak.Array, header: Mapping[str, Any], new_weight: np.ndarray, norm: float
) -> dict[str, dict[str, list[float]]]:
    """Per region and bin: norm * sum(w) and norm * sqrt(sum(w^2)) of the events in the bin."""
    out = {}
    for name, info in (header.get("regions") or {}).items():
        bins = ak.to_numpy(events["regions"][name]).astype(np.int64)
        inside = bins >= 0
        n_bins = int(info["bins"])
        sumw = np.bincount(bins[inside], new_weight[inside], minlength=n_bins)
        sumw2 = np.bincount(bins[inside], new_weight[inside] ** 2, minlength=n_bins)
        out[name] = {"yields": [float(x) for x in sumw * norm], "stat": [float(x) for x in np.sqrt(sumw2) * norm]}
    return out


def _check_yields_finite(regions: Mapping[str, Mapping[str, list[float]]], spec: ReweightSpec, selected: Path) -> None:
    """Refuse reweighted yields that overflowed (finite ratios times weights and normalisation summed to inf)."""
    for name, region in regions.items():
        for what in ("yields", "stat"):
            bad = [i for i, v in enumerate(region[what]) if not math.isfinite(v)]
            if bad:
                raise RecastError(
                    f"the reweighted {what} of region {name!r}, bin {bad[0]}, is {region[what][bad[0]]} "
                    f"(events of {selected}); the ratios are too large to give a finite yield; "
                    "rescale the factors",
                    path=str(spec.path),
                    field="factors",
                )


def reweight_selected(
    selected: Path, spec: ReweightSpec, parameters: Mapping[str, float], *, point: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reweight a point's selected events to a target hypothesis.

    Args:
        selected: ``recastflow-selected/1`` file of the source point.
        spec: the reweighting spec.
        parameters: the target's parameter values.
        point: the target point's name.

    Returns:
        The ``recastflow-yields/1`` document and the diagnostics document.
    """
    from recastflow.core.events import SELECTED, read_events
    from recastflow.core.io import sha256_file
    from recastflow.select.selection import normalisation

    events, header = read_events(Path(selected), (SELECTED,))
    truth = Truth.of(events, header, str(selected))
    r, extra = event_ratios(spec, truth, parameters)
    try:
        norm = normalisation(header, float(header.get("luminosity_ifb", 0.0)))
    except RecastError as exc:
        raise RecastError(exc.args[0], path=str(selected)) from None
    with np.errstate(all="ignore"):
        new_weight = truth.weight * r
        regions = reweighted_yields(events, header, new_weight, norm)
    _check_yields_finite(regions, spec, selected)
    sample = {
        "luminosity_ifb": float(header["luminosity_ifb"]),
        "xsec_pb": float(header["xsec_pb"]),
        "xsec_source": str(header.get("xsec_source", "")),
        "br_factor": float(header["br_factor"]),
        "n_events": int(header.get("n_events", len(events))),
        "sum_weights": float(header["sum_weights"]),
    }
    yields = {"format": "recastflow-yields/1", "point": point, "normalisation": sample, "regions": regions}
    diag = diagnose(truth.weight, r, spec)
    region_diag = {}
    for name in regions:
        inside = ak.to_numpy(events["regions"][name]) >= 0
        region_diag[name] = {
            "n_events": int(inside.sum()),
            "ess": kish_ess(new_weight[inside]),
            "ess_nominal": kish_ess(truth.weight[inside]),
        }
    doc = {
        "format": DIAGNOSTICS_FORMAT,
        "point": point,
        "source": {"file": str(selected), "point": header.get("point"), "sha256": sha256_file(Path(selected))},
        "spec": {"file": str(spec.path), "name": spec.name, "sha256": sha256_file(spec.path)},
        "parameters": dict(parameters),
        "thresholds": {
            "min_ess_fraction": spec.min_ess_fraction,
            "max_weight_share": spec.max_weight_share,
            "r_threshold": spec.r_threshold,
        },
        **diag.to_dict(),
        "regions": region_diag,
        **extra,
    }
    return yields, doc


def reweight_point(
    grid: Grid,
    point_name: str,
    selected: Path | str,
    *,
    signals_dir: Path,
    yields_out: Path,
    diagnostics_out: Path,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reweight a source point's selected events to a grid point's hypothesis (``recastflow reweight``).

    The point's ``reweight`` section names the source point, the spec and the target's parameters;
    the selected events must be the source point's.

    Args:
        grid: the target point's grid.
        point_name: the target point (with a ``reweight`` section).
        selected: ``recastflow-selected/1`` file of the source point (named as given in messages).
        signals_dir: folder of the signal grids, where the source point's grid is.
        yields_out: the reweighted ``recastflow-yields/1`` JSON to write.
        diagnostics_out: the diagnostics JSON to write.
        log: gets one line on the reweighting and one per reason it is flagged.

    Returns:
        The yields and the diagnostics documents written.

    Raises:
        RecastError: the point has no ``reweight`` section, its source point does not exist, the spec or
            parameters are wrong, or the events are another point's.
    """
    from recastflow.analyses.bundle import load_grid
    from recastflow.core.config import validate
    from recastflow.core.io import write_json_atomic

    point = grid.point(point_name)
    ref = point.reweight
    if ref is None:
        raise RecastError(f"point {point.name} has no 'reweight' section", path=str(grid.path))
    index = [p.name for p in grid.points].index(point.name)
    # the source must exist; if not, the reweighted point's 'from' is what to fix
    load_grid(ref.source[0], signals_dir).point(
        ref.source[1], source=str(grid.path), field=f"points[{index}].reweight.from"
    )
    spec = load_spec(ref.spec)
    params = target_parameters(
        spec, ref.parameters, point.values, source=str(grid.path), fld=f"points[{index}].reweight"
    )
    t0 = time.perf_counter()
    yields, diag = reweight_selected(Path(selected), spec, params, point=point.name)
    if diag["source"]["point"] != ref.source[1]:
        raise RecastError(
            f"holds the selected events of point {diag['source']['point']!r}, but {point.name} is "
            f"reweighted from {'/'.join(ref.source)}",
            path=str(selected),
        )
    diag["source"]["grid_point"] = "/".join(ref.source)
    validate(yields, "yields", yields_out)
    write_json_atomic(diagnostics_out, diag)
    write_json_atomic(yields_out, yields)
    log(
        f"{grid.name}/{point.name}: reweighted {diag['n_selected']} selected events of {'/'.join(ref.source)} with "
        f"{spec.name} {params} in {time.perf_counter() - t0:.2f} s: ESS fraction {diag['ess_fraction']:.3f}, "
        f"largest weight share {diag['max_weight_share']:.3f} -> {diag['verdict']}"
    )
    for reason in diag["reasons"]:
        log(f"  flagged: {reason}")
    return yields, diag


# ----------------------------------------------------------------------------- closure


@dataclass(frozen=True)
class ClosureRow:
    """One region total of a reweighted point against the directly generated one."""

    point: str
    direct: str
    region: str
    reweighted: float
    reweighted_stat: float
    value: float
    value_stat: float

    @property
    def pull(self) -> float | None:
        """(reweighted - direct) / combined statistical uncertainty."""
        sigma = math.hypot(self.reweighted_stat, self.value_stat)
        return (self.reweighted - self.value) / sigma if sigma > 0 else None

    @property
    def passed(self) -> bool:
        """Within CLOSURE_MAX_PULL combined standard deviations (or both zero)."""
        p = self.pull
        return (self.reweighted == self.value) if p is None else abs(p) < CLOSURE_MAX_PULL


def closure_rows(
    point: str, direct: str, reweighted: Mapping[str, Any], generated: Mapping[str, Any]
) -> list[ClosureRow]:
    """Compare region totals of two yields documents (bins within a region are exclusive, so stats add in quadrature)."""
    rows = []
    for region, reg in reweighted["regions"].items():
        if region not in generated["regions"]:
            continue
        other = generated["regions"][region]
        rows.append(
            ClosureRow(
                point,
                direct,
                region,
                float(sum(reg["yields"])),
                math.sqrt(sum(s * s for s in reg["stat"])),
                float(sum(other["yields"])),
                math.sqrt(sum(s * s for s in other["stat"])),
            )
        )
    return rows


def format_closure(rows: list[ClosureRow]) -> str:
    """A plain-text table of reweighted vs direct region totals and their pulls."""
    head = f"{'point':<26} {'direct sample':<30} {'region':<13} {'reweighted':>16} {'direct':>16} {'pull':>6}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        pull = "—" if r.pull is None else f"{r.pull:+.2f}"
        lines.append(
            f"{r.point:<26} {r.direct:<30} {r.region:<13} {r.reweighted:>8.3f} ± {r.reweighted_stat:<5.3f} "
            f"{r.value:>8.3f} ± {r.value_stat:<5.3f} {pull:>6}  {'pass' if r.passed else 'FAIL'}"
        )
    n_fail = sum(not r.passed for r in rows)
    lines.append(
        f"reweighting closure: {len(rows) - n_fail} of {len(rows)} region totals within "
        f"{CLOSURE_MAX_PULL:g} combined standard deviations"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- grids


def check_reweighted(grids: Mapping[str, Any]) -> int:
    """Check every reweighted point of the run's grids before any job starts.

    The source point must be a front-end point of a grid of the run with the same analysis
    and workspace, the spec must load and the point must give every spec parameter; a
    ``compare_with`` point must exist and have yields.

    Args:
        grids: the run's grids by name.

    Returns:
        The number of reweighted points.

    Raises:
        RecastError: naming the grid file and the point's field.
    """
    count = 0
    specs: dict[Path, ReweightSpec] = {}
    for grid in grids.values():
        for i, point in enumerate(grid.points):
            ref = point.reweight
            if ref is None:
                continue
            count += 1
            fld = f"points[{i}].reweight"
            source = _run_point(grids, ref.source, grid, f"{fld}.from")
            if not source.from_events:
                raise RecastError(
                    f"{'/'.join(ref.source)} takes its signal from a patch or yields file; only points "
                    "made from events have selected events to reweight",
                    path=str(grid.path),
                    field=f"{fld}.from",
                )
            src_grid = grids[ref.source[0]]
            if (src_grid.analysis, src_grid.workspace) != (grid.analysis, grid.workspace):
                raise RecastError(
                    f"{'/'.join(ref.source)} is a point of {src_grid.analysis} {src_grid.workspace}, this "
                    f"grid is for {grid.analysis} {grid.workspace}",
                    path=str(grid.path),
                    field=f"{fld}.from",
                )
            if ref.spec not in specs:
                specs[ref.spec] = load_spec(ref.spec)
            target_parameters(specs[ref.spec], ref.parameters, point.values, source=str(grid.path), fld=fld)
            if ref.compare_with is not None:
                direct = _run_point(grids, ref.compare_with, grid, f"{fld}.compare_with")
                if direct.yields is None:
                    raise RecastError(
                        f"{'/'.join(ref.compare_with)} has no yields to compare with (published patch)",
                        path=str(grid.path),
                        field=f"{fld}.compare_with",
                    )
    return count


def _run_point(grids: Mapping[str, Any], ref: tuple[str, str], grid: Any, fld: str) -> Any:
    gname, pname = ref
    if gname not in grids:
        raise RecastError(
            f"grid {gname!r} is not among the run's grids ({', '.join(grids)}); add it to 'grids' in "
            "the run configuration",
            path=str(grid.path),
            field=fld,
        )
    names = [p.name for p in grids[gname].points]
    if pname not in names:
        raise RecastError(f"grid {gname} has no point {pname!r}", path=str(grid.path), field=fld)
    return grids[gname].point(pname)
