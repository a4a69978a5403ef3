"""Roles and permissions: every role x every action, deny by default, and the pages each role sees."""

from __future__ import annotations

import re
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
    "report.export": {DS, MGR, ADM},
    "artifact.store": {DS, ADM},
    "users.manage": {ADM},
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
