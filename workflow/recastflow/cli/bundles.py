"""Subcommands for analysis bundles: fetch their published files, list them, write a new one."""

from __future__ import annotations

import argparse
from pathlib import Path

from recastflow.cli._common import AddParser, Context, Subparsers, add_command, log
from recastflow.core.errors import RecastError


def cmd_fetch(args: argparse.Namespace, ctx: Context) -> None:
    """Fetch bundles' published files into the cache (mirror folders first, then the network), verified."""
    from recastflow.analyses.bundle import fetch_bundles

    fetch_bundles(args.analyses, ctx.analyses_dir, manifest=Path(args.manifest) if args.manifest else None, log=log)


def _fetch_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "fetch", cmd_fetch, "fetch analysis bundles' published files (sha256 and digest checked) into the cache"
    )
    p.add_argument("analyses", nargs="*", metavar="ANALYSIS-ID", help="bundles to fetch (default: all)")
    p.add_argument("--manifest", help="write what was fetched, and where it is, to this JSON file")


def cmd_catalogue(args: argparse.Namespace, ctx: Context) -> None:
    """List every bundle: paper, what it supports, its validation and its sources (Markdown)."""
    from recastflow.analyses.catalogue import catalogue, markdown, to_json
    from recastflow.core.io import write_json_atomic, write_text_atomic

    entries = catalogue(ctx.analyses_dir, ctx.signals_dir)
    text = markdown(entries)
    if args.json:
        write_json_atomic(Path(args.json), {"analyses": to_json(entries)})
    if args.output:
        write_text_atomic(Path(args.output), text)
    elif not args.json:
        print(text, end="")


def _catalogue_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "catalogue", cmd_catalogue, "list the analysis bundles: what each supports, its validation, its sources"
    )
    p.add_argument("--output", help="write the Markdown table here instead of printing it")
    p.add_argument("--json", help="also write the catalogue as JSON (the report's input) to this file")


def cmd_bundle_new(args: argparse.Namespace, ctx: Context) -> None:
    """Write an analysis bundle and a grid of the published points from a likelihood archive or record."""
    from recastflow.analyses import bundle_new as bn

    if (args.from_archive is None) == (args.from_record is None):
        raise RecastError("give one of --from-archive FILE and --from-record DOI", field="bundle new")
    if args.from_record and not (args.file and args.sha256):
        raise RecastError("--from-record needs --file (the archive's name) and --sha256", field="--from-record")
    fetched = bn.from_record(args.from_record, args.file, args.sha256) if args.from_record else None
    result = bn.new_bundle(
        Path(args.from_archive) if args.from_archive else None,
        args.id,
        Path(args.output_dir) if args.output_dir else ctx.analyses_dir / args.id,
        Path(args.signals_dir) if args.signals_dir else ctx.signals_dir,
        doi=args.doi or args.from_record,
        url=args.url,
        record=args.record,
        arxiv=args.arxiv,
        title=args.title,
        force=args.force,
        fetched=fetched,
    )
    print(bn.summary(result))


def _bundle_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "bundle", cmd_bundle_new, "bundle new: an analysis bundle and its published grid from a likelihood archive"
    )
    p.add_argument("action", choices=["new"], help="what to do with a bundle: new writes one")
    p.add_argument("--id", required=True, metavar="ANALYSIS-ID", help="the bundle id, e.g. ATLAS-SUSY-2018-31")
    p.add_argument("--from-archive", metavar="FILE", help="HEPData likelihood archive (.tar.gz, .zip) or folder")
    p.add_argument("--from-record", metavar="DOI", help="fetch the archive by its HEPData resource DOI (cache, mirror)")
    p.add_argument("--file", help="with --from-record: the archive's file name")
    p.add_argument("--sha256", help="with --from-record: the archive's sha256")
    p.add_argument("--output-dir", help="bundle folder (default: <analyses_dir>/<ANALYSIS-ID>)")
    p.add_argument("--signals-dir", help="folder for the grid files (default: the config's signals_dir)")
    p.add_argument("--doi", help="the archive's HEPData resource DOI (written to its source)")
    p.add_argument("--url", help="the archive's download URL (written to its source)")
    p.add_argument("--record", help="HEPData record, e.g. ins1748602")
    p.add_argument("--arxiv", help="the paper's arXiv number")
    p.add_argument("--title", help="the paper's title")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle and grids")


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {
    "fetch": _fetch_parser,
    "catalogue": _catalogue_parser,
    "bundle": _bundle_parser,
}
