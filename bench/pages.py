"""Interactive latency on a large store: every page cold and warm, drift over time, the CLI's start-up.

Builds (or reuses) a demo workspace of ``--rows`` predictions, then:

- **Pages, in a real browser** (Debian's Chromium driven by Playwright, signed in as the demo admin, who
  sees every page): the app server is restarted before each page, and the page's first visit after the
  start is its *cold* time (Streamlit's caches empty; the operating system's file cache warm, as on a server
  that restarted); a reload of the same page is its *warm* time. A visit ends when the page's script has
  finished and no spinner is left.
- **The Drift page's hourly view over a 30-day window**, through Streamlit's AppTest in this process (a
  browser cannot type a date range into Streamlit's date picker reliably): cold after clearing the caches,
  then warm.
- **The physical reference**: a bare DuckDB scan of the same 30-day window's drift columns on the same
  store (``scan_seconds``); ``cold_max_over_scan`` is the slowest cold page over it.
- **Drift over time**: 30 daily buckets against one 30-day window, in this process (``over_time_ratio``).
- **The CLI**: ``vigil drift``, ``vigil check`` and ``vigil --help`` wall times against
  ``python -c "import pandas, duckdb"``; ``cli_overhead_ratio`` is (wall - the same computation timed in a
  warm process) / the bare import, the largest of the three.

Targets: ``cold_max_over_scan`` <= 10, ``warm_max_seconds`` <= 1, ``over_time_ratio`` <= 3,
``cli_overhead_ratio`` <= 2 (``targets_met`` says which hold). Results: ``bench/results/pages.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app import IDLE_JS, REPO, App, build_workspace, run_vigil, vigil_env
from _common import peak_rss_mb, write_result

MODEL = "credit-risk"
TARGETS = {"cold_max_over_scan": 10.0, "warm_max_seconds": 1.0, "over_time_ratio": 3.0, "cli_overhead_ratio": 2.0}
#: The page has run to its end: a heading is on it, the script is idle and no spinner is left.
SETTLED_JS = IDLE_JS.replace("return s &&", "return s && !!document.querySelector('[data-testid=\"stMain\"] h1') &&")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def visit(page: Any, url: str) -> float:
    """Seconds from asking for ``url`` until the page settled; an exception on the page fails the run."""
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_function(SETTLED_JS, polling=100)
    seconds = time.perf_counter() - start
    if page.get_by_test_id("stException").count():
        sys.exit(f"{url} raised: {page.get_by_test_id('stException').first.inner_text()[:500]}")
    return seconds


def sign_in_state(app: App, user: str, password: str) -> dict[str, Any]:
    """The browser storage (the session cookie) of a signed-in user, reused by every later visit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(600_000)
        page.goto(app.url)
        page.get_by_role("textbox", name="Username").fill(user)
        page.get_by_role("textbox", name="Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("stSidebarNav").wait_for()
        page.wait_for_function(SETTLED_JS, polling=100)
        state: dict[str, Any] = context.storage_state()
        browser.close()
    return state


def time_pages(workspace: Path, port: int, pages: list[str],
               log: Path) -> tuple[dict[str, float], dict[str, float], float]:
    """Cold (first visit after a restart) and warm (a reload) seconds per page, and the app's peak MB."""
    from playwright.sync_api import sync_playwright

    app = App(workspace, port, log)
    try:
        state = sign_in_state(app, "admin", "admin-demo")
    finally:
        app.stop()
    cold: dict[str, float] = {}
    warm: dict[str, float] = {}
    peak = 0.0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        for name in pages:
            app = App(workspace, port, log)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000}, storage_state=state)
                page = context.new_page()
                page.set_default_timeout(900_000)
                cold[name] = visit(page, f"{app.url}/{name}")
                warm[name] = min(visit(page, f"{app.url}/{name}") for _ in range(2))
                context.close()
                peak = max(peak, app.peak_rss_mb())
            finally:
                app.stop()
            print(f"  {name}: cold {cold[name]:.2f} s, warm {warm[name]:.2f} s", flush=True)
        browser.close()
    return cold, warm, peak


