"""The built-in generator: Pythia 8 events of one signal point in ``recastflow-events/1``.

A process card (``config/processes/<name>.yaml``, schema ``process.schema.json``) says what
to generate; the point's SLHA file fixes the spectrum and, usually, the cross-section.
:func:`generate_chunk` writes one chunk of events; :func:`run_pythia` is the event loop,
also used to shower LHE files.

Normalisation. Downstream, the expected yield of a selection is
``lumi * xsec_pb * br_factor * sum(selected weights) / sum_weights``, so ``xsec_pb`` must be
the production cross-section *without* the branching fractions of forced decays and
``br_factor`` the product of those fractions. Pythia's own ``sigmaGen`` is not consistently
either: it includes the open-width fraction of resonances that its ``ResonanceWidths``
classes decay in the hard process (e.g. ``ffbar2W`` with W -> e nu forced gives 0.108 x the
unforced sigmaGen; ``gg2ttbar`` with W -> l nu forced gives 0.2162^2), but not for SUSY pair
production with SLHA decay tables (TChiWH with W -> l nu and h -> bb forced: sigmaGen
0.00646 +- 0.00013 pb forced vs 0.00628 +- 0.00013 pb unforced, 400 events each; exactly
equal at process level with the same seed). :func:`open_width_factor` therefore measures the
factor Pythia applied, from two short process-level runs with the same seed (identical
phase-space sampling, so the ratio is exact when all subprocesses share one open fraction),
and the generator cross-section is ``sigmaGen / factor``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from recastflow.core.config import load_validated
from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, write_events
from recastflow.core.io import sha256_file
from recastflow.generate.slha import SLHAInfo, read_slha, slha_xsec_pb
from recastflow.generate.truth import Flat, final_particles, truth_record
from recastflow.generate.xsec_check import check_slha_xsections

if TYPE_CHECKING:
    from recastflow.analyses.bundle import Grid

#: Pythia's allowed range for Random:seed (0 would mean "seed from the clock").
SEED_MIN, SEED_MAX = 1, 900_000_000

#: Keep Pythia's log readable: no per-event listings, no dump of the hundreds of couplings the
#: SLHA interface changes. "Print:quiet = on" is not used: it also hides the reason when
#: init() fails. Errors, warnings and the process table still print.
LOG_SETTINGS: tuple[str, ...] = (
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showMultipartonInteractions = off",
    "SLHA:verbose = 0",
    "Next:numberCount = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowLHA = 0",
)

#: Settings recastflow controls itself, and what to use instead (keys lower-cased, as Pythia ignores case).
FORBIDDEN: dict[str, str] = {
    "random:seed": "the seed comes from 'recastflow generate --seed' and the chunk index",
    "random:setseed": "recastflow always seeds Pythia itself",
    "main:numberofevents": "the number of events comes from 'recastflow generate --events'",
    "slha:file": "the SLHA file is the point's spectrum, given to 'recastflow generate'",
    "beams:ecm": "set the card's 'sqrt_s_gev' instead",
    "beams:ea": "beams are symmetric proton beams at 'sqrt_s_gev'",
    "beams:eb": "beams are symmetric proton beams at 'sqrt_s_gev'",
    "beams:frametype": "process cards generate pp collisions; LHE files go through the LHE hand-off",
    "beams:lhef": "process cards generate pp collisions; LHE files go through the LHE hand-off",
}

#: Particle-data keys that switch decay channels ("24:onMode", "25:onIfMatch", "15:2:bRatio", ...):
#: done behind recastflow's back, their branching fraction would be missing from br_factor.
DECAY_SWITCH = re.compile(r"^-?\d+:(\d+:\w+|on\w*|off\w*|onechannel|addchannel|rescalebr)$")

#: Most events per nextBatch call: small enough for regular progress lines, large enough that
#: the columnar conversion (about 1 ms/event) costs little next to the generation (10-30 ms/event).
BATCH_SIZE = 500

#: Consecutive batches without a single successful event before giving up.
MAX_EMPTY_BATCHES = 10

#: Progress lines at least every this many seconds (and at every 10%).
PROGRESS_SECONDS = 30.0

#: Process-level events used to measure Pythia's open-width factor.
PROBE_EVENTS = 1000

# ----------------------------------------------------------------------------- process cards


@dataclass(frozen=True)
class ForcedDecay:
    """Channels a particle is restricted to.

    Attributes:
        particle: PDG id of the decaying particle (its antiparticle follows).
        products: the kept channels, each a tuple of product PDG ids.
    """

    particle: int
    products: tuple[tuple[int, ...], ...]

    def settings(self) -> list[str]:
        """Return the Pythia settings that restrict the decay (matching ignores signs)."""
        return [f"{self.particle}:onMode = off"] + [
            f"{self.particle}:onIfMatch = {' '.join(str(p) for p in prods)}" for prods in self.products
        ]


@dataclass(frozen=True)
class ProcessCard:
    """A validated process card.

    Attributes:
        path: the card file.
        name: process name.
        description: free text.
        sqrt_s_gev: pp collision energy.
        settings: the card's Pythia settings.
        forced_decays: restricted decays.
        xsec_source: ``"slha"`` or ``"generator"``.
        final_states: produced pairs whose SLHA cross-sections are added (None: all).
        xsec_order: SLHA QCD-order code to use (None: highest).
    """

    path: Path
    name: str
    description: str
    sqrt_s_gev: float
    settings: tuple[str, ...]
    forced_decays: tuple[ForcedDecay, ...]
    xsec_source: str
    final_states: tuple[tuple[int, int], ...] | None
    xsec_order: int | None

    def forced_settings(self) -> list[str]:
        """Return the Pythia settings of all forced decays, in card order."""
        return [s for fd in self.forced_decays for s in fd.settings()]


def load_card(path: Path, *, with_pythia: bool = True) -> ProcessCard:
    """Read and check a process card, including that Pythia accepts every setting.

    Args:
        path: the card (YAML).
        with_pythia: also start a Pythia instance to check every setting (about a second).

    Raises:
        RecastError: schema violations, settings recastflow controls itself, decay switches
            outside ``forced_decays``, and settings Pythia rejects, each naming the field.
    """
    path = Path(path)
    doc = load_validated(path, "process")
    for i, setting in enumerate(doc["settings"]):
        _check_allowed(setting, path, f"settings[{i}]")
    particles = [fd["particle"] for fd in doc["forced_decays"]]
    for i, pid in enumerate(particles):
        if pid in particles[:i]:
            # a second "<id>:onMode = off" would silently undo the first entry's channels
            raise RecastError(
                f"particle {pid} is listed twice; put all its channels in one 'products' list",
                path=str(path),
                field=f"forced_decays[{i}]",
            )
    xsec = doc["xsec"]
    if xsec["source"] != "slha":
        for key in ("final_states", "order"):
            if key in xsec:
                raise RecastError(
                    "only used with source 'slha'; remove it or set xsec.source: slha",
                    path=str(path),
                    field=f"xsec.{key}",
                )
    card = ProcessCard(
        path=path,
        name=doc["name"],
        description=doc.get("description", ""),
        sqrt_s_gev=float(doc["sqrt_s_gev"]),
        settings=tuple(s.strip() for s in doc["settings"]),
        forced_decays=tuple(
            ForcedDecay(fd["particle"], tuple(tuple(p) for p in fd["products"])) for fd in doc["forced_decays"]
        ),
        xsec_source=xsec["source"],
        final_states=tuple(tuple(fs) for fs in xsec["final_states"]) if "final_states" in xsec else None,
        xsec_order=xsec.get("order"),
    )
    if with_pythia:
        _check_with_pythia(card)
    return card


def _setting_key(setting: str) -> str:
    """Return the lower-cased key of a 'Key = value' setting."""
    return setting.split("=", 1)[0].strip().lower()


def _check_allowed(setting: str, path: Path, field: str) -> None:
    """Refuse settings recastflow sets itself and decay switches outside forced_decays."""
    key = _setting_key(setting)
    if key in FORBIDDEN:
        raise RecastError(
            f"{setting.strip()!r} is set by recastflow: {FORBIDDEN[key]}; remove it", path=str(path), field=field
        )
    if DECAY_SWITCH.match(key):
        raise RecastError(
            f"{setting.strip()!r} changes decay channels; list the decay under 'forced_decays' "
            "instead so that its branching fraction enters br_factor",
            path=str(path),
            field=field,
        )


def _check_with_pythia(card: ProcessCard) -> None:
    """Pass every card setting to a fresh Pythia, so that typos fail now and not in a batch job."""
    pythia = new_pythia()
    for i, setting in enumerate(card.settings):
        if not pythia.readString(setting):
            raise RecastError(
                f"Pythia does not accept {setting!r} (unknown key or invalid value; see the 'PYTHIA Error' line above)",
                path=str(card.path),
                field=f"settings[{i}]",
            )
    for i, fd in enumerate(card.forced_decays):
        for setting in fd.settings():
            if not pythia.readString(setting):
                raise RecastError(
                    f"Pythia does not accept {setting!r}: is {fd.particle} a particle Pythia knows?",
                    path=str(card.path),
                    field=f"forced_decays[{i}]",
                )


# ----------------------------------------------------------------------------- Pythia driver


def new_pythia() -> Any:
    """Create a Pythia instance from the bundled XML data, without the banner."""
    import pythia8mc

    return pythia8mc.Pythia("", False)


def pythia_version() -> str:
    """Return the Pythia version, e.g. ``"8.317.2"`` (the pythia8mc package version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pythia8mc")
    except PackageNotFoundError:  # a Pythia build outside pip: fall back on Pythia's own number
        return f"{new_pythia().settings.parm('Pythia:versionNumber'):.3f}"


def pythia_seed(seed: int, chunk: int) -> int:
    """Derive the Pythia seed of one chunk, reproducibly and within Pythia's range.

    A hash rather than ``seed + chunk`` so that runs with neighbouring base seeds share no
    chunk seeds.

    Args:
        seed: the run's base seed (>= 0).
        chunk: chunk index.
    """
    digest = hashlib.sha256(f"recastflow-pythia:{seed}:{chunk}".encode()).digest()
    return SEED_MIN + int.from_bytes(digest[:8], "big") % (SEED_MAX - SEED_MIN + 1)


def _fflush() -> None:
    """Flush C stdio buffers, where Pythia's std::cout output waits."""
    with suppress(OSError, AttributeError):  # no C library handle (non-POSIX): nothing to flush
        ctypes.CDLL(None).fflush(None)


@contextmanager
def _stdout_copy() -> Iterator[list[str]]:
    """Capture what C++ code prints to stdout in the block, then still print it.

    Yields a list that holds the captured text after the block, so that error lines can be
    quoted in a one-line error message while the full log stays intact.
    """
    out: list[str] = []
    sys.stdout.flush()
    _fflush()
    saved = os.dup(1)
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - open across the yield, read back and closed in the finally
    try:
        os.dup2(tmp.fileno(), 1)
        yield out
    finally:
        _fflush()
        os.dup2(saved, 1)
        os.close(saved)
        tmp.seek(0)
        data = tmp.read()
        tmp.close()
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]
        out.append(data.decode("utf-8", errors="replace"))


