"""Append-only, hash-chained audit trail of every state-changing action.

Why a chain: an auditor must be able to tell that the record was not altered afterwards. Each entry
stores the previous entry's hash and its own SHA-256 over a canonical serialisation (which includes
``prev_hash``), so editing, deleting, inserting or reordering any entry breaks the chain from that
entry on. Deleting the newest entries leaves a valid chain, so a separate *head* (entry count and last
hash, written in the same transaction) anchors the tail; :func:`head` prints it for publishing outside
Vigil (a CI log, a ticket) and :func:`verify` accepts such an externally kept anchor too.

The stored head is inside the store, so whoever rewrites the store rewrites it too: the anchor that
such a rewrite cannot forge is a signed checkpoint outside the store (:mod:`dashboard.audit.checkpoints`,
written after :func:`record` when due, and checked by :func:`dashboard.audit.anchor.verify`).

This module has no update or delete path for entries: :func:`record` only appends.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import duckdb
import pandas as pd

from connectors.logstore import LogStore
from dashboard.audit import checkpoints

GENESIS = "0" * 64


@runtime_checkable
class Principal(Protocol):
    """Who acted, as the trail records it (an access ``Actor``): the trail needs only a name and a role, so
    it imports nothing of access and every domain, access included, can write to it."""

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...

_LOCK = threading.Lock()

_DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY, ts TIMESTAMP NOT NULL, actor VARCHAR NOT NULL, role VARCHAR NOT NULL,
    action VARCHAR NOT NULL, target VARCHAR NOT NULL, details VARCHAR NOT NULL,
    prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY, entries BIGINT NOT NULL, last_hash VARCHAR NOT NULL, updated_at TIMESTAMP);
"""


