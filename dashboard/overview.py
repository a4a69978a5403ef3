"""Overview: one health summary per configured model, from the log store and the MLflow registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.errors import ConnectorError
from connectors.registry import RegistryNotFound
from dashboard.context import Context


@dataclass
class ModelHealth:
    """What the Overview card of one model shows."""

    name: str
    description: str
    rows: int
    first_ts: datetime | None
    last_ts: datetime | None
    versions_logged: list[str]
    error_rate: float | None
    latency_p95_ms: float | None
    label_coverage: float | None
    last_ingest: datetime | None
    latest_version: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version
    registry_error: str | None = None
    attention: list[str] = field(default_factory=list)  # reasons this model needs attention


def model_health(ctx: Context, name: str) -> ModelHealth:
    """Summarise one model. A registry outage is reported on the card, not raised: logs still show."""
    cfg = ctx.model(name)
    s: dict[str, Any] = ctx.store.summary(ctx.schema(name))
    health = ModelHealth(
        name=name, description=cfg.description, rows=s["rows"], first_ts=s["first_ts"], last_ts=s["last_ts"],
        versions_logged=s["versions"], error_rate=s["error_rate"], latency_p95_ms=s["latency_p95_ms"],
        label_coverage=s["label_coverage"], last_ingest=s["last_ingest"])
    try:
        versions = ctx.registry.versions(name)
        if versions:
            health.latest_version = max((v.version for v in versions), key=int)
            health.aliases = {a: v.version for v in versions for a in v.aliases}
    except RegistryNotFound:
        health.attention.append(f"'{name}' is not a registered model in MLflow")
    except ConnectorError as exc:
        health.registry_error = str(exc)
    th = cfg.thresholds
    if health.rows == 0:
        health.attention.append("no prediction logs ingested yet")
    if health.error_rate is not None and health.error_rate > th.error_rate:
        health.attention.append(f"error rate {health.error_rate:.2%} above {th.error_rate:.2%}")
    if health.latency_p95_ms is not None and health.latency_p95_ms > th.latency_p95_ms:
        health.attention.append(f"latency p95 {health.latency_p95_ms:.0f} ms above {th.latency_p95_ms:.0f} ms")
    if health.latest_version and "champion" not in health.aliases:
        health.attention.append("no champion version in the registry")
    return health


def all_model_health(ctx: Context) -> list[ModelHealth]:
    return [model_health(ctx, name) for name in sorted(ctx.settings.models)]
