"""The scheduler of `vigil serve` with a clock moved by hand (no sleeps): what is due, retries with back-off,
one run after downtime, leases between two schedulers on one store file, a killed run taken over."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from dashboard import alerting
from dashboard.access.roles import SERVICE, Actor, allowed, require
from dashboard.context import Context
from dashboard.errors import PermissionDenied
from dashboard.service import leases, runs
from dashboard.service.runs import Run
from dashboard.service.scheduler import Due, Scheduler, backoff_s, due_runs, latest_slot, lease_name
from dashboard.settings import ScheduleSpec, Settings, settings_from_mapping

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MODEL = "credit-risk"


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def only(settings: Settings, **crons: str | None) -> Settings:
    """The settings with the one model's schedule set to ``crons`` (every other monitor off)."""
    spec = ScheduleSpec(**{k: crons.get(k) for k in ("policies", "retrain", "sync_labels", "aliases")})
    model = dataclasses.replace(settings.model(MODEL), schedule=spec)
    return dataclasses.replace(settings, models={MODEL: model})


def run(status: str, scheduled: datetime, finished: datetime, attempt: int = 1) -> Run:
    return Run(1, "policies", MODEL, scheduled.replace(tzinfo=None), finished.replace(tzinfo=None),
               finished.replace(tzinfo=None), status, None, attempt, "h")


# ------------------------------------------------------------------------------------------ due computation


def test_latest_slot_and_backoff() -> None:
    assert latest_slot("*/15 * * * *", datetime(2026, 3, 2, 12, 14, 59)) == datetime(2026, 3, 2, 12, 0)
    assert latest_slot("*/15 * * * *", datetime(2026, 3, 2, 12, 15)) == datetime(2026, 3, 2, 12, 15)
    assert [backoff_s(n, 60, 600) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]


def test_due_first_run_then_next_slot_then_missed_slots_collapse_into_one() -> None:
    cron = {("policies", MODEL): "*/15 * * * *"}
    [first] = due_runs(cron, {}, T0 + timedelta(minutes=3), 60, 3600)
    assert (first.scheduled_for, first.attempt, first.reason) == (datetime(2026, 3, 2, 12, 0), 1, "first run")
    done = {("policies", MODEL): run("ok", T0, T0 + timedelta(minutes=1))}
    assert due_runs(cron, done, T0 + timedelta(minutes=14), 60, 3600) == []
    [nxt] = due_runs(cron, done, T0 + timedelta(minutes=15), 60, 3600)
    assert nxt.scheduled_for == datetime(2026, 3, 2, 12, 15) and nxt.reason == "due"
    # Three hours down: twelve slots passed; one run, for the latest slot.
    [late] = due_runs(cron, done, T0 + timedelta(hours=3, minutes=5), 60, 3600)
    assert late.scheduled_for == datetime(2026, 3, 2, 15, 0) and late.reason.startswith("12 slots passed")


def test_due_after_failure_waits_for_the_backoff_and_interrupted_is_retried_at_once() -> None:
    cron = {("policies", MODEL): "0 * * * *"}
    failed = {("policies", MODEL): run("failed", T0, T0 + timedelta(seconds=10), attempt=2)}
    assert due_runs(cron, failed, T0 + timedelta(seconds=10 + 119), 60, 3600) == []
    [retry] = due_runs(cron, failed, T0 + timedelta(seconds=10 + 120), 60, 3600)
    assert (retry.attempt, retry.scheduled_for) == (3, datetime(2026, 3, 2, 12, 0))
    cut = {("policies", MODEL): run("interrupted", T0, T0 + timedelta(seconds=10))}
    assert [d.attempt for d in due_runs(cron, cut, T0 + timedelta(seconds=10), 60, 3600)] == [2]
    busy = {("policies", MODEL): run("running", T0, T0)}
    assert due_runs(cron, busy, T0 + timedelta(hours=5), 60, 3600) == []


