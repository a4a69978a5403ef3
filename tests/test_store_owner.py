"""The store's concurrency design: one owner process, cursors per thread, clients over a socket.

Every test uses real processes on a real DuckDB file: the owner is a separate Python process (as the
app's server is), the client is this test process (as a cron ``vigil ingest`` is).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from connectors import store_wire as wire
from connectors.logstore import LogStore, StoreBusyError, StoreMemoryError
from connectors.store_client import RemoteConnection
from connectors.store_owner import QueryCancelled, owner_pid, set_cancel_check, socket_path
from dashboard.settings import ConfigError, settings_from_mapping

REPO = Path(__file__).resolve().parents[1]
#: A query that runs for minutes unless interrupted (DuckDB cannot fold it away).
ENDLESS = "SELECT sum((i * 7919) % 104729) FROM range(2000000000000) t(i)"

OWNER_SCRIPT = f"""
import sys, threading
from connectors.logstore import LogStore
store = LogStore(sys.argv[1])
assert store.own(idle_close_s=float(sys.argv[2])), "someone else owns the store"
analysis = {{"state": "none"}}
if sys.argv[3] == "busy":   # the owner itself runs a long analysis in another thread, as a page does
    def analyse():
        try:
            with store.connect() as con:
                analysis["state"] = "running"
                con.execute("{ENDLESS}").fetchall()
            analysis["state"] = "finished"
        except Exception as exc:
            analysis["state"] = type(exc).__name__
    threading.Thread(target=analyse, daemon=True).start()
print("owning", flush=True)
for line in sys.stdin:   # the test asks how things stand; the end of stdin ends the owner
    print(analysis["state"], store.owner._active, store.owner.requests_running, flush=True)
store.disown()
"""


def status(proc: subprocess.Popen[str]) -> tuple[str, int, int]:
    """The owner's analysis state, the cursors it has lent out and the client requests it is running."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("status\n")
    proc.stdin.flush()
    state, active, running = proc.stdout.readline().split()
    return state, int(active), int(running)


def wait_until(cond: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Wait for a condition (a bound against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def owner_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(store: Path, idle_close_s: float = 30.0, mode: str = "quiet") -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(store), str(idle_close_s), mode],
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "owning"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_values_keep_their_types_on_the_wire():
    values = [None, True, 3, -2**63, 1.5, math.inf, -math.inf, "ünï\x00code", datetime(2026, 1, 2, 3, 4, 5, 6),
              date(2026, 1, 2), timedelta(days=1, seconds=3), Decimal("1.50"), b"\x00\xff", [1, [2, None]],
              {"k": 1.0}]
    back = wire.decode_params(wire.encode_params(values))
    assert back == values
    assert math.isnan(wire.decode_value(wire.encode_value(float("nan"))))
    with pytest.raises(TypeError, match="cannot send a object"):
        wire.encode_value(object())


def test_a_client_runs_its_sql_in_the_owner_with_duckdb_semantics(tmp_path: Path, owner_process):
    path = tmp_path / "store.duckdb"
    proc = owner_process(path)
    assert owner_pid(path) == proc.pid
    store = LogStore(path)
    with store.connect() as con:
        assert isinstance(con, RemoteConnection)
        con.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b VARCHAR, c TIMESTAMP, d DECIMAL(10, 2), e DOUBLE, "
                    "h HUGEINT)")
        con.execute("INSERT INTO t VALUES (1, 'x', TIMESTAMP '2026-01-01 10:00', 1.5, 'NaN', 5), "
                    "(2, NULL, NULL, NULL, NULL, NULL)")
        con.register("frame", pd.DataFrame({"a": [1, 2, 3], "y": ["p", None, "q"]}))
        assert con.execute("SELECT count(*), count(y) FROM frame").fetchall() == [(3, 2)]
        con.unregister("frame")
        con.execute("CREATE TEMP TABLE scratch AS SELECT 42 AS z")  # lives in this connection's cursor
        assert con.execute("SELECT z FROM scratch").fetchall() == [(42,)]
        assert con.description == [("z", "INTEGER")]
        with pytest.raises(duckdb.ConstraintException, match="Duplicate key"):
            con.execute("INSERT INTO t VALUES (1, 'again', NULL, NULL, NULL, NULL)")
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO t VALUES (3, 'rolled back', NULL, NULL, NULL, NULL)")
        con.execute("ROLLBACK")
        remote_rows = con.execute("SELECT * FROM t ORDER BY a").fetchall()
        remote_df = con.execute("SELECT * FROM t ORDER BY a").df()
        assert con.execute("SELECT a FROM t WHERE c > ? AND b = ?", [datetime(2025, 1, 1), "x"]).fetchone() == (1,)
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(timeout=30)
    assert owner_pid(path) is None
    with store.connect() as con:  # nobody owns it now: this process opens the file itself
        assert not isinstance(con, RemoteConnection)
        local_rows = con.execute("SELECT * FROM t ORDER BY a").fetchall()
        local_df = con.execute("SELECT * FROM t ORDER BY a").df()
    assert str(remote_rows) == str(local_rows)  # NaN == NaN as text; types and values alike
    pd.testing.assert_frame_equal(remote_df, local_df)


