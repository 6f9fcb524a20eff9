"""The recastflow command line: one subcommand per workflow stage.

Each subcommand parses its options and calls one function of the package. A workflow job gets
the settings it needs as options (``--analyses-dir``, ``--signals-dir``, ``--allowed-path`` and
the subcommand's own); interactive use may give ``--config FILE`` instead, which is read and
validated. Outputs are written atomically, and user mistakes become a one-line message with a
non-zero exit code.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recastflow import __version__
from recastflow.core.errors import RecastError
from recastflow.core.settings import RunSettings

#: The run configuration read when a command is given neither ``--config`` nor settings options.
DEFAULT_CONFIG = "config/config.yaml"


@dataclass(frozen=True)
class Context:
    """The run settings of one command and where its bundles and grids live."""

    settings: RunSettings

    @property
    def config(self) -> dict[str, Any] | None:
        """The validated run configuration, if the command was given one (interactive use)."""
        return self.settings.config

    @property
    def analyses_dir(self) -> Path:
        """Folder of the analysis bundles."""
        return self.settings.analyses_dir

    @property
    def signals_dir(self) -> Path:
        """Folder of the signal grids."""
        return self.settings.signals_dir

    def require_config(self, command: str) -> dict[str, Any]:
        """The run configuration, for the commands that work on a whole run (``validate``)."""
        if self.settings.config is None:
            raise RecastError(
                f"'{command}' works on a whole run configuration: give --config FILE instead of "
                "--analyses-dir/--signals-dir/--allowed-path"
            )
        return self.settings.config

    def grid(self, name: str) -> tuple[Any, Any]:
        """Load a grid and the bundle it belongs to."""
        from recastflow.analyses.bundle import load_analysis, load_grid

        grid = load_grid(name, self.signals_dir)
        analysis = load_analysis(grid.analysis, self.analyses_dir, named_in=grid.path, named_by="analysis")
        return grid, analysis


def _log(msg: str) -> None:
    print(f"[recastflow] {msg}", file=sys.stderr, flush=True)


def _paths(values: list[str] | None) -> list[Path]:
    return [Path(v) for v in values or []]


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value is not None else None


# -- subcommands ------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace, ctx: Context) -> None:
    """Validate the config, every grid, every bundle and the workspaces' sha256."""
    from recastflow.core.pointref import PointRef

    cfg = ctx.require_config("validate")
    seen = set()
    for name in cfg["grids"]:
        grid, analysis = ctx.grid(name)
        wsref = analysis.workspace(grid.workspace, source=grid.path)
        if (analysis.id, wsref.name) not in seen:
            wsref.load()
            seen.add((analysis.id, wsref.name))
        from recastflow.checks.preflight import check_front_end

        n_events = check_front_end(grid, analysis, with_pythia=True)
        extra = f" ({n_events} from events: cards, spectra and selection ok)" if n_events else ""
        _log(f"grid {name}: {len(grid.points)} points{extra}, {analysis.id} {grid.workspace} ok")
    grids = {name: ctx.grid(name)[0] for name in cfg["grids"]}
    if any(p.reweight is not None for g in grids.values() for p in g.points):
        from recastflow.reweight.reweighting import check_reweighted

        _log(f"{check_reweighted(grids)} reweighted points: sources, specs and parameters ok")
    config_file = str(ctx.settings.source or args.config)  # None when the default file was read
    for key in ("upper_limits", "fit_plots"):
        for entry in cfg.get(key, []):
            ref = PointRef.parse(entry, source=config_file, field=key)
            if ref.grid not in grids:
                raise RecastError(
                    f"{entry!r} names grid {ref.grid!r}, which is not in 'grids'", path=config_file, field=key
                )
            if not ref.whole_grid:
                grids[ref.grid].point(ref.point, source=config_file, field=key)
    print("configuration valid")


def cmd_patch(args: argparse.Namespace, ctx: Context) -> None:
    """Build the grid's PatchSet from published patches, a patchset or yields."""
    from recastflow.core.io import write_json_atomic
    from recastflow.stats.patching import build_patchset

    grid, analysis = ctx.grid(args.grid)
    bkg = analysis.workspace(grid.workspace, source=grid.path).load()
    patchset = build_patchset(grid, analysis, bkg)
    write_json_atomic(Path(args.output), patchset)
    _log(f"{grid.name}: PatchSet with {len(patchset['patches'])} points validated and applied -> {args.output}")


