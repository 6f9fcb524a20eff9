"""Generate the reference pages from their sources: the JSON schemas and the command-line parser.

Run by the mkdocs hook (docs/hooks.py) before every build, so the reference cannot drift from the code:

    python docs/gen_reference.py     # writes docs/reference/{config,cli,api,catalogue}.md
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: schema file stem -> (anchor, what the file is); in the order a user meets them
SCHEMAS = {
    "config": "The run configuration (`config/*.yaml`)",
    "signals": "A signal grid (`config/signals/<name>.yaml`)",
    "analysis": "An analysis bundle (`config/analyses/<ID>/analysis.yaml`)",
    "selection": "An event selection (`config/analyses/<ID>/selection.yaml`)",
    "process": "A Pythia 8 process card (`config/processes/<name>.yaml`)",
    "detector": "A detector card (`config/detectors/<name>.yaml`)",
    "manifest": "A hand-off manifest (events made elsewhere)",
    "reweighting": "A reweighting specification (`config/reweighting/<name>.yaml`)",
    "yields": "A yields file (signal yields per region and bin)",
}


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"array of {_type(node['items'])}"
    if kind:
        return str(kind)
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " or ".join(_type(n) for n in node[key])
    if "$ref" in node:
        return f"see `{node['$ref'].rsplit('/', 1)[-1]}`"
    return "any"


def _limits(node: dict[str, Any]) -> str:
    parts = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            parts.append(f"{sign} {node[key]}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if "maxLength" in node:
        parts.append(f"at most {node['maxLength']} characters")
    return ", ".join(parts)


def _rows(node: dict[str, Any], prefix: str, required: set[str], out: list[str], defs: dict[str, Any]) -> None:
    for name, child in (node.get("properties") or {}).items():
        if "$ref" in child and child["$ref"].startswith("#/$defs/"):
            child = {**defs.get(child["$ref"].rsplit("/", 1)[-1], {}), **{k: v for k, v in child.items() if k != "$ref"}}
        path = f"{prefix}{name}"
        default = f"`{json.dumps(child['default'], ensure_ascii=False)}`" if "default" in child else (
            "required" if name in required else "")
        # brackets would be read as Markdown reference links (values[i][j])
        desc = " ".join(str(child.get("description", "")).split()).replace("|", "\\|")
        desc = desc.replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;")
        limits = _limits(child)
        out.append(f"| `{path}` | {_type(child).replace('|', chr(92) + '|')} | {default} | "
                   f"{desc}{' (' + limits + ')' if limits else ''} |")
        if child.get("type") == "object" or "properties" in child:
            _rows(child, path + ".", set(child.get("required", [])), out, defs)
        items = child.get("items")
        if isinstance(items, dict) and ("properties" in items):
            _rows(items, path + "[].", set(items.get("required", [])), out, defs)


def config_reference() -> str:
    """The configuration reference, one section per shipped schema."""
    lines = ["# Configuration reference", "",
             "Generated from the JSON schemas shipped in the package (`recastflow/schemas/`), which "
             "`recastflow validate` and every command check the files against. Besides the schema, every "
             "number must be finite, and files must be UTF-8 YAML (safe subset) or JSON without duplicate keys.", ""]
    folder = resources.files("recastflow").joinpath("schemas")
    for stem, title in SCHEMAS.items():
        schema = json.loads(folder.joinpath(f"{stem}.schema.json").read_text())
        lines += [f"## {title} {{#{stem}}}", ""]
        if schema.get("description"):
            lines += [" ".join(schema["description"].split()), ""]
        lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
        rows: list[str] = []
        _rows(schema, "", set(schema.get("required", [])), rows, schema.get("$defs", {}))
        lines += rows + [""]
    return "\n".join(lines)


def cli_reference() -> str:
    """The command-line reference, from the parser the `recastflow` command uses."""
    from recastflow.cli import build_parser

    parser = build_parser()
    lines = ["# Command-line reference", "",
             "Generated from `recastflow`'s argument parser. Every subcommand reads the run configuration "
             "(`--config`, default `config/config.yaml`), writes its outputs atomically and turns a user "
             "mistake into one line naming the file and the field, with a non-zero exit.", "",
             "```", parser.format_usage().strip(), "```", ""]
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subparsers:
        for name, sub in action.choices.items():
            lines += [f"## `recastflow {name}`", "", sub.description or "", "", "```", sub.format_usage().strip(),
                      "```", "", "| option | meaning |", "|---|---|"]
            for arg in sub._actions:
                if isinstance(arg, argparse._HelpAction):
                    continue
                flags = ", ".join(arg.option_strings) or arg.dest
                required = " (required)" if arg.required else ""
                helptext = (arg.help or "") % {"default": arg.default} if arg.help else ""
                lines.append(f"| `{flags}` | {helptext.replace('|', chr(92) + '|')}{required} |")
            lines.append("")
    return "\n".join(lines)


def api_reference() -> str:
    """The API reference: one mkdocstrings block per module of the package, found by walking it."""
    import pkgutil

    import recastflow

    lines = ["# API reference", "",
             "Generated from the docstrings. The command line is a thin layer over these functions; "
             "`recastflow.cli` maps each subcommand to one of them.", ""]
    for module in sorted(m.name for m in pkgutil.walk_packages(recastflow.__path__, "recastflow.")):
        if module.endswith("__main__"):
            continue
        lines += [f"## `{module}`", "", f"::: {module}", "    options:", "      show_root_heading: false",
                  "      show_source: false", "      heading_level: 3", ""]
    return "\n".join(lines)


def catalogue_reference() -> str:
    """The catalogue of the project's analysis bundles (``recastflow catalogue``), from ``config/``."""
    from recastflow.analyses.catalogue import catalogue, markdown

    config = HERE.parent / "config"
    return "\n".join([
        "# Analysis catalogue", "",
        "Every bundle of `config/analyses/`: its paper, what it supports, how it is validated and where its "
        "published material comes from (fetched into the cache, never committed). Generated from the bundles "
        "by `python docs/gen_reference.py`; `recastflow catalogue` prints the same table for any configuration. "
        "To add a bundle, see [adding an analysis](../tutorials/add-analysis.md).", "",
        markdown(catalogue(config / "analyses", config / "signals")),
    ])


def main() -> None:
    out = HERE / "reference"
    out.mkdir(exist_ok=True)
    pages = (("config.md", config_reference()), ("cli.md", cli_reference()), ("api.md", api_reference()),
             ("catalogue.md", catalogue_reference()))
    for name, text in pages:
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


if __name__ == "__main__":
    main()
