"""The ``select`` stage: a declarative event selection turned into yields, cutflows and selected events.

A selection file (``config/analyses/<ID>/selection.yaml``, schema ``selection.schema.json``)
declares, in order:

``objects``
    derived collections: ``{from: jets, where: "pt > 30", remove_overlap: [{with: electrons,
    dr: 0.2}], sort_by: pt}`` or ``{merge: [electrons, muons]}``. Steps apply in the order
    from/merge, where, remove_overlap, sort (by pT, descending, unless ``sort_by: null``).
    An object is removed when it lies within ``dr`` (dR < cone) of any object of ``with``;
    ``dr`` is a number or an expression of the object's own fields, e.g. the pT-dependent
    lepton cone ``"min(0.4, 0.04 + 10 / pt)"``. The entries of one ``remove_overlap`` all
    look at the same objects (removal depends only on the object and the other collection,
    so their order does not matter); a step that must see the result of another, such as
    "remove jets near leptons, then leptons near the remaining jets", is a separate object.
    Reco collections are read with each event's objects in descending pT; filters and
    overlap removal keep that order, merges are re-sorted.
``variables``
    named per-event expressions (``mT: "mt(leptons[0], met)"``), each may use the ones above;
    a variable may also be one object per event (``lepton: "leptons[0]"``).
``preselection``
    ordered named cuts shared by all regions: ``- two_bjets: "n(bjets) == 2"``.
``models``
    ONNX models with their input contract (:mod:`recastflow.select.mlmodels`); each model's score is
    a number per event named like the model, for cuts and bins.
``efficiency_maps``
    binned efficiency tables (:mod:`recastflow.select.effmaps`); each is a number per event.
``regions``
    ``{<workspace channel>: {cuts: [...], bins: {variable: mCT, edges: [180, 230, .inf]}}}``;
    bins are half-open [lo, hi); events outside the edges (or with a missing value) are not
    counted. Without ``bins`` the region is one bin.
    A cutflow entry may be a *weight step* ``- tagged: {weight: eff_tag}``: it cuts nothing and
    multiplies the event weights by a per-event number (an efficiency map, a surrogate's
    probability) from there on.

The expression language, including how missing objects behave, is documented in
:mod:`recastflow.select.expressions`. Reco collections and their fields: ``jets`` {pt, eta, phi, m,
btag, flavour}, ``electrons``/``muons`` {pt, eta, phi, charge, m}, ``photons`` {pt, eta, phi,
m} (lepton and photon masses are the PDG values, added here), ``taus`` {pt, eta, phi, m, charge,
prongs, loose, medium, tight} and ``triggers`` {ditau, ditau_met} (from cards with hadronic-tau
emulation, :mod:`recastflow.emulate.taus`), ``met`` {pt, phi, significance (from cards with a
``met_significance`` section)}, ``weight``;
and from the generator record, ``truth_bhadrons``, ``truth_chadrons``, ``truth_taus`` {pt, eta, phi}.

Outputs (:func:`select_file`):
    - ``recastflow-yields/1`` JSON: per region the expected yield and absolute MC-stat
      uncertainty per bin, ``luminosity * xsec_pb * br_factor * sum(w) / sum_weights`` and
      ``... * sqrt(sum(w^2)) / sum_weights``.
    - ``recastflow-cutflow/1`` JSON: per region its steps ("all events", the preselection,
      the region's cuts, "in <variable> bins"), each with ``raw`` (events) and ``weighted``
      (expected events at the luminosity); a step that uses an ML model or an efficiency map
      also has ``models``, ``kind`` (cut/weight), ``before`` {raw, weighted} (the yield just
      before it) and ``efficiency`` (weighted after / before), plus ``raw``/``yields``/``stat`` per bin and the
      bin ``edges`` (open ends as the strings "inf" and "-inf": JSON has no infinity).
    - ``recastflow-selected/1`` Parquet: the input rows of the events in at least one
      region, plus ``regions`` {region: int8 bin or -1} and ``variables`` {name: value} (the
      per-event numeric and condition variables). ``n_events`` and ``sum_weights`` in its
      header stay those of the whole sample; ``n_selected`` is the row count.

The work is columnar on flat numpy arrays, in chunks of :data:`CHUNK_EVENTS` events; after
each preselection cut that removes many events, later cuts and the variables only they need
are computed on the survivors alone.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import keyword
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from recastflow.core.config import load_validated, validate
from recastflow.core.errors import RecastError
from recastflow.core.events import RECO, SELECTED, merge_events, write_events
from recastflow.core.io import sha256_file, write_json_atomic
from recastflow.select.expressions import (
    BOOL,
    COLL,
    CONSTANTS,
    FUNCTIONS,
    JBOOL,
    JNUM,
    NUM,
    OBJ,
    SELF,
    Collection,
    Columns,
    Env,
    Expression,
    Kind,
    Layout,
    Particle,
    PerObject,
    Scope,
    collection_kind,
    compile_expression,
    evaluate_on,
    object_kind,
    pick,
    with_article,
)

if TYPE_CHECKING:
    from recastflow.analyses.bundle import Analysis, Grid

#: Reco collections and the type of each field (NUM or BOOL).
RECO_COLLECTIONS: dict[str, dict[str, str]] = {
    # ntracks: only from cards with jets.tracks
    "jets": {"pt": NUM, "eta": NUM, "phi": NUM, "m": NUM, "btag": BOOL, "flavour": NUM, "ntracks": NUM},
    "electrons": {"pt": NUM, "eta": NUM, "phi": NUM, "charge": NUM, "m": NUM},
    "muons": {"pt": NUM, "eta": NUM, "phi": NUM, "charge": NUM, "m": NUM},
    "photons": {"pt": NUM, "eta": NUM, "phi": NUM, "m": NUM},
    # hadronic taus (recastflow.emulate.taus; only from cards with a 'taus' section)
    "taus": {
        "pt": NUM,
        "eta": NUM,
        "phi": NUM,
        "m": NUM,
        "charge": NUM,
        "prongs": NUM,
        "loose": BOOL,
        "medium": BOOL,
        "tight": BOOL,
    },
}
#: Truth-level collections of the generator record (``truth`` column of reco files), for
#: efficiency maps and surrogate models binned in truth quantities.
TRUTH_COLLECTIONS: dict[str, dict[str, str]] = {
    "truth_bhadrons": {"pt": NUM, "eta": NUM, "phi": NUM},
    "truth_chadrons": {"pt": NUM, "eta": NUM, "phi": NUM},
    "truth_taus": {"pt": NUM, "eta": NUM, "phi": NUM},
}
#: Every collection a selection can read.
INPUT_COLLECTIONS: dict[str, dict[str, str]] = {**RECO_COLLECTIONS, **TRUTH_COLLECTIONS}
#: Masses (GeV) of collections whose files carry none, so that m(...) of leptons is exact.
IMPLICIT_MASS = {"electrons": 0.000510999, "muons": 0.1056584, "photons": 0.0}
#: Fields of ``met``; ``significance`` (recastflow.emulate.metsig) is only in reco files emulated with a card that has
#: a ``met_significance`` section, and is read (and found missing) only when a selection uses it.
MET_FIELDS = {"pt": NUM, "phi": NUM, "significance": NUM}
#: Inputs only some detector cards make: where they come from, for the error on events without them.
OPTIONAL_INPUTS = {
    "taus": "a detector card that has a 'taus' section",
    "triggers": "a detector card that has a 'taus' section",
    "met.significance": "a detector card that has a 'met_significance' section",
    # Delphes hand-offs count the file's Track branch (tower-built jets of Delphes's ATLAS card have NCharged 0)
    "jets.ntracks": "a detector card that has a 'jets.tracks' section (Delphes files: their Track branch)",
}


def _origin(what: str) -> str:
    """The end of a missing-input error: where an optional input comes from, else nothing."""
    source = OPTIONAL_INPUTS.get(what)
    return f"; reco files get it from 'recastflow emulate' with {source} (emulate the events again)" if source else ""


#: Trigger decisions per event (recastflow.emulate.taus.TRIGGER_PATHS), read as ``triggers.<path>``.
TRIGGER_FIELDS = {"ditau": BOOL, "ditau_met": BOOL}
RESERVED = (
    set(INPUT_COLLECTIONS) | {"met", "triggers", "weight"} | set(CONSTANTS) | set(FUNCTIONS) | {"True", "False", "None"}
)
CUTFLOW_FORMAT = "recastflow-cutflow/1"
YIELDS_FORMAT = "recastflow-yields/1"


# --------------------------------------------------------------------------- the parsed selection


@dataclass(frozen=True)
class Overlap:
    """Remove objects within ``cone`` of any object of ``other``."""

    other: str
    cone: float | Expression


@dataclass(frozen=True)
class ObjectDef:
    """One derived collection."""

    name: str
    sources: tuple[str, ...]
    fields: dict[str, str]
    where: Expression | None = None
    overlaps: tuple[Overlap, ...] = ()
    sort_by: str | None = "pt"


@dataclass(frozen=True)
class Cut:
    """A named cutflow step."""

    name: str
    expr: Expression
    #: a weight step ({name: {weight: expr}}): multiplies the event weights instead of cutting
    weight: bool = False
    #: the models and efficiency maps the step uses (its cutflow entry records the yield before it)
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Region:
    """A signal or control region: cuts after the preselection and the binning of one variable."""

    name: str
    cuts: tuple[Cut, ...]
    variable: str | None = None
    edges: tuple[float, ...] | None = None

    @property
    def n_bins(self) -> int:
        """Number of bins (1 without a binning)."""
        return len(self.edges) - 1 if self.edges else 1


@dataclass(frozen=True)
class Selection:
    """A loaded, checked selection file."""

    path: Path
    sha256: str
    analysis: str | None
    objects: tuple[ObjectDef, ...]
    variables: tuple[tuple[str, Expression], ...]
    preselection: tuple[Cut, ...]
    regions: tuple[Region, ...]
    definitions: Mapping[str, Callable[[Env], Any]] = field(repr=False, default_factory=dict)
    models: tuple[Any, ...] = ()  # recastflow.select.mlmodels.ModelDef
    efficiency_maps: tuple[Any, ...] = ()  # recastflow.select.effmaps.EfficiencyMap
    #: regions deliberately not filled (signal taken as zero), with the reason
    unfilled: Mapping[str, str] = field(default_factory=dict)

    @property
    def output_variables(self) -> tuple[str, ...]:
        """Variables with one number or condition per event, model scores and efficiencies (written with the
        selected events)."""
        return tuple(name for name, expr in self.variables if expr.kind.tag in (NUM, BOOL)) + tuple(
            m.name for m in self.models + self.efficiency_maps
        )


def load_selection(path: Path) -> Selection:
    """Read, validate and compile a selection file.

    Args:
        path: the YAML file.

    Raises:
        RecastError: naming the file and the field, for schema problems and bad expressions.
    """
    path = Path(path)
    doc = load_validated(path, "selection")
    builder = _Builder(str(path), doc)
    objects = builder.objects()
    variables = builder.variables()
    models = builder.models()
    maps = builder.efficiency_maps()
    preselection = builder.cuts(doc["preselection"], "preselection", ())
    regions = tuple(builder.region(name, spec, preselection) for name, spec in doc["regions"].items())
    definitions: dict[str, Callable[[Env], Any]] = {o.name: _object_builder(o) for o in objects}
    definitions.update({name: expr.fn for name, expr in variables})
    definitions.update({m.name: m.env_function() for m in models})
    definitions.update({m.name: m.env_function() for m in maps})
    return Selection(
        path,
        hashlib.sha256(path.read_bytes()).hexdigest(),
        doc.get("analysis"),
        objects,
        variables,
        preselection,
        regions,
        definitions,
        models,
        maps,
        dict(doc.get("unfilled", {})),
    )


class _Builder:
    """Turns the validated document into typed definitions, growing the scope in file order."""

    def __init__(self, path: str, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc
        self.names: dict[str, Kind] = {n: collection_kind(n, f) for n, f in INPUT_COLLECTIONS.items()}
        self.names["met"] = object_kind("met", MET_FIELDS)
        self.names["triggers"] = object_kind("triggers", TRIGGER_FIELDS)
        self.names["weight"] = Kind(NUM)
        self.pending = (
            set(doc["objects"])
            | set(doc["variables"])
            | set(doc.get("models", {}))
            | set(doc.get("efficiency_maps", {}))
        )
        self.scored: set[str] = set()  # names of models and efficiency maps

    def fail(self, message: str, field: str) -> RecastError:
        """An error about ``field`` of the selection file."""
        return RecastError(message, path=self.path, field=field)

    def compile(self, text: str, field: str, self_fields: Mapping[str, str] | None = None) -> Expression:
        """Compile an expression with the names defined so far."""
        scope = Scope(self.names, self_fields, frozenset(self.pending))
        return compile_expression(text, scope, path=self.path, field=field)

    def declare(self, name: str, kind: Kind, field: str) -> None:
        """Make ``name`` usable by later expressions, refusing clashes."""
        if name in RESERVED or keyword.iskeyword(name):
            raise self.fail(
                f"{name!r} is a reserved name (reco collection, met, weight, constant, function or "
                "Python keyword); choose another",
                field,
            )
        if name in self.names:
            raise self.fail(f"{name!r} is defined twice (objects and variables share one namespace)", field)
        self.pending.discard(name)
        self.names[name] = kind

    # -- objects

    def objects(self) -> tuple[ObjectDef, ...]:
        """All derived collections, in file order."""
        return tuple(self.object(name, spec) for name, spec in self.doc["objects"].items())

    def object(self, name: str, spec: dict[str, Any]) -> ObjectDef:
        """One derived collection."""
        where = f"objects.{name}"
        sources = self._sources(name, spec, where)
        fields = self._fields(sources, where)
        cond = None
        if "where" in spec:
            cond = self.compile(spec["where"], f"{where}.where", fields)
            if not (cond.kind.tag == BOOL or (cond.kind.tag == JBOOL and cond.kind.coll == SELF)):
                of = f" of {cond.kind.coll}" if cond.kind.coll else ""
                raise self.fail(
                    f"'where' must be a condition on each object using its bare fields "
                    f"({', '.join(fields)}), e.g. 'pt > 30 and abs(eta) < 2.5'; got "
                    f"{with_article(cond.kind.tag)}{of}",
                    f"{where}.where",
                )
        overlaps = tuple(
            self._overlap(item, i, fields, name, where) for i, item in enumerate(spec.get("remove_overlap", []))
        )
        sort_by = spec.get("sort_by", "pt")
        if sort_by is not None and fields.get(sort_by) != NUM:
            raise self.fail(
                f"sort_by {sort_by!r} is not a numeric field (fields: {', '.join(fields)})", f"{where}.sort_by"
            )
        self.declare(name, collection_kind(name, fields), where)
        return ObjectDef(name, sources, fields, cond, overlaps, sort_by)

    def _sources(self, name: str, spec: dict[str, Any], where: str) -> tuple[str, ...]:
        if ("from" in spec) == ("merge" in spec):
            raise self.fail("give exactly one of 'from' (one collection) or 'merge' (a list of collections)", where)
        sources = (spec["from"],) if "from" in spec else tuple(spec["merge"])
        key = "from" if "from" in spec else "merge"
        for source in sources:
            self._need_collection(source, f"{where}.{key}", name)
        return sources

    def _need_collection(self, source: str, field: str, name: str) -> None:
        if source == name:
            raise self.fail(f"{name!r} cannot be built from itself", field)
        if source in self.pending:
            raise self.fail(f"{source!r} is defined further down the file; define it before {name!r}", field)
        kind = self.names.get(source)
        if kind is None or kind.tag != COLL:
            import difflib

            colls = [n for n, k in self.names.items() if k.tag == COLL]
            close = difflib.get_close_matches(source, colls, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise self.fail(f"unknown collection {source!r}{hint} (collections: {', '.join(colls)})", field)

    def _fields(self, sources: tuple[str, ...], where: str) -> dict[str, str]:
        maps = [self.names[s].field_map for s in sources]
        # merged collections keep the fields all parts share with the same type
        return {k: t for k, t in maps[0].items() if all(m.get(k) == t for m in maps[1:])}

    def _overlap(self, item: dict[str, Any], i: int, fields: Mapping[str, str], name: str, where: str) -> Overlap:
        field = f"{where}.remove_overlap[{i}]"
        self._need_collection(item["with"], f"{field}.with", name)
        cone = item["dr"]
        if isinstance(cone, str):
            expr = self.compile(cone, f"{field}.dr", fields)
            if not (expr.kind.tag == NUM or (expr.kind.tag == JNUM and expr.kind.coll == SELF)):
                raise self.fail(
                    f"the cone must be a number per object, e.g. 'min(0.4, 0.04 + 10 / pt)'; got "
                    f"{with_article(expr.kind.tag)}",
                    f"{field}.dr",
                )
            return Overlap(item["with"], expr)
        if not (cone >= 0 and math.isfinite(cone)):
            raise self.fail(f"the cone must be a finite number >= 0, got {cone}", f"{field}.dr")
        return Overlap(item["with"], float(cone))

    # -- variables, cuts, regions

    def variables(self) -> tuple[tuple[str, Expression], ...]:
        """All variables, in file order."""
        out = []
        for name, text in self.doc["variables"].items():
            field = f"variables.{name}"
            expr = self.compile(text, field)
            if expr.kind.tag not in (NUM, BOOL, OBJ):
                raise self.fail(
                    f"a variable must have one value per event (a number, condition or object); got "
                    f"{with_article(expr.kind.tag)}: reduce it with n/sum/min/max/any/all or pick one "
                    "with [i]",
                    field,
                )
            self.declare(name, expr.kind, field)
            out.append((name, expr))
        return tuple(out)

    def models(self) -> tuple[Any, ...]:
        """The ML models, each checked against its file; their scores become numeric names."""
        from recastflow.select.mlmodels import build_model

        def kind_of(expr: Expression) -> str:
            tag = expr.kind.tag
            return "number" if tag in (NUM, BOOL) else "per-object" if tag in (JNUM, JBOOL) else with_article(tag)

        from recastflow.analyses.bundle import sources_of

        # published models are named by their source (fetched on first use), not committed
        sources = sources_of(self.doc, Path(self.path))
        out = []
        for name, spec in self.doc.get("models", {}).items():
            model = build_model(
                name, spec, source=self.path, compile_input=self.compile, numeric=kind_of, sources=sources
            )
            self.declare(name, Kind(NUM), f"models.{name}")
            self.scored.add(name)
            out.append(model)
        return tuple(out)

    def efficiency_maps(self) -> tuple[Any, ...]:
        """The efficiency maps; each is a numeric name (the efficiency of the event)."""
        from recastflow.select.effmaps import build_map

        def axis(text: str, field: str) -> Expression:
            expr = self.compile(text, field)
            if expr.kind.tag not in (NUM, BOOL):
                raise self.fail(
                    f"an axis must be a number per event, e.g. 'truth_bhadrons[0].pt'; got "
                    f"{with_article(expr.kind.tag)}",
                    field,
                )
            return expr

        out = []
        for name, spec in self.doc.get("efficiency_maps", {}).items():
            emap = build_map(name, spec, source=self.path, compile_axis=axis)
            self.declare(name, Kind(NUM), f"efficiency_maps.{name}")
            self.scored.add(name)
            out.append(emap)
        return tuple(out)

    def cuts(self, items: list[dict[str, Any]], where: str, before: tuple[Cut, ...]) -> tuple[Cut, ...]:
        """Ordered named cuts (or weight steps); step names must be unique along one cutflow."""
        seen = {c.name for c in before} | {"all events"}
        out = []
        for i, item in enumerate(items):
            ((name, text),) = item.items()
            field = f"{where}[{i}].{name}"
            if name in seen:
                raise self.fail(f"cut name {name!r} is used twice in one cutflow (or is reserved); rename it", field)
            seen.add(name)
            if isinstance(text, dict):  # a weight step: {weight: expression}
                expr = self.compile(text["weight"], f"{field}.weight")
                if expr.kind.tag != NUM:
                    raise self.fail(
                        f"a weight must be a number per event, e.g. an efficiency map's name; got "
                        f"{with_article(expr.kind.tag)}",
                        f"{field}.weight",
                    )
                out.append(Cut(name, expr, True, tuple(sorted(expr.names & self.scored))))
                continue
            expr = self.compile(text, field)
            if expr.kind.tag != BOOL:
                raise self.fail(
                    f"a cut must be a condition with one value per event, e.g. 'met.pt > 240'; got "
                    f"{with_article(expr.kind.tag)}",
                    field,
                )
            out.append(Cut(name, expr, False, tuple(sorted(expr.names & self.scored))))
        return tuple(out)

    def region(self, name: str, spec: dict[str, Any], preselection: tuple[Cut, ...]) -> Region:
        """One region with its cuts and bins."""
        where = f"regions.{name}"
        cuts = self.cuts(spec["cuts"], f"{where}.cuts", preselection)
        bins = spec.get("bins")
        if bins is None:
            return Region(name, cuts)
        variable = bins["variable"]
        kind = self.names.get(variable)
        if kind is None or kind.tag != NUM:
            numeric = [n for n, k in self.names.items() if k.tag == NUM and n != "weight"]
            raise self.fail(
                f"{variable!r} is not a numeric variable defined under 'variables' "
                f"(numeric variables: {', '.join(numeric) or 'none'})",
                f"{where}.bins.variable",
            )
        edges = tuple(float(e) for e in bins["edges"])
        if any(math.isnan(e) for e in edges) or any(b <= a for a, b in itertools.pairwise(edges)):
            raise self.fail(
                f"edges must be strictly increasing numbers (.inf allowed at the ends), got {list(edges)}",
                f"{where}.bins.edges",
            )
        return Region(name, cuts, variable, edges)


# --------------------------------------------------------------------------- building collections


def _object_builder(obj: ObjectDef) -> Callable[[Env], Collection]:
    """The function that computes one derived collection in an environment."""

    def build(env: Env) -> Collection:
        parts = [env[s] for s in obj.sources]
        coll = parts[0] if len(parts) == 1 else merge_collections(parts, tuple(obj.fields))
        if obj.where is not None:
            coll = coll.filter(_per_object(evaluate_on(obj.where, env, coll), coll.layout))
        if obj.overlaps:
            # an object's removal depends only on itself and the other collection, so all
            # overlap steps can look at the same objects and be applied in one filter
            remove = np.zeros(coll.size, dtype=bool)
            for overlap in obj.overlaps:
                cone = overlap.cone
                cones = cone if isinstance(cone, float) else _per_object(evaluate_on(cone, env, coll), coll.layout)
                mark_overlaps(remove, coll, env[overlap.other], cones)
            if remove.any():
                coll = coll.filter(~remove)
        return sort_collection(coll, obj.sort_by) if obj.sort_by else coll

    return build


def _per_object(value: Any, layout: Layout) -> np.ndarray:
    """A flat per-object column from a per-object or per-event result."""
    if isinstance(value, PerObject):
        return value.values
    return layout.broadcast(np.asarray(value))


def merge_collections(parts: list[Collection], fields: tuple[str, ...]) -> Collection:
    """Concatenate collections event by event (not yet sorted), keeping ``fields``.

    Only the counts are computed here; a field is placed when first used (``n(leptons)``
    needs none).

    Args:
        parts: collections over the same events.
        fields: the fields to keep (present in every part).
    """
    layout = Layout(np.asarray(sum(p.layout.counts for p in parts), dtype=np.int64))
    cache: list[np.ndarray] = []

    def destinations() -> list[np.ndarray]:
        if not cache:
            start = layout.offsets[:-1].copy()
            for part in parts:
                # object i of a part moves by (its event's start in the merged list - its start in the part)
                cache.append(np.arange(part.size) + part.layout.broadcast(start - part.layout.offsets[:-1]))
                start += part.layout.counts
        return cache

    def place(name: str) -> np.ndarray:
        columns = [p.field(name) for p in parts]
        out = np.empty(int(layout.offsets[-1]), dtype=np.result_type(*columns))
        for dest, column in zip(destinations(), columns):
            out[dest] = column
        return out

    # a subset of the events merges the subsets of the parts, whatever was placed here
    return Collection(
        layout,
        Columns({k: functools.partial(place, k) for k in fields}),
        derive=lambda kept: merge_collections([p.take_events(kept) for p in parts], fields),
    )


def sort_collection(coll: Collection, key: str) -> Collection:
    """Sort each event's objects by ``key``, descending, when a field is first used.

    Counting objects needs no order, so the check (and the rare sort) waits until a field
    of the result is read. Only events out of order are reordered.

    Args:
        coll: the collection.
        key: a numeric field.
    """
    if coll.sorted_by == key:
        return coll  # filtering and overlap removal keep the order
    cache: list[np.ndarray | None] = []

    def order() -> np.ndarray | None:
        if not cache:
            cache.append(_sort_order(coll, key))
        return cache[0]

    def load(name: str) -> np.ndarray:
        perm = order()
        return coll.field(name) if perm is None else pick(coll.field(name), perm)

    return Collection(
        coll.layout,
        Columns({k: functools.partial(load, k) for k in coll.names}),
        None,
        key,
        derive=lambda kept: sort_collection(coll.take_events(kept), key),
    )


def _sort_order(coll: Collection, key: str) -> np.ndarray | None:
    """Permutation that sorts each event of a collection by ``key`` descending, or None if sorted."""
    return descending_order(coll.field(key), coll.layout)


def descending_order(values: np.ndarray, layout: Layout) -> np.ndarray | None:
    """Permutation that sorts each event's ``values`` descending, or None if they already are.

    Args:
        values: one flat value per object.
        layout: the objects per event.
    """
    if len(values) < 2:
        return None
    n = len(values)
    # rising[i]: object i is above object i - 1 of the same event; padded at both ends so that
    # every event start (0 ... n) can be cleared without checking its range
    rising = np.empty(n + 1, dtype=bool)
    rising[0] = rising[n] = False
    np.greater(values[1:], values[:-1], out=rising[1:n])
    rising[layout.offsets[1:-1]] = False  # pairs straddling two events
    if not rising.any():
        return None  # the usual case: reco files, filters and most merges keep pT order
    rises = np.flatnonzero(rising) - 1  # index of the first object of each rising pair
    ev = layout.event_index
    bad = np.zeros(layout.n_events, dtype=bool)
    bad[ev[rises]] = True
    pos = np.flatnonzero(bad[ev])
    perm = np.arange(len(values))
    perm[pos] = pos[np.lexsort((-values[pos], ev[pos]))]
    return perm


def mark_overlaps(remove: np.ndarray, coll: Collection, other: Collection, cone: float | np.ndarray) -> None:
    """Flag in ``remove`` the objects of ``coll`` within ``cone`` (dR) of any object of ``other``.

    Every (object, partner) pair in the same event is compared. The pairs are enumerated
    by taking, for every object of the smaller collection, the k-th object of the larger
    one in the same event (k = 0, 1, ...). The objects of the smaller collection are put
    in decreasing order of their number of partners once, so that those with a k-th
    partner are always the first ones: every step then works on a slice, and the work is
    the number of pairs plus a few passes over the smaller collection.

    Args:
        remove: flags, one per object of ``coll``; set where an overlap is found.
        coll: the collection to clean.
        other: the collection it is cleaned against (same events).
        cone: one radius, or one per object of ``coll``.
    """
    if coll.size == 0 or other.size == 0:
        return
    radius2 = np.square(cone) if np.ndim(cone) == 0 else np.square(np.asarray(cone))
    reach = float(np.sqrt(np.max(radius2)))
    # the smaller collection (inner) is walked in full once; the larger one (outer) is stepped through by k
    walk_other = other.size >= coll.size
    outer, inner = (other, coll) if walk_other else (coll, other)
    ev = inner.layout.event_index
    n_outer = pick(outer.layout.counts, ev)  # partners of each inner object
    top = int(n_outer.max())
    if top == 0:
        return
    # inner objects by decreasing number of partners (a stable counting sort on small integers)
    key = top - n_outer
    rows = np.argsort(key.astype(np.uint16) if top < 1 << 16 else key, kind="stable")
    # left[k]: inner objects with more than k partners, i.e. the length of the k-th step
    left = np.cumsum(np.bincount(key, minlength=top + 1))[top - 1 :: -1]
    rows = rows[: int(left[0])]
    first = pick(outer.layout.offsets, pick(ev, rows))
    eta = inner.field_at("eta", rows)
    o_eta = outer.field("eta")
    # pass 1: the pairs close in eta, a cheap test that most pairs fail
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(top):
        n = int(left[k])
        deta = eta[:n] - pick(o_eta[k:], first[:n])  # the k-th partner of the first n rows
        near = np.flatnonzero(np.abs(deta) < reach)
        if len(near):
            found.append((near, pick(first, near) + k, pick(deta, near)))
    if not found:
        return
    # pass 2: dR of those pairs, all at once
    near, target, deta = (np.concatenate(parts) for parts in zip(*found))
    dphi = np.abs(inner.field_at("phi", pick(rows, near)) - outer.field_at("phi", target))
    dphi = np.minimum(dphi, 2 * np.pi - dphi)  # angles are folded into [-pi, pi] on reading
    mine = pick(rows, near) if walk_other else target
    r2 = radius2 if np.ndim(radius2) == 0 else pick(radius2, mine)
    remove[mine[np.square(deta) + dphi * dphi < r2]] = True


# --------------------------------------------------------------------------- reading the input


def _numpy(array: ak.Array) -> np.ndarray:
    """A flat numpy column; missing entries (from nullable Parquet columns) become NaN."""
    try:
        return ak.to_numpy(array, allow_missing=False)
    except ValueError:
        return ak.to_numpy(ak.fill_none(array, np.nan), allow_missing=False)


def _plain_numbers(layout: Any) -> np.ndarray | None:
    """The buffer of a plain one-dimensional numeric awkward content (nothing missing), or None."""
    if isinstance(layout, ak.contents.NumpyArray) and layout.data.ndim == 1 and layout.data.dtype.kind in "biuf":
        return np.asarray(layout.data)
    return None


def _fold_phi(phi: np.ndarray) -> np.ndarray:
    if phi.size and (phi.min() < -np.pi or phi.max() > np.pi):
        return np.remainder(phi + np.pi, 2 * np.pi) - np.pi
    return phi


class _Input:
    """The input events as flat numpy columns, each converted from the awkward array on first use.

    Flattening a list column of an awkward array gives a view of its buffer, so a column
    costs little; chunks of events are then slices of these columns.
    """

    def __init__(self, reco: ak.Array) -> None:
        self.reco = reco
        self._top = ak.to_layout(reco)
        self._cache: dict[tuple[str, ...], np.ndarray] = {}
        self._orders: dict[tuple[str, ...], np.ndarray | None] = {}

    def _get(self, key: tuple[str, ...], load: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def column(self, name: str) -> ak.Array:
        """A top-level column (or a truth collection), or a clear error naming what is missing."""
        if name in TRUTH_COLLECTIONS:
            part = name.removeprefix("truth_")
            if "truth" not in self.reco.fields or part not in self.reco["truth"].fields:
                raise RecastError(
                    f"the events have no truth.{part} record, which the selection's {name!r} needs "
                    "(generated and hand-off events carry it; Delphes files do not)",
                    field=name,
                )
            return self.reco["truth"][part]
        if name not in self.reco.fields:
            raise RecastError(
                f"the events have no {name!r} column, which the selection needs "
                f"(columns: {', '.join(self.reco.fields)})" + (_origin(name) or f"; is this a {RECO} file?"),
                field=name,
            )
        return self.reco[name]

    def _plain(self, name: str) -> Any:
        """The layout of a top-level column when the events are a plain record array, else None.

        The buffers of plain layouts are read directly: the same values as flattening and
        converting, without awkward's per-call overhead (a few ms per column).
        """
        top = self._top
        if isinstance(top, ak.contents.RecordArray) and name in top.fields:
            return top.content(name)
        return None

    def _list_offsets(self, name: str) -> np.ndarray | None:
        """The offsets of a list column as stored (the usual layout), or None."""
        layout = self._plain(name)
        if isinstance(layout, ak.contents.ListOffsetArray):
            return np.asarray(layout.offsets, dtype=np.int64)[: len(self._top) + 1]
        return None

    def offsets(self, name: str) -> np.ndarray:
        """Start of each event's objects of collection ``name``, plus the total."""

        def load() -> np.ndarray:
            column = self.column(name)
            offsets = self._list_offsets(name)
            if offsets is not None:
                # flattening takes the same content[offsets[0]:offsets[-1]]
                return offsets - offsets[0]
            counts = _numpy(ak.num(column, axis=1)).astype(np.int64)
            out = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=out[1:])
            return out

        return self._get(("offsets", name), load)

    def field(self, name: str, key: str) -> np.ndarray:
        """Flat values of one field of a collection, each event's objects in descending pT."""

        def load() -> np.ndarray:
            values = self._raw(name, key)
            order = self._order(name)
            return values if order is None else pick(values, order)

        return self._get((name, key), load)

    def _order(self, name: str) -> np.ndarray | None:
        """Permutation putting a collection in descending pT, checked once for the whole input."""
        key = ("order", name)
        if key not in self._orders:
            self._orders[key] = descending_order(self._raw(name, "pt"), Layout.from_offsets(self.offsets(name)))
        return self._orders[key]

    def _raw(self, name: str, key: str) -> np.ndarray:
        """Flat values of one field as stored, as float64 (bool for conditions)."""

        def load() -> np.ndarray:
            if key == "m" and name in IMPLICIT_MASS:
                return np.full(int(self.offsets(name)[-1]), IMPLICIT_MASS[name])
            column = self.column(name)
            if key not in column.fields:
                raise RecastError(
                    f"the {name!r} collection has no field {key!r} (fields: {', '.join(column.fields)})"
                    + _origin(f"{name}.{key}"),
                    field=f"{name}.{key}",
                )
            values = None
            offsets = self._list_offsets(name)
            objects = self._plain(name).content if offsets is not None else None
            if offsets is not None and isinstance(objects, ak.contents.RecordArray):
                stored = _plain_numbers(objects.content(key))
                if stored is not None:
                    values = stored[offsets[0] : offsets[-1]]  # what flattening gives
            if values is None:
                values = _numpy(ak.flatten(column[key], axis=1))
            if INPUT_COLLECTIONS[name][key] == BOOL:
                return values.astype(bool)
            values = values.astype(np.float64, copy=False)
            return _fold_phi(values) if key == "phi" else values

        return self._get(("raw", name, key), load)

    def scalar(self, name: str, key: str | None = None) -> np.ndarray:
        """A per-event number: ``weight`` or a field of ``met``."""

        def load() -> np.ndarray:
            column = self.column(name)
            layout = self._plain(name)
            if key is not None:
                if key not in column.fields:
                    raise RecastError(
                        f"the {name!r} column has no field {key!r} (fields: {', '.join(column.fields)})"
                        + _origin(f"{name}.{key}"),
                        field=f"{name}.{key}",
                    )
                column = column[key]
                layout = layout.content(key) if isinstance(layout, ak.contents.RecordArray) else None
            values = _plain_numbers(layout)
            values = (_numpy(column) if values is None else values[: len(self._top)]).astype(np.float64)
            return _fold_phi(values) if key == "phi" else values

        return self._get((name, key or ""), load)

    def definitions(self, start: int, stop: int) -> dict[str, Callable[[Env], Any]]:
        """Loaders of the input names for events ``start:stop``; each runs only if used."""

        # loaders bind their name when made (a factory, functools.partial): mypy cannot type `lambda k=k:` defaults
        def collection(name: str) -> Callable[[Env], Any]:
            return lambda env: self._collection(name, start, stop)

        def met(key: str) -> np.ndarray:
            return self.scalar("met", key)[start:stop]

        def trigger(key: str) -> np.ndarray:
            return self.scalar("triggers", key)[start:stop]

        base: dict[str, Callable[[Env], Any]] = {name: collection(name) for name in INPUT_COLLECTIONS}
        base["met"] = lambda env: Particle({k: functools.partial(met, k) for k in MET_FIELDS})
        # trigger decisions as 0/1, the way a Particle holds boolean fields
        base["triggers"] = lambda env: Particle({k: functools.partial(trigger, k) for k in TRIGGER_FIELDS})
        base["weight"] = lambda env: self.scalar("weight")[start:stop]
        return base

    def _collection(self, name: str, start: int, stop: int) -> Collection:
        offsets = self.offsets(name)
        lo, hi = int(offsets[start]), int(offsets[stop])
        layout = Layout.from_offsets(offsets[start : stop + 1] - lo)

        def column(key: str) -> np.ndarray:
            return self.field(name, key)[lo:hi]

        columns = Columns({k: functools.partial(column, k) for k in INPUT_COLLECTIONS[name]})
        return Collection(layout, columns, None, "pt")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CutflowStep:
    """Events left after one cut: raw count and expected yield at the luminosity."""

    name: str
    raw: int
    weighted: float
    #: the ML models / efficiency maps this step uses (its entry then records the yield before it)
    models: tuple[str, ...] = ()
    #: a weight step (scales the weights, cuts nothing)
    weight: bool = False


