"""ML models in selections: contracts, batched onnxruntime scores, validation vectors, inspection, BDTs, surrogates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import onnxruntime as ort
import pytest
import yaml

from recastflow.cli import main
from recastflow.core.errors import RecastError
from recastflow.core.events import RECO, write_events
from recastflow.core.io import sha256_file
from recastflow.select.mlmodels import check_vectors, file_info
from recastflow.select.selection import load_selection, run_selection, select_file

REPO = Path(__file__).resolve().parents[2]
HIGP = REPO / "config/models/ATLAS-HIGP-2024-32"
HEADER = {"format": RECO, "point": "p", "n_events": 0, "sum_weights": 1.0, "xsec_pb": 1.0, "xsec_source": "test",
          "br_factor": 1.0}


def events(n: int, seed: int = 3, n_jets: tuple[int, int] = (2, 8)) -> ak.Array:
    """Reco events with jets (and a truth b-hadron record), random but reproducible."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(*n_jets))
        pts = np.sort(rng.exponential(60.0, k) + 20.0)[::-1]
        jets = [{"pt": float(p), "eta": float(rng.uniform(-2.4, 2.4)), "phi": float(rng.uniform(-np.pi, np.pi)),
                 "m": float(p * 0.1), "btag": bool(rng.random() < 0.5), "flavour": 0} for p in pts]
        bh = [{"pt": float(rng.exponential(50.0)), "eta": float(rng.uniform(-3, 3)), "phi": 0.0}
              for _ in range(int(rng.integers(0, 3)))]
        out.append({"weight": float(rng.uniform(0.5, 1.5)), "jets": jets, "electrons": [], "muons": [],
                    "photons": [], "met": {"pt": float(rng.exponential(100.0)), "phi": float(rng.uniform(-3, 3))},
                    "truth": {"bhadrons": sorted(bh, key=lambda b: -b["pt"])}})
    return ak.Array(out)


def higp_published(name: str) -> Path:
    """A published file of the HIGP selection's ``sources``, fetched (cache, then the mirror) like a run does."""
    from recastflow.analyses.bundle import fetched_path, sources_of

    path = HIGP / "selection.yaml"
    sources = sources_of(yaml.safe_load(path.read_text()), path)
    return fetched_path(f"source:{name}", HIGP, sources, source=path, field="test")


def copy_higp(tmp_path: Path) -> Path:
    """The HIGP bundle in a temporary folder (contracts can then be edited)."""
    dest = tmp_path / "higp"
    shutil.copytree(HIGP, dest)
    return dest


def edit_contract(folder: Path, model: str, change: Any) -> Path:
    doc = yaml.safe_load((folder / "selection.yaml").read_text())
    change(doc["models"][model])
    path = folder / "selection.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------- the ATLAS HIGP-2024-32 models


def test_atlas_contracts_load_and_agree_with_the_files() -> None:
    selection = load_selection(HIGP / "selection.yaml")
    assert [m.name for m in selection.models] == ["res_even", "res_odd", "nonres_even", "nonres_odd",
                                                   "heavyres_even", "heavyres_odd"]
    for model in selection.models:
        info = file_info(model.path)
        assert info.opsets["ai.onnx"] == model.opset == 9
        (tensor, _, shape), = info.inputs
        assert model.inputs[0].tensor == tensor and shape[1] == model.inputs[0].width == 10
        variables = json.loads(higp_published(f"{model.name}_scaling").read_text())
        assert [v.name for v in model.inputs[0].variables] == variables["variables"]
        assert np.array_equal(model.inputs[0].offset, variables["offset"])
    # the published files come from the fetch cache (never from the repository), with the declared bytes
    from recastflow.analyses.fetch import cache_dir

    doc = yaml.safe_load((HIGP / "selection.yaml").read_text())
    for model in selection.models:
        assert doc["models"][model.name]["file"] == f"source:{model.name}"
        assert model.path.is_relative_to(cache_dir()) and not model.path.is_relative_to(REPO)
        assert sha256_file(model.path) == model.sha256 == doc["sources"][model.name]["sha256"]


