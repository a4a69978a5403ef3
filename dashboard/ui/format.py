"""Display formatting shared by the pages: times in the viewer's zone (stored as UTC), percentages, NaN."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def fmt_time(t: datetime | None) -> str:
    """Stored times are naive UTC; show them in the server's local zone with the zone name."""
    if t is None:
        return "n/a"
    aware = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    return aware.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def fmt_pct(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}%}"


def fmt_num(x: float | None, digits: int = 3, undefined: str = "undefined") -> str:
    """A number for display; None/NaN/inf become ``undefined`` (never 'nan' on screen)."""
    if x is None or not math.isfinite(float(x)):
        return undefined
    return f"{x:.{digits}f}"
