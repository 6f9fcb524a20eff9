"""Figures: the exclusion contour over a signal grid, and per-point fit plots.

Both functions write files that are byte-identical for identical input (no
timestamps or software versions in the metadata, fixed dpi), so a re-run of the
workflow does not show spurious changes.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib

# Must happen before pyplot (and cabinetry, which imports pyplot) is imported:
# the workflow runs headless, and an interactive backend would need a display.
matplotlib.use("Agg")

import cabinetry
import matplotlib.pyplot as plt
import matplotlib.tri as mtri
import numpy as np
import pyhf
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from recastflow.core.errors import RecastError
from recastflow.core.io import write_bytes_atomic
from recastflow.report.contours import Contour, interpolated_contour

__all__ = ["exclusion_contours", "fit_plots", "plot_exclusion"]

#: Resolution of every PNG written here.
DPI = 150

#: Strip metadata that would differ between runs (matplotlib version stamps the
#: PNG "Software" key; the PDF gets a creation date).
PNG_METADATA: dict[str, Any] = {"Software": None}
PDF_METADATA: dict[str, Any] = {"CreationDate": None}

#: CLs of exactly 0 (numerical underflow far inside the excluded region) has
#: no logarithm; clipping there keeps such points on the excluded side.
CLS_FLOOR = 1e-12

#: Modifier types whose parameters do not belong in a pull plot: gammas are
#: centred at 1 with per-bin widths, and free normalisations have no constraint
#: to be pulled against (the POI is a normfactor, so it is covered too).
PULL_EXCLUDED_TYPES = frozenset({"staterror", "shapesys", "shapefactor", "normfactor"})

BAND_COLOUR = "#ffd21f"
EXPECTED_COLOUR = "#1f3a93"
FLAGGED_COLOUR = "#d62728"
FAILED_COLOUR = "#8c8c8c"
OFFICIAL_COLOUR = "#c0392b"


# --------------------------------------------------------------------------
# Exclusion plot
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Points:
    """Signal points of one kind, as coordinate arrays plus their records."""

    x: np.ndarray
    y: np.ndarray
    records: tuple[dict[str, Any], ...]

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class _Contours:
    """What the interpolation could draw, and why anything is missing."""

    observed: bool
    expected: bool
    band: bool
    notes: tuple[str, ...]


def plot_exclusion(
    records: list[dict],
    x: str,
    y: str,
    out: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    level: float = 0.05,
    pdf: Path | None = None,
    official: Sequence[Contour | None] = (),
    official_notes: Sequence[str] = (),
    sqrt_s_tev: float | None = None,
    luminosity_ifb: float | None = None,
) -> None:
    """Draw observed and expected CLs exclusion contours over a signal grid.

    Only points with status ``"trusted"`` enter the interpolation; flagged and
    failed points are drawn with their own markers so that a reader sees what
    was left out. When no contour can be drawn (too few trusted points, all on a
    line, or CLs never crosses ``level``), the points are still drawn and a note
    on the plot says why.

    Args:
        records: one dictionary per signal point, with ``values`` (grid
            parameters), ``status``, ``cls_obs`` and ``cls_exp`` (five values,
            -2σ ... +2σ).
        x: grid parameter on the horizontal axis (a key of ``values``).
        y: grid parameter on the vertical axis.
        out: PNG file to write.
        title: figure title.
        xlabel: horizontal axis label.
        ylabel: vertical axis label.
        level: CLs value that defines exclusion, e.g. 0.05 for 95% CL.
        pdf: PDF file to write the same figure to (default: ``out`` with the suffix ``.pdf``).
        official: ATLAS's official (observed, expected) contours to overlay (solid, dashed); None
            where there is none. Each contour's ``label`` is its legend entry.
        official_notes: why an official contour is missing (shown under the legend).
        sqrt_s_tev: collision energy for the label (mplhep style, with the luminosity).
        luminosity_ifb: integrated luminosity for the label.

    Raises:
        RecastError: if ``out`` is not a ``.png`` path, ``level`` is not in
            (0, 1), or a record lacks a numeric ``x``/``y`` value.
    """
    out = Path(out)
    _check_exclusion_args(out, level)
    groups = _group_points(records, x, y)
    fig, ax, side = _exclusion_figure()
    try:
        contours = _draw_contours(ax, groups["trusted"], level)
        official_handles = _draw_official(ax, official)
        handles = _draw_points(ax, groups, level)
        _annotate_cls(ax, _records_with_coords(groups))
        _set_limits(ax, groups)
        _decorate(fig, ax, title=title, xlabel=xlabel, ylabel=ylabel)
        if sqrt_s_tev is not None or luminosity_ifb is not None:
            _energy_label(ax, sqrt_s_tev, luminosity_ifb)
        _draw_side_panel(
            side,
            _contour_handles(contours, level) + official_handles + handles,
            (*contours.notes, *official_notes),
        )
        save_png_and_pdf(fig, out, pdf)
    finally:
        plt.close(fig)


def exclusion_contours(records: list[dict], x: str, y: str, level: float = 0.05) -> dict[str, Contour | None]:
    """Our observed and expected contours as coordinates: the lines :func:`plot_exclusion` draws.

    log10(CLs) of the trusted points is interpolated linearly on their triangulation (chosen in
    unit-scaled coordinates, as the plot does) and cut at log10(level).

    Args:
        records: the grid's point records.
        x: the parameter on the horizontal axis.
        y: the parameter on the vertical axis.
        level: the CLs of exclusion.

    Returns:
        ``{"observed": ..., "expected": ...}``, None where there is no contour.
    """
    trusted = _group_points(records, x, y)["trusted"]
    threshold = math.log10(level)
    out: dict[str, Contour | None] = {"observed": None, "expected": None}
    if len(trusted) == 0:
        return out
    observed = _log_cls([r["cls_obs"] for r in trusted.records])
    expected = np.array([_log_cls(r["cls_exp"]) for r in trusted.records])[:, 2]
    for key, values in (("observed", observed), ("expected", expected)):
        contour = interpolated_contour(trusted.x, trusted.y, values, threshold, names=(x, y), label=f"recastflow {key}")
        out[key] = contour or None
    return out


def _draw_official(ax: Axes, official: Sequence[Contour | None]) -> list[Any]:
    """Overlay ATLAS's official observed (solid) and expected (dashed) contours; legend handles for those drawn."""
    handles: list[Any] = []
    styles: tuple[Literal["-", "--"], ...] = ("-", "--")
    for contour, style in zip(official, styles, strict=False):
        if not contour:
            continue
        for line in contour.lines:
            ax.plot(line[:, 0], line[:, 1], linestyle=style, color=OFFICIAL_COLOUR, linewidth=2.0, zorder=2)
        handles.append(Line2D([], [], color=OFFICIAL_COLOUR, linestyle=style, linewidth=2.0, label=contour.label))
    return handles


