"""Issue 18: every number right or visibly untrusted, on likelihoods nobody here has seen.

The fast method's compiled likelihood against pyhf for every modifier type and interpolation code,
the fit trap (pyhf's default fit stops at its start and reports success), fit-quality checks,
verification fits and the stated fallback of method.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import jax
import numpy as np
import pyhf
import pytest

from recastflow.stats.compiled import CompileMismatch, LikelihoodCompiler, _agrees, _compile
from recastflow.stats.inference import DECREMENT_LIMIT, FastLikelihood, FitQuality, Likelihood, newton_step
from recastflow.stats.limits import PointResult, evaluate_point, summary
from synthetic_workspaces import FEATURES, HISTOSYS_CODES, NORMSYS_CODES, feature_workspace, trap_workspace

CODES = [("code4", "code4p"), ("code1", "code0"), ("code4", "code2")]
assert {c[0] for c in CODES} == set(NORMSYS_CODES) and {c[1] for c in CODES} == set(HISTOSYS_CODES)


def model_and_data(spec, codes=("code4", "code4p")):
    settings = {"normsys": {"interpcode": codes[0]}, "histosys": {"interpcode": codes[1]}}
    ws = pyhf.Workspace(spec)
    model = ws.model(modifier_settings=settings)
    return model, np.asarray(ws.data(model)), settings


def pyhf_jax_value_and_grad(spec, settings, pars, data):
    """pyhf's own -2 log L and its gradient, on pyhf's JAX backend (a model built there)."""
    previous = pyhf.get_backend()
    pyhf.set_backend("jax", precision="64b")
    try:
        model = pyhf.Workspace(spec).model(modifier_settings=settings)
        value, grad = jax.value_and_grad(lambda p: -2.0 * model.logpdf(p, jax.numpy.asarray(data))[0])(
            jax.numpy.asarray(pars))
        return float(value), np.asarray(grad)
    finally:
        pyhf.set_backend(*previous)


def converged_reference(spec):
    """pyhf's hypotest at mu=1 with exact (JAX) gradients and SLSQP converged to 1e-12."""
    previous = pyhf.get_backend()
    pyhf.set_backend("jax", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    try:
        ws = pyhf.Workspace(spec)
        model = ws.model()
        obs, exp = pyhf.infer.hypotest(1.0, pyhf.tensorlib.astensor(ws.data(model)), model, test_stat="qtilde",
                                       return_expected_set=True)
        return [float(obs)] + [float(e) for e in exp]
    finally:
        pyhf.set_backend(*previous)


def record():
    return PointResult("SYN", "grid", "p", "ws", {}, None, None)


@pytest.mark.parametrize("codes", CODES, ids=lambda c: "-".join(c))
@pytest.mark.parametrize("features", [(f,) for f in FEATURES] + [FEATURES], ids=lambda f: "+".join(f))
def test_compiled_value_and_gradient_equal_pyhf_for_every_modifier(features, codes):
    spec = feature_workspace(features)
    model, data, settings = model_and_data(spec, codes)
    objective = LikelihoodCompiler().objective(model, data)
    rng = np.random.default_rng(3)
    init = np.asarray(model.config.suggested_init())
    lo, hi = np.asarray(model.config.suggested_bounds()).T
    for _ in range(3):
        pars = np.clip(init + 0.3 * rng.normal(size=init.size), lo + 1e-3, hi - 1e-3)
        value, grad = objective.value_and_grad(pars, objective.as_data(data))
        ref_value, ref_grad = pyhf_jax_value_and_grad(spec, settings, pars, data)
        assert abs(value - ref_value) <= 1e-10 * max(1.0, abs(ref_value))
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10)


def test_trap_is_real_pyhf_default_fit_stays_at_its_start():
    model, data, _ = model_and_data(trap_workspace(1e-5))
    start = float(-2 * model.logpdf(model.config.suggested_init(), data)[0])
    _, end = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert abs(float(end) - start) < 1e-3  # pyhf reports success here...
    lik = FastLikelihood(model, data, LikelihoodCompiler().objective(model, data))
    assert lik.free_data.twice_nll < start - 10  # ...16 units above the minimum


