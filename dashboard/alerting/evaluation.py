"""Policy evaluations as alerts: each failing verdict is a signal, each verdict reached is "checked".

Why here and not in governance: the policy module judges, it does not page anyone; the alerting domain
sits above it and reads its :class:`~dashboard.governance.policy.Evaluation` as it is.

The latency and error-rate policies are the model's SLOs, so their failures are ``slo`` alerts that
link to Operations; every other policy is a ``policy`` alert that links to Compliance. A verdict of
"no data" or "not applicable yet" measures nothing, so it neither opens nor resolves an alert.
"""

from __future__ import annotations

from datetime import datetime

from dashboard.alerting.signals import Signal
from dashboard.alerting.state import AlertChange, observe
from dashboard.context import Context
from dashboard.governance.policy import FAIL, PASS, Evaluation, PolicyResult

SLO_METRICS: frozenset[str] = frozenset({"latency_p95_ms", "error_rate"})
PAGES: dict[str, str] = {"policy": "8_compliance.py", "slo": "4_operations.py"}


def kind_of(result: PolicyResult) -> str:
    return "slo" if result.metric in SLO_METRICS else "policy"


def _failing(result: PolicyResult) -> bool:
    return result.verdict == FAIL or result.verdict.startswith("error")


def _measured(result: PolicyResult) -> bool:
    return result.verdict == PASS or _failing(result)


def signal_of(ev: Evaluation, result: PolicyResult) -> Signal:
    """The signal of one failing verdict, with the verdict's evidence."""
    kind = kind_of(result)
    value = "no value" if result.value is None else f"{result.value:.4g}"
    scope = f"{ev.model} v{ev.version}" if ev.version else ev.model
    summary = (f"{scope}: {result.severity} {kind} {result.name} {result.verdict} "
               f"({result.metric} = {value}, needs {result.comparator} {result.threshold_text()}, "
               f"window {result.window})")
    evidence = {"policy": result.name, "metric": result.metric, "value": result.value,
                "comparator": result.comparator, "threshold": result.threshold_text(), "verdict": result.verdict,
                "window": result.window, "rows": result.rows, "phase": result.phase,
                "evaluated_at": result.evaluated_at.isoformat(), "data_version": result.data_version,
                "detail": result.detail}
    return Signal(model=ev.model, version=ev.version, kind=kind, subject=result.name, severity=result.severity,
                  summary=summary, evidence=evidence, page=PAGES[kind])


def observe_evaluation(ctx: Context, evaluation: Evaluation, now: datetime) -> list[AlertChange]:
    """Map one policy evaluation (and the SLO verdicts inside it) to :func:`observe` calls."""
    changes: list[AlertChange] = []
    for kind in ("policy", "slo"):
        results = [r for r in evaluation.results if kind_of(r) == kind]
        failing = [signal_of(evaluation, r) for r in results if _failing(r)]
        checked = [r.name for r in results if _measured(r)]
        changes += observe(ctx, evaluation.model, kind, failing, checked, now, versions=[evaluation.version])
    return changes
