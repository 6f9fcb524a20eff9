"""Columnar event files shared by generate, emulate and select.

Every event file is one Parquet file (awkward arrays written through pyarrow) that
carries its own header: a JSON document in the Parquet key-value metadata under the
key ``recastflow``. Any Parquet reader (pyarrow, pandas, polars, ``ak.from_parquet``)
reads the columns; :func:`read_header` reads the header without the columns.

Formats (``header["format"]``), one row per event:

``recastflow-events/1`` (particle level, written by ``generate`` and the hand-off readers)
    - ``weight``: float64, the nominal event weight.
    - ``weights``: var * float64, optional alternative weights (names in ``header["weight_names"]``).
    - ``particles``: var * {pid: int32, charge: float32, px, py, pz, e: float64}, stable final-state
      particles (GeV), neutrinos and other invisibles included.
    - ``truth``: the truth record kept for selection and reweighting (see below).

``recastflow-reco/1`` (detector level, written by ``emulate`` and the Delphes reader)
    - ``weight``, ``weights`` as above.
    - ``jets``: var * {pt, eta, phi, m: float64, btag: bool, flavour: int8 (5 b, 4 c, 15 tau, 0 light)}, and
      ``ntracks`` (int16: charged constituents in the tracker's acceptance) when the card has ``jets.tracks``, or
      (Delphes files) the tracks of the file's ``Track`` branch matched to the jets
      (:func:`recastflow.generate.delphes.jet_track_counts`).
    - ``electrons``, ``muons``: var * {pt, eta, phi: float64, charge: int8}.
    - ``photons``: var * {pt, eta, phi: float64}.
    - ``met``: {pt, phi: float64}, and ``significance`` (float64: the object-based MET significance S of
      ATLAS-CONF-2018-038, :mod:`recastflow.emulate.metsig`) when the card has a ``met_significance``
      section; files emulated without one (or read from Delphes) lack it.
    - ``truth``: passed through unchanged.

``recastflow-selected/1`` (written by ``select``): the reco columns of the events that
    entered at least one region, plus ``regions``: {<region>: int8 bin index or -1} and
    ``variables``: {<name>: the selection's variables, missing where undefined}. Extra header
    keys: ``n_selected``, ``luminosity_ifb``, ``selection`` {file, sha256, analysis}, ``regions``.

The truth record (``truth`` column) of an event:
    - ``hard``: var * {pid, status: int32, mother: int32, px, py, pz, e, m: float64}: the hard
      process and its resonance decay chain before showering, in generator order; ``mother``
      is the index of the first mother in this list, or -1.
    - ``mode``: string, decay-mode label of the event (e.g. ``"W(e nu) h(b b)"``).
    - ``id1``, ``id2``: int32, ``x1``, ``x2``, ``q2``: float64, incoming partons' PDG ids and
      momentum fractions and the factorisation scale squared (for PDF reweighting).
    - ``bhadrons``, ``chadrons``, ``taus``: var * {pt, eta, phi: float64}: weakly decaying b and c
      hadrons and visible hadronic taus, for truth flavour labelling of jets. Generated taus also
      carry ``m`` (visible mass), ``charge`` and ``prongs`` (int8), for hadronic-tau emulation.

Header keys (all formats): ``format``, ``point``, ``generator`` {name, version, settings},
``n_events``, ``sum_weights``, ``xsec_pb`` (production cross-section), ``xsec_source``,
``br_factor`` (product of the branching fractions of forced decays, 1 if none), ``seed``,
``chunk`` {index, count}, ``xsec_estimated`` (true when ``xsec_pb`` is the generator's own
estimate from this chunk's events; merged chunks then get the event-weighted mean), ``weight_names``, ``sources`` (input files with sha256), and for
reco files ``detector`` {card, sha256}. The expected yield of a selection is
``luminosity * xsec_pb * br_factor * sum(selected weights) / sum_weights``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import awkward as ak

from recastflow.core.errors import RecastError
from recastflow.core.io import input_path, write_bytes_atomic

EVENTS = "recastflow-events/1"
RECO = "recastflow-reco/1"
SELECTED = "recastflow-selected/1"
FORMATS = (EVENTS, RECO, SELECTED)
HEADER_KEY = b"recastflow"
REQUIRED_HEADER = ("format", "n_events", "sum_weights", "xsec_pb", "xsec_source", "br_factor")


def write_events(path: Path, events: ak.Array, header: dict[str, Any]) -> None:
    """Write events and their header to one Parquet file, atomically and byte-reproducibly.

    Args:
        path: output file (``.parquet``).
        events: one record per event in one of the documented formats.
        header: JSON-serialisable header with at least the keys of ``REQUIRED_HEADER``.
    """
    import pyarrow.parquet as pq

    missing = [k for k in REQUIRED_HEADER if k not in header]
    if missing or header.get("format") not in FORMATS:
        # a programming error, not a user one: every writer builds its header itself
        raise ValueError(f"event header lacks {missing} or has an unknown format {header.get('format')!r}")
    table = ak.to_arrow_table(ak.to_packed(events), extensionarray=False)
    meta = dict(table.schema.metadata or {})
    meta[HEADER_KEY] = json.dumps(header, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    # zstd level 1: about as fast as LZ4 here and 20-30% smaller; no timestamps, so the
    # same events and header give the same bytes
    pq.write_table(table, buf, compression="zstd", compression_level=1)
    write_bytes_atomic(Path(path), buf.getvalue())


def read_header(path: Path, formats: tuple[str, ...] = FORMATS) -> dict[str, Any]:
    """Read only the header of an event file.

    Args:
        path: a Parquet event file.
        formats: formats the caller accepts.
    """
    import pyarrow.parquet as pq

    input_path(path)  # inside the allowed folders and a regular file (a named pipe would block the read)
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise RecastError("file not found", path=str(path)) from None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError variants for non-Parquet input
        raise RecastError(
            f"not a readable Parquet event file ({' '.join(str(exc).split())[:200]})", path=str(path)
        ) from None
    return _header(schema.metadata, path, formats)


def _header(meta: dict[bytes, bytes] | None, path: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    raw = (meta or {}).get(HEADER_KEY)
    if raw is None:
        raise RecastError(
            "Parquet file without a recastflow header; event files are written by "
            "'recastflow generate', 'handoff' or 'emulate'",
            path=str(path),
        )
    try:
        header = json.loads(raw)
    except ValueError:
        raise RecastError("the recastflow header is not valid JSON", path=str(path)) from None
    if not isinstance(header, dict) or header.get("format") not in formats:
        got = header.get("format") if isinstance(header, dict) else None
        raise RecastError(f"event format {got!r}; expected {' or '.join(formats)}", path=str(path), field="format")
    return header


def read_events(path: Path, formats: tuple[str, ...] = FORMATS) -> tuple[ak.Array, dict[str, Any]]:
    """Read an event file and its header.

    Args:
        path: a Parquet event file.
        formats: formats the caller accepts.
    """
    import pyarrow.parquet as pq

    header = read_header(path, formats)
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise RecastError(
            f"cannot read the event columns ({' '.join(str(exc).split())[:200]})", path=str(path)
        ) from None
    return ak.from_arrow(table), header


def merge_events(
    paths: list[Path], formats: tuple[str, ...] = FORMATS, *, prefix: bool = False, subset: bool = False
) -> tuple[ak.Array, dict[str, Any]]:
    """Concatenate the chunks of one point into one array with a combined header.

    Chunks must share format, point, cross-section and forced-decay factor, and together
    be exactly chunks ``0..count-1``. Event counts and weight sums add up.

    Args:
        paths: chunk files, in any order.
        formats: formats the caller accepts.
        prefix: accept the first chunks ``0..k`` of the ``count`` (an adaptive scan's point so far).
        subset: accept any distinct chunks of the ``count`` instead (a statistical study on disjoint parts of
            a point's events); yields normalise by the events given, so any subset is an estimate of the whole.

    Raises:
        RecastError: chunks of different points or settings, repeated chunks, or missing chunks.
    """
    if not paths:
        raise RecastError("no event files to merge")
    parts = [read_events(Path(p), formats) for p in paths]
    parts.sort(key=lambda ah: (ah[1].get("chunk") or {}).get("index", 0))
    first = parts[0][1]
    for (_, h), p in zip(parts, paths):
        keys = ["format", "point", "br_factor", "weight_names", "xsec_estimated"]
        if not first.get("xsec_estimated"):
            keys.append("xsec_pb")
        for key in keys:
            if h.get(key) != first.get(key):
                raise RecastError(
                    f"chunk disagrees with {paths[0]} on {key!r}: {h.get(key)!r} vs {first.get(key)!r}",
                    path=str(p),
                    field=key,
                )
    count = (first.get("chunk") or {}).get("count", 1)
    indices = sorted((h.get("chunk") or {}).get("index", 0) for _, h in parts)
    if subset:
        if len(set(indices)) != len(indices) or not all(0 <= i < count for i in indices):
            raise RecastError(
                f"chunks {indices} given, expected distinct chunks of 0..{count - 1}", path=str(paths[0]), field="chunk"
            )
        count = len(indices)
    else:
        if prefix and len(indices) <= count:
            count = len(indices)
        if indices != list(range(count)):
            expected = f"0..{count - 1}" + (" (the first chunks)" if prefix else "")
            raise RecastError(f"chunks {indices} given, expected all of {expected}", path=str(paths[0]), field="chunk")
    header = dict(first)
    header["n_events"] = sum(h["n_events"] for _, h in parts)
    header["sum_weights"] = sum(h["sum_weights"] for _, h in parts)
    if first.get("xsec_estimated"):
        header["xsec_pb"] = sum(h["xsec_pb"] * h["n_events"] for _, h in parts) / header["n_events"]
    header["chunk"] = {"index": 0, "count": 1, "merged": count}
    header["sources"] = [s for _, h in parts for s in h.get("sources", [])]
    if "seed" in first:
        header["seeds"] = [h.get("seed") for _, h in parts]
    arrays = [a for a, _ in parts]
    return (ak.concatenate(arrays) if len(arrays) > 1 else arrays[0]), header
