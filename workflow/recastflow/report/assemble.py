"""Assemble the run's HTML report from the stage outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recastflow.core.errors import RecastError
from recastflow.core.io import read_json
from recastflow.report.html import ReportSection, write_report
from recastflow.stats.limits import table_rows

_SHOWN = (
    "point",
    "status",
    "method",
    "cls_obs",
    "cls_exp",
    "cls_exp_m1",
    "cls_exp_p1",
    "xsec_pb",
    "mu_ul_obs",
    "mu_ul_exp",
    "xsec_ul_obs_pb",
    "xsec_ul_exp_pb",
    "issues",
)


def _grid_section(table: Path, plot: Path | None) -> ReportSection:
    doc = read_json(table)
    params = doc.get("parameters") or (list(doc["points"][0]["values"]) if doc["points"] else [])
    rows = table_rows(doc["points"], params)
    shown = [{k: r[k] for k in ("point", *params, *_SHOWN[1:]) if k in r} for r in rows]
    s = doc["summary"]
    fallback = s.get("fallback", 0)
    method_note = (
        f" {fallback} point(s) could not be computed with the requested method and fell back to "
        "another (column 'method'; the reason is among the point's issues)."
        if fallback
        else ""
    )
    text = (
        f"{len(rows)} points: {s['trusted']} trusted, {s['flagged']} flagged, {s['failed']} failed.{method_note} "
        "A point is flagged when a fit did not converge, ended above its start, stopped short of the minimum "
        "(slope left at its end), ended on a parameter bound, a free fit ended above a constrained one, a "
        "verification fit by another minimiser found a lower minimum, or the requested method was not used; "
        "flagged points are listed with the reason and left out of the exclusion contours."
    )
    images = (
        [
            (
                plot,
                f"Exclusion in the grid plane: observed (solid), expected (dashed) with ±1σ band, "
                f"CLs at μ=1, asymptotic q̃μ. Analysis {doc['analysis']}, grid {doc['grid']}.",
            )
        ]
        if plot is not None
        else []
    )
    return ReportSection(heading=f"{doc['analysis']} — {doc['grid']}", text=text, table=shown, images=images)


def _check_section(path: Path) -> ReportSection:
    rows: list[dict[str, Any]] = read_json(path)
    table = [
        {
            "point": f"{r['grid']}/{r['point']}",
            "quantity": r["quantity"],
            "value": r["value"],
            "reference": r["reference"],
            "rel. deviation": (r["value"] / r["reference"] - 1) if r["value"] else None,
            "rtol": r["rtol"],
            "status": "trusted" if r["passed"] else "failed",
            "source": r["source"],
        }
        for r in rows
    ]
    n_ok = sum(r["passed"] for r in rows)
    return ReportSection(
        heading=f"Regression check: {path.stem}",
        text=f"{n_ok} of {len(rows)} reference values reproduced within tolerance.",
        table=table,
    )


def _catalogue_section(path: Path) -> ReportSection:
    entries: list[dict[str, Any]] = read_json(path)["analyses"]
    table = [
        {
            "analysis": e["id"],
            "paper": e["paper"],
            "supports": ", ".join(e["supports"]),
            "validation": e["validation"],
            "grids": ", ".join(e["grids"]) or "-",
            "sources": "; ".join(e["sources"]) or "files in the bundle",
        }
        for e in entries
    ]
    return ReportSection(
        heading="Analysis catalogue",
        text=f"{len(entries)} analysis bundles: what each supports, how it is validated, where its published "
        "material comes from (origin and sha256; fetched into the cache, mirror folders first).",
        table=table,
    )


def _fitplot_section(folder: Path) -> ReportSection:
    images = [
        (p, f"{folder.parent.parent.name}/{folder.name}: {p.stem.replace('_', ' ')} (cabinetry)")
        for p in sorted(folder.glob("*.png"))
    ]
    return ReportSection(
        heading=f"Fit plots: {folder.parent.parent.name}/{folder.name}",
        text="Pre- and post-fit data/MC per channel and nuisance-parameter pulls of a fit with the "
        "signal strength free.",
        images=images,
    )


#: the report's words for a yield-check row's ``result`` (recastflow.checks.yields.YieldRow.result)
_YIELD_STATUS = {"pass": "trusted", "FAIL": "failed", "in": "info, within", "out": "info, outside", "info": "info"}


def _yield_check_section(path: Path, plot: Path | None, summary: Path | None = None) -> ReportSection:
    from recastflow.checks.yields import check_outcome

    rows: list[dict[str, Any]] = read_json(path)
    # tables written before rows carried their result: gated pass/FAIL, else info
    results = [r.get("result") or (("pass" if r["passed"] else "FAIL") if r["gated"] else "info") for r in rows]
    table = [
        {
            "point": r["point"],
            "SR total (ours)": r["sr_total"],
            "MC stat": r["sr_total_stat"],
            "SR total (ATLAS)": r["sr_total_atlas"],
            "rel. deviation": r["deviation"],
            "rtol": r["rtol"],
            "status": _YIELD_STATUS[result],
            "note": r["note"],
        }
        for r, result in zip(rows, results, strict=True)
    ]
    text = (
        f"Signal yields from the front end (generation, detector emulation, selection) against ATLAS's own "
        f"signal patches: {check_outcome(results)} in the total over the signal-region bins. The plots show the "
        "ratio over the plane and compare every bin."
    )
    images = [(summary, f"Ours / ATLAS over the plane and the deviations, {path.stem}")] if summary is not None else []
    images += [(plot, f"Signal yields per bin, {path.stem}")] if plot is not None else []
    return ReportSection(heading=f"Front-end validation: {path.stem}", text=text, table=table, images=images)


def _cutflow_section(paths: list[Path]) -> ReportSection:
    """One table: each point's expected events after the common preselection steps, then per region."""
    table = []
    for path in paths:
        doc = read_json(path)
        regions = doc.get("regions", {})
        step_lists = [[st["name"] for st in reg.get("steps", [])] for reg in regions.values()]
        common = 0  # the preselection is the longest step prefix all regions share
        while step_lists and all(len(s) > common and s[common] == step_lists[0][common] for s in step_lists):
            common += 1
        row: dict[str, Any] = {"point": f"{path.parent.parent.name}/{path.parent.name}"}
        first: dict[str, Any] = next(iter(regions.values()), {"steps": []})
        for step in first["steps"][:common]:
            row[step["name"]] = step["weighted"]
        for name, reg in regions.items():
            row[name] = sum(reg.get("yields", []))
        table.append(row)
    return ReportSection(
        heading="Front-end cutflows",
        text="Expected events (luminosity × cross-section × forced-decay BR × efficiency) after each "
        "preselection step, then in each region (sum over its bins). Full cutflows per region "
        "with raw counts: results/select/<grid>/<point>/cutflow.json.",
        table=table,
    )


