"""Control status on the demo workspace (real DuckDB file, real sqlite MLflow store, real audit chain):
`vigil controls` lists every EU AI Act control with its status and evidence and exits 1 while a required
control is unmet; evidence follows the records (a card section written closes its gap); tiers and
tailoring decide what applies; tailoring is a manager's audited decision."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance import cards, controls
from dashboard.governance.control_packs import get_pack
from dashboard.settings import GovernanceSpec

MODEL = "credit-risk"
MANAGER = Actor("mia", "manager")
EU_REFS = ["Article 9", "Article 10", "Article 11", "Article 12", "Article 13", "Article 14", "Article 15",
           "Article 72"]


@pytest.fixture(scope="module")
def eu(demo_module_ctx: Context) -> controls.PackStatus:
    return controls.control_status(demo_module_ctx, MODEL, "eu-ai-act")


def _by_ref(status: controls.PackStatus, ref: str) -> controls.ControlStatus:
    return next(c for c in status.controls if c.control.ref == ref)


def test_cli_lists_every_control_with_status_and_evidence_and_fails(
        demo_module_ctx: Context, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(cli, ["controls", "--model", MODEL, "--pack", "eu-ai-act", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    (pack,) = data
    assert pack["pack"] == "eu-ai-act" and pack["version"] == "1" and pack["risk_tier"] == "high"
    assert [c["ref"] for c in pack["controls"]] == EU_REFS
    for c in pack["controls"]:
        assert c["status"] in controls.STATUSES and c["evidence"], c
        assert all(e["summary"] for e in c["evidence"])
    art14 = next(c for c in pack["controls"] if c["ref"] == "Article 14")
    assert art14["status"] == "partially met" and "art-14" in pack["failing"]
    assert any("Human oversight" in g for g in art14["gaps"])


def test_status_is_built_from_the_records(eu: controls.PackStatus) -> None:
    art12 = _by_ref(eu, "Article 12")  # the demo's trail verifies and is anchored; logs came with a manifest
    assert art12.status == controls.MET
    kinds = {e.kind: e for e in art12.evidence}
    assert kinds["audit_anchored"].at is not None and "checkpoint" in kinds["audit_anchored"].summary
    assert "file(s) ingested with their SHA-256" in kinds["ingestion_manifest"].summary
    art10 = _by_ref(eu, "Article 10")  # the demo's injected drift on income and purpose is a real gap
    drift = next(e for e in art10.evidence if e.kind == "policies")
    assert drift.status == "not met" and "feature_drift[income]" in drift.summary and drift.gap
    art72 = _by_ref(eu, "Article 72")  # scheduled by default, but no `vigil serve` has run the schedule
    assert art72.status in (controls.NOT_MET, controls.PARTIAL)
    assert any("`vigil serve` has not run them yet" in e.summary for e in art72.evidence)
    assert not eu.passed and {c.control.id for c in eu.failing} >= {"art-14", "art-72"}


def test_text_and_junit_formats(eu: controls.PackStatus) -> None:
    from dashboard.commands.controls import format_junit, format_text

    text = format_text([eu])
    assert all(ref in text for ref in EU_REFS) and "FAILED:" in text and "to close:" in text
    suite = ET.fromstring(format_junit([eu])).find("testsuite")
    assert suite is not None and suite.get("tests") == "8"
    assert int(suite.get("failures") or 0) == len(eu.failing)


def test_writing_the_missing_card_section_closes_the_gap(demo_module_ctx: Context,
                                                        eu: controls.PackStatus) -> None:
    cards.save_card(demo_module_ctx, MANAGER, MODEL, "1",
                    {"human_oversight": "A credit officer reviews every declined application and can override it."})
    again = controls.control_status(demo_module_ctx, MODEL, "eu-ai-act", evaluation=eu.evaluation)
    card = next(e for e in _by_ref(again, "Article 14").evidence if e.kind == "card_sections")
    assert card.status == "met" and "written" in card.summary
    # Still partially met: version 1 became champion without an approval recorded in Vigil.
    assert _by_ref(again, "Article 14").status == controls.PARTIAL


def test_controls_apply_by_risk_tier(demo_module_ctx: Context, eu: controls.PackStatus) -> None:
    cfg = demo_module_ctx.model(MODEL)
    minimal = replace(cfg, governance=GovernanceSpec(risk_tier="minimal", owner="someone"))
    settings = replace(demo_module_ctx.settings, models={MODEL: minimal})
    low = controls.control_status(Context(settings), MODEL, "eu-ai-act", evaluation=eu.evaluation)
    assert {c.status for c in low.controls} == {controls.NOT_APPLICABLE} and low.passed
    assert "applies to risk tier(s) high" in low.controls[0].reason


def test_tailoring_is_a_managers_audited_decision(demo_module_ctx: Context, eu: controls.PackStatus) -> None:
    why = "Post-market monitoring is run by the group's central model-risk team under its own plan."
    before = _by_ref(controls.control_status(demo_module_ctx, MODEL, "eu-ai-act", evaluation=eu.evaluation),
                     "Article 72")
    assert before.status != controls.NOT_APPLICABLE
    with pytest.raises(PermissionDenied):
        controls.tailor(demo_module_ctx, Actor("sam", "data_scientist"), MODEL, "eu-ai-act", "art-72", why)
    with pytest.raises(VigilError, match="justification"):
        controls.tailor(demo_module_ctx, MANAGER, MODEL, "eu-ai-act", "art-72", "n/a")
    with pytest.raises(VigilError, match="no control 'art-99'"):
        controls.tailor(demo_module_ctx, MANAGER, MODEL, "eu-ai-act", "art-99", why)
    controls.tailor(demo_module_ctx, MANAGER, MODEL, "eu-ai-act", "art-72", why)
    tailored = _by_ref(controls.control_status(demo_module_ctx, MODEL, "eu-ai-act", evaluation=eu.evaluation),
                       "Article 72")
    assert tailored.status == controls.NOT_APPLICABLE and why in tailored.reason and not tailored.blocking
    entry = audit.entries(demo_module_ctx.store, action="control.tailor", limit=1).iloc[0]
    assert entry["actor"] == "mia" and json.loads(entry["details"])["control"] == "art-72"
    controls.tailor(demo_module_ctx, MANAGER, MODEL, "eu-ai-act", "art-72", "The central team's plan ended.",
                    restore=True)
    restored = controls.control_status(demo_module_ctx, MODEL, "eu-ai-act", evaluation=eu.evaluation)
    assert _by_ref(restored, "Article 72").status == before.status  # restoring puts the judged status back
    assert len(audit.entries(demo_module_ctx.store, action="control.restore")) == 1


def test_unknown_pack_or_model_is_a_usage_error(demo_module_ctx: Context, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(cli, ["controls", "--model", MODEL, "--pack", "iso-42001"]) == 2
    assert "pack iso-42001 is not configured" in capsys.readouterr().err
    assert run_cli(cli, ["controls", "--model", "nope"]) == 2
    with pytest.raises(VigilError, match="not configured"):
        get_pack(demo_module_ctx.settings, "iso-42001")


def test_post_market_monitoring_follows_the_verdict_history_and_the_schedule(
        demo_module_ctx: Context, eu: controls.PackStatus) -> None:
    from dashboard.governance.policy import save_evaluation

    assert eu.evaluation is not None
    save_evaluation(demo_module_ctx, eu.evaluation, "vigil check")  # monitoring that happened, kept
    monitored = _by_ref(controls.control_status(demo_module_ctx, MODEL, "eu-ai-act", evaluation=eu.evaluation),
                        "Article 72")
    recent = next(e for e in monitored.evidence if e.kind == "production_monitored")
    assert recent.status == "met" and "vigil check" in recent.summary and monitored.status == controls.PARTIAL

    # Once `vigil serve` has run the scheduled policies monitor, the schedule is evidence too.
    from datetime import UTC, datetime

    from dashboard.service import runs

    now = datetime.now(UTC)
    run_id = runs.start(demo_module_ctx, "policies", MODEL, now, 1, "test-serve", now)
    runs.finish(demo_module_ctx, run_id, "ok", now)
    both = _by_ref(controls.control_status(demo_module_ctx, MODEL, "eu-ai-act", evaluation=eu.evaluation),
                   "Article 72")
    schedule = next(e for e in both.evidence if e.kind == "monitoring_schedule")
    assert both.status == controls.MET and "by vigil serve" in schedule.summary