@dataclass(frozen=True)
class RegionResult:
    """Yields of one region per bin, with the cutflow that led there."""

    name: str
    variable: str | None
    edges: tuple[float, ...] | None
    yields: tuple[float, ...]
    stat: tuple[float, ...]
    raw: tuple[int, ...]
    cutflow: tuple[CutflowStep, ...]

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return len(self.yields)


@dataclass(frozen=True)
class SelectionResult:
    """Everything the select stage produces for one point."""

    regions: dict[str, RegionResult]
    selected: ak.Array
    #: expected events per unit of event weight
    normalisation: float
    #: what it was made of: luminosity_ifb, xsec_pb, xsec_source, br_factor, n_events, sum_weights
    sample: dict[str, Any]

    @property
    def luminosity_ifb(self) -> float:
        """The integrated luminosity the yields are for."""
        return float(self.sample["luminosity_ifb"])

    def yields_doc(self, point: str) -> dict[str, Any]:
        """The ``recastflow-yields/1`` document: regions -> yields and absolute stat per bin, and the normalisation."""
        return {
            "format": YIELDS_FORMAT,
            "point": point,
            "normalisation": dict(self.sample),
            "regions": {r.name: {"yields": list(r.yields), "stat": list(r.stat)} for r in self.regions.values()},
        }

    def cutflow_doc(self, point: str) -> dict[str, Any]:
        """The ``recastflow-cutflow/1`` document: per region its steps, raw and weighted."""
        return {
            "format": CUTFLOW_FORMAT,
            "point": point,
            "normalisation": dict(self.sample),
            "expected_per_unit_weight": self.normalisation,
            "regions": {r.name: _region_doc(r) for r in self.regions.values()},
        }