def _energy_label(ax: Axes, sqrt_s_tev: float | None, luminosity_ifb: float | None) -> None:
    """The mplhep experiment label: who made the plot (not ATLAS), luminosity and sqrt(s) on the right."""
    import mplhep  # type: ignore[import-untyped]

    ax.set_title("", loc="left")  # the label below takes its place
    mplhep.label.exp_label(
        exp="recastflow",
        llabel=r"  pyhf asymptotic CL$_s$ ($\tilde{q}_\mu$)",
        lumi=f"{luminosity_ifb:g}" if luminosity_ifb is not None else None,
        com=f"{sqrt_s_tev:g}" if sqrt_s_tev is not None else None,
        data=True,
        loc=0,
        ax=ax,
        fontsize=11,
    )


def _check_exclusion_args(out: Path, level: float) -> None:
    """Reject arguments that would produce a misleading or misnamed plot."""
    if out.suffix.lower() != ".png":
        raise RecastError("exclusion plot must be written to a .png file", path=str(out))
    if not 0.0 < level < 1.0:
        raise RecastError(f"CLs level must be between 0 and 1, got {level!r}", field="level")


def _coordinate(record: dict[str, Any], name: str) -> float:
    """Return one grid coordinate of a record as a float.

    Raises:
        RecastError: if the value is missing or not a number.
    """
    point = record.get("point", "?")
    values = record.get("values") or {}
    if name not in values:
        raise RecastError(
            f"signal point {point!r} has no grid parameter {name!r} (it has: {', '.join(sorted(values)) or 'none'})",
            field=name,
        )
    try:
        return float(values[name])
    except (TypeError, ValueError):
        raise RecastError(f"signal point {point!r}: {name} = {values[name]!r} is not a number", field=name) from None