def test_ingest_commits_while_the_owner_runs_a_long_analysis(settings, schema, owner_process, write_file,
                                                             logs_factory):
    """The reason for the design: a cron ingest never waits behind a page's long query."""
    owner = owner_process(settings.duckdb_path, mode="busy")
    wait_until(lambda: status(owner) == ("running", 1, 0), "the owner's analysis to be under way")
    store = LogStore(settings.duckdb_path, lock_timeout_s=2)  # a lock wait would fail within 2 s
    report = store.ingest([write_file(logs_factory(n=200), "a.parquet")], schema)
    assert report.rows_added == 200 and not report.rejected
    assert store.ingest([write_file(logs_factory(n=200), "a.parquet")], schema).rows_added == 0
    with store.connect() as con:
        assert isinstance(con, RemoteConnection)
        assert con.execute(f"SELECT count(*), count(DISTINCT prediction_id) FROM {schema.table}").fetchone() \
            == (200, 200)
    assert status(owner)[0] == "running", "the ingest waited for the analysis to end"


def test_a_second_owner_defers_and_a_dead_owner_is_replaced(tmp_path: Path, owner_process):
    path = tmp_path / "store.duckdb"
    first = owner_process(path)
    assert not LogStore(path).own(), "two processes must never own one store"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert owner_pid(path) is None  # the OS released the dead owner's lock
    assert socket_path(path).exists()  # ... but its socket file is left behind
    store = LogStore(path)
    try:
        assert store.own(idle_close_s=1)
        with store.connect() as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
        assert owner_pid(path) == os.getpid()
    finally:
        store.disown()
    assert owner_pid(path) is None and not socket_path(path).exists()


def test_an_owner_that_does_not_answer_is_a_clear_busy_error(tmp_path: Path, owner_process):
    path = tmp_path / "store.duckdb"
    proc = owner_process(path)
    proc.send_signal(signal.SIGSTOP)  # alive (its lock held) but answering nobody
    try:
        with pytest.raises(StoreBusyError, match=rf"owned by process {proc.pid}.*VIGIL_LOCK_TIMEOUT"), \
                LogStore(path, lock_timeout_s=0.5).connect() as con:
            con.execute("SELECT 1")
    finally:
        proc.send_signal(signal.SIGCONT)


def test_one_sessions_long_query_does_not_block_anothers_cheap_one(tmp_path: Path):
    store = LogStore(tmp_path / "store.duckdb")
    assert store.own(idle_close_s=1)
    long_done, cheap_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def long_page() -> None:
        set_cancel_check(cheap_done.is_set)  # leave the page once the other user has their answer
        try:
            with store.connect() as con:
                con.execute(ENDLESS).fetchall()
        except BaseException as exc:
            errors.append(exc)
        finally:
            long_done.set()

    try:
        thread = threading.Thread(target=long_page)
        thread.start()
        wait_until(lambda: (store.owner is not None and store.owner._active > 0), "the long query to start")
        with store.connect() as con:  # a second session's cheap page, while the long query runs
            assert con.execute("SELECT 40 + 2").fetchone() == (42,)
        assert not long_done.is_set(), "the cheap query waited for the long one"
        cheap_done.set()
        thread.join(timeout=60)
        assert len(errors) == 1 and isinstance(errors[0], QueryCancelled)
    finally:
        store.disown()


def test_a_client_that_leaves_gets_its_query_interrupted_in_the_owner(tmp_path: Path, owner_process):
    path = tmp_path / "store.duckdb"
    proc = owner_process(path)
    left = threading.Event()
    outcome: list[BaseException] = []

    def page() -> None:
        set_cancel_check(left.is_set)
        try:
            with LogStore(path).connect() as con:
                con.execute(ENDLESS).fetchall()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=page)
    thread.start()
    wait_until(lambda: status(proc)[2] == 1, "the query to reach the owner")
    left.set()
    thread.join(timeout=60)
    assert not thread.is_alive() and isinstance(outcome[0], QueryCancelled)
    # The owner interrupted the abandoned query (alone it would run for minutes) and gave its cursor back.
    wait_until(lambda: status(proc)[1:] == (0, 0), "the owner to stop the abandoned query")
    with LogStore(path).connect() as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]


