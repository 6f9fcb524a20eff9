"""Particles -> truth-level objects: isolated leptons and photons, jets, truth missing pT.

Everything is columnar: the particles of all events are handled as flat numpy arrays with
per-event counts, and the jets of all events come from a single fastjet call (one
``ClusterSequence`` over the whole jagged array is 5-20x faster than one per event).

The truth objects (see :func:`build_truth_objects`) keep every candidate that could be
reconstructed after smearing, so their pT thresholds are ``TRUTH_PT_FRACTION`` of the
card's reconstructed thresholds; :mod:`recastflow.emulate.emulation` applies the detector response.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import awkward as ak
import numpy as np

from recastflow.core.errors import RecastError
from recastflow.emulate.card import DetectorCard, Isolation, Jets

#: Truth objects are kept down to this fraction of the reco pT threshold, so that smearing
#: can move them up across it (resolutions are well below 50% at the thresholds used).
TRUTH_PT_FRACTION = 0.5

#: Candidate-particle pairs per block in the isolation sums: bounds memory to ~0.2 GB.
MAX_PAIRS_PER_BLOCK = 4_000_000

#: Particles below this pT do not count in isolation sums (tracks and calorimeter clusters
#: that soft are not used by the experiments' isolation variables either).
ISOLATION_MIN_PT = 0.5

#: Jet inputs are the visible particles within the calorimeter acceptance; further forward
#: particles (beam remnants) cannot reach jets inside the tracker and only cost time.
CALORIMETER_ABS_ETA = 4.9

_PDG = {"electrons": 11, "muons": 13, "photons": 22}
_PARTICLE_FIELDS = ("pid", "charge", "px", "py", "pz", "e")


# -- flat-array helpers (shared with recastflow.emulate.emulation) ---------------------------
def offsets_of(counts: np.ndarray) -> np.ndarray:
    """Offsets (length n + 1) of a jagged array with these per-event counts.

    Args:
        counts: objects per event.
    """
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def event_index(counts: np.ndarray) -> np.ndarray:
    """Event number (int64) of each object of a flat array.

    Args:
        counts: objects per event.
    """
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def counts_after(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Objects per event that pass a mask over the flat array.

    Args:
        mask: boolean per object.
        offsets: offsets of the flat array.
    """
    # a cumsum of booleans is ~4x slower than this search of the offsets in the kept positions
    return np.diff(np.searchsorted(np.flatnonzero(mask), offsets))


def sum_per_event(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of a flat array per event (0 for events without objects).

    Args:
        values: one value per object.
        offsets: offsets of the flat array.
    """
    sums = np.zeros(len(offsets) - 1)
    # reduceat mishandles empty segments (it returns values[start]): sum the others only,
    # which also keeps the cost proportional to the objects for sparse collections
    filled = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(filled):
        sums[filled] = np.add.reduceat(values, offsets[filled])
    return sums


def pt_order(pt: np.ndarray, counts: np.ndarray, events: np.ndarray | None = None) -> np.ndarray | None:
    """Permutation that sorts each event's objects by decreasing pT, or None if already sorted.

    pT ties below float32 precision keep their order.

    Args:
        pt: flat non-negative transverse momenta (grouped by event).
        counts: objects per event.
        events: event number (int64, < 2**31) of each object, if at hand.
    """
    if events is None:
        events = event_index(counts)
    # one int64 key: event, then decreasing pT (the bits of a non-negative float32 grow with
    # its value). A stable argsort of int64 is a timsort: fast on these nearly sorted keys,
    # faster than sorting only the disordered events once those are picked out.
    key = events << 32
    key |= np.subtract(np.uint32(0xFFFFFFFF), pt.astype(np.float32).view(np.uint32))
    if np.all(key[1:] >= key[:-1]):
        return None
    return np.argsort(key, kind="stable")


def jagged(fields: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
    """Build ``var * {fields}`` from flat numpy columns and per-event counts, without copies.

    Args:
        fields: column name -> flat array (all the same length).
        counts: objects per event.
    """
    n = len(next(iter(fields.values()))) if fields else 0
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in fields.values()], list(fields), length=n
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets_of(counts)), record))


def flat_fields(
    array: ak.Array, names: tuple[str, ...], dtype: type | None = np.float64
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flatten a ``var * {...}`` column into numpy arrays plus per-event counts.

    Args:
        array: jagged records, one list per event.
        names: fields to extract.
        dtype: dtype of the returned arrays (None keeps the stored one).
    """
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64, copy=False)
    flat = ak.flatten(array, axis=1)
    if len(flat) == 0:
        # in-memory arrays built from empty lists have no record type to take fields from
        return {name: np.zeros(0, dtype=dtype or np.float64) for name in names}, counts
    out = {}
    for name in names:
        col = ak.to_numpy(flat[name])
        out[name] = col if dtype is None else col.astype(dtype, copy=False)
    return out, counts


