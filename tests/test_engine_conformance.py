"""Conformance: every query function gives the same numbers on DuckDB and on Spark over the same data.

Integers must be equal, floats equal within 1e-9 relative (1e-12 absolute near zero). The functions are
found by introspection of ``connectors/queries``: a new query without a Spark counterpart, or without a
case here, fails :func:`test_every_query_is_covered`.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

import connectors.queries
from connectors.engines.base import EngineError
from connectors.queries import data_quality as dqq
from connectors.queries import fairness as fq
from connectors.queries import quality as qq
from connectors.queries import reference as refq
from connectors.queries.reference import Source
from tests.fixtures.spark import Twins

T0, T1, T2, T_END = datetime(2026, 3, 1), datetime(2026, 3, 3), datetime(2026, 3, 4), datetime(2026, 3, 7)
NUM = ["x", "d", "k", "age"]
CAT = ["c", "sex", "prediction"]
ALL = (*NUM, *CAT)


def query_functions() -> dict[str, Callable[..., Any]]:
    """Every public function of ``connectors/queries`` whose first parameter is the handle ``con``."""
    found = {}
    for info in pkgutil.iter_modules(connectors.queries.__path__):
        module = importlib.import_module(f"connectors.queries.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != module.__name__ or name.startswith("_"):
                continue
            params = list(inspect.signature(fn).parameters)
            if params and params[0] == "con":
                found[f"{info.name}.{name}"] = fn
    return found


def _ref(schema: Any, bucket: str | None = None) -> Source:
    return refq.window_source(schema, T0, datetime(2026, 3, 2, 12), ALL)


def _cur(schema: Any, bucket: str | None = None, version: str | None = None) -> Source:
    return refq.window_source(schema, T1 if bucket is None else T0, T_END, ALL, version, bucket=bucket)


def _qrel(schema: Any, version: str | None = None) -> tuple[str, list[Any]]:
    return qq.relation(schema, "yes", T0, T_END, version)


def _groups() -> dict[str, str]:
    return {"sex": fq.category_expr("sex"), "age": fq.bucket_expr("age", [18, 40, 120], ["young", "old"])}


# Calls per query: a function of the schema giving (args, kwargs) lists; run the same on both engines.
Calls = Callable[[Any], list[tuple[tuple[Any, ...], dict[str, Any]]]]
CASES: dict[str, Calls] = {
    "drift.row_count": lambda s: [((_cur(s),), {}), ((_ref(s),), {})],
    "drift.bucket_counts": lambda s: [((_cur(s, "day"),), {}), ((_cur(s, "hour"),), {})],
    "drift.categorical_counts": lambda s: [((_ref(s), _cur(s), CAT), {}), ((_ref(s), _cur(s, "day"), CAT, True), {}),
                                           ((_ref(s), _cur(s), []), {})],
    "drift.histogram": lambda s: [((_ref(s), "x", np.linspace(-2.0, 2.5, 11)), {}),
                                  ((_cur(s, "day"), "x", np.array([-1.0, 0.0, 0.3, 3.0])), {"bucketed": True})],
    "drift.numeric_range": lambda s: [(([_ref(s), _cur(s)], "x"), {}), (([_ref(s)], "k"), {})],
    "drift.null_counts": lambda s: [((_cur(s), ["x", "c", "k"], {"x", "k"}), {})],
    "drift.numeric_summary": lambda s: [((_ref(s), _cur(s), NUM), {}), ((_ref(s), _cur(s, "day"), NUM, True), {}),
                                        ((_ref(s), _cur(s, "hour", "2"), ["x", "d"], True), {})],
    "drift.numeric_counts": lambda s: [((_ref(s), _cur(s), ["d", "k"]), {}),
                                       ((_ref(s), _cur(s, "day"), ["d"], True), {})],
    "drift.sample_frame": lambda s: [((_cur(s), 50), {}), ((_cur(s), 10_000), {})],
    "fairness.left_out": lambda s: [((s, *fq.window_filter(T0, T_END, None)), {}),
                                    ((s, *fq.window_filter(T0, T_END, "2")), {})],
    "fairness.confusion_counts": lambda s: [
        ((fq.log_relation(s), _groups(), "yes"), {"where": fq.window_filter(T0, T_END, None)[0],
                                                   "params": fq.window_filter(T0, T_END, None)[1]}),
        ((fq.log_relation(s), _groups(), "yes"), {"where": fq.window_filter(T0, T_END, "1")[0],
                                                   "params": fq.window_filter(T0, T_END, "1")[1], "bucket": "day"}),
        ((fq.log_relation(s), {"sex": fq.category_expr("sex")}, "yes"), {"weight": "age", "bucket": "week"})],
    "fairness.model_versions": lambda s: [((s,), {})],
    "operations.latency_stats": lambda s: [
        ((s, T0, T_END), {}), ((s, T0, T_END), {"bucket": "hour"}), ((s, T0, T_END), {"bucket": "day", "by_version": True}),
        ((s, T0, T_END), {"by_version": True}), ((s, T1, T_END), {"bucket": "day", "version": "2"}),
        ((s, datetime(2026, 3, 1, 10, 30), datetime(2026, 3, 5, 7)), {"bucket": "day", "use_rollup": False})],
    "operations.time_range": lambda s: [((s,), {}), ((s, "2"), {}), ((s, "9"), {})],
    "operations.versions": lambda s: [((s, T0, T_END), {}), ((s, T2, T_END), {})],
    "quality.label_counts": lambda s: [((s,), {}), ((s, T1, T_END, "1"), {})],
    "quality.confusion": lambda s: [(_qrel(s), {}), (_qrel(s, "2"), {})],
    "quality.roc_auc": lambda s: [((*_qrel(s), "yes"), {}), ((*_qrel(s, "2"), "yes"), {})],
    "quality.calibration_bins": lambda s: [((*_qrel(s), "yes"), {}), ((*_qrel(s), "yes", 7), {})],
    "quality.bucket_sums": lambda s: [((*_qrel(s), None), {}), ((*_qrel(s), "day"), {}), ((*_qrel(s), "hour"), {})],
    "quality.label_delay": lambda s: [(_qrel(s), {}), (_qrel(s, "1"), {"max_days": 2})],
    "reference.log_columns": lambda s: [((s,), {})],
    "validation.table_checks": lambda s: [((s,), {})],
    "data_quality.column_profile": lambda s: [((_cur(s), list(ALL), {*NUM}), {}),
                                              ((_cur(s, "day"), ["x", "c"], {"x"}, True), {})],
    "data_quality.out_of_range_counts": lambda s: [((_cur(s), {"x": (-1.0, 1.0), "age": (None, 60.0)}), {}),
                                                   ((_cur(s, "day"), {"x": (0.0, None)}, True), {})],
    "data_quality.condition_counts": lambda s: [
        ((_cur(s), {"rows": ("TRUE", []), "unseen": dqq.unseen_condition("c", _ref(s)),
                    "big": (dqq.outside_condition("x"), [None, 1.5]), "missing": (dqq.missing("x", True), [])}), {}),
        ((_cur(s, "day"), {"set": ('("c" IS NOT NULL AND NOT coalesce("c" IN (SELECT unnest(?::VARCHAR[])), false))',
                                   [["a", "b"]]),
                           "re": ('(NOT ("c" IS NULL) AND regexp_matches("c"::VARCHAR, ?))', ["^ü"])}, True), {})],
    "data_quality.duplicate_counts": lambda s: [((_cur(s), "d", True), {}), ((_cur(s, "day"), "c", False, True), {})],
    "data_quality.column_aggregate": lambda s: [((_cur(s), "x", a), {}) for a in ("mean", "stdev", "sum")]
                                              + [((_cur(s, "day"), "age", "median", True), {})],
    "data_quality.top_values": lambda s: [((_cur(s), "c", "c IS NOT NULL", []), {}),
                                          ((_cur(s), "x", dqq.outside_condition("x"), [0.0, 1.0]), {"limit": 3})],
    "data_quality.sample_rows": lambda s: [((_cur(s), 40), {}), ((_cur(s), 5000), {})],
    "selection.candidates": lambda s: [
        ((s, T0, T_END), {"strategy": st, "threshold": th, "budget": b, "bucket": bu, "segment": seg})
        for st, th, b, bu, seg in (("least-confidence", 0.9, 25, "day", None), ("margin", 0.8, 40, "hour", "c"),
                                   ("entropy", 0.95, 1000, "week", "sex"))],
    "reference.has_labels": lambda s: [(("m",), {}), (("other",), {})],
}
#: Queries checked by their own tests below (state they write, or results that are samples).
OWN_TESTS = {"reference.materialise", "reference.materialised_columns", "quality.labelled_rows"}
#: Queries not on Spark yet (estimated performance, multivariate drift, segments): on a Spark-backed model
#: they refuse with a clear message (tested below). This list only shrinks: a query missing from it and
#: without a counterpart fails the suite.
DUCKDB_ONLY = {
    "estimation.score_counts", "estimation.reference_rows", "estimation.estimated_sums",
    "estimation.realised_counts", "estimation.labelled_fingerprint", "multivariate.imputation",
    "multivariate.shares", "multivariate.moments", "multivariate.covariance", "multivariate.error_by_bucket",
    "segments.segment_counts",
    "domain_classifier.sampled_rows",
}


def test_every_query_is_covered() -> None:
    """Each query is an engine query (with a Spark counterpart and a case here) or keeps Vigil's state."""
    problems = []
    for key, fn in query_functions().items():
        kind = getattr(fn, "__vigil_engine__", None)
        family, name = key.split(".")
        if kind is None or (kind == "duckdb" and key not in DUCKDB_ONLY):
            problems.append(f"{key}: mark it @engine_function (and add its Spark counterpart) or @state_function")
        elif key in DUCKDB_ONLY and kind != "duckdb":
            problems.append(f"{key}: it is on another engine now: remove it from DUCKDB_ONLY")
        elif kind == "query":
            spark_module = importlib.import_module(f"connectors.engines.spark.{family}")
            counterpart = getattr(spark_module, name, None)
            if counterpart is None:
                problems.append(f"{key}: no counterpart in connectors/engines/spark/{family}.py")
            elif list(inspect.signature(counterpart).parameters) != list(inspect.signature(fn).parameters):
                problems.append(f"{key}: the Spark counterpart's parameters differ")
            if key not in CASES and key not in OWN_TESTS:
                problems.append(f"{key}: no conformance case in tests/test_engine_conformance.py")
    assert not problems, "\n".join(problems)