def test_schedule_settings_are_validated() -> None:
    base = {"models": {}}
    assert settings_from_mapping(base).serve.host == "127.0.0.1"
    with pytest.raises(Exception, match=r"serve.port.*not a port"):
        settings_from_mapping({"serve": {"port": "eighty"}})
    with pytest.raises(Exception, match=r"serve.secret: secrets do not belong"):
        settings_from_mapping({"serve": {"secret": "x"}})


def test_bad_cron_names_the_key(settings: Settings) -> None:
    from dashboard.settings import _parse_schedule

    problems: list[str] = []
    assert _parse_schedule("models.m.schedule", {"policies": "every hour", "aliases": "off"}, problems).aliases is None
    assert problems == ["models.m.schedule.policies: 'every hour' is not a five-field cron expression (minute hour "
                        "day month weekday, e.g. \"*/15 * * * *\") or \"off\""]


def test_the_service_actor_has_only_its_documented_actions() -> None:
    require(SERVICE, "labels.sync")
    require(SERVICE, "retrain.start")
    for action in ("model.promote", "users.manage", "policy.override", "ingest"):
        assert not allowed(SERVICE, action)
        with pytest.raises(PermissionDenied):
            require(SERVICE, action)
    from dashboard.access.users import add_user

    with pytest.raises(Exception, match="not a role"):
        add_user(settings_from_mapping({}).users_file, Actor("root", "admin"), "svc", "service", "pw" * 8)


# ------------------------------------------------------------------------------------------ ticks


def test_failed_run_is_recorded_retried_with_backoff_and_downtime_runs_once(settings: Settings) -> None:
    ctx = Context(only(settings, policies="*/15 * * * *"))
    clock = Clock(T0 + timedelta(minutes=1))
    calls: list[datetime] = []

    def flaky(c: Context, model: str, now: datetime) -> str:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("MLflow did not answer")
        return "fine"

    sched = Scheduler(ctx, holder="A", clock=clock, monitor_fns={"policies": flaky})
    [r1] = sched.tick().results
    assert (r1.status, r1.error) == ("failed", "RuntimeError: MLflow did not answer")
    clock.advance(seconds=59)
    assert sched.tick().results == []  # back-off: 60 s after the first failure
    clock.advance(seconds=2)
    [r2] = sched.tick().results
    assert r2.status == "ok" and r2.scheduled_for == datetime(2026, 3, 2, 12, 0)
    hist = runs.history(ctx, "policies", MODEL)
    assert list(hist["status"]) == ["ok", "failed"] and list(hist["attempt"]) == [2, 1]
    assert hist["error"].iloc[1] == "RuntimeError: MLflow did not answer"
    # The failure is one alert (a person sees that the monitor fails), raised once per failing run.
    alerts = ctx.store.query_df("SELECT subject, state, count FROM alerts WHERE kind = 'job'")
    assert alerts.to_dict(orient="records") == [{"subject": "policies monitor", "state": "open", "count": 1}]

    clock.advance(hours=5)  # down for five hours: one run, not twenty
    [r3] = sched.tick().results
    assert r3.status == "ok" and len(calls) == 3
    assert sched.tick().results == []
    assert not leases.holder_of(ctx, lease_name("policies", MODEL), clock())


