"""A Content-Security-Policy for the standalone HTML files Vigil writes (compliance report, Evidently report).

Those files carry everything inline (plotly and Evidently's JavaScript, styles, fonts as data: URLs), so
they need no request at all; the policy makes the browser that opens them, and the Chromium that prints
the PDF, refuse every request the document would make, whatever text from data ended up inside it.
"""

from __future__ import annotations

import re

POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
          "font-src data:; base-uri 'none'; form-action 'none'")
META = f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
_HEAD = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)


def with_offline_policy(html: str) -> str:
    """``html`` with :data:`META` as the first element of its head (before anything from data)."""
    found = _HEAD.search(html)
    if found is None:
        return META + html
    return html[:found.end()] + META + html[found.end():]
