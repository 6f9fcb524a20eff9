import csv
import io

from recastflow.stats.limits import rows_to_csv, summary, table_rows


def record(point, status="trusted", **kw):
    r = {"point": point, "values": {"m1": 100.0, "m2": 1.0}, "status": status, "cls_obs": 0.04,
         "cls_exp": [0.01, 0.02, 0.03, 0.04, 0.05], "excluded_obs": True, "excluded_exp": True, "xsec_pb": None,
         "mu_ul_obs": None, "mu_ul_exp": None, "xsec_ul_obs_pb": None, "xsec_ul_exp_pb": None, "issues": []}
    r.update(kw)
    return r


def test_table_rows_flatten_band_and_keep_parameters_first():
    rows = table_rows([record("A"), record("B", status="failed", cls_obs=None, cls_exp=None, issues=["x", "y"])])
    assert list(rows[0])[:4] == ["point", "m1", "m2", "status"]
    assert rows[0]["cls_exp_m2"] == 0.01 and rows[0]["cls_exp_p2"] == 0.05
    assert rows[1]["cls_exp"] is None and rows[1]["issues"] == "x; y"


def test_csv_full_precision_and_empty_for_none():
    value = 0.123456789012345678
    text = rows_to_csv(table_rows([record("A", cls_obs=value)]))
    row = next(csv.DictReader(io.StringIO(text)))
    assert float(row["cls_obs"]) == value and row["mu_ul_obs"] == ""


def test_summary_counts_statuses_and_fallbacks():
    records = [record("A"), record("B", "flagged", method="exact-converged", fallback="fast -> exact-converged: x"),
               record("C", "failed")]
    assert summary(records) == {"trusted": 1, "flagged": 1, "failed": 1, "fallback": 1}


def test_method_column_says_how_each_point_was_computed():
    rows = table_rows([record("A", method="fast"), record("B", method="exact-converged")])
    assert [r["method"] for r in rows] == ["fast", "exact-converged"]
    assert list(rows[0])[:5] == ["point", "m1", "m2", "status", "method"]


def test_table_rows_follow_the_grid_parameter_order():
    rows = table_rows([record("A")], ["m2", "m1"])
    assert list(rows[0])[:4] == ["point", "m2", "m1", "status"]