def _reweight_section(diagnostics: list[Path], closures: list[Path]) -> ReportSection:
    """One table: each reweighted point's source, effective sample size, largest weight share, verdict."""
    table = []
    for path in diagnostics:
        d = read_json(path)
        table.append(
            {
                "point": f"{path.parent.parent.name}/{path.parent.name}",
                "from": d["source"].get("grid_point", d["source"].get("point")),
                "spec": d["spec"]["name"],
                "parameters": ", ".join(f"{k}={v:g}" for k, v in d["parameters"].items()) or "—",
                "selected events": d["n_selected"],
                "ESS fraction": d["ess_fraction"],
                "largest weight share": d["max_weight_share"],
                f"r > {d['r_threshold']:g}": d["fraction_above"],
                "status": "trusted" if d["verdict"] == "ok" else "flagged",
                "issues": d["reasons"],
            }
        )
    n_flagged = sum(r["status"] == "flagged" for r in table)
    text = (
        f"{len(table)} points from reweighting selected events of another point (no new simulation): "
        f"{n_flagged} flagged. A point is flagged when the effective sample size of its selected events falls "
        "below the spec's min_ess_fraction of the unweighted one, or one event carries more than "
        "max_weight_share of the reweighted sum; its yields then rest on too few events to be trusted."
    )
    for path in closures:
        rows = read_json(path)["rows"]
        worst = max((abs(r["pull"]) for r in rows if r["pull"] is not None), default=0.0)
        text += (
            f" Closure ({path.stem}): {sum(r['passed'] for r in rows)} of {len(rows)} region totals of reweighted "
            f"points agree with the directly generated ones within 3 combined standard deviations "
            f"(largest |pull| {worst:.2f})."
        )
    return ReportSection(heading="Reweighted points", text=text, table=table)


def _paired(files: list[Path], companions: list[Path], *, option: str, companion_option: str) -> list[Path | None]:
    """The companion of each file (same order), or ``None`` for all when none are given."""
    if not companions:
        return [None] * len(files)
    if len(companions) != len(files):
        raise RecastError(
            f"{len(companions)} file(s) for {len(files)} of {option}: give one per file, in the same order",
            field=companion_option,
        )
    return list(companions)


def build_report(
    *,
    tables: list[Path],
    output: Path,
    exclusion_plots: list[Path] | None = None,
    checks: list[Path] | None = None,
    yield_checks: list[Path] | None = None,
    yield_plots: list[Path] | None = None,
    yield_summaries: list[Path] | None = None,
    cutflows: list[Path] | None = None,
    reweight: list[Path] | None = None,
    reweight_checks: list[Path] | None = None,
    fitplot_dirs: list[Path] | None = None,
    catalogue: Path | None = None,
) -> None:
    """Write the HTML report from the files the caller names (nothing is looked up beside them).

    Args:
        tables: limits.json of each grid.
        output: the HTML file.
        exclusion_plots: the exclusion plot (PNG) of each table, in the same order (or none).
        checks: reference checks (JSON of ``recastflow check``).
        yield_checks: signal-yield checks (JSON of ``recastflow check-yields``).
        yield_plots: the plot (PNG) of each yield check, in the same order (or none).
        yield_summaries: the summary plot (PNG) of each yield check, in the same order (or none).
        cutflows: cutflow.json files of front-end points.
        reweight: diagnostics.json files of reweighted points.
        reweight_checks: reweighting closures (JSON of ``recastflow check-reweight``).
        fitplot_dirs: folders of cabinetry plots.
        catalogue: the analysis catalogue (JSON of ``recastflow catalogue --json``), shown last.

    Raises:
        RecastError: if plots are given, but not one per table or yield check.
    """
    plots = _paired(tables, exclusion_plots or [], option="--tables", companion_option="--exclusion-plots")
    sections = [_grid_section(t, p) for t, p in zip(tables, plots)]
    sections += [_check_section(c) for c in (checks or [])]
    ycs = yield_checks or []
    yplots = _paired(ycs, yield_plots or [], option="--yield-checks", companion_option="--yield-plots")
    ysums = _paired(ycs, yield_summaries or [], option="--yield-checks", companion_option="--yield-summaries")
    sections += [_yield_check_section(c, p, q) for c, p, q in zip(ycs, yplots, ysums)]
    if cutflows:
        sections.append(_cutflow_section(cutflows))
    if reweight:
        sections.append(_reweight_section(reweight, reweight_checks or []))
    sections += [_fitplot_section(d) for d in (fitplot_dirs or [])]
    if catalogue is not None:
        sections.append(_catalogue_section(catalogue))
    write_report(output, title="recastflow: reinterpretation report", sections=sections)
