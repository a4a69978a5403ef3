"""CBPE: Vigil's estimates, bands, thresholds and realised values equal NannyML's on the same rows and chunks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors.queries import estimation as eq
from connectors.windows import Window, parse_window
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.errors import VigilError
from dashboard.governance.policy import PASS, evaluate
from dashboard.monitoring.estimation import METRICS, compute_estimation
from dashboard.settings import PolicySpec
from tests.conftest import DEMO_CONFIG
from tests.nannyml_ref import run_nannyml

REFERENCE = parse_window("2026-01-01..2026-01-07")
CURRENT = parse_window("2026-01-08..2026-01-14")
ROWS_PER_DAY = 300
REFERENCE_START = pd.Timestamp("2026-01-01")
TOL = 1e-9
FIELDS = {"estimated": "value", "sampling_error": "sampling_error", "realised": "realized",
          "upper": "upper_confidence_boundary", "lower": "lower_confidence_boundary",
          "upper_threshold": "upper_threshold", "lower_threshold": "lower_threshold"}


def windows(start: pd.Timestamp) -> tuple[Window, Window]:
    """Reference = the first week from ``start``, current = the second."""
    mid, end = start + pd.Timedelta(days=7), start + pd.Timedelta(days=14)
    return Window(start.to_pydatetime(), mid.to_pydatetime()), Window(mid.to_pydatetime(), end.to_pydatetime())


def scenario(logs_factory, seed: int, sharpen: float, shift: float,
             start: pd.Timestamp = REFERENCE_START) -> tuple[pd.DataFrame, np.ndarray]:
    """14 days of logs: true P(good) drawn per row (shifted upwards by ``shift`` in the second week),
    logged as its logit times ``sharpen`` (1 = calibrated, >1 overconfident)."""
    n = 14 * ROWS_PER_DAY
    df = logs_factory(n, seed=seed, id_prefix=f"s{seed}-")
    df["ts"] = start.tz_localize("UTC") + pd.to_timedelta(np.arange(n) * 86400 / ROWS_PER_DAY, unit="s")
    rng = np.random.default_rng(seed + 1)
    logit = rng.normal(0.0, 1.5, n) + np.where(np.arange(n) >= 7 * ROWS_PER_DAY, shift, 0.0)
    p = 1 / (1 + np.exp(-logit))
    truth = np.where(rng.random(n) < p, "good", "bad")
    logged = 1 / (1 + np.exp(-logit * sharpen))
    df["proba_good"], df["proba_bad"] = logged, 1 - logged
    df["prediction"] = np.where(logged >= 0.5, "good", "bad")
    return df, truth


def load(store, schema, write_file, df: pd.DataFrame, truth: np.ndarray, seed: int) -> None:
    store.ingest([write_file(df, f"e{seed}.parquet")], schema)
    labelled = np.arange(len(df)) < 7 * ROWS_PER_DAY  # the reference week is labelled ...
    labelled |= np.random.default_rng(seed + 2).random(len(df)) < 0.5  # ... and half of the second
    store.add_labels(schema, pd.DataFrame({"prediction_id": df.loc[labelled, "prediction_id"],
                                           "label": truth[labelled]}), source="ground_truth")


def export(ctx, tmp_path: Path, name: str, reference: Window = REFERENCE,
           current: Window = CURRENT) -> dict[str, str]:
    """The rows Vigil estimates on, as NannyML reads them: reference = labelled rows, analysis = all."""
    schema = ctx.schema("credit-risk")
    paths = {}
    with ctx.store.connect() as con:
        for side, w, labelled in (("reference", reference, True), ("analysis", current, False)):
            rel, params = eq.scored_relation(schema, "good", w.start, w.end)
            where = "WHERE yt IS NOT NULL" if labelled else ""
            df = con.execute(f"SELECT ts, u, yp, CAST(yt AS DOUBLE) AS yt FROM {rel} {where} "
                             "ORDER BY ts, u, yp, yt", params).df()
            paths[side] = str(tmp_path / f"{name}-{side}.parquet")
            df.to_parquet(paths[side], index=False)
    return paths


def max_diff(report, nml: dict) -> float:
    """Largest difference over every chunk, metric and field (NaN must match NaN)."""
    worst = 0.0
    ours = report.buckets.set_index(["bucket", "metric"])
    assert len(nml["chunks"]) == len(report.buckets) // len(METRICS)
    for chunk in nml["chunks"]:
        bucket = pd.Timestamp(chunk["key"])
        for m in METRICS:
            row = ours.loc[(bucket, m)]
            for mine, theirs in FIELDS.items():
                a, b = row[mine], chunk[m][theirs]
                a = None if a is None or (isinstance(a, float) and math.isnan(a)) else float(a)
                assert (a is None) == (b is None), (chunk["key"], m, mine, a, b)
                if a is not None:
                    worst = max(worst, abs(a - b))
            assert bool(row["alert"]) == bool(chunk[m]["alert"]), (chunk["key"], m)
    return worst


#: (seed, sharpen, shift, calibration expected): calibrated scores with no shift; overconfident scores and
#: a covariate shift (calibration applies); underconfident scores with a shift the other way.
CASES = [(3, 1.0, 0.0, None), (4, 2.5, 0.8, True), (5, 0.5, -0.6, True)]


def test_cbpe_equals_nannyml(ctx, store, schema, logs_factory, write_file, tmp_path):
    """Three datasets in one store (a month apart), one NannyML process for all of them."""
    jobs, reports = [], []
    for i, (seed, sharpen, shift, _) in enumerate(CASES):
        start = pd.Timestamp("2026-01-01") + pd.DateOffset(months=i)
        ref, cur = windows(start)
        df, truth = scenario(logs_factory, seed, sharpen, shift, start)
        load(store, schema, write_file, df, truth, seed)
        reports.append(compute_estimation(ctx, "credit-risk", cur, reference=ref, bucket="day"))
        jobs.append({"method": "cbpe", **export(ctx, tmp_path, f"s{seed}", ref, cur), "timestamp": "ts",
                     "chunk_period": "D"})
    results = run_nannyml({"jobs": jobs})["results"]
    for (_, _, _, calibrated), report, nml in zip(CASES, reports, results, strict=True):
        assert report.calibration.applied == nml["needs_calibration"]
        if calibrated is not None:
            assert report.calibration.applied is calibrated
        diff = max_diff(report, nml)
        print(f"CBPE max_abs_diff vs NannyML: {diff:.2e}")
        assert diff < TOL
        acc = report.buckets[report.buckets["metric"] == "accuracy"]
        assert acc["realised"].notna().all() and len(acc) == 7


def test_report_overall_and_errors(ctx, store, schema, logs_factory, write_file):
    df, truth = scenario(logs_factory, 6, 1.0, 0.0)
    load(store, schema, write_file, df, truth, 6)
    report = compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE, bucket="week")
    s = report.summary()
    assert s["rows"] == 7 * ROWS_PER_DAY and s["reference_rows"] == 7 * ROWS_PER_DAY
    assert abs(s["accuracy_estimated"] - s["accuracy_realised"]) < 0.05
    assert s["accuracy_lower"] < s["accuracy_estimated"] < s["accuracy_upper"]
    ev = evaluate(ctx, "credit-risk", window=CURRENT.label, policies=[(PolicySpec(
        "est auc", "cbpe_roc_auc", ">=", 0.5, params={"reference": REFERENCE.label}), "config"), (PolicySpec(
        "cbpe alerts", "cbpe_alerts", "==", 0, params={"reference": REFERENCE.label, "bucket": "week"}), "config")])
    by = {r.policy: r for r in ev.results}
    assert by["est auc"].value == pytest.approx(s["roc_auc_estimated"]) and by["est auc"].verdict == PASS
    assert "band" in by["est auc"].detail and by["cbpe alerts"].value is not None
    with pytest.raises(VigilError, match="labelled predictions of both classes"):
        compute_estimation(ctx, "credit-risk", CURRENT, reference=parse_window("2025-01-01..2025-01-02"))
    with pytest.raises(VigilError, match="bucket"):
        compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE, bucket="minute")


def test_cli_estimate(ctx, store, schema, logs_factory, write_file, monkeypatch, capsys):
    df, truth = scenario(logs_factory, 7, 2.0, 0.0)
    load(store, schema, write_file, df, truth, 7)
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    args = ["estimate", "--model", "credit-risk", "--window", CURRENT.label, "--reference", REFERENCE.label]
    assert run_cli(cli, [*args, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"roc_auc_estimated"' in out and '"buckets"' in out
    assert run_cli(cli, args) == 0
    out = capsys.readouterr().out
    assert "ROC AUC" in out and "isotonic calibration" in out
    code = run_cli(cli, ["estimate", "--model", "credit-risk", "--window", CURRENT.label,
                         "--reference", "2025-01-01..2025-01-02"])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err and "--reference" in captured.err


def first_labelled_reference_row(ctx) -> tuple[str, str]:
    """(prediction_id, label) of one labelled prediction of the reference window."""
    with ctx.store.connect() as con:
        row = con.execute(f"SELECT t.prediction_id, l.label FROM {ctx.schema('credit-risk').table} t JOIN "
                          "current_labels l ON l.prediction_id = t.prediction_id WHERE t.ts < ? "
                          "ORDER BY t.prediction_id LIMIT 1", [REFERENCE.end]).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def test_the_reference_fit_is_kept_until_its_rows_change(ctx, store, schema, logs_factory, write_file,
                                                          monkeypatch):
    from dashboard.monitoring import estimation

    df, truth = scenario(logs_factory, 8, 2.0, 0.3)  # overconfident: the isotonic calibration applies
    load(store, schema, write_file, df, truth, 8)
    fits = []
    original = estimation.fit_calibration
    monkeypatch.setattr(estimation, "fit_calibration", lambda *a, **k: fits.append(1) or original(*a, **k))
    first = compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE)
    again = compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE)
    assert len(fits) == 1 and first.calibration.applied and again.calibration.applied
    pd.testing.assert_frame_equal(first.calibration.knots, again.calibration.knots)
    pd.testing.assert_frame_equal(first.buckets, again.buckets)
    pd.testing.assert_frame_equal(first.overall, again.overall)
    assert again.n_reference == first.n_reference == 7 * ROWS_PER_DAY
    compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE, calibration="never")
    assert len(fits) == 2  # another calibration mode is another fit
    # The fit reads the reference's labelled rows only: new logs (in the reference without labels, or after
    # it with labels) change the data version but not those rows, so the kept fit still holds.
    more = logs_factory(50, seed=99, id_prefix="more-")
    more["ts"] = pd.Timestamp("2026-01-03 12:00", tz="UTC")
    later = logs_factory(30, seed=98, id_prefix="later-")
    later["ts"] = pd.Timestamp("2026-01-10 12:00", tz="UTC")
    before = ctx.data_version("credit-risk")
    store.ingest([write_file(more, "more.parquet"), write_file(later, "later.parquet")], schema)
    store.add_labels(schema, pd.DataFrame({"prediction_id": later["prediction_id"], "label": "good"}),
                     source="ground_truth")
    assert ctx.data_version("credit-risk") != before
    later_report = compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE)
    assert later_report.n_reference == 7 * ROWS_PER_DAY and later_report.n_rows == first.n_rows + 30
    assert len(fits) == 2
    # A label arriving for a reference row changes what the fit reads: fitted again.
    store.add_labels(schema, pd.DataFrame({"prediction_id": more["prediction_id"].iloc[:5], "label": "bad"}),
                     source="ground_truth")
    assert compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE).n_reference == 7 * ROWS_PER_DAY + 5
    assert len(fits) == 3
    # So does a corrected label of a row the fit read (same count of rows, another value).
    relabel = first_labelled_reference_row(ctx)
    store.add_labels(schema, pd.DataFrame({"prediction_id": [relabel[0]],
                                           "label": ["bad" if relabel[1] == "good" else "good"]}),
                     source="ground_truth")
    compute_estimation(ctx, "credit-risk", CURRENT, reference=REFERENCE)
    assert len(fits) == 4
