"""The recastflow command line: one subcommand per workflow stage.

Every subcommand reads the run configuration, writes its outputs atomically and
turns user mistakes into a one-line message with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from recastflow.core.errors import CheckFailed, RecastError


@dataclass(frozen=True)
class Context:
    """The validated run configuration and where its bundles and grids live."""

    config: dict[str, Any]
    analyses_dir: Path
    signals_dir: Path

    @classmethod
    def load(cls, path: Path) -> "Context":
        """Read and validate ``config.yaml``."""
        from recastflow.core.config import load_validated

        cfg = load_validated(path, "config")
        return cls(cfg, Path(cfg["analyses_dir"]), Path(cfg["signals_dir"]))

    def grid(self, name: str):  # -> Grid
        """Load a grid and the bundle it belongs to."""
        from recastflow.analyses.bundle import load_analysis, load_grid

        grid = load_grid(name, self.signals_dir)
        analysis = load_analysis(grid.analysis, self.analyses_dir)
        return grid, analysis


def _log(msg: str) -> None:
    print(f"[recastflow] {msg}", file=sys.stderr, flush=True)


# -- subcommands ------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace, ctx: Context) -> None:
    """Validate the config, every grid, every bundle and the workspaces' sha256."""
    seen = set()
    for name in ctx.config["grids"]:
        grid, analysis = ctx.grid(name)
        wsref = analysis.workspace(grid.workspace, source=grid.path)
        if (analysis.id, wsref.name) not in seen:
            wsref.load()
            seen.add((analysis.id, wsref.name))
        from recastflow.checks.preflight import check_front_end

        n_events = check_front_end(grid, analysis, with_pythia=True)
        extra = f" ({n_events} from events: cards, spectra and selection ok)" if n_events else ""
        _log(f"grid {name}: {len(grid.points)} points{extra}, {analysis.id} {grid.workspace} ok")
    grids = {name: ctx.grid(name)[0] for name in ctx.config["grids"]}
    if any(p.reweight is not None for g in grids.values() for p in g.points):
        from recastflow.reweight.reweighting import check_reweighted

        _log(f"{check_reweighted(grids)} reweighted points: sources, specs and parameters ok")
    for entry in ctx.config.get("upper_limits", []) + ctx.config.get("fit_plots", []):
        gname, pname = entry.split("/")
        if gname not in ctx.config["grids"]:
            raise RecastError(f"{entry!r} names grid {gname!r}, which is not in 'grids'", path=str(args.config))
        if pname != "*":
            ctx.grid(gname)[0].point(pname)
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


def _limits_settings(ctx: Context, method: str | None) -> tuple[str, dict[str, Any], dict[str, str]]:
    settings = ctx.config.get("limits", {})
    checks = {"fallback": settings.get("fallback", "exact-converged"), "verify": settings.get("verify", "near")}
    return method or settings.get("method", "fast"), dict(ctx.config.get("fit") or {}), checks


def _point_record(ctx: Context, grid: Any, analysis: Any, point: Any) -> Any:
    from recastflow.core.io import read_json
    from recastflow.stats.limits import PointResult

    xsec_pb, xsec_source = point.xsec_pb, point.xsec_source
    made_here = point.from_events or point.reweight is not None
    if made_here and xsec_pb is None and point.yields is not None and point.yields.is_file():
        # the front end records the cross-section x branching fraction its yields are normalised to
        norm = read_json(point.yields).get("normalisation", {})
        if norm.get("xsec_pb") is not None:
            # the production cross-section: the forced decays' (Standard Model) branching fractions are
            # part of the signal model, so limits in pb are on sigma(production), as published
            xsec_pb = norm["xsec_pb"]
            xsec_source = norm.get("xsec_source", "")
    record = PointResult(
        analysis=analysis.id, grid=grid.name, point=point.name, workspace=grid.workspace,
        values=point.values, xsec_pb=xsec_pb, xsec_source=xsec_source, cl=ctx.config["cl"],
    )
    if point.reweight is not None and point.yields is not None:
        # written with the yields by `recastflow reweight`: a reweighting that cannot be trusted
        # (too small an effective sample) flags the point's limits too
        diag = point.yields.with_name("diagnostics.json")
        if diag.is_file():
            doc = read_json(diag)
            if doc.get("verdict") not in (None, "ok"):
                record.issues.append("reweighting flagged: " + "; ".join(doc.get("reasons") or [doc["verdict"]]))
    return record


