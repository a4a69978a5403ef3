"""Benchmark: CBPE, PCA reconstruction and domain-classifier drift per day, Vigil vs NannyML 0.13.

Both work on identical rows and chunks in the same run: generated logs (the demo model's features, a
positive-class probability that is overconfident, so calibration applies, and labels on every reference
row and a fifth of the current ones) are loaded into a fresh Vigil store (untimed) and exported from it
to Parquet (untimed) for NannyML, which runs in its own virtualenv (``scripts/nannyml.sh install``)
through ``scripts/nannyml_reference.py``. Reference = the first ``REFERENCE_DAYS`` days (``--ref-rows``
rows), current = the next ``CURRENT_DAYS`` days (``--rows`` rows), chunks = days.

Timed: Vigil's ``compute_estimation`` and ``compute_reconstruction`` (the Operations and Drift pages'
calls, connection included); NannyML's ``fit`` + ``estimate``/``calculate`` as its runner measures them
(reading Parquet and importing NannyML not included). ``speedup`` = NannyML seconds / Vigil seconds
over both methods; ``peak_rss_mb`` is this process's peak (Vigil's), ``reference_peak_rss_mb`` NannyML's
process. Agreement: ``max_abs_diff`` over every chunk and every value both report (estimates, sampling
errors, bands, thresholds, realised values), plus equal alerts and calibration decision.

The domain classifier trains on a bounded sample (at most 2,000 rows per day and 10,000 of the reference,
chosen in DuckDB): timed is Vigil's ``compute_classifier`` (sampling included) against NannyML on that same
sample, exported with Vigil's sampling query, with Vigil's LightGBM parameters (NannyML's defaults on one
thread); ``classifier_*`` keys report it apart, since both sides train the same LightGBM models and the
interest is agreement and the cost of the bound, not a speed ratio. ``speedup`` stays CBPE + reconstruction.

Defaults are the issue's sizes (1M reference, 10M current rows); prove it small first, e.g.
``--ref-rows 20000 --rows 100000``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import median_seconds, peak_rss_mb, write_result

from connectors.queries import domain_classifier as dcq
from connectors.queries import estimation as eq
from connectors.queries import reference as refq
from connectors.windows import Window
from dashboard.context import Context
from dashboard.monitoring.domain_classifier import (
    LGBM_PARAMS,
    MAX_BUCKET_ROWS,
    MAX_REFERENCE_ROWS,
    compute_classifier,
)
from dashboard.monitoring.estimation import METRICS, compute_estimation
from dashboard.monitoring.multivariate import compute_reconstruction
from dashboard.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "dashboard" / "demo" / "vigil.toml"
RUNNER = REPO / "scripts" / "nannyml_reference.py"
START = datetime(2026, 1, 1)
REFERENCE_DAYS, CURRENT_DAYS = 10, 30
MODEL = "credit-risk"
CBPE_FIELDS = {"estimated": "value", "sampling_error": "sampling_error", "realised": "realized",
               "upper": "upper_confidence_boundary", "lower": "lower_confidence_boundary",
               "upper_threshold": "upper_threshold", "lower_threshold": "lower_threshold"}
DRE_FIELDS = {"value": "value", "sampling_error": "sampling_error", "upper": "upper_confidence_boundary",
              "lower": "lower_confidence_boundary", "upper_threshold": "upper_threshold",
              "lower_threshold": "lower_threshold"}


def nannyml_python() -> Path:
    if os.environ.get("VIGIL_NANNYML_PYTHON"):
        return Path(os.environ["VIGIL_NANNYML_PYTHON"])
    venv = Path(os.environ.get("VIGIL_NANNYML_VENV", Path.home() / ".cache" / "vigil" / "nannyml-venv"))
    return venv / "bin" / "python"


def make_arrays(rows: int, days: int, start: datetime, seed: int, shift: float) -> dict[str, np.ndarray]:
    """``rows`` predictions over ``days`` days: features, an overconfident probability, prediction, truth."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, days * 86_400_000, rows))
    a = rng.normal(size=rows)
    b = 0.8 * a + 0.6 * rng.normal(size=rows)
    logit = rng.normal(shift, 1.5, rows)
    p = 1 / (1 + np.exp(-logit))
    logged = 1 / (1 + np.exp(-2 * logit))
    return {"ts": np.datetime64(start, "ms") + offsets.astype("timedelta64[ms]"),
            "model_version": np.full(rows, "1"), "status": np.full(rows, "ok"),
            "age": rng.integers(18, 80, rows).astype(float), "income": np.exp(10.5 + 0.4 * a),
            "loan_amount": rng.uniform(1_000, 40_000, rows), "loan_term_months": rng.choice([12.0, 36.0, 60.0], rows),
            "credit_history_years": 15 + 5 * b, "debt_to_income": rng.uniform(0, 0.8, rows) + shift / 10,
            "num_open_accounts": rng.integers(0, 15, rows).astype(float),
            "employment_type": rng.choice(["salaried", "self_employed", "unemployed"], rows),
            "housing": rng.choice(["own", "rent", "mortgage"], rows),
            "purpose": rng.choice(["car", "home", "education", "business"], rows),
            "sex": rng.choice(["male", "female"], rows), "proba_good": logged, "proba_bad": 1 - logged,
            "prediction": np.where(logged >= 0.5, "good", "bad"),
            "truth": np.where(rng.random(rows) < p, "good", "bad")}


