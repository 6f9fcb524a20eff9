"""Run the Snakemake workflow on a run folder and show one line per finished job.

Snakemake prints a block of eight to fifteen lines per job; a physicist running a model wants to see
which job finished and how long it took, and the error when one fails. The full output is kept in
``<run>/logs/snakemake.log``; ``verbose`` passes it through unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from recastflow.core.errors import RecastError
from recastflow.run.folder import project_root

_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")
_PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+%)\) done$")
_ERROR = re.compile(r"^Error in rule (\S+):$")


def snakemake_command(folder: Path, *, cores: int | str, profile: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The Snakemake command line that runs the workflow on a run folder.

    Args:
        folder: the run folder (Snakemake's working directory).
        cores: ``--cores`` (a number or ``all``).
        profile: a cluster profile (``--profile``), e.g. ``workflow/profiles/slurm``.
        extra: further Snakemake options.

    Returns:
        The command as a list.
    """
    root = project_root()
    folder = folder.resolve()
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "snakemake"]
    cmd += [
        "--snakefile", str(root / "Snakefile"),
        "--directory", str(folder),
        "--configfile", str(folder / "config.yaml"),
        "--workflow-profile", str(root / "workflow" / "profiles" / "default"),
        "--cores", str(cores),
    ]  # fmt: skip
    if profile is not None:
        path = Path(profile)
        if not path.is_dir() and (root / "workflow" / "profiles" / profile).is_dir():
            path = root / "workflow" / "profiles" / profile
        if not (path / "config.yaml").is_file():
            raise RecastError(f"no Snakemake profile {profile!r} (a folder with config.yaml)", field="--profile")
        cmd += ["--profile", str(path.resolve())]
    return cmd + list(extra)


@dataclass
class _Job:
    rule: str
    wildcards: str = ""
    started: float = field(default_factory=time.monotonic)


class CompactOutput:
    """Turns Snakemake's output into one line per finished job (and the error block of a failed one)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        """Args:
        write: where the compact lines go (e.g. ``print``).
        """
        self.write = write
        self.jobs: dict[str, _Job] = {}
        self._current: _Job | None = None
        self._error: list[str] | None = None
        self.total = 0
        self.done = 0
        self.reported_error = False

    def feed(self, line: str) -> None:
        """Take one line of Snakemake's output."""
        line = line.rstrip("\n")
        if self._error is not None:
            # the block of a failed job: its wildcards and its log, between Snakemake's ==== rulers
            if not line.strip() or line.startswith(("RuleException", "Shutting down", "[")):
                self._flush_error()
            elif m := _WILDCARDS.match(line):
                self._error[0] += f" {m.group(1)}"
            elif line.startswith("Logfile "):
                self._error.append(f"  {line}")
            elif not line.startswith("    ") and not line.startswith("====="):
                self._error.append(f"  | {line}")
            return
        if m := _RULE.match(line):
            self._current = _Job(m.group(1))
        elif self._current is not None and (m := _JOBID.match(line)):
            self.jobs[m.group(1)] = self._current
        elif self._current is not None and (m := _WILDCARDS.match(line)):
            self._current.wildcards = m.group(1)
        elif m := _FINISHED.match(line):
            job = self.jobs.pop(m.group(1), None)
            if job is not None and job.rule != "all":
                seconds = time.monotonic() - job.started
                what = " ".join(v.split("=", 1)[-1] for v in job.wildcards.split(", ") if v)
                self.write(f"  done  {job.rule:<14} {what:<52} {seconds:7.1f} s")
        elif m := _PROGRESS.match(line):
            self.done, self.total = int(m.group(1)), int(m.group(2))
        elif m := _ERROR.match(line):
            self._error = [f"  FAILED {m.group(1)}:"]
        elif (
            line.startswith(("WorkflowError", "MissingInputException", "recastflow: ")) or "configuration error" in line
        ):
            self.write(line)

    def _flush_error(self) -> None:
        if self._error is not None:
            self.write("\n".join(self._error))
            self._error = None
            self.reported_error = True

    def close(self) -> None:
        """Flush an error block still being collected."""
        self._flush_error()


def run_workflow(
    folder: Path,
    *,
    cores: int | str = "all",
    profile: str | None = None,
    verbose: bool = False,
    extra: Sequence[str] = (),
    out: TextIO | None = None,
) -> int:
    """Run the workflow on a run folder.

    Args:
        folder: the run folder.
        cores: Snakemake's ``--cores``.
        profile: a cluster profile, if any.
        verbose: pass Snakemake's own output through instead of the compact lines.
        extra: further Snakemake options.
        out: where to print (default: standard output).

    Returns:
        Snakemake's exit code.
    """
    stream = out or sys.stdout
    cmd = snakemake_command(folder, cores=cores, profile=profile, extra=extra)
    env = dict(os.environ)
    # the jobs call `recastflow`: the one installed beside this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    log_path = folder / "logs" / "snakemake.log"

    def write(text: str) -> None:
        print(text, file=stream, flush=True)

    compact = CompactOutput(write)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(folder)
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if verbose:
                stream.write(line)
                stream.flush()
            else:
                compact.feed(line)
        code = proc.wait()
    compact.close()
    if code != 0 and not verbose:
        if not compact.reported_error:
            # Snakemake stopped before any job (e.g. a configuration it could not read): its last words say why
            tail = log_path.read_text().splitlines()[-12:]
            write("\n".join("  | " + t for t in tail))
        write(f"  the workflow stopped (exit {code}); Snakemake's full output: {log_path}")
    return code
