"""The wall-clock bound of a point's fits (issue 26): a fit that runs too long stops with the reason, never hangs."""

import math
import time

import pyhf
import pytest

from recastflow.stats.compiled import LikelihoodCompiler
from recastflow.stats.inference import DEFAULT_TIMEOUT_S, FastLikelihood, FitTimeout, Likelihood
from recastflow.stats.limits import PointResult, evaluate_point


def simple():
    model = pyhf.simplemodels.uncorrelated_background(signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0])
    return model, [51.0, 48.0] + model.config.auxdata


def slow_twice_nll(monkeypatch, seconds):
    """Make every evaluation of pyhf's -2 log L take ``seconds`` (a likelihood far too slow to finish)."""
    real = pyhf.infer.mle.twice_nll
    calls = []

    def slow(pars, data, pdf):
        calls.append(time.monotonic())
        time.sleep(seconds)
        return real(pars, data, pdf)

    monkeypatch.setattr(pyhf.infer.mle, "twice_nll", slow)
    return calls


def test_a_fit_is_stopped_inside_its_iterations_not_only_between_fits(monkeypatch):
    # one evaluation takes 50 ms and a fit needs dozens: the bound of 0.3 s falls inside the first fit
    model, data = simple()
    calls = slow_twice_nll(monkeypatch, 0.05)
    lik = Likelihood(model, data, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(FitTimeout) as err:
        lik.cls(1.0)
    elapsed = time.monotonic() - start
    assert elapsed < 1.5, f"the bound of 0.3 s took {elapsed:.2f} s to act"
    assert 2 <= len(calls) < 40
    message = str(err.value)
    assert "fit.timeout_s = 0.3 s" in message and "stopped" in message
    assert "\n" not in message


def test_without_a_bound_the_same_slow_fit_finishes(monkeypatch):
    # the control: the stop above is the bound's doing, not a failure of the slowed likelihood
    model, data = simple()
    slow_twice_nll(monkeypatch, 0.001)
    result = Likelihood(model, data).cls(1.0)
    assert math.isfinite(result.obs)


def test_the_bound_leaves_the_numbers_of_a_fit_that_finishes_in_time_unchanged():
    model, data = simple()
    obs, exp = pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde", return_expected_set=True)
    r = Likelihood(model, data, timeout_s=600).cls(1.0)
    assert r.obs == float(obs)
    assert list(r.exp) == [float(e) for e in exp]


def test_fast_method_stops_at_the_bound():
    model, data = simple()
    objective = LikelihoodCompiler().objective(model, data)
    lik = FastLikelihood(model, data, objective, timeout_s=1e-9)
    with pytest.raises(FitTimeout, match="free fit to data|fixed-mu fit"):
        lik.cls(1.0)


@pytest.mark.parametrize("method", ["fast", "exact"])
def test_a_point_past_its_bound_is_reported_failed_with_the_reason(method):
    model, _ = simple()
    spec = {
        "channels": model.spec["channels"],
        "observations": [{"name": model.config.channels[0], "data": [51.0, 48.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    result = PointResult("SYN", "G", "P", "ws", {}, None, None)
    out = evaluate_point(spec, [], result, upper_limit=True, fit_options={"timeout_s": 1e-9}, method=method)
    assert out.status == "failed"
    assert out.cls_obs is None
    assert any("fit.timeout_s = 1e-09 s" in issue for issue in out.issues), out.issues


def test_verification_past_the_bound_flags_the_point():
    model, data = simple()
    lik = Likelihood(model, data, timeout_s=600)
    lik.cls(1.0)
    lik._deadline = time.monotonic() - 1  # the CLs fits ended in time; the verification starts too late
    reasons = lik.verify(LikelihoodCompiler().objective(model, data))
    assert len(reasons) == 1 and "verification of the free fit to data stopped" in reasons[0]


def test_the_default_bound_is_finite_and_documented():
    from recastflow.core.config import schema

    fit = schema("config")["properties"]["fit"]["properties"]
    assert math.isfinite(DEFAULT_TIMEOUT_S) and DEFAULT_TIMEOUT_S > 0
    assert f"{DEFAULT_TIMEOUT_S:g} s" in fit["timeout_s"]["description"]
    assert fit["timeout_s"]["exclusiveMinimum"] == 0 and math.isfinite(fit["timeout_s"]["maximum"])
