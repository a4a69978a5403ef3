"""Evidence kinds: each one looks up a record Vigil keeps and says whether it meets its part of a control.

Why lookups and not declarations: a control pack names kinds (``card_sections``, ``audit_chain``...),
never a yes/no, so a control is met only while the records behind it say so: the policy verdicts of
the version, its model card, its approvals, the gate's evidence, the lineage MLflow recorded, the audit
chain's verification and checkpoints, the ingestion manifest, the findings, the monitoring schedule.
Each result carries the time of the record and where to find it, and for a gap what would close it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from dashboard.context import Context
from dashboard.governance.policy import FAIL, NOT_APPLICABLE, PASS, Evaluation

MET, NOT_MET, NOT_APPLICABLE_HERE = "met", "not met", "not applicable"


@dataclass(frozen=True)
class Evidence:
    """One looked-up record and what it shows."""

    kind: str
    label: str
    status: str  # met | not met | not applicable
    summary: str
    at: datetime | None = None
    link: str | None = None
    gap: str = ""  # what would close it, when not met

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "status": self.status, "summary": self.summary,
                "at": self.at.isoformat() if self.at else None, "link": self.link, "gap": self.gap}


@dataclass
class Subject:
    """The model version evidence is looked up for, with a memo so a pack reads each record once."""

    ctx: Context
    model: str
    version: str
    evaluation: Evaluation | None
    memo: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = fn()
        return self.memo[key]

    def link(self) -> str | None:
        from dashboard.lifecycle.models import mlflow_links

        return mlflow_links(self.ctx.settings.mlflow_ui_url, self.model, self.version).get("model version")

    def card(self) -> Any:
        from dashboard.governance import cards

        return self.cached("card", lambda: cards.load_card(self.ctx, self.model, self.version))

    def tags(self) -> dict[str, str]:
        return dict(self.cached("version", lambda: self.ctx.registry.version(self.model, self.version)).tags)

    def gate_evidence(self) -> dict[str, Any] | None:
        from dashboard.lifecycle import gate

        found: dict[str, Any] | None = self.cached(
            "gate", lambda: gate.load_evidence(self.ctx, self.model, self.version))
        return found

    def chain(self) -> Any:
        from dashboard.audit import anchor

        return self.cached("chain", lambda: anchor.verify(self.ctx))


Lookup = Callable[[Subject, Mapping[str, Any]], Evidence]


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if pd.isna(ts):
        return None
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts).to_pydatetime()


def _result(kind: str, label: str, ok: bool, summary: str, gap: str, at: datetime | None = None,
            link: str | None = None) -> Evidence:
    return Evidence(kind, label, MET if ok else NOT_MET, summary, at, link, "" if ok else gap)


# ----------------------------------------------------------------------------------- the profile

def risk_profile(s: Subject, p: Mapping[str, Any]) -> Evidence:
    from dashboard.governance.inventory import profile

    prof = profile(s.ctx, s.model)
    missing = [k for k in ("risk_tier", "owner") if not prof.get(k)]
    shown = ", ".join(f"{k} {prof.get(k)} ({prof.sources[k]})" for k in ("risk_tier", "owner", "intended_use")
                      if prof.get(k))
    return _result("risk_profile", p.get("label", "risk tier and owner on record"), not missing,
                   shown or "no risk tier, owner or intended use recorded",
                   f"record {' and '.join(missing)} in [models.{s.model}.governance] or with `vigil inventory set`")


def findings_tracked(s: Subject, p: Mapping[str, Any]) -> Evidence:
    from dashboard.governance import findings

    found = findings.findings(s.ctx, s.model, s.version)
    blocking = [f for f in found if f.blocking]
    latest = max((f.created_at for f in found), default=None)
    if blocking:
        listed = "; ".join(f"#{f.id} {f.severity} '{f.title[:60]}' (owner {f.owner})" for f in blocking)
        return Evidence("findings_tracked", p.get("label", "findings tracked to resolution"), NOT_MET,
                        f"open high or critical findings: {listed}", latest, None,
                        "resolve them (`vigil findings resolve ID`) or mitigate and record the resolution")
    open_n = sum(1 for f in found if f.state == findings.OPEN)
    return Evidence("findings_tracked", p.get("label", "findings tracked to resolution"), MET,
                    f"{len(found)} finding(s) on version {s.version}, {open_n} open, none high or critical", latest)


# -------------------------------------------------------------------------------------- policies

def policies(s: Subject, p: Mapping[str, Any]) -> Evidence:
    names = {str(n) for n in p.get("policies", [])}
    label = str(p.get("label", "policy verdicts"))
    ev = s.evaluation
    if ev is None:
        return Evidence("policies", label, NOT_MET, "the policies were not evaluated", None, None,
                        f"run `vigil check --model {s.model} --version {s.version}`")
    hits = [r for r in ev.results if r.policy in names]
    judged = [r for r in hits if r.verdict != NOT_APPLICABLE]
    at, link = ev.evaluated_at, f"Compliance → Scorecard, data version {ev.data_version}"
    if not judged:
        why = "not applicable yet (no production traffic)" if hits else f"none judged in phase {ev.phase}"
        return Evidence("policies", label, NOT_APPLICABLE_HERE, f"{', '.join(sorted(names))}: {why}", at, link)
    failing = [r.name for r in judged if r.verdict == FAIL or r.verdict.startswith("error")]
    passing = [r.name for r in judged if r.verdict == PASS]
    without = [r.name for r in judged if r.name not in failing and r.name not in passing]
    summary = (f"pass: {', '.join(passing) or '-'}" + (f"; fail: {', '.join(failing)}" if failing else "")
               + (f"; no data: {', '.join(without)}" if without else "") + f" (window {ev.window})")
    if failing:
        return Evidence("policies", label, NOT_MET, summary, at, link,
                        f"bring {', '.join(failing)} back within threshold (see the scorecard's evidence)")
    return _result("policies", label, bool(passing), summary,
                   "no named policy had data to judge: ingest traffic and labels, or run the gate", at, link)


def production_monitored(s: Subject, p: Mapping[str, Any]) -> Evidence:
    from dashboard.governance.policy import evaluation_history, last_log_time

    label = str(p.get("label", "production policies evaluated recently"))
    max_age = _duration(str(p.get("max_age", "7d")))
    if last_log_time(s.ctx, s.model, s.version) is None:
        return Evidence("production_monitored", label, NOT_APPLICABLE_HERE,
                        f"version {s.version} has no production traffic yet")
    history = evaluation_history(s.ctx, s.model, s.version)
    if not history.empty:
        phase = history["phase"].astype(str) if "phase" in history else pd.Series("", index=history.index)
        history = history[(phase == "production") & (history["verdict"] != NOT_APPLICABLE)]
    # The controls' own evaluation is never kept, so only monitoring that happened counts here.
    gap = f"evaluate them on a schedule (or run `vigil check --model {s.model} --version {s.version}`)"
    if history.empty:
        return Evidence("production_monitored", label, NOT_MET,
                        f"production policies were never evaluated on version {s.version}'s traffic", None, None, gap)
    last = _time(history["evaluated_at"].max())
    assert last is not None
    age = datetime.now(UTC).replace(tzinfo=None) - last
    triggers = ", ".join(sorted(set(history["trigger"].astype(str))))
    return _result("production_monitored", label, age <= max_age,
                   f"last evaluated {last:%Y-%m-%d %H:%M} UTC ({_age(age)} ago; limit {p.get('max_age', '7d')}) by "
                   f"{triggers}", gap, last, "Compliance → Scorecard → History of verdicts")


def monitoring_schedule(s: Subject, p: Mapping[str, Any]) -> Evidence:
    """Met when the policies monitor is on in ``[models.M.schedule]`` *and* ``vigil serve`` has run it:
    a cron line nobody executes is not monitoring (the runs are ``vigil serve``'s ``serve_runs`` table)."""
    label = str(p.get("label", "monitoring schedule configured"))
    schedule = getattr(s.ctx.model(s.model), "schedule", None)
    cron = getattr(schedule, "policies", None)
    where = f"[models.{s.model}.schedule]"
    if not cron:
        return Evidence("monitoring_schedule", label, NOT_MET, "no monitoring schedule configured (the policies "
                        "monitor is off)", None, None,
                        f"set policies = \"*/15 * * * *\" in {where} and run `vigil serve`")
    with s.ctx.store.connect() as con:
        has_runs = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'serve_runs'"
                               ).fetchone()
        last = con.execute("SELECT max(finished) FROM serve_runs WHERE monitor = 'policies' AND model = ? AND "
                           "status = 'ok'", [s.model]).fetchone() if has_runs and has_runs[0] else None
    if not last or last[0] is None:
        return Evidence("monitoring_schedule", label, NOT_MET, f"policies scheduled ({cron}) but `vigil serve` has "
                        "not run them yet", None, None, "start `vigil serve` (make demo does) so the schedule runs")
    at = _time(last[0])
    return Evidence("monitoring_schedule", label, MET, f"policies on schedule {cron}; last scheduled run "
                    f"{at:%Y-%m-%d %H:%M} UTC by vigil serve", at, f"{where}, vigil serve runs")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$")


