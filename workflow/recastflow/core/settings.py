"""The run settings a command works with, from the run configuration or from its options.

The workflow validates the run configuration once, when it starts (``workflow/rules/common.smk``),
and hands every job the few settings it needs as command-line options; a job never reads the
configuration file again. Interactive use (``recastflow --config FILE ...``) reads and validates
the file instead. Both end in one :class:`RunSettings`; a command option that is not given falls
back to the file's value (interactive) or to the schema's default (a job given only options).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recastflow.core.config import load_validated, schema

#: Where a run's bundles and grids live when nothing says otherwise (the schema's defaults).
DEFAULT_ANALYSES_DIR = "config/analyses"
DEFAULT_SIGNALS_DIR = "config/signals"


def schema_default(*keys: str) -> Any:
    """The run configuration schema's default of a (nested) key, e.g. ``("limits", "method")``.

    Raises:
        KeyError: if the schema gives that key no default (a programming error, not a user's).
    """
    node: dict[str, Any] = schema("config")
    for key in keys:
        node = node["properties"][key]
    return node["default"]


@dataclass(frozen=True)
class RunSettings:
    """Where bundles and grids live, which folders outside the project are allowed, and the config.

    Attributes:
        analyses_dir: folder of the analysis bundles.
        signals_dir: folder of the signal grids.
        allowed_paths: folders outside the project that inputs and outputs may be in.
        config: the validated run configuration, when it was read (interactive use), else ``None``.
        source: the configuration file, or ``None`` when the settings came as options.
    """

    analyses_dir: Path
    signals_dir: Path
    allowed_paths: tuple[str, ...] = ()
    config: dict[str, Any] | None = field(default=None, compare=False)
    source: Path | None = None

    @classmethod
    def from_config_file(cls, path: Path) -> RunSettings:
        """Read and validate a run configuration (interactive use)."""
        cfg = load_validated(path, "config")
        return cls(Path(cfg["analyses_dir"]), Path(cfg["signals_dir"]), tuple(cfg["allowed_paths"]), cfg, path)

    @classmethod
    def from_options(
        cls, analyses_dir: str | None, signals_dir: str | None, allowed_paths: list[str] | None
    ) -> RunSettings:
        """The settings a workflow job is given as options (no configuration file is read)."""
        return cls(
            Path(analyses_dir or DEFAULT_ANALYSES_DIR),
            Path(signals_dir or DEFAULT_SIGNALS_DIR),
            tuple(allowed_paths or ()),
        )

    def policy_config(self) -> dict[str, Any]:
        """The keys that path confinement checks, as a configuration would hold them."""
        return {
            "allowed_paths": list(self.allowed_paths),
            "analyses_dir": str(self.analyses_dir),
            "signals_dir": str(self.signals_dir),
        }

    def pick(self, given: Any, *keys: str) -> Any:
        """A command option if given, else the configuration's value, else the schema's default.

        Args:
            given: the option's value (``None`` if not given).
            keys: the key in the run configuration, nested, e.g. ``("limits", "method")``.
        """
        if given is not None:
            return given
        node: Any = self.config
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return schema_default(*keys)
            node = node[key]
        return node
