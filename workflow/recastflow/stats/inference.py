"""Asymptotic CLs and upper limits with every fit's quality recorded.

The formulas are pyhf's own (its ``AsymptoticCalculator`` turns test statistics
into CLs values), so results equal ``pyhf.infer.hypotest``. What differs is
bookkeeping: pyhf re-runs five fits per tested mu, three of which do not depend
on mu (the free fit to data, the background-only fit that defines the Asimov
dataset and the free fit to that Asimov dataset). Here they run once per point
and only the two fixed-mu fits run per tested mu, which makes upper-limit
searches several times cheaper without changing a single number.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyhf
import scipy.optimize
import scipy.stats

from recastflow.core.errors import RecastError

#: Order of the expected band, as pyhf returns it.
EXPECTED_SIGMAS: tuple[int, ...] = (-2, -1, 0, 1, 2)
#: scipy's SLSQP tolerance, which pyhf uses when none is given
PYHF_TOLERANCE = 1e-6


# pyhf logs every failed minimisation as an error with a traceback of its own assert; recastflow reports
# the failure itself, in one line per point (FitFailed), so the traceback would only fill the job logs
logging.getLogger("pyhf.optimize.mixins").setLevel(logging.CRITICAL)


class FitFailed(RecastError):
    """A minimisation did not converge; the point cannot be quoted."""


class FitTimeout(FitFailed):
    """A point's fits ran past their wall-clock bound (``fit.timeout_s``); the point cannot be quoted."""


#: Wall-clock bound of one point's fits (CLs, verification and upper limit together), in seconds, when
#: the configuration's ``fit.timeout_s`` is not set. A point of the largest published likelihoods takes
#: seconds with the fast method and a few minutes with pyhf's own fits; a fit that cannot converge (a NaN
#: tolerance once ran for hours) is stopped here with the reason instead of holding the job.
DEFAULT_TIMEOUT_S = 1800.0


#: A fit whose slope at the end says -2 log L could still fall by more than this (a Newton step with
#: the diagonal curvature) stopped short of its minimum. 1e-3 moves sqrt(q) by at most ~1e-3/(2 sqrt(q)):
#: CLs by a few 1e-4 relative, the most a quoted number may carry unflagged.
DECREMENT_LIMIT = 1e-3
#: A fit moved when some parameter left its start by more than this fraction of its uncertainty.
MOVE_SIGMAS = 1e-3


@dataclass(frozen=True)
class FitQuality:
    """How one maximum-likelihood fit went.

    Attributes:
        label: which fit this was, e.g. ``"free fit to data"``.
        converged: the minimiser reported success.
        iterations: minimiser iterations.
        twice_nll: -2 log L at the minimum.
        at_bounds: free parameters (POI excluded) that ended on a bound.
        moved: some free parameter left its start by more than :data:`MOVE_SIGMAS` of its uncertainty.
        message: the minimiser's own message.
        start_twice_nll: -2 log L at the fit's starting point (None if not evaluated).
        decrement: how much further -2 log L would fall by a Newton step from the end point (bound-projected
            gradient, diagonal curvature); about 0 at a minimum (None if not evaluated).
        shift_sigmas: the largest move of a free parameter, in units of its uncertainty (None if not evaluated).
        slack: how far above its start a fit may end before that counts as a rise (the fit's tolerance).
    """

    label: str
    converged: bool
    iterations: int
    twice_nll: float
    at_bounds: tuple[str, ...]
    moved: bool
    message: str
    start_twice_nll: float | None = None
    decrement: float | None = None
    shift_sigmas: float | None = None
    slack: float = 1e-6

    @property
    def rose(self) -> bool:
        """The fit ended above its starting point."""
        return self.start_twice_nll is not None and self.twice_nll > self.start_twice_nll + self.slack

    @property
    def short(self) -> bool:
        """The slope at the end says the minimum is further on."""
        return self.decrement is not None and not self.decrement <= DECREMENT_LIMIT

    def issues(self) -> list[str]:
        """Return reasons not to trust this fit, in words a physicist understands (empty if none)."""
        out = []
        if not self.converged:
            out.append(f"{self.label}: did not converge ({self.message})")
        if self.at_bounds:
            names = ", ".join(self.at_bounds[:4]) + (" ..." if len(self.at_bounds) > 4 else "")
            out.append(f"{self.label}: {len(self.at_bounds)} parameter(s) at a bound ({names})")
        start = f"{self.start_twice_nll:.6g}" if self.start_twice_nll is not None else "?"
        if self.rose:
            out.append(
                f"{self.label}: -2 log L rose from {start} at the starting point to {self.twice_nll:.6g}; "
                "the fit did not work"
            )
        elif self.short and not self.moved:
            out.append(
                f"{self.label}: the fit did not move from its starting point (-2 log L {start} -> "
                f"{self.twice_nll:.6g}) although the slope there says it falls by about {self.decrement:.3g}"
            )
        elif self.short:
            out.append(
                f"{self.label}: stopped short of the minimum (the slope at the end says -2 log L "
                f"{self.twice_nll:.6g} falls by about {self.decrement:.3g} more)"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "label": self.label,
            "converged": self.converged,
            "iterations": self.iterations,
            "twice_nll": self.twice_nll,
            "start_twice_nll": self.start_twice_nll,
            "decrement": self.decrement,
            "shift_sigmas": self.shift_sigmas,
            "at_bounds": list(self.at_bounds),
            "moved": self.moved,
            "message": self.message,
        }


@dataclass(frozen=True)
class CLsResult:
    """CLs at one mu: observed and the expected band (-2..+2 sigma)."""

    mu: float
    obs: float
    exp: tuple[float, ...]


