"""Background retraining jobs: real worker processes, a real MLflow store (sqlite and a server), real DuckDB."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.cli import cli
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.lifecycle import gate, jobs
from dashboard.lifecycle.retrain_rules import decisions, evaluate_rule
from dashboard.settings import load_settings
from tests.fixtures.access import token_for
from tests.fixtures.retraining import TRAIN_ROWS, build_retrain_workspace

SCIENTIST = Actor("dana", "data_scientist")
WAIT_S = 600  # generous: the machine is shared; nothing here asserts on time


def set_training_command(folder: Path, command: str) -> Context:
    """Point the workspace's training_command at ``command`` and return a fresh context."""
    path = folder / "vigil.toml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'training_command = ".*"', lambda _m: "training_command = " + json.dumps(command), text)
    path.write_text(text, encoding="utf-8")
    return Context(load_settings(path, env=dict(os.environ)))


def sleeper(folder: Path) -> str:
    """A training command that starts a child process (to prove the whole tree is killed) and sleeps."""
    script = folder / "slow_train.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('CHILD', child.pid, flush=True)\n"
        "time.sleep(600)\n", encoding="utf-8")
    return f"python {script}"


def wait_for(predicate, what: str, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def child_pid(job: jobs.Job) -> int | None:
    match = re.search(r"^CHILD (\d+)$", jobs.tail_log(job), re.M)
    return int(match.group(1)) if match else None


def aliases(ctx: Context) -> dict[str, str]:
    return {a: v.version for v in ctx.registry.versions("credit-risk") for a in v.aliases}


@pytest.fixture
def cleanup_pids():
    """Kill anything a test left behind (its own processes only, by pid)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not pid:
            continue
        for member in [pid, *jobs.session_members(pid)]:  # a worker's session: its training command too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member, signal.SIGKILL)


def assert_end_to_end(ctx: Context, job: jobs.Job) -> None:
    """A new version registered, challenger moved, lineage to the training-data digest, gate evidence on it."""
    assert job.state == "succeeded", jobs.tail_log(job)
    version = job.model_version
    assert version == "2"
    assert job.result["verdict"] in ("pass", "fail")
    assert aliases(ctx) == {"champion": "1", "challenger": "2"}
    lineage = ctx.registry.lineage("credit-risk", version)
    assert lineage.run_id == job.run_id
    training = [d for d in lineage.datasets if d.context == "training"]
    assert training and re.fullmatch(r"[0-9a-f]{8,}", training[0].digest)
    run = ctx.registry.run(job.run_id or "")
    assert run.params["include_labels"] == "True"
    # The labelled rows before the out-of-time cut-off joined training; the rest are the evaluation set.
    split = job.params["split"]
    assert run.params["labels_before"] == split["labels_before"]
    trained = int(run.params["production_rows"])
    assert {"accuracy", "f1", "roc_auc", "disparate_impact_sex"} <= set(run.metrics)
    tags = ctx.registry.version("credit-risk", version).tags
    assert tags["vigil.gate.verdict"] == job.result["verdict"]
    assert tags["vigil.gate.champion"] == "1"
    assert tags["vigil.job_id"] == job.id and tags["vigil.trained_by"] == job.requested_by
    assert tags["vigil.parent_version"] == "1" and tags["vigil.data.disjoint"] == "true"
    evidence = gate.load_evidence(ctx, "credit-risk", version)
    assert evidence is not None and evidence["candidate"] == "2" and evidence["champion"] == "1"
    evaluation = evidence["datasets"]["evaluation"]
    assert evaluation["rows"] >= 50 and trained >= 50 and evaluation["rows"] + trained == 400
    assert evaluation["overlap_candidate"] == 0 and evaluation["range"].startswith(split["labels_before"][:16].replace("T", " "))
    assert evidence["datasets"]["training"]["production_rows"] == trained
    for key in ("vigil.data.training.digest", "vigil.data.holdout.digest", "vigil.data.evaluation.digest",
                "vigil.data.evaluation.rows"):
        assert tags[key], key
    for ds in ("holdout", "evaluation"):
        for role in ("candidate", "champion"):
            m = evidence["metrics"][ds][role]
            assert 0 <= m["accuracy"] <= 1 and m["latency_ms_per_1k"] > 0
            assert "disparate_impact_sex" in m and "statistical_parity_difference_age" in m


def test_retrain_end_to_end_on_the_sqlite_store(retrain_ctx: Context):
    job = jobs.start_retrain(retrain_ctx, SCIENTIST, "credit-risk", include_labels=True,
                             extra={"rows": TRAIN_ROWS})
    assert job.state in ("queued", "running") and job.pid
    done = jobs.wait(retrain_ctx, job.id, timeout_s=WAIT_S)
    assert_end_to_end(retrain_ctx, done)
    log = jobs.tail_log(done)
    assert re.search(r"added \d+ labelled production rows logged before", log) and "gate verdict" in log
    assert "out-of-time evaluation set: labelled predictions" in log
    actions = list(audit.entries(retrain_ctx.store)["action"])
    assert "retrain.start" in actions


def test_retrain_end_to_end_against_an_mlflow_server(mlflow_server_uri: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    for key in ("VIGIL_CONFIG", "VIGIL_DATA_DIR", "VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    # A model name of its own: the server is shared by the whole test session.
    model = "credit-risk-retrain"
    folder = build_retrain_workspace(tmp_path / "srv", mlflow_uri=mlflow_server_uri, model=model)
    ctx = Context(load_settings(folder / "vigil.toml", env={"VIGIL_MLFLOW_URI": mlflow_server_uri}))
    assert ctx.settings.mlflow_tracking_uri == mlflow_server_uri
    job = jobs.start_retrain(ctx, SCIENTIST, model, extra={"rows": TRAIN_ROWS})
    done = jobs.wait(ctx, job.id, timeout_s=WAIT_S)
    assert done.state == "succeeded", jobs.tail_log(done)
    by_alias = {a: v.version for v in ctx.registry.versions(model) for a in v.aliases}
    assert by_alias["challenger"] == done.model_version != by_alias["champion"]
    lineage = ctx.registry.lineage(model, done.model_version or "")
    assert any(d.context == "training" and d.digest for d in lineage.datasets)
    assert ctx.registry.version(model, done.model_version or "").tags["vigil.gate.verdict"] in ("pass", "fail")
    assert gate.load_evidence(ctx, model, done.model_version or "") is not None


def test_a_crashing_training_command_fails_the_job_with_its_log_and_moves_no_alias(retrain_ws: Path):
    ctx = set_training_command(retrain_ws, "python -c \"import sys; print('boom: bad data'); sys.exit(3)\"")
    before = aliases(ctx)
    done = jobs.wait(ctx, jobs.start_retrain(ctx, SCIENTIST, "credit-risk").id, timeout_s=WAIT_S)
    assert done.state == "failed"
    assert "exited with code 3" in (done.message or "")
    assert "boom: bad data" in jobs.tail_log(done)
    assert aliases(ctx) == before == {"champion": "1"}
    assert [v.version for v in ctx.registry.versions("credit-risk")] == ["1"]


def test_one_active_retrain_per_model_and_cancel_kills_the_tree(retrain_ws: Path, cleanup_pids: list[int]):
    ctx = set_training_command(retrain_ws, sleeper(retrain_ws))
    job = jobs.start_retrain(ctx, SCIENTIST, "credit-risk")
    cleanup_pids.append(job.pid or 0)
    running = wait_for(lambda: child_pid(jobs.get_job(ctx, job.id)) and jobs.get_job(ctx, job.id), "the child")
    assert running.state == "running"
    child = child_pid(running)
    assert child is not None
    cleanup_pids.append(child)
    with pytest.raises(VigilError, match="already running"):
        jobs.start_retrain(ctx, SCIENTIST, "credit-risk")
    with pytest.raises(PermissionDenied):
        jobs.cancel(ctx, Actor("ann", "annotator"), job.id)
    cancelled = jobs.cancel(ctx, SCIENTIST, job.id)
    assert cancelled.state == "cancelled" and "cancelled by dana" in (cancelled.message or "")
    assert jobs.process_start_time(child) is None, "the training command's child survived the cancel"
    assert not jobs.is_alive(running.pid, running.pid_start)
    assert aliases(ctx) == {"champion": "1"}
    with pytest.raises(VigilError, match="already cancelled"):
        jobs.cancel(ctx, SCIENTIST, job.id)
    # The slot is free again.
    again = jobs.start_retrain(ctx, SCIENTIST, "credit-risk")
    cleanup_pids.append(again.pid or 0)
    jobs.cancel(ctx, SCIENTIST, again.id)


def test_restart_recovery_marks_a_dead_worker_failed(retrain_ws: Path, cleanup_pids: list[int]):
    ctx = set_training_command(retrain_ws, sleeper(retrain_ws))
    job = jobs.start_retrain(ctx, SCIENTIST, "credit-risk")
    cleanup_pids.append(job.pid or 0)
    running = wait_for(lambda: child_pid(jobs.get_job(ctx, job.id)) and jobs.get_job(ctx, job.id), "the child")
    cleanup_pids.append(child_pid(running) or 0)
    os.kill(running.pid or 0, signal.SIGKILL)  # the worker dies (as with a crash or a reboot)
    wait_for(lambda: not jobs.is_alive(running.pid, running.pid_start), "the worker to be gone")
    # A new app process: a fresh context over the same files, then recovery.
    fresh = Context(load_settings(retrain_ws / "vigil.toml", env=dict(os.environ)))
    recovered = jobs.recover(fresh)
    assert [j.id for j in recovered] == [job.id]
    failed = jobs.get_job(fresh, job.id)
    assert failed.state == "failed" and "is gone" in (failed.message or "")
    assert "CHILD" in jobs.tail_log(failed) and "marked failed on recovery" in jobs.tail_log(failed)
    assert jobs.recover(fresh) == []
    assert aliases(fresh) == {"champion": "1"}
    # The dead worker's training command (and its child) were stopped too: nothing keeps training unseen.
    assert "leftover process(es)" in jobs.tail_log(failed)
    wait_for(lambda: jobs.session_members(running.pid or 0) == [], "the leftover processes to exit")


def test_a_reused_pid_is_not_mistaken_for_the_worker(retrain_ctx: Context):
    with retrain_ctx.store.connect() as con:
        jobs._ensure(con)
        con.execute("INSERT INTO jobs (id, kind, model, requested_by, runner, params, state, created, pid, "
                    "pid_start, log_path) VALUES ('reused', 'retrain', 'credit-risk', 'x', 'local', '{}', 'running', "
                    "now()::TIMESTAMP, ?, ?, ?)",
                    [os.getpid(), (jobs.process_start_time(os.getpid()) or 0) + 1,
                     str(retrain_ctx.settings.jobs_dir / "reused.log")])
    assert [j.id for j in jobs.list_jobs(retrain_ctx) if j.state == "failed"] == ["reused"]


def test_starting_needs_the_right_role(retrain_ctx: Context):
    with pytest.raises(PermissionDenied):
        jobs.start_retrain(retrain_ctx, Actor("mo", "manager"), "credit-risk")
    assert jobs.list_jobs(retrain_ctx) == []


def add_retrain_table(folder: Path, text: str) -> Context:
    path = folder / "vigil.toml"
    path.write_text(path.read_text() + "\n[models.credit-risk.retrain]\n" + text)
    return Context(load_settings(path, env=dict(os.environ)))


def test_retrain_rule_records_why_it_did_not_retrain(retrain_ws: Path):
    retrain_ctx = add_retrain_table(retrain_ws, "drift_share_above = 1.0\n")
    runner = CliRunner()
    token = token_for(retrain_ctx.settings.users_file, "ops", "admin")
    result = runner.invoke(cli, ["retrain", "--model", "credit-risk", "--if-needed"], env={"VIGIL_TOKEN": token})
    assert result.exit_code == 0, result.output
    assert "no retrain needed" in result.output
    assert "actual accuracy" in result.output and "disparate impact (sex)" in result.output
    recorded = decisions(retrain_ctx, "credit-risk")
    assert len(recorded) == 1 and not recorded["retrain"].iloc[0]
    assert "no condition met" in recorded["reasons"].iloc[0]
    assert jobs.list_jobs(retrain_ctx) == []


def test_retrain_rule_triggers_on_low_accuracy_and_the_cli_follows_the_job(retrain_ws: Path):
    # The workspace's labels cover its first 13 of 20 days: a 30-day window sees them all.
    ctx = add_retrain_table(retrain_ws, 'accuracy_below = 0.99\ndrift_share_above = 1.0\nwindow = "30d"\n')
    decision = evaluate_rule(ctx, "credit-risk")
    assert decision.retrain
    assert any(r.startswith("actual accuracy") for r in decision.reasons)
    result = CliRunner().invoke(cli, ["retrain", "--model", "credit-risk", "--if-needed", "--rows", str(TRAIN_ROWS)],
                                env={"VIGIL_TOKEN": token_for(ctx.settings.users_file, "dana", "data_scientist")})
    assert result.exit_code == 0, result.output
    assert "retraining" in result.output and "VIGIL_RESULT" in result.output
    assert re.search(r"job \w+: succeeded", result.output)
    recorded = decisions(ctx, "credit-risk")
    assert bool(recorded["retrain"].iloc[0]) and recorded["job_id"].iloc[0]
    listed = CliRunner().invoke(cli, ["retrain", "--list", "--json"])
    assert json.loads(listed.output)[0]["state"] == "succeeded"


def test_worker_entry_point_refuses_bad_usage():
    from dashboard.service import worker

    assert worker.main(["bogus"]) == 2
