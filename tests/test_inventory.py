"""The model inventory over the demo workspace: profile from the config and MLflow tags (changes audited,
config keys not changeable from Vigil), `vigil inventory`, and the Inventory and Compliance pages (AppTest)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance import inventory
from dashboard.ui.nav import pages_for
from tests.fixtures.access import signed_in

MODEL = "credit-risk"
REPO = Path(__file__).resolve().parents[1]
MANAGER = Actor("mia", "manager")


def _text(at: AppTest) -> str:
    return re.sub(r"\\(.)", r"\1", " ".join(m.value for m in [*at.markdown, *at.caption, *at.error, *at.success]))


def test_inventory_lists_the_demo_model_with_its_profile(demo_module_ctx: Context,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(cli, ["inventory", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == MODEL and row["risk_tier"] == "high" and row["sources"]["risk_tier"] == "config"
    assert row["owner"].startswith("Credit Risk Analytics") and row["champion"] == "1" and row["versions"] == 2
    assert row["lifecycle_state"] == "production" and row["sources"]["lifecycle_state"] == "derived (champion alias)"
    change = audit.entries(demo_module_ctx.store, action="inventory.change")
    assert len(change) == 1 and json.loads(change.iloc[0]["details"])["to"]["risk_tier"] == "high"


def test_profile_keys_set_in_mlflow_are_role_checked_and_audited(demo_module_ctx: Context) -> None:
    with pytest.raises(PermissionDenied):
        inventory.set_profile(demo_module_ctx, Actor("sam", "data_scientist"), MODEL, {"lifecycle_state": "retired"})
    with pytest.raises(VigilError, match="set in the config"):
        inventory.set_profile(demo_module_ctx, MANAGER, MODEL, {"risk_tier": "minimal"})
    with pytest.raises(VigilError, match="is not one of"):
        inventory.set_profile(demo_module_ctx, MANAGER, MODEL, {"lifecycle_state": "beta"})
    saved = inventory.set_profile(demo_module_ctx, MANAGER, MODEL, {"lifecycle_state": "validation"})
    assert saved.get("lifecycle_state") == "validation" and saved.sources["lifecycle_state"] == "MLflow tag"
    tags = demo_module_ctx.registry.model_info(MODEL).tags
    assert tags[inventory.TAG + "lifecycle_state"] == "validation"
    entry = audit.entries(demo_module_ctx.store, action="inventory.set", limit=1).iloc[0]
    assert entry["actor"] == "mia" and json.loads(entry["details"])["to"] == {"lifecycle_state": "validation"}
    row = next(r for r in inventory.inventory(demo_module_ctx) if r.model == MODEL)
    assert row.last_review is not None  # a person's change of the profile is a review


def test_inventory_page_for_managers_and_readers(demo_module_ctx: Context, fresh_caches: None) -> None:
    assert "Inventory" in {p.title for p in pages_for("manager")}
    assert "Inventory" in {p.title for p in pages_for("data_scientist")}
    assert "Inventory" not in {p.title for p in pages_for("annotator")}
    at = signed_in(AppTest.from_file(str(REPO / "pages" / "11_inventory.py"), default_timeout=120), "mia", "manager")
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table.loc[0, "model"] == MODEL and table.loc[0, "risk_tier"] == "high"
    assert any(f.label == "Owner" for f in at.text_input)  # managers may set the profile
    at.toggle(key="inventory_judge").set_value(True).run()
    assert not at.exception and "EU AI Act: high-risk AI systems" in _text(at)
    reader = signed_in(AppTest.from_file(str(REPO / "pages" / "11_inventory.py"), default_timeout=120),
                       "sam", "data_scientist").run()
    assert not reader.exception and not any(f.label == "Owner" for f in reader.text_input)


def test_compliance_page_shows_control_status_and_findings(demo_module_ctx: Context, fresh_caches: None) -> None:
    at = signed_in(AppTest.from_file(str(REPO / "pages" / "8_compliance.py"), default_timeout=180), "mia", "manager")
    at.run()
    assert not at.exception
    at.toggle(key="compliance_judge_controls").set_value(True).run()
    assert not at.exception
    text = _text(at)
    assert "EU AI Act: high-risk AI systems" in text and "Required controls not met" in text
    assert "Article 14" in text and "NIST AI RMF 1.0 (subset)" in text
    assert any(b.label == "Record the finding" for b in at.button)
    assert any(b.label == "Build the evidence pack" for b in at.button)