def _init(pythia: Any, settings: Sequence[str], label: str) -> None:
    """Initialise Pythia, turning a failure into a RecastError that says why."""
    with _stdout_copy() as log:
        ok = pythia.init()
    if ok:
        return
    reasons = [" ".join(line.split()) for line in log[0].splitlines() if re.search(r"PYTHIA (Error|Abort)", line)]
    hint = ""
    if any(_setting_key(s).startswith("susy:") for s in settings) and not any(
        _setting_key(s) == "slha:file" for s in settings
    ):
        hint = "; SUSY processes need the point's SLHA file"
    raise RecastError(
        f"Pythia failed to initialise: {' | '.join(reasons) or 'no reason printed'}{hint}", path=label or None
    )


def _configure(settings: Sequence[str], seed: int, label: str) -> tuple[Any, list[str]]:
    """Create Pythia and pass it the log settings, the caller's settings and the seed.

    Returns:
        The Pythia instance and the full list of settings passed, in order.
    """
    if not SEED_MIN <= seed <= SEED_MAX:
        raise RecastError(f"Pythia seed {seed} is outside {SEED_MIN}..{SEED_MAX}", path=label or None, field="seed")
    full = [*LOG_SETTINGS, *settings, "Random:setSeed = on", f"Random:seed = {seed}"]
    pythia = new_pythia()
    for setting in full:
        if not pythia.readString(setting):
            raise RecastError(
                f"Pythia does not accept the setting {setting!r} (see the 'PYTHIA Error' line above)",
                path=label or None,
                field="settings",
            )
    return pythia, full