def test_memory_limit_and_threads_apply_to_every_connection(tmp_path: Path):
    path = tmp_path / "store.duckdb"
    store = LogStore(path, memory_limit="512MiB", threads=1)
    with store.connect() as con:
        limit, threads = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    assert limit in ("512.0 MiB", "536.8 MB") and int(threads) == 1
    settings = settings_from_mapping({"vigil": {"duckdb_memory_limit": "2GB", "duckdb_threads": 2}})
    assert (settings.duckdb_memory_limit, settings.duckdb_threads) == ("2GB", 2)
    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"vigil": {"duckdb_memory_limit": "lots", "duckdb_threads": -1}})
    text = str(err.value)
    assert "vigil.duckdb_memory_limit: 'lots' is not a size" in text and "vigil.duckdb_threads" in text


#: A query whose aggregate state cannot spill to disk: it needs far more than 30 MB.
GREEDY = "SELECT max(length(x)) FROM (SELECT string_agg(i::VARCHAR, ',') AS x FROM range(30000000) t(i))"


def test_a_query_over_the_memory_limit_is_a_clear_error_in_this_process_and_through_an_owner(
        tmp_path: Path, owner_process):
    store = LogStore(tmp_path / "direct.duckdb", memory_limit="30MB", threads=1)
    with pytest.raises(StoreMemoryError, match=r"memory limit \(30MB.*vigil.duckdb_memory_limit"), \
            store.connect() as con:
        con.execute(GREEDY).fetchall()
    with store.connect() as con:  # the store is fine afterwards
        assert con.execute("SELECT 1").fetchall() == [(1,)]
    path = tmp_path / "owned.duckdb"
    owner_process(path)
    client = LogStore(path)
    with client.connect() as con:
        assert isinstance(con, RemoteConnection)
        con.execute("SET memory_limit = '30MB'")  # the owner's database setting
    with pytest.raises(StoreMemoryError, match="VIGIL_DUCKDB_MEMORY_LIMIT"), client.connect() as con:
        con.execute(GREEDY).fetchall()
    with client.connect() as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]


def test_the_app_cancels_a_run_when_streamlit_asks_it_to_stop_or_rerun(monkeypatch):
    """The predicate reads Streamlit's own request object (fails here first if its internals move)."""
    from types import SimpleNamespace

    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests

    from connectors.store_owner import cancel_check
    from dashboard.ui import cancel

    def left_after(request: Callable[[ScriptRequests], object]) -> bool:
        requests = ScriptRequests()
        monkeypatch.setattr(cancel, "get_script_run_ctx", lambda: SimpleNamespace(script_requests=requests))
        cancel.cancel_queries_when_left()
        check = cancel_check()
        assert check is not None and check() is False  # running: nothing to cancel
        request(requests)
        return check()

    assert left_after(lambda r: r.request_stop()) is True  # the session ended
    assert left_after(lambda r: r.request_rerun(RerunData())) is True  # another page or new inputs
    assert left_after(lambda r: r.request_rerun(RerunData(fragment_id="poll"))) is False  # a fragment's tick
    monkeypatch.setattr(cancel, "get_script_run_ctx", lambda: None)  # outside a script run
    cancel.cancel_queries_when_left()
    assert cancel_check() is None
    set_cancel_check(None)


def test_concurrent_ingests_through_the_owner_never_duplicate_a_prediction(settings, schema, owner_process,
                                                                          write_file, logs_factory):
    """Check-then-write operations take turns in the owner, as they did when each took the whole file."""
    owner_process(settings.duckdb_path)
    logs = logs_factory(n=3000)
    files = [write_file(logs, "same-a.parquet"), write_file(logs.iloc[1000:], "overlap.parquet"),
             write_file(logs, "same-b.csv")]
    results: list[Any] = []

    def ingest(path: Path) -> None:
        results.append(LogStore(settings.duckdb_path).ingest([path], schema).files[0])

    threads = [threading.Thread(target=ingest, args=(f,)) for f in files for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    ingested = [r for r in results if r.status == "ingested"]
    assert len(results) == 6 and len(ingested) == 1, [(r.path, r.status) for r in results]
    with LogStore(settings.duckdb_path).connect() as con:
        assert con.execute(f"SELECT count(*), count(DISTINCT prediction_id) FROM {schema.table}").fetchone() \
            == (ingested[0].rows, ingested[0].rows)
