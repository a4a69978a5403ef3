"""Approvals: a manager promotes a candidate that passes every blocking policy; overrides and rollbacks.

Why here and not in the UI: the rules hold however the action is triggered (page, CLI, script).
- Only ``model.promote`` roles (managers) approve; a failing blocking policy can be overridden only with
  a written justification (``policy.override``), and the override stays visible: a version tag, a row in
  the ``approvals`` table and the audit trail.
- Separation of duties: the approver must not be the person who trained the version (the run's
  ``trained_by`` tag, else ``mlflow.user``). On by default; ``separation_of_duties = false`` in ``[vigil]``
  (or ``VIGIL_SEPARATION_OF_DUTIES=off``) turns it off for single-person setups (and says so in the audit entry).
- A candidate that failed the candidate-vs-champion gate (:mod:`dashboard.lifecycle.gate`) counts as a blocking
  failure ``candidate_gate``: it stays a candidate unless a manager overrides with a justification.
- Promotion moves MLflow's ``champion`` alias and remembers the previous champion, so rollback is one call.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from connectors.registry import RegistryNotFound
from dashboard.access.roles import Actor, require
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance.policy import Evaluation, evaluate, save_evaluation
from dashboard.lifecycle.gate import TAG_PREFIX as GATE_TAG

CHAMPION = "champion"
TAG = "vigil.approval."
MIN_JUSTIFICATION = 20  # characters: a sentence, not "ok"
GATE_POLICY = "candidate_gate"  # the name a failed candidate-vs-champion gate takes among blocking failures

_DDL = """
CREATE SEQUENCE IF NOT EXISTS approvals_seq START 1;
CREATE TABLE IF NOT EXISTS approvals (
    id BIGINT DEFAULT nextval('approvals_seq'), ts TIMESTAMP, model VARCHAR, version VARCHAR, action VARCHAR,
    actor VARCHAR, role VARCHAR, previous_version VARCHAR, overridden BOOLEAN, justification VARCHAR,
    failed_policies VARCHAR, evaluation VARCHAR);
"""


@dataclass(frozen=True)
class Approval:
    model: str
    version: str
    action: str  # "promote" or "rollback"
    actor: str
    previous_version: str | None
    overridden: bool
    justification: str
    failed_policies: list[str]
    evaluation: Evaluation | None = None


def trained_by(ctx: Context, model: str, version: str) -> str | None:
    """Who trained a version: the run's ``trained_by`` tag, else ``mlflow.user``; None if unknown."""
    v = ctx.registry.version(model, version)
    if v.tags.get("trained_by"):
        return v.tags["trained_by"]
    if not v.run_id:
        return None
    tags = ctx.registry.run(v.run_id).tags
    return tags.get("trained_by") or tags.get("mlflow.user") or None


def current_champion(ctx: Context, model: str) -> str | None:
    try:
        return ctx.registry.version_by_alias(model, CHAMPION).version
    except RegistryNotFound:
        return None


def _record(ctx: Context, approval: Approval, actor: Actor) -> None:
    ev = approval.evaluation
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("INSERT INTO approvals (ts, model, version, action, actor, role, previous_version, overridden, "
                    "justification, failed_policies, evaluation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [datetime.now(UTC).replace(tzinfo=None), approval.model, approval.version, approval.action,
                     actor.name, actor.role, approval.previous_version, approval.overridden,
                     approval.justification, json.dumps(approval.failed_policies),
                     json.dumps(ev.to_dict(), default=str) if ev else None])


def _evidence(ev: Evaluation) -> list[dict[str, Any]]:
    return [{"policy": r.name, "verdict": r.verdict, "value": r.value, "severity": r.severity,
             "threshold": r.threshold_text(), "rows": r.rows} for r in ev.results]


