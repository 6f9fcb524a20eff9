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

import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from recastflow.core.config import inside, load_validated
from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, RECO, write_events
from recastflow.core.io import sha256_file

if TYPE_CHECKING:
    from recastflow.analyses.bundle import Grid

#: Cross-section units the manifest accepts, in pb.
UNIT_TO_PB: dict[str, float] = {"pb": 1.0, "fb": 1e-3}

#: Relative spread of |weight| still called "unweighted" (generators print 7-10 digits).
UNWEIGHTED_RTOL = 1e-4

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
#: Showering settings of schemes recastflow's LHE shower does not carry out (see ``_check_shower_settings``).
UNSUPPORTED_SHOWER_PREFIXES = ("jetmatching:", "merging:")


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
        # Pythia's MLM matching (JetMatching:*) acts only through its plugin hook, which recastflow does not set,
        # so the settings would be ignored without a word; CKKW-L merging (Merging:*) gives each event a weight
        # recastflow does not read, and its vetoes would be renormalised away. Either way the jet multiplicities
        # would be double counted or the cross-section wrong.
        if key.startswith(UNSUPPORTED_SHOWER_PREFIXES):
            raise RecastError(
                f"{setting!r}: jet matching and merging are not applied to hand-off LHE files (matching needs "
                "Pythia's plugin hook, merging weights are not read); shower and match the sample yourself and "
                "hand off its HepMC3 file with the merged cross-section",
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
    # each format's reader is a module of its own, imported when its format is handed off (pylhe, pyhepmc and
    # uproot are slow to import and each run needs one of them)
    readers: dict[str, tuple[str, str]] = {
        "lhe": ("recastflow.generate.lhe", "_convert_lhe"),
        "hepmc3": ("recastflow.generate.hepmc", "_convert_hepmc3"),
        "delphes": ("recastflow.generate.delphes", "_convert_delphes"),
    }
    module, reader = readers[m.format]
    convert: Callable[[Manifest, int, bool], _Converted] = getattr(importlib.import_module(module), reader)
    conv = convert(m, seed, progress)
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


def handoff_point(grid: Grid, point_name: str, output: Path | str, *, log: Callable[[str], None]) -> dict[str, Any]:
    """Check and convert the events of a grid point with a hand-off manifest (``recastflow handoff``).

    LHE files are showered with a seed derived from the grid's ``events.seed`` and the point's name.

    Args:
        grid: the point's grid (with an ``events`` section).
        point_name: the point, with a ``manifest``.
        output: Parquet file to write (named as given in the log).
        log: gets one line on the events converted.

    Returns:
        The header written.

    Raises:
        RecastError: the point has no manifest, or any problem of the manifest or its file.
    """
    from recastflow.core.seeds import derive_seed

    point, spec = grid.events_point(point_name)
    if point.manifest is None:
        raise RecastError(
            f"point {point.name} has no 'manifest'; its events are generated ('recastflow generate')",
            path=str(grid.path),
        )
    header = handoff(
        point.manifest,
        Path(output),
        point=point.name,
        seed=derive_seed(spec.seed, point.name, "shower"),
        progress=True,
    )
    log(f"{grid.name}/{point.name}: {header['n_events']} {header['format']} events from {point.manifest} -> {output}")
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


# ----------------------------------------------------------------------------- the format readers' public names

#: Names that lived in this module before the format readers became modules of their own
#: (:mod:`recastflow.generate.lhe`, :mod:`recastflow.generate.hepmc`, :mod:`recastflow.generate.delphes`);
#: still importable from here, loaded when first asked for.
MOVED: dict[str, str] = {
    **dict.fromkeys(("ALIGN_ATOL", "ALIGN_RTOL", "read_lhe", "align_showered"), "recastflow.generate.lhe"),
    **dict.fromkeys(("HEPMC3_START", "HEPMC3_END", "scan_hepmc3", "particle_charges"), "recastflow.generate.hepmc"),
    **dict.fromkeys(("DELPHES_BRANCHES", "read_delphes", "empty_truth"), "recastflow.generate.delphes"),
}


def __getattr__(name: str) -> Any:
    """``from recastflow.generate.handoff import read_lhe`` and the like, from the readers' modules."""
    if name in MOVED:
        return getattr(importlib.import_module(MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
