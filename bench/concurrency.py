"""Load test: browser sessions, a cron ingest and a CI check on one store at once.

Builds (or reuses) a demo workspace of ``--rows`` predictions, starts the real app server (which owns
the store), and for ``--seconds``: ``--sessions`` Chromium sessions open pages in a loop, one more
session keeps recomputing the Drift page's hourly view over a 30-day window (the heaviest page there
is; an AppTest session in this process, because a browser cannot type a date range into Streamlit's
date picker reliably: its queries run in the app's server, which owns the store), a cron-like ``vigil ingest`` lands a new file of fresh predictions every ``--ingest-every`` seconds and
``vigil check`` runs every ``--check-every`` seconds, each as its own process like cron would start it.
Afterwards every ingested row must be in the store exactly once.

Reports (``bench/results/concurrency.json``): p50/p95 page latency (per page and overall), ingest and
check latency, the stand-alone ``vigil ops`` time against its time while the heavy drift runs, failed
ingests, ``StoreBusyError`` count, lost and duplicated rows, and the app's peak memory. The reference is
the same command run alone on the quiet store (``reference_seconds``): ``speedup`` is how much slower
it got under load (1.0 = not at all; lower is slower).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app import IDLE_JS, REPO, App, build_workspace, run_vigil, vigil_env
from _common import write_result

MODEL = "credit-risk"
PAGES = ("overview", "operations", "fairness", "compliance", "drift", "models")


@dataclass
class Record:
    """Latencies and failures collected by the load threads."""

    pages: dict[str, list[float]] = field(default_factory=dict)
    ingests: list[float] = field(default_factory=list)
    checks: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    store_busy: int = 0
    sent_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def page(self, name: str, seconds: float) -> None:
        with self.lock:
            self.pages.setdefault(name, []).append(seconds)

    def fail(self, what: str, text: str) -> None:
        with self.lock:
            self.failures.append(f"{what}: {text.strip()[-300:]}")
            self.store_busy += "StoreBusyError" in text or "stayed locked" in text or "did not answer" in text


def quantiles(xs: list[float]) -> dict[str, float | int | None]:
    if not xs:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    arr = np.asarray(xs)
    return {"n": len(xs), "p50": round(float(np.percentile(arr, 50)), 3),
            "p95": round(float(np.percentile(arr, 95)), 3), "max": round(float(arr.max()), 3)}


def scientist_token(workspace: Path) -> str:
    sys.path.insert(0, str(REPO))
    from dashboard.access import users
    from dashboard.access.roles import Actor

    users_file = workspace / "users.toml"
    setup = Actor("bench-setup", "admin")
    if "bench-cron" not in users.load_users(users_file):
        users.add_user(users_file, setup, "bench-cron", "data_scientist", "bench-cron-password-1")
    token, _ = users.create_token(users_file, setup, "bench-cron", label="concurrency bench")
    return token


def new_predictions(template: pd.DataFrame, run: str, batch: int, n: int, start: pd.Timestamp) -> pd.DataFrame:
    """``n`` fresh predictions shaped like the store's rows (ids of this run, recent timestamps): a run on a
    workspace an earlier run loaded adds new rows instead of having every batch refused as a re-ingest."""
    frame = template.sample(n=n, replace=True, random_state=batch).reset_index(drop=True)
    frame["prediction_id"] = [f"load-{run}-{batch}-{i}" for i in range(n)]
    frame["ts"] = pd.date_range(start, periods=n, freq="s", tz="UTC")
    return frame


def sample_rows(workspace: Path) -> pd.DataFrame:
    import duckdb

    sys.path.insert(0, str(REPO))
    from dashboard.settings import load_settings, log_schema

    settings = load_settings(workspace / "vigil.toml")
    table = log_schema(settings.model(MODEL)).table
    schema = log_schema(settings.model(MODEL))
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                          [table]).fetchall()}
        cols = ", ".join(f'"{c}"' for c in sorted(schema.known_columns() & have))
        return con.execute(f"SELECT {cols} FROM {table} USING SAMPLE 2000 ROWS").df()


def count_ids(workspace: Path, env: dict[str, str], run: str) -> tuple[int, int]:
    code = ("import sys; from dashboard.context import load_context; c = load_context(); "
            f"t = c.schema('{MODEL}').table\n"
            "with c.store.connect() as con:\n"
            "    print(*con.execute(f\"SELECT count(*), count(DISTINCT prediction_id) FROM {t} "
            f"WHERE prediction_id LIKE 'load-{run}-%'\").fetchone())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, check=True)
    total, distinct = out.stdout.split()
    return int(total), int(distinct)


def browse(app: App, index: int, stop: threading.Event, rec: Record) -> None:
    """One user in Chromium: sign in, then open the pages in turn, in a loop."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(600_000)
        page.goto(app.url)
        page.get_by_role("textbox", name="Username").fill("scientist")
        page.get_by_role("textbox", name="Password").fill("scientist-demo")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("stSidebarNav").wait_for()
        turn = index
        while not stop.is_set():
            name = PAGES[turn % len(PAGES)]
            turn += 1
            start = time.perf_counter()
            try:
                page.goto(f"{app.url}/{name}")
                page.wait_for_function(IDLE_JS)
                if page.get_by_test_id("stException").count():
                    rec.fail(f"page {name}", page.get_by_test_id("stException").first.inner_text())
            except Exception as exc:  # a page that never settles is a failure of the load test
                rec.fail(f"page {name}", repr(exc))
                continue
            rec.page(name, time.perf_counter() - start)
        browser.close()


