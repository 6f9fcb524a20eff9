"""ATLAS-SUSY-2018-31 RegionC: selection_C.yaml (SRC binned in the MET significance) and what it needs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import awkward as ak
import pytest

from recastflow.analyses.bundle import load_analysis, load_grid
from recastflow.checks.preflight import check_selection_regions
from recastflow.core.errors import RecastError
from recastflow.core.events import RECO, write_events
from recastflow.run.folder import missing_regions, references_apply, unfilled_regions
from recastflow.select.selection import load_selection, run_selection, select_file

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "config" / "analyses" / "ATLAS-SUSY-2018-31"
SELECTION_C = FOLDER / "selection_C.yaml"


def jet(pt: float, phi: float, btag: bool) -> dict[str, Any]:
    return {"pt": pt, "eta": 0.5, "phi": phi, "m": 10.0, "btag": btag, "flavour": 5 if btag else 0}


def event(significance: float | None, n_b: int = 3, met: float = 300.0) -> dict[str, Any]:
    """Four jets (n_b of them b-tagged) far in phi from the MET (along phi = pi), no baseline leptons."""
    jets = [jet(200.0 - 20 * i, 0.3 * i - 0.45, i < n_b) for i in range(4)]
    met_rec: dict[str, float] = {"pt": met, "phi": math.pi}
    if significance is not None:
        met_rec["significance"] = significance
    # one lepton and photon each below every threshold, so that the collections have their record types
    soft = {"pt": 1.0, "eta": 0.0, "phi": 0.0}
    lepton = soft | {"charge": -1}
    return {"weight": 1.0, "jets": jets, "electrons": [lepton], "muons": [lepton], "photons": [soft], "met": met_rec}


HEADER = {"format": RECO, "point": "P", "n_events": 6, "sum_weights": 6.0, "xsec_pb": 1.0, "xsec_source": "test",
          "br_factor": 1.0, "chunk": {"index": 0, "count": 1}}


def test_selection_c_fills_only_regionc_channels() -> None:
    a = load_analysis("ATLAS-SUSY-2018-31", REPO / "config" / "analyses")
    assert a.selection_for("RegionC") == SELECTION_C
    sel = load_selection(SELECTION_C)
    filled = {r.name for r in sel.regions}
    assert filled == {"SR_metsigST"} and set(sel.unfilled) == {"CRtt_cuts", "CRz_cuts"}
    regionc = {r.name: r for r in a.workspaces["RegionC"].regions}
    assert (filled | set(sel.unfilled)) == set(regionc)
    for name in ("RegionA", "RegionB"):
        assert not filled & {r.name for r in a.workspaces[name].regions}
    # the four bins of the workspace's SR_metsigST channel (RegionC/BkgOnly.json): SRC22, 24, 26, 28
    (sr,) = sel.regions
    assert sr.edges == (22.0, 24.0, 26.0, 28.0, math.inf) and len(sr.edges) - 1 == regionc["SR_metsigST"].bins == 4
    assert missing_regions(a, "RegionC") == []
    assert list(unfilled_regions(a, "RegionC")) == ["CRtt_cuts", "CRz_cuts"]
    check_selection_regions(load_grid("sbottom_RegionC", REPO / "config" / "signals"), a)


def test_events_fall_in_the_significance_bins() -> None:
    reco = ak.Array([event(23.0), event(25.0), event(27.0), event(40.0), event(21.9), event(30.0, n_b=2)])
    result = run_selection(reco, HEADER, load_selection(SELECTION_C), 1.0)
    region = result.regions["SR_metsigST"]
    assert region.raw == (1, 1, 1, 1)  # S below 22 and a 2-b event are out


def test_older_reco_file_without_the_significance_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "old.parquet"
    write_events(path, ak.Array([event(None), event(None)]), HEADER | {"n_events": 2, "sum_weights": 2.0})
    with pytest.raises(RecastError) as info:
        select_file([path], SELECTION_C, luminosity_ifb=139.0, point="P", yields_out=tmp_path / "y.json",
                    cutflow_out=tmp_path / "c.json", selected_out=tmp_path / "s.parquet")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "met.significance" in message
    assert "met_significance" in message  # says which card section makes it
    assert not (tmp_path / "y.json").exists()


def test_each_region_is_compared_with_its_own_patches() -> None:
    # the same masses have a patch in RegionA, B and C: each workspace's grid must compare with its own folder
    a = load_analysis("ATLAS-SUSY-2018-31", REPO / "config" / "analyses")
    axes = ["m_sbottom", "m_neutralino2", "m_neutralino1"]
    for ws, sr in (("RegionA", "SR_meff"), ("RegionB", "SR_cuts"), ("RegionC", "SR_metsigST")):
        refs = a.references_for(ws)
        assert refs is not None and refs.signal_regions == (sr,)
        assert f"/{ws}/patch." in refs.patch_pattern and references_apply(a, ws, axes)
    assert not references_apply(a, "RegionA", ["m_C1N2", "m_N1"])  # another model's parameters
