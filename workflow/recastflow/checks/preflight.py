"""Up-front checks of a run and its front-end grids, so that a mistake stops the run before any event is made."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recastflow.analyses.bundle import Analysis, Grid
from recastflow.core.errors import RecastError


def check_front_end(grid: Grid, analysis: Analysis, *, with_pythia: bool = False) -> int:
    """Load every card, spectrum, manifest and the selection a grid's front end will use.

    Checks that the selection's regions are the workspace's regions with the same bin counts,
    so that ``recastflow patch`` can take its yields.

    Args:
        grid: the grid (with an ``events`` section).
        analysis: its bundle.
        with_pythia: also let Pythia check the process card's settings (about a second).

    Returns:
        The number of points whose events the front end makes.
    """
    points = [p for p in grid.points if p.from_events]
    if grid.events is None or not points:
        return 0
    from recastflow.emulate.card import load_card as load_detector

    load_detector(grid.events.detector)
    where = str(analysis.folder / "analysis.yaml")
    if analysis.selection_for(grid.workspace, source=grid.path) is None:
        raise RecastError(
            f"grid {grid.name} makes yields from events, but analysis {analysis.id} has no 'selection' file "
            f"(neither its own nor one for workspace {grid.workspace})",
            path=where,
            field="selection",
        )
    if analysis.luminosity_ifb is None:
        raise RecastError(
            "the front end needs 'luminosity_ifb' to normalise yields", path=where, field="luminosity_ifb"
        )
    check_selection_regions(grid, analysis)
    generated = [p for p in points if p.slha is not None]
    if generated:
        from recastflow.generate.pythia import load_card as load_process
        from recastflow.generate.slha import read_slha, slha_xsec_pb
        from recastflow.generate.xsec_check import check_slha_xsections

        if grid.events is None or grid.events.process is None:
            raise RecastError(
                "points made from SLHA spectra need a process card (events.process)",
                path=str(grid.path),
                field="events.process",
            )
        card = load_process(grid.events.process, with_pythia=with_pythia)
        for point in generated:
            if point.slha is None:  # narrowed by the filter above; says so to the type checker
                continue
            info = read_slha(point.slha)
            if card.xsec_source == "slha":
                slha_xsec_pb(
                    info, card.sqrt_s_gev, list(card.final_states) if card.final_states else None, card.xsec_order
                )
                # the yields are normalised to these values: refuse a block copied from another mass point
                check_slha_xsections(info)
    manifests = [p for p in points if p.manifest is not None]
    if manifests:
        from recastflow.generate.handoff import load_manifest

        for point in manifests:
            if point.manifest is not None:
                load_manifest(point.manifest)
    return len(points)


def check_selection_regions(grid: Grid, analysis: Analysis) -> None:
    """Refuse a selection that fills a region the workspace does not define, or another number of bins.

    ``recastflow select`` runs this too: its yields would otherwise be written, and refused only
    later by ``patch``, or (for a bin count that happens to fit another channel) patched wrongly.

    A workspace's own selection (``workspaces.<name>.selection``) may fill that workspace's regions only;
    the bundle-level selection, which serves every workspace without one, may fill any workspace's.

    Args:
        grid: the grid whose workspace the yields go into.
        analysis: its bundle (with a ``selection`` for the grid's workspace).
    """
    from recastflow.select.selection import load_selection

    path = analysis.selection_for(grid.workspace, source=grid.path)
    if path is None:
        return
    from recastflow.stats.patching import other_regions

    selection = load_selection(path)
    if selection.analysis is not None and selection.analysis != analysis.id:
        # a selection copied from another bundle and not adapted: its regions may even happen to fit
        raise RecastError(
            f"says it is the selection of analysis {selection.analysis!r}, but bundle {analysis.id!r} uses it; "
            f"set analysis: {analysis.id} once the selection is this analysis's",
            path=str(path),
            field="analysis",
        )
    own = {r.name: r.bins for r in analysis.workspace(grid.workspace, source=grid.path).regions}
    # the bundle's one selection serves every workspace of the bundle: a region of another workspace is
    # filled too, and that workspace's patch takes it; a workspace's own selection is for its regions alone
    # (another workspace may have a region of the same name with other cuts)
    regions = own if analysis.own_selection(grid.workspace) else {**other_regions(analysis, grid.workspace), **own}
    for name in selection.unfilled:
        if name not in regions:
            raise RecastError(
                f"{name!r} is not a region of analysis {analysis.id} (it has: {', '.join(regions)})",
                path=str(path),
                field=f"unfilled.{name}",
            )
    for region in selection.regions:
        if region.name not in regions:
            raise RecastError(
                f"region {region.name!r} is not a region of workspace {grid.workspace!r} of analysis "
                f"{analysis.id} (it has: {', '.join(regions)}); rename the region or remove it",
                path=str(path),
                field=f"regions.{region.name}",
            )
        if region.n_bins != regions[region.name]:
            raise RecastError(
                f"fills {region.n_bins} bins, but region {region.name!r} of workspace "
                f"{grid.workspace!r} has {regions[region.name]}; make the edges give "
                f"{regions[region.name]} bins",
                path=str(path),
                field=f"regions.{region.name}.bins",
            )


def check_model_spectrum(slha: Path, process: Path) -> None:
    """Check one model's SLHA spectrum against a process card, as the front end would before generating.

    ``recastflow run`` calls this before it writes a run folder: the spectrum's blocks (MODSEL, every
    sparticle in MASS, decays) and, for a card normalised to the SLHA's XSECTION blocks, the
    cross-section of the card's final states.

    Args:
        slha: the spectrum.
        process: the process card.

    Raises:
        RecastError: what is wrong, naming the file and the block.
    """
    from recastflow.generate.pythia import load_card as load_process
    from recastflow.generate.slha import read_slha, slha_xsec_pb

    card = load_process(process)
    info = read_slha(slha)
    if card.xsec_source == "slha":
        slha_xsec_pb(info, card.sqrt_s_gev, list(card.final_states) if card.final_states else None, card.xsec_order)
        # the yields are normalised to these values: refuse a block copied from another mass point
        from recastflow.generate.xsec_check import check_slha_xsections

        check_slha_xsections(info)


def check_run(
    config: Mapping[str, Any],
    grid_of: Callable[[str], tuple[Grid, Analysis]],
    *,
    config_file: str,
    log: Callable[[str], None],
) -> None:
    """Check a whole run configuration before any job starts (``recastflow validate``).

    Every grid and its bundle load, each workspace used matches its sha256, the front end's cards,
    spectra and selection load (with Pythia checking the process cards), reweighted points have
    their sources and specs, and every point named by ``upper_limits`` and ``fit_plots`` exists.

    Args:
        config: the validated run configuration.
        grid_of: loads a grid by name with the bundle it belongs to.
        config_file: the configuration file, named in messages.
        log: gets one line per grid, and one for the reweighted points.

    Raises:
        RecastError: the first problem found, naming its file and field.
    """
    from recastflow.core.pointref import PointRef

    seen: set[tuple[str, str]] = set()
    grids: dict[str, Grid] = {}
    for name in config.get("grids", []):
        grid, analysis = grid_of(name)
        wsref = analysis.workspace(grid.workspace, source=grid.path)
        # grids of one workspace share it: hashing and validating it once is enough
        if (analysis.id, wsref.name) not in seen:
            wsref.load()
            seen.add((analysis.id, wsref.name))
        n_events = check_front_end(grid, analysis, with_pythia=True)
        extra = f" ({n_events} from events: cards, spectra and selection ok)" if n_events else ""
        log(f"grid {name}: {len(grid.points)} points{extra}, {analysis.id} {grid.workspace} ok")
        grids[name] = grid
    if any(p.reweight is not None for g in grids.values() for p in g.points):
        from recastflow.reweight.reweighting import check_reweighted

        log(f"{check_reweighted(grids)} reweighted points: sources, specs and parameters ok")
    for key in ("upper_limits", "fit_plots"):
        for entry in config.get(key, []):
            ref = PointRef.parse(entry, source=config_file, field=key)
            if ref.grid not in grids:
                raise RecastError(
                    f"{entry!r} names grid {ref.grid!r}, which is not in 'grids'", path=config_file, field=key
                )
            if not ref.whole_grid:
                grids[ref.grid].point(ref.point, source=config_file, field=key)
