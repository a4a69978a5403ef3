"""Quality: realised metrics equal scikit-learn's, CBPE within tolerance of actual, labels, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from connectors.windows import parse_window
from dashboard.errors import VigilError
from dashboard.monitoring.quality import CBPE_ASSUMPTIONS, classification_metrics, compute_quality

WINDOW = parse_window("2026-01-01..2026-01-31")
#: Estimated accuracy must lie within this of realised accuracy on a calibrated model. With 20 000
#: rows the standard error of realised accuracy is under 0.0035, so 0.02 is more than five of them.
CBPE_TOLERANCE = 0.02


def calibrated(logs_factory, n: int, seed: int, decimals: int | None = 2,
               sharpen: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Logs whose proba_good is the true P(good) (rounded, so many scores tie), and drawn true labels.

    ``sharpen`` > 1 pushes the logged probabilities towards 0/1 after the labels are drawn (overconfident).
    """
    df = logs_factory(n, seed=seed, start="2026-01-01")
    df["ts"] = pd.date_range("2026-01-01", periods=n, freq="2min", tz="UTC")
    rng = np.random.default_rng(seed + 100)
    p = rng.uniform(0.02, 0.98, n)
    if decimals is not None:
        p = np.round(p, decimals)
    truth = np.where(rng.random(n) < p, "good", "bad")
    logged = p
    if sharpen != 1.0:
        logit = np.log(p / (1 - p)) * sharpen
        logged = 1 / (1 + np.exp(-logit))
    df["proba_good"] = logged
    df["proba_bad"] = 1 - logged
    df["prediction"] = np.where(logged >= 0.5, "good", "bad")
    return df, truth


def add_labels(store, schema, df: pd.DataFrame, truth: np.ndarray, mask: np.ndarray,
               delay_hours: float = 48.0) -> None:
    labels = pd.DataFrame({"prediction_id": df.loc[mask, "prediction_id"], "label": truth[mask],
                           "ts": df.loc[mask, "ts"] + pd.Timedelta(hours=delay_hours)})
    store.add_labels(schema, labels, source="ground_truth")


@pytest.fixture
def labelled(store, schema, logs_factory, write_file):
    df, truth = calibrated(logs_factory, 3000, seed=11)
    store.ingest([write_file(df, "q.parquet")], schema)
    mask = np.random.default_rng(5).random(len(df)) < 0.6
    add_labels(store, schema, df, truth, mask)
    return df, truth, mask


def test_metrics_equal_scikit_learn(ctx, labelled):
    df, truth, mask = labelled
    rep = compute_quality(ctx, "credit-risk", WINDOW)
    y, pred, p = truth[mask], df["prediction"].to_numpy()[mask], df["proba_good"].to_numpy()[mask]
    a = rep.actual
    assert rep.positive_class == "good"
    assert a.n_labelled == rep.n_labelled == int(mask.sum())
    assert a.accuracy == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert a.precision == pytest.approx(precision_score(y, pred, pos_label="good"), abs=1e-12)
    assert a.recall == pytest.approx(recall_score(y, pred, pos_label="good"), abs=1e-12)
    assert a.f1 == pytest.approx(f1_score(y, pred, pos_label="good"), abs=1e-12)
    assert len(np.unique(p)) < len(p)  # ties in the scores: the exact AUC must handle them
    assert a.roc_auc == pytest.approx(roc_auc_score(y == "good", p), abs=1e-12)
    prob_true, prob_pred = calibration_curve(y == "good", p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(a.reliability["frac_positive"], prob_true, atol=1e-12)
    np.testing.assert_allclose(a.reliability["mean_proba"], prob_pred, atol=1e-12)
    # ECE by hand over the same 10 equal-width bins (values on an edge fall in the lower bin).
    bins = np.clip(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), 0, 9)
    ece = sum((bins == b).mean() * abs(p[bins == b].mean() - (y[bins == b] == "good").mean())
              for b in np.unique(bins))
    assert a.ece == pytest.approx(ece, abs=1e-12)
    assert rep.label_coverage == pytest.approx(mask.mean())
    assert a.reason is None


