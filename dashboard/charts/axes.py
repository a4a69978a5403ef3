"""Axes every chart shares: time axes read at the window's scale, percent axes whose ticks all differ.

Why: plotly picks time ticks from the data, not from the window, so one daily point gets the ticks
"23:59:59.9996 … 00:00:00.0004"; and a fixed ``.0%`` format turns a 0.5% tick step into "0%, 1%, 1%, 2%".
Here the time axis takes its range from the window snapped to whole buckets and its tick step and format
from that span (hours for a day, days for a month, months for a year), and a percent axis takes its tick
step from its range and as many decimals as that step needs. Times are naive UTC, as stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from connectors.windows import Window

__all__ = ["BUCKET_STEPS", "bucket_axis", "bucket_range", "bucket_trace", "percent_axis", "time_axis"]

BUCKET_STEPS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1),
                                      "week": timedelta(weeks=1)}
#: At most this many time ticks (about 60 px each on a page-wide chart).
MAX_TIME_TICKS = 12
_HOUR_MS = 3_600_000
#: Tick steps shorter than a month, with the strftime (d3) format of their labels.
_STEPS: tuple[tuple[timedelta, str], ...] = (
    *((timedelta(hours=h), "%H:%M") for h in (1, 2, 3, 6, 12)),
    *((timedelta(days=d), "%b %-d") for d in (1, 2, 7, 14)),
)
_MONTH_STEPS: tuple[int, ...] = (1, 2, 3, 6, 12, 24, 60, 120)


def _naive(t: Any) -> datetime:
    """A naive UTC datetime from a datetime, Timestamp or ISO text."""
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _floor(t: datetime, bucket: str) -> datetime:
    """Start of the bucket holding ``t`` (a week starts on Monday, as DuckDB's ``date_trunc('week')``)."""
    if bucket == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def bucket_range(start: Any, end: Any, bucket: str | None) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole buckets (``bucket`` None: whole hours); never empty."""
    step = BUCKET_STEPS.get(bucket or "hour", BUCKET_STEPS["hour"])
    lo, hi = _naive(start), _naive(end)
    lo = _floor(lo, bucket or "hour")
    top = _floor(hi, bucket or "hour")
    hi = top if top == hi else top + step
    return lo, max(hi, lo + step)


def _ticks(lo: datetime, hi: datetime) -> tuple[int | str, str]:
    """Plotly ``dtick`` and tick format for ``[lo, hi]``: the shortest step giving at most MAX_TIME_TICKS."""
    for step, fmt in _STEPS:
        if (hi - lo) / step <= MAX_TIME_TICKS:
            return int(step / timedelta(milliseconds=1)), fmt
    months = (hi.year - lo.year) * 12 + hi.month - lo.month  # whole calendar months
    n = next((m for m in _MONTH_STEPS if months / m <= MAX_TIME_TICKS), _MONTH_STEPS[-1])
    return f"M{n}", "%b %Y" if n < 12 else "%Y"


def _tick0(lo: datetime, dtick: int | str) -> datetime:
    """Where ticks start: midnight for hours and days, a Monday for weeks, the 1st for months."""
    day = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    if isinstance(dtick, str):
        return day.replace(day=1)
    if dtick >= 7 * 24 * _HOUR_MS:
        return day - timedelta(days=day.weekday())
    return day


def time_axis(start: Any, end: Any, bucket: str | None = None, title: str = "time (UTC)") -> dict[str, Any]:
    """Plotly x-axis settings for the window ``[start, end)`` of ``bucket`` buckets (None: continuous
    times, snapped to whole hours): range, tick step and format chosen from the span. An axis within one
    day shows hours and names the day in its title."""
    lo, hi = bucket_range(start, end, bucket)
    dtick, fmt = _ticks(lo, hi)
    if fmt == "%H:%M" and hi - lo > timedelta(days=1):
        fmt = "%H:%M<br>%b %-d"
    elif fmt == "%H:%M":
        title = f"{title}, {lo:%Y/%m/%d}"
    return {"type": "date", "range": [lo, hi], "dtick": dtick, "tick0": _tick0(lo, dtick), "tickformat": fmt,
            "title": {"text": title}}


def bucket_axis(times: Iterable[Any], bucket: str, window: Window | None = None,
                title: str = "time (UTC)") -> dict[str, Any]:
    """:func:`time_axis` of the ``window`` the buckets were computed over, or, without one, of the span
    from the first bucket's start to the last one's end."""
    if window is not None:
        return time_axis(window.start, window.end, bucket, title)
    t = pd.to_datetime(pd.Series(list(times)))
    if t.empty or t.isna().all():
        t = pd.Series([pd.Timestamp("2000-01-01")])
    return time_axis(t.min(), t.max() + BUCKET_STEPS[bucket], bucket, title)


def bucket_trace(bucket: str | None, bar: bool = False) -> dict[str, Any]:
    """Trace settings that put each value over its own bucket ``[start, start + step)``: a point sits at
    its middle, a bar (``bar``) spans it, and the hover still names the bucket's start. Plotted at the
    start, a single daily point sits on the edge of its day and the first bar hangs half outside the
    window; a bar's width is given, since plotly draws a lone bar with none."""
    step = BUCKET_STEPS.get(bucket or "day", BUCKET_STEPS["day"])
    ms = int(step / timedelta(milliseconds=1))
    settings: dict[str, Any] = {"xperiod": ms, "xperiodalignment": "middle"}
    if bucket == "week":
        settings["xperiod0"] = "2000-01-03"  # a Monday: DuckDB's weeks
    if bar:
        settings["width"] = 0.9 * ms
    return settings


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``raw``."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))


def _decimals(step: float) -> int:
    """Decimals of a percentage that show ``step`` (a fraction) exactly: 0.005 -> 1 ("0.5%")."""
    pct = step * 100
    return next(d for d in range(0, 12) if abs(round(pct, d) - pct) <= 1e-9 * max(pct, 1e-12))


def percent_axis(values: Iterable[Any] = (), *, include: Iterable[float] = (), lo: float = 0.0,
                 hi: float | None = None, ticks: int = 6) -> dict[str, Any]:
    """Plotly y-axis settings for a share shown in percent: range ``[lo, hi]`` (``hi`` None: a little
    above the largest of ``values`` and ``include``, e.g. a threshold line), at most ``ticks`` steps of
    1, 2 or 5 times a power of ten, and the decimals that step needs, so no two ticks read the same."""
    if hi is None:
        top = max(_finite([*values, *include]), default=lo)
        hi = top * 1.1 if top > lo else lo + 0.01
    step = _nice_step((hi - lo) / ticks)
    return {"range": [lo, hi], "tick0": 0.0, "dtick": step, "tickformat": f".{_decimals(step)}%"}
