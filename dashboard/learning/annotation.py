"""The annotation queue: send chosen predictions to Label Studio exactly once, and bring labels back.

Label Studio duplicates tasks when an import is repeated, so Vigil keeps its own queue table
(``annotation_queue`` in the DuckDB store, one row per ``(model_name, prediction_id)``) with states::

    pending --claim--> sending --import + bookkeeping--> sent --sync--> labelled | skipped
       ^                  |
       +-- failure / crash (stale claim) --+

Exactly once rests on three rules:

1. **Claims.** A sender moves rows ``pending -> sending`` in one UPDATE tagged with its own claim id; two
   senders (threads or processes) therefore never hold the same row.
2. **Reconcile before import.** Before importing anything a sender lists the project's tasks by
   ``prediction_id``; rows that already have a task are marked ``sent`` without importing. A failed or
   timed-out import may still have created tasks: the rows go back to ``pending`` and the next send finds them.
3. **Stale claims.** A sender that crashed between import and bookkeeping leaves rows in ``sending``; they
   become ``pending`` again once the claiming process is gone (same host) or the lease expired, and rule 2
   adopts the tasks it created. Should two tasks ever show one prediction, reconciliation keeps the one with
   annotations (else the oldest) and deletes the other.

Label sync reads every task's annotations, resolves several annotations by majority (agreement rate kept;
a tie stays unlabelled until another annotator decides), follows updated and deleted annotations, and
appends only changed labels with ``store.add_labels(..., source="label_studio")`` (``None`` retracts).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from connectors.labelstudio import (
    PREDICTION_VERSION,
    Annotation,
    LabelStudioClient,
    LabelStudioError,
    Task,
    labeling_config,
    prediction,
)
from connectors.logstore import utcnow
from connectors.queries.selection import ensure_queue, first
from dashboard.access.roles import Actor, require
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.learning import accounts
from dashboard.learning.selection import Selection

BATCH_SIZE = 50
LEASE = timedelta(minutes=15)
STATES: tuple[str, ...] = ("pending", "sending", "sent", "labelled", "skipped")
Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------- reports


@dataclass
class SendReport:
    """What one send did."""

    model: str
    project_id: int | None = None
    project_url: str | None = None
    queued: int = 0  # rows newly added to the queue
    claimed: int = 0  # rows this sender took
    imported: int = 0  # tasks created by this send
    adopted: int = 0  # rows whose task already existed (earlier interrupted send)
    duplicates_removed: int = 0
    remaining: int = 0  # pending rows left for a later send

    @property
    def sent(self) -> int:
        return self.imported + self.adopted

    def line(self) -> str:
        parts = [f"{self.sent} sent to Label Studio ({self.imported} new task(s)"]
        if self.adopted:
            parts.append(f", {self.adopted} found from an interrupted send")
        parts.append(")")
        if self.duplicates_removed:
            parts.append(f"; {self.duplicates_removed} duplicate task(s) removed")
        if self.remaining:
            parts.append(f"; {self.remaining} still queued")
        return "".join(parts)


@dataclass
class SyncReport:
    """What one label sync did."""

    model: str
    tasks: int = 0
    labelled: int = 0  # rows with a majority label now
    skipped: int = 0
    ties: int = 0
    written: int = 0  # label rows appended (new, changed or retracted)
    retracted: int = 0
    agreement: float | None = None  # mean agreement over tasks with 2+ annotations
    annotators: pd.DataFrame = field(default_factory=pd.DataFrame)
    duplicates_removed: int = 0  # extra tasks of one prediction, deleted in Label Studio
    adopted: int = 0  # queued rows found already imported (an interrupted send), now marked sent
    vanished: int = 0  # sent rows whose task was deleted in Label Studio, now skipped

    def line(self) -> str:
        text = (f"{self.tasks} task(s) read: {self.labelled} labelled, {self.skipped} skipped, {self.ties} tied; "
                f"{self.written} label change(s) written ({self.retracted} retracted)")
        for count, what in ((self.duplicates_removed, "duplicate task(s) removed"),
                            (self.adopted, "interrupted send(s) adopted"),
                            (self.vanished, "task(s) deleted in Label Studio, marked skipped")):
            if count:
                text += f"; {count} {what}"
        if self.agreement is not None:
            text += f"; agreement {self.agreement:.0%} on multiply annotated tasks"
        return text


@dataclass(frozen=True)
class Resolution:
    """The outcome of one task's annotations."""

    label: str | None
    votes: int
    agreement: float | None
    annotators: str
    ts: datetime | None
    skipped: bool
    tie: bool


