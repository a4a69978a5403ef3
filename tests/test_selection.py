"""Active-learning selection: strategies, threshold, stratification, budget, exclusions and reasons."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors.windows import Window
from dashboard.access.roles import Actor
from dashboard.context import Context
from dashboard.errors import PermissionDenied, VigilError
from dashboard.learning.annotation import queue_candidates
from dashboard.learning.selection import SelectionRequest, select_candidates
from dashboard.settings import settings_from_mapping
from tests.conftest import make_logs

WINDOW = Window(datetime(2026, 1, 1), datetime(2026, 2, 1))
ADMIN = Actor("tester", "admin")


def ingest(ctx: Context, df: pd.DataFrame, folder: Path, name: str = "logs.parquet", model: str = "credit-risk"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    df.to_parquet(path, index=False)
    report = ctx.store.ingest([path], ctx.schema(model))
    assert not report.rejected, report.problem_lines()


def with_good(df: pd.DataFrame, proba_good: np.ndarray) -> pd.DataFrame:
    df = df.copy()
    df["proba_good"] = proba_good
    df["proba_bad"] = 1 - proba_good
    df["prediction"] = np.where(proba_good >= 0.5, "good", "bad")
    return df


def test_least_confidence_takes_the_least_sure_rows_below_threshold(ctx, tmp_path):
    p = np.array([0.51, 0.95, 0.62, 0.05, 0.45, 0.79, 0.81, 0.30])
    df = with_good(make_logs(len(p)), p)
    ingest(ctx, df, tmp_path)
    sel = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, budget=10, segment=None, bucket="week"))
    got = list(sel.candidates["prediction_id"])
    # confidence = max(p, 1-p): p0 .51, p4 .55, p2 .62, p3/.95 excluded, p7 .70, p5 .79, p6 .81 excluded
    assert got == ["p0", "p4", "p2", "p7", "p5"]
    assert sel.candidates["confidence"].max() < 0.8
    assert sel.counts["in_window"] == 8 and sel.counts["below_threshold"] == 5
    first = sel.candidates.iloc[0]
    assert first["uncertainty"] == pytest.approx((1 - 0.51) * 2)
    assert "least confidence" in first["reason"] and "0.51 < 0.80" in first["reason"]


def test_threshold_and_budget(ctx, tmp_path):
    p = np.linspace(0.5, 0.99, 50)
    ingest(ctx, with_good(make_logs(50), p), tmp_path)
    sel = select_candidates(ctx, "credit-risk",
                            SelectionRequest(WINDOW, threshold=0.6, budget=3, segment=None, bucket="week"))
    assert len(sel.candidates) == 3
    assert (sel.candidates["confidence"] < 0.6).all()
    assert sel.counts["below_threshold"] == int((p < 0.6).sum())


def three_class_context(tmp_path: Path) -> Context:
    raw = {"vigil": {"data_dir": str(tmp_path / "d3")},
           "models": {"tri": {"features": {"x": "numerical"}, "classes": ["a", "b", "c"], "favourable": "a"}}}
    return Context(settings_from_mapping(raw, base_dir=tmp_path))


@pytest.mark.parametrize(("strategy", "first"), [("least-confidence", "r2"), ("margin", "r1"), ("entropy", "r2")])
def test_strategies_disagree_where_they_should(tmp_path, strategy, first):
    ctx = three_class_context(tmp_path)
    probs = {"r1": (0.50, 0.45, 0.05), "r2": (0.40, 0.30, 0.30)}
    df = pd.DataFrame({
        "prediction_id": list(probs), "ts": ["2026-01-02T00:00:00Z", "2026-01-02T01:00:00Z"],
        "model_version": "1", "x": [1.0, 2.0], "prediction": ["a", "a"],
        "proba_a": [v[0] for v in probs.values()], "proba_b": [v[1] for v in probs.values()],
        "proba_c": [v[2] for v in probs.values()]})
    ingest(ctx, df, tmp_path, model="tri")
    sel = select_candidates(ctx, "tri", SelectionRequest(WINDOW, strategy=strategy, budget=1, segment=None,
                                                         bucket="week"))
    assert list(sel.candidates["prediction_id"]) == [first]
    p = np.array(probs[first])
    expected = {"least-confidence": (1 - p.max()) * 3 / 2, "margin": 1 - (p[0] - p[1]),
                "entropy": float(-(p * np.log(p)).sum() / np.log(3))}[strategy]
    assert sel.candidates["uncertainty"].iloc[0] == pytest.approx(expected)
    if strategy == "margin":
        assert "between a (0.50) and b (0.45)" in sel.candidates["reason"].iloc[0]


def test_entropy_matches_numpy_on_random_rows(ctx, tmp_path):
    rng = np.random.default_rng(3)
    p = rng.uniform(0.2, 0.8, 200)
    ingest(ctx, with_good(make_logs(200), p), tmp_path)
    sel = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, strategy="entropy", budget=200,
                                                                 threshold=1.0, segment=None, bucket="week"))
    by_id = dict(zip(sel.candidates["prediction_id"], sel.candidates["uncertainty"], strict=True))
    for i in range(200):
        q = np.array([p[i], 1 - p[i]])
        assert by_id[f"p{i}"] == pytest.approx(float(-(q * np.log(q)).sum() / np.log(2)))


def test_one_burst_does_not_fill_the_batch(ctx, tmp_path):
    burst = with_good(make_logs(100, id_prefix="burst", start="2026-01-05"), np.full(100, 0.50))
    calm = [with_good(make_logs(5, seed=d, id_prefix=f"d{d}_", start=f"2026-01-{d:02d}"), np.full(5, 0.70))
            for d in (6, 7, 8, 9)]  # all in the ISO week of Monday 2026-01-05
    ingest(ctx, pd.concat([burst, *calm], ignore_index=True), tmp_path)
    plain = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, budget=10, segment=None,
                                                                   bucket="week"))
    assert plain.candidates["prediction_id"].str.startswith("burst").sum() >= 9  # one stratum: the burst wins
    daily = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, budget=10, segment=None, bucket="day"))
    days = daily.candidates["bucket"].dt.day.value_counts()
    assert sorted(days.index) == [5, 6, 7, 8, 9] and (days == 2).all()
    assert daily.counts["strata"] == 5
    assert "#1 of 100 most uncertain in day 2026-01-05" in daily.candidates["reason"].iloc[0]


def test_segment_stratification_spreads_over_versions(ctx, tmp_path):
    v1 = with_good(make_logs(30, id_prefix="a", version="1"), np.full(30, 0.52))
    v2 = with_good(make_logs(30, id_prefix="b", version="2", seed=1), np.full(30, 0.75))
    ingest(ctx, pd.concat([v1, v2], ignore_index=True), tmp_path)
    sel = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, budget=6, bucket="week"))
    assert sel.candidates["model_version"].value_counts().to_dict() == {"1": 3, "2": 3}
    assert "model_version=2" in " ".join(sel.candidates["reason"])


def test_queued_and_labelled_rows_are_excluded(ctx, tmp_path):
    ingest(ctx, with_good(make_logs(20), np.full(20, 0.55)), tmp_path)
    req = SelectionRequest(WINDOW, budget=5, segment=None, bucket="week")
    first = select_candidates(ctx, "credit-risk", req)
    assert queue_candidates(ctx, ADMIN, "credit-risk", first.candidates, req.strategy) == 5
    assert queue_candidates(ctx, ADMIN, "credit-risk", first.candidates, req.strategy) == 0  # idempotent
    labels = pd.DataFrame({"prediction_id": ["p19", "p18"], "label": ["good", "bad"]})
    ctx.store.add_labels(ctx.schema("credit-risk"), labels, source="ground_truth")
    second = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, budget=50, segment=None, bucket="week"))
    taken = set(first.candidates["prediction_id"]) | {"p19", "p18"}
    assert not taken & set(second.candidates["prediction_id"])
    assert len(second.candidates) == 13
    assert second.counts["open"] == 13


def test_score_only_rows_fall_back_to_score(ctx, tmp_path):
    df = make_logs(4).drop(columns=["proba_good", "proba_bad"])
    df["score"] = [0.55, 0.9, 0.65, 0.6]
    df["prediction"] = "good"
    ingest(ctx, df, tmp_path)
    sel = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, strategy="margin", segment=None,
                                                                 bucket="week"))
    assert list(sel.candidates["prediction_id"]) == ["p0", "p3", "p2"]
    assert sel.candidates["uncertainty"].iloc[0] == pytest.approx(1 - (0.55 - 0.45))
    assert "from score" in sel.candidates["reason"].iloc[0]
    assert "between good (0.55) and bad (0.45)" in sel.candidates["reason"].iloc[0]


def test_error_rows_and_rows_outside_the_window_are_ignored(ctx, tmp_path):
    df = with_good(make_logs(6), np.full(6, 0.55))
    df.loc[0, "status"] = "error"
    ingest(ctx, df, tmp_path)
    window = Window(datetime(2026, 1, 1, 0, 1), datetime(2026, 1, 1, 0, 5))  # minutes 1..4
    sel = select_candidates(ctx, "credit-risk", SelectionRequest(window, segment=None, bucket="week"))
    assert sorted(sel.candidates["prediction_id"]) == ["p1", "p2", "p3", "p4"]


@pytest.mark.parametrize(("change", "message"), [
    ({"strategy": "random"}, "unknown strategy"),
    ({"budget": 0}, "budget"),
    ({"threshold": 1.5}, "threshold"),
    ({"segment": "income"}, "cannot stratify"),
    ({"bucket": "month"}, "time bucket"),
])
def test_bad_requests_name_the_fix(ctx, change, message):
    with pytest.raises(VigilError, match=message):
        select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, **change))


def test_queueing_needs_permission(ctx, tmp_path):
    ingest(ctx, with_good(make_logs(3), np.full(3, 0.55)), tmp_path)
    sel = select_candidates(ctx, "credit-risk", SelectionRequest(WINDOW, segment=None, bucket="week"))
    with pytest.raises(PermissionDenied):
        queue_candidates(ctx, Actor("boss", "manager"), "credit-risk", sel.candidates, "least-confidence")