def cmd_limits(args: argparse.Namespace, ctx: Context) -> None:
    """CLs (observed, expected band) and optional upper limits for one point or a batch of points.

    A batch shares one compiled likelihood per workspace structure (method ``fast``), so
    the cost of compiling is paid once per job, not once per point.
    """
    from recastflow.core.io import read_json, write_json_atomic
    from recastflow.stats.limits import BATCH_FORMAT, evaluate_point
    from recastflow.stats.patching import patches_by_name, shared_copy

    grid, analysis = ctx.grid(args.grid)
    names = [args.point] if args.point else list(dict.fromkeys(args.points))
    points = [grid.point(n) for n in names]
    method, fit_options, checks = _limits_settings(ctx, args.method)
    wanted_ul = set()
    if args.upper_limit_points is not None:
        wanted_ul.update(args.upper_limit_points)
    else:
        for entry in ctx.config.get("upper_limits", []):
            gname, pname = entry.split("/")
            if gname == grid.name:
                wanted_ul.update(names if pname == "*" else [pname])
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    bkg = wsref.load(validate=False)  # patched spec is validated
    ops_of = patches_by_name(read_json(Path(args.patchset)), bkg, names, args.patchset)
    bkg = shared_copy(bkg)  # the points' models share the workspace instead of copying it each
    from recastflow.stats.compiled import LikelihoodCompiler

    # fast: one compilation per structure for the batch; exact: only for verification fits
    compiler = LikelihoodCompiler()
    records = []
    t_all = time.perf_counter()
    for i, point in enumerate(points, 1):
        ops = ops_of[point.name]
        record = _point_record(ctx, grid, analysis, point)
        t0 = time.perf_counter()
        evaluate_point(bkg, ops, record, upper_limit=args.upper_limit or point.name in wanted_ul,
                       fit_options=fit_options, source=args.patchset, method=method, compiler=compiler,
                       analysis=analysis, wsref=wsref, **checks)
        records.append(record.to_dict())
        msg = f"[{i}/{len(points)}] {grid.name}/{point.name}: {record.status} (method {record.method})"
        if record.cls_obs is not None:
            msg += f", CLs_obs={record.cls_obs:.4g}, CLs_exp={record.cls_exp[2]:.4g}"
        if record.mu_ul_obs is not None:
            msg += f", mu_UL={record.mu_ul_obs:.4g} (exp {record.mu_ul_exp[2]:.4g})"
        _log(msg + f" [{time.perf_counter() - t0:.2f} s]")
        for issue in record.issues:
            _log(f"  flagged: {issue}")
    if args.point:
        write_json_atomic(Path(args.output), records[0])
    else:
        write_json_atomic(Path(args.output), {"format": BATCH_FORMAT, "grid": grid.name, "method": method,
                                              "points": records})
    extra = f", {compiler.compiled} likelihood compilation(s)" if compiler.compiled else ""
    fallbacks = sum(1 for r in records if r.get("fallback"))
    if fallbacks:
        extra += f"; {fallbacks} point(s) NOT computed with method {method} (fallback stated per point)"
    _log(f"{len(points)} point(s) in {time.perf_counter() - t_all:.1f} s (method {method}{extra}) -> {args.output}")


