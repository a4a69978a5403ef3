"""``vigil alerts``: list, show, ack, silence, resolve and deliver, acting as the user of VIGIL_TOKEN."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.alerting import Signal, observe, raise_event
from dashboard.audit import trail
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.settings import Settings
from tests.conftest import demo_config_context
from tests.fixtures.access import token_for

SECRET = "cli-hook-secret"


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
         token: str | None = None) -> tuple[int, str, str]:
    if token is None:
        monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    else:
        monkeypatch.setenv("VIGIL_TOKEN", token)
    code = run_cli(cli, ["alerts", *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


@pytest.fixture
def workspace(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_receiver):
    receiver = http_receiver(SECRET)
    monkeypatch.setenv("VIGIL_TEST_HOOK_SECRET", SECRET)
    context = demo_config_context(settings, tmp_path, monkeypatch, f"""
[[alerts.routes]]
name = "hook"
type = "webhook"
url = "{receiver.url}"
secret_env = "VIGIL_TEST_HOOK_SECRET"
""")
    now = datetime.now(UTC)
    policy = Signal("credit-risk", "3", "policy", "drift_share", "blocking", "drift share 0.41 >= 0.3",
                    {"value": 0.41, "threshold": "0.3"}, "8_compliance.py")
    (opened,) = observe(context, "credit-risk", "policy", [policy], ["drift_share"], now - timedelta(minutes=5))
    job = raise_event(context, Signal("credit-risk", None, "job", "retrain job j-7", "warning",
                                      "retrain job failed: " + "x" * 20_000), now)
    return context, receiver, opened.alert_id, job.alert_id


def test_list_show_and_deliver(workspace, monkeypatch, capsys) -> None:
    context, receiver, policy_id, job_id = workspace
    code, out, _ = _run(monkeypatch, capsys, "list", "--json")
    assert code == 0
    assert {(a["id"], a["state"], a["kind"]) for a in json.loads(out)} == {(policy_id, "open", "policy"),
                                                                         (job_id, "open", "job")}
    code, out, _ = _run(monkeypatch, capsys, "list", "--state", "resolved")
    assert code == 0 and "no alerts in state resolved" in out
    code, out, _ = _run(monkeypatch, capsys, "show", str(policy_id))
    assert code == 0 and "drift share 0.41 >= 0.3" in out and "threshold: 0.3" in out and "opened by vigil" in out
    code, out, _ = _run(monkeypatch, capsys, "show", str(job_id))
    assert code == 0 and "(20,020 characters)" in out and len(out) < 20_000  # text output clips; --json does not
    code, out, _ = _run(monkeypatch, capsys, "deliver")
    assert code == 0 and out.startswith("2 sent, 0 failed")
    assert len(receiver.accepted()) == 2
    code, out, _ = _run(monkeypatch, capsys, "show", str(policy_id), "--json")
    shown = json.loads(out)
    assert [d["status"] for d in shown["deliveries"]] == ["sent"] and shown["alert"]["evidence"]["value"] == 0.41
    receiver.mode = "500"
    raise_event(context, Signal("credit-risk", None, "job", "retrain job j-8", "warning", "retrain job failed"),
                datetime.now(UTC))
    code, out, _ = _run(monkeypatch, capsys, "deliver")
    assert code == 1 and "failed: route 'hook'" in out and "HTTP 500" in out
    code, _, err = _run(monkeypatch, capsys, "show", "999")
    assert code == 2 and "no alert #999" in err
    code, _, err = _run(monkeypatch, capsys, "list", "--model", "nope")
    assert code == 2 and "no such model" in err


def test_ack_silence_and_resolve_act_as_the_token_user(workspace, settings: Settings, monkeypatch, capsys) -> None:
    context: Context = workspace[0]
    policy_id, job_id = workspace[2], workspace[3]
    code, _, err = _run(monkeypatch, capsys, "ack", str(policy_id))
    assert code == 2 and "VIGIL_TOKEN" in err
    annotator = token_for(settings.users_file, "ann", "annotator")
    code, _, err = _run(monkeypatch, capsys, "ack", str(policy_id), token=annotator)
    assert code == 2 and "ann (annotator) may not alert.acknowledge" in err
    scientist = token_for(settings.users_file, "dana", "data_scientist")
    code, out, _ = _run(monkeypatch, capsys, "ack", str(policy_id), "--note", "income feature", token=scientist)
    assert code == 0 and f"alert #{policy_id} acknowledged" in out
    code, _, err = _run(monkeypatch, capsys, "silence", str(policy_id), "--for", "soon", token=scientist)
    assert code == 2 and "not a duration" in err
    code, out, _ = _run(monkeypatch, capsys, "silence", str(policy_id), "--for", "2h", token=scientist)
    assert code == 0
    code, out, _ = _run(monkeypatch, capsys, "list", "--state", "silenced", "--json")
    assert [(a["id"], a["acked_by"]) for a in json.loads(out)] == [(policy_id, "dana")]
    code, _, err = _run(monkeypatch, capsys, "resolve", str(policy_id), token=scientist)
    assert code == 2 and "resolves itself" in err
    code, out, _ = _run(monkeypatch, capsys, "resolve", str(job_id), "--note", "rerun passed", token=scientist)
    assert code == 0
    audited = trail.entries(context, action="alert.").sort_values("seq")
    assert list(audited["action"]) == ["alert.acknowledge", "alert.silence", "alert.resolve"]
    assert set(audited["actor"]) == {"dana"}
