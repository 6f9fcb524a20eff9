"""Checks that a pyhf workspace is a likelihood worth fitting, not only valid JSON.

pyhf's schema accepts NaN, infinite and negative numbers, samples whose bin counts differ from
their channel's, two samples of the same name and a POI that no sample carries. Fits of such
a workspace run and may even converge, to numbers that mean nothing. These checks refuse them
with the channel, sample, modifier and bin in the message.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from recastflow.core.errors import RecastError

#: Modifier types whose data are per-bin lists of numbers.
_PER_BIN = ("staterror", "shapesys")


class _Failure(Exception):
    """One problem found; turned into a RecastError by :func:`check_workspace`."""


def check_workspace(
    spec: dict[str, Any],
    path: Path | str,
    *,
    what: str = "workspace",
    poi: bool = True,
    trusted: Collection[int] = (),
) -> None:
    """Refuse a (schema-valid) pyhf workspace that is not a sound likelihood.

    Checked: channel and observation names unique, every channel observed, observations
    finite and >= 0, every sample's yields and its histosys, normsys, staterror and shapesys
    data finite and >= 0, bin counts equal to the channel's, sample names unique in a channel,
    and (``poi``) each measurement's POI carried by some sample as a normfactor.

    Args:
        spec: the workspace, already valid against pyhf's workspace schema.
        path: the file to name in the message (the workspace, or the patch that made it).
        what: how the message calls the workspace ("patched workspace", ...).
        poi: check the measurements' POI (a background-only workspace has no signal to carry it).
        trusted: ``id()`` of observation entries and samples already checked (those a patch left
            as they were in a checked background-only workspace); only their bin counts are
            checked again.

    Raises:
        RecastError: naming ``path`` and, in the message, the channel, sample and bin.
    """
    try:
        _check(spec, poi, trusted)
    except _Failure as exc:
        raise RecastError(f"{what}: {exc}", path=str(path)) from None


def _check(spec: dict[str, Any], poi: bool, trusted: Collection[int]) -> None:
    channels = spec["channels"]
    _unique([c["name"] for c in channels], "channel")
    observations = spec.get("observations", [])
    _unique([o["name"] for o in observations], "observation")
    observed = {o["name"]: o for o in observations}
    for obs in observations:
        if id(obs) not in trusted:
            for i, v in enumerate(obs["data"]):
                if not (math.isfinite(v) and v >= 0):
                    raise _Failure(
                        f"observations of channel {obs['name']!r}, bin {i}: {v} is not a count; "
                        "observed data must be finite and >= 0"
                    )
    normfactors: set[str] = set()
    for channel in channels:
        name = channel["name"]
        if name not in observed:
            raise _Failure(
                f"channel {name!r} has no observations (add them under 'observations', or remove the channel)"
            )
        nbins = len(observed[name]["data"])
        _unique([s["name"] for s in channel["samples"]], "sample", f" in channel {name!r}")
        for sample in channel["samples"]:
            where = f"channel {name!r}, sample {sample['name']!r}"
            if len(sample["data"]) != nbins:
                raise _Failure(f"{where} has {len(sample['data'])} bins, the channel's observations have {nbins}")
            if poi:
                normfactors.update(m["name"] for m in sample["modifiers"] if m["type"] == "normfactor")
            if id(sample) not in trusted:
                _check_sample(sample, nbins, where)
    if poi:
        for measurement in spec["measurements"]:
            name = measurement["config"]["poi"]
            if name not in normfactors:
                raise _Failure(
                    f"measurement {measurement['name']!r} has POI {name!r}, but no sample has a normfactor "
                    f"of that name (normfactors: {', '.join(sorted(normfactors)) or 'none'})"
                )


def _check_sample(sample: dict[str, Any], nbins: int, where: str) -> None:
    _non_negative(sample["data"], f"{where}, bin {{i}}: yield", "yields")
    for m in sample["modifiers"]:
        kind, data = m["type"], m.get("data")
        mod = f"{where}, modifier {m['name']!r} ({kind})"
        if kind == "histosys":
            for key in ("hi_data", "lo_data"):
                if len(data[key]) != nbins:
                    raise _Failure(f"{mod}: {key} has {len(data[key])} bins, the channel has {nbins}")
                _non_negative(data[key], f"{mod}, {key} bin {{i}}", "varied yields")
        elif kind == "normsys":
            for key in ("hi", "lo"):
                v = data[key]
                if not (math.isfinite(v) and v >= 0):
                    raise _Failure(f"{mod}: {key} is {v}; normalisation factors must be finite and >= 0")
        elif kind in _PER_BIN:
            if len(data) != nbins:
                raise _Failure(f"{mod}: has {len(data)} bins, the channel has {nbins}")
            _non_negative(data, f"{mod}, bin {{i}}", "uncertainties")


def _non_negative(values: list[float], where: str, kind: str) -> None:
    for i, v in enumerate(values):
        if not (math.isfinite(v) and v >= 0):
            raise _Failure(f"{where.format(i=i)} is {v}; {kind} must be finite and >= 0")


def _unique(names: list[str], kind: str, where: str = "") -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _Failure(f"two {kind}s named {name!r}{where}; give each its own name")
        seen.add(name)
