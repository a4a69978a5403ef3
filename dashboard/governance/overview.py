"""Overview: one health summary per configured model, from the log store and the MLflow registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.errors import ConnectorError
from connectors.registry import RegistryNotFound
from dashboard.context import Context
from dashboard.governance.policy import Evaluation, PolicyResult, evaluate, save_evaluation

#: At most this many of the most recent logged versions are judged on the Overview.
MAX_VERSIONS_JUDGED = 3


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


@dataclass(frozen=True)
class PolicyLine:
    """One verdict as the Overview shows it: enough to see why without opening another page."""

    name: str
    metric: str
    verdict: str
    value: float | None
    comparator: str
    threshold: str
    window: str
    detail: str
    phase: str

    @classmethod
    def of(cls, r: PolicyResult) -> PolicyLine:
        return cls(r.name, r.metric, r.verdict, r.value, r.comparator, r.threshold_text(), r.window, r.detail,
                   r.phase)


@dataclass(frozen=True)
class PolicyStatus:
    """The policy verdicts of one logged version, as the Overview card lists them."""

    version: str
    passed: bool
    failures: tuple[PolicyLine, ...]
    warning_lines: tuple[PolicyLine, ...]
    window: str
    evaluated_at: datetime
    phase: str = "production"

    @property
    def blocking_failures(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.failures)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.warning_lines)

    @classmethod
    def of(cls, ev: Evaluation) -> PolicyStatus:
        return cls(version=ev.version or "all", passed=ev.passed,
                   failures=tuple(PolicyLine.of(r) for r in ev.blocking_failures),
                   warning_lines=tuple(PolicyLine.of(r) for r in ev.warnings), window=ev.window,
                   evaluated_at=ev.evaluated_at, phase=ev.phase)


def model_health(ctx: Context, name: str) -> ModelHealth:
    """Summarise one model. A registry outage is reported on the card, not raised: logs still show."""
    cfg = ctx.model(name)
    s: dict[str, Any] = ctx.summary(name)
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
    # The limits the Operations page judges against (a declared policy wins over the threshold).
    from dashboard.monitoring.operations import error_objective, latency_objective

    errors, latency = error_objective(cfg), latency_objective(cfg)
    if health.rows == 0:
        health.attention.append("no prediction logs ingested yet")
    if errors.exceeded(health.error_rate):
        health.attention.append(f"error rate {health.error_rate:.2%} above {errors.threshold:.2%} "
                                f"({errors.source})")
    if latency.exceeded(health.latency_p95_ms):
        health.attention.append(f"latency p95 {health.latency_p95_ms:.0f} ms above {latency.threshold:.0f} ms "
                                f"({latency.source})")
    if health.latest_version and "champion" not in health.aliases:
        health.attention.append("no champion version in the registry")
    return health


def versions_to_judge(health: ModelHealth) -> list[str]:
    """The versions whose policies the Overview evaluates: the champion and the most recent logged ones.

    A version that serves traffic and fails a blocking policy needs attention even when it is not the
    champion (a canary, a rollback left running)."""
    logged = sorted(health.versions_logged, reverse=True,
                    key=lambda v: (str(v).isdigit(), int(v) if str(v).isdigit() else 0, str(v)))
    chosen = logged[:MAX_VERSIONS_JUDGED]
    champion = health.aliases.get("champion")
    if champion in health.versions_logged and champion not in chosen:
        chosen = [champion, *chosen[:MAX_VERSIONS_JUDGED - 1]]
    return chosen


def policy_status(ctx: Context, model: str, version: str) -> PolicyStatus:
    """Evaluate every policy of one version of ``model`` over its policy windows (ending at its last log)
    and keep the verdicts in the scorecard's history, as the Compliance page and ``vigil check`` do."""
    ev = evaluate(ctx, model, version=version)
    save_evaluation(ctx, ev, "overview")
    return PolicyStatus.of(ev)


def all_model_health(ctx: Context) -> list[ModelHealth]:
    return [model_health(ctx, name) for name in sorted(ctx.settings.models)]
