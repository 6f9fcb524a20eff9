"""Detector emulation: particle-level events (recastflow-events/1) -> reconstructed objects (recastflow-reco/1).

Two steps:

1. :func:`recastflow.clustering.build_truth_objects`: isolated truth leptons and photons,
   fastjet jets with truth flavour, truth missing pT.
2. :func:`respond`: the detector response, columnar on flat numpy arrays (in blocks of
   ~1e5 objects, whole events each): reconstruction/identification efficiencies, momentum
   smearing, acceptance cuts, b-tagging, and missing pT from the smeared objects plus a
   soft term.

All random numbers come from one ``numpy.random.Generator(PCG64(seed))`` drawn in a fixed
order, so the same events, card and seed give the same output bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from recastflow.clustering import build_truth_objects, event_index, flat_fields, jagged, offsets_of, pt_order
from recastflow.detector import BinnedMap, DetectorCard, ParticleObject, Resolution, load_card
from recastflow.errors import RecastError
from recastflow.events import EVENTS, RECO, read_events, write_events


#: Truth objects per block of the response. Blocks keep the temporary arrays in the CPU caches
#: and small enough for malloc to reuse them rather than page-fault fresh memory (twice this
#: gave 10x the page faults): ~1.5x faster than one pass over a million events. Blocks hold
#: whole events; the random draws depend on the blocks, so changing this changes the output.
BLOCK_OBJECTS = 100_000

#: Columns of the truth objects read by the response, per collection.
_TRUTH_FIELDS = {"jets": ("pt", "eta", "phi", "m", "px", "py", "flavour"),
                 "electrons": ("pt", "eta", "phi", "px", "py", "charge"),
                 "muons": ("pt", "eta", "phi", "px", "py", "charge"),
                 "photons": ("pt", "eta", "phi", "px", "py")}

#: Output columns and dtypes, per collection (recastflow-reco/1).
_RECO_FIELDS = {"jets": {"pt": np.float64, "eta": np.float64, "phi": np.float64, "m": np.float64,
                         "btag": np.bool_, "flavour": np.int8},
                "electrons": {"pt": np.float64, "eta": np.float64, "phi": np.float64, "charge": np.int8},
                "muons": {"pt": np.float64, "eta": np.float64, "phi": np.float64, "charge": np.int8},
                "photons": {"pt": np.float64, "eta": np.float64, "phi": np.float64}}


def _smear(resolution: Resolution, pt: np.ndarray, eta: np.ndarray, abs_eta: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Multiplicative response 1 + sigma/x * N(0, 1) per object.

    Args:
        resolution: the card's resolution function.
        pt, eta, abs_eta: truth kinematics (flat).
        rng: the emulation's generator.
    """
    # float32 normals are ~1.5x faster and far more precise than any resolution here
    z = rng.standard_normal(len(pt), dtype=np.float32)
    x = pt if resolution.variable == "pt" else pt * np.cosh(eta)
    factor = resolution.relative(x, abs_eta)
    factor *= z
    factor += np.float32(1.0)
    # float64 from here: it multiplies float64 momenta several times (mixed types are slower)
    return factor.astype(np.float64)