def test_a_model_source_with_other_bytes_is_refused_and_leaves_nothing(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # the mirror's file has other bytes than the declared sha256: no network here, so a one-line refusal
    monkeypatch.setenv("RECASTFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RECASTFLOW_OFFLINE", "1")
    folder = copy_higp(tmp_path)
    doc = yaml.safe_load((folder / "selection.yaml").read_text())
    doc["sources"]["nonres_even"]["sha256"] = "0" * 64
    (folder / "selection.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(RecastError) as err:
        load_selection(folder / "selection.yaml")
    message = str(err.value)
    assert "sources.nonres_even" in message and "other bytes" in message and "\n" not in message
    assert not (tmp_path / "cache" / "objects" / ("0" * 64)).exists()
    assert not any((tmp_path / "cache" / "tmp").iterdir())


def test_a_contract_naming_an_undeclared_source_is_refused(tmp_path: Path) -> None:
    path = edit_contract(copy_higp(tmp_path), "nonres_even", lambda m: m.update(file="source:nonres_evn"))
    with pytest.raises(RecastError, match=r"models\.nonres_even\.file: .*'nonres_evn'"):
        load_selection(path)


def test_atlas_validation_vectors_pass() -> None:
    for model in load_selection(HIGP / "selection.yaml").models:
        check = check_vectors(model)
        assert check.rows >= 50 and check.passed, check
        assert check.max_abs_dev <= 1e-6


def test_atlas_scores_in_the_selection_equal_per_event_onnxruntime_calls() -> None:
    reco = events(400, seed=5, n_jets=(5, 8))
    selection = load_selection(HIGP / "selection.yaml")
    result = run_selection(reco, dict(HEADER, n_events=len(reco)), selection, 1.0)
    sel = result.selected
    assert len(sel) > 20
    model = next(m for m in selection.models if m.name == "nonres_even")
    variables = json.loads(higp_published("nonres_even_scaling").read_text())
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    for i in range(len(sel)):
        x = np.array([[float(sel.variables[v][i]) for v in variables["variables"]]])
        x = ((x - variables["offset"]) / np.asarray(variables["scale"])).astype(np.float32)
        expected = float(session.run(["dense_3"], {"input": x})[0][0, 0])
        assert abs(expected - float(sel.variables["nonres_even"][i])) <= 1e-6
    # the score is a cut: the cutflow records the yield before and after it
    step = result.regions["nonres_high"].cutflow[-1]
    assert step.models == ("nonres_even",)
    doc = result.cutflow_doc("p")["regions"]["nonres_high"]["steps"]
    assert doc[-1]["before"] == {"raw": doc[-2]["raw"], "weighted": doc[-2]["weighted"]}
    assert doc[-1]["models"] == ["nonres_even"] and 0 < doc[-1]["raw"] < doc[-2]["raw"]


def test_score_is_usable_in_bins_and_matches_a_direct_evaluation() -> None:
    reco = events(300, seed=8, n_jets=(6, 7))
    selection = load_selection(HIGP / "selection.yaml")
    result = run_selection(reco, dict(HEADER, n_events=len(reco)), selection, 1.0)
    model = next(m for m in selection.models if m.name == "res_even")
    from recastflow.select.selection import model_inputs

    rows = model_inputs(reco, selection, model)
    scores = model.evaluate(list(rows.T))
    counts, _ = np.histogram(scores, bins=[0, 0.25, 0.5, 0.75, 1.0])
    assert list(result.regions["res_scores"].raw) == list(counts)
    assert sum(counts) == len(rows) == 300


# --------------------------------------------------------------------------- wrong contracts


@pytest.mark.parametrize("change, field, says", [
    (lambda m: m["inputs"][0]["variables"].insert(0, m["inputs"][0]["variables"].pop(1)),
     "models.nonres_even.inputs[0].variables", "first difference at position 0"),
    (lambda m: m["inputs"][0]["variables"].pop(),
     "models.nonres_even.inputs[0].variables", "9 input columns declared but the file's input 'input' takes 10"),
    (lambda m: m["inputs"][0].pop("scaling"), "models.nonres_even.inputs[0]", "missing required key: 'scaling'"),
    (lambda m: m["inputs"][0].update(scaling={"offset": [0.0] * 9, "scale": [1.0] * 9}),
     "models.nonres_even.inputs[0].scaling", "one value per input column (10)"),
    (lambda m: m.update(sha256="0" * 64), "models.nonres_even.sha256", "not the file the contract describes"),
    (lambda m: m["inputs"][0].update(tensor="input_1"), "models.nonres_even.inputs[0].tensor", "no input tensor"),
    (lambda m: m.update(opset=13), "models.nonres_even.opset", "uses opset 9"),
    (lambda m: m["output"].update(name="dense_4"), "models.nonres_even.output.name", "no output 'dense_4'"),
])
def test_wrong_contracts_are_caught_with_file_and_field(tmp_path: Path, change: Any, field: str, says: str) -> None:
    path = edit_contract(copy_higp(tmp_path), "nonres_even", change)
    with pytest.raises(RecastError) as err:
        load_selection(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert says in message and "\n" not in message


def test_wrong_count_without_a_variables_file(tmp_path: Path) -> None:
    def nine_inputs(m: dict[str, Any]) -> None:
        m["inputs"][0]["variables"].pop()
        m["inputs"][0]["scaling"] = {"offset": [0.0] * 9, "scale": [1.0] * 9}
    path = edit_contract(copy_higp(tmp_path), "nonres_even", nine_inputs)
    with pytest.raises(RecastError, match=r"inputs\[0\]\.variables: 9 input columns declared but the file's input "
                                          r"'input' takes 10"):
        load_selection(path)


# --------------------------------------------------------------------------- validation vectors and the CLI


def test_vectors_beyond_tolerance_fail_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the project: the command refuses paths outside it
    folder = copy_higp(tmp_path)
    vec = folder / "vectors" / "res_odd.json"
    doc = json.loads(vec.read_text())
    doc["expected"][7] += 3e-4  # as if another onnxruntime had moved one score
    doc["onnxruntime"] = "1.0.0"
    vec.write_text(json.dumps(doc))
    out = tmp_path / "check.txt"
    assert main(["model-check", "--selection", str(folder / "selection.yaml"), "--output", str(out)]) == 1
    captured = capsys.readouterr()
    assert "res_odd" in captured.out and "FAILED (row 7)" in captured.out
    assert "largest deviation 0.0003 (res_odd, atol 1e-06; vectors written with onnxruntime 1.0.0" in captured.err
    assert not out.exists()


def test_model_check_cli_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the project: the command refuses paths outside it
    out = tmp_path / "models.txt"
    folder = copy_higp(tmp_path)
    assert main(["model-check", "--selection", str(folder / "selection.yaml"), "--output", str(out),
                 "--json", str(out.with_suffix(".json"))]) == 0
    records = json.loads(out.with_suffix(".json").read_text())
    assert len(records) == 6 and all(r["passed"] and r["max_abs_dev"] <= 1e-6 for r in records)


def test_write_vectors_once_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the project: the command refuses paths outside it
    folder = copy_higp(tmp_path)
    shutil.rmtree(folder / "vectors")
    reco_path = tmp_path / "reco.parquet"
    reco = events(200, seed=9, n_jets=(6, 7))
    write_events(reco_path, reco, dict(HEADER, n_events=len(reco)))
    args = ["model-vectors", "--selection", str(folder / "selection.yaml"), "--events", str(reco_path),
            "--model", "heavyres_odd", "--max-rows", "50"]
    assert main(args) == 0
    doc = json.loads((folder / "vectors" / "heavyres_odd.json").read_text())
    assert len(doc["inputs"]) == 50 and doc["onnxruntime"] == ort.__version__
    assert main(args) == 1  # written once: no silent overwrite
    assert "written once" in capsys.readouterr().err
    assert main(["model-check", "--selection", str(folder / "selection.yaml"), "--model", "heavyres_odd"]) == 0


def test_inspect_prints_file_and_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model-inspect", "--selection", str(HIGP / "selection.yaml"), "--model", "heavyres_odd"]) == 0
    out = capsys.readouterr().out
    for text in ("producer  tf2onnx 1.9.1", "opsets    ai.onnx 9", "input     input_1: float32", "output    dense_4",
                 "contract  heavyres_odd: sha256, opset 9, inputs and output agree", "mHradius", "[GeV]"):
        assert text in out, text


# --------------------------------------------------------------------------- BDTs and surrogates via scikit-learn


def _features(reco: ak.Array) -> np.ndarray:
    jets = reco.jets
    pt0 = ak.to_numpy(ak.fill_none(ak.firsts(jets.pt), np.nan))
    return np.column_stack([ak.to_numpy(reco.met.pt), ak.to_numpy(ak.num(jets)).astype(float), pt0])


def _onnx_of(model: Any, n_features: int, path: Path) -> str:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(model, initial_types=[("features", FloatTensorType([None, n_features]))],
                  options={id(model): {"zipmap": False}}, target_opset=15)
    path.write_bytes(onx.SerializeToString())
    return sha256_file(path)


def _bdt_selection(tmp_path: Path, name: str, sha: str, extra: str = "") -> Path:
    text = f"""
models:
  bdt:
    file: {name}
    sha256: {sha}
    opset: 15
    onnxruntime: {ort.__version__}
    inputs:
      - tensor: features
        scaling: none
        variables:
          - {{name: met, expression: met.pt, unit: GeV}}
          - {{name: njets, expression: "n(jets)", unit: "1"}}
          - {{name: jet0_pt, expression: "jets[0].pt", unit: GeV}}
    output: {{name: probabilities, index: 1}}
{extra}
preselection:
  - one_jet: "n(jets) >= 1"
regions:
  SR:
    cuts:
      - bdt_0.5: "bdt > 0.5"
  ALL:
    cuts: []
    bins: {{variable: bdt, edges: [0, 0.5, 1.0001]}}
"""
    path = tmp_path / "selection.yaml"
    path.write_text(text)
    return path


def test_bdt_trained_here_gives_the_same_scores_through_the_selection(tmp_path: Path) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    train = events(600, seed=21)
    x = _features(train).astype(np.float32).astype(np.float64)  # what the ONNX model sees
    y = (x[:, 0] + 20 * x[:, 1] + np.random.default_rng(1).normal(0, 40, len(x)) > 200).astype(int)
    bdt = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(x, y)
    sha = _onnx_of(bdt, 3, tmp_path / "bdt.onnx")
    selection = load_selection(_bdt_selection(tmp_path, "bdt.onnx", sha))
    reco = events(500, seed=22)
    result = run_selection(reco, dict(HEADER, n_events=len(reco)), selection, 1.0)
    sel = result.selected
    expected = bdt.predict_proba(_features(sel).astype(np.float32).astype(np.float64))[:, 1]
    scores = ak.to_numpy(sel.variables["bdt"])
    assert len(scores) == len(sel) > 100
    assert np.max(np.abs(scores - expected)) < 1e-6
    n_high = int(np.sum(expected > 0.5))
    assert result.regions["SR"].raw == (n_high,)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_surrogate_network_as_a_per_event_weight(tmp_path: Path) -> None:
    """A small MLP stands in for an unreproducible selection: its probability weights the events."""
    from sklearn.neural_network import MLPClassifier

    train = events(400, seed=31)
    x = _features(train).astype(np.float32).astype(np.float64)
    keep = np.isfinite(x).all(axis=1)
    y = (x[:, 2] > 90).astype(int)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0).fit(x[keep] / 100, y[keep])
    # the network was trained on x / 100: the contract's scaling says so (offset 0, scale 100)
    sha = _onnx_of(mlp, 3, tmp_path / "surrogate.onnx")
    text = f"""
models:
  tagger:
    file: surrogate.onnx
    sha256: {sha}
    opset: 15
    onnxruntime: {ort.__version__}
    surrogate: {{replaces: "an experiment-internal tagger (test)"}}
    inputs:
      - tensor: features
        scaling: {{offset: [0, 0, 0], scale: [100, 100, 100]}}
        variables:
          - {{name: met, expression: met.pt, unit: GeV}}
          - {{name: njets, expression: "n(jets)", unit: "1"}}
          - {{name: jet0_pt, expression: "jets[0].pt", unit: GeV}}
    output: {{name: probabilities, index: 1}}
preselection:
  - one_jet: "n(jets) >= 1"
regions:
  SR:
    cuts:
      - tagged: {{weight: tagger}}
"""
    (tmp_path / "selection.yaml").write_text(text)
    selection = load_selection(tmp_path / "selection.yaml")
    reco = events(300, seed=32)
    result = run_selection(reco, dict(HEADER, n_events=len(reco), sum_weights=1.0), selection, 1.0)
    x = _features(reco)
    has = np.isfinite(x).all(axis=1)
    p = mlp.predict_proba(x[has].astype(np.float32).astype(np.float64) / 100)[:, 1]
    w = ak.to_numpy(reco.weight)[has]
    expected = float(np.sum(w * p)) * 1000.0  # 1 fb^-1 x 1 pb / sum_weights 1
    assert result.regions["SR"].yields[0] == pytest.approx(expected, rel=1e-5)
    step = result.cutflow_doc("p")["regions"]["SR"]["steps"][-1]
    assert step["kind"] == "weight" and step["raw"] == step["before"]["raw"] == int(has.sum())
    assert step["efficiency"] == pytest.approx(expected / step["before"]["weighted"], rel=1e-6)


def test_select_file_records_the_models_in_the_header(tmp_path: Path) -> None:
    from recastflow.core.events import read_header

    reco = events(120, seed=4, n_jets=(6, 7))
    inp = tmp_path / "reco.parquet"
    write_events(inp, reco, dict(HEADER, n_events=len(reco)))
    select_file([inp], HIGP / "selection.yaml", luminosity_ifb=1.0, point="p", yields_out=tmp_path / "y.json",
                cutflow_out=tmp_path / "c.json", selected_out=tmp_path / "s.parquet")
    header = read_header(tmp_path / "s.parquet")
    assert header["models"]["res_even"]["onnxruntime_validated"] == "1.31.1"
    assert header["models"]["res_even"]["sha256"] == sha256_file(higp_published("res_even"))
