"""Tests of recastflow.reweight.reweighting: specs, the three kinds of ratio, morphing, diagnostics, errors, closure."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import yaml

from recastflow.core.errors import RecastError
from recastflow.core.events import SELECTED, read_events, write_events
from recastflow.reweight.reweighting import (check_reweighted, closure_rows, diagnose, event_ratios, hard_decays, kish_ess,
                                    load_spec, monomial_exponents, morph, morphing_coefficients, reweight_selected,
                                    Truth)

REPO = Path(__file__).resolve().parents[2]
LUMI = 139.0


# ----------------------------------------------------------------------------- synthetic selected events


def hard_record(kind: str) -> list[dict[str, Any]]:
    """u ubar -> C1 N2, C1 -> W N1, N2 -> (h or Z) N1, boson -> b b: the TChiWH/TChiWHZ hard record."""
    def p(pid: int, mother: int, m: float, pz: float) -> dict[str, Any]:
        return {"pid": pid, "status": -22, "mother": mother, "px": 10.0, "py": 5.0, "pz": pz,
                "e": math.sqrt(125.0 + pz * pz + m * m), "m": m}
    boson = 25 if kind == "h" else 23
    return [p(2, -1, 0.0, 500.0), p(-2, -1, 0.0, -300.0), p(1000024, 0, 700.0, 100.0), p(1000023, 0, 700.0, 50.0),
            p(24, 2, 80.4, 30.0), p(1000022, 2, 0.0, 20.0), p(boson, 3, 125.0 if boson == 25 else 91.2, 40.0),
            p(1000022, 3, 0.0, 10.0), p(5, 6, 4.8, 20.0), p(-5, 6, 4.8, 20.0)]


def write_selected(path: Path, *, modes: list[str], weight: np.ndarray | None = None,
                   weights: list[list[float]] | None = None, weight_names: list[str] | None = None,
                   bins: dict[str, list[int]] | None = None, n_events: int | None = None,
                   point: str = "SRC", x1: np.ndarray | None = None) -> Path:
    """A recastflow-selected/1 file: one event per mode label, TChiWH(Z)-like hard records."""
    n = len(modes)
    weight = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    bins = bins or {"SR": [i % 2 for i in range(n)], "CR": [0 if i % 3 == 0 else -1 for i in range(n)]}
    x1 = np.linspace(0.01, 0.5, n) if x1 is None else x1
    truth = ak.zip({
        "hard": ak.Array([hard_record("h" if "h(" in m else "Z") for m in modes]),
        "mode": ak.Array(modes), "id1": np.full(n, 2, dtype=np.int32), "id2": np.full(n, -2, dtype=np.int32),
        "x1": x1, "x2": np.full(n, 0.05), "q2": np.full(n, 700.0 ** 2)}, depth_limit=1)
    columns: dict[str, Any] = {"weight": weight}
    if weights is not None:
        columns["weights"] = ak.Array(weights)
    columns["truth"] = truth
    columns["regions"] = ak.zip({k: np.asarray(v, dtype=np.int8) for k, v in bins.items()}, depth_limit=1)
    header = {"format": SELECTED, "point": point, "n_events": n_events or 2 * n, "sum_weights": float(2 * weight.sum()),
              "xsec_pb": 0.01, "xsec_source": "test", "br_factor": 1.0, "luminosity_ifb": LUMI,
              "weight_names": weight_names or [], "n_selected": n,
              "regions": {k: {"bins": max(max(v) + 1, 1), "variable": None} for k, v in bins.items()}}
    write_events(path, ak.zip(columns, depth_limit=1), header)
    return path


def write_spec(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def norm_of(path: Path) -> float:
    _, h = read_events(path, (SELECTED,))
    return LUMI * 1000 * h["xsec_pb"] * h["br_factor"] / h["sum_weights"]


MODES = ["W(e nu) h(b b)", "W(mu nu) Z(b b)", "W(q q) h(b b)", "W(tau nu) h(W W) W(e nu) W(q q)",
         "W(e nu) Z(nu nu)", "W(mu nu) h(b b)"]


# ----------------------------------------------------------------------------- decay modes


def test_decay_mode_rules_match_label_decays_in_order(tmp_path: Path) -> None:
    sel = write_selected(tmp_path / "s.parquet", modes=MODES)
    spec = load_spec(REPO / "config/reweighting/TChiWHZ_to_TChiWH.yaml")
    events, header = read_events(sel, (SELECTED,))
    r, _ = event_ratios(spec, Truth.of(events, header, str(sel)), {})
    # h(b b) -> 2, other h and any Z -> 0, leptonic W -> 1, hadronic W -> 0
    assert r.tolist() == [2.0, 0.0, 0.0, 0.0, 0.0, 2.0]


def test_decay_rules_on_the_hard_record_and_parameter_targets(tmp_path: Path) -> None:
    sel = write_selected(tmp_path / "s.parquet", modes=MODES)
    spec = load_spec(REPO / "config/reweighting/N2_branching.yaml")
    events, header = read_events(sel, (SELECTED,))
    truth = Truth.of(events, header, str(sel))
    event, keys = hard_decays(truth)
    assert keys[:4] == ["2 -> 1000023 1000024", "1000024 -> 24 1000022", "1000023 -> 25 1000022", "25 -> 5 5"]
    assert event[:4].tolist() == [0, 0, 0, 0]
    r, _ = event_ratios(spec, truth, {"BR_h": 0.8})
    is_h = np.array(["h(" in m for m in MODES])
    assert np.allclose(r, np.where(is_h, 0.8 / 0.5, 0.2 / 0.5))
    # the identity: the generated branching fraction gives r = 1 exactly
    assert np.all(event_ratios(spec, truth, {"BR_h": 0.5})[0] == 1.0)


def test_yields_and_stat_are_normalised_sums_of_reweighted_weights(tmp_path: Path) -> None:
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 3.0])
    sel = write_selected(tmp_path / "s.parquet", modes=MODES, weight=w)
    spec = load_spec(REPO / "config/reweighting/N2_branching.yaml")
    yields, diag = reweight_selected(sel, spec, {"BR_h": 0.8}, point="T")
    r = np.where(np.array(["h(" in m for m in MODES]), 1.6, 0.4)
    new, norm = w * r, norm_of(sel)
    sr = np.array([i % 2 for i in range(6)])
    for b in (0, 1):
        assert yields["regions"]["SR"]["yields"][b] == pytest.approx(norm * new[sr == b].sum(), rel=1e-12)
        assert yields["regions"]["SR"]["stat"][b] == pytest.approx(norm * math.sqrt((new[sr == b] ** 2).sum()), rel=1e-12)
    assert yields["format"] == "recastflow-yields/1" and yields["point"] == "T"
    assert diag["ess"] == pytest.approx(kish_ess(new))
    # six events: each carries more than max_weight_share (0.1) of the sum, so the point is flagged
    assert diag["verdict"] == "flagged" and "above max_weight_share 0.1" in diag["reasons"][0]
    assert diag["ess_fraction"] == pytest.approx(kish_ess(new) / kish_ess(w))


# ----------------------------------------------------------------------------- analytic ratios


def test_analytic_ratio_over_truth_variables_and_named_particles(tmp_path: Path) -> None:
    x1 = np.linspace(0.1, 0.6, 6)
    sel = write_selected(tmp_path / "s.parquet", modes=MODES, x1=x1)
    # a Breit-Wigner-like mass ratio of the N2 (700 GeV here), times a PDF-like factor in x1 and a scale
    ratio = "k * ((N2.m**2 - M0**2)**2 + (M0*G0)**2) / ((N2.m**2 - M1**2)**2 + (M1*G0)**2) * (1 + x1)"
    spec = load_spec(write_spec(tmp_path / "a.yaml", {
        "name": "bw", "parameters": {"k": {}, "M1": {}},
        "factors": [{"expression": {"ratio": ratio.replace("M0", "690.0").replace("G0", "10.0"),
                                    "particles": {"N2": 1000023}}}]}))
    events, header = read_events(sel, (SELECTED,))
    r, _ = event_ratios(spec, Truth.of(events, header, str(sel)), {"k": 1.5, "M1": 705.0})
    m = 700.0
    expected = 1.5 * ((m**2 - 690**2)**2 + (6900.0)**2) / ((m**2 - 705**2)**2 + (7050.0)**2) * (1 + x1)
    assert np.allclose(r, expected, rtol=1e-12)
    # the hard collection: the number of b quarks, via a per-object condition
    spec2 = load_spec(write_spec(tmp_path / "b.yaml", {"name": "nb", "factors": [
        {"expression": {"ratio": "n(abs(hard.pid) == 5) / 2"}}]}))
    assert np.all(event_ratios(spec2, Truth.of(events, header, str(sel)), {})[0] == 1.0)


@pytest.mark.parametrize("ratio, fragments", [
    ("1 + x3", ["factors[0].expression.ratio", "unknown name 'x3'", "known here: x1, x2, q2, id1, id2, hard, N2"]),
    ("N3.pt / 100", ["factors[0].expression.ratio", "unknown name 'N3'"]),
    ("hard", ["factors[0].expression.ratio", "must give one number per event"]),
    ("__import__('os')", ["factors[0].expression.ratio"]),
])
def test_bad_expressions_name_the_spec_and_field(tmp_path: Path, ratio: str, fragments: list[str]) -> None:
    path = write_spec(tmp_path / "bad.yaml", {"name": "bad", "factors": [
        {"expression": {"ratio": ratio, "particles": {"N2": 1000023}}}]})
    with pytest.raises(RecastError) as err:
        load_spec(path)
    assert str(err.value).startswith(str(path))
    for f in fragments:
        assert f in str(err.value)


@pytest.mark.parametrize("ratio, allow, fragments", [
    ("x1 - 0.3", False, ["factors[0].expression", "negative r", "allow_negative"]),
    ("1 / (x1 - x1)", False, ["factors[0].expression", "r = inf", "NaN or infinite"]),
    ("h.pt / 100", False, ["factors[0].expression", "r = nan", "missing from the event's hard record"]),
])
def test_negative_and_non_finite_ratios_are_refused(tmp_path: Path, ratio: str, allow: bool,
                                                   fragments: list[str]) -> None:
    sel = write_selected(tmp_path / "s.parquet", modes=MODES)
    spec = load_spec(write_spec(tmp_path / "r.yaml", {"name": "r", "allow_negative": allow, "factors": [
        {"expression": {"ratio": ratio, "particles": {"h": 25}}}]}))
    with pytest.raises(RecastError) as err:
        reweight_selected(sel, spec, {}, point="T")
    assert str(err.value).startswith(f"{tmp_path / 'r.yaml'}: factors[0].expression:")
    for f in fragments:
        assert f in str(err.value)


@pytest.mark.parametrize("factors, fragments", [
    # each factor finite, their product infinite
    (["1e200 + 0 * x1", "1e200 + 0 * x1"], ["factors:", "product of the 2 factors is r = inf", "rescale"]),
    # a finite ratio whose yields overflow once multiplied by the weights and the normalisation
    (["1e305 + 0 * x1"], ["factors:", "the reweighted stat of region", "is inf", "rescale"]),
])
def test_finite_factors_with_infinite_products_are_refused(tmp_path: Path, factors: list[str],
                                                          fragments: list[str]) -> None:
    sel = write_selected(tmp_path / "s.parquet", modes=MODES)
    spec = load_spec(write_spec(tmp_path / "r.yaml", {"name": "r", "factors": [
        {"expression": {"ratio": f}} for f in factors]}))
    with pytest.raises(RecastError) as err:
        reweight_selected(sel, spec, {}, point="T")
    assert str(err.value).startswith(f"{tmp_path / 'r.yaml'}: ") and "\n" not in str(err.value)
    for f in fragments:
        assert f in str(err.value)


def test_allow_negative_accepts_negative_ratios(tmp_path: Path) -> None:
    sel = write_selected(tmp_path / "s.parquet", modes=MODES)
    spec = load_spec(write_spec(tmp_path / "r.yaml", {"name": "r", "allow_negative": True, "factors": [
        {"expression": {"ratio": "x1 - 0.3"}}]}))
    yields, _ = reweight_selected(sel, spec, {}, point="T")
    assert min(yields["regions"]["SR"]["yields"]) < 0


# ----------------------------------------------------------------------------- generator weights and morphing


def test_named_generator_weight_is_the_ratio_to_the_nominal(tmp_path: Path) -> None:
    w = np.array([1.0, 2.0, 0.5, 1.0, 1.0, 1.0])
    alt = [[wi, wi * (1 + 0.1 * i)] for i, wi in enumerate(w)]
    sel = write_selected(tmp_path / "s.parquet", modes=MODES, weight=w, weights=alt, weight_names=["nominal", "muR2"])
    spec = load_spec(write_spec(tmp_path / "w.yaml", {"name": "w", "factors": [{"weight": {"name": "muR2"}}]}))
    yields, _ = reweight_selected(sel, spec, {}, point="T")
    sr = np.array([i % 2 for i in range(6)])
    target = np.array([a[1] for a in alt])
    assert yields["regions"]["SR"]["yields"][1] == pytest.approx(norm_of(sel) * target[sr == 1].sum(), rel=1e-12)


def test_weight_vector_missing_in_some_events_is_refused(tmp_path: Path) -> None:
    alt = [[1.0, 1.1], [1.0], [1.0, 1.2], [], [1.0, 0.9], [1.0, 1.0]]
    sel = write_selected(tmp_path / "s.parquet", modes=MODES, weights=alt, weight_names=["nominal", "muR2"])
    spec = load_spec(write_spec(tmp_path / "w.yaml", {"name": "w", "factors": [{"weight": {"name": "muR2"}}]}))
    with pytest.raises(RecastError, match=r"s\.parquet: weights: selected event 1 has 1 weights, the header names 2 "
                                          r"\(2 event\(s\) with a missing or incomplete weight vector\)"):
        reweight_selected(sel, spec, {}, point="T")


def test_unknown_weight_name_lists_the_available_ones(tmp_path: Path) -> None:
    sel = write_selected(tmp_path / "s.parquet", modes=MODES, weights=[[1.0, 1.1]] * 6, weight_names=["nominal", "muR2"])
    path = write_spec(tmp_path / "w.yaml", {"name": "w", "factors": [{"weight": {"name": "rwgt_7"}}]})
    with pytest.raises(RecastError, match=r"w\.yaml: factors\[0\]\.weight\.name: weight 'rwgt_7' is not among the "
                                          r"sample's weights \('nominal', 'muR2'\)"):
        reweight_selected(sel, load_spec(path), {}, point="T")


def test_morphing_recovers_known_polynomial_coefficients() -> None:
    rng = np.random.default_rng(7)
    # two parameters, degree 2: 6 coefficients per event (|SM + c1 B1 + c2 B2|^2)
    exps = monomial_exponents(2, 2)
    assert exps == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    truth = rng.normal(size=(500, len(exps)))
    basis = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -2], [1, 1], [2, -1]], dtype=float)  # 7 > 6: least squares
    weights = np.stack([sum(truth[:, k] * np.prod(b ** np.array(e)) for k, e in enumerate(exps)) for b in basis], axis=1)
    got_exps, coefficients = morphing_coefficients(basis, weights, 2)
    assert got_exps == exps
    assert np.max(np.abs(coefficients - truth)) < 1e-12
    at = np.array([0.37, -1.3])
    expected = sum(truth[:, k] * np.prod(at ** np.array(e)) for k, e in enumerate(exps))
    assert np.max(np.abs(morph(coefficients, exps, at) - expected)) < 1e-12


def test_morphing_spec_gives_yields_at_any_parameter_value(tmp_path: Path) -> None:
    # per event w(c) = w0 (1 + a c + b c^2), stored at c = 0 (nominal), 1, -1, 2
    rng = np.random.default_rng(3)
    n = len(MODES)
    w0, a, b = rng.uniform(0.5, 2, n), rng.uniform(-1, 1, n), rng.uniform(0.1, 1, n)
    stored = [1.0, -1.0, 2.0]
    weights = [[w0[i] * (1 + a[i] * c + b[i] * c * c) for c in stored] for i in range(n)]
    sel = write_selected(tmp_path / "s.parquet", modes=MODES, weight=w0, weights=weights,
                         weight_names=["cW_p1", "cW_m1", "cW_p2"])
    spec = load_spec(write_spec(tmp_path / "m.yaml", {"name": "m", "parameters": {"cW": {}}, "factors": [
        {"morphing": {"parameters": ["cW"], "degree": 2, "basis": [
            {"weight": "nominal", "values": {"cW": 0}}, {"weight": "cW_p1", "values": {"cW": 1}},
            {"weight": "cW_m1", "values": {"cW": -1}}, {"weight": "cW_p2", "values": {"cW": 2}}]}}]}))
    sr = np.array([i % 2 for i in range(n)])
    for c in (0.0, 0.3, 1.7, -0.8):
        yields, diag = reweight_selected(sel, spec, {"cW": c}, point="T")
        target = w0 * (1 + a * c + b * c * c)
        assert yields["regions"]["SR"]["yields"][0] == pytest.approx(norm_of(sel) * target[sr == 0].sum(), rel=1e-12)
        assert diag["morphing_condition"][0] < 100


def test_morphing_basis_that_cannot_determine_the_polynomial(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "m.yaml", {"name": "m", "parameters": {"cW": {}}, "factors": [
        {"morphing": {"parameters": ["cW"], "degree": 2, "basis": [
            {"weight": "nominal", "values": {"cW": 0}}, {"weight": "a", "values": {"cW": 1}},
            {"weight": "b", "values": {"cW": 1}}]}}]})
    with pytest.raises(RecastError, match=r"factors\[0\]\.morphing\.basis: a polynomial of degree 2 in 1 parameter\(s\) "
                                          r"has 3 coefficients; the 3 basis points determine only 2"):
        load_spec(path)
    bad = write_spec(tmp_path / "n.yaml", {"name": "m", "factors": [{"morphing": {"parameters": ["cW"], "degree": 1,
                                                                                  "basis": []}}]})
    with pytest.raises(RecastError, match="factors"):
        load_spec(bad)


# ----------------------------------------------------------------------------- diagnostics


def test_diagnostics_flag_a_sample_dominated_by_few_events(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "d.yaml", {"name": "d", "factors": [{"expression": {"ratio": "1"}}],
                                                      "diagnostics": {"min_ess_fraction": 0.3, "r_threshold": 5}}))
    w = np.ones(100)
    ok = diagnose(w, np.ones(100), spec)
    assert ok.verdict == "ok" and ok.ess == pytest.approx(100) and ok.max_weight_share == pytest.approx(0.01)
    r = np.full(100, 0.01)
    r[:3] = 50.0
    bad = diagnose(w, r, spec)
    assert bad.verdict == "flagged" and bad.fraction_above == pytest.approx(0.03)
    assert bad.ess == pytest.approx((150.97) ** 2 / (3 * 2500 + 97 * 1e-4))
    assert any("below min_ess_fraction 0.3" in x for x in bad.reasons)
    assert any("above max_weight_share 0.1" in x for x in bad.reasons)


def test_closure_rows_pull() -> None:
    a = {"regions": {"SR": {"yields": [3.0, 1.0], "stat": [0.3, 0.4]}}}
    b = {"regions": {"SR": {"yields": [2.0, 1.0], "stat": [0.0, 0.0]}, "CR": {"yields": [1.0], "stat": [0.1]}}}
    (row,) = closure_rows("P", "G/D", a, b)
    assert row.pull == pytest.approx(1.0 / 0.5) and row.passed
    a["regions"]["SR"]["yields"][0] = 5.0
    assert not closure_rows("P", "G/D", a, b)[0].passed


# ----------------------------------------------------------------------------- grids and the CLI


def test_repository_specs_and_grids_load() -> None:
    from recastflow.analyses.bundle import load_grid

    for spec in sorted((REPO / "config/reweighting").glob("*.yaml")):
        load_spec(spec)
    grids = {n: load_grid(n, REPO / "config/signals")
             for n in ("TChiWH_1Lbb", "TChiWHZ_1Lbb", "TChiWH_1Lbb_reweighted", "TChiWH_1Lbb_BR")}
    assert check_reweighted(grids) == 3
    point = grids["TChiWH_1Lbb_BR"].point("TChiWH_700_0_BRh050")
    assert point.yields == Path("results/reweight/TChiWH_1Lbb_BR/TChiWH_700_0_BRh050/yields.json")
    assert point.reweight.source == ("TChiWH_1Lbb", "TChiWH_700_0") and not point.from_events


def test_reweighted_point_errors_name_grid_and_field() -> None:
    from recastflow.analyses.bundle import load_grid

    grids = {n: load_grid(n, REPO / "config/signals") for n in ("TChiWH_1Lbb", "TChiWH_1Lbb_reweighted")}
    with pytest.raises(RecastError, match=r"TChiWH_1Lbb_reweighted\.yaml: points\[0\]\.reweight\.from: grid "
                                          r"'TChiWHZ_1Lbb' is not among the run's grids"):
        check_reweighted(grids)
    grids = {n: load_grid(n, REPO / "config/signals") for n in ("TChiWH_1Lbb", "TChiWH_1Lbb_BR")}
    bare = grids["TChiWH_1Lbb_BR"]
    from dataclasses import replace

    point = replace(bare.points[0], values={"m_C1N2": 700, "m_N1": 0})
    grids["TChiWH_1Lbb_BR"] = replace(bare, points=(point,))
    with pytest.raises(RecastError, match=r"points\[0\]\.reweight\.parameters: no value for parameter 'BR_h'"):
        check_reweighted(grids)


def test_cli_reweight_writes_yields_that_patch_accepts(tmp_path: Path) -> None:
    """`recastflow reweight` on a real grid point, with synthetic selected events of its source."""
    sel = write_selected(tmp_path / "selected.parquet", modes=MODES, point="TChiWH_700_0",
                         bins={"SRHMEM_mct2": [0, 1, 2, 0, 1, 2], "WREM_cuts": [0, -1, 0, -1, 0, -1]})
    out = tmp_path / "out"
    # the run's project is the repository: the events and outputs of this test are in a folder the config allows
    config = tmp_path / "config.yaml"
    config.write_text((REPO / "config" / "config.yaml").read_text() + f"\nallowed_paths: [{json.dumps(str(tmp_path))}]\n")
    cmd = [sys.executable, "-m", "recastflow", "--config", str(config), "reweight", "--grid", "TChiWH_1Lbb_BR", "--point",
           "TChiWH_700_0_BRh050", "--input", str(sel), "--yields", str(out / "yields.json"), "--diagnostics",
           str(out / "diagnostics.json")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    yields = json.loads((out / "yields.json").read_text())
    diag = json.loads((out / "diagnostics.json").read_text())
    assert yields["regions"]["SRHMEM_mct2"]["yields"][0] == pytest.approx(0.5 * norm_of(sel) * 2)
    # r = BR_h for the chi2 -> h chi1 events, 1 for the synthetic Z events (no rule matches them)
    assert diag["parameters"] == {"BR_h": 0.5} and (diag["r_min"], diag["r_max"]) == (0.5, 1.0)
    assert diag["verdict"] == "flagged"  # six events: the largest share is above 0.1
    assert "flagged: one event carries" in proc.stderr
    # events of another point: a one-line error, nothing written
    other = write_selected(tmp_path / "other.parquet", modes=MODES, point="TChiWH_500_0")
    o2 = tmp_path / "o2"
    proc = subprocess.run(cmd[:-6] + ["--input", str(other), "--yields", str(o2 / "yields.json"), "--diagnostics",
                                      str(o2 / "diagnostics.json")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "holds the selected events of point 'TChiWH_500_0'" in proc.stderr and not (tmp_path / "o2").exists()


# ----------------------------------------------------------------------------- closure on the 1Lbb flagship


def _front_end(card: Path, slha: Path, n: int, chunks: int, seed: int, out: Path, name: str) -> Path:
    """generate (chunks in parallel processes) -> emulate -> select with the 1Lbb selection; the selected file."""
    from concurrent.futures import ProcessPoolExecutor

    from recastflow.emulate.emulation import emulate_file
    from recastflow.generate.pythia import generate_chunk
    from recastflow.select.selection import select_file

    with ProcessPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(generate_chunk, card, slha, point=name, n_events=n // chunks, seed=seed, chunk=i,
                            chunks=chunks, output=out / f"{name}_gen{i}.parquet", progress=False) for i in range(chunks)]
        for job in jobs:
            job.result()
    reco = []
    for i in range(chunks):
        emulate_file(out / f"{name}_gen{i}.parquet", REPO / "config/detectors/ATLAS-Run2.yaml",
                     out / f"{name}_reco{i}.parquet", seed=seed + i)
        reco.append(out / f"{name}_reco{i}.parquet")
    select_file(reco, REPO / "config/analyses/ATLAS-SUSY-2019-08/selection.yaml", luminosity_ifb=LUMI, point=name,
                yields_out=out / f"{name}_yields.json", cutflow_out=out / f"{name}_cutflow.json",
                selected_out=out / f"{name}_selected.parquet")
    return out / f"{name}_selected.parquet"


@pytest.mark.slow
def test_closure_tchiwhz_reweighted_to_tchiwh_agrees_with_direct_generation(tmp_path: Path) -> None:
    """The 50/50 h/Z sample reweighted to TChiWH closes on a TChiWH sample generated directly.

    Small samples (3000 TChiWHZ, 1500 TChiWH events: about a minute on two cores) keep the test
    affordable; the workflow's closure run (config/closure.yaml) does the same with 16 000 events.
    """
    mixed = _front_end(REPO / "config/processes/TChiWHZ.yaml", REPO / "config/signals/slha/TChiWHZ/TChiWHZ_700_0.slha",
                       3000, 2, 101, tmp_path, "WHZ")
    direct = _front_end(REPO / "config/processes/TChiWH.yaml", REPO / "config/signals/slha/TChiWH/TChiWH_700_0.slha",
                        1500, 2, 202, tmp_path, "WH")
    spec = load_spec(REPO / "config/reweighting/TChiWHZ_to_TChiWH.yaml")
    reweighted, diag = reweight_selected(mixed, spec, {}, point="WH_from_WHZ")
    generated = json.loads((tmp_path / "WH_yields.json").read_text())
    rows = closure_rows("WH_from_WHZ", "WH", reweighted, generated)
    signal = [r for r in rows if r.region.startswith("SR")]
    assert len(signal) == 3 and all(r.value > 0 and r.reweighted > 0 for r in signal)
    assert all(r.passed for r in rows), [(r.region, r.pull) for r in rows]
    # the sum over the three signal regions (exclusive in mT), with stats added in quadrature
    tot_rw, tot_d = sum(r.reweighted for r in signal), sum(r.value for r in signal)
    sigma = math.sqrt(sum(r.reweighted_stat ** 2 + r.value_stat ** 2 for r in signal))
    assert abs(tot_rw - tot_d) < 3 * sigma
    # r is 2 (h -> b b with a leptonic W) or 0 (Z); every region of the 1Lbb selection asks for m_bb away from
    # m_Z (SRs in the h window, the ttbar, W and single-top CRs on the sidebands of SimpleAnalysis), so few or no
    # selected TChiWHZ events are Z ones
    assert diag["r_max"] == 2.0 and diag["r_min"] in (0.0, 2.0) and diag["verdict"] == "ok"
    assert diag["ess_fraction"] > 0.5
    # identity: the generated branching fraction reproduces the sample's own yields exactly
    same, _ = reweight_selected(mixed, load_spec(REPO / "config/reweighting/N2_branching.yaml"), {"BR_h": 0.5}, point="x")
    own = json.loads((tmp_path / "WHZ_yields.json").read_text())
    for name, reg in own["regions"].items():
        assert same["regions"][name]["yields"] == pytest.approx(reg["yields"], rel=1e-12, abs=1e-15)


# ----------------------------------------------------------------------------- LHE multi-weights through the hand-off


def test_lhe_multiweights_through_the_handoff_morph_to_any_parameter(tmp_path: Path) -> None:
    """LHE rwgt weights (read with pylhe, showered with Pythia) -> selected events -> morphing.

    The fixture's k-th named weight is nominal * (1 + 0.1 k) * (1 + 0.01 i) in event i: linear in a
    parameter c at the basis points c = 1, 2, 3, so the morphed weight at c is known exactly.
    """
    import importlib.util

    from recastflow.generate.handoff import handoff

    spec_ = importlib.util.spec_from_file_location("make_fixtures", REPO / "tests/data/handoff/make_fixtures.py")
    fx = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(fx)
    names = ["nominal", "c1", "c2", "c3"]
    fx.write_lhe(tmp_path / "z.lhe", 6, names=names)
    manifest = fx.write_manifest(tmp_path, weights=names)
    header = handoff(manifest, tmp_path / "h.parquet", seed=5, progress=False)
    events, _ = read_events(tmp_path / "h.parquet")
    # the selection is not the point here: every event goes to bin i % 2 of one region
    n = len(events)
    selected = ak.with_field(events, ak.zip({"SR": np.arange(n, dtype=np.int8) % 2}, depth_limit=1), "regions")
    head = {**header, "format": SELECTED, "luminosity_ifb": LUMI, "n_selected": n,
            "regions": {"SR": {"bins": 2, "variable": None}}}
    write_events(tmp_path / "selected.parquet", selected, head)
    spec = load_spec(write_spec(tmp_path / "m.yaml", {"name": "m", "parameters": {"c": {}}, "factors": [
        {"morphing": {"parameters": ["c"], "degree": 1, "basis": [
            {"weight": f"c{k}", "values": {"c": k}} for k in (1, 2, 3)]}}]}))
    yields, diag = reweight_selected(tmp_path / "selected.parquet", spec, {"c": 2.5}, point="T")
    w0 = ak.to_numpy(events.weight)
    target = w0 * 1.25 * (1 + 0.01 * np.arange(n))
    norm = LUMI * 1000 * header["xsec_pb"] * header["br_factor"] / header["sum_weights"]
    for b in (0, 1):
        assert yields["regions"]["SR"]["yields"][b] == pytest.approx(norm * target[np.arange(n) % 2 == b].sum(), rel=1e-9)
    assert diag["r_min"] == pytest.approx(1.25, rel=1e-9) and diag["r_max"] == pytest.approx(1.25 * 1.05, rel=1e-9)
    # a single named weight
    one, _ = reweight_selected(tmp_path / "selected.parquet", load_spec(write_spec(tmp_path / "w.yaml", {
        "name": "w", "factors": [{"weight": {"name": "c2"}}]})), {}, point="T")
    assert one["regions"]["SR"]["yields"][0] == pytest.approx(
        norm * (w0 * 1.2 * (1 + 0.01 * np.arange(n)))[::2].sum(), rel=1e-9)


def test_report_lists_reweighted_points_and_flags_low_ess(tmp_path: Path) -> None:
    from recastflow.report.assemble import _reweight_section

    sel = write_selected(tmp_path / "s.parquet", modes=MODES)
    files = []
    for name, doc in (("ok", {"name": "ok", "factors": [{"expression": {"ratio": "1"}}],
                              "diagnostics": {"max_weight_share": 0.5}}),
                      ("bad", {"name": "bad", "factors": [{"expression": {"ratio": "x1 ** 4"}}],
                               "diagnostics": {"max_weight_share": 0.5, "min_ess_fraction": 0.9}})):
        _, diag = reweight_selected(sel, load_spec(write_spec(tmp_path / f"{name}.yaml", doc)), {}, point=name)
        diag["source"]["grid_point"] = "G/SRC"
        (tmp_path / "G" / name).mkdir(parents=True)
        (tmp_path / "G" / name / "diagnostics.json").write_text(json.dumps(diag))
        files.append(tmp_path / "G" / name / "diagnostics.json")
    section = _reweight_section(files, [])
    assert [r["point"] for r in section.table] == ["G/ok", "G/bad"]
    assert [r["status"] for r in section.table] == ["trusted", "flagged"]
    assert "below min_ess_fraction 0.9" in section.table[1]["issues"][0] and "1 flagged" in section.text


@pytest.mark.slow
def test_workflow_reweighted_grid_feeds_patch(tmp_path: Path) -> None:
    """A grid of reweighted points is a set of Snakemake targets whose yields go into the PatchSet."""
    import shutil

    from test_frontend_workflow import front_end_project
    from test_workflow import snakemake

    project = front_end_project(tmp_path, n_events=300, chunks=1)
    shutil.copytree(REPO / "config" / "reweighting", project / "config" / "reweighting")
    grid = yaml.safe_load((REPO / "config" / "signals" / "TChiWH_1Lbb_BR.yaml").read_text())
    grid["name"] = "RW"
    for p in grid["points"]:
        p["reweight"]["from"] = "TINY/TChiWH_700_0"
    (project / "config" / "signals" / "RW.yaml").write_text(yaml.safe_dump(grid, allow_unicode=True))
    (project / "config" / "config.yaml").write_text(yaml.safe_dump({"grids": ["TINY", "RW"], "checks": False}))
    proc = snakemake(project, "results/patch/RW/patchset.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    patchset = json.loads((project / "results/patch/RW/patchset.json").read_text())
    assert [p["metadata"]["name"] for p in patchset["patches"]] == ["TChiWH_700_0_BRh075", "TChiWH_700_0_BRh050"]
    source = json.loads((project / "results/select/TINY/TChiWH_700_0/yields.json").read_text())
    for name, br in (("TChiWH_700_0_BRh075", 0.75), ("TChiWH_700_0_BRh050", 0.5)):
        got = json.loads((project / f"results/reweight/RW/{name}/yields.json").read_text())
        for region, reg in source["regions"].items():
            assert got["regions"][region]["yields"] == pytest.approx([br * y for y in reg["yields"]], rel=1e-12)
        diag = json.loads((project / f"results/reweight/RW/{name}/diagnostics.json").read_text())
        assert diag["parameters"] == {"BR_h": br} and diag["source"]["grid_point"] == "TINY/TChiWH_700_0"
    # a reweighted point whose source grid is not in the run stops the workflow before any job
    (project / "config" / "config.yaml").write_text(yaml.safe_dump({"grids": ["RW"], "checks": False}))
    proc = snakemake(project, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "points[0].reweight.from: grid 'TINY' is not among the run's grids" in out