def _accepted(efficiency: BinnedMap, pt: np.ndarray, abs_eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bernoulli draw per object with the binned efficiency.

    Args:
        efficiency: the card's map.
        pt, abs_eta: kinematics the map is binned in (flat).
        rng: the emulation's generator.
    """
    return rng.random(len(pt), dtype=np.float32) < efficiency.lookup(pt, abs_eta)


@dataclass
class _Kept:
    """The reconstructed objects of one collection in one block of events.

    Attributes:
        index: positions of the kept objects among the block's truth objects.
        events: block-local event number of each kept object.
        by_truth: output columns with one value per truth object of the block.
        by_kept: output columns with one value per kept object (``pt`` among them).
        met_x, met_y: per event of the block, sums of ``(reco - soft_scale * truth) p``.
    """

    index: np.ndarray
    events: np.ndarray
    by_truth: dict[str, np.ndarray]
    by_kept: dict[str, np.ndarray]
    met_x: np.ndarray
    met_y: np.ndarray


class _Collector:
    """Preallocated flat output columns that the blocks fill in turn (no final concatenation)."""

    def __init__(self, dtypes: dict[str, type], capacity: int, n_events: int) -> None:
        """Allocate ``capacity`` objects (the truth objects: an upper bound) for ``n_events``."""
        self.columns = {k: np.empty(capacity, dtype=dt) for k, dt in dtypes.items()}
        self.counts = np.zeros(n_events, dtype=np.int64)
        self.size = 0

    def add(self, kept: _Kept, first_event: int, n_events: int) -> None:
        """Append one block's kept objects, sorted by decreasing pT within each event.

        Args:
            kept: the block's reconstructed objects.
            first_event: index of the block's first event.
            n_events: events in the block.
        """
        n = len(kept.index)
        counts = np.bincount(kept.events, minlength=n_events)
        order = pt_order(kept.by_kept["pt"], counts, kept.events)
        # one gather per column, straight from the block's truth arrays into the output;
        # mode="clip" writes into out directly where "raise" would buffer
        index = kept.index if order is None else kept.index[order]
        for name, values in kept.by_truth.items():
            np.take(values, index, out=self.columns[name][self.size:self.size + n], mode="clip")
        for name, values in kept.by_kept.items():
            dest = self.columns[name][self.size:self.size + n]
            if order is None:
                dest[...] = values
            else:
                np.take(values, order, out=dest, mode="clip")
        self.counts[first_event:first_event + n_events] = counts
        self.size += n

    def array(self) -> ak.Array:
        """The collected objects as ``var * {...}``, one list per event."""
        return jagged({k: v[:self.size] for k, v in self.columns.items()}, self.counts)


def _met_terms(weight: np.ndarray, px: np.ndarray, py: np.ndarray, events: np.ndarray,
               n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-event x/y sums of ``weight * p`` over the kept objects.

    Args:
        weight: per kept object, reco/truth pT minus the soft-term scale.
        px, py: truth momentum components of the kept objects.
        events: block-local event number of each kept object.
        n_events: events in the block.
    """
    return (np.bincount(events, weights=weight * px, minlength=n_events),
            np.bincount(events, weights=weight * py, minlength=n_events))


def _respond_particles(cols: dict[str, np.ndarray], events: np.ndarray, n_events: int, obj: ParticleObject,
                       soft_scale: float, rng: np.random.Generator) -> _Kept:
    """Efficiency, smearing and acceptance for the electrons, muons or photons of a block.

    Args:
        cols: flat truth columns (pt, eta, phi, px, py[, charge]).
        events: block-local event number of each object.
        n_events: events in the block.
        obj: the card's settings for this object type.
        soft_scale: soft-term response (what an object that is not reconstructed counts for in MET).
        rng: the emulation's generator.
    """
    pt, eta = cols["pt"], cols["eta"]
    abs_eta = np.abs(eta)
    found = _accepted(obj.efficiency, pt, abs_eta, rng)
    factor = _smear(obj.resolution, pt, eta, abs_eta, rng)
    pt_reco = pt * factor
    keep = found & (pt_reco >= obj.min_pt) & (abs_eta < obj.max_abs_eta)
    index = np.flatnonzero(keep)
    kept_events = events[index]
    weight = factor[index]
    weight -= soft_scale
    by_truth = {"eta": eta, "phi": cols["phi"]} | ({"charge": cols["charge"]} if "charge" in cols else {})
    return _Kept(index, kept_events, by_truth, {"pt": pt_reco[index]},
                 *_met_terms(weight, cols["px"][index], cols["py"][index], kept_events, n_events))


def _respond_jets(cols: dict[str, np.ndarray], events: np.ndarray, n_events: int, card: DetectorCard,
                  rng: np.random.Generator) -> _Kept:
    """Efficiency (if any), energy smearing, acceptance and b-tagging of the jets of a block.

    Args:
        cols: flat truth columns (pt, eta, phi, m, px, py, flavour).
        events: block-local event number of each jet.
        n_events: events in the block.
        card: the detector card.
        rng: the emulation's generator.
    """
    jets = card.jets
    pt, eta = cols["pt"], cols["eta"]
    abs_eta = np.abs(eta)
    # the whole four-momentum scales: pT, E and m alike, direction unchanged
    factor = _smear(jets.resolution, pt, eta, abs_eta, rng)
    pt_reco = pt * factor
    keep = (pt_reco >= jets.min_pt) & (abs_eta < jets.max_abs_eta)
    if jets.efficiency is not None:
        keep &= _accepted(jets.efficiency, pt, abs_eta, rng)
    index = np.flatnonzero(keep)
    kept_events = events[index]
    kept_pt = pt_reco[index]
    # b-tag efficiency of the jet's truth flavour at its reconstructed pT
    tag_eff = card.btag.efficiency.lookup(cols["flavour"][index], kept_pt, abs_eta[index])
    btag = rng.random(len(index), dtype=np.float32) < tag_eff
    by_truth = {"eta": eta, "phi": cols["phi"], "m": cols["m"] * factor, "flavour": cols["flavour"]}
    weight = factor[index]
    weight -= card.met.soft_scale
    return _Kept(index, kept_events, by_truth, {"pt": kept_pt, "btag": btag},
                 *_met_terms(weight, cols["px"][index], cols["py"][index], kept_events, n_events))


def _flat_truth(truth_objects: ak.Array) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Flat numpy columns and event numbers of each truth collection (typed as the output wants)."""
    out = {}
    for name, fields in _TRUTH_FIELDS.items():
        cols, counts = flat_fields(truth_objects[name], fields, dtype=None)
        for f in ("charge", "flavour"):
            if f in cols:
                cols[f] = cols[f].astype(np.int8, copy=False)
        out[name] = (cols, counts)
    return out


def respond(truth_objects: ak.Array, card: DetectorCard, rng: np.random.Generator) -> dict[str, ak.Array]:
    """Detector response for all events (everything after clustering), in blocks of events.

    Missing pT is minus the vector sum of the reconstructed (smeared) objects and of the
    soft term: the truth momentum of everything visible that was not reconstructed, times
    ``met.soft_term.scale``, plus Gaussian noise of ``met.soft_term.resolution`` in x and y.

    Args:
        truth_objects: output of :func:`recastflow.clustering.build_truth_objects`.
        card: the detector card.
        rng: generator; its draws are made in a fixed order.

    Returns:
        ``jets``, ``electrons``, ``muons``, ``photons`` and ``met`` columns of recastflow-reco/1.
    """
    n = len(truth_objects)
    soft = card.met.soft_scale
    # MET = -(reco objects + soft * (all visible - truth of reco objects)) - noise, where
    # all visible = -met_truth; the per-object terms hold (reco - soft * truth) p
    met_x = soft * ak.to_numpy(truth_objects["met_truth", "px"]).astype(np.float64)
    met_y = soft * ak.to_numpy(truth_objects["met_truth", "py"]).astype(np.float64)
    result = {}
    for name, (cols, counts) in _flat_truth(truth_objects).items():
        offsets = offsets_of(counts)
        collect = _Collector(_RECO_FIELDS[name], int(offsets[-1]), n)
        for e0, e1 in _blocks(offsets):
            o0, o1 = offsets[e0], offsets[e1]
            block = {k: v[o0:o1] for k, v in cols.items()}
            local = event_index(counts[e0:e1])
            if name == "jets":
                kept = _respond_jets(block, local, e1 - e0, card, rng)
            else:
                kept = _respond_particles(block, local, e1 - e0, getattr(card, name), soft, rng)
            collect.add(kept, e0, e1 - e0)
            met_x[e0:e1] -= kept.met_x
            met_y[e0:e1] -= kept.met_y
        result[name] = collect.array()
    noise = rng.standard_normal((2, n)) * card.met.soft_resolution
    met_x -= noise[0]
    met_y -= noise[1]
    # sqrt of the squares: np.hypot guards against overflow and is ~8x slower
    result["met"] = ak.zip({"pt": np.sqrt(met_x * met_x + met_y * met_y), "phi": np.arctan2(met_y, met_x)})
    return result


def _blocks(offsets: np.ndarray) -> list[tuple[int, int]]:
    """Ranges of whole events holding about ``BLOCK_OBJECTS`` objects each.

    Sparse collections (leptons, photons) get long blocks, so that the per-event work is not
    repeated for every few objects.

    Args:
        offsets: offsets of the collection's flat arrays.
    """
    n, total = len(offsets) - 1, int(offsets[-1])
    per_block = max(1024, int(BLOCK_OBJECTS * n / max(total, 1)))
    return [(e0, min(n, e0 + per_block)) for e0 in range(0, n, per_block)]


def emulate(events: ak.Array, card: DetectorCard, seed: int) -> ak.Array:
    """Particle-level events -> recastflow-reco/1 events.

    Args:
        events: recastflow-events/1 records.
        card: the detector card.
        seed: seed of the ``PCG64`` generator; same seed, same output.

    Returns:
        One record per input event: ``weight``, ``weights`` (if present), ``jets``,
        ``electrons``, ``muons``, ``photons``, ``met``, ``truth`` (unchanged).
    """
    if "weight" not in events.fields:
        raise RecastError("events have no 'weight' column; emulation needs recastflow-events/1 input", field="weight")
    rng = np.random.Generator(np.random.PCG64(seed))
    reco = respond(build_truth_objects(events, card), card, rng)
    columns: dict[str, Any] = {"weight": ak.values_astype(events["weight"], np.float64)}
    if "weights" in events.fields:
        columns["weights"] = events["weights"]
    columns |= reco
    columns["truth"] = events["truth"]
    return ak.zip(columns, depth_limit=1)


def emulate_file(input: Path, card_path: Path, output: Path, *, seed: int) -> dict[str, Any]:
    """Read a particle-level file, emulate the detector and write the reco file.

    Args:
        input: recastflow-events/1 Parquet file.
        card_path: detector card (recorded in the header as given, with its sha256).
        output: recastflow-reco/1 Parquet file to write.
        seed: emulation seed (recorded in the header).

    Returns:
        The header written: the input's, with ``format``, ``detector`` and ``emulation_seed`` set.
    """
    card = load_card(Path(card_path))
    events, header = read_events(Path(input), (EVENTS,))
    reco = emulate(events, card, seed)
    header = dict(header)
    header["format"] = RECO
    header["detector"] = {"card": str(card_path), "sha256": card.sha256, "name": card.name}
    header["emulation_seed"] = int(seed)
    write_events(Path(output), reco, header)
    return header
