"""Snakemake's output turned into one line per finished job, and the error block of a failed one."""

from __future__ import annotations

from recastflow.run.engine import CompactOutput

LOG = """\
Building DAG of jobs...
[Sun Dec  6 10:47:03 2026]
rule generate:
    input: processes/TChiWH.yaml, signals/slha/P.slha
    output: results/generate/model/P/chunk0.parquet
    log: logs/generate/model/P/chunk0.log
    jobid: 4
    benchmark: results/benchmarks/generate/model/P/chunk0.tsv
    reason: Missing output files: results/generate/model/P/chunk0.parquet
    wildcards: sample=model, point=P, chunk=0
    threads: 1
    resources: tmpdir=/tmp

recastflow generate --grid G --point P --chunk 0 --output results/generate/model/P/chunk0.parquet
[Sun Dec  6 10:47:15 2026]
Finished jobid: 4 (Rule: generate)
1 of 9 steps (11%) done
[Sun Dec  6 10:47:16 2026]
rule patch:
    input: signals/G.yaml
    output: results/patch/G/patchset.json
    jobid: 7
    wildcards: grid=G

[Sun Dec  6 10:47:20 2026]
Error in rule patch:
    message: None
    jobid: 7
    wildcards: grid=G
    log: logs/patch/G.log (check log file(s) for error details)
Logfile logs/patch/G.log:
================================================================================
recastflow patch: error: yields.json: region SR is not a region
================================================================================

Shutting down, this might take some time.
"""


def test_one_line_per_job_and_the_failed_log() -> None:
    lines: list[str] = []
    out = CompactOutput(lines.append)
    for line in LOG.splitlines():
        out.feed(line)
    out.close()
    assert len(lines) == 2
    assert lines[0].split()[:5] == ["done", "generate", "model", "P", "0"]
    assert lines[1].startswith("  FAILED patch: grid=G")
    assert "| recastflow patch: error: yields.json: region SR is not a region" in lines[1]
    assert out.reported_error and (out.done, out.total) == (1, 9)
