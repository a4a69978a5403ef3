"""`vigil serve` over real HTTP: /healthz and /metrics, the webhook receivers' refusals (bad secret or
signature, stale timestamp, replay: each audited), bounded bodies and queue, and a real `vigil serve`
process stopped by SIGTERM (exit 0, lease released)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from mlflow.webhooks.delivery import _generate_hmac_signature

from dashboard.audit import trail
from dashboard.context import Context
from dashboard.service import leases, registration
from dashboard.service.runtime import Service
from dashboard.settings import Settings, load_settings
from tests.conftest import DEMO_CONFIG, REPO
from tests.fixtures.app import free_port, wait_http
from tests.test_jobs import wait_for

MODEL = "credit-risk"
SECRET = "s3cret-for-tests"


def mlflow_post(url: str, payload: dict, secret: str = SECRET, delivery: str | None = None,
                timestamp: int | None = None) -> requests.Response:
    """POST as MLflow's webhook delivery does (its own signing function)."""
    body = json.dumps(payload)
    delivery = delivery or str(uuid.uuid4())
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": stamp,
               "X-MLflow-Signature": _generate_hmac_signature(secret, delivery, stamp, body)}
    return requests.post(f"{url}/hooks/mlflow", data=body.encode(), headers=headers, timeout=10)


def alias_event(model: str, alias: str = "champion", version: str = "1") -> dict:
    return {"entity": "model_version_alias", "action": "created", "timestamp": datetime.now(UTC).isoformat(),
            "data": {"name": model, "alias": alias, "version": version}}


@pytest.fixture
def serve_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("VIGIL_SERVE_SECRET", SECRET)
    return settings


@pytest.fixture
def service(serve_settings: Settings) -> Iterator[Service]:
    """A real Service (HTTP, events, scheduler) on a free port; no webhook registration (nothing to call)."""
    svc = Service(Context(serve_settings), port=free_port(), register=False)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop(grace_s=60)


def test_healthz_and_metrics_over_http(service: Service) -> None:
    url = f"http://127.0.0.1:{service.port}"
    wait_http(f"{url}/healthz", 60)
    health = requests.get(f"{url}/healthz", timeout=10).json()
    assert health["ok"] is True and health["scheduler"]["running"] is True and health["store"]["reachable"] is True
    assert health["events"]["max"] == 100
    metrics = requests.get(f"{url}/metrics", timeout=120)
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    assert 'vigil_collect_ok{model="credit-risk",part="operations"} 0.0' in metrics.text  # no logs yet
    assert requests.get(f"{url}/nothing", timeout=10).status_code == 404
    service.stop(grace_s=60)
    assert service.health()[0] is False  # a stopped scheduler is not healthy


def test_mlflow_receiver_refuses_bad_signature_stale_timestamp_and_replay_and_audits_each(service: Service) -> None:
    url = f"http://127.0.0.1:{service.port}"
    store = service.ctx.store
    bad = mlflow_post(url, alias_event("not-configured"), secret="wrong")
    assert bad.status_code == 401 and "bad X-MLflow-Signature" in bad.json()["error"]
    stale = mlflow_post(url, alias_event("not-configured"), timestamp=int(time.time()) - 301)
    assert stale.status_code == 401 and "more than 300 s" in stale.json()["error"]
    delivery = str(uuid.uuid4())
    first = mlflow_post(url, alias_event("not-configured"), delivery=delivery)
    assert first.status_code == 202 and first.json()["accepted"] is True
    again = mlflow_post(url, alias_event("not-configured"), delivery=delivery)
    assert again.status_code == 409 and "a replay" in again.json()["error"]
    unsigned = requests.post(f"{url}/hooks/mlflow", json=alias_event(MODEL), timeout=10)
    assert unsigned.status_code == 401
    rejected = trail.entries(store, action="webhook.rejected")
    reasons = [json.loads(d)["reason"] for d in rejected["details"]]
    assert len(reasons) == 4 and any("a replay" in r for r in reasons) and any("300 s" in r for r in reasons)
    assert set(rejected["actor"]) == {"webhook from 127.0.0.1"}
    assert trail.verify(store).ok


def test_label_studio_receiver_checks_the_secret_and_the_model(service: Service) -> None:
    url = f"http://127.0.0.1:{service.port}/hooks/label-studio"
    body = {"action": "ANNOTATION_CREATED", "task": {"id": 7}, "annotation": {"id": 1}}
    assert requests.post(f"{url}/{MODEL}", json=body, timeout=10).status_code == 401
    ok_header = {registration.SECRET_HEADER: SECRET}
    assert requests.post(f"{url}/nope", json=body, headers=ok_header, timeout=10).status_code == 404
    other = requests.post(f"{url}/{MODEL}", json={"action": "PROJECT_UPDATED"}, headers=ok_header, timeout=10)
    assert other.status_code == 202 and other.json()["accepted"] is False
    assert len(trail.entries(service.ctx.store, action="webhook.rejected")) == 1


def test_bodies_and_the_event_queue_are_bounded(serve_settings: Settings) -> None:
    import dataclasses

    spec = dataclasses.replace(serve_settings.serve, queue_size=2, max_body_bytes=2048)
    svc = Service(Context(dataclasses.replace(serve_settings, serve=spec)), port=free_port(), register=False,
                  metrics=False)
    thread = svc.http.serve_in_thread()  # the worker is not started: the queue only fills
    url = f"http://127.0.0.1:{svc.port}"
    try:
        big = requests.post(f"{url}/hooks/mlflow", data=b"x" * 4096, headers={"Content-Type": "application/json"},
                            timeout=10)
        assert big.status_code == 413
        codes = [mlflow_post(url, alias_event(MODEL, version=str(i))).status_code for i in range(3)]
        assert codes == [202, 202, 503]
        assert svc.events.counters.refused_full == 1 and svc.events.size() == 2
        # Label Studio events of one model coalesce into the sync already waiting... once one waits.
        svc.events.get(timeout=1)
        ls = f"{url}/hooks/label-studio/{MODEL}"
        answers = [requests.post(ls, json={"action": "ANNOTATION_UPDATED", "task": {"id": i}},
                                 headers={registration.SECRET_HEADER: SECRET}, timeout=10).json() for i in range(3)]
        assert [a["queued"] for a in answers] == [True, False, False]
    finally:
        svc.http.shutdown()
        svc.http.server_close()
        thread.join(10)


def test_vigil_serve_process_stops_on_sigterm_with_exit_0_and_its_leases_released(tmp_path: Path) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text(DEMO_CONFIG.read_text().replace('data_dir = "."', f'data_dir = "{tmp_path / "data"}"'))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_CONFIG": str(config), "VIGIL_SERVE_SECRET": SECRET})
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port), "--no-register"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, proc)
        # SIGTERM once a monitor has started: it must finish (recorded ok), not be cut off.
        wait_for(what="a monitor run", predicate=lambda: requests.get(
            f"http://127.0.0.1:{port}/healthz", timeout=30).json()["monitors"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    out = (tmp_path / "serve.log").read_text()
    assert "stopping: finishing the running monitor" in out and "\nstopped\n" in out + "\n"
    ctx = Context(load_settings(config, env={"VIGIL_CONFIG": str(config)}))
    with ctx.store.connect() as con:
        assert con.execute("SELECT count(*) FROM leases").fetchone() == (0,)
        statuses = {r[0] for r in con.execute("SELECT status FROM serve_runs").fetchall()}
    assert statuses == {"ok"}  # the monitor running at SIGTERM finished; a model not yet registered is no failure
    assert leases.holder_of(ctx, "monitor:policies:credit-risk", datetime.now(UTC)) is None
