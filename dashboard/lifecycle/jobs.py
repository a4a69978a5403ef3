"""Background retraining jobs with persisted state, a log file each, cancel and crash recovery.

Why a separate worker process per job: a retrain takes minutes and must survive the Streamlit script
run (and even an app restart) that started it. The app records a ``queued`` row in the ``jobs`` table
of the log store, launches ``python -m dashboard.service.worker run <id>`` detached in its own session (so a
cancel kills the worker *and* the training command it started, one process group), and returns.
The worker marks the job ``running``, runs the runner (the model's ``training_command`` by default),
and on success points the ``challenger`` alias at the new version and runs the candidate gate. State
changes are compare-and-set updates, so a cancel and a finishing worker can never both win, and an
alias is only moved by a job that got past training while not cancelled.

Recovery: a ``queued``/``running`` job whose recorded process is gone (or whose pid now belongs to
another process: the process start time is stored with the pid) is marked ``failed`` with a line in
its log; so is a job running past its model's ``retrain.timeout_minutes`` (its processes are stopped).
:func:`recover` runs before every listing and every start, so no job stays "running" after its
process died or hung.

What a job records: the out-of-time split fixed at its start (the training command gets
``--labels-before``), the champion it started from, and on the new version ``vigil.trained_by`` = the
Vigil user who requested it (separation of duties compares against that, not the OS user). The
training command's environment holds only what training needs (:func:`training_env`), never Vigil's
secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from connectors.registry import RegistryNotFound
from connectors.triggers import (
    GitHubActionsRunner,
    LocalProcessRunner,
    TrainingRequest,
    TriggerError,
    WebhookRunner,
    parse_result,
)
from dashboard.access.roles import Actor, require
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.lifecycle import evaluation_split
from dashboard.lifecycle.evaluation_split import EvaluationSplit
from dashboard.settings import Settings

STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE: tuple[str, ...] = ("queued", "running")
TERMINAL: tuple[str, ...] = ("succeeded", "failed", "cancelled")
CHALLENGER_ALIAS = "challenger"
TRAINED_BY_TAG = "vigil.trained_by"
PARENT_TAG = "vigil.parent_version"
QUEUED_GRACE_S = 120.0  # a queued job whose launcher never recorded a worker is failed after this
FINALIZE_GRACE_S = 900.0  # after the training timeout, the worker's gate may take this long before recovery stops it
WORKER_MODULE = "dashboard.service.worker"  # runs a job; composes lifecycle with the card step of governance
# What a training command may see of this process's environment (plus its model's retrain.env_passthrough).
TRAINING_ENV_NAMES: frozenset[str] = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "SHELL",
    "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV", "CONDA_PREFIX", "JAVA_HOME", "SSL_CERT_FILE",
    "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "no_proxy", "VIGIL_MLFLOW_TIMEOUT", "VIGIL_LOCK_TIMEOUT"})
TRAINING_ENV_PREFIXES: tuple[str, ...] = ("LC_", "MLFLOW_")  # locale; MLflow's own settings and credentials
_START_LOCK = threading.Lock()  # check-then-insert of "one active retrain per model" within one process

_DDL = """
CREATE TABLE IF NOT EXISTS jobs (
    id VARCHAR NOT NULL, kind VARCHAR NOT NULL, model VARCHAR NOT NULL, requested_by VARCHAR NOT NULL,
    runner VARCHAR NOT NULL, params VARCHAR NOT NULL, state VARCHAR NOT NULL, phase VARCHAR,
    created TIMESTAMP NOT NULL, started TIMESTAMP, ended TIMESTAMP, pid INTEGER, pid_start BIGINT,
    log_path VARCHAR NOT NULL, run_id VARCHAR, model_version VARCHAR, message VARCHAR, result VARCHAR
)"""
_COLUMNS = ("id", "kind", "model", "requested_by", "runner", "params", "state", "phase", "created", "started",
            "ended", "pid", "pid_start", "log_path", "run_id", "model_version", "message", "result")


@dataclass(frozen=True)
class Job:
    """One persisted job record."""

    id: str
    model: str
    requested_by: str
    runner: str
    params: dict[str, Any]
    state: str
    created: datetime
    log_path: Path
    kind: str = "retrain"
    phase: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    pid: int | None = None
    pid_start: int | None = None
    run_id: str | None = None
    model_version: str | None = None
    message: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or _now()
        return max(0.0, (end - self.started).total_seconds())


#: Called by the worker once a new version's gate is recorded: (context, job, version, gate result).
AfterGate = Callable[[Context, Job, str, Any], None]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# ------------------------------------------------------------------------------------------ storage

def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def _row_to_job(row: tuple[Any, ...]) -> Job:
    r = dict(zip(_COLUMNS, row, strict=True))
    return Job(id=r["id"], kind=r["kind"], model=r["model"], requested_by=r["requested_by"], runner=r["runner"],
               params=json.loads(r["params"] or "{}"), state=r["state"], phase=r["phase"], created=r["created"],
               started=r["started"], ended=r["ended"], pid=r["pid"], pid_start=r["pid_start"],
               log_path=Path(r["log_path"]), run_id=r["run_id"], model_version=r["model_version"],
               message=r["message"], result=json.loads(r["result"] or "{}"))


def get_job(ctx: Context, job_id: str) -> Job:
    with ctx.store.connect() as con:
        _ensure(con)
        row = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", [job_id]).fetchone()
    if row is None:
        raise VigilError(f"no job '{job_id}'; list jobs with `vigil retrain --list` or on the Retraining page")
    return _row_to_job(row)


def list_jobs(ctx: Context, model: str | None = None, limit: int = 50, recover_dead: bool = True) -> list[Job]:
    """Jobs newest first (after marking dead ones failed, so nothing shows "running" falsely)."""
    if recover_dead:
        recover(ctx)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
    params: list[Any] = []
    if model:
        sql += " WHERE model = ?"
        params.append(model)
    sql += " ORDER BY created DESC LIMIT ?"
    with ctx.store.connect() as con:
        _ensure(con)
        rows = con.execute(sql, [*params, limit]).fetchall()
    return [_row_to_job(r) for r in rows]


def jobs_frame(jobs: list[Job]) -> pd.DataFrame:
    """The job list as a table for the page and the CLI."""
    cols = ["id", "model", "state", "requested_by", "runner", "options", "created", "duration_s", "version",
            "message"]
    rows = [{"id": j.id, "model": j.model, "state": j.state, "requested_by": j.requested_by, "runner": j.runner,
             "options": ", ".join(f"{k}={v}" for k, v in sorted(j.params.get("options", {}).items())),
             "created": j.created, "duration_s": None if j.duration_s is None else round(j.duration_s, 1),
             "version": j.model_version, "message": j.message} for j in jobs]
    return pd.DataFrame(rows, columns=cols)


def _update(ctx: Context, job_id: str, set_: Mapping[str, Any], *, where_state: tuple[str, ...] | None = None,
            where_sql: str = "") -> bool:
    """Compare-and-set update; True when the row matched (the transition happened)."""
    assign = ", ".join(f"{k} = ?" for k in set_)
    sql = f"UPDATE jobs SET {assign} WHERE id = ?"
    params: list[Any] = [*(json.dumps(v) if k in ("params", "result") else v for k, v in set_.items()), job_id]
    if where_state:
        sql += f" AND state IN ({', '.join('?' for _ in where_state)})"
        params += list(where_state)
    sql += where_sql
    with ctx.store.connect() as con:
        _ensure(con)
        changed = con.execute(sql + " RETURNING id", params).fetchall()
    return bool(changed)


def append_log(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"[vigil {_now():%Y-%m-%d %H:%M:%S}Z] {line}\n")


def tail_log(job: Job, max_bytes: int = 16_000) -> str:
    """The end of a job's log (what the page polls)."""
    try:
        with job.log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if size <= max_bytes else "…" + text[text.find("\n") + 1:]


