"""A selection per workspace: ``workspaces.<name>.selection`` overrides the bundle-level ``selection``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from recastflow.analyses.bundle import Analysis, load_analysis, load_grid
from recastflow.checks.preflight import check_selection_regions
from recastflow.core.errors import RecastError
from recastflow.run.folder import analyses_with_selection, missing_regions, unfilled_regions

REPO = Path(__file__).resolve().parents[2]


def _selection(regions: dict[str, int], unfilled: dict[str, str] | None = None) -> str:
    """A selection file filling ``regions`` (name -> bins) with one cut each."""
    doc: dict[str, Any] = {"analysis": "TOY"}
    if unfilled:
        doc["unfilled"] = unfilled
    doc["variables"] = {"met_pt": "met.pt"}
    doc["regions"] = {
        name: {"cuts": [{"some_met": "met_pt > 0"}]}
        | ({"bins": {"variable": "met_pt", "edges": [0.0, 100.0, float("inf")][: bins + 1]}} if bins > 1 else {})
        for name, bins in regions.items()
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _bundle(project: Path, *, bundle_selection: bool = True, alt_selection: str | None = "selection_alt.yaml") -> Path:
    """The TOY bundle with a second workspace 'alt' whose CR has 1 bin, as 'main''s CR, but other cuts.

    main: SR (2 bins), CR (1 bin). alt: SR2 -> channel SR (2 bins), CR -> channel CR (1 bin).
    """
    folder = project / "config" / "analyses" / "TOY"
    doc = yaml.safe_load((folder / "analysis.yaml").read_text())
    main = doc["workspaces"]["main"]
    doc["workspaces"]["alt"] = {
        "file": main["file"],
        "sha256": main["sha256"],
        "regions": {"SR2": {"channel": "SR", "bins": 2}, "CR": {"channel": "CR", "bins": 1}},
        "exclude_channels": ["VR"],
    }
    if bundle_selection:
        doc["selection"] = "selection.yaml"
        (folder / "selection.yaml").write_text(_selection({"SR": 2}, {"CR": "not public"}))
    if alt_selection is not None:
        doc["workspaces"]["alt"]["selection"] = alt_selection
        (folder / "selection_alt.yaml").write_text(_selection({"SR2": 2, "CR": 1}))
    (folder / "analysis.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def _load(project: Path) -> Analysis:
    return load_analysis("TOY", project / "config" / "analyses")


def _grid(project: Path, workspace: str) -> Any:
    signals = project / "config" / "signals"
    doc = yaml.safe_load((signals / "TOYGRID.yaml").read_text())
    doc["workspace"] = workspace
    (signals / "TOYGRID.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_grid("TOYGRID", signals)


def test_a_bundle_selection_alone_serves_every_workspace(project: Path) -> None:
    folder = _bundle(project, alt_selection=None)
    a = _load(project)
    assert a.selection_for("main") == a.selection_for("alt") == folder / "selection.yaml"
    assert a.has_selection and not a.own_selection("main") and not a.own_selection("alt")


def test_a_workspace_selection_overrides_the_bundle_one(project: Path) -> None:
    folder = _bundle(project)
    a = _load(project)
    assert a.selection == folder / "selection.yaml"
    assert a.selection_for("main") == folder / "selection.yaml"
    assert a.selection_for("alt") == folder / "selection_alt.yaml"
    assert a.own_selection("alt") and not a.own_selection("main")
    assert missing_regions(a, "main") == [] and missing_regions(a, "alt") == []
    assert unfilled_regions(a, "main") == {"CR": "not public"} and unfilled_regions(a, "alt") == {}


def test_workspace_selections_without_a_bundle_one(project: Path) -> None:
    folder = _bundle(project, bundle_selection=False)
    a = _load(project)
    assert a.selection is None and a.selection_for("main") is None
    assert a.selection_for("alt") == folder / "selection_alt.yaml"
    # the bundle can be recast from events (through 'alt'); 'main' misses every region
    assert a.has_selection and "TOY" in analyses_with_selection(project / "config" / "analyses")
    assert missing_regions(a, "main") == ["SR", "CR"] and unfilled_regions(a, "main") == {}


def test_selection_for_an_unknown_workspace_names_the_valid_ones(project: Path) -> None:
    _bundle(project)
    with pytest.raises(RecastError, match=r"has no workspace 'other' \(it has: main, alt\)"):
        _load(project).selection_for("other", source="grid.yaml")


def test_a_workspace_selection_outside_the_bundle_is_refused(project: Path) -> None:
    _bundle(project, alt_selection="../elsewhere.yaml")
    with pytest.raises(RecastError, match=r"workspaces\.alt\.selection"):
        _load(project)


def test_a_workspace_selection_fills_its_own_regions_only(project: Path) -> None:
    folder = _bundle(project)
    # the bundle-level selection may fill a region of another workspace (that workspace's patch takes it)
    (folder / "selection.yaml").write_text(_selection({"SR": 2, "SR2": 2}, {"CR": "not public"}))
    check_selection_regions(_grid(project, "main"), _load(project))
    # a workspace's own selection may not: its cuts are that workspace's
    (folder / "selection_alt.yaml").write_text(_selection({"SR2": 2, "CR": 1, "SR": 2}))
    with pytest.raises(RecastError) as info:
        check_selection_regions(_grid(project, "alt"), _load(project))
    message = str(info.value)
    assert message.startswith(f"{folder / 'selection_alt.yaml'}: regions.SR: region 'SR' is not a region of workspace")
    assert "(it has: SR2, CR)" in message


def test_a_workspace_selection_is_checked_against_its_workspace_bins(project: Path) -> None:
    folder = _bundle(project)
    (folder / "selection_alt.yaml").write_text(_selection({"SR2": 1, "CR": 1}))
    with pytest.raises(RecastError, match=r"selection_alt\.yaml: regions\.SR2\.bins: fills 1 bins, but region 'SR2'"):
        check_selection_regions(_grid(project, "alt"), _load(project))


def test_select_point_reads_the_workspace_selection(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recastflow.select.selection as selection_module

    folder = _bundle(project)
    doc = yaml.safe_load((folder / "analysis.yaml").read_text())
    doc["luminosity_ifb"] = 139
    (folder / "analysis.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    grid = _grid(project, "alt")
    seen: list[Path] = []
    monkeypatch.setattr(selection_module, "select_file", lambda inputs, selection, **kw: seen.append(selection))
    monkeypatch.setattr(type(grid), "events_point", lambda self, name: (self.points[0], None))
    selection_module.select_point(
        grid, _load(project), "P0", [], yields_out="y.json", cutflow_out="c.json", selected_out="s.parquet",
        log=lambda _line: None,
    )
    assert seen == [folder / "selection_alt.yaml"]


# -- the shipped bundle: ATLAS-SUSY-2018-31 has a RegionB selection of its own --------------------------

def test_sbottom_bundle_names_a_selection_per_workspace() -> None:
    a = load_analysis("ATLAS-SUSY-2018-31", REPO / "config" / "analyses")
    folder = REPO / "config" / "analyses" / "ATLAS-SUSY-2018-31"
    assert a.selection_for("RegionA") == folder / "selection.yaml"
    assert a.selection_for("RegionB") == folder / "selection_B.yaml"
    assert a.selection_for("RegionC") == folder / "selection_C.yaml"  # SRC binned in met.significance
    assert missing_regions(a, "RegionA") == [] and missing_regions(a, "RegionB") == []
    assert missing_regions(a, "RegionC") == []
    assert list(unfilled_regions(a, "RegionB")) == ["CRtt_cuts"]
    assert list(unfilled_regions(a, "RegionC")) == ["CRtt_cuts", "CRz_cuts"]


def test_sbottom_region_b_grid_passes_the_region_check() -> None:
    a = load_analysis("ATLAS-SUSY-2018-31", REPO / "config" / "analyses")
    grid = load_grid("T6bbHH_RegionB", REPO / "config" / "signals")
    check_selection_regions(grid, a)
    # RegionA's grid still takes the bundle-level selection
    check_selection_regions(load_grid("T6bbHH_RegionA", REPO / "config" / "signals"), a)