def resolve(annotations: Sequence[Annotation], users: dict[int, str]) -> Resolution:
    """Majority vote over submitted (not cancelled) annotations; a tie yields no label."""
    votes = [a for a in annotations if not a.cancelled and a.label]
    if not votes:
        return Resolution(None, 0, None, "", None, skipped=any(a.cancelled for a in annotations), tie=False)
    ranked = Counter(a.label for a in votes).most_common()
    agreement = ranked[0][1] / len(votes)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return Resolution(None, len(votes), agreement, "", None, skipped=False, tie=True)
    label = ranked[0][0]
    winners = [a for a in votes if a.label == label]
    names = sorted({users.get(a.annotator_id or -1, f"user {a.annotator_id}") for a in winners})
    times = [a.updated_at for a in winners if a.updated_at is not None]
    return Resolution(label, len(votes), agreement, ", ".join(names), max(times) if times else None,
                      skipped=False, tie=False)


# --------------------------------------------------------------------------------------------- plumbing


def client_for(context: Context, url: str | None = None, token: str | None = None,
               timeout_s: float = 30.0) -> LabelStudioClient:
    """A Label Studio client from explicit values or the settings (VIGIL_LABEL_STUDIO_URL / _TOKEN)."""
    url = url or context.settings.label_studio_url
    token = token or context.settings.label_studio_token
    if not url:
        raise VigilError("Label Studio is not configured: set VIGIL_LABEL_STUDIO_URL (and VIGIL_LABEL_STUDIO_TOKEN),"
                         " or run `make demo`, which starts one and sets both")
    return LabelStudioClient(url, token or "", timeout_s=timeout_s)


def project_title(model: str) -> str:
    return f"Vigil: {model}"


def _retry_conflicts(fn: Callable[[], Any], attempts: int = 50) -> Any:
    """Run a write; retry DuckDB write-write conflicts between threads of this process."""
    delay = 0.01
    for i in range(attempts):
        try:
            return fn()
        except duckdb.TransactionException:
            if i == attempts - 1:
                raise
        except duckdb.ConstraintException:
            if i == attempts - 1:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return None


def _audit(context: Context, actor: Actor, action: str, model: str, detail: dict[str, Any]) -> None:
    """Append to the hash-chained audit trail (who sent or synced what, and how it went)."""
    audit.record(context, actor, action, model=model, detail=detail)


def _claim_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _claim_alive(claim: str | None, claimed_at: datetime | None, now: datetime) -> bool:
    """Whether the sender holding ``claim`` may still be working (same host: its process exists)."""
    if not claim or claimed_at is None or now - claimed_at > LEASE:
        return False
    host, _, rest = claim.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: trust the lease
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------- queue


def queue_candidates(context: Context, actor: Actor, model: str, candidates: pd.DataFrame,
                     strategy: str) -> int:
    """Add chosen candidates to the queue as ``pending``; rows already queued are left alone."""
    require(actor, "queue.send")
    if candidates.empty:
        return 0
    cols = ["prediction_id", "uncertainty", "confidence", "score", "prediction", "model_version", "reason"]
    frame = candidates[cols].copy()
    frame["prediction_id"] = frame["prediction_id"].astype(str)
    now = utcnow()

    def write() -> int:
        with context.store.connect() as con:
            ensure_queue(con)
            con.register("__cand", frame)
            try:
                # RETURNING lists only rows this call inserted, so concurrent senders never both count a row.
                inserted = con.execute(
                    "INSERT INTO annotation_queue (model_name, prediction_id, state, strategy, uncertainty, "
                    "confidence, score, prediction, model_version, reason, queued_by, queued_at, updated_at) "
                    "SELECT ?, prediction_id, 'pending', ?, uncertainty, confidence, score, prediction, "
                    "model_version, reason, ?, ?, ? FROM __cand ON CONFLICT DO NOTHING RETURNING prediction_id",
                    [model, strategy, actor.name, now, now]).fetchall()
            finally:
                con.unregister("__cand")
        return len(inserted)

    added = int(_retry_conflicts(write))
    if added:
        _audit(context, actor, "queue.add", model, {"rows": added, "strategy": strategy})
    return added


