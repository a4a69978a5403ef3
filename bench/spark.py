"""Benchmark: Vigil's drift on Spark (local[2]) vs Evidently's legacy Spark engine on the same session,
and Vigil on DuckDB, over the same Parquet data.

``--rows`` current rows (default 10M) and ``--ref-rows`` reference rows (default a tenth), 20 numerical +
5 categorical columns, in one Parquet folder that Spark reads in place (the reference is the first day,
the current window the next two) and that DuckDB ingests once (untimed). Evidently's Spark engine
(``evidently.legacy.spark``) supports Wasserstein and Jensen-Shannon over binned values; with more than
1000 reference rows those are also the default tests, so both judge every column with the same method.
Reported: times (medians of ``--repeats``), per-column verdict agreement with Evidently, the gap between
Evidently's 1000-bin Wasserstein and the exact one, the largest relative difference of Vigil-on-Spark
scores from Vigil-on-DuckDB, and with ``--scaling`` Vigil-on-Spark at a tenth of the rows too.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import median_seconds, peak_rss_mb, write_result

from connectors.windows import Window
from dashboard.context import Context
from dashboard.monitoring.drift import DriftResult, compute_drift
from dashboard.settings import settings_from_mapping

MODEL = "bench-spark"
NUM = [f"n{i:02d}" for i in range(20)]
CAT = [f"c{i}" for i in range(5)]
DAY0 = datetime(2026, 5, 1)
REF = Window(DAY0, DAY0 + timedelta(days=1))
CUR = Window(DAY0 + timedelta(days=1), DAY0 + timedelta(days=3))
CHUNK = 1_000_000


def _chunk(rng: np.random.Generator, n: int, start: int, day0: datetime, days: int, shift: float) -> pa.Table:
    cols: dict[str, Any] = {
        "prediction_id": pa.array([f"p{i}" for i in range(start, start + n)]),
        "ts": pa.array(np.datetime64(day0, "us") + rng.integers(0, days * 86_400_000_000, n).astype("timedelta64[us]")),
        "model_version": pa.array(["1"] * n),
        "prediction": pa.array(np.where(rng.uniform(size=n) < 0.3, "yes", "no")),
    }
    for i, c in enumerate(NUM):
        cols[c] = pa.array(rng.normal(shift * (i % 3 == 0), 1.0 + 0.05 * i, n))
    for i, c in enumerate(CAT):
        p = np.array([0.5, 0.3, 0.15, 0.05]) if i % 2 else np.array([0.25, 0.25, 0.25, 0.25])
        if shift and i == 0:
            p = np.array([0.4, 0.3, 0.2, 0.1])
        cols[c] = pa.array(np.array(["a", "b", "c", "d"])[rng.choice(4, n, p=p)])
    return pa.table(cols)


def write_data(folder: Path, rows: int, ref_rows: int, seed: int = 0) -> None:
    """Reference rows on day 1, current rows on days 2-3 (a third of the numerical columns shifted)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    part, written = 0, 0
    for n_total, day0, days, shift in ((ref_rows, DAY0, 1, 0.0), (rows, DAY0 + timedelta(days=1), 2, 0.05)):
        done = 0
        while done < n_total:
            n = min(CHUNK, n_total - done)
            pq.write_table(_chunk(rng, n, written, day0, days, shift), folder / f"part-{part:04d}.parquet")
            part, done, written = part + 1, done + n, written + n


def context(tmp: Path, engine: str, lake: Path | None = None) -> Context:
    spec: dict[str, Any] = {"features": {**{c: "numerical" for c in NUM}, **{c: "categorical" for c in CAT}},
                            "classes": ["no", "yes"], "favourable": "yes", "extra_columns": "ignore",
                            "engine": engine, "reference": {"source": "window", "window": REF.label}}
    if lake is not None:
        spec["lake"] = {"logs": str(lake)}
    raw = {"vigil": {"data_dir": str(tmp / engine)}, "spark": {"master": "local[2]", "conf": {
        "spark.sql.shuffle.partitions": "8", "spark.driver.memory": "4g"}}, "models": {MODEL: spec}}
    return Context(settings_from_mapping(raw, env={}, base_dir=tmp))


def evidently_spark(spark: Any, lake: Path) -> tuple[dict[str, tuple[float, bool, str]], float]:
    """Evidently's DataDriftTable on its Spark engine over the same rows: per column (score, drifted, test)."""
    from evidently.legacy.metrics import DataDriftTable
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report
    from evidently.legacy.spark.engine import SparkEngine
    from pyspark.sql import functions as F

    data = spark.read.parquet(str(lake))
    ref = data.where((F.col("ts") >= REF.start) & (F.col("ts") < REF.end)).select(*NUM, *CAT)
    cur = data.where((F.col("ts") >= CUR.start) & (F.col("ts") < CUR.end)).select(*NUM, *CAT)
    mapping = ColumnMapping(numerical_features=NUM, categorical_features=CAT, target=None, prediction=None)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = Report(metrics=[DataDriftTable(columns=[*NUM, *CAT])])
        report.run(reference_data=ref, current_data=cur, column_mapping=mapping, engine=SparkEngine)
        result = report.as_dict()["metrics"][0]["result"]["drift_by_columns"]
    seconds = time.perf_counter() - start
    return {c: (float(r["drift_score"]), bool(r["drift_detected"]), str(r["stattest_name"]))
            for c, r in result.items()}, seconds