def load(ctx: Context, arrays: dict[str, np.ndarray], prefix: str, label_share: float, seed: int) -> None:
    """Insert the rows and the labels of a ``label_share`` of them (straight into the tables Vigil reads)."""
    schema = ctx.schema(MODEL)
    truth = arrays.pop("truth")
    labelled = np.random.default_rng(seed).random(len(truth)) < label_share
    ids = np.char.add(prefix, np.arange(len(truth)).astype(str))
    table = pa.table({"prediction_id": ids, **{k: pa.array(v) for k, v in arrays.items()}})
    labels = pa.table({"prediction_id": ids[labelled], "label": truth[labelled]})
    with ctx.store.connect() as con:
        ctx.store.ensure_model(schema, con)
        con.register("bench_rows", table)
        con.execute(f"INSERT INTO {schema.table} BY NAME SELECT '{MODEL}' AS model_name, * FROM bench_rows")
        con.unregister("bench_rows")
        con.register("bench_labels", labels)
        con.execute(f"INSERT INTO current_labels BY NAME SELECT '{MODEL}' AS model_name, prediction_id, label, "
                    "'bench' AS source FROM bench_labels")
        con.unregister("bench_labels")


def export(ctx: Context, folder: Path, ref: Window, cur: Window) -> dict[str, str]:
    """The rows both sides use, as Parquet for NannyML (reference CBPE rows are the labelled ones)."""
    schema = ctx.schema(MODEL)
    cfg = ctx.model(MODEL)
    cols = ", ".join(f'"{c}"' for c in cfg.features)
    paths: dict[str, str] = {}
    with ctx.store.connect() as con:
        for side, w, where in (("cbpe_reference", ref, "WHERE yt IS NOT NULL"), ("cbpe_analysis", cur, "")):
            rel, params = eq.scored_relation(schema, "good", w.start, w.end)
            paths[side] = str(folder / f"{side}.parquet")
            con.execute(f"COPY (SELECT ts, u, yp, CAST(yt AS DOUBLE) AS yt FROM {rel} {where} ORDER BY ts, u, yp, yt) "
                        f"TO '{paths[side]}' (FORMAT parquet)", params)
        for side, w in (("dre_reference", ref), ("dre_analysis", cur)):
            paths[side] = str(folder / f"{side}.parquet")
            con.execute(f"COPY (SELECT ts, {cols} FROM {schema.table} WHERE ts >= ? AND ts < ? ORDER BY ts) "
                        f"TO '{paths[side]}' (FORMAT parquet)", [w.start, w.end])
    return paths


