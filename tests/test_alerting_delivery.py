"""Delivery faults against real receivers, with an injected clock: a route that is down, one that answers
500 and one that is slow are retried with back-off on later calls, nothing is lost and each gets exactly
one successful delivery; a sender killed between sending and recording sends again with the same id; a
missing secret or a removed route is a logged failure that names the fix."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.alerting import Signal, deliver_due, observe, queries
from dashboard.alerting import delivery as delivery_mod
from dashboard.context import Context
from dashboard.settings import Settings
from tests.conftest import demo_config_context

SECRET = "delivery-secret"
ENV = {"VIGIL_TEST_HOOK_SECRET": SECRET}
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SIGNAL = Signal("credit-risk", "3", "policy", "drift_share", "blocking", "drift share 0.41 >= 0.3",
                {"value": 0.41}, "8_compliance.py")


def hook_route(name: str, url: str) -> str:
    return f"""
[[alerts.routes]]
name = "{name}"
type = "webhook"
url = "{url}"
secret_env = "VIGIL_TEST_HOOK_SECRET"
"""


def configure(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, routes: str) -> Context:
    head = '\n[alerts]\ntimeout_s = 3\nretry_base_s = 60\nretry_max_s = "10m"\n'
    return demo_config_context(settings, tmp_path, monkeypatch, head + routes)


def sent_log(ctx: Context, alert_id: int) -> dict[str, list[str]]:
    log = queries.detail(ctx, alert_id, T0).deliveries.sort_values(["route", "attempt"])
    return {str(route): list(group["status"]) for route, group in log.groupby("route")}


def test_down_500_and_slow_routes_are_retried_until_each_has_exactly_one_delivery(
        settings, tmp_path, monkeypatch, http_receiver) -> None:
    failing, slow, down = http_receiver(SECRET), http_receiver(SECRET), http_receiver(SECRET)
    failing.mode, slow.mode = "500", "slow"
    down_port = down.port
    down.close()  # nothing listens on its port now
    ctx = configure(settings, tmp_path, monkeypatch, hook_route("h500", failing.url) + hook_route("hslow", slow.url)
                    + hook_route("hdown", down.url))
    (opened,) = observe(ctx, "credit-risk", "policy", [SIGNAL], ["drift_share"], T0)

    first = deliver_due(ctx, T0, env=ENV)
    assert (first.sent, first.failed, first.waiting) == (0, 3, 3)
    assert any("HTTP 500" in e for e in first.errors) and any("within 3 s" in e for e in first.errors)
    assert any("cannot reach" in e for e in first.errors)
    assert deliver_due(ctx, T0 + timedelta(seconds=30), env=ENV).failed == 0  # backing off: nothing due yet
    owed = queries.pending_targets(ctx)
    assert set(owed["route"]) == {"h500", "hslow", "hdown"} and set(owed["status"]) == {"failed"}

    failing.mode, slow.mode = "ok", "ok"
    up = http_receiver(SECRET, port=down_port)  # the receiver that was down is back
    second = deliver_due(ctx, T0 + timedelta(seconds=61), env=ENV)
    assert (second.sent, second.failed, second.waiting) == (3, 0, 0)
    assert deliver_due(ctx, T0 + timedelta(hours=1), env=ENV).sent == 0  # never twice once sent
    for receiver in (failing, slow, up):
        assert [m["id"] for m in receiver.accepted()] == [f"vigil-alert-{opened.alert_id}-opened-1"]
    assert sent_log(ctx, opened.alert_id) == {"h500": ["failed", "sent"], "hdown": ["failed", "sent"],
                                              "hslow": ["failed", "sent"]}


def test_a_route_that_stays_down_backs_off_to_the_cap_and_keeps_its_notification(
        settings, tmp_path, monkeypatch) -> None:
    from tests.fixtures.alerting import closed_port_url

    ctx = configure(settings, tmp_path, monkeypatch, hook_route("gone", closed_port_url()))
    (opened,) = observe(ctx, "credit-risk", "policy", [SIGNAL], ["drift_share"], T0)
    now, gaps = T0, []
    for _ in range(6):
        report = deliver_due(ctx, now, env=ENV)
        assert report.failed == 1 and report.waiting == 1
        nxt = queries.pending_targets(ctx).iloc[0]["next_attempt_at"]
        gaps.append((nxt - now.replace(tzinfo=None)).total_seconds())
        now = nxt.to_pydatetime().replace(tzinfo=UTC)
    assert gaps == [60, 120, 240, 480, 600, 600]  # doubling, capped at retry_max_s, never given up
    assert sent_log(ctx, opened.alert_id) == {"gone": ["failed"] * 6}


def test_a_sender_killed_between_send_and_record_sends_again_with_the_same_id(
        settings, tmp_path, monkeypatch, http_receiver) -> None:
    receiver = http_receiver(SECRET)
    ctx = configure(settings, tmp_path, monkeypatch, hook_route("hook", receiver.url))
    (opened,) = observe(ctx, "credit-risk", "policy", [SIGNAL], ["drift_share"], T0)
    note_id = f"vigil-alert-{opened.alert_id}-opened-1"
    # what a process does before it is killed: claim (logged as sending), send, and die before recording
    claim = delivery_mod._claim(ctx, note_id, "hook", T0.replace(tzinfo=None))
    assert claim is not None
    delivery_mod.build_route(ctx.settings.alerts.routes[0], 3, ENV).send(claim.message)
    assert deliver_due(ctx, T0 + timedelta(seconds=5), env=ENV).sent == 0  # its claim still holds
    lease = delivery_mod.lease_s(ctx.settings.alerts)
    assert deliver_due(ctx, T0 + timedelta(seconds=lease + 1), env=ENV).sent == 1
    assert [m["id"] for m in receiver.accepted()] == [note_id, note_id]  # the receiver drops the copy by id
    assert sent_log(ctx, opened.alert_id) == {"hook": ["interrupted", "sent"]}
    assert deliver_due(ctx, T0 + timedelta(hours=2), env=ENV).sent == 0


def test_a_missing_secret_and_a_removed_route_fail_loudly_and_lose_nothing(
        settings, tmp_path, monkeypatch, http_receiver) -> None:
    receiver = http_receiver(SECRET)
    ctx = configure(settings, tmp_path, monkeypatch, hook_route("hook", receiver.url))
    observe(ctx, "credit-risk", "policy", [SIGNAL], ["drift_share"], T0)
    report = deliver_due(ctx, T0, env={})
    assert report.failed == 1 and "VIGIL_TEST_HOOK_SECRET" in report.errors[0] and "export it" in report.errors[0]
    renamed = configure(settings, tmp_path, monkeypatch, hook_route("hook2", receiver.url))
    report = deliver_due(renamed, T0 + timedelta(minutes=5), env=ENV)
    assert report.failed == 1 and "route 'hook' is no longer in [[alerts.routes]]" in report.errors[0]
    assert receiver.accepted() == []
    assert list(queries.pending_targets(renamed)["route"]) == ["hook"]


def _observe_and_deliver(config: str, rounds: int) -> None:
    import os

    os.environ["VIGIL_CONFIG"] = config
    from dashboard.context import load_context

    context = load_context(config)
    for i in range(rounds):
        observe(context, "credit-risk", "policy", [SIGNAL], ["drift_share"], T0 + timedelta(seconds=i))
        deliver_due(context, T0 + timedelta(seconds=i), env=ENV)


def test_two_processes_observing_and_delivering_at_once_make_one_alert_and_one_delivery(
        settings, tmp_path, monkeypatch, http_receiver) -> None:
    receiver = http_receiver(SECRET)
    ctx = configure(settings, tmp_path, monkeypatch, hook_route("hook", receiver.url))
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=_observe_and_deliver, args=(str(tmp_path / "vigil.toml"), 3)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    frame = queries.alerts(ctx, T0, state="open")
    assert len(frame) == 1 and int(frame.iloc[0]["count"]) == 6
    assert len(receiver.requests) == 1 and receiver.accepted()[0]["event"] == "opened"
