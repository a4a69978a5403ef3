"""Policy engine: comparators, verdicts with evidence from the real analytics, built-ins and overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard.context import Context
from dashboard.governance.policy import (
    FAIL,
    NO_DATA,
    NOT_APPLICABLE,
    PASS,
    builtin_policies,
    evaluate,
    policies_for,
)
from dashboard.monitoring import quality
from dashboard.settings import PolicySpec, compare
from tests.conftest import make_logs

MODEL = "credit-risk"
WINDOW = "2026-01-01..2026-01-01"


def _ingest(ctx: Context, tmp_path: Path, frame: pd.DataFrame, name: str) -> None:
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    report = ctx.store.ingest([path], ctx.schema(MODEL))
    assert report.rows_added == len(frame)


def _policies(*specs: PolicySpec) -> list[tuple[PolicySpec, str]]:
    return [(s, "config") for s in specs]


@pytest.mark.parametrize("value,comparator,threshold,expected", [
    (0.5, "<", 0.5, False), (0.5, "<=", 0.5, True), (0.6, ">", 0.5, True), (0.5, ">=", 0.5, True),
    (1.0, "==", 1.0, True), (1.0, "!=", 1.0, False), (0.8, "within", (0.8, 1.25), True),
    (0.79, "within", (0.8, 1.25), False), (1.3, "outside", (0.8, 1.25), True), (1.0, "outside", (0.8, 1.25), False),
])
def test_compare(value: float, comparator: str, threshold: float | tuple[float, float], expected: bool) -> None:
    assert compare(value, comparator, threshold) is expected


def test_operations_policies_match_pandas_and_carry_evidence(ctx: Context, tmp_path: Path) -> None:
    frame = make_logs(400)
    frame.loc[frame.index[:10], "status"] = "error"
    _ingest(ctx, tmp_path, frame, "a.parquet")
    p95 = float(np.quantile(frame["latency_ms"], 0.95))
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(
        PolicySpec("p95 under", "latency_p95_ms", "<=", p95 + 1.0),
        PolicySpec("p95 tight", "latency_p95_ms", "<=", p95 - 1.0),
        PolicySpec("errors", "error_rate", "<=", 0.01, "warning"),
    ))
    by = {r.policy: r for r in ev.results}
    assert by["p95 under"].verdict == PASS and by["p95 tight"].verdict == FAIL
    assert by["p95 under"].value == pytest.approx(p95, rel=1e-3)
    assert by["errors"].value == pytest.approx(10 / 400) and by["errors"].verdict == FAIL
    assert by["errors"].rows == 400 and by["errors"].window == "2026-01-01..2026-01-01"
    assert by["errors"].data_version == ctx.store.data_version(MODEL)
    assert [r.name for r in ev.blocking_failures] == ["p95 tight"]
    assert not ev.passed and [r.policy for r in ev.warnings] == ["errors"]
    assert set(ev.frame().columns) >= {"value", "threshold", "verdict", "window", "rows", "evaluated_at",
                                       "data_version"}


def test_version_restricts_the_rows(ctx: Context, tmp_path: Path) -> None:
    fast = make_logs(200, version="1")
    slow = make_logs(200, seed=1, id_prefix="q", version="2")
    slow["latency_ms"] = slow["latency_ms"] + 1000
    _ingest(ctx, tmp_path, pd.concat([fast, slow]), "v.parquet")
    spec = PolicySpec("latency", "latency_p95_ms", "<=", 500.0)
    assert evaluate(ctx, MODEL, "1", window=WINDOW, policies=_policies(spec)).passed
    ev2 = evaluate(ctx, MODEL, "2", window=WINDOW, policies=_policies(spec))
    assert not ev2.passed and ev2.results[0].rows == 200


def test_quality_without_labels_is_no_data_only_where_allowed(ctx: Context, tmp_path: Path) -> None:
    _ingest(ctx, tmp_path, make_logs(300), "q.parquet")
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(
        PolicySpec("acc", "accuracy", ">=", 0.7, params={"require_data": False}),
        PolicySpec("acc strict", "accuracy", ">=", 0.7),
        PolicySpec("coverage", "label_coverage", ">=", 0.1),
    ))
    by = {r.policy: r for r in ev.results}
    assert by["acc"].verdict == NO_DATA and not by["acc"].blocking_failure
    assert by["acc strict"].verdict == FAIL and by["acc strict"].blocking_failure
    assert by["coverage"].value == 0.0 and by["coverage"].verdict == FAIL


def test_accuracy_with_labels(ctx: Context, tmp_path: Path) -> None:
    frame = make_logs(300)
    _ingest(ctx, tmp_path, frame, "l.parquet")
    labels = pd.DataFrame({"prediction_id": frame["prediction_id"], "label": frame["prediction"]})
    labels.loc[labels.index[:30], "label"] = np.where(labels["label"].iloc[:30] == "good", "bad", "good")
    ctx.store.add_labels(ctx.schema(MODEL), labels, source="ground_truth")
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(PolicySpec("acc", "accuracy", ">=", 0.85)))
    assert ev.results[0].value == pytest.approx(0.9) and ev.results[0].verdict == PASS
    assert ev.results[0].rows == 300


def test_fairness_gives_one_verdict_per_attribute(ctx: Context, tmp_path: Path) -> None:
    frame = make_logs(600)
    women = frame["sex"] == "female"
    frame.loc[women, "prediction"] = np.where(np.arange(women.sum()) % 3 == 0, "good", "bad")
    _ingest(ctx, tmp_path, frame, "f.parquet")
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(
        PolicySpec("di", "disparate_impact", "within", (0.8, 1.25))))
    by = {r.subject: r for r in ev.results}
    assert set(by) == {"sex", "age"}
    male_rate = (frame.loc[~women, "prediction"] == "good").mean()
    female_rate = (frame.loc[women, "prediction"] == "good").mean()
    assert by["sex"].value == pytest.approx(female_rate / male_rate, rel=1e-6)
    assert by["sex"].verdict == FAIL and by["sex"].name == "di[sex]"


def test_drift_against_a_reference_window(ctx: Context, tmp_path: Path) -> None:
    frame = make_logs(1600)  # one row a minute: 800 before 13:20, 800 after
    late = frame["ts"] >= pd.Timestamp("2026-01-01 13:20", tz="UTC")
    frame.loc[late, "income"] = frame.loc[late, "income"] * 3
    _ingest(ctx, tmp_path, frame, "d.parquet")
    ref = {"reference": "2026-01-01T00:00..2026-01-01T13:20"}
    policies = _policies(
        PolicySpec("income drift", "feature_drift", "==", 0.0, params={**ref, "column": "income"}),
        PolicySpec("age drift", "feature_drift", "==", 0.0, params={**ref, "column": "age"}),
        PolicySpec("share", "drift_share", "<", 0.5, params=ref),
    )
    ev = evaluate(ctx, MODEL, window="2026-01-01T13:20..2026-01-02T02:40", policies=policies)
    by = {r.policy: r for r in ev.results}
    assert by["income drift"].value == 1.0 and by["income drift"].verdict == FAIL
    assert by["age drift"].value == 0.0 and by["age drift"].verdict == PASS
    assert by["share"].verdict == PASS and "income" in by["share"].detail

    # 100 current rows are too few for a verdict: no value, never a pass (income tripled or not).
    small = evaluate(ctx, MODEL, window="2026-01-01T13:20..2026-01-01T15:00", policies=policies)
    for r in small.results:
        assert r.value is None and r.verdict == FAIL, r  # blocking and no data: a failure (require_data)
    assert "too few rows" in {r.policy: r for r in small.results}["share"].detail
    assert "no verdict" in {r.policy: r for r in small.results}["income drift"].detail


def test_ingest_rejects(ctx: Context, tmp_path: Path) -> None:
    bad = make_logs(5).drop(columns=["prediction"])
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, index=False)
    ctx.store.ingest([path], ctx.schema(MODEL))
    ev = evaluate(ctx, MODEL, policies=_policies(PolicySpec("rejects", "ingest_rejects", "<=", 0.0)))
    assert ev.results[0].value == 1.0 and ev.results[0].verdict == FAIL


def test_errors_fail_closed(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest(ctx, tmp_path, make_logs(50), "e.parquet")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("quality query failed")

    monkeypatch.setattr(quality, "compute_quality", broken)
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(
        PolicySpec("typo", "acuracy", ">=", 0.7),
        PolicySpec("acc", "accuracy", ">=", 0.7),
        PolicySpec("acc warn", "estimated_accuracy", ">=", 0.7, "warning"),
    ))
    by = {r.policy: r for r in ev.results}
    assert by["typo"].verdict == "error: unknown metric" and by["typo"].blocking_failure
    assert by["acc"].verdict == "error: quality query failed" and by["acc"].value is None
    assert by["acc"].blocking_failure
    assert by["acc warn"].verdict == "error: quality query failed" and not by["acc warn"].blocking_failure


def test_analysis_error_is_reported_not_raised(ctx: Context, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.monitoring import operations

    _ingest(ctx, tmp_path, make_logs(20), "few.parquet")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk I/O error\nwhile reading")

    monkeypatch.setattr(operations, "compute_operations", broken)
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(PolicySpec("p95", "latency_p95_ms", "<=", 100.0)))
    result = ev.results[0]
    assert result.verdict == "error: disk I/O error while reading" and not ev.passed
    assert result.detail == "RuntimeError: disk I/O error while reading"  # the message, not only the class


def test_a_model_without_traffic_is_not_judged_on_it(ctx: Context) -> None:
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(PolicySpec("p95", "latency_p95_ms", "<=", 100.0)))
    assert ev.results[0].verdict == NOT_APPLICABLE and ev.passed and "no production traffic" in ev.results[0].detail


def test_builtins_and_config_overlay(settings) -> None:  # type: ignore[no-untyped-def]
    cfg = settings.model(MODEL)
    names = [p.name for p in builtin_policies(cfg)]
    assert {"drift_share", "disparate_impact", "latency_p95_ms", "error_rate", "accuracy", "estimated_accuracy",
            "label_coverage", "card_completeness", "ingest_rejects", "feature_drift"} <= set(names)
    from dataclasses import replace

    custom = replace(cfg, policies=(PolicySpec("error_rate", "error_rate", "<=", 0.5, "blocking"),
                                    PolicySpec("extra", "latency_p99_ms", "<=", 900.0)))
    overlay = {s.name: (s, src) for s, src in policies_for(custom)}
    assert overlay["error_rate"][1] == "config" and overlay["error_rate"][0].threshold == 0.5
    assert overlay["extra"][1] == "config" and overlay["drift_share"][1] == "built-in"
    expectations = {f"expectation:{e.name}" for e in cfg.expectations}  # one policy per configured expectation
    assert expectations and expectations <= {n for n, (_, src) in overlay.items() if src == "config"}
    assert len(overlay) == len(names) + 1 + len(expectations)


def test_relative_window_ends_at_the_latest_log(ctx: Context, tmp_path: Path,
                                                  logs_factory: Callable[..., pd.DataFrame]) -> None:
    _ingest(ctx, tmp_path, logs_factory(100), "r.parquet")
    ev = evaluate(ctx, MODEL, policies=_policies(PolicySpec("err", "error_rate", "<=", 0.5, window="24h")))
    assert ev.results[0].rows == 100 and ev.results[0].verdict == PASS


def test_a_changed_policy_set_is_audited(ctx: Context, tmp_path: Path) -> None:
    from dataclasses import replace

    from dashboard.audit import trail as audit
    from dashboard.governance.policy import record_policy_set

    cfg = ctx.model(MODEL)
    assert record_policy_set(ctx, MODEL, policies_for(cfg)) is True  # first sight
    assert record_policy_set(ctx, MODEL, policies_for(cfg)) is False  # unchanged
    stricter = replace(cfg, policies=(PolicySpec("error_rate", "error_rate", "<=", 0.001, "blocking"),))
    assert record_policy_set(ctx, MODEL, policies_for(stricter)) is True
    changes = audit.entries(ctx.store, action="policy.change")
    assert len(changes) == 2 and set(changes["actor"]) == {"vigil"} and set(changes["role"]) == {"system"}
    assert '"threshold":0.001' in changes.iloc[0]["details"]
    assert audit.verify(ctx.store).ok


def test_evaluations_are_kept_once_per_data_version(ctx: Context, tmp_path: Path) -> None:
    from dashboard.charts.compliance import verdict_history_figure
    from dashboard.governance.policy import evaluation_history, save_evaluation

    _ingest(ctx, tmp_path, make_logs(100), "h1.parquet")
    policies = _policies(PolicySpec("err", "error_rate", "<=", 0.5))
    first = evaluate(ctx, MODEL, "1", window=WINDOW, policies=policies)
    assert save_evaluation(ctx, first, "test") is True
    assert save_evaluation(ctx, evaluate(ctx, MODEL, "1", window=WINDOW, policies=policies), "test") is False
    _ingest(ctx, tmp_path, make_logs(50, id_prefix="n", start="2026-01-01 10:00"), "h2.parquet")
    assert save_evaluation(ctx, evaluate(ctx, MODEL, "1", window=WINDOW, policies=policies), "test") is True
    history = evaluation_history(ctx, MODEL, "1")
    assert list(history["rows"]) == [100, 150] and set(history["verdict"]) == {"pass"}
    assert history["data_version"].nunique() == 2
    assert len(verdict_history_figure(history).data) == 1


def test_a_blocking_policy_without_data_fails_unless_it_allows_it(ctx: Context, tmp_path: Path) -> None:
    frame = make_logs(600)
    frame["latency_ms"] = None  # every latency missing: nothing to measure
    _ingest(ctx, tmp_path, frame, "nolat.parquet")
    ev = evaluate(ctx, MODEL, window=WINDOW, policies=_policies(
        PolicySpec("p95", "latency_p95_ms", "<=", 200.0, "blocking"),
        PolicySpec("p95 lenient", "latency_p95_ms", "<=", 200.0, "blocking", params={"require_data": False}),
        PolicySpec("p95 warn", "latency_p95_ms", "<=", 200.0, "warning"),
    ))
    by = {r.policy: r for r in ev.results}
    assert by["p95"].verdict == FAIL and by["p95"].blocking_failure
    assert by["p95"].detail.startswith("no data, and a blocking policy needs data")
    assert by["p95 lenient"].verdict == NO_DATA and not by["p95 lenient"].blocking_failure
    assert by["p95 warn"].verdict == NO_DATA
    assert not ev.passed and [r.policy for r in ev.blocking_failures] == ["p95"]
