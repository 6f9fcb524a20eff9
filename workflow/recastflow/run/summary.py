"""The verdict per model point over every analysis of a run: which analysis is most sensitive, is it excluded.

The limits tables of a run (``results/limits/<grid>/limits.json``, one per grid, i.e. per analysis and
workspace) are grouped by point name: in a model-first run every grid holds the same model points. For
each point the most sensitive result is the *trusted* one with the smallest median expected CLs (as
SModelS chooses by expected r), and the verdict is that result's observed CLs against ``1 - CL``. Taking
the best observed CLs of all analyses instead would choose after looking at the data and exclude too
often, so another analysis with CLs_obs below the level is reported, not used.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from recastflow.core.errors import RecastError
from recastflow.core.io import write_text_atomic

#: The median of the five expected CLs values (-2, -1, 0, +1, +2 sigma).
_MEDIAN = 2


@dataclass(frozen=True)
class AnalysisOutcome:
    """One analysis (grid = analysis + workspace) at one model point.

    Attributes:
        grid: the grid the result belongs to.
        analysis: the analysis ID.
        workspace: the bundle's workspace (likelihood) used.
        status: ``trusted``, ``flagged`` or ``failed`` (see the limits stage).
        cls_obs: observed CLs at the model's cross-section (mu = 1).
        cls_exp: median expected CLs.
        xsec_pb: the model's cross-section used for mu = 1, if known.
        xsec_ul_obs_pb: observed upper limit on the cross-section, if computed.
        xsec_ul_exp_pb: expected upper limit on the cross-section, if computed.
        r_obs: sigma / sigma_UL (observed) = 1 / mu_UL, if the upper limit was computed.
        r_exp: the same with the expected upper limit.
        issues: why the result is flagged or failed.
    """

    grid: str
    analysis: str
    workspace: str
    status: str
    cls_obs: float | None
    cls_exp: float | None
    xsec_pb: float | None
    xsec_ul_obs_pb: float | None
    xsec_ul_exp_pb: float | None
    r_obs: float | None
    r_exp: float | None
    issues: tuple[str, ...]

    @property
    def label(self) -> str:
        """``<analysis> (<workspace>)``."""
        return f"{self.analysis} ({self.workspace})"


@dataclass(frozen=True)
class PointVerdict:
    """The verdict at one model point.

    Attributes:
        point: the point's name.
        values: its parameter values (from the first grid that has it).
        cl: the confidence level of the exclusion.
        outcomes: every analysis's result at the point.
        most_sensitive: the grid of the trusted result with the smallest expected CLs (None if none is trusted).
        verdict: ``excluded``, ``not excluded`` or ``undecided`` (no trusted result).
        excluded_by: the analysis label that excludes the point (empty unless excluded).
        notes: what else a physicist should know (less sensitive analyses that exclude, flagged results that
            would be more sensitive, failed results).
    """

    point: str
    values: dict[str, float]
    cl: float
    outcomes: tuple[AnalysisOutcome, ...]
    most_sensitive: str | None
    verdict: str
    excluded_by: str
    notes: tuple[str, ...]


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _outcome(row: Mapping[str, Any]) -> AnalysisOutcome:
    cls_exp = row.get("cls_exp")
    mu_obs, mu_exp = _finite(row.get("mu_ul_obs")), _finite(row.get("mu_ul_exp"))
    return AnalysisOutcome(
        grid=str(row["grid"]),
        analysis=str(row.get("analysis", "")),
        workspace=str(row.get("workspace", "")),
        status=str(row.get("status", "failed")),
        cls_obs=_finite(row.get("cls_obs")),
        cls_exp=_finite(cls_exp[_MEDIAN]) if isinstance(cls_exp, list) and len(cls_exp) == 5 else None,
        xsec_pb=_finite(row.get("xsec_pb")),
        xsec_ul_obs_pb=_finite(row.get("xsec_ul_obs_pb")),
        xsec_ul_exp_pb=_finite(row.get("xsec_ul_exp_pb")),
        r_obs=1.0 / mu_obs if mu_obs else None,
        r_exp=1.0 / mu_exp if mu_exp else None,
        issues=tuple(str(i) for i in row.get("issues") or ()),
    )


def read_tables(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The point rows of the run's limits tables, in the order given.

    Args:
        paths: ``limits.json`` files written by the table stage.

    Returns:
        Every point row of every table.

    Raises:
        RecastError: a file is not a limits table.
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise RecastError(f"cannot read the limits table ({exc})", path=str(path)) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
            raise RecastError("not a limits table (no 'points' list)", path=str(path), field="points")
        rows += [r for r in doc["points"] if isinstance(r, dict) and "point" in r and "grid" in r]
    return rows


def verdicts(
    rows: Sequence[Mapping[str, Any]], *, cl: float = 0.95, caveats: Mapping[str, Sequence[str]] | None = None
) -> list[PointVerdict]:
    """Group limits rows by point and decide each point's verdict.

    Args:
        rows: point rows of limits tables (see :func:`read_tables`).
        cl: the confidence level, used when a row does not carry its own ``cl``.
        caveats: per grid, what every verdict that uses it must say (e.g. regions the selection does not fill).

    Returns:
        One verdict per point name, in order of first appearance.
    """
    by_point: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_point.setdefault(str(row["point"]), []).append(row)
    out = []
    for name, group in by_point.items():
        level_cl = float(group[0].get("cl", cl))
        outcomes = tuple(_outcome(r) for r in group)
        verdict = _decide(name, dict(group[0].get("values", {})), level_cl, outcomes)
        extra = [f"{o.label}: {c}" for o in outcomes for c in (caveats or {}).get(o.grid, ())]
        out.append(replace(verdict, notes=(*verdict.notes, *extra)) if extra else verdict)
    return out


def grid_caveats(tables: Sequence[Path], signals_dir: Path, analyses_dir: Path) -> dict[str, list[str]]:
    """What every verdict using a grid must say: the regions its analysis's selection does not fill.

    Args:
        tables: the run's limits tables (their grids are read).
        signals_dir: folder of the grids.
        analyses_dir: folder of the bundles.

    Returns:
        Grid name -> notes.
    """
    from recastflow.analyses.bundle import load_analysis, load_grid
    from recastflow.run.folder import unfilled_regions

    out: dict[str, list[str]] = {}
    for name in sorted({str(r["grid"]) for r in read_tables(tables)}):
        grid = load_grid(name, signals_dir, analyses_dir)
        if any(p.from_events for p in grid.points):
            unfilled = unfilled_regions(load_analysis(grid.analysis, analyses_dir), grid.workspace)
            out[name] = [f"no signal modelled in {r} ({why})" for r, why in unfilled.items()]
    return out


def _more_sensitive(o: AnalysisOutcome, best: AnalysisOutcome | None) -> bool:
    """Whether ``o`` has a smaller expected CLs than the deciding result ``best`` (True when there is none)."""
    return best is None or (o.cls_exp is not None and best.cls_exp is not None and o.cls_exp < best.cls_exp)


def _decide(name: str, values: dict[str, float], cl: float, outcomes: tuple[AnalysisOutcome, ...]) -> PointVerdict:
    alpha = 1.0 - cl
    trusted = [o for o in outcomes if o.status == "trusted" and o.cls_obs is not None and o.cls_exp is not None]
    notes: list[str] = []
    best = min(trusted, key=lambda o: o.cls_exp or 1.0, default=None)
    for o in outcomes:
        if o.status == "failed":
            notes.append(f"{o.label}: failed ({'; '.join(o.issues) or 'no result'})")
        elif o.status != "trusted":
            more = _more_sensitive(o, best)
            why = "; ".join(o.issues) or "not verified"
            notes.append(f"{o.label}: flagged, not used{' although more sensitive' if more else ''} ({why})")
    if best is None:
        return PointVerdict(name, values, cl, outcomes, None, "undecided", "", (*notes, "no trusted result"))
    assert best.cls_obs is not None
    excluded = best.cls_obs < alpha
    for o in trusted:
        if o is not best and o.cls_obs is not None and o.cls_obs < alpha:
            notes.append(f"{o.label} has CLs_obs = {o.cls_obs:.3g} < {alpha:.3g} but is less sensitive (not used)")
    return PointVerdict(
        point=name,
        values=values,
        cl=cl,
        outcomes=outcomes,
        most_sensitive=best.grid,
        verdict="excluded" if excluded else "not excluded",
        excluded_by=best.label if excluded else "",
        notes=tuple(notes),
    )


def _num(value: float | None, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def _fb(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.3g}"


def _flagged_exclusions(v: PointVerdict) -> str:
    """The flagged results that exclude the point and are more sensitive than the deciding one, as text ("" if none)."""
    alpha = 1.0 - v.cl
    best = next((o for o in v.outcomes if o.grid == v.most_sensitive), None)
    out = []
    for o in v.outcomes:
        if o.status in ("trusted", "failed") or o.cls_obs is None or o.cls_obs >= alpha:
            continue
        if _more_sensitive(o, best):
            out.append(f"{o.label} (CLs_obs {o.cls_obs:.3g})")
    return ", ".join(out)


def format_verdicts(items: Sequence[PointVerdict]) -> str:
    """The verdict table as text, one block per point, for the terminal and ``verdicts.txt``.

    Args:
        items: the verdicts.

    Returns:
        The table, ending with a newline.
    """
    lines = [
        "Verdict per model point: the trusted analysis with the smallest expected CLs decides (marked *);",
        "r = sigma / sigma_UL (observed) where the upper limit was computed (recastflow run --upper-limits).",
        "",
    ]
    head = (
        f"  {'analysis (workspace)':<36} {'CLs_obs':>9} {'CLs_exp':>9} {'sigma[fb]':>10} "
        f"{'UL_obs[fb]':>10} {'UL_exp[fb]':>10} {'r_obs':>7}  status"
    )
    for v in items:
        values = ", ".join(f"{k} = {x:g}" for k, x in v.values.items())
        lines.append(f"{v.point}" + (f"  ({values})" if values else ""))
        lines.append(head)
        for o in v.outcomes:
            mark = "*" if o.grid == v.most_sensitive else " "
            lines.append(
                f"{mark} {o.label:<36} {_num(o.cls_obs):>9} {_num(o.cls_exp):>9} {_fb(o.xsec_pb):>10} "
                f"{_fb(o.xsec_ul_obs_pb):>10} {_fb(o.xsec_ul_exp_pb):>10} {_num(o.r_obs):>7}  {o.status}"
            )
        level = f"{100 * v.cl:g}% CL"
        flagged = _flagged_exclusions(v)
        if v.verdict == "excluded":
            lines.append(f"  verdict: EXCLUDED at {level} by {v.excluded_by}")
        elif v.verdict == "not excluded":
            lines.append(
                f"  verdict: not excluded at {level} by the trusted analyses"
                if flagged
                else f"  verdict: not excluded at {level}"
            )
        else:
            lines.append("  verdict: UNDECIDED (no trusted result)")
        if flagged and v.verdict != "excluded":
            # a reader must not take "not excluded" for the last word when an unvalidated result says otherwise
            lines.append(f"  but flagged results exclude it at {level}: {flagged} (not trusted: see the notes)")
        lines += [f"  note: {n}" for n in v.notes]
        lines.append("")
    return "\n".join(lines)


def verdicts_csv(items: Sequence[PointVerdict]) -> str:
    """One CSV row per point and analysis, with the point's verdict repeated (for spreadsheets and pandas)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "point",
            "analysis",
            "workspace",
            "grid",
            "status",
            "cls_obs",
            "cls_exp",
            "xsec_pb",
            "xsec_ul_obs_pb",
            "xsec_ul_exp_pb",
            "r_obs",
            "r_exp",
            "most_sensitive",
            "verdict",
            "excluded_by",
        ]
    )
    for v in items:
        for o in v.outcomes:
            writer.writerow(
                [
                    v.point,
                    o.analysis,
                    o.workspace,
                    o.grid,
                    o.status,
                    *("" if x is None else repr(x) for x in (o.cls_obs, o.cls_exp, o.xsec_pb)),
                    *("" if x is None else repr(x) for x in (o.xsec_ul_obs_pb, o.xsec_ul_exp_pb, o.r_obs, o.r_exp)),
                    o.grid == v.most_sensitive,
                    v.verdict,
                    v.excluded_by,
                ]
            )
    return buf.getvalue()


