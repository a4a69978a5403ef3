"""Benchmark: `vigil ingest` of one Parquet file vs a bare DuckDB CREATE TABLE AS read_parquet.

Both load the same file into a fresh DuckDB file in the same run. `vigil ingest` also validates every
row (types, nulls, classes, probabilities, timestamps), checks duplicate ids within the file and against
the store, hashes the file for idempotency, and records a manifest entry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, peak_rss_mb, write_result

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "dashboard" / "demo" / "vigil.toml"


def make_parquet(path: Path, rows: int, seed: int = 7) -> None:
    """Write ``rows`` demo-shaped prediction rows in row groups of 1M (vectorised, bounded memory)."""
    rng = np.random.default_rng(seed)
    writer = None
    start = np.datetime64("2026-10-01T00:00:00", "ms")
    step = max(1, int(30 * 86_400_000 / max(rows, 1)))
    for offset in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - offset)
        ids = np.char.add("p", np.arange(offset, offset + n).astype(str))
        proba = rng.uniform(0.02, 0.98, n)
        table = pa.table({
            "prediction_id": ids,
            "ts": pa.array(start + (np.arange(offset, offset + n) * step).astype("timedelta64[ms]"),
                           type=pa.timestamp("ms", tz="UTC")),
            "model_version": np.where(rng.random(n) < 0.8, "1", "2"),
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.lognormal(10.5, 0.4, n),
            "loan_amount": rng.uniform(1_000, 40_000, n),
            "loan_term_months": rng.choice([12.0, 24.0, 36.0, 60.0], n),
            "credit_history_years": rng.uniform(0, 30, n),
            "debt_to_income": rng.uniform(0, 0.8, n),
            "num_open_accounts": rng.integers(0, 15, n).astype(float),
            "employment_type": rng.choice(["salaried", "self_employed", "unemployed"], n),
            "housing": rng.choice(["own", "rent", "mortgage"], n),
            "purpose": rng.choice(["car", "home", "education", "business"], n),
            "sex": rng.choice(["male", "female"], n),
            "prediction": np.where(proba >= 0.5, "good", "bad"),
            "proba_good": proba,
            "proba_bad": 1 - proba,
            "latency_ms": rng.gamma(2.0, 20.0, n),
            "status": np.where(rng.random(n) < 0.01, "error", "ok"),
        })
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def bench_token(users_file: Path) -> str:
    """A data scientist and an API token for the benchmark's `vigil ingest` runs."""
    from dashboard.access import users
    from dashboard.access.roles import Actor

    setup = Actor("bench", "admin")
    users.add_user(users_file, setup, "bench-ingest", "data_scientist", "bench-ingest-password")
    return users.create_token(users_file, setup, "bench-ingest", label="bench")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-ingest-"))
    try:
        data = work / "logs.parquet"
        t0 = time.perf_counter()
        make_parquet(data, args.rows)
        gen_seconds = time.perf_counter() - t0

        bare_db = work / "bare.duckdb"

        def reset_bare() -> None:
            bare_db.unlink(missing_ok=True)

        def bare() -> None:
            con = duckdb.connect(str(bare_db))
            con.execute(f"CREATE TABLE logs AS SELECT * FROM read_parquet('{data}')")
            con.close()

        reference_seconds = median_seconds(bare, args.repeats, setup=reset_bare)

        vigil_dir = work / "vigil"
        env = {**os.environ, "VIGIL_DATA_DIR": str(vigil_dir), "VIGIL_CONFIG": str(CONFIG),
               "VIGIL_USERS_FILE": str(work / "users.toml")}
        env["VIGIL_TOKEN"] = bench_token(work / "users.toml")  # `vigil ingest` acts as an authenticated user
        vigil_bin = str(Path(sys.executable).parent / "vigil")

        def reset_vigil() -> None:
            shutil.rmtree(vigil_dir, ignore_errors=True)

        def vigil() -> None:
            subprocess.run([vigil_bin, "ingest", "--model", "credit-risk", str(data)], env=env, check=True,
                           stdout=subprocess.DEVNULL)

        vigil_seconds = median_seconds(vigil, args.repeats, setup=reset_vigil)
        con = duckdb.connect(str(vigil_dir / "vigil.duckdb"), read_only=True)
        stored = con.execute("SELECT count(*) FROM logs_credit_risk").fetchone()[0]  # type: ignore[index]
        con.close()
        again = subprocess.run([vigil_bin, "ingest", "--model", "credit-risk", str(data)], env=env, check=True,
                               capture_output=True, text=True)
        result = {
            "rows": args.rows, "vigil_seconds": vigil_seconds, "reference": "duckdb CREATE TABLE AS read_parquet",
            "reference_seconds": reference_seconds, "speedup": reference_seconds / vigil_seconds,
            "peak_rss_mb": peak_rss_mb(children=True), "bench_process_peak_rss_mb": peak_rss_mb(),
            "rows_stored": stored, "rows_equal": stored == args.rows,
            "reingest_added_nothing": "0 rows added" in again.stdout,
            "file_mb": data.stat().st_size / 2**20, "generate_seconds": gen_seconds, "repeats": args.repeats,
        }
        write_result("ingest", result)
        print(f"ingest: {args.rows:,} rows: vigil {vigil_seconds:.2f} s vs bare read_parquet "
              f"{reference_seconds:.2f} s -> speed ratio {result['speedup']:.2f} (target >= 0.5); "
              f"peak RSS {result['peak_rss_mb']:.0f} MB; rows equal: {result['rows_equal']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
