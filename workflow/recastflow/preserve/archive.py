"""A reproducibility archive of a finished run, and its safe extraction.

``create_archive`` packs into one deterministic ``.tar.gz``:

- the workflow: every git-tracked file of the checkout (Snakefile, rules, package, config, envs, ...);
- the inputs: everything under ``config/`` plus every file the configured grids read (even if untracked);
- the results folder of the run;
- ``MANIFEST.json``: sha256 of every packed file, Python and package versions, platform, git commit,
  container image digests;
- ``ro-crate-metadata.json``: an RO-Crate describing workflow, configuration, analysis bundles and results;
- ``RESULTS.sha256``: the reproducible results in ``sha256sum -c`` format, to check a re-run.

``extract_archive`` unpacks it only after checking every member (no absolute paths, no ``..``, no links
leaving the tree, no device files) and verifies every file against ``MANIFEST.json``.

Why not ``snakemake --archive``: it creates and packs the rules' conda environments and stops with
"Error running conda info" where conda is absent, even without ``--sdm conda``; it also stores the
files with their real mtimes and owners, so the same run never gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

from recastflow.core.errors import RecastError

#: Version tag of the archive layout, checked on extraction.
FORMAT = "recastflow-archive/1"
MANIFEST = "MANIFEST.json"
CRATE = "ro-crate-metadata.json"
RESULT_SUMS = "RESULTS.sha256"
#: Files the archive writes itself; a tracked file of the same name would be shadowed.
GENERATED = (MANIFEST, CRATE, RESULT_SUMS)
#: Every member gets this mtime (1970-01-01), owner 0/0 and no owner names, so the bytes depend on content only.
MTIME = 0
#: Sub-folders of the results folder that a re-run cannot reproduce (Snakemake's per-job time and memory).
#: They are packed (they document what the run cost) and verified on extraction, but left out of
#: RESULTS.sha256 and of ``compare_results``.
NOT_REPRODUCIBLE = ("benchmarks",)
#: Files that name the workflow's entry point, in the order Snakemake looks for them.
SNAKEFILES = ("Snakefile", "workflow/Snakefile", "snakefile", "workflow/snakefile")
_CHUNK = 1 << 20
_FORMATS = {
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".png": "image/png",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".md": "text/markdown",
    ".py": "text/x-python",
    ".toml": "application/toml",
    ".txt": "text/plain",
}
_SPDX = "https://spdx.org/licenses/"


@dataclass(frozen=True)
class Packed:
    """One file to pack: where it is read from and what the manifest says about it."""

    name: str  # POSIX path inside the archive, relative to the project
    source: Path
    sha256: str
    size: int
    executable: bool


@dataclass
class Summary:
    """What ``create_archive`` packed, for the command's log line."""

    output: Path
    counts: dict[str, int] = field(default_factory=dict)
    commit: str | None = None


# -- hashing ---------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingReader:
    """A read-only file wrapper that hashes what tarfile reads, to catch files changing mid-archive."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.digest.update(data)
        return data


# -- git --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitState:
    """The tracked files of a checkout and the commit they belong to."""

    tracked: tuple[str, ...]
    commit: str | None
    commit_date: str | None
    modified: tuple[str, ...]


def _git(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run one git command in the project; a missing git or a failure is a RecastError."""
    try:
        proc = subprocess.run(["git", *args], cwd=project, capture_output=True, check=False)
    except FileNotFoundError:
        raise RecastError(
            "git is not installed; the archive packs the workflow's git-tracked files", path=str(project)
        ) from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RecastError(
            f"git {args[0]} failed: {msg[0] if msg else 'exit code ' + str(proc.returncode)}", path=str(project)
        )
    return proc


def _split_z(out: bytes) -> list[str]:
    """Split git's NUL-separated ``-z`` output (paths may contain spaces or newlines)."""
    return [p.decode("utf-8", errors="surrogateescape") for p in out.split(b"\0") if p]


