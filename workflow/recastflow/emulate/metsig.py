"""Object-based missing-transverse-momentum significance, as ATLAS defines it (ATLAS-CONF-2018-038).

The significance asks how far the measured missing transverse momentum is from zero given the
resolutions of the objects it is made of. Each object i contributes a 2x2 covariance: its pT
resolution along its direction and ``pT * sigma_phi`` across it,

    V_i = R(phi_i) diag(sigma_pT,i^2, (pT_i sigma_phi,i)^2) R(phi_i)^T,

the soft term adds an isotropic ``sigma_soft^2`` per component, and the summed covariance V is read
in the frame of the missing momentum (L along it, T across it):

    sigma_L^2 = u.V.u,  sigma_T^2 = w.V.w,  rho = (u.V.w) / (sigma_L sigma_T),
    S = |MET| / sqrt(sigma_L^2 (1 - rho^2)),

with u the unit vector of the missing momentum and w perpendicular to it. ATLAS-SUSY-2018-31's
region C cuts on and bins in this S (arXiv:1908.03122). A correlation with |rho| at or above
``max_abs_rho`` is set to 0, as ATLAS's METSignificance tool, ATLAS's SimpleAnalysis and CheckMATE's
atlas_1908_03122.cc do (a near-singular covariance would otherwise make S diverge).

S is what ATLAS's reconstruction computes, with the resolutions ATLAS's tool *assumes*, not the ones
the detector has: ATLAS takes each jet's pT resolution as the larger of its data and simulation
jet-energy-resolution tables (METUtilities' METSignificance; ATLAS's SimpleAnalysis does the same
with tables extracted from the calibration files). The card's ``met_significance.jet_resolution``
holds those tables (relative pT resolution at pT points, interpolated linearly in ln pT, per |eta|
bin); without it S takes the card's smearing resolution ``jets.resolution``. Leptons use the card's
``electrons.resolution`` and ``muons.resolution``. The section also holds what the emulation does
not otherwise need: the jets' azimuthal resolution, the soft-term resolution (default: the card's
``met.soft_term.resolution``) and ``max_abs_rho``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from recastflow.core.errors import RecastError
from recastflow.emulate.card import _check_edges, _frozen_array


@dataclass(frozen=True, eq=False)
class JetResolutionTable:
    """Relative jet pT resolution at pT points per |eta| bin, interpolated linearly in ln pT.

    Below the first and above the last point the end values hold; a jet beyond the last |eta| edge
    takes the last bin.

    Attributes:
        pt_points: increasing pT values (GeV).
        eta_edges: increasing |eta| edges (n_eta + 1).
        values: (n_pt, n_eta) relative resolutions sigma_pT / pT.
    """

    pt_points: np.ndarray
    eta_edges: np.ndarray
    values: np.ndarray
    #: what :func:`_with_resolution` interpolates in (the table is in pT)
    variable: str = "pt"
    _log_points: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_log_points", np.log(self.pt_points))

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], source: str) -> JetResolutionTable:
        """Build from the card's ``met_significance.jet_resolution``, checking the shapes.

        Raises:
            RecastError: points or edges that do not increase, or rows / values that do not match them.
        """
        where = "met_significance.jet_resolution"
        points, eta = _frozen_array(doc["pt_points"]), _frozen_array(doc["eta_edges"])
        _check_edges(points, f"{where}.pt_points", source)
        _check_edges(eta, f"{where}.eta_edges", source)
        rows = doc["values"]
        if len(rows) != len(points):
            raise RecastError(
                f"{len(rows)} rows of values for {len(points)} pt_points; give one row per pT point",
                path=source,
                field=f"{where}.values",
            )
        for i, row in enumerate(rows):
            if len(row) != len(eta) - 1:
                raise RecastError(
                    f"{len(row)} values for {len(eta) - 1} |eta| bins ({len(eta)} eta_edges); give one per |eta| bin",
                    path=source,
                    field=f"{where}.values[{i}]",
                )
        return cls(points, eta, _frozen_array(rows))

    def relative(self, pt: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
        """sigma_pT / pT of objects at these pT (GeV) and |eta| values."""
        logs = self._log_points
        x = np.log(np.clip(pt, self.pt_points[0], self.pt_points[-1]))
        i = np.clip(np.searchsorted(logs, x, side="right") - 1, 0, len(logs) - 2)
        f = (x - logs[i]) / (logs[i + 1] - logs[i])
        j = np.clip(np.searchsorted(self.eta_edges, abs_eta, side="right") - 1, 0, self.values.shape[1] - 1)
        return np.asarray((1.0 - f) * self.values[i, j] + f * self.values[i + 1, j], dtype=np.float64)


@dataclass(frozen=True)
class MetSigSettings:
    """The card's ``met_significance`` section.

    Attributes:
        jet_phi_pt_edges: lower pT edges (GeV) of the bins of the jets' azimuthal resolution; above
            the last edge the last value holds, below the first the first.
        jet_phi_values: the azimuthal resolution (rad) in each bin.
        lepton_phi: the leptons' azimuthal resolution (rad); tracks measure it to about a mrad.
        soft_resolution: soft-term resolution per component (GeV).
        max_abs_rho: correlations at or above this magnitude are set to 0.
        jet_resolution: the jets' pT resolution S assumes; None: the card's ``jets.resolution``.
    """

    jet_phi_pt_edges: tuple[float, ...]
    jet_phi_values: tuple[float, ...]
    lepton_phi: float
    soft_resolution: float
    max_abs_rho: float
    jet_resolution: JetResolutionTable | None = None

    def jet_phi(self, pt: np.ndarray) -> np.ndarray:
        """The jets' azimuthal resolution (rad) at these pT values (GeV)."""
        idx = np.searchsorted(np.asarray(self.jet_phi_pt_edges), pt, side="right") - 1
        return np.asarray(self.jet_phi_values)[np.clip(idx, 0, len(self.jet_phi_values) - 1)]