def _norm_frame(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            df[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
        elif df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    keys = [c for c in df.columns if not pd.api.types.is_float_dtype(df[c])]
    if keys:
        df = df.sort_values(keys, na_position="first", kind="stable",
                            key=lambda s: s.map(repr) if s.dtype == object else s)
    return df.reset_index(drop=True)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal results: integers exactly, floats within 1e-9 relative, frames row for row (sorted by keys)."""
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), where
        if a.empty and b.empty:
            return
        assert sorted(a.columns) == sorted(b.columns), f"{where}: columns {list(a.columns)} vs {list(b.columns)}"
        a, b = _norm_frame(a), _norm_frame(b[list(a.columns)])
        assert len(a) == len(b), f"{where}: {len(a)} rows vs {len(b)}\n{a}\n{b}"
        for c in a.columns:
            for i, (x, y) in enumerate(zip(a[c], b[c], strict=True)):
                assert_same(x, y, f"{where}[{c}][{i}]")
        return
    if isinstance(a, tuple | list) and not isinstance(a, str):
        assert isinstance(b, tuple | list) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
        return
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: {a!r} vs {b!r}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
        return
    a_na = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NaT
    b_na = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NaT
    if a_na or b_na:
        assert a_na and b_na, f"{where}: {a!r} vs {b!r}"
        return
    if isinstance(a, np.ndarray | list):
        assert_same(list(a), list(b), where)
        return
    if isinstance(a, bool | np.bool_) or isinstance(b, bool | np.bool_):
        assert bool(a) == bool(b), f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, int | np.integer) and isinstance(b, int | np.integer):
        assert int(a) == int(b), f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, float | np.floating | int | np.integer):
        assert isinstance(b, float | np.floating | int | np.integer), f"{where}: {a!r} vs {b!r}"
        assert math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12), f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, datetime | pd.Timestamp):
        assert pd.Timestamp(a) == pd.Timestamp(b), f"{where}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _capped(result: Any) -> Any:
    """numeric_summary's distinct counts are exact up to 20 on DuckDB (a bound above): compare capped."""
    ref_summary, summary, rc, cc = result
    ref_summary, summary = ref_summary.copy(), summary.copy()
    if not ref_summary.empty:
        u = dict(zip(ref_summary["col"], ref_summary["u_ref"], strict=True))
        summary["new_values"] = np.minimum(summary["col"].map(u) + summary["new_values"], 21)
        ref_summary["u_ref"] = np.minimum(ref_summary["u_ref"], 21)
    return ref_summary, summary, rc, cc


def _run(ctx: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with ctx.connect("m") as con:
        ctx.store.ensure_model(ctx.schema("m"), con)
        return fn(con, *args, **kwargs)


@pytest.mark.parametrize("key", sorted(CASES))
def test_same_numbers(twins: Twins, key: str) -> None:
    fn = query_functions()[key]
    schema = twins.duck.schema("m")
    for i, (args, kwargs) in enumerate(CASES[key](schema)):
        duck = _run(twins.duck, fn, args, kwargs)
        spark = _run(twins.spark, fn, args, kwargs)
        where = f"{key} case {i}"
        if key == "drift.numeric_summary":
            duck, spark = _capped(duck), _capped(spark)
        if key in ("drift.sample_frame", "data_quality.sample_rows"):
            assert len(duck) == len(spark), where
            assert set(spark["x"].dropna().round(12)) <= set(twins.logs["x"].dropna().round(12)), where
            continue
        if key == "reference.log_columns":
            duck, spark = sorted(set(duck) - {"ingest_id"}), sorted(spark)
        assert_same(duck, spark, where)


def test_materialised_reference(twins: Twins) -> None:
    """A training frame stored as the reference reads back with the same drift numbers on both engines."""
    frame = twins.logs[[*NUM, "c"]].iloc[:300]
    types = {**{c: "numerical" for c in NUM}, "c": "categorical"}
    results = []
    for ctx in (twins.duck, twins.spark):
        with ctx.connect("m") as con:
            assert refq.materialised_columns(con, "m", "9") is None
            cols = refq.materialise(con, "m", "9", frame, types)
            assert refq.materialised_columns(con, "m", "9") is not None
            src = refq.table_source("m", "9", cols, "training")
            from connectors.queries import drift as dq

            results.append((cols, _capped(dq.numeric_summary(con, src, _cur(ctx.schema("m")), NUM)),
                            dq.categorical_counts(con, src, _cur(ctx.schema("m")), ["c"])))
    assert_same(results[0], results[1], "materialised reference")


def _kept_names(ctx: Any, con: Any) -> set[str]:
    if ctx.settings.engine_of("m") == "spark":
        return {t.name for t in con.spark.catalog.listTables() if t.name.startswith("vigil_kept_")}
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'vigil_kept_%'")
            .fetchall()}


def test_kept_labelled_rows_give_the_label_queries_their_numbers(twins: Twins) -> None:
    """The label queries on the kept labelled rows equal the same queries on the whole relation, on both
    engines; the kept rows are gone after the block, also when a query in it fails."""
    results = []
    for ctx in (twins.duck, twins.spark):
        schema = ctx.schema("m")
        for version in (None, "2"):
            rel, params = _qrel(schema, version)

            def label_queries(con: Any, r: str, p: list[Any]) -> tuple[Any, ...]:
                return (qq.confusion(con, r, p), qq.roc_auc(con, r, p, "yes"), qq.calibration_bins(con, r, p, "yes"),
                        qq.label_delay(con, r, p, max_days=2))

            with ctx.connect("m") as con:
                ctx.store.ensure_model(schema, con)
                whole = label_queries(con, rel, params)
                with qq.labelled_rows(con, rel, params) as (kept, kept_params):
                    assert len(_kept_names(ctx, con)) == 1
                    assert kept_params == []
                    on_kept = label_queries(con, kept, kept_params)
                assert _kept_names(ctx, con) == set()
                with pytest.raises(Exception, match="no_such_column"), qq.labelled_rows(con, rel, params) as (kept, _):
                    con.execute(f"SELECT no_such_column FROM {kept}").fetchall()
                assert _kept_names(ctx, con) == set()
            assert_same(whole, on_kept, f"kept labelled rows, version {version}")
            results.append(on_kept)
    assert_same(results[:2], results[2:], "kept labelled rows on both engines")


def test_a_duckdb_only_query_on_a_spark_model_says_so(twins: Twins) -> None:
    """The analyses not on Spark yet refuse a Spark handle with the way out, never a DuckDB error about a
    missing table."""
    functions = query_functions()
    assert set(functions) >= DUCKDB_ONLY
    with twins.spark.connect("m") as handle:
        for key in sorted(DUCKDB_ONLY):
            fn = functions[key]
            extra = [None] * (len(inspect.signature(fn).parameters) - 1)
            with pytest.raises(EngineError, match=r'duckdb engine only so far.*engine = "duckdb"'):
                fn(handle, *extra)


def test_unknown_engine_lists_the_choices(tmp_path: Any) -> None:
    from dashboard.settings import ConfigError, settings_from_mapping
    from tests.fixtures.spark import model_spec

    with pytest.raises(ConfigError, match="use one of duckdb, spark"):
        settings_from_mapping({"models": {"m": model_spec("presto")}}, env={}, base_dir=tmp_path)


def test_missing_lake_path_names_the_setting(twins: Twins, tmp_path: Any) -> None:
    from dashboard.context import Context
    from dashboard.settings import settings_from_mapping
    from tests.fixtures.spark import model_spec

    ctx = Context(settings_from_mapping(
        {"vigil": {"data_dir": str(tmp_path / "d")},
         "models": {"m": model_spec("spark", {"logs": str(tmp_path / "nowhere")})}}, env={}, base_dir=tmp_path))
    with pytest.raises(EngineError, match=r"models\.m\.lake\.logs"), ctx.connect("m"):
        pass