def cmd_table(args: argparse.Namespace, ctx: Context) -> None:
    """Collect point results into CSV/JSON tables and the exclusion plot."""
    from recastflow.core.io import read_json, write_json_atomic, write_text_atomic
    from recastflow.stats.limits import BATCH_FORMAT, rows_to_csv, summary, table_rows

    grid, analysis = ctx.grid(args.grid)
    records = []
    for path in args.inputs:
        doc = read_json(Path(path))
        # batch files of `recastflow limits --points` or single-point records
        records.extend(doc["points"] if isinstance(doc, dict) and doc.get("format") == BATCH_FORMAT else [doc])
    order = {p.name: i for i, p in enumerate(grid.points)}
    records.sort(key=lambda r: order.get(r["point"], len(order)))
    outdir = Path(args.outdir)
    counts = summary(records)
    params = list(grid.parameters)
    write_json_atomic(outdir / "limits.json", {"analysis": analysis.id, "grid": grid.name, "parameters": params,
                                               "summary": counts, "points": records})
    write_text_atomic(outdir / "limits.csv", rows_to_csv(table_rows(records, params)))
    if grid.plot:
        from recastflow.report.plots import plot_exclusion

        x, y = grid.plot
        plot_exclusion(records, x, y, outdir / "exclusion.png",
                       title=f"{analysis.id} {grid.workspace}: {grid.name}",
                       xlabel=grid.parameters[x]["label"], ylabel=grid.parameters[y]["label"], level=1 - ctx.config["cl"])
    fallback = f", {counts['fallback']} computed with a fallback method" if counts["fallback"] else ""
    _log(f"{grid.name}: {len(records)} points: {counts['trusted']} trusted, {counts['flagged']} flagged, "
         f"{counts['failed']} failed{fallback} -> {outdir}")


def cmd_fitplots(args: argparse.Namespace, ctx: Context) -> None:
    """cabinetry pre-/post-fit data/MC plots and pulls for one point."""
    from recastflow.core.io import read_json
    from recastflow.stats.patching import apply_patch, patch_for_point
    from recastflow.report.plots import fit_plots

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
    from recastflow.checks.references import compare, format_table
    from recastflow.core.io import read_json, write_json_atomic, write_text_atomic

    analysis = load_analysis(args.analysis, ctx.analyses_dir)
    results = {}
    for path in args.results:
        doc = read_json(Path(path))
        for rec in doc["points"]:
            results[(rec["grid"], rec["point"])] = rec
    refs = tuple(r for r in analysis.references if r.grid in ctx.config["grids"])
    rows = compare(refs, results)
    text = f"Regression check of {analysis.id} ({len(refs)} references)\n" + format_table(rows)
    print(text)
    failed = [r for r in rows if not r.passed]
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(rows)} values of {analysis.id} outside tolerance (table above)")
    write_text_atomic(Path(args.output), text + "\n")
    write_json_atomic(Path(args.output).with_suffix(".json"), [
        {"grid": r.grid, "point": r.point, "quantity": r.quantity, "value": r.value, "reference": r.reference,
         "rtol": r.rtol, "atol": r.atol, "passed": r.passed, "note": r.note, "source": r.source} for r in rows])


def cmd_report(args: argparse.Namespace, ctx: Context) -> None:
    """Write the HTML report: exclusion plots, limit tables, checks, fit plots."""
    from recastflow.report.assemble import build_report

    build_report(ctx, tables=[Path(p) for p in args.tables], checks=[Path(p) for p in args.checks],
                 fitplot_dirs=[Path(p) for p in args.fitplots], yield_checks=[Path(p) for p in args.yield_checks],
                 cutflows=[Path(p) for p in args.cutflows], output=Path(args.output),
                 reweight=[Path(p) for p in args.reweight], reweight_checks=[Path(p) for p in args.reweight_checks])
    _log(f"report -> {args.output}")


def cmd_archive(args: argparse.Namespace, ctx: Context) -> None:
    """Pack workflow, inputs, results, MANIFEST.json and RO-Crate metadata into one .tar.gz."""
    from recastflow.preserve.archive import create_archive

    summary = create_archive(Path(args.output), config=ctx.config, config_path=Path(args.config),
                             results=Path(args.results))
    c = summary.counts
    _log(f"archive: {c['workflow']} workflow, {c['inputs']} input and {c['results']} result files"
         f" (commit {summary.commit or 'none'}) -> {args.output}")


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
        raise RecastError(f"point {point.name} takes its signal from a patch or yields file, not from events; "
                          "give the grid an 'events' section to run the front end", path=str(grid.path))
    return grid, analysis, point, grid.events


