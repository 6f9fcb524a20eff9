"""Subcommands that preserve a run: pack it into one archive, and extract and verify an archive."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recastflow.cli._common import DEFAULT_CONFIG, AddParser, Context, Subparsers, add_command, log
from recastflow.core.errors import RecastError


def cmd_archive(args: argparse.Namespace, ctx: Context) -> None:
    """Pack workflow, inputs, results, MANIFEST.json and RO-Crate metadata into one .tar.gz."""
    from recastflow.preserve.archive import create_archive

    if args.run_config is not None:  # a workflow job: the file is packed as it is, the settings come as options
        if not args.grids:
            raise RecastError(
                "give the run's grids with --grids when --run-config names the file to pack", field="--grids"
            )
        config: dict[str, Any] = {
            "grids": list(args.grids),
            "analyses_dir": str(ctx.analyses_dir),
            "signals_dir": str(ctx.signals_dir),
        }
        config_path = Path(args.run_config)
    else:
        config, config_path = ctx.require_config("archive without --run-config"), Path(args.config or DEFAULT_CONFIG)
    summary = create_archive(Path(args.output), config=config, config_path=config_path, results=Path(args.results))
    c = summary.counts
    log(
        f"archive: {c['workflow']} workflow, {c['inputs']} input and {c['results']} result files"
        f" (commit {summary.commit or 'none'}) -> {args.output}"
    )


def _archive_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "archive", cmd_archive, "pack the workflow, inputs, results and their manifest into one .tar.gz"
    )
    p.add_argument("--output", required=True, help="the archive, e.g. archive/recastflow-run.tar.gz")
    p.add_argument("--results", default="results", help="results folder of the finished run (default: %(default)s)")
    p.add_argument(
        "--run-config", metavar="FILE", help="the run configuration file to pack as it is (workflow jobs; with --grids)"
    )
    p.add_argument("--grids", nargs="+", metavar="GRID", help="the run's grids, with --run-config")


def cmd_unarchive(args: argparse.Namespace, ctx: Context | None) -> None:
    """Extract an archive safely into a new or empty folder and verify every file's sha256."""
    from recastflow.preserve.archive import extract_archive, manifest_files

    manifest = extract_archive(Path(args.archive), Path(args.into))
    log(f"unarchive: {len(manifest_files(manifest))} files verified against MANIFEST.json -> {args.into}")


def _unarchive_parser(sub: Subparsers) -> None:
    p = add_command(sub, "unarchive", cmd_unarchive, "extract an archive safely into an empty folder and verify it")
    p.add_argument("archive", help="the archive (.tar.gz) to extract")
    p.add_argument("--into", required=True, help="new or empty folder to extract into")
    p.set_defaults(needs_config=False)  # read by main() once it skips the config for such commands


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {
    "archive": _archive_parser,
    "unarchive": _unarchive_parser,
}
