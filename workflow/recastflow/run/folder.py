"""The run folder of a model-first run: its configuration, one grid per analysis, the SLHA files and cards.

``recastflow run`` writes everything the workflow needs into one folder so that a run can be inspected,
resumed (run the same command again: Snakemake redoes only what is missing or changed) and archived:

```
<run>/config.yaml              the run configuration (validated like any other)
<run>/signals/<grid>.yaml      one grid per analysis and workspace, all naming the event sample "model"
<run>/signals/slha/<point>.slha the model points' spectra (copied, or written from the scan's template)
<run>/processes/<card>.yaml    the process card (copied)
<run>/detectors/<card>.yaml    the detector card (copied)
<run>/results/, <run>/logs/    written by the workflow
```

Every grid names the same event sample, so each point is generated, showered and emulated once and every
analysis's selection runs on those events.
"""

from __future__ import annotations

import math
import os
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recastflow.core.errors import RecastError
from recastflow.core.io import write_text_atomic

#: The event sample every grid of a model-first run shares.
SAMPLE = "model"


def project_root() -> Path:
    """The recastflow checkout holding the Snakefile, the bundles and the cards.

    Raises:
        RecastError: the package is not run from a checkout (no Snakefile beside it).
    """
    root = Path(__file__).resolve().parents[3]
    if not (root / "Snakefile").is_file():
        raise RecastError(
            "recastflow run needs the recastflow checkout (its Snakefile and config/); install it with "
            "'pip install -e .' from a clone",
            path=str(root),
        )
    return root


@dataclass(frozen=True)
class ModelPoint:
    """One model point of a run: its name, parameter values and SLHA file."""

    name: str
    values: dict[str, float]
    slha: Path


@dataclass(frozen=True)
class RunPlan:
    """What a run folder holds, for the caller to print and to run.

    Attributes:
        folder: the run folder.
        config: its run configuration file.
        grids: the grid names (one per analysis and workspace).
        points: the model points.
        process: the process card used.
    """

    folder: Path
    config: Path
    grids: tuple[str, ...]
    points: tuple[ModelPoint, ...]
    process: Path


def analyses_with_selection(analyses_dir: Path) -> dict[str, Any]:
    """The bundles that can be recast from events (they have an event selection), by ID."""
    from recastflow.analyses.bundle import load_analysis

    out = {}
    for path in sorted(analyses_dir.glob("*/analysis.yaml")):
        analysis = load_analysis(path.parent.name, analyses_dir)
        if analysis.has_selection:
            out[analysis.id] = analysis
    return out


def choose_analyses(requested: Sequence[str] | None, analyses_dir: Path) -> list[tuple[Any, str]]:
    """The (analysis, workspace) pairs to run: ``ID`` means every workspace, ``ID:workspace`` one.

    Args:
        requested: the user's ``--analyses`` (None: every analysis with an event selection).
        analyses_dir: folder of the bundles.

    Returns:
        The analyses and workspaces, in the order given.

    Raises:
        RecastError: an unknown analysis or workspace, or one that has no event selection.
    """
    from recastflow.analyses.bundle import load_analysis

    usable = analyses_with_selection(analyses_dir)
    if not usable:
        raise RecastError("no analysis bundle has an event selection", path=str(analyses_dir))
    if not requested:
        return [(a, ws) for a in usable.values() for ws in a.workspaces if not missing_regions(a, ws)]
    out = []
    for entry in requested:
        aid, _, ws = entry.partition(":")
        if aid not in usable:
            if (analyses_dir / aid / "analysis.yaml").is_file():
                load_analysis(aid, analyses_dir)  # a broken bundle says why
                why = "has no event selection (it can be used with published signal patches only)"
            else:
                why = "is not an analysis bundle"
            raise RecastError(
                f"{aid!r} {why}; analyses with an event selection: {', '.join(usable)}", field="--analyses"
            )
        analysis = usable[aid]
        names = [ws] if ws else list(analysis.workspaces)
        for name in names:
            analysis.workspace(name, source="--analyses")
            missing = missing_regions(analysis, name)
            if missing and ws:
                raise RecastError(
                    f"the event selection of {aid} does not fill region(s) {', '.join(missing)} of workspace "
                    f"{name}: its signal there would be taken as zero; choose another workspace",
                    path=str(analysis.selection_for(name) or analysis.folder / "analysis.yaml"),
                    field="--analyses",
                )
            if not missing:
                out.append((analysis, name))
        if not any(a is analysis for a, _ in out):
            raise RecastError(
                f"the event selection of {aid} fills no workspace of the bundle completely",
                path=str(analysis.selection or analysis.folder / "analysis.yaml"),
            )
    return out


