"""Front-end validation: our signal yields against the ones in ATLAS's own signal patches."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recastflow.analyses.bundle import Analysis, Grid, WorkspaceRef
from recastflow.core.config import read_document
from recastflow.core.errors import RecastError


@dataclass(frozen=True)
class YieldRow:
    """One point's comparison: per-bin values and the gated signal-region total."""

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


def compare_yields(
    grid: Grid, analysis: Analysis, yields_files: dict[str, Path], bkg: dict[str, Any]
) -> list[YieldRow]:
    """Compare every grid point that has a published patch with our yields.

    Args:
        grid: the front-end grid.
        analysis: its bundle, with ``yield_references``.
        yields_files: our yields file per point name.
        bkg: the background-only workspace the published patches apply to.
    """
    refs = analysis.yield_references
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
        gated = total_atlas >= refs.min_events
        # rtol is the fidelity asked of the emulation; our own sample's statistical precision comes on top
        # (two standard deviations): a check must not fail because a few thousand events fluctuated
        allowed = ref.rtol + 2.0 * total_stat / total_atlas if total_atlas > 0 else ref.rtol
        ok = total_atlas > 0 and abs(total / total_atlas - 1.0) <= allowed
        note = ref.note or ("" if gated else f"fewer than {refs.min_events:g} ATLAS events: reported, not gated")
        rows.append(
            YieldRow(
                point.name,
                dict(point.values),
                ours,
                stat,
                atlas,
                total,
                total_stat,
                total_atlas,
                ref.rtol,
                gated,
                ok or not gated,
                note,
                allowed,
            )
        )
    return rows


def format_yield_table(rows: list[YieldRow], analysis: Analysis) -> str:
    """Plain-text tables: per-point SR totals, then every bin of every region."""
    refs = analysis.yield_references
    if refs is None:
        raise RecastError(
            f"analysis {analysis.id} declares no yield references (yield_references)",
            path=str(analysis.folder / "analysis.yaml"),
            field="yield_references",
        )
    lines = [
        f"Signal yields of {analysis.id} against ATLAS's signal patches "
        f"({', '.join(refs.signal_regions)} summed; {refs.source.split(',')[0].strip()})"
    ]
    head = f"{'point':<22} {'ours':>9} {'±stat':>7} {'ATLAS':>9} {'rel.dev':>8} {'rtol':>6} {'allowed':>8}  result"
    lines += [head, "-" * len(head)]
    for r in rows:
        dev = "—" if r.deviation is None else f"{r.deviation:+.1%}"
        res = ("pass" if r.passed else "FAIL") if r.gated else "info"
        line = (
            f"{r.point:<22} {r.sr_total:>9.3f} {r.sr_total_stat:>7.3f} {r.sr_total_atlas:>9.3f} {dev:>8} {r.rtol:>6.0%}"
            f" {r.allowed:>8.1%}  {res}"
        )
        lines.append(line + (f"  ({r.note})" if r.note else ""))
    gated = [r for r in rows if r.gated]
    lines.append(f"yield check: {sum(r.passed for r in gated)} of {len(gated)} gated points within tolerance")
    lines.append("(allowed: |rel.dev| <= rtol + 2 x our MC-statistical uncertainty of the total, relative to ATLAS's)")
    lines += ["", "Per bin (ours / ATLAS):"]
    for r in rows:
        lines.append(f"  {r.point}")
        for region in sorted(r.atlas):
            ours = r.ours.get(region, [0.0] * len(r.atlas[region]))
            cells = "  ".join(f"{o:7.3f} / {a:7.3f}" for o, a in zip(ours, r.atlas[region]))
            lines.append(f"    {region:<13} {cells}")
    return "\n".join(lines)


def rows_to_json(rows: list[YieldRow]) -> list[dict[str, Any]]:
    """The comparison as JSON-ready records."""
    return [dict(asdict(r), deviation=r.deviation) for r in rows]


def plot_yields(rows: list[YieldRow], analysis: Analysis, output: Path, pdf: Path | None = None) -> None:
    """One panel per point: our yields (with MC-stat error) and ATLAS's, bin by bin.

    Args:
        rows: the comparison of :func:`compare_yields`.
        analysis: the bundle (title and luminosity).
        output: the PNG file.
        pdf: the PDF file (default: ``output`` with the suffix ``.pdf``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from recastflow.report.plots import save_png_and_pdf

    n = max(len(rows), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.4 * n + 0.6), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        labels, ours, errs, atlas = [], [], [], []
        for region in sorted(r.atlas):
            for i, a in enumerate(r.atlas[region]):
                labels.append(f"{region.split('_')[0]}{'' if len(r.atlas[region]) == 1 else f'[{i}]'}")
                ours.append(r.ours.get(region, [0.0] * (i + 1))[i])
                errs.append(r.ours_stat.get(region, [0.0] * (i + 1))[i])
                atlas.append(a)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, atlas, 0.4, label="ATLAS signal patch", color="#7f7f7f")
        ax.bar(x + 0.2, ours, 0.4, yerr=errs, label="recastflow (MC stat)", color="#1f77b4", capsize=2)
        dev = "—" if r.deviation is None else f"{r.deviation:+.0%}"
        ax.set_title(f"{r.point}: SR total {r.sr_total:.2f} vs {r.sr_total_atlas:.2f} ({dev})", fontsize=9)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("events", fontsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{analysis.id}: signal yields, {analysis.luminosity_ifb:g} fb⁻¹", fontsize=10)
    fig.tight_layout()
    save_png_and_pdf(fig, output, pdf)  # PNG for the report, PDF for papers; both atomic and reproducible
    plt.close(fig)
