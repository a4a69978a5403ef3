"""Roles and permissions: every role x every action, deny by default, and the pages each role sees."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from dashboard.access.roles import ACTIONS, ROLES, Actor, actions_for, allowed, require
from dashboard.errors import PermissionDenied
from dashboard.ui.nav import PAGES, pages_for

REPO = Path(__file__).resolve().parents[1]

DS, ANN, MGR, ADM = "data_scientist", "annotator", "manager", "admin"
# The intended permission matrix, written out independently of dashboard/access.py.
EXPECTED: dict[str, set[str]] = {
    "ingest": {DS, ADM},
    "queue.send": {DS, ANN, ADM},
    "labels.sync": {DS, ANN, ADM},
    "retrain.start": {DS, ADM},
    "retrain.cancel": {DS, ADM},
    "promotion.request": {DS, ADM},
    "promotion.withdraw": {DS, ADM},
    "promotion.reject": {MGR},
    "model.promote": {MGR},
    "model.rollback": {MGR},
    "policy.override": {MGR},
    "policy.change": {MGR, ADM},
    "card.edit": {DS, MGR, ADM},
    "card.approval_note": {MGR},
    "report.export": {DS, MGR, ADM},
    "artifact.store": {DS, ADM},
    "quality.import": {DS, ADM},
    "users.manage": {ADM},
    "inventory.edit": {MGR, ADM},
    "control.tailor": {MGR},
    "finding.record": {DS, MGR},
    "finding.resolve": {MGR},
    "evidence.export": {DS, MGR, ADM},
    "alert.acknowledge": {DS, MGR, ADM},
    "alert.silence": {DS, MGR, ADM},
    "alert.resolve": {DS, MGR, ADM},
}


def test_every_action_has_a_rule_and_no_rule_is_unexpected() -> None:
    assert set(ACTIONS) == set(EXPECTED), "an action was added or removed: update EXPECTED after review"


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_role_by_action(role: str, action: str) -> None:
    actor = Actor(f"someone-{role}", role)
    if role in EXPECTED[action]:
        require(actor, action)
        assert allowed(actor, action)
        assert action in actions_for(role)
    else:
        with pytest.raises(PermissionDenied, match=re.escape(action)):
            require(actor, action)
        assert not allowed(actor, action)


def test_every_state_changing_call_site_names_a_known_action() -> None:
    """Scan the core for require(actor, "...") and fail on an action without a rule (deny by default)."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "dashboard").rglob("*.py")):
        for action in re.findall(r"require\(\s*\w+\s*,\s*[\"']([^\"']+)[\"']", path.read_text(encoding="utf-8")):
            found.setdefault(action, []).append(path.name)
    assert found, "no require() call found: the scan is broken"
    unknown = {a: files for a, files in found.items() if a not in ACTIONS}
    assert not unknown, f"actions without a rule: {unknown}"


def test_unknown_action_is_refused_for_everyone() -> None:
    for role in ROLES:
        with pytest.raises(PermissionDenied, match="not a known action"):
            require(Actor("x", role), "model.delete_everything")


def test_unknown_role_is_refused() -> None:
    with pytest.raises(PermissionDenied, match="unknown role"):
        Actor("x", "superuser")


def test_annotator_cannot_retrain_or_promote() -> None:
    annotator = Actor("ann", ANN)
    for action in ("retrain.start", "model.promote", "model.rollback", "policy.override"):
        with pytest.raises(PermissionDenied):
            require(annotator, action)


def test_pages_by_role() -> None:
    titles = {role: {p.title for p in pages_for(role)} for role in ROLES}
    assert "Compliance" not in titles[ANN] and "Retraining" not in titles[ANN]
    assert titles[ANN] == {"Overview", "Annotation queue"}
    assert "Compliance" in titles[MGR] and "Retraining" not in titles[MGR]
    assert titles[ADM] == {p.title for p in PAGES}
    assert pages_for("nobody") == []


# ------------------------------------------------------------- every writer checks a role and audits

