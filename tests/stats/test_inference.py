import math

import numpy as np
import pyhf
import pytest

from recastflow.stats.inference import FitFailed, Likelihood


def simple(sig=(12.0, 11.0), bkg=(50.0, 52.0), unc=(3.0, 7.0), obs=(51.0, 48.0)):
    model = pyhf.simplemodels.uncorrelated_background(signal=list(sig), bkg=list(bkg), bkg_uncertainty=list(unc))
    return model, list(obs) + model.config.auxdata


@pytest.mark.parametrize("mu", [0.3, 1.0, 2.5])
def test_cls_equals_pyhf_hypotest_exactly(mu):
    model, data = simple()
    obs, exp = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_expected_set=True)
    r = Likelihood(model, data).cls(mu)
    assert r.obs == float(obs)
    assert list(r.exp) == [float(e) for e in exp]


def test_upper_limit_matches_pyhf_scan():
    model, data = simple()
    lik = Likelihood(model, data)
    ul = lik.upper_limit()
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, scan=None, level=0.05, rtol=1e-6)
    assert ul.obs == pytest.approx(float(obs), rel=1e-3)
    assert list(ul.exp) == pytest.approx([float(e) for e in exp], rel=1e-3)
    # the limits are where CLs is 0.05, not approximations of it
    assert lik.cls(ul.obs, record=False).obs == pytest.approx(0.05, abs=1e-5)


def test_quality_recorded_for_every_fit():
    model, data = simple()
    lik = Likelihood(model, data)
    lik.cls(1.0)
    labels = [f.label for f in lik.fits]
    assert labels[0] == "fixed-mu fit to data at mu=1" or "free fit to data" in labels
    assert len(lik.fits) == 5 and all(f.converged and f.moved for f in lik.fits)
    assert lik.issues() == []


def test_non_converging_fit_raises_fitfailed():
    model, data = simple()
    lik = Likelihood(model, data, fit_options={"maxiter": 1})
    with pytest.raises(FitFailed, match="did not converge"):
        lik.cls(1.0)
    assert lik.fits[-1].converged is False