def kinematics(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pT, eta, phi from Cartesian momenta (eta is +-inf for pT = 0).

    Args:
        px: momentum x components in GeV.
        py: momentum y components in GeV.
        pz: momentum z components in GeV.
    """
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    eta = np.where(pt > 0, eta, np.copysign(np.inf, pz))
    return pt, eta, np.arctan2(py, px)


def delta_r2(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray | float, phi2: np.ndarray) -> np.ndarray:
    """Squared angular distance; phi in [-pi, pi], so |dphi| needs one fold at most."""
    dphi = np.abs(phi1 - phi2)
    dphi = np.where(dphi > np.pi, 2 * np.pi - dphi, dphi)
    with np.errstate(invalid="ignore"):
        return (eta1 - eta2) ** 2 + dphi**2


def pair_indices(counts_a: np.ndarray, counts_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All same-event pairs (a, b) of two jagged collections, as flat indices.

    Args:
        counts_a: objects per event of the first collection.
        counts_b: objects per event of the second collection.
    """
    ev_a = event_index(counts_a)
    per_a = counts_b[ev_a]
    ia = np.repeat(np.arange(len(ev_a), dtype=np.int64), per_a)
    first_pair = offsets_of(per_a)[:-1]
    within = np.arange(len(ia), dtype=np.int64) - np.repeat(first_pair, per_a)
    ib = np.repeat(offsets_of(counts_b)[:-1][ev_a], per_a) + within
    return ia, ib


def close_pairs(
    a_counts: np.ndarray,
    a_eta: np.ndarray,
    a_phi: np.ndarray,
    b_counts: np.ndarray,
    b_eta: np.ndarray,
    b_phi: np.ndarray,
    max_deta: float,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Same-event pairs of two flat collections closer than ``max_deta`` in eta, in blocks of events.

    Every pair of an object of ``a`` and an object of ``b`` of the same event is formed (at most
    :data:`MAX_PAIRS_PER_BLOCK` pairs at once, to bound memory), pairs further apart in eta are dropped
    before the costlier azimuth, and the rest are yielded block by block.

    Args:
        a_counts: objects of ``a`` per event; ``a_eta``, ``a_phi`` their flat columns.
        b_counts: objects of ``b`` per event; ``b_eta``, ``b_phi`` their flat columns.
        max_deta: the largest |delta eta| kept (the largest cone radius the caller will ask for).

    Yields:
        ``(ia, ib, dr2)``: flat indices into ``a`` and ``b`` and the pairs' squared delta R.
    """
    cum = np.cumsum(a_counts * b_counts)
    a_off, b_off = offsets_of(a_counts), offsets_of(b_counts)
    start = 0
    while start < len(a_counts):
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + MAX_PAIRS_PER_BLOCK, side="right")), start + 1)
        ia, ib = pair_indices(a_counts[start:stop], b_counts[start:stop])
        ia += a_off[start]
        ib += b_off[start]
        deta = a_eta[ia] - b_eta[ib]
        near = np.flatnonzero(np.abs(deta) < max_deta)
        ia, ib = ia[near], ib[near]
        yield ia, ib, delta_r2(deta[near], a_phi[ia], 0.0, b_phi[ib])
        start = stop


# -- isolated leptons and photons ----------------------------------------------------
def _cone_sums(
    cand: dict[str, np.ndarray],
    cand_counts: np.ndarray,
    others: dict[str, np.ndarray],
    other_counts: np.ndarray,
    max_cone: float,
) -> np.ndarray:
    """pT sum of the other particles around each candidate, in blocks of events to bound memory.

    Args:
        cand: flat candidate columns: ``index`` (into the particles), ``eta``, ``phi``,
            ``cone2``/``inner2`` (squared outer and inner radius).
        cand_counts: candidates per event.
        others: flat columns of the particles that count: ``index``, ``pt``, ``eta``, ``phi``.
        other_counts: such particles per event.
        max_cone: largest cone radius (pairs further apart in eta are dropped first).
    """
    sums = np.zeros(len(cand["index"]))
    pairs = close_pairs(cand_counts, cand["eta"], cand["phi"], other_counts, others["eta"], others["phi"], max_cone)
    for ia, ib, dr2 in pairs:
        inside = (dr2 < cand["cone2"][ia]) & (dr2 >= cand["inner2"][ia]) & (others["index"][ib] != cand["index"][ia])
        sums += np.bincount(ia[inside], weights=others["pt"][ib[inside]], minlength=len(sums))
    return sums


def isolated_candidates(
    pid: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    visible: np.ndarray,
    counts: np.ndarray,
    card: DetectorCard,
) -> dict[str, np.ndarray]:
    """Flat masks of the isolated truth electrons, muons and photons within acceptance.

    Non-isolated ones (from hadron decays, pi0 photons) stay in the jet inputs.

    Args:
        pid: PDG ids; pt, eta, phi: kinematics; visible: not an invisible particle (all flat).
        counts: particles per event.
        card: the detector card (thresholds and isolation per object).
    """
    apid = np.abs(pid)
    offsets = offsets_of(counts)
    kinds = {name: getattr(card, name) for name in _PDG}
    masks = {
        name: (apid == _PDG[name]) & (pt > TRUTH_PT_FRACTION * obj.min_pt) & (np.abs(eta) < obj.max_abs_eta)
        for name, obj in kinds.items()
    }
    any_cand = masks["electrons"] | masks["muons"] | masks["photons"]
    index = np.flatnonzero(any_cand)
    cand = {
        "index": index,
        "eta": eta[index],
        "phi": phi[index],
        "cone2": np.zeros(len(index)),
        "inner2": np.zeros(len(index)),
    }
    rel, absolute = np.zeros(len(index)), np.zeros(len(index))
    for name, obj in kinds.items():
        iso: Isolation = obj.isolation
        sel = masks[name][index]
        cand["cone2"][sel], cand["inner2"][sel] = iso.cone**2, iso.inner_cone**2
        rel[sel], absolute[sel] = iso.rel, iso.abs
    counted = visible & (pt > ISOLATION_MIN_PT)
    other = np.flatnonzero(counted)
    others = {"index": other, "pt": pt[other], "eta": eta[other], "phi": phi[other]}
    max_cone = max(obj.isolation.cone for obj in kinds.values())
    sums = _cone_sums(cand, counts_after(any_cand, offsets), others, counts_after(counted, offsets), max_cone)
    isolated = np.zeros(len(pid), dtype=bool)
    isolated[index] = sums < rel * pt[index] + absolute
    return {name: mask & isolated for name, mask in masks.items()}


# -- jets -----------------------------------------------------------------------------
@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send C-level stdout to stderr: fastjet prints its banner there on first use."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _jet_definition(jets: Jets):  # -> fastjet.JetDefinition
    import fastjet

    algorithm = {
        "anti-kt": fastjet.antikt_algorithm,
        "kt": fastjet.kt_algorithm,
        "cambridge": fastjet.cambridge_algorithm,
    }[jets.algorithm]
    return fastjet.JetDefinition(algorithm, jets.radius)


def cluster_jets(
    momenta: dict[str, np.ndarray], counts: np.ndarray, jets: Jets, tracks: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cluster the jets of all events in one fastjet call.

    Args:
        momenta: flat ``px, py, pz, e`` of the jet inputs.
        counts: inputs per event.
        jets: the card's jet settings (algorithm, radius, thresholds).
        tracks: flat, per input: whether it counts as a track of the jet it ends up in; None for no
            track counts.

    Returns:
        Flat ``pt, eta, phi, m, px, py`` (and ``ntracks`` with ``tracks``) of the jets with truth pT above
        ``TRUTH_PT_FRACTION * min_pt`` and |eta| below ``max_abs_eta``, sorted by decreasing pT in each
        event, and jets per event.
    """
    import fastjet

    fields = ("pt", "eta", "phi", "m", "px", "py") + (() if tracks is None else ("ntracks",))
    empty = {k: np.zeros(0, dtype=np.int16 if k == "ntracks" else np.float64) for k in fields}
    if len(counts) == 0:
        return empty, np.zeros(0, dtype=np.int64)
    inputs = jagged({"px": momenta["px"], "py": momenta["py"], "pz": momenta["pz"], "E": momenta["e"]}, counts)
    with _stdout_to_stderr():
        sequence = fastjet.ClusterSequence(inputs, _jet_definition(jets))
    found = sequence.inclusive_jets(TRUTH_PT_FRACTION * jets.min_pt)
    px, py, pz, e = (ak.to_numpy(ak.flatten(found[k])) for k in ("px", "py", "pz", "E"))
    jet_counts = ak.to_numpy(ak.num(found, axis=1)).astype(np.int64)
    pt, eta, phi = kinematics(px, py, pz)
    m = np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))
    keep = np.abs(eta) < jets.max_abs_eta
    cols = {"pt": pt, "eta": eta, "phi": phi, "m": m, "px": px, "py": py}
    if tracks is not None:
        cols["ntracks"] = _tracks_per_jet(sequence, counts, tracks, len(pt), TRUTH_PT_FRACTION * jets.min_pt)
    jet_counts = counts_after(keep, offsets_of(jet_counts))
    cols = {k: v[keep] for k, v in cols.items()}
    order = pt_order(cols["pt"], jet_counts)
    if order is not None:
        cols = {k: v[order] for k, v in cols.items()}
    return cols, jet_counts


