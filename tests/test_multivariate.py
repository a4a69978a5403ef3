"""Multivariate drift: PCA reconstruction error equals NannyML's; a joint shift with unchanged marginals is
caught by it and missed by every univariate test."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

from connectors.windows import Window
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.governance.policy import FAIL, evaluate
from dashboard.monitoring.drift import compute_drift
from dashboard.monitoring.multivariate import compute_reconstruction
from dashboard.settings import PolicySpec
from tests.conftest import DEMO_CONFIG
from tests.nannyml_ref import run_nannyml

ROWS_PER_DAY = 300
TOL = 1e-9
FIELDS = {"value": "value", "sampling_error": "sampling_error", "upper": "upper_confidence_boundary",
          "lower": "lower_confidence_boundary", "upper_threshold": "upper_threshold",
          "lower_threshold": "lower_threshold"}


def windows(start: pd.Timestamp) -> tuple[Window, Window]:
    mid, end = start + pd.Timedelta(days=7), start + pd.Timedelta(days=14)
    return Window(start.to_pydatetime(), mid.to_pydatetime()), Window(mid.to_pydatetime(), end.to_pydatetime())


def joint_shift(logs_factory, seed: int, start: pd.Timestamp, rho_after: float, mean_shift: float = 0.0,
                dirty: bool = False) -> pd.DataFrame:
    """Two weeks of logs in which income and credit history are correlated (rho 0.95) in the first week
    and ``rho_after`` in the second; each keeps its marginal distribution (lognormal; uniform 0..30).
    ``mean_shift`` moves debt_to_income in the second week; ``dirty`` adds missing values and an unseen
    category in the second week (imputation and the encoder's unknown value are cross-checked too)."""
    n = 14 * ROWS_PER_DAY
    df = logs_factory(n, seed=seed, id_prefix=f"m{seed}-")
    df["ts"] = start.tz_localize("UTC") + pd.to_timedelta(np.arange(n) * 86400 / ROWS_PER_DAY, unit="s")
    rng = np.random.default_rng(seed + 1)
    after = np.arange(n) >= 7 * ROWS_PER_DAY
    rho = np.where(after, rho_after, 0.95)
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    df["income"] = np.exp(10.5 + 0.4 * a)
    df["credit_history_years"] = 30 * ndtr(b)
    df.loc[after, "debt_to_income"] += mean_shift
    if dirty:
        df.loc[(rng.random(n) < 0.1), "num_open_accounts"] = np.nan
        df.loc[after & (rng.random(n) < 0.05), "purpose"] = "crypto"
    return df


def export(ctx, tmp_path: Path, name: str, ref: Window, cur: Window, columns: list[str],
           categorical: list[str]) -> dict[str, str]:
    schema = ctx.schema("credit-risk")
    paths = {}
    cols = ", ".join(f'"{c}"' for c in columns)
    with ctx.store.connect() as con:
        for side, w in (("reference", ref), ("analysis", cur)):
            df = con.execute(f"SELECT ts, {cols} FROM {schema.table} WHERE ts >= ? AND ts < ? ORDER BY ts",
                             [w.start, w.end]).df()
            for c in categorical:  # NannyML's imputer treats NaN, not None, as missing
                df[c] = df[c].astype(object).where(df[c].notna(), np.nan)
            paths[side] = str(tmp_path / f"{name}-{side}.parquet")
            df.to_parquet(paths[side], index=False)
    return paths


def max_diff(report, nml: dict) -> float:
    worst = 0.0
    ours = report.buckets.set_index("bucket")
    assert len(nml["chunks"]) == len(ours)
    for chunk in nml["chunks"]:
        row = ours.loc[pd.Timestamp(chunk["key"])]
        theirs = chunk["reconstruction_error"]
        for mine, key in FIELDS.items():
            a, b = row[mine], theirs[key]
            a = None if a is None or (isinstance(a, float) and math.isnan(a)) else float(a)
            assert (a is None) == (b is None), (chunk["key"], mine, a, b)
            if a is not None:
                worst = max(worst, abs(a - b))
        assert bool(row["alert"]) == bool(theirs["alert"]), chunk["key"]
    return worst


def test_reconstruction_equals_nannyml_and_catches_what_univariate_misses(ctx, store, schema, logs_factory,
                                                                         write_file, tmp_path):
    cfg = ctx.model("credit-risk")
    categorical = [c for c in cfg.features if schema.columns[c] == "categorical"]
    cases = [(21, -0.95, 0.0, False), (22, 0.95, 0.3, True)]
    jobs, reports = [], []
    for i, (seed, rho, shift, dirty) in enumerate(cases):
        start = pd.Timestamp("2026-01-01") + pd.DateOffset(months=i)
        ref, cur = windows(start)
        df = joint_shift(logs_factory, seed, start, rho, shift, dirty)
        store.ingest([write_file(df, f"m{seed}.parquet")], schema)
        reports.append(compute_reconstruction(ctx, "credit-risk", cur, reference=ref, bucket="day"))
        jobs.append({"method": "reconstruction", **export(ctx, tmp_path, f"m{seed}", ref, cur, list(cfg.features),
                                                           categorical),
                     "timestamp": "ts", "chunk_period": "D", "columns": list(cfg.features)})
        if i == 0:
            univariate = compute_drift(ctx, "credit-risk", cur, ref)
    results = run_nannyml({"jobs": jobs})["results"]
    for report, nml in zip(reports, results, strict=True):
        diff = max_diff(report, nml)
        print(f"reconstruction max_abs_diff vs NannyML: {diff:.2e}")
        assert diff < TOL
    # the flipped correlation: every univariate test passes, every multivariate bucket alerts
    assert univariate.n_judged >= 10 and univariate.n_drifted == 0 and not univariate.dataset_drift
    flipped = reports[0]
    assert flipped.buckets["alert"].all() and not flipped.reference_buckets["alert"].any()
    assert flipped.buckets["value"].min() > flipped.upper_threshold  # type: ignore[operator]


def test_cli_multivariate(ctx, store, schema, logs_factory, write_file, monkeypatch, capsys):
    start = pd.Timestamp("2026-01-01")
    ref, cur = windows(start)
    store.ingest([write_file(joint_shift(logs_factory, 23, start, -0.95), "m23.parquet")], schema)
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    args = ["drift", "--model", "credit-risk", "--multivariate", "--current", cur.label, "--reference", ref.label]
    assert run_cli(cli, [*args, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"alerting_buckets": 7' in out
    assert run_cli(cli, args) == 0
    out = capsys.readouterr().out
    assert "reconstruction error" in out and "ALERT" in out
    ev = evaluate(ctx, "credit-risk", window=cur.label, policies=[(PolicySpec(
        "joint", "multivariate_alert_share", "<=", 0.1, params={"reference": ref.label}), "config")])
    assert ev.results[0].value == 1.0 and ev.results[0].verdict == FAIL


def test_demo_drift_shows_from_the_drift_day(demo_module_ctx, demo_scenario):
    """The demo's injected drift (income x1.4, a new purpose mix) alerts from its first day, not before."""
    s = demo_scenario
    window = Window(s.start, s.end)
    r = compute_reconstruction(demo_module_ctx, s.model, window, bucket="day")
    assert r.reference == Window(s.start, s.day_start(15))  # the default: the first 14 days of the logs
    assert r.first_alert == pd.Timestamp(s.drift_start)  # no alert before the drift, one on its first day
    after = r.buckets[r.buckets["bucket"] >= pd.Timestamp(s.drift_start)]
    assert after["alert"].mean() > 0.6