def cmd_generate(args: argparse.Namespace, ctx: Context) -> None:
    """Generate one chunk of a point's events with Pythia 8."""
    from recastflow.generate.pythia import generate_chunk
    from recastflow.core.seeds import chunk_sizes, derive_seed

    grid, _, point, spec = _events_point(ctx, args.grid, args.point)
    if point.slha is None:
        raise RecastError(f"point {point.name} has a hand-off manifest; use 'recastflow handoff'", path=str(grid.path))
    if not 0 <= args.chunk < spec.chunks:
        raise RecastError(f"chunk {args.chunk} does not exist: the grid has events.chunks = {spec.chunks} "
                          f"(chunks 0..{spec.chunks - 1})", path=str(grid.path), field="events.chunks")
    n = chunk_sizes(point.n_events, spec.chunks)[args.chunk]
    t0 = time.perf_counter()
    header = generate_chunk(spec.process, point.slha, point=point.name, n_events=n,
                            seed=derive_seed(spec.seed, point.name, "generate"), chunk=args.chunk,
                            chunks=spec.chunks, output=Path(args.output), progress=True)
    dt = time.perf_counter() - t0
    _log(f"{grid.name}/{point.name} chunk {args.chunk}: {header['n_events']} events in {dt:.1f} s "
         f"({header['n_events'] / dt:.0f} ev/s), sigma = {header['xsec_pb']:.4g} pb ({header['xsec_source']}), "
         f"BR factor {header['br_factor']:.4g} -> {args.output}")


def cmd_handoff(args: argparse.Namespace, ctx: Context) -> None:
    """Validate events made elsewhere (LHE, HepMC3, Delphes ROOT) and convert them."""
    from recastflow.generate.handoff import handoff
    from recastflow.core.seeds import derive_seed

    if args.manifest:  # a file on its own, outside any grid: check and convert it
        header = handoff(Path(args.manifest), Path(args.output), point=args.point, seed=args.seed, progress=True)
        _log(f"{header['n_events']} events from {args.manifest} ({header['format']}) -> {args.output}")
        return
    if not (args.grid and args.point):
        raise RecastError("give --grid and --point (a grid point with a 'manifest'), or --manifest FILE")
    grid, _, point, spec = _events_point(ctx, args.grid, args.point)
    if point.manifest is None:
        raise RecastError(f"point {point.name} has no 'manifest'; its events are generated ('recastflow generate')",
                          path=str(grid.path))
    header = handoff(point.manifest, Path(args.output), point=point.name,
                     seed=derive_seed(spec.seed, point.name, "shower"), progress=True)
    _log(f"{grid.name}/{point.name}: {header['n_events']} {header['format']} events from {point.manifest} "
         f"-> {args.output}")


def cmd_emulate(args: argparse.Namespace, ctx: Context) -> None:
    """Detector emulation of one chunk: jets, leptons, photons, MET, b-tagging."""
    from recastflow.emulate.emulation import emulate_file
    from recastflow.core.seeds import derive_seed

    grid, _, point, spec = _events_point(ctx, args.grid, args.point)
    t0 = time.perf_counter()
    header = emulate_file(Path(args.input), spec.detector, Path(args.output),
                          seed=derive_seed(spec.seed, point.name, "emulate", args.chunk))
    _log(f"{grid.name}/{point.name} chunk {args.chunk}: {header['n_events']} events emulated with {spec.detector} "
         f"in {time.perf_counter() - t0:.1f} s -> {args.output}")


def cmd_select(args: argparse.Namespace, ctx: Context) -> None:
    """Apply the bundle's selection: cutflows, yields per region and bin, selected events."""
    from recastflow.select.selection import select_file

    grid, analysis, point, _ = _events_point(ctx, args.grid, args.point)
    if analysis.selection is None:
        raise RecastError(f"analysis {analysis.id} has no 'selection' file, so it cannot select events",
                          path=str(analysis.folder / "analysis.yaml"), field="selection")
    if analysis.luminosity_ifb is None:
        raise RecastError("the bundle needs 'luminosity_ifb' to normalise yields",
                          path=str(analysis.folder / "analysis.yaml"), field="luminosity_ifb")
    from recastflow.checks.preflight import check_selection_regions

    check_selection_regions(grid, analysis)  # before any event is read: yields for another layout are useless
    outdir = Path(args.outdir)
    select_file([Path(p) for p in args.inputs], analysis.selection, luminosity_ifb=analysis.luminosity_ifb,
                point=point.name, yields_out=outdir / "yields.json", cutflow_out=outdir / "cutflow.json",
                selected_out=outdir / "selected.parquet")
    _log(f"{grid.name}/{point.name}: yields, cutflow and selected events -> {outdir}")


