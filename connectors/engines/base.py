"""The engine interface, the registry of engines and the dispatch of query functions to them."""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from connectors.errors import ConnectorError
from connectors.schema import LogSchema

#: Engine name -> the module that implements it (imported only when chosen: pyspark is optional).
ENGINES: dict[str, str] = {
    "duckdb": "connectors.engines.duckdb_engine",
    "spark": "connectors.engines.spark",
}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Lake:
    """Where one model's logs and labels live for an engine that reads them in place."""

    schema: LogSchema
    logs: str
    labels: str | None = None
    format: str = "parquet"


class EngineError(ConnectorError):
    """A query engine is unknown, not installed or cannot read its data; the message names the fix."""


def resolve_engine(name: str, where: str = "engine") -> str:
    """``name`` if it is a registered engine, else an :class:`EngineError` listing the valid choices."""
    if name not in ENGINES:
        raise EngineError(f"{where} = '{name}' is not a query engine; use one of {', '.join(ENGINES)}")
    return name


class EngineHandle(ABC):
    """What a query function receives instead of a DuckDB connection when another engine runs it."""

    #: Registered engine name (a key of :data:`ENGINES`): its counterparts live in ``connectors.engines.<name>``.
    engine_name: str = ""

    def counterpart(self, family: str, name: str) -> Callable[..., Any]:
        """This engine's implementation of ``connectors.queries.<family>.<name>``."""
        module = importlib.import_module(f"connectors.engines.{self.engine_name}.{family}")
        fn = getattr(module, name, None)
        if fn is None:
            raise EngineError(f"the {self.engine_name} engine has no {family}.{name}; run this model on "
                              "engine = \"duckdb\" or add the counterpart")
        return fn

    @abstractmethod
    def duckdb_state(self) -> AbstractContextManager[Any]:
        """A DuckDB connection to Vigil's own state (queue, audit, jobs, manifest), which never leaves DuckDB."""


class QueryEngine(ABC):
    """One backend: opens handles that the query functions accept as their first argument."""

    name: str = ""
    #: How messages name the engine ("testing 11 columns in DuckDB").
    label: str = ""

    @abstractmethod
    def connect(self, exclusive: bool = False) -> AbstractContextManager[Any]:
        """A handle for one unit of work (a DuckDB connection, or another engine's :class:`EngineHandle`)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the engine holds (a Spark session); DuckDB's connections are short-lived."""


def _family(fn: Callable[..., Any]) -> str:
    return fn.__module__.rsplit(".", 1)[-1]


def engine_function(fn: F) -> F:
    """Mark ``fn`` (first parameter: the handle) as an engine query and route non-DuckDB handles to the
    counterpart of the same family and name."""
    family, name = _family(fn), fn.__name__

    @functools.wraps(fn)
    def dispatch(con: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(con, EngineHandle):
            return con.counterpart(family, name)(con, *args, **kwargs)
        return fn(con, *args, **kwargs)

    dispatch.__vigil_engine__ = "query"  # type: ignore[attr-defined]
    return dispatch  # type: ignore[return-value]


def state_function(fn: F) -> F:
    """Mark ``fn`` as keeping Vigil's own state: it always runs in DuckDB (a Spark handle gives its store's
    connection through ``duckdb_state()``)."""

    @functools.wraps(fn)
    def run(con: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(con, EngineHandle):
            with con.duckdb_state() as duck:
                return fn(duck, *args, **kwargs)
        return fn(con, *args, **kwargs)

    run.__vigil_engine__ = "state"  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def duckdb_function(fn: F) -> F:
    """Mark ``fn`` as a query that runs on DuckDB only so far (no counterpart on another engine yet): with
    another engine's handle it raises an :class:`EngineError` that says so and names the way out."""
    family, name = _family(fn), fn.__name__

    @functools.wraps(fn)
    def run(con: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(con, EngineHandle):
            raise EngineError(f"{family}.{name} runs on the duckdb engine only so far, and this model's engine is "
                              f"{con.engine_name}: ingest its logs with `vigil ingest` and set engine = \"duckdb\" "
                              "for it to use this analysis")
        return fn(con, *args, **kwargs)

    run.__vigil_engine__ = "duckdb"  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def load_engine_module(name: str) -> Any:
    """The module of engine ``name``; a clear error when its library is not installed."""
    resolve_engine(name)
    try:
        return importlib.import_module(ENGINES[name])
    except ImportError as exc:
        raise EngineError(f"the {name} engine needs {exc.name or 'its library'}: pip install 'vigil[{name}]' "
                          "(and Java 17 for Spark)") from None
