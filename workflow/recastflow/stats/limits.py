"""Per-point limit setting and grid tables."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyhf

from recastflow.core.errors import RecastError
from recastflow.stats.inference import (
    DEFAULT_TIMEOUT_S,
    EXPECTED_SIGMAS,
    FAST_TOLERANCE,
    FastLikelihood,
    FitFailed,
    Likelihood,
)
from recastflow.stats.patching import apply_patch, build_model_and_data

STATUSES = ("trusted", "flagged", "failed")
#: How limits are computed: "fast" (one compiled likelihood per grid structure, exact gradients,
#: converged fits) or "exact" (pyhf's own fits, as pyhf.infer.hypotest runs them).
METHODS = ("fast", "exact")
BATCH_FORMAT = "recastflow-limits-batch/1"


@dataclass
class PointResult:
    """Everything the limits stage says about one signal point.

    ``status`` is ``trusted`` when every check passed (each fit converged, ended below its start
    with no slope left and inside its bounds, free fits below constrained ones, verification fits
    agreeing, the requested method used); ``flagged`` when a result exists but something gave a
    reason to doubt it (listed in ``issues``); ``failed`` when a fit did not converge and no number
    is quoted.
    """

    analysis: str
    grid: str
    point: str
    workspace: str
    values: dict[str, float]
    xsec_pb: float | None
    xsec_source: str | None
    status: str = "trusted"
    issues: list[str] = field(default_factory=list)
    cls_obs: float | None = None
    cls_exp: list[float] | None = None
    excluded_obs: bool | None = None
    excluded_exp: bool | None = None
    mu_ul_obs: float | None = None
    mu_ul_exp: list[float] | None = None
    xsec_ul_obs_pb: float | None = None
    xsec_ul_exp_pb: list[float] | None = None
    cl: float = 0.95
    #: how the point was computed: "fast", "exact", or "exact-converged" (a fallback from fast)
    method: str = ""
    #: why the requested method was not used (None when it was)
    fallback: str | None = None
    fits: list[dict[str, Any]] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


#: Exact-method fits converged this far when a point falls back from the fast method.
CONVERGED_TOLERANCE = 1e-10
FALLBACKS = ("exact-converged", "none")
#: Issues that say a fit stopped short (the messages of :class:`recastflow.stats.inference.FitQuality` and
#: :meth:`recastflow.stats.inference.Likelihood.verify`), which converged fits cure.
_SHORT_FIT_SIGNS = ("stopped short", "did not move", "rose from", "missed the minimum", "did not reach the minimum")


def _near_level(cls: Any, level: float) -> bool:
    """CLs observed or expected median within a factor 2 of the level: the verdict could change.

    Converged fits that pass their own checks (start, slope, free below constrained) are wrong only in a
    distinct local minimum; the verification looks for one where it would matter. A factor 2 either side
    covers the points that draw the contour; on the 1Lbb validation points (all near the contour) a factor 3
    verified 5 of 7 and made the grid's CLs 21% slower.
    """
    median = cls.exp[EXPECTED_SIGMAS.index(0)]
    return any(level / 2.0 <= v <= 2.0 * level for v in (cls.obs, median))


def evaluate_point(
    bkg: dict[str, Any],
    ops: list[dict[str, Any]],
    result: PointResult,
    *,
    upper_limit: bool,
    fit_options: dict[str, Any] | None = None,
    source: Path | str = "",
    method: str = "exact",
    compiler: Any = None,
    fallback: str = "exact-converged",
    verify: str = "near",
    analysis: Any = None,
    wsref: Any = None,
) -> PointResult:
    """Observed CLs and expected band at mu=1, and optionally upper limits, for one point.

    Every fit is judged (:class:`recastflow.stats.inference.FitQuality`), free fits are compared with the
    constrained fits of the same data, and points whose verdict could change (or that show any warning
    sign) get verification fits by another minimiser. Any doubt flags the point with the reason.

    Args:
        bkg: background-only workspace (a grid passes it through
            :func:`recastflow.stats.patching.shared_copy` once, to spare every point copying it).
        ops: the point's signal patch.
        result: record with the point's identity filled in; completed and returned.
        upper_limit: also compute upper limits on mu (and on the cross-section if known).
        fit_options: options for the optimiser (``maxiter``, ``tolerance``), and ``timeout_s``, the wall-clock
            bound of the point's fits (default :data:`recastflow.stats.inference.DEFAULT_TIMEOUT_S`): past it the
            point fails (or, in its verification or upper-limit search, is flagged) with the reason.
        source: where the patch came from (for messages).
        method: ``"fast"`` or ``"exact"`` (see :data:`METHODS`).
        compiler: a :class:`recastflow.stats.compiled.LikelihoodCompiler` shared by the points of a
            grid (one is made if not given; the exact method uses it for verification fits).
        fallback: what a point gets when the fast method cannot reproduce its likelihood
            (see :data:`FALLBACKS`); a change of method is recorded in ``result.method`` and
            ``result.fallback`` and is the first of the point's issues.
        verify: ``"near"`` (points near the level or with warnings) or ``"all"``.
        analysis: the bundle, to check the patched likelihood against its POI and regions (with ``wsref``).
        wsref: the bundle's entry for the workspace.

    Returns:
        ``result``, completed.
    """
    from recastflow.stats.compiled import CompileMismatch, LikelihoodCompiler

    spec = apply_patch(bkg, ops, source, build_model=False, analysis=analysis, wsref=wsref)
    options = dict(fit_options or {})
    # the wall-clock bound is not an optimiser option: it bounds all the point's fits together
    timeout_s = options.pop("timeout_s", None) or DEFAULT_TIMEOUT_S
    compiler = compiler or LikelihoodCompiler()
    lik: Likelihood
    objective = None
    result.method = method
    if method == "fast":
        # points whose signals carry different subsets of the systematics share one compiled structure
        model, data = build_model_and_data(compiler.pad(spec), source)
        try:
            objective = compiler.objective(model, data, source=f"{result.grid}/{result.point}")
        except CompileMismatch as exc:
            if fallback == "none":
                result.status = "failed"
                result.issues = [*result.issues, f"method fast: {exc} (limits: fallback is 'none')"]
                return result
            result.fallback = (
                f"fast -> exact-converged: {exc}; computed with pyhf's own fits at tolerance {CONVERGED_TOLERANCE:g}"
            )
            method = "exact"
            options["tolerance"] = min(options.get("tolerance") or CONVERGED_TOLERANCE, CONVERGED_TOLERANCE)
            result.method = "exact-converged"
        else:
            tolerance = options.get("tolerance") or FAST_TOLERANCE
            lik = FastLikelihood(
                model, data, objective, tolerance=tolerance, maxiter=options.get("maxiter", 100000), timeout_s=timeout_s
            )
            result.software = {
                "pyhf": pyhf.__version__,
                "method": "fast",
                "backend": "jax (compiled, shared)",
                "optimizer": f"scipy SLSQP, exact gradients, tolerance {tolerance:g}",
            }
    if method == "exact":
        model, data = build_model_and_data(spec, source)
        lik = Likelihood(model, data, fit_options=options, timeout_s=timeout_s)
        tol = options.get("tolerance")
        result.software = {
            "pyhf": pyhf.__version__,
            "method": result.method,
            "backend": "numpy",
            "optimizer": f"scipy SLSQP (pyhf), tolerance {tol:g}" if tol else "scipy SLSQP (pyhf defaults)",
        }
        if result.fallback:
            result.software["note"] = result.fallback
    level = 1.0 - result.cl
    try:
        cls = lik.cls(1.0)
        result.cls_obs = cls.obs
        result.cls_exp = list(cls.exp)
        result.excluded_obs = cls.obs < level
        result.excluded_exp = cls.exp[EXPECTED_SIGMAS.index(0)] < level
    except FitFailed as exc:
        result.status = "failed"
        result.issues = [*result.issues, str(exc)]
        result.fits = [f.to_dict() for f in lik.fits]
        return result
    doubts = lik.issues()
    if verify == "all" or doubts or _near_level(cls, level):
        if objective is None and method == "exact":
            try:
                padded_model, padded_data = build_model_and_data(compiler.pad(spec), source)
                objective = compiler.objective(padded_model, padded_data, source=f"{result.grid}/{result.point}")
            except CompileMismatch:
                objective = None  # verified by MINUIT instead
        doubts = doubts + lik.verify(objective)
    ul_issue = None
    if upper_limit:
        try:
            ul = lik.upper_limit(level=level)
        except RecastError as exc:  # FitFailed is one: a search fit failed, or CLs never crossed the level
            # the CLs at mu=1 stands; only the upper limit is missing, and the point says why. A search whose
            # fits are doubtful did not show that the analysis is insensitive: it failed
            doubtful = [i for i in lik.issues() if i not in doubts]
            ul_issue = (
                f"no upper limit: the search failed, its fits are doubtful ({doubtful[0]})"
                if doubtful
                else f"no upper limit: {exc}"
            )
        else:
            result.mu_ul_obs = ul.obs
            result.mu_ul_exp = list(ul.exp)
            if result.xsec_pb is not None:
                result.xsec_ul_obs_pb = ul.obs * result.xsec_pb
                result.xsec_ul_exp_pb = [v * result.xsec_pb for v in ul.exp]
        # the search's own fits, judged after it
        doubts = doubts + [i for i in lik.issues() if i not in doubts]
    if result.method == "exact" and any(sign in i for i in doubts for sign in _SHORT_FIT_SIGNS):
        doubts.append(
            "pyhf's fits at their default tolerance stopped short on this likelihood: limits method "
            "'fast' (exact gradients, converged) or fit: {tolerance: 1e-10} gives the converged values"
        )
    # every entry of issues is a reason to doubt the point (the caller may have added some, e.g. a
    # flagged reweighting); a fallback of method is one too: it is stated wherever the point is shown
    result.issues = (
        result.issues + ([result.fallback] if result.fallback else []) + doubts + ([ul_issue] if ul_issue else [])
    )
    result.status = "flagged" if result.issues else "trusted"
    result.fits = [f.to_dict() for f in lik.fits + lik.verifications]
    return result


TABLE_COLUMNS = (
    "point",
    "status",
    "method",
    "cls_obs",
    "cls_exp_m2",
    "cls_exp_m1",
    "cls_exp",
    "cls_exp_p1",
    "cls_exp_p2",
    "excluded_obs",
    "excluded_exp",
    "xsec_pb",
    "mu_ul_obs",
    "mu_ul_exp",
    "mu_ul_exp_m1",
    "mu_ul_exp_p1",
    "xsec_ul_obs_pb",
    "xsec_ul_exp_pb",
    "issues",
)


def table_rows(records: list[dict[str, Any]], parameters: list[str] | None = None) -> list[dict[str, Any]]:
    """Flatten point records into table rows, grid parameters first.

    Args:
        records: point records of one grid.
        parameters: the grid's parameters in the grid file's order (default: as stored).
    """
    rows = []
    for r in records:
        names = parameters or list(r["values"])
        row: dict[str, Any] = {
            "point": r["point"],
            **{k: r["values"][k] for k in names},
            "status": r["status"],
            "method": r.get("method") or (r.get("software") or {}).get("method", ""),
        }
        exp = r.get("cls_exp") or [None] * 5
        row.update(
            {
                "cls_obs": r.get("cls_obs"),
                "cls_exp_m2": exp[0],
                "cls_exp_m1": exp[1],
                "cls_exp": exp[2],
                "cls_exp_p1": exp[3],
                "cls_exp_p2": exp[4],
            }
        )
        row.update(
            {"excluded_obs": r.get("excluded_obs"), "excluded_exp": r.get("excluded_exp"), "xsec_pb": r.get("xsec_pb")}
        )
        mexp = r.get("mu_ul_exp") or [None] * 5
        xexp = r.get("xsec_ul_exp_pb") or [None] * 5
        row.update(
            {
                "mu_ul_obs": r.get("mu_ul_obs"),
                "mu_ul_exp": mexp[2],
                "mu_ul_exp_m1": mexp[1],
                "mu_ul_exp_p1": mexp[3],
                "xsec_ul_obs_pb": r.get("xsec_ul_obs_pb"),
                "xsec_ul_exp_pb": xexp[2],
            }
        )
        row["issues"] = "; ".join(r.get("issues") or [])
        rows.append(row)
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """Render table rows as CSV with full float precision (repr)."""
    buf = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def summary(records: list[dict[str, Any]]) -> dict[str, int]:
    """Count points per status, and the points computed with another method than requested (``fallback``)."""
    counts = {s: sum(1 for r in records if r["status"] == s) for s in STATUSES}
    counts["fallback"] = sum(1 for r in records if r.get("fallback"))
    return counts