class _Progress:
    """Progress lines on stderr: at every 10% and at least every PROGRESS_SECONDS."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.start = self.last = time.monotonic()
        self.next_fraction = 0.1

    def update(self, done: int) -> None:
        """Report ``done`` events if a 10% step or the time interval has passed."""
        now = time.monotonic()
        fraction = done / max(self.total, 1)
        if not self.enabled or (fraction < self.next_fraction and now - self.last < PROGRESS_SECONDS):
            return
        while self.next_fraction <= fraction:
            self.next_fraction += 0.1
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        prefix = f"[{self.label}] " if self.label else ""
        print(
            f"{prefix}{done}/{self.total} events ({100 * fraction:.0f}%), {rate:.1f} events/s, ETA {_duration(eta)}",
            file=sys.stderr,
            flush=True,
        )


def _duration(seconds: float) -> str:
    """Format a duration as e.g. ``1h02m``, ``3m05s`` or ``12s``."""
    if not np.isfinite(seconds):
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def run_pythia(
    settings: list[str],
    n_events: int,
    seed: int,
    *,
    label: str = "",
    progress: bool = True,
    count_decays: Sequence[int] = (),
    on_init: Callable[[Any], None] | None = None,
) -> tuple[ak.Array, dict[str, Any]]:
    """Generate (or, with ``Beams:frameType = 4``, shower LHE) events and convert them.

    Events come from ``nextBatch`` in batches and are converted column-wise into the
    ``recastflow-events/1`` columns (see :mod:`recastflow.core.events`). With an LHE input the
    loop stops at the end of the file, possibly before ``n_events``.

    Args:
        settings: Pythia settings ('Key = value'), applied after recastflow's log settings.
        n_events: events to generate (at most, for LHE input).
        seed: Pythia seed, 1..900000000.
        label: name for progress lines and error messages (e.g. the card or LHE file).
        progress: print progress lines on stderr.
        count_decays: PDG ids whose decays are counted per event (forced decays).
        on_init: called with the initialised Pythia before any event, e.g. to read decay
            tables (and to fail before a long generation).

    Returns:
        The events and an info dict: ``sigma_gen_pb``, ``sigma_err_pb`` (Pythia's estimate,
        converted from mb), ``n_tried``, ``n_accepted``, ``version``, ``settings`` (all
        settings passed), ``weight_names`` (names of the ``weights`` column), ``lhe_end``
        (the LHE file ended), ``decay_counts`` {pid: per-event counts}, ``seconds`` and
        ``events_per_second``.
    """
    if n_events < 1:
        raise RecastError(f"number of events must be at least 1, got {n_events}", path=label or None)
    pythia, full = _configure(settings, seed, label)
    _init(pythia, full, label)
    if on_init is not None:
        on_init(pythia)
    charges = _ChargeTable(pythia)
    parts: list[ak.Array] = []
    counts: dict[int, list[np.ndarray]] = {pid: [] for pid in count_decays}
    weight_names: list[str] | None = None
    done, empty, lhe_end, start = 0, 0, False, time.monotonic()
    report = _Progress(n_events, label, progress)
    size = max(1, min(BATCH_SIZE, -(-n_events // 10)))  # at least ten batches, for the 10% progress lines
    while done < n_events:
        batch = pythia.nextBatch(min(size, n_events - done))
        info = pythia.infoPython()  # a copy: fetch it again after every batch
        if len(batch) == 0:
            lhe_end = bool(info.atEndOfFile())
            if lhe_end:
                break
            # failed events are skipped by nextBatch; a whole empty batch now and then is bad luck,
            # many in a row mean the setup is broken
            empty += 1
            if empty >= MAX_EMPTY_BATCHES:
                raise RecastError(
                    f"Pythia failed on every event of {empty} batches in a row (see the 'PYTHIA Error' lines above)",
                    path=label or None,
                )
            continue
        empty = 0
        names = [str(n) for n in info.weightNameVector()]
        weight_names = names[1:] if weight_names is None else weight_names
        flat = _flatten(batch)
        parts.append(_convert(batch, flat, charges, len(weight_names)))
        for pid in count_decays:
            counts[pid].append(_decay_counts(flat, pid))
        done += len(batch)
        report.update(done)
    info = pythia.infoPython()
    seconds = time.monotonic() - start
    events = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    return events, {
        "sigma_gen_pb": float(info.sigmaGen()) * 1e9,
        "sigma_err_pb": float(info.sigmaErr()) * 1e9,
        "n_tried": int(info.nTried()),
        "n_accepted": int(info.nAccepted()),
        "version": pythia_version(),
        "settings": full,
        "weight_names": weight_names or [],
        "lhe_end": lhe_end or bool(info.atEndOfFile()),
        "decay_counts": {pid: np.concatenate(c) for pid, c in counts.items()},
        "seconds": seconds,
        "events_per_second": done / max(seconds, 1e-9),
    }


# ----------------------------------------------------------------------------- columnar conversion


def _flatten(batch: ak.Array) -> Flat:
    """Flatten the event records of a batch, with mother indices made global."""
    prt = batch.prt
    counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    event = np.repeat(np.arange(len(counts)), counts)

    def col(x: ak.Array, dtype: type) -> np.ndarray:
        return ak.to_numpy(ak.flatten(x)).astype(dtype, copy=False)

    mother_local = col(prt.mother1, np.int64)
    # entry 0 of every event record is the system line: mother 0 means "none"
    mother1 = np.where(mother_local > 0, offsets[event] + mother_local, -1)
    return Flat(
        counts,
        offsets,
        event,
        col(prt.id, np.int32),
        col(prt.status, np.int32),
        mother1,
        col(prt.p.px, np.float64),
        col(prt.p.py, np.float64),
        col(prt.p.pz, np.float64),
        col(prt.p.e, np.float64),
        col(prt.m, np.float64),
    )


class _ChargeTable:
    """Electric charges from Pythia's particle data, looked up once per PDG id."""

    def __init__(self, pythia: Any) -> None:
        self.pdata = pythia.particleData
        self.known: dict[int, float] = {}

    def __call__(self, pid: np.ndarray) -> np.ndarray:
        """Return the charges of ``pid`` as float32."""
        unique, inverse = np.unique(pid, return_inverse=True)
        for p in unique.tolist():
            if p not in self.known:
                self.known[p] = float(self.pdata.charge(p))
        table = np.array([self.known[p] for p in unique.tolist()], dtype=np.float32)
        return table[inverse.reshape(-1)]


