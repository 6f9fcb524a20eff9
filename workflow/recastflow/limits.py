"""Per-point limit setting and grid tables."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyhf

from recastflow.errors import RecastError
from recastflow.inference import EXPECTED_SIGMAS, FAST_TOLERANCE, FastLikelihood, FitFailed, Likelihood
from recastflow.patching import apply_patch, build_model_and_data

STATUSES = ("trusted", "flagged", "failed")
#: How limits are computed: "fast" (one compiled likelihood per grid structure, exact gradients,
#: converged fits) or "exact" (pyhf's own fits, as pyhf.infer.hypotest runs them).
METHODS = ("fast", "exact")
BATCH_FORMAT = "recastflow-limits-batch/1"


@dataclass
class PointResult:
    """Everything the limits stage says about one signal point.

    ``status`` is ``trusted`` when every fit converged, moved and stayed inside its
    bounds; ``flagged`` when a result exists but a fit gave a reason to doubt it;
    ``failed`` when a fit did not converge and no number is quoted.
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
    fits: list[dict[str, Any]] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


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
) -> PointResult:
    """Observed CLs and expected band at mu=1, and optionally upper limits, for one point.

    Args:
        bkg: background-only workspace (a grid passes it through
            :func:`recastflow.patching.shared_copy` once, to spare every point copying it).
        ops: the point's signal patch.
        result: record with the point's identity filled in; completed and returned.
        upper_limit: also compute upper limits on mu (and on the cross-section if known).
        fit_options: options for the optimiser (``maxiter``, ``tolerance``).
        source: where the patch came from (for messages).
        method: ``"fast"`` or ``"exact"`` (see :data:`METHODS`).
        compiler: a :class:`recastflow.compiled.LikelihoodCompiler` shared by the points of a
            grid (``fast`` only; one is made if not given).
    """
    spec = apply_patch(bkg, ops, source, build_model=False)
    options = dict(fit_options or {})
    lik: Likelihood
    fallback = None
    if method == "fast":
        from recastflow.compiled import CompileMismatch, LikelihoodCompiler

        # points whose signals carry different subsets of the systematics share one compiled structure
        compiler = compiler or LikelihoodCompiler()
        model, data = build_model_and_data(compiler.pad(spec), source)
        try:
            objective = compiler.objective(model, data, source=f"{result.grid}/{result.point}")
        except CompileMismatch as exc:
            fallback = f"computed with the exact method: {exc}"
        if fallback is None:
            tolerance = options.get("tolerance") or FAST_TOLERANCE
            lik = FastLikelihood(model, data, objective, tolerance=tolerance, maxiter=options.get("maxiter", 100000))
            result.software = {"pyhf": pyhf.__version__, "method": "fast", "backend": "jax (compiled, shared)",
                               "optimizer": f"scipy SLSQP, exact gradients, tolerance {tolerance:g}"}
        else:
            method = "exact"
    if method == "exact":
        model, data = build_model_and_data(spec, source)
        lik = Likelihood(model, data, fit_options=options)
        result.software = {"pyhf": pyhf.__version__, "method": "exact", "backend": "numpy", "optimizer": "scipy"}
        if fallback:
            result.software["note"] = fallback
    level = 1.0 - result.cl
    try:
        cls = lik.cls(1.0)
        result.cls_obs = cls.obs
        result.cls_exp = list(cls.exp)
        result.excluded_obs = cls.obs < level
        result.excluded_exp = cls.exp[EXPECTED_SIGMAS.index(0)] < level
    except FitFailed as exc:
        result.status = "failed"
        result.issues = result.issues + [str(exc)]
        result.fits = [f.to_dict() for f in lik.fits]
        return result
    ul_issue = None
    if upper_limit:
        try:
            ul = lik.upper_limit(level=level)
        except RecastError as exc:  # FitFailed is one: a search fit failed, or CLs never crossed the level
            # the CLs at mu=1 stands; only the upper limit is missing, and the point says why
            ul_issue = f"no upper limit: {exc}"
        else:
            result.mu_ul_obs = ul.obs
            result.mu_ul_exp = list(ul.exp)
            if result.xsec_pb is not None:
                result.xsec_ul_obs_pb = ul.obs * result.xsec_pb
                result.xsec_ul_exp_pb = [v * result.xsec_pb for v in ul.exp]
    # every entry of issues is a reason to doubt the point (the caller may have added some, e.g. a
    # flagged reweighting)
    result.issues = result.issues + lik.issues() + ([ul_issue] if ul_issue else [])
    result.status = "flagged" if result.issues else "trusted"
    result.fits = [f.to_dict() for f in lik.fits]
    return result


TABLE_COLUMNS = (
    "point", "status", "cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2",
    "excluded_obs", "excluded_exp", "xsec_pb", "mu_ul_obs", "mu_ul_exp", "mu_ul_exp_m1", "mu_ul_exp_p1",
    "xsec_ul_obs_pb", "xsec_ul_exp_pb", "issues",
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
        row: dict[str, Any] = {"point": r["point"], **{k: r["values"][k] for k in names}, "status": r["status"]}
        exp = r.get("cls_exp") or [None] * 5
        row.update({"cls_obs": r.get("cls_obs"), "cls_exp_m2": exp[0], "cls_exp_m1": exp[1], "cls_exp": exp[2],
                    "cls_exp_p1": exp[3], "cls_exp_p2": exp[4]})
        row.update({"excluded_obs": r.get("excluded_obs"), "excluded_exp": r.get("excluded_exp"), "xsec_pb": r.get("xsec_pb")})
        mexp = r.get("mu_ul_exp") or [None] * 5
        xexp = r.get("xsec_ul_exp_pb") or [None] * 5
        row.update({"mu_ul_obs": r.get("mu_ul_obs"), "mu_ul_exp": mexp[2], "mu_ul_exp_m1": mexp[1],
                    "mu_ul_exp_p1": mexp[3], "xsec_ul_obs_pb": r.get("xsec_ul_obs_pb"), "xsec_ul_exp_pb": xexp[2]})
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
    """Count points per status."""
    return {s: sum(1 for r in records if r["status"] == s) for s in STATUSES}
