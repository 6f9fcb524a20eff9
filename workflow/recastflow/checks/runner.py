"""One runner for every check: table -> print -> raise -> write, in that order, for all of them.

A check (reference values, front-end yields, reweighting closure, ML validation vectors) is
built as a :class:`CheckResult`; :func:`run_check` prints its table, fails on a value outside
tolerance before anything is written (so that a failed check leaves no output the workflow could
take for a pass) and then writes the files the caller names: plot, JSON, text table last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recastflow.core.errors import CheckFailed, RecastError
from recastflow.core.io import read_json, write_json_atomic, write_text_atomic


@dataclass(frozen=True)
class CheckResult:
    """A check's outcome before anything is written.

    Attributes:
        text: the table a reader sees (printed, and written as the text output).
        records: the JSON document of the rows.
        failure: why the check failed (one line), or ``None`` if it passed.
        plot: draws the check's figure as (PNG, PDF), for checks that have one.
    """

    text: str
    records: Any
    failure: str | None = None
    plot: Callable[[Path, Path | None], None] | None = None
    #: draws a second figure, a summary (PNG, PDF), for checks that have one
    summary: Callable[[Path, Path | None], None] | None = None


@dataclass(frozen=True)
class CheckOutputs:
    """The files a check command writes, each named by the caller (the rule declares them all).

    Attributes:
        table: the text table.
        json: the rows as JSON.
        plot: the figure as PNG (checks with a figure).
        plot_pdf: the figure as PDF.
        summary: the summary figure as PNG (checks with one).
        summary_pdf: the summary figure as PDF.
    """

    table: Path | None = None
    json: Path | None = None
    plot: Path | None = None
    plot_pdf: Path | None = None
    summary: Path | None = None
    summary_pdf: Path | None = None


def run_check(result: CheckResult, outputs: CheckOutputs, *, write_failed: bool = False, fail: bool = True) -> None:
    """Print the table, fail if the check failed, then write the outputs.

    Args:
        result: the check's outcome.
        outputs: the files to write.
        write_failed: write the outputs of a failed check too (its table then ends with a line
            ``CHECK FAILED: ...``), before failing: for checks whose table and plot are what the
            reader needs to see why (the front-end yield check).
        fail: raise on a failed check (False: the caller decides, e.g. a workflow step that fails later).

    Raises:
        CheckFailed: if a value is outside its tolerance (and ``fail``); nothing is written then,
            unless ``write_failed``.
    """
    print(result.text)
    text = result.text
    if result.failure is not None:
        if not write_failed and fail:
            raise CheckFailed(result.failure)
        text += f"\nCHECK FAILED: {result.failure}"
        print(f"CHECK FAILED: {result.failure}")
    _write_outputs(result, outputs, text)
    if result.failure is not None and fail:
        raise CheckFailed(result.failure)


def _write_outputs(result: CheckResult, outputs: CheckOutputs, text: str) -> None:
    """Write plot, JSON and table (last: its presence means the others are complete)."""
    if outputs.plot is not None and result.plot is not None:
        result.plot(outputs.plot, outputs.plot_pdf)
    if outputs.summary is not None and result.summary is not None:
        result.summary(outputs.summary, outputs.summary_pdf)
    if outputs.json is not None:
        write_json_atomic(outputs.json, result.records)
    if outputs.table is not None:
        write_text_atomic(outputs.table, text + "\n")


def check_references(analysis: Any, results: list[Path], grids: list[str], outputs: CheckOutputs) -> None:
    """Compare a bundle's reference values with the run's limit tables.

    Args:
        analysis: the bundle.
        results: limits.json tables of the run's grids.
        grids: the run's grids (references of other grids are not checked).
        outputs: where the table and the JSON go.
    """
    from recastflow.checks.references import compare, format_table

    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in results:
        for rec in read_json(path)["points"]:
            found[(rec["grid"], rec["point"])] = rec
    refs = tuple(r for r in analysis.references if r.grid in grids)
    rows = compare(refs, found)
    failed = [r for r in rows if not r.passed]
    run_check(
        CheckResult(
            text=f"Regression check of {analysis.id} ({len(refs)} references)\n" + format_table(rows),
            records=[
                {
                    "grid": r.grid,
                    "point": r.point,
                    "quantity": r.quantity,
                    "value": r.value,
                    "reference": r.reference,
                    "rtol": r.rtol,
                    "atol": r.atol,
                    "passed": r.passed,
                    "note": r.note,
                    "source": r.source,
                }
                for r in rows
            ],
            failure=f"{len(failed)} of {len(rows)} values of {analysis.id} outside tolerance (table above)"
            if failed
            else None,
        ),
        outputs,
    )


def check_yields(grid: Any, analysis: Any, inputs: list[Path], outputs: CheckOutputs, *, fail: bool = True) -> None:
    """Compare a grid's front-end yields with the published signal patches of its bundle.

    The table, JSON and plot are written whether the check passes or fails (a failed check's
    table ends with ``CHECK FAILED``, its JSON rows say ``passed: false``, its plot's panel FAIL).

    Args:
        grid: the grid.
        analysis: its bundle (with ``yield_references`` for the grid's workspace).
        inputs: yields files of the grid's front-end points.
        outputs: where the table, JSON and plot go.
        fail: raise when a point is outside tolerance (False: the workflow's verdict step,
            :func:`yields_verdict`, fails the run at its end instead).

    Raises:
        CheckFailed: if a gated point is outside tolerance and ``fail``, after writing the outputs.
    """
    import sys

    from recastflow.checks.yields import (
        compare_yields,
        failure_of,
        format_yield_table,
        plot_yield_summary,
        plot_yields,
        rows_to_json,
    )

    refs = analysis.references_for(grid.workspace)
    if refs is None:
        raise RecastError(
            f"analysis {analysis.id} has no 'yield_references' for workspace {grid.workspace}",
            path=str(analysis.folder / "analysis.yaml"),
            field=f"workspaces.{grid.workspace}.yield_references",
        )
    given = {Path(p) for p in inputs}
    files = {p.name: p.yields for p in grid.points if p.from_events and p.yields in given}
    bkg = analysis.workspace(grid.workspace, source=grid.path).load()
    rows = compare_yields(grid, analysis, files, bkg)
    if not rows:
        raise RecastError(
            f"no point of grid {grid.name} has a published signal patch to compare with", path=str(grid.path)
        )
    for r in rows:
        if r.warning:
            print(f"[recastflow] warning: {grid.name}/{r.point}: {r.warning}", file=sys.stderr)
    run_check(
        CheckResult(
            text=format_yield_table(rows, analysis, refs),
            records=rows_to_json(rows),
            failure=failure_of(rows),
            plot=lambda png, pdf: plot_yields(rows, analysis, refs, png, pdf),
            summary=lambda png, pdf: plot_yield_summary(rows, analysis, refs, grid, png, pdf),
        ),
        outputs,
        write_failed=True,
        fail=fail,
    )


def yields_verdict(check_json: Path, output: Path) -> None:
    """The verdict of a written yield check: fail if a gated point is outside tolerance, else write ``output``.

    The workflow runs it after the rest of the run, so that a failed yield check fails the run
    without stopping the other points' limits or the report (which shows the failure).

    Args:
        check_json: the JSON of ``recastflow check-yields``.
        output: a one-line marker written when every gated point passed.

    Raises:
        CheckFailed: naming the failed points.
    """
    rows = read_json(check_json)
    failed = [r["point"] for r in rows if r["gated"] and not r["passed"]]
    if failed:
        raise CheckFailed(
            f"{len(failed)} of {len(rows)} points' signal-region yields outside tolerance ({', '.join(failed)}); "
            f"table and plot next to {check_json}"
        )
    gated = sum(1 for r in rows if r["gated"])
    write_text_atomic(output, f"yield check passed: {gated} of {gated} gated points within tolerance\n")


def check_closure(grid: Any, direct_point: Callable[[str, str], Any], outputs: CheckOutputs) -> None:
    """Reweighting closure: a grid's reweighted yields against yields generated at the same hypothesis.

    Args:
        grid: the grid of reweighted points.
        direct_point: looks up the directly generated point, by grid and point name.
        outputs: where the table and the JSON go.
    """
    from recastflow.reweight.reweighting import CLOSURE_FORMAT, closure_rows, format_closure

    rows = []
    for point in grid.points:
        ref = point.reweight
        if ref is None or ref.compare_with is None:
            continue
        direct = direct_point(*ref.compare_with)
        rows += closure_rows(point.name, "/".join(ref.compare_with), read_json(point.yields), read_json(direct.yields))
    if not rows:
        raise RecastError(f"no point of grid {grid.name} has reweight.compare_with", path=str(grid.path))
    failed = [r for r in rows if not r.passed]
    run_check(
        CheckResult(
            text=format_closure(rows),
            records={
                "format": CLOSURE_FORMAT,
                "grid": grid.name,
                "rows": [
                    {
                        "point": r.point,
                        "direct": r.direct,
                        "region": r.region,
                        "reweighted": r.reweighted,
                        "reweighted_stat": r.reweighted_stat,
                        "value": r.value,
                        "value_stat": r.value_stat,
                        "pull": r.pull,
                        "passed": r.passed,
                    }
                    for r in rows
                ],
            },
            failure=f"{len(failed)} of {len(rows)} reweighted region totals of {grid.name} do not close on "
            "the directly generated yields (table above)"
            if failed
            else None,
        ),
        outputs,
    )


def check_models(selection: Path, models: list[Any], outputs: CheckOutputs) -> None:
    """Re-run ML models on their validation vectors; fail if a score moved beyond tolerance.

    Args:
        selection: the selection file declaring the models (for messages).
        models: the models to check.
        outputs: where the table and the JSON go.
    """
    from recastflow.select.mlmodels import check_vectors, checks_json, format_checks

    checks = [check_vectors(m) for m in models if m.vectors is not None]
    if not checks:
        raise RecastError("no model names a 'vectors' file to check", path=str(selection), field="models")
    failed = [c for c in checks if not c.passed]
    failure = None
    if failed:
        worst = max(failed, key=lambda c: c.max_abs_dev)
        failure = (
            f"{len(failed)} of {len(checks)} models outside tolerance; largest deviation "
            f"{worst.max_abs_dev:.3g} ({worst.model}, atol {worst.atol:g}; vectors written with "
            f"onnxruntime {worst.written_with}, running {worst.running})"
        )
    run_check(
        CheckResult(
            text=f"Validation vectors of {selection} ({len(checks)} models)\n" + format_checks(checks),
            records=checks_json(checks),
            failure=failure,
        ),
        outputs,
    )
