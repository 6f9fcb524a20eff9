"""Speed of reweighting: yields at a new hypothesis by reweighting against regenerating.

Both ways give the 1Lbb (ATLAS-SUSY-2019-08) signal yields of a chargino-neutralino point at
a new chi~0_2 branching fraction from the same number of events, measured in the same run on
one core (OMP_NUM_THREADS=1, CPU time of this process):

- regenerate: ``generate_chunk`` (Pythia 8, the TChiWHZ card and spectrum, N events),
  ``emulate_file`` (ATLAS-Run2 card) and ``select_file`` (the bundle's selection), i.e. the
  work the workflow's generate -> emulate -> select jobs do for a new point;
- reweight: ``load_spec`` + ``reweight_selected`` (read the selected events of those N
  events, decay-mode ratios from the truth record, yields, diagnostics) at a new
  BR(chi~0_2 -> h chi~0_1), repeated and averaged.

It prints the seconds of each, and their ratio. Target: >= 100x.

    .venv/bin/python benchmarks/bench_reweight.py [--events N] [--repeat K]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy is imported: one core, as the target says

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from recastflow.emulate.emulation import emulate_file  # noqa: E402
from recastflow.generate.pythia import generate_chunk  # noqa: E402
from recastflow.reweight.reweighting import load_spec, reweight_selected  # noqa: E402
from recastflow.select.selection import select_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "config/processes/TChiWHZ.yaml"
SLHA = REPO / "config/signals/slha/TChiWHZ/TChiWHZ_700_0.slha"
DETECTOR = REPO / "config/detectors/ATLAS-Run2.yaml"
SELECTION = REPO / "config/analyses/ATLAS-SUSY-2019-08/selection.yaml"
SPEC = REPO / "config/reweighting/N2_branching.yaml"
LUMI_IFB = 139.0


def cpu() -> float:
    """CPU time of this process (Pythia runs in-process, so this counts it)."""
    return time.process_time()


def main() -> None:
    """Time both ways and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events generated (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=20, help="reweighting repetitions (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = cpu()
        generate_chunk(CARD, SLHA, point="BENCH", n_events=args.events, seed=11, chunk=0, chunks=1,
                       output=out / "gen.parquet", progress=False)
        t1 = cpu()
        emulate_file(out / "gen.parquet", DETECTOR, out / "reco.parquet", seed=12)
        t2 = cpu()
        result = select_file([out / "reco.parquet"], SELECTION, luminosity_ifb=LUMI_IFB, point="BENCH",
                             yields_out=out / "yields.json", cutflow_out=out / "cutflow.json",
                             selected_out=out / "selected.parquet")
        t3 = cpu()
        regenerate = t3 - t0
        start = cpu()
        for k in range(args.repeat):
            spec = load_spec(SPEC)
            yields, diag = reweight_selected(out / "selected.parquet", spec, {"BR_h": 0.2 + 0.6 * k / args.repeat},
                                             point="BENCH_rw")
        reweight = (cpu() - start) / args.repeat
    sr = sum(sum(r["yields"]) for name, r in yields["regions"].items() if name.startswith("SR"))
    print(f"events: {args.events} generated, {len(result.selected)} selected (1Lbb), CPU seconds on one core")
    print(f"regenerate (generate + emulate + select): {regenerate:8.2f} s "
          f"(generate {t1 - t0:.2f}, emulate {t2 - t1:.2f}, select {t3 - t2:.2f})")
    print(f"reweight (spec + selected events -> yields, diagnostics): {reweight:8.4f} s "
          f"(mean of {args.repeat}; last point: SR total {sr:.3f} events, ESS fraction {diag['ess_fraction']:.3f})")
    print(f"ratio regenerate / reweight: {regenerate / reweight:.0f}x (target >= 100x)")


if __name__ == "__main__":
    main()