def _convert(batch: ak.Array, flat: Flat, charges: _ChargeTable, n_alt_weights: int) -> ak.Array:
    """Convert one nextBatch result into recastflow-events/1 records."""
    weights = batch.info.weights
    columns: dict[str, Any] = {
        # nominal weight first; Pythia's own processes carry exactly one weight, 1
        "weight": ak.to_numpy(ak.fill_none(ak.firsts(weights), 1.0)).astype(np.float64),
    }
    if n_alt_weights:
        columns["weights"] = ak.values_astype(weights[:, 1:], np.float64)
    columns["particles"] = final_particles(flat, charges)
    columns["truth"] = _truth(batch, flat)
    return ak.zip(columns, depth_limit=1)


def _truth(batch: ak.Array, flat: Flat) -> ak.Array:
    """The truth record of a Pythia batch (its PDF information from Pythia's event info)."""
    info = batch.info
    pdf = {
        "id1": ak.to_numpy(info.id1).astype(np.int32),
        "id2": ak.to_numpy(info.id2).astype(np.int32),
        "x1": ak.to_numpy(info.x1).astype(np.float64),
        "x2": ak.to_numpy(info.x2).astype(np.float64),
        "q2": ak.to_numpy(info.Q2Fac).astype(np.float64),
    }
    return truth_record(flat, pdf)