def missing_regions(analysis: Any, workspace: str) -> list[str]:
    """The regions of a bundle's workspace that its event selection neither fills nor declares ``unfilled``.

    A workspace is run only when this is empty: a region left out without a word would silently count as
    zero signal. Declared ones (:func:`unfilled_regions`) are named with every verdict instead. The
    selection is the workspace's own, else the bundle's (:meth:`~recastflow.analyses.bundle.Analysis.selection_for`);
    a workspace with neither misses every region.
    """
    from recastflow.select.selection import load_selection

    path = analysis.selection_for(workspace)
    if path is None:
        return [r.name for r in analysis.workspaces[workspace].regions]
    selection = load_selection(path)
    filled = {r.name for r in selection.regions} | set(selection.unfilled)
    return [r.name for r in analysis.workspaces[workspace].regions if r.name not in filled]


def unfilled_regions(analysis: Any, workspace: str) -> dict[str, str]:
    """The regions of a workspace that the selection declares it does not fill, with the reasons."""
    from recastflow.select.selection import load_selection

    path = analysis.selection_for(workspace)
    if path is None:
        return {}
    selection = load_selection(path)
    names = {r.name for r in analysis.workspaces[workspace].regions}
    return {k: v for k, v in selection.unfilled.items() if k in names}


def choose_process(process: str | None, slha: Path | None, processes_dir: Path) -> Path:
    """The process card: the one given (a path, or a name in ``config/processes``), else the only card whose
    cross-section final states all appear in the SLHA file's XSECTION blocks.

    Args:
        process: ``--process`` as given, or None.
        slha: the model's SLHA file (to choose by its XSECTION blocks), if any.
        processes_dir: the folder of the shipped process cards.

    Returns:
        The process card's path.

    Raises:
        RecastError: the card does not exist, or none or several cards match the SLHA file.
    """
    cards = sorted(processes_dir.glob("*.yaml"))
    names = ", ".join(c.stem for c in cards)
    if process is not None:
        path = Path(process)
        if path.suffix not in (".yaml", ".yml"):
            path = processes_dir / f"{process}.yaml"
        if not path.is_file():
            raise RecastError(f"no process card {process!r} (shipped cards: {names})", field="--process")
        return path
    if slha is None:
        raise RecastError(f"give --process (shipped cards: {names})", field="--process")
    from recastflow.core.config import read_document
    from recastflow.generate.slha import read_slha

    finals = {tuple(sorted(x.final)) for x in read_slha(slha).xsections}
    matching = []
    for card in cards:
        doc = read_document(card)
        wanted = [tuple(sorted(f)) for f in (doc.get("xsec", {}) or {}).get("final_states", [])]
        if wanted and all(f in finals for f in wanted):
            matching.append(card)
    if len(matching) != 1:
        found = "none" if not matching else ", ".join(c.stem for c in matching)
        raise RecastError(
            f"cannot tell which process to generate from the XSECTION blocks (matching cards: {found}); "
            f"give --process (shipped cards: {names})",
            path=str(slha),
            field="--process",
        )
    return matching[0]


def default_run_folder(name: str) -> Path:
    """Where a run goes without ``--run-dir``: ``runs/<name>`` under the working directory, never in the checkout.

    Args:
        name: the SLHA file's stem, the scan's name, or ``<scan>_adaptive``.

    Returns:
        The folder (relative to the working directory).
    """
    return Path("runs") / safe_name(name)