def _duration(text: str) -> timedelta:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a duration such as 24h, 7d or 2w")
    return timedelta(hours=float(m.group(1)) * {"h": 1, "d": 24, "w": 168}[m.group(2)])


def _age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


# ------------------------------------------------------------------------------ card and lineage

def card_sections(s: Subject, p: Mapping[str, Any]) -> Evidence:
    from dashboard.governance.cards import SECTIONS

    card = s.card()
    wanted = [str(k) for k in p.get("sections", [])]
    missing = [SECTIONS[k] for k in wanted if not card.text(k)]
    titles = ", ".join(SECTIONS[k] for k in wanted)
    label = str(p.get("label", f"model card: {titles}"))
    origin = f"revision {card.revision}" + (f" by {card.updated_by}" if card.updated_by else "")
    return _result("card_sections", label, not missing,
                   f"{titles}: " + (f"missing {', '.join(missing)}" if missing else "written") + f" ({origin})",
                   f"write the card section(s) {', '.join(missing)} (Compliance → Model card)",
                   _time(card.updated_at), s.link())


def card_complete(s: Subject, p: Mapping[str, Any]) -> Evidence:
    card = s.card()
    missing = card.missing_sections()
    return _result("card_complete", str(p.get("label", "model card complete")), not missing,
                   f"completeness {card.completeness():.0%} (revision {card.revision})"
                   + (f"; missing {', '.join(missing)}" if missing else ""),
                   f"write {', '.join(missing)} (Compliance → Model card)", _time(card.updated_at), s.link())


