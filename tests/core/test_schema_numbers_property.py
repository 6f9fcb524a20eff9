"""Property: every numeric field of every schema takes only legitimate numbers, or names itself in one line.

For each packaged schema a valid base document is read from the bad-input corpus's project
(tests/badinput/base) or the repository's own cards. The schema is walked alongside the document
to find every numeric field and its constraints (type, bounds, ``x-allow-infinite``); hypothesis
then puts NaN, infinities, negative, zero, huge, tiny, non-integer and wrong-type values into one
field at a time and runs the validation the commands run. Each value must either be accepted
(and then be legitimate by the field's own constraints) or be refused with a one-line
``RecastError`` that starts with the file and names the field (or the list or object holding it,
for constraints on the whole container such as unique items).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recastflow.analyses.bundle import load_analysis
from recastflow.core.config import read_document, schema, validate
from recastflow.core.errors import RecastError
from recastflow.stats.patching import check_yields

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "tests" / "badinput" / "base" / "config"

#: A valid document of each schema (every schema in workflow/recastflow/schemas/ must be here).
DOCUMENTS: dict[str, Path] = {
    "config": BASE / "config.yaml",
    "analysis": BASE / "analyses" / "TOY" / "analysis.yaml",
    "signals": BASE / "signals" / "TOYGRID.yaml",
    "selection": BASE / "analyses" / "TOY" / "selection.yaml",
    "manifest": BASE / "signals" / "handoff" / "zmm.yaml",
    "reweighting": BASE / "reweighting" / "spec.yaml",
    "yields": BASE / "signals" / "yields" / "P0.json",
    "detector": REPO / "config" / "detectors" / "ATLAS-Run2.yaml",
    "process": REPO / "config" / "processes" / "TChiWH.yaml",
    "spectrum": REPO / "config" / "spectra" / "TChiWH.yaml",
    "scan": REPO / "config" / "scans" / "TChiWH_1Lbb.yaml",
}
#: Extra documents of a schema, for fields the first one does not have.
MORE_DOCUMENTS: dict[str, list[Path]] = {
    "signals": [BASE / "signals" / "SLHAGRID.yaml", BASE / "signals" / "RWGRID.yaml"],
}

Path_ = tuple[Any, ...]


def test_every_schema_has_a_base_document() -> None:
    names = {p.name.removesuffix(".schema.json") for p in (REPO / "workflow" / "recastflow" / "schemas").iterdir()
             if p.name.endswith(".schema.json")}
    assert names == set(DOCUMENTS)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def numeric_fields(node: dict[str, Any], doc: Any, root: dict[str, Any], path: Path_ = ()
                   ) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """(instance path, schema node) of every number in ``doc``, walking the schema alongside it."""
    node = _resolve(node, root)
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key, []):
            yield from numeric_fields(branch, doc, root, path)
    if isinstance(doc, bool):
        return
    if isinstance(doc, (int, float)) and _types(node) & {"number", "integer"}:
        yield path, node
        return
    if isinstance(doc, dict):
        props = node.get("properties", {})
        for key, value in doc.items():
            if key in props:
                yield from numeric_fields(props[key], value, root, (*path, key))
            elif isinstance(node.get("additionalProperties"), dict):
                yield from numeric_fields(node["additionalProperties"], value, root, (*path, key))
    elif isinstance(doc, list):
        items, prefix = node.get("items"), node.get("prefixItems", [])
        for i, value in enumerate(doc):
            sub = prefix[i] if i < len(prefix) else items
            if isinstance(sub, dict):
                yield from numeric_fields(sub, value, root, (*path, i))


def legitimate(value: Any, node: dict[str, Any]) -> bool:
    """Whether the field's own constraints allow the value (the oracle)."""
    kinds = _types(node)
    if value is None:
        return "null" in kinds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float):  # Python ints are exact, of any size
        if "integer" in kinds and "number" not in kinds and not value.is_integer():
            return False
        if math.isnan(value) or (math.isinf(value) and not node.get("x-allow-infinite")):
            return False
    checks = [("minimum", lambda b: value >= b), ("maximum", lambda b: value <= b),
              ("exclusiveMinimum", lambda b: value > b), ("exclusiveMaximum", lambda b: value < b)]
    if any(key in node and not ok(node[key]) for key, ok in checks):
        return False
    if isinstance(value, int) and abs(value) > 1.7976931348623157e308:
        return False  # no float holds it
    if isinstance(node.get("not"), dict) and "const" in node["not"] and value == node["not"]["const"]:
        return False
    if "enum" in node and value not in node["enum"]:
        return False
    return "const" not in node or value == node["const"]


