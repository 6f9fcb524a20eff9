"""`recastflow run` as a new user runs it: an SLHA spectrum at a mass no file of the repository has, end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from recastflow.run.folder import project_root

ROOT = project_root()
RECASTFLOW = [sys.executable, "-m", "recastflow", "run"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RECASTFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_run_one_spectrum_prints_the_verdict(tmp_path: Path) -> None:
    from recastflow.generate.spectrum import write_spectrum

    # (650, 50) GeV: no SLHA file, grid or reference of the repository has this point
    slha = write_spectrum(ROOT / "config" / "spectra" / "TChiWH.yaml", {"m_C1N2": 650, "m_N1": 50}, tmp_path / "my.slha")
    proc = _run(str(slha), "--process", "TChiWH", "--analyses", "ATLAS-SUSY-2019-08", "--events", "300",
                "--cores", "2", "--run-dir", "run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"done\s+generate\s+model my 0", out)
    assert "my  (m_C1N2 = 650, m_N1 = 50)" in out
    assert re.search(r"\* ATLAS-SUSY-2019-08 \(Wh\)\s+\S+\s+\S+\s+13\.7\s", out)  # sigma(650 GeV) = 13.7 fb
    assert re.search(r"verdict: (EXCLUDED at 95% CL by ATLAS-SUSY-2019-08 \(Wh\)|not excluded at 95% CL)", out)
    assert (tmp_path / "run" / "results" / "summary" / "verdicts.csv").is_file()
    assert f"report: {Path('run') / 'results' / 'report' / 'index.html'}" in out
    # the same command again: nothing to redo, the same verdict
    again = _run(str(slha), "--process", "TChiWH", "--analyses", "ATLAS-SUSY-2019-08", "--events", "300",
                 "--cores", "2", "--run-dir", "run", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0 and "done  generate" not in again.stdout
    assert out.split("Verdict per model point")[1] == again.stdout.split("Verdict per model point")[1]


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    slha = ROOT / "config" / "signals" / "slha" / "TChiWH" / "TChiWH_700_0.slha"
    cases = {
        ("--analyses", "ATLAS-NOPE"): "'ATLAS-NOPE' is not an analysis bundle",
        ("--analyses", "ATLAS-SUSY-2018-04:Region-nope"): "has no workspace 'Region-nope'",
        ("--events", "0"): "--events must be at least 1",
        ("--process", "TNope"): "no process card 'TNope'",
    }
    for extra, message in cases.items():
        proc = _run(str(slha), "--process", "TChiWH", *extra, "--run-dir", "r", cwd=tmp_path)
        assert proc.returncode == 1, (extra, proc.stdout, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = _run(str(tmp_path / "missing.slha"), "--run-dir", "r", cwd=tmp_path)
    assert proc.returncode == 1 and "no such SLHA file" in proc.stderr


def test_xsection_of_another_mass_is_refused(tmp_path: Path) -> None:
    # the 700 GeV file with its chargino and neutralino-2 masses moved to 650 GeV: its XSECTION is 700 GeV's
    text = (ROOT / "config" / "signals" / "slha" / "TChiWH" / "TChiWH_700_0.slha").read_text()
    moved = re.sub(r"^(\s+100002[34]\s+)7\.00000000E\+02", r"\g<1>6.50000000E+02", text, flags=re.M)
    assert moved != text
    (tmp_path / "moved.slha").write_text(moved)
    proc = _run("moved.slha", "--process", "TChiWH", "--run-dir", "r", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "XSECTION" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "r").exists()
