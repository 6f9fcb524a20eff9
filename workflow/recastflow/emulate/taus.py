"""Hadronic-tau emulation: truth visible taus and jets -> reconstructed, identified tau candidates and triggers.

The card's optional ``taus`` section (``schemas/detector.schema.json``) drives it:

- **true taus**: each hadronically decaying truth tau (``truth.taus`` of the generator record, with its
  visible four-momentum, charge and prong count) inside ``max_abs_eta`` and with 1 or 3 prongs is a
  candidate. Its visible momentum is smeared by ``resolution`` (the whole four-momentum scales, the
  direction is kept), its charge is flipped with probability ``charge_flip[prongs]``, and one uniform number
  u per candidate decides the identification: it passes working point W if u < efficiency_W(prongs, pT, |eta|)
  (reconstruction times identification). One number for all working points makes them nested, as
  ATLAS's are, when the maps are ordered (tight <= medium <= loose).
- **fakes**: reconstructed jets not labelled tau (truth flavour != 15, i.e. no visible truth tau
  within the b-tagging ``truth_dr``) inside ``max_abs_eta`` fake a tau of working point W when a uniform
  number is below ``fake_rate_W(pT, |eta|)``. A fake keeps the jet's momentum, gets a random charge and
  ``prongs`` = 1 (the jets carry no track count).
- **triggers**: per trigger path, the event fires when at least as many taus of the path's working point as
  it has thresholds pass them (leading, subleading, ...), missing pT reaches ``min_met``, and a uniform number
  per event is below the path's plateau ``efficiency``. One number per event serves all paths.

Candidates below ``min_pt`` (reconstructed pT) or passing no working point are dropped. The output
collection ``taus`` has pt, eta, phi, m, charge (int8), prongs (int8) and one boolean per working point of
the card; ``triggers`` has one boolean per path. Random numbers come from their own streams, seeded from the
emulation seed, so cards without a ``taus`` section give the same output as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from recastflow.core.errors import RecastError
from recastflow.emulate.card import BinnedMap, Resolution

#: Working points a card may define, loosest first (the selection reads them as boolean tau fields).
WORKING_POINTS = ("loose", "medium", "tight")

#: Trigger paths a card may define (the selection reads them as ``triggers.<path>``).
TRIGGER_PATHS = ("ditau", "ditau_met")

#: Prong counts ATLAS reconstructs as hadronic taus (1 or 3 associated tracks).
PRONGS = (1, 3)

#: Fields of the truth taus the emulation needs.
TRUTH_FIELDS = ("pt", "eta", "phi", "m", "charge", "prongs")

#: Seed-sequence key of the tau streams (mixed with the emulation seed, so the other streams are unchanged).
_STREAM_KEY = 0x7A75


@dataclass(frozen=True)
class WorkingPoint:
    """Efficiencies of one identification working point.

    Attributes:
        name: ``loose``, ``medium`` or ``tight``.
        efficiency: prong count (1, 3) -> reconstruction x identification efficiency map of true taus.
        fake_rate: probability that a jet not matched to a tau passes this working point.
    """

    name: str
    efficiency: dict[int, BinnedMap]
    fake_rate: BinnedMap


@dataclass(frozen=True)
class TriggerPath:
    """A trigger emulated by offline plateau thresholds and a plateau efficiency.

    Attributes:
        name: path name (``ditau`` or ``ditau_met``).
        working_point: the taus that count.
        min_pt: pT thresholds of the leading, subleading, ... tau (GeV).
        min_met: missing-pT threshold (GeV, 0 for none).
        efficiency: plateau efficiency.
    """

    name: str
    working_point: str
    min_pt: tuple[float, ...]
    min_met: float
    efficiency: float


@dataclass(frozen=True)
class TauCard:
    """The ``taus`` section of a detector card.

    Attributes:
        min_pt: reconstructed-pT threshold of the candidates (GeV).
        max_abs_eta: |eta| acceptance of the candidates (true and fake).
        resolution: relative pT resolution of true taus.
        charge_flip: prong count -> probability that the charge is measured with the wrong sign.
        working_points: name -> :class:`WorkingPoint`, loosest first.
        triggers: name -> :class:`TriggerPath`.
    """

    min_pt: float
    max_abs_eta: float
    resolution: Resolution
    charge_flip: dict[int, float]
    working_points: dict[str, WorkingPoint]
    triggers: dict[str, TriggerPath]


def _covering_map(doc: dict[str, Any], where: str, source: str, min_pt: float, max_abs_eta: float) -> BinnedMap:
    """A binned map that covers the candidates' whole acceptance (no gap where it would silently give 0).

    Args:
        doc: the map's ``{pt_edges, eta_edges, values}``.
        where: dotted key in the card.
        source: card path.
        min_pt: the section's pT threshold; the first pT edge must not be above it.
        max_abs_eta: the section's |eta| acceptance; the last |eta| edge must reach it.
    """
    binned = BinnedMap.from_doc(doc, where, source)
    if binned.pt_edges[0] > min_pt:
        raise RecastError(
            f"the map starts at pT {binned.pt_edges[0]:g} GeV, above taus.min_pt = {min_pt:g} GeV: taus in between "
            "would get efficiency 0; start pt_edges at or below min_pt",
            path=source,
            field=f"{where}.pt_edges",
        )
    if binned.eta_edges[0] > 0 or binned.eta_edges[-1] < max_abs_eta:
        raise RecastError(
            f"the |eta| edges {binned.eta_edges.tolist()} do not cover 0 to taus.max_abs_eta = {max_abs_eta:g}; "
            "give 0 explicitly where taus are not reconstructed (e.g. the barrel-endcap crack)",
            path=source,
            field=f"{where}.eta_edges",
        )
    values = binned.values
    if np.any(values < 0) or np.any(values > 1):
        raise RecastError("efficiencies and rates must be within [0, 1]", path=source, field=f"{where}.values")
    return binned


def taus_from_doc(doc: dict[str, Any], source: str) -> TauCard:
    """Build the tau settings from the card's validated ``taus`` section, checking what the schema cannot.

    Args:
        doc: the ``taus`` mapping.
        source: card path (for messages).

    Raises:
        RecastError: an unknown working point or trigger path, a trigger naming a working point the card
            does not define, or an efficiency map with a gap in the acceptance.
    """
    min_pt, max_eta = float(doc["min_pt"]), float(doc["max_abs_eta"])
    wps: dict[str, WorkingPoint] = {}
    for name, wp in doc["working_points"].items():
        where = f"taus.working_points.{name}"
        if name not in WORKING_POINTS:
            raise RecastError(
                f"unknown working point {name!r} (known: {', '.join(WORKING_POINTS)})", path=source, field=where
            )
        eff = {
            prongs: _covering_map(
                wp["efficiency"][f"{prongs}prong"], f"{where}.efficiency.{prongs}prong", source, min_pt, max_eta
            )
            for prongs in PRONGS
        }
        fake = _covering_map(wp["fake_rate"], f"{where}.fake_rate", source, min_pt, max_eta)
        wps[name] = WorkingPoint(name, eff, fake)
    ordered = {name: wps[name] for name in WORKING_POINTS if name in wps}
    triggers: dict[str, TriggerPath] = {}
    for name, path in doc.get("triggers", {}).items():
        where = f"taus.triggers.{name}"
        if name not in TRIGGER_PATHS:
            raise RecastError(
                f"unknown trigger path {name!r} (known: {', '.join(TRIGGER_PATHS)})", path=source, field=where
            )
        wp_name = path["working_point"]
        if wp_name not in ordered:
            raise RecastError(
                f"unknown working point {wp_name!r}: the card defines {', '.join(ordered) or 'none'}",
                path=source,
                field=f"{where}.working_point",
            )
        triggers[name] = TriggerPath(
            name,
            wp_name,
            tuple(float(x) for x in path["min_pt"]),
            float(path.get("min_met", 0.0)),
            float(path["efficiency"]),
        )
    flips = doc.get("charge_flip", {})
    return TauCard(
        min_pt=min_pt,
        max_abs_eta=max_eta,
        resolution=Resolution.from_doc(doc["resolution"], "taus.resolution", source),
        charge_flip={p: float(flips.get(f"{p}prong", 0.0)) for p in PRONGS},
        working_points=ordered,
        triggers=triggers,
    )


def _flat(array: ak.Array, fields: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flat numpy columns of a jagged record array and its per-event counts."""
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    flat = ak.flatten(array, axis=1)
    if len(flat) == 0:
        return {f: np.zeros(0) for f in fields}, counts
    return {f: ak.to_numpy(flat[f]).astype(np.float64) for f in fields}, counts


