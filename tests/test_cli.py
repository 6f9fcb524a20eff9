"""The command line as a user meets it: one-line errors, exit codes, no tracebacks, no partial outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([str(BIN / "recastflow"), *args], cwd=cwd, capture_output=True, text=True, env=env)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_validate_ok(project):
    proc = run(["validate"], project)
    assert proc.returncode == 0, proc.stderr
    assert "configuration valid" in proc.stdout


def test_schema_error_one_line(project):
    cfg = project / "config" / "config.yaml"
    cfg.write_text(cfg.read_text() + "cores: 4\n")
    assert_user_error(run(["validate"], project), "config/config.yaml", "unknown key(s) 'cores'", "allowed:")


def test_sha_mismatch_one_line_and_no_output(project):
    ws = project / "config" / "analyses" / "TOY" / "workspaces" / "BkgOnly.json"
    ws.write_text(ws.read_text().replace("104.0", "105.0"))
    proc = run(["patch", "--grid", "TOYGRID", "--output", "out/patchset.json"], project)
    assert_user_error(proc, "BkgOnly.json", "sha256 is")
    assert not (project / "out").exists()


def test_missing_channel_in_patch_one_line(project):
    sig = project / "config" / "signals"
    (sig / "bad_patch.json").write_text(json.dumps(
        [{"op": "add", "path": "/channels/5/samples/0", "value": {"name": "s", "data": [1.0], "modifiers": []}}]))
    grid = sig / "TOYGRID.yaml"
    grid.write_text(grid.read_text().replace("yields: yields/P0.json", "patch: bad_patch.json"))
    proc = run(["patch", "--grid", "TOYGRID", "--output", "out/patchset.json"], project)
    assert_user_error(proc, "bad_patch.json", "refers to channel 5", "has 3 channels")
    assert not (project / "out").exists()


def test_patch_limits_table_check(project):
    assert run(["patch", "--grid", "TOYGRID", "--output", "r/ps.json"], project).returncode == 0
    proc = run(["limits", "--grid", "TOYGRID", "--point", "P1", "--patchset", "r/ps.json", "--output", "r/P1.json",
                "--upper-limit"], project)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((project / "r" / "P1.json").read_text())
    assert rec["status"] == "trusted" and 0 < rec["cls_obs"] < 1 and len(rec["cls_exp"]) == 5
    assert rec["xsec_ul_obs_pb"] == pytest.approx(rec["mu_ul_obs"] * 0.1)
    assert len([f for f in rec["fits"] if not f["label"].startswith("verification")]) == 5


def test_non_converging_fit_is_flagged_not_quoted(project):
    cfg = project / "config" / "config.yaml"
    cfg.write_text(cfg.read_text() + "fit: {maxiter: 1}\n")
    assert run(["patch", "--grid", "TOYGRID", "--output", "r/ps.json"], project).returncode == 0
    proc = run(["limits", "--grid", "TOYGRID", "--point", "P1", "--patchset", "r/ps.json", "--output", "r/P1.json"],
               project)
    assert proc.returncode == 0
    rec = json.loads((project / "r" / "P1.json").read_text())
    assert rec["status"] == "failed" and rec["cls_obs"] is None
    assert "did not converge" in rec["issues"][0]
    assert "failed" in proc.stderr


def test_unknown_point_one_line(project):
    assert run(["patch", "--grid", "TOYGRID", "--output", "r/ps.json"], project).returncode == 0
    proc = run(["limits", "--grid", "TOYGRID", "--point", "P9", "--patchset", "r/ps.json", "--output", "r/x.json"],
               project)
    assert_user_error(proc, "grid TOYGRID has no point 'P9'")


def test_limits_batch_shares_one_compiled_likelihood_and_feeds_the_table(project):
    assert run(["patch", "--grid", "TOYGRID", "--output", "r/ps.json"], project).returncode == 0
    proc = run(["limits", "--grid", "TOYGRID", "--points", "P0", "P1", "P2", "--patchset", "r/ps.json",
                "--upper-limit-points", "P1", "--output", "r/b000.json"], project)
    assert proc.returncode == 0, proc.stderr
    batch = json.loads((project / "r" / "b000.json").read_text())
    assert batch["format"] == "recastflow-limits-batch/1" and batch["method"] == "fast"
    assert [p["point"] for p in batch["points"]] == ["P0", "P1", "P2"]
    assert "1 likelihood compilation(s)" in proc.stderr
    # upper limits for exactly the points the caller names (the workflow passes the config's upper_limits)
    assert [p["mu_ul_obs"] is not None for p in batch["points"]] == [False, True, False]
    # the fast method's CLs equal the exact method's (pyhf's own fits) on this model
    exact = run(["limits", "--grid", "TOYGRID", "--point", "P1", "--patchset", "r/ps.json", "--output", "r/P1.json",
                 "--method", "exact"], project)
    assert exact.returncode == 0, exact.stderr
    rec = json.loads((project / "r" / "P1.json").read_text())
    assert rec["software"]["method"] == "exact"
    assert batch["points"][1]["cls_obs"] == pytest.approx(rec["cls_obs"], rel=1e-4)
    proc = run(["table", "--grid", "TOYGRID", "--inputs", "r/b000.json", "--json", "r/t/limits.json", "--csv",
                "r/t/limits.csv", "--plot", "r/t/exclusion.png", "--plot-pdf", "r/t/exclusion-print.pdf"], project)
    assert proc.returncode == 0, proc.stderr
    # exactly the files named, nothing beside them
    assert sorted(p.name for p in (project / "r" / "t").iterdir()) == [
        "exclusion-print.pdf", "exclusion.png", "limits.csv", "limits.json"]
    table = json.loads((project / "r" / "t" / "limits.json").read_text())
    assert [p["point"] for p in table["points"]] == ["P0", "P1", "P2"]


def test_version():
    from recastflow import __version__

    proc = run(["--version"], Path.cwd())
    assert proc.returncode == 0 and proc.stdout.strip() == f"recastflow {__version__}"


def test_every_option_has_help_text():
    import argparse

    from recastflow.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, p in [("recastflow", parser), *subparsers.choices.items()]
               for a in p._actions if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert not missing, missing


def test_a_job_does_not_read_the_run_configuration(project):
    """Given its settings as options, a job works even when the run configuration file is unreadable."""
    (project / "config" / "config.yaml").write_text("grids: [unclosed\n")
    settings = ["--analyses-dir", "config/analyses", "--signals-dir", "config/signals"]
    assert run([*settings, "patch", "--grid", "TOYGRID", "--output", "r/ps.json"], project).returncode == 0
    proc = run([*settings, "limits", "--grid", "TOYGRID", "--points", "P0", "P1", "--patchset", "r/ps.json",
                "--cl", "0.9", "--method", "exact", "--upper-limit-points", "P1", "--output", "r/b.json"], project)
    assert proc.returncode == 0, proc.stderr
    batch = json.loads((project / "r" / "b.json").read_text())
    assert batch["method"] == "exact" and [p["cl"] for p in batch["points"]] == [0.9, 0.9]
    assert [p["mu_ul_obs"] is not None for p in batch["points"]] == [False, True]
    # the interactive form still reads (and validates) the file, and says what is wrong with it
    assert_user_error(run(["patch", "--grid", "TOYGRID", "--output", "r/x.json"], project), "config/config.yaml")
    # one source of settings per command
    assert_user_error(run(["--config", "config/config.yaml", *settings, "patch", "--grid", "TOYGRID", "--output",
                           "r/y.json"], project), "give --config or --analyses-dir, --signals-dir, not both")


def test_upper_limits_only_for_points_of_the_batch(project):
    assert run(["patch", "--grid", "TOYGRID", "--output", "r/ps.json"], project).returncode == 0
    assert_user_error(run(["limits", "--grid", "TOYGRID", "--points", "P0", "--patchset", "r/ps.json",
                           "--upper-limit-points", "P2", "--output", "r/b.json"], project),
                      "--upper-limit-points", "P2", "does not hold")
    assert not (project / "r" / "b.json").exists()