def test_guard_accepts_the_rounding_of_stiff_shapesys_and_compiles_once():
    # tau = 1e10: numpy's and XLA's Poisson terms differ by a constant 1e-6 (rounding of 1e11-sized terms)
    compiler = LikelihoodCompiler()
    for k in range(3):
        spec = trap_workspace(1e-5)
        for channel in spec["channels"]:
            signal = channel["samples"][2]
            signal["data"] = [signal["data"][0] * (1 + 0.3 * k)]
            signal["modifiers"][1]["data"] = [signal["modifiers"][1]["data"][0] * (1 + 0.5 * k)]
        model, data, _ = model_and_data(spec)
        compiler.objective(model, data)
    assert compiler.compiled == 1 and compiler.bound == 3


def test_guard_still_rejects_another_points_numbers_on_stiff_workspaces():
    model_a, data_a, _ = model_and_data(trap_workspace(1e-5))
    spec_b = trap_workspace(1e-5)
    spec_b["channels"][0]["samples"][2]["data"] = [spec_b["channels"][0]["samples"][2]["data"][0] * 1.01]
    model_b, data_b, _ = model_and_data(spec_b)
    exe = _compile(model_a, data_a)
    assert _agrees(LikelihoodCompiler._bind(exe, model_a), model_a, data_a)
    assert not _agrees(LikelihoodCompiler._bind(exe, model_a), model_b, data_b)


@pytest.mark.parametrize("rel", [1e-4, 1e-5])
def test_exact_method_never_trusts_the_trap_and_says_how_to_converge(rel):
    result = evaluate_point(trap_workspace(rel), [], record(), upper_limit=False, method="exact")
    assert result.status == "flagged" and result.method == "exact"
    text = " | ".join(result.issues)
    assert "stopped short of the minimum" in text
    assert "the free fit to data ended above the fit with mu fixed to 0" in text
    assert "did not reach the minimum" in text  # the verification fit found the lower minimum
    assert "fit: {tolerance: 1e-10}" in result.issues[-1]


def test_fast_method_gives_the_converged_values_on_the_trap():
    spec = trap_workspace(1e-4)
    result = evaluate_point(spec, [], record(), upper_limit=False, method="fast")
    assert result.status == "trusted", result.issues
    ref = converged_reference(spec)
    for ours, theirs in zip([result.cls_obs, *result.cls_exp], ref):
        assert abs(ours - theirs) <= max(1e-5 * abs(theirs), 1e-7)
    assert any(f["label"].startswith("verification") for f in result.fits)  # CLs 0.07: near 0.05, verified


