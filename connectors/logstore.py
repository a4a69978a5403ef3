"""DuckDB log store: schema, atomic idempotent ingestion, and the connection discipline.

Concurrency scheme (DuckDB allows one read-write *process* per file): every process (the Streamlit
server, each CLI command, each background job) opens the file only for the duration of one operation
(:meth:`LogStore.connect`) and closes it straight after. When another process holds the file, opening
fails with "Could not set lock"; we retry with jittered backoff until ``lock_timeout_s`` and then raise
:class:`StoreBusyError` naming the fix. Inside one process DuckDB shares one database instance between
connections. An ingest of N rows holds the file for about
as long as the load takes; pages keep serving their cached results meanwhile.

Inside one process, connections to a file are taken one at a time (a re-entrant lock per file):
DuckDB's Python DataFrame scans (``con.register``) are not safe on connections used concurrently from
several threads, and every operation is short, so serialising them costs little.

Every table is created here; domain SQL (drift, fairness, operations, selection) lives in
:mod:`connectors.queries` and reads through :meth:`LogStore.connect`.
"""

from __future__ import annotations

import hashlib
import random
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

from connectors.errors import ConnectorError
from connectors.queries import current_labels, latency_rollup
from connectors.schema import (
    LABEL_OPTIONAL,
    LABEL_REQUIRED,
    REQUIRED_COLUMNS,
    LogSchema,
    quote,
)

SUPPORTED_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json",
                      ".ndjson": "json", ".json": "json"}
MAX_EXAMPLES = 3
_TZ_SUFFIX = r"(Z|[+-]\d{2}(:?\d{2})?)$"
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


class LogStoreError(ConnectorError):
    """Base error of the log store; messages name the fix."""


