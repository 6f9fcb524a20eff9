"""An adaptive scan end to end on small data: the real workflow, killed part-way and resumed to the same bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from recastflow.run.folder import project_root

ROOT = project_root()


def _scan(path: Path) -> Path:
    doc = {
        "name": "T",
        "model": str(ROOT / "config" / "spectra" / "TChiWH.yaml"),
        # corners on both sides of the 1Lbb contour at m(chi_1^0) = 0 and 200 GeV: one refinement round adds
        # the points between them
        "axes": {"m_C1N2": {"values": [500, 900]}, "m_N1": {"values": [0, 200]}},
        "constraints": ["m_N1 <= m_C1N2 - 130"],
        "cross_section": "tables",
        "adaptive": {
            "events": {"chunk": 100, "min": 100, "max": 200},
            "refine": {"resolution": {"m_C1N2": 200, "m_N1": 200}, "max_rounds": 1},
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _command(scan: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "recastflow", "run", "--scan", str(scan), "--adaptive", "--analyses",
            "ATLAS-SUSY-2019-08:Wh", "--cores", "2", "--run-dir", str(run_dir)]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _results(run_dir: Path) -> dict[str, bytes]:
    """Every result of the scan by path, but the particle-level chunks: those are temporary files, which a run
    killed between a chunk's emulation and their removal leaves behind (the resumed run does not need them)."""
    base = run_dir / "results" / "adaptive"
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and "generate" not in p.relative_to(base).parts
    }


@pytest.mark.slow
def test_adaptive_scan_killed_and_resumed_gives_the_same_bytes(tmp_path: Path) -> None:
    scan = _scan(tmp_path / "scan.yaml")
    reference = tmp_path / "reference"
    proc = subprocess.run(_command(scan, reference), capture_output=True, text=True, env=_env(), timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "T through ATLAS-SUSY-2019-08 (Wh): 6 points in 2 round(s)" in out, out
    assert "observed contour (95% CL)" in out and "plot: " in out
    ref = _results(reference)
    assert {"scan.json", "scan.csv", "scan.png", "rounds/round0.json", "rounds/round1.json"} <= set(ref)
    decisions = [k for k in ref if k.startswith("points/") and "/decision" in k]
    assert {k.split("/")[1] for k in decisions} == {"T_500_0", "T_500_200", "T_900_0", "T_900_200", "T_700_0",
                                                    "T_700_200"}  # fmt: skip
    # generation goes in chunks and stops: no point has more than max / chunk = 2 decisions
    assert all(int(k.split("decision")[1].split(".")[0]) <= 1 for k in decisions)

    # the same scan, killed (SIGINT to the whole run, as Ctrl-C does) once three decisions exist, then resumed
    killed = tmp_path / "killed"
    # a shell starts background commands with SIGINT ignored and children inherit that (a CI job started with
    # `&`): restore the default, or the SIGINT below is lost and the run goes on to the end
    run = subprocess.Popen(_command(scan, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                           start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.time() + 900
    while time.time() < deadline and run.poll() is None:
        if len(list((killed / "results" / "adaptive" / "points").glob("*/decision*.json"))) >= 3:
            break
        time.sleep(0.5)
    assert run.poll() is None, "the run ended before it could be killed"
    os.killpg(run.pid, signal.SIGINT)
    run.wait(timeout=300)
    assert not (killed / "results" / "adaptive" / "scan.json").exists(), (
        f"the run went on after SIGINT (this process's SIGINT handler: {signal.getsignal(signal.SIGINT)!r})"
    )
    again = subprocess.run(_command(scan, killed), capture_output=True, text=True, env=_env(), timeout=1500)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert _results(killed) == ref
    # and once more: nothing left to do, the same summary
    last = subprocess.run(_command(scan, killed), capture_output=True, text=True, env=_env(), timeout=600)
    assert last.returncode == 0 and "done  adaptive_generate" not in last.stdout
    assert _results(killed) == ref
