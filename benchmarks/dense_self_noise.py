"""How precisely a dense scan knows its own contour: contours from disjoint parts of the same events.

``bench_adaptive.py`` judges an adaptive scan by the largest distance between its contours and a uniform dense
scan's. The dense contour carries its own MC-statistical noise, so that criterion is only meaningful if it is
wider than the distance between two dense scans that differ only in their random numbers. This script measures
that distance from a finished dense run folder (``bench_adaptive.py --workdir DIR`` leaves it in ``DIR/dense``)
without generating anything: every point's emulated chunks are split into two disjoint sets (by default the
first and the second half of its chunks), each set gives CLs through the same selection, patch and fits as an
adaptive decision (:func:`recastflow.adaptive.jobs.decide_point`), and the contours of the two sets are compared.

For two independent scans of ``n1`` and ``n2`` events per point, the contour's displacement scales roughly as
``sqrt(1/n1 + 1/n2)``; the script also prints the distance scaled to two independent scans of the dense
scan's full statistics. The largest distance along a contour is an extreme of many local fluctuations, so the
scaling is an estimate, not a law.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dense_self_noise.py --workdir DIR [--jobs 2]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse
import functools
import json
import math
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from recastflow.report.contours import Contour, contour_separation, interpolated_contour
from recastflow.run.folder import project_root

ROOT = project_root()
ANALYSIS, WORKSPACE = "ATLAS-SUSY-2019-08", "Wh"


def _scan_file(folder: Path) -> Path:
    """A two-point adaptive scan file over the dense plane: :func:`recastflow.adaptive.jobs.load_run` needs one
    to name the points and the stopping rule (whose margins do not enter the nominal CLs compared here)."""
    doc = {
        "name": "TChiWH",
        "description": "dense_self_noise.py",
        "model": str(ROOT / "config" / "spectra" / "TChiWH.yaml"),
        "axes": {"m_C1N2": {"values": [200.0, 1000.0]}, "m_N1": {"values": [0.0, 400.0]}},
        "constraints": ["m_N1 <= m_C1N2 - 130"],
        "cross_section": "tables",
        "adaptive": {
            "events": {"chunk": 1000, "min": 1000, "max": 1000},
            "refine": {"resolution": {"m_C1N2": 50.0, "m_N1": 50.0}},
        },
    }
    path = folder / "self_noise_scan.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@functools.cache
def _run(scan: str) -> Any:
    from recastflow.adaptive.jobs import load_run

    return load_run(
        Path(scan),
        analysis=ANALYSIS,
        workspace=WORKSPACE,
        process=ROOT / "config" / "processes" / "TChiWH.yaml",
        detector=ROOT / "config" / "detectors" / "ATLAS-Run2.yaml",
        seed=1,
        cl=0.95,
        analyses_dir=ROOT / "config" / "analyses",
    )


def _cls(task: tuple[str, str, list[str], str, str]) -> tuple[str, str, dict[str, float], str]:
    """Nominal observed and expected CLs of one point from some of its chunks (a worker process)."""
    from recastflow.adaptive.jobs import decide_point
    from recastflow.stats.points import LimitSettings

    point, label, reco, scan, out = task
    run = _run(scan)
    settings = LimitSettings(cl=0.95, method="fast", fallback="exact-converged", verify="near", fit_options={})
    doc = decide_point(
        run, point, [Path(p) for p in reco], Path(out), settings=settings, log=lambda _: None, subset=True
    )
    return point, label, doc["cls"]["nominal"], doc["status"]


def _contours(rows: list[tuple[float, float, dict[str, float]]], cl: float) -> dict[str, Contour]:
    return {
        kind: interpolated_contour(
            [x for x, _, _ in rows],
            [y for _, y, _ in rows],
            [math.log10(max(c[kind], 1e-12)) for _, _, c in rows],
            math.log10(1 - cl),
            names=("m_C1N2", "m_N1"),
        )
        for kind in ("observed", "expected")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="the folder of bench_adaptive.py (its dense/ run folder)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--sets",
        nargs=2,
        metavar="CHUNKS",
        help="the two disjoint chunk sets, comma-separated (default: the first and the second half, e.g. 0,1,2 3,4)",
    )
    args = parser.parse_args()
    dense = Path(args.workdir) / "dense"
    (table,) = (dense / "results" / "limits").glob("*/limits.json")
    points = [p for p in json.loads(table.read_text())["points"] if p.get("cls_obs") is not None]
    reco_dir = dense / "results" / "emulate" / "model" / "ATLAS-Run2"
    chunks = sorted(int(p.stem.removeprefix("chunk")) for p in (reco_dir / points[0]["point"]).glob("chunk*.parquet"))
    half = len(chunks) // 2
    sets = {"first": chunks[: len(chunks) - half], "second": chunks[len(chunks) - half :]}
    if args.sets:
        sets = {k: [int(c) for c in v.split(",")] for k, v in zip(("first", "second"), args.sets, strict=True)}
        if set(sets["first"]) & set(sets["second"]) or not set(sets["first"]) | set(sets["second"]) <= set(chunks):
            raise SystemExit(f"--sets: give two disjoint sets of the chunks {chunks}")
    out = Path(tempfile.mkdtemp(prefix="self_noise_"))
    scan = _scan_file(out)
    tasks = [
        (
            p["point"],
            label,
            [str(reco_dir / p["point"] / f"chunk{c}.parquet") for c in subset],
            str(scan),
            str(out / f"{p['point']}.{label}.json"),
        )
        for p in points
        for label, subset in sets.items()
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_cls, tasks))
    values = {p["point"]: (p["values"]["m_C1N2"], p["values"]["m_N1"]) for p in points}
    cls = {(point, label): c for point, label, c, _ in results}
    flagged = sorted({point for point, _, _, status in results if status != "trusted"})
    contours = {
        label: _contours([(*values[p["point"]], cls[(p["point"], label)]) for p in points], 0.95) for label in sets
    }
    print(f"dense run {dense}: {len(points)} points, chunks {chunks}; sets {sets['first']} and {sets['second']}")
    if flagged:
        print(f"not trusted in a set (their CLs still enter the contours): {', '.join(flagged)}")
    n1, n2, n = len(sets["first"]), len(sets["second"]), len(chunks)  # in chunks of equal size
    scale = math.sqrt((2 / n) / (1 / n1 + 1 / n2))
    doc = {"points": len(points), "sets": sets, "separation_gev": {}, "scaled_to_two_full_scans_gev": {}}
    for kind in ("observed", "expected"):
        sep = contour_separation(contours["first"][kind], contours["second"][kind])
        doc["separation_gev"][kind] = sep
        doc["scaled_to_two_full_scans_gev"][kind] = None if sep is None else sep * scale
        if sep is None:
            print(f"{kind}: no contour in one of the sets, nothing to compare")
            continue
        print(
            f"{kind}: the two sets' contours are {sep:.1f} GeV apart at most; two independent scans of the "
            f"full statistics, scaled by sqrt(1/n1 + 1/n2): about {sep * scale:.1f} GeV"
        )
    (Path(args.workdir) / "dense_self_noise.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
