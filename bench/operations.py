"""Benchmark: hourly p50/p95/p99 latency over 30 days of logs, Vigil vs pandas ``groupby().quantile()``.

Both work on identical data in the same run: the same numpy arrays are loaded into the model's log table
of a fresh Vigil store (untimed) and into a pandas DataFrame (untimed). Ingestion then builds the latency
rollup, as ``vigil ingest`` does inside each file's transaction; that one-off cost is timed on its own
(``rollup_build_seconds``, for all 10M rows at once: hour and day grains, all versions and per version).
Timed on every view:

* Vigil: the query the Operations page runs for its latency chart (``connectors.queries.operations.
  latency_stats`` with ``bucket="hour"``: exact quantiles, mean, max, counts per hour; whole hours from the
  rollup, partial edge hours live), including opening the store's short-lived connection;
* Vigil live: the same statistics computed from the 10M rows without the rollup (``vigil_live_seconds``);
* pandas: ``df.groupby(df["ts"].dt.floor("h"))["latency_ms"].quantile([0.5, 0.95, 0.99])`` on the
  in-memory frame (bucketing included; reading data into memory is not timed): ``reference_seconds``;
* pandas end to end: the same after reading the window's ``ts, latency_ms`` out of the store into a
  DataFrame (what a dashboard doing the work in pandas would pay on every refresh):
  ``reference_with_load_seconds``.

``speedup`` is ``reference_seconds / vigil_seconds`` (pandas given its data in memory, the strictest
comparison); ``speedup_end_to_end`` uses the end-to-end pandas time; ``speedup_live`` compares pandas with
Vigil's live computation. The window starts and ends mid-hour, so the edge hours are computed live.

Agreement: the largest absolute difference between the two over every hour and quantile. The full
``compute_operations`` report (overall, per hour, per version) is timed as well, for information.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import median_seconds, peak_rss_mb, write_result

from connectors.queries import latency_rollup
from connectors.queries.operations import latency_stats
from connectors.windows import Window
from dashboard.context import Context
from dashboard.monitoring.operations import compute_operations
from dashboard.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "dashboard" / "demo" / "vigil.toml"
START = datetime(2026, 10, 1)
DAYS = 30
QS = np.array([0.5, 0.95, 0.99])


def make_arrays(rows: int, seed: int = 11) -> dict[str, np.ndarray]:
    """30 days of timestamps (ms resolution), gamma latencies with a spike, status, two versions."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, DAYS * 86_400_000, rows))
    ts = np.datetime64(START, "ms") + offsets.astype("timedelta64[ms]")
    latency = rng.gamma(2.0, 20.0, rows)
    spike = (offsets >= 12 * 86_400_000) & (offsets < 12 * 86_400_000 + 3 * 3_600_000)
    latency[spike] *= 6
    return {"ts": ts, "latency_ms": latency.round(3),
            "status": np.where(rng.random(rows) < 0.01, "error", "ok"),
            "model_version": np.where(rng.random(rows) < 0.8, "1", "2")}


