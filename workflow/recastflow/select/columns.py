"""Column-wise values of the selection language: collections, objects and per-object values over all events.

A collection (``jets``) is a set of flat numpy columns plus a :class:`Layout` saying which objects belong
to which event (like an awkward list offset); an object (``jets[0]``) is one :class:`Particle` per event,
missing (NaN) where the event has too few; a per-object value (``jets.pt``) keeps the layout so that
reductions (``n``, ``sum``, ``any``) turn it into one number per event. Used by the compiler and the
kinematics of :mod:`recastflow.select.expressions`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def pick(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` for integer indices known to be in range.

    numpy's ``take`` without the bounds check is a quarter faster than fancy indexing, and
    gathering is most of the work of a selection.
    """
    return values.take(index, mode="clip")


class Layout:
    """How the objects of a collection are split into events (like an awkward list offset).

    Args:
        counts: number of objects per event.
        event_index: event of each object, when already known (saves recomputing it).
    """

    def __init__(self, counts: np.ndarray, event_index: np.ndarray | None = None) -> None:
        self.counts = counts
        self._event_index = event_index
        self._offsets: np.ndarray | None = None
        self._local_index: np.ndarray | None = None

    @classmethod
    def from_offsets(cls, offsets: np.ndarray) -> Layout:
        """The layout with these offsets (starting at 0, ending at the total), kept as given."""
        out = cls(np.diff(offsets))
        out._offsets = offsets
        return out

    @property
    def n_events(self) -> int:
        """Number of events."""
        return len(self.counts)

    @property
    def size(self) -> int:
        """Total number of objects."""
        return int(self.offsets[-1])

    @property
    def offsets(self) -> np.ndarray:
        """Start of each event's objects in the flat arrays, plus the total at the end."""
        if self._offsets is None:
            out = np.zeros(len(self.counts) + 1, dtype=np.int64)
            np.cumsum(self.counts, out=out[1:])
            self._offsets = out
        return self._offsets

    @property
    def event_index(self) -> np.ndarray:
        """Event of each object."""
        if self._event_index is None:
            self._event_index = np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)
        return self._event_index

    @property
    def local_index(self) -> np.ndarray:
        """Position of each object inside its event (0 = first)."""
        if self._local_index is None:
            ev = self.event_index
            self._local_index = np.arange(len(ev), dtype=np.int64) - pick(self.offsets[:-1], ev)
        return self._local_index

    def select(self, keep: np.ndarray) -> Layout:
        """The layout left after keeping the objects flagged in ``keep``."""
        # kept objects per event from the running count at the event boundaries: cheaper than
        # compressing the event index and counting it. numpy sums booleans into int32 several
        # times faster than into int64, so int32 is used whenever it cannot overflow.
        kept = np.empty(len(keep) + 1, dtype=np.int32 if len(keep) < 2**31 - 1 else np.int64)
        kept[0] = 0
        np.cumsum(keep, out=kept[1:])
        return Layout.from_offsets(pick(kept, self.offsets).astype(np.int64))

    def take_events(self, kept: np.ndarray) -> tuple[Layout, np.ndarray]:
        """The layout of the events at positions ``kept`` (increasing), and the flat positions of its objects here."""
        counts = pick(self.counts, kept)
        child = Layout(counts)
        # positions = child position + (start here - start in the child) of the object's event;
        # the work is proportional to the objects kept, not to all objects
        shift = pick(self.offsets, kept) - child.offsets[:-1]
        return child, np.arange(child.size, dtype=np.int64) + np.repeat(shift, counts)

    def broadcast(self, per_event: np.ndarray) -> np.ndarray:
        """Repeat a per-event column once per object."""
        return pick(per_event, self.event_index)


def _ready(value: np.ndarray) -> Callable[[], np.ndarray]:
    """A loader of an array already at hand.

    Loaders bind their value or key when made: with this factory or functools.partial rather than
    ``lambda k=k: ...`` defaults, whose type mypy cannot infer (python/mypy#15459).
    """
    return lambda: value


class Columns:
    """Flat field columns loaded on first use and shared by every collection derived from them."""

    def __init__(self, loaders: Mapping[str, Callable[[], np.ndarray]]) -> None:
        self._loaders = loaders
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray]) -> Columns:
        """Columns from ready arrays."""
        return cls({k: _ready(v) for k, v in arrays.items()})

    @property
    def names(self) -> tuple[str, ...]:
        """Field names."""
        return tuple(self._loaders)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._loaders[name]()
        return self._cache[name]


