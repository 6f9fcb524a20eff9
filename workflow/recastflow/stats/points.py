"""Limits of a batch of points and a grid's table: what ``recastflow limits`` and ``table`` do.

The CLI parses the options and calls :func:`compute_limits` or :func:`write_table`; every
decision about a point (its cross-section, the flags it inherits from the front end, whether it
gets upper limits) is taken here, from the files the caller names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recastflow.core.errors import RecastError
from recastflow.core.io import read_json, write_json_atomic, write_text_atomic
from recastflow.stats.limits import BATCH_FORMAT, PointResult, evaluate_point, rows_to_csv, summary, table_rows

Log = Callable[[str], None]


@dataclass(frozen=True)
class LimitSettings:
    """How a limits job computes CLs: the run configuration's ``cl``, ``limits`` and ``fit``.

    Attributes:
        cl: confidence level of exclusions and upper limits.
        method: ``"fast"`` or ``"exact"`` (see :data:`recastflow.stats.limits.METHODS`).
        fallback: what a point gets when the fast method cannot reproduce its likelihood.
        verify: which points get verification fits.
        fit_options: options of the optimiser (``maxiter``, ``tolerance``).
    """

    cl: float
    method: str
    fallback: str
    verify: str
    fit_options: dict[str, Any] = field(default_factory=dict)


def reweight_verdicts(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """The diagnostics files of reweighted points, by the point they were written for.

    Raises:
        RecastError: if a file names no point, or two name the same one.
    """
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        doc = read_json(path)
        name = doc.get("point") if isinstance(doc, dict) else None
        if not isinstance(name, str):
            raise RecastError(
                "names no 'point': not a diagnostics file of `recastflow reweight`", path=str(path), field="point"
            )
        if name in out:
            raise RecastError(f"a second diagnostics file for point {name!r}", path=str(path), field="point")
        out[name] = doc
    return out


def point_record(
    grid: Any, analysis: Any, point: Any, *, cl: float, diagnostics: dict[str, Any] | None = None
) -> PointResult:
    """A point's record before its fits: identity, cross-section and the flags it inherits.

    Args:
        grid: the point's grid.
        analysis: the grid's bundle.
        point: the point.
        cl: the run's confidence level.
        diagnostics: the reweighting diagnostics of the point (``recastflow reweight``), if reweighted.
    """
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
        analysis=analysis.id,
        grid=grid.name,
        point=point.name,
        workspace=grid.workspace,
        values=point.values,
        xsec_pb=xsec_pb,
        xsec_source=xsec_source,
        cl=cl,
    )
    # a workspace whose signal from events is not validated flags every point made here (published patches are
    # ATLAS's own signal and are not affected)
    caveat = analysis.events_caveat(grid.workspace) if made_here else None
    if caveat is not None:
        record.issues.append(caveat)
    # a reweighting that cannot be trusted (too small an effective sample) flags the point's limits too
    if point.reweight is not None and diagnostics is not None and diagnostics.get("verdict") not in (None, "ok"):
        reasons = diagnostics.get("reasons") or [diagnostics["verdict"]]
        record.issues.append("reweighting flagged: " + "; ".join(reasons))
    return record


def compute_limits(
    grid: Any,
    analysis: Any,
    names: list[str],
    *,
    patchset: Path,
    output: Path,
    single: bool,
    upper_limit_points: set[str],
    settings: LimitSettings,
    diagnostics: list[Path],
    log: Log,
) -> list[dict[str, Any]]:
    """CLs (observed, expected band) and the requested upper limits of a batch of points, written to ``output``.

    A batch shares one compiled likelihood per workspace structure (method ``fast``), so the cost of
    compiling is paid once per job, not once per point.

    Args:
        grid: the points' grid.
        analysis: the grid's bundle.
        names: the points, in order (repeats are dropped).
        patchset: the grid's PatchSet (``recastflow patch``).
        output: the JSON file to write: one record (``single``) or a batch document.
        single: write the one point's record instead of a batch document.
        upper_limit_points: points that also get upper limits (the caller's list is the truth).
        settings: the limit settings of the run.
        diagnostics: reweighting diagnostics files of the batch's reweighted points.
        log: where progress lines go.

    Returns:
        The points' records.
    """
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.stats.patching import patches_by_name, shared_copy

    names = list(dict.fromkeys(names))
    points = [grid.point(n) for n in names]
    verdicts = reweight_verdicts(diagnostics)
    unknown = sorted(set(upper_limit_points) - set(names))
    if unknown:
        raise RecastError(
            f"upper limits asked for point(s) {', '.join(unknown)}, which the batch does not hold",
            field="--upper-limit-points",
        )
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    bkg = wsref.load(validate=False)  # patched spec is validated
    ops_of = patches_by_name(read_json(patchset), bkg, names, str(patchset))
    bkg = shared_copy(bkg)  # the points' models share the workspace instead of copying it each
    # fast: one compilation per structure for the batch; exact: only for verification fits
    compiler = LikelihoodCompiler()
    checks = {"fallback": settings.fallback, "verify": settings.verify}
    records = []
    t_all = time.perf_counter()
    for i, point in enumerate(points, 1):
        record = point_record(grid, analysis, point, cl=settings.cl, diagnostics=verdicts.get(point.name))
        t0 = time.perf_counter()
        evaluate_point(
            bkg,
            ops_of[point.name],
            record,
            upper_limit=point.name in upper_limit_points,
            fit_options=dict(settings.fit_options),
            source=str(patchset),
            method=settings.method,
            compiler=compiler,
            analysis=analysis,
            wsref=wsref,
            **checks,
        )
        records.append(record.to_dict())
        msg = f"[{i}/{len(points)}] {grid.name}/{point.name}: {record.status} (method {record.method})"
        if record.cls_obs is not None and record.cls_exp is not None:
            msg += f", CLs_obs={record.cls_obs:.4g}, CLs_exp={record.cls_exp[2]:.4g}"
        if record.mu_ul_obs is not None and record.mu_ul_exp is not None:
            msg += f", mu_UL={record.mu_ul_obs:.4g} (exp {record.mu_ul_exp[2]:.4g})"
        log(msg + f" [{time.perf_counter() - t0:.2f} s]")
        for issue in record.issues:
            log(f"  flagged: {issue}")
    if single:
        write_json_atomic(output, records[0])
    else:
        write_json_atomic(
            output, {"format": BATCH_FORMAT, "grid": grid.name, "method": settings.method, "points": records}
        )
    extra = f", {compiler.compiled} likelihood compilation(s)" if compiler.compiled else ""
    fallbacks = sum(1 for r in records if r.get("fallback"))
    if fallbacks:
        extra += f"; {fallbacks} point(s) NOT computed with method {settings.method} (fallback stated per point)"
    log(f"{len(points)} point(s) in {time.perf_counter() - t_all:.1f} s (method {settings.method}{extra}) -> {output}")
    return records


def write_table(
    grid: Any,
    analysis: Any,
    inputs: list[Path],
    *,
    cl: float,
    json_out: Path,
    csv_out: Path,
    plot: Path | None,
    plot_pdf: Path | None,
    log: Log,
    hepdata: dict[str, Path] | None = None,
) -> dict[str, int]:
    """Collect a grid's point records into its JSON and CSV tables and its exclusion plot.

    Args:
        grid: the grid.
        analysis: the grid's bundle.
        inputs: batch files of ``recastflow limits --points`` or single-point records.
        cl: the run's confidence level (the plot's exclusion level is ``1 - cl``).
        json_out: the table as JSON.
        csv_out: the table as CSV.
        plot: the exclusion plot (PNG); required when the grid declares a ``plot``.
        plot_pdf: the same plot as PDF (default: ``plot`` with the suffix ``.pdf``).
        log: where the summary line goes.
        hepdata: the HEPData submission's files (``submission``, ``limits``, ``contour_obs``,
            ``contour_exp``; :func:`recastflow.report.hepdata.write_submission`), or None for none.

    Returns:
        The counts of trusted, flagged, failed and fallback points.
    """
    records: list[dict[str, Any]] = []
    for path in inputs:
        doc = read_json(path)
        records.extend(doc["points"] if isinstance(doc, dict) and doc.get("format") == BATCH_FORMAT else [doc])
    order = {p.name: i for i, p in enumerate(grid.points)}
    records.sort(key=lambda r: order.get(r["point"], len(order)))
    counts = summary(records)
    params = list(grid.parameters)
    table: dict[str, Any] = {
        "analysis": analysis.id,
        "grid": grid.name,
        "parameters": params,
        "summary": counts,
        "points": records,
    }
    ours: dict[str, Any] = {"observed": None, "expected": None}
    official = None
    if grid.plot:
        from recastflow.report.official import compare_with_official
        from recastflow.report.plots import exclusion_contours

        # the contours the plot draws, as coordinates: for HEPData and the comparison with ATLAS's
        ours = exclusion_contours(records, grid.plot[0], grid.plot[1], level=1 - cl)
        official, table["official_comparison"] = compare_with_official(grid, analysis, ours, log)
    write_json_atomic(json_out, table)
    write_text_atomic(csv_out, rows_to_csv(table_rows(records, params)))
    if hepdata is not None:
        from recastflow.report.hepdata import write_submission

        write_submission(
            records,
            grid,
            analysis,
            cl=cl,
            submission=hepdata["submission"],
            limits=hepdata["limits"],
            contour_obs=hepdata["contour_obs"],
            contour_exp=hepdata["contour_exp"],
            contours=ours,
        )
    if grid.plot:
        if plot is None:
            raise RecastError(f"grid {grid.name} declares a plot: give the file to draw it in", field="--plot")
        from recastflow.report.plots import plot_exclusion

        x, y = grid.plot
        plot_exclusion(
            records,
            x,
            y,
            plot,
            pdf=plot_pdf,
            title=f"{analysis.id} {grid.workspace}: {grid.name}",
            xlabel=grid.parameters[x]["label"],
            ylabel=grid.parameters[y]["label"],
            level=1 - cl,
            official=(official.observed, official.expected) if official is not None else (),
            official_notes=official.notes if official is not None else (),
            sqrt_s_tev=getattr(analysis, "sqrt_s_tev", None),
            luminosity_ifb=getattr(analysis, "luminosity_ifb", None),
        )
    fallback = f", {counts['fallback']} computed with a fallback method" if counts["fallback"] else ""
    log(
        f"{grid.name}: {len(records)} points: {counts['trusted']} trusted, {counts['flagged']} flagged, "
        f"{counts['failed']} failed{fallback} -> {json_out}"
    )
    return counts
