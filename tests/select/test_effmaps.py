"""Efficiency maps: HEPData/CSV tables, per-event weights, out-of-range behaviour, a hand computation."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from recastflow.select.effmaps import read_table
from recastflow.core.errors import RecastError
from recastflow.core.events import RECO
from recastflow.select.selection import load_selection, run_selection

HEADER = {"format": RECO, "point": "p", "n_events": 6, "sum_weights": 2.0, "xsec_pb": 4.0, "xsec_source": "test",
          "br_factor": 0.5}
#: expected events per unit weight at 1 fb^-1: 1000 pb^-1 x 4 pb x 0.5 / 2
NORM = 1000.0

#: a HEPData export of a 2-d map: pT [20, 50, 100, 200) x |eta| [0, 1.5, 2.5)
HEPDATA = """
independent_variables:
- header: {name: "$p_T$", units: GeV}
  values:
  - {low: 20, high: 50}
  - {low: 20, high: 50}
  - {low: 50, high: 100}
  - {low: 50, high: 100}
  - {low: 100, high: 200}
  - {low: 100, high: 200}
- header: {name: "$|\\\\eta|$"}
  values:
  - {low: 0, high: 1.5}
  - {low: 1.5, high: 2.5}
  - {low: 0, high: 1.5}
  - {low: 1.5, high: 2.5}
  - {low: 0, high: 1.5}
  - {low: 1.5, high: 2.5}
dependent_variables:
- header: {name: Efficiency}
  qualifiers: [{name: SQRT(S), value: 13000}]
  values:
  - {value: 0.1}
  - {value: 0.05}
  - {value: 0.5}
  - {value: 0.3}
  - {value: 0.8}
  - {value: 0.6}
"""
CSV = """# the same map as HEPData's CSV export names the columns
pt low,pt high,abseta low,abseta high,eff
20,50,0,1.5,0.1
20,50,1.5,2.5,0.05
50,100,0,1.5,0.5
50,100,1.5,2.5,0.3
100,200,0,1.5,0.8
100,200,1.5,2.5,0.6
"""


def selection_text(table: str, columns: tuple[str, str], out_of_range: str) -> str:
    return f"""
efficiency_maps:
  eff_b:
    table: {table}
    axes:
      - {{column: "{columns[0]}", expression: "truth_bhadrons[0].pt", unit: GeV}}
      - {{column: "{columns[1]}", expression: "abs(truth_bhadrons[0].eta)", unit: "1"}}
    out_of_range: {out_of_range}
preselection:
  - two_jets: "n(jets) >= 2"
regions:
  SR:
    cuts:
      - b_efficiency: {{weight: eff_b}}
      - met_100: "met.pt > 100"