def lineage(s: Subject, p: Mapping[str, Any]) -> Evidence:
    lin = s.cached("lineage", lambda: s.ctx.registry.lineage(s.model, s.version))
    digest = lin.training_digest
    summary = (f"run {lin.run_id or 'none'}; training data digest {digest or 'not logged'}; code "
               f"{lin.code_version or 'not recorded'}")
    return _result("lineage", str(p.get("label", "lineage: run, training data, code")),
                   bool(lin.run_id and digest), summary,
                   "log the training data as an MLflow dataset with the run that registered the version",
                   None, s.link())


# ------------------------------------------------------------------------------- gate, approvals

def gate_passed(s: Subject, p: Mapping[str, Any]) -> Evidence:
    from dashboard.lifecycle.gate import TAG_PREFIX

    tags = s.tags()
    verdict = tags.get(TAG_PREFIX + "verdict")
    label = str(p.get("label", "candidate gate passed"))
    gap = "run the candidate gate (a retrain runs it; or Retraining → Run the gate)"
    if verdict is None:
        return Evidence("gate_passed", label, NOT_MET, f"version {s.version} has not been through the candidate gate",
                        None, s.link(), gap)
    failed = tags.get(TAG_PREFIX + "failed", "none")
    return _result("gate_passed", label, verdict == "pass",
                   f"gate verdict {verdict} against champion v{tags.get(TAG_PREFIX + 'champion', '-')}"
                   + (f"; failed: {failed}" if failed != "none" else ""),
                   "a retrain that passes the gate, or an approval with a justification", _time(
                       tags.get(TAG_PREFIX + "evaluated_at")), s.link())


def evaluation_disjoint(s: Subject, p: Mapping[str, Any]) -> Evidence:
    from dashboard.lifecycle.gate import disjointness_text

    label = str(p.get("label", "evaluation data disjoint from training data"))
    evidence = s.gate_evidence()
    if evidence is None:
        return Evidence("evaluation_disjoint", label, NOT_MET,
                        f"version {s.version} has no gate evidence, so its evaluation rows are not shown unseen",
                        None, s.link(), "run the candidate gate, which checks the evaluation rows by prediction_id")
    leaked = evidence.get("datasets", {}).get("evaluation", {}).get("overlap_candidate", "missing")
    return _result("evaluation_disjoint", label, leaked == 0, disjointness_text(evidence),
                   "retrain with an out-of-time split (the gate then judges on unseen rows)",
                   _time(evidence.get("evaluated_at")), s.link())


def approval_recorded(s: Subject, p: Mapping[str, Any]) -> Evidence:
    from dashboard.governance import approvals

    label = str(p.get("label", "promotion approved by a manager"))
    champion = approvals.current_champion(s.ctx, s.model)
    history = approvals.history(s.ctx, s.model)
    promoted = history[(history["version"].astype(str) == s.version) & (history["action"] == "promote")] \
        if not history.empty else history
    if champion != s.version:
        return Evidence("approval_recorded", label, NOT_APPLICABLE_HERE,
                        f"version {s.version} is not the champion; promoting it needs a manager's approval")
    if promoted.empty:
        return Evidence("approval_recorded", label, NOT_MET,
                        f"version {s.version} became champion without an approval recorded in Vigil", None,
                        s.link(), "promote the champion through Compliance → Approvals (a manager, with a note)")
    row = promoted.iloc[0]
    how = f"override: {str(row['justification'])[:120]}" if bool(row["overridden"]) else "every blocking policy passed"
    return Evidence("approval_recorded", label, MET, f"promoted by {row['actor']} ({how})", _time(row["ts"]),
                    "Compliance → Approvals")


