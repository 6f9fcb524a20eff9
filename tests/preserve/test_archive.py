"""The reproducibility archive: deterministic packing, safe extraction, and a real re-run from it."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import copy_workflow
from recastflow.preserve.archive import (
    CRATE,
    MANIFEST,
    RESULT_SUMS,
    compare_results,
    container_digests,
    create_archive,
    extract_archive,
    sha256_file,
)
from recastflow.core.config import load_validated
from recastflow.core.errors import RecastError

BIN = Path(sys.executable).parent
# a fixed author, date and no user/system git config: the test repository is the same everywhere
GIT_ENV = {
    "GIT_AUTHOR_NAME": "recastflow test", "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "recastflow test", "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
GITIGNORE = "results/\nlogs/\n.snakemake/\narchive/\n"


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True,
                          check=True)
    return proc.stdout.strip()


def git_commit(path: Path) -> str:
    """Make ``path`` a git checkout with everything committed; return the commit."""
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "toy project")
    return git(path, "rev-parse", "HEAD")


def fake_results(project: Path) -> None:
    """A small results folder, enough to pack without running the fits."""
    files = {
        "results/limits/TOYGRID/limits.json": '{"grid": "TOYGRID"}\n',
        "results/limits/TOYGRID/batches/b000.json": '{"points": []}\n',
        "results/report/index.html": "<html></html>\n",
        "results/benchmarks/limits/TOYGRID/P0.tsv": "s\th:m:s\n1.0\t0:00:01\n",
    }
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)


def archive(project: Path, output: Path) -> Path:
    cfg = load_validated(project / "config" / "config.yaml", "config")
    create_archive(output, config=cfg, config_path=Path("config/config.yaml"), results=Path("results"),
                   project=project)
    return output


@pytest.fixture
def checkout(project: Path) -> Path:
    """The toy project with the workflow and a licence, committed to git, plus a results folder."""
    copy_workflow(project)
    (project / ".gitignore").write_text(GITIGNORE)
    (project / "pyproject.toml").write_text('[project]\nname = "toy"\nversion = "0"\nlicense = "Apache-2.0"\n')
    git_commit(project)
    fake_results(project)
    return project


@pytest.fixture
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the project (the project fixture is tmp_path itself, a git checkout here)."""
    return tmp_path_factory.mktemp("scratch")


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}


def write_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = linkname
    return ti