def cmd_check_yields(args: argparse.Namespace, ctx: Context) -> None:
    """Compare a grid's front-end yields with the published signal patches of its bundle."""
    from recastflow.core.io import write_json_atomic, write_text_atomic
    from recastflow.checks.yields import compare_yields, format_yield_table, plot_yields, rows_to_json

    grid, analysis = ctx.grid(args.grid)
    if analysis.yield_references is None:
        raise RecastError(f"analysis {analysis.id} has no 'yield_references'", path=str(analysis.folder / "analysis.yaml"))
    given = {Path(p) for p in args.inputs}
    files = {p.name: p.yields for p in grid.points if p.from_events and p.yields in given}
    bkg = analysis.workspace(grid.workspace, source=grid.path).load()
    rows = compare_yields(grid, analysis, files, bkg)
    if not rows:
        raise RecastError(f"no point of grid {grid.name} has a published signal patch to compare with",
                          path=str(grid.path))
    text = format_yield_table(rows, analysis)
    print(text)
    failed = [r for r in rows if r.gated and not r.passed]
    out = Path(args.output)
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(rows)} points' signal-region yields outside tolerance (table above)")
    plot_yields(rows, analysis, out.with_suffix(".png"))
    write_json_atomic(out.with_suffix(".json"), rows_to_json(rows))
    write_text_atomic(out, text + "\n")


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
                raise RecastError(f"no model {name!r} (models: {', '.join(known)})", path=selection_path,
                                  field="models")
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
            raise RecastError("the contract names no 'vectors' file to write", path=args.selection,
                              field=f"models.{model.name}")
        if model.vectors.exists() and not args.overwrite:
            raise RecastError(f"{model.vectors} exists: validation vectors are written once, from a trusted run "
                              "(--overwrite replaces them)", path=args.selection, field=f"models.{model.name}.vectors")
        rows = model_inputs(reco, selection, model)[:args.max_rows]
        if not len(rows):
            raise RecastError(f"no event of {', '.join(args.events)} passes the preselection with all inputs of "
                              f"{model.name} present", path=args.selection, field=f"models.{model.name}")
        doc = vectors_doc(model, np.asarray(rows), atol=args.atol, events=[str(p) for p in args.events])
        write_json_atomic(model.vectors, doc)
        _log(f"{model.name}: {len(rows)} validation vectors -> {model.vectors}")


def cmd_model_check(args: argparse.Namespace, ctx: Context | None) -> None:
    """Re-run every model on its validation vectors; fail if a score moved beyond tolerance."""
    from recastflow.core.io import write_json_atomic, write_text_atomic
    from recastflow.select.mlmodels import check_vectors, checks_json, format_checks

    _, models = _models_of(args.selection, args.model)
    checks = [check_vectors(m) for m in models if m.vectors is not None]
    if not checks:
        raise RecastError("no model names a 'vectors' file to check", path=args.selection, field="models")
    text = f"Validation vectors of {args.selection} ({len(checks)} models)\n" + format_checks(checks)
    print(text)
    failed = [c for c in checks if not c.passed]
    if failed:
        worst = max(failed, key=lambda c: c.max_abs_dev)
        raise CheckFailed(f"{len(failed)} of {len(checks)} models outside tolerance; largest deviation "
                          f"{worst.max_abs_dev:.3g} ({worst.model}, atol {worst.atol:g}; vectors written with "
                          f"onnxruntime {worst.written_with}, running {worst.running})")
    if args.output:
        write_text_atomic(Path(args.output), text + "\n")
        write_json_atomic(Path(args.output).with_suffix(".json"), checks_json(checks))


