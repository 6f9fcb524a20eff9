"""Builders of the corpus's binary and generated inputs (see README.md in this folder).

Event files, ROOT files and ONNX models are written at test time instead of being
committed: each builder writes a small *valid* file, and the manifest's ``keep`` then
truncates it (a copy that stopped half-way). ``cases.yaml`` names builders by the keys of
:data:`BUILDERS`.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, Callable

import awkward as ak
import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "data" / "handoff" / "make_fixtures.py"


def _fixtures() -> Any:
    """The hand-off fixture writers of tests/data/handoff (valid LHE, HepMC3, Delphes files)."""
    spec = importlib.util.spec_from_file_location("handoff_fixtures", FIXTURES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lhe(path: Path) -> None:
    """Six u ubar -> Z -> mu mu events (LHEF 3, weights nominal/muR2/muR05)."""
    _fixtures().write_lhe(path)


def lhe_no_events(path: Path) -> None:
    """A well-formed LHE file with its <init> block and not a single <event>."""
    _fixtures().write_lhe(path, n=0)


def hepmc3(path: Path) -> None:
    """Four HepMC3 ASCII events with weights nominal/alt."""
    _fixtures().write_hepmc3(path)


def hepmc3_no_events(path: Path) -> None:
    """A HepMC3 ASCII file with its start and end lines and no event between."""
    path.write_text("HepMC::Version 3.02.06\nHepMC::Asciiv3-START_EVENT_LISTING\nHepMC::Asciiv3-END_EVENT_LISTING\n")


def delphes(path: Path) -> None:
    """Four events in a Delphes-like TTree."""
    _fixtures().write_delphes(path)


def _slha_without(path: Path, block: str) -> None:
    """The TChiWH sample spectrum of tests/data without one kind of block (e.g. MASS, XSECTION)."""
    out, skip = [], False
    for line in (HERE.parent / "data" / "TChiWH_700_0_700_0.slha").read_text().splitlines(keepends=True):
        head = line.split()[:2] if line[:1].strip() and not line.startswith("#") else []
        if head:  # a new BLOCK, DECAY or XSECTION starts
            skip = head[0].upper() == block or (head[0].upper() == "BLOCK" and head[1].upper() == block)
        if not skip:
            out.append(line)
    path.write_text("".join(out))


def slha_without_mass(path: Path) -> None:
    """A complete spectrum that lost its BLOCK MASS."""
    _slha_without(path, "MASS")


def slha_without_xsection(path: Path) -> None:
    """A complete spectrum without XSECTION blocks (the TChiWH card takes the cross-section from them)."""
    _slha_without(path, "XSECTION")


def _slha_with(path: Path, old: str, new: str) -> None:
    """The TChiWH sample spectrum of tests/data with one piece of text (occurring once) replaced."""
    text = (HERE.parent / "data" / "TChiWH_700_0_700_0.slha").read_text()
    assert not old or text.count(old) == 1, old
    path.write_text(text.replace(old, new) if old else text)


def slha_xsection_negative(path: Path) -> None:
    """A negative XSECTION value (a sign lost when the file was written)."""
    _slha_with(path, "6.99008000E-03", "-4.46900000E-03")


def slha_mass_nan(path: Path) -> None:
    """A neutralino mass of 'nan' (a failed spectrum calculation)."""
    _slha_with(path, "1000023   7.00000000E+02   # ~chi_20", "1000023     nan   # ~chi_20")


def slha_width_negative(path: Path) -> None:
    """A negative total width of the neutralino."""
    _slha_with(path, "DECAY   1000023   1.00000000E-03", "DECAY   1000023  -1.00000000E-01")


def slha_br_negative(path: Path) -> None:
    """A negative branching ratio of the chargino's only channel."""
    _slha_with(path, "   1.00000000E+00    2        24   1000022", "  -1.00000000E+00    2        24   1000022")


def slha_lsp_heavier(path: Path) -> None:
    """The LSP at 800 GeV, heavier than the 700 GeV chargino and neutralino that decay to it."""
    _slha_with(path, "1000022   0.00000000E+00   # ~chi_10 (", "1000022     800.0   # ~chi_10 (")


def slha_ok(path: Path) -> None:
    """The valid TChiWH sample spectrum (for cases whose other inputs are broken)."""
    _slha_with(path, "", "")


def slha_mass_text(path: Path) -> None:
    """A neutralino mass that is a word, not a number (a template left unfilled)."""
    _slha_with(path, "1000023   7.00000000E+02   # ~chi_20", "1000023   MCHI20   # ~chi_20")


def slha_br_sum_high(path: Path) -> None:
    """The chargino's branching ratios summing to 1.5 (a second channel pasted in)."""
    _slha_with(path, "     1.00000000E+00    2        24   1000022   # BR(~chi_1+ -> W+ ~chi_10)",
               "     1.00000000E+00    2        24   1000022   # BR(~chi_1+ -> W+ ~chi_10)\n"
               "     5.00000000E-01    2        24   1000022   # pasted twice")