class StoreBusyError(LogStoreError):
    """Another process held the DuckDB file for longer than the lock timeout."""


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
    """Files, globs and folders (searched recursively) -> supported files, plus problems for the rest."""
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        text = str(raw)
        p = Path(text).expanduser()
        if p.is_dir():
            hits = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in SUPPORTED_SUFFIXES)
            if not hits:
                problems.append(Problem(text, "folder holds no .parquet, .csv or .jsonl file",
                                        "point at a folder of log files or at the files themselves"))
            found += hits
        elif any(ch in text for ch in "*?["):
            hits = sorted(Path(h) for h in glob(text, recursive=True) if Path(h).is_file())
            if not hits:
                problems.append(Problem(text, "pattern matched no file", "check the pattern and quote it"))
            found += hits
        elif not p.exists():
            problems.append(Problem(text, "no such file", "check the path"))
        elif p.suffix.lower() not in SUPPORTED_SUFFIXES:
            problems.append(Problem(text, f"unsupported file type '{p.suffix}'",
                                    "convert it to Parquet, CSV or JSON Lines (.parquet, .csv, .jsonl)"))
        else:
            found.append(p)
    unique: dict[Path, None] = {}
    for f in found:
        unique.setdefault(f.resolve(), None)
    return list(unique), problems


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class LogStore:
    """The DuckDB file holding prediction logs, labels and Vigil's own small tables."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._schema_ready = False

    # ------------------------------------------------------------------ connections

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits (with backoff) while another process holds the file."""
        with _process_lock(self.path), self._open() as con:
            yield con

    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
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
                            "VIGIL_LOCK_TIMEOUT") from None
                    raise LogStoreError(f"cannot open the log store {self.path}: {text}; check the path "
                                        "(VIGIL_DUCKDB_PATH) and that the file is a DuckDB database") from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 1.6, 1.0)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if not self._schema_ready:
                _create_core_tables(con)
                self._schema_ready = True
            yield con
        finally:
            con.close()

    def query_df(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run one read query and return a (small) DataFrame."""
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    # ------------------------------------------------------------------ schema

    def ensure_model(self, schema: LogSchema, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Create the model's log table (and add any column the configuration gained since)."""
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
        with self.connect() as con:
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
            except duckdb.Error as exc:
                return FileResult(name, "rejected", sha256=sha, problems=[Problem(
                    name, f"cannot be read ({_first_line(exc)})",
                    "the file is truncated, corrupt or not of its extension's format; re-export it")])
            try:
                if kind == "predictions":
                    problems, select = _validate_predictions(con, src, name, schema)
                else:
                    problems, select = _validate_labels(con, src, name, schema, source)
            except duckdb.Error as exc:
                problems, select = [Problem(name, f"cannot be read ({_first_line(exc)})",
                                            "the file is truncated or corrupt; re-export it")], ""
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
                return FileResult(name, "rejected", sha256=sha, problems=[Problem(
                    name, f"could not be loaded ({_first_line(exc)})", "fix the file and ingest it again")])
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
        with self.connect() as con:
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

    def summary(self, schema: LogSchema) -> dict[str, Any]:
        """Volume, time range, versions, error rate, label coverage and last ingest of one model."""
        with self.connect() as con:
            self.ensure_model(schema, con)
            r = con.execute(
                f"SELECT count(*), min(ts), max(ts), count(DISTINCT model_version), "
                f"avg(CASE WHEN status <> 'ok' THEN 1.0 ELSE 0.0 END), "
                f"quantile_cont(latency_ms, 0.95) FROM {schema.table}").fetchone()
            labelled = con.execute(
                f"SELECT count(DISTINCT l.prediction_id) FROM current_labels l SEMI JOIN {schema.table} t "
                "USING (prediction_id) WHERE l.model_name = ?", [schema.model]).fetchone()
            last = con.execute("SELECT max(ingested_at) FROM ingest_manifest WHERE model = ?",
                               [schema.model]).fetchone()
            versions = [v[0] for v in con.execute(
                f"SELECT model_version, count(*) FROM {schema.table} GROUP BY 1 ORDER BY 1").fetchall()]
        assert r is not None and labelled is not None and last is not None
        rows = int(r[0])
        return {"rows": rows, "first_ts": r[1], "last_ts": r[2], "versions": versions,
                "error_rate": float(r[4]) if rows else None, "latency_p95_ms": r[5],
                "labelled_rows": int(labelled[0]), "label_coverage": (labelled[0] / rows) if rows else None,
                "last_ingest": last[0]}


# ---------------------------------------------------------------------------------------- internals

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.RLock:
    """The re-entrant lock that serialises this process's connections to ``path``."""
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())



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
    """Expose the file as ``__src`` with a 1-based ``__row`` column; return its column -> type."""
    fmt = SUPPORTED_SUFFIXES[path.suffix.lower()]
    lit = "'" + str(path).replace("'", "''") + "'"
    con.execute("DROP VIEW IF EXISTS __src; DROP TABLE IF EXISTS __src_t")
    if fmt == "parquet":
        # Parquet scans are cheap and carry their own row numbers: validate and load straight from the file.
        con.execute(f"CREATE TEMP VIEW __src AS SELECT * EXCLUDE (file_row_number), "
                    f"file_row_number + 1 AS __row FROM read_parquet({lit}, file_row_number = true)")
    else:
        reader = (f"read_csv({lit}, header = true, all_varchar = true, strict_mode = true)" if fmt == "csv"
                  else f"read_json({lit}, format = 'newline_delimited')")
        con.execute(f"CREATE TEMP TABLE __src_t AS SELECT *, row_number() OVER () AS __row FROM {reader}")
        con.execute("CREATE TEMP VIEW __src AS SELECT * FROM __src_t")
    return {r[0]: r[1] for r in con.execute("DESCRIBE __src").fetchall() if r[0] != "__row"}


def _is_numeric(sql_type: str) -> bool:
    return sql_type.split("(")[0] in _NUMERIC_TYPES


