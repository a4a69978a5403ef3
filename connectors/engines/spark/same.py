"""Counterparts whose SQL both engines read: the DuckDB function itself, run through a Spark handle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def same_sql(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The undecorated query ``fn``: its SQL, translated by :func:`~connectors.engines.spark.session.translate`,
    runs on Spark (the conformance suite checks the numbers are DuckDB's)."""
    return getattr(fn, "__wrapped__", fn)
