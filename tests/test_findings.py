"""Findings on the demo workspace: recorded by a data scientist or manager, resolved by a manager, all
audited; an open high finding fails the blocking `open_findings` policy and so blocks promotion."""

from __future__ import annotations

import json
from datetime import date

import pytest

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance import approvals, findings
from dashboard.governance.policy import FAIL, PASS, evaluate, policies_for
from tests.fixtures.access import token_for

MODEL = "credit-risk"
MANAGER = Actor("mia", "manager")
SCIENTIST = Actor("sam", "data_scientist")


def _open_findings_verdict(ctx: Context, version: str) -> str:
    spec = [(p, s) for p, s in policies_for(ctx.model(MODEL)) if p.name == "open_findings"]
    (result,) = evaluate(ctx, MODEL, version=version, policies=spec).results
    return result.verdict


def test_record_and_resolve_with_roles_and_audit(demo_module_ctx: Context) -> None:
    with pytest.raises(PermissionDenied):
        findings.record_finding(demo_module_ctx, Actor("ann", "annotator"), MODEL, "2", "x", "low", "ann")
    with pytest.raises(VigilError, match="severity"):
        findings.record_finding(demo_module_ctx, SCIENTIST, MODEL, "2", "x", "urgent", "sam")
    with pytest.raises(VigilError, match="pack:control"):
        findings.record_finding(demo_module_ctx, SCIENTIST, MODEL, "2", "x", "low", "sam", control="art-10")
    low = findings.record_finding(demo_module_ctx, SCIENTIST, MODEL, "2", "Sparse data for applicants 65+",
                                  "low", "sam", date(2026, 12, 31), "eu-ai-act:art-10")
    assert low.state == findings.OPEN and not low.blocking and low.overdue(date(2027, 1, 1))
    with pytest.raises(PermissionDenied):
        findings.resolve_finding(demo_module_ctx, SCIENTIST, low.id, "Collected more applications.")
    done = findings.resolve_finding(demo_module_ctx, MANAGER, low.id, "Collected 2,000 more applications.")
    assert done.state == findings.RESOLVED and done.resolved_by == "mia"
    with pytest.raises(VigilError, match="already resolved"):
        findings.resolve_finding(demo_module_ctx, MANAGER, low.id, "Again, for the record.")
    actions = audit.entries(demo_module_ctx.store, action="finding.")["action"].tolist()
    assert actions[:2] == ["finding.resolve", "finding.record"]


def test_an_open_high_finding_blocks_promotion_until_resolved(demo_module_ctx: Context) -> None:
    assert _open_findings_verdict(demo_module_ctx, "2") == PASS
    high = findings.record_finding(demo_module_ctx, MANAGER, MODEL, "2", "Approves far fewer women", "high", "sam")
    assert _open_findings_verdict(demo_module_ctx, "2") == FAIL
    with pytest.raises(VigilError, match="open_findings"):
        approvals.approve(demo_module_ctx, Actor("max", "manager"), MODEL, "2")
    findings.resolve_finding(demo_module_ctx, MANAGER, high.id, "Version 2 is withdrawn from traffic.")
    assert _open_findings_verdict(demo_module_ctx, "2") == PASS


def test_cli_adds_lists_and_resolves(demo_module_ctx: Context, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    users_file = demo_module_ctx.settings.users_file
    monkeypatch.setenv("VIGIL_TOKEN", token_for(users_file, "val", "data_scientist"))
    assert run_cli(cli, ["findings", "add", "-m", MODEL, "-v", "1", "--title", "No appeal process documented",
                         "--severity", "medium", "--owner", "val", "--due", "2026-12-15",
                         "--control", "eu-ai-act:art-14"]) == 0
    assert "recorded on credit-risk version 1" in capsys.readouterr().out
    assert run_cli(cli, ["findings", "list", "-m", MODEL, "--state", "open", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (mine,) = [f for f in listed if f["title"] == "No appeal process documented"]
    assert mine["created_by"] == "val" and mine["control"] == "eu-ai-act:art-14"
    assert run_cli(cli, ["findings", "resolve", str(mine["id"]), "--resolution", "Appeals go to the credit desk."]) == 2
    assert "may not finding.resolve" in capsys.readouterr().err
    monkeypatch.setenv("VIGIL_TOKEN", token_for(users_file, "mgr", "manager"))
    assert run_cli(cli, ["findings", "resolve", str(mine["id"]), "--resolution", "Appeals go to the credit desk."]) == 0