def separation_of_duties(s: Subject, p: Mapping[str, Any]) -> Evidence:
    on = s.ctx.settings.separation_of_duties
    return _result("separation_of_duties", str(p.get("label", "separation of duties")), on,
                   "a manager may not approve a version they trained" if on else
                   "separation of duties is off: a manager may approve their own version",
                   "set separation_of_duties = true in [vigil]", None, "[vigil] separation_of_duties")


# ------------------------------------------------------------------------------ records, audit

def audit_chain(s: Subject, p: Mapping[str, Any]) -> Evidence:
    result = s.chain()
    return _result("audit_chain", str(p.get("label", "audit chain verifies")), result.ok,
                   result.message,
                   "investigate with `vigil audit verify`; the chain must verify",
                   None, "vigil audit verify")


def audit_anchored(s: Subject, p: Mapping[str, Any]) -> Evidence:
    result = s.chain()
    cp = result.checkpoint
    ok = result.ok and result.anchored and cp is not None
    return _result("audit_anchored", str(p.get("label", "audit chain anchored by a signed checkpoint")), ok,
                   result.headline + (f" (entry #{cp.entries})" if cp is not None else ""),
                   "write a checkpoint with `vigil audit checkpoint` (and run it from cron)",
                   cp.at.astimezone(UTC).replace(tzinfo=None) if cp is not None else None, "vigil audit verify")


def ingestion_manifest(s: Subject, p: Mapping[str, Any]) -> Evidence:
    manifest = s.ctx.store.manifest(s.model)
    label = str(p.get("label", "ingestion manifest (content hash per file)"))
    if manifest.empty:
        return Evidence("ingestion_manifest", label, NOT_MET, "no production log file was ingested", None, None,
                        f"ingest the logs with `vigil ingest PATH --model {s.model}`")
    last = _time(manifest["ingested_at"].max())
    return Evidence("ingestion_manifest", label, MET,
                    f"{len(manifest)} file(s) ingested with their SHA-256, {int(manifest['rows'].sum()):,} rows",
                    last, "table ingest_manifest")


#: kind -> (lookup, what it checks, the parameters it takes besides ``label``)
KINDS: dict[str, tuple[Lookup, str, tuple[str, ...]]] = {
    "risk_profile": (risk_profile, "risk tier and owner recorded in the inventory", ()),
    "findings_tracked": (findings_tracked, "no open high or critical finding on the version", ()),
    "policies": (policies, "the named policies pass (fail: not met; no data only: not met)", ("policies",)),
    "production_monitored": (production_monitored, "production policies evaluated within max_age", ("max_age",)),
    "monitoring_schedule": (monitoring_schedule, "a [models.<name>.schedule] table is configured", ()),
    "card_sections": (card_sections, "the named model card sections are written", ("sections",)),
    "card_complete": (card_complete, "every authored model card section is written", ()),
    "lineage": (lineage, "MLflow records the run and its training data digest", ()),
    "gate_passed": (gate_passed, "the candidate gate's verdict is pass", ()),
    "evaluation_disjoint": (evaluation_disjoint, "the gate proved evaluation rows were not trained on", ()),
    "approval_recorded": (approval_recorded, "the champion was promoted through a manager's approval", ()),
    "separation_of_duties": (separation_of_duties, "approvers may not approve what they trained", ()),
    "audit_chain": (audit_chain, "the audit hash chain verifies", ()),
    "audit_anchored": (audit_anchored, "the chain is anchored by a signed checkpoint", ()),
    "ingestion_manifest": (ingestion_manifest, "ingested files are recorded with their SHA-256", ()),
}


def look_up(subject: Subject, kind: str, params: Mapping[str, Any]) -> Evidence:
    """Run one evidence lookup; a record that cannot be read is a gap that says why, never a pass."""
    from dashboard.errors import USER_ERRORS

    try:
        return KINDS[kind][0](subject, params)
    except USER_ERRORS as exc:  # RegistryNotFound among them
        return Evidence(kind, str(params.get("label", kind)), NOT_MET, f"could not be read: {exc}", None, None,
                        "fix the problem named and look again")
