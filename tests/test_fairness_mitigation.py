"""Reweighing for retraining: AIF360's weights, which make group and outcome independent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.lifecycle.mitigation import reweighing_weights
from dashboard.monitoring.fairness_metrics import Counts, group_rates
from dashboard.settings import ModelConfig


def training(n: int = 2_000, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n, p=[0.55, 0.45])
    good = rng.random(n) < np.where(sex == "male", 0.7, 0.45)  # historically biased labels
    return pd.DataFrame({"sex": sex, "age": rng.integers(18, 90, n).astype(float),
                         "label": np.where(good, "good", "bad")}, index=pd.RangeIndex(100, 100 + n))


def weighted_base_rate(frame: pd.DataFrame, w: pd.Series, mask: pd.Series) -> float:
    pos = float(w[mask & (frame["label"] == "good")].sum())
    tot = float(w[mask].sum())
    rate = group_rates(Counts(w_tp=pos, w_fn=0.0, w_tn=tot - pos, w_labelled=tot))["base_rate"].value
    assert rate is not None
    return rate


def test_weights_follow_kamiran_calders_and_remove_the_label_gap(ctx: Context) -> None:
    cfg: ModelConfig = ctx.model("credit-risk")
    df = training()
    w = reweighing_weights(df, cfg, "label", attribute="sex")
    assert list(w.index) == list(df.index)
    n = len(df)
    for g in ("male", "female"):
        for y in ("good", "bad"):
            cell = (df["sex"] == g) & (df["label"] == y)
            expected = ((df["sex"] == g).sum() / n) * ((df["label"] == y).sum() / n) / (cell.sum() / n)
            assert np.allclose(w[cell], expected, rtol=0, atol=1e-12)
    male, female = df["sex"] == "male", df["sex"] == "female"
    before = weighted_base_rate(df, pd.Series(1.0, index=df.index), female) - \
        weighted_base_rate(df, pd.Series(1.0, index=df.index), male)
    after = weighted_base_rate(df, w, female) - weighted_base_rate(df, w, male)
    assert before < -0.15 and abs(after) < 1e-12
    assert float(w.sum()) == pytest.approx(n)


def test_binned_attribute_and_missing_values(ctx: Context) -> None:
    cfg: ModelConfig = ctx.model("credit-risk")
    df = training()
    df.loc[df.index[:5], "age"] = np.nan
    df.loc[df.index[5:8], "age"] = 130.0  # outside the configured bins
    w = reweighing_weights(df, cfg, "label", attribute="age")
    assert (w.iloc[:8] == 1.0).all()  # in neither group: unchanged, as AIF360 leaves them
    priv = df["age"].between(25, 65, inclusive="left")
    unpriv = df["age"].notna() & ~priv & (df["age"] < 120)
    gap = weighted_base_rate(df, w, unpriv) - weighted_base_rate(df, w, priv)
    assert abs(gap) < 1e-12


def test_reweighing_errors_name_the_fix(ctx: Context) -> None:
    cfg: ModelConfig = ctx.model("credit-risk")
    df = training()
    with pytest.raises(VigilError, match="no column 'outcome'"):
        reweighing_weights(df, cfg, "outcome")
    with pytest.raises(VigilError, match="not a protected attribute"):
        reweighing_weights(df, cfg, attribute="income")
    all_good = df.assign(label=np.where(df["sex"] == "female", "good", df["label"]))
    with pytest.raises(VigilError, match="unprivileged group of 'sex' has no unfavourable label"):
        reweighing_weights(all_good, cfg, attribute="sex")
    with pytest.raises(VigilError, match="without a label"):
        reweighing_weights(df.assign(label=None), cfg)
