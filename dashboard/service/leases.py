"""Leases in the log store: two ``vigil serve`` processes on one store never run the same monitor at once.

A lease is a row ``leases(name PRIMARY KEY, holder, expires_at)``. Acquiring reads and writes it in one
transaction on an *exclusive* connection (:meth:`connectors.logstore.LogStore.connect`: check-then-write
operations take turns, through the store's owner or by the file lock when nobody owns it), so the
read-then-write is atomic across processes as well as threads. A lease that expired is free to take: a holder that was
killed mid-run loses it once ``expires_at`` passes, and the next process takes it over. Times come from
the caller (an injectable clock), naive UTC like every timestamp in the store.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from dashboard.context import Context
from dashboard.service.clock import naive_utc

_DDL = "CREATE TABLE IF NOT EXISTS leases (name VARCHAR PRIMARY KEY, holder VARCHAR NOT NULL, expires_at TIMESTAMP NOT NULL)"


def new_holder() -> str:
    """A holder id unique to this process start: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(ctx: Context, name: str, holder: str, ttl_s: float, now: datetime) -> bool:
    """Take or renew ``name`` for ``ttl_s`` seconds; False when another holder has it and it has not expired."""
    now = naive_utc(now)
    with ctx.store.connect(exclusive=True) as con:
        con.execute(_DDL)
        con.execute("BEGIN TRANSACTION")
        try:
            row = con.execute("SELECT holder, expires_at FROM leases WHERE name = ?", [name]).fetchone()
            if row is not None and row[0] != holder and row[1] > now:
                con.execute("ROLLBACK")
                return False
            con.execute("INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                        "expires_at = excluded.expires_at", [name, holder, now + timedelta(seconds=ttl_s)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return True


def release(ctx: Context, name: str, holder: str) -> bool:
    """Give ``name`` up if ``holder`` still has it; returns whether it did."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        gone = con.execute("DELETE FROM leases WHERE name = ? AND holder = ? RETURNING name", [name, holder]).fetchall()
    return bool(gone)


def holder_of(ctx: Context, name: str, now: datetime) -> str | None:
    """Who holds ``name`` at ``now`` (None when free or expired)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("SELECT holder FROM leases WHERE name = ? AND expires_at > ?", [name, naive_utc(now)]).fetchone()
    return None if row is None else str(row[0])
