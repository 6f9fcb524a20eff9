"""Speed of the emulate stage on real Pythia 8 events: clustering, and the columnar response against a Python loop.

Steps (one core; OMP_NUM_THREADS=1):

1. generate seeded 13 TeV ttbar events with Pythia 8 (``pythia8mc``, ``nextBatch``; MPI off
   so that generation fits in the time budget) and convert them to recastflow-events/1
   columns (final-state particles; weakly decaying b/c hadrons and taus for flavour labels);
2. time :func:`recastflow.emulate.clustering.build_truth_objects` (isolation + one fastjet call +
   flavour labels) on them: the clustering rate;
3. replicate the truth objects to >= 1e6 events and time :func:`recastflow.emulate.emulation.respond`
   (efficiencies, smearing, acceptance, b-tagging, MET, pT ordering): the response rate;
4. time a plain per-event Python loop doing the same response on a subset, given the truth
   objects as Python lists and dicts (conversion not timed: the loop's best case).

Targets: response >= 1e6 events/s and >= 50x the loop measured in the same run.

    .venv/bin/python benchmarks/bench_emulate.py [--generate N] [--events N] [--loop-events N]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy is imported: one core, as the target says

import argparse  # noqa: E402
import bisect  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402

from recastflow.emulate.clustering import build_truth_objects  # noqa: E402
from recastflow.emulate.card import BinnedMap, DetectorCard, Resolution, load_card  # noqa: E402
from recastflow.emulate.emulation import emulate, respond  # noqa: E402

CARD = Path(__file__).resolve().parents[1] / "config/detectors/ATLAS-Run2.yaml"
B_HADRONS = (511, 521, 531, 541, 5122, 5132, 5232, 5332)
C_HADRONS = (411, 421, 431, 4122, 4132, 4232, 4332)


# --------------------------------------------------------------------------- Pythia events
def _pythia(seed: int):  # -> pythia8mc.Pythia
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in ("Beams:eCM = 13000.", "Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "PartonLevel:MPI = off",
                 "Random:setSeed = on", f"Random:seed = {seed}", "Next:numberCount = 0",
                 "Next:numberShowEvent = 0", "Next:numberShowInfo = 0", "Next:numberShowProcess = 0",
                 "Init:showChangedSettings = off", "Init:showProcesses = off", "Init:showChangedParticleData = off"):
        pythia.readString(line)
    pythia.init()
    return pythia


def _charges(pythia: Any, pid: np.ndarray) -> np.ndarray:
    """Electric charge per particle, looked up once per distinct PDG id."""
    ids, inverse = np.unique(pid, return_inverse=True)
    table = np.array([pythia.particleData.charge(int(i)) for i in ids], dtype=np.float32)
    return table[inverse]


def _selected(prt: ak.Array, mask: ak.Array) -> ak.Array:
    sel = prt[mask]
    p = sel.p
    pt = np.hypot(p.px, p.py)
    return ak.zip({"pt": pt, "eta": np.arcsinh(p.pz / pt), "phi": np.arctan2(p.py, p.px)})


def pythia_events(n: int, seed: int) -> ak.Array:
    """Generate n ttbar events and convert them to recastflow-events/1 columns (no header).

    Args:
        n: number of events.
        seed: Pythia seed.
    """
    pythia = _pythia(seed)
    batch = pythia.nextBatch(n)
    prt = batch.prt
    final = prt[prt.status > 0]
    counts = ak.to_numpy(ak.num(final, axis=1))
    pid = ak.to_numpy(ak.flatten(final.id))
    mom = final.p
    particles = ak.unflatten(ak.zip({
        "pid": pid.astype(np.int32), "charge": _charges(pythia, pid),
        "px": ak.to_numpy(ak.flatten(mom.px)), "py": ak.to_numpy(ak.flatten(mom.py)),
        "pz": ak.to_numpy(ak.flatten(mom.pz)), "e": ak.to_numpy(ak.flatten(mom.e))}), counts)
    all_counts = ak.to_numpy(ak.num(prt, axis=1))
    abs_id = np.abs(ak.to_numpy(ak.flatten(prt.id)))
    decayed = ak.to_numpy(ak.flatten(prt.status)) < 0

    def mask(flat: np.ndarray) -> ak.Array:
        return ak.unflatten(flat, all_counts)

    # benchmark-grade labels: ground-state weakly decaying hadrons, every tau entry
    truth = ak.zip({"bhadrons": _selected(prt, mask(np.isin(abs_id, B_HADRONS) & decayed)),
                    "chadrons": _selected(prt, mask(np.isin(abs_id, C_HADRONS) & decayed)),
                    "taus": _selected(prt, mask(abs_id == 15))}, depth_limit=1)
    return ak.zip({"weight": np.ones(len(counts)), "particles": particles, "truth": truth}, depth_limit=1)


# --------------------------------------------------------------------------- the per-event loop
class _PlainCard:
    """The card's maps as Python lists, so that the loop pays no numpy-scalar overhead."""

    def __init__(self, card: DetectorCard) -> None:
        self.card = card

        def plain_map(m: BinnedMap) -> SimpleNamespace:
            return SimpleNamespace(pt_edges=m.pt_edges.tolist(), eta_edges=m.eta_edges.tolist(),
                                   values=m.values.tolist())

        def plain_res(r: Resolution) -> SimpleNamespace:
            return SimpleNamespace(variable=r.variable, eta_edges=r.eta_edges.tolist(), noise=r.noise.tolist(),
                                   stochastic=r.stochastic.tolist(), constant=r.constant.tolist(),
                                   sagitta=r.sagitta.tolist())

        self.eff = {name: plain_map(getattr(card, name).efficiency) for name in ("electrons", "muons", "photons")}
        self.res = {name: plain_res(getattr(card, name).resolution) for name in ("electrons", "muons", "photons")}
        self.res["jets"] = plain_res(card.jets.resolution)
        self.btag = {label: plain_map(m) for label, m in card.btag.efficiency.maps.items()}


