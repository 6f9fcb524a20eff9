"""Up-front checks of a front-end grid, so that a mistake stops the run before any event is made."""

from __future__ import annotations

from pathlib import Path

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
    if analysis.selection is None:
        raise RecastError(
            f"grid {grid.name} makes yields from events, but analysis {analysis.id} has no 'selection' file",
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

    Args:
        grid: the grid whose workspace the yields go into.
        analysis: its bundle (with a ``selection``).
    """
    from recastflow.select.selection import load_selection

    if analysis.selection is None:
        return
    from recastflow.stats.patching import other_regions

    selection = load_selection(analysis.selection)
    if selection.analysis is not None and selection.analysis != analysis.id:
        # a selection copied from another bundle and not adapted: its regions may even happen to fit
        raise RecastError(
            f"says it is the selection of analysis {selection.analysis!r}, but bundle {analysis.id!r} uses it; "
            f"set analysis: {analysis.id} once the selection is this analysis's",
            path=str(analysis.selection),
            field="analysis",
        )
    # one selection serves every workspace of the bundle: a region of another workspace is filled too,
    # and that workspace's patch takes it
    regions = {
        **other_regions(analysis, grid.workspace),
        **{r.name: r.bins for r in analysis.workspace(grid.workspace, source=grid.path).regions},
    }
    for name in selection.unfilled:
        if name not in regions:
            raise RecastError(
                f"{name!r} is not a region of analysis {analysis.id} (it has: {', '.join(regions)})",
                path=str(analysis.selection),
                field=f"unfilled.{name}",
            )
    for region in selection.regions:
        if region.name not in regions:
            raise RecastError(
                f"region {region.name!r} is not a region of workspace {grid.workspace!r} of analysis "
                f"{analysis.id} (it has: {', '.join(regions)}); rename the region or remove it",
                path=str(analysis.selection),
                field=f"regions.{region.name}",
            )
        if region.n_bins != regions[region.name]:
            raise RecastError(
                f"fills {region.n_bins} bins, but region {region.name!r} of workspace "
                f"{grid.workspace!r} has {regions[region.name]}; make the edges give "
                f"{regions[region.name]} bins",
                path=str(analysis.selection),
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