def cmd_extract_yields(args: argparse.Namespace, ctx: Context) -> None:
    """Write the signal yields contained in a point's published patch."""
    from recastflow.core.io import write_json_atomic
    from recastflow.stats.patching import point_patch, yields_from_patch

    grid, analysis = ctx.grid(args.grid)
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    bkg = wsref.load()
    point = grid.point(args.point)
    ops = point_patch(point, grid, bkg, wsref, analysis)
    doc = yields_from_patch(ops, bkg, wsref, analysis, point.patch or grid.patchset or grid.path)
    doc["point"] = point.name
    write_json_atomic(Path(args.output), doc)
    _log(f"{point.name}: yields of {len(doc['regions'])} regions -> {args.output}")


def cmd_limits(args: argparse.Namespace, ctx: Context) -> None:
    """CLs (observed, expected band) and optional upper limits for one point or a batch of points."""
    from recastflow.stats.points import LimitSettings, compute_limits

    grid, analysis = ctx.grid(args.grid)
    names = [args.point] if args.point else list(dict.fromkeys(args.points))
    _check_limits_options(args)
    given = (("maxiter", args.fit_maxiter), ("tolerance", args.fit_tolerance), ("timeout_s", args.fit_timeout))
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
        diagnostics=_paths(args.diagnostics),
        log=_log,
    )


def _check_limits_options(args: argparse.Namespace) -> None:
    """Refuse the numbers of the limits options the schema would refuse in the run configuration.

    A NaN tolerance once made a fit run for hours, and a CL of 1.5 gave a table of nothing excluded:
    the options get the same bounds as ``cl`` and ``fit`` in config.schema.json, in one line each.
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
        _paths(args.inputs),
        cl=ctx.settings.pick(args.cl, "cl"),
        json_out=Path(args.json),
        csv_out=Path(args.csv),
        plot=_opt_path(args.plot),
        plot_pdf=_opt_path(args.plot_pdf),
        log=_log,
        hepdata=(
            dict(zip(("submission", "limits", "contour_obs", "contour_exp"), _paths(args.hepdata), strict=True))
            if args.hepdata
            else None
        ),
    )


def cmd_verdicts(args: argparse.Namespace, ctx: Context) -> None:
    """The verdict per model point over every analysis of the run (the most sensitive decides)."""
    from recastflow.run.summary import grid_caveats, write_verdicts

    tables = _paths(args.tables)
    items = write_verdicts(
        tables,
        json_path=Path(args.json),
        text_path=Path(args.text),
        csv_path=Path(args.csv),
        cl=ctx.settings.pick(args.cl, "cl"),
        caveats=grid_caveats(tables, ctx.signals_dir, ctx.analyses_dir),
    )
    _log(f"{len(items)} point(s): {sum(v.verdict == 'excluded' for v in items)} excluded")


def cmd_run(args: argparse.Namespace, ctx: Context | None) -> None:
    """Run a model (SLHA spectrum) or a scan through the analyses and print the verdict per point."""
    from recastflow.core.io import set_path_policy
    from recastflow.run.api import execute, plan_model, plan_scan, print_plan
    from recastflow.run.summary import format_verdicts

    # the model may come from anywhere and the bundles are in the checkout: `run` copies what it uses into
    # its run folder, and the workflow's jobs are confined to that folder
    set_path_policy(None)

    if (args.slha is None) == (args.scan is None):
        raise RecastError("give an SLHA spectrum or --scan FILE (one of the two)", field="run")
    options = {
        "analyses": args.analyses,
        "process": args.process,
        "events": args.events,
        "chunks": args.chunks,
        "seed": args.seed,
        "upper_limits": args.upper_limits,
        "run_dir": args.run_dir,
    }
    plan = plan_model(args.slha, **options) if args.slha is not None else plan_scan(args.scan, **options)
    print_plan(plan)
    if args.plan_only:
        print(f"planned only; run it with: recastflow run ... --run-dir {plan.folder} (or snakemake on it)")
        return
    if args.dry_run:
        from recastflow.run.engine import run_workflow

        if run_workflow(plan.folder, cores=args.cores, profile=args.profile, verbose=True, extra=["--dry-run"]):
            raise RecastError("the dry run failed (Snakemake's message is above)", path=str(plan.folder))
        return
    result = execute(plan, cores=args.cores, profile=args.profile, verbose=args.verbose)
    print()
    print(format_verdicts(result.verdicts), end="")
    print(f"report: {result.report}")
    print(
        f"tables: {plan.folder / 'results' / 'summary'} (verdicts.csv, verdicts.json), limits per analysis in "
        f"{plan.folder / 'results' / 'limits'}"
    )
    if result.failure:
        raise RecastError(f"the verdicts above were made, but {result.failure}", path=str(plan.folder))


def cmd_fitplots(args: argparse.Namespace, ctx: Context) -> None:
    """cabinetry pre-/post-fit data/MC plots and pulls for one point."""
    from recastflow.core.io import read_json
    from recastflow.report.plots import fit_plots
    from recastflow.stats.patching import apply_patch, patch_for_point

    grid, analysis = ctx.grid(args.grid)
    point = grid.point(args.point)
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    bkg = wsref.load(validate=False)  # patched spec is validated
    ops = patch_for_point(read_json(Path(args.patchset)), bkg, point.name, args.patchset)
    spec = apply_patch(bkg, ops, args.patchset, analysis=analysis, wsref=wsref)
    files = fit_plots(spec, Path(args.outdir), label=f"{grid.name}/{point.name}")
    _log(f"{grid.name}/{point.name}: {len(files)} fit plots -> {args.outdir}")


def cmd_check(args: argparse.Namespace, ctx: Context) -> None:
    """Compare results with an analysis bundle's reference values."""
    from recastflow.analyses.bundle import load_analysis
    from recastflow.checks.runner import CheckOutputs, check_references

    analysis = load_analysis(args.analysis, ctx.analyses_dir)
    grids = args.grids if args.grids is not None else ctx.require_config("check without --grids")["grids"]
    check_references(
        analysis, _paths(args.results), list(grids), CheckOutputs(table=Path(args.output), json=_opt_path(args.json))
    )


