"""The recastflow command line: one subcommand per workflow stage.

Each subcommand parses its options and calls one function of the package. A workflow job gets
the settings it needs as options (``--analyses-dir``, ``--signals-dir``, ``--allowed-path`` and
the subcommand's own); interactive use may give ``--config FILE`` instead, which is read and
validated. Outputs are written atomically, and user mistakes become a one-line message with a
non-zero exit code.

The subcommands live in modules grouped by concern, each defining its commands' functions next to
their parsers (``PARSERS``): :mod:`~recastflow.cli.checks`, :mod:`~recastflow.cli.stats`,
:mod:`~recastflow.cli.frontend`, :mod:`~recastflow.cli.models`, :mod:`~recastflow.cli.report`,
:mod:`~recastflow.cli.preserve`, :mod:`~recastflow.cli.bundles`, :mod:`~recastflow.cli.run` and
:mod:`~recastflow.cli.adaptive`;
what they share is in :mod:`~recastflow.cli._common`.
"""

from __future__ import annotations

import argparse
import os
import sys

from recastflow.cli import adaptive, bundles, checks, frontend, models, preserve, report, run, stats
from recastflow.cli._common import AddParser, Context, add_settings_options, run_settings
from recastflow.core.errors import RecastError

__all__ = ["build_parser", "main"]

#: The subcommands in the order ``recastflow --help`` and the generated reference list them: the workflow's
#: order, then the commands around it. A subcommand missing here is still added, after these.
ORDER = (
    "validate",
    "patch",
    "extract-yields",
    "generate",
    "handoff",
    "emulate",
    "select",
    "check-yields",
    "check-yields-verdict",
    "reweight",
    "check-reweight",
    "limits",
    "table",
    "fitplots",
    "check",
    "report",
    "archive",
    "verdicts",
    "run",
    "adaptive",
    "unarchive",
    "model-inspect",
    "model-vectors",
    "model-check",
    "fetch",
    "catalogue",
    "bundle",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands.

    Returns:
        The ``recastflow`` parser; each subcommand's parser sets ``func``, the function to call.
    """
    parser = argparse.ArgumentParser(prog="recastflow", description=(__doc__ or "").splitlines()[0])
    add_settings_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    parsers: dict[str, AddParser] = {}
    for module in (checks, stats, frontend, models, report, preserve, bundles, run, adaptive):
        parsers.update(module.PARSERS)
    for name in ORDER:
        parsers.pop(name)(sub)
    for add in parsers.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 1.

    Args:
        argv: the arguments, without the program name (default: the command line's).

    Returns:
        The exit code: 0 on success, 1 for a user error, 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # BLAS threads make pyhf fits 2-5x slower here
    try:
        ctx = Context(run_settings(args)) if getattr(args, "needs_config", True) else None
        from recastflow.core.io import confine_arguments

        # every path of the command (options, and those in the files it reads) stays in the project,
        # the cache, the mirrors or the allowed paths, also through symbolic links
        # a job's allowed paths come from the run configuration the workflow validated: messages name it
        with confine_arguments(
            args,
            ctx.settings.policy_config() if ctx else None,
            (ctx.settings.source or "the run configuration") if ctx else None,
        ):
            args.func(args, ctx)
    except RecastError as exc:
        print(f"recastflow {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"recastflow {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