def _tracks_per_jet(sequence: Any, counts: np.ndarray, tracks: np.ndarray, n_jets: int, min_pt: float) -> np.ndarray:
    """Tracks among each jet's constituents (int16), in the order of ``inclusive_jets(min_pt)``.

    Args:
        sequence: the fastjet cluster sequence of all events.
        counts: inputs per event.
        tracks: flat, per input: counts as a track.
        n_jets: jets found above min_pt (all events).
        min_pt: the threshold ``inclusive_jets`` was called with.
    """
    index = sequence.constituent_index(min_pt)  # events * jets * (input index within its event)
    per_jet = ak.to_numpy(ak.flatten(ak.num(index, axis=2))).astype(np.int64)
    per_event = ak.to_numpy(ak.sum(ak.num(index, axis=2), axis=1)).astype(np.int64)
    local = ak.to_numpy(ak.flatten(index, axis=None)).astype(np.int64)
    flat = local + np.repeat(offsets_of(counts)[:-1], per_event)
    owner = np.repeat(np.arange(n_jets), per_jet)
    return np.bincount(owner, weights=tracks[flat], minlength=n_jets).astype(np.int16)


def _hadrons(truth: ak.Array, name: str, min_pt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat eta, phi of the truth hadrons (or taus) above min_pt, and their counts per event."""
    cols, counts = flat_fields(truth[name], ("pt", "eta", "phi"))
    keep = cols["pt"] >= min_pt
    return cols["eta"][keep], cols["phi"][keep], counts_after(keep, offsets_of(counts))


def label_flavour(
    eta: np.ndarray, phi: np.ndarray, counts: np.ndarray, truth: ak.Array, dr: float, hadron_min_pt: float
) -> np.ndarray:
    """Truth flavour per jet: 5 with a b hadron within dr, else 4 (c hadron), else 15 (tau), else 0.

    Args:
        eta: flat jet pseudorapidities.
        phi: flat jet azimuths.
        counts: jets per event.
        truth: the events' ``truth`` records (``bhadrons``, ``chadrons``, ``taus``).
        dr: association radius.
        hadron_min_pt: hadrons and taus below this pT are ignored.
    """
    flavour = np.zeros(len(eta), dtype=np.int8)
    # lowest priority first, so that a jet with both a c and a b hadron ends up b
    for name, label in (("taus", 15), ("chadrons", 4), ("bhadrons", 5)):
        h_eta, h_phi, h_counts = _hadrons(truth, name, hadron_min_pt)
        ia, ib = pair_indices(counts, h_counts)
        close = delta_r2(eta[ia], phi[ia], h_eta[ib], h_phi[ib]) < dr * dr
        matched = np.bincount(ia[close], minlength=len(eta)) > 0
        flavour[matched] = label
    return flavour


# -- everything together --------------------------------------------------------------
def _check_columns(events: ak.Array) -> None:
    fields = set(events.fields)
    if "particles" not in fields:
        raise RecastError(
            "events have no 'particles' column; emulation needs recastflow-events/1 input", field="particles"
        )
    missing = [f for f in _PARTICLE_FIELDS if f not in events.particles.fields]
    if missing:
        raise RecastError(f"particles lack the field(s) {', '.join(missing)}", field="particles")
    if "truth" not in fields or not {"bhadrons", "chadrons", "taus"} <= set(events.truth.fields):
        raise RecastError(
            "events lack truth.bhadrons / truth.chadrons / truth.taus, needed for jet flavours", field="truth"
        )


def build_truth_objects(events: ak.Array, card: DetectorCard) -> ak.Array:
    """Truth-level objects of every event, before any detector response.

    Args:
        events: recastflow-events/1 records (``particles`` and ``truth`` are used).
        card: the detector card.

    Returns:
        One record per event: ``jets`` var*{pt, eta, phi, m, px, py, flavour: int8},
        ``electrons``/``muons`` var*{pt, eta, phi, px, py, charge: int8}, ``photons``
        var*{pt, eta, phi, px, py} (each sorted by decreasing pT; px, py spare the response
        step trigonometry for MET) and ``met_truth`` {px, py}: minus the vector sum of all
        visible particles; with ``jets.exclude_muons``, ``met_muons`` {px, py}: the summed momentum of
        the muons that are neither isolated muons nor jet inputs, which missing pT counts at full
        momentum instead of through the soft term.
    """
    _check_columns(events)
    cols, counts = flat_fields(ak.to_packed(events.particles), _PARTICLE_FIELDS, dtype=None)
    px, py, pz, e = (cols[k].astype(np.float64, copy=False) for k in ("px", "py", "pz", "e"))
    pid = cols["pid"].astype(np.int64, copy=False)
    pt, eta, phi = kinematics(px, py, pz)
    visible = ~np.isin(np.abs(pid), np.asarray(card.invisible_pids, dtype=np.int64))
    offsets = offsets_of(counts)
    chosen = isolated_candidates(pid, pt, eta, phi, visible, counts, card)
    out: dict[str, ak.Array] = {}
    for name, mask in chosen.items():
        obj_counts = counts_after(mask, offsets)
        fields = {"pt": pt[mask], "eta": eta[mask], "phi": phi[mask], "px": px[mask], "py": py[mask]}
        if name != "photons":
            fields["charge"] = np.rint(cols["charge"][mask]).astype(np.int8)
        order = pt_order(fields["pt"], obj_counts)
        if order is not None:
            fields = {k: v[order] for k, v in fields.items()}
        out[name] = jagged(fields, obj_counts)
    jet_in = (
        visible & (np.abs(eta) < CALORIMETER_ABS_ETA) & ~(chosen["electrons"] | chosen["muons"] | chosen["photons"])
    )
    # muons measured outside the jets: the non-isolated ones the spectrometer sees (card.jets.exclude_muons)
    spectrometer = None
    if card.jets.exclude_muons:
        is_muon = np.abs(pid) == _PDG["muons"]
        jet_in &= ~is_muon
        spectrometer = is_muon & ~chosen["muons"] & (pt >= card.muons.min_pt) & (np.abs(eta) < card.muons.max_abs_eta)
    tracks = None
    if card.jets.tracks is not None:
        # charged constituents the tracker sees: the jet's track count (card.jets.tracks)
        t = card.jets.tracks
        charged = (np.abs(cols["charge"]) > 0) & (pt > t.min_pt) & (np.abs(eta) < t.max_abs_eta)
        tracks = charged[jet_in]
    jets, jet_counts = cluster_jets(
        {"px": px[jet_in], "py": py[jet_in], "pz": pz[jet_in], "e": e[jet_in]},
        counts_after(jet_in, offsets),
        card.jets,
        tracks,
    )
    jets["flavour"] = label_flavour(
        jets["eta"], jets["phi"], jet_counts, events.truth, card.btag.truth_dr, card.btag.hadron_min_pt
    )
    out["jets"] = jagged(jets, jet_counts)
    met = ak.zip(
        {
            "px": -sum_per_event(np.where(visible, px, 0.0), offsets),
            "py": -sum_per_event(np.where(visible, py, 0.0), offsets),
        }
    )
    fields = {
        "jets": out["jets"],
        "electrons": out["electrons"],
        "muons": out["muons"],
        "photons": out["photons"],
        "met_truth": met,
    }
    if spectrometer is not None:
        fields["met_muons"] = ak.zip(
            {
                "px": sum_per_event(np.where(spectrometer, px, 0.0), offsets),
                "py": sum_per_event(np.where(spectrometer, py, 0.0), offsets),
            }
        )
    return ak.zip(fields, depth_limit=1)