def _lookup_plain(m: Any, pt: float, abs_eta: float) -> float:
    i = bisect.bisect_right(m.pt_edges, pt) - 1
    j = bisect.bisect_right(m.eta_edges, abs_eta) - 1
    if i < 0 or j < 0 or j >= len(m.eta_edges) - 1:
        return 0.0
    return m.values[min(i, len(m.pt_edges) - 2)][j]


def _relative_plain(r: Any, x: float, abs_eta: float) -> float:
    i = min(max(bisect.bisect_right(r.eta_edges, abs_eta) - 1, 0), len(r.noise) - 1)
    n, s, c, k = r.noise[i], r.stochastic[i], r.constant[i], r.sagitta[i]
    return math.sqrt((n / x) ** 2 + s * s / x + c * c + (k * x) ** 2)


def loop_response(events: list[dict[str, Any]], plain: _PlainCard, seed: int) -> list[dict[str, Any]]:
    """The response of :func:`recastflow.emulate.emulation.respond`, one event and one object at a time."""
    card = plain.card
    rnd = random.Random(seed)
    scale_soft, noise = card.met.soft_scale, card.met.soft_resolution
    out = []
    for ev in events:
        mx, my = scale_soft * ev["met_truth"]["px"], scale_soft * ev["met_truth"]["py"]
        jets = []
        for j in ev["jets"]:
            pt, eta, phi = j["pt"], j["eta"], j["phi"]
            a = abs(eta)
            f = 1.0 + _relative_plain(plain.res["jets"], pt, a) * rnd.gauss(0.0, 1.0)
            ptr = pt * f
            if ptr < card.jets.min_pt or a >= card.jets.max_abs_eta:
                continue
            tag = rnd.random() < _lookup_plain(plain.btag[j["flavour"]], ptr, a)
            jets.append({"pt": ptr, "eta": eta, "phi": phi, "m": j["m"] * f, "btag": tag, "flavour": j["flavour"]})
            mx -= (f - scale_soft) * j["px"]
            my -= (f - scale_soft) * j["py"]
        jets.sort(key=lambda o: -o["pt"])
        reco = {"jets": jets}
        for name in ("electrons", "muons", "photons"):
            obj, kept = getattr(card, name), []
            for p in ev[name]:
                pt, eta, phi = p["pt"], p["eta"], p["phi"]
                a = abs(eta)
                found = rnd.random() < _lookup_plain(plain.eff[name], pt, a)
                x = pt if plain.res[name].variable == "pt" else pt * math.cosh(eta)
                f = 1.0 + _relative_plain(plain.res[name], x, a) * rnd.gauss(0.0, 1.0)
                ptr = pt * f
                if not found or ptr < obj.min_pt or a >= obj.max_abs_eta:
                    continue
                rec = {"pt": ptr, "eta": eta, "phi": phi}
                if "charge" in p:
                    rec["charge"] = p["charge"]
                kept.append(rec)
                mx -= (f - scale_soft) * p["px"]
                my -= (f - scale_soft) * p["py"]
            kept.sort(key=lambda o: -o["pt"])
            reco[name] = kept
        mx -= rnd.gauss(0.0, noise)
        my -= rnd.gauss(0.0, noise)
        reco["met"] = {"pt": math.hypot(mx, my), "phi": math.atan2(my, mx)}
        out.append(reco)
    return out


