"""PDF of a compliance report, printed by headless Chromium.

Why Chromium: the report's charts are plotly figures drawn by JavaScript, which a print engine without a
JavaScript runtime (WeasyPrint, wkhtmltopdf's old WebKit) leaves blank. Chromium runs the page, waits for
it to settle (a virtual time budget) and prints it with its own PDF engine. It is looked up as
``VIGIL_CHROMIUM``, then ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``; without one the
HTML export still works and the error says what to install.

The HTML is Vigil's own report (escaped text, inlined plotly, no external resources), opened from a
private temporary folder with a throw-away profile; ``--no-sandbox`` is needed because servers and
containers often run as root or without user namespaces.

The printer runs on the server, so a URL in the page would be a request from the server to anywhere. It
loads nothing but the document: the page gets an offline Content-Security-Policy (inline scripts,
styles and data: URLs only), and Chromium itself is pointed at a proxy that does not exist (loopback
included), with background networking off, so even a request the policy missed goes nowhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dashboard.charts.offline import with_offline_policy
from dashboard.errors import VigilError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Milliseconds of page time Chromium lets scripts run before printing (plotly draws in well under one).
VIRTUAL_TIME_BUDGET_MS = 10_000
#: No network for the printer: every http(s)/ws request goes to a proxy on the discard port (nothing
#: listens), loopback too (``<-loopback>`` removes Chromium's implicit bypass), and no background traffic.
OFFLINE_ARGS = ("--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-domain-reliability", "--dns-prefetch-disable", "--no-pings", "--disable-quic")
#: Width of the printed page's content in CSS pixels (A4 landscape less 10 mm margins: 277 mm). Plotly
#: sizes a chart to the window when the page loads and printing does not redraw it, so the window is as
#: wide as the page: the charts fill it and nothing drawn for a wider screen is cut at its right edge.
PRINT_WIDTH_PX = 1047


def find_chromium(env: dict[str, str] | None = None) -> str | None:
    """The Chromium executable to print with, or None when there is none."""
    env = dict(os.environ) if env is None else env
    configured = env.get("VIGIL_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else shutil.which(configured)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def html_to_pdf(html: str, chromium: str | None = None, timeout_s: float = 120.0) -> bytes:
    """Print ``html`` (a standalone page) to PDF bytes; :class:`VigilError` names the fix on failure."""
    exe = chromium or find_chromium()
    if exe is None:
        raise VigilError("PDF export needs Chromium and none was found: install it (Debian/Ubuntu: apt-get install "
                         "chromium) or set VIGIL_CHROMIUM to its path; the HTML report works without it")
    return print_page(with_offline_policy(html), exe, timeout_s)


def print_page(html: str, exe: str, timeout_s: float = 120.0) -> bytes:
    """Print ``html`` as it is with Chromium ``exe`` (no network: :data:`OFFLINE_ARGS`); PDF bytes."""
    with tempfile.TemporaryDirectory(prefix="vigil-pdf-") as tmp:
        page, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", f"--user-data-dir={Path(tmp) / 'profile'}",
               *OFFLINE_ARGS, f"--window-size={PRINT_WIDTH_PX},1400", "--no-pdf-header-footer",
               "--run-all-compositor-stages-before-draw",
               f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", f"--print-to-pdf={out}", page.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except FileNotFoundError:
            raise VigilError(f"PDF export: Chromium '{exe}' cannot be run; fix VIGIL_CHROMIUM or install "
                             "chromium") from None
        except subprocess.TimeoutExpired:
            raise VigilError(f"PDF export: Chromium did not finish printing within {timeout_s:.0f} s; try again, "
                             "or download the HTML report and print it from a browser") from None
        data = out.read_bytes() if out.exists() else b""
        if not data.startswith(b"%PDF-"):
            detail = next((line for line in reversed(proc.stderr.strip().splitlines()) if line.strip()), "")
            raise VigilError(f"PDF export: Chromium exited with code {proc.returncode} without a PDF"
                             + (f" ({detail[:300]})" if detail else "")
                             + "; download the HTML report instead, or check the Chromium install")
        return data
