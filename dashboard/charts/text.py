"""Display text of values that come from data (logs, MLflow, Label Studio, users).

Lives with the charts because this is the lowest layer that the figures, the pages, the HTML report and
the CLI all may import: one rule for every place a value is shown. Nothing here changes stored data or
what is computed from it; only what is printed or drawn.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any, Protocol

import pandas as pd

#: Characters of a value shown before it is cut (a 10 MB category must not freeze a page or a terminal).
DISPLAY_LIMIT = 200
#: Characters of a message, note or justification (people's words, or a sentence around data values).
PROSE_LIMIT = 5_000


def clip(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """``value`` as text, cut to ``limit`` characters with its full length stated when longer."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def clip_frame(frame: pd.DataFrame, columns: Iterable[str] | None = None,
               limit: int = DISPLAY_LIMIT) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (in ``columns``, default all) are clipped for display."""
    out = frame.copy()
    for col in (columns if columns is not None else out.columns):
        if col in out.columns and (out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype)):
            out[col] = pd.Series([clip(v, limit) if isinstance(v, str) else v for v in out[col]], index=out.index,
                                 dtype=out[col].dtype)
    return out


class _Span(Protocol):
    """A half-open time interval (:class:`connectors.windows.Window`)."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


def window_text(window: _Span, day: str = "%Y-%m-%d", moment: str = "%Y-%m-%dT%H:%M:%S", sep: str = "..") -> str:
    """A window as people pick and type it: whole days as first and last day, both included (a date
    picker's range; a ``FROM..TO`` whose date-only TO includes that day, so the text parses back to the
    same window); otherwise the exact times, the end excluded. A stored window ends at the midnight after
    its last day, which, shown as is, reads "..11-01" for a window that stops on 10-31."""
    start, end = window.start, window.end
    if start.time() == time() and end.time() == time():
        return f"{start:{day}}{sep}{end - timedelta(days=1):{day}}"
    return f"{start:{moment}}{sep}{end:{moment}}"


def plot_text(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """A value as plotly label text: clipped, and ``<>&`` escaped so plotly's label markup (``<a>``,
    ``<span style>``, ``<br>``) cannot come from data and a tag shows as the text it is."""
    return html.escape(clip(value, limit), quote=False)


def label_map(values: Iterable[Any], limit: int = DISPLAY_LIMIT) -> dict[str, str]:
    """Each distinct value (as text) to its :func:`plot_text`, kept distinct (two long values cut to the
    same text get ``#n``), so every trace of a figure names a category the same way."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for raw in dict.fromkeys("" if v is None else str(v) for v in values):
        label, n = plot_text(raw, limit), 1
        while label in used:
            n += 1
            label = f"{plot_text(raw, limit)} #{n}"
        used.add(label)
        out[raw] = label
    return out
