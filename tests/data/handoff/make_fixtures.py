"""Tiny hand-off fixtures: LHE, HepMC3 and Delphes ROOT files plus their manifests.

The tests (tests/test_handoff.py) import these functions and write fresh files into a
temporary folder, so nothing generated is kept in the repository. To look at examples:

    .venv/bin/python tests/data/handoff/make_fixtures.py handoff-examples
    recastflow handoff --manifest handoff-examples/lhe.yaml --output z.parquet

Contents:
    lhe:     u ubar -> Z -> mu+ mu- at 13 TeV, XWGTUP 1.25 pb, LHEF 3 named weights 'nominal'
             (1.25 for every event), 'muR2' and 'muR05' (different in every event, so that their
             alignment with the showered events can be checked).
    hepmc3:  final-state-only events (beams -> one vertex -> final particles), or with
             history=True a hard process u ubar -> Z -> tau tau (statuses 21-23), a hadronic
             and a leptonic tau decay, and B*+ -> B+ gamma, B+ -> D0bar pi+, D0bar -> K+ pi-.
    delphes: a 'Delphes' TTree with the branches recastflow reads (Delphes 3 names and types).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

MZ = 91.1876


# ----------------------------------------------------------------------------- LHE


def lhe_event_lines(i: int, rng: np.random.Generator, names: Sequence[str], nominal: float) -> list[str]:
    """One u ubar -> Z -> mu+ mu- event with named weights (muR2/muR05 vary with the event index)."""
    y = rng.uniform(-1, 1)
    x1, x2 = MZ / 13000 * math.exp(y), MZ / 13000 * math.exp(-y)
    pz1, pz2 = 6500 * x1, -6500 * x2
    energy, pz = pz1 - pz2, pz1 + pz2
    cos, phi = rng.uniform(-1, 1), rng.uniform(0, 2 * math.pi)
    sin = math.sqrt(1 - cos * cos)
    gamma, beta, half = energy / MZ, pz / energy, MZ / 2
    mu = []
    for sign in (1, -1):
        qx, qy, qz = sign * half * sin * math.cos(phi), sign * half * sin * math.sin(phi), sign * half * cos
        mu.append((qx, qy, gamma * (qz + beta * half), gamma * (half + beta * qz)))
    lines = ["<event>", f" 5 1 {nominal:.10e} {MZ:.6e} 7.8e-03 1.18e-01",
             f" 2 -1 0 0 501 0 0 0 {pz1:.10e} {abs(pz1):.10e} 0 0 9",
             f" -2 -1 0 0 0 501 0 0 {pz2:.10e} {abs(pz2):.10e} 0 0 9",
             f" 23 2 1 2 0 0 0 0 {pz:.10e} {energy:.10e} {MZ:.10e} 0 9"]
    lines += [f" {pid} 1 3 3 0 0 {p[0]:.10e} {p[1]:.10e} {p[2]:.10e} {p[3]:.10e} 0 0 9"
              for pid, p in zip((-13, 13), mu)]
    if names:
        lines.append("<rwgt>")
        for k, name in enumerate(names):
            value = nominal if k == 0 else nominal * (1 + 0.1 * k) * (1 + 0.01 * i)
            lines.append(f"<wgt id='{name}'> {value:.10e} </wgt>")
        lines.append("</rwgt>")
    return lines + ["</event>"]


def write_lhe(path: Path, n: int = 6, *, names: Sequence[str] = ("nominal", "muR2", "muR05"),
              xsec_pb: float = 1.25, strategy: int = 3, seed: int = 1,
              nominal: Sequence[float] | None = None) -> Path:
    """Write an LHEF 3 file of n Z -> mu mu events (see the module docstring).

    ``nominal`` sets each event's XWGTUP (and first named weight); default ``xsec_pb``.
    """
    rng = np.random.default_rng(seed)
    lines = ['<LesHouchesEvents version="3.0">', "<header>"]
    if names:
        lines += ["<initrwgt>", '<weightgroup name="scale">']
        lines += [f"<weight id='{name}'> {name} </weight>" for name in names]
        lines += ["</weightgroup>", "</initrwgt>"]
    lines += ["</header>", "<init>", f"2212 2212 6.5E+03 6.5E+03 0 0 247000 247000 {strategy} 1",
              f"{xsec_pb:.6e} 1.0E-02 {xsec_pb:.6e} 1", "</init>"]
    for i in range(n):
        lines += lhe_event_lines(i, rng, names, xsec_pb if nominal is None else nominal[i])
    path.write_text("\n".join(lines + ["</LesHouchesEvents>"]) + "\n")
    return path


def break_color(path: Path, event: int) -> None:
    """Give event number ``event`` (1-based) an unmatched colour line, so that Pythia fails on it."""
    parts = path.read_text().split("<event>")
    parts[event] = parts[event].replace(" -2 -1 0 0 0 501 ", " -2 -1 0 0 0 502 ", 1)
    path.write_text("<event>".join(parts))


# ----------------------------------------------------------------------------- HepMC3


def _particle(pyhepmc: Any, p: Sequence[float], pid: int, status: int) -> Any:
    """A GenParticle with momentum (px, py, pz, e)."""
    return pyhepmc.GenParticle(pyhepmc.FourVector(*p), pid, status)


def hepmc3_event(pyhepmc: Any, i: int, run_info: Any, weights: Sequence[float], history: bool) -> Any:
    """One event; momenta are simple numbers, conservation is not needed by the reader."""
    ev = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    ev.run_info = run_info
    ev.event_number = i
    ev.weights = list(weights)
    b1 = _particle(pyhepmc, (0, 0, 6500, 6500), 2212, 4)
    b2 = _particle(pyhepmc, (0, 0, -6500, 6500), 2212, 4)
    top = pyhepmc.GenVertex()
    top.add_particle_in(b1)
    top.add_particle_in(b2)
    ev.add_vertex(top)
    k = 1 + i  # make events differ
    finals = [(11, (10.0 * k, 1.0, 5.0, math.hypot(10.0 * k, 1.0, 5.0))), (-12, (-10.0 * k, -1.0, 2.0, 0.0)),
              (22, (0.0, 3.0, 4.0, 5.0)), (211, (1.0, 2.0, 2.0, math.sqrt(9 + 0.13957 ** 2)))]
    for pid, p in finals:
        top.add_particle_out(_particle(pyhepmc, p, pid, 1))
    if history:
        _add_history(pyhepmc, ev, top, k)
        ev.pdf_info = pyhepmc.GenPdfInfo(2, -2, 0.01 * k, 0.02, MZ, 0.5, 0.4)
    cross = pyhepmc.GenCrossSection()
    cross.set_cross_section(1.25, 0.01, 10, 10)
    ev.cross_section = cross
    return ev


def _add_history(pyhepmc: Any, ev: Any, top: Any, k: int) -> None:
    """u ubar -> Z -> tau tau with tau decays, and a B*+ -> B+ -> D0bar decay chain."""
    u = _particle(pyhepmc, (0, 0, 60.0, 60.0), 2, 21)
    ubar = _particle(pyhepmc, (0, 0, -40.0, 40.0), -2, 21)
    top.add_particle_out(u)
    top.add_particle_out(ubar)
    v_hard = pyhepmc.GenVertex()
    v_hard.add_particle_in(u)
    v_hard.add_particle_in(ubar)
    z = _particle(pyhepmc, (0, 0, 20.0, 100.0), 23, 22)
    v_hard.add_particle_out(z)
    ev.add_vertex(v_hard)
    v_z = pyhepmc.GenVertex()
    v_z.add_particle_in(z)
    tau_m = _particle(pyhepmc, (30.0 * k, 0, 10.0, math.sqrt((30.0 * k) ** 2 + 100 + 1.777 ** 2)), 15, 23)
    tau_p = _particle(pyhepmc, (-30.0 * k, 0, 10.0, math.sqrt((30.0 * k) ** 2 + 100 + 1.777 ** 2)), -15, 23)
    v_z.add_particle_out(tau_m)
    v_z.add_particle_out(tau_p)
    ev.add_vertex(v_z)
    # tau- -> tau- (copy after radiation bookkeeping) -> pi- nu_tau (hadronic, visible = the pion)
    v_copy = pyhepmc.GenVertex()
    v_copy.add_particle_in(tau_m)
    tau_copy = _particle(pyhepmc, tau_m.momentum, 15, 2)
    v_copy.add_particle_out(tau_copy)
    ev.add_vertex(v_copy)
    v_dec = pyhepmc.GenVertex()
    v_dec.add_particle_in(tau_copy)
    pion = (20.0 * k, 3.0, 6.0, math.sqrt((20.0 * k) ** 2 + 45.0 + 0.0195))
    v_dec.add_particle_out(_particle(pyhepmc, pion, -211, 1))
    v_dec.add_particle_out(_particle(pyhepmc, (10.0 * k, -3.0, 4.0, math.sqrt((10.0 * k) ** 2 + 25.0)), 16, 1))
    ev.add_vertex(v_dec)
    # tau+ -> mu+ nu nu (leptonic: not a visible hadronic tau)
    v_lep = pyhepmc.GenVertex()
    v_lep.add_particle_in(tau_p)
    for pid, p in ((-13, (-15.0 * k, 0, 5.0, 16.0 * k)), (-16, (-10.0 * k, 0, 3.0, 10.5 * k)),
                   (14, (-5.0 * k, 0, 2.0, 5.5 * k))):
        v_lep.add_particle_out(_particle(pyhepmc, p, pid, 1))
    ev.add_vertex(v_lep)
    # B*+ -> B+ gamma, B+ -> D0bar pi+, D0bar -> K+ pi-
    bstar = _particle(pyhepmc, (0, 25.0, 0, math.sqrt(625 + 5.325 ** 2)), 523, 2)
    top.add_particle_out(bstar)
    v_bs = pyhepmc.GenVertex()
    v_bs.add_particle_in(bstar)
    bplus = _particle(pyhepmc, (0, 24.9, 0, math.sqrt(24.9 ** 2 + 5.279 ** 2)), 521, 2)
    v_bs.add_particle_out(bplus)
    v_bs.add_particle_out(_particle(pyhepmc, (0, 0.1, 0, 0.1), 22, 1))
    ev.add_vertex(v_bs)
    v_b = pyhepmc.GenVertex()
    v_b.add_particle_in(bplus)
    d0bar = _particle(pyhepmc, (0, 15.0, 1.0, math.sqrt(226 + 1.865 ** 2)), -421, 2)
    v_b.add_particle_out(d0bar)
    v_b.add_particle_out(_particle(pyhepmc, (0, 9.9, -1.0, math.sqrt(99.01 + 0.0195)), 211, 1))
    ev.add_vertex(v_b)
    v_d = pyhepmc.GenVertex()
    v_d.add_particle_in(d0bar)
    v_d.add_particle_out(_particle(pyhepmc, (1.0, 8.0, 0.5, 8.1), 321, 1))
    v_d.add_particle_out(_particle(pyhepmc, (-1.0, 7.0, 0.5, 7.2), -211, 1))
    ev.add_vertex(v_d)


def write_hepmc3(path: Path, n: int = 4, *, names: Sequence[str] = ("nominal", "alt"), history: bool = False,
                 weights: Sequence[Sequence[float]] | None = None) -> Path:
    """Write n HepMC3 ASCII events; weights default to (1, 1.1 + 0.1 i) per event."""
    import pyhepmc

    run_info = pyhepmc.GenRunInfo()
    run_info.weight_names = list(names)
    run_info.tools = [pyhepmc.GenRunInfo.ToolInfo("fixture", "1.0", "recastflow test fixture")]
    with pyhepmc.open(path, "w") as f:
        for i in range(n):
            w = weights[i] if weights is not None else [1.0, 1.1 + 0.1 * i][:len(names)]
            f.write(hepmc3_event(pyhepmc, i, run_info, w, history))
    return path


# ----------------------------------------------------------------------------- Delphes


def delphes_columns(n: int, tracks: bool = False) -> dict[str, Any]:
    """Per-collection record arrays of n events, with Delphes 3 branch types; ``tracks`` adds a Track branch
    that gives the 80 GeV jet one track and the 40 GeV one two (see test_delphes_jets_count_their_tracks)."""
    import awkward as ak

    def collection(rows: list[list[dict[str, Any]]], types: dict[str, Any]) -> ak.Array:
        arr = ak.Array(rows)
        return ak.zip({k: ak.values_astype(arr[k], t) for k, t in types.items()})

    f32, i32, u32 = np.float32, np.int32, np.uint32
    jets = [[{"PT": 40.0 + i, "Eta": 0.5, "Phi": 0.1, "Mass": 5.0, "BTag": 0, "Flavor": 21},
             {"PT": 80.0 + i, "Eta": -1.0, "Phi": 2.0, "Mass": 9.0, "BTag": 1, "Flavor": 5}] for i in range(n)]
    electrons = [[{"PT": 30.0 + i, "Eta": 0.2, "Phi": -1.0, "Charge": -1}] for i in range(n)]
    muons = [[{"PT": 25.0, "Eta": 1.2, "Phi": 0.5, "Charge": 1}] if i % 2 else [] for i in range(n)]
    photons = [[{"PT": 15.0, "Eta": 0.0, "Phi": 3.0}] for _ in range(n)]
    met = [[{"MET": 50.0 + i, "Phi": -2.0}] for i in range(n)]
    event = [[{"Weight": 0.5 + 0.25 * i}] for i in range(n)]
    weight = [[{"Weight": 0.5 + 0.25 * i}, {"Weight": 0.6 + 0.25 * i}] for i in range(n)]
    # around the 40 GeV jet (eta 0.5, phi 0.1): dR 0.14 and 0.22 count; 0.45 away, 0.4 GeV and |eta| 2.6 do not
    track_rows = [{"PT": 2.0, "Eta": 0.6, "Phi": 0.2}, {"PT": 0.8, "Eta": 0.3, "Phi": 0.0},
                  {"PT": 1.0, "Eta": 0.5, "Phi": 0.55}, {"PT": 0.4, "Eta": 0.5, "Phi": 0.1},
                  {"PT": 5.0, "Eta": 2.6, "Phi": 0.1}, {"PT": 3.0, "Eta": -1.2, "Phi": 2.1}]
    extra = {"Track": collection([track_rows] * n, {"PT": f32, "Eta": f32, "Phi": f32})} if tracks else {}
    return {**extra,
        "Event": collection(event, {"Weight": f32}),
        "Weight": collection(weight, {"Weight": f32}),
        "Jet": collection(jets, {"PT": f32, "Eta": f32, "Phi": f32, "Mass": f32, "BTag": u32, "Flavor": u32}),
        "Electron": collection(electrons, {"PT": f32, "Eta": f32, "Phi": f32, "Charge": i32}),
        "Muon": collection(muons, {"PT": f32, "Eta": f32, "Phi": f32, "Charge": i32}),
        "Photon": collection(photons, {"PT": f32, "Eta": f32, "Phi": f32}),
        "MissingET": collection(met, {"MET": f32, "Phi": f32}),
    }


def write_delphes(path: Path, n: int = 4, *, tree: str = "Delphes", omit: Sequence[str] = (),
                  tracks: bool = False) -> Path:
    """Write a Delphes-like TTree (branches 'Jet.PT', counters 'Jet_size'); ``omit`` drops branches, ``tracks``
    adds the Track branch of :func:`delphes_columns`."""
    import uproot

    columns = delphes_columns(n, tracks)
    for branch in omit:
        collection, leaf = branch.split(".")
        rest = [f for f in columns[collection].fields if f != leaf]
        columns[collection] = columns[collection][rest] if rest else None
    columns = {k: v for k, v in columns.items() if v is not None}
    with uproot.recreate(path) as f:
        # mktree + extend writes a TTree; assigning a dict would write an RNTuple (uproot >= 5.7)
        t = f.mktree(tree, {k: v.type.content for k, v in columns.items()},
                     counter_name=lambda c: f"{c}_size", field_name=lambda outer, inner: f"{outer}.{inner}")
        t.extend(columns)
    return path


# ----------------------------------------------------------------------------- manifests


def write_manifest(folder: Path, name: str = "manifest.yaml", **fields: Any) -> Path:
    """Write a manifest YAML; ``fields`` override a valid LHE default (None removes a key)."""
    doc: dict[str, Any] = {
        "format": "lhe", "file": "z.lhe", "point": "Zmumu",
        "generator": {"name": "fixture", "version": "1.0"},
        "cross_section": {"value": 1.25, "unit": "pb", "source": "fixture"},
        "n_events": 6, "weight_convention": "unweighted", "weights": ["nominal", "muR2", "muR05"],
    }
    for key, value in fields.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main(folder: Path) -> None:
    """Write one example of each format with its manifest into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_lhe(folder / "z.lhe")
    write_manifest(folder, "lhe.yaml")
    write_hepmc3(folder / "events.hepmc3", history=True)
    write_manifest(folder, "hepmc3.yaml", format="hepmc3", file="events.hepmc3", n_events=4,
                   weight_convention="average", weights=["nominal", "alt"])
    write_delphes(folder / "delphes.root")
    write_manifest(folder, "delphes.yaml", format="delphes", file="delphes.root", n_events=4,
                   weight_convention="sum-is-xsec", cross_section={"value": 3.5, "unit": "fb", "source": "fixture"},
                   weights=None)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "examples")
