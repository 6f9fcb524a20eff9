"""Subcommands that check: the run before it starts, and results against references and closures."""

from __future__ import annotations

import argparse
from pathlib import Path

from recastflow.cli._common import GRID_HELP, AddParser, Context, Subparsers, add_command, log, opt_path, paths


def cmd_validate(args: argparse.Namespace, ctx: Context) -> None:
    """Validate the config, every grid, every bundle and the workspaces' sha256."""
    from recastflow.checks.preflight import check_run

    config = ctx.require_config("validate")
    config_file = str(ctx.settings.source or args.config)  # None when the default file was read
    check_run(config, ctx.grid, config_file=config_file, log=log)
    print("configuration valid")


def _validate_parser(sub: Subparsers) -> None:
    add_command(sub, "validate", cmd_validate, "validate the configuration, grids, bundles and workspace checksums")


def cmd_check_yields(args: argparse.Namespace, ctx: Context) -> None:
    """Compare a grid's front-end yields with the published signal patches of its bundle."""
    from recastflow.checks.runner import CheckOutputs, check_yields

    grid, analysis = ctx.grid(args.grid)
    check_yields(
        grid,
        analysis,
        paths(args.inputs),
        CheckOutputs(
            table=Path(args.output),
            json=opt_path(args.json),
            plot=opt_path(args.plot),
            plot_pdf=opt_path(args.plot_pdf),
            summary=opt_path(args.summary_plot),
            summary_pdf=opt_path(args.summary_plot_pdf),
        ),
        fail=not args.record_failure,
    )


def _check_yields_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "check-yields", cmd_check_yields, "compare a grid's yields with the bundle's published signal patches"
    )
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--inputs", nargs="+", required=True, help="yields.json files of the grid's points")
    p.add_argument("--output", required=True, help="the comparison table (.txt)")
    p.add_argument("--json", help="the comparison as JSON (not written if not given)")
    p.add_argument("--plot", help="the per-bin plot (.png; not drawn if not given)")
    p.add_argument("--plot-pdf", help="the per-bin plot as PDF (default: --plot with the suffix .pdf)")
    p.add_argument(
        "--summary-plot",
        help="the ratio of the totals over the grid's plane and the distribution of deviations (.png; not drawn if not given)",
    )
    p.add_argument("--summary-plot-pdf", help="the summary plot as PDF (default: --summary-plot with the suffix .pdf)")
    p.add_argument(
        "--record-failure",
        action="store_true",
        help="exit 0 when points fail (the outputs say FAIL); 'check-yields-verdict' fails later (workflow)",
    )


def cmd_check_yields_verdict(args: argparse.Namespace, ctx: Context) -> None:
    """Fail if a written yield check has a gated point outside tolerance; else write a marker."""
    from recastflow.checks.runner import yields_verdict

    yields_verdict(Path(args.check), Path(args.output))


def _check_yields_verdict_parser(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "check-yields-verdict",
        cmd_check_yields_verdict,
        "fail if a written yield check (its .json) has a gated point outside tolerance, else write a marker",
    )
    p.add_argument("--check", required=True, help="the JSON of 'recastflow check-yields'")
    p.add_argument("--output", required=True, help="the marker written when the check passed")


def cmd_check_reweight(args: argparse.Namespace, ctx: Context) -> None:
    """Reweighting closure: reweighted yields against yields generated directly at the same hypothesis."""
    from recastflow.checks.runner import CheckOutputs, check_closure

    grid, _ = ctx.grid(args.grid)
    check_closure(
        grid, lambda g, p: ctx.grid(g)[0].point(p), CheckOutputs(table=Path(args.output), json=opt_path(args.json))
    )


def _check_reweight_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "check-reweight", cmd_check_reweight, "reweighting closure: reweighted against directly generated yields"
    )
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--output", required=True, help="the closure table (.txt)")
    p.add_argument("--json", help="the closure as JSON (not written if not given)")


def cmd_check(args: argparse.Namespace, ctx: Context) -> None:
    """Compare results with an analysis bundle's reference values."""
    from recastflow.analyses.bundle import load_analysis
    from recastflow.checks.runner import CheckOutputs, check_references

    analysis = load_analysis(args.analysis, ctx.analyses_dir)
    grids = args.grids if args.grids is not None else ctx.require_config("check without --grids")["grids"]
    check_references(
        analysis, paths(args.results), list(grids), CheckOutputs(table=Path(args.output), json=opt_path(args.json))
    )


def _check_parser(sub: Subparsers) -> None:
    p = add_command(sub, "check", cmd_check, "compare results with an analysis bundle's reference values")
    p.add_argument("--analysis", required=True, help="analysis bundle id (a folder of --analyses-dir)")
    p.add_argument("--results", nargs="+", required=True, help="limits.json files of the grids")
    p.add_argument(
        "--grids",
        nargs="+",
        metavar="GRID",
        help="the run's grids: references of other grids are not checked (default: the config's grids)",
    )
    p.add_argument("--output", required=True, help="the check table (.txt)")
    p.add_argument("--json", help="the check as JSON (not written if not given)")


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {
    "validate": _validate_parser,
    "check-yields": _check_yields_parser,
    "check-yields-verdict": _check_yields_verdict_parser,
    "check-reweight": _check_reweight_parser,
    "check": _check_parser,
}