"""


def event(weight: float, bpt: float | None, beta: float = 0.0, n_jets: int = 2, met: float = 150.0) -> dict:
    jets = [{"pt": 100.0 - i, "eta": 0.0, "phi": float(i), "m": 0.0, "btag": False, "flavour": 0}
            for i in range(n_jets)]
    bh = [] if bpt is None else [{"pt": bpt, "eta": beta, "phi": 0.0}]
    return {"weight": weight, "jets": jets, "electrons": [], "muons": [], "photons": [],
            "met": {"pt": met, "phi": 0.0}, "truth": {"bhadrons": bh}}


EVENTS = [
    event(1.0, 30.0, 0.5),             # cell (20-50, 0-1.5): 0.1
    event(2.0, 75.0, -2.0),            # (50-100, 1.5-2.5): 0.3
    event(0.5, 150.0, 1.0),            # (100-200, 0-1.5): 0.8
    event(1.5, 250.0, 0.2),            # pT above the table: clamp -> 0.8, zero -> 0
    event(1.0, 60.0, 0.1, met=50.0),   # 0.5, but fails met_100
    event(3.0, None),                  # no b-hadron: missing -> 0
    event(9.0, 60.0, 0.1, n_jets=1),   # fails the preselection
]


def write_tables(tmp_path: Path) -> None:
    (tmp_path / "eff.yaml").write_text(HEPDATA)
    (tmp_path / "eff.csv").write_text(CSV)


@pytest.mark.parametrize("table, columns", [("eff.yaml", ("$p_T$", "$|\\\\eta|$")), ("eff.csv", ("pt", "abseta"))])
@pytest.mark.parametrize("out_of_range, overflow", [("clamp", 0.8), ("zero", 0.0)])
def test_efficiency_weights_match_a_hand_computation(tmp_path: Path, table: str, columns: tuple[str, str],
                                                    out_of_range: str, overflow: float) -> None:
    write_tables(tmp_path)
    path = tmp_path / "selection.yaml"
    path.write_text(selection_text(table, columns, out_of_range))
    result = run_selection(ak.Array(EVENTS), HEADER, load_selection(path), 1.0)
    # by hand: after the weight step the six preselected events weigh w x eff; met_100 drops the fifth
    after_weight = 1.0 * 0.1 + 2.0 * 0.3 + 0.5 * 0.8 + 1.5 * overflow + 1.0 * 0.5 + 3.0 * 0.0
    final = after_weight - 1.0 * 0.5
    steps = result.regions["SR"].cutflow
    assert [s.name for s in steps] == ["all events", "two_jets", "b_efficiency", "met_100"]
    assert steps[1].weighted == pytest.approx(9.0 * NORM)  # 1 + 2 + 0.5 + 1.5 + 1 + 3
    assert steps[2].raw == 6 and steps[2].weighted == pytest.approx(after_weight * NORM)
    assert result.regions["SR"].yields[0] == pytest.approx(final * NORM)
    assert result.regions["SR"].stat[0] == pytest.approx(
        np.sqrt(0.1**2 + 0.6**2 + 0.4**2 + (1.5 * overflow) ** 2) * NORM)
    doc = result.cutflow_doc("p")["regions"]["SR"]["steps"][2]
    assert doc["kind"] == "weight" and doc["models"] == ["eff_b"]
    assert doc["before"]["weighted"] == pytest.approx(9.0 * NORM)


def test_out_of_range_error_names_the_map(tmp_path: Path) -> None:
    write_tables(tmp_path)
    path = tmp_path / "selection.yaml"
    path.write_text(selection_text("eff.csv", ("pt", "abseta"), "error"))
    with pytest.raises(RecastError, match=r"efficiency_maps\.eff_b: an event has \(250, 0\.2\), outside the table "
                                          r"\[20, 200\), \[0, 2\.5\)"):
        run_selection(ak.Array(EVENTS), HEADER, load_selection(path), 1.0)


def test_tables_must_tile_a_grid(tmp_path: Path) -> None:
    (tmp_path / "gap.csv").write_text(CSV.replace("100,200,1.5,2.5,0.6\n", ""))
    with pytest.raises(RecastError, match="no value for the cell at pt 100, abseta 1.5"):
        read_table(tmp_path / "gap.csv", ["pt", "abseta"], None, source="s.yaml", field="f")
    (tmp_path / "hole.csv").write_text(CSV.replace("50,100,", "60,100,"))
    with pytest.raises(RecastError, match="do not tile a range"):
        read_table(tmp_path / "hole.csv", ["pt", "abseta"], None, source="s.yaml", field="f")
    edges, values = read_table(_ok(tmp_path),
                               ["pt", "abseta"], "eff", source="s.yaml", field="f")
    assert [list(e) for e in edges] == [[20, 50, 100, 200], [0, 1.5, 2.5]]
    assert values.tolist() == [[0.1, 0.05], [0.5, 0.3], [0.8, 0.6]]


def _ok(folder: Path) -> Path:
    (folder / "ok.csv").write_text(CSV)
    return folder / "ok.csv"


def test_unknown_column_and_bad_axis_are_named(tmp_path: Path) -> None:
    write_tables(tmp_path)
    path = tmp_path / "selection.yaml"
    path.write_text(selection_text("eff.yaml", ("pT", "$|\\\\eta|$"), "zero"))
    with pytest.raises(RecastError, match=r"efficiency_maps\.eff_b\.table: eff\.yaml: no independent variable 'pT'"):
        load_selection(path)
    path.write_text(selection_text("eff.csv", ("pt", "abseta"), "zero").replace('"truth_bhadrons[0].pt"',
                                                                                "truth_bhadrons.pt"))
    with pytest.raises(RecastError, match=r"axes\[0\]\.expression: an axis must be a number per event"):
        load_selection(path)
