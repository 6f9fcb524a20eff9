"""`recastflow patch` on a large grid fed by yields files: one pyhf model per structure against one per point.

Usage (from the repository root, after `make setup`):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_patch.py [--points 2000] [--repeat 3]

Builds a synthetic project (the 3-channel toy workspace of the tests, ``--points`` points whose yields differ)
in a temporary folder and times :func:`recastflow.stats.patching.build_patchset` as it is (every point's patch
schema- and likelihood-checked, a pyhf model built once per patch structure) and with a model built for every
point (the baseline: what the patch stage did before), in the same process, alternating; prints medians and
their ratio, and checks that both give the same PatchSet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import yaml  # noqa: E402

from conftest import small_workspace, yields_doc  # noqa: E402
from recastflow.analyses.bundle import load_analysis, load_grid  # noqa: E402
from recastflow.stats import patching  # noqa: E402


def project(root: Path, n: int) -> None:
    bundle = root / "config/analyses/TOY"
    (bundle / "workspaces").mkdir(parents=True)
    ws = bundle / "workspaces/BkgOnly.json"
    ws.write_text(json.dumps(small_workspace()))
    analysis = {"id": "TOY", "title": "toy", "paper": {"arxiv": "0000.00000"}, "hepdata": {"record": "ins0000000"},
                "workspaces": {"main": {"file": "workspaces/BkgOnly.json",
                                        "sha256": hashlib.sha256(ws.read_bytes()).hexdigest(),
                                        "regions": {"SR": {"channel": "SR", "bins": 2}, "CR": {"channel": "CR", "bins": 1}},
                                        "exclude_channels": ["VR"]}},
                "signal": {"poi": "mu_SIG"}, "references": []}
    (bundle / "analysis.yaml").write_text(yaml.safe_dump(analysis))
    signals = root / "config/signals"
    (signals / "yields").mkdir(parents=True)
    points = []
    for i in range(n):
        (signals / "yields" / f"P{i}.json").write_text(json.dumps(yields_doc(1 + i / n)))
        points.append({"name": f"P{i}", "values": {"m1": float(i), "m2": 1.0}, "yields": f"yields/P{i}.json"})
    (signals / "BIG.yaml").write_text(yaml.safe_dump({"name": "BIG", "analysis": "TOY", "workspace": "main",
                                                      "parameters": {"m1": {"label": "m1"}, "m2": {"label": "m2"}},
                                                      "points": points}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000, help="grid points (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each variant (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, args.points)
        grid = load_grid("BIG", root / "config/signals", root / "config/analyses")
        analysis = load_analysis("TOY", root / "config/analyses")
        bkg = analysis.workspace("main").load()
        shared_structure = patching._structure
        counter = iter(range(10**9))
        times: dict[str, list[float]] = {"one model per structure": [], "one model per point (baseline)": []}
        results = {}
        for _ in range(args.repeat):
            for name in times:
                # the baseline: every point its own structure, so every point builds its model
                patching._structure = shared_structure if name.startswith("one model per structure") else (
                    lambda ops: str(next(counter)))
                t0 = time.perf_counter()
                results[name] = patching.build_patchset(grid, analysis, bkg)
                times[name].append(time.perf_counter() - t0)
        patching._structure = shared_structure
    a, b = results.values()
    assert a == b, "the two variants gave different PatchSets"
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, median in medians.items():
        print(f"{name:<34} median {median:7.2f} s over {args.repeat} runs ({args.points / median:,.0f} points/s)")
    base, ours = medians["one model per point (baseline)"], medians["one model per structure"]
    print(f"ratio: {base / ours:.1f}x ({args.points} points)")


if __name__ == "__main__":
    main()
