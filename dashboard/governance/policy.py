"""Policies as code: ``metric comparator threshold`` with a severity and a window -> verdicts with evidence.

Every model gets the built-in policies (from its ``[thresholds]``); policies declared in the config
(``[[models.<name>.policies]]``) replace a built-in of the same name or add to them. Each verdict
carries its evidence: value, comparator, threshold, window, row count, evaluation time and the log
store's data version, so a scorecard can be traced back to the data it judged.

Verdicts: ``pass``, ``fail``, ``no data`` (nothing to measure: e.g. no labels yet; fails only with
``require_data = true``) and ``error: ...`` (the analysis could not run; a blocking policy with an
error fails closed, so a broken pipeline never passes a CI gate).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from connectors.windows import Window, WindowError, parse_window
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.governance.policy_metrics import EvalInput, providers
from dashboard.settings import ConfigError, ModelConfig, PolicySpec, compare

DEFAULT_WINDOW = "7d"
PASS, FAIL, NO_DATA = "pass", "fail", "no data"


@dataclass(frozen=True)
class PolicyResult:
    """One verdict and its evidence."""

    policy: str
    metric: str
    subject: str | None
    value: float | None
    comparator: str
    threshold: float | tuple[float, float]
    severity: str
    verdict: str
    window: str
    rows: int
    evaluated_at: datetime
    data_version: str
    detail: str = ""
    source: str = "built-in"  # or "config"

    @property
    def blocking_failure(self) -> bool:
        return self.severity == "blocking" and (self.verdict == FAIL or self.verdict.startswith("error"))

    @property
    def name(self) -> str:
        return f"{self.policy}[{self.subject}]" if self.subject else self.policy

    def threshold_text(self) -> str:
        if isinstance(self.threshold, tuple):
            return f"[{self.threshold[0]:g}, {self.threshold[1]:g}]"
        return f"{self.threshold:g}"


@dataclass(frozen=True)
class Evaluation:
    """All verdicts of one model (and version) at one time."""

    model: str
    version: str | None
    window: str
    evaluated_at: datetime
    data_version: str
    results: list[PolicyResult] = field(default_factory=list)

    @property
    def blocking_failures(self) -> list[PolicyResult]:
        return [r for r in self.results if r.blocking_failure]

    @property
    def warnings(self) -> list[PolicyResult]:
        return [r for r in self.results if r.severity == "warning" and r.verdict != PASS]

    @property
    def passed(self) -> bool:
        return not self.blocking_failures

    def frame(self) -> pd.DataFrame:
        rows = [{"policy": r.name, "metric": r.metric, "value": r.value, "comparator": r.comparator,
                 "threshold": r.threshold_text(), "severity": r.severity, "verdict": r.verdict,
                 "window": r.window, "rows": r.rows, "evaluated_at": r.evaluated_at,
                 "data_version": r.data_version, "detail": r.detail, "source": r.source}
                for r in self.results]
        return pd.DataFrame(rows, columns=["policy", "metric", "value", "comparator", "threshold", "severity",
                                           "verdict", "window", "rows", "evaluated_at", "data_version", "detail",
                                           "source"])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "window": self.window,
                "evaluated_at": self.evaluated_at.isoformat(), "data_version": self.data_version,
                "passed": self.passed, "blocking_failures": [r.name for r in self.blocking_failures],
                "results": [{**asdict(r), "name": r.name, "evaluated_at": r.evaluated_at.isoformat(),
                             "threshold": list(r.threshold) if isinstance(r.threshold, tuple) else r.threshold}
                            for r in self.results]}


# ------------------------------------------------------------------------------------ policy sets

def builtin_policies(cfg: ModelConfig) -> list[PolicySpec]:
    """The policies every model gets, from its thresholds (a config policy of the same name replaces one)."""
    t = cfg.thresholds
    pd_thr = (-t.parity_difference, t.parity_difference)
    policies = [
        PolicySpec("drift_share", "drift_share", "<", t.drift_share, "blocking"),
        PolicySpec("feature_drift", "feature_drift", "==", 0.0, "warning"),
    ]
    if cfg.protected:
        policies += [
            PolicySpec("disparate_impact", "disparate_impact", "within",
                       (t.disparate_impact_low, t.disparate_impact_high), "blocking"),
            PolicySpec("statistical_parity_difference", "statistical_parity_difference", "within", pd_thr,
                       "warning"),
            PolicySpec("equal_opportunity_difference", "equal_opportunity_difference", "within", pd_thr, "warning"),
            PolicySpec("average_odds_difference", "average_odds_difference", "within", pd_thr, "warning"),
        ]
    policies += [
        PolicySpec("latency_p95_ms", "latency_p95_ms", "<=", t.latency_p95_ms, "warning"),
        PolicySpec("error_rate", "error_rate", "<=", t.error_rate, "warning"),
        PolicySpec("accuracy", "accuracy", ">=", t.min_accuracy, "blocking"),
        PolicySpec("estimated_accuracy", "estimated_accuracy", ">=", t.min_accuracy, "warning"),
        PolicySpec("label_coverage", "label_coverage", ">=", 0.01, "warning"),
        PolicySpec("card_completeness", "card_completeness", ">=", 0.75, "warning"),
        PolicySpec("ingest_rejects", "ingest_rejects", "<=", 0.0, "warning"),
    ]
    return policies


def policies_for(cfg: ModelConfig) -> list[tuple[PolicySpec, str]]:
    """Built-ins overlaid with the configured policies: (spec, "built-in" | "config")."""
    configured = {p.name: p for p in cfg.policies}
    out = [(configured.pop(p.name), "config") if p.name in configured else (p, "built-in")
           for p in builtin_policies(cfg)]
    out += [(p, "config") for p in cfg.policies if p.name in configured]
    return out


def known_metrics() -> dict[str, str]:
    return {name: desc for name, (_, desc, _) in providers().items()}


# ------------------------------------------------------------------------------------- evaluation

def last_log_time(ctx: Context, model: str, version: str | None = None) -> datetime | None:
    schema = ctx.schema(model)
    if not ctx.store.has_model_table(schema):
        return None
    sql = f"SELECT max(ts) FROM {schema.table}" + (" WHERE model_version = ?" if version else "")
    with ctx.store.connect() as con:
        row = con.execute(sql, [version] if version else []).fetchone()
    return row[0] if row and row[0] is not None else None


def resolve_window(text: str | None, anchor: datetime | None, basis: str = "data") -> Window:
    """A relative window (``7d``) ends at the latest logged prediction (``basis="data"``) so a check
    judges the most recent data there is; ``FROM..TO`` is taken as written."""
    value = text or DEFAULT_WINDOW
    now = datetime.now(UTC).replace(tzinfo=None)
    end = anchor + timedelta(microseconds=1) if basis == "data" and anchor is not None else now
    try:
        return parse_window(value, now=end)
    except WindowError as exc:
        raise VigilError(f"policy window '{value}': {exc}") from None


def policy_set_digest(policies: list[tuple[PolicySpec, str]]) -> tuple[str, list[dict[str, Any]]]:
    """A stable SHA-256 of the effective policy set (what is judged, how, and from where)."""
    listed = [{"name": p.name, "metric": p.metric, "comparator": p.comparator,
               "threshold": list(p.threshold) if isinstance(p.threshold, tuple) else p.threshold,
               "severity": p.severity, "window": p.window, "params": dict(p.params), "source": source}
              for p, source in policies]
    text = json.dumps(listed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest(), listed


def record_policy_set(ctx: Context, model: str, policies: list[tuple[PolicySpec, str]]) -> bool:
    """Audit a change of the model's effective policies (they live in the config file, outside Vigil).

    The first evaluation after the config changed appends a ``policy.change`` entry by the system actor
    with the old and new digests and the new set; returns True when it did.
    """
    from dashboard.audit import trail as audit

    digest, listed = policy_set_digest(policies)
    with ctx.store.connect() as con:
        con.execute("CREATE TABLE IF NOT EXISTS policy_sets (model VARCHAR, digest VARCHAR, ts TIMESTAMP, "
                    "policies VARCHAR)")
        row = con.execute("SELECT digest FROM policy_sets WHERE model = ? ORDER BY ts DESC LIMIT 1",
                          [model]).fetchone()
        if row is not None and row[0] == digest:
            return False
        con.execute("INSERT INTO policy_sets VALUES (?, ?, ?, ?)",
                    [model, digest, datetime.now(UTC).replace(tzinfo=None), json.dumps(listed, default=str)])
    audit.record(ctx.store, "vigil", "policy.change", model,
                 {"from": row[0] if row else None, "to": digest, "policies": listed}, role="system")
    return True


def evaluate(ctx: Context, model: str, version: str | None = None, window: str | None = None,
             policies: list[tuple[PolicySpec, str]] | None = None) -> Evaluation:
    """Evaluate every policy of ``model`` (one version, or all versions' logs when None).

    ``window`` overrides each policy's own window. Each analysis runs once per distinct window. The
    configured policy set is checked against the last one seen, and a change is audited.
    """
    cfg = ctx.model(model)
    if policies is None:
        record_policy_set(ctx, model, policies_for(cfg))
    chosen = policies if policies is not None else policies_for(cfg)
    table = providers()
    evaluated_at = datetime.now(UTC).replace(tzinfo=None)
    data_version = ctx.store.data_version(model)
    anchor = last_log_time(ctx, model, version)
    memo: dict[tuple[Any, ...], Any] = {}
    results: list[PolicyResult] = []
    labels: set[str] = set()
    for spec, source in chosen:
        entry = table.get(spec.metric)
        basis = entry[2] if entry else "data"
        win = resolve_window(window or spec.window, anchor, basis)
        labels.add(win.label)
        common: dict[str, Any] = {"policy": spec.name, "metric": spec.metric, "comparator": spec.comparator,
                  "threshold": spec.threshold, "severity": spec.severity, "window": win.label,
                  "evaluated_at": evaluated_at, "data_version": data_version, "source": source}
        if entry is None:
            results.append(PolicyResult(subject=None, value=None, verdict="error: unknown metric", rows=0,
                                        detail=f"known metrics: {', '.join(sorted(table))}", **common))
            continue
        ev = EvalInput(ctx, model, version, win, memo)
        try:
            measurements = entry[0](ev, spec)
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            results.append(PolicyResult(subject=None, value=None, verdict=f"error: {message[:200]}", rows=0,
                                        detail=type(exc).__name__, **common))
            continue
        require_data = bool(spec.params.get("require_data", False))
        for m in measurements:
            if m.value is None:
                verdict = FAIL if require_data else NO_DATA
            else:
                try:
                    verdict = PASS if compare(m.value, spec.comparator, spec.threshold) else FAIL
                except ConfigError as exc:
                    verdict = f"error: {exc}"
            results.append(PolicyResult(subject=m.subject, value=m.value, verdict=verdict, rows=m.rows,
                                        detail=m.detail, **common))
    window_label = ", ".join(sorted(labels))
    return Evaluation(model=model, version=version, window=window_label, evaluated_at=evaluated_at,
                      data_version=data_version, results=results)


# --------------------------------------------------------------------------------------- history

_HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS policy_results (
    evaluated_at TIMESTAMP, model VARCHAR, version VARCHAR, policy VARCHAR, metric VARCHAR, value DOUBLE,
    comparator VARCHAR, threshold VARCHAR, severity VARCHAR, verdict VARCHAR, "window" VARCHAR, rows BIGINT,
    data_version VARCHAR, detail VARCHAR, source VARCHAR, trigger VARCHAR);
"""


def save_evaluation(ctx: Context, ev: Evaluation, trigger: str) -> bool:
    """Keep an evaluation for the scorecard's history; skipped when the same model, version, window and
    data version were already kept (re-running on unchanged data adds nothing). Returns True if kept."""
    version = ev.version or "all"
    with ctx.store.connect() as con:
        con.execute(_HISTORY_DDL)
        seen = con.execute('SELECT count(*) FROM policy_results WHERE model = ? AND version = ? AND "window" = ? '
                           "AND data_version = ?", [ev.model, version, ev.window, ev.data_version]).fetchone()
        if seen and seen[0]:
            return False
        rows = [(ev.evaluated_at, ev.model, version, r.name, r.metric, r.value, r.comparator, r.threshold_text(),
                 r.severity, r.verdict, r.window, r.rows, r.data_version, r.detail, r.source, trigger)
                for r in ev.results]
        if rows:
            con.executemany("INSERT INTO policy_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return bool(rows)


def evaluation_history(ctx: Context, model: str, version: str | None = None) -> pd.DataFrame:
    """Kept verdicts of ``model`` (one version, or every version's own evaluations), oldest first."""
    with ctx.store.connect() as con:
        con.execute(_HISTORY_DDL)
        sql = "SELECT * FROM policy_results WHERE model = ?" + (" AND version = ?" if version else "") + \
              " ORDER BY evaluated_at, policy"
        return con.execute(sql, [model, version] if version else [model]).df()
