"""Against a real Label Studio: the round trip, label sync rules, exactly-once under retry, crash and concurrency.

Each test uses its own model name (so its own Label Studio project) and its own DuckDB store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors.labelstudio import PREDICTION_VERSION, LabelStudioClient
from connectors.windows import Window
from dashboard.access.roles import Actor
from dashboard.context import Context
from dashboard.errors import PermissionDenied
from dashboard.learning import annotation
from dashboard.learning.selection import SelectionRequest, select_candidates
from dashboard.monitoring.quality import compute_quality
from dashboard.settings import load_settings
from tests.conftest import DEMO_CONFIG, REPO, make_logs
from tests.fixtures.access import token_for
from tests.fixtures.labelstudio import LabelStudioServer

pytestmark = pytest.mark.labelstudio

WINDOW = Window(datetime(2026, 1, 1), datetime(2026, 2, 1))
SCIENTIST = Actor("dana", "data_scientist")
ANNOTATOR = Actor("ann", "annotator")


def workspace(tmp_path: Path, server: LabelStudioServer, token: str | None = None,
              labelling: str = "") -> tuple[Context, str, dict]:
    """A vigil.toml with the demo model under a fresh name, a fresh store, and the server's URL/token;
    ``labelling`` is the body of the model's ``[labelling]`` table."""
    model = f"credit-{uuid.uuid4().hex[:8]}"
    text = DEMO_CONFIG.read_text().replace("[models.credit-risk", f"[models.{model}")
    text = text.replace('data_dir = "."', f'data_dir = "{tmp_path / "data"}"')
    if labelling:
        text += f"\n[models.{model}.labelling]\n{labelling}\n"
    config = tmp_path / "vigil.toml"
    config.write_text(text)
    env = {"VIGIL_CONFIG": str(config), "VIGIL_LABEL_STUDIO_URL": server.url,
           "VIGIL_LABEL_STUDIO_TOKEN": token or server.token}
    return Context(load_settings(config, env=env)), model, env


def ingest_logs(ctx: Context, model: str, tmp_path: Path, n: int = 40, seed: int = 0, version: str = "1",
                id_prefix: str = "p") -> pd.DataFrame:
    df = make_logs(n, seed=seed, version=version, id_prefix=id_prefix)
    p = np.random.default_rng(seed).uniform(0.05, 0.95, n)
    df["proba_good"], df["proba_bad"] = p, 1 - p
    df["prediction"] = np.where(p >= 0.5, "good", "bad")
    path = tmp_path / f"logs{seed}-{version}.parquet"
    df.to_parquet(path, index=False)
    report = ctx.store.ingest([path], ctx.schema(model))
    assert not report.rejected, report.problem_lines()
    return df


def select(ctx: Context, model: str, budget: int) -> annotation.Selection:
    return select_candidates(ctx, model, SelectionRequest(WINDOW, budget=budget, segment=None, bucket="week"))


def project_tasks(ctx: Context, model: str, client: LabelStudioClient) -> dict[str, list[int]]:
    project = annotation.project_link(ctx, model)
    assert project is not None
    project_id = int(project.rstrip("/").split("/")[-2])
    return client.tasks_by_prediction(project_id)


def assert_exactly_once(ctx: Context, model: str, client: LabelStudioClient, expected: int | None) -> int:
    """One task per queued prediction, each recorded in the queue with its task id; returns the count."""
    tasks = project_tasks(ctx, model, client)
    assert {pid: len(ids) for pid, ids in tasks.items() if len(ids) != 1} == {}
    queue = annotation.queue_rows(ctx, model)
    assert len(tasks) == len(queue) == (expected if expected is not None else len(queue))
    assert set(tasks) == set(queue["prediction_id"])
    assert (queue["state"] == "sent").all(), queue["state"].value_counts().to_dict()
    assert dict(zip(queue["prediction_id"], queue["task_id"].astype(int), strict=True)) == \
        {pid: ids[0] for pid, ids in tasks.items()}
    assert len(client.find_projects(annotation.project_title(model))) == 1
    return len(tasks)


def labelled_accuracy(ctx: Context, model: str) -> tuple[int, float | None]:
    """The labelled-quality numbers Vigil reports: rows with a current label and the accuracy on them."""
    table = ctx.schema(model).table
    n, acc = ctx.store.query_df(
        f"SELECT count(*) AS n, avg(CASE WHEN l.label = t.prediction THEN 1.0 ELSE 0.0 END) AS acc "
        f"FROM current_labels l JOIN {table} t USING (prediction_id) WHERE l.model_name = ?", [model]).iloc[0]
    return int(n), None if pd.isna(acc) else float(acc)


