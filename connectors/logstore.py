"""DuckDB log store: schema, atomic idempotent ingestion, and the connection discipline.

Concurrency scheme (DuckDB allows one read-write *process* per file; inside that process any number of
threads read on snapshots while others append). A long-running process (the app's server, ``vigil
serve``) calls :meth:`LogStore.own` and becomes the file's owner (:mod:`connectors.store_owner`): its
threads each get a cursor of their own, and every other process that opens the store while the owner
lives sends its SQL to the owner over a local socket (:mod:`connectors.store_client`). So a cron ingest
commits while a 30-day drift is being computed in the app, and one user's long query never queues
another's cheap page. With no owner running (a CLI-only setup, CI), each process opens the file only for
the duration of one operation (:meth:`LogStore.connect`) and closes it straight after; when another
process holds it, opening fails with "Could not set lock" and we retry with jittered backoff until
``lock_timeout_s``, then raise :class:`StoreBusyError` naming the fix. In that mode a process's own
connections are taken one at a time (a re-entrant lock per file).

Every connection gets ``memory_limit`` and ``threads`` (DuckDB settings of the database instance, so
in an owner they bound all its users together) and a spill folder beside the file.

Every table is created here; domain SQL (drift, fairness, operations, selection) lives in
:mod:`connectors.queries` and reads through :meth:`LogStore.connect`.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from glob import glob
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from connectors import store_client, store_owner, store_wire
from connectors.engines.base import EngineHandle
from connectors.errors import ConnectorError
from connectors.queries import current_labels, latency_rollup
from connectors.schema import (
    LABEL_OPTIONAL,
    LABEL_REQUIRED,
    REQUIRED_COLUMNS,
    LogSchema,
    nan_as_null,
    quote,
)

SUPPORTED_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json",
                      ".ndjson": "json", ".json": "json"}
MAX_EXAMPLES = 3
_GLOB_CHARS = "*?["  # what DuckDB (and Python's glob) expand in a path
_NOT_UTF8 = re.compile(r"utf-?8|unicode", re.IGNORECASE)  # DuckDB's words for an encoding failure
_TEXT_INTEGRAL = r"^(-?[0-9]+)[.]0+$"  # an integral float written as text ("9000001.0"), its integer part
_MAX_EXACT_FLOAT_ID = 2**53  # above it a float id may be a neighbour of the integer meant
Check = tuple[str, str, str, str | None]  # (SQL condition of a bad row, message, fix, column)
_TZ_SUFFIX = r"(Z|[+-]\d{2}(:?\d{2})?)$"
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


class LogStoreError(ConnectorError):
    """Base error of the log store; messages name the fix."""


class StoreBusyError(LogStoreError):
    """Another process held the DuckDB file for longer than the lock timeout."""


class StoreMemoryError(LogStoreError):
    """A query needed more memory than the store's ``memory_limit`` (shared by the queries running at once)."""


class IngestError(LogStoreError):
    """One or more files were rejected; nothing from a rejected file was written."""

    def __init__(self, report: IngestReport) -> None:
        self.report = report
        super().__init__("\n".join(report.problem_lines()))


@dataclass(frozen=True)
class Problem:
    """One validation problem, located as precisely as the input allows."""

    file: str
    message: str
    fix: str
    row: int | None = None  # 1-based data row (header not counted)
    column: str | None = None

    def line(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}; fix: {self.fix}"


@dataclass
class FileResult:
    """Outcome of ingesting one file."""

    path: str
    status: str  # "ingested", "skipped" (already ingested) or "rejected"
    rows: int = 0
    sha256: str = ""
    detail: str = ""
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class IngestReport:
    """Outcome of one ``ingest`` call across its files."""

    files: list[FileResult] = field(default_factory=list)

    @property
    def rows_added(self) -> int:
        return sum(f.rows for f in self.files if f.status == "ingested")

    @property
    def rejected(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "rejected"]

    def problem_lines(self) -> list[str]:
        return [p.line() for f in self.rejected for p in f.problems]