def drift_page_30d_hourly(window: tuple[Any, Any]) -> tuple[float, float]:
    """Cold and warm seconds of the Drift page with a 30-day current window in hourly buckets (AppTest)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def run() -> float:
        at = AppTest.from_file(str(REPO / "pages" / "2_drift.py"), default_timeout=1800)
        at.session_state["user"] = {"name": "admin", "role": "admin", "method": "password"}
        at.run()
        at.date_input(key="drift_cur_window").set_value(window)
        at.radio(key="drift_bucket").set_value("hour")
        seconds = timed(at.run)
        if at.exception:
            sys.exit(f"the Drift page raised: {at.exception[0].value}")
        return seconds

    st.cache_data.clear()
    return run(), run()


def scan_seconds(workspace: Path, start: datetime, end: datetime) -> float:
    """A bare DuckDB scan of the window's drift columns (every value read once: a hash of each, which no
    statistics of the file can answer, unlike min/max), the best of three."""
    import duckdb

    sys.path.insert(0, str(REPO))
    from dashboard.settings import load_settings, log_schema

    settings = load_settings(workspace / "vigil.toml")
    cfg = settings.model(MODEL)
    table = log_schema(cfg).table
    cols = [*cfg.features, "prediction"]
    aggs = ", ".join(f'max(hash("{c}"))' for c in cols)
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        sql = f"SELECT count(*), {aggs} FROM {table} WHERE ts >= ? AND ts < ?"
        return min(timed(lambda: con.execute(sql, [start, end]).fetchall()) for _ in range(3))


def in_process(workspace: Path) -> dict[str, Any]:
    """The computations behind the timed CLI calls and drift over time, in this (warm) process."""
    os.environ["VIGIL_CONFIG"] = str(workspace / "vigil.toml")
    sys.path.insert(0, str(REPO))
    from connectors.queries.operations import time_range
    from connectors.windows import Window, parse_window
    from dashboard.context import load_context
    from dashboard.governance.policy import evaluate
    from dashboard.monitoring.drift import compute_drift, drift_over_time

    ctx = load_context()
    with ctx.connect(MODEL) as con:
        last = time_range(con, ctx.schema(MODEL), None)[1]
    seven = parse_window("7d", now=last + timedelta(microseconds=1))
    end = datetime.combine(last.date(), datetime.min.time()) + timedelta(days=1)
    month = Window(end - timedelta(days=30), end)

    def best(fn: Callable[[], Any]) -> float:
        fn()  # warm: imports, the registry, the reference copy
        return min(timed(fn) for _ in range(2))

    return {
        "window": (month.start, month.end),
        "drift_7d": best(lambda: compute_drift(ctx, MODEL, seven, "config")),
        "check": best(lambda: evaluate(ctx, MODEL)),
        "drift_30d": best(lambda: compute_drift(ctx, MODEL, month, "training")),
        "drift_30_days": best(lambda: drift_over_time(ctx, MODEL, month, bucket="day", reference="training")),
    }


def forget_kept(workspace: Path, forget: bool) -> int:
    """Drop the store's kept results when ``forget``; how many the pages will find when they start."""
    from connectors import kept_results
    from dashboard.context import Context
    from dashboard.settings import load_settings

    store = Context(load_settings(workspace / "vigil.toml")).store
    if forget:
        kept_results.clear(store)
    return kept_results.count(store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="demo workspace (built when missing)")
    parser.add_argument("--pages", default=None, help="comma-separated page paths (default: every page)")
    parser.add_argument("--port", type=int, default=8578)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--forget-kept", action="store_true",
                        help="drop every kept result (summaries, CBPE fits, measurements) before the pages are "
                             "timed, so cold visits compute everything; by default they find what earlier runs "
                             "kept over the same data, as a restarted app does")
    args = parser.parse_args()
    workspace = (args.dir or REPO / "bench" / "results" / f"workspace-{args.rows}").resolve()
    build_workspace(workspace, args.rows)
    env = vigil_env(workspace)

    sys.path.insert(0, str(REPO))
    from dashboard.ui.nav import pages_for

    pages = args.pages.split(",") if args.pages else [p.url_path for p in pages_for("admin")]
    bare = statistics.median(timed(lambda: subprocess.run([sys.executable, "-c", "import pandas, duckdb"],
                                                          check=True)) for _ in range(3))
    walls: dict[str, float] = {}
    for name, argv in (("drift", ["drift", "--model", MODEL]), ("check", ["check", "--model", MODEL,
                                                                          "--no-record"]),
                       ("help", ["--help"])):
        run_vigil(argv, env)  # the first call keeps the registry's readings, as any later call finds them
        runs = [run_vigil(argv, env) for _ in range(3)]
        if any(proc.returncode not in (0, 1) for _, proc in runs):
            sys.exit(f"vigil {' '.join(argv)} failed: {runs[0][1].stderr[-1000:]}")
        walls[name] = statistics.median(s for s, _ in runs)
    work = in_process(workspace)
    compute = {"drift": work["drift_7d"], "check": work["check"], "help": 0.0}
    overhead = {k: (walls[k] - compute[k]) / bare for k in walls}
    start, end = work["window"]
    scan = scan_seconds(workspace, start, end)
    hourly_cold, hourly_warm = drift_page_30d_hourly((start.date(), (end - timedelta(days=1)).date()))
    kept_at_start = forget_kept(workspace, args.forget_kept)
    log = workspace / "bench-pages-app.log"
    cold, warm, app_peak = time_pages(workspace, args.port, pages, log)
    cold["drift_30d_hourly"], warm["drift_30d_hourly"] = hourly_cold, hourly_warm
    cold_max = max(cold.values())
    ratios = {"cold_max_over_scan": cold_max / scan, "warm_max_seconds": max(warm.values()),
              "over_time_ratio": work["drift_30_days"] / work["drift_30d"],
              "cli_overhead_ratio": max(overhead.values())}
    result = {
        "rows": args.rows, "pages_via": "Chromium (Playwright); drift_30d_hourly via AppTest",
        "vigil_seconds": round(cold_max, 3), "reference": "bare DuckDB scan of the 30-day window's drift columns",
        "reference_seconds": round(scan, 4), "speedup": round(scan / cold_max, 4),
        "page_cold_seconds": {k: round(v, 3) for k, v in cold.items()},
        "page_warm_seconds": {k: round(v, 3) for k, v in warm.items()},
        "scan_seconds": round(scan, 4), "cold_max_page": max(cold, key=lambda k: cold[k]),
        **{k: round(v, 3) for k, v in ratios.items()},
        "targets": TARGETS, "targets_met": {k: ratios[k] <= t for k, t in TARGETS.items()},
        "drift_30d_seconds": round(work["drift_30d"], 3), "drift_30_days_seconds": round(work["drift_30_days"], 3),
        "cli_wall_seconds": {k: round(v, 3) for k, v in walls.items()},
        "cli_compute_seconds": {k: round(v, 3) for k, v in compute.items()},
        "cli_overhead": {k: round(v, 3) for k, v in overhead.items()},
        "bare_import_seconds": round(bare, 3),
        "kept_results_forgotten": args.forget_kept, "kept_results_at_page_start": kept_at_start,
        "peak_rss_mb": round(app_peak, 1), "bench_process_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    path = write_result("pages", result) if args.output is None else args.output
    if args.output is not None:
        import json

        args.output.write_text(json.dumps({"name": "pages", **result}, indent=2, default=str))
    print(f"pages: {args.rows:,} rows: cold max {cold_max:.2f} s ({result['cold_max_page']}) = "
          f"{ratios['cold_max_over_scan']:.1f}x the scan ({scan:.3f} s); warm max {ratios['warm_max_seconds']:.2f} s; "
          f"30 days / one window {ratios['over_time_ratio']:.2f}; CLI overhead {ratios['cli_overhead_ratio']:.2f}x "
          f"the bare import; app peak {app_peak:.0f} MB -> {path}")


if __name__ == "__main__":
    main()