def safe_name(text: str) -> str:
    """A file-safe name (grid and point names become folder names)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-")[:100]
    return name if name and name[0].isalnum() else f"p{name}"[:100]


def slha_parameters(slha: Path, process: Path) -> dict[str, float]:
    """Parameters of a single-spectrum run: the masses of the produced sparticles and of the LSP.

    Args:
        slha: the spectrum.
        process: the process card (its ``xsec.final_states`` name the produced sparticles).

    Returns:
        ``{"m_<PDG id>": mass}``.
    """
    from recastflow.core.config import read_document
    from recastflow.generate.slha import read_slha

    info = read_slha(slha)
    named = _model_parameters(info.masses, process.parent.parent / "spectra" / f"{process.stem}.yaml")
    if named:
        return named
    doc = read_document(process)
    pids = sorted({abs(p) for f in (doc.get("xsec", {}) or {}).get("final_states", []) for p in f} | {1000022})
    return {f"m_{pid}": abs(info.mass(pid)) for pid in pids if pid in info.masses}


def _model_parameters(masses: Mapping[int, float], card_path: Path) -> dict[str, float]:
    """The simplified model's own parameters (e.g. m_C1N2, m_N1), read back from the masses, if the model has
    a spectrum card and the masses fit it: then the bundle's reference patches and official contours, which
    use those names, apply to the point."""
    if not card_path.is_file():
        return {}
    from recastflow.generate.spectrum import load_spectrum_card

    card = load_spectrum_card(card_path)
    values: dict[str, float] = {}
    for pid, param in card.masses.items():
        if not isinstance(param, str):
            continue
        mass = abs(masses.get(pid, math.nan))
        if (param in values and values[param] != mass) or math.isnan(mass):
            return {}  # e.g. a chargino and a neutralino the model makes degenerate are not: use PDG names
        values[param] = mass
    return values


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve())


def write_run_folder(
    folder: Path,
    points: Sequence[ModelPoint],
    parameters: dict[str, dict[str, str]],
    analyses: Sequence[tuple[Any, str]],
    *,
    process: Path,
    detector: Path,
    n_events: int,
    chunks: int,
    seed: int,
    upper_limits: bool,
    model: str,
) -> RunPlan:
    """Write (or update) a run folder: configuration, grids, cards and spectra.

    Files that already hold the same content are left alone, so that running the same command again
    resumes the run and adding points to a scan reruns only the new ones.

    Args:
        folder: the run folder (created if missing).
        points: the model points, with their SLHA files (copied into the folder unless already there).
        parameters: the grid parameters with their labels.
        analyses: (analysis, workspace) pairs; one grid each.
        process: the process card.
        detector: the detector card.
        n_events: events per point.
        chunks: generation jobs per point.
        seed: the base seed.
        upper_limits: compute upper limits for every point.
        model: the model's name (grids' ``model`` field: official contours of that model are overlaid).

    Returns:
        The plan of the run.

    The caller checks the folder first (:func:`check_run_folder`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    root = project_root()
    for sub in ("signals/slha", "processes", "detectors"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    _copy(process, folder / "processes" / process.name)
    _copy(detector, folder / "detectors" / detector.name)
    local_points = []
    for p in points:
        target = folder / "signals" / "slha" / f"{p.name}.slha"
        if p.slha.resolve() != target.resolve():
            _copy(p.slha, target)
        local_points.append(ModelPoint(p.name, p.values, target))
    grids = []
    axes = list(parameters)
    for analysis, workspace in analyses:
        name = safe_name(f"{analysis.id}_{workspace}")
        grid: dict[str, Any] = {
            "name": name,
            "analysis": analysis.id,
            "workspace": workspace,
            "model": model,
            "description": f"{model} through {analysis.id} ({workspace}), written by recastflow run",
            "parameters": parameters,
            "events": {
                "process": f"processes/{process.name}",
                "detector": f"detectors/{detector.name}",
                "n_events": n_events,
                "chunks": chunks,
                "seed": seed,
                "sample": SAMPLE,
            },
            "points": [{"name": p.name, "values": p.values, "slha": f"slha/{p.name}.slha"} for p in local_points],
        }
        if not references_apply(analysis, workspace, axes):
            # the reference patches are for the bundle's own model's parameters: a model of others has none
            grid["check_yields"] = False
        if len(axes) >= 2:
            grid["plot"] = {"x": axes[0], "y": axes[1]}
        _write_if_changed(folder / "signals" / f"{name}.yaml", _yaml(grid))
        grids.append(name)
    config = {
        "grids": grids,
        "analyses_dir": _relative(root / "config" / "analyses", folder),
        "signals_dir": "signals",
        # the bundles live in the recastflow checkout, outside the run folder
        "allowed_paths": [_relative(root / "config", folder)],
        "upper_limits": [f"{g}/*" for g in grids] if upper_limits else [],
        "checks": True,
    }
    header = "# recastflow run configuration, written by `recastflow run`; rerun the command to resume.\n"
    _write_if_changed(config_path, header + _yaml(config))
    return RunPlan(folder, config_path, tuple(grids), tuple(local_points), folder / "processes" / process.name)


def references_apply(analysis: Any, workspace: str, parameters: Sequence[str]) -> bool:
    """Whether published signal patches of ``workspace`` can match points of these parameters.

    The references are the workspace's (:meth:`recastflow.analyses.bundle.Analysis.references_for`); their
    parameter names are the ones their patch pattern and listed points use: a model of other parameters has none.

    Args:
        analysis: the bundle (:class:`recastflow.analyses.bundle.Analysis`).
        workspace: one of its workspaces.
        parameters: the scan's or the spectrum's parameter names.
    """
    refs = analysis.references_for(workspace)
    if refs is None:
        return False
    names = {k for ref in refs.points for k in ref.values}
    if refs.patch_pattern:
        names |= {f for _, f, _, _ in string.Formatter().parse(refs.patch_pattern) if f}
    return names <= set(parameters)


def check_run_folder(folder: Path) -> None:
    """Refuse to write into a folder that holds something else than a run of recastflow.

    Args:
        folder: the run folder (new, empty, or an earlier run's).

    Raises:
        RecastError: the folder is a file, or holds files but no run configuration.
    """
    if folder.exists() and not folder.is_dir():
        raise RecastError("exists and is not a folder; choose another --run-dir", path=str(folder), field="--run-dir")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "config.yaml").is_file():
        raise RecastError(
            "the folder exists and is not a recastflow run folder; choose another --run-dir",
            path=str(folder),
            field="--run-dir",
        )


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)


def _copy(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if not target.is_file() or target.read_bytes() != data:
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)


def remove_stale_grids(plan: RunPlan) -> None:
    """Grid files of an earlier run of the folder that this run no longer has (e.g. other ``--analyses``)."""
    for path in (plan.folder / "signals").glob("*.yaml"):
        if path.stem not in plan.grids:
            path.unlink()