_PROJECT_TURNS: dict[tuple[str, str], threading.Lock] = {}
_PROJECT_TURNS_GUARD = threading.Lock()


def _project_turn(context: Context, model: str) -> threading.Lock:
    """The lock that lets one thread of this process at a time find or create ``model``'s project."""
    key = (str(context.store.path.resolve()), model)
    with _PROJECT_TURNS_GUARD:
        return _PROJECT_TURNS.setdefault(key, threading.Lock())


def ensure_project(context: Context, actor: Actor, model: str, client: LabelStudioClient) -> int:
    """The model's Label Studio project: the recorded one, an existing one with its title, or a new one.

    Senders in one process (sessions of one app server) take turns, so the second finds the first's
    project; senders in two processes creating at once converge: the first recorded id wins and the
    loser deletes its own (empty) project.
    """
    require(actor, "queue.send")
    with _project_turn(context, model):
        return _ensure_project(context, actor, model, client)


def _ensure_project(context: Context, actor: Actor, model: str, client: LabelStudioClient) -> int:
    store = context.store
    with store.connect() as con:
        ensure_queue(con)
        row = first(con.execute("SELECT project_id FROM annotation_projects WHERE model_name = ?", [model]).fetchall())
    if row is not None:
        if client.project_exists(int(row[0])):
            return int(row[0])
        with store.connect() as con:  # deleted in Label Studio: its tasks are gone
            con.execute("DELETE FROM annotation_projects WHERE model_name = ? AND project_id = ?", [model, row[0]]).fetchall()
            con.execute("UPDATE annotation_queue SET state = 'pending', task_id = NULL, project_id = NULL, "
                        "last_error = 'the Label Studio project was deleted; queued again', updated_at = ? "
                        "WHERE model_name = ? AND project_id = ? AND state IN ('sent', 'sending')",
                        [utcnow(), model, row[0]]).fetchall()
    title = project_title(model)
    found = client.find_projects(title)
    created: int | None = None
    if found:
        project_id = found[0]
    else:
        cfg = context.model(model)
        config = labeling_config(list(cfg.features), list(cfg.classes), model)
        project_id = created = client.create_project(
            title, config, description=f"Low-confidence production predictions of {model}, chosen by Vigil.",
            pre_annotate=cfg.labelling.pre_annotate)

    def record() -> int:
        with store.connect() as con:
            con.execute("INSERT INTO annotation_projects VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [model, project_id, client.project_url(project_id), utcnow()]).fetchall()
            got = first(con.execute("SELECT project_id FROM annotation_projects WHERE model_name = ?", [model]).fetchall())
        assert got is not None
        return int(got[0])

    winner = int(_retry_conflicts(record))
    if created is not None and winner != created:
        client.delete_project(created)
    if created is not None and winner == created:
        _audit(context, actor, "labelstudio.project_create", model, {"project_id": winner, "title": title})
    return winner


def _release_stale(context: Context, model: str) -> int:
    """Put rows of crashed or expired senders back to ``pending`` (their tasks are adopted on the next send)."""
    now = utcnow()
    with context.store.connect() as con:
        ensure_queue(con)
        rows = con.execute("SELECT DISTINCT claim, claimed_at FROM annotation_queue "
                           "WHERE model_name = ? AND state = 'sending'", [model]).fetchall()
    stale = [c for c, at in rows if not _claim_alive(c, at, now)]
    released = 0
    for claim in stale:
        def release(claim: str = claim) -> int:
            with context.store.connect() as con:
                got = con.execute(
                    "UPDATE annotation_queue SET state = 'pending', claim = NULL, claimed_at = NULL, "
                    "last_error = 'an earlier send was interrupted; checked against Label Studio on resend', "
                    "updated_at = ? WHERE model_name = ? AND state = 'sending' AND claim IS NOT DISTINCT FROM ? "
                    "RETURNING prediction_id", [now, model, claim]).fetchall()
            return len(got)
        released += int(_retry_conflicts(release))
    return released


def _claim(context: Context, model: str, claim: str, limit: int | None) -> list[str]:
    """Atomically move up to ``limit`` pending rows to ``sending`` under ``claim``."""
    now = utcnow()
    cap = 1 << 62 if limit is None else int(limit)

    def take() -> list[str]:
        with context.store.connect() as con:
            rows = con.execute(
                "UPDATE annotation_queue SET state = 'sending', claim = ?, claimed_at = ?, updated_at = ? "
                "WHERE model_name = ? AND state = 'pending' AND prediction_id IN (SELECT prediction_id FROM "
                "annotation_queue WHERE model_name = ? AND state = 'pending' ORDER BY queued_at, "
                "uncertainty DESC NULLS LAST, prediction_id LIMIT ?) RETURNING prediction_id",
                [claim, now, now, model, model, cap]).fetchall()
        return sorted(str(r[0]) for r in rows)

    result: list[str] = _retry_conflicts(take)
    return result


def _mark_sent(context: Context, model: str, claim: str, task_ids: dict[str, int], project_id: int) -> None:
    if not task_ids:
        return
    frame = pd.DataFrame({"prediction_id": list(task_ids), "task_id": list(task_ids.values())})
    now = utcnow()

    def write() -> None:
        with context.store.connect() as con:
            con.register("__sent", frame)
            try:
                con.execute(
                    "UPDATE annotation_queue q SET state = 'sent', task_id = s.task_id, project_id = ?, sent_at = ?, "
                    "claim = NULL, claimed_at = NULL, last_error = NULL, updated_at = ? FROM __sent s "
                    "WHERE q.model_name = ? AND q.prediction_id = s.prediction_id AND q.claim = ?",
                    [project_id, now, now, model, claim]).fetchall()
            finally:
                con.unregister("__sent")

    _retry_conflicts(write)


def _note_pending(context: Context, model: str, error: str) -> None:
    """Record why waiting rows could not be sent (shown on the page next to "Send waiting")."""
    def write() -> None:
        with context.store.connect() as con:
            con.execute("UPDATE annotation_queue SET last_error = ?, updated_at = ? WHERE model_name = ? AND "
                        "state = 'pending'", [error[:500], utcnow(), model]).fetchall()

    _retry_conflicts(write)


def _release(context: Context, model: str, claim: str, error: str) -> None:
    def write() -> None:
        with context.store.connect() as con:
            con.execute("UPDATE annotation_queue SET state = 'pending', claim = NULL, claimed_at = NULL, "
                        "last_error = ?, updated_at = ? WHERE model_name = ? AND claim = ? AND state = 'sending'",
                        [error[:500], utcnow(), model, claim]).fetchall()

    _retry_conflicts(write)


def _payloads(context: Context, model: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Label Studio tasks for ``ids``: features as a table, the model's answer as a pre-annotation unless
    the model's ``[labelling] pre_annotate`` is off (the same for every model version)."""
    cfg = context.model(model)
    schema = context.schema(model)
    feats = ", ".join(f'"{f}"' for f in cfg.features)
    with context.store.connect() as con:
        con.register("__ids", pd.DataFrame({"prediction_id": list(ids)}))
        try:
            frame = con.execute(
                f"SELECT t.prediction_id, t.model_version, t.ts, t.prediction, t.score, q.reason, {feats} "
                f"FROM {schema.table} t JOIN __ids USING (prediction_id) LEFT JOIN annotation_queue q "
                "ON q.model_name = ? AND q.prediction_id = t.prediction_id ORDER BY t.prediction_id",
                [model]).df()
        finally:
            con.unregister("__ids")
    tasks = []
    for rec in frame.to_dict(orient="records"):
        features = {f: _plain(rec[f]) for f in cfg.features}
        score = _plain(rec["score"])
        task: dict[str, Any] = {
            "data": {"prediction_id": str(rec["prediction_id"]), "model_version": str(rec["model_version"]),
                     "prediction": str(rec["prediction"]), "score": score,
                     "ts": pd.Timestamp(rec["ts"]).isoformat() + "Z", "reason": rec.get("reason") or "",
                     "features": features}}
        if cfg.labelling.pre_annotate:
            task["predictions"] = [prediction(str(rec["prediction"]), score)]
        tasks.append(task)
    return tasks


def _align_predictions(context: Context, model: str, client: LabelStudioClient, project_id: int,
                       imported: int) -> None:
    """Make the project show (or hide) pre-annotations as ``[labelling] pre_annotate`` says, so a project
    made before predictions were tagged :data:`PREDICTION_VERSION`, or before the setting changed, follows it."""
    want = context.model(model).labelling.pre_annotate
    show, version = client.prediction_settings(project_id)
    if show == want and (not want or version == PREDICTION_VERSION):
        return
    try:
        client.show_predictions(project_id, want)
    except LabelStudioError as exc:
        # Label Studio refuses a model_version no task carries yet (HTTP 400). With nothing imported now
        # (only tasks of an interrupted send adopted) that can be so: the next import sets it.
        if not (want and not imported and "HTTP 400" in str(exc)):
            raise


def _plain(value: Any) -> Any:
    """JSON-friendly scalar (NaN -> None, numbers rounded for reading)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float):
        return round(value, 4)
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def _dedupe(client: LabelStudioClient, tasks: Iterable[Task]) -> tuple[dict[str, int], int]:
    """One task per prediction: keep the one with annotations (else the oldest), delete the others."""
    by_pid: dict[str, list[Task]] = {}
    for t in tasks:
        if t.prediction_id is not None:
            by_pid.setdefault(t.prediction_id, []).append(t)
    keep: dict[str, int] = {}
    removed = 0
    for pid, group in by_pid.items():
        group.sort(key=lambda t: (-len(t.annotations), t.id))
        keep[pid] = group[0].id
        for extra in group[1:]:
            if not extra.annotations:
                client.delete_task(extra.id)
                removed += 1
    return keep, removed


def send(context: Context, actor: Actor, model: str, client: LabelStudioClient, limit: int | None = None,
         batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> SendReport:
    """Send pending rows (up to ``limit``) to the model's project, exactly once per ``prediction_id``.

    On failure the unsent rows go back to ``pending`` and a :class:`LabelStudioError` says how many were
    sent and that running the send again finishes the batch without duplicates.
    """
    require(actor, "queue.send")
    report = SendReport(model)
    try:
        project_id = ensure_project(context, actor, model, client)
    except LabelStudioError as exc:
        _note_pending(context, model, str(exc))
        raise
    report.project_id, report.project_url = project_id, client.project_url(project_id)
    _release_stale(context, model)
    claim = _claim_id()
    ids = _claim(context, model, claim, limit)
    report.claimed = len(ids)
    done = 0
    try:
        if ids:
            existing, report.duplicates_removed = _dedupe(client, client.tasks(project_id))
            adopted = {pid: existing[pid] for pid in ids if pid in existing}
            _mark_sent(context, model, claim, adopted, project_id)
            report.adopted = done = len(adopted)
            if progress:
                progress(done, len(ids))
            todo = [pid for pid in ids if pid not in existing]
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                payloads = _payloads(context, model, batch)
                order = [p["data"]["prediction_id"] for p in payloads]
                task_ids = client.import_tasks(project_id, payloads)
                if len(task_ids) != len(order):  # unexpected answer: read back what exists
                    listed = client.tasks_by_prediction(project_id)
                    mapping = {pid: listed[pid][0] for pid in order if pid in listed}
                else:
                    mapping = dict(zip(order, task_ids, strict=True))
                _mark_sent(context, model, claim, mapping, project_id)
                report.imported += len(mapping)
                done += len(mapping)
                if progress:
                    progress(done, len(ids))
            _align_predictions(context, model, client, project_id, report.imported)
    except LabelStudioError as exc:
        _release(context, model, claim, str(exc))
        left = len(ids) - done
        _audit(context, actor, "queue.send", model, {"sent": done, "failed": left, "error": type(exc).__name__})
        if not left:  # only the pre-annotation setting failed (see _align_predictions)
            raise type(exc)(f"{exc}. All {done} were sent; the project's pre-annotation setting is set on the "
                            "next send.") from None
        raise type(exc)(f"{exc}. {done} of {len(ids)} sent before the failure; the other {left} stay queued: "
                        "send again to finish the batch (nothing is sent twice).") from None
    except BaseException:
        _release(context, model, claim, "the send was interrupted")
        raise
    with context.store.connect() as con:
        report.remaining = int(con.execute("SELECT count(*) FROM annotation_queue WHERE model_name = ? AND "
                                           "state = 'pending'", [model]).fetchall()[0][0])
    if ids:
        _audit(context, actor, "queue.send", model, {"project_id": project_id, "imported": report.imported,
                                                      "adopted": report.adopted,
                                                      "duplicates_removed": report.duplicates_removed,
                                                      "pre_annotate": context.model(model).labelling.pre_annotate})
    return report


def queue_and_send(context: Context, actor: Actor, model: str, selection: Selection, client: LabelStudioClient,
                   progress: Progress | None = None) -> SendReport:
    """Queue a selection's candidates and send them (plus anything left pending by an earlier failure)."""
    require(actor, "queue.send")
    queued = queue_candidates(context, actor, model, selection.candidates, selection.request.strategy)
    report = send(context, actor, model, client, progress=progress)
    report.queued = queued
    return report


def reconcile(context: Context, actor: Actor, model: str, client: LabelStudioClient) -> dict[str, int]:
    """Align the queue with the project: adopt existing tasks, drop duplicates, requeue vanished sends."""
    require(actor, "queue.send")
    project_id = ensure_project(context, actor, model, client)
    released = _release_stale(context, model)
    keep, removed = _dedupe(client, client.tasks(project_id))
    result = {"tasks": len(keep), "released": released, "duplicates_removed": removed,
              **_align_queue(context, model, project_id, keep)}
    if any(v for k, v in result.items() if k != "tasks"):
        _audit(context, actor, "queue.reconcile", model, {"project_id": project_id, **result})
    return result


def _align_queue(context: Context, model: str, project_id: int, keep: dict[str, int]) -> dict[str, int]:
    """Bring the queue table in line with the project's tasks (``prediction_id -> task id``): pending rows
    that have a task become sent, task ids follow the kept task, and sent rows whose task was deleted in
    Label Studio become skipped (with the reason)."""
    frame = pd.DataFrame({"prediction_id": list(keep), "task_id": list(keep.values())})
    now = utcnow()
    with context.store.connect() as con:
        ensure_queue(con)
        con.register("__tasks", frame)
        try:
            adopted = con.execute(
                "UPDATE annotation_queue q SET state = 'sent', task_id = t.task_id, project_id = ?, sent_at = ?, "
                "last_error = NULL, updated_at = ? FROM __tasks t WHERE q.model_name = ? AND "
                "q.prediction_id = t.prediction_id AND q.state = 'pending' RETURNING q.prediction_id",
                [project_id, now, now, model]).fetchall()
            fixed = con.execute(
                "UPDATE annotation_queue q SET task_id = t.task_id, updated_at = ? FROM __tasks t WHERE "
                "q.model_name = ? AND q.prediction_id = t.prediction_id AND q.task_id IS DISTINCT FROM t.task_id "
                "RETURNING q.prediction_id", [now, model]).fetchall()
            vanished = con.execute(
                "UPDATE annotation_queue SET state = 'skipped', last_error = 'the task was deleted in Label Studio', "
                "updated_at = ? WHERE model_name = ? AND state = 'sent' AND prediction_id NOT IN "
                "(SELECT prediction_id FROM __tasks) RETURNING prediction_id", [now, model]).fetchall()
        finally:
            con.unregister("__tasks")
    return {"adopted": len(adopted), "task_ids_fixed": len(fixed), "vanished": len(vanished)}


# --------------------------------------------------------------------------------------------- sync


def sync_labels(context: Context, actor: Actor, model: str, client: LabelStudioClient) -> SyncReport:
    """Pull annotations, resolve by majority, append changed labels (source ``label_studio``)."""
    require(actor, "labels.sync")
    report = SyncReport(model)
    schema = context.schema(model)
    with context.store.connect() as con:
        ensure_queue(con)
        row = first(con.execute("SELECT project_id FROM annotation_projects WHERE model_name = ?", [model]).fetchall())
    if row is None:
        raise VigilError(f"nothing of {model} has been sent to Label Studio yet; send a batch first")
    project_id = int(row[0])
    users = accounts.author_names(context, client)  # Label Studio user id -> Vigil user name
    tasks = client.tasks(project_id)
    keep, report.duplicates_removed = _dedupe(client, tasks)
    aligned = _align_queue(context, model, project_id, keep)
    report.adopted, report.vanished = aligned["adopted"], aligned["vanished"]
    tasks = [t for t in tasks if t.prediction_id is not None and keep.get(t.prediction_id) == t.id]
    report.tasks = len(tasks)
    with context.store.connect() as con:
        queued = {r[0]: r[1] for r in con.execute(
            "SELECT prediction_id, label FROM annotation_queue WHERE model_name = ?", [model]).fetchall()}
        logged = {r[0] for r in con.execute(
            f"SELECT prediction_id FROM {schema.table} SEMI JOIN (SELECT unnest(?) AS prediction_id) "
            "USING (prediction_id)", [[t.prediction_id for t in tasks]]).fetchall()}
    updates: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    per_annotator: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    skipped_by: Counter[str] = Counter()
    agreements: list[float] = []
    now = utcnow()
    for task in tasks:
        pid = str(task.prediction_id)
        if pid not in logged:
            continue  # a task Vigil did not create (or of another model): leave it alone
        res = resolve(task.annotations, users)
        for a in task.annotations:
            name = users.get(a.annotator_id or -1, f"user {a.annotator_id}")
            if a.cancelled:
                skipped_by[name] += 1
            elif a.label:
                per_annotator[name] += 1
                if res.label is not None and a.label == res.label:
                    agreed[name] += 1
        if res.votes >= 2 and res.agreement is not None:
            agreements.append(res.agreement)
        state = "labelled" if res.label else ("skipped" if res.skipped else "sent")
        report.labelled += state == "labelled"
        report.skipped += state == "skipped"
        report.ties += res.tie
        previous = queued.get(pid)
        if res.label != previous and (res.label is not None or previous is not None):
            changes.append({"prediction_id": pid, "label": res.label, "annotator": res.annotators or None,
                            "ts": res.ts or now})
            report.retracted += res.label is None
        updates.append({"prediction_id": pid, "state": state, "task_id": task.id, "label": res.label,
                        "annotator": res.annotators or None, "annotations": res.votes,
                        "agreement": res.agreement, "labelled_at": res.ts,
                        "note": "tie: needs another annotation" if res.tie else None,
                        "known": pid in queued})
    if changes:
        context.store.add_labels(schema, pd.DataFrame(changes), source="label_studio")
        report.written = len(changes)
    if updates:
        _write_sync(context, model, project_id, pd.DataFrame(updates), now)
    report.agreement = sum(agreements) / len(agreements) if agreements else None
    names = sorted(set(per_annotator) | set(skipped_by))
    report.annotators = pd.DataFrame({
        "annotator": names, "labelled": [per_annotator[n] for n in names],
        "skipped": [skipped_by[n] for n in names],
        "agreement_with_majority": [agreed[n] / per_annotator[n] if per_annotator[n] else None for n in names]})
    _write_annotators(context, model, report.annotators, now)
    _audit(context, actor, "labels.sync", model, {"project_id": project_id, "written": report.written,
                                                   "retracted": report.retracted, "labelled": report.labelled})
    return report


def _write_sync(context: Context, model: str, project_id: int, frame: pd.DataFrame, now: datetime) -> None:
    frame = frame.astype({"label": "string", "annotator": "string", "note": "string"})
    frame["labelled_at"] = pd.to_datetime(frame["labelled_at"])

    def write() -> None:
        with context.store.connect() as con:
            con.register("__sync", frame)
            try:
                con.execute(
                    "INSERT INTO annotation_queue (model_name, prediction_id, state, reason, queued_by, queued_at, "
                    "project_id, task_id, sent_at, updated_at) SELECT ?, prediction_id, 'sent', "
                    "'found in the Label Studio project', 'label sync', ?, ?, task_id, ?, ? FROM __sync "
                    "WHERE NOT known ON CONFLICT DO NOTHING", [model, now, project_id, now, now]).fetchall()
                con.execute(
                    "UPDATE annotation_queue q SET state = s.state, task_id = s.task_id, project_id = ?, "
                    "label = s.label, annotator = s.annotator, annotations = s.annotations, "
                    "agreement = s.agreement, labelled_at = s.labelled_at, last_error = s.note, updated_at = ? "
                    "FROM __sync s WHERE q.model_name = ? AND q.prediction_id = s.prediction_id "
                    "AND q.state IN ('sent', 'labelled', 'skipped')", [project_id, now, model]).fetchall()
            finally:
                con.unregister("__sync")

    _retry_conflicts(write)


def _write_annotators(context: Context, model: str, frame: pd.DataFrame, now: datetime) -> None:
    def write() -> None:
        with context.store.connect() as con:
            ensure_queue(con)
            con.execute("BEGIN TRANSACTION").fetchall()
            try:
                con.execute("DELETE FROM annotation_annotators WHERE model_name = ?", [model]).fetchall()
                if not frame.empty:
                    con.register("__ann", frame)
                    con.execute("INSERT INTO annotation_annotators SELECT ?, annotator, labelled, skipped, "
                                "agreement_with_majority, ? FROM __ann", [model, now]).fetchall()
                    con.unregister("__ann")
                con.execute("COMMIT").fetchall()
            except duckdb.Error:
                con.execute("ROLLBACK").fetchall()
                raise

    _retry_conflicts(write)


# --------------------------------------------------------------------------------------------- reads


def queue_status(context: Context, model: str) -> dict[str, int]:
    """Rows per state (every state present, zero when empty)."""
    with context.store.connect() as con:
        ensure_queue(con)
        rows = con.execute("SELECT state, count(*) FROM annotation_queue WHERE model_name = ? GROUP BY 1",
                           [model]).fetchall()
    counts = dict.fromkeys(STATES, 0)
    counts.update({str(s): int(n) for s, n in rows})
    return counts


def queue_rows(context: Context, model: str, limit: int = 500) -> pd.DataFrame:
    """The most recently changed queue rows, for display."""
    with context.store.connect() as con:
        ensure_queue(con)
        return con.execute(
            "SELECT prediction_id, state, prediction, score, uncertainty, label, annotator, annotations, agreement, "
            "task_id, reason, last_error, queued_by, queued_at, sent_at, labelled_at FROM annotation_queue "
            "WHERE model_name = ? ORDER BY updated_at DESC, prediction_id LIMIT ?", [model, limit]).df()


def annotator_progress(context: Context, model: str) -> pd.DataFrame:
    """Per annotator, as of the last sync: labelled, skipped, agreement with the majority."""
    with context.store.connect() as con:
        ensure_queue(con)
        return con.execute("SELECT annotator, labelled, skipped, agreement_with_majority, synced_at FROM "
                           "annotation_annotators WHERE model_name = ? ORDER BY labelled DESC, annotator",
                           [model]).df()


def project_id(context: Context, model: str) -> int | None:
    """Id of the model's Label Studio project, once one exists (``vigil serve`` registers its webhook)."""
    with context.store.connect() as con:
        ensure_queue(con)
        row = first(con.execute("SELECT project_id FROM annotation_projects WHERE model_name = ?", [model]).fetchall())
    return int(row[0]) if row else None


def project_link(context: Context, model: str) -> str | None:
    """URL of the model's Label Studio project, once one exists."""
    with context.store.connect() as con:
        ensure_queue(con)
        row = first(con.execute("SELECT url FROM annotation_projects WHERE model_name = ?", [model]).fetchall())
    return str(row[0]) if row else None


def queue_version(context: Context, model: str) -> str:
    """Changes whenever the queue changes (part of the page's cache keys next to the data version)."""
    with context.store.connect() as con:
        ensure_queue(con)
        n, last = con.execute("SELECT count(*), max(updated_at) FROM annotation_queue WHERE model_name = ?",
                              [model]).fetchall()[0]
    return f"{n}.{last}"
