"""Hand-off of LHE files: read and checked with pylhe, showered with Pythia 8 (see :mod:`recastflow.generate.handoff`).

:func:`recastflow.generate.handoff.handoff` checks the manifest and calls :func:`_convert_lhe`; the
format's rules (weights from the LHE file, showered events matched to their LHE events by the
incoming partons' momenta) are described there.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from recastflow.core.errors import RecastError
from recastflow.generate.handoff import Manifest, _check_count, _Converted, _regular, check_weights

#: Incoming-parton momenta of an LHE event and of Pythia's hard record agree to this (GeV, relative).
ALIGN_ATOL, ALIGN_RTOL = 1e-3, 1e-6


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