def assert_one_line(exc: pytest.ExceptionInfo[RecastError], *fragments: str) -> None:
    text = str(exc.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, text


# -- packing -----------------------------------------------------------------------------------
def test_archive_is_deterministic_and_complete(checkout: Path, scratch: Path) -> None:
    first = archive(checkout, checkout / "archive" / "run.tar.gz")
    second = archive(checkout, scratch / "elsewhere" / "again.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime

    with tarfile.open(first) as tar:
        infos = tar.getmembers()
    names = [m.name for m in infos]
    assert names == sorted(names)
    assert all(m.isreg() and m.mtime == 0 and m.uid == m.gid == 0 and not m.uname and not m.gname for m in infos)
    assert not any(n.startswith("archive/") for n in names)  # never itself
    files = members(first)
    manifest = json.loads(files[MANIFEST])
    assert manifest["git"]["commit"] == git(checkout, "rev-parse", "HEAD")
    assert manifest["git"]["modified_since_commit"] == []
    assert manifest["containers"] is None
    assert manifest["packages"]["pyhf"] == "0.7.6" and "rocrate" in manifest["packages"]
    assert manifest["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    roles = manifest["files"]
    assert "config/signals/yields/P0.json" in roles["inputs"] and "config/config.yaml" in roles["inputs"]
    assert "Snakefile" in roles["workflow"] and "workflow/rules/limits.smk" in roles["workflow"]
    assert set(roles["results"]) == {n for n in names if n.startswith("results/")}
    listed = {n for role in roles.values() for n in role}
    assert listed == set(names) - {MANIFEST}
    for name, digest in roles["results"].items():
        assert digest == sha256_file(checkout / name)
    sums = files[RESULT_SUMS].decode()
    assert "results/limits/TOYGRID/limits.json" in sums and "benchmarks" not in sums
    assert manifest["not_reproducible"] == ["results/benchmarks/"]


def test_ro_crate_describes_workflow_bundles_and_results(checkout: Path) -> None:
    crate = json.loads(members(archive(checkout, checkout / "archive" / "run.tar.gz"))[CRATE])
    graph = {e["@id"]: e for e in crate["@graph"]}
    root = graph["./"]
    assert root["mainEntity"] == {"@id": "Snakefile"}
    assert root["license"] == {"@id": "https://spdx.org/licenses/Apache-2.0"}
    assert root["datePublished"].startswith("2024-01-01")  # the commit date, not "now"
    workflow = graph["Snakefile"]
    assert "ComputationalWorkflow" in workflow["@type"]
    assert graph[workflow["programmingLanguage"]["@id"]]["name"] == "Snakemake"
    bundle = graph["config/analyses/TOY/"]
    record = graph[bundle["isBasedOn"]["@id"]]
    assert record["identifier"] == "ins0000000" and record["@id"].endswith("/record/ins0000000")
    run = graph["#run"]
    assert {"@id": "config/config.yaml"} in run["object"]
    assert {"@id": "results/limits/TOYGRID/limits.json"} in run["result"]
    assert not any(i.startswith("#") and i != "#run" for i in graph)  # no random ids


def test_container_digests_from_lock_file(tmp_path: Path) -> None:
    assert container_digests(tmp_path) is None
    ref = "localhost/recastflow-stats@sha256:" + "ab" * 32
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / "lock.yaml").write_text(yaml.safe_dump({"stages": {"limits": ref, "note": "x"}}))
    assert container_digests(tmp_path)["images"] == {"stages.limits": ref}


def test_archive_outside_git_checkout_is_refused(project: Path) -> None:
    copy_workflow(project)
    fake_results(project)
    with pytest.raises(RecastError) as exc:
        archive(project, project / "archive" / "run.tar.gz")
    assert_one_line(exc, "not a git checkout", str(project))
    assert not (project / "archive").exists()


def test_archive_inside_results_is_refused(checkout: Path) -> None:
    with pytest.raises(RecastError) as exc:
        archive(checkout, checkout / "results" / "run.tar.gz")
    assert_one_line(exc, "inside the results folder")


def test_cli_errors_are_one_line(checkout: Path, scratch: Path) -> None:
    plain = scratch / "plain"
    plain.mkdir()
    # a copy: a link leading out of the folder would be refused before the git check (paths stay inside)
    shutil.copytree(checkout / "config", plain / "config")
    run = subprocess.run([str(BIN / "recastflow"), "archive", "--output", "a.tar.gz"], cwd=plain,
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("recastflow archive: error:")
    assert "not a git checkout" in run.stderr
    bad = write_tar(scratch / "bad.tar.gz", [(info("../evil"), b"x")])
    # the CLI still reads a run configuration before every subcommand, so run it in the project
    run = subprocess.run([str(BIN / "recastflow"), "unarchive", str(bad), "--into", str(scratch / "x")],
                         cwd=checkout, capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "unsafe member '../evil'" in run.stderr


# -- extraction ----------------------------------------------------------------------------------
def test_extract_verifies_and_restores_every_file(checkout: Path, scratch: Path) -> None:
    packed = archive(checkout, checkout / "archive" / "run.tar.gz")
    (scratch / "empty").mkdir()
    manifest = extract_archive(packed, scratch / "empty")
    for role in ("workflow", "inputs", "results"):
        for name in manifest["files"][role]:
            assert (scratch / "empty" / name).read_bytes() == (checkout / name).read_bytes()
    assert compare_results(scratch / "empty", manifest) == []
    assert [p.name for p in scratch.iterdir() if p.name.startswith(".")] == []  # no temp folder left


def test_extract_refuses_non_empty_folder(checkout: Path, scratch: Path) -> None:
    packed = archive(checkout, checkout / "archive" / "run.tar.gz")
    (scratch / "full").mkdir()
    (scratch / "full" / "keep.txt").write_text("mine")
    with pytest.raises(RecastError) as exc:
        extract_archive(packed, scratch / "full")
    assert_one_line(exc, "non-empty")
    assert [p.name for p in (scratch / "full").iterdir()] == ["keep.txt"]


def _device() -> tarfile.TarInfo:
    ti = info("dev/null", tarfile.CHRTYPE)
    ti.devmajor, ti.devminor = 1, 3
    return ti


UNSAFE = {
    "absolute": ([(info("/tmp/recastflow-evil"), b"x")], "'/tmp/recastflow-evil': absolute path"),
    "dotdot": ([(info("../evil"), b"x")], "'../evil': '..' path component"),
    "inner dotdot": ([(info("a/../../evil"), b"x")], "'a/../../evil': '..' path component"),
    "symlink escaping": ([(info("link", tarfile.SYMTYPE, "../../outside"), None)], "'link': symlink pointing outside"),
    "absolute symlink": ([(info("etc", tarfile.SYMTYPE, "/etc"), None)], "'etc': symlink pointing outside"),
    "hardlink escaping": ([(info("passwd", tarfile.LNKTYPE, "/etc/passwd"), None)], "'passwd': hard link"),
    "through a link": ([(info("sub", tarfile.DIRTYPE), None), (info("l", tarfile.SYMTYPE, "sub"), None),
                        (info("l/x"), b"x")], "'l/x': path goes through a link"),
    "device": ([(_device(), None)], "'dev/null': device"),
    "newline in name": ([(info("a\nb/../../x"), b"x")], "'a\\nb/../../x'"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_extract_refuses_unsafe_members(case: str, tmp_path: Path) -> None:
    entries, message = UNSAFE[case]
    bad = write_tar(tmp_path / "bad.tar.gz", entries)
    target = tmp_path / "deep" / "into"
    with pytest.raises(RecastError) as exc:
        extract_archive(bad, target)
    assert_one_line(exc, message, "nothing was extracted")
    assert not target.exists() and list((tmp_path / "deep").iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def _rewrite(src: Path, dest: Path, change: dict[str, bytes | None]) -> Path:
    """Copy an archive, replacing (bytes) or dropping (None) some members, adding new ones."""
    files = members(src)
    files.update(change)
    entries = [(info(n), data) for n, data in sorted(files.items()) if data is not None]
    return write_tar(dest, entries)


@pytest.mark.parametrize(("change", "message"), [
    ({"results/limits/TOYGRID/limits.json": b'{"grid": "forged"}\n'},
     "'results/limits/TOYGRID/limits.json': sha256 mismatch"),
    ({"results/extra.json": b"{}"}, "'results/extra.json' is not listed in MANIFEST.json"),
    ({"config/config.yaml": None}, "'config/config.yaml' is listed in MANIFEST.json but missing"),
    ({MANIFEST: None}, "no MANIFEST.json: not a recastflow archive"),
])
def test_extract_refuses_tampered_archive(checkout: Path, scratch: Path, change: dict[str, Any],
                                          message: str) -> None:
    packed = archive(checkout, checkout / "archive" / "run.tar.gz")
    tampered = _rewrite(packed, scratch / "tampered.tar.gz", change)
    with pytest.raises(RecastError) as exc:
        extract_archive(tampered, scratch / "into")
    assert_one_line(exc, message)
    assert not (scratch / "into").exists()


def test_extract_refuses_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.tar.gz").write_bytes(gzip.compress(b"not a tar file" * 100))
    with pytest.raises(RecastError) as exc:
        extract_archive(tmp_path / "x.tar.gz", tmp_path / "into")
    assert_one_line(exc, "not a readable .tar.gz archive")


# -- the real thing ------------------------------------------------------------------------------
def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    return subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root except Snakemake's timing files."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "benchmarks" not in p.relative_to(root).parts}


@pytest.mark.slow
def test_run_archive_unarchive_rerun_reproduces_every_result(project: Path, scratch: Path) -> None:
    copy_workflow(project)
    snakefile = project / "Snakefile"
    if "archive.smk" not in snakefile.read_text():  # until the Snakefile includes the rule itself
        snakefile.write_text(snakefile.read_text() + '\ninclude: "workflow/rules/archive.smk"\n')
        (project / "workflow" / "rules" / "archive.smk").exists() or pytest.fail("archive.smk not copied")
    cfg = yaml.safe_load((project / "config" / "config.yaml").read_text())
    cfg["fit_plots"] = ["TOYGRID/P2"]
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (project / ".gitignore").write_text(GITIGNORE)
    commit = git_commit(project)

    # the archive rule must not add lints (the other rules are linted by the project's own lint run)
    lint = snakemake(project, "--lint")
    assert "archive.smk" not in lint.stderr, lint.stderr[-3000:]
    run = snakemake(project)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (project / "archive").exists()  # not part of the default target
    packed = snakemake(project, "archive")
    assert packed.returncode == 0, packed.stderr[-3000:]
    assert "1 of 1 steps" in packed.stdout + packed.stderr  # only the archive job: nothing was recomputed
    archive_file = project / "archive" / "recastflow-run.tar.gz"
    # the same run packed again by hand gives the same bytes
    again = subprocess.run([str(BIN / "recastflow"), "archive", "--output", str(scratch / "again.tar.gz")],
                           cwd=project, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (scratch / "again.tar.gz").read_bytes() == archive_file.read_bytes()

    rerun_dir = scratch / "rerun"
    unpacked = subprocess.run([str(BIN / "recastflow"), "unarchive", str(archive_file), "--into", str(rerun_dir)],
                              cwd=project, capture_output=True, text=True)
    assert unpacked.returncode == 0, unpacked.stderr
    manifest = json.loads((rerun_dir / MANIFEST).read_text())
    assert manifest["git"]["commit"] == commit
    assert tree(rerun_dir / "results") == tree(project / "results")

    rerun = snakemake(rerun_dir, "--forceall")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "limits_batch" in rerun.stdout + rerun.stderr  # the fits really ran again
    original, reproduced = tree(project / "results"), tree(rerun_dir / "results")
    assert sorted(reproduced) == sorted(original)
    assert [n for n in original if original[n] != reproduced[n]] == []
    assert compare_results(rerun_dir, manifest) == []
    check = subprocess.run(["sha256sum", "--quiet", "-c", RESULT_SUMS], cwd=rerun_dir, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
