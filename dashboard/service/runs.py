"""The record of every monitor run ``vigil serve`` made: ``serve_runs`` in the log store.

Why a table and not a log line: the scheduler decides from it what is due (the last run of each monitor,
how many failed in a row), ``/healthz`` reports from it, and a run cut short by a killed process stays
visible as ``running`` until the next process marks it ``interrupted`` and retries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from dashboard.context import Context
from dashboard.service.clock import naive_utc

STATUSES: tuple[str, ...] = ("running", "ok", "failed", "interrupted")

_DDL = """
CREATE SEQUENCE IF NOT EXISTS serve_runs_seq START 1;
CREATE TABLE IF NOT EXISTS serve_runs (
    id BIGINT PRIMARY KEY DEFAULT nextval('serve_runs_seq'), monitor VARCHAR NOT NULL, model VARCHAR NOT NULL,
    scheduled_for TIMESTAMP NOT NULL, started TIMESTAMP NOT NULL, finished TIMESTAMP, status VARCHAR NOT NULL,
    error VARCHAR, attempt INTEGER NOT NULL, holder VARCHAR NOT NULL, summary VARCHAR);
"""
_COLUMNS = "id, monitor, model, scheduled_for, started, finished, status, error, attempt, holder, summary"


@dataclass(frozen=True)
class Run:
    """One run of one monitor for one model. ``attempt`` counts the runs in a row that did not succeed
    (1 for a first try), which sets the retry back-off."""

    id: int
    monitor: str
    model: str
    scheduled_for: datetime
    started: datetime
    finished: datetime | None
    status: str
    error: str | None
    attempt: int
    holder: str
    summary: str | None = None


def _run(row: tuple[object, ...]) -> Run:
    return Run(*row)  # type: ignore[arg-type]


def start(ctx: Context, monitor: str, model: str, scheduled_for: datetime, attempt: int, holder: str,
          now: datetime) -> int:
    """Record a run as ``running``; returns its id."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("INSERT INTO serve_runs (monitor, model, scheduled_for, started, status, attempt, holder) "
                          "VALUES (?, ?, ?, ?, 'running', ?, ?) RETURNING id",
                          [monitor, model, naive_utc(scheduled_for), naive_utc(now), attempt, holder]).fetchone()
    assert row is not None
    return int(row[0])


def finish(ctx: Context, run_id: int, status: str, now: datetime, error: str | None = None,
           summary: str | None = None) -> None:
    """Close a run as ``ok``, ``failed`` or ``interrupted`` (only a run still ``running``)."""
    if status not in STATUSES[1:]:
        raise ValueError(f"unknown run status '{status}'")
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("UPDATE serve_runs SET status = ?, finished = ?, error = ?, summary = ? "
                    "WHERE id = ? AND status = 'running'",
                    [status, naive_utc(now), (error or None) and error[:2000], (summary or None) and summary[:2000],
                     run_id])


def latest(ctx: Context) -> dict[tuple[str, str], Run]:
    """The last run of each (monitor, model)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        rows = con.execute(f"SELECT {_COLUMNS} FROM serve_runs QUALIFY row_number() OVER "
                           "(PARTITION BY monitor, model ORDER BY id DESC) = 1").fetchall()
    return {(r.monitor, r.model): r for r in map(_run, rows)}


def running(ctx: Context) -> list[Run]:
    with ctx.store.connect() as con:
        con.execute(_DDL)
        rows = con.execute(f"SELECT {_COLUMNS} FROM serve_runs WHERE status = 'running' ORDER BY id").fetchall()
    return [_run(r) for r in rows]


def history(ctx: Context, monitor: str | None = None, model: str | None = None, limit: int = 200) -> pd.DataFrame:
    """Recent runs, newest first (for ``/healthz`` and the README's examples)."""
    where, params = [], []
    for col, value in (("monitor", monitor), ("model", model)):
        if value is not None:
            where.append(f"{col} = ?")
            params.append(value)
    with ctx.store.connect() as con:
        con.execute(_DDL)
        return con.execute(f"SELECT {_COLUMNS} FROM serve_runs {'WHERE ' + ' AND '.join(where) if where else ''} "
                           f"ORDER BY id DESC LIMIT {int(limit)}", params).df()