def export_sample(ctx: Context, folder: Path, ref: Window, cur: Window) -> dict[str, str]:
    """The domain classifier's sample (Vigil's own sampling query), in time order, as Parquet for NannyML."""
    features = list(ctx.model(MODEL).features)
    cols = ("prediction_id", "ts", *features)
    paths: dict[str, str] = {}
    with ctx.connect(MODEL) as con:
        for side, w, n, per_bucket in (("dc_reference", ref, MAX_REFERENCE_ROWS, False),
                                       ("dc_analysis", cur, MAX_BUCKET_ROWS, True)):
            src = refq.window_source(ctx.schema(MODEL), w.start, w.end, cols, None, "day")
            paths[side] = str(folder / f"{side}.parquet")
            dcq.sampled_rows(con, src, n, per_bucket)[["ts", *features]].to_parquet(paths[side], index=False)
    return paths


def run_nannyml(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([str(nannyml_python()), str(RUNNER), json.dumps(spec)], capture_output=True, text=True,
                          check=False, env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"})
    if proc.returncode:
        raise SystemExit(f"NannyML failed: {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _diff(a: Any, b: Any) -> float:
    a = None if a is None or (isinstance(a, float) and math.isnan(a)) else float(a)
    if (a is None) != (b is None):
        return math.inf
    return 0.0 if a is None else abs(a - b)


def cbpe_diff(buckets: pd.DataFrame, nml: dict[str, Any]) -> tuple[float, bool]:
    ours = buckets.set_index(["bucket", "metric"])
    worst, alerts = 0.0, True
    for chunk in nml["chunks"]:
        for m in METRICS:
            row = ours.loc[(pd.Timestamp(chunk["key"]), m)]
            worst = max([worst, *(_diff(row[k], chunk[m][v]) for k, v in CBPE_FIELDS.items())])
            alerts &= bool(row["alert"]) == bool(chunk[m]["alert"])
    return worst, alerts and len(nml["chunks"]) * len(METRICS) == len(buckets)


def dre_diff(buckets: pd.DataFrame, nml: dict[str, Any]) -> tuple[float, bool]:
    ours = buckets.set_index("bucket")
    worst, alerts = 0.0, True
    for chunk in nml["chunks"]:
        row, theirs = ours.loc[pd.Timestamp(chunk["key"])], chunk["reconstruction_error"]
        worst = max([worst, *(_diff(row[k], theirs[v]) for k, v in DRE_FIELDS.items())])
        alerts &= bool(row["alert"]) == bool(theirs["alert"])
    return worst, alerts and len(nml["chunks"]) == len(buckets)


def dc_diff(buckets: pd.DataFrame, nml: dict[str, Any]) -> tuple[float, bool]:
    ours = buckets.set_index("bucket")
    worst, alerts = 0.0, True
    for chunk in nml["chunks"]:
        row, theirs = ours.loc[pd.Timestamp(chunk["key"])], chunk["domain_classifier_auroc"]
        worst = max(worst, _diff(row["value"], theirs["value"]))
        alerts &= bool(row["alert"]) == bool(theirs["alert"])
    return worst, alerts and len(nml["chunks"]) == len(buckets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-rows", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None, help="Write the JSON here instead of bench/results/.")
    args = parser.parse_args()
    if not nannyml_python().exists():
        raise SystemExit(f"NannyML is not installed at {nannyml_python()}: run `bash scripts/nannyml.sh install`")
    ref = Window(START, START + timedelta(days=REFERENCE_DAYS))
    cur = Window(ref.end, ref.end + timedelta(days=CURRENT_DAYS))
    with tempfile.TemporaryDirectory(prefix="vigil-bench-nannyml-") as tmp:
        os.environ["VIGIL_DATA_DIR"] = tmp
        for key in ("VIGIL_CONFIG", "VIGIL_DUCKDB_PATH"):
            os.environ.pop(key, None)
        ctx = Context(load_settings(CONFIG))
        load(ctx, make_arrays(args.ref_rows, REFERENCE_DAYS, ref.start, 1, 0.0), "r", 1.0, 2)
        load(ctx, make_arrays(args.rows, CURRENT_DAYS, cur.start, 3, 0.5), "c", 0.2, 4)
        paths = {**export(ctx, Path(tmp), ref, cur), **export_sample(ctx, Path(tmp), ref, cur)}
        got: dict[str, Any] = {}

        def cbpe() -> None:
            got["cbpe"] = compute_estimation(ctx, MODEL, cur, reference=ref, bucket="day")

        def dre() -> None:
            got["dre"] = compute_reconstruction(ctx, MODEL, cur, reference=ref, bucket="day")

        def dc() -> None:
            got["dc"] = compute_classifier(ctx, MODEL, cur, reference=ref, bucket="day")

        cbpe_s = median_seconds(cbpe, args.repeats)
        dre_s = median_seconds(dre, args.repeats)
        dc_s = median_seconds(dc, args.repeats)
        vigil_rss = peak_rss_mb()
        nml_cbpe = run_nannyml({"method": "cbpe", "reference": paths["cbpe_reference"],
                                "analysis": paths["cbpe_analysis"], "timestamp": "ts", "chunk_period": "D"})
        nml_dre = run_nannyml({"method": "reconstruction", "reference": paths["dre_reference"],
                               "analysis": paths["dre_analysis"], "timestamp": "ts", "chunk_period": "D",
                               "columns": list(ctx.model(MODEL).features)})
        nml_dc = run_nannyml({"method": "domain_classifier", "reference": paths["dc_reference"],
                              "analysis": paths["dc_analysis"], "timestamp": "ts", "chunk_period": "D",
                              "columns": list(ctx.model(MODEL).features),
                              "options": {"hyperparameters": LGBM_PARAMS}})
        nml_rss = peak_rss_mb(children=True)
    cbpe_d, cbpe_alerts = cbpe_diff(got["cbpe"].buckets, nml_cbpe)
    dre_d, dre_alerts = dre_diff(got["dre"].buckets, nml_dre)
    dc_d, dc_alerts = dc_diff(got["dc"].buckets, nml_dc)
    vigil_s, ref_s = cbpe_s + dre_s, float(nml_cbpe["seconds"]) + float(nml_dre["seconds"])
    result = {"rows": args.rows, "reference_rows": args.ref_rows, "chunks": f"{CURRENT_DAYS} days",
              "vigil_seconds": vigil_s, "reference": "nannyml 0.13 (CBPE + DataReconstructionDriftCalculator)",
              "reference_seconds": ref_s, "speedup": ref_s / vigil_s,
              "cbpe_vigil_seconds": cbpe_s, "cbpe_reference_seconds": nml_cbpe["seconds"],
              "cbpe_speedup": nml_cbpe["seconds"] / cbpe_s, "reconstruction_vigil_seconds": dre_s,
              "reconstruction_reference_seconds": nml_dre["seconds"],
              "reconstruction_speedup": nml_dre["seconds"] / dre_s,
              "peak_rss_mb": vigil_rss, "reference_peak_rss_mb": nml_rss,
              "classifier_vigil_seconds": dc_s, "classifier_reference_seconds": nml_dc["seconds"],
              "classifier_sample": got["dc"].sample_note,
              "max_abs_diff": max(cbpe_d, dre_d, dc_d), "cbpe_max_abs_diff": cbpe_d, "reconstruction_max_abs_diff": dre_d,
              "classifier_max_abs_diff": dc_d, "alerts_equal": cbpe_alerts and dre_alerts and dc_alerts,
              "calibration_equal": got["cbpe"].calibration.applied == nml_cbpe["needs_calibration"]}
    if args.output:
        args.output.write_text(json.dumps({"name": "nannyml", **result}, indent=2, default=str))
    else:
        write_result("nannyml", result)
    print(f"nannyml: {args.ref_rows:,} reference + {args.rows:,} current rows, Vigil {vigil_s:.2f} s vs NannyML "
          f"{ref_s:.2f} s (speedup {result['speedup']:.1f}x; CBPE {result['cbpe_speedup']:.1f}x, reconstruction "
          f"{result['reconstruction_speedup']:.1f}x; domain classifier on its sample {dc_s:.1f} s vs "
          f"{float(nml_dc['seconds']):.1f} s), peak RSS {vigil_rss:.0f} vs {nml_rss:.0f} MB, "
          f"max_abs_diff {result['max_abs_diff']:.1e}, alerts equal {result['alerts_equal']}")


if __name__ == "__main__":
    main()
