"""Cost of one model point through every analysis with an event selection, against one analysis.

The model's events are generated, showered and emulated once (the grids share the event sample "model");
only the selections, patches and fits are per analysis. The target: all analyses cost at most 1.2x one.

Steps (``--cores 1`` so that the jobs run one after another and the wall times add up):

1. write an SLHA spectrum for one TChiWH point with the spectrum card (working-group cross-sections);
2. ``recastflow run`` it through the first analysis with a selection (run folder A), then through all of
   them (run folder B), each a fresh run with the same seed and events;
3. read Snakemake's per-job benchmark files of both runs: the per-stage split (generation, emulation,
   each selection, patch, limits) and the ratio of the summed job times and of the wall times.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_model_first.py [--events N] [--workdir DIR]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

from recastflow.generate.spectrum import write_spectrum  # noqa: E402
from recastflow.run.api import execute, plan_model  # noqa: E402
from recastflow.run.folder import analyses_with_selection, missing_regions, project_root  # noqa: E402

ROOT = project_root()


def stage_times(folder: Path) -> dict[str, float]:
    """Seconds per stage (and per grid for the per-analysis stages) from Snakemake's benchmark files."""
    out: dict[str, float] = defaultdict(float)
    for tsv in sorted((folder / "results" / "benchmarks").rglob("*.tsv")):
        rows = list(csv.DictReader(io.StringIO(tsv.read_text()), delimiter="\t"))
        seconds = sum(float(r["s"]) for r in rows)
        parts = tsv.relative_to(folder / "results" / "benchmarks").parts
        stage = parts[0] if len(parts) > 1 else tsv.stem
        if stage in ("select", "patch", "limits"):
            stage = f"{stage} {Path(parts[1]).stem if len(parts) == 2 else parts[1]}"
        out[stage] += seconds
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events of the point (default: %(default)s)")
    parser.add_argument("--workdir", help="keep the two run folders here (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_model_first_"))
    work.mkdir(parents=True, exist_ok=True)
    slha = write_spectrum(ROOT / "config/spectra/TChiWH.yaml", {"m_C1N2": 650, "m_N1": 50}, work / "TChiWH_650_50.slha")
    usable = analyses_with_selection(ROOT / "config" / "analyses")
    every = [f"{a.id}:{ws}" for a in usable.values() for ws in a.workspaces if not missing_regions(a, ws)]
    # TChiWH is the model the 1Lbb analysis was designed for: the single-analysis run
    first = [e for e in every if e.startswith("ATLAS-SUSY-2019-08")]
    results = {}
    for label, chosen in (("one", first), ("all", every)):
        folder = work / label
        shutil.rmtree(folder, ignore_errors=True)
        plan = plan_model(slha, analyses=chosen, process="TChiWH", events=args.events, run_dir=folder)
        start = time.perf_counter()
        with open(folder / "progress.txt", "w") as progress:
            execute(plan, cores=1, out=progress)
        results[label] = (time.perf_counter() - start, stage_times(folder), chosen)
    print(f"one model point (TChiWH 650/50 GeV, {args.events} events), jobs run one at a time (--cores 1)")
    for label, (wall, stages, chosen) in results.items():
        print(f"\n{label}: {len(chosen)} analysis workspace(s): {', '.join(chosen)}")
        print(f"  wall time {wall:.1f} s; job times:")
        for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"    {stage:<48} {seconds:8.1f} s")
        print(f"    {'sum':<48} {sum(stages.values()):8.1f} s")
    one, every_ = results["one"], results["all"]
    print(f"\nratio all/one: wall {every_[0] / one[0]:.2f}x, summed job time "
          f"{sum(every_[1].values()) / sum(one[1].values()):.2f}x (target <= 1.2x)")  # fmt: skip
    print(f"run folders: {work}")


if __name__ == "__main__":
    main()
