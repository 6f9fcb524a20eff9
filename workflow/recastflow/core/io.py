"""Writing outputs so that a file either is complete or does not exist, and keeping paths inside the project."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recastflow.core.errors import RecastError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_target(path: Path, *, field: str | None = None) -> None:
    """Refuse an output path that exists and is not a regular file.

    The atomic rename would replace a symbolic link (not its target), a device such as
    ``/dev/full`` (as root), and fail with a traceback on a directory.

    Args:
        path: the output file.
        field: the option or key that named it (for the message).
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RecastError(
            f"cannot use it as an output ({exc.strerror}); give a new file name", path=str(path), field=field
        ) from None
    if stat.S_ISREG(mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a symbolic link"
        if stat.S_ISLNK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    raise RecastError(
        f"is {kind}; outputs are written only to regular files or new paths: give a file name",
        path=str(path),
        field=field,
    )


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over the target.

    The file gets the usual permissions (0666 less the umask): results are meant to be
    shared, and mkstemp alone would leave them private (0600). The target must be a
    regular file or a new path (see :func:`check_output_target`).
    """
    path = Path(path)
    check_output_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON deterministically (sorted keys, fixed indentation) and atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file written by a previous stage."""
    from recastflow.core.config import read_document

    return read_document(path)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (event files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- paths that stay inside


def cache_root() -> Path:
    """The cache folder: ``RECASTFLOW_CACHE``, else ``$XDG_CACHE_HOME/recastflow``, else ``~/.cache/recastflow``."""
    if os.environ.get("RECASTFLOW_CACHE"):
        return Path(os.environ["RECASTFLOW_CACHE"]).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "recastflow"


def mirror_roots() -> list[Path]:
    """The mirror folders of ``RECASTFLOW_MIRROR`` (``os.pathsep``-separated)."""
    value = os.environ.get("RECASTFLOW_MIRROR", "")
    return [Path(p).expanduser().absolute() for p in value.split(os.pathsep) if p.strip()]


@dataclass(frozen=True)
class PathPolicy:
    """Where the command line may read and write: the project, the cache, the mirrors, named folders.

    Attributes:
        project: the project folder (the working directory of the command), resolved.
        roots: every allowed folder, resolved (symbolic links followed), the project first.
        named: the folders the configuration names in ``allowed_paths`` (for messages).
        source: the configuration file (for messages).
    """

    project: Path
    roots: tuple[Path, ...]
    named: tuple[Path, ...] = ()
    source: str | None = None


#: Set by the command line (:func:`set_path_policy`); library calls without it check only the path text.
_POLICY: PathPolicy | None = None


def set_path_policy(
    project: Path | None, allowed: Iterable[str | Path] = (), *, source: Path | str | None = None
) -> PathPolicy | None:
    """Confine the paths of this process to the project, the cache, the mirrors and named folders.

    Args:
        project: the project folder (``None`` lifts the confinement).
        allowed: extra folders outside the project (the config's ``allowed_paths``); relative
            ones are relative to the project.
        source: the file that names ``allowed`` (for messages).

    Returns:
        The policy now in force.
    """
    global _POLICY
    if project is None:
        _POLICY = None
        return None
    project = Path(project).resolve()
    named = tuple((project / Path(a).expanduser()).resolve() for a in allowed)
    roots = (project, cache_root().resolve(), *(m.resolve() for m in mirror_roots()), *named)
    _POLICY = PathPolicy(project, roots, named, str(source) if source is not None else None)
    return _POLICY


def path_policy() -> PathPolicy | None:
    """The confinement in force, if any."""
    return _POLICY


def confined(path: Path | str, *, source: str | None = None, field: str | None = None) -> Path:
    """Refuse a path that leads (through symbolic links too) outside the allowed folders.

    The path text alone says nothing: ``data/x.json`` may be a link to ``/etc/passwd``. The
    path is resolved (links followed; parts that do not exist yet are kept as written, so
    outputs can be checked too) and must lie in the project, the cache, a mirror or a folder
    of ``allowed_paths``. Without a policy (library use) the path is returned unchecked.

    Args:
        path: the path as given.
        source: the file that names it (for the message); the option name is used otherwise.
        field: the key or option that names it.

    Returns:
        The path as given.
    """
    policy = _POLICY
    if policy is None:
        return Path(path)
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a loop of symbolic links
        raise RecastError(f"path {str(path)!r} cannot be resolved ({exc})", path=source, field=field) from None
    if any(resolved == root or resolved.is_relative_to(root) for root in policy.roots):
        return Path(path)
    via = f" (it leads to {resolved})" if str(resolved) != str(Path(path).absolute()) else ""
    fix = (
        f"name its folder in allowed_paths in {policy.source}"
        if policy.source
        else "run the command from a folder that holds it"
    )  # a command without a run configuration
    raise RecastError(
        f"path {str(path)!r}{via} is outside the project {policy.project}, the cache and the mirrors; "
        f"copy the file into the project, or {fix}",
        path=source,
        field=field,
    )


def _kind_of(mode: int) -> str:
    """A file type in words, for messages."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def input_path(
    path: Path | str,
    *,
    source: str | None = None,
    field: str | None = None,
    kind: str = "file",
    what: str = "file",
) -> Path:
    """The one check of a path a user names for reading: inside the allowed folders, existing, the right type.

    Every entrance calls it (the command-line options, the paths inside configs, grids, bundles,
    manifests and selections, and the readers of events, workspaces and models), so that a link
    out of the project, a folder where a file is expected, or a named pipe or device (whose
    reading would block or never end) is one line naming the file and the field, before any work.

    Args:
        path: the path as given.
        source: the file that names it (for the message); the path itself is named otherwise.
        field: the key or option that names it.
        kind: ``"file"`` (a regular file), ``"dir"`` (a folder) or ``"any"`` (either).
        what: what the file is, for the "not found" message (e.g. ``"event file"``).

    Returns:
        The path as given.

    Raises:
        RecastError: outside the allowed folders (see :func:`confined`), missing, or of the wrong type.
    """
    confined(path, source=source, field=field)
    where = {"path": source or str(path), "field": field}
    named = f"{str(path)!r} " if source else ""
    try:
        mode = os.stat(path).st_mode  # follows links: the target is what is read
    except FileNotFoundError:
        raise RecastError(f"{what} {named}not found".replace("  ", " "), **where) from None
    except OSError as exc:
        raise RecastError(f"{what} {named}cannot be read ({exc.strerror})".replace("  ", " "), **where) from None
    found = _kind_of(mode)
    if kind == "file" and not stat.S_ISREG(mode):
        hint = "; name a file in it" if stat.S_ISDIR(mode) else "; only regular files are read"
        raise RecastError(f"{named}is {found}, not a regular file{hint}", **where)
    if kind == "dir" and not stat.S_ISDIR(mode):
        raise RecastError(f"{named}is {found}, not a folder", **where)
    if kind == "any" and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise RecastError(f"{named}is {found}, not a regular file or a folder; only those are used", **where)
    return Path(path)


#: Command-line options that name input or output files or folders (argparse attribute names).
PATH_OPTIONS: tuple[str, ...] = (
    "input",
    "inputs",
    "output",
    "outdir",
    "manifest",
    "patchset",
    "results",
    "tables",
    "checks",
    "fitplots",
    "yield_checks",
    "cutflows",
    "reweight",
    "reweight_checks",
    "selection",
    "onnx",
    "events",
    # the files a command writes are each named by their own option (no sidecar beside --output)
    "json",
    "csv",
    "plot",
    "plot_pdf",
    "yields",
    "cutflow",
    "selected",
    "diagnostics",
    "exclusion_plots",
    "yield_plots",
    "yield_summaries",
    "summary_plot",
    "summary_plot_pdf",
    "run_config",
    "text",
)

#: Options that name one file a command writes (each must be a regular file or a new path).
OUTPUT_OPTIONS: tuple[str, ...] = (
    "output",
    "json",
    "csv",
    "plot",
    "plot_pdf",
    "summary_plot",
    "summary_plot_pdf",
    "cutflow",
    "selected",
    "text",
)


#: Options that name files a command reads (each, if it exists, must be a regular file, not a folder or a pipe).
FILE_INPUT_OPTIONS: tuple[str, ...] = ("input", "inputs", "patchset", "selection", "onnx", "catalogue")

#: Commands whose own options may name paths outside the project (see :func:`_check_arguments`). ``run``
#: takes a model from anywhere: it copies the spectrum into its run folder, whose jobs are then confined to it.
EXPORT_COMMANDS = frozenset({"archive", "unarchive", "run"})


@contextmanager
def confine_arguments(args: Any, config: dict[str, Any] | None, config_path: Path | str | None) -> Iterator[None]:
    """Confine the paths of one command (its options and the files it reads); restored on exit.

    The project is the working directory; the configuration's ``allowed_paths`` add folders
    outside it. ``--output`` must be a regular file or a new path and ``--outdir`` a folder or a
    new path, so that a mistake is one line before any work, not a traceback after it.

    Args:
        args: the parsed command line (an ``argparse.Namespace``).
        config: the validated run configuration, if the command reads one.
        config_path: its file (for messages).
    """
    global _POLICY
    previous = _POLICY
    allowed = (config or {}).get("allowed_paths", ())
    source = str(config_path) if config is not None and config_path is not None else None
    set_path_policy(Path.cwd(), allowed, source=source)
    try:
        for key in ("analyses_dir", "signals_dir"):
            if config is not None and key in config:
                confined(config[key], source=source, field=key)
        _check_arguments(args)
        yield
    finally:
        # main() may run several commands in one process (tests, notebooks): the next one sets its own
        _POLICY = previous


def _check_arguments(args: Any) -> None:
    """Check the paths of the command-line options against the policy in force."""
    # archive and unarchive carry a run between machines: their archive and target folder are meant to be
    # anywhere (archive.py records whether the archive lies inside the project); what they pack is checked there
    options = () if getattr(args, "command", None) in EXPORT_COMMANDS else PATH_OPTIONS
    for name in options:
        value = getattr(args, name, None)
        if value is None or isinstance(value, bool):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):  # an option of the same name may be a number in another command
                confined(item, field="--" + name.replace("_", "-"))
    for name in OUTPUT_OPTIONS:
        if isinstance(getattr(args, name, None), str):
            check_output_target(Path(getattr(args, name)), field="--" + name.replace("_", "-"))
    for name in options:
        value = getattr(args, name, None)
        for item in value if isinstance(value, list) else [value]:
            # a named pipe or a device given as an input would block the read (or never end): refuse it
            # now; a file-only option must not name a folder
            if isinstance(item, str) and os.path.lexists(item):  # a missing input: the command says which
                input_path(
                    item, field="--" + name.replace("_", "-"), kind="file" if name in FILE_INPUT_OPTIONS else "any"
                )
    outdir = getattr(args, "outdir", None)
    if isinstance(outdir, str) and os.path.lexists(outdir) and not Path(outdir).is_dir():
        raise RecastError("exists and is not a folder; give a new or existing folder", path=outdir, field="--outdir")