def cmd_report(args: argparse.Namespace, ctx: Context) -> None:
    """Write the HTML report: exclusion plots, limit tables, checks, fit plots."""
    from recastflow.report.assemble import build_report

    build_report(
        tables=_paths(args.tables),
        exclusion_plots=_paths(args.exclusion_plots),
        checks=_paths(args.checks),
        yield_checks=_paths(args.yield_checks),
        yield_plots=_paths(args.yield_plots),
        cutflows=_paths(args.cutflows),
        reweight=_paths(args.reweight),
        reweight_checks=_paths(args.reweight_checks),
        fitplot_dirs=_paths(args.fitplots),
        catalogue=Path(args.catalogue) if args.catalogue else None,
        output=Path(args.output),
    )
    _log(f"report -> {args.output}")


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
    _log(
        f"archive: {c['workflow']} workflow, {c['inputs']} input and {c['results']} result files"
        f" (commit {summary.commit or 'none'}) -> {args.output}"
    )


def cmd_unarchive(args: argparse.Namespace, ctx: Context | None) -> None:
    """Extract an archive safely into a new or empty folder and verify every file's sha256."""
    from recastflow.preserve.archive import extract_archive, manifest_files

    manifest = extract_archive(Path(args.archive), Path(args.into))
    _log(f"unarchive: {len(manifest_files(manifest))} files verified against MANIFEST.json -> {args.into}")


# -- front end: events -> yields ----------------------------------------------------
def _events_point(ctx: Context, grid_name: str, point_name: str):  # -> (Grid, Analysis, Point, EventsSpec)
    grid, analysis = ctx.grid(grid_name)
    point = grid.point(point_name)
    if grid.events is None or not point.from_events:
        raise RecastError(
            f"point {point.name} takes its signal from a patch or yields file, not from events; "
            "give the grid an 'events' section to run the front end",
            path=str(grid.path),
        )
    return grid, analysis, point, grid.events


def cmd_generate(args: argparse.Namespace, ctx: Context) -> None:
    """Generate one chunk of a point's events with Pythia 8."""
    from recastflow.core.seeds import chunk_sizes, derive_seed
    from recastflow.generate.pythia import generate_chunk

    grid, _, point, spec = _events_point(ctx, args.grid, args.point)
    if point.slha is None:
        raise RecastError(f"point {point.name} has a hand-off manifest; use 'recastflow handoff'", path=str(grid.path))
    if not 0 <= args.chunk < spec.chunks:
        raise RecastError(
            f"chunk {args.chunk} does not exist: the grid has events.chunks = {spec.chunks} "
            f"(chunks 0..{spec.chunks - 1})",
            path=str(grid.path),
            field="events.chunks",
        )
    n = chunk_sizes(point.n_events, spec.chunks)[args.chunk]
    t0 = time.perf_counter()
    header = generate_chunk(
        spec.process,
        point.slha,
        point=point.name,
        n_events=n,
        seed=derive_seed(spec.seed, point.name, "generate"),
        chunk=args.chunk,
        chunks=spec.chunks,
        output=Path(args.output),
        progress=True,
    )
    dt = time.perf_counter() - t0
    _log(
        f"{grid.name}/{point.name} chunk {args.chunk}: {header['n_events']} events in {dt:.1f} s "
        f"({header['n_events'] / dt:.0f} ev/s), sigma = {header['xsec_pb']:.4g} pb ({header['xsec_source']}), "
        f"BR factor {header['br_factor']:.4g} -> {args.output}"
    )


