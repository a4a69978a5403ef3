"""Display formatting shared by the pages: times in the viewer's zone (stored as UTC), percentages, NaN,
and values from data put into Streamlit Markdown as the text they are."""

from __future__ import annotations

import math
import re
import string
from datetime import UTC, datetime
from typing import Any

from connectors.windows import Window
from dashboard.charts.text import DISPLAY_LIMIT, PROSE_LIMIT, clip, clip_frame, window_text

__all__ = ["DISPLAY_LIMIT", "PICKER_FORMAT", "PROSE_LIMIT", "clip", "clip_frame", "fmt_num", "fmt_pct", "fmt_time",
           "fmt_window", "md_code", "md_prose", "md_text"]

#: The date format of every ``st.date_input`` (Streamlit's default), which :func:`fmt_window` follows.
PICKER_FORMAT = "YYYY/MM/DD"

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_BACKTICKS = re.compile(r"`+")


def md_text(value: Any, limit: int | None = DISPLAY_LIMIT) -> str:
    """Untrusted text (log values, MLflow tags, notes, justifications, names) for st.markdown, st.write,
    st.caption and the alerts: every ASCII punctuation mark is backslash-escaped, so no image, link, raw
    HTML, entity, emphasis, :colour[] directive or $math$ can come from the value; line breaks stay line
    breaks. Clipped to ``limit`` characters (None: never) so a 10 MB value cannot freeze the page."""
    text = clip(value, limit) if limit is not None else ("" if value is None else str(value))
    return _NEWLINES.sub("  \n", _PUNCTUATION.sub(r"\\\1", text))


def md_code(value: Any, limit: int | None = DISPLAY_LIMIT) -> str:
    """Untrusted text as an inline code span (a command line, an alias, a URI). Backslash escapes show
    literally inside code, so :func:`md_text` would print them; instead the fence is one backtick longer
    than any run in the value, so nothing in it can close the span, and line breaks become spaces."""
    text = clip(value, limit) if limit is not None else ("" if value is None else str(value))
    text = _NEWLINES.sub(" ", text)
    if not text.strip():
        return md_text(text, limit)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_prose(value: Any) -> str:
    """:func:`md_text` for sentences (notes, messages, errors, justifications): a longer limit."""
    return md_text(value, PROSE_LIMIT)


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


def fmt_window(window: Window) -> str:
    """A window as the date pickers show it: ``2026/10/25 – 2026/10/31``, the last day included (the
    stored end is the midnight after it). A window with times shows them, UTC, the end excluded. Safe in
    Markdown (digits, slashes, dashes and colons only)."""
    return window_text(window, day="%Y/%m/%d", moment="%Y/%m/%d %H:%M UTC", sep=" – ")