def test_two_schedulers_on_one_store_never_run_the_same_monitor_at_once(settings: Settings) -> None:
    """Two schedulers, each with its own Context and LogStore object on the one file: while A runs the
    monitor (B ticks from inside it), B finds the lease taken and skips; afterwards B finds the slot done."""
    settings = only(settings, policies="*/15 * * * *")
    a_ctx, b_ctx = Context(settings), Context(settings)
    assert a_ctx.store is not b_ctx.store
    clock = Clock(T0 + timedelta(minutes=2))
    seen: list[str] = []
    b = Scheduler(b_ctx, holder="B", clock=clock, monitor_fns={"policies": lambda c, m, n: seen.append("B") or "b"})

    def monitor_a(c: Context, model: str, now: datetime) -> str:
        seen.append("A")
        inner = b.tick()  # A's run is live (its lease held): B neither runs it nor calls it interrupted
        assert (inner.results, inner.interrupted) == ([], [])
        forced = b._run(Due("policies", MODEL, datetime(2026, 3, 2, 12, 0), 1, "due"))  # B insists: the lease
        assert (forced.status, forced.summary) == ("skipped", "another process holds the lease")
        return "a"

    a = Scheduler(a_ctx, holder="A", clock=clock, monitor_fns={"policies": monitor_a})
    [ra] = a.tick().results
    assert ra.status == "ok" and seen == ["A"]
    assert b.tick().results == []  # the slot is done; B does not run it again
    assert list(runs.history(a_ctx, "policies", MODEL)["holder"]) == ["A"]


def test_a_run_cut_short_by_a_killed_process_is_taken_over_once_the_lease_expires(settings: Settings) -> None:
    settings = only(settings, policies="*/15 * * * *")
    ctx = Context(settings)
    clock = Clock(T0 + timedelta(minutes=1))
    name = lease_name("policies", MODEL)
    failing = alerting.Signal(MODEL, None, "policy", "accuracy", "blocking", "accuracy 0.61 < 0.7", {}, "8_compliance.py")

    def policies(c: Context, model: str, now: datetime) -> str:
        alerting.observe(c, model, "policy", [failing], ["accuracy"], now)
        return "done"

    # What a process killed mid-run leaves behind: a 'running' row, its lease, and the alert it had opened.
    assert leases.acquire(ctx, name, "dead-process", ttl_s=600, now=clock())
    runs.start(ctx, "policies", MODEL, datetime(2026, 3, 2, 12, 0), 1, "dead-process", clock())
    alerting.observe(ctx, MODEL, "policy", [failing], ["accuracy"], clock())
    sched = Scheduler(Context(settings), holder="B", clock=clock, monitor_fns={"policies": policies})
    assert sched.tick().results == []  # the lease is still live: the other process may be running it
    clock.advance(minutes=11)
    report = sched.tick()
    assert len(report.interrupted) == 1
    [r] = report.results
    assert r.status == "ok" and r.scheduled_for == datetime(2026, 3, 2, 12, 0)
    hist = runs.history(ctx, "policies", MODEL)
    assert list(hist["status"]) == ["ok", "interrupted"] and list(hist["attempt"]) == [2, 1]
    assert "stopped before it finished" in hist["error"].iloc[1]
    # The run done again re-observes the same failure: still one alert, no second notification queued.
    alerts = ctx.store.query_df("SELECT dedup_key, state FROM alerts")
    assert alerts.to_dict(orient="records") == [{"dedup_key": failing.dedup_key, "state": "open"}]
    opened = ctx.store.query_df("SELECT count(*) AS n FROM alert_notifications WHERE kind = 'opened'")
    assert int(opened["n"].iloc[0]) == 1


def test_lease_acquire_renew_release_and_expiry(settings: Settings) -> None:
    a, b = Context(settings), Context(settings)
    assert leases.acquire(a, "x", "A", 60, T0)
    assert not leases.acquire(b, "x", "B", 60, T0 + timedelta(seconds=30))
    assert leases.acquire(a, "x", "A", 60, T0 + timedelta(seconds=30))  # renew
    assert not leases.acquire(b, "x", "B", 60, T0 + timedelta(seconds=89))
    assert leases.acquire(b, "x", "B", 60, T0 + timedelta(seconds=91))  # expired: taken over
    assert not leases.release(a, "x", "A") and leases.holder_of(a, "x", T0 + timedelta(seconds=100)) == "B"
    assert leases.release(b, "x", "B") and leases.holder_of(a, "x", T0 + timedelta(seconds=100)) is None
