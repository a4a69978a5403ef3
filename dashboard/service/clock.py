"""Time for the service: one injectable clock, and the naive-UTC form the store keeps.

Why injectable: the scheduler decides what is due from "now"; tests pass a clock they move by hand, so
no scheduler test sleeps or depends on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)


def naive_utc(ts: datetime) -> datetime:
    """``ts`` as naive UTC (how DuckDB TIMESTAMP columns hold it); naive input is taken as UTC already."""
    return ts if ts.tzinfo is None else ts.astimezone(UTC).replace(tzinfo=None)


def aware_utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
