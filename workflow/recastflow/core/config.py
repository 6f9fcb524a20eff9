"""Reading YAML/JSON input safely and validating it against the package's schemas."""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import string
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from recastflow.core.errors import RecastError

#: Input files larger than this are refused before parsing (a typo'd path to a data file, or a YAML bomb).
MAX_CONFIG_BYTES = 20_000_000
#: Nodes that YAML aliases may add to a document when expanded. A few bytes of nested aliases
#: ("billion laughs") otherwise expand to 10^9 nodes, which schema validation then walks for hours.
MAX_ALIAS_NODES = 100_000


class _AliasBomb(yaml.YAMLError):
    """Aliases that expand too far, or that refer to themselves."""


# libyaml's parser (CSafeLoader) reads a 10,000-point grid in a fraction of the pure-Python parser's time; the
# constructors stay SafeConstructor's either way, so nothing but plain data can be built
_BaseSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLoader(_BaseSafeLoader):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader that also refuses duplicate keys and runaway or recursive aliases."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_aliases(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys; a silently ignored setting is worse than an error
        seen = set()
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads 1e-3, 1E+2 and 1.5e3 as strings: its float form needs a dot and a signed
# exponent. Physicists write cross-sections that way and YAML 1.2 reads them as numbers, so this loader
# does too. Only the constructor of SafeLoader's own float tag is used: the loader stays a SafeLoader.
_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