def _has_cls(record: dict[str, Any]) -> bool:
    """True when a record carries every CLs value the contours need."""
    expected = record.get("cls_exp")
    return (
        record.get("cls_obs") is not None
        and expected is not None
        and len(expected) == 5
        and all(v is not None for v in expected)
    )


def _kind(record: dict[str, Any]) -> str:
    """Classify a record for drawing: trusted, flagged or failed."""
    status = record.get("status")
    if status == "trusted":
        # A "trusted" point without CLs values cannot be interpolated; drawing
        # it as failed is more honest than silently dropping it.
        return "trusted" if _has_cls(record) else "failed"
    if status == "flagged":
        return "flagged"
    return "failed"


def _group_points(records: Sequence[dict[str, Any]], x: str, y: str) -> dict[str, _Points]:
    """Split records by kind, keeping input order within each kind."""
    buckets: dict[str, list[dict[str, Any]]] = {"trusted": [], "flagged": [], "failed": []}
    for record in records:
        buckets[_kind(record)].append(record)
    return {
        kind: _Points(
            x=np.array([_coordinate(r, x) for r in recs], dtype=float),
            y=np.array([_coordinate(r, y) for r in recs], dtype=float),
            records=tuple(recs),
        )
        for kind, recs in buckets.items()
    }


def _records_with_coords(groups: dict[str, _Points]) -> Iterator[tuple[float, float, dict]]:
    """Yield ``(x, y, record)`` for every point of every kind."""
    for points in groups.values():
        yield from zip(points.x.tolist(), points.y.tolist(), points.records)


def _exclusion_figure() -> tuple[Figure, Axes, Axes]:
    """Create the figure: the plot on the left, legend and notes on the right.

    The legend lives in its own panel so it can never hide part of a contour.
    """
    fig = plt.figure(figsize=(10.0, 6.2), layout="constrained")
    ax, side = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3.0, 1.25]})
    side.set_axis_off()
    return fig, ax, side


def _log_cls(values: Sequence[float]) -> np.ndarray:
    """Return log10(CLs), clipped so that CLs = 0 stays finite."""
    return np.log10(np.clip(np.asarray(values, dtype=float), CLS_FLOOR, None))


def _triangulate(points: _Points) -> tuple[mtri.Triangulation | None, str]:
    """Delaunay-triangulate the trusted points.

    Returns:
        The triangulation in data coordinates, or None and the reason it failed.
    """
    if len(points) < 3:
        return None, (
            f"{len(points)} trusted point(s), at least 3 are needed (flagged and failed points are never interpolated)"
        )
    # Masses on the two axes can differ by an order of magnitude; triangulating
    # in raw units would produce long thin triangles across the short axis, so
    # triangles are chosen in unit-scaled coordinates and then reused as-is.
    scaled_x = _unit_scale(points.x)
    scaled_y = _unit_scale(points.y)
    try:
        scaled = mtri.Triangulation(scaled_x, scaled_y)
    except (ValueError, RuntimeError):
        return None, "trusted points lie on a line; no area to interpolate over"
    if len(scaled.triangles) == 0:
        return None, "trusted points lie on a line; no area to interpolate over"
    return mtri.Triangulation(points.x, points.y, triangles=scaled.triangles), ""