def _region_doc(region: RegionResult) -> dict[str, Any]:
    # JSON has no infinity: open bin edges are written as the strings "inf" / "-inf"
    edges = (
        None
        if region.edges is None
        else [e if math.isfinite(e) else ("inf" if e > 0 else "-inf") for e in region.edges]
    )
    return {
        "bins": region.n_bins,
        "variable": region.variable,
        "edges": edges,
        "raw": list(region.raw),
        "yields": list(region.yields),
        "stat": list(region.stat),
        "steps": [_step_doc(s, region.cutflow[i - 1] if i else None) for i, s in enumerate(region.cutflow)],
    }


def _step_doc(step: CutflowStep, previous: CutflowStep | None) -> dict[str, Any]:
    """One cutflow entry; a step using an ML model or efficiency map also records the yield just before it."""
    doc: dict[str, Any] = {"name": step.name, "raw": step.raw, "weighted": step.weighted}
    if step.models and previous is not None:
        doc["models"] = list(step.models)
        doc["kind"] = "weight" if step.weight else "cut"
        doc["before"] = {"raw": previous.raw, "weighted": previous.weighted}
        doc["efficiency"] = step.weighted / previous.weighted if previous.weighted else None
    return doc


def normalisation(header: Mapping[str, Any], luminosity_ifb: float) -> float:
    """Expected events per unit of event weight: luminosity[pb^-1] * xsec_pb * br_factor / sum_weights.

    Args:
        header: the event file header.
        luminosity_ifb: integrated luminosity in fb^-1.
    """
    if not (isinstance(luminosity_ifb, (int, float)) and luminosity_ifb > 0 and math.isfinite(luminosity_ifb)):
        raise RecastError(
            f"luminosity must be a positive number of fb^-1, got {luminosity_ifb!r}", field="luminosity_ifb"
        )
    values = {}
    for key in ("xsec_pb", "br_factor", "sum_weights"):
        value = header.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RecastError(f"header value {key!r} must be a finite number, got {value!r}", field=key)
        values[key] = float(value)
    if values["sum_weights"] == 0:
        raise RecastError("sum_weights is 0: the sample cannot be normalised", field="sum_weights")
    return luminosity_ifb * 1000.0 * values["xsec_pb"] * values["br_factor"] / values["sum_weights"]


