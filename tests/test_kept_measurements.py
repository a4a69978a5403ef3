"""Kept policy measurements: reused while the data, the configuration and the champion are unchanged,
measured again when any of them changes, and never kept for metrics that depend on other state."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors import kept_results
from dashboard.context import Context
from dashboard.governance import kept_measurements
from dashboard.governance.policy import evaluate
from dashboard.monitoring import drift, fairness, operations
from dashboard.settings import PolicySpec
from tests.conftest import make_logs

MODEL = "credit-risk"
WINDOW = "2026-01-01..2026-01-01"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each analysis really ran."""
    seen: Counter[str] = Counter()

    def counting(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            seen[name] += 1
            return fn(*args, **kwargs)
        return run

    for module, name in ((drift, "compute_drift"), (fairness, "compute_fairness"),
                         (operations, "compute_operations")):
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    return seen


def ingest(ctx: Context, tmp_path: Path, name: str, **kw: Any) -> None:
    path = tmp_path / name
    make_logs(**kw).to_parquet(path, index=False)
    assert ctx.store.ingest([path], ctx.schema(MODEL)).rows_added


POLICIES = [(PolicySpec("di", "disparate_impact", "within", (0.8, 1.25)), "config"),
            (PolicySpec("errors", "error_rate", "<=", 0.1), "config"),
            (PolicySpec("share", "drift_share", "<", 0.5, params={"reference": "2026-01-01T00:00..2026-01-01T06:00"}),
             "config")]


def facts(ev: Any) -> list[tuple[Any, ...]]:
    return [(r.name, r.value, r.verdict, r.rows, r.detail, r.window) for r in ev.results]


def test_unchanged_data_is_measured_once_and_new_data_again(ctx: Context, tmp_path: Path,
                                                            calls: Counter[str]) -> None:
    ingest(ctx, tmp_path, "a.parquet", n=900)
    first = evaluate(ctx, MODEL, window=WINDOW, policies=POLICIES)
    assert calls == {"compute_drift": 1, "compute_fairness": 1, "compute_operations": 1}
    again = evaluate(ctx, MODEL, window=WINDOW, policies=POLICIES)
    assert facts(again) == facts(first) and again.data_version == first.data_version
    assert sum(calls.values()) == 3  # nothing measured again
    ingest(ctx, tmp_path, "b.parquet", n=300, id_prefix="b", start="2026-01-01 15:00")
    after = evaluate(ctx, MODEL, window=WINDOW, policies=POLICIES)
    assert calls == {"compute_drift": 2, "compute_fairness": 2, "compute_operations": 2}
    assert {r.name: r.rows for r in after.results}["errors"] == 1200


def test_a_changed_policy_or_model_configuration_is_measured_again(ctx: Context, tmp_path: Path,
                                                                    calls: Counter[str]) -> None:
    ingest(ctx, tmp_path, "a.parquet", n=900)
    evaluate(ctx, MODEL, window=WINDOW, policies=POLICIES)
    stricter = [(dataclasses.replace(POLICIES[1][0], threshold=0.01), "config")]
    evaluate(ctx, MODEL, window=WINDOW, policies=stricter)
    assert calls["compute_operations"] == 2
    cfg = ctx.model(MODEL)
    changed = dataclasses.replace(cfg, thresholds=dataclasses.replace(cfg.thresholds, drift_share=0.9))
    other = Context(dataclasses.replace(ctx.settings, models={**ctx.settings.models, MODEL: changed}))
    evaluate(other, MODEL, window=WINDOW, policies=POLICIES)
    assert calls == {"compute_drift": 2, "compute_fairness": 2, "compute_operations": 3}


def test_metrics_of_state_outside_the_logs_are_never_kept(ctx: Context, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.governance import policy_metrics

    ingest(ctx, tmp_path, "a.parquet", n=200)
    table = policy_metrics.providers()
    assert kept_measurements.keepable(*table["error_rate"][2:])
    for metric in ("open_high_findings", "ingest_rejects", "card_completeness", "gate_verdict", "table_problems",
                   "holdout_accuracy", policy_metrics.GX_SUITE):
        assert not kept_measurements.keepable(*table[metric][2:]), metric
    counted: Counter[str] = Counter()
    original = policy_metrics.ingest_rejects

    def rejects(ev: Any, spec: PolicySpec) -> Any:
        counted["ingest_rejects"] += 1
        return original(ev, spec)

    from dashboard.governance import policy

    monkeypatch.setattr(policy, "providers", lambda: {**table, "ingest_rejects": (rejects, *table["ingest_rejects"][1:])})
    policies = [(PolicySpec("rejects", "ingest_rejects", "==", 0.0), "config")]
    evaluate(ctx, MODEL, window="1d", policies=policies)
    evaluate(ctx, MODEL, window="1d", policies=policies)
    assert counted["ingest_rejects"] == 2


def test_a_new_champion_is_measured_again(demo_ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: Counter[str] = Counter()
    original = drift.compute_drift

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen["drift"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(drift, "compute_drift", counting)
    policies = [(PolicySpec("share", "drift_share", "<", 0.5, params={"reference": "training"}), "config")]
    evaluate(demo_ctx, MODEL, window="7d", policies=policies)
    evaluate(demo_ctx, MODEL, window="7d", policies=policies)
    assert seen["drift"] == 1
    reg = demo_ctx.registry
    before = reg.resolve(MODEL, "champion").version
    challenger = reg.resolve(MODEL, "challenger").version
    reg.set_alias(MODEL, "champion", challenger)
    try:
        evaluate(demo_ctx, MODEL, window="7d", policies=policies)
        assert seen["drift"] == 2
    finally:
        reg.set_alias(MODEL, "champion", before)


def test_a_damaged_kept_row_is_measured_again(ctx: Context, tmp_path: Path, calls: Counter[str]) -> None:
    ingest(ctx, tmp_path, "a.parquet", n=300)
    policies = POLICIES[1:2]
    first = evaluate(ctx, MODEL, window=WINDOW, policies=policies)
    with ctx.store.connect() as con:
        con.execute(f"UPDATE {kept_results.TABLE} SET payload = '[{{\"wrong\": 1}}]'")
    assert facts(evaluate(ctx, MODEL, window=WINDOW, policies=policies)) == facts(first)
    assert calls["compute_operations"] == 2


def test_the_model_summary_is_kept_until_the_data_changes(ctx: Context, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.logstore import LogStore

    seen: Counter[str] = Counter()
    original = LogStore.summary

    def counting(self: LogStore, *args: Any, **kwargs: Any) -> Any:
        seen["summary"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LogStore, "summary", counting)
    ingest(ctx, tmp_path, "a.parquet", n=300)
    first = ctx.summary(MODEL)
    again = ctx.summary(MODEL)
    assert again == first and seen["summary"] == 1
    assert type(again["last_ingest"]) is type(first["last_ingest"]) and again["rows"] == 300
    ingest(ctx, tmp_path, "b.parquet", n=100, id_prefix="b", start="2026-01-01 15:00")
    assert ctx.summary(MODEL)["rows"] == 400 and seen["summary"] == 2


def test_content_addressed_results_outlive_data_versions_and_stay_bounded(ctx: Context) -> None:
    """A result whose key holds its inputs' digest survives saves under new data versions; the newest
    CONTENT_KEEP of a model are kept, the results of an old data version are not."""
    kept_results.save(ctx.store, MODEL, "v1", {"by-version": 1})
    for i in range(kept_results.CONTENT_KEEP + 3):
        kept_results.save(ctx.store, MODEL, kept_results.CONTENT, {f"fit-{i:02d}": i})
    kept_results.save(ctx.store, MODEL, "v2", {"by-version": 2})
    assert kept_results.load(ctx.store, MODEL, "v1", ["by-version"]) == {}
    assert kept_results.load(ctx.store, MODEL, "v2", ["by-version"]) == {"by-version": 2}
    names = [f"fit-{i:02d}" for i in range(kept_results.CONTENT_KEEP + 3)]
    content = kept_results.load(ctx.store, MODEL, kept_results.CONTENT, names)
    assert sorted(content) == names[3:]  # the oldest three made room
