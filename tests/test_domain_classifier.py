"""Domain-classifier multivariate drift: Vigil's ROC AUC per bucket equals NannyML's DomainClassifierCalculator
on the same rows and chunks (its reference chunks too), the sample is bounded as documented, bad input reads
as a message, and the CLI, the policy metric and the Drift page show it."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr
from streamlit.testing.v1 import AppTest

from connectors.windows import Window
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.errors import VigilError
from dashboard.governance.policy import FAIL, PASS, evaluate
from dashboard.monitoring.domain_classifier import LGBM_PARAMS, MIN_ROWS, compute_classifier
from dashboard.settings import PolicySpec
from tests.conftest import DEMO_CONFIG
from tests.nannyml_ref import run_nannyml
from tests.vigil_cli import vigil

REPO = Path(__file__).resolve().parents[1]
ROWS_PER_DAY = 300
# LightGBM trains with the same parameters, seed, fold split and row order on both sides and is
# deterministic there (deterministic=True, one thread, column-wise histograms), so the values agree to
# the last bit; 1e-9 only leaves room for a different float summation in roc_auc_score.
TOL = 1e-9


def windows(start: pd.Timestamp) -> tuple[Window, Window]:
    mid, end = start + pd.Timedelta(days=7), start + pd.Timedelta(days=14)
    return Window(start.to_pydatetime(), mid.to_pydatetime()), Window(mid.to_pydatetime(), end.to_pydatetime())


def joint_shift(logs_factory, seed: int, start: pd.Timestamp, rho_after: float, dirty: bool = False,
                days: int = 14, shift_day: int = 7) -> pd.DataFrame:
    """``days`` days of logs (distinct timestamps) in which income and credit history are correlated
    (rho 0.95) in the first ``shift_day`` days and ``rho_after`` later, each keeping its marginal
    distribution; ``dirty`` adds missing numbers and categories and, later, an unseen category."""
    n = days * ROWS_PER_DAY
    df = logs_factory(n, seed=seed, id_prefix=f"d{seed}-")
    df["ts"] = start.tz_localize("UTC") + pd.to_timedelta(np.arange(n) * 86400 / ROWS_PER_DAY, unit="s")
    rng = np.random.default_rng(seed + 1)
    after = np.arange(n) >= shift_day * ROWS_PER_DAY
    rho = np.where(after, rho_after, 0.95)
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    df["income"] = np.exp(10.5 + 0.4 * a)
    df["credit_history_years"] = 30 * ndtr(b)
    if dirty:
        df.loc[rng.random(n) < 0.1, "num_open_accounts"] = np.nan
        df.loc[rng.random(n) < 0.05, "housing"] = None
        df.loc[after & (rng.random(n) < 0.05), "purpose"] = "crypto"
    return df


def sampled(con, schema, w: Window, columns: list[str], limit: int, per_day: bool) -> pd.DataFrame:
    """The documented sample, written independently: the ``limit`` rows with the smallest MD5 of their
    prediction id (per day, or over the window), in time order."""
    cols = ", ".join(f'"{c}"' for c in columns)
    part = "PARTITION BY date_trunc('day', ts)" if per_day else ""
    return con.execute(f"SELECT ts, {cols} FROM (SELECT *, row_number() OVER ({part} ORDER BY md5(prediction_id)) "
                       f"AS r FROM {schema.table} WHERE ts >= ? AND ts < ?) WHERE r <= ? ORDER BY ts",
                       [w.start, w.end, limit]).df()


def export(ctx, tmp_path: Path, name: str, ref: Window, cur: Window, columns: list[str],
           limits: tuple[int, int] | None) -> dict[str, str]:
    """Parquet files of the rows NannyML gets: all of them, or the sample ``limits`` = (reference, per day).
    A missing category reaches NannyML as None (pandas reads Parquet nulls of a string column so)."""
    schema = ctx.schema("credit-risk")
    paths = {}
    with ctx.connect("credit-risk") as con:
        for side, w in (("reference", ref), ("analysis", cur)):
            if limits is None:
                cols = ", ".join(f'"{c}"' for c in columns)
                df = con.execute(f"SELECT ts, {cols} FROM {schema.table} WHERE ts >= ? AND ts < ? ORDER BY ts",
                                 [w.start, w.end]).df()
            else:
                df = sampled(con, schema, w, columns, limits[0] if side == "reference" else limits[1],
                             per_day=side == "analysis")
            paths[side] = str(tmp_path / f"{name}-{side}.parquet")
            df.to_parquet(paths[side], index=False)
    return paths


def max_diff(report, nml: dict) -> float:
    """Largest |Vigil − NannyML| over every chunk (reference chunks and analysis chunks); alerts and
    thresholds must be equal."""
    ours = report.buckets.set_index("bucket")
    theirs = nml["reference_chunks"] + nml["chunks"]
    assert len(theirs) == len(ours)
    worst = 0.0
    for chunk in theirs:
        row, value = ours.loc[pd.Timestamp(chunk["key"])], chunk["domain_classifier_auroc"]
        assert not math.isnan(row["value"]), (chunk["key"], row["note"])
        worst = max(worst, abs(float(row["value"]) - value["value"]))
        assert bool(row["alert"]) == bool(value["alert"]), (chunk["key"], row["value"], value)
        assert (row["lower_threshold"], row["upper_threshold"]) == (value["lower_threshold"],
                                                                    value["upper_threshold"])
    return worst


def test_classifier_equals_nannyml_on_the_same_rows_and_chunks(ctx, store, schema, logs_factory, write_file,
                                                               tmp_path):
    cfg = ctx.model("credit-risk")
    features = list(cfg.features)
    # (seed, correlation after the first week, dirty, sample bound: None = every row fits the default bound)
    cases = [(41, -0.95, True, None), (42, 0.95, False, (1000, 200))]
    jobs, reports = [], []
    for i, (seed, rho, dirty, limits) in enumerate(cases):
        start = pd.Timestamp("2026-01-01") + pd.DateOffset(months=i)
        ref, cur = windows(start)
        store.ingest([write_file(joint_shift(logs_factory, seed, start, rho, dirty), f"d{seed}.parquet")], schema)
        kw = {} if limits is None else {"max_reference_rows": limits[0], "max_rows": limits[1]}
        reports.append(compute_classifier(ctx, "credit-risk", Window(ref.start, cur.end), reference=ref, **kw))
        jobs.append({"method": "domain_classifier", "timestamp": "ts", "chunk_period": "D", "columns": features,
                     "options": {"hyperparameters": LGBM_PARAMS},
                     **export(ctx, tmp_path, f"d{seed}", ref, cur, features, limits)})
    results = run_nannyml({"jobs": jobs})["results"]
    for report, nml in zip(reports, results, strict=True):
        diff = max_diff(report, nml)
        print(f"domain classifier max_abs_diff vs NannyML: {diff:.2e}")
        assert diff < TOL
    flipped, bounded = reports
    analysis = flipped.buckets[flipped.buckets["period"] == "analysis"]
    assert len(analysis) == 7 and analysis["alert"].all() and analysis["value"].min() > 0.8
    assert (flipped.buckets["period"] == "reference").sum() == 7 and flipped.n_reference_sampled == 7 * ROWS_PER_DAY
    assert bounded.n_reference == 7 * ROWS_PER_DAY and bounded.n_reference_sampled == 1000
    after = bounded.buckets[bounded.buckets["period"] == "analysis"]
    assert (after["n"] == ROWS_PER_DAY).all() and (after["n_sampled"] == 200).all()
    assert "at most 200 rows per day" in bounded.sample_note and "1,000 of the reference's 2,100" in bounded.sample_note
    again = compute_classifier(ctx, "credit-risk", Window(bounded.window.start, bounded.window.end),
                               reference=bounded.reference, max_reference_rows=1000, max_rows=200)
    assert again.buckets["value"].tolist() == bounded.buckets["value"].tolist()  # deterministic sample and fit


def test_bad_input_reads_as_a_message(ctx, store, schema, logs_factory, write_file):
    start = pd.Timestamp("2026-01-01")
    ref, cur = windows(start)
    df = joint_shift(logs_factory, 43, start, 0.95)
    day9 = (df["ts"] >= "2026-01-09") & (df["ts"] < "2026-01-10")
    df = df[~day9 | (np.arange(len(df)) % 10 == 0)]  # 30 rows that day
    store.ingest([write_file(df, "d43.parquet")], schema)
    r = compute_classifier(ctx, "credit-risk", cur, reference=ref)
    thin = r.buckets.set_index("bucket").loc[pd.Timestamp("2026-01-09")]
    assert math.isnan(thin["value"]) and not thin["alert"] and "too few rows: 30 sampled" in thin["note"]
    assert r.summary()["scored_buckets"] == 6
    # a reference of one day: inside it there is no other reference row to compare a bucket with
    one_day = Window(ref.start, ref.start + pd.Timedelta(days=1).to_pytimedelta())
    inside = compute_classifier(ctx, "credit-risk", one_day, reference=one_day).buckets.iloc[0]
    assert math.isnan(inside["value"]) and "too few reference rows outside this bucket: 0" in inside["note"]
    with pytest.raises(VigilError, match="needs at least 200"):
        compute_classifier(ctx, "credit-risk", cur, reference=Window(ref.start, ref.start + pd.Timedelta(
            minutes=20).to_pytimedelta()))
    with pytest.raises(VigilError, match="no predictions of model credit-risk"):
        compute_classifier(ctx, "credit-risk", Window(cur.end, cur.end + pd.Timedelta(days=2).to_pytimedelta()),
                           reference=ref)
    with pytest.raises(VigilError, match="at least 100 rows per bucket"):
        compute_classifier(ctx, "credit-risk", cur, reference=ref, max_rows=MIN_ROWS - 1)


def test_missing_feature_column_is_named(settings, tmp_path, logs_factory, write_file, monkeypatch, capsys):
    """A feature without values in the reference (configured after those logs were ingested) is named."""
    from dashboard.context import load_context

    text = DEMO_CONFIG.read_text().replace('data_dir = "."', f'data_dir = "{settings.data_dir}"')
    path = tmp_path / "vigil.toml"
    path.write_text(text)
    ctx = load_context(str(path))
    start = pd.Timestamp("2026-01-01")
    ctx.store.ingest([write_file(joint_shift(logs_factory, 44, start, 0.95), "d44.parquet")],
                     ctx.schema("credit-risk"))
    path.write_text(text.replace('[models.credit-risk.features]\n', '[models.credit-risk.features]\nsavings = '
                                 '"numerical"\n'))
    ref, cur = windows(start)
    monkeypatch.setenv("VIGIL_CONFIG", str(path))
    code = run_cli(cli, ["drift", "-m", "credit-risk", "--multivariate", "--method", "classifier", "--current",
                         cur.label, "--reference", ref.label])
    err = capsys.readouterr().err
    assert code == 2 and "has no values of savings" in err and "Traceback" not in err


def test_cli_and_policy(ctx, store, schema, logs_factory, write_file, monkeypatch):
    start = pd.Timestamp("2026-01-01")
    ref, cur = windows(start)
    store.ingest([write_file(joint_shift(logs_factory, 45, start, -0.95), "d45.parquet")], schema)
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    base = ["drift", "--model", "credit-risk", "--multivariate", "--current", cur.label, "--reference", ref.label]
    args = [*base, "--method", "classifier", "--max-rows", "250"]
    out = vigil(*args, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["summary"]["method"] == "domain_classifier" and data["summary"]["alerting_buckets"] == 7
    assert data["summary"]["max_rows"] == 250 and all(b["n_sampled"] == 250 for b in data["buckets"])
    text = vigil(*args, "--fail-on-drift")
    assert text.returncode == 1, text.stderr  # every day alerts
    assert "domain classifier ROC AUC" in text.stdout and "ALERT" in text.stdout
    assert "at most 250 rows per day" in text.stdout and "2,100 of the reference's 2,100" in text.stdout
    pca = vigil(*base)  # no --method: the PCA reconstruction error, as before
    assert pca.returncode == 0 and "PCA reconstruction error" in pca.stdout
    bad = vigil(*base, "--max-rows", "250")
    assert bad.returncode == 2 and "apply to --method classifier only" in bad.stderr
    assert "Traceback" not in bad.stderr
    policies = [(PolicySpec("dc", "domain_classifier_auroc", "<=", 0.65, params={"reference": ref.label}), "config"),
                (PolicySpec("dc_share", "domain_classifier_alert_share", "<=", 0.1,
                            params={"reference": ref.label, "max_rows": 250}), "config")]
    ev = evaluate(ctx, "credit-risk", window=cur.label, policies=policies)
    auroc, share = ev.results
    assert auroc.verdict == FAIL and auroc.value > 0.8 and auroc.subject is not None
    assert share.verdict == FAIL and share.value == 1.0 and "at most 250 rows per day" in share.detail
    calm = evaluate(ctx, "credit-risk", window=ref.label, policies=policies[:1])
    assert calm.results[0].verdict == PASS  # the reference's own days, each against the rest of it


def test_drift_page_offers_the_classifier(monkeypatch, settings, store, schema, logs_factory, write_file,
                                          fresh_caches):
    """On the Drift page the multivariate panel switches to the domain classifier and states its sample."""
    start = pd.Timestamp("2026-01-01")
    df = joint_shift(logs_factory, 46, start, -0.95, days=16, shift_day=14)
    store.ingest([write_file(df, "d46.parquet")], schema)
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    at = AppTest.from_file(str(REPO / "pages" / "2_drift.py"), default_timeout=300).run()
    at.radio(key="drift_ref_kind").set_value("Time window").run()
    at.date_input(key="drift_ref_window").set_value((date(2026, 1, 1), date(2026, 1, 7))).run()
    assert not at.exception, at.exception
    assert at.radio(key="drift_mv_method").value == "PCA reconstruction error"
    at.radio(key="drift_mv_method").set_value("Domain classifier (LightGBM)").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    caption = next(c.value for c in at.caption if "domain classifier" in c.value)
    table = next(d.value for d in at.dataframe if "ROC AUC" in d.value.columns)
    assert len(table) == 16 and "at most 2,000 rows per day" in caption
    assert f"{int(table['alert'].sum())} of 16 days alert" in caption
    after = table[table["period"] == "analysis"]  # the default reference: the first 14 days
    assert len(after) == 2 and after["alert"].all() and (after["ROC AUC"] > 0.8).all()