def git_state(project: Path) -> GitState:
    """Read the tracked files (relative to ``project``), HEAD and the files changed since HEAD.

    Raises:
        RecastError: if ``project`` is not inside a git work tree.
    """
    probe = _git(project, "rev-parse", "--is-inside-work-tree", check=False)
    if probe.returncode != 0 or probe.stdout.strip() != b"true":
        # git's own reason matters when it is not the obvious one (e.g. "detected dubious ownership")
        reason = (probe.stderr.decode(errors="replace").strip().splitlines() or [""])[0]
        raise RecastError(
            "not a git checkout: the archive packs the workflow's git-tracked files; run it in the project's "
            f"clone (or make one: git init && git add -A && git commit){' [git: ' + reason + ']' if reason else ''}",
            path=str(project),
        )
    tracked = _split_z(_git(project, "ls-files", "-z", "--cached", "--", ".").stdout)
    head = _git(project, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:  # a fresh repository without commits
        return GitState(tuple(sorted(set(tracked))), None, None, ())
    commit = head.stdout.decode().strip()
    date = _git(project, "show", "-s", "--format=%cI", "HEAD").stdout.decode().strip()
    # `--relative` keeps the paths relative to the project, like ls-files
    modified = _split_z(_git(project, "diff", "--name-only", "--relative", "-z", "HEAD", "--").stdout)
    return GitState(tuple(sorted(set(tracked))), commit, date, tuple(sorted(set(modified))))


# -- what goes in --------------------------------------------------------------------------
def _relative(path: Path, project: Path, *, what: str) -> str:
    """The project-relative POSIX name of a path, refusing anything outside the project."""
    resolved_project = project.resolve()
    candidate = path if path.is_absolute() else project / path
    try:
        rel = Path(os.path.normpath(candidate)).relative_to(resolved_project)
    except ValueError:
        try:  # the project may be reached through a symlink
            rel = candidate.resolve().relative_to(resolved_project)
        except ValueError:
            raise RecastError(f"{what} is outside the project and cannot be archived", path=str(path)) from None
    if rel == Path(".") or ".." in rel.parts:
        raise RecastError(f"{what} is outside the project and cannot be archived", path=str(path))
    return rel.as_posix()


def _under(name: str, folder: str) -> bool:
    return name == folder or name.startswith(folder.rstrip("/") + "/")


def result_files(project: Path, results: Path) -> list[str]:
    """Every file under the results folder, as project-relative names, sorted.

    Leftover temporary files of interrupted atomic writes (``.<name>.*.tmp``, see ``io.py``) are
    skipped: they are not results.
    """
    folder = project / results if not results.is_absolute() else results
    if not folder.is_dir():
        raise RecastError("results folder not found; run the workflow first", path=str(results))
    names = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for fname in files:
            if fname.startswith(".") and fname.endswith(".tmp"):
                continue
            names.append(_relative(Path(root) / fname, project, what="result file"))
    if not names:
        raise RecastError("results folder is empty; run the workflow first", path=str(results))
    return sorted(names)


def input_files(project: Path, config: dict[str, Any], config_path: Path, tracked: Iterable[str]) -> list[str]:
    """The run's inputs: tracked files under config/, the run configuration and every file the grids read.

    Files the grids read are included even when git does not track them (large published patches
    are often kept out of git), so the archive can re-run without the original checkout.
    """
    from recastflow.analyses.bundle import load_analysis, load_grid

    names = {n for n in tracked if _under(n, "config")}
    names.add(_relative(config_path, project, what="run configuration"))
    # relative folders in the configuration are relative to the project, wherever we are called from
    signals_dir = project / config.get("signals_dir", "config/signals")
    analyses_dir = project / config.get("analyses_dir", "config/analyses")
    for grid_name in config.get("grids", []):
        grid = load_grid(grid_name, signals_dir)
        analysis = load_analysis(grid.analysis, analyses_dir)
        files = [grid.path, analysis.folder / "analysis.yaml", analysis.workspace(grid.workspace).path]
        files += [path for p in grid.points if (path := p.patch or p.yields) is not None]
        if grid.patchset:
            files.append(grid.patchset)
        for f in files:
            if not f.is_file():
                raise RecastError("input file of the run not found", path=str(f))
            names.add(_relative(f, project, what=f"input of grid {grid_name}"))
    return sorted(names)


def _packed(project: Path, name: str) -> Packed:
    """Hash one file; a symlink is packed as the file it points to (archives hold regular files only)."""
    path = project / name
    if not path.is_file():  # follows symlinks: a link to a file is fine, to a folder or nowhere is not
        raise RecastError(
            "not a regular file (a folder, submodule, dangling symlink or special file); cannot be archived", path=name
        )
    st = path.stat()
    return Packed(name, path, sha256_file(path), st.st_size, bool(st.st_mode & 0o111))


# -- environment ------------------------------------------------------------------------------
def python_packages() -> dict[str, str]:
    """Name → version of every installed distribution this interpreter sees (first one wins, as for import)."""
    found: dict[str, tuple[str, str]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        found.setdefault(key, (name, dist.version))
    return {name: version for name, version in sorted(found.values(), key=lambda nv: nv[0].lower())}


def environment() -> dict[str, Any]:
    """Python version, platform and packages of the interpreter that makes the archive."""
    libc, libc_version = platform.libc_ver()
    return {
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "libc": f"{libc} {libc_version}".strip() or None,
        },
        "packages": python_packages(),
    }


def container_digests(project: Path) -> dict[str, Any] | None:
    """The images pinned in ``containers/lock.yaml``, or None if there is no lock file.

    Every string holding a ``sha256:<64 hex>`` digest (``stages: {patch: image@sha256:...}`` in the
    lock that containers/build.sh writes) is recorded in full under its dotted key path, next to
    the lock file's own sha256; walking the whole document keeps this independent of the layout.
    """
    from recastflow.core.config import read_document

    lock = project / "containers" / "lock.yaml"
    if not lock.is_file():
        return None

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key in node:
                walk(node[key], f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")
        elif isinstance(node, str) and re.search(r"sha256:[0-9a-f]{64}", node):
            images[where] = node

    images: dict[str, str] = {}
    walk(read_document(lock), "")
    return {"lock_file": "containers/lock.yaml", "sha256": sha256_file(lock), "images": images}


def _license(project: Path) -> str | None:
    """The SPDX licence expression of the project's ``pyproject.toml``, if it declares one."""
    path = project / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        lic = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {}).get("license")
    except tomllib.TOMLDecodeError as exc:
        raise RecastError(f"invalid TOML: {exc}", path="pyproject.toml") from None
    if isinstance(lic, dict):  # the older table form {text = "..."}
        lic = lic.get("text")
    return lic if isinstance(lic, str) and lic else None


# -- metadata files ---------------------------------------------------------------------------------
def _reproducible(name: str, results_dir: str) -> bool:
    return not any(_under(name, f"{results_dir}/{sub}") for sub in NOT_REPRODUCIBLE)


def result_sums(results: dict[str, str], results_dir: str) -> bytes:
    """``sha256sum -c`` input for the results a re-run must reproduce byte for byte."""
    lines = []
    for name, digest in sorted(results.items()):
        if not _reproducible(name, results_dir):
            continue
        if "\\" in name or "\n" in name:  # GNU coreutils' escaping for such names
            lines.append("\\" + digest + "  " + name.replace("\\", "\\\\").replace("\n", "\\n"))
        else:
            lines.append(f"{digest}  {name}")
    return ("\n".join(lines) + "\n").encode()


def _bundles(project: Path, names: Iterable[str], analyses_dir: str) -> list[tuple[str, dict[str, Any]]]:
    """(folder, analysis.yaml content) of every analysis bundle ``<analyses_dir>/<ID>/`` among the packed files."""
    from recastflow.core.config import read_document

    out = []
    for name in sorted(names):
        path = PurePosixPath(name)
        if path.name == "analysis.yaml" and path.parent.parent.as_posix() == analyses_dir:
            doc = read_document(project / name)
            if isinstance(doc, dict):
                out.append((str(PurePosixPath(name).parent), doc))
    return out


def _file_props(item: Packed, name: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"contentSize": str(item.size)}
    fmt = _FORMATS.get(PurePosixPath(item.name).suffix.lower())
    if fmt:
        props["encodingFormat"] = fmt
    if name:
        props["name"] = name
    return props


def crate_metadata(
    *,
    project: Path,
    sections: dict[str, dict[str, Packed]],
    snakefile: str,
    config_name: str,
    results_dir: str,
    analyses_dir: str,
    grids: list[str],
    git: GitState,
) -> bytes:
    """The RO-Crate metadata (``ro-crate-metadata.json``) of the archive, made with the ``rocrate`` package.

    Entities: the Snakefile as the main ComputationalWorkflow (programmingLanguage Snakemake), every
    packed file, each analysis bundle as a Dataset based on its HEPData record, and a CreateAction
    linking the workflow, its inputs and its results. No entity carries a random id or the current
    time, so the same run gives the same bytes.
    """
    try:
        from rocrate.model.contextentity import ContextEntity
        from rocrate.rocrate import ROCrate
    except ImportError:
        raise RecastError(
            "the 'rocrate' package is not installed (a dependency of recastflow: reinstall it with `pip install -c requirements.lock -e .`)"
        ) from None

    crate = ROCrate()
    # RO-Crate requires datePublished; the commit date is fixed for a checkout, "now" is not
    crate.datePublished = git.commit_date or "1970-01-01T00:00:00+00:00"
    crate.name = f"recastflow run: {', '.join(grids)}"
    crate.description = (
        f"A recastflow run (workflow, configuration {config_name}, analysis bundles and the "
        f"results in {results_dir}/), packed by 'recastflow archive'. Re-run with "
        "'snakemake --cores all --forceall' and check with 'sha256sum -c RESULTS.sha256'."
    )
    lic = _license(project)
    if lic:
        # a single SPDX id has a URL; an expression such as "MIT OR Apache-2.0" does not
        lic_id = _SPDX + lic if re.fullmatch(r"[A-Za-z0-9.+-]+", lic) else "#license"
        crate.license = crate.add(ContextEntity(crate, lic_id, properties={"@type": "CreativeWork", "name": lic}))
    try:
        sm_version: str | None = metadata.version("snakemake")
    except metadata.PackageNotFoundError:
        sm_version = None
    everything = {name: item for section in sections.values() for name, item in section.items()}
    workflow = crate.add_workflow(
        dest_path=snakefile,
        main=True,
        lang="snakemake",
        lang_version=sm_version,
        properties=_file_props(everything[snakefile], "recastflow Snakemake workflow"),
    )
    if git.commit:
        workflow["version"] = git.commit
    entities = {snakefile: workflow}
    for name in sorted(everything):
        if name not in entities:
            entities[name] = crate.add_file(dest_path=name, properties=_file_props(everything[name]))
    entities[config_name]["name"] = "run configuration"

    for folder, doc in _bundles(project, sections["inputs"], analyses_dir):
        _add_bundle(crate, folder, doc, [entities[n] for n in sorted(entities) if _under(n, folder)])

    crate.add_action(
        workflow,
        identifier="#run",
        object=[entities[n] for n in sorted(sections["inputs"])],
        result=[entities[n] for n in sorted(sections["results"])],
        properties={
            "@type": "CreateAction",
            "name": "recastflow workflow run",
            "description": f"snakemake run with {config_name}; results in {results_dir}/",
        },
    )
    doc = crate.metadata.generate()
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _add_bundle(crate: Any, folder: str, doc: dict[str, Any], parts: list[Any]) -> None:
    """An analysis bundle as a Dataset, based on its HEPData record (all HEPData content is CC0)."""
    from rocrate.model.contextentity import ContextEntity

    props: dict[str, Any] = {"name": f"analysis bundle {doc.get('id', folder)}"}
    if doc.get("title"):
        props["description"] = " ".join(str(doc["title"]).split())
    paper = doc.get("paper") or {}
    if paper.get("arxiv"):
        props["citation"] = {"@id": f"https://arxiv.org/abs/{paper['arxiv']}"}
    record = (doc.get("hepdata") or {}).get("record")
    dataset = crate.add_dataset(dest_path=folder, properties=props)
    if record:
        cc0 = crate.get(_SPDX + "CC0-1.0") or crate.add(
            ContextEntity(crate, _SPDX + "CC0-1.0", properties={"@type": "CreativeWork", "name": "CC0-1.0"})
        )
        rec_props: dict[str, Any] = {
            "@type": "Dataset",
            "name": f"HEPData record {record}",
            "identifier": record,
            "license": {"@id": cc0.id},
        }
        if doc["hepdata"].get("doi"):
            rec_props["sameAs"] = {"@id": f"https://doi.org/{doc['hepdata']['doi']}"}
        rec = crate.add(ContextEntity(crate, f"https://www.hepdata.net/record/{record}", properties=rec_props))
        dataset["isBasedOn"] = rec
    if parts:
        dataset["hasPart"] = parts


def manifest_bytes(
    *,
    sections: dict[str, dict[str, Packed]],
    config_name: str,
    results_dir: str,
    git: GitState,
    containers: dict[str, Any] | None,
    env: dict[str, Any],
) -> bytes:
    """``MANIFEST.json``: what was packed (sha256 per file, by role) and what it was made with."""
    from recastflow import __version__

    doc = {
        "format": FORMAT,
        "recastflow": __version__,
        "config": config_name,
        "results_dir": results_dir,
        "not_reproducible": [f"{results_dir}/{sub}/" for sub in NOT_REPRODUCIBLE],
        "git": {"commit": git.commit, "commit_date": git.commit_date, "modified_since_commit": list(git.modified)},
        **env,
        "containers": containers,
        "files": {
            role: {name: item.sha256 for name, item in sorted(items.items())} for role, items in sections.items()
        },
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


# -- writing the archive ------------------------------------------------------------------------------
def _tarinfo(name: str, size: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_tar(output: Path, files: list[Packed], generated: dict[str, bytes]) -> None:
    """Write members sorted by name to a temporary file, then rename it over ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    members: list[tuple[str, Packed | bytes]] = [(p.name, p) for p in files] + list(generated.items())
    members.sort(key=lambda m: m[0])
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            # filename="" and mtime=0 keep the gzip header free of the temp name and the clock
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name, item in members:
                if isinstance(item, bytes):
                    tar.addfile(_tarinfo(name, len(item), False), io.BytesIO(item))
                else:
                    _add_file(tar, item)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; the archive is meant to be shared
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _add_file(tar: tarfile.TarFile, item: Packed) -> None:
    """Add one file, refusing it if it changed since it was hashed for the manifest."""
    with item.source.open("rb") as fh:
        reader = _HashingReader(fh)
        try:
            tar.addfile(_tarinfo(item.name, item.size, item.executable), reader)
        except OSError:  # tarfile: "unexpected end of data" when the file shrank
            raise RecastError("file changed while it was being archived; archive again", path=item.name) from None
    if reader.digest.hexdigest() != item.sha256:
        raise RecastError("file changed while it was being archived; archive again", path=item.name)


def create_archive(
    output: Path, *, config: dict[str, Any], config_path: Path, results: Path, project: Path | None = None
) -> Summary:
    """Pack workflow, inputs, results and their metadata into one deterministic ``.tar.gz``.

    Args:
        output: the archive to write (atomically); must not lie inside the results folder.
        config: the validated run configuration.
        config_path: the file it was read from.
        results: the results folder of the finished run.
        project: the project folder (a git checkout); default: the current directory.

    Raises:
        RecastError: not a git checkout, no results, an input outside the project, a name clash.
    """
    project = Path.cwd().absolute() if project is None else project.absolute()
    git = git_state(project)
    results_dir = _relative(results, project, what="results folder")
    out_abs = output if output.is_absolute() else project / output
    out_name = _relative(out_abs, project, what="archive") if _inside(out_abs, project) else None
    if out_name is not None and _under(out_name, results_dir):
        raise RecastError(
            f"the archive must not be written inside the results folder {results_dir}/ it packs", path=str(output)
        )
    config_name = _relative(config_path, project, what="run configuration")

    results_names = result_files(project, results)
    inputs_names = [n for n in input_files(project, config, config_path, git.tracked) if not _under(n, results_dir)]
    taken = set(inputs_names) | {out_name}  # the archive never packs (an older copy of) itself
    workflow_names = [n for n in git.tracked if not _under(n, results_dir) and n not in taken]
    # a tracked file deleted from the work tree is not part of what ran
    workflow_names = [n for n in workflow_names if (project / n).exists() or (project / n).is_symlink()]
    clash = sorted(set(GENERATED) & (set(workflow_names) | set(inputs_names)))
    if clash:
        raise RecastError(
            f"{clash[0]} is written by 'recastflow archive' and must not be a project file", path=clash[0]
        )
    snakefile = next((s for s in SNAKEFILES if s in workflow_names), None)
    if snakefile is None:
        raise RecastError(
            "no git-tracked Snakefile in the project (looked for " + ", ".join(SNAKEFILES) + ")", path=str(project)
        )

    sections = {
        "workflow": {n: _packed(project, n) for n in workflow_names},
        "inputs": {n: _packed(project, n) for n in inputs_names},
        "results": {n: _packed(project, n) for n in results_names},
    }
    analyses_dir = _relative(project / config.get("analyses_dir", "config/analyses"), project, what="analyses_dir")
    crate = crate_metadata(
        project=project,
        sections=sections,
        snakefile=snakefile,
        config_name=config_name,
        results_dir=results_dir,
        analyses_dir=analyses_dir,
        grids=list(config.get("grids", [])),
        git=git,
    )
    sums = result_sums({n: p.sha256 for n, p in sections["results"].items()}, results_dir)
    sections["metadata"] = {
        CRATE: Packed(CRATE, Path(CRATE), hashlib.sha256(crate).hexdigest(), len(crate), False),
        RESULT_SUMS: Packed(RESULT_SUMS, Path(RESULT_SUMS), hashlib.sha256(sums).hexdigest(), len(sums), False),
    }
    manifest = manifest_bytes(
        sections=sections,
        config_name=config_name,
        results_dir=results_dir,
        git=git,
        containers=container_digests(project),
        env=environment(),
    )
    files = [p for role in ("workflow", "inputs", "results") for p in sections[role].values()]
    _write_tar(out_abs, files, {MANIFEST: manifest, CRATE: crate, RESULT_SUMS: sums})
    return Summary(output=output, counts={role: len(items) for role, items in sections.items()}, commit=git.commit)


def _inside(path: Path, project: Path) -> bool:
    try:
        Path(os.path.normpath(path.absolute())).relative_to(project.resolve())
        return True
    except ValueError:
        return False


# -- extraction ------------------------------------------------------------------------------------
def _unsafe(member: tarfile.TarInfo, why: str, archive: Path) -> RecastError:
    # repr() keeps a crafted name with newlines on one line
    return RecastError(f"unsafe member {member.name!r}: {why}; nothing was extracted", path=str(archive))


def _escapes(path: str) -> bool:
    """True if a relative POSIX path leaves its root (after resolving '..')."""
    norm = os.path.normpath(path)
    return norm == ".." or norm.startswith("../") or norm.startswith("/")


def check_members(members: list[tarfile.TarInfo], archive: Path) -> None:
    """Refuse absolute paths, '..', links leaving the tree, paths through links, duplicates and special files.

    Raises:
        RecastError: naming the first offending member.
    """
    seen: set[str] = set()
    links: set[str] = set()
    regular: set[str] = set()
    for m in members:
        name = m.name
        posix = PurePosixPath(name)
        if not name or name.startswith("/") or PureWindowsPath(name).anchor:
            raise _unsafe(m, "absolute path", archive)
        if ".." in posix.parts or ".." in PureWindowsPath(name).parts:
            raise _unsafe(m, "'..' path component", archive)
        norm = posix.as_posix()
        if norm == "." and not m.isdir():
            raise _unsafe(m, "empty file name", archive)
        if norm in seen and not m.isdir():
            raise _unsafe(m, "appears twice", archive)
        if any(str(parent) in links for parent in posix.parents):
            raise _unsafe(m, "path goes through a link", archive)
        if m.issym():
            if m.linkname.startswith("/") or _escapes(str(posix.parent / m.linkname)):
                raise _unsafe(m, f"symlink pointing outside the archive ({m.linkname!r})", archive)
            links.add(norm)
        elif m.islnk():
            target = PurePosixPath(m.linkname).as_posix()
            if m.linkname.startswith("/") or _escapes(m.linkname) or target not in regular:
                raise _unsafe(m, f"hard link to something outside the archive ({m.linkname!r})", archive)
            links.add(norm)
        elif m.isreg():
            regular.add(norm)
        elif not m.isdir():
            raise _unsafe(m, "device, FIFO or other special file", archive)
        seen.add(norm)


def read_manifest(root: Path, archive: Path) -> dict[str, Any]:
    """Read and check ``MANIFEST.json`` of an extracted archive."""
    path = root / MANIFEST
    if not path.is_file() or path.is_symlink():
        raise RecastError(f"no {MANIFEST}: not a recastflow archive", path=str(archive))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecastError(f"{MANIFEST} is not valid JSON: {exc}", path=str(archive)) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        raise RecastError(f"{MANIFEST} is not a {FORMAT} manifest", path=str(archive))
    return doc


def manifest_files(manifest: dict[str, Any]) -> dict[str, str]:
    """All files the manifest lists, name → sha256, across its roles."""
    out: dict[str, str] = {}
    for role in sorted(manifest["files"]):
        for name, digest in manifest["files"][role].items():
            out[name] = digest
    return out


def _tree_files(root: Path) -> tuple[list[str], list[str]]:
    """(regular files, other non-directories) under root, as sorted relative POSIX names."""
    files: list[str] = []
    others: list[str] = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for d in dirs:
            if (Path(dirpath) / d).is_symlink():
                others.append((Path(dirpath) / d).relative_to(root).as_posix())
        for n in names:
            p = Path(dirpath) / n
            (files if p.is_file() and not p.is_symlink() else others).append(p.relative_to(root).as_posix())
    return sorted(files), sorted(others)


def verify_tree(root: Path, manifest: dict[str, Any], archive: Path) -> None:
    """Check that root holds exactly the manifest's files, each with its sha256.

    Raises:
        RecastError: naming the first file that is missing, extra, not regular or different.
    """
    expected = manifest_files(manifest)
    files, others = _tree_files(root)
    problems: list[str] = []
    problems += [f"{n!r} is a link or special file; archives hold regular files only" for n in others]
    present = set(files) - {MANIFEST}
    problems += [f"{n!r} is not listed in {MANIFEST}" for n in sorted(present - set(expected))]
    problems += [f"{n!r} is listed in {MANIFEST} but missing from the archive" for n in sorted(set(expected) - present)]
    for name in sorted(present & set(expected)):
        actual = sha256_file(root / name)
        if actual != expected[name]:
            problems.append(f"{name!r}: sha256 mismatch (file {actual[:12]}..., {MANIFEST} {expected[name][:12]}...)")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RecastError(f"verification failed: {problems[0]}{more}; nothing was extracted", path=str(archive))


def extract_archive(archive: Path, into: Path) -> dict[str, Any]:
    """Extract a recastflow archive into a new or empty folder, safely, and verify every file.

    Members are checked before anything is written, extracted with tarfile's ``data`` filter into a
    temporary sibling folder, verified against ``MANIFEST.json`` and only then renamed to ``into``:
    a refused archive leaves nothing behind.

    Returns:
        The manifest.

    Raises:
        RecastError: unreadable archive, unsafe member, failed verification, non-empty target.
    """
    if not archive.is_file():
        raise RecastError("archive not found", path=str(archive))
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise RecastError("refusing to extract into an existing non-empty folder or file", path=str(into))
    into.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{into.name}.", suffix=".tmp", dir=into.parent))
    try:
        try:
            with tarfile.open(archive, mode="r:*") as tar:
                members = tar.getmembers()
                check_members(members, archive)
                # our checks first (clear messages), then tarfile's own 'data' filter as a second line
                tar.extractall(tmp, members=members, filter="data")
        except tarfile.FilterError as exc:
            member = getattr(exc, "tarinfo", None)
            raise RecastError(
                f"unsafe member {getattr(member, 'name', '?')!r}: {exc}; nothing was extracted", path=str(archive)
            ) from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            detail = "; ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip())  # one line
            raise RecastError(f"not a readable .tar.gz archive: {detail}", path=str(archive)) from None
        manifest = read_manifest(tmp, archive)
        verify_tree(tmp, manifest, archive)
        os.chmod(tmp, 0o755)  # mkdtemp made it private
        if into.exists():
            into.rmdir()  # empty (checked above); rename cannot replace it portably
        os.replace(tmp, into)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def compare_results(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Results of a re-run in ``root`` that differ from the archived ones (timing files excluded).

    Returns:
        Sorted descriptions: results missing, extra or with another sha256; empty if reproduced.
    """
    results_dir = manifest["results_dir"]
    expected = {n: d for n, d in manifest["files"]["results"].items() if _reproducible(n, results_dir)}
    tree = root / results_dir
    files = _tree_files(tree)[0] if tree.is_dir() else []
    present = {f"{results_dir}/{n}" for n in files if not (Path(n).name.startswith(".") and n.endswith(".tmp"))}
    present = {n for n in present if _reproducible(n, results_dir)}
    out = [f"missing: {n}" for n in sorted(set(expected) - present)]
    out += [f"extra: {n}" for n in sorted(present - set(expected))]
    out += [f"differs: {n}" for n in sorted(present & set(expected)) if sha256_file(root / n) != expected[n]]
    return out


__all__ = [
    "CRATE",
    "FORMAT",
    "MANIFEST",
    "RESULT_SUMS",
    "check_members",
    "compare_results",
    "create_archive",
    "extract_archive",
    "git_state",
    "verify_tree",
]
