"""Published material from its origin: a verified, content-addressed cache, fed by mirrors or the network.

A bundle names each published file it needs (a :class:`Source`: origin URL or DOI, file name, sha256,
whether it is an archive). :func:`ensure` makes the file, or the archive's members, available under
``<cache>/objects/<sha256>/`` and returns that folder. In order it tries

1. the cache: an object folder exists only once its content was verified (it is renamed into place
   whole), so its presence is the proof and a second fetch reads nothing and copies nothing;
2. the mirror folders of ``RECASTFLOW_MIRROR`` (``os.pathsep``-separated): files are found by name
   anywhere below a folder and used only if their sha256 matches;
3. for a source ``within`` another one (an archive inside a published archive), that member of the
   other source, fetched first;
4. the network (``urllib``), with ``Accept: application/x-tar`` for HEPData DOIs, which answer a wrong
   ``Accept`` header with HTTP 406.

Everything is verified (sha256 of the file, then members and workspace digests) in a temporary
folder inside the cache, then renamed into place, under an exclusive ``fcntl`` lock per object, so two
concurrent runs neither download twice nor see a half-written folder, and a refused source leaves
nothing behind. Archives are unpacked safely: no absolute paths, no ``..``, no links, no devices.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import http.client
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from recastflow.core.errors import RecastError
from recastflow.core.io import cache_root as cache_dir
from recastflow.core.io import mirror_roots as mirror_dirs

CHUNK = 1 << 16
HEPDATA_ACCEPT = "application/x-tar"
ARCHIVE_SUFFIXES = {
    ".tar": "tar",
    ".tar.gz": "tar",
    ".tgz": "tar",
    ".tar.bz2": "tar",
    ".tar.xz": "tar",
    ".zip": "zip",
    ".gz": "gzip",
}


def unpack_kind(file: str) -> str:
    """How a file is unpacked, from its name: ``tar``, ``zip``, ``gzip`` (one compressed file) or ``none``."""
    lower = file.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return ARCHIVE_SUFFIXES[suffix]
    return "none"


@dataclass(frozen=True)
class Source:
    """One published file: where it comes from and what its bytes must be.

    Attributes:
        name: its key in the bundle's ``sources`` (for messages).
        file: the file name, as published; mirrors are searched for it.
        sha256: sha256 of the file's bytes.
        url: where to download it (a DOI is turned into ``https://doi.org/<doi>``).
        accept: the HTTP ``Accept`` header to send (HEPData DOIs need ``application/x-tar``).
        unpack: ``tar``, ``zip``, ``gzip`` or ``none`` (from the file name unless given).
        size: the file's size in bytes, if known (a download of another size is refused).
        origin: a human description of the origin (DOI or URL) for messages and the catalogue.
        licence: the licence of the material, for the catalogue.
        bundle: the file that declares the source (for messages).
        within: for a file published inside another source's archive (a nested archive), that
            source and the member's path in it.
    """

    name: str
    file: str
    sha256: str
    url: str | None = None
    accept: str | None = None
    unpack: str = "none"
    size: int | None = None
    origin: str = ""
    licence: str = ""
    bundle: Path | None = None
    within: tuple[Source, str] | None = None

    @property
    def where(self) -> str:
        """The key that declares this source, for error messages."""
        return f"sources.{self.name}"

    @property
    def directory(self) -> Path:
        """The cache folder of this source (it exists only once verified)."""
        return cache_dir() / "objects" / self.sha256

    def path(self, member: str | None = None) -> Path:
        """Where a member (or the file itself, or its decompressed content) is once fetched.

        The path is known without fetching: bundles compute it at load time and jobs read it after
        the fetch step.
        """
        if member is None:
            if self.unpack in ("tar", "zip"):
                return self.directory
            member = self.content_name
        rel = safe_member_name(member, source=self)
        return self.directory.joinpath(*rel.parts)

    @property
    def content_name(self) -> str:
        """The name of the single file a non-archive source gives (``x.json`` for ``x.json.gz``)."""
        if self.unpack == "gzip":
            return self.file[:-3] if self.file.lower().endswith(".gz") else self.file + ".out"
        return self.file

    def fetched(self) -> bool:
        """True when the source is in the cache (verified)."""
        return self.directory.is_dir()


def source_from_doc(
    name: str, doc: Mapping[str, Any], bundle: Path | None = None, others: Mapping[str, Source] | None = None
) -> Source:
    """A :class:`Source` from its entry in a bundle's ``sources`` (schema-checked already).

    Args:
        name: the entry's key.
        doc: the entry.
        bundle: the file that declares it (for messages).
        others: the sources declared before it, by name: an entry ``within`` another names one of them.
    """
    url = doc.get("url")
    accept = doc.get("accept")
    if url is None and "doi" in doc:
        url = f"https://doi.org/{doc['doi']}"
        # HEPData resolves a resource DOI to the file only when asked for it by type (else HTTP 406)
        accept = accept or HEPDATA_ACCEPT
    file = doc["file"]
    if "/" in file or "\\" in file or file in ("", ".", ".."):
        raise RecastError(
            f"file {file!r} must be a plain file name",
            path=str(bundle) if bundle else None,
            field=f"sources.{name}.file",
        )
    within = None
    if "within" in doc:
        outer, member = doc["within"]["source"], doc["within"]["member"]
        if outer not in (others or {}):
            raise RecastError(
                f"{outer!r} is not a source declared before {name!r} (declared: {', '.join(others or {}) or 'none'})",
                path=str(bundle) if bundle else None,
                field=f"sources.{name}.within.source",
            )
        if (others or {})[outer].unpack not in ("tar", "zip"):
            raise RecastError(
                f"source {outer!r} is not an archive: nothing is inside it",
                path=str(bundle) if bundle else None,
                field=f"sources.{name}.within.source",
            )
        safe_member_name(member, archive=str(bundle) if bundle else None)
        within = (others[outer], member)  # type: ignore[index]
    return Source(
        name=name,
        file=file,
        sha256=doc["sha256"].lower(),
        url=url,
        accept=accept,
        unpack=doc.get("unpack", unpack_kind(file)),
        size=doc.get("size"),
        origin=f"doi:{doc['doi']}" if "doi" in doc else (url or ""),
        licence=doc.get("licence", ""),
        bundle=bundle,
        within=within,
    )


def safe_member_name(name: str, *, source: Source | None = None, archive: str | None = None) -> PurePosixPath:
    """A member name as a relative path, refusing absolute paths, ``..`` and empty names."""
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    parts = [p for p in path.parts if p not in ("", ".")]
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in parts or not parts:
        where = archive or (source.file if source else "archive")
        raise RecastError(
            f"unsafe member name {name!r} (absolute, '..' or empty): refused",
            path=where,
            field=source.where if source else None,
        )
    return PurePosixPath(*parts)


def _digest_of_json(path: Path) -> str:
    """pyhf's workspace digest (``pyhf.utils.digest``) of a JSON file, without importing pyhf."""
    with path.open("rb") as fh:
        obj = json.load(fh)
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf8")).hexdigest()


def json_digest(obj: Any) -> str:
    """pyhf's digest (``pyhf.utils.digest``) of a JSON-serialisable object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf8")).hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# -- the lock ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(source: Source) -> Iterator[None]:
    """An exclusive lock for one object of the cache (another process fetching it waits here)."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{source.sha256}.lock", "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"recastflow: waiting for another process fetching {source.file} ...", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- obtaining the bytes -------------------------------------------------------------------------------
def _mirror_candidates(file: str) -> Iterator[Path]:
    """Files called ``file`` anywhere below the mirror folders, in the order the folders are given."""
    for root in mirror_dirs():
        if not root.is_dir():
            continue
        direct = root / file
        if direct.is_file():
            yield direct
        for dirpath, _dirs, files in os.walk(root):
            if file in files and Path(dirpath) != root:
                yield Path(dirpath) / file


def _from_mirror(source: Source) -> tuple[Path | None, list[str]]:
    """A mirror file with the source's name and sha256 (or None), and the same-name files with other bytes."""
    others: list[str] = []
    for candidate in _mirror_candidates(source.file):
        digest = sha256_file(candidate)
        if digest == source.sha256:
            return candidate, others
        others.append(f"{candidate} (sha256 {digest})")
    return None, others


class _Progress:
    """A one-line progress bar on stderr (a line at start and end only when stderr is not a terminal)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        if not self.tty:
            size = f" ({total / 1e6:.1f} MB)" if total else ""
            print(f"recastflow: downloading {label}{size}", file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty and now - self.last > 0.1:
            self.last = now
            if self.total:
                frac = min(self.done / self.total, 1.0)
                bar = "#" * int(30 * frac)
                msg = f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}% {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
            else:
                msg = f"\r{self.label} {self.done / 1e6:.1f} MB"
            sys.stderr.write(msg)
            sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
        else:
            print(f"recastflow: downloaded {self.label} ({self.done} bytes)", file=sys.stderr)


def _download(source: Source, dest: Path) -> None:
    """Download the source to ``dest``, refusing HTTP errors, truncation and a wrong size."""
    fail = dict(path=source.url or source.file, field=source.where)
    if not source.url:
        raise RecastError(
            f"{source.file} is in no mirror folder (RECASTFLOW_MIRROR={os.environ.get('RECASTFLOW_MIRROR', '')!r}) "
            "and the source has no url or doi to download it from",
            **fail,
        )
    if os.environ.get("RECASTFLOW_OFFLINE", "") not in ("", "0"):
        raise RecastError(
            f"{source.file} is in no mirror folder and RECASTFLOW_OFFLINE is set: not downloading; "
            "put the file in a folder of RECASTFLOW_MIRROR",
            **fail,
        )
    headers = {"User-Agent": "recastflow (https://github.com/; fetch)"}
    if source.accept:
        headers["Accept"] = source.accept
    request = urllib.request.Request(source.url, headers=headers)
    timeout = float(os.environ.get("RECASTFLOW_TIMEOUT", "60"))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, dest.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = _Progress(source.file, total or source.size)
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                bar.update(len(block))
            bar.close()
    except urllib.error.HTTPError as exc:
        hint = ""
        if exc.code == 406:
            hint = f" (the server refused the Accept header {source.accept or 'none'!r}; HEPData DOIs need {HEPDATA_ACCEPT!r})"
        raise RecastError(f"download failed: HTTP {exc.code} {exc.reason}{hint}", **fail) from None
    except http.client.IncompleteRead as exc:
        raise RecastError(
            f"download truncated: got {len(exc.partial)} more bytes, then the connection closed "
            f"({exc.expected} bytes missing)",
            **fail,
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        mirrors = os.environ.get("RECASTFLOW_MIRROR", "")
        raise RecastError(
            f"download failed: {_one_line(reason) if isinstance(reason, BaseException) else reason}; no mirror folder had {source.file} "
            f"(RECASTFLOW_MIRROR={mirrors!r})",
            **fail,
        ) from None
    got = dest.stat().st_size
    if total is not None and got != total:
        raise RecastError(f"download truncated: {got} of {total} bytes", **fail)
    if source.size is not None and got != source.size:
        raise RecastError(f"downloaded {got} bytes, the bundle expects {source.size}", **fail)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (tarfile lists each compression it tried on its own line)."""
    return "; ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


# -- unpacking -----------------------------------------------------------------------------------------
def _check_tar_member(member: tarfile.TarInfo, source: Source) -> PurePosixPath:
    rel = safe_member_name(member.name, source=source)
    if member.issym() or member.islnk():
        # links are the classic way out of the target folder; published likelihood archives have none
        raise RecastError(
            f"member {member.name!r} is a link (to {member.linkname!r}): refused", path=source.file, field=source.where
        )
    if not (member.isreg() or member.isdir()):
        raise RecastError(
            f"member {member.name!r} is not a regular file or folder (device, fifo?): refused",
            path=source.file,
            field=source.where,
        )
    return rel


def _unpack_tar(archive: Path, out: Path, source: Source) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_tar_member(member, source)
            # the checks above refuse everything the 'data' filter would; it stays as a second guard
            tar.extractall(out, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError) as exc:
        if isinstance(exc, tarfile.FilterError):
            raise RecastError(
                f"unsafe member refused: {_one_line(exc)}", path=source.file, field=source.where
            ) from None
        raise RecastError(f"corrupt archive: {_one_line(exc)}", path=source.file, field=source.where) from None


def _unpack_zip(archive: Path, out: Path, source: Source) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                rel = safe_member_name(info.filename, source=source)
                mode = info.external_attr >> 16
                # no file-type bits (Windows tools, Python's zipfile.writestr): a plain file
                if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise RecastError(
                        f"member {info.filename!r} is a link or special file: refused",
                        path=source.file,
                        field=source.where,
                    )
                target = out.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise RecastError(f"corrupt archive: {_one_line(exc)}", path=source.file, field=source.where) from None


def _unpack(blob: Path, out: Path, source: Source, *, own: bool) -> None:
    """Unpack (or place) a verified file into ``out``, a fresh folder.

    Args:
        own: ``blob`` is a download of this fetch (it may be hard-linked in); a mirror's file is copied,
            so that editing the mirror cannot change the verified cache.
    """
    out.mkdir()
    if source.unpack == "tar":
        _unpack_tar(blob, out, source)
    elif source.unpack == "zip":
        _unpack_zip(blob, out, source)
    elif source.unpack == "gzip":
        try:
            with gzip.open(blob, "rb") as src, (out / source.content_name).open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecastError(f"corrupt gzip file: {_one_line(exc)}", path=source.file, field=source.where) from None
    elif source.unpack == "none":
        if own:
            os.replace(blob, out / source.file)  # the download itself: no copy
        else:
            shutil.copyfile(blob, out / source.file)
    else:
        raise RecastError(
            f"unknown unpack kind {source.unpack!r} (tar, zip, gzip, none)",
            path=str(source.bundle) if source.bundle else None,
            field=f"{source.where}.unpack",
        )


def _verify_content(out: Path, source: Source, members: Mapping[str, str | None]) -> None:
    """Check that every expected member exists and, where a digest is given, has that JSON content."""
    for member, digest in members.items():
        path = out.joinpath(*safe_member_name(member, source=source).parts)
        if not path.is_file():
            raise RecastError(f"member {member!r} is not in {source.file}", path=source.file, field=source.where)
        if digest:
            try:
                got = _digest_of_json(path)
            except (ValueError, UnicodeDecodeError) as exc:
                raise RecastError(
                    f"member {member!r} is not JSON: {_one_line(exc)}", path=source.file, field=source.where
                ) from None
            if got != digest:
                raise RecastError(
                    f"member {member!r} has content digest {got}, the bundle expects {digest}: "
                    "not the published workspace",
                    path=source.file,
                    field=source.where,
                )


def ensure(source: Source, members: Mapping[str, str | None] | None = None) -> Path:
    """Make the source available in the cache and return its folder (see :func:`obtain`)."""
    return obtain(source, members)[0]


def _from_within(source: Source) -> Path | None:
    """The member of the enclosing source that is this source's file (the enclosing one fetched first)."""
    if source.within is None:
        return None
    outer, member = source.within
    ensure(outer, {member: None})
    return outer.path(member)


def obtain(
    source: Source, members: Mapping[str, str | None] | None = None, *, local: Path | None = None
) -> tuple[Path, str]:
    """Make the source available in the cache; its folder and where it came from (cache, mirror, download).

    Args:
        source: the published file.
        members: members (of an archive; the file name otherwise) that must exist, each with the
            pyhf content digest it must have (None: existence only).
        local: a copy of the file to try first (``recastflow bundle new --from-archive`` puts the
            archive it read into the cache this way); verified like a mirror's copy.

    Raises:
        RecastError: on any failure (no mirror copy and no network, HTTP error, truncation, wrong
            sha256, unsafe or corrupt archive, missing member, digest mismatch); nothing is left
            in the cache then.
    """
    members = dict(members or {})
    final = source.directory
    if final.is_dir():
        # verified when it was put there; only the members a (possibly other) bundle expects are checked
        for member in members:
            if not source.path(member).is_file():
                raise RecastError(f"member {member!r} is not in {source.file}", path=source.file, field=source.where)
        return final, "cache"
    root = cache_dir()
    try:
        (root / "tmp").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecastError(
            f"cannot write the cache folder {root} ({exc.strerror}); set RECASTFLOW_CACHE to a writable folder",
            path=source.file,
            field="RECASTFLOW_CACHE",
        ) from None
    with _locked(source):
        if final.is_dir():  # another process fetched it while this one waited for the lock
            return obtain(source, members)
        work = Path(tempfile.mkdtemp(prefix=f"{source.sha256[:12]}.", dir=root / "tmp"))
        try:
            blob, others = (
                (local, []) if local is not None and sha256_file(local) == source.sha256 else _from_mirror(source)
            )
            origin = f"mirror {blob}" if blob is not None else f"download {source.url}"
            if blob is None:
                blob = _from_within(source)
                if blob is not None:
                    origin = f"member {source.within[1]} of {source.within[0].file}"  # type: ignore[index]
            if blob is None:
                blob = work / "download"
                try:
                    _download(source, blob)
                except RecastError as exc:
                    if others:  # say why the mirror's copy was not used: it is the likelier fix
                        raise RecastError(
                            f"{exc}; the mirror's {'; '.join(others)} has other bytes than the "
                            f"bundle's sha256 {source.sha256}"
                        ) from None
                    raise
            got = sha256_file(blob)
            if got != source.sha256:
                raise RecastError(
                    f"sha256 is {got}, the bundle expects {source.sha256}: refused",
                    path=str(blob) if blob.parent != work else (source.url or source.file),
                    field=source.where,
                )
            out = work / "out"
            _unpack(blob, out, source, own=blob.parent == work)
            _verify_content(out, source, members)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(out, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final, origin