def settings_from_doc(doc: Mapping[str, Any], card_doc: Mapping[str, Any], source: str) -> MetSigSettings:
    """Read a schema-valid ``met_significance`` card section, checking what the schema cannot.

    Args:
        doc: the section.
        card_doc: the whole card (for the default soft-term resolution).
        source: the card file, for messages.

    Raises:
        RecastError: pT edges or points that do not increase, or values that do not match them.
    """
    jets = doc["jet_phi_resolution"]
    edges, values = tuple(float(x) for x in jets["pt_edges"]), tuple(float(x) for x in jets["values"])
    where = "met_significance.jet_phi_resolution"
    _check_edges(np.asarray(edges), f"{where}.pt_edges", source)
    if len(values) != len(edges):
        raise RecastError(
            f"{len(values)} values for {len(edges)} pt_edges (one value per lower edge)",
            path=source,
            field=f"{where}.values",
        )
    soft = doc.get("soft_term_resolution", card_doc["met"]["soft_term"]["resolution"])
    return MetSigSettings(
        jet_phi_pt_edges=edges,
        jet_phi_values=values,
        lepton_phi=float(doc.get("lepton_phi_resolution", 0.0)),
        soft_resolution=float(soft),
        max_abs_rho=float(doc.get("max_abs_rho", 0.9)),
        jet_resolution=JetResolutionTable.from_doc(doc["jet_resolution"], source) if "jet_resolution" in doc else None,
    )


def met_significance(
    met_pt: np.ndarray,
    met_phi: np.ndarray,
    objects: Sequence[tuple[Any, Any, Any, Any]],
    soft_resolution: float,
    max_abs_rho: float = 0.9,
) -> np.ndarray:
    """The object-based significance of each event's missing transverse momentum.

    Args:
        met_pt: |MET| per event (GeV).
        met_phi: its azimuth per event.
        objects: per object collection (pT, phi, sigma_pT in GeV, sigma_phi in rad), each jagged
            (awkward, one list per event) or flat numpy with one object per event.
        soft_resolution: soft-term resolution per component (GeV).
        max_abs_rho: correlations at or above this magnitude are set to 0.

    Returns:
        S per event (0 where the covariance along the missing momentum vanishes).
    """
    n = len(met_pt)
    cxx = np.full(n, soft_resolution**2, dtype=np.float64)
    cyy = cxx.copy()
    cxy = np.zeros(n, dtype=np.float64)
    for pt, phi, sigma_pt, sigma_phi in objects:
        par2 = sigma_pt * sigma_pt
        perp2 = (pt * sigma_phi) ** 2
        c, s = np.cos(phi), np.sin(phi)
        terms = (par2 * c * c + perp2 * s * s, par2 * s * s + perp2 * c * c, (par2 - perp2) * s * c)
        for total, term in zip((cxx, cyy, cxy), terms, strict=True):
            total += _per_event(term)
    c, s = np.cos(met_phi), np.sin(met_phi)
    var_l = cxx * c * c + cyy * s * s + 2.0 * cxy * c * s
    var_t = cxx * s * s + cyy * c * c - 2.0 * cxy * c * s
    cov_lt = (cyy - cxx) * c * s + cxy * (c * c - s * s)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where((var_l > 0) & (var_t > 0), cov_lt / np.sqrt(var_l * var_t), 0.0)
        rho = np.where(np.abs(rho) >= max_abs_rho, 0.0, rho)
        sig = np.where(var_l > 0, met_pt / np.sqrt(var_l * (1.0 - rho * rho)), 0.0)
    return np.asarray(sig, dtype=np.float64)


