"""When a point has enough events: the stopping rule of an adaptive scan, on numbers alone.

After each chunk, a point's signal is patched into the published likelihood as selected, and scaled down or up
by ``z`` times its relative MC-statistical uncertainty ``delta`` (that of the signal's sensitivity,
:func:`recastflow.adaptive.jobs.signal_uncertainty`); ``z`` is the rule's margin per look
(:attr:`recastflow.adaptive.spec.StopRule.z`). CLs falls as the signal grows, so

- the point is *excluded* for certain when even the scaled-down signal gives CLs below 1 - CL;
- it is *not excluded* for certain when even the scaled-up signal gives CLs at or above 1 - CL;
- otherwise its verdict is still open, and more events shrink ``delta``.

Only the scaled fits that can change a verdict are made (:func:`needed_scales`): usually one.

Generation stops when every CLs named by the rule (observed, expected median) is decided, when an optional
precision target on ``delta`` is met, or at the maximum number of events; never before the minimum, and never
on CLs whose fits were not trusted (those run on to the maximum and say so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recastflow.adaptive.spec import AdaptiveSpec

__all__ = ["OPEN", "Decision", "Evidence", "decide", "needed_scales", "scales"]

#: A CLs whose verdict more events could still change.
OPEN = "open"
EXCLUDED = "excluded"
ALLOWED = "not excluded"


@dataclass(frozen=True)
class Evidence:
    """What a point's events so far say.

    Attributes:
        n_events: events generated so far.
        delta: relative MC-statistical uncertainty of the signal's sensitivity (None: no event selected in any
            bin).
        cls: scale (``"low"``, ``"nominal"``, ``"high"``) -> CLs kind (``"observed"``, ``"expected"``) -> value;
            a scaled fit that cannot change the verdict (:func:`needed_scales`) may be absent.
        trusted: the fits (as selected and scaled) were converged and passed their checks.
    """

    n_events: int
    delta: float | None
    cls: Mapping[str, Mapping[str, float]]
    trusted: bool


@dataclass(frozen=True)
class Decision:
    """Whether a point gets more events, and why.

    Attributes:
        stop: no more events.
        reason: one line, for the scan's table.
        states: CLs kind -> ``"excluded"``, ``"not excluded"`` or ``"open"``.
    """

    stop: bool
    reason: str
    states: Mapping[str, str]


def scales(delta: float | None, z: float) -> tuple[float, float]:
    """The signal scales at which CLs is evaluated: ``(1 - z*delta, 1 + z*delta)``, the lower at least 0.

    Args:
        delta: the relative MC-statistical uncertainty (None: no selected event, scales 1 and 1).
        z: the margin of one look, in units of delta.
    """
    if delta is None:
        return 1.0, 1.0
    return max(0.0, 1.0 - z * delta), 1.0 + z * delta


def needed_scales(nominal: Mapping[str, float], kinds: Sequence[str], alpha: float, low: float) -> tuple[str, ...]:
    """Which scaled fits can change a verdict, given the nominal CLs: CLs falls as the signal grows, so a kind
    excluded at nominal can only be confirmed by the scaled-down fit, and one not excluded by the scaled-up fit.

    Args:
        nominal: CLs kind -> CLs of the signal as selected.
        kinds: the CLs kinds the rule decides on.
        alpha: the CLs threshold, 1 - CL.
        low: the lower scale (0: the scaled-down fit cannot exclude anything and is not needed).

    Returns:
        A subset of ``("low", "high")``, in that order.
    """
    below = [nominal[kind] < alpha for kind in kinds]
    out = []
    if low > 0.0 and any(below):
        out.append("low")
    if not all(below):
        out.append("high")
    return tuple(out)


def _state(cls: Mapping[str, Mapping[str, float]], kind: str, alpha: float, low: float) -> str:
    if cls["nominal"][kind] < alpha:
        # a signal scaled to zero excludes nothing: with delta >= 1/z the exclusion cannot be decided yet
        return EXCLUDED if low > 0.0 and cls["low"][kind] < alpha else OPEN
    return ALLOWED if cls["high"][kind] >= alpha else OPEN


def decide(evidence: Evidence, spec: AdaptiveSpec, cl: float) -> Decision:
    """Apply the stopping rule to a point's evidence.

    Args:
        evidence: the point's events so far.
        spec: the scan's adaptive settings (events, rule).
        cl: the confidence level of the exclusion (1 - CL is the CLs threshold).

    Returns:
        The decision.
    """
    alpha = 1.0 - cl
    rule = spec.stop
    low, _ = scales(evidence.delta, rule.z)
    n = evidence.n_events
    if evidence.delta is None:
        states = {kind: OPEN for kind in rule.on}
    else:
        states = {kind: _state(evidence.cls, kind, alpha, low) for kind in rule.on}
    at_max = n >= spec.max_events
    if n < spec.min_events:
        return Decision(False, f"{n} events, below the minimum {spec.min_events}", states)
    if not evidence.trusted:
        if at_max:
            return Decision(True, f"max_events ({n}): CLs not trusted (see the decision's issues)", states)
        return Decision(False, "CLs not trusted yet", states)
    if evidence.delta is None:
        if at_max:
            return Decision(True, f"max_events ({n}): no event selected", states)
        return Decision(False, "no event selected yet", states)
    detail = ", ".join(f"{kind} {state}" for kind, state in states.items())
    if all(state != OPEN for state in states.values()):
        return Decision(
            True, f"decided at {n} events ({detail}; z = {rule.z:.2f}, delta = {evidence.delta:.3f})", states
        )
    if rule.precision is not None and evidence.delta <= rule.precision:
        return Decision(
            True, f"precision met at {n} events (delta = {evidence.delta:.3f} <= {rule.precision:g}; {detail})", states
        )
    if at_max:
        return Decision(True, f"max_events ({n}): still open ({detail}; delta = {evidence.delta:.3f})", states)
    return Decision(False, f"open at {n} events ({detail}; delta = {evidence.delta:.3f})", states)
