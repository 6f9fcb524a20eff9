"""Adaptive scans from the command line: ``recastflow run --scan FILE --adaptive``.

The run folder holds a copy of the scan file and its model (spectrum card or SLHA template), the process and
detector cards, and a run configuration with an ``adaptive`` section; the workflow's adaptive rules
(``workflow/rules/adaptive.smk``) do the rest. Running the same command again resumes the scan.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from recastflow.core.errors import RecastError
from recastflow.core.io import read_json, write_text_atomic
from recastflow.run.folder import check_run_folder, choose_analyses, choose_process, default_run_folder, project_root

__all__ = ["AdaptivePlan", "execute_adaptive", "format_adaptive", "plan_adaptive"]

#: The scan's results in the run folder (``workflow/rules/common.smk``, ADAPTIVE_SUMMARY).
SUMMARY = "results/adaptive/scan.json"
PLOT = "results/adaptive/scan.png"


@dataclass(frozen=True)
class AdaptivePlan:
    """An adaptive scan's run folder.

    Attributes:
        folder: the run folder.
        config: its run configuration.
        scan: the copied scan file.
        analysis: the bundle the scan runs through.
        workspace: its workspace.
        coarse_points: points of the coarse grid.
    """

    folder: Path
    config: Path
    scan: Path
    analysis: str
    workspace: str
    coarse_points: int


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def plan_adaptive(
    scan: str | Path,
    *,
    analyses: Sequence[str] | None = None,
    process: str | None = None,
    seed: int = 1,
    run_dir: str | Path | None = None,
) -> AdaptivePlan:
    """Check an adaptive scan and write its run folder (without running it).

    Args:
        scan: the scan file, with an ``adaptive`` section.
        analyses: exactly one ``ID:WORKSPACE`` (an adaptive scan refines one analysis's contour).
        process: the process card (name or path); default the card named like the scan's model.
        seed: the base seed.
        run_dir: the run folder (default ``runs/<scan name>_adaptive``).

    Returns:
        The plan.

    Raises:
        RecastError: any input is wrong (one line naming the file and the field).
    """
    from recastflow.adaptive.jobs import load_run
    from recastflow.generate.scan import load_scan

    if not 1 <= seed <= 2147483647:
        raise RecastError(f"--seed must be between 1 and 2147483647 (got {seed})", field="--seed")
    root = project_root()
    source = Path(scan)
    spec = load_scan(source)
    chosen = choose_analyses(analyses, root / "config" / "analyses")
    if len(chosen) != 1 or not analyses:
        raise RecastError(
            "an adaptive scan refines one analysis's contour: give --analyses ID:WORKSPACE (one), e.g. "
            "ATLAS-SUSY-2019-08:Wh",
            field="--analyses",
        )
    analysis, workspace = chosen[0]
    card = choose_process(process or spec.model_name, None, root / "config" / "processes")
    folder = Path(run_dir) if run_dir is not None else default_run_folder(f"{spec.name}_adaptive")
    check_run_folder(folder)
    detector = root / "config" / "detectors" / "ATLAS-Run2.yaml"
    # every check of the workflow's start, made before anything is written: a mistake is one line, and no
    # half-written run folder is left behind
    load_run(
        source,
        analysis=analysis.id,
        workspace=workspace,
        process=card,
        detector=detector,
        seed=seed,
        cl=0.95,
        analyses_dir=root / "config" / "analyses",
    )
    folder.mkdir(parents=True, exist_ok=True)
    # the scan and its model are copied, so that the run folder is the whole record of the scan
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    key = "model" if spec.model is not None else "template"
    model = spec.model if spec.model is not None else spec.template
    assert model is not None
    _write_if_changed(folder / "model" / model.name, model.read_bytes())
    doc[key] = f"model/{model.name}"
    header = (
        f"# {source.name} (sha256 {hashlib.sha256(source.read_bytes()).hexdigest()}) as copied by recastflow run "
        f"--adaptive; its {key} is model/{model.name}\n"
    )
    scan_copy = folder / "scan.yaml"
    _write_if_changed(scan_copy, (header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)).encode())
    _write_if_changed(folder / "processes" / card.name, card.read_bytes())
    _write_if_changed(folder / "detectors" / detector.name, detector.read_bytes())
    config = {
        "adaptive": {
            "scan": "scan.yaml",
            "analysis": analysis.id,
            "workspace": workspace,
            "process": f"processes/{card.name}",
            "detector": f"detectors/{detector.name}",
            "seed": seed,
        },
        "analyses_dir": _relative(root / "config" / "analyses", folder),
        "allowed_paths": [_relative(root / "config", folder)],
        "checks": True,
    }
    text = "# recastflow adaptive scan, written by `recastflow run --adaptive`; rerun the command to resume.\n"
    config_path = folder / "config.yaml"
    text += yaml.safe_dump(config, sort_keys=False)
    if not config_path.is_file() or config_path.read_text() != text:
        write_text_atomic(config_path, text)
    return AdaptivePlan(folder, config_path, scan_copy, analysis.id, workspace, len(spec.points))


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())


def execute_adaptive(
    plan: AdaptivePlan,
    *,
    cores: int | str = "all",
    profile: str | None = None,
    verbose: bool = False,
    extra: Sequence[str] = (),
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Run an adaptive scan's workflow and read its summary back.

    Args:
        plan: from :func:`plan_adaptive`.
        cores: Snakemake's ``--cores``.
        profile: a cluster profile.
        verbose: Snakemake's full output.
        extra: further Snakemake options.
        out: where progress goes.

    Returns:
        The scan's summary (``recastflow-adaptive-scan/1``).

    Raises:
        RecastError: the workflow failed (the message names its log).
    """
    from recastflow.run.engine import run_workflow

    started = time.time()
    code = run_workflow(plan.folder, cores=cores, profile=profile, verbose=verbose, extra=extra, out=out)
    summary = plan.folder / SUMMARY
    if code != 0:
        raise RecastError(
            f"the workflow failed (exit {code}); see {plan.folder / 'logs' / 'snakemake.log'} and the job logs under "
            f"{plan.folder / 'logs' / 'adaptive'}",
            path=str(plan.folder),
        )
    if not summary.is_file():
        raise RecastError(f"the workflow ended without {SUMMARY}", path=str(plan.folder))
    doc: dict[str, Any] = read_json(summary)
    doc["wall_s"] = time.time() - started
    return doc


def format_adaptive(doc: dict[str, Any]) -> str:
    """The scan's verdict on screen: points and events per round, why it stopped, flagged points, the reach."""
    from recastflow.report.contours import Contour, crossings_along

    lines = [
        f"{doc['scan']} through {doc['analysis']} ({doc['workspace']}): {len(doc['points'])} points in "
        f"{doc['rounds']} round(s), {doc['events']} events; {doc['done']}"
    ]
    rounds = sorted({p["round"] for p in doc["points"]})
    for r in rounds:
        pts = [p for p in doc["points"] if p["round"] == r]
        decided = sum(1 for p in pts if p["stop"].startswith("decided"))
        lines.append(
            f"  round {r}: {len(pts)} points, {sum(p['n_events'] for p in pts)} events, {decided} decided before "
            f"the maximum, {sum(1 for p in pts if p['excluded_obs'])} excluded (observed)"
        )
    x, y = doc["axes"]
    for kind, polylines in doc["contours"].items():
        contour = Contour(x, y, tuple(_array(line) for line in polylines))
        reach = crossings_along(contour, {y: min(p["values"][y] for p in doc["points"])}, x) if contour else []
        where = f"reaches {x} = {max(reach):.0f} at the lowest {y}" if reach else "does not cross the lowest row"
        lines.append(f"  {kind} contour ({doc['cl']:.0%} CL): {where}")
    if doc["flagged"]:
        lines.append(f"  NOT trusted ({len(doc['flagged'])}): {', '.join(doc['flagged'])} (see scan.csv, status)")
    else:
        lines.append("  every point's CLs trusted (converged fits, checks passed)")
    return "\n".join(lines) + "\n"


def _array(line: list[list[float]]) -> Any:
    import numpy as np

    return np.asarray(line, dtype=float)
