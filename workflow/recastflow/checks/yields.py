"""Front-end validation: our signal yields against the ones in ATLAS's own signal patches.

Every region of either side is compared, control regions included: per region (total over its
bins, with our MC-statistical uncertainty) and per bin. A region that ATLAS's patch has no signal
in is shown with our yield and ``—`` for ATLAS's (an unexpected leak of our signal there is then
visible). Only the total over the signal regions is gated (``rtol`` plus twice our MC-statistical
uncertainty); a point whose sample is too small for that tolerance is flagged with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recastflow.analyses.bundle import Analysis, Grid, WorkspaceRef, YieldReferences
from recastflow.core.config import read_document

#: Our MC-statistical uncertainty (relative, 1 sigma) of the signal-region total above which a point is
#: warned about: twice it (what the check allows on top of rtol) would then exceed rtol itself.
LOW_STAT_FACTOR = 2.0


@dataclass(frozen=True)
class RegionRow:
    """One region of one point: totals over its bins, ours and ATLAS's (None: not in ATLAS's patch)."""

    region: str
    ours: float
    ours_stat: float
    atlas: float | None
    signal_region: bool

    @property
    def ratio(self) -> float | None:
        """Ours / ATLAS's (None if ATLAS's patch has no yield there)."""
        return self.ours / self.atlas if self.atlas else None

    @property
    def ratio_stat(self) -> float | None:
        """MC-statistical uncertainty of :attr:`ratio` (ours only: ATLAS's patch carries none here)."""
        return self.ours_stat / self.atlas if self.atlas else None


@dataclass(frozen=True)
class YieldRow:
    """One point's comparison: per-bin values, per-region totals and the gated signal-region total."""

    point: str
    values: dict[str, float]
    ours: dict[str, list[float]]
    ours_stat: dict[str, list[float]]
    atlas: dict[str, list[float]]
    sr_total: float
    sr_total_stat: float
    sr_total_atlas: float
    rtol: float
    gated: bool
    passed: bool
    note: str
    #: the relative deviation allowed: ``rtol`` plus twice our MC-statistical uncertainty of the total
    allowed: float = 0.0
    #: effective number of MC events behind our signal-region total, (sum w)^2 / sum w^2
    sr_effective_events: float = 0.0
    #: a warning for the reader (e.g. too few MC events for the tolerance), or ""
    warning: str = ""
    regions: tuple[RegionRow, ...] = field(default=())
    #: ATLAS's signal-region total is at least the references' ``min_events`` (the fidelity statistics count it)
    enough_events: bool = True
    #: within the allowed deviation, gated or not
    within: bool = True

    @property
    def result(self) -> str:
        """``pass`` / ``FAIL`` (gated), ``in`` / ``out`` (reported, enough published events) or ``info``."""
        if self.gated:
            return "pass" if self.passed else "FAIL"
        if self.enough_events:
            return "in" if self.within else "out"
        return "info"

    @property
    def deviation(self) -> float | None:
        """Relative deviation of the signal-region total (None if ATLAS has none)."""
        return self.sr_total / self.sr_total_atlas - 1.0 if self.sr_total_atlas > 0 else None


def published_yields(
    patch: Path, bkg: dict[str, Any], wsref: WorkspaceRef, analysis: Analysis
) -> dict[str, list[float]]:
    """Nominal signal yields per region from a published per-point JSON Patch."""
    from recastflow.stats.patching import yields_from_patch

    doc = yields_from_patch(read_document(patch), bkg, wsref, analysis, patch)
    return {name: [float(v) for v in reg["yields"]] for name, reg in doc["regions"].items()}


def region_order(names: set[str], signal_regions: tuple[str, ...]) -> list[str]:
    """Signal regions first (in the bundle's order), then the other regions alphabetically."""
    return [r for r in signal_regions if r in names] + sorted(names - set(signal_regions))


def region_rows(
    ours: dict[str, list[float]], stat: dict[str, list[float]], atlas: dict[str, list[float]], srs: tuple[str, ...]
) -> tuple[RegionRow, ...]:
    """Per-region totals of every region that either side has."""
    return tuple(
        RegionRow(
            region=name,
            ours=sum(ours.get(name, [])),
            ours_stat=math.sqrt(sum(s * s for s in stat.get(name, []))),
            atlas=sum(atlas[name]) if name in atlas else None,
            signal_region=name in srs,
        )
        for name in region_order(set(ours) | set(atlas), srs)
    )


def low_stat_warning(total: float, total_stat: float, rtol: float, n_events: int | None) -> tuple[float, str]:
    """The effective MC event count of our signal-region total and a warning if it is too small for ``rtol``.

    Args:
        total: our signal-region total (expected events).
        total_stat: its MC-statistical uncertainty.
        rtol: the check's tolerance.
        n_events: events generated for the point (for the advice), if known.

    Returns:
        (effective events, warning or "").
    """
    if total <= 0:
        return 0.0, "no MC event of ours in the signal regions: generate more events or check the selection"
    if total_stat <= 0:
        return math.inf, ""
    n_eff = (total / total_stat) ** 2
    rel = total_stat / total
    if LOW_STAT_FACTOR * rel <= rtol:
        return n_eff, ""
    # the events needed for 2 sigma = rtol: n_eff scales with the sample
    needed = (LOW_STAT_FACTOR / rtol) ** 2
    advice = f"; about {math.ceil(n_events * needed / n_eff):,} events would do" if n_events else ""
    return n_eff, (
        f"only ~{n_eff:.0f} MC events in the signal regions: our MC-stat uncertainty ±{rel:.0%} (2σ = "
        f"{LOW_STAT_FACTOR * rel:.0%}) is larger than the tolerance {rtol:.0%}{advice}"
    )


def compare_yields(
    grid: Grid, analysis: Analysis, yields_files: dict[str, Path], bkg: dict[str, Any]
) -> list[YieldRow]:
    """Compare every grid point that has a published patch with our yields.

    Args:
        grid: the front-end grid.
        analysis: its bundle, with ``yield_references`` for the grid's workspace.
        yields_files: our yields file per point name.
        bkg: the background-only workspace the published patches apply to.

    Returns:
        One row per point with a reference and a yields file. In a workspace marked ``unvalidated`` no
        row is gated: its yields are known to be off (the reason says how far), and every CLs from them is
        flagged already; the table still says which points are within tolerance.
    """
    refs = analysis.references_for(grid.workspace)
    if refs is None:
        return []
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    rows = []
    for point in grid.points:
        ref = refs.for_values(point.values)
        if ref is None or point.name not in yields_files:
            continue
        doc = read_document(yields_files[point.name])
        ours = {k: [float(v) for v in r["yields"]] for k, r in doc["regions"].items()}
        stat = {k: [float(v) for v in r["stat"]] for k, r in doc["regions"].items()}
        atlas = published_yields(ref.patch, bkg, wsref, analysis)
        total = sum(sum(ours.get(r, [])) for r in refs.signal_regions)
        total_stat = math.sqrt(sum(s * s for r in refs.signal_regions for s in stat.get(r, [])))
        total_atlas = sum(sum(atlas.get(r, [])) for r in refs.signal_regions)
        enough = total_atlas >= refs.min_events
        gated = enough and wsref.unvalidated is None
        # rtol is the fidelity asked of the emulation; our own sample's statistical precision comes on top
        # (two standard deviations): a check must not fail because a few thousand events fluctuated
        allowed = ref.rtol + 2.0 * total_stat / total_atlas if total_atlas > 0 else ref.rtol
        ok = total_atlas > 0 and abs(total / total_atlas - 1.0) <= allowed
        note = ref.note or (
            ""
            if gated
            else f"fewer than {refs.min_events:g} ATLAS events: reported, not gated"
            if not enough
            else f"workspace {wsref.name} marked unvalidated: reported, not gated"
        )
        n_events = doc.get("normalisation", {}).get("n_events")
        n_eff, warning = low_stat_warning(total, total_stat, ref.rtol, n_events)
        rows.append(
            YieldRow(
                point=point.name,
                values=dict(point.values),
                ours=ours,
                ours_stat=stat,
                atlas=atlas,
                sr_total=total,
                sr_total_stat=total_stat,
                sr_total_atlas=total_atlas,
                rtol=ref.rtol,
                gated=gated,
                passed=ok or not gated,
                note=note,
                allowed=allowed,
                sr_effective_events=n_eff,
                warning=warning,
                regions=region_rows(ours, stat, atlas, refs.signal_regions),
                enough_events=enough,
                within=ok,
            )
        )
    return rows


def _ratio(r: RegionRow) -> str:
    if r.ratio is None:
        return "—"
    return f"{r.ratio:.2f} ± {r.ratio_stat:.2f}"


@dataclass(frozen=True)
class Fidelity:
    """How well the front end reproduces the published totals over a set of points (gated or not).

    Attributes:
        n: points with at least ``min_events`` published signal-region events.
        within_rtol: of those, points whose total is within ``rtol`` itself (no MC-statistical allowance).
        within_allowed: of those, points within ``rtol`` plus twice our MC-statistical uncertainty.
        median: median of ours / published over those points (None if ``n`` is 0).
        low: 16th percentile of the ratio (None if ``n`` is 0).
        high: 84th percentile of the ratio (None if ``n`` is 0).
    """

    n: int
    within_rtol: int
    within_allowed: int
    median: float | None
    low: float | None
    high: float | None


def fidelity(rows: list[YieldRow]) -> Fidelity:
    """The fidelity statistics of the rows with enough published events."""
    import numpy as np

    used = [r for r in rows if r.enough_events and r.deviation is not None]
    ratios = np.array([r.sr_total / r.sr_total_atlas for r in used])
    if not used:
        return Fidelity(0, 0, 0, None, None, None)
    within = sum(1 for r in used if r.deviation is not None and abs(r.deviation) <= r.rtol)
    low, median, high = (float(q) for q in np.percentile(ratios, [16, 50, 84]))
    return Fidelity(len(used), within, sum(1 for r in used if r.within), median, low, high)


def format_fidelity(f: Fidelity, refs: YieldReferences) -> str:
    """One line: how many points are within tolerance and the spread of ours / published."""
    if f.n == 0 or f.median is None:
        return f"fidelity: no point has {refs.min_events:g} or more published signal-region events"
    return (
        f"fidelity: {f.within_rtol} of {f.n} points with >= {refs.min_events:g} published signal-region events "
        f"within ±{refs.rtol:.0%} ({f.within_allowed} with our MC-stat allowance); ours/ATLAS median "
        f"{f.median:.2f}, 68 % of points in {f.low:.2f}-{f.high:.2f}"
    )


def format_yield_table(rows: list[YieldRow], analysis: Analysis, refs: YieldReferences) -> str:
    """Plain-text tables: per-point SR totals, every region's total, then every bin of every region.

    Args:
        rows: the comparison of :func:`compare_yields`.
        analysis: the bundle (for the title).
        refs: the references the rows were compared with.

    Returns:
        The tables, with the gated result and the fidelity statistics (:func:`fidelity`).
    """
    lines = [
        f"Signal yields of {analysis.id} against ATLAS's signal patches "
        f"({', '.join(refs.signal_regions)} summed; {refs.source.split(',')[0].strip()})"
    ]
    head = f"{'point':<22} {'ours':>9} {'±stat':>7} {'ATLAS':>9} {'rel.dev':>8} {'rtol':>6} {'allowed':>8}  result"
    lines += [head, "-" * len(head)]
    for r in rows:
        dev = "—" if r.deviation is None else f"{r.deviation:+.1%}"

        line = (
            f"{r.point:<22} {r.sr_total:>9.3f} {r.sr_total_stat:>7.3f} {r.sr_total_atlas:>9.3f} {dev:>8} {r.rtol:>6.0%}"
            f" {r.allowed:>8.1%}  {r.result}"
        )
        lines.append(line + (f"  ({r.note})" if r.note else ""))
    lines.append(f"yield check: {check_outcome([r.result for r in rows], refs.min_events)}")
    lines.append("(allowed: |rel.dev| <= rtol + 2 x our MC-statistical uncertainty of the total, relative to ATLAS's;")
    lines.append(" in / out: the same test on a point that is reported, not gated)")
    lines.append(format_fidelity(fidelity(rows), refs))
    warned = [r for r in rows if r.warning]
    if warned:
        lines += ["", "Warnings:"] + [f"  {r.point}: {r.warning}" for r in warned]
    lines += [
        "",
        "Per region (total over its bins; SR = gated signal regions, CR = reported; — = not in ATLAS's patch):",
    ]
    for r in rows:
        lines.append(f"  {r.point}")
        lines.append(f"    {'region':<13} {'':>2} {'ours':>9} {'±stat':>7} {'ATLAS':>9}  ours/ATLAS")
        for g in r.regions:
            atlas_total = "—" if g.atlas is None else f"{g.atlas:9.3f}"
            kind = "SR" if g.signal_region else "CR"
            lines.append(f"    {g.region:<13} {kind:>2} {g.ours:9.3f} {g.ours_stat:7.3f} {atlas_total:>9}  {_ratio(g)}")
    lines += ["", "Per bin (ours ± MC stat / ATLAS):"]
    for r in rows:
        lines.append(f"  {r.point}")
        for region in region_order(set(r.ours) | set(r.atlas), refs.signal_regions):
            ours = r.ours.get(region, [0.0] * len(r.atlas.get(region, [])))
            stat = r.ours_stat.get(region, [0.0] * len(ours))
            atlas: list[float | None] = list(r.atlas.get(region, [None] * len(ours)))
            cells = "  ".join(
                f"{o:7.3f} ± {s:5.3f} / " + ("      —" if a is None else f"{a:7.3f}")
                for o, s, a in zip(ours, stat, atlas)
            )
            lines.append(f"    {region:<13} {cells}")
    return "\n".join(lines)


def check_outcome(results: Sequence[str], min_events: float | None = None) -> str:
    """What a yield check decided, in words (the table's ``yield check:`` line and the report's text).

    Args:
        results: each point's :attr:`YieldRow.result` (``pass``, ``FAIL``, ``in``, ``out``, ``info``).
        min_events: the references' ``min_events``, named when no point reaches it.

    Returns:
        "N of M gated points within tolerance", "reported, not gated (...)" for a workspace marked unvalidated,
        or "nothing to gate (...)" when no point has enough published events.
    """
    gated = [r for r in results if r in ("pass", "FAIL")]
    counted = [r for r in results if r in ("in", "out")]
    if gated:
        return f"{gated.count('pass')} of {len(gated)} gated points within tolerance"
    if counted:
        return (
            f"reported, not gated (the workspace is marked unvalidated): {counted.count('in')} of {len(counted)} "
            "points with enough published events within tolerance"
        )
    enough = "enough" if min_events is None else f"{min_events:g} or more"
    return f"nothing to gate (no point has {enough} published signal-region events)"


def rows_to_json(rows: list[YieldRow]) -> list[dict[str, Any]]:
    """The comparison as JSON-ready records (``regions``: per-region totals, with ``ratio``)."""
    out = []
    for r in rows:
        rec = dict(asdict(r), deviation=r.deviation, result=r.result)
        rec["regions"] = [dict(asdict(g), ratio=g.ratio, ratio_stat=g.ratio_stat) for g in r.regions]
        if math.isinf(rec["sr_effective_events"]):
            rec["sr_effective_events"] = None  # no MC-stat uncertainty given: JSON has no infinity
        out.append(rec)
    return out


def failure_of(rows: list[YieldRow]) -> str | None:
    """One line saying which gated points are outside tolerance, or None if none is."""
    failed = [r for r in rows if r.gated and not r.passed]
    if not failed:
        return None
    return (
        f"{len(failed)} of {len(rows)} points' signal-region yields outside tolerance "
        f"({', '.join(r.point for r in failed)}; table above)"
    )


def _panel_grid(n: int) -> tuple[int, int]:
    """Rows and columns of per-point panels: one column for a few points, up to three for a scan."""
    cols = 1 if n <= 6 else 2 if n <= 20 else 3
    return math.ceil(n / cols), cols


def plot_yields(
    rows: list[YieldRow], analysis: Analysis, refs: YieldReferences, output: Path, pdf: Path | None = None
) -> None:
    """One panel per point: our yields (with MC-stat error) and ATLAS's, bin by bin, every region.

    Bins of a region that ATLAS's patch has no signal in show our bar only (marked "no ATLAS").
    A failed point's title says FAIL.

    Args:
        rows: the comparison of :func:`compare_yields`.
        analysis: the bundle (title and luminosity).
        refs: the references compared with (their signal regions come first).
        output: the PNG file.
        pdf: the PDF file (default: ``output`` with the suffix ``.pdf``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from recastflow.report.plots import save_png_and_pdf

    srs = refs.signal_regions
    nrows, ncols = _panel_grid(max(len(rows), 1))
    fig, axes = plt.subplots(nrows, ncols, figsize=(10 * ncols, 2.6 * nrows + 0.6), squeeze=False)
    for ax in axes.flat[len(rows) :]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, rows):
        labels, ours, errs, atlas = [], [], [], []
        for region in region_order(set(r.ours) | set(r.atlas), srs):
            nbins = max(len(r.ours.get(region, [])), len(r.atlas.get(region, [])))
            for i in range(nbins):
                labels.append(f"{region.split('_')[0]}{'' if nbins == 1 else f'[{i}]'}")
                ours.append(r.ours.get(region, [0.0] * nbins)[i])
                errs.append(r.ours_stat.get(region, [0.0] * nbins)[i])
                atlas.append(r.atlas[region][i] if region in r.atlas else np.nan)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, np.nan_to_num(atlas), 0.4, label="ATLAS signal patch", color="#7f7f7f")
        ax.bar(x + 0.2, ours, 0.4, yerr=errs, label="recastflow (MC stat)", color="#1f77b4", capsize=2)
        for xi, a in zip(x, atlas):
            if np.isnan(a):
                ax.annotate("no ATLAS", (xi - 0.2, 0), fontsize=6, rotation=90, ha="center", va="bottom", color="#b00")
        dev = "—" if r.deviation is None else f"{r.deviation:+.0%}"
        verdict = ("" if r.passed else "  FAIL") if r.gated else "  (not gated)"
        ax.set_title(
            f"{r.point}: SR total {r.sr_total:.2f} ± {r.sr_total_stat:.2f} vs {r.sr_total_atlas:.2f} ({dev}){verdict}",
            fontsize=9,
            color="#b00" if r.gated and not r.passed else "black",
        )
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("events", fontsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{analysis.id}: signal yields, {analysis.luminosity_ifb:g} fb⁻¹", fontsize=10)
    fig.tight_layout()
    save_png_and_pdf(fig, output, pdf)  # PNG for the report, PDF for papers; both atomic and reproducible
    plt.close(fig)


def plane_axes(grid: Grid) -> tuple[str, str] | None:
    """The grid's two plot parameters (``plot``, else its first two parameters); None for a one-parameter grid."""
    if grid.plot is not None:
        return grid.plot
    names = list(grid.parameters)
    return (names[0], names[1]) if len(names) >= 2 else None


def plot_yield_summary(
    rows: list[YieldRow], analysis: Analysis, refs: YieldReferences, grid: Grid, output: Path, pdf: Path | None = None
) -> None:
    """The total-yield ratio over the grid's plane and the distribution of deviations, side by side.

    Left: every compared point at its two plot parameters, coloured by ours / ATLAS's signal-region total
    (log scale, 0.5-2), the ratio written next to it; hollow markers for points with fewer than
    ``min_events`` published events (not counted). Right: the deviations of the counted points, with the
    tolerance band and the fidelity line of :func:`format_fidelity`. A one-parameter grid gets the ratio
    against its parameter instead of a plane.

    Args:
        rows: the comparison of :func:`compare_yields`.
        analysis: the bundle (title).
        refs: the references compared with.
        grid: the grid (its plot parameters and labels).
        output: the PNG file.
        pdf: the PDF file (default: ``output`` with the suffix ``.pdf``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    from recastflow.report.plots import save_png_and_pdf

    def label(name: str) -> str:
        return grid.parameters.get(name, {}).get("label", name)

    fig, (ax, hx) = plt.subplots(1, 2, figsize=(14, 5.8), gridspec_kw={"width_ratios": [1.5, 1]})
    with_ref = [r for r in rows if r.deviation is not None]
    ratio = np.array([r.sr_total / r.sr_total_atlas for r in with_ref])
    counted = np.array([r.enough_events for r in with_ref], dtype=bool)
    norm = LogNorm(vmin=0.5, vmax=2.0)
    axes_xy = plane_axes(grid)
    if axes_xy is not None and with_ref:
        x = np.array([r.values.get(axes_xy[0], np.nan) for r in with_ref])
        y = np.array([r.values.get(axes_xy[1], np.nan) for r in with_ref])
        xlabel, ylabel = label(axes_xy[0]), label(axes_xy[1])
    else:
        first = next(iter(grid.parameters), "")
        x = np.array([r.values.get(first, np.nan) for r in with_ref])
        y = ratio
        xlabel, ylabel = label(first), "ours / ATLAS"
    clipped = np.clip(ratio, 0.5, 2.0) if len(ratio) else ratio
    sc = ax.scatter(x[counted], y[counted], c=clipped[counted], cmap="RdBu_r", norm=norm, s=90, edgecolors="k")
    ax.scatter(
        x[~counted],
        y[~counted],
        facecolors="none",
        edgecolors="#888",
        s=60,
        label=f"< {refs.min_events:g} ATLAS SR events (not counted)",
    )
    for xi, yi, ri in zip(x, y, ratio):
        ax.annotate(f"{ri:.2f}", (xi, yi), xytext=(0, 7), textcoords="offset points", fontsize=6, ha="center")
    bar = fig.colorbar(sc, ax=ax, label="ours / ATLAS, signal-region total (clipped to 0.5-2)")
    ticks = [0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0]
    bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
    bar.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{grid.name}: {', '.join(refs.signal_regions)} total, ours / ATLAS", fontsize=10)
    if (~counted).any():
        ax.legend(fontsize=8, loc="upper left")
    f = fidelity(rows)
    dev = np.array([r.deviation for r in with_ref if r.enough_events and r.deviation is not None])
    if len(dev):
        hi = max(1.0, float(np.max(np.abs(dev))) + 0.05)
        hx.hist(np.clip(dev, -hi, hi), bins=np.linspace(-hi, hi, 41), color="#1f77b4")
    hx.axvspan(-refs.rtol, refs.rtol, color="#2ca02c", alpha=0.15, label=f"±{refs.rtol:.0%}")
    hx.axvline(0.0, color="k", lw=0.8)
    hx.set_xlabel("ours / ATLAS - 1 (signal-region total)")
    hx.set_ylabel("points")
    hx.set_title(
        f"{f.within_rtol} of {f.n} points within ±{refs.rtol:.0%}"
        + (f"; median ratio {f.median:.2f} ({f.low:.2f}-{f.high:.2f}, 68 %)" if f.median is not None else ""),
        fontsize=9,
    )
    hx.legend(fontsize=8)
    unvalidated = analysis.workspaces[grid.workspace].unvalidated
    fig.suptitle(
        f"{analysis.id} {grid.workspace}: front-end signal yields against ATLAS's signal patches"
        + (" (workspace marked unvalidated)" if unvalidated else ""),
        fontsize=11,
    )
    fig.tight_layout()
    save_png_and_pdf(fig, output, pdf)
    plt.close(fig)