def test_reliability_bin_edges_match_scikit_learn_on_edge_values():
    p = np.array([0.0, 0.1, 0.2, 0.30000000000000004, 0.3, 0.5, 0.7, 0.9, 1.0, 0.1, 0.6, 0.8])
    y = np.array([0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1])
    import duckdb

    from connectors.queries.quality import calibration_bins

    con = duckdb.connect()
    con.register("r", pd.DataFrame({"p_pos": p, "label": np.where(y == 1, "good", "bad")}))
    got = calibration_bins(con, "r", [], "good")
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(got["frac_positive"], prob_true)
    np.testing.assert_allclose(got["mean_proba"], prob_pred)


def test_cbpe_is_within_tolerance_of_actual_on_a_calibrated_model(ctx, store, schema, logs_factory, write_file):
    df, truth = calibrated(logs_factory, 20_000, seed=21, decimals=None)
    df["ts"] = pd.date_range("2026-01-01", periods=len(df), freq="1min", tz="UTC")
    store.ingest([write_file(df, "big.parquet")], schema)
    add_labels(store, schema, df, truth, np.ones(len(df), dtype=bool))
    rep = compute_quality(ctx, "credit-risk", WINDOW)
    assert rep.actual.accuracy is not None and rep.estimated_accuracy_all is not None
    assert abs(rep.estimated_accuracy_all - rep.actual.accuracy) < CBPE_TOLERANCE
    assert rep.estimation_gap is not None and abs(rep.estimation_gap) < CBPE_TOLERANCE
    # CBPE is the mean of max(p, 1 - p) for a model predicting the likelier class.
    p = df["proba_good"].to_numpy()
    assert rep.estimated_accuracy_all == pytest.approx(np.maximum(p, 1 - p).mean(), abs=1e-12)
    assert rep.estimated_accuracy is None
    assert rep.estimate_reason is not None and "every prediction" in rep.estimate_reason


def test_cbpe_gap_exposes_an_overconfident_model(ctx, store, schema, logs_factory, write_file):
    df, truth = calibrated(logs_factory, 4000, seed=31, decimals=None, sharpen=3.0)
    store.ingest([write_file(df, "over.parquet")], schema)
    add_labels(store, schema, df, truth, np.ones(len(df), dtype=bool))
    rep = compute_quality(ctx, "credit-risk", WINDOW)
    assert rep.estimation_gap is not None and rep.estimation_gap < -3 * CBPE_TOLERANCE
    assert rep.actual.ece is not None and rep.actual.ece > 0.1


def test_estimate_on_unlabelled_rows_and_per_bucket(ctx, labelled):
    df, truth, mask = labelled
    rep = compute_quality(ctx, "credit-risk", WINDOW, bucket="day")
    p = df["proba_good"].to_numpy()
    conf = np.maximum(p, 1 - p)
    assert rep.estimated_accuracy == pytest.approx(conf[~mask].mean(), abs=1e-12)
    assert rep.estimated_accuracy_labelled == pytest.approx(conf[mask].mean(), abs=1e-12)
    days = df["ts"].dt.tz_convert(None).dt.floor("D").to_numpy()
    b = rep.buckets
    assert len(b) == len(np.unique(days)) == 5
    for row in b.itertuples():
        sel = days == pd.Timestamp(str(row.bucket)).to_datetime64()
        correct = (df["prediction"].to_numpy()[sel & mask] == truth[sel & mask]).mean()
        assert row.actual_accuracy == pytest.approx(correct, abs=1e-12)
        assert row.estimated_accuracy == pytest.approx(conf[sel].mean(), abs=1e-12)
        assert row.n_labelled == int((sel & mask).sum())


