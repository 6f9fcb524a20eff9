"""The project's own exception type for problems a user can fix."""

from __future__ import annotations


class RecastError(Exception):
    """A user-facing error: bad input, a failed check, a missing file.

    The CLI prints ``str(error)`` on one line and exits non-zero; no traceback.
    Messages name the file, the field and what to do about it.
    """

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None) -> None:
        self.path = path
        self.field = field
        prefix = ""
        if path:
            prefix += f"{path}: "
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)


class CheckFailed(RecastError):
    """A regression check found values outside their tolerance."""
