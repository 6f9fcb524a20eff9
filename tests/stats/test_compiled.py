"""The compiled, shared likelihood (method "fast") against pyhf itself on published ATLAS workspaces."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import jsonpatch
import numpy as np
import pyhf
import pytest

from recastflow.stats.compiled import LikelihoodCompiler, Objective, _agrees, pad_null_modifiers, structure_key
from recastflow.core.config import read_document
from recastflow.stats.inference import FastLikelihood, Likelihood

from conftest import published_file, published_patchset

ROOT = Path(__file__).resolve().parents[2]
# the published workspaces and patches come through the fetch layer (cache, then the mirror), never the repository
ONELBB_POINTS = ["300_150", "500_0", "700_0", "700_400", "750_100", "800_0", "900_0"]


def onelbb() -> Path:
    """The 1Lbb background-only workspace (HEPData ins1755298, re-serialised), fetched."""
    return published_file("ATLAS-SUSY-2019-08", "source:bkgonly")


def onelbb_patch(point: str) -> Path:
    """ATLAS's 1Lbb signal patch of a point (``<m(C1/N2)>_<m(N1)>``), fetched."""
    return published_file("ATLAS-SUSY-2019-08", f"source:patch_{point}")


@pytest.fixture(scope="module")
def sbottom():
    bkg = read_document(published_file("ATLAS-SUSY-2018-31", "source:likelihoods/RegionA/BkgOnly.json"))
    patchset = published_patchset("ATLAS-SUSY-2018-31", "RegionA", ["m_sbottom", "m_neutralino2", "m_neutralino1"],
                                  "RegionA")
    patches = {p["metadata"]["name"]: p["patch"] for p in patchset["patches"]}
    return bkg, patches


@pytest.fixture(scope="module")
def compiler():
    # one compiler for the module, as one limits job has: compiled once per structure
    return LikelihoodCompiler()


def build(bkg, ops):
    ws = pyhf.Workspace(jsonpatch.apply_patch(bkg, ops), validate=False)
    model = ws.model(validate=False)
    return model, np.asarray(ws.data(model))


