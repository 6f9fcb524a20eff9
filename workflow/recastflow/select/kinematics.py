"""Kinematic functions of the selection language over whole columns: angles, masses (m, mT, mCT, mT2), sums,
event shapes and the Higgs-candidate pairing of b-jets. Every function takes :class:`Particle` objects or
:class:`Collection` values and returns one number per event (NaN where an input object is missing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recastflow.select.columns import Collection, Particle


def delta_phi(phi1: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """|phi1 - phi2| folded into [0, pi], for angles in [-pi, pi] (the input is folded on reading)."""
    d = np.abs(phi1 - phi2)
    # cheaper than a modulo, and exact for |d| <= 2 pi
    return np.where(d > np.pi, 2 * np.pi - d, d)


def invariant_mass(particles: Sequence[Particle]) -> np.ndarray:
    """Invariant mass of the sum of the particles (massless where no mass is known)."""

    def mass(kin: list[tuple[Any, ...]]) -> np.ndarray:
        px, py, pz, e = _four_momentum(kin)
        return np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))

    return _where_present(particles, mass)


def _where_present(particles: Sequence[Particle], func: Callable[[list[tuple[Any, ...]]], np.ndarray]) -> np.ndarray:
    """``func`` of the particles' kinematics, computed only in events where all are present.

    Missing objects would give NaN anyway; skipping them saves the (slow) transcendental
    functions on NaN and on events that a cut has already made irrelevant.
    """
    kins = [p.kinematics() for p in particles]
    present = np.ones(len(kins[0][0]), dtype=bool)
    for kin in kins:
        present &= ~np.isnan(kin[0])
    if present.all():
        return func(kins)
    rows = np.flatnonzero(present)
    out = np.full(len(present), np.nan)
    out[rows] = func([tuple(v[rows] if np.ndim(v) else v for v in kin) for kin in kins])
    return out


def _four_momentum(kins: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    # (px, py, pz, e): arrays or numbers, like the kinematics summed (the sums start from the number 0)
    px = py = pz = e = 0.0
    for pt, eta, phi, m in kins:
        z = pt * np.sinh(eta)
        px = px + pt * np.cos(phi)
        py = py + pt * np.sin(phi)
        pz = pz + z
        e = e + np.sqrt(pt * pt + z * z + m * m)
    return px, py, pz, e


def transverse_mass(a: Particle, b: Particle) -> np.ndarray:
    """mT = sqrt(2 pT_a pT_b (1 - cos dphi)), both treated as massless."""

    def mt(kin: list[tuple[Any, ...]]) -> np.ndarray:
        (pa, _, fa, _), (pb, _, fb, _) = kin
        return np.sqrt(np.maximum(2.0 * pa * pb * (1.0 - np.cos(fa - fb)), 0.0))

    return _where_present([a, b], mt)


def contransverse_mass(a: Particle, b: Particle) -> np.ndarray:
    """mCT = sqrt(2 pT_a pT_b (1 + cos dphi)) (massless visible objects)."""

    def mct(kin: list[tuple[Any, ...]]) -> np.ndarray:
        (pa, _, fa, _), (pb, _, fb, _) = kin
        return np.sqrt(np.maximum(2.0 * pa * pb * (1.0 + np.cos(fa - fb)), 0.0))

    return _where_present([a, b], mct)


def stransverse_mass(a: Particle, b: Particle, miss: Particle) -> np.ndarray:
    """mT2 of two visible objects (with their masses) and the missing pT, massless invisible particles.

    Computed by the ``mt2`` package (Lester-Nachman bisection as a numpy ufunc, arXiv:1411.4312).
    """
    # imported here: only selections that use mt2() need the package
    from mt2 import mt2 as _mt2

    def value(kin: list[tuple[Any, ...]]) -> np.ndarray:
        (pa, _, fa, ma), (pb, _, fb, mb), (pm, _, fm, _) = kin
        out = _mt2(
            ma,
            pa * np.cos(fa),
            pa * np.sin(fa),
            mb,
            pb * np.cos(fb),
            pb * np.sin(fb),
            pm * np.cos(fm),
            pm * np.sin(fm),
            0.0,
            0.0,
        )
        return np.asarray(out, dtype=np.float64)

    return _where_present([a, b, miss], value)


def sum_pt(particles: Sequence[Particle]) -> np.ndarray:
    """Transverse momentum of the vector sum."""

    def pt(kin: list[tuple[Any, ...]]) -> np.ndarray:
        px = py = 0.0
        for p, _, phi, _ in kin:
            px = px + p * np.cos(phi)
            py = py + p * np.sin(phi)
        return np.hypot(px, py)

    return _where_present(particles, pt)


def sum_eta(particles: Sequence[Particle]) -> np.ndarray:
    """Pseudorapidity of the vector sum (massless where no mass is known)."""

    def eta(kin: list[tuple[Any, ...]]) -> np.ndarray:
        px, py, pz, _ = _four_momentum(kin)
        return np.arcsinh(pz / np.hypot(px, py))

    return _where_present(particles, eta)


def momentum_tensor_eigenvalues(coll: Collection, r: int) -> np.ndarray:
    """Sorted eigenvalues (ascending, events x 3) of each event's generalised momentum tensor.

    S^ab = sum_i |p_i|^(r-2) p_i^a p_i^b / sum_i |p_i|^r; r = 2 is the sphericity tensor, r = 1
    the linearised (infrared-safe) one. Events without objects, or with momenta so large that
    the tensor overflows double precision (|p| above ~1e154), give NaN.
    """
    lay = coll.layout
    pt, eta, phi = coll.field("pt"), coll.field("eta"), coll.field("phi")
    p = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])
    mag = np.sqrt((p * p).sum(axis=0))
    w = np.where(mag > 0, mag ** (r - 2), 0.0)
    ev = lay.event_index
    norm = np.bincount(ev, mag**r, minlength=lay.n_events)
    tensor = np.empty((lay.n_events, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            tensor[:, a, b] = tensor[:, b, a] = np.bincount(ev, w * p[a] * p[b], minlength=lay.n_events)
    # momenta whose squares overflow (|p| above ~1e154) make inf / inf = NaN entries, on which
    # LAPACK fails ("Eigenvalues did not converge"): such events get NaN, like empty ones
    good = (norm > 0) & np.isfinite(norm)
    out = np.full((lay.n_events, 3), np.nan)
    if good.any():
        scaled = tensor[good] / norm[good, None, None]
        finite = np.isfinite(scaled).all(axis=(1, 2))
        if not finite.all():
            good[good] = finite
            scaled = scaled[finite]
        out[good] = np.linalg.eigvalsh(scaled)
    return out


#: Most objects per event the pair functions look at (the leading ones): pairs grow as n^2, and a
#: selection pairs b-jets or leptons, of which no event has more.
MAX_PAIR_OBJECTS = 16


def _padded(coll: Collection) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The collection's (pt, eta, phi, m) as (events x k) arrays, NaN-padded, and the mask of real objects."""
    lay = coll.layout
    k = int(min(lay.counts.max(initial=0), MAX_PAIR_OBJECTS))
    keep = lay.local_index < k
    rows, cols = lay.event_index[keep], lay.local_index[keep]
    out: dict[str, np.ndarray] = {}
    for name in ("pt", "eta", "phi", "m"):
        arr = np.full((lay.n_events, k), np.nan)
        if name in coll.names:
            arr[rows, cols] = coll.field(name)[keep]
        else:
            arr[rows, cols] = 0.0  # massless where a collection has no mass
        out[name] = arr
    valid = np.zeros((lay.n_events, k), dtype=bool)
    valid[rows, cols] = True
    return out, valid


