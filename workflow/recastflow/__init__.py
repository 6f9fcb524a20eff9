"""recastflow: reinterpret published LHC analyses with their preserved likelihoods."""

from __future__ import annotations

__version__ = "0.1.0"

from recastflow.core.errors import RecastError

__all__ = ["RecastError", "__version__"]
