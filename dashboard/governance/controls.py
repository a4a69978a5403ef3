"""Control status per model version: met, partially met, not met or not applicable, with the evidence.

How a control is judged: each of its evidence kinds is looked up for the version
(:mod:`dashboard.governance.control_evidence`); all met is **met**, none met is **not met**, some is
**partially met**; evidence that cannot apply (a champion-only record of a candidate) is left out, and
a control with nothing left is not applicable. A control applies to the risk tiers it lists; a model
with no tier recorded is judged on every control (a missing tier must not hide an obligation).
Tailoring marks a control not applicable for a model with a written justification (a manager's
decision, audited, kept in ``control_tailoring``; restoring it is audited too).

The policies are evaluated afresh for the status (the phase that applies to the version) and that
evaluation is not kept in the verdict history, so "production policies evaluated recently" counts only
monitoring that actually happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dashboard.access.roles import Actor, require
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.governance import control_evidence as ce
from dashboard.governance.control_packs import Control, Pack, configured_packs, get_pack
from dashboard.governance.policy import Evaluation, evaluate

MET, PARTIAL, NOT_MET, NOT_APPLICABLE = "met", "partially met", "not met", "not applicable"
STATUSES: tuple[str, ...] = (MET, PARTIAL, NOT_MET, NOT_APPLICABLE)
MIN_JUSTIFICATION = 20

_DDL = """
CREATE TABLE IF NOT EXISTS control_tailoring (
    ts TIMESTAMP, model VARCHAR, pack VARCHAR, control VARCHAR, action VARCHAR, justification VARCHAR,
    actor VARCHAR, role VARCHAR);
