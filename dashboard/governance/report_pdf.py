"""PDF of a compliance report, printed by headless Chromium.

Why Chromium: the report's charts are plotly figures drawn by JavaScript, which a print engine without a
JavaScript runtime (WeasyPrint, wkhtmltopdf's old WebKit) leaves blank. Chromium runs the page, waits for
it to settle (a virtual time budget) and prints it with its own PDF engine. It is looked up as
``VIGIL_CHROMIUM``, then ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``; without one the
HTML export still works and the error says what to install.

The HTML is Vigil's own report (escaped text, inlined plotly, no external resources), opened from a
private temporary folder with a throw-away profile; ``--no-sandbox`` is needed because servers and
containers often run as root or without user namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dashboard.errors import VigilError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Milliseconds of page time Chromium lets scripts run before printing (plotly draws in well under one).
VIRTUAL_TIME_BUDGET_MS = 10_000


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
    with tempfile.TemporaryDirectory(prefix="vigil-pdf-") as tmp:
        page, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", f"--user-data-dir={Path(tmp) / 'profile'}",
               "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
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
