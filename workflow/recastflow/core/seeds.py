"""Seeds for every random step, derived from the grid's one configured seed."""

from __future__ import annotations

import hashlib


def derive_seed(base: int, *parts: object) -> int:
    """A seed in Pythia's range 1..900000000 from the base seed and a label path.

    Hashing (rather than adding an index) keeps a point's events unchanged when other
    points are added to or removed from a grid, and gives every stage and chunk its
    own independent stream.

    Args:
        base: the seed from the grid's ``events.seed``.
        parts: labels such as the point name, the stage and the chunk index.
    """
    label = "/".join([str(base), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(label).digest()[:8], "big") % 900_000_000 + 1


def chunk_sizes(n_events: int, chunks: int) -> list[int]:
    """Split a point's events over its chunks as evenly as possible (first chunks get the rest)."""
    base, rest = divmod(n_events, chunks)
    return [base + (1 if i < rest else 0) for i in range(chunks)]