# --------------------------------------------------------------------------- main
def _best(fn: Any, repeat: int) -> tuple[float, float, Any]:
    """Best CPU time (this process, user + system) and wall time of ``repeat`` runs, and the result.

    CPU time is what 'events/s/core' means, and it stays meaningful when other processes
    share the machine; wall time is shown beside it.
    """
    best_cpu, best_wall, result = math.inf, math.inf, None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        best_cpu, best_wall = min(best_cpu, time.process_time() - c0), min(best_wall, time.perf_counter() - t0)
    return best_cpu, best_wall, result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generate", type=int, default=3000, help="Pythia ttbar events (default: %(default)s)")
    ap.add_argument("--events", type=int, default=1_000_000, help="events for the response (default: %(default)s)")
    ap.add_argument("--loop-events", type=int, default=20_000, help="events for the loop (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args(argv)
    card = load_card(CARD)
    load = os.getloadavg()

    t0 = time.perf_counter()
    events = pythia_events(args.generate, args.seed)
    t_gen = time.perf_counter() - t0
    n_part = float(ak.mean(ak.num(events.particles, axis=1)))

    t_cluster, w_cluster, truth = _best(lambda: build_truth_objects(events, card), 2)
    t_full, w_full, _ = _best(lambda: emulate(events, card, args.seed), 2)
    per_event = {k: float(ak.mean(ak.num(truth[k], axis=1))) for k in ("jets", "electrons", "muons", "photons")}

    copies = -(-args.events // len(truth))
    big = ak.to_packed(ak.concatenate([truth] * copies))
    n_big = len(big)
    subset = ak.to_list(big[: args.loop_events])
    plain = _PlainCard(card)
    # alternate the two and keep the best of each: other load on the machine then hits both alike
    t_resp = w_resp = t_loop = w_loop = math.inf
    for _ in range(3):
        cpu, wall, reco = _best(lambda: respond(big, card, np.random.Generator(np.random.PCG64(args.seed))), 1)
        t_resp, w_resp = min(t_resp, cpu), min(w_resp, wall)
        cpu, wall, _ = _best(lambda: loop_response(subset, plain, args.seed), 1)
        t_loop, w_loop = min(t_loop, cpu), min(w_loop, wall)
    reco_jets = float(ak.mean(ak.num(reco["jets"], axis=1)))

    r_resp, r_loop = n_big / t_resp, len(subset) / t_loop
    print(f"Pythia 8 ttbar 13 TeV (MPI off): {len(truth)} events in {t_gen:.1f} s, "
          f"{n_part:.0f} final-state particles/event")
    print("truth objects/event: " + ", ".join(f"{k} {v:.2f}" for k, v in per_event.items())
          + f"; reco jets/event {reco_jets:.2f}")
    print(f"load average at start {load[0]:.1f} on {os.cpu_count()} CPUs; rates use CPU time (one core)")
    print(f"{'step':<46}{'events':>9}{'cpu s':>8}{'wall s':>8}{'events/s':>12}{'vs loop':>9}")
    rows = [("clustering (isolation + fastjet + flavour)", len(truth), t_cluster, w_cluster, None),
            ("emulate end to end (clustering + response)", len(truth), t_full, w_full, None),
            ("response, columnar (best of 3)", n_big, t_resp, w_resp, r_resp / r_loop),
            ("response, per-event Python loop (best of 3)", len(subset), t_loop, w_loop, 1.0)]
    for name, n, t, w, ratio in rows:
        print(f"{name:<46}{n:>9}{t:>8.2f}{w:>8.2f}{n / t:>12,.0f}{'' if ratio is None else f'{ratio:>8.0f}x':>9}")
    ok = r_resp >= 1e6 and r_resp / r_loop >= 50
    print(f"targets (response >= 1e6 events/s/core and >= 50x the loop): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