def field_name(path: Path_) -> str:
    """The field as messages write it: ``a.b[0].c``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _set(doc: Any, path: Path_, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


def with_defaults(node: dict[str, Any], doc: dict[str, Any], root: dict[str, Any]) -> None:
    """Set the optional numbers the base leaves out (e.g. a spec's thresholds) to their defaults, so they are tried too.

    Objects without required keys that hold such numbers are created.
    """
    for key, sub in _resolve(node, root).get("properties", {}).items():
        sub = _resolve(sub, root)
        default = sub.get("default")
        if key not in doc and isinstance(default, (int, float)) and not isinstance(default, bool):
            doc[key] = default
        elif "object" in _types(sub) and "properties" in sub and not sub.get("required"):
            child = doc.setdefault(key, {}) if key not in doc or isinstance(doc[key], dict) else None
            if child is not None:
                with_defaults(sub, child, root)


_WORKSPACE = None


def run_checks(schema_name: str, doc: Any, path: str) -> None:
    """What the commands run on a document of this schema before using its numbers."""
    global _WORKSPACE
    validate(doc, schema_name, path)
    if schema_name == "yields":  # yields files have their own per-bin checks (finite, non-negative)
        if _WORKSPACE is None:
            _WORKSPACE = load_analysis("TOY", BASE / "analyses").workspace("main")
        check_yields(doc, _WORKSPACE, path)


VALUES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -0.0, -1, -1e-300, 1e-300, 1e300, -1e300, 0.5, 1.5,
                     2**63, 10**400, True, False, None, "1", "nan", [], {}, [1.0]]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
)


def _cases() -> list[tuple[str, Path]]:
    return [(name, path) for name, path in DOCUMENTS.items()] + [
        (name, path) for name, paths in MORE_DOCUMENTS.items() for path in paths]


@pytest.mark.parametrize("schema_name, source", _cases(), ids=[f"{n}:{p.name}" for n, p in _cases()])
def test_numbers_of_every_field_are_legitimate_or_refused_naming_the_field(schema_name: str, source: Path) -> None:
    base = read_document(source)
    root = schema(schema_name)
    with_defaults(root, base, root)
    run_checks(schema_name, base, str(source))  # the base document itself is valid
    fields = list(numeric_fields(root, base, root))
    assert fields, f"no numeric field found in {source}"

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(fields), VALUES)
    def check(field: tuple[Path_, dict[str, Any]], value: Any) -> None:
        where, node = field
        doc = _set(base, where, value)
        ok = legitimate(value, node)
        try:
            run_checks(schema_name, doc, str(source))
        except RecastError as exc:
            msg = str(exc)
            assert "\n" not in msg, msg
            assert msg.startswith(f"{source}: "), msg
            named = exc.field or ""
            name = field_name(where)
            # the field itself, or the list/object that holds it (a constraint on the whole container)
            assert name == named or name.startswith(named + ".") or name.startswith(named + "["), \
                f"{value!r} at {name} refused naming {named!r}: {msg}"
            assert not ok or name != named, f"legitimate {value!r} at {name} refused: {msg}"
        else:
            assert ok, f"{value!r} accepted at {field_name(where)} of {source} ({schema_name} schema: {node})"

    check()