def _as_text(col: str, sql_type: str) -> str:
    """Text form of a source column: integral floats lose their '.0' so 1.0 matches class '1'."""
    q = quote(col)
    if sql_type in ("FLOAT", "DOUBLE") or sql_type.startswith("DECIMAL"):
        return (f"CASE WHEN {q} = trunc({q}) AND abs({q}) < 1e15 THEN CAST(CAST({q} AS BIGINT) AS VARCHAR) "
                f"ELSE CAST({q} AS VARCHAR) END")
    if sql_type == "JSON":
        return f"json_extract_string({q}, '$')"
    return f"CAST({q} AS VARCHAR)"


def _as_double(col: str, sql_type: str) -> str:
    q = quote(col)
    if _is_numeric(sql_type):
        return f"CAST({q} AS DOUBLE)"
    if sql_type == "JSON":
        return f"TRY_CAST(json_extract_string({q}, '$') AS DOUBLE)"
    return f"TRY_CAST({q} AS DOUBLE)"


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


def _check(con: duckdb.DuckDBPyConnection, name: str, checks: list[tuple[str, str, str, str | None]]
           ) -> list[Problem]:
    """Run row-level checks: one counting scan for all, then one lookup of the first bad row per failing check.

    Each check is (SQL condition for a bad row, message, fix, column).
    """
    if not checks:
        return []
    counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {cond})" for cond, *_ in checks)
                         + " FROM __src").fetchone()
    assert counts is not None
    problems = []
    for n, (cond, message, fix, col) in zip(counts, checks, strict=True):
        if not n:
            continue
        sample = f"CAST({quote(col)} AS VARCHAR)" if col else "NULL"
        first = con.execute(f"SELECT __row, {sample} FROM __src WHERE {cond} ORDER BY __row LIMIT 1").fetchone()
        assert first is not None
        shown = f" (value '{str(first[1])[:60]}')" if first[1] is not None else ""
        problems.append(Problem(name, f"{message}{shown}; {n} row(s) affected", fix, row=int(first[0]), column=col))
    return problems


