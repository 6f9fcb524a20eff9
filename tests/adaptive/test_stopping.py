"""The stopping rule on synthetic yields with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recastflow.adaptive.spec import AdaptiveSpec, StopRule
from recastflow.adaptive.stopping import OPEN, Evidence, decide, needed_scales, scales

CL = 0.95


def spec(**stop) -> AdaptiveSpec:
    stop.setdefault("looks", 19)  # (10000 - 1000) / 500 + 1
    return AdaptiveSpec(chunk=500, min_events=1000, max_events=10000, stop=StopRule(**stop), resolution={},
                        max_rounds=3, max_points=None)  # fmt: skip


def evidence(n, delta, low, nominal, high, trusted=True):
    cls = {k: {"observed": v, "expected": v} for k, v in (("low", low), ("nominal", nominal), ("high", high))}
    return Evidence(n, delta, cls, trusted)


def test_scales():
    assert scales(0.1, 2.0) == pytest.approx((0.8, 1.2))
    assert scales(0.8, 2.0) == (0.0, 2.6)
    assert scales(None, 2.0) == (1.0, 1.0)


def test_clear_exclusion_stops_at_the_minimum():
    d = decide(evidence(1000, 0.1, 1e-4, 1e-5, 1e-6), spec(), CL)
    assert d.stop and d.states == {"observed": "excluded", "expected": "excluded"}


def test_clear_allowed_stops():
    d = decide(evidence(1000, 0.1, 0.9, 0.8, 0.7), spec(), CL)
    assert d.stop and set(d.states.values()) == {"not excluded"}


def test_near_the_level_goes_on_then_stops_at_the_maximum():
    assert not decide(evidence(3000, 0.05, 0.07, 0.05, 0.035), spec(), CL).stop
    d = decide(evidence(10000, 0.05, 0.07, 0.05, 0.035), spec(), CL)
    assert d.stop and d.reason.startswith("max_events") and d.states["observed"] == OPEN


def test_below_the_minimum_never_stops():
    assert not decide(evidence(500, 0.01, 1e-9, 1e-9, 1e-9), spec(), CL).stop


def test_untrusted_cls_never_decide():
    d = decide(evidence(2000, 0.1, 1e-4, 1e-5, 1e-6, trusted=False), spec(), CL)
    assert not d.stop
    d = decide(evidence(10000, 0.1, 1e-4, 1e-5, 1e-6, trusted=False), spec(), CL)
    assert d.stop and "not trusted" in d.reason


def test_no_selected_event_runs_to_the_maximum():
    assert not decide(evidence(5000, None, 1.0, 1.0, 1.0), spec(), CL).stop
    assert decide(evidence(10000, None, 1.0, 1.0, 1.0), spec(), CL).stop


def test_only_the_named_cls_must_be_decided():
    cls = {"low": {"observed": 1e-4, "expected": 0.07}, "nominal": {"observed": 1e-5, "expected": 0.05},
           "high": {"observed": 1e-6, "expected": 0.03}}  # fmt: skip
    assert not decide(Evidence(2000, 0.1, cls, True), spec(), CL).stop
    assert decide(Evidence(2000, 0.1, cls, True), spec(on=("observed",)), CL).stop


def test_precision_target():
    d = decide(evidence(2000, 0.04, 0.07, 0.05, 0.035), spec(precision=0.05), CL)
    assert d.stop and d.reason.startswith("precision")


def test_large_uncertainty_cannot_decide_an_exclusion():
    # z * delta >= 1: the scaled-down signal is zero, which excludes nothing
    d = decide(evidence(1000, 0.4, 0.0, 1e-6, 1e-7), spec(), CL)
    assert not d.stop and d.states["observed"] == OPEN


def _cls(s: float, s0: float = 11.0, width: float = 3.0) -> float:
    """A CLs falling with the signal, crossing 1 - CL at ``s0`` (the known answer: excluded iff s > s0)."""
    return (1 - CL) * math.exp(-(s - s0) / width)


def _run(true_signal: float, sp: AdaptiveSpec, rng: np.random.Generator, efficiency: float = 0.02):
    """One point: signal events drawn chunk by chunk (weight sigma L / N each) until the rule stops."""
    n = selected = 0
    while True:
        n += sp.chunk
        selected += rng.binomial(sp.chunk, efficiency)
        s = selected * true_signal / (efficiency * n)
        delta = 1 / math.sqrt(selected) if selected else None
        low, high = scales(delta, sp.stop.z)
        values = {k: _cls(s * f) if f > 0 else 1.0 for k, f in (("low", low), ("nominal", 1.0), ("high", high))}
        d = decide(evidence(n, delta, values["low"], values["nominal"], values["high"]), sp, CL)
        if d.stop:
            return n, d


def test_margin_per_look_bounds_the_chance_of_a_wrong_verdict():
    # one look: the one-sided 95% quantile; 19 looks: 0.05 / 19 one-sided per look
    assert StopRule(confidence=0.95, looks=1).z == pytest.approx(1.645, abs=1e-3)
    assert spec().stop.z == pytest.approx(2.79, abs=0.01)


@pytest.mark.parametrize("true_signal", [5.0, 10.0, 10.5, 11.5, 12.0, 25.0])
def test_verdicts_agree_with_the_infinite_statistics_answer(true_signal):
    """Decided verdicts are wrong in at most 1 - confidence of the points, even right at the level."""
    rng = np.random.default_rng(11)
    sp = spec()
    truth = true_signal > 11.0
    trials = 200
    outcomes = [_run(true_signal, sp, rng) for _ in range(trials)]
    wrong = sum(1 for _, d in outcomes if d.reason.startswith("decided") and (d.states["observed"] == "excluded") != truth)
    # 5% of 200 is 10; the Bonferroni bound is conservative, so far fewer are expected
    assert wrong <= 10
    events = [n for n, _ in outcomes]
    if abs(true_signal - 11.0) > 5:
        # far from the level the verdict is decided early: no point needs the maximum
        assert max(events) < sp.max_events and np.median(events) <= 2000


def test_signal_uncertainty_weighs_bins_by_their_sensitivity():
    from types import SimpleNamespace

    from recastflow.adaptive.jobs import signal_uncertainty

    regions = [SimpleNamespace(name="SR", channel="SR_ch"), SimpleNamespace(name="CR", channel="CR_ch")]
    background = {"SR_ch": [4.0, 4.0], "CR_ch": [1000.0]}
    one = {"regions": {"SR": {"yields": [10.0, 0.0], "stat": [2.0, 0.0]}, "CR": {"yields": [1.0], "stat": [1.0]}}}
    region, index, delta = signal_uncertainty(one, background, regions)
    # the control region's signal barely counts: delta is the signal region's sigma / s
    assert (region, index) == ("SR", 0) and delta == pytest.approx(0.2, rel=1e-3)
    two = {"regions": {"SR": {"yields": [10.0, 10.0], "stat": [2.0, 2.0]}}}
    assert signal_uncertainty(two, background, regions)[2] == pytest.approx(0.2 / math.sqrt(2))
    assert signal_uncertainty({"regions": {"SR": {"yields": [0.0, 0.0], "stat": [0.0, 0.0]}}}, background, regions) is None


@pytest.mark.parametrize("nominal", [(1e-5, 1e-6), (0.3, 0.2), (0.2, 0.01), (0.049, 0.051)])
@pytest.mark.parametrize("delta", [0.05, 0.2, 0.5])
def test_only_the_scaled_fits_that_can_change_a_verdict_are_needed(nominal, delta):
    """With CLs falling in the signal, leaving out the fits needed_scales leaves out changes no decision."""
    sp = spec()
    z = sp.stop.z
    low, high = scales(delta, z)

    def cls_at(c0: float, factor: float) -> float:  # a CLs that falls as the signal grows
        return min(1.0, c0 * math.exp(-3.0 * (factor - 1.0)))

    full = {label: {"observed": cls_at(nominal[0], f), "expected": cls_at(nominal[1], f)}
            for label, f in (("low", low), ("nominal", 1.0), ("high", high))}  # fmt: skip
    wanted = needed_scales(full["nominal"], ("observed", "expected"), 1 - CL, low)
    below = [c < 1 - CL for c in nominal]
    assert ("high" in wanted) == (not all(below))
    assert ("low" in wanted) == (any(below) and low > 0)
    partial = {label: values for label, values in full.items() if label == "nominal" or label in wanted}
    assert decide(Evidence(2000, delta, partial, True), sp, CL) == decide(Evidence(2000, delta, full, True), sp, CL)
