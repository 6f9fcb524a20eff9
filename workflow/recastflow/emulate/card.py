"""Detector cards: the efficiencies, resolutions and thresholds used by ``recastflow emulate``.

A card is a YAML file validated against ``schemas/detector.schema.json`` and turned into
frozen records. The records own the vectorised lookups (binned efficiency maps, resolution
functions) so that the emulation works on whole flat numpy arrays at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recastflow.core.config import load_validated
from recastflow.core.errors import RecastError

if TYPE_CHECKING:
    from recastflow.emulate.metsig import MetSigSettings

#: Flavour labels of jets, as stored in the reco format.
FLAVOURS = {"b": 5, "c": 4, "tau": 15, "light": 0}


def _frozen_array(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    arr.flags.writeable = False
    return arr


def _check_edges(edges: np.ndarray, where: str, source: str) -> None:
    if not np.all(np.diff(edges) > 0):
        raise RecastError(f"edges must be strictly increasing, got {edges.tolist()}", path=source, field=where)


class Scratch:
    """Work arrays kept from call to call, one per name, for code that runs on many blocks.

    Fresh temporaries of ~1e5 values cost page faults whenever malloc has returned their
    memory to the system in between (it does so for large blocks): ~10 ns per value for a
    resolution, more than its arithmetic. Arrays from here are reused instead; each is
    valid until the next request of its name.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype: Any) -> np.ndarray:
        """An uninitialised array of ``n`` values, the same memory as the last one of this name if it fits.

        Args:
            name: what the array is for (callers that need two arrays at once use two names).
            n: length.
            dtype: numpy dtype.
        """
        a = self._arrays.get(name)
        if a is None or a.dtype != dtype or len(a) < n:
            # headroom: blocks of whole events vary a little in size
            a = self._arrays[name] = np.empty(n + n // 8, dtype=dtype)
        return a[:n]


def _work(scratch: Scratch | None, name: str, n: int, dtype: Any) -> np.ndarray:
    """A work array from ``scratch``, or a new one."""
    return np.empty(n, dtype=dtype) if scratch is None else scratch.get(name, n, dtype)


def _count_edges(edges: np.ndarray, x: np.ndarray, into: np.ndarray, scratch: Scratch | None) -> np.ndarray:
    """Add to ``into`` (uint8) the number of edges at or below each x (NaN: none)."""
    above = _work(scratch, "grid.above", len(x), np.bool_)
    for edge in edges:
        np.greater_equal(x, edge, out=above)
        into += above.view(np.uint8)
    return into


def _grid_index(edges: np.ndarray, x: np.ndarray, scratch: Scratch | None = None, name: str = "grid") -> np.ndarray:
    """Index in 0..len(edges) of each x: 0 below the first edge, k for [edges[k-1], edges[k]).

    Same as ``np.searchsorted(edges, x, side="right")`` (NaN counts as below). For the few
    edges of a card, counting the edges below x is 2-4x faster than a binary search per value.

    Args:
        edges: increasing edges.
        x: values (flat).
        scratch: work arrays to use, if any; the result is then the array ``name``.
        name: name of the result in ``scratch``.
    """
    x = np.asarray(x)
    if len(edges) > 32 or x.ndim != 1:
        return np.searchsorted(edges, x, side="right")
    index = _work(scratch, "grid.count", len(x), np.uint8)
    index[...] = 0
    _count_edges(edges, x, index, scratch)
    # gathers with an intp index are ~2.5x faster than with a uint8 one
    out = _work(scratch, name, len(x), np.intp)
    np.copyto(out, index)
    return out


@dataclass(frozen=True, eq=False)
class BinnedMap:
    """A value binned in pT (rows) and |eta| (columns), looked up for many objects at once.

    Attributes:
        pt_edges: increasing pT edges in GeV (n_pt + 1).
        eta_edges: increasing |eta| edges (n_eta + 1).
        values: (n_pt, n_eta) array.
    """

    pt_edges: np.ndarray
    eta_edges: np.ndarray
    values: np.ndarray
    # set by __post_init__ (derived from the fields above, so not compared or shown)
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # padded so that raw searchsorted indices address it: no clipping or masking per object
        object.__setattr__(self, "_table", self.on_grid(self.pt_edges, self.eta_edges))

    @classmethod
    def from_doc(cls, doc: dict[str, Any], where: str, source: str) -> BinnedMap:
        """Build from the card's ``{pt_edges, eta_edges, values}``, checking the shapes.

        Args:
            doc: the validated mapping.
            where: dotted key of the map in the card (for messages).
            source: card path (for messages).
        """
        pt_edges, eta_edges = _frozen_array(doc["pt_edges"]), _frozen_array(doc["eta_edges"])
        _check_edges(pt_edges, f"{where}.pt_edges", source)
        _check_edges(eta_edges, f"{where}.eta_edges", source)
        rows = doc["values"]
        n_pt, n_eta = len(pt_edges) - 1, len(eta_edges) - 1
        if len(rows) != n_pt:
            raise RecastError(
                f"{len(rows)} rows of values for {n_pt} pT bins ({len(pt_edges)} pt_edges); give one row per pT bin",
                path=source,
                field=f"{where}.values",
            )
        for i, row in enumerate(rows):
            if len(row) != n_eta:
                raise RecastError(
                    f"{len(row)} values for {n_eta} |eta| bins ({len(eta_edges)} eta_edges); "
                    "give one value per |eta| bin",
                    path=source,
                    field=f"{where}.values[{i}]",
                )
        return cls(pt_edges, eta_edges, _frozen_array(rows))

    def on_grid(self, pt_edges: np.ndarray, eta_edges: np.ndarray) -> np.ndarray:
        """The map on a grid that contains its edges, indexed by :func:`_grid_index` of the grid.

        Row 0 / column 0 are below the first edge, the last row is above the last pT edge
        (last bin again), the last column beyond the last |eta| edge (0).

        Args:
            pt_edges: grid pT edges, a superset of the map's.
            eta_edges: grid |eta| edges, a superset of the map's.
        """
        # each grid cell is inside one map bin: evaluate the map at the cell's lower edge
        pt_rep = np.concatenate([[-1.0], pt_edges])
        eta_rep = np.concatenate([[-1.0], eta_edges])
        pt_grid, eta_grid = np.meshgrid(pt_rep, eta_rep, indexing="ij")
        return self._reference_lookup(pt_grid.ravel(), eta_grid.ravel()).reshape(pt_grid.shape)

    def _reference_lookup(self, pt: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
        """Reference implementation of :meth:`lookup` (used to build its table)."""
        n_pt, n_eta = self.values.shape
        ipt = np.searchsorted(self.pt_edges, pt, side="right") - 1
        ieta = np.searchsorted(self.eta_edges, abs_eta, side="right") - 1
        inside = (ipt >= 0) & (ieta >= 0) & (ieta < n_eta)
        flat = np.clip(ipt, 0, n_pt - 1) * n_eta + np.clip(ieta, 0, n_eta - 1)
        return np.where(inside, self.values.ravel()[flat], 0.0)

    def lookup(self, pt: np.ndarray, abs_eta: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
        """Value for each object: 0 below the first pT edge or outside the |eta| edges.

        Lower edges are inclusive; above the last pT edge the last pT bin applies
        (efficiencies plateau), while |eta| beyond the last edge is outside the acceptance.

        Args:
            pt: transverse momenta in GeV.
            abs_eta: absolute pseudorapidities, same shape.
            scratch: work arrays to use, if any (the result is then one of them).
        """
        table = self._table
        pt, abs_eta = np.asarray(pt), np.asarray(abs_eta)
        if table.size > 255 or pt.ndim != 1:
            flat = _grid_index(self.pt_edges, pt)
            flat *= table.shape[1]
            flat += _grid_index(self.eta_edges, abs_eta)
            return table.ravel()[flat]
        # the cell number fits in a uint8: count the edges straight into it
        cell = _work(scratch, "lookup.cell", len(pt), np.uint8)
        cell[...] = 0
        _count_edges(self.pt_edges, pt, cell, scratch)
        cell *= np.uint8(table.shape[1])
        _count_edges(self.eta_edges, abs_eta, cell, scratch)
        index = _work(scratch, "lookup.index", len(pt), np.intp)
        np.copyto(index, cell)
        return np.take(table.ravel(), index, out=_work(scratch, "lookup", len(pt), table.dtype), mode="clip")


@dataclass(frozen=True, eq=False)
class FlavourMaps:
    """Several binned maps selected per object by a small integer label (jet flavour).

    All maps are put on the union of their edges, so one lookup serves every label.

    Attributes:
        maps: label -> map.
    """

    maps: dict[int, BinnedMap]
    # set by __post_init__ (derived from maps, so not compared or shown): the union of the maps' edges and one
    # table per label on that grid
    pt_edges: np.ndarray = field(init=False, repr=False, compare=False)
    eta_edges: np.ndarray = field(init=False, repr=False, compare=False)
    tables: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pt_edges = np.unique(np.concatenate([m.pt_edges for m in self.maps.values()]))
        eta_edges = np.unique(np.concatenate([m.eta_edges for m in self.maps.values()]))
        # one table per possible label value (labels are small), zero for unused ones, so
        # that the label itself is the first index
        tables = np.zeros((max(self.maps) + 1, len(pt_edges) + 1, len(eta_edges) + 1))
        for label, m in self.maps.items():
            tables[label] = m.on_grid(pt_edges, eta_edges)
        for name, value in (("pt_edges", pt_edges), ("eta_edges", eta_edges), ("tables", tables)):
            object.__setattr__(self, name, value)

    def lookup(
        self, label: np.ndarray, pt: np.ndarray, abs_eta: np.ndarray, scratch: Scratch | None = None
    ) -> np.ndarray:
        """Value of the map of each object's label (0 for labels without a map).

        Args:
            label: integer label per object (0 <= label, small).
            pt: transverse momenta in GeV.
            abs_eta: absolute pseudorapidities.
            scratch: work arrays to use, if any (the result is then one of them).
        """
        n_label, n_pt, n_eta = self.tables.shape
        label, pt, abs_eta = np.asarray(label), np.asarray(pt), np.asarray(abs_eta)
        n = label.size
        # (labels out of range take the general path, as they always did)
        if n_pt * n_eta > 255 or label.ndim != 1 or (n and not 0 <= label.min() <= label.max() < n_label):
            flat = label.astype(np.intp)
            flat *= n_pt
            flat += _grid_index(self.pt_edges, pt)
            flat *= n_eta
            flat += _grid_index(self.eta_edges, abs_eta)
            return self.tables.ravel()[flat]
        # the (pT, |eta|) cell fits in a uint8: count the edges straight into it, then add
        # the label's table in intp
        cell = _work(scratch, "lookup.cell", n, np.uint8)
        cell[...] = 0
        _count_edges(self.pt_edges, pt, cell, scratch)
        cell *= np.uint8(n_eta)
        _count_edges(self.eta_edges, abs_eta, cell, scratch)
        index = _work(scratch, "lookup.index", n, np.intp)
        np.copyto(index, label, casting="unsafe")
        index *= n_pt * n_eta
        index += cell
        return np.take(self.tables.ravel(), index, out=_work(scratch, "lookup", n, self.tables.dtype), mode="clip")


@dataclass(frozen=True, eq=False)
class Resolution:
    """Relative resolution sigma/x = sqrt((N/x)^2 + S^2/x + C^2 + (K x)^2) per |eta| bin.

    Attributes:
        variable: ``"pt"`` or ``"e"``: whether x is the transverse momentum or the energy.
        eta_edges: increasing |eta| edges; beyond the last edge the last bin applies.
        noise, stochastic, constant, sagitta: N [GeV], S [sqrt(GeV)], C, K [1/GeV] per bin.
    """

    variable: str
    eta_edges: np.ndarray
    noise: np.ndarray
    stochastic: np.ndarray
    constant: np.ndarray
    sagitta: np.ndarray
    # set by __post_init__ (derived from the terms, so not compared or shown): the squared terms that are not zero
    # in every bin, in float32
    _squares: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any], where: str, source: str) -> Resolution:
        """Build from the card, checking that every term has one value per |eta| bin.

        Args:
            doc: the validated mapping.
            where: dotted key in the card (for messages).
            source: card path (for messages).
        """
        edges = _frozen_array(doc["eta_edges"])
        _check_edges(edges, f"{where}.eta_edges", source)
        n = len(edges) - 1
        terms = {}
        for term in ("noise", "stochastic", "constant", "sagitta"):
            values = doc.get(term, [0.0] * n)
            if len(values) != n:
                raise RecastError(
                    f"{len(values)} values for {n} |eta| bins ({n + 1} eta_edges)", path=source, field=f"{where}.{term}"
                )
            terms[term] = _frozen_array(values)
        return cls(doc.get("variable", "pt"), edges, **terms)

    def relative(self, x: np.ndarray, abs_eta: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
        """sigma/x for each object, in float32 (ample for a resolution, and 2x faster).

        Args:
            x: pT or energy in GeV (as ``variable`` says), > 0.
            abs_eta: absolute pseudorapidities, same shape.
            scratch: work arrays to use, if any (the result is then one of them).
        """
        x, abs_eta = np.asarray(x), np.asarray(abs_eta)
        n = len(x)
        # inner edges only: below the first bin -> bin 0, beyond the last -> last bin
        if len(self.noise) > 1:
            i = _grid_index(self.eta_edges[1:-1], abs_eta, scratch, "relative.bin")
        else:
            i = _work(scratch, "relative.bin", n, np.intp)
            i[...] = 0
        x32 = _work(scratch, "relative.x", n, np.float32)
        np.copyto(x32, x, casting="same_kind")
        r2 = _work(scratch, "relative", n, np.float32)
        term = _work(scratch, "relative.term", n, np.float32)
        sq = self._squares

        def coefficient(name: str, out: np.ndarray) -> np.ndarray:
            return np.take(sq[name], i, out=out, mode="clip")

        # Horner form, in place, skipping terms that are zero in every bin: this runs on
        # millions of jets, and each temporary array costs as much as the arithmetic
        if "noise" in sq or "stochastic" in sq:
            inv = _work(scratch, "relative.inv", n, np.float32)
            np.divide(np.float32(1.0), x32, out=inv)
            if "noise" in sq:
                coefficient("noise", r2)
                r2 *= inv
                if "stochastic" in sq:
                    r2 += coefficient("stochastic", term)
            else:
                coefficient("stochastic", r2)
            r2 *= inv
            r2 += coefficient("constant", term)
        else:
            coefficient("constant", r2)
        if "sagitta" in sq:
            x32 *= x32
            x32 *= coefficient("sagitta", term)
            r2 += x32
        return np.sqrt(r2, out=r2)

    def __post_init__(self) -> None:
        squares = {"constant": (self.constant**2).astype(np.float32)}
        for term in ("stochastic", "noise", "sagitta"):
            if np.any(getattr(self, term)):
                squares[term] = (getattr(self, term) ** 2).astype(np.float32)
        object.__setattr__(self, "_squares", squares)


@dataclass(frozen=True)
class Isolation:
    """Truth isolation: the pT sum in inner_cone <= dR < cone must be below rel * pT + abs."""

    cone: float
    inner_cone: float
    rel: float
    abs: float


@dataclass(frozen=True, eq=False)
class ParticleObject:
    """Electrons, muons or photons: acceptance, isolation, efficiency, resolution."""

    min_pt: float
    max_abs_eta: float
    isolation: Isolation
    efficiency: BinnedMap
    resolution: Resolution


@dataclass(frozen=True, eq=False)
class Jets:
    """Jet definition and response; ``efficiency`` is None when every jet is kept."""

    algorithm: str
    radius: float
    min_pt: float
    max_abs_eta: float
    resolution: Resolution
    efficiency: BinnedMap | None
    #: muons are not jet inputs (calorimeter jets); see ``jets.exclude_muons`` in the detector schema
    exclude_muons: bool = False
    #: which constituents count as the jet's tracks (``ntracks``); None: jets carry no track count
    tracks: TrackCount | None = None


@dataclass(frozen=True)
class TrackCount:
    """The charged constituents of a jet that count as its tracks: pT above min_pt, |eta| below max_abs_eta."""

    min_pt: float
    max_abs_eta: float


@dataclass(frozen=True, eq=False)
class BTag:
    """b-tagging: truth labelling and tag efficiency per flavour label (5, 4, 15, 0)."""

    working_point: str
    truth_dr: float
    hadron_min_pt: float
    efficiency: FlavourMaps
    #: efficiency factors for close-by jets (recastflow.emulate.closeby.CloseBy), None without ``btag.close_by``
    close_by: Any = None


@dataclass(frozen=True)
class Met:
    """Missing transverse momentum: soft-term response and per-component noise [GeV]."""

    soft_scale: float
    soft_resolution: float


@dataclass(frozen=True, eq=False)
class DetectorCard:
    """A validated detector card.

    Attributes:
        name: card name (goes into the reco header).
        invisible_pids: absolute PDG ids that are invisible to the detector.
        jets, electrons, muons, photons, btag, met: per-object settings.
        path: file it was read from ("" when built in memory).
        sha256: hex digest of the file's bytes ("" when built in memory).
    """

    name: str
    invisible_pids: tuple[int, ...]
    jets: Jets
    electrons: ParticleObject
    muons: ParticleObject
    photons: ParticleObject
    btag: BTag
    met: Met
    path: str = ""
    sha256: str = ""
    #: hadronic-tau settings (recastflow.emulate.taus.TauCard), None when the card has no ``taus`` section
    taus: Any = None
    #: MET-significance settings (recastflow.emulate.metsig.MetSigSettings), None when the card has no
    #: ``met_significance`` section (its reco events then carry no ``met.significance``)
    met_significance: MetSigSettings | None = None


def _isolation(doc: dict[str, Any]) -> Isolation:
    return Isolation(
        float(doc["cone"]), float(doc.get("inner_cone", 0.0)), float(doc["rel"]), float(doc.get("abs", 0.0))
    )


def _particle_object(doc: dict[str, Any], where: str, source: str) -> ParticleObject:
    iso = _isolation(doc["isolation"])
    if iso.inner_cone >= iso.cone:
        raise RecastError(
            f"inner_cone {iso.inner_cone} must be smaller than cone {iso.cone}",
            path=source,
            field=f"{where}.isolation.inner_cone",
        )
    return ParticleObject(
        float(doc["min_pt"]),
        float(doc["max_abs_eta"]),
        iso,
        BinnedMap.from_doc(doc["efficiency"], f"{where}.efficiency", source),
        Resolution.from_doc(doc["resolution"], f"{where}.resolution", source),
    )


def _jets(doc: dict[str, Any], source: str) -> Jets:
    eff = doc.get("efficiency")
    return Jets(
        doc.get("algorithm", "anti-kt"),
        float(doc.get("radius", 0.4)),
        float(doc["min_pt"]),
        float(doc["max_abs_eta"]),
        Resolution.from_doc(doc["resolution"], "jets.resolution", source),
        None if eff is None else BinnedMap.from_doc(eff, "jets.efficiency", source),
        bool(doc.get("exclude_muons", False)),
        None
        if "tracks" not in doc
        else TrackCount(float(doc["tracks"]["min_pt"]), float(doc["tracks"]["max_abs_eta"])),
    )


def _btag(doc: dict[str, Any], source: str) -> BTag:
    maps = {FLAVOURS[k]: BinnedMap.from_doc(v, f"btag.efficiency.{k}", source) for k, v in doc["efficiency"].items()}
    return BTag(
        doc.get("working_point", ""),
        float(doc.get("truth_dr", 0.3)),
        float(doc.get("hadron_min_pt", 5.0)),
        FlavourMaps(maps),
        _close_by(doc, source),
    )


def _close_by(doc: dict[str, Any], source: str) -> Any:
    """The ``btag.close_by`` settings, or None without that section."""
    if "close_by" not in doc:
        return None
    from recastflow.emulate.closeby import close_by_from_doc

    return close_by_from_doc(doc["close_by"], source)


def card_from_doc(doc: dict[str, Any], source: str = "<card>", sha256: str = "") -> DetectorCard:
    """Turn a schema-valid card document into records, checking what the schema cannot.

    Args:
        doc: the parsed, validated card.
        source: where it came from (for messages and the reco header).
        sha256: digest of the card file, if any.
    """
    soft = doc["met"]["soft_term"]
    return DetectorCard(
        name=doc["name"],
        invisible_pids=tuple(sorted(abs(int(p)) for p in doc["invisible_pids"])),
        jets=_jets(doc["jets"], source),
        electrons=_particle_object(doc["electrons"], "electrons", source),
        muons=_particle_object(doc["muons"], "muons", source),
        photons=_particle_object(doc["photons"], "photons", source),
        btag=_btag(doc["btag"], source),
        met=Met(float(soft.get("scale", 1.0)), float(soft["resolution"])),
        path=source,
        sha256=sha256,
        taus=_taus(doc, source),
        met_significance=_met_significance(doc, source),
    )


def _met_significance(doc: dict[str, Any], source: str) -> MetSigSettings | None:
    """The card's MET-significance settings, or None without a ``met_significance`` section.

    Raises:
        RecastError: the section's pT edges do not increase or do not match its values.
    """
    if "met_significance" not in doc:
        return None
    # imported here: metsig needs awkward, which reading a card otherwise does not
    from recastflow.emulate.metsig import settings_from_doc

    return settings_from_doc(doc["met_significance"], doc, source)


def _taus(doc: dict[str, Any], source: str) -> Any:
    """The card's hadronic-tau settings, or None without a ``taus`` section."""
    if "taus" not in doc:
        return None
    # imported here: recastflow.emulate.taus builds on this module's maps
    from recastflow.emulate.taus import taus_from_doc

    return taus_from_doc(doc["taus"], source)


def load_card(path: Path) -> DetectorCard:
    """Read, validate and check a detector card file.

    Args:
        path: the YAML card, e.g. ``config/detectors/ATLAS-Run2.yaml``.

    Raises:
        RecastError: the file is missing, not valid YAML, has unknown keys or bad bin shapes.
    """
    path = Path(path)
    doc = load_validated(path, "detector")
    return card_from_doc(doc, str(path), hashlib.sha256(path.read_bytes()).hexdigest())
