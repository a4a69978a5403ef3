"""Approvals: a manager promotes a candidate that passes every blocking policy; overrides and rollbacks.

Why here and not in the UI: the rules hold however the action is triggered (page, CLI, script).
- Only ``model.promote`` roles (managers) approve; a failing blocking policy can be overridden only with
  a written justification (``policy.override``), and the override stays visible: a version tag, a row in
  the ``approvals`` table and the audit trail.
- Separation of duties: the approver must not be the person who trained the version: the Vigil user who
  requested the retrain (version tag ``vigil.trained_by``), else for a version registered outside Vigil
  the run's ``trained_by`` tag or ``mlflow.user``. On by default; ``separation_of_duties = false`` in
  ``[vigil]`` (or ``VIGIL_SEPARATION_OF_DUTIES=off``) turns it off for single-person setups (and says so
  in the audit entry).
- The policies are judged in the phase that applies to the version (:func:`dashboard.governance.policy.evaluate`):
  a candidate without traffic on its pre-deployment evidence (the gate, ``candidate_gate`` among them),
  a version serving traffic on its production data as well.
- Approving closes the version's open promotion request (:mod:`dashboard.governance.promotion`) with the
  decision note; promotion moves MLflow's ``champion`` alias and remembers the previous champion, so
  rollback is one call, with a reason.
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
from dashboard.governance import promotion
from dashboard.governance.policy import Evaluation, evaluate, save_evaluation
from dashboard.lifecycle.gate import TAG_PREFIX as GATE_TAG
from dashboard.lifecycle.jobs import TRAINED_BY_TAG

CHAMPION = "champion"
TAG = "vigil.approval."
MIN_JUSTIFICATION = 20  # characters: a sentence, not "ok"
MIN_ROLLBACK_REASON = 10

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


@dataclass(frozen=True)
class Trainer:
    """Who trained a version, and where Vigil learned it (shown next to the name)."""

    name: str | None
    source: str

    @property
    def from_vigil(self) -> bool:
        return self.source.startswith("Vigil")


def trainer(ctx: Context, model: str, version: str) -> Trainer:
    """The Vigil user who requested the job that trained ``version``; for a version registered outside
    Vigil, the run's ``trained_by`` tag, else the run's ``mlflow.user`` (the OS account that trained)."""
    v = ctx.registry.version(model, version)
    if v.tags.get(TRAINED_BY_TAG):
        return Trainer(v.tags[TRAINED_BY_TAG], f"Vigil: requested retrain job {v.tags.get('vigil.job_id', '?')}")
    if not v.run_id:
        return Trainer(None, "unknown: the version has no run")
    tags = ctx.registry.run(v.run_id).tags
    if tags.get("trained_by"):
        return Trainer(tags["trained_by"], "the run's trained_by tag (registered outside Vigil)")
    if tags.get("mlflow.user"):
        return Trainer(tags["mlflow.user"], "the run's mlflow.user (registered outside Vigil: the OS account "
                                            "that ran the training)")
    return Trainer(None, "unknown: the run records no user")


def trained_by(ctx: Context, model: str, version: str) -> str | None:
    return trainer(ctx, model, version).name


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
            window: str | None = None, note: str = "") -> Approval:
    """Promote ``version`` to champion after the policy check; an override needs ``justification``.
    ``note`` is the decision note kept with the closed promotion request."""
    require(actor, "model.promote")
    version = str(version)
    v = ctx.registry.version(model, version)
    if CHAMPION in v.aliases:
        raise VigilError(f"version {version} of '{model}' is already the champion")
    sod = ctx.settings.separation_of_duties
    who = trainer(ctx, model, version)
    if sod and who.name and who.name.strip().lower() == actor.name.strip().lower():
        raise PermissionDenied(f"separation of duties: {actor.name} trained version {version} of '{model}' "
                               f"({who.source}) and cannot approve it; another manager must")
    ev = evaluate(ctx, model, version=version, window=window)
    save_evaluation(ctx, ev, "approval")
    failed = [r.name for r in ev.blocking_failures]
    gate_verdict = v.tags.get(GATE_TAG + "verdict")
    justification = (justification or "").strip()
    overridden = bool(failed)
    if failed:
        if len(justification) < MIN_JUSTIFICATION:
            gate_note = (f"; the gate against v{v.tags.get(GATE_TAG + 'champion')} failed on "
                         f"{v.tags.get(GATE_TAG + 'failed')}" if gate_verdict == "fail" else "")
            raise VigilError(f"version {version} fails blocking policies ({', '.join(failed)}{gate_note}; "
                             f"{ev.phase_note}); promoting it anyway "
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
    decision = (note or "").strip() or justification or "promoted: every blocking policy passed"
    request = promotion.close(ctx, actor, model, version, "approved", decision)
    details = {"version": version, "previous_champion": previous, "trained_by": who.name,
               "trained_by_source": who.source, "separation_of_duties": sod, "data_version": ev.data_version,
               "window": ev.window, "phase": ev.phase, "blocking_failures": failed, "gate_verdict": gate_verdict,
               "request_id": request.id if request else None, "note": decision, "evidence": _evidence(ev)}
    if overridden:
        audit.record(ctx.store, actor, "policy.override", model,
                     {"version": version, "policies": failed, "justification": justification})
    audit.record(ctx.store, actor, "model.promote", model, {**details, "override": overridden})
    _card_note(ctx, actor, model, version, f"{when}: promoted to champion by {actor.name}"
               + (f" OVERRIDING {', '.join(failed)}: {justification}" if overridden else
                  " (all blocking policies passed)"))
    return approval


def rollback(ctx: Context, actor: Actor, model: str, reason: str) -> Approval:
    """Move ``champion`` back to the version it replaced (one action, with its reason; audited)."""
    require(actor, "model.rollback")
    if len((reason or "").strip()) < MIN_ROLLBACK_REASON:
        raise VigilError(f"say why you roll back (at least {MIN_ROLLBACK_REASON} characters); the reason is kept in "
                         "the approval history and the audit trail")
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
    _card_note(ctx, actor, model, current, f"{when}: rolled back to version {previous} by {actor.name}"
               + (f": {reason.strip()}" if reason.strip() else ""))
    return approval


def _card_note(ctx: Context, actor: Actor, model: str, version: str, note: str) -> None:
    from dashboard.governance import cards

    # A version without a run cannot hold a card; the approval itself is recorded elsewhere.
    with contextlib.suppress(VigilError):
        cards.append_approval_note(ctx, actor, model, version, note)


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
