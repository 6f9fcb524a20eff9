"""Hand-off of HepMC3 ASCII files, read with pyhepmc into ``recastflow-events/1`` (see :mod:`recastflow.generate.handoff`).

:func:`recastflow.generate.handoff.handoff` checks the manifest and calls :func:`_convert_hepmc3`; the
format's rules (status-1 particles, the truth record from the decay history) are described there.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import awkward as ak
import numpy as np

from recastflow.core.errors import RecastError
from recastflow.generate.handoff import Manifest, _check_count, _Converted, _regular, _select_weights, check_weights

HEPMC3_START = "HepMC::Asciiv3-START_EVENT_LISTING"
HEPMC3_END = "HepMC::Asciiv3-END_EVENT_LISTING"


# ----------------------------------------------------------------------------- HepMC3


def _open_text(path: Path) -> IO[bytes] | gzip.GzipFile:
    """Open a possibly compressed file for binary reading, by suffix (as pyhepmc does)."""
    # typeshed's GzipFile is a BufferedIOBase but not an IO[bytes] (bz2's and lzma's files are)
    openers: dict[str, Callable[..., IO[bytes] | gzip.GzipFile]] = {
        ".gz": gzip.open,
        ".bz2": bz2.open,
        ".xz": lzma.open,
    }
    return openers.get(path.suffix, open)(path, "rb")


def scan_hepmc3(m: Manifest) -> int:
    """Check that a file is complete HepMC3 ASCII and count its event lines.

    A first pass over the text, because HepMC3's reader silently stops at a truncated event.

    Returns:
        The number of ``E`` (event) lines.

    Raises:
        RecastError: HepMC2 or another format, no end-of-listing line (truncated).
    """
    n_events, last = 0, b""
    first: list[str] = []
    try:
        with _open_text(m.file) as fh:
            for line in fh:
                if len(first) < 3 and line.strip():
                    first.append(line.decode("ascii", errors="replace").strip())
                if line.startswith(b"E "):
                    n_events += 1
                if line.strip():
                    last = line
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise RecastError(
            f"cannot read the file ({exc}); is it truncated? Copy it again", path=str(m.file), field="file"
        ) from None
    if not any(HEPMC3_START in line for line in first):
        kind = "HepMC2 (IO_GenEvent)" if any("IO_GenEvent" in line for line in first) else "not HepMC3 ASCII"
        raise RecastError(
            f"{kind}: no '{HEPMC3_START}' line at the top; write HepMC3 ASCII (WriterAscii, or "
            "convert with HepMC3's 'convert_example.exe') or fix 'format' in the manifest",
            path=str(m.file),
            field="file",
        )
    if last.strip().decode("ascii", errors="replace") != HEPMC3_END:
        raise RecastError(
            f"truncated: the last line is not '{HEPMC3_END}' ({n_events} event headers seen); copy the file again",
            path=str(m.file),
            field="file",
        )
    return n_events


@dataclass
class _HepMCRaw:
    """Flat columns of all particles, links and per-event info of a HepMC3 file."""

    counts: list[int] = field(default_factory=list)
    n_vertices: list[int] = field(default_factory=list)
    particles: list[np.ndarray] = field(default_factory=list)
    links1: list[np.ndarray] = field(default_factory=list)
    links2: list[np.ndarray] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    pdf: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    xsec_pb: float | None = None
    weight_names: list[str] = field(default_factory=list)


def _read_hepmc3_events(m: Manifest, expected: int, progress: bool) -> _HepMCRaw:
    """Read every event with pyhepmc into flat numpy pieces (GenEventData, no per-particle objects)."""
    import pyhepmc

    raw = _HepMCRaw()
    report = _progress(expected, str(m.file), progress)
    with pyhepmc.open(m.file, format="hepmc3") as f:
        for ev in f:
            if not raw.counts and ev.run_info is not None:
                raw.weight_names = [str(n) for n in ev.run_info.weight_names]
            data = pyhepmc.GenEventData()
            ev.write_data(data)
            raw.counts.append(len(data.particles))
            raw.n_vertices.append(len(data.vertices))
            raw.particles.append(np.array(data.particles))
            raw.links1.append(np.array(data.links1, dtype=np.int64))
            raw.links2.append(np.array(data.links2, dtype=np.int64))
            raw.scale.append(1e-3 if data.momentum_unit == pyhepmc.Units.MEV else 1.0)
            raw.weights.append(np.array(data.weights, dtype=np.float64))
            attributes = {
                n: s for n, s, i in zip(data.attribute_name, data.attribute_string, data.attribute_id) if i == 0
            }
            raw.pdf.append(_pdf_info(attributes.get("GenPdfInfo")))
            if "GenCrossSection" in attributes:
                raw.xsec_pb = _first_float(attributes["GenCrossSection"])
            report(len(raw.counts))
    return raw


def _pdf_info(text: str | None) -> tuple[int, int, float, float, float]:
    """(id1, id2, x1, x2, Q^2) from a GenPdfInfo attribute ('id1 id2 x1 x2 scale ...'; scale is Q)."""
    if not text:
        return 0, 0, 0.0, 0.0, 0.0
    parts = text.split()
    try:
        return int(parts[0]), int(parts[1]), float(parts[2]), float(parts[3]), float(parts[4]) ** 2
    except (IndexError, ValueError):
        return 0, 0, 0.0, 0.0, 0.0


def _first_float(text: str) -> float | None:
    """The first number of an attribute string (GenCrossSection: the nominal cross-section in pb)."""
    try:
        value = float(text.split()[0])
    except (IndexError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _convert_hepmc3(m: Manifest, seed: int, progress: bool) -> _Converted:
    """Check and convert a HepMC3 file to recastflow-events/1."""
    n_lines = scan_hepmc3(m)
    _check_count(m, n_lines)
    raw = _read_hepmc3_events(m, n_lines, progress)
    if len(raw.counts) != n_lines:
        raise RecastError(
            f"only {len(raw.counts)} of {n_lines} events could be parsed; event "
            f"{len(raw.counts) + 1} is malformed (see the HepMC3 messages above); copy or "
            "regenerate the file",
            path=str(m.file),
            field=f"event {len(raw.counts) + 1}",
        )
    nominal, matrix, names = _hepmc_weights(m, raw)
    xsec_pb, notes = check_weights(m, nominal, matrix, names, raw.xsec_pb)
    from recastflow.generate.truth import final_particles

    flat = _hepmc_flat(raw)
    columns: dict[str, Any] = {"weight": nominal}
    if names:
        columns["weights"] = _regular(matrix)
    columns["particles"] = final_particles(flat, particle_charges)
    columns["truth"] = _hepmc_truth(flat, raw)
    return _Converted(
        events=ak.zip(columns, depth_limit=1),
        weight_names=names,
        xsec_pb=xsec_pb,
        xsec_file_pb=raw.xsec_pb,
        warnings=notes,
    )


def _hepmc_weights(m: Manifest, raw: _HepMCRaw) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Nominal weights, the named weight matrix and its names, checked against the manifest.

    Without a manifest list, all weights are kept and the first is nominal (HepMC3's
    convention); weights without run-info names are called ``w0``, ``w1``, ...
    """
    k = len(raw.weights[0]) if raw.weights else 0
    for i, w in enumerate(raw.weights):
        if len(w) != k:
            raise RecastError(
                f"the event has {len(w)} weights, event 1 has {k}; every event must carry the same weights",
                path=str(m.file),
                field=f"event {i + 1}",
            )
    matrix = np.vstack(raw.weights) if k else np.zeros((len(raw.weights), 0))
    named = len(raw.weight_names) == k
    if m.weights:
        available = ", ".join(map(repr, raw.weight_names)) if named and k else "no weight names in its run info"
        columns = _select_weights(m, raw.weight_names if named else [], "the run info", available)
        return matrix[:, columns[0]], matrix[:, columns], list(m.weights)
    if k == 0:
        return np.ones(len(matrix)), matrix, []
    return matrix[:, 0], matrix, raw.weight_names if named else [f"w{i}" for i in range(k)]


