"""Every fairness metric computed from SQL counts equals AIF360's on the same generated rows (to 1e-9)."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from connectors.queries.fairness import confusion_counts
from dashboard.monitoring.fairness_metrics import (
    METRIC_KEYS,
    Counts,
    benefit_entropy,
    group_rates,
    log_ratio_interval,
    metric_rates,
    metrics_from_counts,
    newcombe_difference,
    total,
    wilson_interval,
)
from dashboard.settings import Thresholds
from tests.fixtures.fairness import aif360_reference

GROUPS = ["a", "b", "c", "d", "zz"]  # "zz" plays a missing value: in neither side
PRIVILEGED = ["b", "c"]
UNPRIVILEGED = ["a", "d"]
TOL = 1e-9


def generate(n: int, seed: int, *, weights: bool, groups: list[str] | None = None,
             labelled_share: float = 0.6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = groups or GROUPS
    g = rng.choice(groups, n, p=None)
    # group-dependent rates so the metrics are not all near zero
    bias = np.array([{"a": 0.3, "b": 0.6, "c": 0.55, "d": 0.4, "zz": 0.5}[x] for x in g])
    y = rng.random(n) < bias
    pred = np.where(rng.random(n) < 0.75, y, rng.random(n) < bias)
    labelled = rng.random(n) < labelled_share
    return pd.DataFrame({
        "g": g,
        "pred": np.where(pred, "good", "bad"),
        "label": pd.Series(np.where(y, "good", "bad"), dtype=object).where(labelled, None),
        "w": rng.uniform(0.2, 3.0, n) if weights else 1.0,
    })


def vigil_counts(df: pd.DataFrame, weights: bool) -> dict[str, Counts]:
    con = duckdb.connect()
    con.register("frame", df)
    out = confusion_counts(con, "frame", {"g": "g"}, "good", prediction="pred", label="label",
                           weight="w" if weights else None)
    return {str(r["g"]): Counts.from_mapping(r) for _, r in out.iterrows()}


def sides(counts: dict[str, Counts]) -> tuple[Counts, Counts, Counts]:
    u = total([c for g, c in counts.items() if g in UNPRIVILEGED])
    p = total([c for g, c in counts.items() if g in PRIVILEGED])
    return u, p, total(list(counts.values()))


def aif360_metrics(df: pd.DataFrame) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    return aif360_reference(df, "g", PRIVILEGED, UNPRIVILEGED)


def assert_agrees(ours: Any, theirs: float, what: str, allow_convention: bool = False) -> None:
    """Defined values agree to 1e-9; where ours is undefined, AIF360 gives inf/NaN (or its 0 convention)."""
    if ours is None:
        assert not math.isfinite(theirs) or allow_convention, f"{what}: Vigil undefined, AIF360 {theirs}"
    else:
        assert math.isfinite(theirs), f"{what}: Vigil {ours}, AIF360 {theirs}"
        assert abs(ours - theirs) <= TOL, f"{what}: Vigil {ours} vs AIF360 {theirs}"


def check_all(df: pd.DataFrame, weights: bool) -> dict[str, Any]:
    u, p, everyone = sides(vigil_counts(df, weights))
    ours = metric_rates(u, p, everyone)
    theirs, per_group = aif360_metrics(df)
    assert set(ours) == set(METRIC_KEYS) == set(theirs)
    for key in METRIC_KEYS:
        # AIF360 takes the accuracy of a group without labelled rows as 0 (error rate 1); Vigil: undefined
        assert_agrees(ours[key].value, theirs[key], key, allow_convention=key == "error_rate_difference"
                      and min(u.n_labelled, p.n_labelled) == 0)
        if ours[key].value is None:
            assert ours[key].undefined_reason
    for side, c in (("privileged", p), ("unprivileged", u)):
        rates = group_rates(c)
        for key, value in per_group[side].items():
            # AIF360 substitutes 0 for precision (and accuracy) when undefined; Vigil says "undefined"
            assert_agrees(rates[key].value, value, f"{side} {key}",
                          allow_convention=key in ("precision", "error_rate"))
    return {k: v.value for k, v in ours.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("weights", [False, True])
def test_every_metric_equals_aif360(seed: int, weights: bool) -> None:
    values = check_all(generate(3_000, seed, weights=weights), weights)
    assert all(v is not None for v in values.values())  # this data defines every metric
    assert values["disparate_impact"] < 1  # the generator favours b and c


def test_unprivileged_group_without_labelled_positives() -> None:
    df = generate(2_000, 5, weights=True)
    unpriv = df["g"].isin(UNPRIVILEGED) & df["label"].notna()
    df.loc[unpriv, "label"] = "bad"  # no favourable true outcome in the unprivileged group
    values = check_all(df, weights=True)
    assert values["equal_opportunity_difference"] is None
    assert values["average_odds_difference"] is None
    assert values["false_positive_rate_difference"] is not None
    u, p, e = sides(vigil_counts(df, True))
    reason = metric_rates(u, p, e)["equal_opportunity_difference"].undefined_reason
    assert reason == "unprivileged group has no labelled favourable outcomes"


def test_privileged_group_without_favourable_predictions() -> None:
    df = generate(2_000, 6, weights=False)
    df.loc[df["g"].isin(PRIVILEGED), "pred"] = "bad"
    values = check_all(df, weights=False)
    assert values["disparate_impact"] is None
    u, p, e = sides(vigil_counts(df, False))
    m = metrics_from_counts(u, p, e)["disparate_impact"]
    assert m.verdict == "undefined"
    assert m.display() == "undefined: privileged group has no favourable predictions"
    assert group_rates(p)["precision"].value is None  # AIF360 would say 0.0


def test_window_with_only_one_group() -> None:
    df = generate(1_500, 7, weights=True, groups=["b", "c"])
    values = check_all(df, weights=True)
    for key in ("disparate_impact", "statistical_parity_difference", "equal_opportunity_difference",
                "error_rate_difference"):
        assert values[key] is None
    assert values["theil_index"] is not None  # the entropy indices do not need two groups
    u, p, e = sides(vigil_counts(df, True))
    assert metrics_from_counts(u, p, e)["statistical_parity_difference"].undefined_reason == \
        "unprivileged group has no rows"


def test_all_false_negatives_entropy_is_undefined() -> None:
    assert benefit_entropy(0, 0, 0, 10, 2).value is None
    assert benefit_entropy(0, 0, 0, 0, 1).undefined_reason == "no labelled rows"


def test_verdicts_follow_thresholds_and_group_size() -> None:
    t = Thresholds(disparate_impact_low=0.8, disparate_impact_high=1.25, parity_difference=0.1, min_group_size=30)
    fair = Counts(n=100, w_n=100, n_pred_pos=50, w_pred_pos=50)
    unfair = Counts(n=100, w_n=100, n_pred_pos=20, w_pred_pos=20)
    m = metrics_from_counts(unfair, fair, thresholds=t)
    assert m["disparate_impact"].value == pytest.approx(0.4)
    assert m["disparate_impact"].verdict == "fail"
    assert m["statistical_parity_difference"].verdict == "fail"
    assert m["equal_opportunity_difference"].verdict == "undefined"  # no labels at all
    assert metrics_from_counts(fair, fair, thresholds=t)["disparate_impact"].verdict == "pass"
    tiny = Counts(n=10, w_n=10, n_pred_pos=1, w_pred_pos=1)
    assert metrics_from_counts(tiny, fair, thresholds=t)["disparate_impact"].verdict == "too_small"
    assert m["theil_index"].verdict == "undefined"


def test_intervals_match_statsmodels() -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

    for x, n in ((0, 40), (13, 40), (40, 40), (512, 1000)):
        lo, hi = proportion_confint(x, n, alpha=0.05, method="wilson")
        ours = wilson_interval(x, n)
        assert ours is not None
        assert ours == pytest.approx((lo, hi), abs=1e-9)
    for x1, n1, x2, n2 in ((30, 100, 50, 120), (0, 50, 10, 60), (45, 50, 12, 70)):
        lo, hi = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
        assert newcombe_difference(x1, n1, x2, n2) == pytest.approx((lo, hi), abs=1e-9)
        lo, hi = confint_proportions_2indep(x1, n1, x2, n2, method="log", compare="ratio") if x1 else (0, 0)
        if x1:
            assert log_ratio_interval(x1, n1, x2, n2) == pytest.approx((lo, hi), abs=1e-9)
    assert log_ratio_interval(0, 10, 3, 10) is None