# --------------------------------------------------------------------------- running

#: Events per chunk. A chunk's temporaries stay in the CPU caches, which makes each numpy
#: operation about twice as fast as on whole-file arrays, while the per-chunk Python
#: overhead (a few hundred numpy calls) stays small.
CHUNK_EVENTS = 1 << 16
#: Once fewer than this fraction of a chunk's events survive the cuts so far, later cuts (and
#: the variables only they need) are computed on the survivors alone ...
SHRINK_BELOW = 0.7
#: ... unless there are fewer events than this, where the copying costs more than it saves
#: and evaluating on the same events lets regions share cuts they have in common.
SHRINK_MIN_EVENTS = 4096


def run_selection(
    reco: ak.Array,
    header: Mapping[str, Any],
    selection: Selection,
    luminosity_ifb: float,
    *,
    chunk_events: int = CHUNK_EVENTS,
) -> SelectionResult:
    """Apply a selection to reco events: yields per region and bin, cutflows and selected events.

    Args:
        reco: events in the ``recastflow-reco/1`` layout.
        header: their header (``xsec_pb``, ``br_factor``, ``sum_weights``).
        selection: a loaded selection.
        luminosity_ifb: integrated luminosity in fb^-1.
        chunk_events: events processed together (results do not depend on it beyond float rounding).

    Raises:
        RecastError: for a header that cannot be normalised or a missing input column.
    """
    norm = normalisation(header, luminosity_ifb)
    source = _Input(reco)
    tally = _Tally(selection)
    with np.errstate(all="ignore"):
        for start in range(0, len(reco), chunk_events):
            _run_chunk(source, start, min(len(reco), start + chunk_events), selection, tally)
        selected = tally.selected_events(reco)
    regions = tally.regions(norm)
    for region in regions.values():
        _check_finite(region, selection)
    return SelectionResult(regions, selected, norm, _sample(header, luminosity_ifb, len(reco)))