def _hepmc_flat(raw: _HepMCRaw) -> Any:
    """All particles as one flat record with global first-mother indices (generation's ``Flat``).

    A particle's first mother is the first incoming particle of its production vertex.
    HepMC statuses other than 1 are negated so that, as in Pythia's record, only final
    particles are positive.
    """
    from recastflow.generate.truth import Flat

    counts = np.asarray(raw.counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    event = np.repeat(np.arange(len(counts)), counts)
    parts = np.concatenate(raw.particles) if raw.particles else np.zeros(0, dtype=_PARTICLE_DTYPE)
    scale = np.repeat(np.asarray(raw.scale, dtype=np.float64), counts)
    px, py, pz, e = (parts[k].astype(np.float64) * scale for k in ("px", "py", "pz", "e"))
    mass = np.where(
        parts["is_mass_set"], parts["mass"] * scale, np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))
    )
    status = parts["status"].astype(np.int32)
    status = np.where(status == 1, 1, -np.abs(status)).astype(np.int32)
    mother1 = _first_mothers(raw, offsets)
    return Flat(counts, offsets, event, parts["pid"].astype(np.int32), status, mother1, px, py, pz, e, mass)


_PARTICLE_DTYPE = np.dtype(
    [
        ("pid", "<i4"),
        ("status", "<i4"),
        ("is_mass_set", "?"),
        ("mass", "<f8"),
        ("px", "<f8"),
        ("py", "<f8"),
        ("pz", "<f8"),
        ("e", "<f8"),
    ]
)


