"""The documentation site: references generated from their sources, and a strict build."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def generator():
    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_references_are_generated_from_the_current_schemas_parser_and_package():
    gen = generator()
    for name, text in (("config.md", gen.config_reference()), ("cli.md", gen.cli_reference()),
                       ("api.md", gen.api_reference()), ("catalogue.md", gen.catalogue_reference())):
        committed = (REPO / "docs" / "reference" / name).read_text()
        assert committed == text, f"docs/reference/{name} is stale: run python docs/gen_reference.py"


def test_every_schema_field_and_subcommand_is_documented():
    gen = generator()
    config = gen.config_reference()
    for field in ("`limits.fallback`", "`limits.verify`", "`fit.tolerance`", "`points[].name`"):
        assert field in config
    cli = gen.cli_reference()
    for command in ("validate", "patch", "limits", "table", "check", "report", "generate", "select"):
        assert f"## `recastflow {command}`" in cli


# paths the docs name that are not the repository's: a user's own files in tutorials, and pyhf's own test file
NOT_OURS = {
    "config/my-run.yaml",
    "config/signals/MyModel.yaml",
    "config/signals/slha/MyModel/",
    "tests/test_regression.py",
}


def test_every_repository_path_the_docs_name_exists():
    # tests and benchmarks moved when the house was reorganised; a stale path sends a reader nowhere
    pattern = re.compile(r"`((?:tests|benchmarks|config|workflow|containers|envs|docs)/[A-Za-z0-9_./-]+)`")
    stale = []
    for page in [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for path in pattern.findall(page.read_text()):
            if path not in NOT_OURS and not (REPO / path).exists():
                stale.append(f"{page.relative_to(REPO)}: {path}")
    assert not stale, stale


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed (pip install -e '.[test]')")
def test_docs_build_strict(tmp_path):
    proc = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