def _jet(pt: float, eta: float = 0.0, phi: float = 0.0) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "m": 0.0, "btag": False, "flavour": 0}


def reco_events(path: Path) -> None:
    """recastflow-reco/1 events of point ZMM with jets above and below the toy selection's cuts."""
    from recastflow.core.events import RECO, write_events

    rows = []
    for i, jets in enumerate(([_jet(150.0)], [_jet(60.0)], [_jet(400.0), _jet(40.0, 1.0, 2.0)], [])):
        rows.append({"weight": 1.0 + 0.1 * i, "jets": jets, "electrons": [], "muons": [], "photons": [],
                     "met": {"pt": 50.0, "phi": 0.0}, "truth": {"mode": "Z(mu mu)"}})
    header = {"format": RECO, "point": "ZMM", "n_events": 4, "sum_weights": 4.6, "xsec_pb": 1.25,
              "xsec_source": "fixture", "br_factor": 1.0, "chunk": {"index": 0, "count": 1}}
    write_events(path, ak.Array(rows), header)


def particle_events(path: Path) -> None:
    """recastflow-events/1 events of point ZMM (final-state particles and an empty truth record)."""
    from recastflow.core.events import EVENTS, write_events

    rows = []
    for i in range(4):
        pt = 50.0 + 10 * i
        particles = [{"pid": 13, "charge": -1.0, "px": pt, "py": 0.0, "pz": 10.0, "e": math.hypot(pt, 10.0)},
                     {"pid": -13, "charge": 1.0, "px": -pt, "py": 5.0, "pz": 0.0, "e": math.hypot(pt, 5.0)}]
        rows.append({"weight": 1.0, "particles": particles,
                     "truth": {"hard": [], "mode": "unknown", "id1": 2, "id2": -2, "x1": 0.01, "x2": 0.02,
                               "q2": 8315.0, "bhadrons": [], "chadrons": [], "taus": []}})
    header = {"format": EVENTS, "point": "ZMM", "n_events": 4, "sum_weights": 4.0, "xsec_pb": 1.25,
              "xsec_source": "fixture", "br_factor": 1.0, "chunk": {"index": 0, "count": 1}}
    write_events(path, ak.Array(rows), header)


def selected_events(path: Path) -> None:
    """recastflow-selected/1 events of point ZMM (the source of RWGRID's reweighted point)."""
    from recastflow.core.events import SELECTED, write_events

    n = 6
    truth = ak.zip({"hard": ak.Array([[{"pid": 23, "status": -22, "mother": -1, "px": 0.0, "py": 0.0, "pz": 10.0,
                                        "e": 92.0, "m": 91.2}]] * n),
                    "mode": ak.Array(["Z(mu mu)"] * n), "id1": np.full(n, 2, dtype=np.int32),
                    "id2": np.full(n, -2, dtype=np.int32), "x1": np.linspace(0.01, 0.5, n),
                    "x2": np.full(n, 0.05), "q2": np.full(n, 8315.0)}, depth_limit=1)
    regions = ak.zip({"SR": np.array([0, 1, 0, 1, -1, 0], dtype=np.int8),
                      "CR": np.array([-1, -1, -1, -1, 0, -1], dtype=np.int8)}, depth_limit=1)
    columns = ak.zip({"weight": np.ones(n), "truth": truth, "regions": regions}, depth_limit=1)
    header = {"format": SELECTED, "point": "ZMM", "n_events": 2 * n, "sum_weights": 2.0 * n, "xsec_pb": 1.25,
              "xsec_source": "fixture", "br_factor": 1.0, "luminosity_ifb": 10, "weight_names": [],
              "n_selected": n, "regions": {"SR": {"bins": 2, "variable": "ht"}, "CR": {"bins": 1, "variable": None}}}
    write_events(path, columns, header)


def onnx_three_inputs(path: Path) -> None:
    """A tiny ONNX model: input 'features' of shape [N, 3], output 'score' of shape [N, 1]."""
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [3, 1], [0.01, 0.02, 0.03])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["score"])], "corpus",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="recastflow-corpus")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def garbage(path: Path) -> None:
    """Bytes that are no known format (a download that saved an HTML error page, say)."""
    path.write_bytes(b"<html><body>502 Bad Gateway</body></html>\n" + bytes(range(256)))


def empty(path: Path) -> None:
    """A file of zero bytes."""
    path.write_bytes(b"")


BUILDERS: dict[str, Callable[[Path], None]] = {
    f.__name__: f for f in (lhe, lhe_no_events, hepmc3, hepmc3_no_events, delphes, reco_events, particle_events,
                            selected_events, onnx_three_inputs, garbage, empty, slha_without_mass,
                            slha_without_xsection, slha_xsection_negative, slha_mass_nan, slha_width_negative,
                            slha_br_negative, slha_lsp_heavier, slha_ok, slha_mass_text, slha_br_sum_high)
}


def build(kind: str, path: Path, keep: float | None = None) -> None:
    """Write ``path`` with builder ``kind``; with ``keep``, cut it to that fraction of its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    BUILDERS[kind](path)
    if keep is not None:
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * keep)])