def write_verdicts(
    tables: Sequence[Path],
    *,
    json_path: Path,
    text_path: Path,
    csv_path: Path,
    cl: float = 0.95,
    caveats: Mapping[str, Sequence[str]] | None = None,
) -> list[PointVerdict]:
    """Read the run's limits tables and write the verdicts as JSON, text and CSV.

    Args:
        tables: the run's ``limits.json`` files.
        json_path: where the verdicts go as JSON (records, for the Python API).
        text_path: the terminal table.
        csv_path: one row per point and analysis.
        cl: confidence level for rows that do not carry one.
        caveats: per grid, notes for every verdict that uses it.

    Returns:
        The verdicts.

    Raises:
        RecastError: a table cannot be read.
    """
    items = verdicts(read_tables(tables), cl=cl, caveats=caveats)
    doc = {"format": "recastflow-verdicts/1", "points": [asdict(v) for v in items]}
    write_text_atomic(json_path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    write_text_atomic(text_path, format_verdicts(items))
    write_text_atomic(csv_path, verdicts_csv(items))
    return items


def load_verdicts(path: Path) -> list[PointVerdict]:
    """Read ``verdicts.json`` back into records.

    Args:
        path: the file written by :func:`write_verdicts`.

    Returns:
        The verdicts.

    Raises:
        RecastError: the file is missing or not a verdicts file.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RecastError(f"cannot read the verdicts ({exc})", path=str(path)) from None
    if not isinstance(doc, dict) or doc.get("format") != "recastflow-verdicts/1":
        raise RecastError("not a recastflow verdicts file", path=str(path), field="format")
    out = []
    for p in doc["points"]:
        outcomes = tuple(AnalysisOutcome(**{**o, "issues": tuple(o["issues"])}) for o in p["outcomes"])
        out.append(PointVerdict(**{**p, "outcomes": outcomes, "notes": tuple(p["notes"])}))
    return out


#: The lines of a yield-check table (``recastflow check-yields``) that a run's closing summary repeats.
YIELD_SUMMARY_PREFIXES = ("yield check:", "fidelity:")


def yield_check_lines(tables: Sequence[Path]) -> list[str]:
    """Each yield check's result and fidelity lines, prefixed with its grid, for a run's closing summary.

    Args:
        tables: the checks' text tables (``results/check/yields/<grid>.txt``); missing ones are skipped.

    Returns:
        ``<grid>: <line>`` per line, in the order of ``tables``.
    """
    out = []
    for table in tables:
        if table.is_file():
            out += [
                f"{table.stem}: {line}"
                for line in table.read_text().splitlines()
                if line.startswith(YIELD_SUMMARY_PREFIXES)
            ]
    return out
