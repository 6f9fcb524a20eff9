"""Reading YAML/JSON input safely and validating it against the package's schemas."""

from __future__ import annotations

import json
import reprlib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from recastflow.errors import RecastError

#: Input files larger than this are refused before parsing (a typo'd path to a data file, or a YAML bomb).
MAX_CONFIG_BYTES = 20_000_000
#: Nodes that YAML aliases may add to a document when expanded. A few bytes of nested aliases
#: ("billion laughs") otherwise expand to 10^9 nodes, which schema validation then walks for hours.
MAX_ALIAS_NODES = 100_000


class _AliasBomb(yaml.YAMLError):
    """Aliases that expand too far, or that refer to themselves."""


class _SafeLoader(yaml.SafeLoader):
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
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        if finished:
            ancestors.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] - len(sizes) > MAX_ALIAS_NODES:
                raise _AliasBomb(f"its aliases expand to more than {MAX_ALIAS_NODES} extra values (a YAML alias "
                                 "bomb?); write the repeated parts out")
            continue
        if id(node) in sizes:
            continue
        ancestors.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in ancestors:
                raise _AliasBomb(f"the value at line {child.start_mark.line + 1} contains an alias of itself "
                                 "(a recursive alias); write the value out")
            if id(child) not in sizes:
                stack.append((child, False))


@lru_cache(maxsize=None)
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
    if not path.is_file():
        raise RecastError("file not found", path=str(path))
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise RecastError(f"file is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?", path=str(path))
    gzipped = path.name.endswith(".json.gz")
    if gzipped:
        text = _read_gzip_text(path)
    else:
        text = path.read_text(encoding="utf-8", errors="strict")
    try:
        if path.suffix == ".json" or gzipped:
            return json.loads(text)
        return _safe_load(text)
    except json.JSONDecodeError as exc:
        raise RecastError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=str(path)) from None
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
        raise RecastError(f"decompresses to more than {MAX_CONFIG_BYTES} bytes; is this the right file?", path=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecastError(f"content is not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path)) from None


def validate(document: Any, schema_name: str, path: Path | str) -> None:
    """Validate against a packaged schema; the error names the key and what is allowed.

    Args:
        document: the parsed content.
        schema_name: which packaged schema to use.
        path: the file the document came from (for the message).
    """
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    errors = sorted(validator.iter_errors(document), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    raise RecastError(_explain(err), path=str(path), field=_key(err)) from None


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
    if v == "type":
        # reprlib: the full repr of a large value would be built only to be cut to 60 characters
        return f"expected {s.get('type')}, got {type(err.instance).__name__} {reprlib.repr(err.instance):.60}"
    if v == "enum":
        return f"{err.instance!r} is not allowed; choose one of {', '.join(map(repr, s['enum']))}"
    if v == "const":
        return f"must be {s['const']!r}, got {err.instance!r}"
    if v == "pattern":
        return f"{err.instance!r} does not match the allowed form {s['pattern']}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minItems", "maxItems", "minProperties"):
        return f"{err.message}"
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


def inside(base: Path, relative: str, *, source: Path, field: str) -> Path:
    """Resolve a path given in a config file, refusing absolute paths and escapes.

    Args:
        base: folder the path is relative to.
        relative: the path as written in the file.
        source: the file that contains it (for the message).
        field: the key that contains it (for the message).
    """
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise RecastError(
            f"path {relative!r} must be relative to {base} and must not contain '..'",
            path=str(source),
            field=field,
        )
    return base / rel
