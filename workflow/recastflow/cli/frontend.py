"""Subcommands of the front end, events to yields: generate or hand off, emulate, select, reweight."""

from __future__ import annotations

import argparse
from pathlib import Path

from recastflow.cli._common import GRID_HELP, POINT_HELP, AddParser, Context, Subparsers, add_command, log, paths
from recastflow.core.errors import RecastError


def cmd_generate(args: argparse.Namespace, ctx: Context) -> None:
    """Generate one chunk of a point's events with Pythia 8."""
    from recastflow.generate.pythia import generate_point

    grid, _ = ctx.grid(args.grid)
    generate_point(grid, args.point, args.chunk, args.output, log=log)


def _generate_parser(sub: Subparsers) -> None:
    p = add_command(sub, "generate", cmd_generate, "generate one chunk of a point's events with Pythia 8")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--chunk", type=int, default=0, help="chunk index (default: %(default)s)")
    p.add_argument("--output", required=True, help="event file (.parquet)")


def cmd_handoff(args: argparse.Namespace, ctx: Context) -> None:
    """Validate events made elsewhere (LHE, HepMC3, Delphes ROOT) and convert them."""
    from recastflow.generate.handoff import handoff, handoff_point

    if args.manifest:  # a file on its own, outside any grid: check and convert it
        header = handoff(Path(args.manifest), Path(args.output), point=args.point, seed=args.seed, progress=True)
        log(f"{header['n_events']} events from {args.manifest} ({header['format']}) -> {args.output}")
        return
    if not (args.grid and args.point):
        raise RecastError("give --grid and --point (a grid point with a 'manifest'), or --manifest FILE")
    grid, _ = ctx.grid(args.grid)
    handoff_point(grid, args.point, args.output, log=log)


def _handoff_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "handoff", cmd_handoff, "validate and convert a point's events made elsewhere (LHE, HepMC3, Delphes)"
    )
    p.add_argument("--grid", help=GRID_HELP + " (with --point)")
    p.add_argument("--point", help=POINT_HELP + " (a point with a 'manifest')")
    p.add_argument("--manifest", help="convert this manifest's file on its own (no grid needed)")
    p.add_argument("--seed", type=int, default=1, help="shower seed with --manifest (default: %(default)s)")
    p.add_argument("--output", required=True, help="event file (.parquet)")


def cmd_emulate(args: argparse.Namespace, ctx: Context) -> None:
    """Detector emulation of one chunk: jets, leptons, photons, MET, b-tagging."""
    from recastflow.emulate.emulation import emulate_point

    grid, _ = ctx.grid(args.grid)
    emulate_point(grid, args.point, args.chunk, Path(args.input), args.output, log=log)


def _emulate_parser(sub: Subparsers) -> None:
    p = add_command(sub, "emulate", cmd_emulate, "detector emulation of one chunk of events")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--chunk", type=int, default=0, help="chunk index, for the seed (default: %(default)s)")
    p.add_argument("--input", required=True, help="particle-level event file")
    p.add_argument("--output", required=True, help="reconstructed event file (.parquet)")


def cmd_select(args: argparse.Namespace, ctx: Context) -> None:
    """Apply the bundle's selection: cutflows, yields per region and bin, selected events."""
    from recastflow.select.selection import select_point

    grid, analysis = ctx.grid(args.grid)
    select_point(
        grid,
        analysis,
        args.point,
        paths(args.inputs),
        yields_out=args.yields,
        cutflow_out=args.cutflow,
        selected_out=args.selected,
        log=log,
    )


def _select_parser(sub: Subparsers) -> None:
    p = add_command(sub, "select", cmd_select, "event selection: cutflows, yields per region and bin, selected events")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--inputs", nargs="+", required=True, help="reconstructed event files (all chunks of the point)")
    p.add_argument("--yields", required=True, help="yields per region and bin (.json)")
    p.add_argument("--cutflow", required=True, help="cutflows per region (.json)")
    p.add_argument("--selected", required=True, help="selected events with their truth record (.parquet)")


def cmd_reweight(args: argparse.Namespace, ctx: Context) -> None:
    """Reweight a source point's selected events to a target point: yields and diagnostics."""
    from recastflow.reweight.reweighting import reweight_point

    grid, _ = ctx.grid(args.grid)
    reweight_point(
        grid,
        args.point,
        args.input,
        signals_dir=ctx.signals_dir,
        yields_out=Path(args.yields),
        diagnostics_out=Path(args.diagnostics),
        log=log,
    )


def _reweight_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "reweight", cmd_reweight, "reweight a source point's selected events to a target point's hypothesis"
    )
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help="the target point (it has a 'reweight' section)")
    p.add_argument("--input", required=True, help="selected.parquet of the source point")
    p.add_argument("--yields", required=True, help="the reweighted yields (.json)")
    p.add_argument("--diagnostics", required=True, help="the effective-sample-size diagnostics (.json)")


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {
    "generate": _generate_parser,
    "handoff": _handoff_parser,
    "emulate": _emulate_parser,
    "select": _select_parser,
    "reweight": _reweight_parser,
}
