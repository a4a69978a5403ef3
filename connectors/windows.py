"""Time windows (``FROM..TO``) shared by the query layer, the CLI and the pages.

Stored times are naive UTC ``TIMESTAMP`` values; a window is a half-open interval ``[start, end)``.
A date-only ``TO`` means "through the end of that day", which is what people mean by ``2026-01-01..2026-01-07``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RELATIVE_WINDOW = re.compile(r"^(\d+)([hdw])$")


class WindowError(ValueError):
    """A window string that cannot be parsed."""


@dataclass(frozen=True)
class Window:
    """Half-open UTC interval ``[start, end)`` with naive datetimes that mean UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise WindowError(f"window end {self.end:%Y-%m-%d %H:%M} is not after its start "
                              f"{self.start:%Y-%m-%d %H:%M}; write FROM..TO with FROM before TO")

    @property
    def label(self) -> str:
        """``FROM..TO`` as people type it, parsing back to this window: whole days show their last day
        (``2026-10-25..2026-10-31``, a date-only TO includes it), other windows their exact times."""
        if self.start.time() == datetime.min.time() and self.end.time() == datetime.min.time():
            return f"{self.start:%Y-%m-%d}..{self.end - timedelta(days=1):%Y-%m-%d}"
        return f"{self.start:%Y-%m-%dT%H:%M:%S}..{self.end:%Y-%m-%dT%H:%M:%S}"

    def __str__(self) -> str:
        return self.label


def _to_utc_naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _parse_point(text: str, is_end: bool) -> datetime:
    text = text.strip()
    try:
        if _DATE_ONLY.match(text):
            d = date.fromisoformat(text)
            t = datetime(d.year, d.month, d.day)
            return t + timedelta(days=1) if is_end else t
        return _to_utc_naive(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise WindowError(f"'{text}' is not an ISO date or time; use e.g. 2026-01-31 or 2026-01-31T12:00") from None


def parse_window(text: str, now: datetime | None = None) -> Window:
    """Parse ``FROM..TO`` (ISO dates or times, TO date inclusive) or a relative ``7d``/``24h``/``2w``
    ending at ``now`` (UTC)."""
    text = (text or "").strip()
    rel = RELATIVE_WINDOW.match(text)
    if rel:
        n, unit = int(rel.group(1)), rel.group(2)
        delta = {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        end = _to_utc_naive(now) if now else datetime.now(UTC).replace(tzinfo=None)
        return Window(end - delta, end)
    if ".." not in text:
        raise WindowError(f"'{text}' is not a window; write FROM..TO (e.g. 2026-01-01..2026-01-07) or 7d / 24h")
    left, right = text.split("..", 1)
    return Window(_parse_point(left, is_end=False), _parse_point(right, is_end=True))