@dataclass(frozen=True)
class Entry:
    """One audit entry as stored."""

    seq: int
    ts: datetime
    actor: str
    role: str
    action: str
    target: str
    details: str  # canonical JSON
    prev_hash: str
    hash: str

    @property
    def label(self) -> str:
        return f"entry #{self.seq} ({self.ts:%Y-%m-%d %H:%M:%S} UTC, {self.actor}, {self.action} {self.target})"


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify`: ``ok`` or the first bad entry and why."""

    ok: bool
    entries: int
    message: str
    first_bad_seq: int | None = None
    last_hash: str = GENESIS


def _resolve_store(store_or_ctx: Any) -> LogStore:
    """Accept a LogStore or anything holding one as ``.store`` (the Context)."""
    store = getattr(store_or_ctx, "store", store_or_ctx)
    if not hasattr(store, "connect"):
        raise TypeError(f"expected a LogStore or a Context, got {type(store_or_ctx).__name__}")
    return store


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)
    checkpoints.ensure_state_table(con)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """Details as canonical JSON (sorted keys, no spaces) so the same content always hashes the same."""
    return json.dumps(_jsonable(dict(details or {})), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _ts_text(ts: datetime) -> str:
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds")


def entry_hash(seq: int, ts: datetime, actor: str, role: str, action: str, target: str, details: str,
               prev_hash: str) -> str:
    """SHA-256 over the canonical serialisation of one entry, including the previous entry's hash."""
    payload = json.dumps({"seq": int(seq), "ts": _ts_text(ts), "actor": actor, "role": role, "action": action,
                          "target": target, "details": details, "prev_hash": prev_hash},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record(store: Any, actor: Principal | str, action: str, target: str | None = None,
           details: Mapping[str, Any] | None = None, *, model: str | None = None,
           detail: Mapping[str, Any] | None = None, role: str | None = None) -> Entry:
    """Append one entry and move the head; returns the stored entry.

    ``store`` is the LogStore (or the Context). ``actor`` is the acting :class:`Principal`, or a bare name
    for an unauthenticated attempt (a failed sign-in), whose role is recorded as ``role`` or ``-``.
    ``model``/``detail`` are accepted as aliases of ``target``/``details``.
    """
    log_store = _resolve_store(store)
    if isinstance(actor, Principal):
        name, actor_role = actor.name, actor.role
    else:
        name, actor_role = str(actor), role or "-"
    tgt = str(target if target is not None else (model or ""))
    body = canonical_details(details if details is not None else detail)
    ts = datetime.now(UTC).replace(tzinfo=None)
    entry = _append(log_store, name, actor_role, action, tgt, body, ts)
    checkpoints.after_append(store, entry.seq, entry.hash, action, tgt)
    return entry


def _append(log_store: LogStore, name: str, actor_role: str, action: str, tgt: str, body: str,
            ts: datetime) -> Entry:
    """Insert the next entry and move the head in one transaction, retrying when another thread won."""
    for attempt in range(20):
        try:
            with _LOCK, log_store.connect() as con:
                ensure_tables(con)
                con.execute("BEGIN TRANSACTION")
                try:
                    row = con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
                    seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS)
                    digest = entry_hash(seq, ts, name, actor_role, action, tgt, body, prev)
                    con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                [seq, ts, name, actor_role, action, tgt, body, prev, digest])
                    con.execute("INSERT OR REPLACE INTO audit_head VALUES (1, ?, ?, ?)", [seq, digest, ts])
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            return Entry(seq, ts, name, actor_role, action, tgt, body, prev, digest)
        except duckdb.TransactionException:  # another thread of this process appended first: retry
            time.sleep(0.01 * (attempt + 1))
        except duckdb.ConstraintException:
            time.sleep(0.01 * (attempt + 1))
    raise RuntimeError("could not append to the audit trail after 20 attempts")


def read_chain(store: Any) -> tuple[list[Entry], tuple[int, str] | None]:
    """Every entry in sequence order and the stored head (entries, last hash), read in one connection."""
    return _all_entries(_resolve_store(store))


def _all_entries(store: LogStore) -> tuple[list[Entry], tuple[int, str] | None]:
    with store.connect() as con:
        ensure_tables(con)
        rows = con.execute("SELECT seq, ts, actor, role, action, target, details, prev_hash, hash "
                           "FROM audit_log ORDER BY seq, hash").fetchall()
        head_row = con.execute("SELECT entries, last_hash FROM audit_head WHERE id = 1").fetchone()
    entries = [Entry(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]
    return entries, (int(head_row[0]), str(head_row[1])) if head_row else None


def verify(store: Any, expected_head: tuple[int, str] | None = None) -> Verification:
    """Walk the chain; report the first entry whose sequence, link or hash is wrong, or a cut tail.

    ``expected_head`` (entries, last hash) is an anchor kept outside the store, e.g. from :func:`head`
    published earlier; when given it is checked as well as the stored head.
    """
    entries, stored_head = _all_entries(_resolve_store(store))
    return check_chain(entries, stored_head, expected_head)


def check_chain(entries: list[Entry], stored_head: tuple[int, str] | None,
                expected_head: tuple[int, str] | None = None) -> Verification:
    """:func:`verify` on entries already read (so a caller that also checks checkpoints reads once)."""
    prev = GENESIS
    for i, e in enumerate(entries):
        expected_seq = i + 1
        if e.seq != expected_seq:
            if e.seq > expected_seq:
                message, bad = f"entry #{expected_seq} is missing (deleted); the chain resumes at {e.label}", expected_seq
            else:
                message, bad = f"{e.label} appears twice or out of order (an entry was inserted)", e.seq
            return Verification(False, len(entries), message, first_bad_seq=bad)
        if e.prev_hash != prev:
            return Verification(False, len(entries), f"{e.label} does not link to the entry before it "
                                "(an entry was deleted, inserted or reordered here)", first_bad_seq=e.seq)
        actual = entry_hash(e.seq, e.ts, e.actor, e.role, e.action, e.target, e.details, e.prev_hash)
        if actual != e.hash:
            return Verification(False, len(entries), f"{e.label} was altered: its content does not match "
                                "its hash", first_bad_seq=e.seq)
        prev = e.hash
    count = len(entries)
    for source, anchor in (("stored head", stored_head), ("expected head", expected_head)):
        if anchor is None:
            if source == "stored head" and count:
                return Verification(False, count, "the audit head is missing: the tail cannot be vouched for",
                                    first_bad_seq=count)
            continue
        n, last = anchor
        if n > count:
            return Verification(False, count, f"the chain was truncated: the {source} records {n} entries but "
                                f"only {count} remain; entry #{count + 1} onwards is missing",
                                first_bad_seq=count + 1, last_hash=prev)
        if n < count:
            return Verification(False, count, f"entries after #{n} are not anchored by the {source}: "
                                f"entry #{n + 1} was added outside Vigil", first_bad_seq=n + 1, last_hash=prev)
        if n and last != prev:
            return Verification(False, count, f"the last entry #{n} does not match the {source}'s hash",
                                first_bad_seq=n, last_hash=prev)
    return Verification(True, count, f"audit trail intact: {count} entries, last hash {prev[:16]}…",
                        last_hash=prev)


def head(store: Any) -> tuple[int, str]:
    """(entries, last hash) of the stored head: publish it elsewhere to anchor the trail."""
    _, stored = _all_entries(_resolve_store(store))
    return stored or (0, GENESIS)


def entries(store: Any, *, actor: str | None = None, action: str | None = None, target: str | None = None,
            since: datetime | None = None, until: datetime | None = None, limit: int | None = None
            ) -> pd.DataFrame:
    """Entries newest first, filtered (exact actor/target, action prefix, half-open time range)."""
    where: list[str] = []
    params: list[Any] = []
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        where.append("starts_with(action, ?)")
        params.append(action)
    if target:
        where.append("target = ?")
        params.append(target)
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    sql = ("SELECT seq, ts, actor, role, action, target, details, prev_hash, hash FROM audit_log"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with _resolve_store(store).connect() as con:
        ensure_tables(con)
        return con.execute(sql, params).df()