def _unit_scale(values: np.ndarray) -> np.ndarray:
    """Map values linearly onto [0, 1] (constant arrays map to 0)."""
    span = float(np.ptp(values))
    return (values - values.min()) / span if span > 0 else values - values.min()


def _crosses(values: np.ndarray, threshold: float) -> bool:
    """True when interpolated values pass through ``threshold`` somewhere."""
    return bool(values.min() < threshold < values.max())


def _draw_contours(ax: Axes, trusted: _Points, level: float) -> _Contours:
    """Draw the ±1σ band, the expected and the observed contour where possible."""
    triangulation, reason = _triangulate(trusted)
    if triangulation is None:
        return _Contours(False, False, False, (f"No contour drawn: {reason}.",))
    threshold = math.log10(level)
    observed = _log_cls([r["cls_obs"] for r in trusted.records])
    expected = np.array([_log_cls(r["cls_exp"]) for r in trusted.records])
    band = _draw_band(ax, triangulation, expected[:, 1], expected[:, 3], threshold)
    has_expected = _draw_line(ax, triangulation, expected[:, 2], threshold, "--", EXPECTED_COLOUR)
    has_observed = _draw_line(ax, triangulation, observed, threshold, "-", "black")
    notes = []
    if not has_observed:
        notes.append(_no_crossing_note("observed", observed, threshold))
    if not has_expected:
        notes.append(_no_crossing_note("expected", expected[:, 2], threshold))
    return _Contours(has_observed, has_expected, band, tuple(notes))


def _no_crossing_note(which: str, values: np.ndarray, threshold: float) -> str:
    """Explain why a contour is missing although interpolation was possible."""
    side = "excluded" if values.max() < threshold else "allowed"
    return f"No {which} contour: CLs never crosses the level; every trusted point is {side}."


def _draw_line(
    ax: Axes,
    triangulation: mtri.Triangulation,
    values: np.ndarray,
    threshold: float,
    linestyle: str,
    colour: str,
) -> bool:
    """Draw one contour line at ``threshold``; return False if there is none."""
    if not _crosses(values, threshold):
        return False
    ax.tricontour(
        triangulation,
        values,
        levels=[threshold],
        colors=[colour],
        linestyles=[linestyle],
        linewidths=[2.2],
        zorder=3,
    )
    return True


def _draw_band(
    ax: Axes,
    triangulation: mtri.Triangulation,
    minus_one: np.ndarray,
    plus_one: np.ndarray,
    threshold: float,
) -> bool:
    """Fill the region between the -1σ and +1σ expected contours.

    The band is where one of the two expected CLs values is below the level and
    the other is not. That is the overlap of two single-field regions, so the
    "other is not" region is filled and clipped to the "one is below" region.

    Returns:
        True if any band was drawn.
    """
    low = np.minimum(minus_one, plus_one)
    high = np.maximum(minus_one, plus_one)
    if not (low.min() < threshold and high.max() > threshold):
        return False
    # Levels reach past the data so the whole region on each side is filled.
    below = ax.tricontourf(triangulation, low, levels=[low.min() - 1.0, threshold])
    clip_path = below.get_paths()[0]
    below.remove()
    above = ax.tricontourf(
        triangulation,
        high,
        levels=[threshold, high.max() + 1.0],
        colors=[BAND_COLOUR],
        zorder=1,
    )
    above.set_clip_path(clip_path, transform=ax.transData)
    return True


