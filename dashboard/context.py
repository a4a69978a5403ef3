"""The objects one process needs, built once from the settings: log store, query engines, MLflow registry.

The app caches one :class:`Context` with ``st.cache_resource``; each CLI command builds its own.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import duckdb

from connectors import kept_results
from connectors.engines.base import Lake, QueryEngine, load_engine_module
from connectors.engines.duckdb_engine import DuckDBEngine
from connectors.logstore import LogStore, LogStoreError
from connectors.schema import LogSchema
from dashboard.settings import ModelConfig, Settings, load_settings, log_schema

if TYPE_CHECKING:
    from connectors.registry import Registry


@dataclass
class Context:
    """Settings plus the connectors built from them."""

    settings: Settings
    _schemas: dict[str, LogSchema] = field(default_factory=dict)
    _engines: dict[str, QueryEngine] = field(default_factory=dict)

    @cached_property
    def store(self) -> LogStore:
        return LogStore(self.settings.duckdb_path, lock_timeout_s=self.settings.lock_timeout_s,
                        memory_limit=self.settings.duckdb_memory_limit, threads=self.settings.duckdb_threads)

    @cached_property
    def registry(self) -> Registry:
        from connectors.registry import Registry

        return Registry(self.settings.mlflow_tracking_uri, timeout_s=self.settings.mlflow_timeout_s,
                        cache_file=self.settings.data_dir / "registry-cache.json")

    def engine(self, model: str) -> QueryEngine:
        """The query engine that runs ``model``'s aggregations (one per kind and process: one Spark session)."""
        name = self.settings.engine_of(model)
        if name not in self._engines:
            if name == "duckdb":
                self._engines[name] = DuckDBEngine(self.store)
            else:
                lakes = {m: Lake(self.schema(m), cfg.lake.logs, cfg.lake.labels, cfg.lake.format)
                         for m, cfg in self.settings.models.items()
                         if cfg.lake is not None and self.settings.engine_of(m) == name}
                spark = self.settings.spark
                self._engines[name] = load_engine_module(name).create(
                    spark.master, spark.app_name, dict(spark.conf), lakes, self.store)
        return self._engines[name]

    def connect(self, model: str, exclusive: bool = False) -> AbstractContextManager[Any]:
        """A handle the query functions take, on ``model``'s engine (a DuckDB connection by default)."""
        return self.engine(model).connect(exclusive)

    def has_logs(self, model: str) -> bool:
        """Whether ``model`` has a log table to query (a Spark-backed model's lake always counts)."""
        if self.settings.engine_of(model) != "duckdb":
            return True
        return self.store.has_model_table(self.schema(model))

    def data_version(self, model: str) -> str:
        """Changes whenever the model's logs or labels change (cache keys, kept verdicts): the ingest
        manifest for DuckDB; for a lake, the rows and latest times of its logs and labels as the engine
        reads them now."""
        if self.settings.engine_of(model) == "duckdb":
            return self.store.data_version(model)
        from connectors.queries.operations import time_range
        from connectors.queries.quality import label_counts

        with self.connect(model) as con:
            _first, last, n = time_range(con, self.schema(model))
            ok, labelled = label_counts(con, self.schema(model))
        return f"lake.{n}.{last}.{ok}.{labelled}"

    def summary(self, model: str) -> dict[str, Any]:
        """The log store's summary of ``model``, computed on the model's engine and kept under its data
        version (:mod:`connectors.kept_results`): every value in it is a function of the logs, labels and
        ingests, and on 10M rows it costs seconds on every page that shows it."""
        data_version = self.data_version(model)
        key = f"summary:{kept_results.code_version()}"
        kept = kept_results.load(self.store, model, data_version, [key]).get(key)
        if isinstance(kept, dict):
            return kept
        with self.connect(model) as con:
            summary = self.store.summary(self.schema(model), con)
        with suppress(LogStoreError, duckdb.Error):  # a busy store: computed again next time
            kept_results.save(self.store, model, data_version, {key: summary})
        return summary

    def model(self, name: str) -> ModelConfig:
        return self.settings.model(name)

    def schema(self, name: str) -> LogSchema:
        if name not in self._schemas:
            self._schemas[name] = log_schema(self.settings.model(name))
        return self._schemas[name]


def load_context(config_path: str | None = None) -> Context:
    return Context(load_settings(config_path))
