"""Faults against a real Label Studio: server down mid-import, wrong token, a 500 or a timeout mid-batch.

After each fault plus a retry the project holds exactly one task per queued prediction. The 500 and the
timeout are injected by an httpx transport in front of the real server: the request reaches Label Studio
(which creates the tasks) and only the answer is replaced, the nastiest case for exactly-once.
"""

from __future__ import annotations

import httpx
import pytest

from connectors.labelstudio import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioServerError,
    LabelStudioUnavailable,
)
from dashboard.learning import annotation
from tests.fixtures.app import free_port
from tests.test_labelstudio import (
    SCIENTIST,
    assert_exactly_once,
    ingest_logs,
    project_tasks,
    select,
    workspace,
)

pytestmark = pytest.mark.labelstudio


def test_server_stopped_mid_import_then_restarted_and_retried(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=40, seed=10)
    client = annotation.client_for(ctx, timeout_s=10)
    annotation.queue_candidates(ctx, SCIENTIST, model, select(ctx, model, budget=15).candidates, "margin")

    def stop_after_first_batch(done: int, total: int) -> None:
        if done == 5:
            labelstudio_server.stop()

    try:
        with pytest.raises(LabelStudioUnavailable) as err:
            annotation.send(ctx, SCIENTIST, model, client, batch_size=5, progress=stop_after_first_batch)
        message = str(err.value)
        assert "not reachable" in message and "scripts/labelstudio.sh start" in message
        assert "5 of 15 sent" in message and "send again" in message
        assert annotation.queue_status(ctx, model) == {"pending": 10, "sending": 0, "sent": 5, "labelled": 0,
                                                       "skipped": 0}
        last = annotation.queue_rows(ctx, model)
        assert last.loc[last["state"] == "pending", "last_error"].str.contains("not reachable").all()
    finally:
        labelstudio_server.start()
    report = annotation.send(ctx, SCIENTIST, model, client, batch_size=5)
    assert report.imported == 10
    assert_exactly_once(ctx, model, client, 15)


def test_label_studio_down_from_the_start(tmp_path, labelstudio_server):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=20, seed=11)
    dead = LabelStudioClient(f"http://127.0.0.1:{free_port()}", labelstudio_server.token, timeout_s=5)
    with pytest.raises(LabelStudioUnavailable, match="not reachable"):
        annotation.queue_and_send(ctx, SCIENTIST, model, select(ctx, model, budget=4), dead)
    assert annotation.queue_status(ctx, model)["pending"] == 4
    annotation.send(ctx, SCIENTIST, model, annotation.client_for(ctx))
    assert_exactly_once(ctx, model, annotation.client_for(ctx), 4)


def test_wrong_token_says_what_to_do_and_a_retry_finishes(labelstudio_server, tmp_path):
    wrong = "0123456789abcdef" * 2 + "01234567"
    ctx, model, _ = workspace(tmp_path, labelstudio_server, token=wrong)
    ingest_logs(ctx, model, tmp_path, n=20, seed=12)
    bad = annotation.client_for(ctx)
    with pytest.raises(LabelStudioAuthError) as err:
        annotation.queue_and_send(ctx, SCIENTIST, model, select(ctx, model, budget=5), bad)
    message = str(err.value)
    assert "rejected the API token" in message and "VIGIL_LABEL_STUDIO_TOKEN" in message
    assert wrong not in message and labelstudio_server.token not in message
    assert annotation.queue_status(ctx, model)["pending"] == 5
    with pytest.raises(LabelStudioAuthError):
        bad.whoami()
    good = LabelStudioClient(labelstudio_server.url, labelstudio_server.token)
    annotation.send(ctx, SCIENTIST, model, good)
    assert_exactly_once(ctx, model, good, 5)


class FaultAfterImport(httpx.BaseTransport):
    """Forwards every request to the real server; on the n-th task import replaces the answer with a fault."""

    def __init__(self, fault: str, on_import: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.fault = fault
        self.on_import = on_import
        self.imports = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/import"):
            self.imports += 1
            if self.imports == self.on_import:
                response.read()
                response.close()
                if self.fault == "500":
                    return httpx.Response(500, json={"detail": "injected after the import ran"}, request=request)
                raise httpx.ReadTimeout("injected: the answer never came", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_fault_mid_batch_via_fault_injecting_transport_then_retry(labelstudio_server, tmp_path, fault):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=40, seed=13)
    transport = FaultAfterImport(fault, on_import=2)
    flaky = LabelStudioClient(labelstudio_server.url, labelstudio_server.token, transport=transport)
    annotation.queue_candidates(ctx, SCIENTIST, model, select(ctx, model, budget=15).candidates, "entropy")
    expected = LabelStudioServerError if fault == "500" else LabelStudioUnavailable
    with pytest.raises(expected) as err:
        annotation.send(ctx, SCIENTIST, model, flaky, batch_size=5)
    assert "5 of 15 sent" in str(err.value) and "nothing is sent twice" in str(err.value)
    assert "HTTP 500" in str(err.value) if fault == "500" else "did not answer" in str(err.value)
    status = annotation.queue_status(ctx, model)
    assert (status["sent"], status["pending"], status["sending"]) == (5, 10, 0)
    client = annotation.client_for(ctx)
    assert sum(len(v) for v in project_tasks(ctx, model, client).values()) == 10  # the server did import batch 2

    report = annotation.send(ctx, SCIENTIST, model, flaky, batch_size=5)  # the same client, fault passed
    assert (report.adopted, report.imported) == (5, 5)
    assert_exactly_once(ctx, model, client, 15)