def utcnow() -> datetime:
    """Naive UTC now, the representation used in storage."""
    return datetime.now(UTC).replace(tzinfo=None)


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Files, folders (searched recursively) and globs -> supported files, plus problems for the rest.

    An argument that names an existing file is that file, whatever characters its name holds (``[``, ``?``,
    ``*``); only an argument naming nothing that exists is a glob, expanded here rather than by DuckDB, so
    that every file is read alone and under its own name.
    """
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        text = str(raw)
        p = Path(text).expanduser()
        if p.is_file():
            _add_file(p, text, found, problems)
        elif p.is_dir():
            hits = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in SUPPORTED_SUFFIXES)
            if not hits:
                problems.append(Problem(text, "folder holds no .parquet, .csv or .jsonl file",
                                        "point at a folder of log files or at the files themselves"))
            found += hits
        elif any(ch in text for ch in _GLOB_CHARS):
            hits = sorted(Path(h) for h in glob(str(p), recursive=True) if Path(h).is_file())
            if not hits:
                problems.append(Problem(text, "pattern matched no file", "check the pattern and quote it"))
            for hit in hits:
                _add_file(hit, str(hit), found, problems)
        else:
            problems.append(Problem(text, "no such file", "check the path"))
    unique: dict[Path, None] = {}
    for f in found:
        unique.setdefault(f.resolve(), None)
    return list(unique), problems


def _add_file(path: Path, text: str, found: list[Path], problems: list[Problem]) -> None:
    """Add a named (or glob-matched) file, or a problem when its type is not one Vigil reads."""
    if path.suffix.lower() in SUPPORTED_SUFFIXES:
        found.append(path)
    else:
        problems.append(Problem(text, f"unsupported file type '{path.suffix}'",
                                "convert it to Parquet, CSV or JSON Lines (.parquet, .csv, .jsonl)"))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class LogStore:
    """The DuckDB file holding prediction logs, labels and Vigil's own small tables."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 60.0, memory_limit: str | None = None,
                 threads: int | None = None) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self.memory_limit = memory_limit
        self.threads = threads
        self._schema_ready = False

    # ------------------------------------------------------------------ connections

    def own(self, idle_close_s: float = 5.0) -> bool:
        """Make this process the owner of the file (for long-running processes); False when another
        process already owns it (this one then queries through that owner)."""
        key = str(self.path.resolve())
        with _OWNERS_GUARD:
            if key in _OWNERS:
                return True
            owner = store_owner.StoreOwner.claim(self.path.resolve(), self._open_database, idle_close_s)
            if owner is None:
                return False
            _OWNERS[key] = owner
            return True

    def disown(self) -> None:
        """Stop owning the file (the next long-running process may take it over)."""
        with _OWNERS_GUARD:
            owner = _OWNERS.pop(str(self.path.resolve()), None)
        if owner is not None:
            owner.stop()

    @property
    def owner(self) -> store_owner.StoreOwner | None:
        """This process's ownership of the file, if it owns it."""
        return _OWNERS.get(str(self.path.resolve()))

    @contextmanager
    def connect(self, exclusive: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection: a cursor of this process's owner, a connection through another
        process's owner, or (no owner anywhere) the file itself, waiting with backoff while it is held.

        ``exclusive``: for operations that check and then write (ingest, label writes, job starts);
        they run one at a time, as they did when each process took the whole file, while readers
        never wait. Nested exclusive connections of one thread share the outer one's turn.

        A query that runs out of DuckDB's memory limit raises :class:`StoreMemoryError`, naming the fix.
        """
        try:
            with self._connection(exclusive) as con:
                yield con
        except duckdb.OutOfMemoryException as exc:
            limit = self.memory_limit or "DuckDB's default (80% of RAM)"
            raise StoreMemoryError(
                f"the query ran out of the log store's memory limit ({limit}, shared by the queries running at "
                "once): try a shorter window or coarser buckets, or raise vigil.duckdb_memory_limit "
                f"(VIGIL_DUCKDB_MEMORY_LIMIT) ({_first_line(exc)})") from None

    @contextmanager
    def _connection(self, exclusive: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        owner = self.owner
        if owner is not None:
            with owner.cursor(exclusive) as cur, store_owner.cancellable(cur):
                yield cur
            return
        found = store_owner.owner_info(self.path.resolve())
        nested = exclusive and getattr(_EXCLUSIVE, "depth", 0) > 0
        remote = self._open_remote(found, exclusive and not nested) if found is not None else None
        pid = found.pid if found is not None else None
        if remote is not None:
            _EXCLUSIVE.depth = getattr(_EXCLUSIVE, "depth", 0) + int(exclusive)
            try:
                yield remote  # type: ignore[misc]  # the subset of the connection API Vigil uses
            except store_wire.WireError as exc:
                raise LogStoreError(f"the process owning the log store {self.path} (pid {pid}) stopped "
                                    f"answering ({exc}); retry once it is back") from None
            finally:
                _EXCLUSIVE.depth -= int(exclusive)
                remote.close()
            return
        with _process_lock(self.path), self._open() as con, store_owner.cancellable(con):
            yield con

    def _open_remote(self, found: store_owner.OwnerInfo,
                     exclusive: bool) -> store_client.RemoteConnection | None:
        """A connection through the owner; None when it has ended meanwhile (open the file then)."""
        deadline = time.monotonic() + self.lock_timeout_s
        while found.socket is None and time.monotonic() < deadline:  # an owner still starting
            time.sleep(0.05)
            found = store_owner.owner_info(self.path.resolve()) or found
        sock = found.socket
        try:
            if sock is None:
                raise OSError("no socket announced")
            return store_client.RemoteConnection.open(sock, self.path, max(deadline - time.monotonic(), 0.1),
                                                      exclusive)
        except store_client.ProtocolMismatch as exc:
            raise StoreBusyError(str(exc)) from None
        except (OSError, store_wire.WireError):
            if store_owner.owner_info(self.path.resolve()) is None:
                return None
            raise StoreBusyError(
                f"the log store {self.path} is owned by process {found.pid}, which did not answer on {sock} within "
                f"{self.lock_timeout_s:.0f} s; check that process (the app or `vigil serve`) or raise "
                "VIGIL_LOCK_TIMEOUT") from None

    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._open_database()
        try:
            yield con
        finally:
            con.close()

    def _open_database(self) -> duckdb.DuckDBPyConnection:
        """Open the file (waiting with backoff while another process holds it) and configure it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                text = str(exc)
                if "lock" not in text.lower() or time.monotonic() >= deadline:
                    if "lock" in text.lower():
                        raise StoreBusyError(
                            f"the log store {self.path} stayed locked by another process for "
                            f"{self.lock_timeout_s:.0f} s; wait for the running ingest/job to finish or raise "
                            "VIGIL_LOCK_TIMEOUT (a long-running app or `vigil serve` owns the file and "
                            "serves every other process, so nobody waits)") from None
                    raise LogStoreError(f"cannot open the log store {self.path}: {text}; check the path "
                                        "(VIGIL_DUCKDB_PATH) and that the file is a DuckDB database") from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 1.6, 1.0)
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"SET temp_directory = {_sql_text(str(self.path.with_name(self.path.name + '.tmp')))}")
            if self.memory_limit:
                con.execute(f"SET memory_limit = {_sql_text(self.memory_limit)}")
            if self.threads:
                con.execute(f"SET threads = {int(self.threads)}")
            if not self._schema_ready:
                _create_core_tables(con)
                self._schema_ready = True
        except BaseException:
            con.close()
            raise
        return con

    def query_df(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run one read query and return a (small) DataFrame."""
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    # ------------------------------------------------------------------ schema

    def ensure_model(self, schema: LogSchema, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Create the model's log table (and add any column the configuration gained since); nothing for
        a model whose logs another engine reads in place."""
        if isinstance(con, EngineHandle):
            return
        if con is None:
            with self.connect() as c:
                self.ensure_model(schema, c)
            return
        cols = _log_columns(schema)
        ddl = ", ".join(f"{quote(n)} {t}" for n, t in cols.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {schema.table} ({ddl})")
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [schema.table]).fetchall()}
        for name, typ in cols.items():
            if name not in have:
                con.execute(f"ALTER TABLE {schema.table} ADD COLUMN {quote(name)} {typ}")

    def has_model_table(self, schema: LogSchema) -> bool:
        with self.connect() as con:
            return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                                    [schema.table]).fetchone()[0])  # type: ignore[index]

    # ------------------------------------------------------------------ ingestion

    def ingest(self, paths: Iterable[str | Path], schema: LogSchema,
               progress: Callable[[FileResult], None] | None = None) -> IngestReport:
        """Ingest prediction-log files. Each file is atomic and idempotent (content hash manifest).

        Returns a report; files with problems are rejected whole and listed in ``report.rejected``.
        """
        return self._ingest_files(paths, schema, "predictions", progress)

    def ingest_labels(self, paths: Iterable[str | Path], schema: LogSchema, source: str = "ground_truth",
                      progress: Callable[[FileResult], None] | None = None) -> IngestReport:
        """Ingest label files (``prediction_id``, ``label``, optional ``ts``, ``source``, ``annotator``)."""
        return self._ingest_files(paths, schema, "labels", progress, source=source)

    def _ingest_files(self, paths: Iterable[str | Path], schema: LogSchema, kind: str,
                      progress: Callable[[FileResult], None] | None, source: str = "") -> IngestReport:
        files, problems = expand_paths(paths)
        report = IngestReport()
        for p in problems:
            report.files.append(FileResult(p.file, "rejected", problems=[p]))
        for path in files:
            started = time.perf_counter()
            result = self._ingest_one(path, schema, kind, source)
            result.seconds = time.perf_counter() - started
            report.files.append(result)
            if result.status == "rejected":
                self._record_reject(schema.model, kind, result)
            if progress:
                progress(result)
        return report

    def _ingest_one(self, path: Path, schema: LogSchema, kind: str, source: str) -> FileResult:
        sha = file_sha256(path)
        name = str(path)
        with self.connect(exclusive=True) as con:
            self.ensure_model(schema, con)
            prior = con.execute(
                "SELECT path, ingested_at, rows FROM ingest_manifest WHERE model = ? AND kind = ? AND sha256 = ?",
                [schema.model, kind, sha]).fetchone()
            if prior:
                return FileResult(name, "skipped", 0, sha,
                                  detail=f"already ingested from {prior[0]} at {prior[1]:%Y-%m-%d %H:%M} UTC "
                                         f"({prior[2]} rows); nothing added")
            try:
                src = _stage(con, path)
                if kind == "predictions":
                    problems, select = _validate_predictions(con, src, name, schema)
                else:
                    problems, select = _validate_labels(con, src, name, schema, source)
            except duckdb.Error as exc:
                problems, select = [_read_problem(name, path, exc)], ""
            if problems:
                return FileResult(name, "rejected", sha256=sha, problems=problems)
            target = schema.table if kind == "predictions" else "labels"
            con.execute("BEGIN TRANSACTION")
            try:
                ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchone()[0]  # type: ignore[index]
                con.execute(f"INSERT INTO {target} BY NAME {select.replace('$ingest_id', str(int(ingest_id)))}")
                rows = con.execute(f"SELECT count(*) FROM {target} WHERE ingest_id = ?",
                                   [ingest_id]).fetchone()[0]  # type: ignore[index]
                con.execute("INSERT INTO ingest_manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [ingest_id, schema.model, kind, name, sha, rows, path.stat().st_size, utcnow()])
                if kind == "predictions":
                    latency_rollup.refresh(con, schema, int(ingest_id))
                else:
                    current_labels.refresh(con, int(ingest_id))
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                problem = (_read_problem(name, path, exc) if _NOT_UTF8.search(str(exc)) else
                           Problem(name, f"could not be loaded ({_first_line(exc)})", "fix the file and ingest it again"))
                return FileResult(name, "rejected", sha256=sha, problems=[problem])
            finally:
                con.execute("DROP VIEW IF EXISTS __src; DROP TABLE IF EXISTS __src_t")
            return FileResult(name, "ingested", int(rows), sha)

    def _record_reject(self, model: str, kind: str, result: FileResult) -> None:
        first = result.problems[0].line() if result.problems else ""
        with self.connect() as con:
            con.execute("INSERT INTO ingest_rejects VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [model, kind, result.path, result.sha256, len(result.problems), first[:2000], utcnow()])

    def add_labels(self, schema: LogSchema, frame: pd.DataFrame, source: str) -> int:
        """Append labels from a DataFrame (``prediction_id``, ``label`` (None retracts), ``annotator``, ``ts``).

        Used by label sync; all rows or none. Unknown prediction ids raise :class:`LogStoreError`.
        """
        if frame.empty:
            return 0
        missing = {"prediction_id", "label"} - set(frame.columns)
        if missing:
            raise LogStoreError(f"labels need columns {sorted(missing)}")
        df = frame.copy()
        for col in ("annotator", "ts"):
            if col not in df.columns:
                df[col] = None
        df["ts"] = pd.to_datetime(df["ts"], utc=True).dt.tz_convert(None)
        df["label"] = df["label"].astype("string")
        df = df[["prediction_id", "label", "annotator", "ts"]]
        with self.connect(exclusive=True) as con:
            self.ensure_model(schema, con)
            con.register("__labels_in", df)
            try:
                unknown = con.execute(
                    f"SELECT prediction_id FROM __labels_in ANTI JOIN {schema.table} USING (prediction_id) LIMIT 3"
                ).fetchall()
                if unknown:
                    raise LogStoreError(f"labels for unknown prediction ids {[u[0] for u in unknown]} of "
                                        f"{schema.model}; ingest their prediction logs first")
                bad = con.execute("SELECT label FROM __labels_in WHERE label IS NOT NULL AND label NOT IN "
                                  "(SELECT unnest(?)) LIMIT 3", [list(schema.classes)]).fetchall()
                if bad:
                    raise LogStoreError(f"labels {[b[0] for b in bad]} are not classes {list(schema.classes)}")
                con.execute("BEGIN TRANSACTION")
                ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchone()[0]  # type: ignore[index]
                now = utcnow()
                con.execute(
                    "INSERT INTO labels BY NAME SELECT prediction_id::VARCHAR AS prediction_id, ? AS model_name, "
                    "label::VARCHAR AS label, ? AS source, annotator::VARCHAR AS annotator, "
                    "coalesce(ts::TIMESTAMP, ?) AS ts, ? AS recorded_at, ? AS ingest_id FROM __labels_in",
                    [schema.model, source, now, now, ingest_id])
                current_labels.refresh(con, int(ingest_id))
                con.execute("COMMIT")
            except duckdb.Error:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("__labels_in")
        return len(df)

    # ------------------------------------------------------------------ small reads

    def data_version(self, model: str) -> str:
        """A string that changes whenever the model's logs or labels change (for cache keys)."""
        with self.connect() as con:
            row = con.execute(
                "SELECT coalesce(max(ingest_id), 0), count(*) FROM ingest_manifest WHERE model = ?", [model]
            ).fetchone()
            lab = con.execute("SELECT coalesce(max(ingest_id), 0), count(*) FROM labels WHERE model_name = ?",
                              [model]).fetchone()
        return f"{row[0]}.{row[1]}.{lab[0]}.{lab[1]}"  # type: ignore[index]

    def manifest(self, model: str | None = None) -> pd.DataFrame:
        sql = "SELECT * FROM ingest_manifest" + (" WHERE model = ?" if model else "") + " ORDER BY ingest_id"
        return self.query_df(sql, [model] if model else [])

    def rejects(self, model: str | None = None) -> pd.DataFrame:
        sql = "SELECT * FROM ingest_rejects" + (" WHERE model = ?" if model else "") + " ORDER BY rejected_at"
        return self.query_df(sql, [model] if model else [])

    def summary(self, schema: LogSchema, con: Any = None) -> dict[str, Any]:
        """Volume, time range, versions, error rate, p95 latency, label coverage and last ingest of one model.

        Over every logged row, with the same queries the Operations page and ``vigil ops`` run on a
        window (error rate and p95: :func:`connectors.queries.operations.latency_stats`; label coverage:
        :func:`connectors.queries.quality.label_counts`), so the Overview shows the numbers they show for
        the whole log, never a second definition of them. ``con``: a handle of the model's engine (a
        Spark-backed model's logs are not in this file; its last ingest stays None).
        """
        from connectors.queries import operations as ops_q
        from connectors.queries import quality as quality_q

        if con is None:
            with self.connect() as own:
                return self.summary(schema, own)
        self.ensure_model(schema, con)
        first, latest, _ = ops_q.time_range(con, schema)
        span = (first, latest)
        stats = ops_q.latency_stats(con, schema, datetime.min, datetime.max).iloc[0]
        ok_rows, labelled = quality_q.label_counts(con, schema)
        versions = ops_q.versions(con, schema, datetime.min, datetime.max)
        with self.connect() as duck:
            last = duck.execute("SELECT max(ingested_at) FROM ingest_manifest WHERE model = ?",
                                [schema.model]).fetchone()
        assert last is not None
        rows = int(stats["n"])
        p95 = stats["p95_ms"]
        return {"rows": rows, "first_ts": span[0], "last_ts": span[1], "versions": versions,
                "error_rate": int(stats["n_error"]) / rows if rows else None,
                "latency_p95_ms": None if pd.isna(p95) else float(p95),
                "ok_rows": ok_rows, "labelled_rows": labelled,
                "label_coverage": quality_q.label_coverage(labelled, ok_rows), "last_ingest": last[0]}


# ---------------------------------------------------------------------------------------- internals

_OWNERS: dict[str, store_owner.StoreOwner] = {}
_EXCLUSIVE = threading.local()  # how deep this thread is in exclusive connections through an owner
_OWNERS_GUARD = threading.Lock()
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.RLock:
    """The re-entrant lock that serialises this process's connections to ``path``."""
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())



def _sql_text(text: str) -> str:
    """A SQL string literal (for settings, which take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _create_core_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE SEQUENCE IF NOT EXISTS ingest_seq START 1;
        CREATE TABLE IF NOT EXISTS ingest_manifest (
            ingest_id BIGINT, model VARCHAR, kind VARCHAR, path VARCHAR, sha256 VARCHAR,
            rows BIGINT, bytes BIGINT, ingested_at TIMESTAMP);
        CREATE TABLE IF NOT EXISTS ingest_rejects (
            model VARCHAR, kind VARCHAR, path VARCHAR, sha256 VARCHAR, problems INTEGER,
            first_problem VARCHAR, rejected_at TIMESTAMP);
        CREATE TABLE IF NOT EXISTS labels (
            prediction_id VARCHAR, model_name VARCHAR, label VARCHAR, source VARCHAR, annotator VARCHAR,
            ts TIMESTAMP, recorded_at TIMESTAMP, ingest_id BIGINT);
    """)
    current_labels.create(con)