"""


@dataclass(frozen=True)
class Tailoring:
    justification: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class ControlStatus:
    control: Control
    status: str
    evidence: tuple[ce.Evidence, ...]
    reason: str = ""  # why not applicable (tier, tailoring, nothing applies)
    tailoring: Tailoring | None = None

    @property
    def gaps(self) -> list[str]:
        return [f"{e.label}: {e.gap}" for e in self.evidence if e.status == ce.NOT_MET and e.gap]

    @property
    def blocking(self) -> bool:
        """A required control that applies and is not fully met (what fails ``vigil controls``)."""
        return self.control.required and self.status in (NOT_MET, PARTIAL)

    def as_dict(self) -> dict[str, Any]:
        c = self.control
        return {"id": c.id, "ref": c.ref, "title": c.title, "obligation": c.obligation, "tiers": list(c.tiers),
                "required": c.required, "status": self.status, "reason": self.reason, "gaps": self.gaps,
                "tailoring": None if self.tailoring is None else {
                    "justification": self.tailoring.justification, "by": self.tailoring.actor,
                    "at": self.tailoring.at.isoformat()},
                "evidence": [e.as_dict() for e in self.evidence]}


@dataclass(frozen=True)
class PackStatus:
    model: str
    version: str
    pack: Pack
    risk_tier: str | None
    evaluated_at: datetime
    controls: tuple[ControlStatus, ...] = field(default_factory=tuple)
    evaluation: Evaluation | None = None

    @property
    def failing(self) -> list[ControlStatus]:
        return [c for c in self.controls if c.blocking]

    @property
    def passed(self) -> bool:
        return not self.failing

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.controls if c.status == s) for s in STATUSES}

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "pack": self.pack.id, "pack_title": self.pack.title,
                "pack_source": self.pack.source, "risk_tier": self.risk_tier,
                "evaluated_at": self.evaluated_at.isoformat(), "passed": self.passed, "counts": self.counts(),
                "failing": [c.control.id for c in self.failing],
                "policy_evaluation": None if self.evaluation is None else {
                    "evaluated_at": self.evaluation.evaluated_at.isoformat(), "phase": self.evaluation.phase,
                    "window": self.evaluation.window, "data_version": self.evaluation.data_version},
                "controls": [c.as_dict() for c in self.controls]}

    def frame(self) -> pd.DataFrame:
        rows = [{"control": c.control.ref, "title": c.control.title, "status": c.status,
                 "required": c.control.required,
                 "evidence": "; ".join(f"{e.status}: {e.label}" for e in c.evidence) or c.reason,
                 "gaps": "; ".join(c.gaps) or c.reason} for c in self.controls]
        return pd.DataFrame(rows, columns=["control", "title", "status", "required", "evidence", "gaps"])


def resolve_version(ctx: Context, model: str, version: str | None) -> str:
    """The version to judge: the one given, else the champion (controls judge one version)."""
    from dashboard.governance.approvals import current_champion

    if version is not None:
        ctx.registry.version(model, str(version))
        return str(version)
    champion = current_champion(ctx, model)
    if champion is None:
        raise VigilError(f"'{model}' has no champion: give a version (--version V)")
    return champion


def combine(evidence: list[ce.Evidence]) -> str:
    judged = [e for e in evidence if e.status != ce.NOT_APPLICABLE_HERE]
    if not judged:
        return NOT_APPLICABLE
    met = sum(1 for e in judged if e.status == ce.MET)
    return MET if met == len(judged) else NOT_MET if met == 0 else PARTIAL


def judge_control(subject: ce.Subject, control: Control, tier: str | None,
                  tailoring: Tailoring | None) -> ControlStatus:
    if tailoring is not None:
        return ControlStatus(control, NOT_APPLICABLE, (), f"tailored out by {tailoring.actor}: "
                             f"{tailoring.justification}", tailoring)
    if tier is not None and tier not in control.tiers:
        return ControlStatus(control, NOT_APPLICABLE, (), f"applies to risk tier(s) {', '.join(control.tiers)}; "
                             f"'{subject.model}' is {tier}")
    evidence = [ce.look_up(subject, e.kind, e.params) for e in control.evidence]
    status = combine(evidence)
    reason = "none of its evidence applies to this version yet" if status == NOT_APPLICABLE else ""
    return ControlStatus(control, status, tuple(evidence), reason)


def control_status(ctx: Context, model: str, pack_id: str, version: str | None = None,
                   evaluation: Evaluation | None = None) -> PackStatus:
    """The status of every control of ``pack_id`` for ``version`` (default: the champion)."""
    from dashboard.governance.inventory import profile

    pack = get_pack(ctx.settings, pack_id)
    return _status(ctx, model, pack, resolve_version(ctx, model, version), profile(ctx, model).risk_tier,
                   evaluation)


def all_packs_status(ctx: Context, model: str, version: str | None = None,
                     pack_ids: tuple[str, ...] = (), evaluation: Evaluation | None = None) -> list[PackStatus]:
    """The status of every configured pack (or of ``pack_ids``) for one version, sharing one policy
    evaluation (``evaluation``, when the caller already judged that version, e.g. the scorecard)."""
    from dashboard.governance.inventory import profile

    packs = configured_packs(ctx.settings)
    unknown = [p for p in pack_ids if p not in packs]
    if unknown:
        raise VigilError(f"pack {', '.join(unknown)} is not configured (configured: {', '.join(packs) or 'none'}); "
                         "add it to [controls] packs")
    chosen = [packs[p] for p in pack_ids] if pack_ids else list(packs.values())
    v = resolve_version(ctx, model, version)
    tier = profile(ctx, model).risk_tier
    ev = evaluation if evaluation is not None and evaluation.version == v else evaluate(ctx, model, version=v)
    return [_status(ctx, model, pack, v, tier, ev) for pack in chosen]


def _status(ctx: Context, model: str, pack: Pack, version: str, tier: str | None,
            evaluation: Evaluation | None) -> PackStatus:
    ev = evaluation or evaluate(ctx, model, version=version)
    subject = ce.Subject(ctx, model, version, ev)
    tailored = tailorings(ctx, model, pack.id)
    controls = tuple(judge_control(subject, c, tier, tailored.get(c.id)) for c in pack.controls)
    return PackStatus(model, version, pack, tier, datetime.now(UTC).replace(tzinfo=None), controls, ev)


# ------------------------------------------------------------------------------------ tailoring

def tailorings(ctx: Context, model: str, pack_id: str) -> dict[str, Tailoring]:
    """control id -> its tailoring, for controls whose latest decision is "not applicable"."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        rows = con.execute("SELECT control, action, justification, actor, ts FROM control_tailoring "
                           "WHERE model = ? AND pack = ? ORDER BY ts", [model, pack_id]).fetchall()
    latest: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        latest[str(row[0])] = row
    return {c: Tailoring(str(r[2]), str(r[3]), r[4]) for c, r in latest.items() if r[1] == "tailor"}


def tailor(ctx: Context, actor: Actor, model: str, pack_id: str, control_id: str, justification: str,
           restore: bool = False) -> str:
    """Mark a control not applicable to ``model`` with a justification, or restore it (``control.tailor``);
    returns the action recorded (``tailor`` or ``restore``)."""
    require(actor, "control.tailor")
    ctx.model(model)
    pack = get_pack(ctx.settings, pack_id)
    pack.control(control_id)
    justification = justification.strip()
    if len(justification) < MIN_JUSTIFICATION:
        raise VigilError(f"a tailoring decision needs a justification of at least {MIN_JUSTIFICATION} characters")
    current = tailorings(ctx, model, pack_id).get(control_id)
    if restore and current is None:
        raise VigilError(f"{pack_id}:{control_id} is not tailored out for '{model}'")
    if not restore and current is not None:
        raise VigilError(f"{pack_id}:{control_id} is already tailored out for '{model}' by {current.actor}")
    action = "restore" if restore else "tailor"
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("INSERT INTO control_tailoring VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [datetime.now(UTC).replace(tzinfo=None), model, pack_id, control_id, action, justification,
                     actor.name, actor.role])
    audit.record(ctx.store, actor, f"control.{action}", model,
                 {"pack": pack_id, "control": control_id, "justification": justification})
    return action
