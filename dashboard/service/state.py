"""Small state ``vigil serve`` keeps between runs and processes, in the log store.

* ``serve_state(key, value, updated_at)``: JSON values, e.g. the registry aliases last seen per model
  (what the alias poller compares against) and the time up to which failed jobs were reported.
* ``webhook_deliveries(source, delivery_id, received_at)``: every accepted MLflow delivery id, so a
  replayed delivery is refused (the primary key makes "first time?" one atomic insert).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dashboard.context import Context
from dashboard.service.clock import naive_utc

_DDL = """
CREATE TABLE IF NOT EXISTS serve_state (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, updated_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    source VARCHAR NOT NULL, delivery_id VARCHAR NOT NULL, received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, delivery_id));
"""


def get(ctx: Context, key: str, default: Any = None) -> Any:
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("SELECT value FROM serve_state WHERE key = ?", [key]).fetchone()
    return default if row is None else json.loads(row[0])


def put(ctx: Context, key: str, value: Any, now: datetime) -> None:
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("INSERT INTO serve_state VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at", [key, json.dumps(value, sort_keys=True), naive_utc(now)])


def update_if(ctx: Context, key: str, expected: Any, value: Any, now: datetime) -> bool:
    """Set ``key`` to ``value`` only if it still holds ``expected`` (None: absent), in one transaction; False
    when another thread or process changed it first (it then owns the change)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("BEGIN TRANSACTION")
        try:
            row = con.execute("SELECT value FROM serve_state WHERE key = ?", [key]).fetchone()
            if (None if row is None else json.loads(row[0])) != expected:
                con.execute("ROLLBACK")
                return False
            con.execute("INSERT INTO serve_state VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                        "value = excluded.value, updated_at = excluded.updated_at",
                        [key, json.dumps(value, sort_keys=True), naive_utc(now)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return True


def first_delivery(ctx: Context, source: str, delivery_id: str, now: datetime) -> bool:
    """Record ``delivery_id``; False when it was seen before (a replay)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        added = con.execute("INSERT INTO webhook_deliveries VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1",
                            [source, delivery_id, naive_utc(now)]).fetchall()
    return bool(added)


def forget_delivery(ctx: Context, source: str, delivery_id: str) -> None:
    """Undo :func:`first_delivery` for a delivery that could not be queued (the sender retries it)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("DELETE FROM webhook_deliveries WHERE source = ? AND delivery_id = ?", [source, delivery_id])
