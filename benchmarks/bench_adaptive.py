"""Adaptive scan against a uniform dense scan: CPU time, points, events, and how far apart the contours are.

TChiWH through ATLAS-SUSY-2019-08 (workspace Wh), both scans over the same plane and with the same seed and
point names, so that a point both scans have gets the same events (chunk k of a point is seeded the same way
in both):

- dense: every ``--step`` GeV in both masses, ``--max`` events per point in chunks of ``--chunk``
  (``recastflow run --scan``, the plain workflow);
- adaptive: a coarse grid every ``--coarse-x`` / ``--coarse-y`` GeV, refined to ``--resolution`` GeV where the
  verdicts of neighbours differ, each point generated ``--chunk`` events at a time from ``--min`` to ``--max``
  until its observed and expected verdicts are decided at 95 % confidence
  (``recastflow run --scan --adaptive``).

The accuracy criterion: the adaptive observed and expected contours within ``--criterion`` GeV of the dense
scan's everywhere along them (symmetric Hausdorff distance, :func:`recastflow.report.contours.contour_separation`).
The dense contour has MC noise of its own: ``dense_self_noise.py`` measures how far two dense scans with other
random numbers would be apart (about the criterion's width on the default plane).
CPU time is the sum of Snakemake's per-job ``cpu_time`` (benchmark files), split by stage, with the number of
jobs per stage; the two runs go one after the other on the same machine. Snakemake samples ``cpu_time`` and
undercounts short jobs (a 2,000-event generation job: 5.5 s against 9.5 s user + sys from ``time``), so the
measurements page multiplies the job counts printed here by per-job CPU measured with ``time``. An adaptive
or dense run this script starts also gets its exact whole-run CPU (Snakemake and every job, from
``getrusage``), so the two can be compared without the undercount.
``--name`` runs further adaptive settings against the same dense folder (``--skip-dense``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_adaptive.py [--workdir DIR] [--cores 2] [options]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from recastflow.report.contours import Contour, contour_separation, crossings_along, interpolated_contour  # noqa: E402
from recastflow.run.adaptive import execute_adaptive, plan_adaptive  # noqa: E402
from recastflow.run.api import execute, plan_scan  # noqa: E402
from recastflow.run.folder import project_root  # noqa: E402

ROOT = project_root()
ANALYSIS = "ATLAS-SUSY-2019-08:Wh"


def stage_cpu(folder: Path, jobs: dict[str, int] | None = None) -> dict[str, float]:
    """CPU seconds per stage from Snakemake's benchmark files (``results/benchmarks/<stage>/...``); the number of
    jobs per stage goes into ``jobs`` if given."""
    out: dict[str, float] = defaultdict(float)
    for tsv in sorted((folder / "results" / "benchmarks").rglob("*.tsv")):
        rows = list(csv.DictReader(io.StringIO(tsv.read_text()), delimiter="\t"))
        parts = tsv.relative_to(folder / "results" / "benchmarks").parts
        stage = parts[1] if parts[0] == "adaptive" and len(parts) > 2 else parts[0]
        stage = {"decide": "select + limits (decide)"}.get(stage, stage)
        out[Path(stage).stem] += sum(float(r["cpu_time"]) for r in rows)
        if jobs is not None:
            jobs[Path(stage).stem] = jobs.get(Path(stage).stem, 0) + 1
    return dict(out)


def children_cpu() -> float:
    """User + system CPU seconds of every finished child process (Snakemake and, through it, every job it
    waited for): the whole run's CPU, exactly, where the benchmark files undercount short jobs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scan_doc(name: str, xs: list[float], ys: list[float], adaptive: dict | None) -> dict:
    doc = {
        "name": name,
        "description": "bench_adaptive.py",
        "model": str(ROOT / "config" / "spectra" / "TChiWH.yaml"),
        "axes": {"m_C1N2": {"values": xs}, "m_N1": {"values": ys}},
        "constraints": ["m_N1 <= m_C1N2 - 130"],
        "cross_section": "tables",
    }
    if adaptive:
        doc["adaptive"] = adaptive
    return doc


def values(lo: float, hi: float, step: float) -> list[float]:
    n = int(round((hi - lo) / step))
    return [lo + i * step for i in range(n + 1)]