def _per_event(term: Any) -> np.ndarray:
    """Sum a per-object quantity over each event (jagged awkward), or take it as is (flat numpy)."""
    if isinstance(term, ak.Array):
        return np.asarray(ak.to_numpy(ak.fill_none(ak.sum(term, axis=1), 0.0)), dtype=np.float64)
    return np.asarray(term, dtype=np.float64)


def event_met_significance(reco: ak.Array, card: Any, settings: MetSigSettings, jet_min_pt: float = 0.0) -> np.ndarray:
    """S for reconstructed events, with the resolutions of the card's ``met_significance`` section.

    Args:
        reco: recastflow-reco/1 events (``jets``, ``electrons``, ``muons``, ``met``).
        card: the detector card (:class:`recastflow.emulate.card.DetectorCard`).
        settings: its ``met_significance`` section.
        jet_min_pt: jets below this pT count as soft term (ATLAS's hard objects start at 20 GeV).

    Returns:
        S per event.
    """
    objects = []
    jets = reco["jets"]
    jets = jets[jets.pt > jet_min_pt]
    jet_res = settings.jet_resolution if settings.jet_resolution is not None else card.jets.resolution
    objects.append(_with_resolution(jets, jet_res, lambda pt: settings.jet_phi(pt)))
    for name in ("electrons", "muons"):
        res = getattr(card, name).resolution
        objects.append(_with_resolution(reco[name], res, lambda pt: np.full(len(pt), settings.lepton_phi)))
    met = reco["met"]
    return met_significance(
        np.asarray(ak.to_numpy(met.pt), dtype=np.float64),
        np.asarray(ak.to_numpy(met.phi), dtype=np.float64),
        objects,
        settings.soft_resolution,
        settings.max_abs_rho,
    )


def _with_resolution(coll: ak.Array, resolution: Any, phi_res: Any) -> tuple[Any, Any, Any, Any]:
    """(pT, phi, sigma_pT, sigma_phi) of a jagged collection from a card resolution (relative in pT or E)."""
    counts = ak.num(coll, axis=1)
    if "pt" not in ak.fields(coll):
        # a collection empty in every event (of unknown record type) contributes nothing
        zeros = ak.unflatten(np.zeros(0), counts)
        return zeros, zeros, zeros, zeros
    pt = np.asarray(ak.to_numpy(ak.flatten(coll.pt)), dtype=np.float64)
    eta = np.asarray(ak.to_numpy(ak.flatten(coll.eta)), dtype=np.float64)
    phi = np.asarray(ak.to_numpy(ak.flatten(coll.phi)), dtype=np.float64)
    # an energy resolution is the same relative resolution of pT at fixed eta (E = pT cosh eta)
    x = pt * np.cosh(eta) if resolution.variable == "e" else pt
    rel = np.asarray(resolution.relative(np.maximum(x, 1e-3), np.abs(eta)), dtype=np.float64) if len(pt) else pt
    sigma_pt = rel * pt
    sigma_phi = np.asarray(phi_res(pt), dtype=np.float64)
    return (
        ak.unflatten(pt, counts),
        ak.unflatten(phi, counts),
        ak.unflatten(sigma_pt, counts),
        ak.unflatten(sigma_phi, counts),
    )


__all__ = ["JetResolutionTable", "MetSigSettings", "event_met_significance", "met_significance", "settings_from_doc"]
