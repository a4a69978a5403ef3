"""The model inventory: every model with its risk tier, owner, intended use, lifecycle state and standing.

Why: obligations follow the risk tier (the EU AI Act's controls apply to high-risk systems), so the
tier, and who answers for the model, must be on record. A model's profile comes from
``[models.<name>.governance]`` in the config (reviewed with the code) and, for keys the config leaves
out, from tags ``vigil.governance.<key>`` on the registered model in MLflow (``vigil inventory set``,
role-checked and audited). The config wins: a key it sets cannot be changed from Vigil. A changed
config profile is audited like a changed policy set (the first read after the change records it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from connectors.errors import ConnectorError
from connectors.registry import RegisteredModelInfo, RegistryNotFound
from dashboard.access.roles import Actor, require
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.governance.policy import remember_config_digest
from dashboard.settings import GOVERNANCE_KEYS, check_governance_value

TAG = "vigil.governance."
#: Audit actions that are a person reviewing the model (the inventory's "last review").
REVIEW_ACTIONS: tuple[str, ...] = ("model.promote", "model.rollback", "promotion.reject", "policy.override",
                                   "finding.", "control.", "inventory.set", "evidence.export")
UNSET = "unset"


@dataclass(frozen=True)
class Profile:
    """The governance profile of one model; ``sources`` says where each value came from."""

    model: str
    values: dict[str, str]
    sources: dict[str, str]

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    @property
    def risk_tier(self) -> str | None:
        return self.values.get("risk_tier")


@dataclass(frozen=True)
class InventoryRow:
    model: str
    profile: Profile
    configured: bool
    registered: bool
    champion: str | None
    versions: int
    open_alerts: int
    open_findings: int
    last_review: datetime | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, **{k: self.profile.get(k) for k in GOVERNANCE_KEYS},
                "sources": dict(self.profile.sources), "configured": self.configured,
                "registered": self.registered, "champion": self.champion, "versions": self.versions,
                "open_alerts": self.open_alerts, "open_findings": self.open_findings,
                "last_review": self.last_review.isoformat() if self.last_review else None, "notes": list(self.notes)}


def _registered(ctx: Context, model: str) -> RegisteredModelInfo | None:
    try:
        return ctx.registry.model_info(model)
    except RegistryNotFound:
        return None


def profile(ctx: Context, model: str, info: RegisteredModelInfo | None = None) -> Profile:
    """The model's profile: config first, then MLflow tags; a changed config profile is audited."""
    cfg = ctx.settings.models.get(model)
    configured = {k: v for k, v in ((k, getattr(cfg.governance, k)) for k in GOVERNANCE_KEYS) if v} if cfg else {}
    if cfg is not None:
        record_config_profile(ctx, model, configured)
    tags = (info or _registered(ctx, model) or _EMPTY).tags
    values, sources = dict(configured), {k: "config" for k in configured}
    for key in GOVERNANCE_KEYS:
        tagged = tags.get(TAG + key)
        if key not in values and tagged:
            values[key], sources[key] = tagged, "MLflow tag"
    return Profile(model, values, sources)


_EMPTY = RegisteredModelInfo("", "", {}, {}, None, None, None)