def reference_minima(spec):
    """-2 log L of pyhf's own converged fits that CLs at mu=1 rests on (``benchmarks/validate_published.py``)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "validate_published.py"
    module_spec = importlib.util.spec_from_file_location("validate_published", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    fits = module.reference_fits(spec)
    return {label: fits[label] for label in ("free fit to data", "fixed-mu fit to data at mu=1",
                                             "background-only fit to data (Asimov)", "fixed-mu fit to Asimov at mu=1")}


def test_fast_method_on_a_stiffer_trap_is_right_or_flagged():
    """Trusted only if right: CLs as converged pyhf's to 1e-5, or within what an unflagged number may carry.

    That contract is ``DECREMENT_LIMIT``: a fit may end up to 1e-3 above its minimum unflagged, which moves CLs
    by a few 1e-4 relative. On one CPU (the tenth session's machine) the fast fit at mu = 1 to data ended 6e-5
    above pyhf's converged minimum on this stiffer trap, and CLs differed from pyhf's by 6e-5 relative; on
    another it agreed to 1e-7. The trap itself (a fit stuck 16 units above the minimum) fails both ways.
    """
    spec = trap_workspace(1e-5)
    result = evaluate_point(spec, [], record(), upper_limit=False, method="fast")
    if result.status == "flagged":
        return
    ref = converged_reference(spec)
    ours = [result.cls_obs, *result.cls_exp]
    if all(abs(a - b) <= max(1e-5 * abs(b), 1e-7) for a, b in zip(ours, ref)):
        return
    fits = {f["label"]: f["twice_nll"] for f in result.fits if not f["label"].startswith("verification")}
    for label, theirs in reference_minima(spec).items():
        (mine,) = [v for k, v in fits.items() if k.startswith(label)]
        assert mine <= theirs + DECREMENT_LIMIT, (label, mine, theirs)
    assert all(abs(a - b) <= 3e-4 * abs(b) for a, b in zip(ours, ref)), (ours, ref)


def test_a_fallback_of_method_is_stated_and_flags_the_point(monkeypatch):
    def refuse(self, model, data, source=""):
        raise CompileMismatch(f"the compiled likelihood does not reproduce pyhf's for {source}")

    monkeypatch.setattr(LikelihoodCompiler, "objective", refuse)
    spec = feature_workspace(("normsys", "staterror", "lumi"))
    result = evaluate_point(spec, [], record(), upper_limit=False, method="fast")
    assert result.method == "exact-converged" and result.fallback.startswith("fast -> exact-converged")
    assert result.status == "flagged" and result.issues[0] == result.fallback
    assert "tolerance 1e-10" in result.software["optimizer"]
    assert summary([result.to_dict()])["fallback"] == 1
    failed = evaluate_point(spec, [], record(), upper_limit=False, method="fast", fallback="none")
    assert failed.status == "failed" and failed.cls_obs is None and "fallback is 'none'" in failed.issues[0]


def test_fit_quality_says_what_went_wrong_in_words():
    rose = FitQuality("free fit to data", True, 3, 319.3278, (), False, "ok", start_twice_nll=319.3259, decrement=0.0)
    assert rose.issues() == ["free fit to data: -2 log L rose from 319.326 at the starting point to 319.328; "
                             "the fit did not work"]
    stuck = FitQuality("free fit to data", True, 1, 319.3259, (), False, "ok", start_twice_nll=319.3259,
                       decrement=47.0, shift_sigmas=1e-7)
    assert "did not move from its starting point" in stuck.issues()[0] and "47" in stuck.issues()[0]
    fine = FitQuality("free fit to data", True, 30, 272.30, (), True, "ok", start_twice_nll=319.3, decrement=1e-9)
    assert fine.issues() == []


def test_newton_step_ignores_slopes_into_a_bound_the_parameter_sits_on():
    lo, hi = np.array([0.0, -5.0]), np.array([10.0, 5.0])
    free = np.array([True, True])
    x = np.array([0.0, 0.1])
    decrement, shift = newton_step(x, np.array([1.0, 0.0]), np.array([3.0, 0.0]), np.array([2.0, 2.0]), lo, hi, free)
    assert decrement == 0.0  # mu-hat at 0 pushing down is the bound's business, not a fit failure
    assert shift == pytest.approx(1.0)
    decrement, _ = newton_step(x, x, np.array([-3.0, 0.2]), np.array([2.0, 2.0]), lo, hi, free)
    assert decrement == pytest.approx(0.5 * (9 + 0.04) / 2)
    assert math.isinf(newton_step(x, x, np.array([np.nan, 0.0]), np.ones(2), lo, hi, free)[0])


def test_clean_models_pass_every_check_with_both_methods():
    spec = feature_workspace(FEATURES)
    model, data, _ = model_and_data(spec)
    for lik in (Likelihood(model, data), FastLikelihood(model, data, LikelihoodCompiler().objective(model, data))):
        lik.cls(1.0)
        assert lik.issues() == []
        assert lik.verify(LikelihoodCompiler().objective(model, data)) == []