def heavy_drift(stop: threading.Event, rec: Record, window: tuple[date, date]) -> None:
    """A user who keeps asking for the hourly drift of a 30-day window (recomputed each time)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    while not stop.is_set():
        st.cache_data.clear()
        at = AppTest.from_file(str(REPO / "pages" / "2_drift.py"), default_timeout=1800)
        at.session_state["user"] = {"name": "scientist", "role": "data_scientist", "method": "password"}
        at.run()
        at.date_input(key="drift_cur_window").set_value(window)
        at.radio(key="drift_bucket").set_value("hour")
        start = time.perf_counter()
        at.run()
        if at.exception:
            rec.fail("page drift_30d_hourly", str(at.exception[0].value))
            continue
        rec.page("drift_30d_hourly", time.perf_counter() - start)


def every(seconds: float, stop: threading.Event, fn: Any) -> None:
    while not stop.is_set():
        started = time.monotonic()
        fn()
        stop.wait(max(0.0, seconds - (time.monotonic() - started)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="demo workspace (built when missing)")
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--ingest-every", type=float, default=30)
    parser.add_argument("--check-every", type=float, default=10)
    parser.add_argument("--batch-rows", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8577)
    args = parser.parse_args()
    workspace = (args.dir or REPO / "bench" / "results" / f"workspace-{args.rows}").resolve()
    build_workspace(workspace, args.rows)
    token = scientist_token(workspace)
    env = vigil_env(workspace, VIGIL_TOKEN=token)
    template = sample_rows(workspace)
    last_ts = pd.Timestamp(template["ts"].max()).tz_localize("UTC") if template["ts"].dt.tz is None \
        else pd.Timestamp(template["ts"].max())
    heavy = ((last_ts - timedelta(days=29)).date(), last_ts.date())
    os.environ.update({k: v for k, v in env.items() if k == "VIGIL_CONFIG"})  # the AppTest session's workspace

    ops_alone = statistics.median(run_vigil(["ops", "--model", MODEL], env)[0] for _ in range(3))
    ingest_dir = workspace / "bench-ingest"
    ingest_dir.mkdir(exist_ok=True)
    rec = Record()
    app = App(workspace, args.port, workspace / "bench-app.log")
    stop = threading.Event()
    batch = [0]
    run = time.strftime("%Y%m%d%H%M%S")

    def cron_ingest() -> None:
        batch[0] += 1
        frame = new_predictions(template, run, batch[0], args.batch_rows, last_ts + timedelta(minutes=batch[0]))
        path = ingest_dir / f"batch-{run}-{batch[0]}.parquet"
        frame.to_parquet(path, index=False)
        seconds, proc = run_vigil(["ingest", "--model", MODEL, str(path)], env)
        if proc.returncode != 0:
            rec.fail("ingest", proc.stderr + proc.stdout)
            return
        with rec.lock:
            rec.ingests.append(seconds)
            rec.sent_ids += list(frame["prediction_id"])

    def ci_check() -> None:
        seconds, proc = run_vigil(["check", "--model", MODEL], env)
        if proc.returncode not in (0, 1):  # 1 = a policy fails, which is an answer
            rec.fail("check", proc.stderr + proc.stdout)
            return
        with rec.lock:
            rec.checks.append(seconds)

    ops_under_load: list[float] = []
    threads = [threading.Thread(target=browse, args=(app, i, stop, rec), daemon=True) for i in range(args.sessions)]
    threads.append(threading.Thread(target=heavy_drift, args=(stop, rec, heavy), daemon=True))
    threads += [threading.Thread(target=every, args=(args.ingest_every, stop, cron_ingest), daemon=True),
                threading.Thread(target=every, args=(args.check_every, stop, ci_check), daemon=True)]
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        time.sleep(min(60.0, args.seconds / 3))  # the heavy drift is under way by now
        while time.monotonic() - started < args.seconds:
            ops_under_load.append(run_vigil(["ops", "--model", MODEL], env)[0])
            time.sleep(5)
        stop.set()
        for t in threads:
            t.join(timeout=900)
        peak_app = app.peak_rss_mb()
    finally:
        stop.set()
        app.stop()
    total, distinct = count_ids(workspace, env, run)
    sent = len(rec.sent_ids)
    all_pages = [x for xs in rec.pages.values() for x in xs]
    ops_load = statistics.median(ops_under_load) if ops_under_load else float("nan")
    result = {
        "rows": args.rows, "seconds": args.seconds, "sessions": args.sessions,
        "vigil_seconds": round(ops_load, 3), "reference": "vigil ops alone on the quiet store",
        "reference_seconds": round(ops_alone, 3), "speedup": round(ops_alone / ops_load, 3),
        "ops_alone_seconds": round(ops_alone, 3), "ops_under_load": quantiles(ops_under_load),
        "page_latency": quantiles(all_pages),
        "page_latency_by_page": {k: quantiles(v) for k, v in sorted(rec.pages.items())},
        "ingest_latency": quantiles(rec.ingests), "check_latency": quantiles(rec.checks),
        "ingests": len(rec.ingests), "failed_ingests": sum(f.startswith("ingest") for f in rec.failures),
        "failures": len(rec.failures), "failure_examples": rec.failures[:5], "store_busy_errors": rec.store_busy,
        "rows_ingested": sent, "rows_found": total, "lost_rows": max(sent - distinct, 0),
        "duplicated_rows": total - distinct, "peak_rss_mb": round(peak_app, 1),
    }
    path = write_result("concurrency", result)
    print(f"concurrency: {args.rows:,} rows, {args.sessions} sessions, {args.seconds:.0f} s: pages p50 "
          f"{result['page_latency']['p50']} s p95 {result['page_latency']['p95']} s; ingest p95 "
          f"{result['ingest_latency']['p95']} s ({len(rec.ingests)} ok, {result['failed_ingests']} failed); ops "
          f"{ops_alone:.2f} s alone vs {ops_load:.2f} s under load; busy errors {rec.store_busy}; lost "
          f"{result['lost_rows']}, duplicated {result['duplicated_rows']} -> {path}")


if __name__ == "__main__":
    main()
