"""Model cards: stored with the version in MLflow (artifact + description), history kept, HTML as text."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance import cards
from tests.fixtures import compliance as fx
from tests.fixtures.compliance import MODEL, Registry

# The compliance fixtures, used by this module only.
migrated_mlflow_db = fx.migrated_mlflow_db
registry = fx.registry

DANA = Actor("dana", "data_scientist")

FULL = {"intended_use": "Pre-screen consumer loans.", "out_of_scope_use": "Mortgages.",
        "training_data": "2025 applications.", "evaluation": "AUC 0.8 on holdout.",
        "fairness": "DI by sex 0.9.", "limitations": "Young applicants are rare.", "owners": "Risk team"}


def test_empty_card_then_revisions_with_history(registry: Registry) -> None:
    ctx = registry.ctx
    version = registry.add_version("dana")
    empty = cards.load_card(ctx, MODEL, version)
    assert empty.revision == 0 and empty.completeness() == 0.0
    first = cards.save_card(ctx, DANA, MODEL, version, {"intended_use": "Pre-screen consumer loans."})
    assert first.revision == 1 and first.completeness() == pytest.approx(1 / 7)
    second = cards.save_card(ctx, DANA, MODEL, version, FULL, expected_revision=1)
    assert second.revision == 2 and second.completeness() == 1.0 and second.missing_sections() == []
    loaded = cards.load_card(ctx, MODEL, version)
    assert loaded.sections["owners"] == "Risk team" and loaded.revision == 2
    assert [c.revision for c in cards.history(ctx, MODEL, version)] == [1, 2]
    assert cards.history(ctx, MODEL, version)[0].text("owners") == ""
    v = ctx.registry.version(MODEL, version)
    assert "## Intended use" in v.description and "Pre-screen consumer loans." in v.description
    assert v.tags["vigil.card.revision"] == "2" and v.tags["vigil.card.updated_by"] == "dana"
    assert f"model_card/{version}/model_card.md" in str(
        [p for p in ctx.registry.list_artifacts(v.run_id, f"model_card/{version}")])
    edits = audit.entries(ctx.store, action="card.edit")
    assert len(edits) == 2 and audit.verify(ctx.store).ok


def test_stale_edit_is_refused(registry: Registry) -> None:
    ctx = registry.ctx
    version = registry.add_version("dana")
    cards.save_card(ctx, DANA, MODEL, version, {"owners": "A"})
    with pytest.raises(VigilError, match="since you opened it"):
        cards.save_card(ctx, DANA, MODEL, version, {"owners": "B"}, expected_revision=0)


def test_annotator_cannot_edit(registry: Registry) -> None:
    version = registry.add_version("dana")
    with pytest.raises(PermissionDenied):
        cards.save_card(registry.ctx, Actor("ann", "annotator"), MODEL, version, {"owners": "x"})


def test_unknown_section_is_refused(registry: Registry) -> None:
    version = registry.add_version("dana")
    with pytest.raises(VigilError, match="unknown card section"):
        cards.save_card(registry.ctx, DANA, MODEL, version, {"secret": "x"})


def test_html_in_card_is_rendered_as_text() -> None:
    card = cards.ModelCard("m<img src=x onerror=alert(1)>", "1",
                           {"intended_use": "<script>alert('x')</script> **bold** [link](javascript:alert(1))"})
    page = cards.to_html(card)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<strong>bold</strong>" in page
    assert 'href="javascript:' not in page
    md = cards.to_markdown(card)
    assert "<script>" not in md and "<img" not in md and "&lt;img" in md


def test_card_markdown_for_mlflow_has_no_image() -> None:
    card = cards.ModelCard("m", "1", {"intended_use": r"See ![chart](http://127.0.0.1:9/x.png), \\![b](http://h/y.png)"
                                                      " and ![ref][r]\n\n[r]: http://h/r.png"})
    md = cards.to_markdown(card)
    rendered = MarkdownIt("commonmark").render(md)
    assert "<img" not in rendered
    assert r"See \![chart]" in md and r"\\\![b]" in md and r"\![ref]" in md
    assert '!<a href="http://127.0.0.1:9/x.png">chart</a>' in rendered  # still readable, as a link
