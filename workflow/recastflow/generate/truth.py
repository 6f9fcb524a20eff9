"""The truth record and particle columns of generated events, shared by generation and the hand-off readers.

Events arrive as flat particle arrays (:class:`Flat`: pid, status, mothers, daughters, four-momenta, event
index), whatever made them (Pythia 8 in :mod:`recastflow.generate.pythia`, a HepMC3 file in
:mod:`recastflow.generate.hepmc`). This module turns them into the columns of recastflow-events/1: the
final-state particles, and the truth record (the hard process with its mothers, the decay-mode label of each
event that reweighting reads, weakly decaying b and c hadrons, and hadronic taus with their visible momentum,
mass, charge and prongs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import awkward as ak
import numpy as np

#: Decaying particles named in the decay-mode label, in label order.
BOSONS: dict[int, str] = {6: "t", 24: "W", 23: "Z", 25: "h", 35: "H", 36: "A", 37: "H+", 15: "tau"}

#: Names of decay products in the label, in label order within one decay.
PRODUCT_ORDER: tuple[str, ...] = ("e", "mu", "tau", "nu", "b", "c", "q", "t", "g", "gamma", "W", "Z", "h", "X")
PRODUCT_NAMES: dict[int, str] = {
    1: "q",
    2: "q",
    3: "q",
    4: "c",
    5: "b",
    6: "t",
    11: "e",
    12: "nu",
    13: "mu",
    14: "nu",
    15: "tau",
    16: "nu",
    21: "g",
    22: "gamma",
    23: "Z",
    24: "W",
    25: "h",
}


class Flat(NamedTuple):
    """The particles of a batch as flat numpy arrays; ``mother1`` is a global index or -1."""

    counts: np.ndarray
    offsets: np.ndarray
    event: np.ndarray
    pid: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    m: np.ndarray


def jagged(flat: Flat, mask: np.ndarray, fields: dict[str, np.ndarray]) -> ak.Array:
    """Build a per-event list of records from flat columns of the selected particles."""
    counts = np.bincount(flat.event[mask], minlength=len(flat.counts))
    return ak.unflatten(ak.zip(fields), counts)


def final_particles(flat: Flat, charges: Callable[[np.ndarray], np.ndarray]) -> ak.Array:
    """All final-state particles (status > 0) with pid, charge and four-momentum.

    Args:
        flat: the events' particles.
        charges: PDG ids -> electric charges (Pythia's table when generating, the particle table in a hand-off).
    """
    final = flat.status > 0
    pid = flat.pid[final]
    return jagged(
        flat,
        final,
        {
            "pid": pid,
            "charge": charges(pid),
            "px": flat.px[final],
            "py": flat.py[final],
            "pz": flat.pz[final],
            "e": flat.e[final],
        },
    )


def truth_record(flat: Flat, pdf: dict[str, np.ndarray], *, unknown_without_hard: bool = False) -> ak.Array:
    """The truth record: hard process, decay-mode label, PDF info, heavy hadrons and taus.

    Shared by generation and the HepMC3 hand-off, so that both write the same record.

    Args:
        flat: the events' particles, flattened.
        pdf: per event ``id1``, ``id2``, ``x1``, ``x2``, ``q2``.
        unknown_without_hard: label events without a hard-process record ``"unknown"`` (hand-off
            files need not carry one; Pythia's always do).

    Returns:
        One record per event.
    """
    hard_mask = (np.abs(flat.status) >= 21) & (np.abs(flat.status) <= 23)
    hard_mother = hard_mothers(flat, hard_mask)
    hard = jagged(
        flat,
        hard_mask,
        {
            "pid": flat.pid[hard_mask],
            "status": flat.status[hard_mask],
            "mother": hard_mother,
            "px": flat.px[hard_mask],
            "py": flat.py[hard_mask],
            "pz": flat.pz[hard_mask],
            "e": flat.e[hard_mask],
            "m": flat.m[hard_mask],
        },
    )
    mode = mode_labels(flat, hard_mask, hard_mother)
    if unknown_without_hard:
        n_hard = np.bincount(flat.event[hard_mask], minlength=len(flat.counts))
        mode = ak.Array([label if n else "unknown" for label, n in zip(ak.to_list(mode), n_hard)])
    bhad, chad = weak_heavy_hadrons(flat)
    return ak.zip(
        {
            "hard": hard,
            "mode": mode,
            **pdf,
            "bhadrons": pt_eta_phi(flat, bhad, flat.px, flat.py, flat.pz),
            "chadrons": pt_eta_phi(flat, chad, flat.px, flat.py, flat.pz),
            "taus": visible_taus(flat),
        },
        depth_limit=1,
    )


def hard_mothers(flat: Flat, hard_mask: np.ndarray) -> np.ndarray:
    """Index, within each event's hard list, of each hard particle's first mother, or -1.

    A resonance's decay products point to the resonance's latest copy (recoil copies from
    the shower and beam remnants, status 44/62...), so climb through copies of the same
    particle until a hard-list entry is reached.
    """
    hard_g = np.nonzero(hard_mask)[0]
    n_hard = np.bincount(flat.event[hard_g], minlength=len(flat.counts))
    first = np.concatenate([[0], np.cumsum(n_hard)[:-1]])
    position = np.full(len(flat.pid), -1, dtype=np.int32)
    position[hard_g] = (np.arange(len(hard_g)) - first[flat.event[hard_g]]).astype(np.int32)

    current = flat.mother1[hard_g].copy()
    target = np.where(current >= 0, flat.pid[np.maximum(current, 0)], 0)
    for _ in range(len(flat.pid) + 1):  # each step climbs one entry, so this always ends
        safe = np.maximum(current, 0)
        climb = (current >= 0) & ~hard_mask[safe] & (flat.pid[safe] == target)
        if not climb.any():
            break
        current[climb] = flat.mother1[current[climb]]
    safe = np.maximum(current, 0)
    found = (current >= 0) & hard_mask[safe]
    return np.where(found, position[safe], -1).astype(np.int32)


def mode_labels(flat: Flat, hard_mask: np.ndarray, hard_mother: np.ndarray) -> ak.Array:
    """Label each event by the decays of its W/Z/h/t/tau in the hard list, e.g. ``"W(mu nu) h(b b)"``.

    Each decay becomes an integer token (decaying particle, sorted product codes); events
    are rows of sorted tokens, and only the distinct rows are turned into strings.
    """
    n_events = len(flat.counts)
    hard_g = np.nonzero(hard_mask)[0]
    n_hard = np.bincount(flat.event[hard_g], minlength=n_events)
    first = np.concatenate([[0], np.cumsum(n_hard)[:-1]])
    event = flat.event[hard_g]
    pid = np.abs(flat.pid[hard_g])
    has_mother = hard_mother >= 0
    mother_row = np.where(has_mother, first[event] + hard_mother, 0)  # row of the mother in hard_g
    mother_pid = np.where(has_mother, pid[mother_row], 0)
    boson_rank = np.zeros(len(hard_g), dtype=np.int64)
    for rank, boson in enumerate(BOSONS, start=1):
        boson_rank[mother_pid == boson] = rank
    product = np.nonzero(boson_rank > 0)[0]
    if len(product) == 0:
        return ak.Array([""] * n_events)
    code = _product_codes(pid[product])
    group = mother_row[product]
    order = np.lexsort((code, group))
    code, group, prod_event = code[order], group[order], event[product][order]
    starts = np.r_[True, group[1:] != group[:-1]]
    gid = np.cumsum(starts) - 1
    slot = np.arange(len(group)) - np.nonzero(starts)[0][gid]
    # up to three products per decay in the token, two decimal digits each
    contrib = np.where(slot < 3, code * 100 ** (2 - np.minimum(slot, 2)), 0)
    token = np.bincount(gid, weights=contrib).astype(np.int64) + boson_rank[product][order][starts] * 1_000_000
    token_event = prod_event[starts]
    order = np.lexsort((token, token_event))
    token, token_event = token[order], token_event[order]
    per_event = np.bincount(token_event, minlength=n_events)
    width = int(per_event.max())
    rows = np.zeros((n_events, width), dtype=np.int64)
    col = np.arange(len(token)) - np.concatenate([[0], np.cumsum(per_event)[:-1]])[token_event]
    rows[token_event, col] = token
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    labels = ak.Array([_label(row) for row in unique.tolist()])
    return labels[inverse.reshape(-1)]


def _product_codes(abs_pid: np.ndarray) -> np.ndarray:
    """Map decay products to their 1-based position in PRODUCT_ORDER ("X" for the rest)."""
    names = np.array(PRODUCT_ORDER)
    code = np.full(len(abs_pid), PRODUCT_ORDER.index("X") + 1, dtype=np.int64)
    for pid, name in PRODUCT_NAMES.items():
        code[abs_pid == pid] = int(np.nonzero(names == name)[0][0]) + 1
    return code


def _label(tokens: list[int]) -> str:
    """Turn one event's decay tokens into text."""
    bosons = list(BOSONS.values())
    parts = []
    for token in tokens:
        if token == 0:
            continue
        boson, rest = divmod(token, 1_000_000)
        products = [PRODUCT_ORDER[c - 1] for c in (rest // 10_000, rest // 100 % 100, rest % 100) if c]
        parts.append(f"{bosons[boson - 1]}({' '.join(products)})")
    return " ".join(parts)


def _heavy_flavour(abs_pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which PDG ids are open-beauty and open-charm (no beauty) hadrons.

    Quarkonia (b bbar, c cbar) are left out: they do not decay weakly.
    """
    q1, q2, q3 = abs_pid // 1000 % 10, abs_pid // 100 % 10, abs_pid // 10 % 10
    hadron = (abs_pid < 10_000_000) & (q3 > 0) & (q2 > 0) & (abs_pid % 10 > 0)
    meson = hadron & (q1 == 0)
    baryon = hadron & (q1 > 0)
    has_b = (meson & (q2 == 5) & (q3 != 5)) | (baryon & ((q1 == 5) | (q2 == 5) | (q3 == 5)))
    # in a meson code the heavier quark comes first (q2 >= q3), so open charm is q2 = 4, q3 < 4
    has_c = (meson & (q2 == 4) & (q3 != 4)) | (baryon & ((q1 == 4) | (q2 == 4) | (q3 == 4)))
    return has_b, has_c & ~has_b


def weak_heavy_hadrons(flat: Flat) -> tuple[np.ndarray, np.ndarray]:
    """Masks of weakly decaying b and c hadrons: no daughter is a hadron of the same kind.

    Decay products have the decaying particle as first mother (mother2 = 0), so B* -> B gamma
    and B0 -> B0bar mixing mark the first one as not weakly decaying.
    """
    is_b, is_c = _heavy_flavour(np.abs(flat.pid).astype(np.int64))
    result = []
    for kind in (is_b, is_c):
        has_same_child = np.zeros(len(kind), dtype=bool)
        child = kind & (flat.mother1 >= 0)
        parents = flat.mother1[child]
        has_same_child[parents[kind[parents]]] = True
        result.append(kind & ~has_same_child)
    return result[0], result[1]


def pt_eta_phi(flat: Flat, mask: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> ak.Array:
    """Per-event lists of {pt, eta, phi} of the selected particles (momentum given separately)."""
    px, py, pz = px[mask], py[mask], pz[mask]
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / pt), np.copysign(np.inf, pz))
    return jagged(flat, mask, {"pt": pt, "eta": eta, "phi": np.arctan2(py, px)})


def visible_taus(flat: Flat) -> ak.Array:
    """Visible momenta (tau minus neutrinos) of hadronically decaying taus, with mass, charge and prongs.

    Fields: pt, eta, phi and the visible mass m of the tau minus its neutrinos, the tau's charge,
    and prongs (its charged final-state decay products).

    The decaying tau is the last copy: one with daughters, none of them a tau (a tau that
    radiated a photon has a tau daughter). Leptonic decays (an e or mu daughter) are left out.
    """
    n = len(flat.pid)
    apid = np.abs(flat.pid)
    child = flat.mother1 >= 0
    parent = flat.mother1[child]
    has_child = np.bincount(parent, minlength=n) > 0
    has_tau_child = np.bincount(parent[apid[child] == 15], minlength=n) > 0
    has_lepton_child = np.bincount(parent[(apid[child] == 11) | (apid[child] == 13)], minlength=n) > 0
    hadronic = (apid == 15) & (flat.status < 0) & has_child & ~has_tau_child & ~has_lepton_child
    is_nu = child & ((apid == 12) | (apid == 14) | (apid == 16))
    nu_parent = flat.mother1[is_nu]
    vis = [p - np.bincount(nu_parent, weights=p[is_nu], minlength=n) for p in (flat.px, flat.py, flat.pz, flat.e)]
    taus = pt_eta_phi(flat, hadronic, *vis[:3])
    px, py, pz, e = (v[hadronic] for v in vis)
    # visible mass, prong count and charge: what hadronic-tau emulation (recastflow.emulate.taus) needs
    m = np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))
    prongs = _tau_prongs(flat, hadronic)[hadronic]
    charge = np.where(flat.pid[hadronic] > 0, -1, 1).astype(np.int8)  # PDG 15 is tau-
    counts = np.bincount(flat.event[hadronic], minlength=len(flat.counts))
    extra = ak.unflatten(ak.zip({"m": m, "charge": charge, "prongs": prongs.astype(np.int8)}), counts)
    return ak.zip({f: taus[f] for f in ("pt", "eta", "phi")} | {f: extra[f] for f in ("m", "charge", "prongs")})


#: Long-lived charged particles that leave a track: e, mu, pi, K, p (Pythia's stable charged hadrons
#: from tau decays are pions and kaons; electrons come from pi0 Dalitz decays).
_CHARGED_STABLE = np.array([11, 13, 211, 321, 2212])

#: Generations climbed from a final-state particle to its tau: tau -> a1 -> rho -> pi, or
#: tau -> K0 -> K0_S -> pi, are at most 4 steps deep.
_TAU_DEPTH = 6


def _tau_prongs(flat: Flat, decaying: np.ndarray) -> np.ndarray:
    """Charged final-state descendants ("prongs") of each particle marked ``decaying`` (0 elsewhere).

    Each charged final-state particle climbs its first-mother chain for up to ``_TAU_DEPTH``
    steps and is counted for the first marked ancestor it meets.

    Args:
        flat: the events' particles.
        decaying: mask of the decaying taus.
    """
    n = len(flat.pid)
    idx = np.flatnonzero((flat.status > 0) & np.isin(np.abs(flat.pid), _CHARGED_STABLE))
    current = flat.mother1[idx]
    owner = np.full(len(idx), -1, dtype=np.int64)
    for _ in range(_TAU_DEPTH):
        alive = current >= 0
        if not alive.any():
            break
        safe = np.maximum(current, 0)
        hit = alive & decaying[safe]
        owner[hit] = current[hit]
        current = np.where(alive & ~hit, flat.mother1[safe], -1)
    return np.bincount(owner[owner >= 0], minlength=n)