def load_store(ctx: Context, arrays: dict[str, np.ndarray]) -> None:
    """Fill the model's log table with the arrays (columns the query does not read stay NULL).

    An Arrow table keeps the strings compact; the ids are generated inside DuckDB.
    """
    schema = ctx.schema("credit-risk")
    table = pa.table({k: pa.array(v) for k, v in arrays.items()})
    with ctx.store.connect() as con:
        ctx.store.ensure_model(schema, con)
        con.register("bench_arrow", table)
        con.execute(f"INSERT INTO {schema.table} BY NAME SELECT 'p' || row_number() OVER () AS prediction_id, "
                    "'credit-risk' AS model_name, 'good' AS prediction, * FROM bench_arrow")
        con.unregister("bench_arrow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None,
                        help="Write the JSON here instead of bench/results/operations.json (tests).")
    args = parser.parse_args()

    arrays = make_arrays(args.rows)
    # Mid-hour edges: the page's windows rarely fall on the hour, so the benchmark pays for the live edges.
    window = Window(START + timedelta(minutes=30), START + timedelta(days=DAYS, minutes=-30))
    with tempfile.TemporaryDirectory(prefix="vigil-bench-ops-") as tmp:
        os.environ["VIGIL_DATA_DIR"] = tmp
        for key in ("VIGIL_CONFIG", "VIGIL_DUCKDB_PATH"):
            os.environ.pop(key, None)
        ctx = Context(load_settings(CONFIG))
        load_store(ctx, arrays)
        schema = ctx.schema("credit-risk")
        out: dict[str, pd.DataFrame] = {}

        def build_rollup() -> None:
            with ctx.store.connect() as con:
                latency_rollup.refresh(con, schema)

        rollup_build_seconds = median_seconds(build_rollup, 1)

        def vigil() -> None:
            with ctx.store.connect() as con:
                out["vigil"] = latency_stats(con, schema, window.start, window.end, bucket="hour")

        def vigil_live() -> None:
            with ctx.store.connect() as con:
                out["vigil_live"] = latency_stats(con, schema, window.start, window.end, bucket="hour",
                                                  use_rollup=False)

        vigil_seconds = median_seconds(vigil, args.repeats)
        vigil_live_seconds = median_seconds(vigil_live, args.repeats)
        report_seconds = median_seconds(lambda: compute_operations(ctx, "credit-risk", window, bucket="hour"),
                                        args.repeats)

        inside = (arrays["ts"] >= np.datetime64(window.start)) & (arrays["ts"] < np.datetime64(window.end))
        mem = {"df": pd.DataFrame({"ts": pd.to_datetime(arrays["ts"][inside]),
                                   "latency_ms": arrays["latency_ms"][inside]})}
        del arrays

        def reference() -> None:
            df = mem["df"]
            out["pandas"] = df.groupby(df["ts"].dt.floor("h"))["latency_ms"].quantile(QS).unstack()

        reference_seconds = median_seconds(reference, args.repeats)
        mem.clear()

        def reference_with_load() -> None:
            with ctx.store.connect() as con:
                frame = con.execute(f"SELECT ts, latency_ms FROM {schema.table} WHERE ts >= ? AND ts < ?",
                                    [window.start, window.end]).df()
            out["pandas_loaded"] = (frame.groupby(frame["ts"].dt.floor("h"))["latency_ms"]
                                    .quantile(QS).unstack())

        reference_with_load_seconds = median_seconds(reference_with_load, args.repeats)

    got = out["vigil"].set_index("bucket")[["p50_ms", "p95_ms", "p99_ms"]]
    ref = out["pandas"]
    same_buckets = len(got) == len(ref) and bool((got.index.values == ref.index.values).all())
    max_abs_diff = float("inf")
    if same_buckets:
        others = [ref, out["pandas_loaded"], out["vigil_live"].set_index("bucket")[["p50_ms", "p95_ms", "p99_ms"]]]
        same_buckets = all(len(o) == len(got) for o in others)
        if same_buckets:
            max_abs_diff = max(float(np.abs(got.to_numpy() - o.to_numpy()).max()) for o in others)
    result = {
        "rows": args.rows, "buckets": len(got), "vigil_seconds": round(vigil_seconds, 4),
        "vigil_live_seconds": round(vigil_live_seconds, 4), "rollup_build_seconds": round(rollup_build_seconds, 4),
        "vigil_full_report_seconds": round(report_seconds, 4), "reference": "pandas groupby().quantile()",
        "reference_seconds": round(reference_seconds, 4), "speedup": round(reference_seconds / vigil_seconds, 2),
        "reference_with_load_seconds": round(reference_with_load_seconds, 4),
        "speedup_end_to_end": round(reference_with_load_seconds / vigil_seconds, 2),
        "speedup_live": round(reference_seconds / vigil_live_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1), "same_buckets": same_buckets, "max_abs_diff": max_abs_diff,
        "repeats": args.repeats,
    }
    if args.output is None:
        write_result("operations", result)
    else:
        args.output.write_text(json.dumps({"name": "operations", **result}, indent=2))
    print(f"operations: {args.rows:,} rows, {len(got)} hours: vigil {vigil_seconds:.3f}s "
          f"(live {vigil_live_seconds:.3f}s, rollup built once in {rollup_build_seconds:.3f}s, "
          f"full report {report_seconds:.3f}s), pandas {reference_seconds:.3f}s in memory "
          f"/ {reference_with_load_seconds:.3f}s with load, speedup {result['speedup']}x "
          f"/ {result['speedup_end_to_end']}x, max_abs_diff {max_abs_diff:.3g}, peak {result['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