def _check_finite(region: RegionResult, selection: Selection) -> None:
    """Refuse NaN or infinite yields, naming the first cutflow step whose weighted sum is not finite."""
    if all(math.isfinite(x) for x in region.yields + region.stat):
        return
    step = next((s for s in region.cutflow if not math.isfinite(s.weighted)), None)
    if step is None or step.name == "all events":
        raise RecastError(
            f"event weights are NaN or infinite, so region {region.name}'s yields are not finite "
            "(an input that was never normalised?)",
            field="weight",
        )
    pre = {c.name for c in selection.preselection}
    raise RecastError(
        f"step {step.name!r} makes event weights NaN or infinite, so the yields {list(region.yields)} "
        "are not finite (a division by zero in a weight?); make its expression finite for every event, "
        "e.g. guard the denominator",
        path=str(selection.path),
        field="preselection" if step.name in pre else f"regions.{region.name}.cuts",
    )


def _sample(header: Mapping[str, Any], luminosity_ifb: float, n_rows: int) -> dict[str, Any]:
    """The numbers the yields are normalised with, for the yields and cutflow documents."""
    n_events = header.get("n_events")
    return {
        "luminosity_ifb": float(luminosity_ifb),
        "xsec_pb": float(header["xsec_pb"]),
        "xsec_source": str(header.get("xsec_source", "")),
        "br_factor": float(header["br_factor"]),
        "n_events": int(n_events) if isinstance(n_events, int) else n_rows,
        "sum_weights": float(header["sum_weights"]),
    }


