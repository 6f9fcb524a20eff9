"""Subcommands of the statistical back end: a grid's PatchSet, CLs and limits, tables and fit plots."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from recastflow.cli._common import (
    GRID_HELP,
    POINT_HELP,
    AddParser,
    Context,
    Subparsers,
    add_command,
    log,
    opt_path,
    paths,
)
from recastflow.core.errors import RecastError


def cmd_patch(args: argparse.Namespace, ctx: Context) -> None:
    """Build the grid's PatchSet from published patches, a patchset or yields."""
    from recastflow.core.io import write_json_atomic
    from recastflow.stats.patching import build_patchset

    grid, analysis = ctx.grid(args.grid)
    bkg = analysis.workspace(grid.workspace, source=grid.path).load()
    patchset = build_patchset(grid, analysis, bkg)
    write_json_atomic(Path(args.output), patchset)
    log(f"{grid.name}: PatchSet with {len(patchset['patches'])} points validated and applied -> {args.output}")


def _patch_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "patch", cmd_patch, "build a grid's signal PatchSet (from yields, published patches or a patchset)"
    )
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--output", required=True, help="the PatchSet (.json)")


def cmd_extract_yields(args: argparse.Namespace, ctx: Context) -> None:
    """Write the signal yields contained in a point's published patch."""
    from recastflow.core.io import write_json_atomic
    from recastflow.stats.patching import published_yields

    grid, analysis = ctx.grid(args.grid)
    doc = published_yields(grid, analysis, args.point)
    write_json_atomic(Path(args.output), doc)
    log(f"{doc['point']}: yields of {len(doc['regions'])} regions -> {args.output}")


def _extract_yields_parser(sub: Subparsers) -> None:
    p = add_command(sub, "extract-yields", cmd_extract_yields, "write the signal yields of a point's published patch")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--output", required=True, help="the yields file (.json)")


def cmd_limits(args: argparse.Namespace, ctx: Context) -> None:
    """CLs (observed, expected band) and optional upper limits for one point or a batch of points."""
    from recastflow.stats.points import LimitSettings, compute_limits

    grid, analysis = ctx.grid(args.grid)
    names = [args.point] if args.point else list(dict.fromkeys(args.points))
    _check_limits_options(args)
    given = (("maxiter", args.fit_maxiter), ("tolerance", args.fit_tolerance), ("timeout_s", args.fit_timeout))
    # the fit options come from one place: any of them given replaces the whole 'fit' of the configuration
    if ctx.config is not None and all(v is None for _, v in given):
        fit = dict(ctx.settings.pick(None, "fit"))
    else:
        fit = {k: v for k, v in given if v is not None}
    settings = LimitSettings(
        cl=ctx.settings.pick(args.cl, "cl"),
        method=ctx.settings.pick(args.method, "limits", "method"),
        fallback=ctx.settings.pick(args.fallback, "limits", "fallback"),
        verify=ctx.settings.pick(args.verify, "limits", "verify"),
        fit_options=fit,
    )
    # the caller says which points get upper limits (the workflow passes its list); nothing is inferred here
    wanted = set(names) if args.upper_limit else set(args.upper_limit_points or [])
    compute_limits(
        grid,
        analysis,
        names,
        patchset=Path(args.patchset),
        output=Path(args.output),
        single=args.point is not None,
        upper_limit_points=wanted,
        settings=settings,
        diagnostics=paths(args.diagnostics),
        log=log,
    )


def _check_limits_options(args: argparse.Namespace) -> None:
    """Refuse the numbers of the limits options the schema would refuse in the run configuration.

    A NaN tolerance once made a fit run for hours, and a CL of 1.5 gave a table of nothing excluded:
    the options get the same bounds as ``cl`` and ``fit`` in config.schema.json, in one line each.

    Args:
        args: the parsed options of ``recastflow limits``.

    Raises:
        RecastError: naming the first option out of its bounds.
    """
    checks = (
        ("--cl", args.cl, lambda v: 0.5 < v < 1, "a number between 0.5 and 1, e.g. 0.95"),
        ("--fit-tolerance", args.fit_tolerance, lambda v: 0 < v <= 1, "a number in (0, 1], e.g. 1e-6"),
        ("--fit-maxiter", args.fit_maxiter, lambda v: 1 <= v <= 1_000_000, "an integer from 1 to 1000000"),
        ("--fit-timeout", args.fit_timeout, lambda v: 0 < v <= 604_800, "seconds, more than 0 and at most a week"),
    )
    for option, value, ok, want in checks:
        # NaN fails every comparison, so it is refused with the rest
        if value is not None and not (math.isfinite(value) and ok(value)):
            raise RecastError(f"got {value!r}; give {want}", field=option)