def by_column(result: DriftResult) -> dict[str, Any]:
    return {c.column: c for c in result.columns}


def rel_diff(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b), 1e-300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000, help="current rows (default 10M)")
    ap.add_argument("--ref-rows", type=int, default=None, help="reference rows (default rows / 10)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scaling", action="store_true", help="also time Vigil-on-Spark at a tenth of the rows")
    args = ap.parse_args()
    ref_rows = args.ref_rows or max(args.rows // 10, 1001)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-spark-") as tmpdir:
        tmp = Path(tmpdir)
        lake = tmp / "lake"
        write_data(lake, args.rows, ref_rows)
        spark_ctx = context(tmp, "spark", lake)
        duck_ctx = context(tmp, "duckdb")
        report = duck_ctx.store.ingest(sorted(lake.glob("*.parquet")), duck_ctx.schema(MODEL))
        assert not report.rejected, report.problem_lines()

        results: dict[str, DriftResult] = {}

        def run(name: str, ctx: Context) -> None:
            results[name] = compute_drift(ctx, MODEL, CUR, reference=REF)

        spark_ctx.engine(MODEL).connect().__enter__()  # start the JVM before timing (not part of a page view)
        vigil_spark = median_seconds(lambda: run("spark", spark_ctx), args.repeats)
        vigil_duck = median_seconds(lambda: run("duckdb", duck_ctx), args.repeats)
        spark = spark_ctx.engine(MODEL).session()  # type: ignore[attr-defined]
        ev_times, ev_cols = [], {}
        for _ in range(args.repeats):
            ev_cols, sec = evidently_spark(spark, lake)
            ev_times.append(sec)
        ev_seconds = sorted(ev_times)[len(ev_times) // 2]
        scaling = None
        if args.scaling:
            small = tmp / "lake-small"
            write_data(small, args.rows // 10, ref_rows, seed=1)
            small_ctx = context(tmp / "small", "spark", small)
            small_s = median_seconds(lambda: compute_drift(small_ctx, MODEL, CUR, reference=REF), args.repeats)
            scaling = {"rows_small": args.rows // 10, "vigil_spark_seconds_small": small_s,
                       "vigil_spark_seconds": vigil_spark, "time_ratio": vigil_spark / small_s}

    vs, vd = by_column(results["spark"]), by_column(results["duckdb"])
    cols = [*NUM, *CAT]
    mismatched = [c for c in cols if vs[c].drifted != ev_cols[c][1]]
    methods = {c: (vs[c].method, ev_cols[c][2]) for c in cols}
    max_vs_duck = max(rel_diff(vs[c].score or 0.0, vd[c].score or 0.0) for c in vd if vd[c].score is not None)
    w_gap = max((rel_diff(vs[c].score or 0.0, ev_cols[c][0]) for c in NUM), default=0.0)
    js_gap = max((rel_diff(vs[c].score or 0.0, ev_cols[c][0]) for c in CAT), default=0.0)
    out = {
        "rows": args.rows, "reference_rows": ref_rows, "columns": len(cols),
        "vigil_seconds": vigil_spark, "reference": "evidently legacy SparkEngine DataDriftTable (same session)",
        "reference_seconds": ev_seconds, "speedup": ev_seconds / vigil_spark,
        "evidently_spark_seconds": ev_seconds, "speedup_vs_evidently_spark": ev_seconds / vigil_spark,
        "vigil_duckdb_seconds": vigil_duck, "max_rel_diff_vs_duckdb": max_vs_duck,
        "verdicts_equal": not mismatched, "verdict_mismatches": mismatched,
        "evidently_binned_wasserstein_max_rel_diff": w_gap, "jensen_shannon_max_rel_diff": js_gap,
        "methods": methods, "dataset_drift": results["spark"].dataset_drift, "scaling": scaling,
        "peak_rss_mb": peak_rss_mb(), "master": "local[2]",
    }
    path = write_result("spark", out)
    print(f"spark: {args.rows:,} + {ref_rows:,} rows, {len(cols)} columns: Vigil on Spark {vigil_spark:.2f} s, "
          f"Evidently on Spark {ev_seconds:.2f} s ({out['speedup']:.2f}x), Vigil on DuckDB {vigil_duck:.2f} s; "
          f"verdicts equal: {not mismatched}; binned Wasserstein gap {w_gap:.2e}; vs DuckDB {max_vs_duck:.1e} "
          f"-> {path}")
    if not math.isfinite(out["speedup"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