def _decay_counts(flat: Flat, pid: int) -> np.ndarray:
    """Per event, how many particles with |id| = pid decayed (last copies with daughters)."""
    n = len(flat.pid)
    apid = np.abs(flat.pid)
    child = flat.mother1 >= 0
    parent = flat.mother1[child]
    has_child = np.bincount(parent, minlength=n) > 0
    has_copy = np.bincount(parent[apid[child] == pid], minlength=n) > 0
    decayed = (apid == pid) & (flat.status < 0) & has_child & ~has_copy
    return np.bincount(flat.event[decayed], minlength=len(flat.counts)).astype(np.int64)


# ----------------------------------------------------------------------------- normalisation


def _decay_table(pythia: Any, pid: int) -> list[tuple[tuple[int, ...], float, int]]:
    """Return (products, branching ratio, onMode) of every channel of a particle."""
    entry = pythia.particleData.particleDataEntryPtr(pid)
    table = []
    for k in range(entry.sizeChannels()):
        channel = entry.channel(k)
        products = tuple(int(channel.product(j)) for j in range(channel.multiplicity()))
        table.append((products, float(channel.bRatio()), int(channel.onMode())))
    return table


def forced_branching_fractions(pythia: Any, card: ProcessCard) -> list[float]:
    """Branching fraction of the kept channels of each forced decay, before forcing.

    Pythia leaves the channels' branching ratios untouched when it switches channels off
    (for resonances they are the widths it computed at init), so the fraction is read from
    an initialised instance with the forced decays applied.

    Args:
        pythia: an initialised Pythia configured with the card.
        card: the process card.
    """
    fractions = []
    for i, fd in enumerate(card.forced_decays):
        table = _decay_table(pythia, fd.particle)
        total = sum(br for _, br, _ in table)
        kept = sum(br for _, br, on in table if on in (1, 2))
        if total <= 0 or kept <= 0:
            listed = ", ".join(f"{list(p)} ({br:.3g})" for p, br, _ in table if br > 0) or "none"
            raise RecastError(
                f"no decay channel of {fd.particle} matches {[list(p) for p in fd.products]}; "
                f"Pythia's channels (branching ratio): {listed}",
                path=str(card.path),
                field=f"forced_decays[{i}]",
            )
        fractions.append(kept / total)
    return fractions


