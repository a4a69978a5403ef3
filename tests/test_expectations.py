"""Every supported expectation, evaluated in DuckDB, against Great Expectations' own result on the same rows:
the same success flag and the same unexpected (and missing) counts, with NULL, NaN, ±inf and ``mostly``."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from connectors.queries.reference import Source
from dashboard.governance.gx_run import validate_frame
from dashboard.monitoring import expectations as ex
from dashboard.settings import ExpectationSpec, settings_from_mapping

COLUMNS = {"x": "numerical", "y": "numerical", "u": "numerical", "c": "categorical", "s": "categorical"}

# name -> (type, kwargs): every supported type at least once, NULL/NaN/inf in x, ``mostly`` on both sides.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "exists": ("expect_column_to_exist", {"column": "x"}),
    "exists_not": ("expect_column_to_exist", {"column": "nope"}),
    "rows": ("expect_table_row_count_to_be_between", {"min_value": 100, "max_value": 300}),
    "rows_fail": ("expect_table_row_count_to_be_between", {"min_value": 500}),
    "not_null_x": ("expect_column_values_to_not_be_null", {"column": "x"}),
    "not_null_x_mostly": ("expect_column_values_to_not_be_null", {"column": "x", "mostly": 0.875}),
    "not_null_x_mostly_fail": ("expect_column_values_to_not_be_null", {"column": "x", "mostly": 0.876}),
    "not_null_u": ("expect_column_values_to_not_be_null", {"column": "u"}),
    "null_c": ("expect_column_values_to_be_null", {"column": "c"}),
    "null_c_mostly": ("expect_column_values_to_be_null", {"column": "c", "mostly": 0.05}),
    "between_x": ("expect_column_values_to_be_between", {"column": "x", "min_value": -1, "max_value": 1}),
    "between_x_mostly": ("expect_column_values_to_be_between", {"column": "x", "min_value": -1, "max_value": 1,
                                                                "mostly": 0.5}),
    "between_x_strict": ("expect_column_values_to_be_between", {"column": "y", "min_value": 0, "max_value": 9,
                                                                "strict_min": True, "strict_max": True}),
    "between_x_min_only": ("expect_column_values_to_be_between", {"column": "x", "min_value": 0}),
    "in_set_c": ("expect_column_values_to_be_in_set", {"column": "c", "value_set": ["a", "b", "c"]}),
    "in_set_c_mostly": ("expect_column_values_to_be_in_set", {"column": "c", "value_set": ["a", "b", "c"],
                                                              "mostly": 0.8}),
    "in_set_y": ("expect_column_values_to_be_in_set", {"column": "y", "value_set": [1, 2, 3]}),
    "not_in_set_c": ("expect_column_values_to_not_be_in_set", {"column": "c", "value_set": ["zz"]}),
    "unique_y": ("expect_column_values_to_be_unique", {"column": "y"}),
    "unique_u": ("expect_column_values_to_be_unique", {"column": "u"}),
    "unique_x": ("expect_column_values_to_be_unique", {"column": "x"}),
    "regex_s": ("expect_column_values_to_match_regex", {"column": "s", "regex": r"^id-\d+$"}),
    "regex_s_mostly": ("expect_column_values_to_match_regex", {"column": "s", "regex": r"^id-\d+$", "mostly": 0.9}),
    "not_regex_s": ("expect_column_values_to_not_match_regex", {"column": "s", "regex": "bad"}),
    "mean_y": ("expect_column_mean_to_be_between", {"column": "y", "min_value": 4, "max_value": 5}),
    "mean_y_strict": ("expect_column_mean_to_be_between", {"column": "y", "max_value": 4.5, "strict_max": True}),
    "mean_x_inf": ("expect_column_mean_to_be_between", {"column": "x", "min_value": -10, "max_value": 10}),
    "median_y": ("expect_column_median_to_be_between", {"column": "y", "min_value": 4, "max_value": 5}),
    "min_y": ("expect_column_min_to_be_between", {"column": "y", "min_value": 0, "max_value": 0}),
    "max_u": ("expect_column_max_to_be_between", {"column": "u", "max_value": 100}),
    "sum_y": ("expect_column_sum_to_be_between", {"column": "y", "min_value": 0, "max_value": 10_000}),
    "stdev_y": ("expect_column_stdev_to_be_between", {"column": "y", "min_value": 2, "max_value": 3.5}),
}


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(18)
    n = 200
    x = rng.normal(0, 1.5, n)
    x[:15] = np.nan  # stored as NULL below
    x[15:25] = np.nan  # stored as NaN below
    x[25:27], x[27] = np.inf, -np.inf
    x[30:34] = 0.5  # duplicates
    y = rng.integers(0, 10, n).astype(float)
    y[40:43] = np.nan
    u = np.arange(n, dtype=float)
    u[[5, 9]] = np.nan
    c = rng.choice(np.array(["a", "b", "c", "zz"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1])
    c[rng.random(n) < 0.1] = None
    s = np.array([f"id-{i}" for i in range(n)], dtype=object)
    s[rng.random(n) < 0.07] = "bad value"
    s[[3, 4]] = None
    return pd.DataFrame({"x": x, "y": y, "u": u, "c": c, "s": s})


@pytest.fixture(scope="module")
def table() -> tuple[duckdb.DuckDBPyConnection, pd.DataFrame]:
    """The rows in a real DuckDB table (x holds NULL and NaN), and the same rows read back for GX."""
    frame = _frame()
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x DOUBLE, y DOUBLE, u DOUBLE, c VARCHAR, s VARCHAR)")
    rows = [[None if (i < 15 and k == "x") or (k != "x" and isinstance(v, float) and math.isnan(v)) else v
             for k, v in r.items()] for i, r in enumerate(frame.to_dict(orient="records"))]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    assert con.execute("SELECT count(*) FILTER (WHERE x IS NULL), count(*) FILTER (WHERE isnan(x)) FROM t").fetchone() \
        == (15, 10)
    return con, con.execute("SELECT * FROM t").df()


@pytest.fixture(scope="module")
def both(table: tuple[duckdb.DuckDBPyConnection, pd.DataFrame]) -> tuple[dict[str, ex.ExpectationResult],
                                                                         dict[str, dict[str, Any]]]:
    con, frame = table
    specs = [ExpectationSpec(name, t, kw) for name, (t, kw) in CASES.items()]
    ours = {r.name: r for r in ex.evaluate(con, Source("SELECT * FROM t", columns=tuple(COLUMNS)), specs, COLUMNS)}
    suite = {"name": "cross-check", "expectations": [{"type": t, "kwargs": kw, "meta": {"name": name}}
                                                     for name, (t, kw) in CASES.items()]}
    payload, skipped = validate_frame(frame, suite)
    assert not skipped
    theirs = {r["expectation_config"]["meta"]["name"]: r for r in payload["results"]}
    return ours, theirs


@pytest.mark.parametrize("name", sorted(CASES))
def test_success_and_counts_equal_great_expectations(both: Any, name: str) -> None:
    ours, theirs = both
    mine, gx = ours[name], theirs[name]
    assert not gx["exception_info"]["raised_exception"], gx["exception_info"]
    assert mine.success is gx["success"], (name, mine, gx["result"])
    res = gx["result"]
    if "unexpected_count" in res:
        assert mine.unexpected_count == res["unexpected_count"]
        assert mine.element_count == res["element_count"]
        assert mine.missing_count == res.get("missing_count", 0)
        assert mine.unexpected_percent == pytest.approx(res["unexpected_percent"])
    if "observed_value" in res:
        observed = res["observed_value"]
        assert mine.observed_value == pytest.approx(observed) or (math.isinf(observed) and mine.observed_value == observed)


def test_the_cases_cover_every_supported_type_and_both_verdicts(both: Any) -> None:
    ours, _ = both
    assert {t for t, _ in CASES.values()} == set(ex.SUPPORTED)
    assert {r.success for r in ours.values()} == {True, False}
    assert ours["not_null_x_mostly"].success and not ours["not_null_x_mostly_fail"].success  # 175/200 = 0.875


def test_per_bucket_counts_equal_great_expectations_on_each_bucket(table: Any) -> None:
    con, frame = table
    halves = np.where(np.arange(len(frame)) < 120, "2026-01-01", "2026-01-02")
    con.execute("CREATE OR REPLACE TABLE tb AS SELECT *, CASE WHEN row_number() OVER () <= 120 THEN "
                "TIMESTAMP '2026-01-01' ELSE TIMESTAMP '2026-01-02' END AS bucket FROM t")
    specs = [ExpectationSpec("nn", "expect_column_values_to_not_be_null", {"column": "x", "mostly": 0.9}),
             ExpectationSpec("set", "expect_column_values_to_be_in_set", {"column": "c", "value_set": ["a", "b"]})]
    ours = ex.evaluate(con, Source("SELECT * FROM tb", columns=tuple(COLUMNS)), specs, COLUMNS, bucketed=True)
    suite = {"name": "b", "expectations": [{"type": s.expectation_type, "kwargs": dict(s.kwargs)} for s in specs]}
    for day in ("2026-01-01", "2026-01-02"):
        payload, _ = validate_frame(frame[halves == day].reset_index(drop=True), suite)
        for spec, gx in zip(specs, payload["results"], strict=True):
            mine = next(r for r in ours if r.name == spec.name and r.bucket == pd.Timestamp(day))
            assert (mine.success, mine.unexpected_count) == (gx["success"], gx["result"]["unexpected_count"])


def test_unsupported_and_invalid_expectations_are_named_never_passed(table: Any) -> None:
    con, _ = table
    specs = [ExpectationSpec("pairs", "expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "x"},
                             key="models.m.expectations[0]"),
             ExpectationSpec("cond", "expect_column_values_to_not_be_null", {"column": "x", "row_condition": "y>1"}),
             ExpectationSpec("gone", "expect_column_values_to_not_be_null", {"column": "nope"}),
             ExpectationSpec("text_mean", "expect_column_mean_to_be_between", {"column": "c", "min_value": 1})]
    found = {r.name: r for r in ex.evaluate(con, Source("SELECT * FROM t", columns=tuple(COLUMNS)), specs, COLUMNS)}
    assert found["pairs"].status == "unsupported" and found["pairs"].success is None
    assert "expect_column_pair_values_a_to_be_greater_than_b" in found["pairs"].note
    assert "models.m.expectations[0]" in found["pairs"].note
    assert found["cond"].status == "invalid" and "row_condition" in found["cond"].note
    assert found["gone"].status == "missing column" and "nope" in found["gone"].note
    assert found["text_mean"].status == "invalid" and "numerical" in found["text_mean"].note


def test_config_validates_expectations_naming_the_key() -> None:
    base = {"features": {"a": "numerical"}, "classes": ["n", "y"], "favourable": "y"}
    raw = {"models": {"m": {**base, "expectations": [
        {"expectation_type": "not_an_expectation"},
        {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": "a", "severity": "fatal"},
        {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "name": "x"},
        {"expectation_type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"}, "name": "x"}],
        "quality": {"unseen_share": 2, "bounds": {"zz": [0, 1], "a": [3, 1]}, "colour": 1}}}}
    with pytest.raises(ValueError) as err:
        settings_from_mapping(raw)
    text = str(err.value)
    for key in ("models.m.expectations[0].expectation_type", "models.m.expectations[1].kwargs",
                "models.m.expectations[1].severity", "'x' is used twice", "models.m.quality.unseen_share",
                "models.m.quality.bounds.zz", "models.m.quality.bounds.a", "models.m.quality.colour"):
        assert key in text, key
