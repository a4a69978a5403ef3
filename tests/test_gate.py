"""The candidate-vs-champion gate: formulas (cross-checked with AIF360), policies, evidence on real versions,
promotion requests and the manager-only promotion."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.demo.train import train_model
from dashboard.errors import PermissionDenied, VigilError
from dashboard.governance import approvals, promotion
from dashboard.lifecycle import gate
from dashboard.settings import ModelConfig, ProtectedAttribute, RetrainSpec
from tests.fixtures.retraining import TRAIN_ROWS

SCIENTIST = Actor("dana", "data_scientist")
MANAGER = Actor("mia", "manager")


def test_group_fairness_matches_aif360_classification_metric():
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    rng = np.random.default_rng(1)
    n = 400
    sex = rng.integers(0, 2, n)  # 1 = privileged
    y = (rng.random(n) < 0.55 + 0.1 * sex).astype(float)
    yhat = (rng.random(n) < 0.5 + 0.15 * sex).astype(float)
    truth = BinaryLabelDataset(df=pd.DataFrame({"sex": sex, "y": y}), label_names=["y"],
                               protected_attribute_names=["sex"], favorable_label=1.0, unfavorable_label=0.0)
    pred = truth.copy()
    pred.labels = yhat.reshape(-1, 1)
    ref = ClassificationMetric(truth, pred, unprivileged_groups=[{"sex": 0}], privileged_groups=[{"sex": 1}])
    ours = gate.fairness_from_counts(gate.group_counts(y == 1, yhat == 1, sex == 1))
    assert ours["disparate_impact"] == pytest.approx(ref.disparate_impact(), abs=1e-12)
    assert ours["statistical_parity_difference"] == pytest.approx(ref.statistical_parity_difference(), abs=1e-12)
    assert ours["equal_opportunity_difference"] == pytest.approx(ref.equal_opportunity_difference(), abs=1e-12)
    assert ours["average_odds_difference"] == pytest.approx(ref.average_odds_difference(), abs=1e-12)


def test_binned_attribute_groups_use_the_configured_buckets():
    attr = ProtectedAttribute("age", privileged=("25-39", "40-64"), bins=(18, 25, 40, 65, 120),
                              labels=("18-24", "25-39", "40-64", "65+"))
    assert list(gate.group_of(pd.Series([18.0, 24.9, 25.0, 64.9, 65.0]), attr)) == [False, False, True, True, False]


def _cfg(**retrain: object) -> ModelConfig:
    return ModelConfig(name="m", features={"x": "numerical"}, classes=("bad", "good"), favourable="good",
                       protected=(ProtectedAttribute("sex", ("male",)),), retrain=RetrainSpec(**retrain))  # type: ignore[arg-type]


def _m(acc: float, auc: float, di: float, lat: float = 1.0) -> dict[str, float | None]:
    return {"accuracy": acc, "roc_auc": auc, "f1": acc, "disparate_impact_sex": di,
            "statistical_parity_difference_sex": 0.0, "latency_ms_per_1k": lat}


def test_policies_fail_a_worse_or_unfair_candidate_and_skip_thin_evaluation_data():
    datasets: dict[str, dict[str, object]] = {"holdout": {"rows": 1000},
                                              "evaluation": {"rows": 10, "overlap_candidate": 0}}
    good = gate.judge(_cfg(), {"holdout": {"candidate": _m(0.80, 0.80, 1.0), "champion": _m(0.81, 0.80, 1.0)},
                               "evaluation": {"candidate": _m(0.1, 0.1, 0.1), "champion": _m(0.9, 0.9, 1.0)}},
                      datasets)
    assert all(p.passed is not False for p in good if p.blocking)
    thin = next(p for p in good if p.dataset == "evaluation" and p.metric == "rows")
    assert thin.passed is None and "too few" in thin.detail
    worse = gate.judge(_cfg(), {"holdout": {"candidate": _m(0.75, 0.80, 1.0), "champion": _m(0.81, 0.80, 1.0)}},
                       datasets)
    assert [p.name for p in worse if p.passed is False and p.blocking] == ["holdout: accuracy not worse than champion"]
    unfair = gate.judge(_cfg(disparate_impact_outside=(0.9, 1.1)),
                        {"holdout": {"candidate": _m(0.9, 0.9, 0.85), "champion": _m(0.8, 0.8, 1.0)}}, datasets)
    assert [p.metric for p in unfair if p.passed is False] == ["disparate_impact_sex"]
    slow = gate.judge(_cfg(), {"holdout": {"candidate": _m(0.9, 0.9, 1.0, lat=5.0),
                                           "champion": _m(0.9, 0.9, 1.0, lat=1.0)}}, datasets)
    latency = next(p for p in slow if p.metric == "latency_ms_per_1k")
    assert latency.passed is False and not latency.blocking  # a warning, not a blocker


def test_evaluation_rows_that_may_have_been_trained_on_judge_nothing():
    metrics = {"holdout": {"candidate": _m(0.9, 0.9, 1.0), "champion": _m(0.8, 0.8, 1.0)},
               "evaluation": {"candidate": _m(0.99, 0.99, 1.0), "champion": _m(0.7, 0.7, 1.0)}}
    for overlap, passed in ((3, False), (None, None)):
        out = gate.judge(_cfg(), metrics, {"holdout": {"rows": 1000},
                                           "evaluation": {"rows": 500, "overlap_candidate": overlap}})
        leak = next(p for p in out if p.metric == "evaluation_overlap")
        assert leak.passed is passed and leak.blocking
        assert not [p for p in out if p.dataset == "evaluation" and p.metric != "evaluation_overlap"]
    clean = gate.judge(_cfg(), metrics, {"holdout": {"rows": 1000},
                                         "evaluation": {"rows": 500, "overlap_candidate": 0}})
    assert next(p for p in clean if p.metric == "evaluation_overlap").passed is True
    assert any(p.dataset == "evaluation" and p.metric == "accuracy" for p in clean)


def test_without_a_champion_only_absolute_thresholds_apply():
    out = gate.judge(_cfg(), {"holdout": {"candidate": _m(0.65, 0.7, 1.0)}}, {"holdout": {"rows": 100}})
    assert not any("champion" in p.name for p in out)
    assert next(p for p in out if p.name.startswith("holdout: accuracy >=")).passed is False


def test_a_biased_candidate_fails_the_gate_stays_a_candidate_and_cannot_be_requested(retrain_ctx: Context):
    biased = train_model(retrain_ctx.settings, "credit-risk", rows=TRAIN_ROWS, seed=4, variant="biased",
                         alias="challenger")
    result = gate.run_gate(retrain_ctx, "credit-risk", biased.model_version)
    assert result.verdict == "fail" and result.champion == "1"
    failed = {p.metric for p in result.policies if p.passed is False and p.blocking}
    assert "disparate_impact_sex" in failed
    # Same rows for both versions: both scored on the same holdout and out-of-time evaluation rows.
    evaluation = result.datasets["evaluation"]
    assert evaluation["rows"] == evaluation["available_rows"] >= 50 and evaluation["overlap_candidate"] == 0
    assert result.metrics["evaluation"]["candidate"]["rows"] == result.metrics["evaluation"]["champion"]["rows"]
    tags = retrain_ctx.registry.version("credit-risk", biased.model_version).tags
    assert tags["vigil.gate.verdict"] == "fail" and "disparate impact (sex)" in tags["vigil.gate.failed"]
    evidence = gate.load_evidence(retrain_ctx, "credit-risk", biased.model_version)
    assert evidence is not None and evidence["verdict"] == "fail"
    cmp = gate.comparison_frame(evidence)
    di = cmp[(cmp["dataset"] == "holdout") & (cmp["metric"] == "disparate_impact_sex")].iloc[0]
    assert di["candidate"] < 0.8 <= di["champion"]
    assert math.isclose(di["delta"], di["candidate"] - di["champion"])
    with pytest.raises(VigilError, match="stays a candidate"):
        promotion.request_promotion(retrain_ctx, SCIENTIST, "credit-risk", biased.model_version)
    aliases = {a: v.version for v in retrain_ctx.registry.versions("credit-risk") for a in v.aliases}
    assert aliases == {"champion": "1", "challenger": biased.model_version}


def test_a_fair_candidate_passes_is_requested_and_only_a_manager_promotes_it(retrain_ctx: Context):
    fair = train_model(retrain_ctx.settings, "credit-risk", rows=TRAIN_ROWS, seed=6, alias="challenger")
    with pytest.raises(VigilError, match="no gate verdict"):
        promotion.request_promotion(retrain_ctx, SCIENTIST, "credit-risk", fair.model_version)
    with pytest.raises(PermissionDenied):
        gate.run_gate_as(retrain_ctx, Actor("ann", "annotator"), "credit-risk", fair.model_version)
    result = gate.run_gate_as(retrain_ctx, SCIENTIST, "credit-risk", fair.model_version)
    assert result.verdict == "pass", [p for p in result.policies if p.passed is False]
    with pytest.raises(PermissionDenied):
        promotion.request_promotion(retrain_ctx, Actor("ann", "annotator"), "credit-risk", fair.model_version)
    promotion.request_promotion(retrain_ctx, SCIENTIST, "credit-risk", fair.model_version, note="better recall")
    tags = retrain_ctx.registry.version("credit-risk", fair.model_version).tags
    assert tags["vigil.promotion.status"] == "requested" and tags["vigil.promotion.requested_by"] == "dana"
    for who in (SCIENTIST, Actor("root", "admin")):
        with pytest.raises(PermissionDenied, match=r"model\.promote"):
            approvals.approve(retrain_ctx, who, "credit-risk", fair.model_version)
    assert retrain_ctx.registry.version_by_alias("credit-risk", "champion").version == "1"
    # No production traffic yet: judged on its pre-deployment evidence, which passes: no override needed.
    approval = approvals.approve(retrain_ctx, MANAGER, "credit-risk", fair.model_version, note="gate passed")
    assert not approval.overridden and approval.evaluation is not None
    assert approval.evaluation.phase == "pre_deployment"
    assert retrain_ctx.registry.version_by_alias("credit-risk", "champion").version == fair.model_version
    trail = audit.entries(retrain_ctx.store)
    assert {"gate.run", "promotion.request", "model.promote"} <= set(trail["action"])
    champion, cands = gate.candidates(retrain_ctx, "credit-risk")
    assert champion == fair.model_version and [c.version for c in cands] == ["1"]


def test_the_retrain_table_lists_every_problem_at_once():
    import tomllib

    from dashboard.settings import ConfigError, settings_from_mapping
    from tests.conftest import DEMO_CONFIG

    raw = tomllib.loads(DEMO_CONFIG.read_text())
    raw["models"]["credit-risk"]["retrain"] = {"runner": "webhook", "bogus": 1, "accuracy_below": "high",
                                               "disparate_impact_outside": [1.2, 0.8], "reweighing": "yes"}
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw)
    problems = "\n".join(info.value.problems)
    for key in ("retrain.bogus: unknown key", "retrain.accuracy_below: must be", "retrain.disparate_impact_outside",
                "retrain.reweighing: must be true or false", "retrain.webhook_url: required"):
        assert key in problems
    raw["models"]["credit-risk"]["retrain"] = {"accuracy_below": 0.92, "drift_share_above": 0.3,
                                               "disparate_impact_outside": [0.8, 1.25], "window": "14d"}
    spec = settings_from_mapping(raw).model("credit-risk").retrain
    assert (spec.accuracy_below, spec.disparate_impact_outside, spec.window, spec.runner) == (
        0.92, (0.8, 1.25), "14d", "local")
