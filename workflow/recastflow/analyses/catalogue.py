"""The catalogue of analysis bundles: what each supports, how it is validated, where its material comes from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recastflow.analyses.bundle import Analysis, YieldReferences, load_analysis
from recastflow.core.config import read_document
from recastflow.core.errors import RecastError


@dataclass(frozen=True)
class Entry:
    """One bundle's line of the catalogue."""

    id: str
    paper: str
    title: str
    supports: tuple[str, ...]
    validation: str
    sources: tuple[str, ...]
    grids: tuple[str, ...]


def _grids_of(analysis_id: str, signals_dir: Path) -> list[str]:
    """Names of the grids that use a bundle (grids that cannot be read are left out: `validate` reports them)."""
    names = []
    for path in sorted(signals_dir.glob("*.yaml")):
        try:
            doc = read_document(path)
        except RecastError:
            continue
        if isinstance(doc, dict) and doc.get("analysis") == analysis_id:
            names.append(path.stem)
    return names


def _reference_points(refs: YieldReferences) -> str:
    """Which points a yield check compares: listed ones, and any with a published patch if a pattern names them."""
    parts = [f"{len(refs.points)} listed points"] if refs.points else []
    if refs.patch_pattern:
        parts.append("every point with a published patch")
    return " and ".join(parts)


def entry(analysis: Analysis, signals_dir: Path) -> Entry:
    """The catalogue line of a loaded bundle."""
    supports = []
    if analysis.workspaces:
        published = any(ws.source is not None for ws in analysis.workspaces.values())
        supports.append("published likelihood" if published else "likelihood (own workspace)")
    patch_sources = [s for s in analysis.doc.get("sources", {}).values() if s.get("members", {}).get("patches")]
    if patch_sources or analysis.all_yield_references():
        supports.append("published signal patches")
    if analysis.has_selection:
        supports.append("event selection")
    checks = []
    if analysis.references:
        quantities = sorted({r.quantity for r in analysis.references})
        checks.append(f"{len(analysis.references)} reference values ({', '.join(quantities)})")
    for ws in analysis.workspaces:
        refs = analysis.references_for(ws)
        if refs is not None:
            checks.append(f"{ws} front-end yields vs ATLAS patches ({_reference_points(refs)}; rtol {refs.rtol:g})")
    # a workspace whose signal from events is not validated says so here as in every CLs it gives
    checks += [
        f"{name} from events NOT validated ({ws.unvalidated})"
        for name, ws in analysis.workspaces.items()
        if ws.unvalidated
    ]
    validation = "; ".join(checks) or "unverified: no reference values"
    sources = tuple(
        f"{src.file} ({src.origin or 'no origin'}; sha256 {src.sha256[:12]}...)" for src in analysis.sources.values()
    )
    return Entry(
        id=analysis.id,
        paper=f"arXiv:{analysis.paper['arxiv']}",
        title=" ".join(analysis.title.split()),
        supports=tuple(supports),
        validation=validation,
        sources=sources,
        grids=tuple(_grids_of(analysis.id, signals_dir)),
    )


def catalogue(analyses_dir: Path, signals_dir: Path) -> list[Entry]:
    """Every bundle of ``analyses_dir`` (each loaded and schema-checked), in name order."""
    ids = sorted(p.parent.name for p in analyses_dir.glob("*/analysis.yaml"))
    return [entry(load_analysis(i, analyses_dir), signals_dir) for i in ids]


def to_json(entries: list[Entry]) -> list[dict[str, Any]]:
    """The catalogue as JSON-ready records (for the run's report)."""
    return [asdict(e) for e in entries]


def markdown(entries: list[Entry]) -> str:
    """The catalogue as a Markdown table (for the docs and the terminal)."""
    lines = ["| analysis | paper | title | supports | validation | grids | sources |", "|---|---|---|---|---|---|---|"]
    for e in entries:
        cells = [
            e.id,
            e.paper,
            e.title,
            ", ".join(e.supports),
            e.validation,
            ", ".join(e.grids) or "-",
            "<br>".join(e.sources) or "none (all files in the bundle)",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
