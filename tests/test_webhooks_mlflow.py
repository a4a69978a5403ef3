"""A real MLflow server (sqlite backend) firing its signed registry webhooks at a real `vigil serve`:
a registered version is gated, `champion` moved with the MLflow client is audited as an external change
and opens one alert; where no webhook can fire (a sqlite:/// URI used directly), the alias poller finds
the same kind of change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient

from dashboard.audit import trail
from dashboard.context import Context
from dashboard.lifecycle.gate import load_evidence
from dashboard.service import monitors, registry_watch
from dashboard.service.runtime import Service
from dashboard.service.scheduler import Scheduler
from dashboard.settings import load_settings
from tests.fixtures.app import free_port
from tests.fixtures.mlflow import MlflowServer
from tests.test_jobs import wait_for

MODEL = "credit-risk"
SECRET = "mlflow-webhook-secret"


@pytest.fixture(scope="module")
def served(private_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """The private demo's registry behind a real MLflow server (allowed to call loopback), and a real
    Service on it with the registry webhook registered and no scheduled monitor."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")  # the server may call back 127.0.0.1
        mp.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")  # ... over plain http
        mp.setenv("VIGIL_SERVE_SECRET", SECRET)
        server = MlflowServer(tmp_path_factory.mktemp("mlflow-hooks"), backend_db=private_demo / "mlflow.db")
        try:
            env = {"VIGIL_MLFLOW_URI": server.uri, "VIGIL_SERVE_PORT": str(free_port())}
            ctx = Context(load_settings(private_demo / "vigil.toml", env=env))
            service = Service(ctx, scheduler=Scheduler(ctx, monitor_fns={}), metrics=False)
            service.start()
            try:
                yield service, server.uri
            finally:
                service.stop(grace_s=120)
        finally:
            server.stop()


def test_registry_webhooks_gate_new_versions_and_report_alias_moves_outside_vigil(served) -> None:
    service, uri = served
    ctx = service.ctx
    assert service.registration.mlflow.startswith("webhook "), service.registration.mlflow
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    # A version registered outside Vigil is gated by the webhook.
    champion = client.get_model_version_by_alias(MODEL, "champion")
    new = client.create_model_version(MODEL, source=champion.source, run_id=champion.run_id,
                                      model_id=champion.model_id or champion.source.removeprefix("models:/"))
    wait_for(what="the gate of the new version", predicate=lambda: load_evidence(ctx, MODEL, str(new.version)))
    wait_for(what="the gate's audit entry", predicate=lambda: any(
        json.loads(d).get("version") == str(new.version)
        for d in trail.entries(ctx.store, action="gate.run", actor="vigil serve")["details"]))

    # Moving champion with the MLflow client: audited as an external change, one alert.
    client.set_registered_model_alias(MODEL, "champion", str(new.version))
    wait_for(what="the audit entry", predicate=lambda: len(trail.entries(ctx.store, action="registry.external_change")))
    entries = trail.entries(ctx.store, action="registry.external_change")
    details = json.loads(entries["details"].iloc[0])
    assert (details["alias"], details["previous_version"], details["version"], details["seen_by"]) == \
        ("champion", str(champion.version), str(new.version), "webhook")
    assert entries["actor"].iloc[0] == "vigil serve" and entries["role"].iloc[0] == "service"

    def alerts() -> list[dict]:
        return ctx.store.query_df("SELECT subject, severity, state, count, page FROM alerts WHERE kind = "
                                  "'external_change' AND model = ?", [MODEL]).to_dict(orient="records")

    # The audit entry is written first and the alert a moment later, by the same handler.
    wait_for(what="the external-change alert", predicate=alerts)
    assert alerts() == [{"subject": "alias champion", "severity": "blocking", "state": "open", "count": 1,
                         "page": "7_models.py"}]
    # The poller, which covers missed webhooks, sees nothing new: one change is reported once.
    assert registry_watch.poll(ctx, MODEL, datetime.now(UTC)) == []
    assert len(trail.entries(ctx.store, action="registry.external_change")) == 1
    assert service.events.counters.failed == 0, service.events.counters.last_error
    assert trail.verify(ctx.store).ok


def test_without_webhooks_the_alias_monitor_polls_and_finds_the_change(demo_workspace: Path, tmp_path: Path) -> None:
    import shutil

    db = tmp_path / "mlflow.db"
    shutil.copy(demo_workspace / "mlflow.db", db)  # copies of the shared workspace: it stays read-only
    shutil.copy(demo_workspace / "vigil.duckdb", tmp_path / "vigil.duckdb")
    uri = f"sqlite:///{db}"
    ctx = Context(load_settings(demo_workspace / "vigil.toml",
                                env={"VIGIL_MLFLOW_URI": uri, "VIGIL_DUCKDB_PATH": str(tmp_path / "vigil.duckdb")}))
    assert not ctx.registry.supports_webhooks
    now = datetime.now(UTC)
    assert monitors.aliases(ctx, MODEL, now) == "0 alias change(s), 0 outside Vigil"  # the baseline
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(MODEL, "challenger", client.get_model_version_by_alias(MODEL, "champion").version)
    assert monitors.aliases(ctx, MODEL, now) == "1 alias change(s), 1 outside Vigil"
    assert monitors.aliases(ctx, MODEL, now) == "0 alias change(s), 0 outside Vigil"
    [entry] = [json.loads(d) for d in trail.entries(ctx.store, action="registry.external_change")["details"]]
    assert entry["alias"] == "challenger" and entry["seen_by"] == "poll"
    assert "not trained by a Vigil retrain job" in entry["why_external"]
