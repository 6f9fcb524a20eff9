"""`recastflow run --scan`: points from a spectrum card, a verdict per point, new points run alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from recastflow.run.folder import project_root

ROOT = project_root()


def _scan(tmp_path: Path, values: list[int]) -> Path:
    path = tmp_path / "scan.yaml"
    path.write_text(
        f"name: S\nmodel: {ROOT / 'config' / 'spectra' / 'TChiWH.yaml'}\n"
        f"axes:\n  m_C1N2: {{values: {values}}}\n  m_N1: {{values: [0, 400]}}\n"
        "constraints: ['m_N1 <= m_C1N2 - 130']\ncross_section: tables\n"
    )
    return path


def _run(scan: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recastflow", "run", "--scan", str(scan), "--analyses", "ATLAS-SUSY-2019-08",
         "--events", "200", "--cores", "2", "--run-dir", "run"],
        cwd=cwd, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip


@pytest.mark.slow
def test_scan_runs_and_grows(tmp_path: Path) -> None:
    proc = _run(_scan(tmp_path, [450, 650]), tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # (450, 400) breaks the constraint: three points
    assert proc.stdout.count("verdict:") == 3, proc.stdout
    assert re.search(r"^S_650_0  \(m_C1N2 = 650, m_N1 = 0\)$", proc.stdout, re.M)
    grown = _run(_scan(tmp_path, [450, 650, 1000]), tmp_path)
    assert grown.returncode == 0, grown.stdout[-3000:] + grown.stderr[-3000:]
    generated = re.findall(r"done\s+generate\s+model (\S+)", grown.stdout)
    assert sorted(generated) == ["S_1000_0", "S_1000_400"]  # the old points are not made again
    assert grown.stdout.count("verdict:") == 5


def test_a_constraint_that_removes_every_point(tmp_path: Path) -> None:
    scan = _scan(tmp_path, [450])
    scan.write_text(scan.read_text().replace("m_N1 <= m_C1N2 - 130", "m_N1 > m_C1N2"))
    proc = _run(scan, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "constraint" in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()
