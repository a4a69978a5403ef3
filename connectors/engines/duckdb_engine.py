"""The embedded default engine: the log store's DuckDB file; the query functions run their own SQL."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from connectors.engines.base import QueryEngine
from connectors.logstore import LogStore


class DuckDBEngine(QueryEngine):
    """Queries over the ingested log tables of one :class:`LogStore`."""

    name = "duckdb"
    label = "DuckDB"

    def __init__(self, store: LogStore) -> None:
        self.store = store

    def connect(self, exclusive: bool = False) -> AbstractContextManager[Any]:
        return self.store.connect(exclusive)