def test_parameter_at_bound_is_flagged():
    # data far above the background: the background-only Asimov fit pushes alpha to its +5 bound
    spec = {
        "channels": [{"name": "SR", "samples": [
            {"name": "sig", "data": [1.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "bkg", "data": [10.0], "modifiers": [{"name": "alpha", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]},
        ]}],
    }
    model = pyhf.Model(spec, poi_name="mu")
    lik = Likelihood(model, [200.0] + model.config.auxdata)
    lik.cls(1.0)
    issues = lik.issues()
    assert any("background-only fit to data (Asimov): 1 parameter(s) at a bound (alpha)" in i for i in issues), issues


def test_doubtful_limit_search_fits_are_summarised():
    from recastflow.stats.inference import FitQuality

    model, data = simple()
    lik = Likelihood(model, data)
    lik.upper_limit()
    assert lik.search_fits and lik.issues() == []  # a clean model: searched, nothing doubtful
    lik.search_fits.append(FitQuality("fixed-mu fit to data at mu=3.5", True, 9, 1.0, ("alpha",), True, "ok"))
    (issue,) = lik.issues()
    assert issue.startswith("upper-limit search: 1 of") and "mu = 3.5" in issue and "alpha" in issue


def test_secant_root_brackets_downwards_and_upwards():
    from recastflow.stats.inference import _secant_root

    # decreasing through zero at 0.05, started far above: the search must walk down (it once walked up)
    assert _secant_root(lambda mu: 0.05 - mu, 3.0, 3.1, 1e-8) == pytest.approx(0.05, rel=1e-6)
    # a flat stretch sends plain secant steps far away; steps are limited to a factor 4
    seen = []

    def flat(mu):
        seen.append(mu)
        return math.tanh(20.0 - mu)

    assert _secant_root(flat, 1.0, 1.01, 1e-8) == pytest.approx(20.0, rel=1e-6)
    assert max(seen) < 100


def test_no_upper_limit_beyond_mu_max_is_a_clear_error():
    from recastflow.core.errors import RecastError
    from recastflow.stats.inference import _secant_root

    with pytest.raises(RecastError, match="CLs stays above the requested level up to mu = 1000"):
        _secant_root(lambda mu: 1.0, 1.0, 1.02, 1e-6, mu_max=1000.0)


def _normsys_histosys_model():
    spec = {
        "channels": [{"name": "SR", "samples": [
            {"name": "sig", "data": [1.0, 2.0], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "jes", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]},
            {"name": "bkg", "data": [10.0, 20.0], "modifiers": [
                {"name": "jes", "type": "histosys", "data": {"hi_data": [11.0, 21.0], "lo_data": [9.0, 19.0]}},
                {"name": "xs", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                {"name": "stat", "type": "staterror", "data": [1.0, 1.5]},
                {"name": "lumi", "type": "lumi", "data": None}]},
        ]}],
        "parameters": [{"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.9, 1.1]], "inits": [1.0]}],
    }
    return pyhf.Model(spec, poi_name="mu")


def test_only_normsys_and_histosys_parameters_have_relaxable_bounds():
    from recastflow.stats.inference import relaxable_bounds

    model = _normsys_histosys_model()
    flags = dict(zip(model.config.par_names, relaxable_bounds(model)))
    assert flags == {"jes": True, "xs": True, "mu": False, "lumi": False, "stat[0]": False, "stat[1]": False}


@pytest.mark.parametrize("observed, at_bound", [(33.0, False), (300.0, True)])
def test_fast_fits_without_relaxed_bounds_agree_with_pyhf(observed, at_bound):
    # (33): every minimum inside the bounds, found with the nuisance bounds left out; (300): the
    # background-only fit wants xs and jes beyond +5, so it is redone with every bound and ends on them
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.stats.inference import FastLikelihood

    model = _normsys_histosys_model()
    data = [observed / 3, 2 * observed / 3] + model.config.auxdata
    fast = FastLikelihood(model, data, LikelihoodCompiler().objective(model, data))
    exact = Likelihood(model, data, fit_options={"tolerance": 1e-12})
    fast.cls(1.0)
    exact.cls(1.0)
    ours = {f.label: f for f in fast.fits}
    for ref in exact.fits:
        if ref.label in ours and ref.label.startswith(("free fit to data", "background-only")):
            assert ours[ref.label].twice_nll <= ref.twice_nll + 1e-9
            assert ours[ref.label].twice_nll == pytest.approx(ref.twice_nll, abs=1e-6)
            assert bool(ours[ref.label].at_bounds) == bool(ref.at_bounds)
    bkg_only = ours["background-only fit to data (Asimov)"]
    assert bool(bkg_only.at_bounds) is at_bound
    if at_bound:
        assert set(bkg_only.at_bounds) == {"jes", "xs"}


def zero_signal():
    """A signal with zero yields: the data cannot tell it from the background."""
    spec = {"channels": [{"name": "SR", "samples": [
        {"name": "sig", "data": [0.0, 0.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "bkg", "data": [10.0, 20.0], "modifiers": [
            {"name": "xs", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]}]}
    model = pyhf.Model(spec, poi_name="mu")
    return model, [11.0, 19.0] + model.config.auxdata


def test_signal_the_data_cannot_see_gives_cls_1_as_pyhf():
    # zero signal yields: qtilde_A = 0; pyhf's hypotest returns CLs = 1, and so must we (it used to raise)
    model, data = zero_signal()
    obs, exp = pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde", return_expected_set=True)
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.stats.inference import FastLikelihood

    for lik in (Likelihood(model, data), FastLikelihood(model, data, LikelihoodCompiler().objective(model, data))):
        r = lik.cls(1.0)
        assert (r.obs, list(r.exp)) == (float(obs), [float(e) for e in exp]) == (1.0, [1.0] * 5)


def test_signal_the_data_cannot_see_has_no_upper_limit_and_a_clear_reason():
    # the upper-limit search goes far beyond the POI's range (0, 10); exact fits there used to stop on
    # pyhf's "initialization parameter lies outside of its bounds" (a ValueError, not a user message)
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.core.errors import RecastError
    from recastflow.stats.inference import FastLikelihood

    model, data = zero_signal()
    for lik in (Likelihood(model, data), FastLikelihood(model, data, LikelihoodCompiler().objective(model, data))):
        with pytest.raises(RecastError, match="up to mu = 1000"):
            lik.upper_limit()


def test_exact_upper_limit_beyond_the_poi_range_is_found():
    # a weak signal: its limit lies above the POI's upper bound (10); pyhf's own fits still run there
    model, data = simple(sig=(0.5, 0.4))
    lik = Likelihood(model, data)
    ul = lik.upper_limit()
    assert ul.obs > 10
    assert lik.cls(ul.obs, record=False).obs == pytest.approx(0.05, abs=1e-4)


def _fast_and_unscaled(observed: float):
    """The toy model fitted fast twice: with the scale learnt from its first free fit, and without any."""
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.stats.inference import FastLikelihood

    model = _normsys_histosys_model()
    data = [observed / 3, 2 * observed / 3] + model.config.auxdata
    compiler = LikelihoodCompiler()
    scaled = FastLikelihood(model, data, compiler.objective(model, data))
    scaled.cls(1.0)
    plain_objective = LikelihoodCompiler().objective(model, data)
    plain = FastLikelihood(model, data, plain_objective)
    plain.objective.scale = np.ones(model.config.npars)  # "learnt": every fit runs unscaled
    plain.cls(1.0)
    return model, data, scaled, plain


def test_scale_is_the_curvature_at_the_first_free_minimum():
    import jax

    model, data, scaled, _ = _fast_and_unscaled(33.0)
    scale = scaled.objective.scale
    free = scaled.fits[0]  # the free fit to data, the first of cls()
    assert free.label == "free fit to data" and scale is not None
    x = scaled.free_data.pars
    pyhf.set_backend("jax", precision="64b")  # pyhf's own model, differentiated twice by JAX
    try:
        jmodel = pyhf.Model(model.spec, poi_name=model.config.poi_name)
        hessian = np.asarray(jax.hessian(lambda p: -2.0 * jmodel.logpdf(p, jax.numpy.asarray(data))[0])(x))
    finally:
        pyhf.set_backend("numpy")
    expected = np.clip(np.sqrt(np.diag(hessian)), 1e-2, 1e3)
    assert scale == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("observed", [33.0, 300.0])
def test_scaled_fits_reach_the_unscaled_minima(observed):
    _, _, scaled, plain = _fast_and_unscaled(observed)
    assert [f.label for f in scaled.fits] == [f.label for f in plain.fits]
    for ours, ref in zip(scaled.fits, plain.fits):
        # fits to the data; the Asimov dataset is made from the background-only fit's parameters, which
        # both fits determine only to their tolerance (same -2 log L, 1e-8 apart in a flat direction)
        if "Asimov)" in ours.label or "data" in ours.label:
            assert ours.twice_nll == pytest.approx(ref.twice_nll, abs=1e-9)
        assert ours.at_bounds == ref.at_bounds
    ours, ref = scaled.cls(1.0), plain.cls(1.0)
    assert [ours.obs, *ours.exp] == pytest.approx([ref.obs, *ref.exp], rel=1e-7)


def test_a_scaled_fit_that_fails_is_redone_unscaled(monkeypatch):
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.stats.inference import FastLikelihood

    _, _, _, plain = _fast_and_unscaled(33.0)
    model = _normsys_histosys_model()
    data = [11.0, 22.0] + model.config.auxdata
    slsqp = FastLikelihood._slsqp
    scaled_calls = []

    def failing_when_scaled(self, obs, x0, free, relaxed, scale):
        res = slsqp(self, obs, x0, free, relaxed, scale)
        if np.any(scale != 1.0):
            scaled_calls.append(relaxed)
            res.success, res.message = False, "Iteration limit reached"
        return res

    monkeypatch.setattr(FastLikelihood, "_slsqp", failing_when_scaled)
    broken = FastLikelihood(model, data, LikelihoodCompiler().objective(model, data))
    broken.objective.scale = np.full(model.config.npars, 2.0)
    result = broken.cls(1.0)
    assert scaled_calls  # the scaled fits were tried, and failed
    assert all(f.converged for f in broken.fits)
    ref = plain.cls(1.0)
    assert [result.obs, *result.exp] == pytest.approx([ref.obs, *ref.exp], rel=1e-7)


def test_numerical_trouble_inside_a_fit_fails_the_point_in_one_line(monkeypatch):
    model, data = simple()
    lik = Likelihood(model, data)

    def broken(*args, **kwargs):
        raise ValueError("array must not contain infs or NaNs\nTraceback (most recent call last): ...")

    monkeypatch.setattr(pyhf.infer.mle, "twice_nll", broken)  # raised inside the fit
    with pytest.raises(FitFailed) as err:
        lik.cls(1.0)
    assert str(err.value) == "free fit to data failed: ValueError: array must not contain infs or NaNs"
    assert lik.fits[-1].converged is False
