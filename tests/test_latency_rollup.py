"""The latency rollup gives exactly the live numbers, for any window, after any sequence of ingestions,
and is never trusted when rows reached the log table some other way."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.queries import latency_rollup
from connectors.queries.operations import latency_stats

T0 = datetime(2026, 1, 1)


def batch(logs_factory, n: int, seed: int, start: str, prefix: str) -> pd.DataFrame:
    """``n`` rows a minute apart from ``start``, two versions, some errors and some missing latencies."""
    df = logs_factory(n, seed=seed, start=start, id_prefix=prefix)
    rng = np.random.default_rng(seed)
    df["model_version"] = np.where(rng.random(n) < 0.6, "1", "2")
    df["status"] = np.where(rng.random(n) < 0.05, "error", "ok")
    df.loc[rng.random(n) < 0.03, "latency_ms"] = np.nan
    return df


@pytest.fixture
def overlapping_ingests(store, schema, logs_factory, write_file) -> None:
    """Three files whose hours and days overlap (the second and third land inside buckets of the first)."""
    files = [batch(logs_factory, 3000, 1, "2026-01-01 00:00", "a"),   # 50 h: Jan 1 00:00 .. Jan 3 01:59
             batch(logs_factory, 200, 2, "2026-01-01 10:30", "b"),    # inside hours already rolled up
             batch(logs_factory, 900, 3, "2026-01-02 23:45", "c")]    # across a day boundary, to Jan 3 14:44
    for i, df in enumerate(files):
        report = store.ingest([write_file(df, f"part{i}.parquet")], schema)
        assert [f.status for f in report.files] == ["ingested"]


def live(con, schema, start, end, **kw) -> pd.DataFrame:
    """The statistics computed from the rows, bypassing the rollup whatever its state."""
    return latency_stats(con, schema, start, end, use_rollup=False, **kw)


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_exact=False,
                                  rtol=1e-12, check_dtype=False)


def test_ingestion_keeps_the_rollup_current_and_reads_use_it(store, schema, overlapping_ingests):
    with store.connect() as con:
        assert latency_rollup.is_current(con, schema)
        hours = con.execute(f"SELECT count(*) FROM {latency_rollup.ROLLUP_TABLE} WHERE grain = 'hour' "
                            "AND NOT by_version").fetchone()[0]
        assert hours == 63  # Jan 1 00:00 .. Jan 3 14:00, each hour once even where files overlap
        window = (T0, T0 + timedelta(days=3))
        want = live(con, schema, *window, bucket="hour")
        assert_same(latency_stats(con, schema, *window, bucket="hour"), want)
        # Reads really come from the rollup: a marked value shows through.
        con.execute(f"UPDATE {latency_rollup.ROLLUP_TABLE} SET p95_ms = -1 WHERE grain = 'hour' AND NOT by_version "
                    "AND bucket = TIMESTAMP '2026-01-01 10:00'")
        marked = latency_stats(con, schema, *window, bucket="hour").set_index("bucket")
        assert marked.loc[pd.Timestamp("2026-01-01 10:00"), "p95_ms"] == -1


WINDOW_POINTS = st.integers(min_value=-120, max_value=60 * 66)  # minutes from T0, a little beyond the data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=WINDOW_POINTS, b=WINDOW_POINTS, grain=st.sampled_from(["hour", "day"]),
       shape=st.sampled_from(["all", "by_version", "version 1", "version 2"]))
def test_any_window_equals_the_live_computation(store, schema, overlapping_ingests, a, b, grain, shape):
    if a == b:
        return
    start, end = T0 + timedelta(minutes=min(a, b)), T0 + timedelta(minutes=max(a, b))
    kw = {"bucket": grain, "by_version": shape == "by_version",
          "version": shape.split()[1] if shape.startswith("version") else None}
    with store.connect() as con:
        assert_same(latency_stats(con, schema, start, end, **kw), live(con, schema, start, end, **kw))


def test_rows_written_around_ingestion_make_reads_live_until_the_next_ingestion_rebuilds(
        store, schema, overlapping_ingests, logs_factory, write_file):
    window = (T0, T0 + timedelta(days=3))
    with store.connect() as con:
        before = latency_stats(con, schema, *window, bucket="hour")
        # A slow extra row written straight into the table, as a hand-made repair would.
        con.execute(f"INSERT INTO {schema.table} (prediction_id, model_name, model_version, ts, prediction, "
                    "latency_ms, status) VALUES ('manual', 'credit-risk', '1', TIMESTAMP '2026-01-01 10:10', "
                    "'good', 99999, 'ok')")
        assert not latency_rollup.is_current(con, schema)
        after = latency_stats(con, schema, *window, bucket="hour").set_index("bucket")
    ten = pd.Timestamp("2026-01-01 10:00")
    assert after.loc[ten, "max_ms"] == 99999  # computed live from the rows, not the stale rollup
    assert after.loc[ten, "n"] == before.set_index("bucket").loc[ten, "n"] + 1
    store.ingest([write_file(batch(logs_factory, 60, 9, "2026-01-05 00:00", "d"), "late.parquet")], schema)
    with store.connect() as con:
        assert latency_rollup.is_current(con, schema)
        rebuilt = latency_stats(con, schema, *window, bucket="hour").set_index("bucket")
        assert rebuilt.loc[ten, "max_ms"] == 99999
        assert_same(rebuilt.reset_index(), live(con, schema, *window, bucket="hour"))


def test_a_rejected_file_leaves_the_rollup_as_it_was(store, schema, overlapping_ingests, logs_factory, write_file):
    with store.connect() as con:
        snapshot = con.execute(f"SELECT * FROM {latency_rollup.ROLLUP_TABLE} ORDER BY ALL").df()
    bad = batch(logs_factory, 50, 4, "2026-01-01 05:00", "e").drop(columns=["prediction"])
    report = store.ingest([write_file(bad, "bad.parquet")], schema)
    assert [f.status for f in report.files] == ["rejected"]
    with store.connect() as con:
        assert latency_rollup.is_current(con, schema)
        pd.testing.assert_frame_equal(con.execute(f"SELECT * FROM {latency_rollup.ROLLUP_TABLE} ORDER BY ALL").df(),
                                      snapshot)


def test_bucket_edges_follow_date_trunc():
    t = datetime(2026, 3, 4, 5, 6, 7, 8)
    assert latency_rollup.floor(t, "hour") == datetime(2026, 3, 4, 5)
    assert latency_rollup.ceil(t, "hour") == datetime(2026, 3, 4, 6)
    assert latency_rollup.floor(t, "day") == datetime(2026, 3, 4)
    assert latency_rollup.ceil(t, "day") == datetime(2026, 3, 5)
    assert latency_rollup.ceil(datetime(2026, 3, 4), "day") == datetime(2026, 3, 4)
