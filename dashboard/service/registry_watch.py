"""What ``vigil serve`` does about registry changes, whether a webhook or the alias poller saw them.

* A **new version** of a configured model is gated (:func:`dashboard.lifecycle.gate.run_gate_as`), unless a
  Vigil retrain job is active for the model (the job gates its own version) or the gate already judged it.
* An **alias change** is compared with the aliases last seen (``serve_state``), so the webhook and the
  poller report one change once. A change Vigil made is recognised: ``champion`` moved to the version of
  the model's latest approval (promotion or rollback) recorded after the previous change, ``challenger``
  set on a version a Vigil job trained. Anything else is an **external change**: an audit entry
  ``registry.external_change`` and an ``external_change`` alert (a person resolves it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.registry import RegistryNotFound
from dashboard import alerting
from dashboard.access.roles import SERVICE
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.lifecycle import jobs
from dashboard.lifecycle.gate import load_evidence, run_gate_as
from dashboard.service import state
from dashboard.service.clock import aware_utc, naive_utc

CHAMPION = "champion"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AliasChange:
    """One alias change as Vigil judged it."""

    model: str
    alias: str
    previous: str | None
    version: str | None  # None: the alias was deleted
    external: bool
    source: str  # "webhook" or "poll"
    why: str


def _key(model: str) -> str:
    return f"aliases:{model}"


def _seen(ctx: Context, model: str) -> dict[str, dict[str, Any]] | None:
    value = state.get(ctx, _key(model))
    return None if value is None else dict(value)


def baseline(ctx: Context, model: str, now: datetime) -> bool:
    """Remember the registry's aliases of ``model`` if nothing is remembered yet (the first start judges
    no change it did not see happen). Returns whether it wrote the baseline."""
    if _seen(ctx, model) is not None:
        return False
    current = {a: {"version": v, "changed_at": None} for a, v in ctx.registry.aliases(model).items()}
    return state.update_if(ctx, _key(model), None, current, now)


def poll(ctx: Context, model: str, now: datetime) -> list[AliasChange]:
    """Compare the registry's aliases with those last seen; judge every difference. A model not registered
    yet has nothing to watch (its first aliases become the baseline)."""
    try:
        if baseline(ctx, model, now):
            return []
        current = ctx.registry.aliases(model)
    except RegistryNotFound:
        return []
    seen = _seen(ctx, model) or {}
    changed = sorted(a for a in set(seen) | set(current) if (seen.get(a) or {}).get("version") != current.get(a))
    return [c for a in changed if (c := note_alias(ctx, model, a, current.get(a), "poll", now)) is not None]


def note_alias(ctx: Context, model: str, alias: str, version: str | None, source: str,
               now: datetime) -> AliasChange | None:
    """Judge that ``alias`` of ``model`` now names ``version`` (None: deleted). None when this is what was
    last seen (already judged, by the webhook or the poller)."""
    if model not in ctx.settings.models:
        return None
    version = None if version is None else str(version)
    for _ in range(5):
        seen = _seen(ctx, model)
        before = seen or {}
        entry = before.get(alias) or {}
        if entry.get("version") == version and seen is not None:
            return None
        external, why = _judge(ctx, model, alias, version, entry.get("changed_at"))
        after = {k: v for k, v in before.items() if k != alias}
        if version is not None:
            after[alias] = {"version": version, "changed_at": naive_utc(now).isoformat()}
        if state.update_if(ctx, _key(model), seen, after, now):
            break
    else:  # pragma: no cover - five concurrent writers in a row
        raise RuntimeError(f"the alias state of {model} kept changing under this process")
    change = AliasChange(model, alias, entry.get("version"), version, external, source, why)
    if external:
        _report(ctx, change, now)
    return change


def _judge(ctx: Context, model: str, alias: str, version: str | None, since: str | None) -> tuple[bool, str]:
    """(external?, why) for ``alias`` -> ``version``."""
    if version is None:
        return True, "Vigil never deletes an alias"
    if alias == CHAMPION:
        approval = _latest_approval(ctx, model)
        if approval is not None and approval[1] == version and (since is None or approval[0].isoformat() >= since):
            return False, f"Vigil's {approval[2]} of version {version} by {approval[3]}"
        return True, "no promotion or rollback recorded in Vigil names this version"
    if alias == jobs.CHALLENGER_ALIAS:
        tags = ctx.registry.version(model, version).tags
        if tags.get("vigil.job_id"):
            return False, f"set by Vigil retrain job {tags['vigil.job_id']}"
        return True, "the version was not trained by a Vigil retrain job"
    return True, f"Vigil does not manage the alias '{alias}'"


def _latest_approval(ctx: Context, model: str) -> tuple[datetime, str, str, str] | None:
    with ctx.store.connect() as con:
        if not con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = 'approvals'").fetchall():
            return None
        row = con.execute("SELECT ts, version, action, actor FROM approvals WHERE model = ? ORDER BY id DESC LIMIT 1",
                          [model]).fetchone()
    return None if row is None else (row[0], str(row[1]), str(row[2]), str(row[3]))


def _report(ctx: Context, change: AliasChange, now: datetime) -> None:
    what = (f"alias '{change.alias}' of {change.model} moved from version {change.previous or '(none)'} to "
            f"{change.version}" if change.version else
            f"alias '{change.alias}' of {change.model} (version {change.previous or '?'}) was deleted")
    details = {"alias": change.alias, "previous_version": change.previous, "version": change.version,
               "seen_by": change.source, "why_external": change.why, "at": aware_utc(now).isoformat()}
    trail.record(ctx.store, SERVICE, "registry.external_change", change.model, details)
    alerting.raise_event(ctx, alerting.Signal(
        change.model, change.version, "external_change", f"alias {change.alias}",
        "blocking" if change.alias == CHAMPION else "warning",
        f"{what} outside Vigil ({change.why})", details, "7_models.py"), now)


def on_version_created(ctx: Context, model: str, version: str) -> str:
    """Gate a new version of a configured model; returns what was done (for the run record)."""
    if model not in ctx.settings.models:
        return f"{model} is not a configured model: ignored"
    if any(j.active for j in jobs.list_jobs(ctx, model)):
        return f"version {version}: a Vigil retrain job of {model} is active and gates its own version"
    if load_evidence(ctx, model, str(version)) is not None:
        return f"version {version}: already gated"
    result = run_gate_as(ctx, SERVICE, model, str(version))
    return f"version {version} gated: {result.verdict}"
