"""Python API of model-first runs, for notebooks: the same validation, errors and results as ``recastflow run``.

Example:
    >>> from recastflow.run.api import run_model
    >>> result = run_model("my_model.slha", analyses=["ATLAS-SUSY-2019-08"], events=5000)  # doctest: +SKIP
    >>> result.to_dataframe()  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from recastflow.core.errors import RecastError
from recastflow.core.paths import REPORT, VERDICTS
from recastflow.run.engine import run_workflow
from recastflow.run.folder import (
    ModelPoint,
    RunPlan,
    check_run_folder,
    choose_analyses,
    choose_process,
    default_run_folder,
    project_root,
    remove_stale_grids,
    safe_name,
    slha_parameters,
    write_run_folder,
)
from recastflow.run.summary import PointVerdict, load_verdicts


@dataclass(frozen=True)
class RunResult:
    """The outcome of a model-first run.

    Attributes:
        folder: the run folder (config, grids, results, logs).
        verdicts: one verdict per model point, over every analysis.
        report: the run's HTML report.
        failure: why the workflow failed after writing the verdicts (a failed check), or empty.
    """

    folder: Path
    verdicts: tuple[PointVerdict, ...]
    report: Path
    #: why the workflow failed after the verdicts were made (e.g. a failed yield check); empty if it did not
    failure: str = ""

    def records(self) -> list[dict[str, Any]]:
        """One flat record per point and analysis (what ``verdicts.csv`` holds)."""
        out = []
        for v in self.verdicts:
            for o in v.outcomes:
                out.append(
                    {
                        "point": v.point,
                        **v.values,
                        **{k: val for k, val in asdict(o).items() if k != "issues"},
                        "issues": "; ".join(o.issues),
                        "most_sensitive": o.grid == v.most_sensitive,
                        "verdict": v.verdict,
                        "excluded_by": v.excluded_by,
                    }
                )
        return out

    def to_dataframe(self) -> Any:
        """The records as a pandas DataFrame.

        Raises:
            RecastError: pandas is not installed.
        """
        try:
            import pandas as pd  # type: ignore[import-untyped]  # optional: records() needs nothing
        except ImportError:
            raise RecastError("to_dataframe needs pandas ('pip install pandas'); records() needs nothing") from None
        return pd.DataFrame.from_records(self.records())


def plan_model(
    slha: str | Path,
    *,
    analyses: Sequence[str] | None = None,
    process: str | None = None,
    events: int = 5000,
    chunks: int = 1,
    seed: int = 1,
    upper_limits: bool = False,
    run_dir: str | Path | None = None,
) -> RunPlan:
    """Check a single SLHA spectrum and write its run folder (without running it).

    Args:
        slha: the model's SLHA spectrum (MODSEL, every sparticle in MASS, decays, XSECTION).
        analyses: analysis IDs (``ID`` or ``ID:workspace``); default every analysis with an event selection.
        process: the process card (name or path); default the one the SLHA's XSECTION blocks identify.
        events: events to generate.
        chunks: generation jobs (each its own seed).
        seed: the base seed of every random step.
        upper_limits: also compute cross-section upper limits (r = sigma / sigma_UL).
        run_dir: the run folder (default ``runs/<SLHA file stem>``).

    Returns:
        The plan.

    Raises:
        RecastError: any input is wrong (one line naming the file, the field and the fix).
    """
    from recastflow.checks.preflight import check_model_spectrum

    path = Path(slha)
    if not path.is_file():
        raise RecastError("no such SLHA file", path=str(path))
    _check_counts(events, chunks, seed)
    root = project_root()
    card = choose_process(process, path, root / "config" / "processes")
    check_model_spectrum(path, card)
    chosen = choose_analyses(analyses, root / "config" / "analyses")
    values = slha_parameters(path, card)
    parameters = {k: {"label": f"{k} [GeV]", "unit": "GeV"} for k in values}
    point = ModelPoint(safe_name(path.stem), values, path)
    folder = Path(run_dir) if run_dir is not None else default_run_folder(path.stem)
    check_run_folder(folder)
    return _write(folder, [point], parameters, chosen, card, (events, chunks, seed), upper_limits)


def plan_scan(
    scan: str | Path,
    *,
    analyses: Sequence[str] | None = None,
    process: str | None = None,
    events: int = 5000,
    chunks: int = 1,
    seed: int = 1,
    upper_limits: bool = False,
    run_dir: str | Path | None = None,
) -> RunPlan:
    """Expand a scan file into points, write their SLHA files and the run folder (without running it).

    Args:
        scan: the scan file (axes, constraints, template or spectrum card, cross-section source).
        analyses: as for :func:`plan_model`.
        process: the process card (name or path); default the card named like the scan's model.
        events: events per point.
        chunks: generation jobs per point.
        seed: the base seed.
        upper_limits: also compute upper limits for every point.
        run_dir: the run folder (default ``runs/<scan name>``).

    Returns:
        The plan.

    Raises:
        RecastError: any input is wrong.
    """
    from recastflow.generate.pythia import load_card as load_process
    from recastflow.generate.scan import check_xsec_source, load_scan, write_point_slha

    _check_counts(events, chunks, seed)
    root = project_root()
    spec = load_scan(Path(scan))
    card = choose_process(process or spec.model_name, None, root / "config" / "processes")
    check_xsec_source(spec, load_process(card).xsec_source, card_path=card)
    chosen = choose_analyses(analyses, root / "config" / "analyses")
    folder = Path(run_dir) if run_dir is not None else default_run_folder(spec.name)
    check_run_folder(folder)
    slha_dir = folder / "signals" / "slha"
    slha_dir.mkdir(parents=True, exist_ok=True)
    points = []
    for p in spec.points:
        target = slha_dir / f"{p.name}.slha"
        write_point_slha(spec, p, target)
        points.append(ModelPoint(p.name, dict(p.values), target))
    parameters = {a: {"label": spec.axis_label(a)} for a in spec.axes}
    return _write(folder, points, parameters, chosen, card, (events, chunks, seed), upper_limits)


def _write(
    folder: Path,
    points: Sequence[ModelPoint],
    parameters: dict[str, dict[str, str]],
    chosen: Sequence[tuple[Any, str]],
    card: Path,
    statistics: tuple[int, int, int],
    upper_limits: bool,
) -> RunPlan:
    """Write the run folder of a model or a scan (the shipped ATLAS-like detector card) and drop stale grids."""
    events, chunks, seed = statistics
    plan = write_run_folder(
        folder,
        points,
        parameters,
        chosen,
        process=card,
        detector=project_root() / "config" / "detectors" / "ATLAS-Run2.yaml",
        n_events=events,
        chunks=chunks,
        seed=seed,
        upper_limits=upper_limits,
        model=card.stem,
    )
    remove_stale_grids(plan)
    return plan


def _check_counts(events: int, chunks: int, seed: int) -> None:
    if events < 1:
        raise RecastError(f"--events must be at least 1 (got {events})", field="--events")
    if not 1 <= chunks <= min(events, 1000):
        raise RecastError(f"--chunks must be between 1 and min(--events, 1000) (got {chunks})", field="--chunks")
    if not 1 <= seed <= 2147483647:
        raise RecastError(f"--seed must be between 1 and 2147483647 (got {seed})", field="--seed")


def execute(
    plan: RunPlan,
    *,
    cores: int | str = "all",
    profile: str | None = None,
    verbose: bool = False,
    extra: Sequence[str] = (),
    out: TextIO | None = None,
) -> RunResult:
    """Run the workflow on a planned run folder and read the verdicts back.

    Args:
        plan: from :func:`plan_model` or :func:`plan_scan`.
        cores: Snakemake's ``--cores``.
        profile: a cluster profile (``workflow/profiles/slurm`` or a name under it).
        verbose: Snakemake's full output instead of one line per job.
        extra: further Snakemake options (e.g. ``["--keep-going"]``).
        out: where progress goes (default standard output).

    Returns:
        The verdicts and where the report is.

    Raises:
        RecastError: the workflow failed before the verdicts were made (the message names its log). A failure
            after them (a failed check) is returned in ``RunResult.failure``.
    """
    verdicts_file = plan.folder / f"{VERDICTS}.json"
    started = time.time()
    code = run_workflow(plan.folder, cores=cores, profile=profile, verbose=verbose, extra=extra, out=out)
    failure = ""
    if code != 0:
        failure = (
            f"the workflow failed (exit {code}); see {plan.folder / 'logs' / 'snakemake.log'} and the job logs "
            f"under {plan.folder / 'logs'}"
        )
        # a failed check (e.g. our yields against ATLAS's patches) fails the run at its end, after the verdicts
        # were written: those are still shown, with the failure; verdicts of an earlier run are not
        if not verdicts_file.is_file() or verdicts_file.stat().st_mtime < started:
            raise RecastError(failure, path=str(plan.folder))
    verdicts = load_verdicts(verdicts_file)
    return RunResult(plan.folder, tuple(verdicts), plan.folder / REPORT, failure)


#: The options of :func:`execute`; the others of run_model/run_scan are the plan's.
_RUN_KEYS = frozenset({"cores", "profile", "verbose", "extra", "out"})


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {k: v for k, v in kwargs.items() if k not in _RUN_KEYS}, {k: v for k, v in kwargs.items() if k in _RUN_KEYS}


def run_model(slha: str | Path, **kwargs: Any) -> RunResult:
    """Run one SLHA spectrum through the analyses: :func:`plan_model` then :func:`execute`.

    Args:
        slha: the SLHA spectrum.
        **kwargs: options of :func:`plan_model` and :func:`execute`.

    Returns:
        The verdicts.

    Raises:
        RecastError: wrong input or a failed workflow.
    """
    planning, running = _split(kwargs)
    return execute(plan_model(slha, **planning), **running)


def run_scan(scan: str | Path, **kwargs: Any) -> RunResult:
    """Run a scan through the analyses: :func:`plan_scan` then :func:`execute`.

    Args:
        scan: the scan file.
        **kwargs: options of :func:`plan_scan` and :func:`execute`.

    Returns:
        The verdicts.

    Raises:
        RecastError: wrong input or a failed workflow.
    """
    planning, running = _split(kwargs)
    return execute(plan_scan(scan, **planning), **running)


def print_plan(plan: RunPlan, out: TextIO | None = None) -> None:
    """Say what is about to run, before the workflow's own output."""
    stream = out or sys.stdout
    print(
        f"recastflow run: {len(plan.points)} point(s) x {len(plan.grids)} analysis workspace(s), "
        f"process {plan.process.stem}; run folder {plan.folder}",
        file=stream,
        flush=True,
    )
    print(f"  analyses: {', '.join(plan.grids)}", file=stream, flush=True)
