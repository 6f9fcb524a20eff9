"""What leaving a workspace's unfilled regions without signal does to CLs, measured on ATLAS's own patches.

A bundle's event selection may declare regions it cannot fill (``unfilled:`` in its selection file, e.g.
control regions whose definitions are not public); a recast then puts no signal there and every verdict
names them. ATLAS's published signal patches do fill them. This script takes every published patch of a
grid, evaluates CLs twice through recastflow's own limits code (``recastflow.stats.limits.evaluate_point``):
with the patch as published, and with the signal removed from the unfilled regions (the channel's ``remove``
operations, e.g. of validation regions, are kept). The difference is the bias of the recast's approximation
alone, free of any difference in the event yields.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unfilled_effect.py --analysis ATLAS-SUSY-2018-31 \\
        --workspace RegionA [--where m_neutralino1=60] [--limit 40] [--method fast]

The points are every published patch in the patch folder of the first committed grid of the workspace that has a
``patch_directory`` (its file-name pattern gives each point's parameters), or the points of a committed grid
named with ``--grid``. Prints one line per point and a summary: the CLs ratio (without / with the
unfilled regions' signal), verdicts that change, and, with ``--contour X Y`` on a plane of points, the two
observed contours' largest separation.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import math
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from recastflow.analyses.bundle import load_analysis, load_grid
from recastflow.core.errors import RecastError
from recastflow.report.contours import contour_separation, crossings_along, interpolated_contour
from recastflow.run.folder import project_root, unfilled_regions
from recastflow.stats.compiled import LikelihoodCompiler
from recastflow.stats.limits import PointResult, evaluate_point
from recastflow.stats.patching import point_patch, shared_copy

ROOT = project_root()


def without_channels(ops: list[dict[str, Any]], bkg: dict[str, Any], drop: set[str]) -> list[dict[str, Any]]:
    """The patch without its ``add`` operations on the channels named in ``drop``."""
    names = [c["name"] for c in bkg["channels"]]
    out = []
    for op in ops:
        parts = op["path"].split("/")
        if op["op"] == "add" and len(parts) > 2 and parts[1] == "channels" and names[int(parts[2])] in drop:
            continue
        out.append(op)
    return out


def grid_file(args: argparse.Namespace, signals: Path) -> str:
    """A grid of every published patch of the workspace (written into ``signals``), or the committed one."""
    if args.grid:
        return args.grid
    template = None
    for path in sorted((ROOT / "config" / "signals").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("analysis") == args.analysis and doc.get("workspace") == args.workspace and doc.get(
            "patch_directory"
        ):
            template = doc
            break
    if template is None:
        raise SystemExit(f"no committed grid of {args.analysis} {args.workspace} with a patch_directory; give --grid")
    name = f"unfilled_{args.workspace}"
    doc = {k: template[k] for k in ("analysis", "workspace", "model", "parameters", "plot", "patch_directory")}
    doc.update(name=name, description="every published patch (benchmarks/unfilled_effect.py)")
    # the patch folder's members, from the fetched archive: where the grid loader puts the template's first point
    probe_name = f"{name}_probe"
    probe = dict(doc, name=probe_name, points=template["points"][:1])
    (signals / f"{probe_name}.yaml").write_text(yaml.safe_dump(probe, sort_keys=False))
    first = load_grid(probe_name, signals, ROOT / "config" / "analyses").points[0].patch
    assert first is not None
    folder = first.parent
    pattern = doc["patch_directory"]["pattern"]
    keys = re.findall(r"{(\w+)}", pattern)
    rx = re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[0-9.]+)", re.escape(pattern)) + "$")
    points = []
    for f in sorted(folder.iterdir()):
        m = rx.match(f.name)
        if m:
            values = {k: float(m.group(k)) for k in keys}
            points.append({"name": "p_" + "_".join(m.group(k) for k in keys), "values": values})
    doc["points"] = points
    (signals / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analysis", default="ATLAS-SUSY-2018-31")
    parser.add_argument("--workspace", default="RegionA")
    parser.add_argument("--grid", help="a committed grid (config/signals) instead of every published patch")
    parser.add_argument("--where", nargs="*", default=[], metavar="PARAM=VALUE", help="only points with these values")
    parser.add_argument("--limit", type=int, help="at most this many points (evenly spread over the list)")
    parser.add_argument("--method", default="fast", choices=("fast", "exact"))
    parser.add_argument("--contour", nargs=2, metavar=("X", "Y"), help="compare the observed contours in this plane")
    parser.add_argument("--output", help="write the per-point results here (JSON)")
    args = parser.parse_args()

    analysis = load_analysis(args.analysis, ROOT / "config" / "analyses")
    drop = set(unfilled_regions(analysis, args.workspace))
    if not drop:
        raise SystemExit(f"{args.analysis} {args.workspace}: its selection declares no unfilled region")
    with tempfile.TemporaryDirectory() as tmp:
        signals = Path(tmp) / "signals"
        signals.mkdir()
        grid = load_grid(grid_file(args, signals), signals if not args.grid else ROOT / "config" / "signals",
                         ROOT / "config" / "analyses")  # fmt: skip
        wsref = analysis.workspace(args.workspace)
        raw = wsref.load()
        bkg = shared_copy(raw)
        points = list(grid.points)
        for cond in args.where:
            key, value = cond.split("=")
            points = [p for p in points if math.isclose(p.values[key], float(value))]
        if args.limit and len(points) > args.limit:
            step = len(points) / args.limit
            points = [points[int(i * step)] for i in range(args.limit)]
        compiler = LikelihoodCompiler()
        rows = []
        t0 = time.perf_counter()
        print(f"{args.analysis} {args.workspace}: {len(points)} points; signal removed from {', '.join(sorted(drop))}")
        for p in points:
            ops = point_patch(p, grid, raw, wsref, analysis)
            out: dict[str, Any] = {"point": p.name, "values": dict(p.values)}
            for label, patch in (("published", ops), ("without", without_channels(ops, raw, drop))):
                record = PointResult(analysis=analysis.id, grid=grid.name, point=p.name, workspace=args.workspace,
                                     values=dict(p.values), xsec_pb=None, xsec_source=None)  # fmt: skip
                try:
                    evaluate_point(bkg, patch, record, upper_limit=False, method=args.method, compiler=compiler,
                                   analysis=analysis, wsref=wsref, source=p.name)  # fmt: skip
                except RecastError as exc:  # e.g. a patch whose only signal is in the unfilled regions
                    record.status, record.issues = "failed", [str(exc)]
                out[label] = {
                    "status": record.status,
                    "cls_obs": record.cls_obs,
                    "cls_exp": record.cls_exp[2] if record.cls_exp else None,
                    "issues": record.issues,
                }
            rows.append(out)
            a, b = out["published"], out["without"]
            if a["cls_obs"] is not None and b["cls_obs"] is not None:
                print(f"{p.name:28s} CLs_obs {a['cls_obs']:.3g} -> {b['cls_obs']:.3g}  CLs_exp {a['cls_exp']:.3g} -> "
                      f"{b['cls_exp']:.3g}  [{a['status']}/{b['status']}]")  # fmt: skip
            else:
                print(f"{p.name:28s} {a['status']}/{b['status']}: {a['issues'][:1] + b['issues'][:1]}")
        wall = time.perf_counter() - t0
    good = [r for r in rows if r["published"]["cls_obs"] is not None and r["without"]["cls_obs"] is not None]
    trusted = [r for r in good if r["published"]["status"] == "trusted" and r["without"]["status"] == "trusted"]
    print(f"\n{len(rows)} points in {wall:.0f} s; {len(good)} with both CLs, {len(trusted)} with both trusted")
    for kind in ("cls_obs", "cls_exp"):
        ratios = [r["without"][kind] / r["published"][kind] for r in good if r["published"][kind] > 0]
        # the points whose verdict the unfilled regions decide: CLs near the level on either side
        near = [r["without"][kind] / r["published"][kind] for r in good if 0.005 < r["published"][kind] < 0.5]
        flips = [r["point"] for r in good if (r["published"][kind] < 0.05) != (r["without"][kind] < 0.05)]
        print(f"{kind}: ratio without / published, median {statistics.median(ratios):.3f} (all), "
              f"{statistics.median(near) if near else math.nan:.3f} over {len(near)} points with 0.005 < CLs < 0.5, "
              f"min {min(ratios):.3g}; verdicts at 95 % CL changed: {len(flips)} {flips[:8]}")  # fmt: skip
    if args.contour:
        x, y = args.contour
        contours = {}
        for label in ("published", "without"):
            pts = [r for r in good if r[label]["cls_obs"] is not None]
            contours[label] = interpolated_contour([r["values"][x] for r in pts], [r["values"][y] for r in pts],
                                                   [math.log10(max(r[label]["cls_obs"], 1e-12)) for r in pts],
                                                   math.log10(0.05), names=(x, y))  # fmt: skip
        sep = contour_separation(contours["without"], contours["published"])
        ylo = min(r["values"][y] for r in good)
        reach = [max(crossings_along(contours[k], {y: ylo}, x) or [math.nan]) for k in ("published", "without")]
        print(f"observed contours in ({x}, {y}): largest separation {sep if sep is None else round(sep, 1)} GeV; "
              f"reach at {y} = {ylo:g}: published {reach[0]:.0f}, without {reach[1]:.0f} GeV")  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    try:
        main()
    except RecastError as exc:  # one line, as the CLI says it
        raise SystemExit(f"unfilled_effect.py: {exc}") from None
