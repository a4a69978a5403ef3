"""Policies as code: ``metric comparator threshold`` with a severity and a window -> verdicts with evidence.

Every model gets the built-in policies (from its ``[thresholds]``); policies declared in the config
(``[[models.<name>.policies]]``) replace a built-in of the same name or add to them. Each verdict
carries its evidence: value, comparator, threshold, window, row count, evaluation time and the log
store's data version, so a scorecard can be traced back to the data it judged.

Phases: a policy judges a version before it serves (``pre_deployment``: the candidate gate's evidence
on the holdout and the out-of-time evaluation set, the model card), on its production traffic
(``production``: drift, live latency and errors, live accuracy, fairness of real decisions), or both.
By default (``phase="auto"``) a version is judged on what applies to it: a version without traffic on
its pre-deployment evidence, with its production policies "not applicable yet"; a version that serves
on its production data, plus its pre-deployment evidence when it went through the gate; the model as a
whole on production data. Relative windows end at the latest logged prediction of the version judged.

Verdicts: ``pass``, ``fail``, ``no data`` (nothing to measure: e.g. no labels yet; a blocking policy
fails without data unless it says ``require_data = false``, a warning only with ``require_data = true``),
``not applicable yet`` (a production policy of a version with no traffic:
never a pass, never a failure) and ``error: ...`` (the analysis could not run; a blocking policy with
an error fails closed, so a broken pipeline never passes a CI gate).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from connectors.logstore import LogStoreError
from connectors.queries.operations import time_range
from connectors.windows import Window, WindowError, parse_window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.governance import kept_measurements
from dashboard.governance.policy_metrics import EvalInput, Measurement, entry_for, providers
from dashboard.settings import ConfigError, ModelConfig, PolicySpec, compare

DEFAULT_WINDOW = "7d"
ALLOW_NO_DATA: dict[str, Any] = {"require_data": False}
PASS, FAIL, NO_DATA, NOT_APPLICABLE = "pass", "fail", "no data", "not applicable yet"
PHASE_CHOICES: tuple[str, ...] = ("auto", "pre_deployment", "production", "all")


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
    phase: str = "production"  # pre_deployment | production | both

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
    phase: str = "production"  # what was judged: pre_deployment | production | all
    phase_note: str = ""  # why (for the scorecard)

    @property
    def blocking_failures(self) -> list[PolicyResult]:
        return [r for r in self.results if r.blocking_failure]

    @property
    def warnings(self) -> list[PolicyResult]:
        return [r for r in self.results if r.severity == "warning" and r.verdict not in (PASS, NOT_APPLICABLE)]

    @property
    def not_applicable(self) -> list[PolicyResult]:
        return [r for r in self.results if r.verdict == NOT_APPLICABLE]

    @property
    def passed(self) -> bool:
        return not self.blocking_failures

    def frame(self) -> pd.DataFrame:
        rows = [{"policy": r.name, "metric": r.metric, "phase": r.phase, "value": r.value, "comparator": r.comparator,
                 "threshold": r.threshold_text(), "severity": r.severity, "verdict": r.verdict,
                 "window": r.window, "rows": r.rows, "evaluated_at": r.evaluated_at,
                 "data_version": r.data_version, "detail": r.detail, "source": r.source}
                for r in self.results]
        return pd.DataFrame(rows, columns=["policy", "metric", "phase", "value", "comparator", "threshold", "severity",
                                           "verdict", "window", "rows", "evaluated_at", "data_version", "detail",
                                           "source"])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "window": self.window, "phase": self.phase,
                "phase_note": self.phase_note, "evaluated_at": self.evaluated_at.isoformat(),
                "data_version": self.data_version,
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
            # Groups under min_group_size measure nothing yet; the evaluation set's fairness is blocking.
            PolicySpec("disparate_impact", "disparate_impact", "within",
                       (t.disparate_impact_low, t.disparate_impact_high), "blocking", params=ALLOW_NO_DATA),
            PolicySpec("statistical_parity_difference", "statistical_parity_difference", "within", pd_thr,
                       "warning"),
            PolicySpec("equal_opportunity_difference", "equal_opportunity_difference", "within", pd_thr, "warning"),
            PolicySpec("average_odds_difference", "average_odds_difference", "within", pd_thr, "warning"),
        ]
    policies += [
        PolicySpec("latency_p95_ms", "latency_p95_ms", "<=", t.latency_p95_ms, "warning"),
        PolicySpec("error_rate", "error_rate", "<=", t.error_rate, "warning"),
        PolicySpec("accuracy", "accuracy", ">=", t.min_accuracy, "blocking", params=ALLOW_NO_DATA),  # labels come late
        PolicySpec("estimated_accuracy", "estimated_accuracy", ">=", t.min_accuracy, "warning"),
        PolicySpec("label_coverage", "label_coverage", ">=", 0.01, "warning"),
        PolicySpec("ingest_rejects", "ingest_rejects", "<=", 0.0, "warning"),
    ]
    # Pre-deployment: a candidate's evidence from the gate (same rows as the champion, out-of-time rows
    # it never trained on) and its card.
    policies += [
        PolicySpec("candidate_gate", "gate_verdict", "==", 1.0, "blocking"),
        PolicySpec("training_leakage", "evaluation_overlap", "==", 0.0, "blocking"),
        PolicySpec("holdout_accuracy", "holdout_accuracy", ">=", t.min_accuracy, "blocking"),
        # No labelled production rows yet: judged on the holdout (rows that overlap training fail
        # training_leakage, so "no data" here never hides a leak).
        PolicySpec("evaluation_accuracy", "evaluation_accuracy", ">=", t.min_accuracy, "blocking",
                   params=ALLOW_NO_DATA),
    ]
    if cfg.protected:
        policies += [
            PolicySpec("evaluation_disparate_impact", "evaluation_disparate_impact", "within",
                       (t.disparate_impact_low, t.disparate_impact_high), "blocking", params=ALLOW_NO_DATA),
            PolicySpec("evaluation_statistical_parity_difference", "evaluation_statistical_parity_difference",
                       "within", pd_thr, "warning"),
        ]
    policies += [
        PolicySpec("batch_latency_ratio", "batch_latency_ratio", "<=", cfg.retrain.max_latency_ratio, "warning"),
        PolicySpec("card_completeness", "card_completeness", ">=", 0.75, "warning"),
        # Judged in every phase: an open high finding blocks a candidate and a serving version alike.
        PolicySpec("open_findings", "open_high_findings", "==", 0.0, "blocking", phase="both"),
    ]
    return policies


def requires_data(spec: PolicySpec) -> bool:
    """Whether "no data" fails the policy: yes for a blocking policy unless it says ``require_data = false``
    (a gate that cannot measure must not pass), no for a warning unless it says ``require_data = true``."""
    return bool(spec.params.get("require_data", spec.severity == "blocking"))


def phase_of(spec: PolicySpec, table: dict[str, tuple[Any, str, str, str]] | None = None) -> str:
    """The policy's phase: its own, else its metric's (an unknown metric: both, so its error shows)."""
    if spec.phase:
        return spec.phase
    entry = entry_for(table if table is not None else providers(), spec.metric)
    return entry[3] if entry else "both"


def policies_for(cfg: ModelConfig) -> list[tuple[PolicySpec, str]]:
    """Built-ins overlaid with the configured policies: (spec, "built-in" | "config")."""
    configured = {p.name: p for p in cfg.policies}
    out = [(configured.pop(p.name), "config") if p.name in configured else (p, "built-in")
           for p in builtin_policies(cfg)]
    out += [(p, "config") for p in cfg.policies if p.name in configured]
    taken = {p.name for p, _ in out}
    out += [(spec, "config") for spec in expectation_policies(cfg) if spec.name not in taken]
    return out


def expectation_policies(cfg: ModelConfig) -> list[PolicySpec]:
    """One policy per configured expectation (``expectation:<name>``), with the expectation's severity,
    window and phase: it passes when the expectation succeeds."""
    return [PolicySpec(f"expectation:{e.name}", "expectation", "==", 1.0, e.severity, window=e.window,
                       params={"expectation": e.name}, phase=e.phase) for e in cfg.expectations]


def known_metrics() -> dict[str, str]:
    return {name: desc for name, (_, desc, _, _) in providers().items()}


# ------------------------------------------------------------------------------------- evaluation

def last_log_time(ctx: Context, model: str, version: str | None = None) -> datetime | None:
    schema = ctx.schema(model)
    if not ctx.has_logs(model):
        return None
    with ctx.connect(model) as con:
        latest = time_range(con, schema, version)[1]
    return latest if latest is not None else None


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
    table = providers()
    listed = [{"name": p.name, "metric": p.metric, "comparator": p.comparator,
               "threshold": list(p.threshold) if isinstance(p.threshold, tuple) else p.threshold,
               "severity": p.severity, "window": p.window, "params": dict(p.params), "source": source,
               "phase": phase_of(p, table)}
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
    changed, previous = remember_config_digest(ctx, "policy_sets", "policies", model, digest,
                                               json.dumps(listed, default=str))
    if changed:
        audit.record(ctx.store, "vigil", "policy.change", model,
                     {"from": previous[0] if previous else None, "to": digest, "policies": listed}, role="system")
    return changed


def remember_config_digest(ctx: Context, table: str, payload_column: str, model: str, digest: str,
                           payload: str) -> tuple[bool, tuple[str, str] | None]:
    """Keep ``digest`` (and ``payload``) as the latest seen for ``model`` in ``table`` unless it already is:
    (whether it changed, the previous (digest, payload)). Config files live outside Vigil, so a change is
    noticed on the first read after it; the check and the write take one turn (an exclusive connection),
    so two readers at once record one change."""
    with ctx.store.connect(exclusive=True) as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} (model VARCHAR, digest VARCHAR, ts TIMESTAMP, "
                    f"{payload_column} VARCHAR)")
        row = con.execute(f"SELECT digest, {payload_column} FROM {table} WHERE model = ? ORDER BY ts DESC LIMIT 1",
                          [model]).fetchone()
        if row is not None and row[0] == digest:
            return False, (str(row[0]), str(row[1]))
        con.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?)",
                    [model, digest, datetime.now(UTC).replace(tzinfo=None), payload])
    return True, (str(row[0]), str(row[1])) if row is not None else None


def _known_version(ctx: Context, model: str, version: str) -> None:
    """Raise a clear error unless ``version`` is registered (callers know it has no logged traffic)."""
    from connectors.registry import RegistryNotFound

    try:
        ctx.registry.version(model, version)
    except RegistryNotFound:
        try:
            known = ", ".join(v.version for v in reversed(ctx.registry.versions(model))) or "none"
        except RegistryNotFound:
            raise VigilError(f"'{model}' is not a registered model in MLflow; register it or fix the model "
                             "name") from None
        raise VigilError(f"'{model}' has no version {version} in MLflow (its versions: {known})") from None


def _has_gate_evidence(ctx: Context, model: str, version: str) -> bool:
    """Whether the version went through the candidate gate (a version only in the logs did not)."""
    from connectors.registry import RegistryNotFound
    from dashboard.lifecycle.gate import TAG_PREFIX

    try:
        return TAG_PREFIX + "verdict" in ctx.registry.version(model, version).tags
    except RegistryNotFound:
        return False


def phases_to_judge(ctx: Context, model: str, version: str | None, phase: str,
                    anchor: datetime | None) -> tuple[bool, bool, str, str]:
    """(judge pre-deployment, judge production, the phase judged, why) for ``phase``."""
    if phase not in PHASE_CHOICES:
        raise VigilError(f"phase '{phase}' is not one of {', '.join(PHASE_CHOICES)}")
    traffic = version is None or anchor is not None
    if phase == "pre_deployment" and version is None:
        raise VigilError("pre-deployment policies judge one version: give a version (vigil check --version V)")
    if phase == "auto":
        if version is None:
            return False, True, "production", "the model as a whole is judged on its production traffic"
        evidence = _has_gate_evidence(ctx, model, version)
        if not traffic:
            return True, True, "pre_deployment", (f"version {version} has no production traffic yet: judged on its "
                                                  "pre-deployment evidence; production policies apply once it serves")
        if evidence:
            return True, True, "all", (f"version {version} serves traffic and went through the candidate gate: "
                                       "judged on both")
        return False, True, "production", (f"version {version} serves traffic and has no gate evidence: judged on "
                                           "its production traffic")
    pre, prod = phase in ("pre_deployment", "all"), phase in ("production", "all")
    note = f"{phase.replace('_', '-')} policies, as asked"
    if prod and not traffic:
        note += f"; version {version} has no production traffic yet"
    return pre, prod, phase, note


def _kept_keys(ctx: Context, model: str, version: str | None, chosen: list[tuple[PolicySpec, str]],
               table: dict[str, Any], window: str | None, anchor: datetime | None,
               data_version: str) -> dict[str, str]:
    """Policy name -> key of its kept measurement, for the policies whose metric can be kept
    (:mod:`dashboard.governance.kept_measurements`); empty when the champion cannot be read now."""
    from connectors.registry import RegistryError, RegistryNotFound

    wanted = [(s, e) for s, e in ((s, entry_for(table, s.metric)) for s, _ in chosen)
              if e is not None and kept_measurements.keepable(e[2], e[3]) and anchor is not None]
    if not wanted:
        return {}
    try:
        champion: str | None = ctx.registry.resolve(model, "champion").version
    except RegistryNotFound:
        champion = None
    except RegistryError:
        return {}
    return {s.name: kept_measurements.key_for(ctx, model, version, s, resolve_window(window or s.window, anchor, e[2]),
                                              data_version, champion) for s, e in wanted}


def _keep(ctx: Context, model: str, data_version: str, measured: dict[str, list[Measurement]]) -> None:
    """Keep new measurements; a store that is busy now only means they are measured again next time."""
    with contextlib.suppress(LogStoreError, duckdb.Error):
        kept_measurements.save(ctx, model, data_version, measured)


def evaluate(ctx: Context, model: str, version: str | None = None, window: str | None = None,
             policies: list[tuple[PolicySpec, str]] | None = None, phase: str = "auto") -> Evaluation:
    """Evaluate the policies of ``model`` (one version, or all versions' logs when None) in ``phase``
    (``auto``: what applies to the version, see the module docstring).

    ``window`` overrides each policy's own window. Each analysis runs once per distinct window. The
    configured policy set is checked against the last one seen, and a change is audited.
    """
    cfg = ctx.model(model)
    version = None if version is None else str(version)
    if policies is None:
        record_policy_set(ctx, model, policies_for(cfg))
    chosen = policies if policies is not None else policies_for(cfg)
    table = providers()
    evaluated_at = datetime.now(UTC).replace(tzinfo=None)
    data_version = ctx.data_version(model)
    anchor = last_log_time(ctx, model, version)
    if version is not None and anchor is None:
        _known_version(ctx, model, version)  # a version nobody logged nor registered is an error, not "no data"
    judge_pre, judge_prod, judged, note = phases_to_judge(ctx, model, version, phase, anchor)
    window_anchor = anchor if anchor is not None or version is None else last_log_time(ctx, model)
    memo: dict[tuple[Any, ...], Any] = {}
    results: list[PolicyResult] = []
    labels: set[str] = set()
    keys = _kept_keys(ctx, model, version, chosen, table, window, window_anchor, data_version)
    kept = kept_measurements.load(ctx, model, data_version, list(keys.values())) if keys else {}
    measured: dict[str, list[Measurement]] = {}
    for spec, source in chosen:
        entry = entry_for(table, spec.metric)
        policy_phase = phase_of(spec, table)
        if (policy_phase == "pre_deployment" and not judge_pre) or (policy_phase == "production" and not judge_prod):
            continue
        basis = entry[2] if entry else "data"
        win = resolve_window(window or spec.window, window_anchor, basis)
        common: dict[str, Any] = {"policy": spec.name, "metric": spec.metric, "comparator": spec.comparator,
                                  "threshold": spec.threshold, "severity": spec.severity,
                                  "evaluated_at": evaluated_at, "data_version": data_version, "source": source,
                                  "phase": policy_phase}
        # Wall-clock metrics (files rejected at ingestion) exist before any traffic does.
        measures_traffic = basis == "data" and (policy_phase == "production"
                                                or (entry is not None and entry[3] == "production"))
        if measures_traffic and anchor is None:
            who = f"version {version}" if version is not None else f"'{model}'"
            results.append(PolicyResult(subject=None, value=None, verdict=NOT_APPLICABLE, rows=0, window="-",
                                        detail=f"{who} has no production traffic yet; judged once it serves",
                                        **common))
            continue
        if entry is None:
            labels.add(win.label)
            results.append(PolicyResult(subject=None, value=None, verdict="error: unknown metric", rows=0,
                                        window=win.label, detail=f"known metrics: {', '.join(sorted(table))}",
                                        **common))
            continue
        ev = EvalInput(ctx, model, version, win, memo)
        key = keys.get(spec.name)
        try:
            if key is not None and key in kept:
                measurements = kept[key]
            else:
                with progress.step(f"policy {spec.name}"):
                    measurements = entry[0](ev, spec)
                if key is not None:
                    measured[key] = measurements
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            labels.add(win.label)
            results.append(PolicyResult(subject=None, value=None, verdict=f"error: {message[:200]}", rows=0,
                                        window=win.label, detail=f"{type(exc).__name__}: {message[:500]}",
                                        **common))
            continue
        require_data = requires_data(spec)
        for m in measurements:
            detail = m.detail
            if m.value is None:
                verdict = FAIL if require_data else NO_DATA
                if require_data:
                    detail = (f"no data, and a blocking policy needs data (set require_data = false to allow it): "
                              f"{m.detail}")
            else:
                try:
                    verdict = PASS if compare(m.value, spec.comparator, spec.threshold) else FAIL
                except ConfigError as exc:
                    verdict = f"error: {exc}"
            labels.add(m.window or win.label)
            results.append(PolicyResult(subject=m.subject, value=m.value, verdict=verdict, rows=m.rows,
                                        window=m.window or win.label, detail=detail, **common))
    _keep(ctx, model, data_version, measured)
    window_label = ", ".join(sorted(labels)) or "-"
    return Evaluation(model=model, version=version, window=window_label, evaluated_at=evaluated_at,
                      data_version=data_version, results=results, phase=judged, phase_note=note)


# --------------------------------------------------------------------------------------- history

_HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS policy_results (
    evaluated_at TIMESTAMP, model VARCHAR, version VARCHAR, policy VARCHAR, metric VARCHAR, value DOUBLE,
    comparator VARCHAR, threshold VARCHAR, severity VARCHAR, verdict VARCHAR, "window" VARCHAR, rows BIGINT,
    data_version VARCHAR, detail VARCHAR, source VARCHAR, trigger VARCHAR);
ALTER TABLE policy_results ADD COLUMN IF NOT EXISTS phase VARCHAR;
"""
_HISTORY_COLUMNS = ("evaluated_at", "model", "version", "policy", "metric", "value", "comparator", "threshold",
                    "severity", "verdict", "window", "rows", "data_version", "detail", "source", "trigger", "phase")


def save_evaluation(ctx: Context, ev: Evaluation, trigger: str) -> bool:
    """Keep an evaluation for the scorecard's history; skipped when the same model, version, window and
    data version were already kept (re-running on unchanged data adds nothing). Returns True if kept."""
    version = ev.version or "all"
    with ctx.store.connect() as con:
        con.execute(_HISTORY_DDL)
        seen = con.execute('SELECT count(*) FROM policy_results WHERE model = ? AND version = ? AND "window" = ? '
                           "AND data_version = ? AND policy IN (SELECT unnest(?))",
                           [ev.model, version, ev.window, ev.data_version, [r.name for r in ev.results]]).fetchone()
        if seen and seen[0] >= len(ev.results):
            return False
        rows = [(ev.evaluated_at, ev.model, version, r.name, r.metric, r.value, r.comparator, r.threshold_text(),
                 r.severity, r.verdict, r.window, r.rows, r.data_version, r.detail, r.source, trigger, r.phase)
                for r in ev.results]
        if rows:
            columns = ", ".join(f'"{c}"' for c in _HISTORY_COLUMNS)
            con.executemany(f"INSERT INTO policy_results ({columns}) VALUES ({', '.join('?' for _ in _HISTORY_COLUMNS)})",
                            rows)
    return bool(rows)


def evaluation_history(ctx: Context, model: str, version: str | None = None) -> pd.DataFrame:
    """Kept verdicts of ``model`` (one version, or every version's own evaluations), oldest first."""
    with ctx.store.connect() as con:
        con.execute(_HISTORY_DDL)
        sql = "SELECT * FROM policy_results WHERE model = ?" + (" AND version = ?" if version else "") + \
              " ORDER BY evaluated_at, policy"
        return con.execute(sql, [model, version] if version else [model]).df()
