"""The Spark session, the lake views it reads and the handle query counterparts receive."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from connectors.engines.base import EngineError, EngineHandle, Lake, QueryEngine
from connectors.logstore import LogStore
from connectors.logstore import _log_columns as log_columns
from connectors.schema import LogSchema, quote

#: Settings every Vigil session needs: UTC like the log store, and the SQL the query modules write
#: (double-quoted identifiers; ``'NaN'::DOUBLE`` etc. are Spark 4 syntax already).
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}
LABEL_COLUMNS = ("prediction_id", "label", "source", "annotator", "ts")
_TS_MIN, _TS_MAX = datetime(1900, 1, 1), datetime(9000, 1, 1)


_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bVARCHAR\b(?!\s*\()"), "STRING"),
    (re.compile(r"\$([A-Za-z_]\w*)"), r":\1"),  # named parameters
    (re.compile(r"(?<!LEFT )\bSEMI JOIN\b"), "LEFT SEMI JOIN"),
    # a value set bound as a list: x IN (SELECT unnest(?::T[])) -> array_contains(CAST(? AS ARRAY<T>), x)
    (re.compile(r"(\"(?:[^\"]|\"\")+\"|\w+) IN \(SELECT unnest\(\?::(\w+)\[\]\)\)"), r"array_contains(CAST(? AS ARRAY<\2>), \1)"),
    (re.compile(r"\bregexp_matches\("), "regexp("),
    # 1.0 is DECIMAL in both, but DuckDB averages decimals as DOUBLE and Spark keeps 4 more digits only
    (re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.])"), r"\1D"),
)


def translate(sql: str) -> str:
    """DuckDB SQL of the query modules in the Spark dialect: the few spellings that differ, rewritten
    outside string literals (Spark 4 already reads ``::``, ``FILTER``, ``GROUP BY ALL`` and
    double-quoted identifiers)."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    for i in range(0, len(parts), 2):
        for pattern, repl in _REWRITES:
            parts[i] = pattern.sub(repl, parts[i])
    return "".join(parts)


class _Result:
    """The part of DuckDB's result API the query modules use, over a Spark DataFrame."""

    def __init__(self, frame: Any) -> None:
        self._frame = frame
        self.description = [(f,) for f in frame.columns]

    def df(self) -> pd.DataFrame:
        return self._frame.toPandas()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._frame.collect()]

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._frame.take(1)
        return tuple(rows[0]) if rows else None


def _param(v: Any) -> Any:
    """A bound value as Spark reads it: naive datetimes mean UTC (clamped to Spark's range)."""
    if isinstance(v, datetime):
        v = min(max(v.replace(tzinfo=None), _TS_MIN), _TS_MAX)
        return v.replace(tzinfo=UTC)
    return v


def params_of(params: Sequence[Any] | Mapping[str, Any] | None) -> Any:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {k: _param(v) for k, v in params.items()} or None
    return [_param(v) for v in params] or None