def cmd_handoff(args: argparse.Namespace, ctx: Context) -> None:
    """Validate events made elsewhere (LHE, HepMC3, Delphes ROOT) and convert them."""
    from recastflow.core.seeds import derive_seed
    from recastflow.generate.handoff import handoff

    if args.manifest:  # a file on its own, outside any grid: check and convert it
        header = handoff(Path(args.manifest), Path(args.output), point=args.point, seed=args.seed, progress=True)
        _log(f"{header['n_events']} events from {args.manifest} ({header['format']}) -> {args.output}")
        return
    if not (args.grid and args.point):
        raise RecastError("give --grid and --point (a grid point with a 'manifest'), or --manifest FILE")
    grid, _, point, spec = _events_point(ctx, args.grid, args.point)
    if point.manifest is None:
        raise RecastError(
            f"point {point.name} has no 'manifest'; its events are generated ('recastflow generate')",
            path=str(grid.path),
        )
    header = handoff(
        point.manifest,
        Path(args.output),
        point=point.name,
        seed=derive_seed(spec.seed, point.name, "shower"),
        progress=True,
    )
    _log(
        f"{grid.name}/{point.name}: {header['n_events']} {header['format']} events from {point.manifest} "
        f"-> {args.output}"
    )


def cmd_emulate(args: argparse.Namespace, ctx: Context) -> None:
    """Detector emulation of one chunk: jets, leptons, photons, MET, b-tagging."""
    from recastflow.core.seeds import derive_seed
    from recastflow.emulate.emulation import emulate_file

    grid, _, point, spec = _events_point(ctx, args.grid, args.point)
    t0 = time.perf_counter()
    header = emulate_file(
        Path(args.input),
        spec.detector,
        Path(args.output),
        seed=derive_seed(spec.seed, point.name, "emulate", args.chunk),
    )
    _log(
        f"{grid.name}/{point.name} chunk {args.chunk}: {header['n_events']} events emulated with {spec.detector} "
        f"in {time.perf_counter() - t0:.1f} s -> {args.output}"
    )


def cmd_select(args: argparse.Namespace, ctx: Context) -> None:
    """Apply the bundle's selection: cutflows, yields per region and bin, selected events."""
    from recastflow.select.selection import select_file

    grid, analysis, point, _ = _events_point(ctx, args.grid, args.point)
    if analysis.selection is None:
        raise RecastError(
            f"analysis {analysis.id} has no 'selection' file, so it cannot select events",
            path=str(analysis.folder / "analysis.yaml"),
            field="selection",
        )
    if analysis.luminosity_ifb is None:
        raise RecastError(
            "the bundle needs 'luminosity_ifb' to normalise yields",
            path=str(analysis.folder / "analysis.yaml"),
            field="luminosity_ifb",
        )
    from recastflow.checks.preflight import check_selection_regions

    check_selection_regions(grid, analysis)  # before any event is read: yields for another layout are useless
    select_file(
        _paths(args.inputs),
        analysis.selection,
        luminosity_ifb=analysis.luminosity_ifb,
        point=point.name,
        yields_out=Path(args.yields),
        cutflow_out=Path(args.cutflow),
        selected_out=Path(args.selected),
    )
    _log(
        f"{grid.name}/{point.name}: yields, cutflow and selected events -> {args.yields}, {args.cutflow}, "
        f"{args.selected}"
    )


def cmd_check_yields(args: argparse.Namespace, ctx: Context) -> None:
    """Compare a grid's front-end yields with the published signal patches of its bundle."""
    from recastflow.checks.runner import CheckOutputs, check_yields

    grid, analysis = ctx.grid(args.grid)
    check_yields(
        grid,
        analysis,
        _paths(args.inputs),
        CheckOutputs(
            table=Path(args.output),
            json=_opt_path(args.json),
            plot=_opt_path(args.plot),
            plot_pdf=_opt_path(args.plot_pdf),
        ),
        fail=not args.record_failure,
    )


def cmd_check_yields_verdict(args: argparse.Namespace, ctx: Context) -> None:
    """Fail if a written yield check has a gated point outside tolerance; else write a marker."""
    from recastflow.checks.runner import yields_verdict

    yields_verdict(Path(args.check), Path(args.output))


