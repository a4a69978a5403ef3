"""Retrain runners against real local HTTP servers (the webhook receiver verifies the HMAC signature).

GitHub's API cannot run here, so one test uses a local HTTP server that stands in for it (named so).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import ConnectorError
from connectors.triggers import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    GitHubActionsRunner,
    LocalProcessRunner,
    TrainingRequest,
    TriggerError,
    WebhookRunner,
    option_args,
    parse_result,
    verify,
)
from dashboard.access.roles import Actor
from dashboard.context import Context
from dashboard.lifecycle import jobs
from dashboard.settings import load_settings

SECRET = "s3cret-shared"
Handler = Callable[[BaseHTTPRequestHandler, bytes], tuple[int, dict[str, Any] | None]]


class Server:
    """A real HTTP server on 127.0.0.1 in a thread; ``handle`` decides the answer; requests are kept."""

    def __init__(self, handle: Handler) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code, payload = handle(self, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handle: Handler) -> Server:
        servers.append(Server(handle))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def verifying_receiver(req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, Any] | None]:
    """What a training service does with a Vigil webhook: check the signature, then accept."""
    ts, sig = req.headers.get(TIMESTAMP_HEADER, ""), req.headers.get(SIGNATURE_HEADER, "")
    if not verify(SECRET, ts, body, sig):
        return 401, {"error": "bad signature"}
    return 202, {"accepted": json.loads(body)["model"], "run": "remote-42"}


def test_webhook_runner_signs_requests_a_real_receiver_verifies(serve):
    server = serve(verifying_receiver)
    request = TrainingRequest("credit-risk", options={"include_labels": True}, job_id="j1")
    out = WebhookRunner(server.url + "/train", SECRET).trigger(request)
    assert out["status"] == 202 and out["response"] == {"accepted": "credit-risk", "run": "remote-42"}
    sent = json.loads(server.requests[0]["body"])
    assert sent == {"model": "credit-risk", "job_id": "j1", "options": {"include_labels": True}}
    assert server.requests[0]["headers"][SIGNATURE_HEADER].startswith("sha256=")


def test_webhook_with_the_wrong_secret_is_rejected_and_says_so(serve):
    server = serve(verifying_receiver)
    with pytest.raises(TriggerError, match=r"HTTP 401.*shared secret") as info:
        WebhookRunner(server.url, "not-the-secret").trigger(TrainingRequest("credit-risk"))
    assert isinstance(info.value, ConnectorError)


def test_webhook_timeout_is_a_trigger_error(serve):
    release = threading.Event()

    def slow(req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, Any] | None]:
        release.wait(10)
        return 202, {}

    server = serve(slow)
    try:
        with pytest.raises(TriggerError, match=r"did not answer within 0\.5 s"):
            WebhookRunner(server.url, SECRET, timeout_s=0.5).trigger(TrainingRequest("credit-risk"))
    finally:
        release.set()


def test_webhook_needs_a_secret_and_an_http_url():
    with pytest.raises(TriggerError, match="VIGIL_WEBHOOK_SECRET"):
        WebhookRunner("http://127.0.0.1:9/x", "")
    with pytest.raises(TriggerError, match="http"):
        WebhookRunner("ftp://example/x", SECRET)


def test_github_runner_against_a_local_stand_in_for_the_github_api(serve):
    def api(req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, Any] | None]:
        if req.path != "/repos/acme/models/actions/workflows/retrain.yml/dispatches":
            return 404, {"message": "Not Found"}
        if req.headers.get("Authorization") != "Bearer tok":
            return 401, {"message": "Bad credentials"}
        data = json.loads(body)
        if data.get("ref") != "main" or set(data.get("inputs", {})) != {"model", "job_id", "options"}:
            return 422, {"message": "Unexpected inputs"}
        return 204, None

    server = serve(api)
    runner = GitHubActionsRunner("acme/models", "retrain.yml", "tok", api_url=server.url)
    out = runner.trigger(TrainingRequest("credit-risk", options={"reweighing": True}, job_id="j9"))
    assert out["status"] == 204
    inputs = json.loads(server.requests[0]["body"])["inputs"]
    assert inputs["model"] == "credit-risk" and json.loads(inputs["options"]) == {"reweighing": True}
    with pytest.raises(TriggerError, match=r"no workflow .other\.yml."):
        GitHubActionsRunner("acme/models", "other.yml", "tok", api_url=server.url).trigger(TrainingRequest("m"))
    with pytest.raises(TriggerError, match="token is invalid"):
        GitHubActionsRunner("acme/models", "retrain.yml", "bad", api_url=server.url).trigger(TrainingRequest("m"))


def test_local_runner_command_line_and_environment(tmp_path: Path):
    runner = LocalProcessRunner("python -c \"import os,sys; print(sys.argv[1:], os.environ['MLFLOW_TRACKING_URI'])\"",
                                env={"MLFLOW_TRACKING_URI": "sqlite:///x.db"})
    request = TrainingRequest("credit-risk", config_path="/c/vigil.toml",
                              options={"include_labels": True, "reweighing": False, "rows": 2000, "alias": ""})
    argv = runner.argv(request)
    assert argv[0] == sys.executable
    assert argv[-9:] == ["--model", "credit-risk", "--config", "/c/vigil.toml", "--include-labels", "--rows", "2000",
                         "--alias", ""]
    log = tmp_path / "out.log"
    with log.open("wb") as fh:
        assert runner.start(request, fh).wait() == 0
    out = log.read_text()
    assert "'--include-labels'" in out and "'--reweighing'" not in out and "sqlite:///x.db" in out
    with pytest.raises(TriggerError, match="training_command"):
        LocalProcessRunner("  ")
    with log.open("ab") as fh, pytest.raises(TriggerError, match="cannot run the training command"):
        LocalProcessRunner("/no/such/trainer").start(request, fh)


def test_option_args_and_result_lines():
    assert option_args({"a_b": True, "c": False, "d": None, "e": 3}) == ["--a-b", "--e", "3"]
    assert parse_result('VIGIL_RESULT {"run_id": "r", "model_version": "4"}') == {"run_id": "r", "model_version": "4"}
    assert parse_result("VIGIL_RESULT not json") is None
    assert parse_result("metrics: accuracy=0.9") is None


def test_a_job_with_the_webhook_runner_dispatches_and_succeeds(serve, retrain_ws: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    server = serve(verifying_receiver)
    path = retrain_ws / "vigil.toml"
    path.write_text(path.read_text() + f'\n[models.credit-risk.retrain]\nrunner = "webhook"\n'
                    f'webhook_url = "{server.url}/train"\n')
    monkeypatch.setenv("VIGIL_WEBHOOK_SECRET", SECRET)
    ctx = Context(load_settings(path, env=dict(os.environ)))
    job = jobs.start_retrain(ctx, Actor("dana", "data_scientist"), "credit-risk")
    assert job.runner == "webhook"
    done = jobs.wait(ctx, job.id, timeout_s=300, poll_s=0.2)
    assert done.state == "succeeded", jobs.tail_log(done)
    assert done.result["dispatch"]["response"]["accepted"] == "credit-risk"
    assert json.loads(server.requests[0]["body"])["job_id"] == job.id
    assert "webhook runner answered" in jobs.tail_log(done)


def test_a_job_whose_webhook_refuses_fails(serve, retrain_ws: Path, monkeypatch: pytest.MonkeyPatch):
    server = serve(verifying_receiver)
    path = retrain_ws / "vigil.toml"
    path.write_text(path.read_text() + f'\n[models.credit-risk.retrain]\nrunner = "webhook"\n'
                    f'webhook_url = "{server.url}/train"\n')
    monkeypatch.setenv("VIGIL_WEBHOOK_SECRET", "wrong")
    ctx = Context(load_settings(path, env=dict(os.environ)))
    done = jobs.wait(ctx, jobs.start_retrain(ctx, Actor("dana", "data_scientist"), "credit-risk").id,
                     timeout_s=300, poll_s=0.2)
    assert done.state == "failed" and "HTTP 401" in (done.message or "")
