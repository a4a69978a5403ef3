"""The scheduled monitors of ``vigil serve``: one function per ``[models.<name>.schedule]`` key.

Each takes (context, model, now), does what the matching CLI command does (so a scheduled run and a
manual one cannot disagree), hands its findings to the alerting domain and returns a one-line summary
for the run record. Raising marks the run failed; the scheduler retries it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dashboard import alerting
from dashboard.access.roles import SERVICE
from dashboard.context import Context
from dashboard.service import registry_watch
from dashboard.service.events import LABEL_SYNC_LOCKS

Monitor = Callable[[Context, str, datetime], str]
RETRAIN_SUBJECT = "retrain rule"


def policies(ctx: Context, model: str, now: datetime) -> str:
    """``vigil check``'s evaluation, kept in the scorecard history with trigger "schedule", then alerts."""
    from dashboard.governance.policy import evaluate, save_evaluation

    ev = evaluate(ctx, model)
    save_evaluation(ctx, ev, "schedule")
    alerting.observe_evaluation(ctx, ev, now)
    failed = [r.name for r in ev.blocking_failures]
    return f"{len(ev.results)} policies, " + (f"blocking failures: {', '.join(failed)}" if failed else "passed")


def retrain(ctx: Context, model: str, now: datetime) -> str:
    """``vigil retrain --if-needed``: the rule's decision is recorded, a retrain starts when it fires, and
    a fired rule is an alert until the rule no longer fires."""
    from dashboard.lifecycle.retrain_rules import retrain_if_needed

    decision, job = retrain_if_needed(ctx, SERVICE, model)
    failing = []
    if decision.retrain:
        started = f"; retrain job {job.id} started" if job is not None else ""
        failing.append(alerting.Signal(
            model, None, "retrain_rule", RETRAIN_SUBJECT, "warning",
            f"the retrain rule of {model} fires: {'; '.join(decision.reasons)}{started}",
            {"reasons": decision.reasons, "window": decision.window, "job_id": job.id if job else None},
            "6_retraining.py"))
    alerting.observe(ctx, model, "retrain_rule", failing, [RETRAIN_SUBJECT], now)
    return (f"rule fires ({'; '.join(decision.reasons)}); job {job.id if job else '-'}" if decision.retrain
            else "rule does not fire")


def sync_labels(ctx: Context, model: str, now: datetime) -> str:
    """``vigil sync-labels`` (catches webhook events that never arrived), then makes sure the project's
    webhook is registered (a project created since the start gets one)."""
    from dashboard.learning.annotation import client_for, project_id
    from dashboard.learning.annotation import sync_labels as sync
    from dashboard.service import registration

    if project_id(ctx, model) is None:
        return "nothing sent to Label Studio yet"
    client = client_for(ctx)
    with LABEL_SYNC_LOCKS[model]:
        report = sync(ctx, SERVICE, model, client)
    registration.label_studio(ctx, model, client)
    return report.line()


def aliases(ctx: Context, model: str, now: datetime) -> str:
    """Poll the registry's aliases (the fallback where registry webhooks are unavailable)."""
    changes = registry_watch.poll(ctx, model, now)
    external = [c for c in changes if c.external]
    return f"{len(changes)} alias change(s), {len(external)} outside Vigil"


MONITORS: dict[str, Monitor] = {"policies": policies, "retrain": retrain, "sync_labels": sync_labels,
                                "aliases": aliases}