def record_config_profile(ctx: Context, model: str, configured: dict[str, str]) -> bool:
    """Audit a change of the config's profile of ``model`` (the file lives outside Vigil): the first read
    after the change appends ``inventory.change`` by the system actor; True when it did."""
    text = json.dumps(configured, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    changed, previous = remember_config_digest(ctx, "governance_profiles", "profile", model, digest, text)
    if changed:
        audit.record(ctx.store, "vigil", "inventory.change", model,
                     {"source": "config", "from": json.loads(previous[1]) if previous else None, "to": configured},
                     role="system")
    return changed


def set_profile(ctx: Context, actor: Actor, model: str, values: dict[str, str]) -> Profile:
    """Set profile keys as MLflow tags of the registered model (``inventory.edit``, audited). A key the
    config sets is refused: change it in vigil.toml, where it is reviewed with the code."""
    require(actor, "inventory.edit")
    unknown = sorted(set(values) - set(GOVERNANCE_KEYS))
    if unknown:
        raise VigilError(f"unknown inventory key(s) {', '.join(unknown)}; keys are {', '.join(GOVERNANCE_KEYS)}")
    if not values:
        raise VigilError(f"nothing to set: give at least one of {', '.join(GOVERNANCE_KEYS)}")
    info = _registered(ctx, model)
    if info is None:
        raise VigilError(f"'{model}' is not a registered model in MLflow; register it first")
    before = profile(ctx, model, info)
    for key, value in values.items():
        if before.sources.get(key) == "config":
            raise VigilError(f"{key} of '{model}' is set in the config ([models.{model}.governance]); change it there")
        problem = check_governance_value(key, value, ctx.settings.controls.risk_tiers)
        if problem:
            raise VigilError(f"{key}: {problem}")
    for key, value in values.items():
        ctx.registry.set_model_tag(model, TAG + key, value.strip())
    audit.record(ctx.store, actor, "inventory.set", model,
                 {"from": {k: before.get(k) for k in values}, "to": {k: v.strip() for k, v in values.items()}})
    return profile(ctx, model)


def _open_alerts(ctx: Context, model: str, version: str | None) -> int:
    """Blocking failures and warnings in the latest kept evaluation of the version (what Overview flags)."""
    from dashboard.governance.policy import evaluation_history

    history = evaluation_history(ctx, model, version or "all")
    if history.empty:
        return 0
    latest = history[history["evaluated_at"] == history["evaluated_at"].max()]
    failing = latest["verdict"].astype(str).map(lambda v: v == "fail" or v.startswith("error"))
    return int(failing.sum())


def last_review(ctx: Context, model: str) -> datetime | None:
    entries = audit.entries(ctx.store, target=model)
    if entries.empty:
        return None
    reviewed = entries[entries["action"].astype(str).map(lambda a: a.startswith(REVIEW_ACTIONS))]
    return None if reviewed.empty else pd.Timestamp(reviewed["ts"].max()).to_pydatetime()


def inventory(ctx: Context) -> list[InventoryRow]:
    """Every configured or registered model with its profile and standing, sorted by name."""
    from dashboard.governance import findings

    notes: list[str] = []
    try:
        registered = {m.name: m for m in ctx.registry.list_models()}
    except ConnectorError as exc:
        registered, notes = {}, [f"MLflow was not read: {exc}"]
    rows = []
    for name in sorted(set(ctx.settings.models) | set(registered)):
        info = registered.get(name)
        champion = info.aliases.get("champion") if info else None
        try:
            versions = len(ctx.registry.versions(name)) if info else 0
        except ConnectorError:
            versions = 0
        prof = profile(ctx, name, info)
        state = prof.get("lifecycle_state")
        if state is None:  # derived, and said so
            derived = "production" if champion else "development"
            prof = Profile(name, {**prof.values, "lifecycle_state": derived},
                           {**prof.sources, "lifecycle_state": "derived (champion alias)" if champion
                            else "derived (no champion)"})
        alerts = _open_alerts(ctx, name, champion) if name in ctx.settings.models else 0
        open_findings = len(findings.findings(ctx, name, state=findings.OPEN))
        rows.append(InventoryRow(name, prof, name in ctx.settings.models, info is not None, champion, versions,
                                 alerts, open_findings, last_review(ctx, name), tuple(notes)))
    return rows


def frame(rows: list[InventoryRow]) -> pd.DataFrame:
    cols = ["model", *GOVERNANCE_KEYS, "champion", "versions", "open_alerts", "open_findings", "last_review"]
    data = [{**{k: r.profile.get(k) or UNSET for k in GOVERNANCE_KEYS}, "model": r.model, "champion": r.champion,
             "versions": r.versions, "open_alerts": r.open_alerts, "open_findings": r.open_findings,
             "last_review": r.last_review} for r in rows]
    return pd.DataFrame(data, columns=cols)