class _DuplicateJSONKey(ValueError):
    """A JSON object with the same key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys, as PyYAML would; the first one would be silently ignored
    doc = {}
    for key, value in pairs:
        if key in doc:
            raise _DuplicateJSONKey(key)
        doc[key] = value
    return doc


def loads_json(text: str | bytes, path: Path | str) -> Any:
    """``json.loads`` that refuses duplicate keys, with one-line errors naming the file.

    NaN and Infinity are read (as pyhf and Python's json do): the checks of each kind of
    document refuse them where they are numbers of the physics, naming the field.

    Args:
        text: the JSON text.
        path: the file it came from (for messages).
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise RecastError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=str(path)) from None
    except _DuplicateJSONKey as exc:
        raise RecastError(
            f"invalid JSON: duplicate key {exc.args[0]!r} in an object; give each key once", path=str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise RecastError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8", path=str(path)
        ) from None


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` with the checks of :class:`_SafeLoader` (only SafeLoader's constructors)."""
    loader = _SafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand beyond MAX_ALIAS_NODES extra nodes, or loop."""
    sizes: dict[int, int] = {}  # expanded size of each distinct node
    ancestors: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else (node.value if isinstance(node, yaml.SequenceNode) else [])
        )
        if finished:
            ancestors.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] - len(sizes) > MAX_ALIAS_NODES:
                raise _AliasBomb(
                    f"its aliases expand to more than {MAX_ALIAS_NODES} extra values (a YAML alias "
                    "bomb?); write the repeated parts out"
                )
            continue
        if id(node) in sizes:
            continue
        ancestors.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in ancestors:
                raise _AliasBomb(
                    f"the value at line {child.start_mark.line + 1} contains an alias of itself "
                    "(a recursive alias); write the value out"
                )
            if id(child) not in sizes:
                stack.append((child, False))


@cache
def schema(name: str) -> dict[str, Any]:
    """Return one of the JSON schemas shipped inside the package.

    Args:
        name: schema stem, e.g. ``"config"`` for ``config.schema.json``.
    """
    text = resources.files("recastflow").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file with the safe loader, turning problems into one-line errors.

    Args:
        path: the file; ``.json`` is parsed as JSON, anything else as YAML.
    """
    from recastflow.core.io import input_path

    # under the command line's policy: a link out of the project is refused; a folder, a named pipe
    # (whose read would block) or a device is refused before it is opened
    input_path(path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise RecastError(f"file is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?", path=str(path))
    gzipped = path.name.endswith(".json.gz")
    if gzipped:
        text = _read_gzip_text(path)
    else:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            # a file saved as UTF-16 or Latin-1 by an editor: say so, rather than a traceback
            raise RecastError(
                f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8", path=str(path)
            ) from None
    if path.suffix == ".json" or gzipped:
        return loads_json(text, path)
    try:
        return _safe_load(text)
    except _AliasBomb as exc:
        raise RecastError(f"invalid YAML: {exc}", path=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecastError(f"invalid YAML{where}: {problem}", path=str(path)) from None


def _read_gzip_text(path: Path) -> str:
    """Decompress a ``.json.gz`` file, refusing more than MAX_CONFIG_BYTES of content (a gzip bomb)."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise RecastError(f"not a readable gzip file ({exc})", path=str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise RecastError(
            f"decompresses to more than {MAX_CONFIG_BYTES} bytes; is this the right file?", path=str(path)
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecastError(f"content is not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path)) from None


#: Schemas whose documents have their own finiteness checks with messages per bin (patching.check_yields).
_OWN_FINITE_CHECKS = frozenset({"yields"})


def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a schema pattern with JSON Schema's (ECMA 262) meaning of a final ``$``.

    In ECMA 262 ``$`` matches only at the end of the text; in Python it also matches before a final
    newline, so ``"P0\\n"`` would pass ``^[A-Za-z0-9_]*$`` and become a file name with a newline.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return _compiled(pattern)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema_node: dict[str, Any]) -> Iterator[Any]:
    if isinstance(instance, str) and not _ecma_pattern(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_DRAFT_TYPE = jsonschema.Draft202012Validator.VALIDATORS["type"]


def _float_range(instance: Any) -> Iterator[Any]:
    """Refuse an integer no float can hold: the code computes in floats, and ``float(10**400)`` raises."""
    if isinstance(instance, int) and not isinstance(instance, bool) and abs(instance) > sys.float_info.max:
        yield jsonschema.ValidationError(f"an integer of {len(str(abs(instance)))} digits is too large for a number")


def _plain_type(validator: Any, types: str | list[str], instance: Any, schema_node: dict[str, Any]) -> Iterator[Any]:
    kinds = [types] if isinstance(types, str) else list(types)
    if "number" in kinds or "integer" in kinds:
        yield from _float_range(instance)
    yield from _DRAFT_TYPE(validator, types, instance, schema_node)


def _finite_type(validator: Any, types: str | list[str], instance: Any, schema_node: dict[str, Any]) -> Iterator[Any]:
    # jsonschema lets NaN through every bound (NaN compares false) and infinity through every open one:
    # a number of the physics or of the optimiser is finite, except where the schema says
    # "x-allow-infinite" (histogram edges that run to infinity)
    kinds = [types] if isinstance(types, str) else list(types)
    if "number" in kinds or "integer" in kinds:
        huge = list(_float_range(instance))
        if huge:
            yield from huge
            return
    numeric = "number" in kinds or "integer" in kinds
    # infinities only where the schema allows them (open bin edges); NaN never
    if (
        isinstance(instance, float)
        and not math.isfinite(instance)
        and numeric
        and (math.isnan(instance) or not schema_node.get("x-allow-infinite"))
    ):
        yield jsonschema.ValidationError(f"{instance} is not a finite number")
        return
    yield from _DRAFT_TYPE(validator, types, instance, schema_node)


#: Draft 2020-12 with finite numbers and ECMA 262 patterns.
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"type": _finite_type, "pattern": _pattern})
_PlainValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"type": _plain_type, "pattern": _pattern}
)


@cache
def _validator(schema_name: str) -> Any:
    """One validator per schema: building one resolves its references again (a grid validates each point's yields)."""
    cls = _PlainValidator if schema_name in _OWN_FINITE_CHECKS else _Validator
    return cls(schema(schema_name))


def validate(document: Any, schema_name: str, path: Path | str) -> None:
    """Validate against a packaged schema; the error names the key and what is allowed.

    Numbers must be finite (NaN and infinity are refused, naming the field), except where the
    schema marks a field ``x-allow-infinite``; patterns are anchored as JSON Schema means them.

    Args:
        document: the parsed content.
        schema_name: which packaged schema to use.
        path: the file the document came from (for the message).
    """
    validator = _validator(schema_name)
    errors = sorted(validator.iter_errors(document), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        for check in _TEMPLATE_CHECKS.get(schema_name, ()):
            check(document, str(path))
        return
    err = jsonschema.exceptions.best_match(errors)
    raise RecastError(_explain(err), path=str(path), field=_key(err)) from None


def template_fields(template: str, allowed: Iterable[str], *, path: str, field: str) -> list[str]:
    """The ``{name}`` fields of a file-name or modifier template, refusing anything str.format would evaluate.

    ``str.format`` follows attribute and index access (``{m1.__class__}``, ``{m1[0]}``) and format
    specifications; a template of user text must only name values. Unknown names, unclosed braces
    and empty fields are refused too, naming the allowed ones.

    Args:
        template: the template text.
        allowed: the names it may use.
        path: the file it came from (for messages).
        field: its key (for messages).

    Returns:
        The field names, in order.
    """
    allowed = list(allowed)
    known = ", ".join(f"{{{a}}}" for a in allowed) or "none"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # "Single '}' encountered", "expected '}' before end of string"
        raise RecastError(
            f"{template!r} is not a valid template ({exc}); write fields as {{name}} and a literal "
            f"brace as {{{{ or }}}} (fields: {known})",
            path=path,
            field=field,
        ) from None
    names = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise RecastError(
                f"field {shown} of {template!r} is not a plain {{name}}; only plain fields are "
                f"replaced (no attributes, indices or formats); fields: {known}",
                path=path,
                field=field,
            )
        if name not in allowed:
            raise RecastError(f"field {{{name}}} of {template!r} is unknown; fields: {known}", path=path, field=field)
        names.append(name)
    return names


def _grid_templates(doc: Any, path: str) -> None:
    """The grid's file-name patterns use only its parameters, as plain fields."""
    if not isinstance(doc, dict):
        return
    parameters = list(doc.get("parameters") or {})
    if isinstance(doc.get("patch_directory"), dict) and "pattern" in doc["patch_directory"]:
        template_fields(doc["patch_directory"]["pattern"], parameters, path=path, field="patch_directory.pattern")
    if isinstance(doc.get("events"), dict) and "slha" in doc["events"]:
        template_fields(doc["events"]["slha"], parameters, path=path, field="events.slha")
    for i, point in enumerate(doc.get("points") or []):
        if isinstance(point, dict) and isinstance(point.get("slha"), str):
            template_fields(point["slha"], parameters, path=path, field=f"points[{i}].slha")


def _analysis_templates(doc: Any, path: str) -> None:
    """The MC-stat modifier name uses only {channel} and {sample}."""
    signal = doc.get("signal") if isinstance(doc, dict) else None
    if isinstance(signal, dict) and isinstance(signal.get("mcstat_modifier"), str):
        template_fields(signal["mcstat_modifier"], ["channel", "sample"], path=path, field="signal.mcstat_modifier")


#: Checks of templates a schema cannot express (which fields exist), run after the schema passed.
_TEMPLATE_CHECKS: dict[str, tuple[Callable[[Any, str], None], ...]] = {
    "signals": (_grid_templates,),
    "analysis": (_analysis_templates,),
}


def _key(err: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path]
    key = ".".join(parts).replace(".[", "[")
    return key or "(top level)"


def _explain(err: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into a short sentence saying what is allowed."""
    v, s = err.validator, err.schema if isinstance(err.schema, dict) else {}
    if v == "additionalProperties":
        allowed = sorted(s.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return f"unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
    if v == "required":
        return f"missing required key: {err.message.split(' is a required')[0]}"
    if v == "anyOf" and all(isinstance(o, dict) and list(o) == ["required"] for o in s.get("anyOf", [])):
        # {"anyOf": [{"required": ["grids"]}, {"required": ["adaptive"]}]}: one of several keys must be given
        keys = [repr(k) for o in s["anyOf"] for k in o["required"]]
        return f"missing required key: {' or '.join(keys)}"
    if (
        v == "type"
        and isinstance(err.instance, int)
        and not isinstance(err.instance, bool)
        and abs(err.instance) > sys.float_info.max
    ):
        return f"{err.message}; give a number within the range of floating-point numbers"
    if v == "type" and isinstance(err.instance, float) and not math.isfinite(err.instance):
        return f"{err.instance} is not allowed; give a finite number"
    if v == "type":
        # reprlib: the full repr of a large value would be built only to be cut to 60 characters
        return f"expected {s.get('type')}, got {type(err.instance).__name__} {reprlib.repr(err.instance):.60}"
    if v == "enum":
        return f"{err.instance!r} is not allowed; choose one of {', '.join(map(repr, s['enum']))}"
    if v == "const":
        return f"must be {s['const']!r}, got {err.instance!r}"
    if v == "maxLength" and isinstance(err.instance, str):
        return (
            f"{reprlib.repr(err.instance)} has {len(err.instance)} characters, at most {s['maxLength']} are "
            "allowed (it becomes a file name); shorten it"
        )
    if v == "pattern":
        return f"{err.instance!r} does not match the allowed form {s['pattern']}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minItems", "maxItems", "minProperties"):
        return f"{err.message}"
    if v == "not" and isinstance(s.get("not"), dict) and "const" in s["not"]:
        return f"{err.instance!r} is not allowed here"
    if v == "not" and isinstance(s.get("not"), dict) and "required" in s["not"]:
        return f"give only one of {' or '.join(map(repr, s['not']['required']))} and the other keys of its form"
    if v == "not":
        return "give only one of 'patch', 'yields' or 'manifest'"
    return err.message


def load_validated(path: Path, schema_name: str) -> dict[str, Any]:
    """Read a file and validate it, filling schema defaults at the top level.

    Args:
        path: YAML or JSON file.
        schema_name: packaged schema to validate against.
    """
    doc = read_document(path)
    if doc is None:
        raise RecastError("file is empty", path=str(path))
    validate(doc, schema_name, path)
    for key, sub in schema(schema_name).get("properties", {}).items():
        if key not in doc and "default" in sub:
            doc[key] = sub["default"]
    return doc


def inside(base: Path, relative: str, *, source: Path, field: str, kind: str = "file") -> Path:
    """Resolve a path given in a config file, refusing absolute paths, escapes and links that lead outside.

    A path that exists must also be of the right kind (a regular file by default: a folder, a
    named pipe or a device named where a file is expected is refused here, naming the key). A
    path that does not exist is returned: its reader says what is missing.

    Args:
        base: folder the path is relative to.
        relative: the path as written in the file.
        source: the file that contains it (for the message).
        field: the key that contains it (for the message).
        kind: ``"file"``, ``"dir"`` or ``"any"`` (see :func:`recastflow.core.io.input_path`).
    """
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise RecastError(
            f"path {relative!r} must be relative to {base} and must not contain '..'",
            path=str(source),
            field=field,
        )
    from recastflow.core.io import confined, input_path

    # the text stays inside, but a symbolic link on the way may not: resolve it (under the command line's policy)
    path = confined(base / rel, source=str(source), field=field)
    if os.path.exists(path):
        input_path(path, source=str(source), field=field, kind=kind)
    return path