def _draw_points(ax: Axes, groups: dict[str, _Points], level: float) -> list[Any]:
    """Draw one marker per signal point; return legend handles for what exists."""
    trusted = groups["trusted"]
    excluded = np.array([r["cls_obs"] < level for r in trusted.records], dtype=bool)
    styles: list[tuple[Any, Any, str, dict[str, Any]]] = [
        (
            trusted.x[excluded],
            trusted.y[excluded],
            f"excluded (CL$_s^{{obs}}$ < {level:g})",
            {"marker": "o", "color": "black", "markersize": 6},
        ),
        (
            trusted.x[~excluded],
            trusted.y[~excluded],
            "not excluded",
            {"marker": "o", "color": "black", "markerfacecolor": "white", "markersize": 6},
        ),
        (
            groups["flagged"].x,
            groups["flagged"].y,
            "flagged (not used)",
            {"marker": "x", "color": FLAGGED_COLOUR, "markersize": 8, "markeredgewidth": 2.0},
        ),
        (
            groups["failed"].x,
            groups["failed"].y,
            "failed",
            {"marker": "x", "color": FAILED_COLOUR, "markersize": 7, "markeredgewidth": 1.6},
        ),
    ]
    handles = []
    for xs, ys, label, style in styles:
        if len(xs) == 0:
            continue
        (line,) = ax.plot(xs, ys, linestyle="none", label=label, zorder=4, **style)
        handles.append(line)
    return handles


def _annotate_cls(ax: Axes, points: Iterator[tuple[float, float, dict]]) -> None:
    """Write each point's observed CLs next to its marker."""
    for px, py, record in points:
        cls_obs = record.get("cls_obs")
        if cls_obs is None:
            continue
        ax.annotate(
            f"{cls_obs:.2g}",
            (px, py),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=7,
            color="#333333",
            # A white halo keeps the number legible where it overlaps a contour.
            path_effects=[patheffects.withStroke(linewidth=2.0, foreground="white")],
            zorder=5,
        )


def _padded_range(values: np.ndarray) -> tuple[float, float]:
    """Return the data range widened by a margin so no marker sits on a frame."""
    low, high = float(values.min()), float(values.max())
    span = high - low
    # A single column of points would give a zero-width axis.
    margin = 0.08 * span if span > 0 else max(abs(low) * 0.1, 1.0)
    return low - margin, high + margin


def _set_limits(ax: Axes, groups: dict[str, _Points]) -> None:
    """Fit the axes to all points (any status), with a margin."""
    xs = np.concatenate([p.x for p in groups.values()])
    ys = np.concatenate([p.y for p in groups.values()])
    if len(xs) == 0:
        return
    ax.set_xlim(*_padded_range(xs))
    ax.set_ylim(*_padded_range(ys))


def _decorate(fig: Figure, ax: Axes, *, title: str, xlabel: str, ylabel: str) -> None:
    """Titles, axis labels and ticks in talk-readable sizes."""
    fig.suptitle(title, fontsize=15)
    ax.set_title(
        r"recastflow, pyhf asymptotic CL$_s$ ($\tilde{q}_\mu$)",
        loc="left",
        fontsize=11,
        style="italic",
    )
    ax.set_xlabel(xlabel, fontsize=13)
    ax.set_ylabel(ylabel, fontsize=13)
    ax.tick_params(labelsize=11, direction="in", top=True, right=True, which="both")
    ax.minorticks_on()
    ax.grid(alpha=0.25, linewidth=0.6)


def _contour_handles(contours: _Contours, level: float) -> list[Any]:
    """Legend proxies for the contours that were actually drawn."""
    cl = f"{100 * (1 - level):g}% CL"
    handles: list[Any] = []
    if contours.observed:
        handles.append(Line2D([], [], color="black", linewidth=2.2, label=f"Observed limit ({cl})"))
    if contours.expected:
        handles.append(
            Line2D([], [], color=EXPECTED_COLOUR, linestyle="--", linewidth=2.2, label=f"Expected limit ({cl})")
        )
    if contours.band:
        handles.append(Patch(facecolor=BAND_COLOUR, label=r"Expected $\pm 1\sigma$"))
    return handles