def current_label(ctx: Context, model: str, pid: str) -> str | None:
    got = ctx.store.query_df("SELECT label, source, annotator FROM current_labels WHERE model_name = ? AND "
                             "prediction_id = ?", [model, pid])
    return None if got.empty else str(got["label"].iloc[0])


# ------------------------------------------------------------------------------------------------ round trip


def test_round_trip_select_send_annotate_sync_changes_accuracy(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    logs = ingest_logs(ctx, model, tmp_path)
    confident = logs[np.maximum(logs["proba_good"], logs["proba_bad"]) >= 0.8].head(6)
    truth = pd.DataFrame({"prediction_id": confident["prediction_id"], "label": confident["prediction"]})
    ctx.store.add_labels(ctx.schema(model), truth, source="ground_truth")
    assert labelled_accuracy(ctx, model) == (6, 1.0)

    client = annotation.client_for(ctx)
    selection = select(ctx, model, budget=8)
    assert len(selection.candidates) == 8
    report = annotation.queue_and_send(ctx, ANNOTATOR, model, selection, client)
    assert (report.queued, report.imported, report.adopted) == (8, 8, 0)
    assert_exactly_once(ctx, model, client, 8)

    # Tasks carry the prediction id, the features as a table and the model's answer as a pre-annotation.
    project_id = report.project_id
    assert project_id is not None and report.project_url == f"{labelstudio_server.url}/projects/{project_id}/data"
    raw = client._sdk.tasks.list(project=project_id, fields="all", page_size=100)
    first = next(iter(raw))
    assert set(first.data["features"]) == set(ctx.model(model).features)
    pre = first.predictions[0]
    assert pre.result[0]["value"]["choices"] == [first.data["prediction"]]
    assert pre.model_version == PREDICTION_VERSION and pre.score == pytest.approx(first.data["score"])

    # Annotate as an annotator would: agree with the model on half, correct it on the other half.
    tasks = project_tasks(ctx, model, client)
    predicted = dict(zip(logs["prediction_id"], logs["prediction"], strict=True))
    flip = {"good": "bad", "bad": "good"}
    wanted = {}
    for i, pid in enumerate(sorted(tasks)):
        wanted[pid] = predicted[pid] if i % 2 == 0 else flip[predicted[pid]]
        client.annotate(tasks[pid][0], wanted[pid])

    before = compute_quality(ctx, model, WINDOW)
    assert (before.n_labelled, before.actual.accuracy) == (6, pytest.approx(1.0))
    synced = annotation.sync_labels(ctx, ANNOTATOR, model, client)
    assert (synced.tasks, synced.labelled, synced.written) == (8, 8, 8)
    assert labelled_accuracy(ctx, model) == (14, pytest.approx((6 + 4) / 14))
    after = compute_quality(ctx, model, WINDOW)  # what the Operations page and `vigil check` report
    assert (after.n_labelled, after.actual.accuracy) == (14, pytest.approx(10 / 14))
    for pid, label in wanted.items():
        assert current_label(ctx, model, pid) == label
    src = ctx.store.query_df("SELECT DISTINCT source, annotator FROM current_labels WHERE model_name = ? AND "
                             "source <> 'ground_truth'", [model])
    assert src.to_dict("records") == [{"source": "label_studio", "annotator": labelstudio_server.username}]
    assert annotation.queue_status(ctx, model)["labelled"] == 8
    progress = annotation.annotator_progress(ctx, model)
    assert progress[["annotator", "labelled"]].to_dict("records") == [
        {"annotator": labelstudio_server.username, "labelled": 8}]

    # A second sync with nothing new writes nothing.
    again = annotation.sync_labels(ctx, ANNOTATOR, model, client)
    assert again.written == 0 and labelled_accuracy(ctx, model) == (14, pytest.approx(10 / 14))

    # The labelled rows are no longer candidates.
    assert not set(select(ctx, model, budget=50).candidates["prediction_id"]) & set(wanted)

    # Every step is in the audit trail, which never holds the token.
    trail = ctx.store.query_df("SELECT actor, action, target, details FROM audit_log ORDER BY seq")
    assert list(trail["action"]) == ["queue.add", "labelstudio.project_create", "queue.send", "labels.sync",
                                     "labels.sync"]
    assert set(trail["actor"]) == {"ann"} and set(trail["target"]) == {model}
    assert labelstudio_server.token not in trail.to_string()


def test_sync_follows_updates_deletions_majority_ties_and_skips(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=30, seed=1)
    client = annotation.client_for(ctx)
    annotation.queue_and_send(ctx, SCIENTIST, model, select(ctx, model, budget=4), client)
    tasks = project_tasks(ctx, model, client)
    a, b, c, d = sorted(tasks)

    first = client.annotate(tasks[a][0], "good")
    for label in ("bad", "bad", "good"):
        client.annotate(tasks[b][0], label)
    client.annotate(tasks[c][0], "good")
    client.annotate(tasks[c][0], "bad")
    client.annotate(tasks[d][0], None, cancelled=True)
    report = annotation.sync_labels(ctx, SCIENTIST, model, client)
    assert (report.labelled, report.ties, report.skipped, report.written) == (2, 1, 1, 2)
    assert report.agreement == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert current_label(ctx, model, a) == "good" and current_label(ctx, model, b) == "bad"
    assert current_label(ctx, model, c) is None and current_label(ctx, model, d) is None
    rows = annotation.queue_rows(ctx, model).set_index("prediction_id")
    assert rows.loc[b, "agreement"] == pytest.approx(2 / 3) and rows.loc[b, "annotations"] == 3
    assert rows.loc[c, "state"] == "sent" and "tie" in rows.loc[c, "last_error"]
    assert rows.loc[d, "state"] == "skipped"

    client.update_annotation(first, "bad")  # the annotator changes their mind
    report = annotation.sync_labels(ctx, SCIENTIST, model, client)
    assert report.written == 1 and current_label(ctx, model, a) == "bad"

    client.delete_annotation(first)  # ... and then deletes the annotation
    report = annotation.sync_labels(ctx, SCIENTIST, model, client)
    assert (report.written, report.retracted) == (1, 1)
    assert current_label(ctx, model, a) is None
    assert annotation.queue_rows(ctx, model).set_index("prediction_id").loc[a, "state"] == "sent"
    history = ctx.store.query_df("SELECT label FROM labels WHERE model_name = ? AND prediction_id = ? "
                                 "ORDER BY recorded_at, ingest_id", [model, a])
    assert list(history["label"].fillna("<retracted>")) == ["good", "bad", "<retracted>"]


# ------------------------------------------------------------------------------------------------ exactly once


def test_send_again_adds_nothing_and_new_batch_extends(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=30, seed=2)
    client = annotation.client_for(ctx)
    selection = select(ctx, model, budget=5)
    annotation.queue_and_send(ctx, SCIENTIST, model, selection, client)
    repeat = annotation.queue_and_send(ctx, SCIENTIST, model, selection, client)
    assert (repeat.queued, repeat.claimed, repeat.imported) == (0, 0, 0)
    more = annotation.queue_and_send(ctx, SCIENTIST, model, select(ctx, model, budget=5), client)
    assert (more.queued, more.imported) == (5, 5)
    assert_exactly_once(ctx, model, client, 10)


def test_crash_between_import_and_bookkeeping_then_retry(labelstudio_server, tmp_path):
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=30, seed=3)
    client = annotation.client_for(ctx)
    annotation.queue_candidates(ctx, SCIENTIST, model, select(ctx, model, budget=7).candidates, "least-confidence")
    crash = textwrap.dedent("""
        import os
        from dashboard.access.roles import Actor
        from dashboard.learning import annotation as a
        from dashboard.context import load_context
        SCIENTIST = Actor("dana", "data_scientist")
        ctx = load_context()
        model = os.environ["MODEL"]
        client = a.client_for(ctx)
        project = a.ensure_project(ctx, SCIENTIST, model, client)
        claim = a._claim_id()
        ids = a._claim(ctx, model, claim, None)
        client.import_tasks(project, a._payloads(ctx, model, ids))
        os._exit(9)  # dies after Label Studio created the tasks, before the queue recorded them
    """)
    proc = subprocess.run([sys.executable, "-c", crash], cwd=REPO, env={**os.environ, **env, "MODEL": model},
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 9, proc.stderr
    assert annotation.queue_status(ctx, model)["sending"] == 7
    assert sum(len(v) for v in project_tasks(ctx, model, client).values()) == 7

    report = annotation.send(ctx, SCIENTIST, model, client)
    assert (report.claimed, report.adopted, report.imported) == (7, 7, 0)
    assert_exactly_once(ctx, model, client, 7)


def test_two_concurrent_senders_threads(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=60, seed=4)
    selection = select(ctx, model, budget=24)
    barrier = threading.Barrier(2)
    reports: list[annotation.SendReport] = []
    errors: list[BaseException] = []

    def sender(name: str) -> None:
        try:
            own = Context(ctx.settings)  # like two people in two app sessions
            barrier.wait()
            reports.append(annotation.queue_and_send(own, Actor(name, "annotator"), model, selection,
                                                     annotation.client_for(own)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(n,)) for n in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sum(r.queued for r in reports) == 24
    assert sum(r.imported + r.adopted for r in reports) == 24
    assert_exactly_once(ctx, model, annotation.client_for(ctx), 24)


def test_two_concurrent_senders_processes_via_cli(labelstudio_server, tmp_path):
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=60, seed=5)
    vigil = str(Path(sys.executable).with_name("vigil"))
    cmd = [vigil, "queue", "--model", model, "--budget", "15", "--window", "2026-01-01..2026-01-31",
           "--segment", "none", "--json"]
    token = token_for(ctx.settings.users_file, "dana", "data_scientist")
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, **env, "VIGIL_TOKEN": token},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    assert labelstudio_server.token not in "".join(o[0] + o[1] for o in outs)
    # Each process selects 15; the later one skips rows the earlier one queued, so 15..30 distinct rows.
    sent = assert_exactly_once(ctx, model, annotation.client_for(ctx), None)
    assert 15 <= sent <= 30


