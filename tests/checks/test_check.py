from recastflow.analyses.bundle import Reference
from recastflow.checks.references import compare, format_table


def rec(**kw):
    base = {"grid": "G", "point": "P", "status": "trusted", "cls_obs": 0.1, "cls_exp": [0.01, 0.02, 0.03, 0.04, 0.05],
            "xsec_ul_obs_pb": None}
    base.update(kw)
    return base


def ref(quantity="cls_obs", value=0.1, rtol=1e-5, grid="G", point="P"):
    return Reference(grid, point, quantity, value, rtol, 0.0, "test")


def test_pass_and_fail_rows():
    rows = compare((ref(value=0.1), ref(value=0.2)), {("G", "P"): rec()})
    assert [r.passed for r in rows] == [True, False]
    text = format_table(rows)
    assert "FAIL" in text and "1 of 2 values within tolerance" in text and "+1.00e+00" not in text


def test_band_compared_value_by_value():
    rows = compare((ref("cls_exp", (0.01, 0.02, 0.03, 0.04, 0.06)),), {("G", "P"): rec()})
    assert [r.passed for r in rows] == [True, True, True, True, False]
    assert rows[4].quantity == "cls_exp +2σ"


def test_missing_upper_limit_says_how_to_get_it():
    rows = compare((ref("xsec_ul_obs_pb", 0.01),), {("G", "P"): rec()})
    assert not rows[0].passed and "add 'G/P' to 'upper_limits'" in rows[0].note


def test_flagged_point_never_passes():
    rows = compare((ref(value=0.1),), {("G", "P"): rec(status="flagged")})
    assert not rows[0].passed and rows[0].note == "point is flagged"


def test_missing_point():
    rows = compare((ref(point="Q"),), {("G", "P"): rec()})
    assert not rows[0].passed and "no result for G/Q" in rows[0].note
