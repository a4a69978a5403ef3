"""Control packs as data: the shipped packs load and cover what they claim; a team's own pack is read from
[controls] packs; every problem of a bad pack is listed with its place; the config's new keys are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.errors import VigilError
from dashboard.governance.control_evidence import KINDS
from dashboard.governance.control_packs import configured_packs, load_pack, shipped
from dashboard.settings import RISK_TIERS, ConfigError, settings_from_mapping

# The NIST AI RMF 1.0 subcategories the pack uses (ids of the framework's core, NIST AI 100-1).
NIST_SUBSET = ["GOVERN 1.1", "GOVERN 1.6", "MAP 1.1", "MAP 2.2", "MEASURE 2.4", "MEASURE 2.5", "MEASURE 2.7",
               "MEASURE 2.11", "MANAGE 1.3", "MANAGE 2.4", "MANAGE 4.1"]
MODEL = {"features": {"age": "numerical"}, "classes": ["bad", "good"], "favourable": "good"}


def test_shipped_packs_cover_the_articles_and_the_stated_subset() -> None:
    packs = {pid: load_pack(path, RISK_TIERS) for pid, path in shipped().items()}
    assert set(packs) == {"eu-ai-act", "nist-ai-rmf"}
    eu = packs["eu-ai-act"]
    assert [c.ref for c in eu.controls] == [f"Article {n}" for n in (9, 10, 11, 12, 13, 14, 15, 72)]
    assert all(c.tiers == ("high",) and c.required for c in eu.controls)
    assert [c.ref for c in packs["nist-ai-rmf"].controls] == NIST_SUBSET
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(ref in readme for ref in NIST_SUBSET), "the README states the NIST subset"
    used = {e.kind for p in packs.values() for c in p.controls for e in c.evidence}
    assert used <= set(KINDS)


def test_a_teams_own_pack_is_configured_by_path(tmp_path: Path) -> None:
    (tmp_path / "ours.toml").write_text("""
[pack]
id = "ours"
title = "Our model policy"
tiers = ["high", "minimal"]
[[controls]]
id = "doc-1"
title = "Documented purpose"
obligation = "Every model states what it is for."
evidence = [{ kind = "card_sections", sections = ["intended_use"] }]
""")
    settings = settings_from_mapping({"controls": {"packs": ["eu-ai-act", "ours.toml"]}}, base_dir=tmp_path)
    packs = configured_packs(settings)
    assert list(packs) == ["eu-ai-act", "ours"] and packs["ours"].controls[0].tiers == ("high", "minimal")


def test_every_problem_of_a_bad_pack_is_listed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("""
[pack]
id = "bad"
title = "Bad"
[[controls]]
id = "a"
title = "A"
obligation = "x"
tiers = ["severe"]
evidence = [{ kind = "vibes" }, { kind = "card_sections", sections = ["mood"] }, { kind = "policies" }]
[[controls]]
id = "a"
title = "A again"
""")
    with pytest.raises(VigilError) as err:
        load_pack(bad, RISK_TIERS)
    text = str(err.value)
    for expected in ("'vibes' is not an evidence kind", "unknown card section(s) mood",
                     "policies needs a non-empty list", "controls[1].obligation: required",
                     "'severe' is not one of the risk tiers", "id 'a' is used twice"):
        assert expected in text, text


def test_governance_and_controls_keys_are_validated(tmp_path: Path) -> None:
    raw = {"controls": {"packs": "eu-ai-act", "colour": 1},
           "models": {"m": {**MODEL, "governance": {"risk_tier": "extreme", "lifecycle_state": "beta", "x": 1}}}}
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(raw, base_dir=tmp_path)
    text = str(err.value)
    for expected in ("controls.packs: must be a list", "controls.colour: unknown key",
                     "models.m.governance.risk_tier: 'extreme' is not one of the risk tiers",
                     "models.m.governance.lifecycle_state: 'beta'", "models.m.governance.x: unknown key"):
        assert expected in text, text
    custom = settings_from_mapping({"controls": {"risk_tiers": ["red", "green"]},
                                    "models": {"m": {**MODEL, "governance": {"risk_tier": "red"}}}},
                                   base_dir=tmp_path)
    assert custom.models["m"].governance.risk_tier == "red" and custom.controls.risk_tiers == ("red", "green")
