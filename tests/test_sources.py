"""No third-party file is tracked: every git-tracked file's sha256 against the mirror's SOURCES.md."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
import yaml

from conftest import REPO, SHARED_MIRROR

SOURCES_MD = SHARED_MIRROR / "SOURCES.md"
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*\d+\s*\|\s*`([0-9a-f]{64})`", re.M)


def tracked_files() -> list[str]:
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in proc.stdout.decode().split("\0") if f]


@pytest.mark.skipif(not SOURCES_MD.is_file(), reason="needs ../shared/data/SOURCES.md")
def test_no_tracked_file_is_a_third_party_file():
    published = {digest: name for name, digest in ROW.findall(SOURCES_MD.read_text())}
    assert len(published) > 50  # the table was read (a format change must not make this test pass vacuously)
    copies = []
    for name in tracked_files():
        path = REPO / name
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in published:
                copies.append(f"{name} = {published[digest]}")
    assert not copies, "third-party files are tracked (git rm --cached them):\n" + "\n".join(copies)


@pytest.mark.skipif(not SOURCES_MD.is_file(), reason="needs ../shared/data/SOURCES.md")
def test_bundle_sources_agree_with_the_mirror_table():
    # each declared source whose file the mirror lists must have the mirror's sha256 (a typo would only show
    # as a refused fetch elsewhere)
    table = {name.rsplit("/", 1)[-1]: digest for name, digest in ROW.findall(SOURCES_MD.read_text())}
    checked = 0
    for bundle in sorted((REPO / "config" / "analyses").glob("*/analysis.yaml")):
        for key, src in yaml.safe_load(bundle.read_text()).get("sources", {}).items():
            if src["file"] in table:
                assert src["sha256"] == table[src["file"]], f"{bundle}: sources.{key}.sha256"
                checked += 1
    assert checked >= 3


def test_catalogue_lists_every_bundle_with_its_sources():
    from recastflow.analyses.catalogue import catalogue, markdown

    entries = {e.id: e for e in catalogue(REPO / "config" / "analyses", REPO / "config" / "signals")}
    assert set(entries) == {p.parent.name for p in (REPO / "config" / "analyses").glob("*/analysis.yaml")}
    sbottom = entries["ATLAS-SUSY-2018-31"]
    assert "published likelihood" in sbottom.supports and "sbottom_RegionA" in sbottom.grids
    assert any("doi:10.17182/hepdata.89408.v3/r2" in s for s in sbottom.sources)
    assert "event selection" in entries["ATLAS-SUSY-2019-08"].supports
    text = markdown(list(entries.values()))
    assert text.count("\n") == len(entries) + 2 and "SUSY-2018-04_likelihoods.tar.gz" in text


def test_catalogue_json_feeds_the_report(tmp_path):
    from recastflow.analyses.catalogue import catalogue, to_json
    from recastflow.core.io import write_json_atomic
    from recastflow.report.assemble import build_report

    doc = {"analyses": to_json(catalogue(REPO / "config" / "analyses", REPO / "config" / "signals"))}
    assert [e["id"] for e in doc["analyses"]] == sorted(e["id"] for e in doc["analyses"])
    write_json_atomic(tmp_path / "catalogue.json", doc)
    build_report(tables=[], catalogue=tmp_path / "catalogue.json", output=tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text()
    assert "Analysis catalogue" in html and "ATLAS-SUSY-2018-31" in html and "hepdata.89408" in html