@contextlib.contextmanager
def converged_pyhf(backend: str = "jax"):
    """pyhf with its optimiser converged (tolerance 1e-12 instead of SLSQP's default 1e-6), by default on
    its JAX backend for exact gradients (with the numpy backend's finite differences SLSQP stops short of
    the minimum: on 1Lbb (750, 100) its expected CLs is 2e-5 away, relative, from the JAX backend's)."""
    previous = pyhf.get_backend()
    pyhf.set_backend(backend, pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    try:
        yield
    finally:
        pyhf.set_backend(*previous)


def converged_pyhf_hypotest(model, data):
    """pyhf's own hypotest at mu=1, converged (see converged_pyhf)."""
    with converged_pyhf():
        obs, exp = pyhf.infer.hypotest(1.0, pyhf.tensorlib.astensor(data), model, test_stat="qtilde",
                                       return_expected_set=True)
    return [float(obs)] + [float(e) for e in exp]


def assert_cls_equal(ours, ref):
    # the issue's criterion: relative 1e-5, or absolute 1e-7 where CLs is tiny
    for a, b in zip(ours, ref):
        assert abs(a - b) <= max(1e-5 * abs(b), 1e-7), (ours, ref)


def test_compiled_value_and_gradient_equal_pyhf(sbottom, compiler):
    bkg, patches = sbottom
    model, data = build(bkg, patches["sbottom_1300_205_60"])
    objective = compiler.objective(model, data)
    rng = np.random.default_rng(7)
    init = np.asarray(model.config.suggested_init())
    for _ in range(3):
        pars = init + rng.normal(0.0, 0.05, init.size)
        value, grad = objective.value_and_grad(pars, objective.as_data(data))
        ref = float(-2 * model.logpdf(pars, data)[0])
        assert value == pytest.approx(ref, rel=1e-12)
        # gradient against central differences of pyhf's own numpy logpdf
        for i in rng.choice(init.size, 5, replace=False):
            step = np.zeros_like(pars)
            step[i] = 1e-6
            fd = (-2 * model.logpdf(pars + step, data)[0] + 2 * model.logpdf(pars - step, data)[0]) / 2e-6
            assert grad[i] == pytest.approx(fd, rel=1e-4, abs=1e-5)


def test_arrays_left_out_of_the_inputs_are_never_read(sbottom, compiler):
    # the executable's inputs are the arrays pyhf's logpdf reads; changing any other array the model
    # holds leaves pyhf's own likelihood as it was
    from recastflow.stats.compiled import _find_slots, _resolve

    bkg, patches = sbottom
    model, data = build(bkg, patches["sbottom_900_250_60"])
    inputs = {(s.path, s.attr) for s in compiler.objective(model, data)._exe.slots}
    left_out = [s for s in _find_slots(model) if (s.path, s.attr) not in inputs]
    assert inputs and left_out
    pars = np.asarray(model.config.suggested_init()) + 0.1
    before = float(model.logpdf(pars, data)[0])
    for slot in left_out:
        owner = _resolve(model, slot.path)
        saved = getattr(owner, slot.attr)
        setattr(owner, slot.attr, saved * 1.5 + 0.1)
        try:
            assert float(model.logpdf(pars, data)[0]) == before, slot
        finally:
            setattr(owner, slot.attr, saved)


def test_one_compilation_per_structure(sbottom):
    bkg, patches = sbottom
    compiler = LikelihoodCompiler()
    for name in ("sbottom_1300_205_60", "sbottom_900_250_60", "sbottom_1500_850_60"):
        compiler.objective(*build(bkg, patches[name]))
    assert (compiler.compiled, compiler.bound) == (1, 3)
    # this published point has no signal in the ttbar control region: another structure
    compiler.objective(*build(bkg, patches["sbottom_700_680_550"]))
    assert (compiler.compiled, compiler.bound) == (2, 4)


def test_guard_rejects_another_points_numbers(sbottom, compiler):
    bkg, patches = sbottom
    model_a, data_a = build(bkg, patches["sbottom_1300_205_60"])
    model_b, data_b = build(bkg, patches["sbottom_900_250_60"])
    objective_a = compiler.objective(model_a, data_a)
    assert _agrees(objective_a, model_a, data_a)
    # the executable evaluated with point A's arrays is not point B's likelihood: the guard says so
    assert not _agrees(Objective(objective_a._exe, objective_a._state), model_b, data_b)


@pytest.mark.parametrize("name", [
    "sbottom_1300_205_60",
    pytest.param("sbottom_750_745_60", marks=pytest.mark.slow),  # CLs ~ 4e-6
    pytest.param("sbottom_700_680_550", marks=pytest.mark.slow),  # the second structure
])
def test_fast_cls_equal_converged_pyhf(sbottom, compiler, name):
    bkg, patches = sbottom
    model, data = build(bkg, patches[name])
    lik = FastLikelihood(model, data, compiler.objective(model, data))
    r = lik.cls(1.0)
    assert_cls_equal([r.obs, *r.exp], converged_pyhf_hypotest(model, data))
    assert not lik.issues()


def test_fast_free_asimov_fit_is_exact(sbottom, compiler):
    # the free fit to the background-only Asimov data is not run: its minimum is known. A real fit agrees.
    bkg, patches = sbottom
    model, data = build(bkg, patches["sbottom_1300_205_60"])
    lik = FastLikelihood(model, data, compiler.objective(model, data))
    analytic = lik.free_asimov.twice_nll
    pars, fitted = pyhf.infer.mle.fit(lik.asimov_data, model, return_fitted_val=True, tolerance=1e-12)
    assert analytic <= float(fitted) + 1e-9
    assert analytic == pytest.approx(float(fitted), abs=1e-6)


@pytest.mark.slow
def test_fast_upper_limit_is_pyhfs_root_within_half_a_percent(sbottom, compiler):
    # the criterion (0.5%) checked against pyhf's own CLs, not against a scan (its toms748 costs 4 min here;
    # benchmarks/bench_limits.py compares with the scan): pyhf's CLs crosses the level between 0.995 and
    # 1.005 times each of our limits, observed and every expected quantile
    bkg, patches = sbottom
    model, data = build(bkg, patches["sbottom_1400_950_60"])
    ul = FastLikelihood(model, data, compiler.objective(model, data)).upper_limit()
    with converged_pyhf("numpy"):
        for k, limit in enumerate([ul.obs, *ul.exp]):
            below, above = (pyhf.infer.hypotest(limit * f, data, model, test_stat="qtilde", return_expected_set=True)
                            for f in (0.995, 1.005))
            pick = (lambda r: float(r[0])) if k == 0 else (lambda r, k=k: float(r[1][k - 1]))
            assert pick(below) > 0.05 > pick(above), (k, limit, pick(below), pick(above))


def build_padded(bkg, ops, pad=pad_null_modifiers):
    ws = pyhf.Workspace(pad(jsonpatch.apply_patch(bkg, ops)), validate=False)
    model = ws.model(validate=False)
    return model, np.asarray(ws.data(model))


@pytest.mark.slow
@pytest.mark.parametrize("point", ["700_0", "750_100"])  # 750_100: where pyhf's numpy backend is 2e-5 off
def test_fast_equals_converged_pyhf_on_1lbb(point):
    bkg = read_document(onelbb())
    ops = read_document(onelbb_patch(point))
    # as the limits stage runs it: the padded model, compared with pyhf on the published one
    padded, padded_data = build_padded(bkg, ops)
    lik = FastLikelihood(padded, padded_data, LikelihoodCompiler().objective(padded, padded_data))
    r = lik.cls(1.0)
    assert_cls_equal([r.obs, *r.exp], converged_pyhf_hypotest(*build(bkg, ops)))


@pytest.mark.slow
def test_fast_fits_reach_pyhfs_minimum_or_below_on_1lbb_500_0():
    # the one published 1Lbb point where fast and converged pyhf differ beyond the criterion (observed CLs
    # 1.7e-7 apart): pyhf's fits to data, converged on either backend, never end below ours (at mu=1 its
    # fit stops 2.7e-3 above), so the difference is pyhf's optimiser stopping short, not ours
    bkg = read_document(onelbb())
    ops = read_document(onelbb_patch("500_0"))
    padded, padded_data = build_padded(bkg, ops)
    lik = FastLikelihood(padded, padded_data, LikelihoodCompiler().objective(padded, padded_data))
    lik.cls(1.0)
    ours = {f.label: f.twice_nll for f in lik.fits}
    model, data = build(bkg, ops)
    with converged_pyhf():
        data = pyhf.tensorlib.astensor(data)
        _, free = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
        _, fixed = pyhf.infer.mle.fixed_poi_fit(1.0, data, model, return_fitted_val=True)
    assert ours["free fit to data"] <= float(free) + 1e-9
    assert ours["fixed-mu fit to data at mu=1"] <= float(fixed) + 1e-9


@pytest.mark.parametrize("grid", [False, True], ids=["own-names", "names-of-the-grid"])
def test_padding_keeps_every_published_1lbb_likelihood(grid):
    # each published 1Lbb signal carries its own subset of the systematics; padded, the likelihood is the same
    bkg = read_document(onelbb())
    rng = np.random.default_rng(11)
    keys = set()
    # as a limits job pads: also with the names the points before had (the compiler remembers them)
    pad = LikelihoodCompiler().pad if grid else pad_null_modifiers
    for path in [onelbb_patch(p) for p in ONELBB_POINTS]:
        ops = read_document(path)
        spec = jsonpatch.apply_patch(bkg, ops)
        before = repr(spec)
        model, data = build(bkg, ops)
        padded, padded_data = build_padded(bkg, ops, pad)
        assert repr(spec) == before  # the input is not modified
        assert sorted(padded.config.par_names) == sorted(model.config.par_names)  # no parameter added
        # pyhf orders parameters by first appearance: compare by name
        order = [model.config.par_names.index(n) for n in padded.config.par_names]
        assert sorted(order) == list(range(len(order)))
        assert np.array_equal(padded_data[:padded.config.nmaindata], data[:model.config.nmaindata])
        lo, hi = np.asarray(model.config.suggested_bounds()).T
        init = np.asarray(model.config.suggested_init())
        for _ in range(3):
            pars = init + rng.uniform(-0.5, 0.5, init.size) * np.minimum(hi - init, init - lo).clip(0, 1)
            assert float(padded.logpdf(pars[order], padded_data)[0]) == pytest.approx(
                float(model.logpdf(pars, data)[0]), rel=1e-13)
        keys.add(structure_key(padded))
    # on their own names six of the seven share one layout: (300, 150) has a systematic of its own
    # (EG_SCALE_AF2, a histosys of the others); padded with the names of the points before it (it comes
    # first), the others get it too and all seven share one
    assert len(keys) == (1 if grid else 2)


def test_padding_adds_only_null_normsys_and_histosys_to_the_signal():
    spec = {
        "channels": [{"name": "SR", "samples": [
            {"name": "bkg", "data": [10.0, 5.0], "modifiers": [
                {"name": "jes", "type": "histosys", "data": {"hi_data": [11.0, 6.0], "lo_data": [9.0, 4.0]}},
                {"name": "xs", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                {"name": "staterror_SR", "type": "staterror", "data": [1.0, 1.0]}]},
            {"name": "sig", "data": [2.0, 1.0], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "xs", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}}]}]}],
        "observations": [{"name": "SR", "data": [12.0, 6.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    padded = pad_null_modifiers(spec)
    bkg, sig = padded["channels"][0]["samples"]
    assert bkg is spec["channels"][0]["samples"][0]  # not the signal: untouched
    assert sig["modifiers"][:2] == spec["channels"][0]["samples"][1]["modifiers"]
    assert sig["modifiers"][2:] == [{"name": "jes", "type": "histosys", "data": {"hi_data": [2.0, 1.0],
                                                                                "lo_data": [2.0, 1.0]}}]
    model, original = pyhf.Workspace(padded).model(), pyhf.Workspace(spec).model()
    data, original_data = pyhf.Workspace(padded).data(model), pyhf.Workspace(spec).data(original)
    assert sorted(model.config.par_names) == sorted(original.config.par_names)
    for values in ({"mu": 1.0, "jes": 0.3, "xs": -0.7, "staterror_SR[0]": 1.0, "staterror_SR[1]": 1.1},
                   {"mu": 0.2, "jes": -1.5, "xs": 2.0, "staterror_SR[0]": 0.9, "staterror_SR[1]": 1.0}):
        pars = [values[n] for n in original.config.par_names]
        by_name = dict(zip(original.config.par_names, pars))
        ours = float(model.logpdf([by_name[n] for n in model.config.par_names], data)[0])
        assert ours == pytest.approx(float(original.logpdf(pars, original_data)[0]), rel=1e-14)


@pytest.mark.slow
def test_padded_1lbb_points_share_one_compilation():
    bkg = read_document(onelbb())
    compiler = LikelihoodCompiler()
    for point in ("300_150", "500_0", "700_400", "900_0"):
        compiler.objective(*build_padded(bkg, read_document(onelbb_patch(point)), compiler.pad))
    assert (compiler.compiled, compiler.bound) == (1, 4)


def test_exact_mode_is_pyhf_hypotest_bit_for_bit(sbottom):
    # the reference mode runs pyhf's own fits: identical numbers at pyhf's default settings
    bkg, patches = sbottom
    model, data = build(bkg, patches["sbottom_1300_205_60"])
    obs, exp = pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde", return_expected_set=True)
    r = Likelihood(model, data).cls(1.0)
    assert [r.obs, *r.exp] == [float(obs)] + [float(e) for e in exp]
    assert math.isfinite(r.obs)


_CACHE_PROBE = """
import json, sys
from recastflow.stats.compiled import _jax
jax = _jax()
print(json.dumps(jax.config.jax_compilation_cache_dir))
"""


@pytest.mark.parametrize("writable", [True, False])
def test_compilations_are_kept_in_recastflows_cache_when_it_can_be_written(tmp_path, writable):
    import json
    import os
    import subprocess
    import sys

    root = tmp_path / "cache"
    if not writable:
        root.write_text("")  # a file where the folder should be: the cache is left unused, nothing fails
    env = {**os.environ, "RECASTFLOW_CACHE": str(root)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True, check=True)
    folder = json.loads(out.stdout)
    assert folder == (str(root / "jax") if writable else None)
    assert out.stderr == ""