def _log_columns(schema: LogSchema) -> dict[str, str]:
    cols: dict[str, str] = {
        "prediction_id": "VARCHAR", "model_name": "VARCHAR", "model_version": "VARCHAR", "ts": "TIMESTAMP"}
    for name in schema.columns:
        cols[name] = schema.sql_type(name)
    cols.update({"prediction": "VARCHAR", "score": "DOUBLE"})
    for col in schema.probability_columns.values():
        cols[col] = "DOUBLE"
    cols.update({"latency_ms": "DOUBLE", "status": "VARCHAR", "ingest_id": "BIGINT"})
    return cols


def _stage(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    """Expose the file as ``__src`` with a 1-based ``__row`` column; return its column -> type.

    The file is read alone and literally: its path is escaped against DuckDB's glob, and folder names of
    the form ``key=value`` add no (hive partition) columns. ``can_have_nan``: Parquet's min/max statistics
    leave NaN out, and without it DuckDB's optimizer trusts them and folds ``isnan(x)`` (and the NULLIF that
    turns NaN into NULL) to false, so a file's NaN would be checked for and stored as if absent.
    """
    fmt = SUPPORTED_SUFFIXES[path.suffix.lower()]
    lit = _literal_path(path)
    con.execute("DROP VIEW IF EXISTS __src; DROP TABLE IF EXISTS __src_t")
    if fmt == "parquet":
        # Parquet scans are cheap and carry their own row numbers: validate and load straight from the file.
        con.execute(f"CREATE TEMP VIEW __src AS SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS __row "
                    f"FROM read_parquet({lit}, file_row_number = true, hive_partitioning = false, can_have_nan = true)")
    else:
        reader = (f"read_csv({lit}, header = true, all_varchar = true, strict_mode = true, hive_partitioning = false)"
                  if fmt == "csv" else f"read_json({lit}, format = 'newline_delimited', hive_partitioning = false)")
        con.execute(f"CREATE TEMP TABLE __src_t AS SELECT *, row_number() OVER () AS __row FROM {reader}")
        con.execute("CREATE TEMP VIEW __src AS SELECT * FROM __src_t")
    return {r[0]: r[1] for r in con.execute("DESCRIBE __src").fetchall() if r[0] != "__row"}


def _literal_path(path: Path) -> str:
    """``path`` as a SQL string that DuckDB reads as exactly that file.

    Why: DuckDB expands ``*``, ``?`` and ``[...]`` in every path it is given, even one naming an existing
    file, so ``logs?.csv`` also read ``logs1.csv``. Each such character becomes a one-character class
    (``[[]``, ``[?]``, ``[*]``), which matches only itself.
    """
    escaped = "".join(f"[{ch}]" if ch in _GLOB_CHARS else ch for ch in str(path))
    return "'" + escaped.replace("'", "''") + "'"


def _read_problem(name: str, path: Path, exc: duckdb.Error) -> Problem:
    """The problem of a file DuckDB could not read: a text encoding other than UTF-8 is named as such."""
    if not _NOT_UTF8.search(str(exc)):
        return Problem(name, f"cannot be read ({_first_line(exc)})",
                       "the file is truncated, corrupt or not of its extension's format; re-export it")
    if SUPPORTED_SUFFIXES[path.suffix.lower()] == "parquet":
        return Problem(name, "holds strings that are not UTF-8 text", "re-export it with UTF-8 strings")
    where = _first_invalid_utf8(path)
    at = f" (first invalid byte on line {where[0]}, byte offset {where[1]})" if where else ""
    return Problem(name, f"is not UTF-8 text{at}",
                   "re-save it as UTF-8: choose UTF-8 when exporting, or convert it, e.g. "
                   "`iconv -f latin1 -t utf-8 FILE > FILE.utf8` (use the file's real encoding)")


def _first_invalid_utf8(path: Path, chunk: int = 1 << 20) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte that is not UTF-8, or None; read only for a rejected file."""
    line, offset, carry = 1, 0, b""
    with path.open("rb") as fh:
        while True:
            block = fh.read(chunk)
            data = carry + block
            if not data:
                return None
            try:
                data.decode("utf-8")
                good, carry = data, b""
            except UnicodeDecodeError as exc:
                if block and exc.reason == "unexpected end of data":  # a character split by the chunk
                    good, carry = data[:exc.start], data[exc.start:]
                else:
                    return line + data.count(b"\n", 0, exc.start), offset + exc.start
            line += good.count(b"\n")
            offset += len(good)


def _is_numeric(sql_type: str) -> bool:
    return sql_type.split("(")[0] in _NUMERIC_TYPES


def _is_float(sql_type: str) -> bool:
    return sql_type in ("FLOAT", "DOUBLE")


def _as_text(col: str, sql_type: str) -> str:
    """Text form of a source column: integral floats lose their '.0' so 1.0 matches class '1'; NaN is missing."""
    q = quote(col)
    if _is_float(sql_type) or sql_type.startswith("DECIMAL"):
        nan = f"WHEN isnan({q}) THEN NULL " if _is_float(sql_type) else ""
        return (f"CASE {nan}WHEN {q} = trunc({q}) AND abs({q}) < 1e15 THEN CAST(CAST({q} AS BIGINT) AS VARCHAR) "
                f"ELSE CAST({q} AS VARCHAR) END")
    if sql_type == "JSON":
        return f"json_extract_string({q}, '$')"
    return f"CAST({q} AS VARCHAR)"


def _number(col: str, sql_type: str) -> str:
    """The source value as a DOUBLE, as written (NaN stays NaN, for the checks; text that is no number is NULL)."""
    q = quote(col)
    if _is_numeric(sql_type):
        return f"CAST({q} AS DOUBLE)"
    if sql_type == "JSON":
        return f"TRY_CAST(json_extract_string({q}, '$') AS DOUBLE)"
    return f"TRY_CAST({q} AS DOUBLE)"


def _as_double(col: str, sql_type: str) -> str:
    """The value stored in a DOUBLE column: NaN becomes NULL, so every query sees one kind of missing."""
    return nan_as_null(_number(col, sql_type))


def _id_text(col: str, sql_type: str, integral_text: bool) -> str:
    """Canonical text of a ``prediction_id``, the same whatever the file type: 9000001 as a Parquet float, a
    JSON number or a CSV cell "9000001.0" is "9000001". ``integral_text``: some text ids are written as
    integral floats (known from a count, so the common case costs no per-row rewrite)."""
    q = quote(col)
    if _is_float(sql_type):  # whole and below 2^53, by the check of _id_checks
        return f"CAST(CAST({q} AS BIGINT) AS VARCHAR)"
    if sql_type.startswith("DECIMAL"):
        return f"CAST(CAST({q} AS HUGEINT) AS VARCHAR)"
    text = f"json_extract_string({q}, '$')" if sql_type == "JSON" else f"CAST({q} AS VARCHAR)"
    return f"regexp_replace({text}, '{_TEXT_INTEGRAL}', '\\1')" if integral_text else text


def _integral_text_condition(col: str, sql_type: str) -> str | None:
    """Rows whose text id is an integral float ("9000001.0"); None when the column is not text."""
    if _is_numeric(sql_type):
        return None
    text = f"json_extract_string({quote(col)}, '$')" if sql_type == "JSON" else f"CAST({quote(col)} AS VARCHAR)"
    return f"ends_with({text}, '0') AND contains({text}, '.') AND regexp_matches({text}, '{_TEXT_INTEGRAL}')"


def _id_checks(col: str, sql_type: str) -> list[Check]:
    """A numeric id must be a whole number a float holds exactly, or it names no prediction for sure."""
    q = quote(col)
    if _is_float(sql_type):
        bad = f"{q} IS NOT NULL AND NOT (isfinite({q}) AND {q} = trunc({q}) AND abs({q}) < {_MAX_EXACT_FLOAT_ID})"
    elif sql_type.startswith("DECIMAL"):
        bad = f"{q} <> trunc({q})"
    else:
        return []
    return [(bad, "id is not a whole number (a fraction, NaN, or above 2^53 where floats skip integers)",
             "write ids as integers or as text, never as floats", col)]


def _ts_expr(sql_type: str) -> str | None:
    """Expression turning the source ``ts`` into naive UTC, or None if the type cannot hold a time."""
    if sql_type == "TIMESTAMP WITH TIME ZONE":
        return "timezone('UTC', ts)"
    if sql_type.startswith("TIMESTAMP") or sql_type == "DATE":
        return "CAST(ts AS TIMESTAMP)"
    if sql_type in ("VARCHAR", "JSON"):
        text = "json_extract_string(ts, '$')" if sql_type == "JSON" else "ts"
        return f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))"
    return None


def _column_problems(con: duckdb.DuckDBPyConnection, name: str, have: dict[str, str], required: Sequence[str],
                     allowed: set[str], extra_policy: str) -> list[Problem]:
    problems = [Problem(name, "required column is missing", "add it to the file or correct its name", column=c)
                for c in required if c not in have]
    extra = sorted(set(have) - allowed)
    if extra and extra_policy == "reject":
        problems.append(Problem(
            name, f"unexpected column(s) {extra}",
            "remove them, declare them as features in vigil.toml, or set extra_columns = \"ignore\" for the model"))
    return problems


def _count(con: duckdb.DuckDBPyConnection, conditions: Sequence[str]) -> list[int]:
    """Rows of ``__src`` matching each condition, all in one scan."""
    if not conditions:
        return []
    row = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {c})" for c in conditions) + " FROM __src"
                      ).fetchone()
    return [int(n) for n in row] if row else [0] * len(conditions)


def _check_problems(con: duckdb.DuckDBPyConnection, name: str, checks: Sequence[Check], counts: Sequence[int]
                    ) -> list[Problem]:
    """One problem per failing check (``counts`` from :func:`_count`), at its first bad row.

    The first rows of all failing checks come from aggregate filters in one more scan, not from a ``WHERE``
    per check: one scan whatever the number of problems, and no row-group pruning by Parquet statistics
    (which leave NaN out) can hide the row that was counted.
    """
    failing = [(n, check) for n, check in zip(counts, checks, strict=True) if n]
    if not failing:
        return []
    # count(*) keeps the filters on the aggregates (a lone filtered aggregate could become a WHERE).
    found = con.execute("SELECT count(*), " + ", ".join(f"min(__row) FILTER (WHERE {c[0]})" for _, c in failing)
                        + " FROM __src").fetchone()
    firsts: list[Any] = list(found[1:]) if found else [None] * len(failing)
    problems = []
    for (n, (_, message, fix, col)), row in zip(failing, firsts, strict=True):
        shown = _sample(con, col, row)
        problems.append(Problem(name, f"{message}{shown}; {n} row(s) affected", fix,
                                row=None if row is None else int(row), column=col))
    return problems


def _sample(con: duckdb.DuckDBPyConnection, col: str | None, row: int | None) -> str:
    """`` (value '...')`` of ``col`` at ``row`` for a problem line, or nothing."""
    if col is None or row is None:
        return ""
    value = con.execute(f"SELECT CAST({quote(col)} AS VARCHAR) FROM __src WHERE __row = ?", [row]).fetchone()
    return f" (value '{str(value[0])[:60]}')" if value and value[0] is not None else ""


def _checked_ids(con: duckdb.DuckDBPyConnection, name: str, have: dict[str, str], checks: list[Check]
                 ) -> tuple[list[Problem], str]:
    """Run the row-level ``checks`` plus the id checks in one counting scan (and one more locating the failing
    ones); return the problems and the canonical id expression.

    The same scan counts text ids written as integral floats, so only a file holding some pays for
    rewriting them."""
    typ = have["prediction_id"]
    checks = [*checks, *_id_checks("prediction_id", typ)]
    integral = _integral_text_condition("prediction_id", typ)
    counts = _count(con, [c[0] for c in checks] + ([integral] if integral else []))
    problems = _check_problems(con, name, checks, counts[:len(checks)])
    return problems, _id_text("prediction_id", typ, integral_text=bool(integral and counts[-1]))


def _duplicate_problems(con: duckdb.DuckDBPyConnection, name: str, target: str, pid: str) -> list[Problem]:
    """Duplicate ``prediction_id`` (canonical form ``pid``) inside the file, and against rows stored in ``target``."""
    ids = f"(SELECT {pid} AS pid, __row FROM __src)"
    problems = []
    dup = con.execute(f"SELECT pid, min(__row), count(*) FROM {ids} GROUP BY 1 HAVING count(*) > 1 "
                      "ORDER BY 2 LIMIT 1").fetchone()
    if dup:
        problems.append(Problem(name, f"prediction_id '{dup[0]}' appears {dup[2]} times in the file",
                                "each prediction_id must be unique; drop the repeated rows",
                                row=int(dup[1]), column="prediction_id"))
    clash = con.execute(f"SELECT s.pid, s.__row FROM {ids} s SEMI JOIN {target} t ON s.pid = t.prediction_id "
                        "ORDER BY 2 LIMIT 1").fetchone()
    if clash:
        problems.append(Problem(name, f"prediction_id '{clash[0]}' is already stored from another file",
                                "remove rows that were ingested before, or give them new ids",
                                row=int(clash[1]), column="prediction_id"))
    return problems


def _validate_predictions(con: duckdb.DuckDBPyConnection, have: dict[str, str], name: str,
                          schema: LogSchema) -> tuple[list[Problem], str]:
    """Validate ``__src`` against the model's schema; return problems and the SELECT that loads it."""
    required = [*REQUIRED_COLUMNS, *schema.columns]
    allowed = set(schema.known_columns())
    problems = _column_problems(con, name, have, required, allowed, schema.extra_columns)
    if problems:
        return problems, ""
    checks: list[Check] = [(f"{quote(col)} IS NULL" if col in ("prediction_id", "ts") else
                            f"({_as_text(col, have[col])}) IS NULL",  # NaN in a float column is empty too
                            "required value is empty", "fill it in or drop the row", col)
                           for col in ("prediction_id", "model_version", "prediction", "ts")]
    ts = _ts_expr(have["ts"])
    if ts is None:
        return [Problem(name, f"timestamps have type {have['ts']}", "write ISO-8601 text "
                        "(2026-01-31T12:00:00Z) or a timestamp type", column="ts")], ""
    checks.append((f"ts IS NOT NULL AND ({ts}) IS NULL", "timestamp cannot be parsed",
                   "write ISO-8601, e.g. 2026-01-31T12:00:00Z", "ts"))
    if have["ts"] in ("VARCHAR", "JSON"):
        parsed = f"({ts}) IS NOT NULL"
        aware = con.execute(f"SELECT count(*) FILTER (WHERE {parsed} AND regexp_matches(ts::VARCHAR, '{_TZ_SUFFIX}')), "
                            f"count(*) FILTER (WHERE {parsed}), min(__row) FILTER (WHERE {parsed} AND NOT "
                            f"regexp_matches(ts::VARCHAR, '{_TZ_SUFFIX}')) FROM __src").fetchone()
        assert aware is not None
        if 0 < aware[0] < aware[1]:
            return [Problem(name, "timestamps mix time-zone-aware and naive values, so their instants are "
                            "ambiguous", "give every timestamp an offset (e.g. Z or +02:00)",
                            row=int(aware[2]), column="ts")], ""
    classes = ", ".join("'" + c.replace("'", "''") + "'" for c in schema.classes)
    checks.append((f"{quote('prediction')} IS NOT NULL AND ({_as_text('prediction', have['prediction'])}) "
                   f"NOT IN ({classes})", f"prediction is not one of the classes [{classes}]",
                   "map predictions to the configured classes or fix 'classes' in vigil.toml", "prediction"))
    checks += _number_checks(have, schema)
    if "model_name" in have:
        model_lit = "'" + schema.model.replace("'", "''") + "'"
        checks.append((f"model_name IS NOT NULL AND CAST(model_name AS VARCHAR) <> {model_lit}",
                       f"row belongs to another model than '{schema.model}'",
                       "ingest it with --model set to that model", "model_name"))
    problems, pid = _checked_ids(con, name, have, checks)
    if problems:
        return problems, ""
    problems = _duplicate_problems(con, name, schema.table, pid)
    if problems:
        return problems, ""
    return [], _prediction_select(have, schema, pid, ts)


def _number_checks(have: dict[str, str], schema: LogSchema) -> list[Check]:
    """Checks of the numeric columns present. NaN (or text "nan") is missing in a feature or a latency, and
    stored as NULL; in a probability it is an error of the model server, so the file is rejected."""
    checks: list[Check] = []
    numeric = [c for c, t in schema.columns.items() if t == "numerical"]
    numeric += [c for c in ("score", "latency_ms", *schema.probability_columns.values()) if c in have]
    for col in numeric:
        if not _is_numeric(have[col]):
            checks.append((f"{quote(col)} IS NOT NULL AND ({_number(col, have[col])}) IS NULL",
                           "not a number", "write numbers only (empty for missing)", col))
    for col in ("score", *schema.probability_columns.values()):
        if col in have:
            x = _number(col, have[col])
            checks.append((f"isnan({x})", "probability is NaN",
                           "log the probability, between 0 and 1, or leave it empty when there is none", col))
            checks.append((f"NOT isnan({x}) AND ({x} < 0 OR {x} > 1)", "probability outside [0, 1]",
                           "log probabilities between 0 and 1", col))
    if "latency_ms" in have:
        x = _number("latency_ms", have["latency_ms"])
        checks.append((f"{x} < 0", "negative latency", "log latency in milliseconds, >= 0", "latency_ms"))
        checks.append((f"{x} = 'Infinity'::DOUBLE", "infinite latency",
                       "log the measured milliseconds, or leave it empty when unknown", "latency_ms"))
    return checks


def _prediction_select(have: dict[str, str], schema: LogSchema, pid: str, ts: str) -> str:
    """The SELECT over ``__src`` that loads a validated prediction file into the model's table."""
    exprs = [
        f"{pid} AS prediction_id",
        "'" + schema.model.replace("'", "''") + "' AS model_name",
        f"{_as_text('model_version', have['model_version'])} AS model_version",
        f"{ts} AS ts",
    ]
    for col, typ in schema.columns.items():
        exprs.append(f"{_as_double(col, have[col]) if typ == 'numerical' else _as_text(col, have[col])} AS {quote(col)}")
    exprs.append(f"{_as_text('prediction', have['prediction'])} AS prediction")
    proba_present = [c for c in schema.probability_columns.values() if c in have]
    for col in proba_present:
        exprs.append(f"{_as_double(col, have[col])} AS {quote(col)}")
    if "score" in have:
        exprs.append(f"{_as_double('score', have['score'])} AS score")
    elif len(proba_present) == len(schema.classes):
        exprs.append(f"greatest({', '.join(_as_double(c, have[c]) for c in proba_present)}) AS score")
    if "latency_ms" in have:
        exprs.append(f"{_as_double('latency_ms', have['latency_ms'])} AS latency_ms")
    exprs.append(f"coalesce(lower({_as_text('status', have['status'])}), 'ok') AS status"
                 if "status" in have else "'ok' AS status")
    exprs.append("$ingest_id AS ingest_id")
    return f"SELECT {', '.join(exprs)} FROM __src"


def _validate_labels(con: duckdb.DuckDBPyConnection, have: dict[str, str], name: str, schema: LogSchema,
                     source: str) -> tuple[list[Problem], str]:
    allowed = set(LABEL_REQUIRED) | set(LABEL_OPTIONAL) | {"model_name"}
    problems = _column_problems(con, name, have, LABEL_REQUIRED, allowed, "reject")
    if problems:
        return problems, ""
    classes = ", ".join("'" + c.replace("'", "''") + "'" for c in schema.classes)
    label = _as_text("label", have["label"])
    checks: list[Check] = [
        ("prediction_id IS NULL", "required value is empty", "fill it in or drop the row", "prediction_id"),
        (f"({label}) IS NULL", "label is empty", "fill it in or drop the row", "label"),
        (f"({label}) NOT IN ({classes})", f"label is not one of the classes [{classes}]",
         "map labels to the configured classes", "label"),
    ]
    ts = _ts_expr(have["ts"]) if "ts" in have else None
    if "ts" in have:
        if ts is None:
            return [Problem(name, f"timestamps have type {have['ts']}", "write ISO-8601 text", column="ts")], ""
        checks.append((f"ts IS NOT NULL AND ({ts}) IS NULL", "timestamp cannot be parsed",
                       "write ISO-8601, e.g. 2026-01-31T12:00:00Z", "ts"))
    problems, pid = _checked_ids(con, name, have, checks)
    if problems:
        return problems, ""
    problems = _label_id_problems(con, name, schema, pid)
    if problems:
        return problems, ""
    model_lit = "'" + schema.model.replace("'", "''") + "'"
    src_lit = "'" + source.replace("'", "''") + "'"
    exprs = [
        f"{pid} AS prediction_id", f"{model_lit} AS model_name", f"{label} AS label",
        f"coalesce(CAST(source AS VARCHAR), {src_lit}) AS source" if "source" in have else f"{src_lit} AS source",
        "CAST(annotator AS VARCHAR) AS annotator" if "annotator" in have else "NULL AS annotator",
        f"coalesce({ts}, current_timestamp::TIMESTAMP) AS ts" if ts else "current_timestamp::TIMESTAMP AS ts",
        "current_timestamp::TIMESTAMP AS recorded_at", "$ingest_id AS ingest_id",
    ]
    return [], f"SELECT {', '.join(exprs)} FROM __src"


def _label_id_problems(con: duckdb.DuckDBPyConnection, name: str, schema: LogSchema, pid: str) -> list[Problem]:
    """Labels of predictions not in the model's logs, and predictions labelled twice in the file (by the
    canonical id ``pid``, so a label file's 9000001.0 finds the logs' 9000001)."""
    ids = f"(SELECT {pid} AS pid, __row FROM __src)"
    unknown = con.execute(f"SELECT s.pid, s.__row FROM {ids} s ANTI JOIN {schema.table} t ON "
                          "s.pid = t.prediction_id ORDER BY 2 LIMIT 1").fetchone()
    if unknown:
        return [Problem(name, f"label for prediction_id '{unknown[0]}' which is not in the logs of {schema.model}",
                        "ingest the prediction logs first, or drop labels of other models",
                        row=int(unknown[1]), column="prediction_id")]
    dup = con.execute(f"SELECT pid, min(__row) FROM {ids} GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 LIMIT 1"
                      ).fetchone()
    if dup:
        return [Problem(name, f"prediction_id '{dup[0]}' is labelled more than once in the file",
                        "keep one label per prediction", row=int(dup[1]), column="prediction_id")]
    return []
