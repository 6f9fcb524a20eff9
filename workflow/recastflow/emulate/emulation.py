"""Detector emulation: particle-level events (recastflow-events/1) -> reconstructed objects (recastflow-reco/1).

Two steps:

1. :func:`recastflow.emulate.clustering.build_truth_objects`: isolated truth leptons and photons,
   fastjet jets with truth flavour, truth missing pT.
2. :func:`respond`: the detector response, columnar on flat numpy arrays (in blocks of
   ~1e5 objects, whole events each): reconstruction/identification efficiencies, momentum
   smearing, acceptance cuts, b-tagging, and missing pT from the smeared objects plus a
   soft term.

All random numbers come from streams seeded by one ``numpy.random.Generator(PCG64(seed))``
(one stream per kind of draw, each consumed in object order), so the same events, card and
seed give the same output bytes, whatever the block size.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, RECO, read_events, write_events
from recastflow.emulate.card import DetectorCard, Resolution, Scratch, load_card
from recastflow.emulate.clustering import build_truth_objects, flat_fields, offsets_of
from recastflow.emulate.metsig import MetSigSettings, event_met_significance

if TYPE_CHECKING:
    from recastflow.analyses.bundle import Grid

#: Truth objects per block of the response. Blocks keep the temporary arrays in the CPU caches
#: (50k-100k were equally fast, 25k and 200k slower). Blocks hold whole events. Each kind of
#: random draw has its own stream, consumed object after object across the blocks, so the
#: output does not depend on this value.
BLOCK_OBJECTS = 100_000

#: Columns of the truth objects read by the response, per collection.
_TRUTH_FIELDS = {
    "jets": ("pt", "eta", "phi", "m", "px", "py", "flavour"),
    "electrons": ("pt", "eta", "phi", "px", "py", "charge"),
    "muons": ("pt", "eta", "phi", "px", "py", "charge"),
    "photons": ("pt", "eta", "phi", "px", "py"),
}

#: Integer truth columns; the others are float64.
_TRUTH_DTYPES: dict[str, type[np.generic]] = {"charge": np.int8, "flavour": np.int8, "ntracks": np.int16}

#: Output columns and dtypes, per collection (recastflow-reco/1); jets also get ``ntracks`` (int16) when the
#: card has ``jets.tracks``.
_RECO_FIELDS: dict[str, dict[str, type[np.generic]]] = {
    "jets": {
        "pt": np.float64,
        "eta": np.float64,
        "phi": np.float64,
        "m": np.float64,
        "btag": np.bool_,
        "flavour": np.int8,
    },
    "electrons": {"pt": np.float64, "eta": np.float64, "phi": np.float64, "charge": np.int8},
    "muons": {"pt": np.float64, "eta": np.float64, "phi": np.float64, "charge": np.int8},
    "photons": {"pt": np.float64, "eta": np.float64, "phi": np.float64},
}

#: Output columns copied from the truth object (through the index of the kept objects).
_COPIED = ("eta", "phi", "m", "flavour", "charge", "ntracks")

#: The random streams of the response, one per kind of draw, in the order they are spawned.
_STREAMS = (
    "jets.smear",
    "jets.efficiency",
    "jets.btag",
    "electrons.efficiency",
    "electrons.smear",
    "muons.efficiency",
    "muons.smear",
    "photons.efficiency",
    "photons.smear",
    "met.noise",
)


def _streams(rng: np.random.Generator) -> dict[str, Any]:
    """Independent streams, one per entry of ``_STREAMS``, seeded by two draws of ``rng``.

    Each stream is consumed in object order across the blocks, so the draws of an object do
    not depend on how the objects are cut into blocks. The Gaussian ones (smearing, MET
    noise) are :class:`_Normals`, the others ``PCG64`` generators.
    """
    seq = np.random.SeedSequence(rng.integers(0, 2**63, size=2).tolist())
    return {
        name: _Normals(child) if name.endswith((".smear", ".noise")) else np.random.Generator(np.random.PCG64(child))
        for name, child in zip(_STREAMS, seq.spawn(len(_STREAMS)))
    }


class _Normals:
    """Standard normal numbers (float32) by the Box-Muller transform of uniforms.

    Faster than numpy's float32 ziggurat, which dominated the smearing. The numbers come in
    chunks of ``CHUNK``: ``CHUNK / 2`` radii r and angles a give r cos a, then r sin a.
    Numbers left over by one request serve the next, so the sequence does not depend on how
    it is requested. Radii come from float64 uniforms (1 - u >= 2**-53: the tails reach 8.5
    sigma, where 24-bit ones would stop at 5.8), angles from float32 ones, each from its own
    ``PCG64`` generator.
    """

    #: Numbers per chunk (even): rows long enough for the vectorised loops.
    CHUNK = 4096

    def __init__(self, seed: np.random.SeedSequence) -> None:
        """Seed the radius and the angle generators from ``seed``."""
        self.radius, self.angle = (np.random.Generator(np.random.PCG64(s)) for s in seed.spawn(2))
        self.left = np.empty(0, dtype=np.float32)

    def fill(self, out: np.ndarray, scratch: Scratch) -> np.ndarray:
        """Fill ``out`` (float32) with the next numbers of the sequence and return it.

        Args:
            out: where to write.
            scratch: work arrays.
        """
        n = len(out)
        k = min(n, len(self.left))
        out[:k] = self.left[:k]
        self.left = self.left[k:]
        if k == n:
            return out
        chunks, half = -(-(n - k) // self.CHUNK), self.CHUNK // 2
        m = chunks * half
        r = self.radius.random(dtype=np.float64, out=scratch.get("normal.u", m, np.float64))
        np.subtract(1.0, r, out=r)
        np.log(r, out=r)
        r *= -2.0
        np.sqrt(r, out=r)
        # casts by copyto: a ufunc writing float32 from float64 is several times slower
        radius = scratch.get("normal.r", m, np.float32)
        np.copyto(radius, r, casting="same_kind")
        angle = self.angle.random(dtype=np.float32, out=scratch.get("normal.a", m, np.float32))
        angle *= np.float32(2.0 * np.pi)
        # whole chunks straight into out, the last one through a work array
        full = (n - k) // self.CHUNK
        last = scratch.get("normal.z", self.CHUNK, np.float32)
        for z, c0, c1 in ((out[k : k + full * self.CHUNK], 0, full), (last, full, chunks)):
            if c1 > c0:
                z = z.reshape(c1 - c0, 2, half)
                a = angle[c0 * half : c1 * half].reshape(c1 - c0, half)
                np.cos(a, out=z[:, 0])
                np.sin(a, out=z[:, 1])
                z *= radius[c0 * half : c1 * half].reshape(c1 - c0, 1, half)
        rest = n - k - full * self.CHUNK
        if chunks > full:
            out[n - rest :] = last[:rest]
            self.left = last[rest:].copy()
        return out


def _smear(
    resolution: Resolution, pt: np.ndarray, eta: np.ndarray, abs_eta: np.ndarray, normals: _Normals, scratch: Scratch
) -> np.ndarray:
    """Multiplicative response 1 + sigma/x * N(0, 1) per object (float64, in ``scratch``).

    Args:
        resolution: the card's resolution function.
        pt, eta, abs_eta: truth kinematics (flat).
        normals: the stream of this collection's smearing.
        scratch: work arrays.
    """
    n = len(pt)
    if resolution.variable == "pt":
        x = pt
    else:
        x = np.cosh(eta, out=scratch.get("smear.x", n, np.float64))
        x *= pt
    factor = resolution.relative(x, abs_eta, scratch)
    # float32: far more precise than any resolution here, and ~2x faster
    factor *= normals.fill(scratch.get("smear.z", n, np.float32), scratch)
    # float64 from here: it multiplies float64 momenta several times (mixed types are slower)
    return np.add(factor, np.float32(1.0), out=scratch.get("smear", n, np.float64))


def _sort_order(pt: np.ndarray, events: np.ndarray, scratch: Scratch) -> np.ndarray | None:
    """Permutation that sorts each event's objects by decreasing pT, or None if already sorted.

    As :func:`recastflow.emulate.clustering.pt_order` (pT ties below float32 precision keep their
    order), with its key built in work arrays.

    Args:
        pt: flat non-negative transverse momenta, grouped by event.
        events: event number (int64, 0 <= events < 2**31) of each object, non-decreasing.
        scratch: work arrays.
    """
    n = len(pt)
    # one int64 key: event, then decreasing pT (the bits of a non-negative float32 grow with
    # its value). A stable argsort of int64 is a timsort: fast on these nearly sorted keys.
    key = scratch.get("sort.key", n, np.int64)
    pt32 = scratch.get("sort.pt", n, np.float32)
    np.copyto(pt32, pt, casting="same_kind")
    if sys.byteorder == "little":
        # written as two uint32 halves: no int64 arithmetic, no mixed-type casts
        halves = key.view(np.uint32).reshape(n, 2)
        np.subtract(np.uint32(0xFFFFFFFF), pt32.view(np.uint32), out=halves[:, 0])
        np.copyto(halves[:, 1], events, casting="unsafe")
    else:
        np.left_shift(events, 32, out=key)
        key |= np.subtract(np.uint32(0xFFFFFFFF), pt32.view(np.uint32)).astype(np.int64)
    if n < 2 or np.greater_equal(key[1:], key[:-1], out=scratch.get("sort.ok", n - 1, np.bool_)).all():
        return None
    return np.argsort(key, kind="stable")


def _respond_block(
    name: str,
    cols: dict[str, np.ndarray],
    events: np.ndarray,
    card: DetectorCard,
    draws: dict[str, Any],
    scratch: Scratch,
    out: dict[str, np.ndarray],
    counts: np.ndarray,
    met_x: np.ndarray,
    met_y: np.ndarray,
) -> int:
    """Efficiency, smearing, acceptance (and b-tagging for jets) of one collection in one block of events.

    The reconstructed objects are written to the start of ``out``, sorted by decreasing pT
    within each event.

    Args:
        name: ``jets``, ``electrons``, ``muons`` or ``photons``.
        cols: flat truth columns (pt, eta, phi, px, py, and m, flavour or charge).
        events: block-local event number of each object.
        card: the detector card.
        draws: the random streams (see :func:`_streams`).
        scratch: work arrays (most temporaries of the block are: no fresh memory per block).
        out: output columns (views with room for all the block's objects).
        counts: per event of the block, zeros; set to its reconstructed objects.
        met_x, met_y: per event of the block, missing pT; ``(soft_scale - reco/truth) p`` of
            each reconstructed object is added.

    Returns:
        The number k of reconstructed objects (the first k values of each ``out`` column).
    """
    obj = card.jets if name == "jets" else getattr(card, name)
    pt, eta = cols["pt"], cols["eta"]
    n = len(pt)
    abs_eta = np.abs(eta, out=scratch.get("abs_eta", n, np.float64))
    keep = np.less(abs_eta, obj.max_abs_eta, out=scratch.get("keep", n, np.bool_))
    if obj.efficiency is not None:
        u = draws[f"{name}.efficiency"].random(dtype=np.float32, out=scratch.get("uniform", n, np.float32))
        keep &= np.less(u, obj.efficiency.lookup(pt, abs_eta, scratch), out=scratch.get("pass", n, np.bool_))
    # the whole four-momentum scales: pT, E and m alike, direction unchanged
    factor = _smear(obj.resolution, pt, eta, abs_eta, draws[f"{name}.smear"], scratch)
    pt_reco = np.multiply(pt, factor, out=scratch.get("pt_reco", n, np.float64))
    keep &= np.greater_equal(pt_reco, obj.min_pt, out=scratch.get("pass", n, np.bool_))
    index = np.flatnonzero(keep)
    k = len(index)
    kept_events = np.take(events, index, out=scratch.get("kept_events", k, np.int64), mode="clip")
    dest = {f: v[:k] for f, v in out.items()}
    # mode="clip" writes into out directly where "raise" would buffer
    np.take(pt_reco, index, out=dest["pt"], mode="clip")
    order = _sort_order(dest["pt"], kept_events, scratch)
    if order is not None:
        index = np.take(index, order, out=scratch.get("index", k, np.intp))
        np.take(pt_reco, index, out=dest["pt"], mode="clip")
    for f in _COPIED:
        if f in dest:
            np.take(cols[f], index, out=dest[f], mode="clip")
    weight = np.take(factor, index, out=scratch.get("weight", k, np.float64), mode="clip")
    if name == "jets":
        dest["m"] *= weight
        # b-tag efficiency of the jet's truth flavour at its reconstructed pT
        tag_eff = card.btag.efficiency.lookup(
            dest["flavour"], dest["pt"], np.abs(dest["eta"], out=scratch.get("abs_eta", k, np.float64)), scratch
        )
        if card.btag.close_by is not None:
            # lower efficiency for jets with another jet close by (card's btag.close_by; recastflow.emulate.closeby)
            from recastflow.emulate.closeby import scale_efficiency

            scale_efficiency(
                tag_eff, card.btag.close_by, dest["flavour"], dest["eta"], dest["phi"], dest["pt"], kept_events
            )
        u = draws["jets.btag"].random(dtype=np.float32, out=scratch.get("uniform", k, np.float32))
        np.less(u, tag_eff, out=dest["btag"])
    # (soft_scale - reco/truth) p per object: what it adds to the event's missing pT
    np.subtract(card.met.soft_scale, weight, out=weight)
    term = scratch.get("met", k, np.float64)
    for f, total in (("px", met_x), ("py", met_y)):
        np.take(cols[f], index, out=term, mode="clip")
        term *= weight
        _add_per_event(total, kept_events, term)
    _add_per_event(counts, kept_events)
    return k


def _add_per_event(total: np.ndarray, events: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Add one per object (or its weight) to ``total`` at the object's event.

    Args:
        total: one value per event of the block (modified).
        events: block-local event number of each object.
        weights: per-object values (default: 1).
    """
    if 4 * len(events) < len(total):
        # sparse (leptons, photons: blocks of up to ~1e6 events): a bincount would allocate
        # and sum an array per event, page faults included; ufunc.at costs per object only
        np.add.at(total, events, 1 if weights is None else weights)
    else:
        total += np.bincount(events, weights, minlength=len(total))


def _flat_truth(truth_objects: ak.Array) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Flat numpy columns and offsets of each truth collection (typed as the output wants).

    The columns are views of the input where possible, and the offsets those of its lists
    (no counting and summing again over a million events).
    """
    out = {}
    for name, fields in _TRUTH_FIELDS.items():
        if name == "jets" and "ntracks" in ak.fields(truth_objects[name]):
            fields = (*fields, "ntracks")  # with the card's jets.tracks
        layout = truth_objects[name].layout
        if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.RecordArray):
            offsets = np.asarray(layout.offsets).astype(np.int64, copy=False)
            flat = ak.Array(layout.content[int(offsets[0]) : int(offsets[-1])])
            cols = {f: ak.to_numpy(flat[f]) for f in fields}
            if offsets[0]:
                offsets = offsets - offsets[0]
        else:
            cols, counts = flat_fields(truth_objects[name], fields, dtype=None)
            offsets = offsets_of(counts)
        cols = {f: v.astype(_TRUTH_DTYPES.get(f, np.float64), copy=False) for f, v in cols.items()}
        out[name] = (cols, offsets)
    return out


def respond(truth_objects: ak.Array, card: DetectorCard, rng: np.random.Generator) -> dict[str, ak.Array]:
    """Detector response for all events (everything after clustering), in blocks of events.

    Missing pT is minus the vector sum of the reconstructed (smeared) objects and of the
    soft term: the truth momentum of everything visible that was not reconstructed, times
    ``met.soft_term.scale``, plus Gaussian noise of ``met.soft_term.resolution`` in x and y.
    With a ``met_significance`` card section, ``met`` also gets ``significance``, the object-based
    significance S of ATLAS-CONF-2018-038 (:mod:`recastflow.emulate.metsig`).

    Args:
        truth_objects: output of :func:`recastflow.emulate.clustering.build_truth_objects`.
        card: the detector card.
        rng: generator; two draws of it seed the streams of the response (:func:`_streams`).

    Returns:
        ``jets``, ``electrons``, ``muons``, ``photons`` and ``met`` columns of recastflow-reco/1
        (``met.significance`` with a ``met_significance`` card section).
    """
    n = len(truth_objects)
    draws = _streams(rng)
    soft = card.met.soft_scale
    # MET = -(reco objects + soft * (all visible - truth of reco objects)) - noise, where
    # all visible = -met_truth; the per-object terms hold (reco - soft * truth) p
    met_x = np.multiply(ak.to_numpy(truth_objects["met_truth", "px"]), soft, dtype=np.float64)
    met_y = np.multiply(ak.to_numpy(truth_objects["met_truth", "py"]), soft, dtype=np.float64)
    if "met_muons" in truth_objects.fields:
        # muons outside jets and not reconstructed as isolated muons: measured at full momentum, (soft - 1) p
        met_x += (soft - 1.0) * ak.to_numpy(truth_objects["met_muons", "px"])
        met_y += (soft - 1.0) * ak.to_numpy(truth_objects["met_muons", "py"])
    result = {}
    scratch = Scratch()
    for name, (cols, offsets) in _flat_truth(truth_objects).items():
        # room for every truth object; the blocks fill it in turn (no final concatenation)
        fields = dict(_RECO_FIELDS[name])
        if "ntracks" in cols:
            fields["ntracks"] = np.int16
        out = {k: np.empty(int(offsets[-1]), dtype=dt) for k, dt in fields.items()}
        reco_offsets = np.zeros(n + 1, dtype=np.int64)
        size = 0
        for e0, e1 in _blocks(offsets):
            o0, o1 = offsets[e0], offsets[e1]
            counts = scratch.get("counts", e1 - e0, np.int64)
            counts[...] = 0
            kept = _respond_block(
                name,
                {k: v[o0:o1] for k, v in cols.items()},
                _event_numbers(offsets[e0 : e1 + 1]),
                card,
                draws,
                scratch,
                {k: v[size:] for k, v in out.items()},
                counts,
                met_x[e0:e1],
                met_y[e0:e1],
            )
            block_offsets = np.cumsum(counts, out=reco_offsets[e0 + 1 : e1 + 1])
            block_offsets += size
            size += kept
        result[name] = _lists({k: v[:size] for k, v in out.items()}, reco_offsets)
    # soft-term noise: x and y of event i are normals 2i and 2i + 1, drawn per block of events
    for e0 in range(0, n, BLOCK_OBJECTS):
        e1 = min(n, e0 + BLOCK_OBJECTS)
        noise = draws["met.noise"].fill(scratch.get("noise", 2 * (e1 - e0), np.float32), scratch)
        noise *= np.float32(card.met.soft_resolution)
        met_x[e0:e1] -= noise[0::2]
        met_y[e0:e1] -= noise[1::2]
    phi = np.arctan2(met_y, met_x)
    # sqrt of the squares, in place: np.hypot guards against overflow and is ~8x slower
    met_x *= met_x
    met_y *= met_y
    met_x += met_y
    met = {"pt": np.sqrt(met_x, out=met_x), "phi": phi}
    if card.met_significance is not None:
        met["significance"] = _significance(result, met["pt"], phi, card, card.met_significance)
    result["met"] = ak.zip(met)
    return result


def _significance(
    objects: dict[str, ak.Array], met_pt: np.ndarray, met_phi: np.ndarray, card: DetectorCard, settings: MetSigSettings
) -> np.ndarray:
    """The object-based MET significance of each event (:mod:`recastflow.emulate.metsig`).

    It is computed from the reconstructed objects with the resolutions of the card's
    ``met_significance`` section (those ATLAS's tool assumes; the smearing ones where it gives none) and
    draws no random numbers: the emulation's streams, and so its other columns, are those of a card
    without a ``met_significance`` section.

    Args:
        objects: the reconstructed ``jets``, ``electrons`` and ``muons``.
        met_pt, met_phi: the reconstructed missing pT per event.
        card: the detector card (its lepton resolutions, and the jets' without a ``jet_resolution`` table).
        settings: its ``met_significance`` section.

    Returns:
        S per event (float64).
    """
    reco = {name: objects[name] for name in ("jets", "electrons", "muons")}
    reco["met"] = ak.zip({"pt": met_pt, "phi": met_phi})
    # every reconstructed jet is a hard object: the card's jets.min_pt (20 GeV in ATLAS-Run2) is where
    # ATLAS's hard jets of the significance start too
    return event_met_significance(ak.zip(reco, depth_limit=1), card, settings)


def _lists(fields: dict[str, np.ndarray], offsets: np.ndarray) -> ak.Array:
    """``var * {fields}`` from flat numpy columns and list offsets, without copies."""
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(v) for v in fields.values()], list(fields), length=int(offsets[-1])
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def _event_numbers(offsets: np.ndarray) -> np.ndarray:
    """Block-local event number (int64) of each object of a block, from the block's offsets.

    Only the events with objects are visited: leptons and photons are blocks of up to a
    million events with a tenth as many objects.

    Args:
        offsets: offsets of the block's events in the flat arrays (``offsets[0]``: its first object).
    """
    filled = np.flatnonzero(offsets[1:] > offsets[:-1])
    return np.repeat(filled, offsets[filled + 1] - offsets[filled])


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
        ``electrons``, ``muons``, ``photons``, ``met``, with a ``taus`` card section also ``taus`` and
        ``triggers`` (see :mod:`recastflow.emulate.taus`), ``truth`` (unchanged).
    """
    if "weight" not in events.fields:
        raise RecastError("events have no 'weight' column; emulation needs recastflow-events/1 input", field="weight")
    rng = np.random.Generator(np.random.PCG64(seed))
    reco = respond(build_truth_objects(events, card), card, rng)
    columns: dict[str, Any] = {"weight": ak.values_astype(events["weight"], np.float64)}
    if "weights" in events.fields:
        columns["weights"] = events["weights"]
    columns |= reco
    if card.taus is not None:
        columns |= _hadronic_taus(events, reco, card, seed)
    columns["truth"] = events["truth"]
    return ak.zip(columns, depth_limit=1)


def _hadronic_taus(events: ak.Array, reco: dict[str, ak.Array], card: DetectorCard, seed: int) -> dict[str, ak.Array]:
    """``taus`` (and ``triggers``) columns from the card's ``taus`` section (:mod:`recastflow.emulate.taus`).

    Events whose truth record has no visible-tau details (older or external files) get no tau columns
    and a warning: a selection that reads taus then names the missing column.
    """
    from recastflow.emulate.taus import check_truth, emulate_taus

    problem = check_truth(events)
    if problem is not None:
        print(f"recastflow emulate: warning: no hadronic taus emulated: {problem}", file=sys.stderr)
        return {}
    taus, triggers = emulate_taus(events["truth", "taus"], reco["jets"], reco["met"], card.taus, seed)
    return {"taus": taus} if triggers is None else {"taus": taus, "triggers": triggers}


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


def emulate_point(
    grid: Grid, point_name: str, chunk: int, input: Path, output: Path | str, *, log: Callable[[str], None]
) -> dict[str, Any]:
    """Emulate the detector on one chunk of a grid point's events (``recastflow emulate``).

    The grid's detector card is used, with a seed derived from the grid's ``events.seed``, the point's
    name and the chunk, so that every chunk gets its own independent stream.

    Args:
        grid: the point's grid (with an ``events`` section).
        point_name: the point, made from events.
        chunk: index of the chunk (for the seed).
        input: ``recastflow-events/1`` Parquet file of the chunk.
        output: ``recastflow-reco/1`` Parquet file to write (named as given in the log).
        log: gets one line on the chunk.

    Returns:
        The header written.

    Raises:
        RecastError: the point's signal does not come from events, or the card or the events are wrong.
    """
    from recastflow.core.seeds import derive_seed

    point, spec = grid.events_point(point_name)
    t0 = time.perf_counter()
    header = emulate_file(input, spec.detector, Path(output), seed=derive_seed(spec.seed, point.name, "emulate", chunk))
    log(
        f"{grid.name}/{point.name} chunk {chunk}: {header['n_events']} events emulated with {spec.detector} "
        f"in {time.perf_counter() - t0:.1f} s -> {output}"
    )
    return header
