"""What every subcommand shares: its context (the run settings), log lines, paths and the settings options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from recastflow import __version__
from recastflow.core.errors import RecastError
from recastflow.core.settings import RunSettings

if TYPE_CHECKING:
    from recastflow.analyses.bundle import Analysis, Grid

#: The run configuration read when a command is given neither ``--config`` nor settings options.
DEFAULT_CONFIG = "config/config.yaml"

GRID_HELP = "signal grid name (config/signals/<GRID>.yaml under --signals-dir)"
POINT_HELP = "point name within the grid"

#: A subcommand's function: the parsed options and the context (``None`` for commands without run settings).
Handler: TypeAlias = Callable[[argparse.Namespace, Any], None]
#: What ``ArgumentParser.add_subparsers`` returns (its class is private, hence the string).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: Adds one subcommand's parser, its options and its function.
AddParser: TypeAlias = Callable[[Subparsers], None]


@dataclass(frozen=True)
class Context:
    """The run settings of one command and where its bundles and grids live."""

    settings: RunSettings

    @property
    def config(self) -> dict[str, Any] | None:
        """The validated run configuration, if the command was given one (interactive use)."""
        return self.settings.config

    @property
    def analyses_dir(self) -> Path:
        """Folder of the analysis bundles."""
        return self.settings.analyses_dir

    @property
    def signals_dir(self) -> Path:
        """Folder of the signal grids."""
        return self.settings.signals_dir

    def require_config(self, command: str) -> dict[str, Any]:
        """The run configuration, for the commands that work on a whole run (``validate``).

        Args:
            command: the command, named in the message.

        Returns:
            The validated run configuration.

        Raises:
            RecastError: the settings came as options, without a configuration.
        """
        if self.settings.config is None:
            raise RecastError(
                f"'{command}' works on a whole run configuration: give --config FILE instead of "
                "--analyses-dir/--signals-dir/--allowed-path"
            )
        return self.settings.config

    def grid(self, name: str) -> tuple[Grid, Analysis]:
        """Load a grid and the bundle it belongs to.

        Args:
            name: the grid's name (a file of the signals folder).

        Returns:
            The grid and its bundle.

        Raises:
            RecastError: the grid or its bundle is missing or invalid.
        """
        from recastflow.analyses.bundle import load_analysis, load_grid

        grid = load_grid(name, self.signals_dir)
        analysis = load_analysis(grid.analysis, self.analyses_dir, named_in=grid.path, named_by="analysis")
        return grid, analysis


def log(msg: str) -> None:
    """Write one progress line on stderr; stdout is kept for what a command prints as its result.

    Args:
        msg: the line, without the ``[recastflow]`` prefix.
    """
    print(f"[recastflow] {msg}", file=sys.stderr, flush=True)


def paths(values: list[str] | None) -> list[Path]:
    """The paths of an option taking several files (none when it was not given).

    Args:
        values: the option's values.

    Returns:
        One path per value.
    """
    return [Path(v) for v in values or []]


def opt_path(value: str | None) -> Path | None:
    """The path of an optional file option.

    Args:
        value: the option's value.

    Returns:
        The path, or ``None`` when the option was not given.
    """
    return Path(value) if value is not None else None


def add_command(sub: Subparsers, name: str, fn: Handler, help_: str) -> argparse.ArgumentParser:
    """Add a subcommand's parser, with its one-line help as the description of its own ``--help``.

    Args:
        sub: the subparsers of the ``recastflow`` parser.
        name: the subcommand.
        fn: its function, called by :func:`recastflow.cli.main`.
        help_: what it does, in one line.

    Returns:
        The subcommand's parser, for its options.
    """
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(func=fn)
    return p


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Add the run settings, as a run configuration file (interactive) or as options (workflow jobs).

    Args:
        parser: the ``recastflow`` parser.
    """
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version of recastflow and exit",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"run configuration to read and validate, for interactive use (default: {DEFAULT_CONFIG} "
        "unless the settings below are given; workflow jobs get those instead)",
    )
    # dest job_*: subcommands may have options of the same name (bundle new --signals-dir) for their own use
    parser.add_argument(
        "--analyses-dir",
        metavar="DIR",
        dest="job_analyses_dir",
        help="folder of the analysis bundles (a job's setting; default: config/analyses)",
    )
    parser.add_argument(
        "--signals-dir",
        metavar="DIR",
        dest="job_signals_dir",
        help="folder of the signal grids (a job's setting; default: config/signals)",
    )
    parser.add_argument(
        "--allowed-path",
        action="append",
        metavar="DIR",
        help="folder outside the project that inputs and outputs may be in (a job's setting; repeat for several)",
    )


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The run settings from the options (a workflow job) or from the run configuration (interactive).

    Args:
        args: the parsed options.

    Returns:
        The settings.

    Raises:
        RecastError: both a configuration and settings options were given, or the configuration is invalid.
    """
    given = [
        o
        for o, v in (
            ("--analyses-dir", args.job_analyses_dir),
            ("--signals-dir", args.job_signals_dir),
            ("--allowed-path", args.allowed_path),
        )
        if v is not None
    ]
    if given:
        if args.config is not None:
            raise RecastError(f"give --config or {', '.join(given)}, not both: the settings come from one place")
        return RunSettings.from_options(args.job_analyses_dir, args.job_signals_dir, args.allowed_path)
    return RunSettings.from_config_file(Path(args.config or DEFAULT_CONFIG))