def _lookup(binned: BinnedMap, pt: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    return binned.lookup(pt, abs_eta) if len(pt) else np.zeros(0)


def check_truth(events: ak.Array) -> str | None:
    """Why the events cannot feed the tau emulation (None if they can).

    Args:
        events: recastflow-events/1 records.
    """
    if "truth" not in events.fields or "taus" not in events.truth.fields:
        return "the events have no truth.taus record"
    have = set(ak.fields(events.truth.taus))
    missing = [f for f in TRUTH_FIELDS if f not in have]
    if missing:
        return f"truth.taus lacks {', '.join(missing)} (events generated before hadronic-tau emulation existed?)"
    return None


def emulate_taus(
    truth_taus: ak.Array, jets: ak.Array, met: ak.Array, card: TauCard, seed: int
) -> tuple[ak.Array, ak.Array | None]:
    """Reconstructed tau candidates and trigger decisions of every event.

    Args:
        truth_taus: per event, the visible hadronic truth taus (fields ``TRUTH_FIELDS``).
        jets: per event, the reconstructed jets (pt, eta, phi, m, flavour), sorted by pT.
        met: per event, the reconstructed missing pT (pt, phi).
        card: the card's tau settings.
        seed: emulation seed (mixed with a key of its own: these streams are independent of the others).

    Returns:
        ``taus`` var * {pt, eta, phi, m, charge, prongs, <working points>} sorted by pT, and ``triggers``
        {<paths>: bool} (None when the card has no trigger paths).
    """
    n_events = len(jets)
    streams = np.random.SeedSequence([int(seed), _STREAM_KEY]).spawn(5)
    rng_smear, rng_id, rng_charge, rng_fake, rng_trigger = (np.random.Generator(np.random.PCG64(s)) for s in streams)
    wps = list(card.working_points.values())

    # true taus
    t, t_counts = _flat(truth_taus, TRUTH_FIELDS)
    t_event = np.repeat(np.arange(n_events), t_counts)
    prongs = np.rint(t["prongs"]).astype(np.int8)
    abs_eta = np.abs(t["eta"])
    inside = (abs_eta < card.max_abs_eta) & np.isin(prongs, PRONGS)
    # every truth tau consumes its draws (inside or not), so one tau's fate does not shift another's numbers
    factor = 1.0 + card.resolution.relative(t["pt"], abs_eta) * rng_smear.standard_normal(len(prongs))
    factor = np.maximum(factor, 0.0)
    pt = t["pt"] * factor
    u_id = rng_id.random(len(prongs))
    u_charge = rng_charge.random(len(prongs))
    flags_true = {}
    for wp in wps:
        eff = np.zeros(len(pt))
        for p in PRONGS:
            sel = prongs == p
            eff[sel] = _lookup(wp.efficiency[p], pt[sel], abs_eta[sel])
        flags_true[wp.name] = inside & (u_id < eff)
    flip = np.zeros(len(pt))
    for p in PRONGS:
        flip[prongs == p] = card.charge_flip[p]
    charge = np.where(u_charge < flip, -t["charge"], t["charge"]).astype(np.int8)
    keep_true = (pt >= card.min_pt) & np.any([flags_true[w.name] for w in wps], axis=0) if wps else np.zeros(0, bool)
    true_cols = {
        "event": t_event,
        "pt": pt,
        "eta": t["eta"],
        "phi": t["phi"],
        "m": t["m"] * factor,
        "charge": charge,
        "prongs": prongs,
        **flags_true,
    }

    # jets faking taus
    j, j_counts = _flat(jets, ("pt", "eta", "phi", "m", "flavour"))
    j_event = np.repeat(np.arange(n_events), j_counts)
    j_abs_eta = np.abs(j["eta"])
    fakeable = (np.rint(j["flavour"]) != 15) & (j_abs_eta < card.max_abs_eta) & (j["pt"] >= card.min_pt)
    u_fake = rng_fake.random(len(j_event))
    u_sign = rng_fake.random(len(j_event))
    flags_fake = {wp.name: fakeable & (u_fake < _lookup(wp.fake_rate, j["pt"], j_abs_eta)) for wp in wps}
    keep_fake = np.any([flags_fake[w.name] for w in wps], axis=0) if wps else np.zeros(len(j_event), bool)
    fake_cols = {
        "event": j_event,
        "pt": j["pt"],
        "eta": j["eta"],
        "phi": j["phi"],
        "m": j["m"],
        "charge": np.where(u_sign < 0.5, -1, 1).astype(np.int8),
        "prongs": np.ones(len(j_event), dtype=np.int8),
        **flags_fake,
    }

    cols = {k: np.concatenate([true_cols[k][keep_true], fake_cols[k][keep_fake]]) for k in true_cols}
    # per event, decreasing pT
    order = np.lexsort((-cols["pt"], cols["event"]))
    cols = {k: v[order] for k, v in cols.items()}
    counts = np.bincount(cols.pop("event").astype(np.int64), minlength=n_events)
    taus = ak.unflatten(
        ak.zip(
            {k: cols[k] for k in ("pt", "eta", "phi", "m", "charge", "prongs")} | {w.name: cols[w.name] for w in wps}
        ),
        counts,
    )

    # triggers
    met_pt = ak.to_numpy(met["pt"]).astype(np.float64)
    u_trig = rng_trigger.random(n_events)
    decisions = {}
    for name, path in card.triggers.items():
        passed = np.ones(n_events, dtype=bool)
        wp_mask = cols[path.working_point].astype(bool)
        # rank of each working-point tau within its event (the taus are sorted by pT)
        ev = np.repeat(np.arange(n_events), counts)[wp_mask]
        pts = cols["pt"][wp_mask]
        starts = np.searchsorted(ev, np.arange(n_events))
        rank = np.arange(len(ev)) - starts[ev] if len(ev) else np.zeros(0, np.int64)
        for k, threshold in enumerate(path.min_pt):
            ok = np.zeros(n_events, dtype=bool)
            sel = rank == k
            ok[ev[sel]] = pts[sel] >= threshold
            passed &= ok
        passed &= met_pt >= path.min_met
        passed &= u_trig < path.efficiency
        decisions[name] = passed
    return taus, (ak.zip(decisions) if decisions else None)
