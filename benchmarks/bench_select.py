"""Speed of the select stage: columnar run_selection against a plain per-event Python loop.

Runs the ATLAS-SUSY-2019-08 (1Lbb) selection.yaml on synthetic but realistic reco events
(seeded; one lepton, 2-8 jets of which about two b-tagged, MET) and times

- ``run_selection`` on all events (columnar, one core), input already in memory as an
  awkward array, everything included (object building, overlap removal, variables, cuts,
  histograms, cutflows, the selected-events array);
- a hand-written per-event Python loop doing the same selection on a subset, given the
  events as plain Python lists and dicts (conversion not timed: the loop's best case).

It checks that both give the same raw counts per region and bin on the subset, then
prints the events/s of each (CPU time of this process: events/s/core) and their ratio,
with the loop timed on ready Python lists and also including the conversion of the
columnar events to Python objects that a per-event loop over these files needs.
Targets: >= 1e6 events/s and >= 50x.

    .venv/bin/python benchmarks/bench_select.py [--events N] [--loop-events N]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy is imported: one core, as the target says

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402

from recastflow.select.selection import SelectionResult, load_selection, run_selection  # noqa: E402

SELECTION = Path(__file__).resolve().parents[1] / "config/analyses/ATLAS-SUSY-2019-08/selection.yaml"
LUMI_IFB = 139.0


# --------------------------------------------------------------------------- synthetic events


def _objects(rng: np.random.Generator, counts: np.ndarray, pt_min: float, pt_scale: float,
             eta_sigma: float, eta_max: float) -> dict[str, np.ndarray]:
    """Flat pt (descending within events), eta, phi for the given multiplicities."""
    total = int(counts.sum())
    pt = pt_min + rng.exponential(pt_scale, total)
    event = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-pt, event))
    eta = np.clip(rng.normal(0.0, eta_sigma, total), -eta_max, eta_max)
    return {"pt": pt[order], "eta": eta, "phi": rng.uniform(-np.pi, np.pi, total)}


def synthetic_reco(n: int, seed: int = 1) -> tuple[ak.Array, dict[str, Any]]:
    """Reco events resembling a W h(bb) 1-lepton signal sample, and their header.

    Args:
        n: number of events.
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    n_jets = 2 + rng.poisson(1.5, n)
    jets = _objects(rng, n_jets, 20.0, 70.0, 1.4, 4.5)
    jets["m"] = jets["pt"] * rng.uniform(0.05, 0.2, len(jets["pt"]))
    # about two b-tags per event, mostly among the three leading jets
    local = np.arange(len(jets["pt"])) - np.repeat(np.cumsum(n_jets) - n_jets, n_jets)
    jets["btag"] = rng.random(len(local)) < np.where(local < 3, 0.6, 0.05)
    jets["flavour"] = np.where(jets["btag"], 5, 0).astype(np.int8)
    prompt = rng.random(n) < 0.9
    extra = rng.random(n) < 0.1
    is_e = rng.random(n) < 0.5
    n_el = (prompt & is_e).astype(np.int64) + (extra & ~is_e)
    n_mu = (prompt & ~is_e).astype(np.int64) + (extra & is_e)
    electrons = _objects(rng, n_el, 5.0, 60.0, 1.1, 2.6)
    muons = _objects(rng, n_mu, 4.0, 60.0, 1.1, 2.8)
    for lep in (electrons, muons):
        lep["charge"] = rng.choice(np.array([-1, 1], dtype=np.int8), len(lep["pt"]))
    n_ph = rng.poisson(0.2, n)
    photons = _objects(rng, n_ph, 10.0, 30.0, 1.2, 2.4)
    weight = rng.normal(1.0, 0.1, n)

    def nest(fields: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
        return ak.unflatten(ak.zip(fields), counts)

    events = ak.zip({
        "weight": weight,
        "jets": nest(jets, n_jets),
        "electrons": nest(electrons, n_el),
        "muons": nest(muons, n_mu),
        "photons": nest(photons, n_ph),
        "met": ak.zip({"pt": 80.0 + rng.exponential(170.0, n), "phi": rng.uniform(-np.pi, np.pi, n)}),
        "truth": ak.zip({"id1": rng.choice(np.array([1, 2, -1, -2, 21], np.int32), n),
                         "id2": rng.choice(np.array([1, 2, -1, -2, 21], np.int32), n),
                         "x1": rng.uniform(0.01, 0.5, n), "x2": rng.uniform(0.01, 0.5, n),
                         "q2": rng.uniform(1e4, 1e6, n)}),
    }, depth_limit=1)
    header = {"format": "recastflow-reco/1", "point": "synthetic", "n_events": n, "sum_weights": float(weight.sum()),
              "xsec_pb": 0.05, "xsec_source": "synthetic", "br_factor": 0.58}
    return events, header


# --------------------------------------------------------------------------- the per-event baseline


def _dphi(a: float, b: float) -> float:
    d = abs(a - b) % (2 * math.pi)
    return 2 * math.pi - d if d > math.pi else d


def _dr(a: dict[str, float], b: dict[str, float]) -> float:
    return math.hypot(a["eta"] - b["eta"], _dphi(a["phi"], b["phi"]))


def _mass(*parts: dict[str, float]) -> float:
    px = py = pz = e = 0.0
    for p in parts:
        pt, eta, phi, m = p["pt"], p["eta"], p["phi"], p.get("m", 0.0)
        z = pt * math.sinh(eta)
        px += pt * math.cos(phi)
        py += pt * math.sin(phi)
        pz += z
        e += math.sqrt(pt * pt + z * z + m * m)
    return math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


def _loop_event(ev: dict[str, Any]) -> dict[str, int]:
    """The 1Lbb selection of selection.yaml for one event: region -> bin (-1: not in it)."""
    els = [dict(e, m=0.000510999, cut=7) for e in ev["electrons"] if e["pt"] > 7 and abs(e["eta"]) < 2.47]
    mus = [dict(u, m=0.1056584, cut=6) for u in ev["muons"] if u["pt"] > 6 and abs(u["eta"]) < 2.7]
    jets = [j for j in ev["jets"] if j["pt"] > 20 and abs(j["eta"]) < 4.5]
    jets = [j for j in jets if all(_dr(j, lep) >= 0.2 for lep in els + mus)]
    els = [e for e in els if all(_dr(e, j) >= min(0.4, 0.04 + 10 / e["pt"]) for j in jets)]
    mus = [u for u in mus if all(_dr(u, j) >= min(0.4, 0.04 + 10 / u["pt"]) for j in jets)]
    leptons = sorted(els + mus, key=lambda p: -p["pt"])
    signal = [p for p in leptons if p["pt"] > p["cut"]]
    sjets = [j for j in jets if j["pt"] > 30 and abs(j["eta"]) < 2.8]
    bjets = [j for j in sjets if j["btag"] and abs(j["eta"]) < 2.5]
    out = dict.fromkeys(REGIONS, -1)
    met = ev["met"]
    if not (len(leptons) == 1 and len(signal) == 1 and 2 <= len(sjets) <= 3 and len(bjets) == 2 and met["pt"] > 240):
        return out
    lep, b1, b2 = signal[0], bjets[0], bjets[1]
    mt = math.sqrt(max(2 * lep["pt"] * met["pt"] * (1 - math.cos(lep["phi"] - met["phi"])), 0.0))
    mbb = _mass(b1, b2)
    if not (mt > 50 and mbb > 50):
        return out
    mct = math.sqrt(max(2 * b1["pt"] * b2["pt"] * (1 + math.cos(b1["phi"] - b2["phi"])), 0.0))
    mlb1 = _mass(lep, b1)
    window = 100 < mbb < 140
    sr_bin = 0 if 180 <= mct < 230 else 1 if 230 <= mct < 280 else 2 if mct >= 280 else -1
    for name, ok in (("SRLMEM_mct2", 100 < mt < 160), ("SRMMEM_mct2", 160 < mt < 240),
                     ("SRHMEM_mct2", mt > 240 and mlb1 > 120)):
        if ok and window and mct > 180:
            out[name] = sr_bin
    # ttbar CRs on the mbb sidebands (ATLAS SimpleAnalysis EwkOneLeptonTwoBjets2018, CR_tt_*)
    sidebands = 50 < mbb < 100 or mbb > 140
    for name, ok in (("TRLMEM_cuts", 100 < mt < 160), ("TRMMEM_cuts", 160 <= mt < 240),
                     ("TRHMEM_cuts", mt >= 240 and mlb1 > 120)):
        out[name] = 0 if ok and sidebands and mct < 180 else -1
    out["WREM_cuts"] = 0 if 50 < mt < 100 and 50 < mbb < 80 and mct > 180 else -1
    out["STCREM_cuts"] = 0 if mt > 100 and mbb > 195 and mct > 180 else -1
    return out


REGIONS = ("SRLMEM_mct2", "SRMMEM_mct2", "SRHMEM_mct2", "TRLMEM_cuts", "TRMMEM_cuts", "TRHMEM_cuts",
           "WREM_cuts", "STCREM_cuts")


def loop_counts(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Raw counts per region and bin from the per-event loop."""
    counts = {r: [0, 0, 0] if r.endswith("mct2") else [0] for r in REGIONS}
    for ev in events:
        for region, b in _loop_event(ev).items():
            if b >= 0:
                counts[region][b] += 1
    return counts


# --------------------------------------------------------------------------- main


def _columnar(events: ak.Array, header: dict[str, Any], repeat: int) -> tuple[float, float, SelectionResult]:
    """Best CPU and wall time of ``repeat`` runs of run_selection, and the result."""
    selection = load_selection(SELECTION)
    cpu = wall = math.inf
    result = None
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = run_selection(events, header, selection, LUMI_IFB)
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    return cpu, wall, result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the rates; exit 1 if the two selections disagree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--loop-events", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    events, header = synthetic_reco(args.events)
    cpu_col, wall_col, result = _columnar(events, header, args.repeat)
    subset, sub_header = events[: args.loop_events], dict(header, n_events=args.loop_events)
    start = time.process_time()
    plain = ak.to_list(subset[["jets", "electrons", "muons", "met"]])
    cpu_convert = time.process_time() - start
    start = time.process_time()
    counts = loop_counts(plain)
    cpu_loop = time.process_time() - start
    _, _, sub_result = _columnar(subset, sub_header, 1)
    agree = all(list(sub_result.regions[r].raw) == counts[r] for r in REGIONS)

    rate_col = args.events / cpu_col
    rate_loop = args.loop_events / cpu_loop
    rate_loop_io = args.loop_events / (cpu_loop + cpu_convert)
    print(f"events: {args.events} columnar, {args.loop_events} per-event loop (seeded synthetic 1l+bb reco), "
          f"one core, CPU time")
    print(f"selected: {len(result.selected)} events in a region; SR yields at {LUMI_IFB} fb-1: "
          + ", ".join(f"{r}={sum(result.regions[r].yields):.2f}" for r in REGIONS[:3]))
    print(f"columnar run_selection:       {cpu_col:.3f} s -> {rate_col / 1e6:.2f} M events/s "
          f"(best of {args.repeat}; wall {wall_col:.3f} s)")
    print(f"per-event loop, Python lists: {cpu_loop:.3f} s -> {rate_loop / 1e3:.1f} k events/s")
    print(f"  + ak.to_list of the events: {cpu_convert:.3f} s -> {rate_loop_io / 1e3:.1f} k events/s")
    print(f"ratio columnar / loop: {rate_col / rate_loop:.0f}x (lists given), "
          f"{rate_col / rate_loop_io:.0f}x (conversion included)")
    print(f"same raw counts per region and bin on the loop subset: {'yes' if agree else 'NO'}")
    if not agree:
        for r in REGIONS:
            print(f"  {r}: columnar {list(sub_result.regions[r].raw)} loop {counts[r]}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
