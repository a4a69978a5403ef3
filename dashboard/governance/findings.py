"""Findings: a problem a manager or validator found in a model version, tracked to its resolution.

Why a record of its own: a policy verdict says a number is out of bounds; a finding says what a person
found (a weak data sample, a missing appeal process), who owns the fix and by when, and which control
it concerns. Findings live in the log store (table ``findings``); recording and resolving one checks
the role and is audited. An open finding of severity ``high`` or ``critical`` on a version fails the
blocking built-in policy ``open_findings``, so it blocks that version's promotion until resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from dashboard.access.roles import Actor, require
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.errors import VigilError

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
BLOCKING_SEVERITIES: tuple[str, ...] = ("high", "critical")
OPEN, RESOLVED = "open", "resolved"
MIN_RESOLUTION = 10  # characters: what was done, not "done"

_DDL = """
CREATE SEQUENCE IF NOT EXISTS findings_seq START 1;
CREATE TABLE IF NOT EXISTS findings (
    id BIGINT DEFAULT nextval('findings_seq'), model VARCHAR, version VARCHAR, title VARCHAR,
    severity VARCHAR, owner VARCHAR, due DATE, control VARCHAR, state VARCHAR, created_by VARCHAR,
    created_at TIMESTAMP, resolved_by VARCHAR, resolved_at TIMESTAMP, resolution VARCHAR);
"""
COLUMNS: tuple[str, ...] = ("id", "model", "version", "title", "severity", "owner", "due", "control", "state",
                            "created_by", "created_at", "resolved_by", "resolved_at", "resolution")


@dataclass(frozen=True)
class Finding:
    id: int
    model: str
    version: str
    title: str
    severity: str
    owner: str
    due: date | None
    control: str
    state: str
    created_by: str
    created_at: datetime
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def blocking(self) -> bool:
        return self.state == OPEN and self.severity in BLOCKING_SEVERITIES

    def overdue(self, today: date) -> bool:
        return self.state == OPEN and self.due is not None and self.due < today


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _row(row: tuple[Any, ...]) -> Finding:
    data = dict(zip(COLUMNS, row, strict=True))
    data["version"] = str(data["version"])
    return Finding(**data)


def record_finding(ctx: Context, actor: Actor, model: str, version: str, title: str, severity: str, owner: str,
                   due: date | None = None, control: str = "") -> Finding:
    """Record an open finding on ``version`` of ``model`` (``finding.record``); ``control`` names the
    control it concerns as ``pack:control`` (e.g. ``eu-ai-act:art-10``)."""
    require(actor, "finding.record")
    ctx.model(model)
    title, owner, control = title.strip(), owner.strip(), control.strip()
    if not title:
        raise VigilError("a finding needs a title that says what was found")
    if severity not in SEVERITIES:
        raise VigilError(f"severity '{severity}' is not one of {', '.join(SEVERITIES)}")
    if not owner:
        raise VigilError("a finding needs an owner: the person who will resolve it")
    if control and ":" not in control:
        raise VigilError(f"control '{control}' is not written pack:control (e.g. eu-ai-act:art-10)")
    ctx.registry.version(model, str(version))  # a finding on a version that does not exist is a typo
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("INSERT INTO findings (model, version, title, severity, owner, due, control, state, "
                          "created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING "
                          + ", ".join(COLUMNS),
                          [model, str(version), title, severity, owner, due, control, OPEN, actor.name,
                           _now()]).fetchone()
    assert row is not None
    found = _row(row)
    audit.record(ctx.store, actor, "finding.record", model,
                 {"id": found.id, "version": found.version, "title": title, "severity": severity, "owner": owner,
                  "due": due.isoformat() if due else None, "control": control or None})
    return found


def resolve_finding(ctx: Context, actor: Actor, finding_id: int, resolution: str) -> Finding:
    """Close an open finding with what was done about it (``finding.resolve``)."""
    require(actor, "finding.resolve")
    resolution = resolution.strip()
    if len(resolution) < MIN_RESOLUTION:
        raise VigilError(f"say how the finding was resolved (at least {MIN_RESOLUTION} characters)")
    current = get(ctx, finding_id)
    if current.state != OPEN:
        raise VigilError(f"finding #{finding_id} was already resolved by {current.resolved_by}")
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("UPDATE findings SET state = ?, resolved_by = ?, resolved_at = ?, resolution = ? "
                          "WHERE id = ? AND state = ? RETURNING " + ", ".join(COLUMNS),
                          [RESOLVED, actor.name, _now(), resolution, int(finding_id), OPEN]).fetchone()
    if row is None:
        raise VigilError(f"finding #{finding_id} was resolved by someone else just now; reload")
    done = _row(row)
    audit.record(ctx.store, actor, "finding.resolve", done.model,
                 {"id": done.id, "version": done.version, "severity": done.severity, "resolution": resolution})
    return done


def get(ctx: Context, finding_id: int) -> Finding:
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("SELECT " + ", ".join(COLUMNS) + " FROM findings WHERE id = ?",
                          [int(finding_id)]).fetchone()
    if row is None:
        raise VigilError(f"there is no finding #{finding_id} (vigil findings list shows them)")
    return _row(row)


def findings(ctx: Context, model: str | None = None, version: str | None = None,
             state: str | None = None) -> list[Finding]:
    """Findings, newest first, filtered by model, version and state."""
    where, params = [], []
    for column, value in (("model", model), ("version", version), ("state", state)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(str(value))
    sql = ("SELECT " + ", ".join(COLUMNS) + " FROM findings" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY id DESC")
    with ctx.store.connect() as con:
        con.execute(_DDL)
        rows = con.execute(sql, params).fetchall()
    return [_row(r) for r in rows]


def frame(found: list[Finding]) -> pd.DataFrame:
    return pd.DataFrame([{c: getattr(f, c) for c in COLUMNS} for f in found], columns=list(COLUMNS))


def blocking_open(ctx: Context, model: str, version: str) -> list[Finding]:
    """Open high and critical findings on ``version``: what the ``open_findings`` policy counts."""
    return [f for f in findings(ctx, model, version, OPEN) if f.blocking]