def higgs_pairing(coll: Collection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The b-jet pairing of ATLAS-SUSY-2018-31's SRA: dR_max(b,b), dR_max-min(b,b) and the Higgs-candidate mass.

    The pair of objects with the largest dR is taken as the two b-quarks of the bottom-squark decays;
    among the other objects, the pair with the smallest dR is the Higgs candidate (arXiv:1908.03122, the
    SRA variables; CheckMATE's atlas_1908_03122.cc pairs the same way). Only the leading
    :data:`MAX_PAIR_OBJECTS` objects enter; ties go to the pair of lower indices.

    Args:
        coll: the collection (e.g. the b-jets), any order.

    Returns:
        Per event: dR of the largest-dR pair (NaN with fewer than 2 objects), the smallest dR among pairs of
        the remaining objects and the invariant mass of that pair (both NaN with fewer than 4 objects).
    """
    kin, valid = _padded(coll)
    n, k = valid.shape
    nan = np.full(n, np.nan)
    if k < 2:
        return nan, nan.copy(), nan.copy()
    # extreme or missing kinematics give inf/NaN like the other functions, never a floating-point exception
    with np.errstate(all="ignore"):
        return _pairing(kin, valid)


def _pairing(kin: dict[str, np.ndarray], valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The work of :func:`higgs_pairing` on padded (events x k) kinematics."""
    n, k = valid.shape
    eta, phi = kin["eta"], kin["phi"]
    deta = eta[:, :, None] - eta[:, None, :]
    dr = np.sqrt(deta * deta + delta_phi(phi[:, :, None], phi[:, None, :]) ** 2)
    upper = np.triu(np.ones((k, k), dtype=bool), 1)[None, :, :]
    is_pair = upper & valid[:, :, None] & valid[:, None, :]
    flat = np.where(is_pair, dr, -np.inf).reshape(n, k * k)
    best = flat.argmax(axis=1)  # first maximum: the pair of lower indices on ties
    has_pair = is_pair.reshape(n, k * k).any(axis=1)
    dr_max = np.where(has_pair, flat[np.arange(n), best], np.nan)
    i0, j0 = np.divmod(best, k)
    used = np.zeros((n, k), dtype=bool)
    used[np.arange(n), i0] = True
    used[np.arange(n), j0] = True
    rest = is_pair & ~used[:, :, None] & ~used[:, None, :]
    flat2 = np.where(rest, dr, np.inf).reshape(n, k * k)
    second = flat2.argmin(axis=1)
    has_rest = rest.reshape(n, k * k).any(axis=1) & has_pair
    dr_maxmin = np.where(has_rest, flat2[np.arange(n), second], np.nan)
    i1, j1 = np.divmod(second, k)
    ev = np.arange(n)
    parts = [Particle.of({f: kin[f][ev, idx] for f in ("pt", "eta", "phi", "m")}) for idx in (i1, j1)]
    mass = np.where(has_rest, invariant_mass(parts), np.nan)
    return dr_max, dr_maxmin, mass


def largest_dr_pair_masses(coll: Collection) -> tuple[np.ndarray, np.ndarray]:
    """The invariant masses of the pair of objects with the largest dR and of the pair with the second largest.

    The Higgs candidates of ATLAS-SUSY-2018-31's SRB as CheckMATE's atlas_1908_03122.cc builds them (their
    average is the SRB variable <m(h-cand)>); the two pairs may share an object. Only the leading
    :data:`MAX_PAIR_OBJECTS` objects enter; ties go to the pair of lower indices.

    Args:
        coll: the collection (e.g. the b-jets), any order.

    Returns:
        Per event: the mass of the largest-dR pair (NaN with fewer than 2 objects) and of the second-largest-dR
        pair (NaN with fewer than 3 objects).
    """
    kin, valid = _padded(coll)
    n, k = valid.shape
    nan = np.full(n, np.nan)
    if k < 2:
        return nan, nan.copy()
    with np.errstate(all="ignore"):
        eta, phi = kin["eta"], kin["phi"]
        deta = eta[:, :, None] - eta[:, None, :]
        dr = np.sqrt(deta * deta + delta_phi(phi[:, :, None], phi[:, None, :]) ** 2)
        upper = np.triu(np.ones((k, k), dtype=bool), 1)[None, :, :]
        is_pair = (upper & valid[:, :, None] & valid[:, None, :]).reshape(n, k * k)
        flat = np.where(is_pair, dr.reshape(n, k * k), -np.inf)
        # stable sort of -dR: the largest first, and the pair of lower indices first on ties
        order = np.argsort(-flat, axis=1, kind="stable")
        n_pairs = is_pair.sum(axis=1)
        ev = np.arange(n)
        out = []
        for rank in (0, 1):
            i, j = np.divmod(order[:, rank] if order.shape[1] > rank else np.zeros(n, dtype=int), k)
            parts = [Particle.of({f: kin[f][ev, idx] for f in ("pt", "eta", "phi", "m")}) for idx in (i, j)]
            out.append(np.where(n_pairs > rank, invariant_mass(parts), np.nan))
    return out[0], out[1]


def event_shape(which: str, r: int) -> Callable[[Collection], np.ndarray]:
    """sphericity 3/2 (l1 + l2), aplanarity 3/2 l1, or transverse sphericity 2 l2 / (l2 + l3) (l1 <= l2 <= l3)."""

    def shape(coll: Collection) -> np.ndarray:
        lam = momentum_tensor_eigenvalues(coll, r)
        if which == "sphericity":
            return 1.5 * (lam[:, 0] + lam[:, 1])
        if which == "aplanarity":
            return 1.5 * lam[:, 0]
        return 2.0 * lam[:, 1] / (lam[:, 1] + lam[:, 2])

    return shape
