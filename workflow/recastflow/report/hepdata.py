"""A grid's results as a HEPData submission: the limits table and the exclusion contours in HEPData YAML.

The files follow HEPData's submission format (``hepdata_validator`` schemas 1.1.x): a ``submission.yaml``
(one YAML document per table: name, description, keywords, data file) next to one data file per table
(``independent_variables`` and ``dependent_variables``). They are ready for a paper's supplementary
material or a HEPData upload, and byte-identical for identical input (no dates, sorted nothing: the
grid's point order is kept).

Tables:

- the limits table: one row per point; independent variables are the grid parameters, dependent ones
  CLs observed, CLs expected with its +-1 sigma and +-2 sigma band as asymmetric errors, the signal
  cross-section and, where computed, the upper limits on mu and on the cross-section, the point's
  status and flags. Qualifiers give sqrt(s), the luminosity, the analysis and the confidence level.
- the observed and expected contours: x and y of the contour lines (our contour, interpolated from the
  grid's points exactly as the exclusion plot draws it); lines are separated by a row of ``-``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from recastflow import __version__
from recastflow.core.errors import RecastError
from recastflow.core.io import write_text_atomic
from recastflow.report.contours import Contour
from recastflow.report.official import unit_of

__all__ = ["contour_table", "limits_table", "write_submission"]

#: HEPData writes a missing value as a string; ``-`` is its convention.
MISSING = "-"


def _num(value: Any) -> float | str:
    """A number as HEPData takes it, or ``-`` for a missing or non-finite one."""
    if value is None or isinstance(value, bool):
        return MISSING
    v = float(value)
    return float(f"{v:.6g}") if math.isfinite(v) else MISSING


def _header(label: str, unit: str | None) -> dict[str, str]:
    """A variable header: the grid's label without its bracketed unit, and the unit in HEPData's capitals."""
    name = re.sub(r"\s*\[[^\]]*\]\s*$", "", label).strip() or label
    header = {"name": name}
    if unit:
        header["units"] = unit.upper()
    return header


def _qualifiers(analysis: Any, cl: float) -> list[dict[str, Any]]:
    """Qualifiers every dependent variable carries: sqrt(s), luminosity, analysis, confidence level."""
    out: list[dict[str, Any]] = []
    if analysis.sqrt_s_tev is not None:
        out.append({"name": "SQRT(S)", "units": "GEV", "value": _num(1000.0 * float(analysis.sqrt_s_tev))})
    if analysis.luminosity_ifb is not None:
        out.append({"name": "LUMINOSITY", "units": "FB$^{-1}$", "value": _num(analysis.luminosity_ifb)})
    out.append({"name": "ANALYSIS", "value": analysis.id})
    out.append({"name": "CL", "value": _num(cl)})
    out.append({"name": "RECAST", "value": f"recastflow {__version__}, pyhf asymptotic CLs"})
    return out


def _band(exp: Sequence[Any] | None) -> dict[str, Any]:
    """The median of a five-value expected band with its +-1 and +-2 sigma as asymmetric errors."""
    if not exp or len(exp) != 5 or any(v is None for v in exp):
        return {"value": MISSING}
    m2, m1, med, p1, p2 = (float(v) for v in exp)
    return {
        "value": _num(med),
        "errors": [
            {"asymerror": {"minus": _num(m1 - med), "plus": _num(p1 - med)}, "label": "1 sigma"},
            {"asymerror": {"minus": _num(m2 - med), "plus": _num(p2 - med)}, "label": "2 sigma"},
        ],
    }


def limits_table(records: list[dict[str, Any]], grid: Any, analysis: Any, *, cl: float) -> dict[str, Any]:
    """The limits table of a grid in HEPData's data format.

    Args:
        records: the grid's point records (``recastflow limits``), in the grid's order.
        grid: the grid (its parameters, with labels and units).
        analysis: the grid's bundle (sqrt(s), luminosity).
        cl: the confidence level of the run.
    """
    params = list(grid.parameters)
    independent = [
        {
            "header": _header(grid.parameters[p].get("label", p), unit_of(grid.parameters[p])),
            "values": [{"value": _num(r["values"].get(p))} for r in records],
        }
        for p in params
    ]
    quals = _qualifiers(analysis, cl)

    def dep(name: str, values: list[dict[str, Any]], units: str | None = None) -> dict[str, Any]:
        header = {"name": name, **({"units": units} if units else {})}
        return {"header": header, "qualifiers": quals, "values": values}

    dependent = [
        dep("CLs observed", [{"value": _num(r.get("cls_obs"))} for r in records]),
        dep("CLs expected", [_band(r.get("cls_exp")) for r in records]),
        dep("Signal cross-section", [{"value": _num(r.get("xsec_pb"))} for r in records], "PB"),
    ]
    if any(r.get("mu_ul_obs") is not None for r in records):
        dependent += [
            dep(f"Observed {100 * cl:g}% CL upper limit on mu", [{"value": _num(r.get("mu_ul_obs"))} for r in records]),
            dep(f"Expected {100 * cl:g}% CL upper limit on mu", [_band(r.get("mu_ul_exp")) for r in records]),
        ]
    if any(r.get("xsec_ul_obs_pb") is not None for r in records):
        dependent += [
            dep(
                f"Observed {100 * cl:g}% CL upper limit on the cross-section",
                [{"value": _num(r.get("xsec_ul_obs_pb"))} for r in records],
                "PB",
            ),
            dep(
                f"Expected {100 * cl:g}% CL upper limit on the cross-section",
                [_band(r.get("xsec_ul_exp_pb")) for r in records],
                "PB",
            ),
        ]
    dependent += [
        dep("Status", [{"value": str(r.get("status", MISSING))} for r in records]),
        dep("Flags", [{"value": "; ".join(r.get("issues") or []) or MISSING} for r in records]),
    ]
    return {"independent_variables": independent, "dependent_variables": dependent}


def contour_table(contour: Contour | None, grid: Any, analysis: Any, *, cl: float, which: str) -> dict[str, Any]:
    """A contour in HEPData's data format: x as the independent variable, y as the dependent one.

    Args:
        contour: the contour (None or without lines: an empty table).
        grid: the grid (labels and units of the plot's axes).
        analysis: the grid's bundle.
        cl: the confidence level.
        which: ``observed`` or ``expected``.
    """
    # a grid without a plot has no contour plane: its tables are empty, with the first two parameters as headers
    names = list(grid.plot) if grid.plot is not None else [*list(grid.parameters), "y", "y"][:2]
    x, y = names[0], names[1]
    xs: list[dict[str, Any]] = []
    ys: list[dict[str, Any]] = []
    for k, line in enumerate(contour.lines if contour is not None else ()):
        if k:  # a row of '-' separates two lines of the contour
            xs.append({"value": MISSING})
            ys.append({"value": MISSING})
        for a, b in line:
            xs.append({"value": _num(a)})
            ys.append({"value": _num(b)})
    px, py = grid.parameters.get(x, {}), grid.parameters.get(y, {})
    return {
        "independent_variables": [{"header": _header(px.get("label", x), unit_of(px)), "values": xs}],
        "dependent_variables": [
            {
                "header": _header(py.get("label", y), unit_of(py)),
                "qualifiers": [*_qualifiers(analysis, cl), {"name": "CONTOUR", "value": f"{which} CLs = {1 - cl:g}"}],
                "values": ys,
            }
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors and aliases: every table spelled out, as HEPData's own files are."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(doc: Any) -> str:
    # block style, keys in the order written, unicode kept (grid labels have Greek letters)
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def write_submission(
    records: list[dict[str, Any]],
    grid: Any,
    analysis: Any,
    *,
    cl: float,
    submission: Path,
    limits: Path,
    contour_obs: Path,
    contour_exp: Path,
    contours: dict[str, Contour | None],
    notes: Sequence[str] = (),
) -> None:
    """Write the grid's HEPData submission: ``submission.yaml`` and its three data files.

    The data files must sit in the submission's folder: ``submission.yaml`` names them by file name,
    as HEPData requires.

    Args:
        records: the grid's point records, in the grid's order.
        grid: the grid.
        analysis: its bundle.
        cl: the confidence level.
        submission: the ``submission.yaml`` to write.
        limits: the limits table's data file.
        contour_obs: the observed contour's data file.
        contour_exp: the expected contour's data file.
        contours: our ``observed`` and ``expected`` contours (None where there is none).
        notes: why a contour is missing, added to its description.

    Raises:
        RecastError: a data file outside the submission's folder.
    """
    folder = Path(submission).parent
    for path in (limits, contour_obs, contour_exp):
        if Path(path).parent.resolve() != folder.resolve():
            raise RecastError(f"a HEPData data file must be in the folder of {submission}", path=str(path))
    energy = [f"{1000.0 * float(analysis.sqrt_s_tev):g}"] if analysis.sqrt_s_tev is not None else []
    keywords = [{"name": "cmenergies", "values": energy}] if energy else []
    keywords += [
        {"name": "observables", "values": ["CLs"]},
        {"name": "phrases", "values": ["Reinterpretation", "Exclusion"]},
    ]
    model = f" for the simplified model {grid.model}" if getattr(grid, "model", None) else ""
    head = {
        "comment": (
            f"Reinterpretation of {analysis.id} ({analysis.title.strip()}) with recastflow {__version__}: "
            f"grid {grid.name}{model}, workspace {grid.workspace}, pyhf asymptotic CLs at {100 * cl:g}% CL. "
            "Not an ATLAS result."
        ),
    }
    tables = [
        {
            "name": f"Limits {grid.name}"[:64],
            "description": (
                f"CLs (observed; expected with its 1 and 2 sigma bands) and, where computed, {100 * cl:g}% CL upper "
                f"limits for each point of grid {grid.name}{model}, with each point's status (trusted, flagged, "
                "failed) and flags."
            ),
            "keywords": keywords,
            "data_file": Path(limits).name,
        }
    ]
    for which, path in (("observed", contour_obs), ("expected", contour_exp)):
        contour = contours.get(which)
        text = f"{which.capitalize()} exclusion contour (CLs = {1 - cl:g}) of grid {grid.name}{model}, interpolated "
        text += (
            "linearly in log10(CLs) on a Delaunay triangulation of the trusted points (as drawn in the exclusion plot)."
        )
        if not contour:
            text += " No contour: " + ("; ".join(n for n in notes if which in n) or "none could be drawn") + "."
        tables.append(
            {
                "name": f"{which.capitalize()} contour {grid.name}"[:64],
                "description": text,
                "keywords": keywords,
                "data_file": Path(path).name,
            }
        )
    docs = [
        (limits, limits_table(records, grid, analysis, cl=cl)),
        (contour_obs, contour_table(contours.get("observed"), grid, analysis, cl=cl, which="observed")),
        (contour_exp, contour_table(contours.get("expected"), grid, analysis, cl=cl, which="expected")),
    ]
    for path, doc in docs:
        write_text_atomic(Path(path), _dump(doc))
    text = yaml.dump_all([head, *tables], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    write_text_atomic(Path(submission), text)