class _Tally:
    """Sums over chunks: cutflow counts and weights, histograms, and the selected rows."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.all = np.zeros(2)
        self.pre = np.zeros((len(selection.preselection), 2))
        self.steps = {r.name: np.zeros((len(r.cuts) + (r.edges is not None), 2)) for r in selection.regions}
        self.hist = {r.name: np.zeros((3, r.n_bins)) for r in selection.regions}  # raw, sum w, sum w^2
        self.rows: list[np.ndarray] = []
        self.bins: dict[str, list[np.ndarray]] = {r.name: [] for r in selection.regions}
        self.variables: dict[str, list[np.ndarray]] = {n: [] for n in selection.output_variables}

    def regions(self, norm: float) -> dict[str, RegionResult]:
        """Per-region results, normalised to the luminosity."""
        head = [CutflowStep("all events", int(self.all[0]), float(self.all[1]) * norm)]
        head += [
            CutflowStep(c.name, int(r), float(w) * norm, c.models, c.weight)
            for c, (r, w) in zip(self.selection.preselection, self.pre)
        ]
        out = {}
        for region in self.selection.regions:
            names = [c.name for c in region.cuts] + ([f"in {region.variable} bins"] if region.edges else [])
            scored = {m.name for m in self.selection.models + self.selection.efficiency_maps}
            binned = (region.variable,) if region.variable is not None and region.variable in scored else ()
            models = [c.models for c in region.cuts] + [binned] * (len(names) - len(region.cuts))
            weights = [c.weight for c in region.cuts] + [False] * (len(names) - len(region.cuts))
            steps = [
                CutflowStep(n, int(r), float(w) * norm, m, k)
                for n, (r, w), m, k in zip(names, self.steps[region.name], models, weights)
            ]
            raw, sumw, sumw2 = self.hist[region.name]
            out[region.name] = RegionResult(
                region.name,
                region.variable,
                region.edges,
                tuple(float(x) for x in sumw * norm),
                tuple(float(x) for x in np.sqrt(sumw2) * norm),
                tuple(int(x) for x in raw),
                tuple(head + steps),
            )
        return out

    def selected_events(self, reco: ak.Array) -> ak.Array:
        """Input rows of the events in at least one region, with their bin per region and variables."""
        rows = _concat(self.rows, np.int64)
        events = reco[rows]
        bins = {name: _concat(parts, np.int8) for name, parts in self.bins.items()}
        events = ak.with_field(events, ak.zip(bins, depth_limit=1), "regions")
        if self.variables:
            kinds = dict(self.selection.variables)
            columns = {
                n: _concat(parts, bool if n in kinds and kinds[n].kind.tag == BOOL else np.float64)
                for n, parts in self.variables.items()
            }
            events = ak.with_field(events, ak.zip(columns, depth_limit=1), "variables")
        return events


def _concat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


@dataclass
class _Passed:
    """Events that passed a sequence of cuts: their environment, rows in the parent, weights."""

    env: Env
    rows: np.ndarray
    weight: np.ndarray
    steps: list[tuple[int, float]]


def _run_chunk(source: _Input, start: int, stop: int, selection: Selection, tally: _Tally) -> None:
    """Select events ``start:stop`` and add them to the tally."""
    root = Env(stop - start, source.definitions(start, stop), selection.definitions)
    weight = root["weight"]
    tally.all += (stop - start, weight.sum())
    pre = _apply_cuts(root, selection.preselection, weight)
    if pre.steps:
        tally.pre += pre.steps
    in_any = np.zeros(pre.env.n_events, dtype=bool)
    bins = {}
    for region in selection.regions:
        bins[region.name] = _run_region(pre, region, tally)
        in_any |= bins[region.name] >= 0
    tally.rows.append(start + pre.rows[in_any])
    for name, index in bins.items():
        tally.bins[name].append(index[in_any])
    if tally.variables:
        final = pre.env.subset(in_any)
        for name in tally.variables:
            tally.variables[name].append(np.asarray(final[name]))


def _apply_cuts(env: Env, cuts: tuple[Cut, ...], weight: np.ndarray) -> _Passed:
    """Apply ordered cuts, recording (raw count, sum of weights) after each.

    The cut results are the same as evaluating every cut on every event, but once few
    events are left the remaining cuts (and the variables only they need) are computed on
    the survivors alone, which is where much of the speed of the stage comes from.
    """
    rows = np.arange(env.n_events)
    mask = np.ones(env.n_events, dtype=bool)
    # a dot product sums the weights of the passing events several times faster than
    # sum(where=), but a NaN or infinite weight of a failing event would spoil it
    dot = bool(np.isfinite(weight).all())
    steps = []
    for cut in cuts:
        if cut.weight:
            # a weight step (efficiency map, surrogate probability) cuts nothing but scales the weights
            weight = weight * np.asarray(env.evaluate(cut.expr), dtype=np.float64)
            dot = bool(np.isfinite(weight).all())
        else:
            mask &= env.evaluate(cut.expr)
        passed = int(np.count_nonzero(mask))
        steps.append((passed, float(np.dot(weight, mask) if dot else np.sum(weight, where=mask))))
        if passed < SHRINK_BELOW * len(mask) and len(mask) >= SHRINK_MIN_EVENTS:
            kept = np.flatnonzero(mask)
            env, rows, weight = env.take(kept), pick(rows, kept), pick(weight, kept)
            mask = np.ones(passed, dtype=bool)
    if not mask.all():
        kept = np.flatnonzero(mask)
        env, rows, weight = env.take(kept), pick(rows, kept), pick(weight, kept)
    return _Passed(env, rows, weight, steps)


def _run_region(pre: _Passed, region: Region, tally: _Tally) -> np.ndarray:
    """Fill one region's cutflow and histogram; return the bin of each preselected event (-1: none)."""
    passed = _apply_cuts(pre.env, region.cuts, pre.weight)
    steps = passed.steps
    index = np.zeros(passed.env.n_events, dtype=np.int64)
    if region.edges is not None:
        if region.variable is None:  # the selection loader gives a binned region its variable
            raise RecastError(f"region {region.name!r} has bin edges but no variable to bin")
        values = passed.env[region.variable]
        # searchsorted(right) - 1 gives half-open bins [lo, hi); NaN sorts past the last edge
        found = np.searchsorted(np.asarray(region.edges), values, side="right") - 1
        index = np.where((found >= 0) & (found < region.n_bins), found, -1)
        inside = index >= 0
        steps.append((int(np.count_nonzero(inside)), float(passed.weight[inside].sum())))
    if steps:
        tally.steps[region.name] += steps
    counted = index >= 0
    w, b = passed.weight[counted], index[counted]
    tally.hist[region.name] += (
        np.bincount(b, minlength=region.n_bins),
        np.bincount(b, w, minlength=region.n_bins),
        np.bincount(b, w * w, minlength=region.n_bins),
    )
    bins = np.full(pre.env.n_events, -1, dtype=np.int8)
    bins[passed.rows] = index
    return bins