def _process_level_sigma(settings: Sequence[str], seed: int, label: str, n_events: int) -> float:
    """Pythia's sigmaGen (pb) from a process-level-only run: no showers, no resonance decays."""
    fast = [*settings, "PartonLevel:all = off", "HadronLevel:all = off", "ProcessLevel:resonanceDecays = off"]
    pythia, full = _configure(fast, seed, label)
    _init(pythia, full, label)
    pythia.nextBatch(n_events)
    return float(pythia.infoPython().sigmaGen()) * 1e9


def open_width_factor(base: Sequence[str], forced: Sequence[str], seed: int, label: str = "") -> float:
    """Measure the factor by which forcing decays changes Pythia's sigmaGen.

    Two process-level runs with the same seed, with and without the forced decays: the
    phase-space sampling is the same, so the ratio is Pythia's open-width factor exactly
    when all subprocesses share one factor, and a precise estimate otherwise.

    Args:
        base: settings without the forced decays.
        forced: the forced-decay settings.
        seed: Pythia seed.
        label: for messages.
    """
    if not forced:
        return 1.0
    unforced = _process_level_sigma(base, seed, label, PROBE_EVENTS)
    with_forced = _process_level_sigma([*base, *forced], seed, label, PROBE_EVENTS)
    if unforced <= 0:
        raise RecastError("Pythia's cross-section estimate is zero; check the process settings", path=label or None)
    return with_forced / unforced