def approve(ctx: Context, actor: Actor, model: str, version: str, justification: str = "",
            window: str | None = None) -> Approval:
    """Promote ``version`` to champion after the policy check; an override needs ``justification``."""
    require(actor, "model.promote")
    version = str(version)
    v = ctx.registry.version(model, version)
    if CHAMPION in v.aliases:
        raise VigilError(f"version {version} of '{model}' is already the champion")
    sod = ctx.settings.separation_of_duties
    trainer = trained_by(ctx, model, version)
    if sod and trainer and trainer.strip().lower() == actor.name.strip().lower():
        raise PermissionDenied(f"separation of duties: {actor.name} trained version {version} of '{model}' and "
                               "cannot approve it; another manager must")
    ev = evaluate(ctx, model, version=version, window=window)
    save_evaluation(ctx, ev, "approval")
    failed = [r.name for r in ev.blocking_failures]
    gate_verdict = v.tags.get(GATE_TAG + "verdict")
    if gate_verdict == "fail":
        failed.append(GATE_POLICY)
    justification = (justification or "").strip()
    overridden = bool(failed)
    if failed:
        if len(justification) < MIN_JUSTIFICATION:
            gate_note = (f"; the gate against v{v.tags.get(GATE_TAG + 'champion')} failed on "
                         f"{v.tags.get(GATE_TAG + 'failed')}" if GATE_POLICY in failed else "")
            raise VigilError(f"version {version} fails blocking policies ({', '.join(failed)}{gate_note}); "
                             "promoting it anyway "
                             f"is an override and needs a written justification (at least {MIN_JUSTIFICATION} "
                             "characters)")
        require(actor, "policy.override")
    previous = current_champion(ctx, model)
    ctx.registry.set_alias(model, CHAMPION, version)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {"status": "overridden" if overridden else "approved", "approved_by": actor.name, "approved_at": when,
            "previous_champion": previous or "", "data_version": ev.data_version,
            "override": "true" if overridden else "false"}
    if overridden:
        tags["override_justification"] = justification[:4000]
        tags["overridden_policies"] = ", ".join(failed)[:4000]
    for key, value in tags.items():
        ctx.registry.set_version_tag(model, version, TAG + key, value)
    approval = Approval(model, version, "promote", actor.name, previous, overridden, justification, failed, ev)
    _record(ctx, approval, actor)
    details = {"version": version, "previous_champion": previous, "trained_by": trainer,
               "separation_of_duties": sod, "data_version": ev.data_version, "window": ev.window,
               "blocking_failures": failed, "gate_verdict": gate_verdict, "evidence": _evidence(ev)}
    if overridden:
        audit.record(ctx.store, actor, "policy.override", model,
                     {"version": version, "policies": failed, "justification": justification})
    audit.record(ctx.store, actor, "model.promote", model, {**details, "override": overridden})
    _card_note(ctx, model, version, f"{when}: promoted to champion by {actor.name}"
               + (f" OVERRIDING {', '.join(failed)}: {justification}" if overridden else
                  " (all blocking policies passed)"))
    return approval


def rollback(ctx: Context, actor: Actor, model: str, reason: str = "") -> Approval:
    """Move ``champion`` back to the version it replaced (one action; audited)."""
    require(actor, "model.rollback")
    current = current_champion(ctx, model)
    if current is None:
        raise VigilError(f"'{model}' has no champion to roll back")
    previous = ctx.registry.version(model, current).tags.get(TAG + "previous_champion") or None
    if previous is None:
        raise VigilError(f"version {current} of '{model}' was not promoted through Vigil, so there is no recorded "
                         "previous champion to roll back to; promote the version you want instead")
    ctx.registry.set_alias(model, CHAMPION, previous)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    ctx.registry.set_version_tag(model, current, TAG + "status", "rolled back")
    ctx.registry.set_version_tag(model, current, TAG + "rolled_back_by", actor.name)
    ctx.registry.set_version_tag(model, current, TAG + "rolled_back_at", when)
    approval = Approval(model, previous, "rollback", actor.name, current, False, reason.strip(), [])
    _record(ctx, approval, actor)
    audit.record(ctx.store, actor, "model.rollback", model,
                 {"from_version": current, "to_version": previous, "reason": reason.strip()})
    _card_note(ctx, model, current, f"{when}: rolled back to version {previous} by {actor.name}"
               + (f": {reason.strip()}" if reason.strip() else ""))
    return approval


def _card_note(ctx: Context, model: str, version: str, note: str) -> None:
    from dashboard.governance import cards

    # A version without a run cannot hold a card; the approval itself is recorded elsewhere.
    with contextlib.suppress(VigilError):
        cards.append_approval_note(ctx, model, version, note)


def history(ctx: Context, model: str | None = None) -> pd.DataFrame:
    """Promotions and rollbacks, newest first (overrides flagged)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        sql = ("SELECT id, ts, model, version, action, actor, role, previous_version, overridden, justification, "
               "failed_policies FROM approvals" + (" WHERE model = ?" if model else "") + " ORDER BY id DESC")
        return con.execute(sql, [model] if model else []).df()


def overrides(ctx: Context, model: str) -> dict[str, str]:
    """version -> justification for every version promoted by override (to highlight it everywhere)."""
    frame = history(ctx, model)
    if frame.empty:
        return {}
    rows = frame[(frame["action"] == "promote") & frame["overridden"]]
    return {str(r.version): str(r.justification) for r in rows.iloc[::-1].itertuples()}
