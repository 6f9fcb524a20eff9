"""Hand-off of events made outside recastflow: LHE, HepMC3 and Delphes ROOT files.

A manifest (YAML, schema ``manifest.schema.json``) describes one file: its format, where it
is, who made it, the cross-section it stands for and how its weights are normalised.
:func:`handoff` checks the manifest and the whole file first, and only then writes one
event file (one chunk, index 0 of 1):

``lhe``
    Read and checked with pylhe (well-formed XML, an ``<init>`` block, every event's
    particle count, the manifest's weight names in every event), then showered and
    hadronised with Pythia 8 (:func:`recastflow.generate.pythia.run_pythia`) into
    ``recastflow-events/1``. The weights come from the LHE file itself (full precision,
    absolute), matched to the showered events: Pythia skips an event it fails on and
    reads the next one, so when fewer events come out than went in, each output event is
    matched to its LHE event by the longitudinal momenta of the two incoming partons
    (identical in the LHE file and Pythia's hard record).
``hepmc3``
    HepMC3 ASCII events read with pyhepmc into ``recastflow-events/1``: status-1
    particles (charges from the ``particle`` package; ids it does not know count as
    neutral), and a truth record built as :mod:`recastflow.generate.pythia` builds it from
    Pythia: the hard process is the particles with status 21-23 (Pythia's convention;
    without any, an empty list and mode ``"unknown"``), weakly decaying b/c hadrons and
    visible hadronic taus from the decay history, PDF info from ``GenPdfInfo``. HepMC
    status codes other than 1 are stored negated (21 -> -21), as Pythia marks
    non-final particles.
``delphes``
    A Delphes ROOT file read with uproot, converted straight to ``recastflow-reco/1``
    (no emulation): ``btag`` is bit 0 of ``Jet.BTag``, ``flavour`` is ``|Jet.Flavor|``
    when 4, 5 or 15 and 0 otherwise; the truth record is empty (mode ``"unknown"``).

Cross-section checks (relative ``tolerance``, default 1%): with ``sum-is-xsec`` the weight
sum *is* the cross-section and must agree with the manifest (error); the LHE ``<init>``
cross-section, HepMC3 ``GenCrossSection`` and, for ``average``, the mean weight are only
compared, and a disagreement is recorded in ``header["handoff"]["warnings"]`` and printed,
since a file can legitimately be a subset of a larger sample.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import awkward as ak
import numpy as np

from recastflow.core.config import inside, load_validated
from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, RECO, write_events
from recastflow.core.io import sha256_file

#: Cross-section units the manifest accepts, in pb.
UNIT_TO_PB: dict[str, float] = {"pb": 1.0, "fb": 1e-3}

#: Relative spread of |weight| still called "unweighted" (generators print 7-10 digits).
UNWEIGHTED_RTOL = 1e-4

#: Incoming-parton momenta of an LHE event and of Pythia's hard record agree to this (GeV, relative).
ALIGN_ATOL, ALIGN_RTOL = 1e-3, 1e-6

#: Pythia settings a manifest may not set for LHE showering, and why (keys lower-cased).
SHOWER_FORBIDDEN: dict[str, str] = {
    "beams:frametype": "recastflow reads the LHE file itself (frameType 4)",
    "beams:lhef": "the LHE file is the manifest's 'file'",
    "beams:ecm": "the beams come from the LHE <init> block",
    "beams:ea": "the beams come from the LHE <init> block",
    "beams:eb": "the beams come from the LHE <init> block",
    "beams:ida": "the beams come from the LHE <init> block",
    "beams:idb": "the beams come from the LHE <init> block",
    "random:seed": "the seed comes from 'recastflow handoff --seed'",
    "random:setseed": "recastflow always seeds Pythia itself",
    "main:numberofevents": "every event of the file is showered",
    "slha:file": "an input outside the manifest would not be recorded; Pythia reads the SLHA block of the LHE header",
}

#: Delphes branches read, per collection.
DELPHES_BRANCHES: dict[str, tuple[str, ...]] = {
    "Jet": ("PT", "Eta", "Phi", "Mass", "BTag", "Flavor"),
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "Muon": ("PT", "Eta", "Phi", "Charge"),
    "Photon": ("PT", "Eta", "Phi"),
    "MissingET": ("MET", "Phi"),
    "Event": ("Weight",),
}

HEPMC3_START = "HepMC::Asciiv3-START_EVENT_LISTING"
HEPMC3_END = "HepMC::Asciiv3-END_EVENT_LISTING"


# ----------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Manifest:
    """A validated hand-off manifest.

    Attributes:
        path: the manifest file.
        format: ``lhe``, ``hepmc3`` or ``delphes``.
        file: the event file (manifest folder / ``file``).
        sha256: expected SHA-256 of the file, or None.
        point: point name from the manifest, or None.
        generator: {name, version}.
        xsec_pb: cross-section converted to pb.
        xsec_unit: the manifest's unit (for messages and ``sum-is-xsec``).
        xsec_source: the manifest's source text.
        xsec_uncertainty_pb: absolute uncertainty in pb, or None.
        n_events: expected number of events.
        weight_convention: ``unweighted``, ``average`` or ``sum-is-xsec``.
        negative_weights: negative nominal weights allowed.
        weights: expected weight names, nominal first (empty: not given).
        br_factor: forced-decay branching factor.
        tolerance: relative tolerance of the cross-section checks.
        pythia_settings: extra showering settings (LHE).
    """

    path: Path
    format: str
    file: Path
    sha256: str | None
    point: str | None
    generator: dict[str, str]
    xsec_pb: float
    xsec_unit: str
    xsec_source: str
    xsec_uncertainty_pb: float | None
    n_events: int
    weight_convention: str
    negative_weights: bool
    weights: tuple[str, ...]
    br_factor: float
    tolerance: float
    pythia_settings: tuple[str, ...]


def load_manifest(path: Path) -> Manifest:
    """Read and check a hand-off manifest (schema, paths, showering settings).

    Args:
        path: the manifest (YAML or JSON).

    Raises:
        RecastError: schema violations, a path outside the manifest's folder, a missing
            event file, showering settings recastflow sets itself, settings for a format
            that does not use them.
    """
    path = Path(path)
    doc = load_validated(path, "manifest")
    file = inside(path.parent, doc["file"], source=path, field="file")
    if not file.is_file():
        raise RecastError(
            f"event file {str(file)!r} not found; 'file' is relative to the manifest's folder",
            path=str(path),
            field="file",
        )
    if file.stat().st_size == 0:
        raise RecastError(
            "the event file is empty (0 bytes); an interrupted copy or download? Copy it again",
            path=str(file),
            field="file",
        )
    xsec = doc["cross_section"]
    unit = UNIT_TO_PB[xsec["unit"]]
    settings = tuple(s.strip() for s in doc["pythia_settings"])
    if settings and doc["format"] != "lhe":
        raise RecastError(
            f"only used for format 'lhe' (Pythia showering); remove it for format {doc['format']!r}",
            path=str(path),
            field="pythia_settings",
        )
    _check_shower_settings(settings, "br_factor" in doc, path)
    return Manifest(
        path=path,
        format=doc["format"],
        file=file,
        sha256=doc.get("sha256", "").lower() or None,
        point=doc.get("point"),
        generator=dict(doc["generator"]),
        xsec_pb=float(xsec["value"]) * unit,
        xsec_unit=xsec["unit"],
        xsec_source=xsec["source"],
        xsec_uncertainty_pb=float(xsec["uncertainty"]) * unit if "uncertainty" in xsec else None,
        n_events=int(doc["n_events"]),
        weight_convention=doc["weight_convention"],
        negative_weights=bool(doc["negative_weights"]),
        weights=tuple(doc.get("weights", ())),
        br_factor=float(doc.get("br_factor", 1.0)),
        tolerance=float(doc["tolerance"]),
        pythia_settings=settings,
    )


def _check_shower_settings(settings: tuple[str, ...], br_given: bool, path: Path) -> None:
    """Refuse showering settings recastflow controls; decay switches need an explicit br_factor."""
    from recastflow.generate.pythia import DECAY_SWITCH

    for i, setting in enumerate(settings):
        key = setting.split("=", 1)[0].strip().lower()
        if key in SHOWER_FORBIDDEN:
            raise RecastError(
                f"{setting!r} is set by recastflow: {SHOWER_FORBIDDEN[key]}; remove it",
                path=str(path),
                field=f"pythia_settings[{i}]",
            )
        # switching decay channels off changes the rate by a branching fraction only the user knows
        if DECAY_SWITCH.match(key) and not br_given:
            raise RecastError(
                f"{setting!r} changes decay channels; give 'br_factor' (the branching fraction "
                "of the kept channels) explicitly",
                path=str(path),
                field=f"pythia_settings[{i}]",
            )


# ----------------------------------------------------------------------------- entry point


@dataclass
class _Converted:
    """What a format reader hands back before the header is built.

    Attributes:
        events: the output columns.
        weight_names: names of the ``weights`` column (empty: no such column).
        xsec_pb: the header's cross-section (see :func:`check_weights`).
        xsec_file_pb: the file's own cross-section (LHE <init>, HepMC3 GenCrossSection), or None.
        seed: Pythia seed used (LHE), else None.
        generator: extra generator entries (showering).
        handoff: extra ``header["handoff"]`` entries.
        warnings: messages for the header and stderr.
    """

    events: ak.Array
    weight_names: list[str]
    xsec_pb: float
    xsec_file_pb: float | None = None
    seed: int | None = None
    generator: dict[str, Any] = field(default_factory=dict)
    handoff: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def handoff(
    manifest_path: Path, output: Path, *, point: str | None = None, seed: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Check a hand-off manifest and its event file, then write one recastflow event file.

    Nothing is written unless every check passes (and the write itself is atomic).

    Args:
        manifest_path: the manifest (YAML).
        output: Parquet file to write (``recastflow-events/1``; ``recastflow-reco/1`` for Delphes).
        point: point name for the header; default the manifest's ``point``, else its file stem.
        seed: base seed of the showering (LHE only), >= 0.
        progress: print progress lines on stderr.

    Returns:
        The header written.

    Raises:
        RecastError: any problem with the manifest or the file, naming both and the field.
    """
    manifest_path = Path(manifest_path)
    m = load_manifest(manifest_path)
    name = _point_name(point, m)
    if seed < 0:
        raise RecastError(f"the seed must be >= 0, got {seed}", field="seed")
    file_sha = _check_sha256(m)
    start = time.monotonic()
    readers: dict[str, Callable[[Manifest, int, bool], _Converted]] = {
        "lhe": _convert_lhe,
        "hepmc3": _convert_hepmc3,
        "delphes": _convert_delphes,
    }
    conv = readers[m.format](m, seed, progress)
    for note in conv.warnings:
        print(f"recastflow handoff: warning: {m.file}: {note}", file=sys.stderr, flush=True)
    header = _header(m, conv, name, file_sha)
    write_events(Path(output), conv.events, header)
    if progress:
        seconds = time.monotonic() - start
        print(
            f"recastflow handoff: {m.file}: {len(conv.events)} events written to {output} in {seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return header


def _point_name(point: str | None, m: Manifest) -> str:
    """The point name: the argument, else the manifest's, else the manifest's file stem."""
    import re

    name = point or m.point or m.path.stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise RecastError(
            f"point name {name!r} must be letters, digits, '_', '.', '-' (not first)",
            path=None if point else str(m.path),
            field="point",
        )
    return name


def _check_sha256(m: Manifest) -> str:
    """Hash the event file and compare with the manifest's sha256, if given."""
    actual = sha256_file(m.file)
    if m.sha256 is not None and actual != m.sha256:
        raise RecastError(
            f"the file {m.file} has sha256 {actual}, the manifest says {m.sha256}: the file changed "
            "or the manifest is stale; get the right file, or update 'sha256' if this file is right",
            path=str(m.path),
            field="sha256",
        )
    return actual


def _header(m: Manifest, conv: _Converted, point: str, file_sha: str) -> dict[str, Any]:
    """Build the output header (keys as documented in :mod:`recastflow.core.events`)."""
    reco = m.format == "delphes"
    generator = {"name": m.generator["name"], "version": m.generator["version"], "settings": [], **conv.generator}
    header: dict[str, Any] = {
        "format": RECO if reco else EVENTS,
        "point": point,
        "generator": generator,
        "n_events": len(conv.events),
        "sum_weights": float(np.sum(ak.to_numpy(conv.events["weight"]))),
        "xsec_pb": float(conv.xsec_pb),
        "xsec_source": f"manifest: {m.xsec_source}",
        "xsec_estimated": False,
        "br_factor": m.br_factor,
        "seed": conv.seed,
        "chunk": {"index": 0, "count": 1},
        "weight_names": conv.weight_names,
        "sources": [{"path": str(m.path), "sha256": sha256_file(m.path)}, {"path": str(m.file), "sha256": file_sha}],
        "handoff": {
            "format": m.format,
            "weight_convention": m.weight_convention,
            "negative_weights": m.negative_weights,
            "n_events_file": m.n_events,
            "xsec_manifest_pb": m.xsec_pb,
            "xsec_file_pb": conv.xsec_file_pb,
            **conv.handoff,
            "warnings": conv.warnings,
        },
    }
    if m.weight_convention == "sum-is-xsec":
        header["xsec_source"] += " (weight sum)"
    if m.xsec_uncertainty_pb is not None:
        header["xsec_uncertainty_pb"] = m.xsec_uncertainty_pb
    if reco:
        header["detector"] = {"card": None, "sha256": None, "name": "Delphes (hand-off)"}
    return header


# ----------------------------------------------------------------------------- weights and cross-sections


def check_weights(
    m: Manifest,
    nominal: np.ndarray,
    alternatives: np.ndarray | None,
    names: list[str],
    xsec_file_pb: float | None = None,
) -> tuple[float, list[str]]:
    """Check the weights of every event in the file, before anything slow is done.

    Refuses NaN/infinite weights, negative nominal weights unless allowed, and weights
    that contradict the manifest's convention; compares the cross-sections.

    Args:
        m: the manifest.
        nominal: nominal weight per event.
        alternatives: (events, names) matrix of all named weights, or None.
        names: column names of ``alternatives``.
        xsec_file_pb: the file's own cross-section, if it states one.

    Returns:
        The header's xsec_pb (the weight sum for ``sum-is-xsec``, else the manifest's) and
        warnings.
    """
    where = "event"
    bad = np.flatnonzero(~np.isfinite(nominal))
    if len(bad):
        raise RecastError(
            f"{where} {bad[0] + 1} has a nominal weight {nominal[bad[0]]} ({len(bad)} event(s) with "
            "NaN or infinite weights); regenerate or repair the file",
            path=str(m.file),
            field="weight",
        )
    if alternatives is not None and alternatives.size:
        rows, cols = np.nonzero(~np.isfinite(alternatives))
        if len(rows):
            value = alternatives[rows[0], cols[0]]
            raise RecastError(
                f"{where} {rows[0] + 1} has weight {names[cols[0]]!r} = {value}; "
                "drop that name from 'weights' in the manifest or repair the file",
                path=str(m.file),
                field="weights",
            )
    negative = np.flatnonzero(nominal < 0)
    if len(negative) and not m.negative_weights:
        raise RecastError(
            f"{len(negative)} event(s) have negative nominal weights (first: {where} {negative[0] + 1}, "
            f"{nominal[negative[0]]:.6g}); for NLO samples set 'negative_weights: true' in {m.path}",
            path=str(m.file),
            field="negative_weights",
        )
    if np.sum(nominal) <= 0:
        raise RecastError(
            "the nominal weights sum to zero or less; nothing can be normalised", path=str(m.file), field="weight"
        )
    return _convention(m, nominal, xsec_file_pb)


def _convention(m: Manifest, nominal: np.ndarray, xsec_file_pb: float | None) -> tuple[float, list[str]]:
    """Apply the weight convention and compare cross-sections (see :func:`check_weights`)."""
    tol, notes = m.tolerance, []
    xsec_pb = m.xsec_pb
    if m.weight_convention == "unweighted":
        size = np.abs(nominal)
        if size.max() - size.min() > UNWEIGHTED_RTOL * size.max():
            raise RecastError(
                f"weight_convention is 'unweighted' but |weight| ranges from {size.min():.6g} to "
                f"{size.max():.6g}; use 'average' or 'sum-is-xsec'",
                path=str(m.path),
                field="weight_convention",
            )
    elif m.weight_convention == "average":
        mean = float(np.mean(nominal))
        if abs(mean - 1) > tol:
            notes.append(f"weight_convention 'average' but the mean weight is {mean:.6g} (tolerance {tol:g})")
    else:
        total = float(np.sum(nominal))
        xsec_pb = total * UNIT_TO_PB[m.xsec_unit]
        if abs(xsec_pb / m.xsec_pb - 1) > tol:
            raise RecastError(
                f"the weights sum to {total:.6g} {m.xsec_unit} but cross_section.value is "
                f"{m.xsec_pb / UNIT_TO_PB[m.xsec_unit]:.6g} {m.xsec_unit} (tolerance {tol:g}); check "
                "the unit and the weight convention",
                path=str(m.path),
                field="cross_section.value",
            )
    if xsec_file_pb and abs(xsec_file_pb / m.xsec_pb - 1) > tol:
        notes.append(
            f"the file's own cross-section is {xsec_file_pb:.6g} pb, the manifest's "
            f"{m.xsec_pb:.6g} pb (the manifest's is used)"
        )
    return xsec_pb, notes


def _check_count(m: Manifest, n: int, what: str = "events") -> None:
    """The file must hold exactly the manifest's n_events."""
    if n == 0:  # the file is what is wrong, not the manifest
        raise RecastError(
            f"holds no {what} (the manifest says n_events: {m.n_events}); copy the file again",
            path=str(m.file),
            field="file",
        )
    if n != m.n_events:
        raise RecastError(
            f"the file holds {n} {what}, the manifest says n_events: {m.n_events}; a truncated copy? "
            "Copy the file again, or correct 'n_events'",
            path=str(m.path),
            field="n_events",
        )


def _select_weights(m: Manifest, names: list[str], where: str, available: str) -> list[int]:
    """Column indices of the manifest's weight names among a file's names."""
    missing = [n for n in m.weights if n not in names]
    if missing:
        raise RecastError(
            f"{where} lacks weight(s) {', '.join(map(repr, missing))}; the file has {available}; "
            f"fix 'weights' in {m.path}",
            path=str(m.file),
            field="weights",
        )
    return [names.index(n) for n in m.weights]


def _regular(matrix: np.ndarray) -> ak.Array:
    """A (events, k) matrix as var * float64 lists (the ``weights`` column type)."""
    return ak.from_regular(ak.from_numpy(np.ascontiguousarray(matrix, dtype=np.float64)), axis=1)


# ----------------------------------------------------------------------------- LHE


@dataclass
class _LHEContent:
    """What the LHE pass keeps: per-event weights and incoming-parton pz, init info."""

    nominal: np.ndarray
    weights: np.ndarray
    weight_names: list[str]
    incoming: np.ndarray
    init_xsec_pb: float | None
    sqrt_s_gev: float


def _convert_lhe(m: Manifest, seed: int, progress: bool) -> _Converted:
    """Validate an LHE file, shower it with Pythia and attach the LHE weights."""
    from recastflow.generate.pythia import pythia_seed, run_pythia

    if any(c.isspace() for c in str(m.file)):
        # Pythia reads a word setting only up to the first blank
        raise RecastError(
            "Pythia cannot read an LHE path containing blanks; rename the file or its folders",
            path=str(m.path),
            field="file",
        )
    _check_settings_with_pythia(m)
    content = read_lhe(m)
    xsec_pb, notes = check_weights(m, content.nominal, content.weights, content.weight_names, content.init_xsec_pb)
    rng_seed = pythia_seed(seed, 0)
    settings = ["Beams:frameType = 4", f"Beams:LHEF = {m.file}", *m.pythia_settings]
    try:
        shower, info = run_pythia(settings, m.n_events, rng_seed, label=str(m.file), progress=progress)
    except IndexError:
        # run_pythia has no events to concatenate when Pythia failed on every LHE event
        raise RecastError(
            f"Pythia showered none of the {m.n_events} events (see the 'PYTHIA Error' lines above)",
            path=str(m.file),
            field="file",
        ) from None
    index = align_showered(content.incoming, _hard_incoming(shower), content.weights, m)
    columns: dict[str, Any] = {"weight": content.nominal[index]}
    if content.weight_names:
        columns["weights"] = _regular(content.weights[index])
    columns["particles"] = shower["particles"]
    columns["truth"] = shower["truth"]
    dropped = m.n_events - len(index)
    conv = _Converted(
        events=ak.zip(columns, depth_limit=1),
        weight_names=content.weight_names,
        xsec_pb=xsec_pb,
        xsec_file_pb=content.init_xsec_pb,
        seed=rng_seed,
        warnings=notes,
        generator={
            "shower": {
                "name": "pythia8",
                "version": info["version"],
                "settings": info["settings"],
                "base_seed": seed,
                "n_tried": info["n_tried"],
            }
        },
        handoff={"sqrt_s_gev": content.sqrt_s_gev, "n_dropped": dropped},
    )
    if dropped:
        conv.warnings.append(
            f"Pythia failed on {dropped} of {m.n_events} LHE events; they are left out "
            "(sum_weights counts the showered events only)"
        )
    return conv


def _check_settings_with_pythia(m: Manifest) -> None:
    """Pass the manifest's showering settings to a fresh Pythia, so that typos name the manifest."""
    if not m.pythia_settings:
        return
    from recastflow.generate.pythia import new_pythia

    pythia = new_pythia()
    for i, setting in enumerate(m.pythia_settings):
        if not pythia.readString(setting):
            raise RecastError(
                f"Pythia does not accept {setting!r} (unknown key or invalid value; see the 'PYTHIA Error' line above)",
                path=str(m.path),
                field=f"pythia_settings[{i}]",
            )


def _lhe_reason(caught: Iterable[warnings.WarningMessage]) -> str:
    """The XML parse error pylhe turned into a warning, if any."""
    for w in caught:
        text = str(w.message)
        if "Parse Error" in text:
            return text.replace("Parse Error: ", "")
    return ""


def _open_lhe(m: Manifest) -> Any:
    """Count the events (a first, cheap XML pass) and open the file with pylhe.

    Raises:
        RecastError: not well-formed XML (truncated, not LHE), no <init> block.
    """
    import pylhe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            count = pylhe.LHEFile.count_events(m.file)
        except (OSError, EOFError, zlib.error) as exc:  # a truncated .gz ends in EOFError
            raise RecastError(
                f"cannot read the file ({exc}); is it truncated? Copy it again", path=str(m.file), field="file"
            ) from None
    if count < 0:
        reason = _lhe_reason(caught) or "no closing </LesHouchesEvents> tag"
        raise RecastError(
            f"not a well-formed LHE file: {reason}; a truncated copy or not an LHE file? "
            "Copy it again or check 'format' in the manifest",
            path=str(m.file),
            field="file",
        )
    try:
        lhef = pylhe.LHEFile.fromfile(m.file)
    except (ValueError, AttributeError, IndexError, KeyError) as exc:
        raise RecastError(
            f"bad <init> or <header> block ({exc}); an LHE file needs <init> after the optional "
            "<header>: regenerate the file or copy it again",
            path=str(m.file),
            field="<init>",
        ) from None
    _check_count(m, count)
    return lhef


def read_lhe(m: Manifest) -> _LHEContent:
    """Read and check every event of an LHE file (no showering).

    Args:
        m: the manifest (its ``file`` is an LHE file).

    Returns:
        Per-event nominal weights, the named weights and the incoming partons' pz.

    Raises:
        RecastError: malformed XML or init block, an event whose particle lines do not
            match its particle count, missing weight names, a count different from the
            manifest's.
    """
    lhef = _open_lhe(m)
    init = lhef.init
    sqrt_s = float(init.initInfo.energyA + init.initInfo.energyB)
    xsecs = [p.xSection for p in init.procInfo]
    init_xsec = float(sum(xsecs)) if xsecs and sum(xsecs) > 0 else None
    declared = lhef.header.initrwgt.list_weights_ids() if lhef.header is not None else []
    nominal: list[float] = []
    rows: list[list[float]] = []
    incoming: list[list[float]] = []
    names: list[str] | None = list(m.weights) or None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, event in _numbered(lhef.events, m):
            names = _lhe_event_checks(event, i, names, declared, m)
            nominal.append(float(event.weights[names[0]]) if m.weights else float(event.eventinfo.weight))
            rows.append([float(event.weights[n]) for n in names])
            pz = [p.pz for p in event.particles if p.status == -1][:2]
            incoming.append([*pz, np.nan, np.nan][:2])
    reason = _lhe_reason(caught)
    if reason:
        raise RecastError(
            f"XML error after event {len(nominal)}: {reason}; copy the file again",
            path=str(m.file),
            field=f"event {len(nominal) + 1}",
        )
    _check_count(m, len(nominal))
    names = names or []
    return _LHEContent(
        nominal=np.asarray(nominal, dtype=np.float64),
        weights=np.asarray(rows, dtype=np.float64).reshape(len(nominal), len(names)),
        weight_names=names,
        incoming=np.asarray(incoming, dtype=np.float64).reshape(-1, 2),
        init_xsec_pb=init_xsec,
        sqrt_s_gev=sqrt_s,
    )


def _numbered(events: Iterable[Any], m: Manifest) -> Iterator[tuple[int, Any]]:
    """Enumerate events from 1, turning pylhe's parse failures into errors naming the event."""
    it = iter(events)
    i = 0
    while True:
        i += 1
        try:
            event = next(it)
        except StopIteration:
            return
        except (ValueError, IndexError, KeyError, AttributeError) as exc:
            raise RecastError(
                f"cannot parse the event: {exc}; repair or regenerate the file", path=str(m.file), field=f"event {i}"
            ) from None
        yield i, event


def _lhe_event_checks(event: Any, i: int, names: list[str] | None, declared: list[str], m: Manifest) -> list[str]:
    """Particle count and weight names of one LHE event; returns the weight names in use."""
    if event.eventinfo.nparticles != len(event.particles):
        raise RecastError(
            f"the event declares {event.eventinfo.nparticles} particles but has "
            f"{len(event.particles)} particle lines; repair or regenerate the file",
            path=str(m.file),
            field=f"event {i}",
        )
    present = list(event.weights)
    if names is None:
        return present  # first event: its weight names become the ones every event must carry
    missing = [n for n in names if n not in event.weights]
    if missing:
        available = ", ".join(map(repr, present or declared)) or "no named weights"
        hint = f"fix 'weights' in {m.path}" if m.weights else "every event must carry the same weights"
        raise RecastError(
            f"the event lacks weight(s) {', '.join(map(repr, missing))} (it has {available}); {hint}",
            path=str(m.file),
            field=f"event {i}",
        )
    return names


def _hard_incoming(events: ak.Array) -> np.ndarray:
    """pz of the first two incoming partons (|status| 21) of each event's hard record, NaN if absent."""
    hard = events["truth", "hard"]
    incoming = hard[np.abs(hard.status) == 21].pz
    padded = ak.fill_none(ak.pad_none(incoming, 2, clip=True), np.nan)
    return ak.to_numpy(padded).astype(np.float64).reshape(-1, 2)


def align_showered(lhe: np.ndarray, showered: np.ndarray, weights: np.ndarray, m: Manifest) -> np.ndarray:
    """Index of the LHE event behind each showered event.

    Pythia reads LHE events in order and skips those it fails on, so the showered
    events are a subsequence of the LHE events; each is matched to the next LHE event
    with the same incoming-parton pz.

    Args:
        lhe: (n_lhe, 2) incoming pz of the LHE events.
        showered: (n_out, 2) incoming pz from the showered events' hard records.
        weights: (n_lhe, k) named weights, to tell whether a mismatch would matter.
        m: the manifest (for messages).

    Raises:
        RecastError: the showered events cannot be matched.
    """
    n_lhe, n_out = len(lhe), len(showered)
    if n_out == n_lhe:
        return np.arange(n_lhe)
    index = np.empty(n_out, dtype=np.int64)
    i = 0
    for j in range(n_out):
        while i < n_lhe and not np.all(np.isclose(lhe[i], showered[j], rtol=ALIGN_RTOL, atol=ALIGN_ATOL)):
            i += 1
        if i == n_lhe:
            return _unmatched(weights, n_out, m)
        index[j] = i
        i += 1
    return index


def _unmatched(weights: np.ndarray, n_out: int, m: Manifest) -> np.ndarray:
    """Fallback when events cannot be matched: fine only if every event has the same weights."""
    if len(weights) == 0 or weights.shape[1] == 0 or np.all(weights == weights[:1]):
        return np.arange(n_out)
    raise RecastError(
        f"Pythia showered {n_out} of {len(weights)} events and the showered events cannot be "
        "matched to their LHE weights (no incoming partons in the hard record); see the PYTHIA "
        "errors above",
        path=str(m.file),
        field="weights",
    )


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
    flat = _hepmc_flat(raw)
    columns: dict[str, Any] = {"weight": nominal}
    if names:
        columns["weights"] = _regular(matrix)
    columns["particles"] = _final_particles(flat)
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
    from recastflow.generate.pythia import Flat

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


def _final_particles(flat: Any) -> ak.Array:
    """Status-1 particles as var * {pid, charge, px, py, pz, e}."""
    from recastflow.generate.pythia import jagged

    final = flat.status > 0
    pid = flat.pid[final]
    return jagged(
        flat,
        final,
        {
            "pid": pid,
            "charge": particle_charges(pid),
            "px": flat.px[final],
            "py": flat.py[final],
            "pz": flat.pz[final],
            "e": flat.e[final],
        },
    )


def _hepmc_truth(flat: Any, raw: _HepMCRaw) -> ak.Array:
    """The truth record, built by the generator's own function so both paths agree."""
    from recastflow.generate.pythia import truth_record

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
    """Jets: b-tag from bit 0 of Jet.BTag, flavour 5/4/15 from |Jet.Flavor| (else 0)."""
    flavor = abs(ak.values_astype(arrays["Jet.Flavor"], np.int64))
    flavour = ak.where((flavor == 5) | (flavor == 4) | (flavor == 15), flavor, 0)
    btag = (ak.values_astype(arrays["Jet.BTag"], np.int64) & 1) != 0
    return _pt_sorted(
        {
            "pt": arrays["Jet.PT"],
            "eta": arrays["Jet.Eta"],
            "phi": arrays["Jet.Phi"],
            "m": arrays["Jet.Mass"],
            "btag": btag,
            "flavour": flavour,
        },
        {"btag": np.bool_, "flavour": np.int8},
    )


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