class SparkHandle(EngineHandle):
    """The first argument of every Spark counterpart: the session plus Vigil's DuckDB store."""

    engine_name = "spark"

    def __init__(self, engine: SparkEngine) -> None:
        self.engine = engine
        self.spark = engine.session()

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> _Result:
        """DuckDB's ``execute`` spelling, so a query whose SQL both engines read runs unchanged here."""
        return _Result(self.frame(sql, params))

    def frame(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """A Spark DataFrame of ``sql`` (DuckDB spellings translated, parameters bound)."""
        return self.spark.sql(translate(sql), args=params_of(params))

    def df(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """The (small) result of ``sql`` as pandas."""
        return self.frame(sql, params).toPandas()

    def rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.frame(sql, params).collect()]

    def duckdb_state(self) -> AbstractContextManager[Any]:
        return self.engine.store.connect()

    def lake(self, model: str) -> Lake | None:
        return self.engine.lakes.get(model)


class SparkEngine(QueryEngine):
    """One Spark session per process, and the lake views of the Spark-backed models."""

    name = "spark"
    label = "Spark"
    _lock = threading.Lock()

    def __init__(self, master: str, app_name: str, conf: Mapping[str, str], lakes: Mapping[str, Lake],
                 store: LogStore) -> None:
        self.master, self.app_name, self.conf = master, app_name, dict(conf)
        self.lakes = dict(lakes)
        self.store = store
        #: Persisted references (training data from MLflow) as Parquet, one folder per reference table.
        self.reference_dir = store.path.parent / "spark-reference"
        self._spark: Any = None

    def has_reference(self, table: str) -> bool:
        return (self.reference_dir / table).is_dir()

    def write_reference(self, table: str, frame: Any) -> None:
        """Persist a reference atomically enough for one writer: write beside, then swap folders."""
        import shutil

        target = self.reference_dir / table
        tmp = self.reference_dir / f".{table}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        frame.write.mode("overwrite").parquet(str(tmp))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        self._spark.read.parquet(str(target)).createOrReplaceTempView(table)

    def session(self) -> Any:
        """The process's session (created on first use: starting the JVM takes seconds)."""
        with self._lock:
            if self._spark is None:
                self._spark = _build_session(self.master, self.app_name, {**BASE_CONF, **self.conf})
                self._register()
            return self._spark

    def _register(self) -> None:
        """(Re)read every lake: new files of a Parquet folder are seen by the next query."""
        spark = self._spark
        parts = []
        for model, lake in self.lakes.items():
            raw = _read(spark, lake.logs, lake.format, f"the logs of model '{model}'", f"models.{model}.lake.logs")
            raw.createOrReplaceTempView(f"raw_{lake.schema.table}")
            spark.sql(contract_select(lake.schema, set(raw.columns), f"raw_{lake.schema.table}")
                      ).createOrReplaceTempView(lake.schema.table)
            if lake.labels:
                view = f"labels_{lake.schema.table[5:]}"
                _read(spark, lake.labels, lake.format, f"the labels of model '{model}'",
                      f"models.{model}.lake.labels").createOrReplaceTempView(view)
                cols = set(spark.table(view).columns)
                sel = ", ".join(c if c in cols else f"CAST(NULL AS {'TIMESTAMP' if c == 'ts' else 'STRING'}) AS {c}"
                                for c in LABEL_COLUMNS[2:])
                parts.append(f"SELECT '{model}' AS model_name, CAST(prediction_id AS STRING) AS prediction_id, "
                             f"CAST(label AS STRING) AS label, {sel} FROM {view}")
        if self.reference_dir.is_dir():
            for folder in sorted(self.reference_dir.iterdir()):
                if folder.is_dir() and not folder.name.startswith("."):
                    spark.read.parquet(str(folder)).createOrReplaceTempView(folder.name)
        empty = ("SELECT CAST(NULL AS STRING) AS model_name, CAST(NULL AS STRING) AS prediction_id, "
                 "CAST(NULL AS STRING) AS label, CAST(NULL AS STRING) AS source, CAST(NULL AS STRING) AS annotator, "
                 "CAST(NULL AS TIMESTAMP) AS ts WHERE FALSE")
        spark.sql(" UNION ALL ".join(parts) or empty).createOrReplaceTempView("labels")
        # The latest label per prediction (a NULL label retracts it), as DuckDB's current_labels table.
        spark.sql("SELECT model_name, prediction_id, label, source, annotator, ts FROM (SELECT *, row_number() "
                  "OVER (PARTITION BY model_name, prediction_id ORDER BY ts DESC NULLS LAST) AS rn FROM labels) "
                  "WHERE rn = 1 AND label IS NOT NULL").createOrReplaceTempView("current_labels")

    @contextmanager
    def _connect(self) -> Iterator[SparkHandle]:
        handle = SparkHandle(self)
        with self._lock:
            self._register()
        yield handle

    def connect(self, exclusive: bool = False) -> AbstractContextManager[Any]:
        return self._connect()

    def close(self) -> None:
        if self._spark is not None:
            self._spark.stop()
            self._spark = None


def contract_select(schema: LogSchema, have: set[str], source: str) -> str:
    """The raw lake table as the log store's contract: every column with its log-table type (a value
    that does not convert, or a column the table lacks, reads as NULL: the data-quality findings report
    both), ``status`` lower-case with 'ok' when absent, as ingestion stores it."""
    exprs = []
    for name, typ in log_columns(schema).items():
        if name == "ingest_id":
            continue
        spark_type = {"VARCHAR": "STRING"}.get(typ, typ)
        if name == "status":
            exprs.append("coalesce(lower(CAST(status AS STRING)), 'ok') AS status" if "status" in have
                         else "'ok' AS status")
        elif name == "model_name":
            exprs.append(f"'{schema.model}' AS model_name")
        elif name in have:
            exprs.append(f"try_cast({quote(name)} AS {spark_type}) AS {quote(name)}")
        else:
            exprs.append(f"CAST(NULL AS {spark_type}) AS {quote(name)}")
    return f"SELECT {', '.join(exprs)} FROM {source}"


def _build_session(master: str, app_name: str, conf: Mapping[str, str]) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError("the spark engine needs pyspark: pip install 'vigil[spark]' (and Java 17)") from None
    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(master) if master.startswith("sc://") else builder.master(master)
    for k, v in conf.items():
        if master.startswith("sc://") and not k.startswith("spark.sql."):
            continue  # a Connect client cannot set the server's JVM or UI settings
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM or the Connect server did not start: say which and how to fix it
        hint = ("is the Spark Connect server running there?" if master.startswith("sc://")
                else "is Java 17 installed (apt-get install openjdk-17-jre-headless)?")
        raise EngineError(f"could not start Spark (master {master}): {str(exc).splitlines()[0][:200]}; {hint}") from None
    if not master.startswith("sc://"):
        spark.sparkContext.setLogLevel("OFF")
    return spark


def _read(spark: Any, location: str, fmt: str, what: str, key: str) -> Any:
    """The lake table at ``location`` (path or, with format "table", a catalog name); a clear error if absent."""
    try:
        if fmt == "table":
            return spark.table(location)
        return spark.read.format(fmt).load(location)
    except Exception as exc:
        first = str(exc).splitlines()[0][:200]
        raise EngineError(f"{what} could not be read from '{location}' ({fmt}): {first}; set {key} to an "
                          "existing Parquet folder or Delta table with the log store's columns") from None


def create(master: str, app_name: str, conf: Mapping[str, str], lakes: Mapping[str, Lake],
           store: LogStore) -> SparkEngine:
    """The engine of the ``[spark]`` settings (the session starts on first use)."""
    return SparkEngine(master, app_name, conf, lakes, store)