def model_inputs(reco: ak.Array, selection: Selection, model: Any, *, after_preselection: bool = True) -> np.ndarray:
    """The unscaled input rows of a model on reco events (rows with a missing input dropped).

    Args:
        reco: events in the ``recastflow-reco/1`` layout.
        selection: the selection declaring the model.
        model: one of ``selection.models``.
        after_preselection: only events passing the preselection (as the selection sees them).
    """
    env = Env(len(reco), _Input(reco).definitions(0, len(reco)), selection.definitions)
    with np.errstate(all="ignore"):
        if after_preselection:
            env = _apply_cuts(env, selection.preselection, np.ones(len(reco))).env
        columns = model.input_columns(env)
    rows = np.column_stack(columns) if columns and env.n_events else np.zeros((0, len(columns)))
    return rows[np.isfinite(rows).all(axis=1)]


def evaluate_expression(text: str, reco: ak.Array, selection: Selection | None = None) -> Any:
    """Evaluate one expression on reco events, for checks and debugging.

    Args:
        text: an expression, e.g. ``"mct(bjets[0], bjets[1])"``.
        reco: events in the ``recastflow-reco/1`` layout.
        selection: whose objects and variables the expression may use (reco names only if None).

    Returns:
        One value per event (numpy array), or a Particle / Collection / PerObject value.
    """
    names: dict[str, Kind] = {n: collection_kind(n, f) for n, f in INPUT_COLLECTIONS.items()}
    names["met"] = object_kind("met", MET_FIELDS)
    names["triggers"] = object_kind("triggers", TRIGGER_FIELDS)
    names["weight"] = Kind(NUM)
    definitions: Mapping[str, Callable[[Env], Any]] = {}
    if selection is not None:
        names.update({o.name: collection_kind(o.name, o.fields) for o in selection.objects})
        names.update({n: e.kind for n, e in selection.variables})
        names.update({m.name: Kind(NUM) for m in selection.models + selection.efficiency_maps})
        definitions = selection.definitions
    expr = compile_expression(text, Scope(names), path=None, field="expression")
    env = Env(len(reco), _Input(reco).definitions(0, len(reco)), definitions)
    return expr.evaluate(env)