class Collection:
    """A variable number of objects per event.

    The objects are rows ``index`` of shared flat ``columns`` (all rows if ``index`` is None),
    so that filtering, sorting and sub-setting move one integer array, and a field is gathered
    only when an expression uses it.

    Args:
        layout: objects per event.
        columns: the flat source columns.
        index: the rows of ``columns`` that are this collection's objects, in event order.
        sorted_by: the field the objects are known to be sorted by (descending), if any.
        derive: for a collection whose columns are computed on first use (a merge, a sort),
            how to build the same collection for a subset of the events (``take_events``)
            from its parts, so that a subset does not make the whole collection compute.
    """

    def __init__(
        self,
        layout: Layout,
        columns: Columns,
        index: np.ndarray | None = None,
        sorted_by: str | None = None,
        derive: Callable[[np.ndarray], Collection] | None = None,
    ) -> None:
        self.layout = layout
        self.columns = columns
        self.index = index
        self.sorted_by = sorted_by
        self.derive = derive
        self._fields: dict[str, np.ndarray] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Field names."""
        return self.columns.names

    @property
    def size(self) -> int:
        """Total number of objects."""
        return self.layout.size

    def field(self, name: str) -> np.ndarray:
        """One flat column of this collection's objects."""
        if name not in self._fields:
            column = self.columns[name]
            self._fields[name] = column if self.index is None else pick(column, self.index)
        return self._fields[name]

    def field_at(self, name: str, positions: np.ndarray) -> np.ndarray:
        """``field(name)[positions]``, without gathering the whole field if it is not there yet."""
        if name in self._fields or self.index is None:
            return pick(self.field(name), positions)
        return pick(self.columns[name], pick(self.index, positions))

    def filter(self, keep: np.ndarray) -> Collection:
        """Keep the objects flagged in the flat boolean ``keep``."""
        if keep.all():
            return self  # common for loose requirements: nothing to copy
        layout = self.layout.select(keep)
        if self.index is None:
            rows = np.flatnonzero(keep)
        elif layout.size > 0.93 * len(keep):
            rows = self.index[keep]  # boolean indexing is fastest when nearly all are kept ...
        else:
            rows = pick(self.index, np.flatnonzero(keep))  # ... and up to 4 times slower otherwise
        return Collection(layout, self.columns, rows, self.sorted_by)

    def take_events(self, kept: np.ndarray) -> Collection:
        """The same collection for the events at positions ``kept`` (increasing) only."""
        if self.derive is not None:
            return self.derive(kept)
        layout, positions = self.layout.take_events(kept)
        rows = positions if self.index is None else pick(self.index, positions)
        return Collection(layout, self.columns, rows, self.sorted_by)

    def known_sorted(self, key: str) -> Collection:
        """The same collection, recorded as sorted by ``key`` (descending)."""
        out = Collection(self.layout, self.columns, self.index, key)
        out._fields = self._fields
        return out

    def permute(self, order: np.ndarray, sorted_by: str | None) -> Collection:
        """The objects reordered (within their events) by the flat permutation ``order``."""
        rows = order if self.index is None else self.index[order]
        return Collection(Layout(self.layout.counts, self.layout.event_index), self.columns, rows, sorted_by)

    def item(self, index: int) -> Particle:
        """The ``index``-th object of each event; missing (NaN) where there is none."""
        counts = self.layout.counts
        ok = (counts > index) if index >= 0 else (counts >= -index)
        pos = self.layout.offsets[:-1] + (index if index >= 0 else counts + index)
        pos = np.where(ok, pos, 0)

        def gather(name: str) -> np.ndarray:
            column = self.field(name)
            if len(column) == 0:
                return np.full(len(counts), np.nan)
            values = pick(column, pos).astype(np.float64, copy=False)  # a fresh array: safe to fill in place
            np.copyto(values, np.nan, where=~ok)
            return values

        # fields are gathered only when used: most expressions need two or three of them;
        # a subset of the events gathers from the subset of the collection
        return Particle(
            {k: functools.partial(gather, k) for k in self.names}, lambda kept: self.take_events(kept).item(index)
        )


class Particle:
    """One object per event (possibly missing: NaN fields); boolean fields stored as 0/1/NaN.

    Fields are computed on first access from ``loaders`` and kept. ``derive``, if given,
    builds the same particle for a subset of the events, used by ``take_events`` for fields
    not computed yet.
    """

    def __init__(
        self, loaders: Mapping[str, Callable[[], np.ndarray]], derive: Callable[[np.ndarray], Particle] | None = None
    ) -> None:
        self._loaders = loaders
        self._derive = derive
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def of(cls, columns: Mapping[str, np.ndarray]) -> Particle:
        """A particle from ready columns."""
        return cls({k: _ready(v) for k, v in columns.items()})

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._loaders[name]()
        return self._cache[name]

    def __contains__(self, name: str) -> bool:
        return name in self._loaders

    def take_events(self, kept: np.ndarray) -> Particle:
        """The same objects for the events at positions ``kept`` (increasing) only."""
        derive = self._derive
        if derive is None:

            def own(name: str) -> np.ndarray:
                return pick(self[name], kept)

            return Particle({k: functools.partial(own, k) for k in self._loaders})
        derived: list[Particle] = []

        def load(name: str) -> np.ndarray:
            if name in self._cache:
                return pick(self._cache[name], kept)
            if not derived:
                derived.append(derive(kept))
            return derived[0][name]

        return Particle({k: functools.partial(load, k) for k in self._loaders})

    def kinematics(self) -> tuple[np.ndarray, Any, np.ndarray, Any]:
        """(pt, eta, phi, m); eta and m are 0 for objects without them (missing momentum)."""
        # Particle has `in` but no .get (it is not a Mapping), so SIM401's rewrite does not apply
        return (self["pt"], self["eta"] if "eta" in self else 0.0, self["phi"], self["m"] if "m" in self else 0.0)  # noqa: SIM401


@dataclass(frozen=True, eq=False)
class PerObject:
    """One value per object of a collection (``jets.pt``), flat with the collection's layout."""

    values: np.ndarray
    layout: Layout

    def take_events(self, kept: np.ndarray) -> PerObject:
        """The same values for the events at positions ``kept`` (increasing) only."""
        layout, positions = self.layout.take_events(kept)
        return PerObject(pick(self.values, positions), layout)


def take_events(value: Any, kept: np.ndarray) -> Any:
    """Restrict any runtime value to the events at positions ``kept`` (increasing)."""
    if isinstance(value, np.ndarray):
        return pick(value, kept) if value.ndim else value
    if isinstance(value, (Collection, Particle, PerObject)):
        return value.take_events(kept)
    return value  # a constant