def _limits_parser(sub: Subparsers) -> None:
    p = add_command(
        sub, "limits", cmd_limits, "CLs with expected band (and optionally upper limits) for one point or a batch"
    )
    p.add_argument("--grid", required=True, help=GRID_HELP)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--point", help="one point: the output is its record")
    which.add_argument("--points", nargs="+", help="a batch: the output lists their records")
    p.add_argument("--patchset", required=True, help="the grid's PatchSet (from 'recastflow patch')")
    p.add_argument("--output", required=True, help="the point's record or the batch's records (.json)")
    ul = p.add_mutually_exclusive_group()
    ul.add_argument("--upper-limit", action="store_true", help="also compute upper limits for every point given")
    ul.add_argument(
        "--upper-limit-points",
        nargs="*",
        metavar="POINT",
        help="compute upper limits for these points only (default: none)",
    )
    p.add_argument(
        "--diagnostics",
        nargs="*",
        metavar="FILE",
        help="reweighting diagnostics (.json) of reweighted points: a flagged reweighting flags the point",
    )
    p.add_argument("--cl", type=float, help="confidence level (default: the config's cl, else 0.95)")
    p.add_argument(
        "--method",
        choices=["fast", "exact"],
        help="fast: one compiled likelihood for the batch; exact: pyhf's own fits (default: the config's "
        "limits.method, else fast)",
    )
    p.add_argument(
        "--fallback",
        choices=["exact-converged", "none"],
        help="what a point gets when the fast method cannot reproduce its likelihood (default: the "
        "config's limits.fallback, else exact-converged)",
    )
    p.add_argument(
        "--verify",
        choices=["near", "all"],
        help="which points get verification fits (default: the config's limits.verify, else near)",
    )
    p.add_argument(
        "--fit-maxiter",
        type=int,
        metavar="N",
        help="iteration limit of each fit (default: the config's fit.maxiter, else the minimiser's)",
    )
    p.add_argument(
        "--fit-tolerance",
        type=float,
        metavar="TOL",
        help="convergence tolerance of the minimiser (default: the config's fit.tolerance, else the method's)",
    )
    p.add_argument(
        "--fit-timeout",
        type=float,
        metavar="SECONDS",
        help="wall-clock bound of each point's fits; past it the point is reported untrusted with the reason "
        "(default: the config's fit.timeout_s, else 1800)",
    )


def cmd_table(args: argparse.Namespace, ctx: Context) -> None:
    """Collect point results into JSON and CSV tables, the exclusion plot and (--hepdata) a HEPData submission.

    Where the grid's bundle declares official limits for the grid's model, ATLAS's contours are drawn over
    the plot and our observed contour is compared with theirs (log line and ``official_comparison`` in the JSON).
    """
    from recastflow.stats.points import write_table

    grid, analysis = ctx.grid(args.grid)
    write_table(
        grid,
        analysis,
        paths(args.inputs),
        cl=ctx.settings.pick(args.cl, "cl"),
        json_out=Path(args.json),
        csv_out=Path(args.csv),
        plot=opt_path(args.plot),
        plot_pdf=opt_path(args.plot_pdf),
        log=log,
        hepdata=(
            dict(zip(("submission", "limits", "contour_obs", "contour_exp"), paths(args.hepdata), strict=True))
            if args.hepdata
            else None
        ),
    )


def _table_parser(sub: Subparsers) -> None:
    p = add_command(sub, "table", cmd_table, "collect a grid's point results into tables and the exclusion plot")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--inputs", nargs="+", required=True, help="batch or point records of 'recastflow limits'")
    p.add_argument("--json", required=True, help="the table as JSON (limits.json)")
    p.add_argument("--csv", required=True, help="the table as CSV (limits.csv)")
    p.add_argument("--plot", help="the exclusion plot (.png; needed when the grid declares a 'plot')")
    p.add_argument("--plot-pdf", help="the exclusion plot as PDF (default: --plot with the suffix .pdf)")
    p.add_argument("--cl", type=float, help="confidence level of the contours (default: the config's cl, else 0.95)")
    p.add_argument(
        "--hepdata",
        nargs=4,
        metavar=("SUBMISSION", "LIMITS", "CONTOUR_OBS", "CONTOUR_EXP"),
        help="write a HEPData submission: submission.yaml and its data files (limits table, observed and "
        "expected contour), all in one folder",
    )


def cmd_fitplots(args: argparse.Namespace, ctx: Context) -> None:
    """cabinetry pre-/post-fit data/MC plots and pulls for one point."""
    from recastflow.report.plots import fit_plots
    from recastflow.stats.patching import point_workspace

    grid, analysis = ctx.grid(args.grid)
    spec = point_workspace(grid, analysis, args.point, args.patchset)
    files = fit_plots(spec, Path(args.outdir), label=f"{grid.name}/{args.point}")
    log(f"{grid.name}/{args.point}: {len(files)} fit plots -> {args.outdir}")


def _fitplots_parser(sub: Subparsers) -> None:
    p = add_command(sub, "fitplots", cmd_fitplots, "cabinetry pre-/post-fit plots and pulls for one point")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--patchset", required=True, help="the grid's PatchSet (from 'recastflow patch')")
    p.add_argument("--outdir", required=True, help="folder for the plots (one PNG per channel and the pulls)")


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {
    "patch": _patch_parser,
    "extract-yields": _extract_yields_parser,
    "limits": _limits_parser,
    "table": _table_parser,
    "fitplots": _fitplots_parser,
}