def test_duplicate_task_made_outside_vigil_is_removed_by_reconcile(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=20, seed=6)
    client = annotation.client_for(ctx)
    report = annotation.queue_and_send(ctx, SCIENTIST, model, select(ctx, model, budget=3), client)
    assert report.project_id is not None
    pid = sorted(project_tasks(ctx, model, client))[0]
    client.import_tasks(report.project_id, annotation._payloads(ctx, model, [pid]))  # someone re-imports
    assert len(project_tasks(ctx, model, client)[pid]) == 2
    fixed = annotation.reconcile(ctx, SCIENTIST, model, client)
    assert fixed["duplicates_removed"] == 1
    assert_exactly_once(ctx, model, client, 3)


def test_sync_removes_duplicates_and_follows_tasks_deleted_in_label_studio(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=20, seed=8)
    client = annotation.client_for(ctx)
    report = annotation.queue_and_send(ctx, SCIENTIST, model, select(ctx, model, budget=3), client)
    assert report.project_id is not None
    first, second = sorted(project_tasks(ctx, model, client))[:2]
    client.import_tasks(report.project_id, annotation._payloads(ctx, model, [first]))  # someone re-imports
    client.delete_task(project_tasks(ctx, model, client)[second][0])  # someone deletes a task
    synced = annotation.sync_labels(ctx, SCIENTIST, model, client)
    assert (synced.duplicates_removed, synced.vanished) == (1, 1)
    assert "1 duplicate task(s) removed" in synced.line() and "marked skipped" in synced.line()
    tasks = project_tasks(ctx, model, client)
    assert len(tasks[first]) == 1 and second not in tasks
    queue = annotation.queue_rows(ctx, model).set_index("prediction_id")
    assert queue.loc[second, "state"] == "skipped"
    assert queue.loc[second, "last_error"] == "the task was deleted in Label Studio"
    assert queue.loc[first, "state"] == "sent" and int(queue.loc[first, "task_id"]) == tasks[first][0]
    again = annotation.sync_labels(ctx, SCIENTIST, model, client)
    assert (again.duplicates_removed, again.vanished, again.written) == (0, 0, 0)


def test_roles_and_token_secrecy(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    client = annotation.client_for(ctx)
    assert labelstudio_server.token not in repr(client) + str(client) + repr(ctx.settings)
    manager = Actor("max", "manager")
    with pytest.raises(PermissionDenied):
        annotation.send(ctx, manager, model, client)
    with pytest.raises(PermissionDenied):
        annotation.sync_labels(ctx, manager, model, client)


def test_install_is_cached_and_env_prints_the_settings(labelstudio_server):
    script = REPO / "scripts" / "labelstudio.sh"
    again = subprocess.run([str(script), "install"], capture_output=True, text=True, timeout=120, check=True)
    assert "is installed in" in again.stdout and "Installing" not in again.stdout
    env = subprocess.run([str(script), "env", "--data-dir", str(labelstudio_server.data_dir)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"export VIGIL_LABEL_STUDIO_URL={labelstudio_server.url}" in env
    assert f"export VIGIL_LABEL_STUDIO_TOKEN={labelstudio_server.token}" in env
    creds = labelstudio_server.data_dir / "credentials"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