def br_factor(card: ProcessCard, fractions: list[float], counts: dict[int, np.ndarray]) -> tuple[float, list[dict]]:
    """Product over the forced decays of each event of their branching fractions.

    Args:
        card: the process card.
        fractions: kept branching fraction of each forced decay (card order).
        counts: per-event number of decays of each forced particle.

    Returns:
        The factor and, per forced decay, {particle, products, branching_fraction, per_event}.

    Raises:
        RecastError: a forced particle decays a different number of times in different
            events, so one factor cannot describe the sample.
    """
    factor, detail = 1.0, []
    for i, (fd, br) in enumerate(zip(card.forced_decays, fractions)):
        seen = np.unique(counts[fd.particle])
        if len(seen) > 1:
            raise RecastError(
                f"particle {fd.particle} decays {' or '.join(map(str, seen.tolist()))} times "
                "depending on the event, so one br_factor cannot describe the sample; restrict the "
                "process (e.g. SUSY:idA/idB) or drop this forced decay",
                path=str(card.path),
                field=f"forced_decays[{i}]",
            )
        per_event = int(seen[0]) if len(seen) else 0
        factor *= br**per_event
        detail.append(
            {
                "particle": fd.particle,
                "products": [list(p) for p in fd.products],
                "branching_fraction": br,
                "per_event": per_event,
            }
        )
    return factor, detail


# ----------------------------------------------------------------------------- one chunk


def _check_chunk_args(n_events: int, seed: int, chunk: int, chunks: int) -> None:
    """Refuse impossible chunk arguments with a message naming the option."""
    if n_events < 1:
        raise RecastError(f"events per chunk must be at least 1, got {n_events}", field="events")
    if seed < 0:
        raise RecastError(f"the seed must be >= 0, got {seed}", field="seed")
    if chunks < 1 or not 0 <= chunk < chunks:
        raise RecastError(f"chunk index {chunk} is not within 0..{chunks - 1}", field="chunk")


def _base_settings(card: ProcessCard, slha_path: Path | None) -> list[str]:
    """Beam energy, spectrum and the card's settings, before forced decays and seed."""
    spectrum = [f"SLHA:file = {slha_path}"] if slha_path is not None else []
    return [f"Beams:eCM = {card.sqrt_s_gev:g}", *spectrum, *card.settings]