def _first_mothers(raw: _HepMCRaw, offsets: np.ndarray) -> np.ndarray:
    """Global index of each particle's first mother, or -1 (HepMC links, vectorised over events).

    A link (a, b) with a > 0 > b means particle a enters vertex b; with a < 0 < b vertex a
    produces particle b. Particle ids count from 1, vertex ids from -1 downwards.
    """
    n_particles = int(offsets[-1] + raw.counts[-1]) if raw.counts else 0
    n_links = np.asarray([len(x) for x in raw.links1], dtype=np.int64)
    if n_links.sum() == 0:
        return np.full(n_particles, -1, dtype=np.int64)
    a, b = np.concatenate(raw.links1), np.concatenate(raw.links2)
    link_event = np.repeat(np.arange(len(n_links)), n_links)
    n_vert = np.asarray(raw.n_vertices, dtype=np.int64)
    v_offsets = np.concatenate([[0], np.cumsum(n_vert)[:-1]])
    p_off, v_off = offsets[link_event], v_offsets[link_event]
    into = (a > 0) & (b < 0)
    out = (a < 0) & (b > 0)
    # first incoming particle of each vertex: the first link into it, in file order
    vertex_in = v_off[into] + (-b[into] - 1)
    particle_in = p_off[into] + a[into] - 1
    first_in = np.full(int(n_vert.sum()), -1, dtype=np.int64)
    unique, first = np.unique(vertex_in, return_index=True)
    first_in[unique] = particle_in[first]
    mother1 = np.full(n_particles, -1, dtype=np.int64)
    mother1[p_off[out] + b[out] - 1] = first_in[v_off[out] + (-a[out] - 1)]
    return mother1


_CHARGES: dict[int, float] = {}


def particle_charges(pid: np.ndarray) -> np.ndarray:
    """Electric charges (float32) from the ``particle`` package, once per PDG id; unknown ids are 0."""
    from particle.pdgid import charge

    unique, inverse = np.unique(pid, return_inverse=True)
    for p in unique.tolist():
        if p not in _CHARGES:
            q = charge(int(p)) if p != 0 else None
            _CHARGES[p] = float(q) if q is not None else 0.0
    table = np.array([_CHARGES[p] for p in unique.tolist()], dtype=np.float32)
    return table[inverse.reshape(-1)]


def _hepmc_truth(flat: Any, raw: _HepMCRaw) -> ak.Array:
    """The truth record, built by the generator's own function so both paths agree."""
    from recastflow.generate.truth import truth_record

    pdf = np.asarray(raw.pdf, dtype=np.float64).reshape(-1, 5)
    return truth_record(
        flat,
        {
            "id1": pdf[:, 0].astype(np.int32),
            "id2": pdf[:, 1].astype(np.int32),
            "x1": pdf[:, 2],
            "x2": pdf[:, 3],
            "q2": pdf[:, 4],
        },
        unknown_without_hard=True,
    )


def _progress(total: int, label: str, enabled: bool) -> Callable[[int], None]:
    """A callback printing a line on stderr at every 10% of ``total``."""
    step = max(total // 10, 1)
    start = time.monotonic()

    def report(done: int) -> None:
        if enabled and (done % step == 0 or done == total):
            rate = done / max(time.monotonic() - start, 1e-9)
            print(f"[{label}] read {done}/{total} events ({rate:.0f} events/s)", file=sys.stderr, flush=True)

    return report