# -- machine-learned models: inspection and validation vectors ---------------------
def _models_of(selection_path: str, names: list[str] | None):  # -> (Selection, list[ModelDef])
    from recastflow.select.selection import load_selection

    selection = load_selection(Path(selection_path))
    models = list(selection.models)
    if not models:
        raise RecastError("the selection declares no 'models'", path=selection_path)
    if names:
        known = {m.name: m for m in models}
        for name in names:
            if name not in known:
                raise RecastError(
                    f"no model {name!r} (models: {', '.join(known)})", path=selection_path, field="models"
                )
        models = [known[n] for n in names]
    return selection, models


def cmd_model_inspect(args: argparse.Namespace, ctx: Context | None) -> None:
    """Print an ONNX file's inputs, outputs, opset and producer, and whether its contract agrees."""
    from recastflow.select.mlmodels import inspect_lines

    if args.onnx:
        print("\n".join(inspect_lines(Path(args.onnx))))
        return
    if not args.selection:
        raise RecastError("give --selection FILE (models with their contracts) or --onnx FILE")
    _, models = _models_of(args.selection, args.model)
    for model in models:
        print("\n".join(inspect_lines(model.path, model)) + "\n")


def cmd_model_vectors(args: argparse.Namespace, ctx: Context | None) -> None:
    """Write each model's validation vectors from events of a trusted run (once)."""
    import numpy as np

    from recastflow.core.events import RECO, merge_events
    from recastflow.core.io import write_json_atomic
    from recastflow.select.mlmodels import vectors_doc
    from recastflow.select.selection import model_inputs

    selection, models = _models_of(args.selection, args.model)
    reco, _ = merge_events([Path(p) for p in args.events], (RECO,))
    for model in models:
        if model.vectors is None:
            raise RecastError(
                "the contract names no 'vectors' file to write", path=args.selection, field=f"models.{model.name}"
            )
        if model.vectors.exists() and not args.overwrite:
            raise RecastError(
                f"{model.vectors} exists: validation vectors are written once, from a trusted run "
                "(--overwrite replaces them)",
                path=args.selection,
                field=f"models.{model.name}.vectors",
            )
        rows = model_inputs(reco, selection, model)[: args.max_rows]
        if not len(rows):
            raise RecastError(
                f"no event of {', '.join(args.events)} passes the preselection with all inputs of {model.name} present",
                path=args.selection,
                field=f"models.{model.name}",
            )
        doc = vectors_doc(model, np.asarray(rows), atol=args.atol, events=[str(p) for p in args.events])
        write_json_atomic(model.vectors, doc)
        _log(f"{model.name}: {len(rows)} validation vectors -> {model.vectors}")


def cmd_model_check(args: argparse.Namespace, ctx: Context | None) -> None:
    """Re-run every model on its validation vectors; fail if a score moved beyond tolerance."""
    from recastflow.checks.runner import CheckOutputs, check_models

    _, models = _models_of(args.selection, args.model)
    check_models(Path(args.selection), models, CheckOutputs(table=_opt_path(args.output), json=_opt_path(args.json)))


# -- reweighting: yields of new hypotheses from selected events ---------------------
def cmd_reweight(args: argparse.Namespace, ctx: Context) -> None:
    """Reweight a source point's selected events to a target point: yields and diagnostics."""
    from recastflow.analyses.bundle import load_grid
    from recastflow.core.config import validate
    from recastflow.core.io import write_json_atomic
    from recastflow.reweight.reweighting import load_spec, reweight_selected, target_parameters

    grid, _ = ctx.grid(args.grid)
    point = grid.point(args.point)
    ref = point.reweight
    if ref is None:
        raise RecastError(f"point {point.name} has no 'reweight' section", path=str(grid.path))
    index = [p.name for p in grid.points].index(point.name)
    # the source must exist; if not, the reweighted point's 'from' is what to fix
    load_grid(ref.source[0], ctx.signals_dir).point(
        ref.source[1], source=str(grid.path), field=f"points[{index}].reweight.from"
    )
    spec = load_spec(ref.spec)
    params = target_parameters(
        spec, ref.parameters, point.values, source=str(grid.path), fld=f"points[{index}].reweight"
    )
    t0 = time.perf_counter()
    yields, diag = reweight_selected(Path(args.input), spec, params, point=point.name)
    if diag["source"]["point"] != ref.source[1]:
        raise RecastError(
            f"holds the selected events of point {diag['source']['point']!r}, but {point.name} is "
            f"reweighted from {'/'.join(ref.source)}",
            path=args.input,
        )
    diag["source"]["grid_point"] = "/".join(ref.source)
    validate(yields, "yields", Path(args.yields))
    write_json_atomic(Path(args.diagnostics), diag)
    write_json_atomic(Path(args.yields), yields)
    _log(
        f"{grid.name}/{point.name}: reweighted {diag['n_selected']} selected events of {'/'.join(ref.source)} with "
        f"{spec.name} {params} in {time.perf_counter() - t0:.2f} s: ESS fraction {diag['ess_fraction']:.3f}, "
        f"largest weight share {diag['max_weight_share']:.3f} -> {diag['verdict']}"
    )
    for reason in diag["reasons"]:
        _log(f"  flagged: {reason}")


