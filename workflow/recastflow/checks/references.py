"""Regression checks: results against a bundle's reference values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from recastflow.analyses.bundle import Reference


@dataclass(frozen=True)
class CheckRow:
    """One compared number."""

    grid: str
    point: str
    quantity: str
    value: float | None
    reference: float
    rtol: float
    atol: float
    passed: bool
    note: str
    source: str

    @property
    def deviation(self) -> float | None:
        """Relative deviation from the reference (None if no value)."""
        if self.value is None or self.reference == 0:
            return None
        return self.value / self.reference - 1.0


BAND = ("-2σ", "-1σ", "median", "+1σ", "+2σ")


def compare(references: tuple[Reference, ...], results: dict[tuple[str, str], dict[str, Any]]) -> list[CheckRow]:
    """Compare every reference with the matching point result.

    Args:
        references: the bundle's reference values.
        results: point records keyed by (grid, point).
    """
    rows: list[CheckRow] = []
    for ref in references:
        rec = results.get((ref.grid, ref.point))
        refs = ref.value if isinstance(ref.value, tuple) else (ref.value,)
        if rec is None:
            note = f"no result for {ref.grid}/{ref.point}: add the grid to 'grids' in the config"
            rows.extend(
                CheckRow(ref.grid, ref.point, ref.quantity, None, v, ref.rtol, ref.atol, False, note, ref.source)
                for v in refs
            )
            continue
        got = rec.get(ref.quantity)
        if got is None:
            note = _missing_note(ref, rec)
            rows.extend(
                CheckRow(ref.grid, ref.point, ref.quantity, None, v, ref.rtol, ref.atol, False, note, ref.source)
                for v in refs
            )
            continue
        values = got if isinstance(got, list) else [got]
        if len(values) != len(refs):
            rows.append(
                CheckRow(
                    ref.grid,
                    ref.point,
                    ref.quantity,
                    None,
                    refs[0],
                    ref.rtol,
                    ref.atol,
                    False,
                    f"{len(values)} values, reference has {len(refs)}",
                    ref.source,
                )
            )
            continue
        for i, (v, r) in enumerate(zip(values, refs)):
            quantity = ref.quantity + (f" {BAND[i]}" if len(refs) == 5 else "")
            ok = math.isclose(v, r, rel_tol=ref.rtol, abs_tol=ref.atol)
            note = "" if rec["status"] == "trusted" else f"point is {rec['status']}"
            rows.append(
                CheckRow(
                    ref.grid,
                    ref.point,
                    quantity,
                    v,
                    r,
                    ref.rtol,
                    ref.atol,
                    ok and rec["status"] == "trusted",
                    note,
                    ref.source,
                )
            )
    return rows


def _missing_note(ref: Reference, rec: dict[str, Any]) -> str:
    """Why a point has no value for a reference quantity, naming the real cause."""
    issues = rec.get("issues") or []
    if "ul" in ref.quantity:
        failed = [i for i in issues if i.startswith("no upper limit")]
        if failed:
            return f"the upper-limit search failed: {failed[0]}"
        if rec.get("status") == "failed":
            return f"point failed: {issues[0] if issues else 'no reason recorded'}"
        return f"not computed: add '{ref.grid}/{ref.point}' to 'upper_limits' in the config"
    reason = f": {issues[0]}" if issues else ""
    return f"not computed (point status: {rec.get('status')}{reason})"


def format_table(rows: list[CheckRow]) -> str:
    """A plain-text table of value, reference, deviation and tolerance."""
    header = f"{'grid/point':<34} {'quantity':<20} {'value':>13} {'reference':>13} {'rel.dev':>10} {'rtol':>8}  result"
    lines = [header, "-" * len(header)]
    for r in rows:
        val = "—" if r.value is None else f"{r.value:.6g}"
        dev = "—" if r.deviation is None else f"{r.deviation:+.2e}"
        tol = f"{r.rtol:.1e}" + (f"+{r.atol:.0e}" if r.atol else "")
        res = "pass" if r.passed else "FAIL"
        line = f"{r.grid + '/' + r.point:<34} {r.quantity:<20} {val:>13} {r.reference:>13.6g} {dev:>10} {tol:>8}  {res}"
        if r.note:
            line += f"  ({r.note})"
        lines.append(line)
    n_fail = sum(not r.passed for r in rows)
    lines.append(f"regression check: {len(rows) - n_fail} of {len(rows)} values within tolerance")
    return "\n".join(lines)
