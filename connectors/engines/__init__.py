"""The query-engine seam: every aggregation of :mod:`connectors.queries` runs on a chosen engine.

Shape (as MLflow's tracking stores): one abstract interface (:class:`~connectors.engines.base.QueryEngine`),
backends registered by name in :data:`ENGINES`, chosen by configuration (``engine = "duckdb"`` or
``"spark"``, per model or in ``[vigil]``), and an error that lists the valid choices.

The public functions of ``connectors/queries/<family>.py`` that take a handle first are the interface's
queries. Each is decorated with :func:`~connectors.engines.base.engine_function`: called with a DuckDB
connection it runs its own SQL (DuckDB stays the embedded default, with its optimised paths); called with
another engine's handle it runs that engine's counterpart of the same name in
``connectors/engines/<engine>/<family>.py``. Functions that keep Vigil's own state (the annotation queue,
the label table, the latency rollup, the reference manifest) are marked
:func:`~connectors.engines.base.state_function` and always run in DuckDB. The conformance suite finds
every query by introspection and fails on one that is neither, or that has no counterpart.
"""

from __future__ import annotations

from connectors.engines.base import (
    ENGINES,
    EngineError,
    EngineHandle,
    QueryEngine,
    engine_function,
    resolve_engine,
    state_function,
)

__all__ = ["ENGINES", "EngineError", "EngineHandle", "QueryEngine", "engine_function", "resolve_engine",
           "state_function"]