# -- reweighting: yields of new hypotheses from selected events ---------------------
def cmd_reweight(args: argparse.Namespace, ctx: Context) -> None:
    """Reweight a source point's selected events to a target point: yields and diagnostics."""
    from recastflow.core.io import write_json_atomic
    from recastflow.analyses.bundle import load_grid
    from recastflow.core.config import validate
    from recastflow.reweight.reweighting import load_spec, reweight_selected, target_parameters

    grid, _ = ctx.grid(args.grid)
    point = grid.point(args.point)
    ref = point.reweight
    if ref is None:
        raise RecastError(f"point {point.name} has no 'reweight' section", path=str(grid.path))
    index = [p.name for p in grid.points].index(point.name)
    load_grid(ref.source[0], ctx.signals_dir).point(ref.source[1])  # the source must exist
    spec = load_spec(ref.spec)
    params = target_parameters(spec, ref.parameters, point.values, source=str(grid.path),
                               fld=f"points[{index}].reweight")
    t0 = time.perf_counter()
    yields, diag = reweight_selected(Path(args.input), spec, params, point=point.name)
    if diag["source"]["point"] != ref.source[1]:
        raise RecastError(f"holds the selected events of point {diag['source']['point']!r}, but {point.name} is "
                          f"reweighted from {'/'.join(ref.source)}", path=args.input)
    diag["source"]["grid_point"] = "/".join(ref.source)
    outdir = Path(args.outdir)
    validate(yields, "yields", outdir / "yields.json")
    write_json_atomic(outdir / "diagnostics.json", diag)
    write_json_atomic(outdir / "yields.json", yields)
    _log(f"{grid.name}/{point.name}: reweighted {diag['n_selected']} selected events of {'/'.join(ref.source)} with "
         f"{spec.name} {params} in {time.perf_counter() - t0:.2f} s: ESS fraction {diag['ess_fraction']:.3f}, "
         f"largest weight share {diag['max_weight_share']:.3f} -> {diag['verdict']}")
    for reason in diag["reasons"]:
        _log(f"  flagged: {reason}")


def cmd_check_reweight(args: argparse.Namespace, ctx: Context) -> None:
    """Reweighting closure: reweighted yields against yields generated directly at the same hypothesis."""
    from recastflow.core.io import read_json, write_json_atomic, write_text_atomic
    from recastflow.reweight.reweighting import CLOSURE_FORMAT, closure_rows, format_closure

    grid, _ = ctx.grid(args.grid)
    rows = []
    for point in grid.points:
        ref = point.reweight
        if ref is None or ref.compare_with is None:
            continue
        direct = ctx.grid(ref.compare_with[0])[0].point(ref.compare_with[1])
        rows += closure_rows(point.name, "/".join(ref.compare_with), read_json(point.yields), read_json(direct.yields))
    if not rows:
        raise RecastError(f"no point of grid {grid.name} has reweight.compare_with", path=str(grid.path))
    text = format_closure(rows)
    print(text)
    out = Path(args.output)
    write_json_atomic(out.with_suffix(".json"), {"format": CLOSURE_FORMAT, "grid": grid.name, "rows": [
        {"point": r.point, "direct": r.direct, "region": r.region, "reweighted": r.reweighted,
         "reweighted_stat": r.reweighted_stat, "value": r.value, "value_stat": r.value_stat, "pull": r.pull,
         "passed": r.passed} for r in rows]})
    failed = [r for r in rows if not r.passed]
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(rows)} reweighted region totals of {grid.name} do not close on "
                          "the directly generated yields (table above)")
    write_text_atomic(out, text + "\n")


def cmd_fetch(args: argparse.Namespace, ctx: Context) -> None:
    """Fetch bundles' published files into the cache (mirror folders first, then the network), verified."""
    from recastflow.analyses.bundle import fetch_bundles

    fetch_bundles(args.analyses, ctx.analyses_dir, manifest=Path(args.manifest) if args.manifest else None, log=_log)


def cmd_catalogue(args: argparse.Namespace, ctx: Context) -> None:
    """List every bundle: paper, what it supports, its validation and its sources (Markdown)."""
    from recastflow.analyses.catalogue import catalogue, markdown
    from recastflow.core.io import write_text_atomic

    text = markdown(catalogue(ctx.analyses_dir, ctx.signals_dir))
    if args.output:
        write_text_atomic(Path(args.output), text)
    else:
        print(text, end="")


