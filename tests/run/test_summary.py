"""The verdict per model point: which analysis decides, and when no verdict is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recastflow.core.errors import RecastError
from recastflow.run.summary import format_verdicts, load_verdicts, verdicts, write_verdicts


def _row(grid: str, point: str, cls_obs: float, cls_exp_median: float, status: str = "trusted", **extra):
    return {
        "grid": grid,
        "analysis": grid.split("_")[0],
        "workspace": grid.split("_")[1],
        "point": point,
        "values": {"m": 1.0},
        "cl": 0.95,
        "status": status,
        "cls_obs": cls_obs,
        "cls_exp": [cls_exp_median / 10, cls_exp_median / 3, cls_exp_median, cls_exp_median * 2, cls_exp_median * 3],
        "issues": extra.pop("issues", []),
        **extra,
    }


def test_most_sensitive_by_expected_decides_not_the_luckiest() -> None:
    # B has the better expected CLs but sees no excess deficit; A excludes by a downward fluctuation
    rows = [_row("A_ws", "P", cls_obs=0.01, cls_exp_median=0.2), _row("B_ws", "P", cls_obs=0.3, cls_exp_median=0.06)]
    (v,) = verdicts(rows)
    assert v.most_sensitive == "B_ws"
    assert v.verdict == "not excluded"
    assert any("A (ws)" in n and "less sensitive" in n for n in v.notes)


def test_excluded_by_the_most_sensitive() -> None:
    rows = [_row("A_ws", "P", cls_obs=0.3, cls_exp_median=0.2), _row("B_ws", "P", cls_obs=0.01, cls_exp_median=0.02)]
    (v,) = verdicts(rows)
    assert (v.verdict, v.excluded_by) == ("excluded", "B (ws)")


def test_flagged_results_never_decide() -> None:
    rows = [
        _row("A_ws", "P", cls_obs=0.001, cls_exp_median=0.001, status="flagged", issues=["fit did not converge"]),
        _row("B_ws", "P", cls_obs=0.5, cls_exp_median=0.4),
    ]
    (v,) = verdicts(rows)
    assert v.most_sensitive == "B_ws" and v.verdict == "not excluded"
    assert any("flagged, not used although more sensitive" in n and "did not converge" in n for n in v.notes)
    # the headline says the trusted analyses do not exclude it, and that a flagged one does
    text = format_verdicts([v])
    assert "not excluded at 95% CL by the trusted analyses" in text
    assert "but flagged results exclude it at 95% CL: A (ws) (CLs_obs 0.001)" in text


def test_flagged_results_that_do_not_exclude_or_are_less_sensitive_are_not_headlined() -> None:
    rows = [
        _row("A_ws", "P", cls_obs=0.3, cls_exp_median=0.001, status="flagged"),  # more sensitive, not excluding
        _row("C_ws", "P", cls_obs=0.01, cls_exp_median=0.9, status="flagged"),  # excluding, less sensitive
        _row("B_ws", "P", cls_obs=0.5, cls_exp_median=0.4),
    ]
    text = format_verdicts(verdicts(rows))
    assert "verdict: not excluded at 95% CL\n" in text and "flagged results exclude" not in text


def test_no_trusted_result_is_undecided() -> None:
    (v,) = verdicts([_row("A_ws", "P", cls_obs=0.001, cls_exp_median=0.001, status="failed")])
    assert v.verdict == "undecided" and v.most_sensitive is None
    assert "UNDECIDED" in format_verdicts([v])


def test_points_grouped_by_name_and_r_from_upper_limit(tmp_path: Path) -> None:
    rows = [
        _row("A_ws", "P1", 0.01, 0.02, mu_ul_obs=0.5, xsec_pb=0.01, xsec_ul_obs_pb=0.005),
        _row("A_ws", "P2", 0.5, 0.5),
        _row("B_ws", "P1", 0.2, 0.3),
    ]
    table = tmp_path / "limits.json"
    table.write_text(json.dumps({"points": rows}))
    out = write_verdicts(
        [table], json_path=tmp_path / "v.json", text_path=tmp_path / "v.txt", csv_path=tmp_path / "v.csv"
    )
    assert [v.point for v in out] == ["P1", "P2"]
    assert out[0].outcomes[0].r_obs == pytest.approx(2.0)
    assert load_verdicts(tmp_path / "v.json") == out
    text = (tmp_path / "v.txt").read_text()
    assert "EXCLUDED at 95% CL by A (ws)" in text and "not excluded" in text
    assert len((tmp_path / "v.csv").read_text().splitlines()) == 4  # header + 3 rows


def test_not_a_table_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "limits.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RecastError, match="not a limits table"):
        write_verdicts([bad], json_path=tmp_path / "a", text_path=tmp_path / "b", csv_path=tmp_path / "c")
    assert not (tmp_path / "a").exists()


def test_caveats_of_a_grid_are_said_with_its_verdicts() -> None:
    rows = [_row("A_ws", "P", cls_obs=0.01, cls_exp_median=0.02)]
    (v,) = verdicts(rows, caveats={"A_ws": ["no signal modelled in CR (not public)"]})
    assert v.verdict == "excluded"
    assert "A (ws): no signal modelled in CR (not public)" in v.notes
    assert "note: A (ws): no signal modelled in CR (not public)" in format_verdicts([v])


def test_yield_check_lines_repeat_each_checks_result_and_fidelity(tmp_path):
    from recastflow.run.summary import yield_check_lines

    (tmp_path / "G1.txt").write_text("header\nyield check: 3 of 4 gated points within tolerance\nfidelity: 2 of 4\nrest\n")
    (tmp_path / "G2.txt").write_text("no summary lines here\n")
    lines = yield_check_lines([tmp_path / "G1.txt", tmp_path / "G2.txt", tmp_path / "missing.txt"])
    assert lines == ["G1: yield check: 3 of 4 gated points within tolerance", "G1: fidelity: 2 of 4"]
