"""Operations: exact quantiles equal numpy's, error rate, throughput, SLO breaches (latency and errors),
bad input, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from connectors.windows import Window, parse_window
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring.operations import compute_operations
from dashboard.settings import PolicySpec

WINDOW = parse_window("2026-01-01..2026-01-02")


def two_days(logs_factory, n: int = 1200, seed: int = 3) -> pd.DataFrame:
    """1200 rows, one a minute from 2026-01-01 00:00 (20 hours), two versions, a latency spike 05:00-07:00."""
    df = logs_factory(n, seed=seed)
    rng = np.random.default_rng(seed)
    df["model_version"] = np.where(rng.random(n) < 0.7, "1", "2")
    hours = df["ts"].dt.hour
    df.loc[(hours >= 5) & (hours < 7), "latency_ms"] *= 10
    df.loc[hours == 12, "status"] = np.where(rng.random(int((hours == 12).sum())) < 0.5, "error", "ok")
    return df


@pytest.fixture
def ops_data(store, schema, logs_factory, write_file) -> pd.DataFrame:
    df = two_days(logs_factory)
    store.ingest([write_file(df, "ops.parquet")], schema)
    return df


def test_hourly_quantiles_equal_numpy(ctx, ops_data):
    rep = compute_operations(ctx, "credit-risk", WINDOW, bucket="hour")
    naive = ops_data.assign(hour=ops_data["ts"].dt.tz_convert(None).dt.floor("h"))
    assert len(rep.buckets) == naive["hour"].nunique() == 20
    for row in rep.buckets.itertuples():
        lat = naive.loc[naive["hour"] == row.bucket, "latency_ms"].to_numpy()
        for col, qq in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
            assert getattr(row, col) == pytest.approx(np.percentile(lat, qq), rel=1e-12)
        assert row.mean_ms == pytest.approx(lat.mean(), rel=1e-12)
        assert row.max_ms == lat.max()
        assert row.n == len(lat)
    lat = ops_data["latency_ms"].to_numpy()
    assert rep.latency_p95_ms == pytest.approx(np.percentile(lat, 95), rel=1e-12)
    assert rep.latency_p99_ms == pytest.approx(np.percentile(lat, 99), rel=1e-12)
    assert rep.latency_p50_ms == pytest.approx(np.median(lat), rel=1e-12)


def test_error_rate_throughput_and_versions(ctx, ops_data):
    rep = compute_operations(ctx, "credit-risk", WINDOW, bucket="hour")
    errors = int((ops_data["status"] != "ok").sum())
    assert rep.errors == errors > 0
    assert rep.error_rate == pytest.approx(errors / 1200)
    assert rep.throughput_per_hour == pytest.approx(60.0)  # one a minute over 20 active hours
    noon = rep.buckets.loc[rep.buckets["bucket"] == pd.Timestamp("2026-01-01 12:00")].iloc[0]
    assert noon["error_rate"] == pytest.approx((ops_data.loc[ops_data["ts"].dt.hour == 12, "status"] != "ok").mean())
    v = rep.versions.set_index("version")
    for version in ("1", "2"):
        lat = ops_data.loc[ops_data["model_version"] == version, "latency_ms"].to_numpy()
        assert v.loc[version, "p95_ms"] == pytest.approx(np.percentile(lat, 95), rel=1e-12)
        assert v.loc[version, "n"] == len(lat)
    only2 = compute_operations(ctx, "credit-risk", WINDOW, version="2")
    assert only2.requests == int((ops_data["model_version"] == "2").sum())


def test_slo_breaches_are_the_spike_hours(ctx, ops_data):
    rep = compute_operations(ctx, "credit-risk", WINDOW, bucket="hour")
    assert rep.slo.threshold_ms == 200.0 and rep.slo.source == "thresholds.latency_p95_ms"
    assert rep.slo.buckets_in_breach == 2 and rep.slo.buckets_scored == 20
    assert rep.slo.breach_share == pytest.approx(0.1)
    assert rep.slo.met is False
    b = rep.slo.breaches
    assert len(b) == 1
    assert b.iloc[0]["start"] == datetime(2026, 1, 1, 5) and b.iloc[0]["end"] == datetime(2026, 1, 1, 7)
    assert b.iloc[0]["buckets"] == 2 and b.iloc[0]["requests"] == 120
    daily = compute_operations(ctx, "credit-risk", WINDOW, bucket="day")
    assert len(daily.buckets) == 1


def noon_error_rate(ops_data: pd.DataFrame) -> float:
    return float((ops_data.loc[ops_data["ts"].dt.hour == 12, "status"] != "ok").mean())


def test_error_objective_breaches_are_the_error_hour(ctx, ops_data):
    """Errors get what latency has: a threshold with its source, per-bucket flags, merged ranges."""
    rep = compute_operations(ctx, "credit-risk", WINDOW, bucket="hour")
    err = rep.error_slo
    assert err.threshold == rep.error_rate_threshold == 0.02 and err.source == "thresholds.error_rate"
    assert err.objective.text == "error rate ≤ 2.00%"
    assert err.buckets_scored == 20 and err.buckets_in_breach == 1 and err.met is False
    assert list(rep.buckets.loc[rep.buckets["error_breach"], "bucket"]) == [pd.Timestamp("2026-01-01 12:00")]
    (b,) = err.breaches.to_dict(orient="records")
    assert (b["start"], b["end"], b["buckets"]) == (datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 13), 1)
    assert b["worst_error_rate"] == pytest.approx(noon_error_rate(ops_data))
    assert b["requests"] == 60 and b["errors"] == rep.errors
    s = rep.summary()
    assert s["error_slo_met"] is False and s["error_slo_buckets_in_breach"] == 1
    assert s["error_rate_source"] == "thresholds.error_rate"
    # One day bucket holds every error of the window: its rate (2.5%) is above 2% too.
    daily = compute_operations(ctx, "credit-risk", WINDOW, bucket="day").error_slo
    assert daily.buckets_in_breach == 1 and daily.breaches.iloc[0]["worst_error_rate"] == pytest.approx(
        rep.error_rate)


def with_policies(ctx: Context, *policies: PolicySpec) -> Context:
    cfg = replace(ctx.model("credit-risk"), policies=policies)
    return Context(replace(ctx.settings, models={**ctx.settings.models, "credit-risk": cfg}))


def test_declared_policies_set_the_objectives(ctx, ops_data):
    """A declared error_rate (or latency) policy is the threshold, as for vigil check; "<" breaches at it."""
    noon = noon_error_rate(ops_data)
    lenient = with_policies(ctx, PolicySpec("errors-ok", "error_rate", "<=", noon),
                            PolicySpec("slow-ok", "latency_p95_ms", "<=", 100_000.0))
    rep = compute_operations(lenient, "credit-risk", WINDOW)
    assert rep.error_slo.source == "policy errors-ok" and rep.error_slo.threshold == noon
    assert rep.error_slo.met is True and rep.error_slo.breaches.empty
    assert rep.slo.source == "policy slow-ok" and rep.slo.met is True
    strict = compute_operations(with_policies(ctx, PolicySpec("errors-below", "error_rate", "<", noon)),
                                "credit-risk", WINDOW)
    assert strict.error_slo.objective.text == f"error rate < {noon:.2%}"
    assert strict.error_slo.buckets_in_breach == 1  # exactly at a "<" threshold is a breach


def test_single_error_breaches_are_said(ctx, store, schema, logs_factory, write_file):
    df = logs_factory(100)  # 60 requests at 00:00, 40 at 01:00 with one error: 2.5% that hour, 1% that day
    df.loc[70, "status"] = "error"
    store.ingest([write_file(df, "one-error.parquet")], schema)
    rep = compute_operations(ctx, "credit-risk", WINDOW)
    assert rep.error_slo.buckets_in_breach == 1
    assert any("1 of the 1 hours that breach error rate ≤ 2.00% hold a single error" in n for n in rep.notes)
    assert not any("single error" in n for n in compute_operations(ctx, "credit-risk", WINDOW, bucket="day").notes)


def test_idle_hours_are_filled_with_zero_throughput(ctx, store, schema, logs_factory, write_file):
    a = logs_factory(60, start="2026-01-01 00:00")
    b = logs_factory(60, start="2026-01-01 03:00", id_prefix="q")
    store.ingest([write_file(pd.concat([a, b]), "gap.parquet")], schema)
    rep = compute_operations(ctx, "credit-risk", WINDOW)
    assert list(rep.buckets["n"]) == [60, 0, 0, 60]
    assert rep.throughput_per_hour == pytest.approx(30.0)


def test_null_latencies_are_left_out_and_said(ctx, store, schema, logs_factory, write_file):
    df = logs_factory(100)
    df.loc[:9, "latency_ms"] = np.nan
    store.ingest([write_file(df, "nulls.parquet")], schema)
    rep = compute_operations(ctx, "credit-risk", WINDOW)
    assert rep.rows_without_latency == 10
    assert rep.latency_p95_ms == pytest.approx(np.percentile(df["latency_ms"].dropna(), 95))
    assert any("10 of 100 predictions have no latency_ms" in n for n in rep.notes)


def test_all_null_latencies_give_no_latency_and_a_message(ctx, store, schema, logs_factory, write_file):
    df = logs_factory(50)
    df["latency_ms"] = np.nan
    store.ingest([write_file(df, "allnull.parquet")], schema)
    rep = compute_operations(ctx, "credit-risk", WINDOW)
    assert rep.latency_p95_ms is None and rep.slo.met is None and rep.slo.breach_share is None
    assert any("none of the 50 predictions has a latency_ms value" in n for n in rep.notes)
    assert rep.requests == 50 and rep.error_rate == 0.0


def test_empty_window_names_the_data_range(ctx, ops_data):
    # The window is named as typed: its last day, not the midnight after it.
    with pytest.raises(VigilError, match=r"no predictions of model credit-risk in 2025-06-01\.\.2025-06-01;.*"
                                          r"logs cover 2026-01-01 00:00\.\.2026-01-01 19:59"):
        compute_operations(ctx, "credit-risk", parse_window("2025-06-01..2025-06-01"))


def test_empty_store_says_how_to_ingest(ctx):
    with pytest.raises(VigilError, match="vigil ingest --model credit-risk"):
        compute_operations(ctx, "credit-risk", WINDOW)


def test_unknown_version_and_bucket(ctx, ops_data):
    with pytest.raises(VigilError, match=r"version .9. has no predictions.*versions logged: 1, 2"):
        compute_operations(ctx, "credit-risk", WINDOW, version="9")
    with pytest.raises(VigilError, match="bucket 'minute'"):
        compute_operations(ctx, "credit-risk", WINDOW, bucket="minute")


def test_window_is_half_open(ctx, ops_data):
    rep = compute_operations(ctx, "credit-risk", Window(datetime(2026, 1, 1, 5), datetime(2026, 1, 1, 6)))
    assert rep.requests == 60


def test_cli_ops_json_and_text(ctx, ops_data, settings, monkeypatch, capsys):
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    cfg = str(settings.config_path)
    code = run_cli(cli, ["--config", cfg, "ops", "--model", "credit-risk", "--window", "2026-01-01..2026-01-01",
                         "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["operations"]["requests"] == 1200
    assert data["operations"]["slo_buckets_in_breach"] == 2
    assert data["breaches"][0]["start"] == "2026-01-01T05:00:00"
    assert [b["start"] for b in data["error_breaches"]] == ["2026-01-01T12:00:00"]
    assert data["error_breaches"][0]["errors"] == data["operations"]["errors"]
    assert data["operations"]["error_slo_met"] is False and data["operations"]["error_rate_threshold"] == 0.02
    assert data["quality"]["labelled_rows"] == 0
    code = run_cli(cli, ["--config", cfg, "ops", "--model", "credit-risk", "--window", "2026-01-01..2026-01-01"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("credit-risk  2026-01-01..2026-01-01  (1200 predictions)")  # the window as typed
    assert "p95" in out and "2026-01-01 05:00" in out and "breach" in out
    assert ("SLO      error rate ≤ 2.00% per hour (thresholds.error_rate): breached, 1/20 hours in breach"
            in out)
    assert "breach 2026-01-01 12:00..2026-01-01 13:00 UTC  worst error rate" in out


def test_cli_ops_empty_window_exits_2(ctx, ops_data, settings, monkeypatch, capsys):
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    code = run_cli(cli, ["--config", str(settings.config_path), "ops", "--model", "credit-risk",
                         "--window", "2025-01-01..2025-01-02"])
    assert code == 2
    assert "no predictions of model credit-risk" in capsys.readouterr().err
