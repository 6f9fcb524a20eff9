"""The package is lint-, format- and type-clean: ruff check, ruff format --check and mypy report nothing.

The tools run from the virtual environment's bin folder (pinned exactly in requirements.lock) with
the settings of [tool.ruff] and [tool.mypy] in pyproject.toml, on workflow/recastflow. Each failure
message is the tool's own report, so the fix is in the output.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "workflow/recastflow"
# the interpreter's own folder, not PATH: the pinned tools of this environment, never a system ruff/mypy
BIN = Path(sys.executable).parent


def tool(name: str) -> Path:
    path = BIN / name
    if not path.is_file():
        pytest.skip(f"{name} is not installed in {BIN} (make setup installs the pinned version)")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # from the repository root, so that the tools read pyproject.toml's settings
    return subprocess.run([str(a) for a in args], cwd=REPO, capture_output=True, text=True, timeout=600)


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {proc.returncode}\n{proc.stdout}{proc.stderr}"


def test_ruff_check():
    proc = run(tool("ruff"), "check", "--no-fix", "--output-format", "concise", PACKAGE)
    assert proc.returncode == 0, report(proc)


def test_ruff_format():
    proc = run(tool("ruff"), "format", "--check", "--diff", PACKAGE)
    assert proc.returncode == 0, report(proc)


def test_mypy():
    # files = workflow/recastflow comes from [tool.mypy]
    proc = run(tool("mypy"))
    assert proc.returncode == 0, report(proc)


@pytest.mark.parametrize("name", ["ruff", "mypy"])
def test_tool_version_is_the_pinned_one(name):
    """Another version has other rules: a clean tree with it says nothing about the pinned one."""
    lock = (REPO / "requirements.lock").read_text()
    pinned = re.search(rf"^{name}==(\S+)", lock, re.M)[1]
    proc = run(tool(name), "--version")
    assert proc.returncode == 0, report(proc)
    installed = proc.stdout.split()[1]
    assert installed == pinned, f"{name} {installed} is installed, requirements.lock pins {pinned}"