def test_label_delay_and_latest_label_wins(ctx, store, schema, logs_factory, write_file):
    df, truth = calibrated(logs_factory, 200, seed=41)
    store.ingest([write_file(df, "d.parquet")], schema)
    mask = np.arange(200) < 100
    add_labels(store, schema, df, truth, mask & (np.arange(200) % 2 == 0), delay_hours=24 * 3 + 1)
    add_labels(store, schema, df, truth, mask & (np.arange(200) % 2 == 1), delay_hours=12)
    flipped = np.where(truth == "good", "bad", "good")
    add_labels(store, schema, df, flipped, np.arange(200) < 10, delay_hours=200)  # corrections arrive later
    rep = compute_quality(ctx, "credit-risk", WINDOW)
    y = np.where(np.arange(200) < 10, flipped, truth)[mask]
    assert rep.actual.accuracy == pytest.approx(accuracy_score(y, df["prediction"].to_numpy()[mask]))
    d = rep.label_delay
    assert d.n == 100
    delays = np.where(np.arange(100) < 10, 200.0, np.where(np.arange(100) % 2 == 0, 73.0, 12.0))
    assert d.p50_hours == pytest.approx(np.percentile(delays, 50))
    assert d.p90_hours == pytest.approx(np.percentile(delays, 90))
    hist = dict(zip(d.histogram["day"], d.histogram["n"], strict=True))
    assert hist == {0: 45, 3: 45, 8: 10}


def test_no_labels_at_all_gives_none_and_the_reason(ctx, store, schema, logs_factory, write_file):
    store.ingest([write_file(logs_factory(100, start="2026-01-02"), "nolab.parquet")], schema)
    rep = compute_quality(ctx, "credit-risk", WINDOW)
    a = rep.actual
    assert (a.accuracy, a.precision, a.recall, a.f1, a.roc_auc, a.ece) == (None,) * 6
    assert a.reason is not None and "none of the 100 predictions" in a.reason
    assert "vigil ingest --labels" in a.reason
    assert rep.estimated_accuracy is not None and rep.label_coverage == 0.0
    assert rep.buckets["actual_accuracy"].isna().all()
    assert rep.label_delay.n == 0 and rep.label_delay.p50_hours is None


def test_empty_window_and_error_rows(ctx, store, schema, logs_factory, write_file):
    with pytest.raises(VigilError, match="no predictions of model credit-risk are in the log store"):
        compute_quality(ctx, "credit-risk", WINDOW)
    df = logs_factory(20, start="2026-01-03")
    df["status"] = "error"
    store.ingest([write_file(df, "err.parquet")], schema)
    with pytest.raises(VigilError, match=r"no successful predictions .* logs cover 2026-01-03 00:00"):
        compute_quality(ctx, "credit-risk", WINDOW)


def test_score_fallback_when_probabilities_are_missing(ctx, store, schema, logs_factory, write_file):
    df, truth = calibrated(logs_factory, 300, seed=51)
    df["score"] = np.maximum(df["proba_good"], df["proba_bad"])
    df = df.drop(columns=["proba_good", "proba_bad"])
    store.ingest([write_file(df, "s.parquet")], schema)
    add_labels(store, schema, df, truth, np.ones(300, dtype=bool))
    rep = compute_quality(ctx, "credit-risk", WINDOW)
    p_good = np.where(df["prediction"] == "good", df["score"], 1 - df["score"])
    assert rep.actual.roc_auc == pytest.approx(roc_auc_score(truth == "good", p_good), abs=1e-12)
    assert rep.estimated_accuracy_all == pytest.approx(df["score"].mean(), abs=1e-12)


def test_only_one_class_labelled_has_no_auc_and_says_why(ctx, store, schema, logs_factory, write_file):
    df, _ = calibrated(logs_factory, 50, seed=61)
    store.ingest([write_file(df, "one.parquet")], schema)
    add_labels(store, schema, df, np.full(50, "good"), np.ones(50, dtype=bool))
    rep = compute_quality(ctx, "credit-risk", WINDOW)
    assert rep.actual.roc_auc is None and rep.actual.reason is not None and "both classes" in rep.actual.reason
    assert rep.actual.accuracy == pytest.approx((df["prediction"] == "good").mean())


def test_macro_metrics_for_more_than_two_classes_equal_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.choice(["a", "b", "c"], 500)
    pred = np.where(rng.random(500) < 0.7, y, rng.choice(["a", "b", "c"], 500))
    cm = pd.DataFrame({"label": y, "prediction": pred}).value_counts().rename("n").reset_index()
    m = classification_metrics(cm, None)
    assert m["precision"] == pytest.approx(precision_score(y, pred, average="macro"))
    assert m["recall"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["f1"] == pytest.approx(f1_score(y, pred, average="macro"))


def test_assumptions_are_stated():
    assert "calibrated" in CBPE_ASSUMPTIONS and "concept drift" in CBPE_ASSUMPTIONS
