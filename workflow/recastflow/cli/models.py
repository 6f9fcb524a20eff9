"""Subcommands for the machine-learned models of a selection: inspection and validation vectors."""

from __future__ import annotations

import argparse
from pathlib import Path

from recastflow.cli._common import AddParser, Context, Subparsers, add_command, log, opt_path
from recastflow.core.errors import RecastError


def cmd_model_inspect(args: argparse.Namespace, ctx: Context | None) -> None:
    """Print an ONNX file's inputs, outputs, opset and producer, and whether its contract agrees."""
    from recastflow.select.mlmodels import inspect_lines, selection_models

    if args.onnx:
        print("\n".join(inspect_lines(Path(args.onnx))))
        return
    if not args.selection:
        raise RecastError("give --selection FILE (models with their contracts) or --onnx FILE")
    _, models = selection_models(args.selection, args.model)
    for model in models:
        print("\n".join(inspect_lines(model.path, model)) + "\n")


def _model_inspect_parser(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "model-inspect",
        cmd_model_inspect,
        "show an ONNX model's inputs, outputs, opset and producer, and whether its contract agrees",
    )
    p.add_argument("--selection", help="selection file declaring the models (their contracts)")
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--onnx", help="inspect this ONNX file on its own, without a contract")
    p.set_defaults(needs_config=False)


def cmd_model_vectors(args: argparse.Namespace, ctx: Context | None) -> None:
    """Write each model's validation vectors from events of a trusted run (once)."""
    from recastflow.select.mlmodels import write_vectors

    write_vectors(
        args.selection,
        args.model,
        args.events,
        max_rows=args.max_rows,
        atol=args.atol,
        overwrite=args.overwrite,
        log=log,
    )


def _model_vectors_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "model-vectors", cmd_model_vectors, "write models' validation vectors from events of a trusted run"
    )
    p.add_argument("--selection", required=True, help="selection file declaring the models (their contracts)")
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--events", nargs="+", required=True, help="reconstructed event files")
    p.add_argument("--max-rows", type=int, default=200, help="input rows per model (default: %(default)s)")
    p.add_argument("--atol", type=float, default=1e-6, help="tolerance on the score (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing vectors")
    p.set_defaults(needs_config=False)


def cmd_model_check(args: argparse.Namespace, ctx: Context | None) -> None:
    """Re-run every model on its validation vectors; fail if a score moved beyond tolerance."""
    from recastflow.checks.runner import CheckOutputs, check_models
    from recastflow.select.mlmodels import selection_models

    _, models = selection_models(args.selection, args.model)
    check_models(Path(args.selection), models, CheckOutputs(table=opt_path(args.output), json=opt_path(args.json)))


def _model_check_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "model-check", cmd_model_check, "check models against their validation vectors (largest deviation)"
    )
    p.add_argument("--selection", required=True, help="selection file declaring the models (their contracts)")
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--output", help="the check table (.txt; not written if not given)")
    p.add_argument("--json", help="the check as JSON (not written if not given)")
    p.set_defaults(needs_config=False)


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {
    "model-inspect": _model_inspect_parser,
    "model-vectors": _model_vectors_parser,
    "model-check": _model_check_parser,
}
