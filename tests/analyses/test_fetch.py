"""The fetch layer for real: a local HTTP server on 127.0.0.1, mirror folders, the cache, bad sources."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recastflow.analyses import fetch
from recastflow.core.errors import RecastError
from recastflow.analyses.fetch import Source

from conftest import REPO, SHARED_MIRROR

STAUS_ARCHIVE = SHARED_MIRROR / "likelihoods" / "ATLAS-SUSY-2018-04" / "SUSY-2018-04_likelihoods.tar.gz"
STAUS_SHA = "0643f9c95767f79d6d1e585a6dd7347cf9a36b1aaa5b59e61c06f78d1c1ca8c4"
STAUS_DIGEST = "956aef2f8ba24ff49ac328757e1689c03be73c0ef846744555257eb98e894d10"  # Region-combined/BkgOnly.json


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A static HTTP server of a folder; ``/hepdata/...`` answers 406 unless asked with Accept: application/x-tar,
    as HEPData does, and ``/truncated/...`` announces the full length, sends half and closes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                kind, _, name = self.path.lstrip("/").partition("/")
                path = server.root / name
                if not path.is_file():
                    self.send_error(404)
                    return
                if kind == "hepdata" and self.headers.get("Accept") != "application/x-tar":
                    self.send_error(406)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if kind == "truncated" else data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, kind: str, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{kind}/{name}"


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    srv = Server(root)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of the test's own, and no mirror (so the network path is taken)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("RECASTFLOW_CACHE", str(root))
    monkeypatch.delenv("RECASTFLOW_MIRROR", raising=False)
    monkeypatch.delenv("RECASTFLOW_OFFLINE", raising=False)
    return root


def left_in_cache(root: Path) -> list[Path]:
    """Files in the cache other than lock files (which are empty and harmless)."""
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "locks"] if root.exists() else []


def make_tar(path: Path, members: dict[str, bytes], *, extra=None) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            extra(tar)
    return path.read_bytes()


def staus_source(url: str, **kw) -> Source:
    fields = dict(name="likelihoods", file=STAUS_ARCHIVE.name, sha256=STAUS_SHA, url=url, unpack="tar")
    fields.update(kw)
    return Source(**fields)


needs_mirror = pytest.mark.skipif(not STAUS_ARCHIVE.is_file(), reason="needs the ../shared/data mirror")


@needs_mirror
def test_download_with_hepdata_accept_header_then_cache_hit(server, cache, capsys):
    (server.root / STAUS_ARCHIVE.name).write_bytes(STAUS_ARCHIVE.read_bytes())
    source = staus_source(server.url("hepdata", STAUS_ARCHIVE.name), accept="application/x-tar")
    folder = fetch.ensure(source, {"Region-combined/BkgOnly.json": STAUS_DIGEST})
    assert folder == cache / "objects" / STAUS_SHA
    assert (folder / "Region-combined" / "patch.DS_200_1_Staus.json").is_file()
    assert "downloaded" in capsys.readouterr().err
    # a second fetch: no request, no copy (the verified folder is used as it is)
    inode = (folder / "README.md").stat().st_ino
    assert fetch.obtain(source, {"Region-combined/BkgOnly.json": STAUS_DIGEST}) == (folder, "cache")
    assert len(server.requests) == 1 and (folder / "README.md").stat().st_ino == inode
    assert not list((cache / "tmp").iterdir())


@needs_mirror
def test_mirror_found_by_name_and_checksum_without_network(cache, tmp_path, monkeypatch):
    # a same-name file with other bytes comes first: it is skipped, the right one is used
    decoy = tmp_path / "m1"
    decoy.mkdir()
    (decoy / STAUS_ARCHIVE.name).write_bytes(b"not it")
    monkeypatch.setenv("RECASTFLOW_MIRROR", f"{decoy}:{SHARED_MIRROR}")
    folder, origin = fetch.obtain(staus_source("http://127.0.0.1:9/never"))
    assert origin.startswith("mirror ") and str(STAUS_ARCHIVE.resolve()) in str(Path(origin[7:]).resolve())
    assert (folder / "Region-combined" / "BkgOnly.json").is_file()


@needs_mirror
def test_two_processes_fetch_once(server, cache):
    # two concurrent fetches of one source: one downloads, the other waits for the lock and uses its result
    (server.root / STAUS_ARCHIVE.name).write_bytes(STAUS_ARCHIVE.read_bytes())
    code = ("import sys; from recastflow.analyses import fetch; from recastflow.analyses.fetch import Source; "
            f"s = Source(name='l', file={STAUS_ARCHIVE.name!r}, sha256={STAUS_SHA!r}, unpack='tar', url=sys.argv[1]); "
            "print(fetch.obtain(s)[1].split()[0])")
    env = {"RECASTFLOW_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", code, server.url("plain", STAUS_ARCHIVE.name)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(o[0].strip() for o in outs) == ["cache", "download"]
    assert len(server.requests) == 1


def check_refused(source: Source, cache: Path, *expected: str, members=None) -> str:
    with pytest.raises(RecastError) as err:
        fetch.ensure(source, members)
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text in message
    assert left_in_cache(cache) == []
    return message


@needs_mirror
def test_wrong_checksum_refused(server, cache):
    (server.root / STAUS_ARCHIVE.name).write_bytes(STAUS_ARCHIVE.read_bytes())
    source = staus_source(server.url("plain", STAUS_ARCHIVE.name), sha256="0" * 64)
    check_refused(source, cache, f"sha256 is {STAUS_SHA}", "sources.likelihoods", "refused")


@needs_mirror
def test_truncated_transfer_refused(server, cache):
    (server.root / STAUS_ARCHIVE.name).write_bytes(STAUS_ARCHIVE.read_bytes())
    check_refused(staus_source(server.url("truncated", STAUS_ARCHIVE.name)), cache, "truncated", "sources.likelihoods")


def test_http_404_refused(server, cache):
    check_refused(staus_source(server.url("plain", "missing.tar.gz")), cache, "HTTP 404", "missing.tar.gz")


def test_http_406_wrong_accept_header(server, cache):
    (server.root / "x.tar.gz").write_bytes(b"x")
    # no Accept header for a HEPData URL: HEPData's answer is 406
    message = check_refused(staus_source(server.url("hepdata", "x.tar.gz"), file="x.tar.gz"), cache, "HTTP 406")
    assert "application/x-tar" in message


def test_network_failure_without_mirror(cache, monkeypatch):
    # a port nobody listens on: the error names the source and says no mirror had the file
    check_refused(staus_source("http://127.0.0.1:9/SUSY.tar.gz"), cache, "download failed", "no mirror folder had")


def test_path_traversal_member_refused(server, cache, tmp_path):
    data = make_tar(server.root / "evil.tar.gz", {"ok/BkgOnly.json": b"{}", "../escaped.json": b"{}"})
    source = Source(name="evil", file="evil.tar.gz", sha256=sha(data), url=server.url("plain", "evil.tar.gz"),
                    unpack="tar")
    check_refused(source, cache, "unsafe member name '../escaped.json'")
    assert not (cache.parent / "escaped.json").exists()


def test_absolute_and_link_members_refused(server, cache):
    data = make_tar(server.root / "abs.tar.gz", {"/etc/evil.json": b"{}"})
    check_refused(Source(name="a", file="abs.tar.gz", sha256=sha(data), url=server.url("plain", "abs.tar.gz"),
                         unpack="tar"), cache, "unsafe member name '/etc/evil.json'")

    def link(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("ws/BkgOnly.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)

    data = make_tar(server.root / "link.tar.gz", {}, extra=link)
    check_refused(Source(name="l", file="link.tar.gz", sha256=sha(data), url=server.url("plain", "link.tar.gz"),
                         unpack="tar"), cache, "is a link")

    def device(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("dev/null")
        info.type = tarfile.CHRTYPE
        tar.addfile(info)

    data = make_tar(server.root / "dev.tar.gz", {}, extra=device)
    check_refused(Source(name="d", file="dev.tar.gz", sha256=sha(data), url=server.url("plain", "dev.tar.gz"),
                         unpack="tar"), cache, "not a regular file")


def test_corrupt_archive_refused(server, cache):
    good = make_tar(server.root / "good.tar.gz", {"a/BkgOnly.json": b"{}" * 5000})
    data = good[:40] + bytes(len(good) - 40)  # a valid gzip header, then garbage
    (server.root / "bad.tar.gz").write_bytes(data)
    check_refused(Source(name="c", file="bad.tar.gz", sha256=sha(data), url=server.url("plain", "bad.tar.gz"),
                         unpack="tar"), cache, "corrupt archive", "sources.c")


def test_zip_traversal_refused(server, cache):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.json", "{}")
    (server.root / "evil.zip").write_bytes(buf.getvalue())
    check_refused(Source(name="z", file="evil.zip", sha256=sha(buf.getvalue()), url=server.url("plain", "evil.zip"),
                         unpack="zip"), cache, "unsafe member name")


def test_missing_member_and_digest_mismatch_refused(server, cache):
    ws = {"channels": [], "observations": [], "measurements": [], "version": "1.0.0"}
    data = make_tar(server.root / "w.tar.gz", {"R/BkgOnly.json": json.dumps(ws).encode()})
    source = Source(name="w", file="w.tar.gz", sha256=sha(data), url=server.url("plain", "w.tar.gz"), unpack="tar")
    check_refused(source, cache, "member 'R/Missing.json' is not in w.tar.gz", members={"R/Missing.json": None})
    check_refused(source, cache, "content digest", "not the published workspace", members={"R/BkgOnly.json": "1" * 64})
    # the same content written differently (key order, spacing) has the same digest: accepted
    assert fetch.ensure(source, {"R/BkgOnly.json": fetch.json_digest(json.loads(json.dumps(ws, indent=3)))})


def test_gzip_single_file_source(server, cache):
    import gzip

    data = gzip.compress(b'{"a": 1}')
    (server.root / "bkg.json.gz").write_bytes(data)
    source = Source(name="b", file="bkg.json.gz", sha256=sha(data), url=server.url("plain", "bkg.json.gz"), unpack="gzip")
    fetch.ensure(source, {"bkg.json": fetch.json_digest({"a": 1})})
    assert json.loads(source.path().read_text()) == {"a": 1}


def test_offline_setting_refuses_download(cache, monkeypatch):
    monkeypatch.setenv("RECASTFLOW_OFFLINE", "1")
    check_refused(staus_source("http://127.0.0.1:9/x.tar.gz"), cache, "RECASTFLOW_OFFLINE")


@needs_mirror
def test_fetch_bundles_writes_manifest_and_workspace_loads(tmp_path, monkeypatch, cache):
    monkeypatch.setenv("RECASTFLOW_MIRROR", str(SHARED_MIRROR))
    from recastflow.analyses.bundle import fetch_bundles, load_analysis

    manifest = tmp_path / "manifest.json"
    fetch_bundles(["ATLAS-SUSY-2018-04"], REPO / "config" / "analyses", manifest=manifest)
    entry = json.loads(manifest.read_text())["ATLAS-SUSY-2018-04"]["likelihoods"]
    assert (entry["sha256"], entry["from"]) == (STAUS_SHA, "mirror")
    again = fetch_bundles(["ATLAS-SUSY-2018-04"], REPO / "config" / "analyses")
    assert again["ATLAS-SUSY-2018-04"]["likelihoods"]["from"] == "cache"
    # the bundle's workspace resolves into the cache and loads, digest-checked
    ws = load_analysis("ATLAS-SUSY-2018-04", REPO / "config" / "analyses").workspace("Region-combined")
    assert ws.path.is_relative_to(cache) and len(ws.load()["channels"]) == 5


def test_unwritable_cache_is_one_clear_error(tmp_path, monkeypatch):
    # a file where the cache folder should be: the error names the setting to change, and nothing is fetched
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("RECASTFLOW_CACHE", str(blocked))
    monkeypatch.delenv("RECASTFLOW_MIRROR", raising=False)
    with pytest.raises(RecastError, match="RECASTFLOW_CACHE.*cannot write the cache folder") as err:
        fetch.obtain(staus_source("http://127.0.0.1:9/SUSY.tar.gz"))
    assert err.value.field == "RECASTFLOW_CACHE"
