"""Fairness per segment: AIF360's metrics on each segment's rows, failing and farthest-from-fair segments first,
small segments pooled; `vigil segments --metric disparate_impact`, the policy `segment_fairness` and the
Operations page show the same numbers."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from connectors.windows import parse_window
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.governance.policy import FAIL, PASS, evaluate
from dashboard.monitoring.fairness_metrics import METRIC_KEYS
from dashboard.monitoring.segment_fairness import compute_segment_fairness, rank_columns_by_fairness
from dashboard.monitoring.segments import SMALL
from dashboard.settings import PolicySpec
from tests.conftest import DEMO_CONFIG
from tests.fixtures.fairness import aif360_reference
from tests.vigil_cli import vigil

REPO = Path(__file__).resolve().parents[1]
BEFORE = parse_window("2026-01-01..2026-01-03")
AFTER = parse_window("2026-01-04..2026-01-06")
ROWS_PER_DAY = 1500


def logs(logs_factory) -> pd.DataFrame:
    """Six days with labels for 70% of rows; from day 4 women asking for business loans rarely get a 'good'
    prediction (the rest of the traffic stays as it was). About 0.3% of rows have a 'rare' purpose."""
    n = 6 * ROWS_PER_DAY
    df = logs_factory(n, seed=61, id_prefix="sf")
    df["ts"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 86400 / ROWS_PER_DAY, unit="s")
    rng = np.random.default_rng(62)
    df.loc[rng.random(n) < 0.003, "purpose"] = "rare"
    after = np.arange(n) >= 3 * ROWS_PER_DAY
    hit = after & (df["purpose"] == "business").to_numpy() & (df["sex"] == "female").to_numpy()
    df.loc[hit & (rng.random(n) < 0.7), "prediction"] = "bad"
    truth = np.where(rng.random(n) < 0.55, "good", "bad")
    df["label"] = np.where(rng.random(n) < 0.7, truth, None)
    return df


@pytest.fixture
def unfair(store, schema, logs_factory, write_file) -> pd.DataFrame:
    df = logs(logs_factory)
    store.ingest([write_file(df.drop(columns=["label"]), "sf.parquet")], schema)
    store.add_labels(schema, df.loc[df["label"].notna(), ["prediction_id", "label"]], source="ground_truth")
    return df


def _rows(df: pd.DataFrame, window, purpose: str) -> pd.DataFrame:
    ts = df["ts"].dt.tz_localize(None)
    return df[(ts >= window.start) & (ts < window.end) & (df["purpose"] == purpose)].reset_index(drop=True)


@pytest.mark.parametrize("metric", ["disparate_impact", "equal_opportunity_difference", "average_odds_difference"])
def test_each_segments_value_is_aif360s_on_its_rows(ctx: Context, unfair: pd.DataFrame, metric: str) -> None:
    sf = compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose",), metric=metric)
    assert sf.attribute == "sex" and sf.metric == metric
    ranking = sf.ranking.set_index("segment")
    for purpose in ("business", "car", "education", "home"):
        row = ranking.loc[f"purpose = {purpose}"]
        for window, column in ((AFTER, "value_after"), (BEFORE, "value_before")):
            rows = _rows(unfair, window, purpose)
            theirs, _ = aif360_reference(rows, "sex", ["male"], ["female"], pred="prediction", weight=None)
            assert row[column] == pytest.approx(theirs[metric], rel=1e-9, abs=1e-12), (purpose, column)
        assert row["n_after"] == len(_rows(unfair, AFTER, purpose))
        assert row["change"] == pytest.approx(row["value_after"] - row["value_before"], abs=1e-12)


def test_the_unfair_segment_tops_the_ranking_and_small_ones_are_pooled(ctx: Context, unfair: pd.DataFrame) -> None:
    sf = compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose",))
    top = sf.ranking.iloc[0]
    assert top["segment"] == "purpose = business" and top["verdict"] == "fail" and top["value_after"] < 0.6
    assert top["value_before"] > 0.8  # it became unfair in the after window
    scored = sf.ranking[sf.ranking["segment"] != SMALL]
    assert (scored["verdict"] == "fail").sum() == 1
    passing = scored[scored["verdict"] == "pass"]["distance"].tolist()
    assert passing == sorted(passing, reverse=True) and len(passing) == 3
    pooled = sf.ranking.iloc[-1]
    assert pooled["segment"] == SMALL and math.isnan(pooled["distance"])
    assert pooled["n_after"] == int((_rows(unfair, AFTER, "rare")).shape[0]) and "pooled" in pooled["note"]
    assert sf.headline().startswith(f"Disparate impact (selection rate ratio) (sex) {top['value_after']:.3f} in "
                                    "purpose = business (fail, threshold within [0.8, 1.25])")
    assert sf.ideal == 1.0 and sf.summary()["top_segment"] == "purpose = business"
    ranked = rank_columns_by_fairness(ctx, "credit-risk", BEFORE, AFTER)
    assert ranked[0].columns == ("purpose",)
    assert "sex" not in {r.columns[0] for r in ranked}  # the attribute is not a segment of itself


def test_tiny_groups_keep_a_value_but_rank_last_and_bad_input_is_named(ctx: Context, unfair: pd.DataFrame) -> None:
    sf = compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose", "housing"), min_rows=10)
    small_sides = sf.ranking[sf.ranking["verdict"] == "too_small"]
    assert len(small_sides) and small_sides["distance"].isna().all() and small_sides["value_after"].notna().all()
    judged = sf.ranking["distance"].notna().to_numpy()
    assert not (np.diff(judged.astype(int)) > 0).any()  # judged segments first, unjudged after
    with pytest.raises(VigilError, match="is the protected attribute"):
        compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("sex",))
    with pytest.raises(VigilError, match="not one of"):
        compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose",), metric="accuracy")
    with pytest.raises(VigilError, match="not a protected attribute"):
        compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose",), attribute="housing")
    with pytest.raises(VigilError, match="no successful predictions"):
        compute_segment_fairness(ctx, "credit-risk", parse_window("2025-01-01..2025-01-02"), AFTER, ("purpose",))


def test_every_fairness_metric_is_offered(ctx: Context, unfair: pd.DataFrame) -> None:
    for key in METRIC_KEYS:
        sf = compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose",), metric=key, attribute="age")
        assert sf.attribute == "age" and len(sf.ranking) == 5


def test_cli_segments_fairness(ctx: Context, unfair: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    args = ["segments", "--model", "credit-risk", "--from", BEFORE.label, "--to", AFTER.label, "--metric",
            "disparate_impact"]
    out = vigil(*args, "--column", "purpose", "--json")
    assert out.returncode == 0, out.stderr
    change = json.loads(out.stdout)["changes"][0]
    expected = compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose",))
    assert change["top_segment"] == "purpose = business" and change["attribute"] == "sex"
    assert [r["segment"] for r in change["ranking"]] == list(expected.ranking["segment"])
    assert change["ranking"][0]["value_after"] == pytest.approx(expected.ranking.iloc[0]["value_after"])
    text = vigil(*args)
    assert text.returncode == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if "purpose = business" in x and "rows" in x)
    top = expected.ranking.iloc[0]
    assert f"{top['value_before']:.3f} ->   {top['value_after']:.3f}  fail" in line
    bad = vigil(*args, "--attribute", "income")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "not a protected attribute" in bad.stderr
    misuse = vigil("segments", "--model", "credit-risk", "--from", BEFORE.label, "--to", AFTER.label,
                   "--attribute", "sex")
    assert misuse.returncode == 2 and "--attribute applies to the fairness metrics" in misuse.stderr


def test_policy_holds_every_segment_to_the_threshold(ctx: Context, unfair: pd.DataFrame) -> None:
    spec = PolicySpec(name="di-per-purpose", metric="segment_fairness", comparator=">=", threshold=0.8,
                      severity="blocking", window=AFTER.label, params={"column": "purpose"})
    ev = evaluate(ctx, "credit-risk", policies=[(spec, "test")], phase="production")
    by_subject = {r.subject: r for r in ev.results}
    assert set(by_subject) == {f"sex in purpose = {p}" for p in ("business", "car", "education", "home")}
    assert by_subject["sex in purpose = business"].verdict == FAIL
    assert all(r.verdict == PASS for s, r in by_subject.items() if s != "sex in purpose = business")
    expected = compute_segment_fairness(ctx, "credit-risk", None, AFTER, ("purpose",)).ranking.set_index("segment")
    assert by_subject["sex in purpose = business"].value == pytest.approx(
        expected.loc["purpose = business", "value_after"])
    assert "too small to judge" in by_subject["sex in purpose = car"].detail  # the pooled 'rare' rows
    assert not ev.passed


def test_operations_page_shows_fairness_per_segment(monkeypatch, ctx, settings, unfair, fresh_caches) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    at = AppTest.from_file(str(REPO / "pages" / "4_operations.py"), default_timeout=300).run()
    at.date_input(key="ops_window").set_value((date(2026, 1, 1), date(2026, 1, 6))).run()
    at.selectbox(key="ops_segment_metric").set_value("disparate_impact").run()
    assert "sex" not in at.selectbox(key="ops_segment_column").options  # the attribute is not a segment
    at.selectbox(key="ops_segment_attribute").set_value("sex").run()
    at.selectbox(key="ops_segment_column").set_value("purpose").run()
    at.slider(key="ops_segment_split").set_value(3).run()  # before: days 1-3, after: days 4-6
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "value_after" in d.value.columns)
    expected = compute_segment_fairness(ctx, "credit-risk", BEFORE, AFTER, ("purpose",)).ranking
    assert table["segment"].tolist() == expected["segment"].tolist()
    assert table["value_after"].tolist() == pytest.approx(expected["value_after"].tolist(), nan_ok=True)
    headline = f"Disparate impact (selection rate ratio) (sex) {expected.iloc[0]['value_after']:.3f} in purpose = business"
    assert any(re.sub(r"\\(.)", r"\1", m.value).startswith(headline) for m in at.markdown)  # md escapes removed
    assert any("fair = 1" in json.dumps(json.loads(c.proto.spec)["layout"]) for c in at.get("plotly_chart"))
