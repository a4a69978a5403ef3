"""Alerts end to end against real receivers: a failing blocking policy is one alert, one email and one
webhook delivery while it keeps failing (a repeat once the interval passes), one resolution when it passes;
acknowledging and silencing stop repeats; roles are checked in the core and audited (faults of delivery
and concurrency: tests/test_alerting_delivery.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.access.roles import Actor
from dashboard.alerting import Signal, actions, deliver_due, observe, observe_evaluation, queries, raise_event
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance.policy import Evaluation, PolicyResult
from dashboard.settings import ConfigError, Settings, settings_from_mapping
from tests.conftest import demo_config_context

SECRET = "alert-hook-secret"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DS, MGR, ANN = Actor("dana", "data_scientist"), Actor("max", "manager"), Actor("ann", "annotator")


def routes_toml(webhook_url: str, smtp_port: int) -> str:
    return f"""
[alerts]
repeat_interval = "4h"
timeout_s = 10
retry_base_s = 60
retry_max_s = "1h"

[[alerts.routes]]
name = "ops-hook"
type = "webhook"
url = "{webhook_url}"
secret_env = "VIGIL_TEST_HOOK_SECRET"

[[alerts.routes]]
name = "ops-mail"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
from = "vigil@example.org"
to = ["ops@example.org"]
min_severity = "blocking"
"""


def result(policy: str, verdict: str, value: float, *, metric: str | None = None, severity: str = "blocking",
           at: datetime = T0) -> PolicyResult:
    return PolicyResult(policy=policy, metric=metric or policy, subject=None, value=value, comparator="<",
                        threshold=0.3, severity=severity, verdict=verdict, window="7d", rows=5000,
                        evaluated_at=at, data_version="dv-1")


def evaluation(*results: PolicyResult, at: datetime = T0, version: str | None = "3") -> Evaluation:
    return Evaluation(model="credit-risk", version=version, window="7d", evaluated_at=at, data_version="dv-1",
                      results=list(results))


@pytest.fixture
def wired(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_receiver, smtp_server):
    hook = http_receiver(SECRET)
    mail = smtp_server()
    context = demo_config_context(settings, tmp_path, monkeypatch, routes_toml(hook.url, mail.port))
    return context, hook, mail, {"VIGIL_TEST_HOOK_SECRET": SECRET}


def test_a_failing_blocking_policy_is_one_alert_one_email_one_webhook_then_one_resolution(wired) -> None:
    context, hook, mail, env = wired
    failing = result("drift_share", "fail", 0.41)
    for i in range(3):  # three scheduled evaluations, 15 minutes apart, all failing
        at = T0 + timedelta(minutes=15 * i)
        changes = observe_evaluation(context, evaluation(failing, at=at), at)
        assert [c.change for c in changes] == ["opened" if i == 0 else "refreshed"]
        deliver_due(context, at, env=env)
    open_now = queries.alerts(context, T0 + timedelta(minutes=30), state="open")
    assert len(open_now) == 1 and int(open_now.iloc[0]["count"]) == 3
    assert [m["event"] for m in hook.accepted()] == ["opened"] and len(mail.messages) == 1
    assert "OPEN blocking credit-risk v3: policy drift_share" in mail.messages[0]["Subject"]

    # still failing four hours after the opening notification: exactly one repeat on each route
    later = T0 + timedelta(hours=4, minutes=1)
    observe_evaluation(context, evaluation(failing, at=later), later)
    assert deliver_due(context, later, env=env).repeats_queued == 1
    assert deliver_due(context, later + timedelta(minutes=15), env=env).repeats_queued == 0
    assert [m["event"] for m in hook.accepted()] == ["opened", "repeat"] and len(mail.messages) == 2

    # the policy passes: resolved, exactly one resolution notification per route
    passed = T0 + timedelta(hours=5)
    changes = observe_evaluation(context, evaluation(result("drift_share", "pass", 0.1), at=passed), passed)
    assert [c.change for c in changes] == ["resolved"]
    deliver_due(context, passed, env=env)
    deliver_due(context, passed + timedelta(hours=5), env=env)
    assert [m["event"] for m in hook.accepted()] == ["opened", "repeat", "resolved"]
    assert [m["Subject"].split()[1] for m in mail.messages] == ["OPEN", "STILL", "RESOLVED"]
    assert len({m["Message-ID"] for m in mail.messages}) == 3
    assert queries.alerts(context, passed, state="open").empty
    found = queries.detail(context, changes[0].alert_id, passed)
    assert list(found.history["event"]) == ["opened", "observed", "observed", "observed", "resolved"]
    assert (found.deliveries["status"] == "sent").sum() == 6

    # failing again after resolution opens a new alert
    again = T0 + timedelta(hours=6)
    (reopened,) = observe_evaluation(context, evaluation(failing, at=again), again)
    assert reopened.change == "opened" and reopened.alert_id != changes[0].alert_id


def test_slo_and_warning_verdicts_route_by_kind_and_severity(wired) -> None:
    context, hook, mail, env = wired
    ev = evaluation(result("latency_p95_ms", "fail", 912.0, severity="warning"),
                    result("accuracy", "no data", 0.0), result("card_completeness", "pass", 1.0))
    changes = observe_evaluation(context, ev, T0)
    assert [(c.kind, c.subject, c.severity) for c in changes] == [("slo", "latency_p95_ms", "warning")]
    deliver_due(context, T0, env=env)
    assert len(hook.accepted()) == 1 and mail.messages == []  # the mail route takes blocking alerts only
    alert = queries.detail(context, changes[0].alert_id, T0).alert
    assert alert["page"] == "4_operations.py" and alert["evidence"]["value"] == 912.0
    # "no data" measures nothing: it neither opens nor resolves; another version's verdict resolves nothing
    assert observe_evaluation(context, evaluation(result("latency_p95_ms", "pass", 10.0), version="4"), T0) == []


def test_acknowledge_and_silence_stop_repeats_until_the_silence_ends(wired) -> None:
    context, hook, _, env = wired
    failing = evaluation(result("drift_share", "fail", 0.5))
    (opened,) = observe_evaluation(context, failing, T0)
    deliver_due(context, T0, env=env)
    actions.acknowledge(context, DS, opened.alert_id, "looking at the income feature", T0)
    assert deliver_due(context, T0 + timedelta(hours=9), env=env).repeats_queued == 0
    # a second alert, silenced for 5 hours: no repeat at 4 h 30, one once the silence has ended
    signal = Signal("credit-risk", "3", "policy", "accuracy", "blocking", "accuracy 0.61 < 0.7", {}, "8_compliance.py")
    (second,) = observe(context, "credit-risk", "policy", [signal], ["accuracy"], T0)
    actions.silence(context, MGR, second.alert_id, 5 * 3600, "retrain running", T0)
    assert deliver_due(context, T0 + timedelta(hours=4, minutes=30), env=env).repeats_queued == 0
    acknowledged = queries.alerts(context, T0 + timedelta(hours=1), state="acknowledged")
    assert set(acknowledged["id"]) == {second.alert_id, opened.alert_id}
    after = T0 + timedelta(hours=5, minutes=1)
    assert queries.detail(context, second.alert_id, after).alert["state"] == "open"
    assert deliver_due(context, after, env=env).repeats_queued == 1
    assert [m["alert"]["subject"] for m in hook.accepted() if m["event"] == "repeat"] == ["accuracy"]


def test_roles_are_checked_in_the_core_and_every_action_is_audited(ctx: Context) -> None:
    event = Signal("credit-risk", "3", "external_change", "champion", "warning",
                   "champion moved from v2 to v3 outside Vigil", {"from": "2", "to": "3"}, "7_models.py")
    opened = raise_event(ctx, event, T0)
    assert raise_event(ctx, event, T0 + timedelta(minutes=5)).change == "refreshed"
    for act in (lambda a: actions.acknowledge(ctx, a, opened.alert_id, "", T0),
                lambda a: actions.silence(ctx, a, opened.alert_id, 3600, "", T0),
                lambda a: actions.resolve(ctx, a, opened.alert_id, "", T0)):
        with pytest.raises(PermissionDenied, match="annotator"):
            act(ANN)
    assert trail.entries(ctx, action="alert.").empty
    actions.acknowledge(ctx, DS, opened.alert_id, "checking with the platform team", T0)
    actions.silence(ctx, MGR, opened.alert_id, 3600, "known", T0)
    actions.resolve(ctx, Actor("root", "admin"), opened.alert_id, "moved back", T0)
    audited = trail.entries(ctx, action="alert.").sort_values("seq")
    assert list(audited["action"]) == ["alert.acknowledge", "alert.silence", "alert.resolve"]
    assert list(audited["actor"]) == ["dana", "max", "root"] and set(audited["target"]) == {"credit-risk"}
    with pytest.raises(VigilError, match="already resolved"):
        actions.acknowledge(ctx, DS, opened.alert_id, "", T0)
    with pytest.raises(VigilError, match="no alert #999"):
        actions.acknowledge(ctx, DS, 999, "", T0)
    with pytest.raises(ValueError, match="use observe"):
        raise_event(ctx, Signal("credit-risk", None, "policy", "x", "blocking", "x"), T0)


def test_a_checked_alert_resolves_itself_not_by_hand(ctx: Context) -> None:
    signal = Signal("credit-risk", None, "retrain_rule", "accuracy_floor", "warning", "retrain rule fired")
    (opened,) = observe(ctx, "credit-risk", "retrain_rule", [signal], ["accuracy_floor"], T0)
    with pytest.raises(VigilError, match="resolves itself"):
        actions.resolve(ctx, DS, opened.alert_id, "", T0)
    (resolved,) = observe(ctx, "credit-risk", "retrain_rule", [], ["accuracy_floor"], T0 + timedelta(hours=1))
    assert resolved.change == "resolved" and resolved.alert_id == opened.alert_id


def test_bad_alert_config_lists_every_problem_with_its_key() -> None:
    raw = {"alerts": {"repeat_interval": "soon", "bogus": 1, "routes": [
        {"name": "a", "type": "pager"},
        {"name": "b", "type": "webhook", "url": "ftp://x", "secret": "inline"},
        {"name": "c", "type": "email", "smtp_host": "mail", "from": "nobody", "to": [], "username": "u"},
        {"name": "d", "type": "slack", "url": "https://hooks.example/x", "models": ["nope"], "min_severity": "loud"},
    ]}}
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw)
    text = "\n".join(info.value.problems)
    for expected in ("alerts.repeat_interval: 'soon' is not a positive duration", "alerts.bogus: unknown key",
                     "alerts.routes[0].type: must be one of webhook, slack, email",
                     "alerts.routes[1].url", "alerts.routes[1].secret_env", "alerts.routes[1].secret: secrets do not",
                     "alerts.routes[2].from", "alerts.routes[2].to", "alerts.routes[2]: username and password_env",
                     "alerts.routes[3].models: 'nope' is not a configured model", "alerts.routes[3].min_severity"):
        assert expected in text, expected
    ok = settings_from_mapping({"alerts": {"repeat_interval": "30m", "routes": [
        {"name": "s", "type": "slack", "url_env": "SLACK_URL", "min_severity": "warning"}]}})
    assert ok.alerts.repeat_interval_s == 1800 and ok.alerts.routes[0].accepts("any", "blocking")
    assert not ok.alerts.routes[0].accepts("any", "info")


def test_a_writer_that_loses_the_race_to_open_an_alert_refreshes_the_winners(ctx: Context) -> None:
    """Another writer opens the same alert between this transaction's read and its insert: the insert
    collides on the open dedup key, the transaction rolls back and retries as a refresh."""
    from dashboard.alerting import state

    signal = Signal("credit-risk", None, "job", "retrain job j-1", "warning", "retrain job failed")
    attempts: list[int] = []

    def work(con):  # type: ignore[no-untyped-def]
        con.execute("SELECT count(*) FROM alert_open").fetchone()  # the snapshot starts here
        attempts.append(1)
        if len(attempts) == 1:
            assert raise_event(ctx, signal, T0).change == "opened"  # the other writer wins
        return state._open_or_refresh(con, ctx, signal, state.utc_naive(T0))

    change = state.in_transaction(ctx, work)
    assert len(attempts) == 2 and change.change == "refreshed"
    frame = queries.alerts(ctx, T0)
    assert len(frame) == 1 and int(frame.iloc[0]["count"]) == 2