def _draw_side_panel(side: Axes, handles: list[Any], notes: Sequence[str]) -> None:
    """Put the legend, and any note on missing contours, in the side panel."""
    if handles:
        side.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, 1.0),
            fontsize=10.5,
            frameon=False,
            borderaxespad=0.0,
        )
    if notes:
        text = "\n\n".join(textwrap.fill(note, width=30) for note in notes)
        side.text(
            0.0,
            0.0,
            text,
            transform=side.transAxes,
            fontsize=10,
            va="bottom",
            ha="left",
            color="#7a1f00",
            bbox={"boxstyle": "round,pad=0.5", "facecolor": "#fff4e5", "edgecolor": "#d98200"},
        )


def save_png_and_pdf(fig: Figure, out: Path, pdf: Path | None = None) -> None:
    """Write the figure as ``out`` (PNG) and as ``pdf`` (default: a PDF with the same stem).

    Commands pass ``pdf`` explicitly: the workflow declares both files, so none is written by a rule of thumb.
    """
    write_bytes_atomic(out, _figure_bytes(fig, "png", PNG_METADATA))
    pdf_out = Path(pdf) if pdf is not None else out.with_suffix(".pdf")
    write_bytes_atomic(pdf_out, _figure_bytes(fig, "pdf", PDF_METADATA))


def _figure_bytes(fig: Figure, fmt: str, metadata: dict[str, Any]) -> bytes:
    # render in memory so that a file on disk is always a complete figure
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return buf.getvalue()


# --------------------------------------------------------------------------
# Fit plots (cabinetry)
# --------------------------------------------------------------------------


def fit_plots(workspace_spec: dict, outdir: Path, *, label: str) -> list[Path]:
    """Fit one signal point's workspace and plot data/MC and pulls with cabinetry.

    Writes pre-fit and post-fit data/MC plots for every channel and a pull plot
    of the constrained nuisance parameters. cabinetry 0.6.0 always saves PDF, so
    its figures are taken back unsaved and written here as PNG, keeping
    cabinetry's naming (``<channel>_prefit.png``, ``<channel>_postfit_log.png``,
    ``pulls.png``) behind a ``<label>_`` prefix so several points can share
    ``outdir``.

    Args:
        workspace_spec: a full pyhf workspace (background plus signal patch).
        outdir: folder for the PNG files; created if missing.
        label: name of the signal point, used as file-name prefix.

    Returns:
        Sorted paths of the PNG files written.

    Raises:
        RecastError: if the workspace is invalid, the label gives no usable file
            name, or the fit does not converge.
    """
    outdir = Path(outdir)
    prefix = _file_prefix(label)
    model, data = _model_and_data(workspace_spec)
    fit_results = _fit(model, data, label)
    figures: list[tuple[Figure, str]] = []
    try:
        figures += _data_mc_figures(cabinetry.model_utils.prediction(model), data)
        postfit = cabinetry.model_utils.prediction(model, fit_results=fit_results)
        figures += _data_mc_figures(postfit, data)
        figures.append((_pulls_figure(model, fit_results), "pulls"))
        outdir.mkdir(parents=True, exist_ok=True)
        written = [_save_png(fig, outdir / f"{prefix}_{name}.png") for fig, name in figures]
    finally:
        for fig, _ in figures:
            plt.close(fig)
    return sorted(written)


def _file_prefix(label: str) -> str:
    """Turn a point label into a safe file-name prefix."""
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")
    if not prefix:
        raise RecastError(f"label {label!r} gives no usable file name", field="label")
    return prefix


def _model_and_data(spec: dict) -> tuple[pyhf.pdf.Model, list[float]]:
    """Build the model and observed data (with auxdata) the way cabinetry does.

    Raises:
        RecastError: if pyhf rejects the workspace.
    """
    try:
        return cabinetry.model_utils.model_and_data(spec)
    except (pyhf.exceptions.InvalidSpecification, pyhf.exceptions.InvalidModel) as err:
        raise RecastError(f"workspace is not a valid pyhf workspace: {err}", field="workspace") from None