# ------------------------------------------------------------------------------------------ processes

def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22); None when it is gone
    or a zombie. Stored with the pid so a reused pid is not mistaken for the worker."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid: int | None, start: int | None) -> bool:
    if not pid:
        return False
    now_start = process_start_time(pid)
    return now_start is not None and (start is None or now_start == start)


def _kill_group(pid: int, start: int | None, grace_s: float = 5.0) -> None:
    """SIGTERM the worker's process group (the worker and its training command), then SIGKILL."""
    if not is_alive(pid, start):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not is_alive(pid, start):
                return
            time.sleep(0.1)


def session_members(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (the worker is a session leader: its training command,
    and that command's children, belong to its session)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 3 and fields[0] not in ("Z", "X") and int(fields[3]) == sid:
            out.append(int(entry.name))
    return out


def _kill_orphans(pid: int) -> list[int]:
    """Kill what a dead worker left running (its training command). Only when no live process has the
    pid (gone, or a zombie): then every process of session ``pid`` descends from the worker; a live
    process that reused the pid could lead a new session of its own."""
    if process_start_time(pid) is not None:
        return []
    members = session_members(pid)
    for member in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
    return members


def recover(ctx: Context) -> list[Job]:
    """Mark every active job whose process is gone ``failed`` (with a note in its log); return them."""
    with ctx.store.connect() as con:
        _ensure(con)
        rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE state IN ('queued', 'running')").fetchall()
    failed: list[Job] = []
    for job in map(_row_to_job, rows):
        if job.pid is None:
            if (_now() - job.created).total_seconds() < QUEUED_GRACE_S:
                continue
            why = "its worker process never started"
        elif is_alive(job.pid, job.pid_start):
            limit = _timeout_s(ctx, job.model) + FINALIZE_GRACE_S
            if job.started is None or (_now() - job.started).total_seconds() < limit:
                continue
            _kill_group(job.pid, job.pid_start)
            why = f"it ran longer than {limit / 60:.0f} minutes (training timeout plus the gate's grace)"
        else:
            why = f"its worker process (pid {job.pid}) is gone"
        message = f"{why}; marked failed on recovery (see the log above for its last output)"
        if _update(ctx, job.id, {"state": "failed", "ended": _now(), "message": message}, where_state=ACTIVE):
            append_log(job.log_path, message)
            killed = _kill_orphans(job.pid) if job.pid else []
            if killed:
                append_log(job.log_path, f"stopped {len(killed)} leftover process(es) of the dead worker: {killed}")
            failed.append(get_job(ctx, job.id))
    return failed


def _timeout_s(ctx: Context, model: str) -> float:
    try:
        return ctx.model(model).retrain.timeout_minutes * 60.0
    except Exception:  # a model removed from the config: its leftover job uses the default
        from dashboard.settings import RetrainSpec

        return RetrainSpec.timeout_minutes * 60.0


# ------------------------------------------------------------------------------------------ starting

def _audit(ctx: Context, actor: Actor, action: str, target: str, details: Mapping[str, Any]) -> None:
    """Append to the hash-chained audit trail."""
    trail.record(ctx.store, actor, action, target, dict(details))


def _worker_env(settings: Settings) -> dict[str, str]:
    """Pin the worker (and the training command) to the same stores as this process."""
    env = {**os.environ, "VIGIL_DATA_DIR": str(settings.data_dir), "VIGIL_DUCKDB_PATH": str(settings.duckdb_path),
           "VIGIL_MLFLOW_URI": settings.mlflow_tracking_uri, "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
           "PYTHONUNBUFFERED": "1"}
    if settings.config_path is not None:
        env["VIGIL_CONFIG"] = str(Path(settings.config_path).resolve())
    return env


def _launch_worker(settings: Settings, job_id: str, log_path: Path) -> int:
    """Start the worker detached (re-parented, in its own session) and return its pid.

    ``sh`` starts it in the background and exits at once, so the worker is never this process's zombie.
    """
    cmd = 'exec setsid "$0" "$@" >>"$VIGIL_JOB_LOG" 2>&1 </dev/null & echo $!'
    env = {**_worker_env(settings), "VIGIL_JOB_LOG": str(log_path)}
    out = subprocess.run(["/bin/sh", "-c", cmd, sys.executable, "-m", WORKER_MODULE, "run", job_id],
                         env=env, capture_output=True, text=True, timeout=30, check=False)
    try:
        return int(out.stdout.strip())
    except ValueError:
        raise VigilError(f"could not start the job worker: {out.stderr.strip()[:300]}") from None


def start_retrain(ctx: Context, actor: Actor, model: str, *, include_labels: bool | None = None,
                  reweighing: bool | None = None, runner: str | None = None,
                  extra: Mapping[str, Any] | None = None, reason: str | None = None) -> Job:
    """Queue a retrain of ``model`` and launch its worker; refuse while another retrain of it is active."""
    require(actor, "retrain.start")
    cfg = ctx.model(model)
    spec = cfg.retrain
    runner = runner or spec.runner
    if runner not in ("local", "webhook", "github"):
        raise VigilError(f"unknown runner '{runner}'; use local, webhook or github")
    if runner == "local" and not cfg.training_command:
        raise VigilError(f"model '{model}' has no training_command; set it in its [models.{model}] table")
    options: dict[str, Any] = {"include_labels": spec.include_labels if include_labels is None else include_labels,
                               "reweighing": spec.reweighing if reweighing is None else reweighing,
                               **dict(extra or {})}
    recover(ctx)
    split = evaluation_split.plan(ctx, model)
    if split is not None and options["include_labels"]:
        options["labels_before"] = split.labels_before.isoformat()
    parent = _champion(ctx, model)
    job_id = uuid.uuid4().hex[:12]
    jobs_dir = ctx.settings.jobs_dir
    jobs_dir.mkdir(parents=True, exist_ok=True)
    log_path = jobs_dir / f"{model}-{job_id}.log"
    params = {"options": options, "reason": reason, "split": split.to_json() if split else None,
              "parent_version": parent}
    with _START_LOCK, ctx.store.connect(exclusive=True) as con:
        _ensure(con)
        con.execute("BEGIN TRANSACTION")
        busy = con.execute("SELECT id, requested_by, state, created FROM jobs WHERE model = ? AND state IN "
                           "('queued', 'running') ORDER BY created LIMIT 1", [model]).fetchone()
        if busy is not None:
            con.execute("ROLLBACK")
            raise VigilError(f"a retrain of '{model}' is already {busy[2]} (job {busy[0]}, started by {busy[1]} "
                             f"at {busy[3]:%Y-%m-%d %H:%M} UTC); wait for it or cancel it first")
        con.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                    [job_id, "retrain", model, actor.name, runner, json.dumps(params), "queued", None, _now(), None,
                     None, None, None, str(log_path), None, None, None, "{}"])
        con.execute("COMMIT")
    append_log(log_path, f"job {job_id}: retrain of {model} requested by {actor.name} (runner {runner}, "
                         f"options {json.dumps(options, sort_keys=True)})" + (f"; reason: {reason}" if reason else ""))
    append_log(log_path, f"out-of-time evaluation set: labelled predictions {split.label} ({split.rule}); "
                         "they are not given to training" if split else
               "no labelled production rows yet: the gate judges on the holdout only")
    try:
        pid = _launch_worker(ctx.settings, job_id, log_path)
    except (VigilError, OSError, subprocess.SubprocessError) as exc:
        _update(ctx, job_id, {"state": "failed", "ended": _now(), "message": f"worker did not start: {exc}"},
                where_state=ACTIVE)
        raise
    # The worker records itself too; whichever writes first, pid and start time agree.
    _update(ctx, job_id, {"pid": pid, "pid_start": process_start_time(pid)}, where_sql=" AND pid IS NULL")
    _audit(ctx, actor, "retrain.start", model, {"job_id": job_id, "runner": runner, "options": options,
                                                  "reason": reason})
    return get_job(ctx, job_id)


def _champion(ctx: Context, model: str) -> str | None:
    try:
        return ctx.registry.version_by_alias(model, "champion").version
    except RegistryNotFound:
        return None


def cancel(ctx: Context, actor: Actor, job_id: str) -> Job:
    """Cancel a queued or running job: record it first, then kill the worker's process group."""
    require(actor, "retrain.cancel")
    job = get_job(ctx, job_id)
    if job.state in TERMINAL:
        raise VigilError(f"job {job_id} already {job.state}; nothing to cancel")
    ok = _update(ctx, job_id, {"state": "cancelled", "ended": _now(), "message": f"cancelled by {actor.name}"},
                 where_state=ACTIVE, where_sql=" AND coalesce(phase, '') <> 'finalizing'")
    if not ok:
        now = get_job(ctx, job_id)
        raise VigilError(f"job {job_id} is {now.state}" + (" and registering its result" if
                                                          now.phase == "finalizing" else "")
                         + "; it can no longer be cancelled")
    if job.pid:
        _kill_group(job.pid, job.pid_start)
    append_log(job.log_path, f"cancelled by {actor.name}")
    _audit(ctx, actor, "retrain.cancel", job.model, {"job_id": job_id})
    return get_job(ctx, job_id)


def wait(ctx: Context, job_id: str, timeout_s: float = 1800.0, poll_s: float = 1.0,
         on_poll: Callable[[Job], None] | None = None) -> Job:
    """Block until the job is finished (used by the CLI and tests); recovers a dead worker meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        recover(ctx)
        job = get_job(ctx, job_id)
        if on_poll:
            on_poll(job)
        if job.state in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise VigilError(f"job {job_id} still {job.state} after {timeout_s:.0f} s; see {job.log_path}")
        time.sleep(poll_s)


# ------------------------------------------------------------------------------------------ the worker

def training_env(settings: Settings, model: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a training command: the stores it must use, and from this process only
    the names it needs (paths, locale, proxies, MLflow's settings) plus ``retrain.env_passthrough``.
    Secrets of Vigil (Label Studio token, webhook and GitHub secrets, API tokens) are never passed on."""
    source = os.environ if environ is None else environ
    extra = set(settings.model(model).retrain.env_passthrough)
    env = {k: v for k, v in source.items()
           if k in TRAINING_ENV_NAMES or k in extra or k.startswith(TRAINING_ENV_PREFIXES)}
    env.update({"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "VIGIL_MLFLOW_URI": settings.mlflow_tracking_uri,
                "VIGIL_DATA_DIR": str(settings.data_dir), "VIGIL_DUCKDB_PATH": str(settings.duckdb_path),
                "PYTHONUNBUFFERED": "1"})
    if settings.config_path is not None:
        env["VIGIL_CONFIG"] = str(Path(settings.config_path).resolve())
    return env


def make_runner(settings: Settings, model: str, runner: str) -> Any:
    """The runner object for a job (secrets come from the environment, never from vigil.toml)."""
    cfg = settings.model(model)
    spec = cfg.retrain
    if runner == "local":
        cwd = Path(settings.config_path).resolve().parent if settings.config_path else None
        return LocalProcessRunner(cfg.training_command or "", env=training_env(settings, model), cwd=cwd)
    if runner == "webhook":
        return WebhookRunner(spec.webhook_url or "", os.environ.get("VIGIL_WEBHOOK_SECRET", ""),
                             timeout_s=spec.webhook_timeout_s)
    if runner == "github":
        return GitHubActionsRunner(spec.github_repo or "", spec.github_workflow or "",
                                   os.environ.get("VIGIL_GITHUB_TOKEN", ""), ref=spec.github_ref,
                                   api_url=spec.github_api_url)
    raise VigilError(f"unknown runner '{runner}'")


def _stop_children(grace_s: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every other process of this worker's session (the training command and
    whatever it started); the worker itself goes on to record the outcome."""
    me = os.getpid()
    members = [p for p in session_members(os.getsid(0)) if p != me]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(process_start_time(p) is not None for p in members):
            time.sleep(0.1)
    return members


def _finish(ctx: Context, job: Job, state: str, message: str, **values: Any) -> bool:
    ok = _update(ctx, job.id, {"state": state, "ended": _now(), "message": message, **values}, where_state=ACTIVE)
    append_log(job.log_path, f"job {state}: {message}" if ok else f"job already {get_job(ctx, job.id).state}")
    return ok


def run_worker(ctx: Context, job_id: str, after_gate: AfterGate | None = None) -> int:
    """The body of ``python -m dashboard.service.worker run <id>`` (runs in the detached worker process);
    ``after_gate`` runs once the new version's gate is recorded (the worker seeds its model card)."""
    with contextlib.suppress(OSError):
        os.setsid()  # already a session leader when started through setsid
    job = get_job(ctx, job_id)
    me = os.getpid()
    if not _update(ctx, job_id, {"state": "running", "started": _now(), "pid": me,
                                 "pid_start": process_start_time(me)}, where_state=("queued",)):
        append_log(job.log_path, f"worker: job is {get_job(ctx, job_id).state}, not queued; nothing to do")
        return 0
    job = get_job(ctx, job_id)
    options = dict(job.params.get("options", {}))
    request = TrainingRequest(model=job.model, options=options, job_id=job.id,
                              config_path=str(ctx.settings.config_path) if ctx.settings.config_path else None)
    try:
        runner = make_runner(ctx.settings, job.model, job.runner)
        if job.runner != "local":
            outcome = runner.trigger(request)
            append_log(job.log_path, f"{job.runner} runner answered: {json.dumps(outcome)[:2000]}")
            _finish(ctx, job, "succeeded", f"training dispatched to the {job.runner} runner; the remote pipeline "
                    "registers its version in MLflow", result={"dispatch": outcome})
            return 0
        # The job moves the alias itself, only after success: the training command must not.
        request = replace(request, options={**options, "alias": ""})
        append_log(job.log_path, "running: " + " ".join(runner.argv(request)))
        timeout_s = _timeout_s(ctx, job.model)
        with job.log_path.open("ab") as log:
            proc = runner.start(request, log)
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                stopped = _stop_children()
                _finish(ctx, job, "failed", f"the training command ran longer than its timeout "
                        f"({timeout_s / 60:g} min, [models.{job.model}.retrain] timeout_minutes) and was stopped "
                        f"({len(stopped)} process(es)); see the log")
                return 1
    except TriggerError as exc:
        _finish(ctx, job, "failed", str(exc))
        return 1
    if code != 0:
        _finish(ctx, job, "failed", f"the training command exited with code {code}; see the log")
        return 1
    result = _last_result(job.log_path)
    if result is None or not result.get("model_version"):
        _finish(ctx, job, "failed", "the training command succeeded but printed no "
                "'VIGIL_RESULT {\"run_id\": ..., \"model_version\": ...}' line, so no version to evaluate")
        return 1
    version, run_id = str(result["model_version"]), result.get("run_id")
    if not _update(ctx, job_id, {"phase": "finalizing", "run_id": run_id, "model_version": version},
                   where_state=("running",)):
        append_log(job.log_path, f"job was {get_job(ctx, job_id).state} before registering; alias not moved")
        return 1
    return _finalize(ctx, job, version, run_id, after_gate)


def _finalize(ctx: Context, job: Job, version: str, run_id: str | None, after_gate: AfterGate | None = None) -> int:
    """Record who trained the new version, point ``challenger`` at it and run the candidate gate."""
    from dashboard.lifecycle import gate

    summary: dict[str, Any] = {"run_id": run_id, "model_version": version}
    split_json = job.params.get("split")
    split = EvaluationSplit.from_json(split_json) if split_json else None
    try:
        for key, value in ((TRAINED_BY_TAG, job.requested_by), ("vigil.job_id", job.id),
                           (PARENT_TAG, job.params.get("parent_version") or "none")):
            ctx.registry.set_version_tag(job.model, version, key, value)
        ctx.registry.set_alias(job.model, CHALLENGER_ALIAS, version)
        append_log(job.log_path, f"version {version} trained for {job.requested_by}; alias '{CHALLENGER_ALIAS}' -> "
                                 f"version {version}; evaluating the gate")
        result = gate.run_gate(ctx, job.model, version, progress=lambda m: append_log(job.log_path, m), split=split)
        summary["verdict"] = result.verdict
        summary["failed_policies"] = [p.name for p in result.policies if p.passed is False and p.blocking]
        append_log(job.log_path, f"gate verdict: {result.verdict}"
                   + (f" (failed: {', '.join(summary['failed_policies'])})" if summary["failed_policies"] else ""))
        if after_gate is not None:
            after_gate(ctx, job, version, result)
    except Exception as exc:  # the version exists: say what went wrong with the gate, keep the job's result
        summary["gate_error"] = f"{type(exc).__name__}: {exc}"
        append_log(job.log_path, f"gate could not be evaluated: {summary['gate_error']}")
        _finish(ctx, job, "failed", f"version {version} registered but the gate failed: {summary['gate_error']}",
                result=summary, phase="done")
        return 1
    _finish(ctx, job, "succeeded", f"version {version} registered as {CHALLENGER_ALIAS}; gate {result.verdict}",
            result=summary, phase="done")
    return 0


def _last_result(log_path: Path) -> dict[str, Any] | None:
    found = None
    with log_path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parsed = parse_result(line.strip())
            if parsed is not None:
                found = parsed
    return found
