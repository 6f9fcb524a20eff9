"""b-tagging of close-by jets: the tag efficiency scaled by the distance to the nearest other jet.

Track-based b-tagging loses efficiency when two jets overlap (shared and merged tracks in dense
jet cores), which matters for boosted h -> b b. The detector card's optional ``btag.close_by``
section scales the per-flavour efficiency of a jet by a factor binned in Delta R to the nearest
other reconstructed jet (above ``min_pt``); beyond the last edge (or with no other jet) the
factor is 1. Without the section nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recastflow.core.errors import RecastError

#: flavour labels of the card (``btag.efficiency`` keys) as jets carry them
_FLAVOUR_LABELS = {"b": 5, "c": 4, "tau": 15, "light": 0}


@dataclass(frozen=True, eq=False)
class CloseBy:
    """Efficiency factors binned in Delta R to the nearest other jet.

    Attributes:
        dr_edges: increasing Delta R edges (n + 1); below the first and from the last on the factor is 1.
        factors: one factor per Delta R bin (n).
        min_pt: other jets count from this reconstructed pT on [GeV].
        flavours: truth flavour labels (5, 4, 15, 0) the factors apply to.
    """

    dr_edges: np.ndarray
    factors: np.ndarray
    min_pt: float
    flavours: tuple[int, ...]
    # padded lookup table: index of searchsorted -> factor (1 outside the edges)
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", np.concatenate(([1.0], self.factors, [1.0])))

    def factor(self, dr: np.ndarray) -> np.ndarray:
        """The factor for each Delta R (``inf``: no other jet, factor 1)."""
        return self._table[np.searchsorted(self.dr_edges, dr, side="right")]


def close_by_from_doc(doc: dict[str, Any], source: str) -> CloseBy:
    """Build :class:`CloseBy` from the card's ``btag.close_by`` (schema-valid), checking the shapes.

    Args:
        doc: the section.
        source: the card path (for messages).

    Raises:
        RecastError: if the edges are not increasing or the factors do not match them.
    """
    edges = np.asarray(doc["dr_edges"], dtype=np.float64)
    factors = np.asarray(doc["factors"], dtype=np.float64)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise RecastError("dr_edges must increase", path=source, field="btag.close_by.dr_edges")
    if len(factors) != len(edges) - 1:
        raise RecastError(
            f"{len(factors)} factors for {len(edges) - 1} Delta R bins; give one factor per bin",
            path=source,
            field="btag.close_by.factors",
        )
    return CloseBy(
        dr_edges=edges,
        factors=factors,
        min_pt=float(doc.get("min_pt", 20.0)),
        flavours=tuple(_FLAVOUR_LABELS[f] for f in doc.get("flavours", ["b"])),
    )


def nearest_jet_dr(eta: np.ndarray, phi: np.ndarray, pt: np.ndarray, events: np.ndarray, min_pt: float) -> np.ndarray:
    """Delta R from each jet to the nearest other jet of its event with pT >= ``min_pt`` (``inf`` if none).

    Args:
        eta: flat jet pseudorapidities, grouped by event.
        phi: flat jet azimuths.
        pt: flat jet transverse momenta.
        events: event number of each jet (non-decreasing).
        min_pt: the other jets' pT threshold.
    """
    n = len(eta)
    nearest = np.full(n, np.inf)
    if n < 2:
        return nearest
    counts = np.bincount(events - events[0])
    eligible = pt >= min_pt
    # compare each jet with the one `shift` places later in the same event: all pairs once, vectorised
    for shift in range(1, int(counts.max())):
        same = events[shift:] == events[:-shift]
        if not same.any():
            break
        deta = eta[shift:] - eta[:-shift]
        dphi = np.abs(phi[shift:] - phi[:-shift])
        dphi = np.where(dphi > np.pi, 2.0 * np.pi - dphi, dphi)
        dr = np.sqrt(deta * deta + dphi * dphi)
        # jet i sees jet i+shift if that one is eligible, and the other way round
        np.minimum(nearest[:-shift], np.where(same & eligible[shift:], dr, np.inf), out=nearest[:-shift])
        np.minimum(nearest[shift:], np.where(same & eligible[:-shift], dr, np.inf), out=nearest[shift:])
    return nearest


def scale_efficiency(
    eff: np.ndarray,
    close_by: CloseBy,
    flavour: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    pt: np.ndarray,
    events: np.ndarray,
) -> None:
    """Multiply the tag efficiencies of close-by jets of the card's flavours by their factor (in place).

    Args:
        eff: per-jet tag efficiency (modified).
        close_by: the card's settings.
        flavour: truth flavour label per jet.
        eta: reconstructed jet pseudorapidities.
        phi: reconstructed jet azimuths.
        pt: reconstructed jet transverse momenta.
        events: event number of each jet (non-decreasing).
    """
    dr = nearest_jet_dr(eta, phi, pt, events, close_by.min_pt)
    apply = np.isin(flavour, close_by.flavours)
    eff *= np.where(apply, close_by.factor(dr), 1.0)