def generate_chunk(
    card_path: Path,
    slha_path: Path | None,
    *,
    point: str,
    n_events: int,
    seed: int,
    chunk: int,
    chunks: int,
    output: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate one chunk of events of a signal point and write it as recastflow-events/1.

    The same arguments give a byte-identical file: the Pythia seed is derived from
    (seed, chunk) and the header holds nothing time-dependent.

    Args:
        card_path: process card.
        slha_path: the point's SLHA file (needed for SUSY and for xsec source 'slha').
        point: name of the signal point (header ``point``).
        n_events: events in this chunk.
        seed: base seed of the run (>= 0).
        chunk: index of this chunk, 0..chunks-1.
        chunks: number of chunks of the point.
        output: Parquet file to write.
        progress: print progress lines on stderr.

    Returns:
        The header written.
    """
    _check_chunk_args(n_events, seed, chunk, chunks)
    card = load_card(card_path)
    slha_info = _read_spectrum(card, slha_path)
    # the SLHA cross-section is looked up first, so that a missing XSECTION fails in seconds
    reference = None
    if card.xsec_source == "slha":
        if slha_info is None:  # unreachable: _read_spectrum refuses this source without an SLHA file
            raise RecastError("xsec.source is 'slha' but no SLHA file was given", path=str(card.path))
        # an XSECTION block copied from another mass point is refused here too, not only in the preflight
        check_slha_xsections(slha_info)
        reference = slha_xsec_pb(
            slha_info, card.sqrt_s_gev, list(card.final_states) if card.final_states else None, card.xsec_order
        )
    base, forced = _base_settings(card, slha_path), card.forced_settings()
    label = f"{point} chunk {chunk + 1}/{chunks}"
    rng_seed = pythia_seed(seed, chunk)
    fractions: list[float] = []

    def read_fractions(pythia: Any) -> None:
        fractions.extend(forced_branching_fractions(pythia, card))

    events, info = run_pythia(
        [*base, *forced],
        n_events,
        rng_seed,
        label=label,
        progress=progress,
        count_decays=[fd.particle for fd in card.forced_decays],
        on_init=read_fractions,
    )
    factor, detail = br_factor(card, fractions, info["decay_counts"])
    generator: dict[str, Any] = {
        "name": "pythia8",
        "version": info["version"],
        "settings": info["settings"],
        "base_seed": seed,
        "sigma_gen_pb": info["sigma_gen_pb"],
        "sigma_err_pb": info["sigma_err_pb"],
        "n_tried": info["n_tried"],
    }
    if reference is not None:
        xsec_pb, xsec_source = reference
    else:
        generator["open_width_factor"] = open_width_factor(base, forced, rng_seed, label)
        xsec_pb = info["sigma_gen_pb"] / generator["open_width_factor"]
        xsec_source = "Pythia 8 sigmaGen (LO)" + (" / open-width factor of forced decays" if forced else "")
    header = {
        "format": EVENTS,
        "point": point,
        "generator": generator,
        "n_events": len(events),
        "sum_weights": float(np.sum(ak.to_numpy(events["weight"]))),
        "xsec_pb": float(xsec_pb),
        "xsec_source": xsec_source,
        "xsec_estimated": reference is None,
        "br_factor": float(factor),
        "forced_decays": detail,
        "seed": rng_seed,
        "chunk": {"index": chunk, "count": chunks},
        "weight_names": info["weight_names"],
        "sources": _sources(card_path, slha_path),
    }
    write_events(Path(output), events, header)
    return header


def generate_point(
    grid: Grid, point_name: str, chunk: int, output: Path | str, *, log: Callable[[str], None]
) -> dict[str, Any]:
    """Generate one chunk of a grid point's events (``recastflow generate``).

    The chunk gets its share of the point's events and the generation seed derived from the grid's
    ``events.seed`` and the point's name, so that adding points to a grid leaves the others' events as they were.

    Args:
        grid: the point's grid (with an ``events`` section).
        point_name: the point, made from an SLHA spectrum.
        chunk: index of the chunk, 0..events.chunks-1.
        output: Parquet file to write (named as given in the log).
        log: gets one line on the chunk: events, rate, cross-section and branching-fraction factor.

    Returns:
        The header written.

    Raises:
        RecastError: the point is not generated (patch, yields or hand-off manifest), no such chunk, or any
            problem of the generation itself.
    """
    from recastflow.core.seeds import chunk_sizes, derive_seed

    point, spec = grid.events_point(point_name)
    if point.slha is None:
        raise RecastError(f"point {point.name} has a hand-off manifest; use 'recastflow handoff'", path=str(grid.path))
    if not 0 <= chunk < spec.chunks:
        raise RecastError(
            f"chunk {chunk} does not exist: the grid has events.chunks = {spec.chunks} (chunks 0..{spec.chunks - 1})",
            path=str(grid.path),
            field="events.chunks",
        )
    assert spec.process is not None and point.n_events is not None  # guaranteed by load_grid for SLHA points
    n = chunk_sizes(point.n_events, spec.chunks)[chunk]
    t0 = time.perf_counter()
    header = generate_chunk(
        spec.process,
        point.slha,
        point=point.name,
        n_events=n,
        seed=derive_seed(spec.seed, point.name, "generate"),
        chunk=chunk,
        chunks=spec.chunks,
        output=Path(output),
        progress=True,
    )
    dt = time.perf_counter() - t0
    log(
        f"{grid.name}/{point.name} chunk {chunk}: {header['n_events']} events in {dt:.1f} s "
        f"({header['n_events'] / dt:.0f} ev/s), sigma = {header['xsec_pb']:.4g} pb ({header['xsec_source']}), "
        f"BR factor {header['br_factor']:.4g} -> {output}"
    )
    return header


def _sources(card_path: Path, slha_path: Path | None) -> list[dict[str, str]]:
    """Input files as given (relative paths stay relative) with their SHA-256."""
    paths = [card_path] if slha_path is None else [card_path, slha_path]
    return [{"path": str(p), "sha256": sha256_file(Path(p))} for p in paths]


def _read_spectrum(card: ProcessCard, slha_path: Path | None) -> SLHAInfo | None:
    """Check and read the SLHA file when the card needs one."""
    if slha_path is None:
        if card.xsec_source == "slha":
            raise RecastError(
                "xsec.source is 'slha' but no SLHA file was given; pass the point's SLHA file",
                path=str(card.path),
                field="xsec.source",
            )
        if any(_setting_key(s).startswith("susy:") for s in card.settings):
            raise RecastError(
                "SUSY processes need the point's SLHA file (masses, mixings, decays); pass it",
                path=str(card.path),
                field="settings",
            )
        return None
    return read_slha(Path(slha_path))
