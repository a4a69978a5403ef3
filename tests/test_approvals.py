"""Approvals: promotion gated by blocking policies, overrides with justification, separation of duties,
rollback in one action, every step audited; annotators and data scientists cannot promote."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance import approvals, cards
from dashboard.settings import PolicySpec, ReferenceSpec, Settings
from tests.conftest import make_logs
from tests.fixtures import compliance as fx
from tests.fixtures.compliance import MODEL, Registry

migrated_mlflow_db = fx.migrated_mlflow_db
registry = fx.registry

MIA = Actor("mia", "manager")
MAX = Actor("max", "manager")
WINDOW = "2026-01-01..2026-01-01"
JUSTIFICATION = "Latency regression accepted until the cache fix ships on Friday."


@pytest.fixture
def ctx(settings: Settings) -> Context:
    """The demo model with one blocking policy under test (latency); other blocking built-ins as warnings."""
    cfg = settings.model(MODEL)
    policies = (
        PolicySpec("latency_p95_ms", "latency_p95_ms", "<=", 500.0, "blocking", window=WINDOW),
        PolicySpec("drift_share", "drift_share", "<", 0.5, "warning", window=WINDOW),
        PolicySpec("disparate_impact", "disparate_impact", "within", (0.8, 1.25), "warning", window=WINDOW),
        PolicySpec("accuracy", "accuracy", ">=", 0.7, "warning", window=WINDOW),
    )
    cfg = replace(cfg, policies=policies, reference=ReferenceSpec(source="window", window="2025-12-01..2025-12-02"))
    return Context(replace(settings, models={MODEL: cfg}))


@pytest.fixture
def versions(registry: Registry, tmp_path: Path) -> dict[str, str]:
    """v1 (trained by dana, fast), v2 (trained by dana, slow: fails latency), v3 (trained by mia, fast)."""
    out = {"fast": registry.add_version("dana"), "slow": registry.add_version("dana"),
           "mine": registry.add_version("mia")}
    frames = []
    for i, (kind, version) in enumerate(out.items()):
        f = make_logs(150, seed=i, id_prefix=f"{kind}-", version=version)
        if kind == "slow":
            f["latency_ms"] += 2000
        frames.append(f)
    path = tmp_path / "logs.parquet"
    pd.concat(frames).to_parquet(path, index=False)
    registry.ctx.store.ingest([path], registry.ctx.schema(MODEL))
    return out


def test_manager_promotes_a_passing_candidate(registry: Registry, versions: dict[str, str]) -> None:
    ctx = registry.ctx
    result = approvals.approve(ctx, MIA, MODEL, versions["fast"])
    assert not result.overridden and result.previous_version is None
    assert approvals.current_champion(ctx, MODEL) == versions["fast"]
    v = ctx.registry.version(MODEL, versions["fast"])
    assert v.tags["vigil.approval.status"] == "approved" and v.tags["vigil.approval.approved_by"] == "mia"
    entry = audit.entries(ctx.store, action="model.promote").iloc[0]
    assert entry["actor"] == "mia" and '"override":false' in entry["details"]
    assert audit.verify(ctx.store).ok
    assert "promoted to champion by mia" in cards.load_card(ctx, MODEL, versions["fast"]).text("approvals")
    assert list(approvals.history(ctx, MODEL)["action"]) == ["promote"]


def test_failing_candidate_needs_a_justified_override(registry: Registry, versions: dict[str, str]) -> None:
    ctx = registry.ctx
    approvals.approve(ctx, MIA, MODEL, versions["fast"])
    with pytest.raises(VigilError, match=r"latency_p95_ms.*justification"):
        approvals.approve(ctx, MIA, MODEL, versions["slow"])
    with pytest.raises(VigilError, match="justification"):
        approvals.approve(ctx, MIA, MODEL, versions["slow"], justification="ok")
    assert approvals.current_champion(ctx, MODEL) == versions["fast"]
    result = approvals.approve(ctx, MIA, MODEL, versions["slow"], justification=JUSTIFICATION)
    assert result.overridden and result.failed_policies == ["latency_p95_ms"]
    assert approvals.current_champion(ctx, MODEL) == versions["slow"]
    tags = ctx.registry.version(MODEL, versions["slow"]).tags
    assert tags["vigil.approval.override"] == "true" and tags["vigil.approval.override_justification"] == JUSTIFICATION
    assert approvals.overrides(ctx, MODEL) == {versions["slow"]: JUSTIFICATION}
    override = audit.entries(ctx.store, action="policy.override").iloc[0]
    assert "latency_p95_ms" in override["details"] and JUSTIFICATION in override["details"]


def test_separation_of_duties(registry: Registry, versions: dict[str, str]) -> None:
    ctx = registry.ctx
    with pytest.raises(PermissionDenied, match="separation of duties"):
        approvals.approve(ctx, MIA, MODEL, versions["mine"])
    assert approvals.current_champion(ctx, MODEL) is None
    approvals.approve(ctx, MAX, MODEL, versions["mine"])  # another manager may
    assert approvals.current_champion(ctx, MODEL) == versions["mine"]
    tagged = registry.add_version("mia", use_trained_by_tag=True)
    assert approvals.trained_by(ctx, MODEL, tagged) == "mia"
    with pytest.raises(PermissionDenied, match="separation of duties"):
        approvals.approve(ctx, MIA, MODEL, tagged, justification=JUSTIFICATION)
    single_person = Context(replace(ctx.settings, separation_of_duties=False))
    approvals.approve(single_person, MIA, MODEL, tagged, justification=JUSTIFICATION)
    assert '"separation_of_duties":false' in audit.entries(ctx.store, action="model.promote").iloc[0]["details"]


def test_rollback_is_one_action(registry: Registry, versions: dict[str, str]) -> None:
    ctx = registry.ctx
    with pytest.raises(VigilError, match="no champion"):
        approvals.rollback(ctx, MIA, MODEL, "latency alarms since noon")
    approvals.approve(ctx, MIA, MODEL, versions["fast"])
    with pytest.raises(VigilError, match="no recorded previous champion"):
        approvals.rollback(ctx, MIA, MODEL, "latency alarms since noon")
    approvals.approve(ctx, MIA, MODEL, versions["slow"], justification=JUSTIFICATION)
    for reason in ("", "   ", "oops"):
        with pytest.raises(VigilError, match="say why you roll back"):
            approvals.rollback(ctx, MIA, MODEL, reason)
    assert approvals.current_champion(ctx, MODEL) == versions["slow"]
    back = approvals.rollback(ctx, MIA, MODEL, reason="p95 latency alarms")
    assert back.version == versions["fast"] and back.previous_version == versions["slow"]
    assert approvals.current_champion(ctx, MODEL) == versions["fast"]
    assert ctx.registry.version(MODEL, versions["slow"]).tags["vigil.approval.status"] == "rolled back"
    actions = [a for a in list(audit.entries(ctx.store)["action"])[::-1] if a.startswith(("model.", "policy."))]
    assert actions[-4:] == ["model.promote", "policy.override", "model.promote", "model.rollback"]
    notes = audit.entries(ctx.store, action="card.approval_note")
    assert set(notes["actor"]) == {MIA.name}  # the manager's own note on the card, audited
    assert audit.verify(ctx.store).ok


def test_already_champion(registry: Registry, versions: dict[str, str]) -> None:
    approvals.approve(registry.ctx, MIA, MODEL, versions["fast"])
    with pytest.raises(VigilError, match="already the champion"):
        approvals.approve(registry.ctx, MAX, MODEL, versions["fast"])


@pytest.mark.parametrize("role", ["annotator", "data_scientist", "admin"])
def test_only_managers_promote_or_roll_back(registry: Registry, versions: dict[str, str], role: str) -> None:
    actor = Actor(f"someone-{role}", role)
    with pytest.raises(PermissionDenied):
        approvals.approve(registry.ctx, actor, MODEL, versions["fast"])
    with pytest.raises(PermissionDenied):
        approvals.rollback(registry.ctx, actor, MODEL, "a reason long enough")
    assert approvals.current_champion(registry.ctx, MODEL) is None
    assert audit.entries(registry.ctx.store, action="model.").empty


def test_a_candidate_that_failed_the_gate_stays_a_candidate_without_an_override(
        registry: Registry, versions: dict[str, str]) -> None:
    ctx = registry.ctx
    approvals.approve(ctx, MIA, MODEL, versions["fast"])
    candidate = versions["mine"]  # passes every production policy, but lost to the champion in the gate
    for key, value in {"verdict": "fail", "champion": versions["fast"], "failed": "holdout accuracy drop"}.items():
        ctx.registry.set_version_tag(MODEL, candidate, f"vigil.gate.{key}", value)
    with pytest.raises(VigilError, match=r"candidate_gate.*; the gate against v\d+ failed on holdout accuracy drop"):
        approvals.approve(ctx, MAX, MODEL, candidate)
    assert approvals.current_champion(ctx, MODEL) == versions["fast"]
    result = approvals.approve(ctx, MAX, MODEL, candidate, justification=JUSTIFICATION)
    # The tags alone (no evidence artifact) fail closed: the other pre-deployment policies cannot be read.
    assert result.overridden and result.failed_policies[0] == "candidate_gate"
    assert approvals.current_champion(ctx, MODEL) == candidate
    promote = audit.entries(ctx.store, action="model.promote").iloc[0]  # newest first
    assert '"gate_verdict":"fail"' in promote["details"]