def cmd_check_reweight(args: argparse.Namespace, ctx: Context) -> None:
    """Reweighting closure: reweighted yields against yields generated directly at the same hypothesis."""
    from recastflow.checks.runner import CheckOutputs, check_closure

    grid, _ = ctx.grid(args.grid)
    check_closure(
        grid, lambda g, p: ctx.grid(g)[0].point(p), CheckOutputs(table=Path(args.output), json=_opt_path(args.json))
    )


def cmd_fetch(args: argparse.Namespace, ctx: Context) -> None:
    """Fetch bundles' published files into the cache (mirror folders first, then the network), verified."""
    from recastflow.analyses.bundle import fetch_bundles

    fetch_bundles(args.analyses, ctx.analyses_dir, manifest=Path(args.manifest) if args.manifest else None, log=_log)


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


# -- parser -------------------------------------------------------------------------
GRID_HELP = "signal grid name (config/signals/<GRID>.yaml under --signals-dir)"
POINT_HELP = "point name within the grid"


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    """The run settings, as a run configuration file (interactive) or as options (workflow jobs)."""
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version of recastflow and exit",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"run configuration to read and validate, for interactive use (default: {DEFAULT_CONFIG} "
        "unless the settings below are given; workflow jobs get those instead)",
    )
    # dest job_*: subcommands may have options of the same name (bundle new --signals-dir) for their own use
    parser.add_argument(
        "--analyses-dir",
        metavar="DIR",
        dest="job_analyses_dir",
        help="folder of the analysis bundles (a job's setting; default: config/analyses)",
    )
    parser.add_argument(
        "--signals-dir",
        metavar="DIR",
        dest="job_signals_dir",
        help="folder of the signal grids (a job's setting; default: config/signals)",
    )
    parser.add_argument(
        "--allowed-path",
        action="append",
        metavar="DIR",
        help="folder outside the project that inputs and outputs may be in (a job's setting; repeat for several)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = argparse.ArgumentParser(prog="recastflow", description=__doc__.splitlines()[0])
    _add_settings_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace, Any], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=fn)
        return p

    add("validate", cmd_validate, "validate the configuration, grids, bundles and workspace checksums")
    p = add("patch", cmd_patch, "build a grid's signal PatchSet (from yields, published patches or a patchset)")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--output", required=True, help="the PatchSet (.json)")
    p = add("extract-yields", cmd_extract_yields, "write the signal yields of a point's published patch")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--output", required=True, help="the yields file (.json)")
    p = add("generate", cmd_generate, "generate one chunk of a point's events with Pythia 8")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--chunk", type=int, default=0, help="chunk index (default: %(default)s)")
    p.add_argument("--output", required=True, help="event file (.parquet)")
    p = add("handoff", cmd_handoff, "validate and convert a point's events made elsewhere (LHE, HepMC3, Delphes)")
    p.add_argument("--grid", help=GRID_HELP + " (with --point)")
    p.add_argument("--point", help=POINT_HELP + " (a point with a 'manifest')")
    p.add_argument("--manifest", help="convert this manifest's file on its own (no grid needed)")
    p.add_argument("--seed", type=int, default=1, help="shower seed with --manifest (default: %(default)s)")
    p.add_argument("--output", required=True, help="event file (.parquet)")
    p = add("emulate", cmd_emulate, "detector emulation of one chunk of events")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--chunk", type=int, default=0, help="chunk index, for the seed (default: %(default)s)")
    p.add_argument("--input", required=True, help="particle-level event file")
    p.add_argument("--output", required=True, help="reconstructed event file (.parquet)")
    p = add("select", cmd_select, "event selection: cutflows, yields per region and bin, selected events")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--inputs", nargs="+", required=True, help="reconstructed event files (all chunks of the point)")
    p.add_argument("--yields", required=True, help="yields per region and bin (.json)")
    p.add_argument("--cutflow", required=True, help="cutflows per region (.json)")
    p.add_argument("--selected", required=True, help="selected events with their truth record (.parquet)")
    p = add("check-yields", cmd_check_yields, "compare a grid's yields with the bundle's published signal patches")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--inputs", nargs="+", required=True, help="yields.json files of the grid's points")
    p.add_argument("--output", required=True, help="the comparison table (.txt)")
    p.add_argument("--json", help="the comparison as JSON (not written if not given)")
    p.add_argument("--plot", help="the per-bin plot (.png; not drawn if not given)")
    p.add_argument("--plot-pdf", help="the per-bin plot as PDF (default: --plot with the suffix .pdf)")
    p.add_argument(
        "--record-failure",
        action="store_true",
        help="exit 0 when points fail (the outputs say FAIL); 'check-yields-verdict' fails later (workflow)",
    )
    p = add(
        "check-yields-verdict",
        cmd_check_yields_verdict,
        "fail if a written yield check (its .json) has a gated point outside tolerance, else write a marker",
    )
    p.add_argument("--check", required=True, help="the JSON of 'recastflow check-yields'")
    p.add_argument("--output", required=True, help="the marker written when the check passed")
    p = add("reweight", cmd_reweight, "reweight a source point's selected events to a target point's hypothesis")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help="the target point (it has a 'reweight' section)")
    p.add_argument("--input", required=True, help="selected.parquet of the source point")
    p.add_argument("--yields", required=True, help="the reweighted yields (.json)")
    p.add_argument("--diagnostics", required=True, help="the effective-sample-size diagnostics (.json)")
    p = add("check-reweight", cmd_check_reweight, "reweighting closure: reweighted against directly generated yields")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--output", required=True, help="the closure table (.txt)")
    p.add_argument("--json", help="the closure as JSON (not written if not given)")
    p = add("limits", cmd_limits, "CLs with expected band (and optionally upper limits) for one point or a batch")
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
    p = add("table", cmd_table, "collect a grid's point results into tables and the exclusion plot")
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
    p = add("fitplots", cmd_fitplots, "cabinetry pre-/post-fit plots and pulls for one point")
    p.add_argument("--grid", required=True, help=GRID_HELP)
    p.add_argument("--point", required=True, help=POINT_HELP)
    p.add_argument("--patchset", required=True, help="the grid's PatchSet (from 'recastflow patch')")
    p.add_argument("--outdir", required=True, help="folder for the plots (one PNG per channel and the pulls)")
    p = add("check", cmd_check, "compare results with an analysis bundle's reference values")
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
    p = add("report", cmd_report, "write the HTML report")
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
    p.add_argument("--cutflows", nargs="*", default=[], help="cutflow.json files of front-end points")
    p.add_argument("--reweight", nargs="*", default=[], help="diagnostics.json files of reweighted points")
    p.add_argument(
        "--reweight-checks", nargs="*", default=[], help="reweighting closures (.json of 'recastflow check-reweight')"
    )
    p.add_argument("--catalogue", help="the analysis catalogue (.json of 'recastflow catalogue --json')")
    p.add_argument("--output", required=True, help="the HTML page")
    p = add("archive", cmd_archive, "pack the workflow, inputs, results and their manifest into one .tar.gz")
    p.add_argument("--output", required=True, help="the archive, e.g. archive/recastflow-run.tar.gz")
    p.add_argument("--results", default="results", help="results folder of the finished run (default: %(default)s)")
    p.add_argument(
        "--run-config", metavar="FILE", help="the run configuration file to pack as it is (workflow jobs; with --grids)"
    )
    p.add_argument("--grids", nargs="+", metavar="GRID", help="the run's grids, with --run-config")
    p = add("verdicts", cmd_verdicts, "the verdict per model point over the run's analyses (a workflow job)")
    p.add_argument("--tables", nargs="+", required=True, help="the run's limits.json tables")
    p.add_argument("--cl", type=float, help="confidence level for rows without one (default: the run's)")
    p.add_argument("--json", required=True, help="the verdicts as records (.json)")
    p.add_argument("--text", required=True, help="the verdict table (.txt)")
    p.add_argument("--csv", required=True, help="one row per point and analysis (.csv)")
    p = add(
        "run",
        cmd_run,
        "is my model excluded? run an SLHA spectrum or a scan through every analysis with an event selection",
    )
    p.add_argument("slha", nargs="?", help="the model's SLHA spectrum (MODSEL, MASS, DECAY, XSECTION blocks)")
    p.add_argument("--scan", metavar="FILE", help="a scan file instead of one spectrum (axes, constraints, template)")
    p.add_argument(
        "--analyses", nargs="+", metavar="ID[:WORKSPACE]", help="analyses to run (default: all with a selection)"
    )
    p.add_argument("--process", help="process card, a name in config/processes or a path (default: from the SLHA)")
    p.add_argument("--events", type=int, default=5000, help="events per point (default: %(default)s)")
    p.add_argument("--chunks", type=int, default=1, help="generation jobs per point (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="base seed of every random step (default: %(default)s)")
    p.add_argument("--upper-limits", action="store_true", help="also compute cross-section upper limits and r")
    p.add_argument("--run-dir", metavar="DIR", help="the run folder (default: runs/<SLHA stem or scan name>)")
    p.add_argument("--cores", default="all", help="local cores, or jobs at once with a cluster profile (default: all)")
    p.add_argument("--profile", help="Snakemake cluster profile (e.g. slurm, or a folder with config.yaml)")
    p.add_argument("--verbose", action="store_true", help="Snakemake's full output instead of one line per job")
    p.add_argument("--dry-run", action="store_true", help="plan the jobs without running them")
    p.add_argument("--plan-only", action="store_true", help="write the run folder and stop")
    p.set_defaults(needs_config=False)
    p = add("unarchive", cmd_unarchive, "extract an archive safely into an empty folder and verify it")
    p.add_argument("archive", help="the archive (.tar.gz) to extract")
    p.add_argument("--into", required=True, help="new or empty folder to extract into")
    p.set_defaults(needs_config=False)  # read by main() once it skips the config for such commands
    p = add(
        "model-inspect",
        cmd_model_inspect,
        "show an ONNX model's inputs, outputs, opset and producer, and whether its contract agrees",
    )
    p.add_argument("--selection", help="selection file declaring the models (their contracts)")
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--onnx", help="inspect this ONNX file on its own, without a contract")
    p.set_defaults(needs_config=False)
    p = add("model-vectors", cmd_model_vectors, "write models' validation vectors from events of a trusted run")
    p.add_argument("--selection", required=True, help="selection file declaring the models (their contracts)")
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--events", nargs="+", required=True, help="reconstructed event files")
    p.add_argument("--max-rows", type=int, default=200, help="input rows per model (default: %(default)s)")
    p.add_argument("--atol", type=float, default=1e-6, help="tolerance on the score (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing vectors")
    p.set_defaults(needs_config=False)
    p = add("model-check", cmd_model_check, "check models against their validation vectors (largest deviation)")
    p.add_argument("--selection", required=True, help="selection file declaring the models (their contracts)")
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--output", help="the check table (.txt; not written if not given)")
    p.add_argument("--json", help="the check as JSON (not written if not given)")
    p.set_defaults(needs_config=False)
    p = add("fetch", cmd_fetch, "fetch analysis bundles' published files (sha256 and digest checked) into the cache")
    p.add_argument("analyses", nargs="*", metavar="ANALYSIS-ID", help="bundles to fetch (default: all)")
    p.add_argument("--manifest", help="write what was fetched, and where it is, to this JSON file")
    p = add("catalogue", cmd_catalogue, "list the analysis bundles: what each supports, its validation, its sources")
    p.add_argument("--output", help="write the Markdown table here instead of printing it")
    p.add_argument("--json", help="also write the catalogue as JSON (the report's input) to this file")
    p = add("bundle", cmd_bundle_new, "bundle new: an analysis bundle and its published grid from a likelihood archive")
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
    return parser


def _settings(args: argparse.Namespace) -> RunSettings:
    """The run settings from the options (a workflow job) or from the run configuration (interactive)."""
    given = [
        o
        for o, v in (
            ("--analyses-dir", args.job_analyses_dir),
            ("--signals-dir", args.job_signals_dir),
            ("--allowed-path", args.allowed_path),
        )
        if v is not None
    ]
    if given:
        if args.config is not None:
            raise RecastError(f"give --config or {', '.join(given)}, not both: the settings come from one place")
        return RunSettings.from_options(args.job_analyses_dir, args.job_signals_dir, args.allowed_path)
    return RunSettings.from_config_file(Path(args.config or DEFAULT_CONFIG))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 1."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # BLAS threads make pyhf fits 2-5x slower here
    try:
        ctx = Context(_settings(args)) if getattr(args, "needs_config", True) else None
        from recastflow.core.io import confine_arguments

        # every path of the command (options, and those in the files it reads) stays in the project,
        # the cache, the mirrors or the allowed paths, also through symbolic links
        # a job's allowed paths come from the run configuration the workflow validated: messages name it
        with confine_arguments(
            args,
            ctx.settings.policy_config() if ctx else None,
            (ctx.settings.source or "the run configuration") if ctx else None,
        ):
            args.func(args, ctx)
    except RecastError as exc:
        print(f"recastflow {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"recastflow {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
