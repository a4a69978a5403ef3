"""The real Label Studio firing the webhook `vigil serve` registered on the model's project: an annotation
submitted through its API changes Vigil's labelled numbers without a manual sync; the same event replayed
changes nothing; registering again adds no second webhook."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from dashboard.context import Context
from dashboard.learning import annotation
from dashboard.service import registration
from dashboard.service.runtime import Service
from dashboard.service.scheduler import Scheduler
from dashboard.settings import load_settings
from tests.fixtures.app import free_port
from tests.test_jobs import wait_for
from tests.test_labelstudio import ANNOTATOR, ingest_logs, labelled_accuracy, project_tasks, select, workspace

pytestmark = pytest.mark.labelstudio
SECRET = "label-studio-webhook-secret"


def label_rows(ctx: Context, model: str) -> int:
    return int(ctx.store.query_df("SELECT count(*) AS n FROM labels WHERE model_name = ?", [model])["n"].iloc[0])


def test_an_annotation_in_label_studio_reaches_vigil_through_the_webhook(labelstudio_server, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SERVE_SECRET", SECRET)
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    ctx = Context(load_settings(env["VIGIL_CONFIG"], env={**env, "VIGIL_SERVE_PORT": str(free_port())}))
    logs = ingest_logs(ctx, model, tmp_path)
    client = annotation.client_for(ctx)
    annotation.queue_and_send(ctx, ANNOTATOR, model, select(ctx, model, budget=4), client)

    service = Service(ctx, scheduler=Scheduler(ctx, monitor_fns={}), metrics=False)
    service.start()
    try:
        hook = service.registration.label_studio[model]
        assert hook.startswith("webhook "), hook
        project = annotation.project_id(ctx, model)
        assert project is not None
        assert registration.label_studio(ctx, model, client) == int(hook.split()[1])  # idempotent
        [registered] = client.webhooks(project)
        assert registered.url == f"http://127.0.0.1:{service.port}/hooks/label-studio/{model}"
        assert set(registered.actions) == set(registration.LS_ACTIONS)

        before = labelled_accuracy(ctx, model)
        pid, [task_id] = next(iter(project_tasks(ctx, model, client).items()))
        predicted = dict(zip(logs["prediction_id"], logs["prediction"], strict=True))[pid]
        other = "bad" if predicted == "good" else "good"
        client.annotate(task_id, other)  # as an annotator would in the labelling UI; nobody presses "Sync labels"
        after = wait_for(what="the labelled numbers to change", predicate=lambda: (got := labelled_accuracy(ctx, model)) != before and got)
        assert after[0] == before[0] + 1
        # The queue row is marked after the label is written (its own short write): wait for it as well.
        wait_for(what="the queue row to be marked labelled",
                 predicate=lambda: annotation.queue_status(ctx, model)["labelled"] == 1)
        rows = label_rows(ctx, model)

        # The same event again (as Label Studio would send it): accepted, processed, nothing changes.
        processed = service.events.counters.processed
        replay = requests.post(registered.url, json={"action": "ANNOTATION_CREATED", "task": {"id": task_id}},
                               headers={registration.SECRET_HEADER: SECRET}, timeout=10)
        assert replay.status_code == 202
        wait_for(what="the replayed event to be processed", predicate=lambda: service.events.counters.processed > processed)
        assert (labelled_accuracy(ctx, model), label_rows(ctx, model)) == (after, rows)
        assert service.events.counters.failed == 0, service.events.counters.last_error
    finally:
        service.stop(grace_s=60)
