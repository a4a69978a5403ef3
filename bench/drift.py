"""Benchmark: Vigil's drift (SQL in DuckDB + formulas) vs Evidently's DataDriftPreset on identical data.

Part 1: ``--rows`` reference rows + ``--rows`` current rows, 20 numerical + 5 categorical features plus
the prediction column; Vigil (``compute_drift`` over two windows of the log table) and Evidently
(``Report([DataDriftPreset()])`` on the same rows as pandas frames, types given explicitly) in one run:
time, peak memory, per-column verdict agreement and the largest relative score difference.
Part 2 (Vigil alone, skip with ``--big-rows 0``): ``--big-rows`` current rows over ``--days`` days
against the same reference, as one window and as ``drift_over_time`` with daily buckets.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import RESULTS, median_seconds, peak_rss_mb, write_result

from connectors.windows import Window
from dashboard.context import Context
from dashboard.monitoring import drift_stats as ds
from dashboard.monitoring.drift import DriftResult, compute_drift, drift_over_time
from dashboard.settings import settings_from_mapping

MODEL = "bench-drift"
NUM = [f"n{i:02d}" for i in range(20)]
CAT = [f"c{i}" for i in range(5)]
DAY0 = datetime(2026, 1, 1)
CHUNK = 1_000_000


def make_context(folder: Path) -> Context:
    raw = {"vigil": {"data_dir": str(folder)},
           "models": {MODEL: {"features": {**dict.fromkeys(NUM, "numerical"), **dict.fromkeys(CAT, "categorical")},
                              "classes": ["no", "yes"], "favourable": "yes"}}}
    # DuckDB's memory capped (the machine is shared; DuckDB spills to disk beyond it)
    raw["vigil"]["duckdb_memory_limit"] = "6GB"
    return Context(settings_from_mapping(raw, env={}, base_dir=folder))


def chunk(rng: np.random.Generator, n: int, start: datetime, seconds: float, drift: bool, offset: int,
          prefix: str) -> pa.Table:
    """``n`` rows spread over ``seconds`` from ``start``; with ``drift`` a few columns move."""
    cols: dict[str, Any] = {
        "prediction_id": np.char.add(prefix, np.arange(offset, offset + n).astype(str)),
        "ts": pa.array(np.datetime64(start, "us") + (np.arange(n) * (seconds * 1e6 / n)).astype("timedelta64[us]")),
        "model_version": np.full(n, "1"),
    }
    for i, c in enumerate(NUM):
        shift = 0.25 if drift and i < 4 else 0.0
        if i % 4 == 0:
            cols[c] = rng.normal(shift, 1.0, n)
        elif i % 4 == 1:
            cols[c] = rng.lognormal(10 + shift, 0.5, n)
        elif i % 4 == 2:
            cols[c] = rng.uniform(0, 100 * (1 + shift), n)
        else:
            cols[c] = rng.integers(0, 40 + (10 if shift else 0), n).astype(float)  # few distinct values
    for i, c in enumerate(CAT):
        k = 3 + 2 * i
        p = np.linspace(1, 3, k) / np.linspace(1, 3, k).sum() if drift and i == 0 else np.full(k, 1.0 / k)
        cols[c] = np.array([f"v{j}" for j in range(k)])[rng.choice(k, n, p=p)]
    cols["prediction"] = np.where(rng.random(n) < (0.35 if drift else 0.3), "yes", "no")
    return pa.table(cols)


def load(ctx: Context, rows_ref: int, rows_cur: int, days: int, seed: int) -> tuple[Window, Window]:
    """Reference rows on day 0, current rows over the following ``days`` days (inserted by chunks)."""
    schema = ctx.schema(MODEL)
    rng = np.random.default_rng(seed)
    with ctx.store.connect() as con:
        ctx.store.ensure_model(schema, con)
        cols = ["prediction_id", "ts", "model_version", *NUM, *CAT, "prediction"]
        for side, total, start, seconds, drift in (("r", rows_ref, DAY0, 86_400.0, False),
                                                  ("c", rows_cur, DAY0 + timedelta(days=1), 86_400.0 * days, True)):
            for off in range(0, total, CHUNK):
                n = min(CHUNK, total - off)
                frac = off / max(total, 1)
                t0 = start + timedelta(seconds=seconds * frac)
                tbl = chunk(rng, n, t0, seconds * n / max(total, 1), drift, off, side)
                con.register("bench_chunk", tbl)
                con.execute(f"INSERT INTO {schema.table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM bench_chunk")
                con.unregister("bench_chunk")
        con.execute("CHECKPOINT")
    return Window(DAY0, DAY0 + timedelta(days=1)), Window(DAY0 + timedelta(days=1), DAY0 + timedelta(days=1 + days))


def frames(ctx: Context, w: Window) -> pd.DataFrame:
    cols = ", ".join([*NUM, *CAT, "prediction"])
    return ctx.store.query_df(f"SELECT {cols} FROM {ctx.schema(MODEL).table} WHERE ts >= ? AND ts < ?",
                              [w.start, w.end])


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, dict[str, Any]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=NUM, categorical_columns=[*CAT, "prediction"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset()], include_tests=True).run(
            current_data=Dataset.from_pandas(cur, data_definition=dd),
            reference_data=Dataset.from_pandas(ref, data_definition=dd))
    d = snap.dict()
    out: dict[str, dict[str, Any]] = {}
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            out[cfg["column"]] = {"method": cfg["method"], "score": float(m["value"])}
        elif cfg["type"].endswith("DriftedColumnsCount"):
            out["__share__"] = {"share": float(m["value"]["share"])}
    for t in d["tests"]:
        params = t["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            out[params["column"]]["drifted"] = str(t["status"]).endswith("FAIL")
    return out


def agreement(mine: DriftResult, ev: dict[str, dict[str, Any]]) -> dict[str, Any]:
    verdicts_equal, methods_equal, max_rel = True, True, 0.0
    for c in mine.columns:
        e = ev[c.column]
        verdicts_equal &= c.drifted == e["drifted"]
        methods_equal &= c.method is not None and ds.METHODS[c.method].display == e["method"]
        if c.score is not None:
            denom = max(abs(e["score"]), 1e-12)
            max_rel = max(max_rel, abs(c.score - e["score"]) / denom if e["score"] else abs(c.score))
    return {"verdicts_equal": bool(verdicts_equal), "methods_equal": bool(methods_equal),
            "max_rel_score_diff": max_rel, "share_vigil": mine.share_drifted,
            "share_evidently": ev["__share__"]["share"],
            "dataset_drift_equal": mine.dataset_drift == (ev["__share__"]["share"] >= 0.5),
            "columns_drifted": sum(c.drifted for c in mine.columns), "columns": len(mine.columns)}


def save(out: dict[str, Any], output: Path | None) -> Path:
    if output is None:
        return write_result("drift", out)
    output.write_text(json.dumps({"name": "drift", **out}, indent=2, default=str))
    return output


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per side in part 1")
    ap.add_argument("--big-rows", type=int, default=10_000_000, help="current rows in part 2 (0 skips it)")
    ap.add_argument("--days", type=int, default=30, help="days (buckets) of part 2")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of Vigil (Evidently runs once)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--part2-only", action="store_true",
                    help="run only part 2 and add its numbers to the existing result file")
    ap.add_argument("--output", type=Path, default=None, help="write the JSON here instead of bench/results/")
    args = ap.parse_args()
    target = args.output or (RESULTS / "drift.json")
    with tempfile.TemporaryDirectory(prefix="vigil-bench-drift-") as tmp:
        if args.part2_only:
            out: dict[str, Any] = json.loads(target.read_text())
            out.pop("name", None)
        else:
            out = part1(args, Path(tmp) / "p1")
            path = save(out, args.output)  # part 1 is kept even if part 2 runs out of time or memory
        if args.big_rows > 0:
            out.update(part2(args, Path(tmp) / "p2"))
        path = save(out, args.output)
    line = (f"drift: {out['rows']:,}+{out['rows']:,} rows x {len(NUM) + len(CAT) + 1} cols: "
            f"vigil {out['vigil_seconds']:.2f}s, evidently {out['reference_seconds']:.1f}s, speedup "
            f"{out['speedup']:.1f}x, verdicts_equal={out['verdicts_equal']}, max_rel_diff={out['max_rel_score_diff']:.1e}")
    if args.big_rows > 0:
        line += (f"; {args.big_rows:,} current rows: one window {out['big_one_window_seconds']:.1f}s, "
                 f"{out['big_buckets']} daily buckets {out['big_over_time_seconds']:.1f}s")
    print(line + f" -> {path}")
    if not (out["verdicts_equal"] and math.isfinite(out["max_rel_score_diff"])):
        sys.exit(1)


def part1(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Vigil and Evidently on the same 2 x ``rows`` rows."""
    ctx = make_context(folder)
    t = time.perf_counter()
    ref_w, cur_w = load(ctx, args.rows, args.rows, 1, args.seed)
    load_s = time.perf_counter() - t
    result: list[DriftResult] = []
    vigil_s = median_seconds(lambda: result.append(compute_drift(ctx, MODEL, cur_w, ref_w)), args.repeats)
    vigil_rss = peak_rss_mb()
    ref, cur = frames(ctx, ref_w), frames(ctx, cur_w)
    t = time.perf_counter()
    ev = run_evidently(ref, cur)
    ev_s = time.perf_counter() - t
    del ref, cur
    return {
        "rows": args.rows, "rows_reference": args.rows, "rows_current": args.rows,
        "numerical_columns": len(NUM), "categorical_columns": len(CAT) + 1,
        "vigil_seconds": round(vigil_s, 3), "reference": "evidently 0.7 DataDriftPreset",
        "reference_seconds": round(ev_s, 3), "speedup": round(ev_s / vigil_s, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1), "vigil_peak_rss_mb": round(vigil_rss, 1),
        "load_seconds": round(load_s, 1), **agreement(result[-1], ev),
    }


def part2(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Vigil alone: ``big_rows`` current rows over ``days`` days, one window and daily buckets."""
    ctx = make_context(folder)
    ref_w, cur_w = load(ctx, args.rows, args.big_rows, args.days, args.seed + 1)
    out: dict[str, Any] = {"big_rows_current": args.big_rows, "big_memory_limit": ctx.settings.duckdb_memory_limit}
    t = time.perf_counter()
    big = compute_drift(ctx, MODEL, cur_w, ref_w)
    out["big_one_window_seconds"] = round(time.perf_counter() - t, 3)
    out["big_share_drifted"] = big.share_drifted
    t = time.perf_counter()
    over = drift_over_time(ctx, MODEL, cur_w, bucket="day", reference=ref_w)
    out["big_buckets"] = int(over["bucket"].nunique())
    out["big_over_time_seconds"] = round(time.perf_counter() - t, 3)
    out["peak_rss_mb_with_big"] = round(peak_rss_mb(), 1)
    return out


if __name__ == "__main__":
    main()