# -- parser -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = argparse.ArgumentParser(prog="recastflow", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="run configuration (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace, Context], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=fn)
        return p

    add("validate", cmd_validate, "validate the configuration, grids, bundles and workspace checksums")
    p = add("patch", cmd_patch, "build a grid's signal PatchSet (from yields, published patches or a patchset)")
    p.add_argument("--grid", required=True)
    p.add_argument("--output", required=True)
    p = add("extract-yields", cmd_extract_yields, "write the signal yields of a point's published patch")
    p.add_argument("--grid", required=True)
    p.add_argument("--point", required=True)
    p.add_argument("--output", required=True)
    p = add("generate", cmd_generate, "generate one chunk of a point's events with Pythia 8")
    p.add_argument("--grid", required=True)
    p.add_argument("--point", required=True)
    p.add_argument("--chunk", type=int, default=0, help="chunk index (default: %(default)s)")
    p.add_argument("--output", required=True, help="event file (.parquet)")
    p = add("handoff", cmd_handoff, "validate and convert a point's events made elsewhere (LHE, HepMC3, Delphes)")
    p.add_argument("--grid")
    p.add_argument("--point")
    p.add_argument("--manifest", help="convert this manifest's file on its own (no grid needed)")
    p.add_argument("--seed", type=int, default=1, help="shower seed with --manifest (default: %(default)s)")
    p.add_argument("--output", required=True, help="event file (.parquet)")
    p = add("emulate", cmd_emulate, "detector emulation of one chunk of events")
    p.add_argument("--grid", required=True)
    p.add_argument("--point", required=True)
    p.add_argument("--chunk", type=int, default=0, help="chunk index, for the seed (default: %(default)s)")
    p.add_argument("--input", required=True, help="particle-level event file")
    p.add_argument("--output", required=True, help="reconstructed event file (.parquet)")
    p = add("select", cmd_select, "event selection: cutflows, yields per region and bin, selected events")
    p.add_argument("--grid", required=True)
    p.add_argument("--point", required=True)
    p.add_argument("--inputs", nargs="+", required=True, help="reconstructed event files (all chunks of the point)")
    p.add_argument("--outdir", required=True, help="folder for yields.json, cutflow.json, selected.parquet")
    p = add("check-yields", cmd_check_yields, "compare a grid's yields with the bundle's published signal patches")
    p.add_argument("--grid", required=True)
    p.add_argument("--inputs", nargs="+", required=True, help="yields.json files of the grid's points")
    p.add_argument("--output", required=True, help="table (.txt); .json and .png/.pdf are written next to it")
    p = add("reweight", cmd_reweight, "reweight a source point's selected events to a target point's hypothesis")
    p.add_argument("--grid", required=True)
    p.add_argument("--point", required=True, help="the target point (it has a 'reweight' section)")
    p.add_argument("--input", required=True, help="selected.parquet of the source point")
    p.add_argument("--outdir", required=True, help="folder for yields.json and diagnostics.json")
    p = add("check-reweight", cmd_check_reweight, "reweighting closure: reweighted against directly generated yields")
    p.add_argument("--grid", required=True)
    p.add_argument("--output", required=True, help="table (.txt); the .json is written next to it")
    p = add("limits", cmd_limits, "CLs with expected band (and optionally upper limits) for one point or a batch")
    p.add_argument("--grid", required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--point", help="one point: the output is its record")
    which.add_argument("--points", nargs="+", help="a batch: the output lists their records")
    p.add_argument("--patchset", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--upper-limit", action="store_true",
                   help="also compute 95%% CL upper limits (default: for the points the config's upper_limits names)")
    p.add_argument("--upper-limit-points", nargs="*", metavar="POINT",
                   help="compute upper limits for these points (default: those the config's upper_limits names)")
    p.add_argument("--method", choices=["fast", "exact"],
                   help="fast: one compiled likelihood for the batch; exact: pyhf's own fits (default: config limits.method)")
    p = add("table", cmd_table, "collect a grid's point results into tables and the exclusion plot")
    p.add_argument("--grid", required=True)
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--outdir", required=True)
    p = add("fitplots", cmd_fitplots, "cabinetry pre-/post-fit plots and pulls for one point")
    p.add_argument("--grid", required=True)
    p.add_argument("--point", required=True)
    p.add_argument("--patchset", required=True)
    p.add_argument("--outdir", required=True)
    p = add("check", cmd_check, "compare results with an analysis bundle's reference values")
    p.add_argument("--analysis", required=True)
    p.add_argument("--results", nargs="+", required=True, help="limits.json files of the grids")
    p.add_argument("--output", required=True)
    p = add("report", cmd_report, "write the HTML report")
    p.add_argument("--tables", nargs="*", default=[])
    p.add_argument("--checks", nargs="*", default=[])
    p.add_argument("--fitplots", nargs="*", default=[])
    p.add_argument("--yield-checks", nargs="*", default=[], help="check-yields tables (.txt; .json/.png beside)")
    p.add_argument("--cutflows", nargs="*", default=[], help="cutflow.json files of front-end points")
    p.add_argument("--reweight", nargs="*", default=[], help="diagnostics.json files of reweighted points")
    p.add_argument("--reweight-checks", nargs="*", default=[], help="reweighting closure tables (.txt; .json beside)")
    p.add_argument("--output", required=True)
    p = add("archive", cmd_archive, "pack the workflow, inputs, results and their manifest into one .tar.gz")
    p.add_argument("--output", required=True, help="the archive, e.g. archive/recastflow-run.tar.gz")
    p.add_argument("--results", default="results", help="results folder of the finished run (default: %(default)s)")
    p = add("unarchive", cmd_unarchive, "extract an archive safely into an empty folder and verify it")
    p.add_argument("archive")
    p.add_argument("--into", required=True, help="new or empty folder to extract into")
    p.set_defaults(needs_config=False)  # read by main() once it skips the config for such commands
    p = add("model-inspect", cmd_model_inspect,
            "show an ONNX model's inputs, outputs, opset and producer, and whether its contract agrees")
    p.add_argument("--selection", help="selection file declaring the models (their contracts)")
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--onnx", help="inspect this ONNX file on its own, without a contract")
    p.set_defaults(needs_config=False)
    p = add("model-vectors", cmd_model_vectors, "write models' validation vectors from events of a trusted run")
    p.add_argument("--selection", required=True)
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--events", nargs="+", required=True, help="reconstructed event files")
    p.add_argument("--max-rows", type=int, default=200, help="input rows per model (default: %(default)s)")
    p.add_argument("--atol", type=float, default=1e-6, help="tolerance on the score (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing vectors")
    p.set_defaults(needs_config=False)
    p = add("model-check", cmd_model_check, "check models against their validation vectors (largest deviation)")
    p.add_argument("--selection", required=True)
    p.add_argument("--model", nargs="*", help="only these models (default: all)")
    p.add_argument("--output", help="table (.txt); a .json is written next to it")
    p.set_defaults(needs_config=False)
    p = add("fetch", cmd_fetch, "fetch analysis bundles' published files (sha256 and digest checked) into the cache")
    p.add_argument("analyses", nargs="*", metavar="ANALYSIS-ID", help="bundles to fetch (default: all)")
    p.add_argument("--manifest", help="write what was fetched, and where it is, to this JSON file")
    p = add("catalogue", cmd_catalogue, "list the analysis bundles: what each supports, its validation, its sources")
    p.add_argument("--output", help="write the Markdown table here instead of printing it")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 1."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # BLAS threads make pyhf fits 2-5x slower here
    try:
        ctx = Context.load(Path(args.config)) if getattr(args, "needs_config", True) else None
        from recastflow.core.io import confine_arguments

        # every path of the command (options, and those in the files it reads) stays in the project,
        # the cache, the mirrors or the config's allowed_paths, also through symbolic links
        with confine_arguments(args, ctx.config if ctx else None, args.config if ctx else None):
            args.func(args, ctx)
    except RecastError as exc:
        print(f"recastflow {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"recastflow {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