# --------------------------------------------------------------------------- the stage on files


def select_file(
    inputs: list[Path],
    selection_path: Path,
    *,
    luminosity_ifb: float,
    point: str,
    yields_out: Path,
    cutflow_out: Path,
    selected_out: Path,
) -> SelectionResult:
    """Select the reco chunks of one point and write yields, cutflow and selected events.

    Nothing is written unless everything succeeded; if a later write fails the earlier
    outputs of this call are removed again.

    Args:
        inputs: ``recastflow-reco/1`` chunk files of one point (all chunks).
        selection_path: the selection YAML.
        luminosity_ifb: integrated luminosity in fb^-1.
        point: point name for the yields document.
        yields_out: ``recastflow-yields/1`` JSON.
        cutflow_out: ``recastflow-cutflow/1`` JSON.
        selected_out: ``recastflow-selected/1`` Parquet.
    """
    selection = load_selection(Path(selection_path))
    paths = [Path(p) for p in inputs]
    reco, header = merge_events(paths, (RECO,))
    try:
        result = run_selection(reco, header, selection, luminosity_ifb)
    except RecastError as exc:
        if exc.path is None:  # name the input, which the array-level code cannot know
            raise RecastError(exc.args[0], path=", ".join(map(str, paths))) from None
        raise
    yields = result.yields_doc(point)
    validate(yields, "yields", yields_out)
    out_header = _selected_header(header, selection, paths, result)
    _write_outputs(
        [
            (selected_out, lambda p: write_events(p, result.selected, out_header)),
            (Path(cutflow_out), lambda p: write_json_atomic(p, result.cutflow_doc(point))),
            (Path(yields_out), lambda p: write_json_atomic(p, yields)),
        ]
    )
    return result


def select_point(
    grid: Grid,
    analysis: Analysis,
    point_name: str,
    inputs: list[Path],
    *,
    yields_out: Path | str,
    cutflow_out: Path | str,
    selected_out: Path | str,
    log: Callable[[str], None],
) -> SelectionResult:
    """Apply a bundle's selection to the events of one grid point (``recastflow select``).

    The selection's regions are checked against the grid's workspace before any event is read:
    yields for another layout of regions and bins are of no use.

    Args:
        grid: the point's grid (with an ``events`` section).
        analysis: the grid's bundle (with a ``selection`` for the grid's workspace, and ``luminosity_ifb``).
        point_name: the point, made from events.
        inputs: ``recastflow-reco/1`` chunk files of the point (all chunks).
        yields_out: ``recastflow-yields/1`` JSON (named as given in the log).
        cutflow_out: ``recastflow-cutflow/1`` JSON (named as given in the log).
        selected_out: ``recastflow-selected/1`` Parquet (named as given in the log).
        log: gets one line naming the outputs.

    Returns:
        The selection's result.

    Raises:
        RecastError: the point's signal does not come from events, the bundle has no selection or no
            luminosity, the selection's regions do not fit the workspace, or the events are wrong.
    """
    from recastflow.checks.preflight import check_selection_regions

    point, _ = grid.events_point(point_name)
    selection = analysis.selection_for(grid.workspace, source=grid.path)
    if selection is None:
        raise RecastError(
            f"analysis {analysis.id} has no 'selection' file for workspace {grid.workspace}, so it cannot "
            "select events",
            path=str(analysis.folder / "analysis.yaml"),
            field="selection",
        )
    if analysis.luminosity_ifb is None:
        raise RecastError(
            "the bundle needs 'luminosity_ifb' to normalise yields",
            path=str(analysis.folder / "analysis.yaml"),
            field="luminosity_ifb",
        )
    check_selection_regions(grid, analysis)
    result = select_file(
        inputs,
        selection,
        luminosity_ifb=analysis.luminosity_ifb,
        point=point.name,
        yields_out=Path(yields_out),
        cutflow_out=Path(cutflow_out),
        selected_out=Path(selected_out),
    )
    log(f"{grid.name}/{point.name}: yields, cutflow and selected events -> {yields_out}, {cutflow_out}, {selected_out}")
    return result


def _selected_header(
    header: Mapping[str, Any], selection: Selection, inputs: list[Path], result: SelectionResult
) -> dict[str, Any]:
    """Header of the selected events: the input's, with the selection recorded.

    ``n_events`` and ``sum_weights`` stay those of the whole sample so that the usual
    normalisation still holds for the selected weights; ``n_selected`` is the row count.
    """
    out = dict(header)
    out["format"] = SELECTED
    out["n_selected"] = len(result.selected)
    out["luminosity_ifb"] = result.luminosity_ifb
    out["selection"] = {"file": str(selection.path), "sha256": selection.sha256, "analysis": selection.analysis}
    out["regions"] = {r.name: {"variable": r.variable, "bins": r.n_bins} for r in result.regions.values()}
    out["sources"] = [{"path": str(p), "sha256": sha256_file(p)} for p in inputs]
    if selection.models:
        from recastflow.select.mlmodels import runtime_version

        out["models"] = {
            m.name: {
                "file": str(m.path),
                "sha256": m.sha256,
                "opset": m.opset,
                "onnxruntime_validated": m.onnxruntime,
                "onnxruntime": runtime_version(),
                **({"surrogate": dict(m.surrogate)} if m.surrogate else {}),
            }
            for m in selection.models
        }
    if selection.efficiency_maps:
        out["efficiency_maps"] = {
            e.name: {"out_of_range": e.out_of_range, "axes": [x.text for x in e.expressions]}
            for e in selection.efficiency_maps
        }
    return out


def _write_outputs(writers: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Run the writers in order; on failure remove what this call already wrote."""
    written: list[Path] = []
    try:
        for path, write in writers:
            write(Path(path))
            written.append(Path(path))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
