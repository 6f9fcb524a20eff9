"""Our exclusion contours of a run against the official one, along every line of the grid's vertical axis.

Usage (from the repository root, after a `recastflow run --scan ...` of several workspaces of one analysis):

    .venv/bin/python benchmarks/compare_contours.py RUN_FOLDER [RUN_FOLDER ...] [--plot FILE]

For each grid of the run folders (one per analysis workspace; grids of the same name in several folders, e.g.
a main and a compressed scan, are merged) and for their combination, the observed contour (CLs_obs = 1 - CL,
interpolated in log CLs on the points' triangulation, as the exclusion plots draw it) is compared with the
official observed contour the bundle declares (``official_limits``), along every value of the grid's vertical
axis: our reach in the horizontal parameter (the largest crossing) against the official one. The combination
takes at each point the workspace with the smallest expected CLs, as ATLAS combines its signal-region sets;
it uses flagged results too (an unvalidated workspace's or an unconverged fit's) and says how many it used,
so it is a validation figure, not a verdict (the run's verdicts use trusted results only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from recastflow.analyses.bundle import load_analysis, load_grid  # noqa: E402
from recastflow.report.contours import Contour, contour_separation, crossings_along, interpolated_contour  # noqa: E402
from recastflow.report.official import official_for_grid  # noqa: E402


def load_points(folders: list[Path]) -> tuple[dict[str, dict[str, dict]], dict[str, tuple[Path, Path]]]:
    """Per grid name, its points by name (merged over folders), and a (signals folder, config folder) per grid."""
    grids: dict[str, dict[str, dict]] = defaultdict(dict)
    where: dict[str, tuple[Path, Path]] = {}
    for folder in folders:
        for table in sorted((folder / "results" / "limits").glob("*/limits.json")):
            doc = json.loads(table.read_text())
            for p in doc["points"]:
                grids[doc["grid"]][p["point"]] = p
            where.setdefault(doc["grid"], (folder / "signals", ROOT / "config" / "analyses"))
    return grids, where


def contour(points: list[dict], x: str, y: str, kind: str, alpha: float) -> Contour:
    """The contour CLs = alpha of ``cls_obs`` (kind "observed") or of the median expected CLs."""
    vals = [p["cls_obs"] if kind == "observed" else p["cls_exp"][2] for p in points]
    z = [math.log10(max(v, 1e-300) / alpha) for v in vals]
    return interpolated_contour(
        [p["values"][x] for p in points], [p["values"][y] for p in points], z, 0.0, names=(x, y), label=kind
    )


def reaches(c: Contour | None, y: str, x: str, lines: list[float]) -> dict[float, float | None]:
    """The largest crossing of each line y = v (None where the contour does not cross it)."""
    if c is None or not c:
        return dict.fromkeys(lines)
    return {v: max(crossings_along(c, {y: v}, x), default=None) for v in lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders of `recastflow run`")
    parser.add_argument("--cl", type=float, default=0.95)
    parser.add_argument("--plot", type=Path, help="draw the contours and the official one (.png)")
    parser.add_argument("--json", type=Path, help="write the comparison as JSON")
    args = parser.parse_args()
    alpha = 1.0 - args.cl
    grids, where = load_points(args.folders)
    if not grids:
        print(f"no limits table under {', '.join(map(str, args.folders))}/results/limits", file=sys.stderr)
        return 2
    first = next(iter(grids))
    grid = load_grid(first, where[first][0], where[first][1])
    analysis = load_analysis(grid.analysis, where[first][1])
    official, why = official_for_grid(grid, analysis)
    if official is None or official.observed is None:
        print(f"no official observed contour for {first}: {why}", file=sys.stderr)
        return 2
    if grid.plot is None:
        print(f"grid {first} has no plot axes", file=sys.stderr)
        return 2
    x, y = grid.plot
    names = sorted(set.intersection(*(set(pts) for pts in grids.values())))
    lines = sorted({float(p["values"][y]) for pts in grids.values() for p in pts.values()})
    combined, flagged = [], 0
    for name in names:
        best = min((grids[g][name] for g in grids), key=lambda p: p["cls_exp"][2])
        combined.append(best)
        flagged += best.get("status") != "trusted"
    sets = {g: list(pts.values()) for g, pts in grids.items()} | {"combined (best expected)": combined}
    theirs = reaches(official.observed, y, x, lines)
    out: dict[str, dict] = {}
    header = f"{y:>16} | official " + " | ".join(f"{s[:28]:>28}" for s in sets)
    print(f"observed reach in {x} along each {y} line (GeV), official: {official.origin}")
    print(header)
    print("-" * len(header))
    observed = {s: contour(pts, x, y, "observed", alpha) for s, pts in sets.items()}  # once per set
    ours = {s: reaches(c, y, x, lines) for s, c in observed.items()}
    for v in lines:
        cells = []
        for s in sets:
            r = ours[s][v]
            d = None if r is None or theirs[v] is None else r - theirs[v]
            cells.append("—" if r is None else f"{r:7.0f} ({d:+5.0f})" if d is not None else f"{r:7.0f}")
        off = "—" if theirs[v] is None else f"{theirs[v]:.0f}"
        print(f"{v:>16g} | {off:>8} | " + " | ".join(f"{c:>28}" for c in cells))
    for s, pts in sets.items():
        c = observed[s]
        sep = contour_separation(c, official.observed) if c else None
        diffs = [abs(ours[s][v] - theirs[v]) for v in lines if ours[s][v] is not None and theirs[v] is not None]
        out[s] = {
            "points": len(pts),
            "largest_reach_difference": max(diffs, default=None),
            "median_reach_difference": float(np.median(diffs)) if diffs else None,
            "separation": sep,
            "reach": {str(v): ours[s][v] for v in lines},
        }
        print(
            f"{s}: {len(pts)} points; |reach - official| largest "
            f"{max(diffs, default=float('nan')):.0f} GeV, median {np.median(diffs) if diffs else float('nan'):.0f} GeV "
            f"over {len(diffs)} lines; largest distance between the contours {sep if sep is not None else float('nan'):.0f}"
        )
    print(f"combined: {flagged} of {len(combined)} points decided by a flagged result")
    if args.json:
        args.json.write_text(json.dumps({"official": {str(v): theirs[v] for v in lines}, "sets": out}, indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 6))
        for line in official.observed.lines:
            ax.plot(line[:, 0], line[:, 1], "k-", lw=2.5, label="ATLAS observed (official)")
        for (s, c), colour in zip(observed.items(), ("C0", "C1", "C2", "C3", "C4")):
            for line in c.lines:
                ax.plot(line[:, 0], line[:, 1], "-", color=colour, label=f"ours observed: {s}")
        for p in combined:
            ax.plot(p["values"][x], p["values"][y], ".", color="#999", ms=3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=8)
        ax.set_xlabel(grid.parameters[x].get("label", x))
        ax.set_ylabel(grid.parameters[y].get("label", y))
        ax.set_title(f"{analysis.id}: observed 95 % CL exclusion, ours vs ATLAS", fontsize=10)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