def dense_contours(folder: Path, cl: float) -> dict[str, Contour]:
    (table,) = (folder / "results" / "limits").glob("*/limits.json")
    points = [p for p in json.loads(table.read_text())["points"] if p.get("cls_obs") is not None]
    out = {}
    for kind, get in (("observed", lambda p: p["cls_obs"]), ("expected", lambda p: p["cls_exp"][2])):
        out[kind] = interpolated_contour(
            [p["values"]["m_C1N2"] for p in points],
            [p["values"]["m_N1"] for p in points],
            [math.log10(max(get(p), 1e-12)) for p in points],
            math.log10(1 - cl),
            names=("m_C1N2", "m_N1"),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--x-range", nargs=2, type=float, default=[400.0, 1000.0], metavar=("LO", "HI"))
    parser.add_argument("--y-range", nargs=2, type=float, default=[0.0, 300.0], metavar=("LO", "HI"))
    parser.add_argument("--step", type=float, default=50.0, help="dense spacing in both masses (GeV)")
    parser.add_argument("--coarse-x", type=float, default=200.0)
    parser.add_argument("--coarse-y", type=float, default=100.0)
    parser.add_argument("--resolution", type=float, default=50.0, help="refinement resolution in m_C1N2 (GeV)")
    parser.add_argument("--resolution-y", type=float, help="in m_N1 (default: as --resolution)")
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--min", type=int, default=2000)
    parser.add_argument("--max", type=int, default=10000)
    parser.add_argument("--criterion", type=float, default=25.0, help="contour distance that counts as equal (GeV)")
    parser.add_argument(
        "--caps",
        nargs="*",
        type=int,
        default=[],
        help="also redraw the adaptive contours from each point's decision at no more than these events",
    )
    parser.add_argument("--name", default="adaptive", help="the adaptive run's folder (and scan file) in --workdir")
    parser.add_argument("--skip-dense", action="store_true", help="reuse the dense run folder of --workdir")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: compare the finished run folders of --workdir (CPU times from their benchmark files)",
    )
    args = parser.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_adaptive_"))
    work.mkdir(parents=True, exist_ok=True)
    (xl, xh), (yl, yh) = args.x_range, args.y_range
    dense_file, adaptive_file = work / "dense.yaml", work / f"{args.name}.yaml"
    dense_file.write_text(
        yaml.safe_dump(scan_doc("TChiWH", values(xl, xh, args.step), values(yl, yh, args.step), None))
    )
    adaptive = {
        "events": {"chunk": args.chunk, "min": args.min, "max": args.max},
        "stop": {"confidence": 0.95, "decide": ["observed", "expected"]},
        "refine": {
            "resolution": {"m_C1N2": args.resolution, "m_N1": args.resolution_y or args.resolution},
            "max_rounds": 6,
        },
    }
    adaptive_file.write_text(
        yaml.safe_dump(scan_doc("TChiWH", values(xl, xh, args.coarse_x), values(yl, yh, args.coarse_y), adaptive))
    )
    t0 = time.time()
    run_cpu_a = None
    if args.report_only:
        plan_a = None
        summary = json.loads((work / args.name / "results" / "adaptive" / "scan.json").read_text())
    else:
        plan_a = plan_adaptive(adaptive_file, analyses=[ANALYSIS], seed=1, run_dir=work / args.name)
        before = children_cpu()
        summary = execute_adaptive(plan_a, cores=args.cores)
        run_cpu_a = children_cpu() - before
    wall_a = time.time() - t0
    dense_dir = work / "dense"
    run_cpu_d = None
    t0 = time.time()
    if not (args.skip_dense or args.report_only):
        plan_d = plan_scan(dense_file, analyses=[ANALYSIS], events=args.max, chunks=args.max // args.chunk, seed=1,
                           run_dir=dense_dir)  # fmt: skip
        config = yaml.safe_load(plan_d.config.read_text())
        config["checks"] = False  # the yield check against ATLAS is not what is compared here
        plan_d.config.write_text(yaml.safe_dump(config, sort_keys=False))
        before = children_cpu()
        result = execute(plan_d, cores=args.cores)
        run_cpu_d = children_cpu() - before
        dense_points = len(result.verdicts)
    else:
        tables = list((dense_dir / "results" / "limits").glob("*/limits.json"))
        if not tables:
            raise SystemExit(f"{dense_dir}: the dense scan has no limits table yet (not finished)")
        dense_points = len(json.loads(tables[0].read_text())["points"])
    wall_d = time.time() - t0
    jobs_a: dict[str, int] = {}
    jobs_d: dict[str, int] = {}
    cpu_a, cpu_d = stage_cpu(work / args.name, jobs_a), stage_cpu(dense_dir, jobs_d)
    ours = {
        k: Contour("m_C1N2", "m_N1", tuple(np.asarray(line, dtype=float) for line in v))
        for k, v in summary["contours"].items()
    }
    dense = dense_contours(dense_dir, summary["cl"])
    result_doc = {
        "settings": vars(args),
        "dense": {
            "points": dense_points,
            "events": dense_points * args.max,
            "cpu_s": cpu_d,
            "run_cpu_s": run_cpu_d,
            "wall_s": wall_d,
        },
        "adaptive": {
            "points": len(summary["points"]),
            "events": summary["events"],
            "rounds": summary["rounds"],
            "done": summary["done"],
            "flagged": summary["flagged"],
            "cpu_s": cpu_a,
            "run_cpu_s": run_cpu_a,
            "wall_s": wall_a,
        },
        "contours": {},
    }
    for kind in ("observed", "expected"):
        sep = contour_separation(ours[kind], dense[kind])
        reach = [max(crossings_along(c, {"m_N1": yl}, "m_C1N2") or [math.nan]) for c in (ours[kind], dense[kind])]
        result_doc["contours"][kind] = {"separation_gev": sep, "reach_at_lowest_m_N1": reach}
    for cap in args.caps:
        # what a lower maximum would have given: each point's CLs as its decision at min(events, cap) had it
        # (the refinement's choices could differ slightly with fewer events; the points are kept)
        capped, events = [], 0
        for p in summary["points"]:
            k = min(p["n_events"], cap) // args.chunk - 1
            d = json.loads((work / args.name / "results" / "adaptive" / "points" / p["point"] /
                            f"decision{k}.json").read_text())  # fmt: skip
            capped.append((p["values"]["m_C1N2"], p["values"]["m_N1"], d["cls"]["nominal"]))
            events += d["n_events"]
        seps = {}
        for kind in ("observed", "expected"):
            c = interpolated_contour([x for x, _, _ in capped], [y for _, y, _ in capped],
                                     [math.log10(max(v[kind], 1e-12)) for _, _, v in capped],
                                     math.log10(1 - summary["cl"]), names=("m_C1N2", "m_N1"))  # fmt: skip
            seps[kind] = contour_separation(c, dense[kind])
        result_doc["contours"][f"cap_{cap}"] = {"events": events, "separation_gev": seps}
    (work / f"bench_{args.name}.json").write_text(json.dumps(result_doc, indent=1))
    total_a, total_d = sum(cpu_a.values()), sum(cpu_d.values())
    print(f"plane m_C1N2 {xl:g}-{xh:g}, m_N1 {yl:g}-{yh:g} GeV; TChiWH through {ANALYSIS}; run folders in {work}")
    print(f"| | dense ({args.step:g} GeV, {args.max} events) | adaptive (coarse {args.coarse_x:g}x{args.coarse_y:g}, "
          f"resolution {args.resolution:g}, {args.min}-{args.max} events) |")  # fmt: skip
    print("|---|---|---|")
    print(f"| points | {dense_points} | {len(summary['points'])} ({summary['rounds']} rounds) |")
    print(f"| events | {dense_points * args.max} | {summary['events']} |")
    print(f"| CPU time | {total_d:.0f} s | {total_a:.0f} s |")
    for stage in sorted(set(cpu_a) | set(cpu_d)):
        print(f"|   {stage} | {cpu_d.get(stage, 0):.0f} s ({jobs_d.get(stage, 0)} jobs) | {cpu_a.get(stage, 0):.0f} s "
              f"({jobs_a.get(stage, 0)} jobs) |")  # fmt: skip
    if not args.report_only:
        print(f"| wall | {wall_d:.0f} s | {wall_a:.0f} s |")
    if run_cpu_a is not None:
        print(f"adaptive run, whole-run CPU of Snakemake and every job (getrusage): {run_cpu_a:.0f} s")
    if run_cpu_d is not None:
        print(f"dense run, whole-run CPU of Snakemake and every job (getrusage): {run_cpu_d:.0f} s")
    print(f"CPU ratio dense / adaptive (benchmark files): {total_d / total_a:.2f}x")
    if run_cpu_a and run_cpu_d:
        print(f"CPU ratio dense / adaptive (whole runs, getrusage): {run_cpu_d / run_cpu_a:.2f}x")
    for kind in ("observed", "expected"):
        c = result_doc["contours"][kind]
        sep = c["separation_gev"]
        verdict = "n/a" if sep is None else ("within" if sep <= args.criterion else "NOT within")
        print(f"{kind} contours: largest separation {sep if sep is None else round(sep, 1)} GeV ({verdict} "
              f"{args.criterion:g} GeV); reach at m_N1 = {yl:g}: adaptive {c['reach_at_lowest_m_N1'][0]:.0f}, "
              f"dense {c['reach_at_lowest_m_N1'][1]:.0f} GeV")  # fmt: skip

    for cap in args.caps:
        c = result_doc["contours"][f"cap_{cap}"]
        seps = " / ".join(f"{v:.1f}" if v is not None else "n/a" for v in c["separation_gev"].values())
        print(f"at most {cap} events per point: {c['events']} events, observed / expected separation {seps} GeV")


if __name__ == "__main__":
    main()
