"""Hand-off of Delphes ROOT files, read with uproot straight into ``recastflow-reco/1`` (see :mod:`recastflow.generate.handoff`).

:func:`recastflow.generate.handoff.handoff` checks the manifest and calls :func:`_convert_delphes`; the
format's rules (b-tag bit 0, flavour from ``Jet.Flavor``, an empty truth record) are described there.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from recastflow.core.errors import RecastError
from recastflow.generate.handoff import Manifest, _check_count, _Converted, _regular, check_weights

#: Delphes branches read, per collection.
DELPHES_BRANCHES: dict[str, tuple[str, ...]] = {
    "Jet": ("PT", "Eta", "Phi", "Mass", "BTag", "Flavor"),
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "Muon": ("PT", "Eta", "Phi", "Charge"),
    "Photon": ("PT", "Eta", "Phi"),
    "MissingET": ("MET", "Phi"),
    "Event": ("Weight",),
}
#: Optional branches, read when the file has them: the tracks give the jets their track count ``ntracks``
#: (Delphes's ATLAS card writes ``Track``; its jets are built from calorimeter towers, so ``Jet.NCharged`` is 0).
DELPHES_TRACK_BRANCHES = ("Track.PT", "Track.Eta", "Track.Phi")
#: The jet track count of ATLAS's tau veto (the jet moment NumTrkPt500, as the detector card's ``jets.tracks``
#: counts it): tracks above 0.5 GeV in the tracker (|eta| < 2.5), each given to the nearest jet axis within
#: dR < 0.4 (ATLAS's jet radius; ghost association gives each track to one jet). Delphes's own tracking
#: efficiency is already in its Track branch.
TRACK_MIN_PT = 0.5
TRACK_MAX_ABS_ETA = 2.5
TRACK_JET_DR = 0.4


# ----------------------------------------------------------------------------- Delphes


def _convert_delphes(m: Manifest, seed: int, progress: bool) -> _Converted:
    """Check and convert a Delphes ROOT file to recastflow-reco/1."""
    arrays, n = read_delphes(m)
    _check_count(m, n)
    if m.weights:
        matrix = _delphes_weight_matrix(m, arrays.get("Weight.Weight"), n)
        nominal = matrix[:, 0]
    else:
        matrix, nominal = None, _one_per_event(m, arrays["Event.Weight"], "Event.Weight", required=True)
    xsec_pb, notes = check_weights(m, nominal, matrix, list(m.weights))
    columns: dict[str, Any] = {"weight": nominal}
    if matrix is not None:  # the manifest names weights
        columns["weights"] = _regular(matrix)
    columns["jets"] = _delphes_jets(arrays)
    columns["electrons"] = _delphes_leptons(arrays, "Electron")
    columns["muons"] = _delphes_leptons(arrays, "Muon")
    columns["photons"] = _pt_sorted(
        {k: arrays[f"Photon.{b}"] for k, b in (("pt", "PT"), ("eta", "Eta"), ("phi", "Phi"))}
    )
    met = _one_per_event(m, arrays["MissingET.MET"], "MissingET.MET", required=False)
    met_phi = _one_per_event(m, arrays["MissingET.Phi"], "MissingET.Phi", required=False)
    columns["met"] = ak.zip({"pt": met, "phi": met_phi})
    columns["truth"] = empty_truth(n)
    if progress:
        print(f"[{m.file}] read {n} Delphes events", file=sys.stderr, flush=True)
    return _Converted(
        events=ak.zip(columns, depth_limit=1), weight_names=list(m.weights), xsec_pb=xsec_pb, warnings=notes
    )


def read_delphes(m: Manifest) -> tuple[dict[str, ak.Array], int]:
    """Read the needed branches of the ``Delphes`` tree.

    Returns:
        Arrays by leaf name (``"Jet.PT"``, ...; ``"Weight.Weight"`` when present) and the
        number of entries.

    Raises:
        RecastError: not a ROOT file, no ``Delphes`` TTree, missing branches, unreadable baskets.
    """
    import uproot

    try:
        root = uproot.open(m.file)
    except Exception as exc:  # uproot raises ValueError/OSError/its own types for non-ROOT or cut files
        raise RecastError(
            f"not a readable ROOT file ({' '.join(str(exc).split())[:200]}); copy it again or "
            "check 'format' in the manifest",
            path=str(m.file),
            field="file",
        ) from None
    with root:
        classes = root.classnames(recursive=False)
        tree_key = next((k for k, c in classes.items() if k.split(";")[0] == "Delphes" and c == "TTree"), None)
        if tree_key is None:
            found = ", ".join(f"{k.split(';')[0]} ({c})" for k, c in classes.items()) or "nothing"
            raise RecastError(
                f"no TTree 'Delphes' in the file (it holds {found}); is this Delphes output?",
                path=str(m.file),
                field="Delphes",
            )
        tree = root[tree_key]
        by_leaf = {k.split("/")[-1]: k for k in tree.keys(recursive=True)}
        wanted = [f"{c}.{b}" for c, bs in DELPHES_BRANCHES.items() for b in bs]
        missing = [w for w in wanted if w not in by_leaf]
        if missing:
            raise RecastError(
                f"the Delphes tree lacks branch(es) {', '.join(missing)}; recastflow needs {', '.join(wanted)}",
                path=str(m.file),
                field=f"Delphes/{missing[0]}",
            )
        if m.weights:
            wanted.append("Weight.Weight")
            if "Weight.Weight" not in by_leaf:
                raise RecastError(
                    "the manifest lists 'weights' but the Delphes tree has no Weight.Weight branch; "
                    f"remove 'weights' from {m.path}",
                    path=str(m.file),
                    field="Delphes/Weight.Weight",
                )
        present = [b for b in DELPHES_TRACK_BRANCHES if b in by_leaf]
        if present:  # optional, but all three or none
            absent = [b for b in DELPHES_TRACK_BRANCHES if b not in by_leaf]
            if absent:
                raise RecastError(
                    f"the Delphes tree has {', '.join(present)} but lacks {', '.join(absent)}; the jets' track "
                    "count needs all of " + ", ".join(DELPHES_TRACK_BRANCHES) + " (or no Track branch at all)",
                    path=str(m.file),
                    field=f"Delphes/{absent[0]}",
                )
            wanted.extend(DELPHES_TRACK_BRANCHES)
        arrays: dict[str, ak.Array] = {}
        for leaf in wanted:
            try:
                arrays[leaf] = tree[by_leaf[leaf]].array(library="ak")
            except Exception as exc:  # truncated baskets surface as various uproot/zlib errors
                reason = " ".join(str(exc).split())[:200]
                raise RecastError(
                    f"cannot read branch {leaf} ({reason}); the file may be truncated: copy it again",
                    path=str(m.file),
                    field=f"Delphes/{leaf}",
                ) from None
            _check_delphes_shape(m, leaf, arrays[leaf])
        return arrays, int(tree.num_entries)


def _check_delphes_shape(m: Manifest, leaf: str, values: ak.Array) -> None:
    """Object branches are per-event lists of numbers; Event and MissingET may also be flat."""
    per_event = leaf.split(".")[0] in ("Event", "MissingET")
    if values.ndim > 2 or (values.ndim == 1 and not per_event):
        raise RecastError(
            f"branch {leaf} has type {values.type.content}, expected a list of numbers per event as Delphes writes it",
            path=str(m.file),
            field=f"Delphes/{leaf}",
        )


def _one_per_event(m: Manifest, values: ak.Array, leaf: str, *, required: bool) -> np.ndarray:
    """A per-event number from a branch that is flat or a one-entry collection (Event, MissingET)."""
    if values.ndim > 1:
        counts = ak.to_numpy(ak.num(values))
        if required and np.any(counts == 0):
            raise RecastError(
                f"event {int(np.argmax(counts == 0)) + 1} has no {leaf} entry",
                path=str(m.file),
                field=f"Delphes/{leaf}",
            )
        values = ak.fill_none(ak.firsts(values), 0.0)
    return ak.to_numpy(values).astype(np.float64)


def _delphes_weight_matrix(m: Manifest, values: ak.Array, n: int) -> np.ndarray:
    """The Weight.Weight entries of each event, one per manifest weight name."""
    counts = ak.to_numpy(ak.num(values)) if values.ndim > 1 else np.ones(n, dtype=np.int64)
    bad = np.flatnonzero(counts != len(m.weights))
    if len(bad):
        raise RecastError(
            f"event {bad[0] + 1} has {counts[bad[0]]} Weight.Weight entries but the manifest names "
            f"{len(m.weights)} weights; fix 'weights' in {m.path}",
            path=str(m.file),
            field="Delphes/Weight.Weight",
        )
    return ak.to_numpy(values).astype(np.float64).reshape(n, len(m.weights))


def _pt_sorted(columns: dict[str, ak.Array], types: dict[str, type] | None = None) -> ak.Array:
    """Zip per-event object columns (float64 unless typed otherwise), sorted by decreasing pt."""
    types = types or {}
    zipped = ak.zip({k: ak.values_astype(v, types.get(k, np.float64)) for k, v in columns.items()})
    return zipped[ak.argsort(zipped.pt, axis=1, ascending=False, stable=True)]


def _delphes_jets(arrays: dict[str, ak.Array]) -> ak.Array:
    """Jets: b-tag from bit 0 of Jet.BTag, flavour 5/4/15 from |Jet.Flavor| (else 0), and ``ntracks`` when the
    file has a Track branch (:func:`jet_track_counts`)."""
    flavor = abs(ak.values_astype(arrays["Jet.Flavor"], np.int64))
    flavour = ak.where((flavor == 5) | (flavor == 4) | (flavor == 15), flavor, 0)
    btag = (ak.values_astype(arrays["Jet.BTag"], np.int64) & 1) != 0
    columns = {
        "pt": arrays["Jet.PT"],
        "eta": arrays["Jet.Eta"],
        "phi": arrays["Jet.Phi"],
        "m": arrays["Jet.Mass"],
        "btag": btag,
        "flavour": flavour,
    }
    types: dict[str, type] = {"btag": np.bool_, "flavour": np.int8}
    if "Track.PT" in arrays:
        columns["ntracks"] = jet_track_counts(
            arrays["Jet.Eta"], arrays["Jet.Phi"], arrays["Track.PT"], arrays["Track.Eta"], arrays["Track.Phi"]
        )
        types["ntracks"] = np.int16
    return _pt_sorted(columns, types)


def jet_track_counts(
    jet_eta: ak.Array, jet_phi: ak.Array, track_pt: ak.Array, track_eta: ak.Array, track_phi: ak.Array
) -> ak.Array:
    """Each jet's number of tracks, as ATLAS's NumTrkPt500 (see :data:`TRACK_JET_DR`).

    Args:
        jet_eta: Per-event jet pseudorapidities.
        jet_phi: Per-event jet azimuths, in the same order.
        track_pt: Per-event track transverse momenta (GeV).
        track_eta: Per-event track pseudorapidities.
        track_phi: Per-event track azimuths.

    Returns:
        Per-event int64 counts, one per jet in the input order: tracks above :data:`TRACK_MIN_PT` with
        |eta| < :data:`TRACK_MAX_ABS_ETA` whose nearest jet axis is that jet's and closer than :data:`TRACK_JET_DR`.
    """
    # the same-event pairing and blocking of the emulation's isolation sums (recastflow.emulate.clustering)
    from recastflow.emulate.clustering import close_pairs

    keep = (track_pt > TRACK_MIN_PT) & (abs(track_eta) < TRACK_MAX_ABS_ETA)
    t_counts = ak.to_numpy(ak.num(track_eta[keep], axis=1)).astype(np.int64)
    j_counts = ak.to_numpy(ak.num(jet_eta, axis=1)).astype(np.int64)
    t_eta, t_phi = (ak.to_numpy(ak.flatten(a[keep])).astype(np.float64) for a in (track_eta, track_phi))
    j_eta, j_phi = (ak.to_numpy(ak.flatten(a)).astype(np.float64) for a in (jet_eta, jet_phi))
    counts = np.zeros(len(j_eta), dtype=np.int64)
    for it, ij, dr2 in close_pairs(t_counts, t_eta, t_phi, j_counts, j_eta, j_phi, TRACK_JET_DR):
        inside = dr2 < TRACK_JET_DR**2
        it, ij, dr2 = it[inside], ij[inside], dr2[inside]
        # a track near two jets counts for the nearer one only
        order = np.lexsort((dr2, it))
        nearest = order[np.unique(it[order], return_index=True)[1]]
        counts += np.bincount(ij[nearest], minlength=len(counts))
    return ak.unflatten(counts, j_counts)


def _delphes_leptons(arrays: dict[str, ak.Array], name: str) -> ak.Array:
    """Electrons or muons with int8 charge."""
    return _pt_sorted(
        {
            "pt": arrays[f"{name}.PT"],
            "eta": arrays[f"{name}.Eta"],
            "phi": arrays[f"{name}.Phi"],
            "charge": arrays[f"{name}.Charge"],
        },
        {"charge": np.int8},
    )


def empty_truth(n: int) -> ak.Array:
    """A truth record with nothing known: empty lists, mode "unknown", zero PDF info."""
    none = np.zeros(n, dtype=np.int64)

    def empty(fields: Mapping[str, type]) -> ak.Array:
        return ak.unflatten(ak.zip({k: np.zeros(0, dtype=t) for k, t in fields.items()}), none)

    kinematic = {"pt": np.float64, "eta": np.float64, "phi": np.float64}
    return ak.zip(
        {
            "hard": empty(
                {
                    "pid": np.int32,
                    "status": np.int32,
                    "mother": np.int32,
                    "px": np.float64,
                    "py": np.float64,
                    "pz": np.float64,
                    "e": np.float64,
                    "m": np.float64,
                }
            ),
            "mode": ak.Array(["unknown"] * n),
            "id1": np.zeros(n, dtype=np.int32),
            "id2": np.zeros(n, dtype=np.int32),
            "x1": np.zeros(n),
            "x2": np.zeros(n),
            "q2": np.zeros(n),
            "bhadrons": empty(kinematic),
            "chadrons": empty(kinematic),
            "taus": empty(kinematic),
        },
        depth_limit=1,
    )
