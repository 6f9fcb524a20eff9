"""Real ATLAS full likelihoods shipped with the default bundles: published numbers reproduced."""

from __future__ import annotations

import pyhf
import pytest

from recastflow.analyses.bundle import load_analysis, load_grid
from recastflow.stats.inference import Likelihood
from recastflow.stats.limits import PointResult, evaluate_point
from recastflow.stats.patching import apply_patch, patch_from_yields, point_patch, yields_from_patch

from conftest import REPO

ANALYSES = REPO / "config" / "analyses"
SIGNALS = REPO / "config" / "signals"

# scikit-hep/pyhf tests/test_regression.py at v0.7.6 (b500270c): CLs_obs, CLs_exp band, rtol (obs, exp)
PYHF_REGRESSION = {
    ("sbottom_RegionA", "sbottom_1300_205_60"): (
        0.24443627759085326,
        [0.09022509053507759, 0.1937839194960632, 0.38432344933992, 0.6557757334303531, 0.8910420971601081],
        (1e-5, 1e-5)),
    ("sbottom_RegionA", "sbottom_1400_950_60"): (
        0.021373283911064852,
        [0.0026445531093281147, 0.013976126501170727, 0.06497105816950004, 0.23644030478043676, 0.5744785776763938],
        (1e-5, 1e-5)),
    ("sbottom_RegionA", "sbottom_1500_850_60"): (
        0.045367205665400624,
        [0.00598431785676406, 0.026102240062850574, 0.10093641492218848, 0.31019245951964736, 0.6553623337518385],
        (1e-5, 1e-5)),
    ("sbottom_RegionB", "sbottom_1400_550_60"): (
        0.9744675266677597,
        [0.9338879894557114, 0.9569045303300702, 0.9771296335437559, 0.9916370124133669, 0.9983701133999316],
        (1e-5, 1e-5)),
    ("sbottom_RegionC", "sbottom_1600_850_60"): (
        0.711023707425625,
        [0.2955492909588046, 0.4446885457298284, 0.6371473864200973, 0.8336149623750603, 0.9585901381554178],
        (1e-5, 1e-5)),
}


def load(grid_name: str, point_name: str):
    grid = load_grid(grid_name, SIGNALS)
    analysis = load_analysis(grid.analysis, ANALYSES)
    wsref = analysis.workspace(grid.workspace)
    bkg = wsref.load()
    point = grid.point(point_name)
    return grid, analysis, wsref, bkg, point, point_patch(point, grid, bkg, wsref, analysis)


def cls_of(bkg, ops):
    ws = pyhf.Workspace(apply_patch(bkg, ops, "test"))
    model = ws.model()
    return Likelihood(model, ws.data(model)).cls(1.0)


def test_bundle_references_are_pyhfs():
    """The regression check of the default workflow uses exactly pyhf's numbers and tolerances."""
    refs = {(r.grid, r.point, r.quantity): r for r in load_analysis("ATLAS-SUSY-2018-31", ANALYSES).references}
    for (grid, point), (obs, exp, (rtol_obs, rtol_exp)) in PYHF_REGRESSION.items():
        assert refs[(grid, point, "cls_obs")].value == obs and refs[(grid, point, "cls_obs")].rtol == rtol_obs
        assert list(refs[(grid, point, "cls_exp")].value) == exp and refs[(grid, point, "cls_exp")].rtol == rtol_exp


@pytest.mark.slow
@pytest.mark.parametrize("key", list(PYHF_REGRESSION), ids=[p for _, p in PYHF_REGRESSION])
def test_pyhf_regression_reproduced(key):
    obs, exp, (rtol_obs, rtol_exp) = PYHF_REGRESSION[key]
    *_, bkg, _, ops = load(*key)
    r = cls_of(bkg, ops)
    assert r.obs == pytest.approx(obs, rel=rtol_obs)
    assert list(r.exp) == pytest.approx(exp, rel=rtol_exp)


@pytest.mark.slow
@pytest.mark.parametrize("key", [("sbottom_RegionA", "sbottom_1300_205_60"), ("sbottom_RegionC", "sbottom_800_450_60")])
def test_roundtrip_published_patch_through_yields(key):
    """Yields extracted from a published ATLAS patch and re-patched give the same CLs (rel 1e-6)."""
    _, analysis, wsref, bkg, point, ops = load(*key)
    yields = yields_from_patch(ops, bkg, wsref, analysis, point.patch)
    rebuilt = patch_from_yields(yields, bkg, wsref, analysis, yields["sample"])
    a, b = cls_of(bkg, ops), cls_of(bkg, rebuilt)
    assert b.obs == pytest.approx(a.obs, rel=1e-6)
    assert list(b.exp) == pytest.approx(list(a.exp), rel=1e-6)


# Official ATLAS 95% CL upper limits on sigma(stau stau) (HEPData ins1765529, "X-section U.L 1")
@pytest.mark.slow
@pytest.mark.parametrize("point_name, official_pb", [("DS_200_1", 1.2325e-02), ("DS_400_1", 2.0161e-03)])
def test_stau_official_cross_section_limits(point_name, official_pb):
    grid, analysis, wsref, bkg, point, ops = load("staus_combined", point_name)
    rec = PointResult(analysis.id, grid.name, point.name, grid.workspace, point.values, point.xsec_pb, point.xsec_source)
    evaluate_point(bkg, ops, rec, upper_limit=True)
    assert rec.status == "trusted", rec.issues
    assert rec.xsec_ul_obs_pb == pytest.approx(official_pb, rel=0.01)