@dataclass(frozen=True)
class UpperLimit:
    """95% CL (by default) upper limit on mu: observed and expected band."""

    obs: float
    exp: tuple[float, ...]
    evaluations: int


@dataclass
class _Fit:
    pars: np.ndarray
    twice_nll: float


@dataclass
class Likelihood:
    """A model and its data, with the mu-independent fits cached.

    Args:
        model: the pyhf model (POI lower bound must be 0 for the qtilde statistic).
        data: observations followed by auxiliary data.
        fit_options: extra options for pyhf's optimiser (e.g. ``maxiter``).
        timeout_s: wall-clock bound of all fits of this likelihood, from its creation (``None``: no bound).
            Checked at every evaluation of -2 log L, so that even one fit that never converges stops.
    """

    model: pyhf.pdf.Model
    data: Any
    fit_options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        #: monotonic time after which every further evaluation of -2 log L stops the fits (FitTimeout)
        self._deadline = time.monotonic() + self.timeout_s if self.timeout_s is not None else math.inf
        self._fitting = ""
        cfg = self.model.config
        if cfg.poi_index is None:
            raise RecastError("the model has no parameter of interest; set measurements[0].config.poi")
        self._poi = cfg.poi_index
        self._init = list(cfg.suggested_init())
        self._bounds = [tuple(b) for b in cfg.suggested_bounds()]
        self._fixed = list(cfg.suggested_fixed())
        if self._bounds[self._poi][0] != 0:
            raise RecastError(
                f"POI '{cfg.poi_name}' has lower bound {self._bounds[self._poi][0]}; the qtilde test statistic needs 0"
            )
        self._names = _flat_par_names(self.model)
        self._lo, self._hi = (np.asarray(b, dtype=float) for b in zip(*self._bounds))
        tolerance = self.fit_options.get("tolerance") or PYHF_TOLERANCE
        #: how much one fit's -2 log L may exceed another's before it counts as a contradiction: pyhf's
        #: fits stop within about their tolerance of the minimum
        self.slack = max(1e-4, 100.0 * tolerance)
        self.fits: list[FitQuality] = []
        self.search_fits: list[FitQuality] = []
        #: fits by another minimiser (:meth:`verify`): recorded, judged only against the fits they check
        self.verifications: list[FitQuality] = []
        self._free_data: _Fit | None = None
        self._free_asimov: _Fit | None = None
        self._asimov_data: Any = None
        self._q_data: dict[float, float] = {}
        self._q_asimov: dict[float, float] = {}
        self._fitted: dict[str, dict[float | None, _Fit]] = {}

    # -- fits -----------------------------------------------------------------
    def _check_time(self) -> None:
        """Stop the fits once the wall-clock bound is past (called at every evaluation of -2 log L).

        Raises:
            FitTimeout: naming the fit that was running and the bound.
        """
        if time.monotonic() > self._deadline:
            raise FitTimeout(
                f"{self._fitting or 'the fits'} stopped: this point's fits ran longer than the wall-clock bound "
                f"fit.timeout_s = {self.timeout_s:g} s; raise it in the run configuration if the likelihood is "
                "just slow, or check the fit options"
            )

    def _timed(self, objective: Callable[..., Any]) -> Callable[..., Any]:
        """``objective`` (pyhf's ``twice_nll``), checking the wall-clock bound before each evaluation."""

        def timed(pars: Any, data: Any, pdf: Any) -> Any:
            self._check_time()
            return objective(pars, data, pdf)

        return timed

    def _fit(self, data: Any, label: str, poi_value: float | None = None, record: bool = True, start: str = "") -> _Fit:
        self._fitting = label
        self._check_time()
        init = list(self._init)
        fixed = list(self._fixed)
        warm = self._warm_start(start, poi_value) if start else None
        if warm is not None:
            init = list(warm)
        if poi_value is not None:
            # exactly what pyhf.infer.mle.fixed_poi_fit does
            init[self._poi] = poi_value
            fixed[self._poi] = True
        try:
            pars, fval, res = self._minimize(data, init, fixed, label)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            # numerical trouble inside pyhf or scipy (a NaN rate, an overflow): the point fails with the
            # reason in one line, never a library traceback
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.fits.append(FitQuality(label, False, 0, math.nan, (), False, reason))
            raise FitFailed(f"{label} failed: {type(exc).__name__}: {reason}") from None
        pars = np.asarray(pars, dtype=float)
        quality = self._quality(label, pars, float(fval), res, init, fixed, data, detailed=record)
        # limit-search fits are too many to list one by one; they are summarised in issues()
        (self.fits if record else self.search_fits).append(quality)
        fit = _Fit(pars, float(fval))
        self._fitted.setdefault(start or label, {})[poi_value] = fit
        return fit

    def _warm_start(self, start: str, poi_value: float | None) -> list[float] | None:
        """Starting values for a fit; pyhf's reference always starts from the model's suggestion."""
        return None

    def _minimize(self, data: Any, init: list[float], fixed: list[bool], label: str) -> tuple[Any, float, Any]:
        """Run pyhf's own fit (its optimiser, its numerical gradients)."""
        bounds = list(self._bounds)
        if fixed[self._poi]:
            # an upper-limit search may test mu beyond the POI's range (pyhf refuses a start outside the
            # bounds); a fixed parameter's bounds play no part in the fit, so they are widened to include it
            lo, hi = bounds[self._poi]
            bounds[self._poi] = (min(lo, init[self._poi]), max(hi, init[self._poi]))
        try:
            with warnings.catch_warnings():
                # numpy's and scipy's warnings on the way (log of 0 at a bound, clipping to bounds) say nothing
                # the fit's quality checks do not say better, and would fill every job log
                warnings.simplefilter("ignore", RuntimeWarning)
                # what pyhf.infer.mle.fit does (same optimiser, objective, start, bounds and fixed values, so
                # the same numbers), with the objective checking the wall-clock bound at each evaluation
                _, optimizer = pyhf.get_backend()
                fixed_vals = [(i, v) for i, (v, f) in enumerate(zip(init, fixed)) if f]
                return optimizer.minimize(
                    self._timed(pyhf.infer.mle.twice_nll),
                    data,
                    self.model,
                    init,
                    bounds,
                    fixed_vals,
                    return_fitted_val=True,
                    return_result_obj=True,
                    **self.fit_options,
                )
        except pyhf.exceptions.FailedMinimization as exc:
            result = getattr(exc, "result", None)
            msg = getattr(result, "message", str(exc))
            self.fits.append(
                FitQuality(label, False, int(getattr(result, "nit", 0) or 0), math.nan, (), True, str(msg))
            )
            raise FitFailed(f"{label} did not converge: {(str(msg).strip().splitlines() or ['?'])[0]}") from None

    def _quality(
        self,
        label: str,
        pars: np.ndarray,
        fval: float,
        res: Any,
        init: list[float],
        fixed: list[bool],
        data: Any,
        detailed: bool = True,
    ) -> FitQuality:
        """Judge one fit: convergence, bounds, its end against its start, and the slope at its end.

        Args:
            detailed: also measure the slope (the gradient) at the end. The exact method pays two
                evaluations per parameter for it and skips it for the many fits of an upper-limit search.
        """
        free = ~np.asarray(fixed, dtype=bool)
        start = np.asarray(init, dtype=float)
        at_bounds = []
        for i in np.flatnonzero(free):
            if i == self._poi:
                continue  # mu-hat at 0 is the normal qtilde situation, not a fit problem
            lo, hi = self._bounds[i]
            tol = 1e-6 * (hi - lo)
            if pars[i] - lo < tol or hi - pars[i] < tol:
                at_bounds.append(self._names[i])
        start_value = self._twice_nll(start, data)
        decrement = shift = None
        if detailed or self._cheap_slope:
            gradient, curvature = self._slope(pars, data, free)
            decrement, shift = newton_step(pars, start, gradient, curvature, self._lo, self._hi, free)
            moved = shift > MOVE_SIGMAS
        else:
            moved = bool(np.any(pars[free] != start[free]))
        return FitQuality(
            label=label,
            converged=bool(getattr(res, "success", True)),
            iterations=int(getattr(res, "nit", 0) or 0),
            twice_nll=fval,
            at_bounds=tuple(at_bounds),
            moved=moved,
            message=str(getattr(res, "message", "")),
            start_twice_nll=start_value,
            decrement=decrement,
            shift_sigmas=shift,
            slack=self.slack,
        )

    #: the gradient costs one evaluation (exact gradients): every fit gets the slope check
    _cheap_slope = False

    def _twice_nll(self, pars: np.ndarray, data: Any) -> float:
        """-2 log L by pyhf (numpy)."""
        return float(-2.0 * self.model.logpdf(np.asarray(pars, dtype=float), np.asarray(data, dtype=float))[0])

    def _slope(self, x: np.ndarray, data: Any, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and diagonal curvature of -2 log L at ``x`` for the free parameters (central differences).

        Steps of 1e-4 (relative above 1) are small against every parameter's uncertainty except the
        stiffest gamma factors, where -2 log L is still quadratic to 1e-2 over the step. At a bound the
        difference is one-sided and the curvature unknown (NaN).
        """
        f0 = self._twice_nll(x, data)
        idx = np.flatnonzero(free)
        gradient = np.zeros(idx.size)
        curvature = np.full(idx.size, np.nan)
        for k, i in enumerate(idx):
            h = 1e-4 * max(1.0, abs(x[i]))
            hp, hm = min(h, self._hi[i] - x[i]), min(h, x[i] - self._lo[i])
            fp = fm = None
            if hp > 0:
                step = x.copy()
                step[i] += hp
                fp = self._twice_nll(step, data)
            if hm > 0:
                step = x.copy()
                step[i] -= hm
                fm = self._twice_nll(step, data)
            if fp is not None and fm is not None:
                gradient[k] = (hm * hm * (fp - f0) + hp * hp * (f0 - fm)) / (hp * hm * (hp + hm))
                curvature[k] = 2.0 * (hm * fp + hp * fm - (hp + hm) * f0) / (hp * hm * (hp + hm))
            elif fp is not None:
                gradient[k] = (fp - f0) / hp
            elif fm is not None:
                gradient[k] = (f0 - fm) / hm
        return gradient, curvature

    @property
    def free_data(self) -> _Fit:
        """The unconditional fit to the observed data (done once)."""
        if self._free_data is None:
            self._free_data = self._fit(self.data, "free fit to data")
        return self._free_data

    @property
    def asimov_data(self) -> Any:
        """The background-only (mu=0) Asimov dataset built from a fit to data."""
        if self._asimov_data is None:
            bkg = self._fit(self.data, "background-only fit to data (Asimov)", poi_value=0.0, start="bkg")
            self._asimov_data = self.model.expected_data(bkg.pars)
        return self._asimov_data

    @property
    def free_asimov(self) -> _Fit:
        """The unconditional fit to the Asimov dataset (done once)."""
        if self._free_asimov is None:
            self._free_asimov = self._fit(self.asimov_data, "free fit to Asimov")
        return self._free_asimov

    def _qtilde(self, mu: float, data: Any, free: _Fit, label: str, record: bool, start: str) -> float:
        fixed = self._fit(data, f"{label} at mu={mu:.6g}", poi_value=mu, record=record, start=start)
        llr = max(fixed.twice_nll - free.twice_nll, 0.0)
        return 0.0 if free.pars[self._poi] > mu else llr

    def q_data(self, mu: float, record: bool = True) -> float:
        """qtilde_mu on the observed data."""
        if mu not in self._q_data:
            self._q_data[mu] = self._qtilde(mu, self.data, self.free_data, "fixed-mu fit to data", record, "data")
        return self._q_data[mu]

    def q_asimov(self, mu: float, record: bool = True) -> float:
        """qtilde_mu on the background-only Asimov dataset."""
        if mu not in self._q_asimov:
            self._q_asimov[mu] = self._qtilde(
                mu, self.asimov_data, self.free_asimov, "fixed-mu fit to Asimov", record, "asimov"
            )
        return self._q_asimov[mu]

    # -- CLs ------------------------------------------------------------------
    def _calculator(self, sqrtqmu_a: float) -> pyhf.infer.calculators.AsymptoticCalculator:
        calc = pyhf.infer.calculators.AsymptoticCalculator(
            self.data, self.model, self._init, self._bounds, self._fixed, test_stat="qtilde"
        )
        calc.sqrtqmuA_v = sqrtqmu_a
        return calc

    def cls_expected(self, mu: float, record: bool = True) -> tuple[float, ...]:
        """Expected CLs band at mu; needs only Asimov fits."""
        sqrtqmu_a = math.sqrt(self.q_asimov(mu, record))
        calc = self._calculator(sqrtqmu_a)
        sb, b = calc.distributions(mu)
        _, _, cls_exp = calc.expected_pvalues(sb, b)
        return tuple(float(v) for v in cls_exp)

    def cls(self, mu: float = 1.0, record: bool = True) -> CLsResult:
        """Observed CLs and expected band at mu (as ``pyhf.infer.hypotest``)."""
        sqrtqmu = math.sqrt(self.q_data(mu, record))
        sqrtqmu_a = math.sqrt(self.q_asimov(mu, record))
        # pyhf's qtilde branch of AsymptoticCalculator.teststatistic
        if sqrtqmu_a == 0.0:
            # a signal the data cannot see (e.g. zero yields): the fits do not depend on mu, so both test
            # statistics are 0 and the formula below is 0/0. Signal and background-only hypotheses are the
            # same: CLs = 1, which is also pyhf's hypotest result for such a model.
            return CLsResult(mu, 1.0, (1.0,) * len(EXPECTED_SIGMAS))
        if sqrtqmu < sqrtqmu_a:
            teststat = sqrtqmu - sqrtqmu_a
        else:
            teststat = (sqrtqmu**2 - sqrtqmu_a**2) / (2 * sqrtqmu_a)
        calc = self._calculator(sqrtqmu_a)
        sb, b = calc.distributions(mu)
        _, _, cls_obs = calc.pvalues(teststat, sb, b)
        _, _, cls_exp = calc.expected_pvalues(sb, b)
        return CLsResult(mu, float(cls_obs), tuple(float(v) for v in cls_exp))

    # -- upper limits ---------------------------------------------------------
    def upper_limit(self, level: float = 0.05, rtol: float = 1e-4) -> UpperLimit:
        """Find mu where CLs equals ``level``, observed and for each expected band.

        The expected CLs band depends on mu only through sqrt(qtilde_A(mu)), so
        each band's target value of sqrt(qtilde_A) is solved first without any
        fit; mu is then found by a secant search on sqrt(qtilde_A(mu)), which is
        nearly linear, sharing every Asimov fit between the five bands. The
        observed limit is a secant search on log CLs_obs. Every root is exact
        (no interpolation) to ``rtol``; a search that misbehaves falls back to
        bracketing and Brent's method.
        """
        n0 = len(self._q_data) + len(self._q_asimov)
        # a hundred times the POI's own range: far beyond any limit an analysis would quote
        mu_max = 100.0 * self._bounds[self._poi][1]

        def sqrt_qa(mu: float) -> float:
            return math.sqrt(self.q_asimov(mu, record=False))

        # target sqrt(qtilde_A) for each band: pure formula, no fits
        targets = []
        for k in range(len(EXPECTED_SIGMAS)):

            def band(t: float, k: int = k) -> float:
                calc = self._calculator(t)
                sb, b = calc.distributions(1.0)
                return float(calc.expected_pvalues(sb, b)[2][k]) - level

            targets.append(scipy.optimize.brentq(band, 1e-9, 50.0, xtol=1e-12))

        sqrt_qa(1.0)
        exp = []
        for target in targets:
            x0, x1 = self._nearest_two(self._q_asimov, target, transform=math.sqrt)

            # decreasing in mu, like log CLs below: the bracketing fallback of _secant_root expects that
            def distance(mu: float, t: float = target) -> float:
                return t - sqrt_qa(mu)

            exp.append(_secant_root(distance, x0, x1, rtol, mu_max))

        def log_cls(mu: float) -> float:
            value = self.cls(mu, record=False).obs
            return math.log(max(value, 1e-300)) - math.log(level)

        median = exp[EXPECTED_SIGMAS.index(0)]
        obs = _secant_root(log_cls, median, median * 1.02, rtol, mu_max)
        n_eval = len(self._q_data) + len(self._q_asimov) - n0
        return UpperLimit(float(obs), tuple(float(v) for v in exp), n_eval)

    def _contradictions(self) -> list[str]:
        """A free fit must end at or below every constrained fit of the same data; say where it does not."""
        out = []
        pairs = (("data", self._free_data, ("bkg", "data")), ("the Asimov dataset", self._free_asimov, ("asimov",)))
        for what, free, kinds in pairs:
            if free is None:
                continue
            below = [
                (fit.twice_nll, mu)
                for kind in kinds
                for mu, fit in self._fitted.get(kind, {}).items()
                if mu is not None and fit.twice_nll < free.twice_nll - self.slack
            ]
            if below:
                value, mu = min(below)
                out.append(
                    f"the free fit to {what} ended above the fit with mu fixed to {mu:g} (-2 log L "
                    f"{free.twice_nll:.6g} > {value:.6g}): the free fit missed the minimum"
                )
        return out

    def verify(self, objective: Any = None) -> list[str]:
        """Refit the fits CLs at mu=1 rests on with another minimiser from the model's own start.

        L-BFGS-B with exact gradients (``objective``, a compiled -2 log L of this model; the fast
        method's own when not given), started from the model's suggested values in variables scaled by
        the structure's curvature, must not find a lower minimum than the fit it checks. Without a compiled
        objective the check is pyhf's MINUIT fit. A verification that ends higher than the fit it checks
        is recorded but is no reason to doubt it: the checked fit found the lower point, and its own slope
        was checked.

        Returns:
            Reasons to doubt the point (empty when every verification agrees).
        """
        objective = objective if objective is not None else getattr(self, "objective", None)
        targets = [
            ("free fit to data", self.data, None, self._free_data),
            ("background-only fit to data", self.data, 0.0, self._fitted.get("bkg", {}).get(0.0)),
            ("fixed-mu fit to data at mu=1", self.data, 1.0, self._fitted.get("data", {}).get(1.0)),
            ("fixed-mu fit to Asimov at mu=1", self._asimov_data, 1.0, self._fitted.get("asimov", {}).get(1.0)),
        ]
        out = []
        how = "L-BFGS-B, exact gradients" if objective is not None else "MINUIT"
        for label, data, mu, primary in targets:
            if primary is None or data is None:
                continue
            self._fitting = f"the verification of the {label}"
            try:
                value, success, message = (
                    self._lbfgsb(objective, data, mu) if objective is not None else self._minuit(data, mu)
                )
            except FitTimeout as exc:
                # out of time: the point is not verified, which is a reason to doubt it, said as such
                out.append(str(exc))
                break
            except Exception as exc:  # any failure of the second minimiser is reported as such
                value, success, message = math.nan, False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # recorded to 1e-6 and with a fixed message: L-BFGS-B's last digits and its choice among its
            # stopping criteria follow the BLAS build (native and container runs differ there), and the
            # record must be the same bytes wherever the same run is made; the decision below uses the value
            self.verifications.append(
                FitQuality(
                    f"verification of the {label} ({how}, from the model's start)",
                    bool(success),
                    0,
                    round(value, 6) if math.isfinite(value) else value,
                    (),
                    True,
                    "converged" if success else message,
                )
            )
            tolerance = max(self.slack, 1e-6)
            if math.isfinite(value) and value < primary.twice_nll - tolerance:
                out.append(
                    f"{label}: a verification fit ({how}, from the model's start) found -2 log L {value:.6g}, "
                    f"{primary.twice_nll - value:.3g} below the fit's {primary.twice_nll:.6g}: the fit did not "
                    "reach the minimum"
                )
        return out

    def _lbfgsb(self, objective: Any, data: Any, mu: float | None) -> tuple[float, bool, str]:
        x0 = np.asarray(self._init, dtype=float)
        free = ~np.asarray(self._fixed, dtype=bool)
        if mu is not None:
            x0[self._poi] = mu
            free[self._poi] = False
        scale = objective.scale[free] if objective.scale is not None else np.ones(int(free.sum()))
        obs = objective.as_data(data)

        def fun(y: np.ndarray) -> tuple[float, np.ndarray]:
            self._check_time()
            x = x0.copy()
            x[free] = y / scale
            value, grad = objective.value_and_grad(x, obs)
            return value, grad[free] / scale

        bounds = list(zip(self._lo[free] * scale, self._hi[free] * scale))
        res = scipy.optimize.minimize(
            fun,
            x0[free] * scale,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 20000, "maxfun": 50000, "ftol": 1e-15, "gtol": 1e-10},
        )
        return float(res.fun), bool(res.success), str(res.message)

    def _minuit(self, data: Any, mu: float | None) -> tuple[float, bool, str]:
        fixed = [(i, v) for i, (f, v) in enumerate(zip(self._fixed, self._init)) if f]
        init = list(self._init)
        if mu is not None:
            init[self._poi] = mu
            fixed = [f for f in fixed if f[0] != self._poi] + [(self._poi, mu)]
        optimizer = pyhf.optimize.minuit_optimizer(tolerance=1e-4)
        _, value, res = optimizer.minimize(
            self._timed(pyhf.infer.mle.twice_nll),
            np.asarray(data, dtype=float),
            self.model,
            init,
            self._bounds,
            fixed,
            return_fitted_val=True,
            return_result_obj=True,
        )
        return float(value), bool(res.success), str(getattr(res, "message", ""))

    @staticmethod
    def _nearest_two(
        cache: dict[float, float], target: float, transform: Callable[[float], float]
    ) -> tuple[float, float]:
        # start the secant from the two evaluated mu whose value is closest to the target
        ranked = sorted(cache, key=lambda mu: abs(transform(cache[mu]) - target))
        usable = [mu for mu in ranked if cache[mu] > 0]
        if len(usable) >= 2:
            return usable[0], usable[1]
        mu = usable[0] if usable else 1.0
        guess = mu * target / transform(cache[mu]) if cache.get(mu, 0) > 0 else mu
        return guess, guess * 1.02

    def issues(self) -> list[str]:
        """Reasons, over all fits, not to trust this point."""
        out: list[str] = []
        for fit in self.fits:
            out.extend(fit.issues())
        out.extend(self._contradictions())
        doubtful = [f for f in self.search_fits if f.issues()]
        if doubtful:
            mus = ", ".join(f.label.rsplit("=", 1)[-1] for f in doubtful[:4])
            out.append(
                f"upper-limit search: {len(doubtful)} of {len(self.search_fits)} fits doubtful "
                f"(mu = {mus}{' ...' if len(doubtful) > 4 else ''}): {doubtful[0].issues()[0]}"
            )
        return out


#: Convergence tolerance of the fast path's fits. pyhf's default (SLSQP's 1e-6 on -2 log L, numerical
#: gradients) leaves CLs uncertain at the 1e-4 level (measured on ATLAS-SUSY-2018-31); with exact
#: gradients converging 6 orders further costs a few iterations more.
FAST_TOLERANCE = 1e-12


def newton_step(
    x: np.ndarray,
    start: np.ndarray,
    gradient: np.ndarray,
    curvature: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    free: np.ndarray,
) -> tuple[float, float]:
    """How far a fit ended from a minimum, and how far it moved, from the slope at its end.

    Args:
        x: all parameters at the end of the fit.
        start: all parameters at its start.
        gradient: d(-2 log L)/d(parameter) at ``x``, free parameters only.
        curvature: the diagonal second derivatives there (NaN or <= 0 where unknown: taken as that of
            a unit Gaussian constraint, 2), free parameters only.
        lo: lower bounds of all parameters.
        hi: upper bounds of all parameters.
        free: which parameters were fitted.

    Returns:
        ``(decrement, shift)``: the fall of -2 log L a Newton step would give (components pushing
        against a bound the parameter sits on left out), and the largest move of a free parameter in
        units of its uncertainty sqrt(2 / curvature).
    """
    xf, sf = x[free], start[free]
    span = hi[free] - lo[free]
    gradient = np.asarray(gradient, dtype=float).copy()
    blocked = ((xf - lo[free] <= 1e-9 * span) & (gradient > 0)) | ((hi[free] - xf <= 1e-9 * span) & (gradient < 0))
    gradient[blocked] = 0.0
    h = np.asarray(curvature, dtype=float)
    h = np.where(np.isfinite(h) & (h > 0), h, 2.0)
    if not np.all(np.isfinite(gradient)):
        return math.inf, math.inf
    decrement = float(0.5 * np.sum(gradient**2 / h))
    shift = float(np.max(np.abs(xf - sf) / np.sqrt(2.0 / h))) if xf.size else 0.0
    return decrement, shift


def relaxable_bounds(model: pyhf.pdf.Model) -> np.ndarray:
    """Which parameters' bounds a first fit attempt may leave out.

    These are the parameters that only ``normsys`` and ``histosys`` modifiers use: Gaussian-constrained
    nuisance parameters whose bounds (by default +-5) are a convention of the fit rather than
    the edge of where the likelihood is defined. Normalisation factors, the POI and the gamma
    factors of ``staterror``/``shapesys`` keep theirs (rates turn negative below 0).

    Args:
        model: a pyhf model.

    Returns:
        One flag per parameter, in pyhf's parameter order.
    """
    cfg = model.config
    types: dict[str, set[str]] = {}
    for name, kind in cfg.modifiers:
        types.setdefault(name, set()).add(kind)
    flags = np.zeros(cfg.npars, dtype=bool)
    for name in cfg.par_order:
        if types.get(name) and types[name] <= {"normsys", "histosys"}:
            flags[cfg.par_slice(name)] = True
    return flags


class FastLikelihood(Likelihood):
    """The same statistics as :class:`Likelihood`, fitted through a compiled objective.

    Differences from pyhf's reference computation, none of which changes what is computed:
    the gradient is exact (JAX) instead of numerical; every fit is converged to
    ``tolerance``; fits start from the nearest previous fit of the same dataset (the
    fixed-mu fit to data from the free fit, the Asimov fits from the background-only
    fit); and the free fit to the background-only Asimov dataset is not run at all,
    because that dataset is by construction maximised by the parameters it was made from
    (mu = 0 and the background-only fit's nuisance parameters), so its -2 log L is one
    evaluation. Each fit is first tried without the bounds of the normsys/histosys nuisance
    parameters (cheaper for SLSQP); its minimum is kept only if it lies inside every bound,
    where it is also the bounded problem's minimum, and the fit is redone with all bounds
    otherwise. Fits run in variables scaled by the curvature at the first free fit's minimum of
    the grid structure (:attr:`recastflow.stats.compiled.Objective.scale`), which SLSQP needs about
    three times fewer evaluations to converge in; a fit that fails scaled is redone unscaled.

    Args:
        model: the pyhf model (numpy backend).
        data: observations followed by auxiliary data.
        objective: the compiled -2 log L of ``model`` (see :mod:`recastflow.stats.compiled`).
        tolerance: fit convergence tolerance on -2 log L.
        maxiter: iteration limit per fit.
        timeout_s: wall-clock bound of all fits (see :class:`Likelihood`).
    """

    def __init__(
        self,
        model: pyhf.pdf.Model,
        data: Any,
        objective: Any,
        tolerance: float = FAST_TOLERANCE,
        maxiter: int = 100000,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(model, data, timeout_s=timeout_s)
        self.objective = objective
        self.tolerance = tolerance
        self.maxiter = maxiter
        # converged to 1e-12: fits that disagree by more than rounding contradict each other
        self.slack = max(1e-6, 100.0 * tolerance)
        self._relaxable = relaxable_bounds(model)

    _cheap_slope = True

    def _twice_nll(self, pars: np.ndarray, data: Any) -> float:
        return self.objective.value(np.asarray(pars, dtype=float), self.objective.as_data(data))

    def _slope(self, x: np.ndarray, data: Any, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact gradient, and the diagonal curvature where it matters.

        The structure's curvature (:attr:`Objective.scale` squared) is clipped and belongs to another
        fit; wherever it would make a parameter's share of the Newton decrement count (the stiff gamma
        factors of a ``shapesys`` with 1e-5 uncertainties are 1e4 times stiffer than the clip), the
        curvature is measured at ``x`` by a difference of exact gradients.
        """
        x = np.asarray(x, dtype=float)
        obs = self.objective.as_data(data)
        _, grad = self.objective.value_and_grad(x, obs)
        grad = np.asarray(grad)
        scale = self.objective.scale
        curvature = np.asarray(scale, dtype=float) ** 2 if scale is not None else np.full(x.size, 2.0)
        share = 0.5 * grad**2 / curvature
        for i in np.flatnonzero(free & (share > 1e-2 * DECREMENT_LIMIT)):
            # a step of 1e-3 of the parameter's uncertainty as the structure's curvature has it
            h = 1e-3 * math.sqrt(2.0 / curvature[i]) * max(1.0, abs(x[i]))
            if x[i] + h > self._hi[i]:
                h = -h
            step = x.copy()
            step[i] += h
            _, g = self.objective.value_and_grad(step, obs)
            measured = (float(g[i]) - float(grad[i])) / h
            curvature[i] = measured if math.isfinite(measured) and measured > 0 else math.nan
        return grad[free], curvature[free]

    def _warm_start(self, start: str, poi_value: float | None) -> list[float] | None:
        def nearest(kind: str) -> _Fit | None:
            done = {mu: f for mu, f in self._fitted.get(kind, {}).items() if mu is not None}
            if not done or poi_value is None:
                return None
            return done[min(done, key=lambda mu: abs(mu - poi_value))]

        if start == "bkg":
            fit = self._free_data
        elif start == "data":
            fit = nearest("data") or self._free_data
        else:
            fit = nearest("asimov") or self._fitted.get("bkg", {}).get(0.0)
        return list(fit.pars) if fit is not None else None

    def _minimize(self, data: Any, init: list[float], fixed: list[bool], label: str) -> tuple[Any, float, Any]:
        free = ~np.asarray(fixed, dtype=bool)
        obs = self.objective.as_data(data)
        x0 = np.asarray(init, dtype=float)
        learnt = self.objective.scale
        # SLSQP starts every fit knowing nothing of the curvature (its quasi-Newton matrix is the identity) and
        # spends most of its iterations learning it: 1Lbb, 126 parameters, about 100 evaluations per fit.
        # In variables scaled by the curvature at a previous point's minimum the identity is a good guess
        # (about 30). The scale changes the path, not the problem; a fit that fails scaled is redone unscaled.
        for scale in ([learnt] if learnt is not None else []) + [np.ones(x0.size)]:
            res = self._fit_chain(obs, x0, free, scale)
            if res.success and np.all(np.isfinite(res.x)):
                break
        else:
            self.fits.append(FitQuality(label, False, int(res.nit), math.nan, (), True, str(res.message)))
            raise FitFailed(f"{label} did not converge: {res.message}")
        if learnt is None and free[self._poi] and np.all(free | np.asarray(self._fixed, dtype=bool)):
            # the first free fit of a structure: its minimum is where the scale is learnt
            x = x0.copy()
            x[free] = res.x
            self.objective.scale = self._curvature_scale(x, obs, free)
        return self._accept(res, init, free)

    def _fit_chain(self, obs: Any, x0: np.ndarray, free: np.ndarray, scale: np.ndarray) -> Any:
        """One fit in variables multiplied by ``scale``: the relaxed attempt, then with every bound.

        Returns:
            scipy's result, in the original variables: the relaxed one if it is accepted, else the
            fully bounded one (successful or not).
        """
        if self._relaxable[free].any():
            # SLSQP turns every bound into two inequality constraints of its quadratic subproblem, which then
            # costs more than the likelihood (1Lbb: 125 free parameters, 250 constraints). The bounds of the
            # nuisance parameters of normsys/histosys are first left out; a minimum found inside all of them is
            # a minimum of the bounded problem (no bound is active there) and is kept. Otherwise the fit is
            # redone with every bound, from the same start.
            # The relaxed first steps may leave the region where every rate is positive (non-finite values,
            # which SLSQP steps back from); an attempt counts only if it converged to a finite minimum.
            res = self._slsqp(obs, x0, free, relaxed=True, scale=scale)
            if res.success and np.isfinite(res.fun) and self._inside(res.x, free):
                return res
        return self._slsqp(obs, x0, free, relaxed=False, scale=scale)

    def _curvature_scale(self, x: np.ndarray, obs: Any, free: np.ndarray) -> np.ndarray:
        """Square roots of the diagonal of the Hessian of -2 log L at ``x`` (forward differences of the gradient).

        Free parameters only (the others get 1); clipped to [1e-2, 1e3], and 1 where the curvature is
        not positive, so that no parameter's steps become huge or vanish.
        """
        _, g0 = self.objective.value_and_grad(x, obs)
        scale = np.ones(x.size)
        for i in np.flatnonzero(free):
            h = 1e-5 * max(1.0, abs(x[i]))
            if x[i] + h > self._hi[i]:
                h = -h
            step = x.copy()
            step[i] += h
            _, g = self.objective.value_and_grad(step, obs)
            curvature = (g[i] - g0[i]) / h
            if np.isfinite(curvature) and curvature > 0:
                scale[i] = float(np.clip(np.sqrt(curvature), 1e-2, 1e3))
        return scale

    def _slsqp(self, obs: Any, x0: np.ndarray, free: np.ndarray, relaxed: bool, scale: np.ndarray) -> Any:
        """SLSQP on the free parameters, from ``x0``, with exact gradients.

        Args:
            obs: the dataset (as :meth:`Objective.as_data` returns it).
            x0: all parameters (fixed ones at their values).
            free: which parameters are fitted.
            relaxed: leave out the bounds :func:`relaxable_bounds` allows (one attempt, no cold retry).
            scale: SLSQP works on ``x * scale``; the result is returned in ``x``.
        """
        x = x0.copy()
        s = scale[free]

        def fun(y: np.ndarray) -> tuple[float, np.ndarray]:
            self._check_time()
            x[free] = y / s
            value, grad = self.objective.value_and_grad(x, obs)
            return value, grad[free] / s

        lo, hi = self._lo[free], self._hi[free]
        if relaxed:
            off = self._relaxable[free]
            lo, hi = np.where(off, -np.inf, lo), np.where(off, np.inf, hi)
        bounds = list(zip(lo * s, hi * s))
        with warnings.catch_warnings():
            # SLSQP's line search can step past a bound by rounding (more often in scaled variables); scipy
            # then evaluates at the bound and says so on every fit of a grid. The clipping is what we want.
            warnings.filterwarnings("ignore", "Values in x were outside bounds", RuntimeWarning)
            res = scipy.optimize.minimize(
                fun,
                x0[free] * s,
                method="SLSQP",
                jac=True,
                bounds=bounds,
                tol=self.tolerance,
                options={"maxiter": self.maxiter},
            )
            if res.status == 8 and np.all(np.isfinite(res.x)):
                # "positive directional derivative in linesearch": SLSQP's way of saying it cannot improve at
                # this tolerance. Restart from where it stopped with a looser tolerance (still far tighter than
                # pyhf's default 1e-6): success there means the minimum is as good as the reference's.
                res = scipy.optimize.minimize(
                    fun,
                    res.x.copy(),
                    method="SLSQP",
                    jac=True,
                    bounds=bounds,
                    tol=max(self.tolerance, 1e-9),
                    options={"maxiter": self.maxiter},
                )
            if not res.success and not relaxed:
                # a warm start can sit in a corner the cold start avoids: last try from the model's suggestion
                cold = np.asarray(self._init, dtype=float)[free] * s
                retry = scipy.optimize.minimize(
                    fun,
                    cold,
                    method="SLSQP",
                    jac=True,
                    bounds=bounds,
                    tol=max(self.tolerance, 1e-9),
                    options={"maxiter": self.maxiter},
                )
                if retry.success:
                    res = retry
        res.x = res.x / s
        return res

    def _inside(self, y: np.ndarray, free: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(y)) and np.all(y >= self._lo[free]) and np.all(y <= self._hi[free]))

    @staticmethod
    def _accept(res: Any, init: list[float], free: np.ndarray) -> tuple[Any, float, Any]:
        x = np.asarray(init, dtype=float)
        x[free] = res.x
        return x, float(res.fun), res

    @property
    def free_asimov(self) -> _Fit:
        """The free fit to the Asimov dataset: exactly the parameters the dataset was made from."""
        if self._free_asimov is None:
            asimov = self.asimov_data
            bkg = self._fitted["bkg"][0.0]
            value = self.objective.value(bkg.pars, self.objective.as_data(asimov))
            self._free_asimov = _Fit(bkg.pars.copy(), value)
            self.fits.append(
                FitQuality(
                    "free fit to Asimov (not fitted: the background-only fit's parameters maximise it)",
                    True,
                    0,
                    value,
                    (),
                    True,
                    "exact by construction",
                )
            )
        return self._free_asimov


def _secant_root(fn: Callable[[float], float], x0: float, x1: float, rtol: float, mu_max: float = math.inf) -> float:
    """Root of a function of mu > 0 that decreases through zero, by secant steps, Brent as fallback.

    Beyond ``mu_max`` the search stops: CLs that stays above the level that far has no upper limit
    worth quoting (a signal the analysis is not sensitive to), and fits there are meaningless.
    """

    def beyond(x: float) -> bool:
        if x > mu_max:
            raise RecastError(
                f"CLs stays above the requested level up to mu = {mu_max:g}: "
                "the analysis is not sensitive enough to this signal for an upper limit"
            )
        return False

    f0, f1 = fn(x0), fn(x1)
    for _ in range(25):
        if f1 == f0:
            break
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0)
        if not math.isfinite(x2) or x2 <= 0:
            break
        # a secant step on a flat stretch can jump by orders of magnitude, to a mu where fits fail;
        # steps of at most a factor 4 still converge superlinearly near the root
        x2 = min(max(x2, x1 / 4.0), x1 * 4.0)
        beyond(x2)
        if abs(x2 - x1) <= rtol * x2:
            return x2
        x0, f0, x1, f1 = x1, f1, x2, fn(x2)
    # fall back: bracket from the last point, then Brent
    lo = hi = x1 if x1 > 0 else 1.0
    f_lo = f_hi = fn(lo)
    for _ in range(60):
        if f_lo > 0 > f_hi:
            return float(scipy.optimize.brentq(fn, lo, hi, rtol=rtol))
        if f_hi >= 0:
            lo, f_lo = hi, f_hi
            hi *= 1.5
            beyond(hi)
            f_hi = fn(hi)
        else:
            hi, f_hi = lo, f_lo
            lo /= 1.5
            f_lo = fn(lo)
    raise RecastError("could not bracket the upper limit: CLs never crosses the requested level")


def _flat_par_names(model: pyhf.pdf.Model) -> list[str]:
    names = []
    for name in model.config.par_order:
        n = model.config.param_set(name).n_parameters
        names.extend([name] if n == 1 else [f"{name}[{i}]" for i in range(n)])
    return names
