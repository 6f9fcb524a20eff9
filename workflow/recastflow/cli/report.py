"""Subcommands that summarise a run: the verdict per model point and the HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from recastflow.cli._common import AddParser, Context, Subparsers, add_command, log, paths


def cmd_report(args: argparse.Namespace, ctx: Context) -> None:
    """Write the HTML report: exclusion plots, limit tables, checks, fit plots."""
    from recastflow.report.assemble import build_report

    build_report(
        tables=paths(args.tables),
        exclusion_plots=paths(args.exclusion_plots),
        checks=paths(args.checks),
        yield_checks=paths(args.yield_checks),
        yield_plots=paths(args.yield_plots),
        yield_summaries=paths(args.yield_summaries),
        cutflows=paths(args.cutflows),
        reweight=paths(args.reweight),
        reweight_checks=paths(args.reweight_checks),
        fitplot_dirs=paths(args.fitplots),
        catalogue=Path(args.catalogue) if args.catalogue else None,
        output=Path(args.output),
    )
    log(f"report -> {args.output}")


def _report_parser(sub: Subparsers) -> None:
    p = add_command(sub, "report", cmd_report, "write the HTML report")
    p.add_argument("--tables", nargs="*", default=[], help="limits.json files of the grids")
    p.add_argument(
        "--exclusion-plots",
        nargs="*",
        default=[],
        help="exclusion plots (.png), one per table in the same order (or none)",
    )
    p.add_argument("--checks", nargs="*", default=[], help="reference checks (.json of 'recastflow check')")
    p.add_argument("--fitplots", nargs="*", default=[], help="folders of fit plots ('recastflow fitplots')")
    p.add_argument("--yield-checks", nargs="*", default=[], help="yield checks (.json of 'recastflow check-yields')")
    p.add_argument(
        "--yield-plots",
        nargs="*",
        default=[],
        help="yield-check plots (.png), one per yield check in the same order (or none)",
    )
    p.add_argument(
        "--yield-summaries",
        nargs="*",
        default=[],
        help="yield-check summary plots (.png: ratio over the plane, deviations), one per yield check (or none)",
    )
    p.add_argument("--cutflows", nargs="*", default=[], help="cutflow.json files of front-end points")
    p.add_argument("--reweight", nargs="*", default=[], help="diagnostics.json files of reweighted points")
    p.add_argument(
        "--reweight-checks", nargs="*", default=[], help="reweighting closures (.json of 'recastflow check-reweight')"
    )
    p.add_argument("--catalogue", help="the analysis catalogue (.json of 'recastflow catalogue --json')")
    p.add_argument("--output", required=True, help="the HTML page")


def cmd_verdicts(args: argparse.Namespace, ctx: Context) -> None:
    """The verdict per model point over every analysis of the run (the most sensitive decides)."""
    from recastflow.run.summary import grid_caveats, write_verdicts

    tables = paths(args.tables)
    items = write_verdicts(
        tables,
        json_path=Path(args.json),
        text_path=Path(args.text),
        csv_path=Path(args.csv),
        cl=ctx.settings.pick(args.cl, "cl"),
        caveats=grid_caveats(tables, ctx.signals_dir, ctx.analyses_dir),
    )
    log(f"{len(items)} point(s): {sum(v.verdict == 'excluded' for v in items)} excluded")


def _verdicts_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "verdicts", cmd_verdicts, "the verdict per model point over the run's analyses (a workflow job)"
    )
    p.add_argument("--tables", nargs="+", required=True, help="the run's limits.json tables")
    p.add_argument("--cl", type=float, help="confidence level for rows without one (default: the run's)")
    p.add_argument("--json", required=True, help="the verdicts as records (.json)")
    p.add_argument("--text", required=True, help="the verdict table (.txt)")
    p.add_argument("--csv", required=True, help="one row per point and analysis (.csv)")


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {
    "report": _report_parser,
    "verdicts": _verdicts_parser,
}
