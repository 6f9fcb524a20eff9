"""Grid-scale limits: recastflow's fast path against what a pyhf user runs today, in one run.

Usage (from the repository root, after `make setup`):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_limits.py [--regiona 50] [--onelbb 7] [--ul-points 2]

Workspaces: the published ATLAS-SUSY-2018-31 RegionA likelihood (points spread evenly over the 217
published patches) and ATLAS-SUSY-2019-08 (1Lbb, the 7 published validation patches).
Timed, one process, one BLAS thread, per analysis:

  cli     `pyhf cls BkgOnly.json --patch patch.json` once per patch (what the pyhf docs show)
  loop    pyhf.infer.hypotest in one process, model rebuilt (and validated) per point
  scan    pyhf.infer.intervals.upper_limits.upper_limit (toms748, observed + expected band) per point,
          on the first --ul-points points only (it is the slow baseline); POI range widened to (0, 1000)
  fast    recastflow: one LikelihoodCompiler for the whole grid, CLs at mu=1 for every point, then
          upper limits with expected band for every point (compilation time included)

Accuracy: every fast CLs value against pyhf's hypotest with its optimiser converged (tolerance
1e-12; pyhf's default SLSQP tolerance leaves CLs uncertain at the 1e-4 level, measured here as
"loop vs converged"), and fast upper limits against the scan. Prints ratios and largest deviations.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import jsonpatch  # noqa: E402
import numpy as np  # noqa: E402
import pyhf  # noqa: E402

from recastflow.compiled import LikelihoodCompiler  # noqa: E402
from recastflow.config import read_document  # noqa: E402
from recastflow.errors import RecastError  # noqa: E402
from recastflow.inference import FastLikelihood  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def regiona(n: int) -> tuple[Path, list[tuple[str, list]]]:
    doc = read_document(ROOT / "config/signals/patches/ATLAS-SUSY-2018-31/RegionA/patchset.json.gz")
    patches = doc["patches"]
    pick = np.linspace(0, len(patches) - 1, min(n, len(patches))).round().astype(int)
    return (ROOT / "config/analyses/ATLAS-SUSY-2018-31/workspaces/RegionA/BkgOnly.json",
            [(patches[i]["metadata"]["name"], patches[i]["patch"]) for i in pick])


def onelbb(n: int) -> tuple[Path, list[tuple[str, list]]]:
    files = sorted((ROOT / "config/analyses/ATLAS-SUSY-2019-08/validation").glob("patch_*.json"))[:n]
    return (ROOT / "config/analyses/ATLAS-SUSY-2019-08/workspaces/Wh/BkgOnly.json",
            [(f.stem.removeprefix("patch_"), read_document(f)) for f in files])


def cls_list(obs, exp) -> list[float]:
    return [float(obs)] + [float(e) for e in exp]


def deviation(ours: list[float], ref: list[float]) -> float:
    """Largest deviation in units of the criterion: relative 1e-5, or absolute 1e-7 where CLs is tiny."""
    return max(abs(a - b) / max(1e-5 * abs(b), 1e-7) for a, b in zip(ours, ref))


def bench(label: str, bkg_path: Path, points: list[tuple[str, list]], ul_points: int) -> dict:
    bkg = json.loads(bkg_path.read_text())
    n = len(points)
    out: dict = {"analysis": label, "points": n}
    print(f"\n== {label}: {n} points ==", flush=True)

    # cli: pyhf cls per patch, as a fresh process each time
    pyhf_exe = str(Path(sys.executable).with_name("pyhf"))
    cli_values = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, ops in points:
            f = Path(tmp) / f"{name}.json"
            f.write_text(json.dumps(ops))
            files.append(f)
        t0 = time.perf_counter()
        for (name, _), f in zip(points, files):
            proc = subprocess.run([pyhf_exe, "cls", str(bkg_path), "--patch", str(f)],
                                  capture_output=True, text=True, check=True)
            res = json.loads(proc.stdout)
            cli_values[name] = [res["CLs_obs"]] + list(res["CLs_exp"])
        out["cli_s"] = time.perf_counter() - t0
    print(f"cli   {out['cli_s']:8.1f} s  ({out['cli_s'] / n:.2f} s/point)", flush=True)

    # loop: hypotest in one process, model rebuilt per point
    loop_values = {}
    t0 = time.perf_counter()
    for name, ops in points:
        ws = pyhf.Workspace(bkg)
        model = ws.model(patches=[ops])
        loop_values[name] = cls_list(*pyhf.infer.hypotest(1.0, ws.data(model), model, test_stat="qtilde",
                                                          return_expected_set=True))
    out["loop_s"] = time.perf_counter() - t0
    print(f"loop  {out['loop_s']:8.1f} s  ({out['loop_s'] / n:.2f} s/point)", flush=True)

    # scan: pyhf's upper-limit search per point (first ul_points points)
    scan_values = {}
    t0 = time.perf_counter()
    for name, ops in points[:ul_points]:
        ws = pyhf.Workspace(bkg)
        model = ws.model(patches=[ops])
        # the published POI range (0, 10) is too narrow for toms748's bracket (it doubles the upper end
        # until CLs falls below the level): widen it, as a user of the scan has to
        bounds = model.config.suggested_bounds()
        bounds[model.config.poi_index] = (0.0, 1000.0)
        obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(ws.data(model), model, scan=None, level=0.05,
                                                                 par_bounds=bounds)
        scan_values[name] = [float(obs)] + [float(e) for e in exp]
    out["scan_s_per_point"] = (time.perf_counter() - t0) / max(ul_points, 1)
    print(f"scan  {out['scan_s_per_point']:8.1f} s/point ({ul_points} points)", flush=True)

    # fast: recastflow's grid path, CLs for every point, then upper limits for every point
    compiler = LikelihoodCompiler()
    fast_values, fast_ul, liks = {}, {}, {}
    t0 = time.perf_counter()
    for name, ops in points:
        ws = pyhf.Workspace(jsonpatch.apply_patch(bkg, ops), validate=False)
        model = ws.model(validate=False)
        data = ws.data(model)
        lik = FastLikelihood(model, data, compiler.objective(model, data, name))
        r = lik.cls(1.0)
        fast_values[name] = [r.obs, *r.exp]
        liks[name] = lik
    out["fast_cls_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    no_limit = []
    for name, lik in liks.items():
        try:
            ul = lik.upper_limit()
        except RecastError as exc:  # e.g. a signal the analysis is not sensitive to: no upper limit
            no_limit.append(f"{name}: {exc}")
            continue
        fast_ul[name] = [ul.obs, *ul.exp]
    out["fast_ul_s"] = time.perf_counter() - t0
    out["no_upper_limit"] = no_limit
    out["compilations"] = compiler.compiled
    for line in no_limit:
        print(f"      no upper limit: {line}")
    print(f"fast  {out['fast_cls_s']:8.1f} s CLs ({out['fast_cls_s'] / n:.3f} s/point, "
          f"{compiler.compiled} compilation(s) included); upper limits {out['fast_ul_s'] / n:.3f} s/point more",
          flush=True)

    # accuracy against pyhf's converged hypotest
    previous = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    ref = {}
    try:
        for name, ops in points:
            ws = pyhf.Workspace(bkg)
            model = ws.model(patches=[ops])
            ref[name] = cls_list(*pyhf.infer.hypotest(1.0, ws.data(model), model, test_stat="qtilde",
                                                      return_expected_set=True))
    finally:
        pyhf.set_backend(*previous)
    worst = max(points, key=lambda p: deviation(fast_values[p[0]], ref[p[0]]))[0]
    out["fast_vs_converged"] = deviation(fast_values[worst], ref[worst])
    out["loop_vs_converged"] = max(deviation(loop_values[p], ref[p]) for p, _ in points)
    out["cli_vs_loop"] = max(deviation(cli_values[p], loop_values[p]) for p, _ in points)
    out["ul_rel_dev"] = max((abs(a - b) / b for p in scan_values if p in fast_ul
                             for a, b in zip(fast_ul[p], scan_values[p])), default=float("nan"))
    n_ul = n
    out["ratio_cls_vs_cli"] = out["cli_s"] / out["fast_cls_s"]
    out["ratio_cls_vs_loop"] = out["loop_s"] / out["fast_cls_s"]
    out["ratio_ul_vs_scan"] = out["scan_s_per_point"] / ((out["fast_cls_s"] + out["fast_ul_s"]) / n_ul)
    print(f"ratios: CLs grid {out['ratio_cls_vs_cli']:.1f}x faster than the per-patch command line (target 10x), "
          f"{out['ratio_cls_vs_loop']:.1f}x than the in-process loop (target 4x); "
          f"CLs + upper limits with band {out['ratio_ul_vs_scan']:.1f}x faster per point than pyhf's scan (target 20x)")
    print(f"accuracy: fast vs converged pyhf: largest deviation {out['fast_vs_converged']:.2f} "
          f"(1 = relative 1e-5 or absolute 1e-7; worst point {worst}); pyhf at default tolerance vs converged: "
          f"{out['loop_vs_converged']:.2f}; fast upper limits vs scan: {out['ul_rel_dev']:.2e} relative (target 5e-3)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regiona", type=int, default=50, help="RegionA points (of 217)")
    parser.add_argument("--onelbb", type=int, default=7, help="1Lbb points (of 7)")
    parser.add_argument("--ul-points", type=int, default=2, help="points per analysis for pyhf's upper-limit scan")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/limits.json")
    args = parser.parse_args()
    print(f"pyhf {pyhf.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, one process")
    results = [bench("ATLAS-SUSY-2018-31 RegionA", *regiona(args.regiona), args.ul_points),
               bench("ATLAS-SUSY-2019-08 1Lbb", *onelbb(args.onelbb), args.ul_points)]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
