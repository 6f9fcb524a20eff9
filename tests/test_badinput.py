"""The bad-input corpus (tests/badinput/): every malformed input gets a one-line error and no output.

Each case of ``tests/badinput/cases.yaml`` runs the real ``recastflow`` command a user would
run, as a subprocess, in a fresh copy of a small project (``tests/badinput/base``) with the
case's files laid over it. The command must exit non-zero without a traceback, print one
error line that names the bad file and the problem, and leave no file behind (neither the
output nor a temporary file next to it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "badinput"
MANIFEST = yaml.safe_load((CORPUS / "cases.yaml").read_text())
CASES = MANIFEST["cases"]
RECASTFLOW = Path(sys.executable).parent / "recastflow"
#: A case that takes longer is a hang (the slowest, a truncated LHE file, takes about 2 s).
TIMEOUT_S = 60

sys.path.insert(0, str(CORPUS))
import make_inputs  # noqa: E402  (the corpus's builders live next to its manifest)


def test_corpus_covers_every_kind_of_bad_input() -> None:
    kinds = {c["kind"] for c in CASES}
    assert kinds == {"yaml-syntax", "schema", "workspace-sha256", "patch-missing-channel", "nan-or-negative-yields",
                     "corrupt-events", "empty-events", "slha-blocks", "detector-unknown-key", "selection-expression",
                     "onnx-shape", "reweight-non-finite", "path-escape", "yaml-alias-bomb",
                     # issue 26 / 18: likelihoods, options and names checked beyond their schema
                     "nan-or-negative-likelihood", "non-finite-option", "likelihood-structure", "encoding",
                     "json-duplicate-key", "file-name", "patchset-match",
                     # issue 26: physical numbers at the front end, selections that fit the workspace
                     "non-physical-number", "selection-layout", "path-outside", "special-output", "template"}
    assert len(CASES) >= 30 and len({c["id"] for c in CASES}) == len(CASES)
    # every case folder is used by exactly one case, and every case's files exist
    folders = {p.name for p in (CORPUS / "cases").iterdir()}
    assert folders <= {c["id"] for c in CASES}


class Built:
    """Generated inputs, each built once per session (builder name -> file content)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cache: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def __getitem__(self, kind: str) -> bytes:
        with self.lock:
            if kind not in self.cache:
                make_inputs.build(kind, self.folder / kind)
                self.cache[kind] = (self.folder / kind).read_bytes()
            return self.cache[kind]


@dataclass
class Run:
    """One case run: its project copy, the files before the run, the command and what it did."""

    project: Path
    before: set[str]
    out: str
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Run]]]:
    """Run the selected cases two at a time (the commands mostly wait for imports)."""
    wanted = [item.callspec.params["case"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_bad_input_gives_one_line_error_and_no_output"]
    built = Built(tmp_path_factory.mktemp("built"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {c["id"]: pool.submit(_run, c, tmp_path_factory.mktemp(c["id"]), built) for c in wanted}


def _run(case: dict[str, Any], tmp_path: Path, built: Built) -> Run:
    project = _project(tmp_path, case, built)
    run = MANIFEST["defaults"][case["run"]]
    out = run.get("out", "results/out")
    args = [a.format(out=out, manifest=case.get("manifest", "")) for a in case.get("command", run["command"])]
    before = _files(project)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([str(RECASTFLOW), *args], cwd=project, capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=env)
    return Run(project, before, out, proc)


def _project(tmp_path: Path, case: dict[str, Any], built: Built) -> Path:
    """Base project + repository files + the case's overlay, edits and generated files."""
    project = tmp_path / "project"
    shutil.copytree(CORPUS / "base", project)
    for src, dest in MANIFEST["repo_files"].items():
        (project / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / src, project / dest)
    overlay = CORPUS / "cases" / case["id"]
    overlaid = []
    if overlay.is_dir():
        for src in sorted(p for p in overlay.rglob("*") if p.is_file()):
            dest = project / src.relative_to(overlay)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            overlaid.append(dest)
    for edit in case.get("edit", []):
        path = project / edit["file"]
        text = path.read_text()
        assert text.count(edit["old"]) == 1, f"{case['id']}: {edit['old']!r} must occur once in {edit['file']}"
        path.write_text(text.replace(edit["old"], edit["new"]))
    makes = {m["path"]: m for m in MANIFEST["defaults"][case["run"]].get("make", [])}
    makes.update({m["path"]: m for m in case.get("make", [])})
    for rel, m in makes.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = built[m["build"]]
        path.write_bytes(data if m.get("keep") is None else data[:int(len(data) * m["keep"])])
    # "outside": the file moves out of the project (next to it) and a symbolic link to it takes its place
    for rel in case.get("outside", []):
        moved = tmp_path / "outside" / rel
        moved.parent.mkdir(parents=True, exist_ok=True)
        (project / rel).replace(moved)
        (project / rel).symlink_to(moved)
    # "@sha256:<path>@" in an overlaid file: the checksum of a file built above
    for path in overlaid:
        if b"@sha256:" not in path.read_bytes():
            continue  # also: a case's file in another encoding than UTF-8 stays as it is
        text = path.read_text()
        for rel in re.findall(r"@sha256:([^@]+)@", text):
            digest = hashlib.sha256((project / rel).read_bytes()).hexdigest()
            text = text.replace(f"@sha256:{rel}@", digest)
        path.write_text(text)
    return project


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_gives_one_line_error_and_no_output(case: dict[str, Any], runs: dict[str, Future[Run]]) -> None:
    run = runs[case["id"]].result()
    proc = run.proc
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"exit code 0 for {case['id']}:\n{text}"
    assert "Traceback" not in text, text
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"recastflow {case['run']}: error: ")]
    assert len(errors) == 1, f"expected one error line:\n{proc.stderr}"
    assert proc.stderr.rstrip("\n").splitlines()[-1] == errors[0], f"the error is not the last line:\n{proc.stderr}"
    message = errors[0]
    assert case["file"] in message, f"the message does not name {case['file']}: {message}"
    for fragment in case["expect"]:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert len(message) < 600, f"an overlong message: {message}"
    # nothing written: not the output, not a temporary file next to it, nothing anywhere
    assert not (run.project / run.out).exists()
    assert _files(run.project) == run.before, f"files appeared: {sorted(_files(run.project) - run.before)}"
