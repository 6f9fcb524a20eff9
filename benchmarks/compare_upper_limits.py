"""Our observed cross-section upper limits against the official upper-limit map, point by point.

Usage (from the repository root, after a run with upper limits, e.g. `recastflow run --scan ... --upper-limits`):

    .venv/bin/python benchmarks/compare_upper_limits.py RUN_FOLDER [RUN_FOLDER ...] [--json FILE]

Where a bundle publishes only an upper-limit map (no signal patches at the point), the map is still a check of
the front end anywhere on the plane: for a signal that is small against the background, the upper limit on
the cross-section scales as one over the signal acceptance x efficiency of the regions that decide it, so

    R = r_ours / r_official = (sigma / sigma_UL,ours) / (sigma / sigma_UL,official)

is close to our signal yield over ATLAS's in those regions (R = 1.2: we select 20 % more). r_official is the
bundle's ``official_limits`` map with its theory cross-section (the same r the official contour is drawn from),
interpolated linearly in log r between the map's points; r_ours is the limits table's ``xsec_pb /
xsec_ul_obs_pb``. It is a proxy: observed limits also carry the data's fluctuations bin by bin, so a point whose
signal sits in other bins than ATLAS's moves R beyond its yield ratio. Several run folders are printed side by
side (for example the same events with two detector cards).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from scipy.interpolate import griddata  # noqa: E402

from recastflow.analyses.bundle import load_analysis, load_grid  # noqa: E402
from recastflow.report.official import official_for_grid  # noqa: E402


def load_table(folder: Path) -> tuple[dict, Path]:
    """The run folder's one limits table and its grid's signals folder."""
    tables = sorted((folder / "results" / "limits").glob("*/limits.json"))
    if len(tables) != 1:
        raise SystemExit(f"{folder}: expected one limits table under results/limits, found {len(tables)}")
    return json.loads(tables[0].read_text()), folder / "signals"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders of `recastflow run` with upper limits")
    parser.add_argument("--json", type=Path, help="write R per point and folder as JSON")
    args = parser.parse_args()
    docs = [load_table(f) for f in args.folders]
    first, signals = docs[0]
    grid = load_grid(first["grid"], signals, ROOT / "config" / "analyses")
    analysis = load_analysis(grid.analysis, ROOT / "config" / "analyses")
    official, why = official_for_grid(grid, analysis)
    if official is None or not official.r_values or grid.plot is None:
        print(f"no official upper-limit map for {first['grid']}: {why}", file=sys.stderr)
        return 2
    x, y = grid.plot
    mapped = np.array(official.r_values)
    print(f"R = r_ours / r_official per point; official: {official.origin}")
    print(f"{x:>10} {y:>10} {'r_official':>11} " + " ".join(f"{f.name[-24:]:>24}" for f in args.folders))
    points = [{(p["values"][x], p["values"][y]): p for p in doc["points"]} for doc, _ in docs]
    keys = sorted(set.intersection(*(set(p) for p in points)))
    out: dict[str, list] = {str(f): [] for f in args.folders}
    for k in keys:
        r_off = 10 ** float(griddata(mapped[:, :2], np.log10(mapped[:, 2]), np.array([k]), method="linear")[0])
        cells = []
        for folder, pts in zip(args.folders, points, strict=True):
            p = pts[k]
            ul = p.get("xsec_ul_obs_pb")
            if not ul or not math.isfinite(r_off):
                cells.append(f"{'-':>24}")
                continue
            ratio = (p["xsec_pb"] / ul) / r_off
            out[str(folder)].append({x: k[0], y: k[1], "R": ratio, "status": p["status"]})
            cells.append(f"{ratio:16.2f} {p['status'][:7]:>7}")
        print(f"{k[0]:10g} {k[1]:10g} {r_off:11.3g} " + " ".join(cells))
    for folder, rows in out.items():
        values = np.array([r["R"] for r in rows])
        if len(values):
            print(
                f"{Path(folder).name}: R median {np.median(values):.2f} (68 % of points in "
                f"{np.percentile(values, 16):.2f}-{np.percentile(values, 84):.2f}); within 25 %: "
                f"{int(np.sum(np.abs(values - 1) <= 0.25))} of {len(values)}"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
