"""Grid-scale limits: recastflow's fast path against what a pyhf user runs today, in one run.

Usage (from the repository root, after `make setup`):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_limits.py [--regiona 50] [--onelbb 7] [--ul-points 2]

Workspaces: the published ATLAS-SUSY-2018-31 RegionA likelihood (points spread evenly over the 217
published patches) and ATLAS-SUSY-2019-08 (1Lbb, the 7 published validation patches).
Each method runs in a process of its own (one BLAS thread), timed from outside, so interpreter
start and imports are included and no method inherits another's heap:

  cli      `pyhf cls BkgOnly.json --patch patch.json` once per patch (what the pyhf docs show)
  loop     pyhf.infer.hypotest in one process, model rebuilt (and validated) per point
  scan     pyhf.infer.intervals.upper_limits.upper_limit (toms748, observed + expected band) per point,
           on the first --ul-points points only (it is the slow baseline); POI range widened to (0, 1000)
  fast     recastflow's limits stage (recastflow.stats.limits.evaluate_point, method "fast", one compiler for
           the grid as one limits job has): CLs at mu=1 for every point, compilations included
  fast_ul  the same with upper limits and their expected band for every point
  reference      pyhf's hypotest at tolerance 1e-12, numpy backend (accuracy reference, not compared in time)
  reference_jax  the same on pyhf's JAX backend (exact gradients)

Accuracy: every fast CLs value against pyhf's hypotest with the optimiser converged (tolerance 1e-12;
pyhf's default SLSQP tolerance leaves CLs uncertain at the 1e-4 level, measured here as "loop vs
converged"), on the numpy backend (numerical gradients) and on the JAX backend (exact gradients): on
1Lbb each of the two stops short of the minimum at some point, so they differ by more than the 1e-5
criterion; both deviations are printed, with the two references' own difference. Fast upper limits
against the scan. Prints ratios and largest deviations.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pyhf  # noqa: E402

from recastflow.core.config import read_document  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _published(analysis_id: str):
    """A default bundle with its published files fetched (cache, then RECASTFLOW_MIRROR, then the origin)."""
    from recastflow.analyses.bundle import load_analysis

    analysis = load_analysis(analysis_id, ROOT / "config/analyses")
    analysis.fetch_sources()
    return analysis


def regiona(n: int) -> tuple[Path, list[tuple[str, list]]]:
    ws = _published("ATLAS-SUSY-2018-31").workspace("RegionA")
    files = sorted((ws.path.parent).glob("patch.*.json"))  # the archive's per-point patches, file-name order
    pick = np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int)
    return ws.path, [(files[i].name[len("patch."):-len(".json")], read_document(files[i])) for i in pick]


def onelbb(n: int) -> tuple[Path, list[tuple[str, list]]]:
    analysis = _published("ATLAS-SUSY-2019-08")
    # the published per-point patches: one declared source each (the bundle's patch_pattern names them)
    patches = (src.path() for name, src in analysis.sources.items() if name.startswith("patch_"))
    files = sorted(patches, key=lambda f: f.name)[:n]
    return (analysis.workspace("Wh").path,
            [(f.stem.removeprefix("patch_"), read_document(f)) for f in files])


def cls_list(obs, exp) -> list[float]:
    return [float(obs)] + [float(e) for e in exp]


def deviation(ours: list[float], ref: list[float]) -> float:
    """Largest deviation in units of the criterion: relative 1e-5, or absolute 1e-7 where CLs is tiny."""
    return max(abs(a - b) / max(1e-5 * abs(b), 1e-7) for a, b in zip(ours, ref))


# the three CLs methods (cli, loop, fast) run back to back, so that their ratio compares them under the same
# machine conditions: in earlier runs the fast phase, run right after the 25-minute 1Lbb scan, took twice its
# time alone
PHASES = ("loop", "fast", "fast_ul", "scan", "reference", "reference_jax")


def points_of(analysis: str, n: int) -> tuple[Path, list[tuple[str, list]]]:
    return regiona(n) if analysis == "regiona" else onelbb(n)


def run_phase(phase: str, analysis: str, n: int, ul_points: int) -> dict:
    """One method on one analysis, in this process; returns its values and counters."""
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.stats.limits import PointResult, evaluate_point

    bkg_path, points = points_of(analysis, n)
    bkg = json.loads(bkg_path.read_text())
    values: dict = {}
    out: dict = {"values": values}
    if phase in ("loop", "reference", "reference_jax"):
        if phase == "reference":
            pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
        elif phase == "reference_jax":
            # the same with exact gradients (pyhf's JAX backend): the two references differ where one of
            # them stops short of the minimum, which the fits' -2 log L shows
            pyhf.set_backend("jax", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
        for name, ops in points:
            ws = pyhf.Workspace(bkg)
            model = ws.model(patches=[ops])
            data = pyhf.tensorlib.astensor(ws.data(model))
            values[name] = cls_list(*pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde",
                                                         return_expected_set=True))
    elif phase == "scan":
        for name, ops in points[:ul_points]:
            ws = pyhf.Workspace(bkg)
            model = ws.model(patches=[ops])
            # the published POI range (0, 10) is too narrow for toms748's bracket (it doubles the upper end
            # until CLs falls below the level): widen it, as a user of the scan has to
            bounds = model.config.suggested_bounds()
            bounds[model.config.poi_index] = (0.0, 1000.0)
            obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(ws.data(model), model, scan=None, level=0.05,
                                                                     par_bounds=bounds)
            values[name] = [float(obs)] + [float(e) for e in exp]
    else:
        from recastflow.stats.patching import shared_copy

        bkg = shared_copy(bkg)  # as `recastflow limits` does once per job
        compiler = LikelihoodCompiler()
        flagged = []
        t0 = time.perf_counter()
        for name, ops in points:
            record = PointResult(analysis, "bench", name, str(bkg_path), {}, None, None)
            evaluate_point(bkg, ops, record, upper_limit=phase == "fast_ul", source=name, method="fast",
                           compiler=compiler)
            out.setdefault("first_point_s", time.perf_counter() - t0)  # the first point carries the compilation
            if record.status != "trusted":
                flagged.append(f"{name}: {record.status}: {'; '.join(record.issues)}")
            values[name] = ([record.mu_ul_obs, *record.mu_ul_exp] if record.mu_ul_obs is not None else None) \
                if phase == "fast_ul" else [record.cls_obs, *record.cls_exp]
        out.update(compilations=compiler.compiled, flagged=flagged, points_s=time.perf_counter() - t0)
    return out


class Usage:
    """CPU seconds, seconds stolen by the hypervisor and major page faults of the children run inside a `with`.

    Wall time hides what these show on a shared virtual machine: a phase whose wall time is far above
    its CPU time waited for the machine; major faults (reads from disk) show a cold page cache.
    """

    @staticmethod
    def _now() -> tuple[float, int, float | None]:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children only
        try:  # Linux: the eighth number of /proc/stat's first line, all cores
            steal = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8]) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            steal = None
        return usage.ru_utime + usage.ru_stime, usage.ru_majflt, steal

    def __enter__(self) -> "Usage":
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        (cpu0, faults0, steal0), (cpu, faults, steal) = self._start, self._now()
        self.cpu_s, self.major_faults = cpu - cpu0, faults - faults0
        self.steal_s = None if steal is None or steal0 is None else steal - steal0

    def describe(self) -> str:
        steal = "" if self.steal_s is None else f", {self.steal_s:.1f} s stolen"
        return f"{self.cpu_s:.1f} s CPU{steal}, {self.major_faults} major faults"


def in_process(phase: str, analysis: str, n: int, ul_points: int) -> tuple[float, dict]:
    """Run one phase in a fresh Python process; wall time measured from here, its `Usage` added to the result."""
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "values.json"
        t0 = time.perf_counter()
        with Usage() as usage:
            subprocess.run([sys.executable, __file__, "--phase", phase, "--analysis", analysis, "--n", str(n),
                            "--ul-points", str(ul_points), "--output", str(dest)], check=True)
        seconds = time.perf_counter() - t0
        result = json.loads(dest.read_text())
        result.update(cpu_s=usage.cpu_s, steal_s=usage.steal_s, major_faults=usage.major_faults,
                      usage=usage.describe())
        return seconds, result


def bench(label: str, analysis: str, n_wanted: int, ul_points: int) -> dict:
    bkg_path, points = points_of(analysis, n_wanted)
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
        with Usage() as usage:
            for (name, _), f in zip(points, files):
                proc = subprocess.run([pyhf_exe, "cls", str(bkg_path), "--patch", str(f)],
                                      capture_output=True, text=True, check=True)
                res = json.loads(proc.stdout)
                cli_values[name] = [res["CLs_obs"]] + list(res["CLs_exp"])
        out["cli_s"] = time.perf_counter() - t0
        out.update(cli_cpu_s=usage.cpu_s, cli_steal_s=usage.steal_s, cli_major_faults=usage.major_faults)
    print(f"cli      {out['cli_s']:8.1f} s  ({out['cli_s'] / n:.2f} s/point; {usage.describe()})", flush=True)

    phase = {}
    for name in PHASES:
        seconds, result = in_process(name, analysis, n, ul_points)
        phase[name] = result
        out[f"{name}_s"] = seconds
        for key in ("cpu_s", "steal_s", "major_faults"):
            out[f"{name}_{key}"] = result[key]
        if name == "scan":
            out["scan_s_per_point"] = seconds / max(ul_points, 1)
            print(f"scan     {out['scan_s_per_point']:8.1f} s/point ({ul_points} point(s), process start included; "
                  f"{result['usage']})", flush=True)
        elif not name.startswith("reference"):
            extra = (f", {result['compilations']} compilation(s); points {result['points_s']:.1f} s, "
                     f"of which the first {result['first_point_s']:.1f} s") if "compilations" in result else ""
            print(f"{name:8s} {seconds:8.1f} s  ({seconds / n:.3f} s/point{extra}; {result['usage']})", flush=True)
        for line in result.get("flagged", []):
            print(f"         {line}")
    ref, fast, fast_ul = phase["reference"]["values"], phase["fast"]["values"], phase["fast_ul"]["values"]
    jref = phase["reference_jax"]["values"]
    worst = max(ref, key=lambda p: deviation(fast[p], ref[p]))
    out["fast_vs_converged"] = deviation(fast[worst], ref[worst])
    out["fast_vs_converged_jax"] = max(deviation(fast[p], jref[p]) for p in jref)
    out["numpy_vs_jax_reference"] = max(deviation(ref[p], jref[p]) for p in ref)
    out["loop_vs_converged"] = max(deviation(phase["loop"]["values"][p], ref[p]) for p in ref)
    out["cli_vs_loop"] = max(deviation(cli_values[p], phase["loop"]["values"][p]) for p in ref)
    scan = phase["scan"]["values"]
    out["ul_rel_dev"] = max((abs(a - b) / b for p in scan if fast_ul.get(p)
                             for a, b in zip(fast_ul[p], scan[p])), default=float("nan"))
    out["no_upper_limit"] = [p for p, v in fast_ul.items() if v is None]
    out["compilations"] = phase["fast"]["compilations"]
    out["ratio_cls_vs_cli"] = out["cli_s"] / out["fast_s"]
    out["ratio_cls_vs_loop"] = out["loop_s"] / out["fast_s"]
    out["ratio_ul_vs_scan"] = out["scan_s_per_point"] / (out["fast_ul_s"] / n)
    out["cpu_ratio_cls_vs_cli"] = out["cli_cpu_s"] / out["fast_cpu_s"]
    print(f"ratios: CLs grid {out['ratio_cls_vs_cli']:.1f}x faster than the per-patch command line (target 10x), "
          f"{out['ratio_cls_vs_loop']:.1f}x than the in-process loop (target 4x); "
          f"CLs + upper limits with band {out['ratio_ul_vs_scan']:.1f}x faster per point than pyhf's scan (target 20x); "
          f"in CPU time, CLs grid vs command line {out['cpu_ratio_cls_vs_cli']:.1f}x")
    print(f"accuracy: fast vs converged pyhf (numpy backend): largest deviation {out['fast_vs_converged']:.2f} "
          f"(1 = relative 1e-5 or absolute 1e-7; worst point {worst}), JAX backend {out['fast_vs_converged_jax']:.2f}, "
          f"while the two references differ from each other by "
          f"{out['numpy_vs_jax_reference']:.2f}; pyhf at default tolerance vs converged: "
          f"{out['loop_vs_converged']:.2f}; fast upper limits vs scan: {out['ul_rel_dev']:.2e} relative (target 5e-3)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regiona", type=int, default=50, help="RegionA points (of 217)")
    parser.add_argument("--onelbb", type=int, default=7, help="1Lbb points (of 7)")
    parser.add_argument("--ul-points", type=int, default=2, help="points per analysis for pyhf's upper-limit scan")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/limits.json")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # internal: one method, one process
    parser.add_argument("--analysis", choices=("regiona", "onelbb"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        args.output.write_text(json.dumps(run_phase(args.phase, args.analysis, args.n, args.ul_points)))
        return
    print(f"pyhf {pyhf.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, one process per method")
    # --regiona 0 or --onelbb 0 leaves that analysis out
    results = [bench(label, key, n, args.ul_points)
               for label, key, n in (("ATLAS-SUSY-2018-31 RegionA", "regiona", args.regiona),
                                     ("ATLAS-SUSY-2019-08 1Lbb", "onelbb", args.onelbb)) if n > 0]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
