"""``"<grid>/<point>"`` references, parsed and checked once.

Run configurations name points as ``"<grid>/<point>"`` (``upper_limits``, ``fit_plots``), with
``"<grid>/*"`` for a whole grid. :class:`PointRef` is that text parsed once, so that no caller
splits the string again and every malformed entry fails with the same one-line message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from recastflow.core.errors import RecastError

#: A grid or point name: the same characters the workflow's wildcards accept.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

#: The point part that stands for every point of the grid.
ALL_POINTS = "*"


@dataclass(frozen=True, order=True)
class PointRef:
    """One point of one grid, or every point of it (``point == "*"``).

    Attributes:
        grid: the grid's name.
        point: the point's name, or ``"*"`` for the whole grid.
    """

    grid: str
    point: str

    @classmethod
    def parse(
        cls, text: object, *, source: str | None = None, field: str | None = None, wildcard: bool = True
    ) -> PointRef:
        """Parse ``"<grid>/<point>"``.

        Args:
            text: the entry as written.
            source: the file it comes from (for the message).
            field: the key it comes from (for the message).
            wildcard: whether ``"<grid>/*"`` is accepted.

        Raises:
            RecastError: if the entry is not two names joined by one ``/``.
        """
        parts = text.split("/") if isinstance(text, str) else []
        ok = (
            len(parts) == 2
            and _NAME.fullmatch(parts[0]) is not None
            and (_NAME.fullmatch(parts[1]) is not None or (wildcard and parts[1] == ALL_POINTS))
        )
        if not ok:
            form = "'<grid>/<point>' or '<grid>/*'" if wildcard else "'<grid>/<point>'"
            raise RecastError(f"{text!r} is not {form}", path=source, field=field)
        return cls(parts[0], parts[1])

    @property
    def whole_grid(self) -> bool:
        """Whether the reference stands for every point of its grid."""
        return self.point == ALL_POINTS

    def expand(self, point_names: list[str]) -> list[str]:
        """The point names it stands for, among a grid's ``point_names`` (in their order)."""
        return list(point_names) if self.whole_grid else [self.point]

    def __str__(self) -> str:
        return f"{self.grid}/{self.point}"
