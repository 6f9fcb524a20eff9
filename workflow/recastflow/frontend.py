"""Up-front checks of a front-end grid, so that a mistake stops the run before any event is made."""

from __future__ import annotations

from recastflow.bundle import Analysis, Grid
from recastflow.errors import RecastError


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
    from recastflow.detector import load_card as load_detector
    from recastflow.selection import load_selection

    load_detector(grid.events.detector)
    where = str(analysis.folder / "analysis.yaml")
    if analysis.selection is None:
        raise RecastError(f"grid {grid.name} makes yields from events, but analysis {analysis.id} has no "
                          "'selection' file", path=where, field="selection")
    if analysis.luminosity_ifb is None:
        raise RecastError("the front end needs 'luminosity_ifb' to normalise yields", path=where, field="luminosity_ifb")
    selection = load_selection(analysis.selection)
    regions = {r.name: r.bins for r in analysis.workspace(grid.workspace, source=grid.path).regions}
    for region in selection.regions:
        if region.name not in regions:
            raise RecastError(f"region {region.name!r} is not a region of workspace {grid.workspace} "
                              f"(it has: {', '.join(regions)})", path=str(analysis.selection), field=f"regions.{region.name}")
        if region.n_bins != regions[region.name]:
            raise RecastError(f"has {region.n_bins} bins, workspace region {region.name} has {regions[region.name]}",
                              path=str(analysis.selection), field=f"regions.{region.name}.bins")
    generated = [p for p in points if p.slha is not None]
    if generated:
        from recastflow.generation import load_card as load_process
        from recastflow.slha import read_slha, slha_xsec_pb

        card = load_process(grid.events.process, with_pythia=with_pythia)
        for point in generated:
            info = read_slha(point.slha)
            if card.xsec_source == "slha":
                slha_xsec_pb(info, card.sqrt_s_gev, list(card.final_states) if card.final_states else None,
                             card.xsec_order)
    manifests = [p for p in points if p.manifest is not None]
    if manifests:
        from recastflow.handoff import load_manifest

        for point in manifests:
            load_manifest(point.manifest)
    return len(points)
