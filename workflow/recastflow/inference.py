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

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyhf
import scipy.optimize
import scipy.stats

from recastflow.errors import RecastError

#: Order of the expected band, as pyhf returns it.
EXPECTED_SIGMAS: tuple[int, ...] = (-2, -1, 0, 1, 2)


class FitFailed(RecastError):
    """A minimisation did not converge; the point cannot be quoted."""


@dataclass(frozen=True)
class FitQuality:
    """How one maximum-likelihood fit went.

    Attributes:
        label: which fit this was, e.g. ``"free fit to data"``.
        converged: the minimiser reported success.
        iterations: minimiser iterations.
        twice_nll: -2 log L at the minimum.
        at_bounds: free parameters (POI excluded) that ended on a bound.
        moved: False when no free parameter left its starting value.
        message: the minimiser's own message.
    """

    label: str
    converged: bool
    iterations: int
    twice_nll: float
    at_bounds: tuple[str, ...]
    moved: bool
    message: str

    def issues(self) -> list[str]:
        """Return human-readable reasons not to trust this fit (empty if none)."""
        out = []
        if not self.converged:
            out.append(f"{self.label}: did not converge ({self.message})")
        if self.at_bounds:
            names = ", ".join(self.at_bounds[:4]) + (" ..." if len(self.at_bounds) > 4 else "")
            out.append(f"{self.label}: {len(self.at_bounds)} parameter(s) at a bound ({names})")
        if not self.moved:
            out.append(f"{self.label}: never left its starting point")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "label": self.label,
            "converged": self.converged,
            "iterations": self.iterations,
            "twice_nll": self.twice_nll,
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
    """

    model: pyhf.pdf.Model
    data: Any
    fit_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cfg = self.model.config
        if cfg.poi_index is None:
            raise RecastError("the model has no parameter of interest; set measurements[0].config.poi")
        self._poi = cfg.poi_index
        self._init = list(cfg.suggested_init())
        self._bounds = [tuple(b) for b in cfg.suggested_bounds()]
        self._fixed = list(cfg.suggested_fixed())
        if self._bounds[self._poi][0] != 0:
            raise RecastError(
                f"POI '{cfg.poi_name}' has lower bound {self._bounds[self._poi][0]}; "
                "the qtilde test statistic needs 0"
            )
        self._names = _flat_par_names(self.model)
        self.fits: list[FitQuality] = []
        self.search_fits: list[FitQuality] = []
        self._free_data: _Fit | None = None
        self._free_asimov: _Fit | None = None
        self._asimov_data: Any = None
        self._q_data: dict[float, float] = {}
        self._q_asimov: dict[float, float] = {}
        self._fitted: dict[str, dict[float | None, _Fit]] = {}

    # -- fits -----------------------------------------------------------------
    def _fit(
        self, data: Any, label: str, poi_value: float | None = None, record: bool = True, start: str = ""
    ) -> _Fit:
        init = list(self._init)
        fixed = list(self._fixed)
        warm = self._warm_start(start, poi_value) if start else None
        if warm is not None:
            init = list(warm)
        if poi_value is not None:
            # exactly what pyhf.infer.mle.fixed_poi_fit does
            init[self._poi] = poi_value
            fixed[self._poi] = True
        pars, fval, res = self._minimize(data, init, fixed, label)
        pars = np.asarray(pars, dtype=float)
        # "moved" is judged against the model's own start, also when the fit was warm-started
        reference = list(self._init)
        if poi_value is not None:
            reference[self._poi] = poi_value
        quality = self._quality(label, pars, float(fval), res, reference, fixed)
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
            return pyhf.infer.mle.fit(
                data,
                self.model,
                init,
                bounds,
                fixed,
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
            raise FitFailed(f"{label} did not converge: {msg}") from None

    def _quality(
        self, label: str, pars: np.ndarray, fval: float, res: Any, init: list[float], fixed: list[bool]
    ) -> FitQuality:
        at_bounds = []
        moved = False
        for i, (value, (lo, hi)) in enumerate(zip(pars, self._bounds)):
            if fixed[i]:
                continue
            if value != init[i]:
                moved = True
            if i == self._poi:
                continue  # mu-hat at 0 is the normal qtilde situation, not a fit problem
            tol = 1e-6 * (hi - lo)
            if value - lo < tol or hi - value < tol:
                at_bounds.append(self._names[i])
        return FitQuality(
            label=label,
            converged=bool(getattr(res, "success", True)),
            iterations=int(getattr(res, "nit", 0) or 0),
            twice_nll=fval,
            at_bounds=tuple(at_bounds),
            moved=moved,
            message=str(getattr(res, "message", "")),
        )

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
            exp.append(_secant_root(lambda mu, t=target: t - sqrt_qa(mu), x0, x1, rtol, mu_max))

        def log_cls(mu: float) -> float:
            value = self.cls(mu, record=False).obs
            return math.log(max(value, 1e-300)) - math.log(level)

        median = exp[EXPECTED_SIGMAS.index(0)]
        obs = _secant_root(log_cls, median, median * 1.02, rtol, mu_max)
        n_eval = len(self._q_data) + len(self._q_asimov) - n0
        return UpperLimit(float(obs), tuple(float(v) for v in exp), n_eval)

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
    the grid structure (:attr:`recastflow.compiled.Objective.scale`), which SLSQP needs about
    three times fewer evaluations to converge in; a fit that fails scaled is redone unscaled.

    Args:
        model: the pyhf model (numpy backend).
        data: observations followed by auxiliary data.
        objective: the compiled -2 log L of ``model`` (see :mod:`recastflow.compiled`).
        tolerance: fit convergence tolerance on -2 log L.
        maxiter: iteration limit per fit.
    """

    def __init__(
        self, model: pyhf.pdf.Model, data: Any, objective: Any, tolerance: float = FAST_TOLERANCE,
        maxiter: int = 100000,
    ) -> None:
        super().__init__(model, data)
        self.objective = objective
        self.tolerance = tolerance
        self.maxiter = maxiter
        self._lo, self._hi = (np.asarray(b, dtype=float) for b in zip(*self._bounds))
        self._relaxable = relaxable_bounds(model)

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
                fun, x0[free] * s, method="SLSQP", jac=True, bounds=bounds, tol=self.tolerance,
                options={"maxiter": self.maxiter},
            )
            if res.status == 8 and np.all(np.isfinite(res.x)):
                # "positive directional derivative in linesearch": SLSQP's way of saying it cannot improve at
                # this tolerance. Restart from where it stopped with a looser tolerance (still far tighter than
                # pyhf's default 1e-6): success there means the minimum is as good as the reference's.
                res = scipy.optimize.minimize(
                    fun, res.x.copy(), method="SLSQP", jac=True, bounds=bounds, tol=max(self.tolerance, 1e-9),
                    options={"maxiter": self.maxiter},
                )
            if not res.success and not relaxed:
                # a warm start can sit in a corner the cold start avoids: last try from the model's suggestion
                cold = np.asarray(self._init, dtype=float)[free] * s
                retry = scipy.optimize.minimize(
                    fun, cold, method="SLSQP", jac=True, bounds=bounds, tol=max(self.tolerance, 1e-9),
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
            self.fits.append(FitQuality(
                "free fit to Asimov (not fitted: the background-only fit's parameters maximise it)",
                True, 0, value, (), True, "exact by construction",
            ))
        return self._free_asimov


def _secant_root(
    fn: Callable[[float], float], x0: float, x1: float, rtol: float, mu_max: float = math.inf
) -> float:
    """Root of a function of mu > 0 that decreases through zero, by secant steps, Brent as fallback.

    Beyond ``mu_max`` the search stops: CLs that stays above the level that far has no upper limit
    worth quoting (a signal the analysis is not sensitive to), and fits there are meaningless.
    """

    def beyond(x: float) -> bool:
        if x > mu_max:
            raise RecastError(f"CLs stays above the requested level up to mu = {mu_max:g}: "
                              "the analysis is not sensitive enough to this signal for an upper limit")
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
