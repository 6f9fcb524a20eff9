"""Assemble the run's HTML report from the stage outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recastflow.io import read_json
from recastflow.limits import table_rows
from recastflow.report import ReportSection, write_report

_SHOWN = ("point", "status", "cls_obs", "cls_exp", "cls_exp_m1", "cls_exp_p1", "xsec_pb", "mu_ul_obs", "mu_ul_exp",
          "xsec_ul_obs_pb", "xsec_ul_exp_pb", "issues")


def _grid_section(table: Path) -> ReportSection:
    doc = read_json(table)
    params = doc.get("parameters") or (list(doc["points"][0]["values"]) if doc["points"] else [])
    rows = table_rows(doc["points"], params)
    shown = [{k: r[k] for k in ("point", *params, *_SHOWN[1:]) if k in r} for r in rows]
    s = doc["summary"]
    text = (f"{len(rows)} points: {s['trusted']} trusted, {s['flagged']} flagged, {s['failed']} failed. "
            "Flagged points had a fit that did not converge cleanly, ended on a parameter bound or never moved; "
            "they are listed with the reason and left out of the exclusion contours.")
    plot = table.parent / "exclusion.png"
    images = [(plot, f"Exclusion in the grid plane: observed (solid), expected (dashed) with ±1σ band, "
                     f"CLs at μ=1, asymptotic q̃μ. Analysis {doc['analysis']}, grid {doc['grid']}.")] \
        if plot.is_file() else []
    return ReportSection(heading=f"{doc['analysis']} — {doc['grid']}", text=text, table=shown, images=images)


def _check_section(path: Path) -> ReportSection:
    rows: list[dict[str, Any]] = read_json(path.with_suffix(".json"))
    table = [{"point": f"{r['grid']}/{r['point']}", "quantity": r["quantity"], "value": r["value"],
              "reference": r["reference"], "rel. deviation": (r["value"] / r["reference"] - 1) if r["value"] else None,
              "rtol": r["rtol"], "status": "trusted" if r["passed"] else "failed", "source": r["source"]} for r in rows]
    n_ok = sum(r["passed"] for r in rows)
    return ReportSection(heading=f"Regression check: {path.stem}",
                         text=f"{n_ok} of {len(rows)} reference values reproduced within tolerance.", table=table)


def _fitplot_section(folder: Path) -> ReportSection:
    images = [(p, f"{folder.parent.parent.name}/{folder.name}: {p.stem.replace('_', ' ')} (cabinetry)")
              for p in sorted(folder.glob("*.png"))]
    return ReportSection(heading=f"Fit plots: {folder.parent.parent.name}/{folder.name}",
                         text="Pre- and post-fit data/MC per channel and nuisance-parameter pulls of a fit with the "
                              "signal strength free.", images=images)


def build_report(ctx: Any, *, tables: list[Path], checks: list[Path], fitplot_dirs: list[Path], output: Path) -> None:
    """Write the HTML report.

    Args:
        ctx: the CLI context (run configuration).
        tables: limits.json of each grid.
        checks: check reports (``.txt``; the ``.json`` beside each is read).
        fitplot_dirs: folders of cabinetry plots.
        output: the HTML file.
    """
    sections = [_grid_section(t) for t in tables]
    sections += [_check_section(c) for c in checks]
    sections += [_fitplot_section(d) for d in fitplot_dirs]
    write_report(output, title="recastflow: reinterpretation report", sections=sections)