def _fit(model: pyhf.pdf.Model, data: list[float], label: str) -> cabinetry.fit.FitResults:
    """Run cabinetry's maximum-likelihood fit and leave pyhf's backend as found.

    cabinetry switches the global optimizer to Minuit and only switches it back
    on success; restoring it here keeps a failed fit from changing the optimizer
    used by the rest of the workflow.

    Raises:
        RecastError: if the fit does not converge.
    """
    tensorlib, optimizer = pyhf.get_backend()
    try:
        return cabinetry.fit.fit(model, data)
    except pyhf.exceptions.FailedMinimization as err:
        raise RecastError(f"fit for the fit plots did not converge: {err}", field=label) from None
    finally:
        pyhf.set_backend(tensorlib, optimizer)


def _data_mc_figures(prediction: cabinetry.model_utils.ModelPrediction, data: list[float]) -> list[tuple[Figure, str]]:
    """Return cabinetry's data/MC figures with the file stems cabinetry would use."""
    results = cabinetry.visualize.data_mc(prediction, data, config=None, close_figure=False, save_figure=False)
    stage = prediction.label.replace("-", "")
    figures = []
    for entry in results or []:
        fig = entry["figure"]
        # cabinetry switches to a log axis by itself for large yield ranges and
        # marks such files with "_log"; keep that convention.
        log_suffix = "_log" if fig.axes[0].get_yscale() == "log" else ""
        region = str(entry["region"]).replace(" ", "-")
        figures.append((fig, f"{region}_{stage}{log_suffix}"))
    return figures


def _pulls_figure(model: pyhf.pdf.Model, fit_results: cabinetry.fit.FitResults) -> Figure:
    """Return cabinetry's pull plot of the constrained nuisance parameters."""
    standardised = _standardise_normal_pulls(model, fit_results)
    return cabinetry.visualize.pulls(
        standardised,
        exclude=_pull_exclusions(model, fit_results.labels),
        close_figure=False,
        save_figure=False,
    )


def _pull_exclusions(model: pyhf.pdf.Model, labels: Sequence[str]) -> list[str]:
    """Labels of parameters that have no meaningful pull (gammas, free norms, POI)."""
    excluded = {name for name, kind in model.config.modifiers if kind in PULL_EXCLUDED_TYPES}
    excluded.add(model.config.poi_name)
    return [lab for lab in labels if lab.split("[")[0] in excluded]


def _standardise_normal_pulls(model: pyhf.pdf.Model, fit_results: cabinetry.fit.FitResults) -> cabinetry.fit.FitResults:
    """Express Gaussian-constrained parameters as (θ - θ0)/σ.

    The pull axis assumes nominal 0 and width 1, true for normsys/histosys but
    not for lumi (nominal 1, width = luminosity uncertainty), which would
    otherwise show as a one-sigma pull.
    """
    bestfit = np.array(fit_results.bestfit, dtype=float)
    uncertainty = np.array(fit_results.uncertainty, dtype=float)
    for name, kind in model.config.modifiers:
        if kind != "lumi":
            continue
        paramset = model.config.param_set(name)
        index = model.config.par_slice(name)
        centre = np.asarray(paramset.auxdata, dtype=float)
        width = np.asarray(paramset.sigmas, dtype=float)
        bestfit[index] = (bestfit[index] - centre) / width
        uncertainty[index] = uncertainty[index] / width
    return fit_results._replace(bestfit=bestfit, uncertainty=uncertainty)


def _save_png(fig: Figure, path: Path) -> Path:
    """Save a figure as a reproducible PNG and return its path."""
    write_bytes_atomic(path, _figure_bytes(fig, "png", PNG_METADATA))
    return path