DOMAINS = ("alerting", "governance", "lifecycle", "learning", "monitoring", "access", "audit")
SQL_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE)\b")
WRITE_CALLS = {
    # MLflow registry
    "set_alias", "delete_alias", "set_version_tag", "set_model_tag", "update_version_description", "update_model_description",
    "log_artifact_to_version", "set_experiment_tag",
    # the users file and the log store
    "save_users", "ingest", "ingest_labels",
    # Label Studio
    "create_project", "delete_project", "import_tasks", "delete_task", "annotate", "update_annotation",
    "delete_annotation",
    # write helpers shared across modules (the scan follows calls only within a module)
    "remember_config_digest",
}
AUDIT_CALLS = {"record", "_audit"}
# Writers that are not a person's action, each with the reason; anything else that writes must call
# require() and write an audit entry (directly or through a helper of its module).
NOT_A_USER_ACTION: dict[str, str] = {
    "audit.trail.record": "the audit trail itself",
    "audit.checkpoints.after_append": "the audit trail's own anchor",
    "audit.checkpoints.write_checkpoint": "the audit trail's own anchor",
    "audit.checkpoints.tag_experiments": "the audit trail's own anchor",
    "governance.policy.record_policy_set": "the system records a config change it observed (audited as 'vigil')",
    "governance.policy.evaluate": "reads; it records a config change it observed through record_policy_set",
    "governance.policy.remember_config_digest": "the write half of record_policy_set and record_config_profile, "
                                                "which audit the change they observed",
    "governance.policy.save_evaluation": "verdict history, derived from data every reader may compute",
    "governance.inventory.record_config_profile": "the system records a config change it observed (audited as 'vigil')",
    "governance.inventory.profile": "reads; it records a config change it observed through record_config_profile",
    "governance.inventory.inventory": "reads; it records a config change it observed through record_config_profile",
    "governance.cards.seed_card": "the system seeds a new version's card as part of a retrain that was authorised (audited as 'vigil')",
    "governance.promotion.close": "the tail of approve/reject/withdraw, which check the role and audit",
    "lifecycle.gate.record_evidence": "the gate's evidence, written by an authorised retrain job or run_gate_as",
    "lifecycle.gate.run_gate": "called by an authorised job worker, or through run_gate_as (which checks the role)",
    "lifecycle.jobs.run_worker": "the detached worker of a job whose start was authorised and audited",
    "lifecycle.jobs.recover": "the system marks dead or hung jobs failed (logged in each job's log)",
    "lifecycle.jobs.list_jobs": "reads, after recover()",
    "lifecycle.jobs.wait": "reads, after recover()",
    "access.users.ensure_demo_users": "`vigil demo` creates its documented demo accounts",
    "access.users.authenticate": "sign-in: failures are counted and audited; no role exists yet",
    "access.lockout.record_failure": "part of authenticate",
    "access.lockout.clear_account": "part of authenticate",
    "access.sessions.revoke": "sign-out of one's own session",
    "monitoring.evidently_report.store_report": "checked by its caller",
    "alerting.state.observe": "the system records what its checks found (a policy run, the retrain rule)",
    "alerting.state.raise_event": "the system records an event it saw (a failed job, an external alias change)",
    "alerting.state.resolve_in": "the tail of observe (a check passes) and of actions.resolve (checked, audited)",
    "alerting.state.queue_notification": "the tail of an alert change, in its transaction",
    "alerting.state.add_event": "an alert's history, written with each change",
    "alerting.delivery.deliver_due": "the delivery log of notifications already queued by audited or system changes",
}


def _calls(node: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _writes_directly(fn: ast.AST) -> bool:
    """Calls a write method, or runs SQL (execute/executemany) with INSERT, UPDATE or DELETE in its text."""
    calls = {_name(c) for c in _calls(fn)}
    if calls & WRITE_CALLS:
        return True
    texts = [c.value for c in ast.walk(fn) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return bool(calls & {"execute", "executemany"}) and any(SQL_WRITE.search(s) for s in texts)


def _reachable(start: str, local: dict[str, set[str]]) -> set[str]:
    """``start`` and every function of its module it calls, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(local[name] - seen)
    return seen


def module_writers() -> dict[str, dict[str, set[str]]]:
    """qualified name of each state-changing public function -> what it does ({"require", "audit"} subset)."""
    out: dict[str, dict[str, set[str]]] = {}
    for domain in DOMAINS:
        for path in sorted((REPO / "dashboard" / domain).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
            local = {name: {_name(c) for c in _calls(fn)} & set(fns) for name, fn in fns.items()}
            for name in fns:
                if name.startswith("_"):
                    continue
                reach = [fns[n] for n in _reachable(name, local)]
                if not any(_writes_directly(f) for f in reach):
                    continue
                called = {_name(c) for f in reach for c in _calls(f)}
                qual = f"{domain}.{path.stem}.{name}"
                out[qual] = {"does": {k for k, hit in (("require", "require" in called),
                                                       ("audit", bool(called & AUDIT_CALLS))) if hit}}
    return out


def test_every_state_changing_function_checks_a_role_and_audits() -> None:
    writers = module_writers()
    assert len(writers) >= 20, f"the scan found only {sorted(writers)}: it is broken"
    missing = {q: sorted({"require", "audit"} - w["does"]) for q, w in writers.items()
               if q not in NOT_A_USER_ACTION and w["does"] != {"require", "audit"}}
    assert not missing, f"state-changing functions without a role check or audit entry: {missing}"
    stale = sorted(set(NOT_A_USER_ACTION) - set(writers))
    assert not stale, f"exempt but no longer state-changing (remove from NOT_A_USER_ACTION): {stale}"


def test_the_writer_scan_finds_a_new_unchecked_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "dashboard" / "governance"
    fake.mkdir(parents=True)
    (fake / "sneaky.py").write_text("def wipe(ctx):\n    with ctx.store.connect() as con:\n"
                                    "        con.execute('DELETE FROM approvals')\n\n"
                                    "def ok(ctx, actor):\n    require(actor, 'x')\n    _w(ctx)\n    record(ctx, actor)\n\n"
                                    "def _w(ctx):\n    ctx.registry.set_alias('m', 'champion', '1')\n")
    for domain in DOMAINS:
        (tmp_path / "dashboard" / domain).mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    found = module_writers()
    assert found["governance.sneaky.wipe"]["does"] == set()
    assert found["governance.sneaky.ok"]["does"] == {"require", "audit"}