def _duplicate_problems(con: duckdb.DuckDBPyConnection, name: str, target: str, scope: str) -> list[Problem]:
    """Duplicate ``prediction_id`` inside the file, and against rows already stored in ``target``."""
    problems = []
    dup = con.execute("SELECT prediction_id, min(__row), count(*) FROM __src GROUP BY 1 HAVING count(*) > 1 "
                      "ORDER BY 2 LIMIT 1").fetchone()
    if dup:
        problems.append(Problem(name, f"prediction_id '{dup[0]}' appears {dup[2]} times in the file",
                                "each prediction_id must be unique; drop the repeated rows",
                                row=int(dup[1]), column="prediction_id"))
    clash = con.execute(f"SELECT s.prediction_id, s.__row FROM __src s SEMI JOIN {target} t "
                        f"ON CAST(s.prediction_id AS VARCHAR) = t.prediction_id {scope} ORDER BY 2 LIMIT 1").fetchone()
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
    checks: list[tuple[str, str, str, str | None]] = []
    for col in ("prediction_id", "model_version", "prediction", "ts"):
        checks.append((f"{quote(col)} IS NULL", "required value is empty", "fill it in or drop the row", col))
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
    numeric = [c for c, t in schema.columns.items() if t == "numerical"]
    numeric += [c for c in ("score", "latency_ms", *schema.probability_columns.values()) if c in have]
    for col in numeric:
        if col in have and not _is_numeric(have[col]):
            checks.append((f"{quote(col)} IS NOT NULL AND ({_as_double(col, have[col])}) IS NULL",
                           "not a number", "write numbers only (empty for missing)", col))
    for col in ("score", *schema.probability_columns.values()):
        if col in have:
            expr = _as_double(col, have[col])
            checks.append((f"{expr} < 0 OR {expr} > 1", "probability outside [0, 1]",
                           "log probabilities between 0 and 1", col))
    if "latency_ms" in have:
        checks.append((f"{_as_double('latency_ms', have['latency_ms'])} < 0", "negative latency",
                       "log latency in milliseconds, >= 0", "latency_ms"))
    if "model_name" in have:
        model_lit = "'" + schema.model.replace("'", "''") + "'"
        checks.append((f"model_name IS NOT NULL AND CAST(model_name AS VARCHAR) <> {model_lit}",
                       f"row belongs to another model than '{schema.model}'",
                       "ingest it with --model set to that model", "model_name"))
    problems = _check(con, name, checks)
    if problems:
        return problems, ""
    problems = _duplicate_problems(con, name, schema.table, "")
    if problems:
        return problems, ""
    exprs = [
        f"{_as_text('prediction_id', have['prediction_id'])} AS prediction_id",
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
    return [], f"SELECT {', '.join(exprs)} FROM __src"


def _validate_labels(con: duckdb.DuckDBPyConnection, have: dict[str, str], name: str, schema: LogSchema,
                     source: str) -> tuple[list[Problem], str]:
    allowed = set(LABEL_REQUIRED) | set(LABEL_OPTIONAL) | {"model_name"}
    problems = _column_problems(con, name, have, LABEL_REQUIRED, allowed, "reject")
    if problems:
        return problems, ""
    classes = ", ".join("'" + c.replace("'", "''") + "'" for c in schema.classes)
    checks: list[tuple[str, str, str, str | None]] = [
        ("prediction_id IS NULL", "required value is empty", "fill it in or drop the row", "prediction_id"),
        ("label IS NULL", "label is empty", "fill it in or drop the row", "label"),
        (f"label IS NOT NULL AND ({_as_text('label', have['label'])}) NOT IN ({classes})",
         f"label is not one of the classes [{classes}]", "map labels to the configured classes", "label"),
    ]
    ts = _ts_expr(have["ts"]) if "ts" in have else None
    if "ts" in have:
        if ts is None:
            return [Problem(name, f"timestamps have type {have['ts']}", "write ISO-8601 text", column="ts")], ""
        checks.append((f"ts IS NOT NULL AND ({ts}) IS NULL", "timestamp cannot be parsed",
                       "write ISO-8601, e.g. 2026-01-31T12:00:00Z", "ts"))
    problems = _check(con, name, checks)
    if problems:
        return problems, ""
    unknown = con.execute(f"SELECT s.prediction_id, s.__row FROM __src s ANTI JOIN {schema.table} t ON "
                          "CAST(s.prediction_id AS VARCHAR) = t.prediction_id ORDER BY 2 LIMIT 1").fetchone()
    if unknown:
        return [Problem(name, f"label for prediction_id '{unknown[0]}' which is not in the logs of {schema.model}",
                        "ingest the prediction logs first, or drop labels of other models",
                        row=int(unknown[1]), column="prediction_id")], ""
    dup = con.execute("SELECT prediction_id, min(__row) FROM __src GROUP BY 1 HAVING count(*) > 1 "
                      "ORDER BY 2 LIMIT 1").fetchone()
    if dup:
        return [Problem(name, f"prediction_id '{dup[0]}' is labelled more than once in the file",
                        "keep one label per prediction", row=int(dup[1]), column="prediction_id")], ""
    model_lit = "'" + schema.model.replace("'", "''") + "'"
    src_lit = "'" + source.replace("'", "''") + "'"
    exprs = [
        f"{_as_text('prediction_id', have['prediction_id'])} AS prediction_id", f"{model_lit} AS model_name",
        f"{_as_text('label', have['label'])} AS label",
        f"coalesce(CAST(source AS VARCHAR), {src_lit}) AS source" if "source" in have else f"{src_lit} AS source",
        "CAST(annotator AS VARCHAR) AS annotator" if "annotator" in have else "NULL AS annotator",
        f"coalesce({ts}, current_timestamp::TIMESTAMP) AS ts" if ts else "current_timestamp::TIMESTAMP AS ts",
        "current_timestamp::TIMESTAMP AS recorded_at", "$ingest_id AS ingest_id",
    ]
    return [], f"SELECT {', '.join(exprs)} FROM __src"
