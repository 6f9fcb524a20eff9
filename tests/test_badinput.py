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
#: The second corpus (issue 26), written later and independently of the first; it shares the defaults.
HOSTILE = yaml.safe_load((CORPUS / "hostile.yaml").read_text())["cases"]
CASES = MANIFEST["cases"] + HOSTILE
RECASTFLOW = Path(sys.executable).parent / "recastflow"
#: A case that takes longer is a hang (the slowest, a truncated LHE file, takes about 2 s).
TIMEOUT_S = 60

sys.path.insert(0, str(CORPUS))
import make_inputs  # noqa: E402  (the corpus's builders live next to its manifest)


def test_corpus_covers_every_kind_of_bad_input() -> None:
    kinds = {c["kind"] for c in MANIFEST["cases"]}
    assert kinds == {"yaml-syntax", "schema", "workspace-sha256", "patch-missing-channel", "nan-or-negative-yields",
                     "corrupt-events", "empty-events", "slha-blocks", "detector-unknown-key", "selection-expression",
                     "onnx-shape", "reweight-non-finite", "path-escape", "yaml-alias-bomb",
                     # issue 26 / 18: likelihoods, options and names checked beyond their schema
                     "nan-or-negative-likelihood", "non-finite-option", "likelihood-structure", "encoding",
                     "json-duplicate-key", "file-name", "patchset-match",
                     # issue 26: physical numbers at the front end, selections that fit the workspace
                     "non-physical-number", "selection-layout", "path-outside", "special-output", "template"}
    assert len(MANIFEST["cases"]) >= 30 and len({c["id"] for c in CASES}) == len(CASES)
    assert len(HOSTILE) >= 60 and {c["kind"] for c in HOSTILE} <= kinds | {"special-input"}
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
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    for prep in case.get("prepare", []):  # e.g. a PatchSet for limits: made by the product, not committed
        subprocess.run([str(RECASTFLOW), *prep], cwd=project, capture_output=True, check=True, timeout=TIMEOUT_S,
                       env=env)
    for rel in case.get("outside", []) if case.get("prepare") else []:
        _move_outside(project, tmp_path, rel)
    before = _files(project)
    try:
        proc = subprocess.run([str(RECASTFLOW), *args], cwd=project, capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as exc:  # a hang: reported as a failed case, not an error of the runner
        proc = subprocess.CompletedProcess(exc.cmd, -9, "", f"HANG: no answer in {TIMEOUT_S} s\n")
    return Run(project, before, out, proc)


def _move_outside(project: Path, tmp_path: Path, rel: str) -> None:
    """Move a file out of the project (next to it) and put a symbolic link to it in its place."""
    moved = tmp_path / "outside" / rel
    moved.parent.mkdir(parents=True, exist_ok=True)
    (project / rel).replace(moved)
    (project / rel).symlink_to(moved)


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
    for change in case.get("set", []):  # one value of a YAML file, by its key (robust to edits of the file)
        path = project / change["file"]
        doc = yaml.safe_load(path.read_text())
        *parents, last = _keys(change["key"])
        node = doc
        for key in parents:
            node = node[key]
        assert last in node if isinstance(node, dict) else last < len(node), f"{case['id']}: no {change['key']}"
        node[last] = change["value"]
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    for write in case.get("write", []):
        path = project / write["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(write["text"])
        overlaid.append(path)
    makes = {m["path"]: m for m in MANIFEST["defaults"][case["run"]].get("make", [])}
    makes.update({m["path"]: m for m in case.get("make", [])})
    for rel, m in makes.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = built[m["build"]]
        path.write_bytes(data if m.get("keep") is None else data[:int(len(data) * m["keep"])])
    # "outside": the file moves out of the project (next to it) and a symbolic link to it takes its place
    for rel in [] if case.get("prepare") else case.get("outside", []):  # after 'prepare' if the case has one
        _move_outside(project, tmp_path, rel)
    # "@sha256:<path>@" in an overlaid file: the checksum of a file built above
    for path in overlaid:
        if b"@sha256:" not in path.read_bytes():
            continue  # also: a case's file in another encoding than UTF-8 stays as it is
        text = path.read_text()
        for rel in re.findall(r"@sha256:([^@]+)@", text):
            digest = hashlib.sha256((project / rel).read_bytes()).hexdigest()
            text = text.replace(f"@sha256:{rel}@", digest)
        path.write_text(text)
    # special files last: reading a named pipe above would wait for a writer
    for special in case.get("special", []):
        path = project / special["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        if special["kind"] == "fifo":
            os.mkfifo(path)
        elif special["kind"] == "dir":
            path.mkdir()
        else:
            path.symlink_to(special["to"])
    return project


def _keys(dotted: str) -> list[Any]:
    """``"electrons.efficiency.values[0][1]"`` -> ``["electrons", "efficiency", "values", 0, 1]``."""
    return [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", dotted)]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _param(case: dict[str, Any]) -> Any:
    """A case, marked as a known failure (strict: it must still fail) when it says so."""
    marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if case.get("xfail") else []
    return pytest.param(case, id=case["id"], marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
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
