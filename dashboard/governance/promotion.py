"""Promotion requests: a data scientist asks for a candidate to become champion; a manager decides.

Why a record of its own: an auditor reads the whole decision, not just the alias move. A request runs
``requested -> approved | rejected | withdrawn``; the requester's note is shown to the approver, the
approver's decision note is stored, and every step is a row in ``promotion_requests``, a version tag
(``vigil.promotion.*``, so the MLflow UI agrees) and an audit entry. Approving happens in
:func:`dashboard.governance.approvals.approve`, which closes the open request of that version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dashboard.access.roles import Actor, require
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.lifecycle.gate import TAG_PREFIX

TAG = "vigil.promotion."
OPEN = "requested"
CLOSED_STATES: tuple[str, ...] = ("approved", "rejected", "withdrawn")
MIN_NOTE = 10  # characters of a rejection's reason

_DDL = """
CREATE SEQUENCE IF NOT EXISTS promotion_requests_seq START 1;
CREATE TABLE IF NOT EXISTS promotion_requests (
    id BIGINT DEFAULT nextval('promotion_requests_seq'), model VARCHAR NOT NULL, version VARCHAR NOT NULL,
    state VARCHAR NOT NULL, requested_by VARCHAR NOT NULL, requested_at TIMESTAMP NOT NULL, note VARCHAR NOT NULL,
    decided_by VARCHAR, decided_at TIMESTAMP, decision_note VARCHAR);
"""
_COLUMNS = ("id", "model", "version", "state", "requested_by", "requested_at", "note", "decided_by", "decided_at",
            "decision_note")


@dataclass(frozen=True)
class PromotionRequest:
    id: int
    model: str
    version: str
    state: str
    requested_by: str
    requested_at: datetime
    note: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _row(row: tuple[Any, ...]) -> PromotionRequest:
    r = dict(zip(_COLUMNS, row, strict=True))
    return PromotionRequest(id=int(r["id"]), model=r["model"], version=r["version"], state=r["state"],
                            requested_by=r["requested_by"], requested_at=r["requested_at"], note=r["note"],
                            decided_by=r["decided_by"], decided_at=r["decided_at"], decision_note=r["decision_note"])


def open_request(ctx: Context, model: str, version: str) -> PromotionRequest | None:
    """The version's open request, if any."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM promotion_requests WHERE model = ? AND version = ? "
                          "AND state = ? ORDER BY id DESC LIMIT 1", [model, str(version), OPEN]).fetchone()
    return _row(row) if row else None


def requests(ctx: Context, model: str, state: str | None = None) -> list[PromotionRequest]:
    """Every request of ``model`` (or those in ``state``), newest first."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM promotion_requests WHERE model = ?"
    params: list[Any] = [model]
    if state:
        sql += " AND state = ?"
        params.append(state)
    with ctx.store.connect() as con:
        con.execute(_DDL)
        rows = con.execute(sql + " ORDER BY id DESC", params).fetchall()
    return [_row(r) for r in rows]


def requests_frame(found: list[PromotionRequest]) -> pd.DataFrame:
    cols = list(_COLUMNS)
    return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in found], columns=cols)


def _tag(ctx: Context, model: str, version: str, values: dict[str, str]) -> None:
    for key, text in values.items():
        ctx.registry.set_version_tag(model, version, TAG + key, text)


def request_promotion(ctx: Context, actor: Actor, model: str, version: str, note: str = "") -> PromotionRequest:
    """Ask for ``version`` to become champion; it must have passed the candidate gate."""
    require(actor, "promotion.request")
    version = str(version)
    v = ctx.registry.version(model, version)
    verdict = v.tags.get(TAG_PREFIX + "verdict")
    if verdict is None:
        raise VigilError(f"version {version} of '{model}' has no gate verdict yet; run the gate (a retrain does) "
                         "before requesting promotion")
    if verdict != "pass":
        raise VigilError(f"version {version} of '{model}' failed the gate ({v.tags.get(TAG_PREFIX + 'failed')}); "
                         "a failing candidate stays a candidate")
    if "champion" in v.aliases:
        raise VigilError(f"version {version} of '{model}' is already the champion")
    if open_request(ctx, model, version) is not None:
        raise VigilError(f"promotion of version {version} of '{model}' is already requested; withdraw it first "
                         "to ask again")
    note = (note or "").strip()
    now = _now()
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("INSERT INTO promotion_requests (model, version, state, requested_by, requested_at, note) "
                          f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {', '.join(_COLUMNS)}",
                          [model, version, OPEN, actor.name, now, note]).fetchone()
    assert row is not None
    request = _row(row)
    _tag(ctx, model, version, {"status": OPEN, "request_id": str(request.id), "requested_by": actor.name,
                               "requested_at": now.isoformat(timespec="seconds"), "note": note or "-"})
    trail.record(ctx.store, actor, "promotion.request", model,
                 {"version": version, "request_id": request.id, "note": note, "verdict": verdict})
    return request


def close(ctx: Context, actor: Actor, model: str, version: str, state: str, decision_note: str) -> PromotionRequest | None:
    """Close the version's open request as ``state`` (None when there is none); records tag and row."""
    if state not in CLOSED_STATES:
        raise VigilError(f"a request closes as one of {', '.join(CLOSED_STATES)}, not '{state}'")
    current = open_request(ctx, model, version)
    if current is None:
        return None
    now = _now()
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("UPDATE promotion_requests SET state = ?, decided_by = ?, decided_at = ?, decision_note = ? "
                          f"WHERE id = ? AND state = ? RETURNING {', '.join(_COLUMNS)}",
                          [state, actor.name, now, decision_note, current.id, OPEN]).fetchone()
    if row is None:  # decided meanwhile by someone else
        return None
    _tag(ctx, model, version, {"status": state, "decided_by": actor.name,
                               "decided_at": now.isoformat(timespec="seconds"), "decision_note": decision_note or "-"})
    return _row(row)


def reject(ctx: Context, actor: Actor, model: str, version: str, note: str) -> PromotionRequest:
    """A manager declines the request; the reason is kept and shown to the requester."""
    require(actor, "promotion.reject")
    note = (note or "").strip()
    if len(note) < MIN_NOTE:
        raise VigilError(f"say why the promotion is rejected (at least {MIN_NOTE} characters); the requester "
                         "and the audit trail see it")
    closed = close(ctx, actor, model, version, "rejected", note)
    if closed is None:
        raise VigilError(f"version {version} of '{model}' has no open promotion request")
    trail.record(ctx.store, actor, "promotion.reject", model,
                 {"version": str(version), "request_id": closed.id, "note": note})
    return closed


def withdraw(ctx: Context, actor: Actor, model: str, version: str, note: str = "") -> PromotionRequest:
    """The requester (or an admin) takes the request back."""
    require(actor, "promotion.withdraw")
    current = open_request(ctx, model, version)
    if current is None:
        raise VigilError(f"version {version} of '{model}' has no open promotion request")
    if current.requested_by != actor.name and actor.role != "admin":
        raise PermissionDenied(f"{actor.name} may not withdraw {current.requested_by}'s request; they or an "
                               "admin can")
    note = (note or "").strip()
    closed = close(ctx, actor, model, version, "withdrawn", note)
    if closed is None:
        raise VigilError(f"the request for version {version} of '{model}' was decided meanwhile")
    trail.record(ctx.store, actor, "promotion.withdraw", model,
                 {"version": str(version), "request_id": closed.id, "note": note})
    return closed
