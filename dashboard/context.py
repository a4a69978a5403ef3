"""The objects one process needs, built once from the settings: log store and MLflow registry.

The app caches one :class:`Context` with ``st.cache_resource``; each CLI command builds its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from connectors.logstore import LogStore
from connectors.schema import LogSchema
from dashboard.settings import ModelConfig, Settings, load_settings, log_schema

if TYPE_CHECKING:
    from connectors.registry import Registry


@dataclass
class Context:
    """Settings plus the connectors built from them."""

    settings: Settings
    _schemas: dict[str, LogSchema] = field(default_factory=dict)

    @cached_property
    def store(self) -> LogStore:
        return LogStore(self.settings.duckdb_path, lock_timeout_s=self.settings.lock_timeout_s,
                        memory_limit=self.settings.duckdb_memory_limit, threads=self.settings.duckdb_threads)

    @cached_property
    def registry(self) -> Registry:
        from connectors.registry import Registry

        return Registry(self.settings.mlflow_tracking_uri, timeout_s=self.settings.mlflow_timeout_s)

    def model(self, name: str) -> ModelConfig:
        return self.settings.model(name)

    def schema(self, name: str) -> LogSchema:
        if name not in self._schemas:
            self._schemas[name] = log_schema(self.settings.model(name))
        return self._schemas[name]


def load_context(config_path: str | None = None) -> Context:
    return Context(load_settings(config_path))
