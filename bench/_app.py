"""The real app for benchmarks: a Streamlit server on a demo workspace, its memory, the ``vigil`` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: True once the page's script ran to its end and no spinner is left (Streamlit sets the attribute).
IDLE_JS = ("() => { const s = document.querySelector('[data-testid=\"stApp\"]'); return s && "
           "s.getAttribute('data-test-script-state') !== 'running' && "
           "!document.querySelector('[data-testid=\"stSpinner\"]'); }")


def vigil_env(workspace: Path, **extra: str) -> dict[str, str]:
    """This environment without any VIGIL_* setting, pointed at the workspace's vigil.toml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_CONFIG": str(workspace / "vigil.toml"), **extra})
    return env


def run_vigil(args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time and result of one ``vigil`` call in its own process, as cron or CI would start it."""
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "vigil"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, proc


def build_workspace(workspace: Path, rows: int) -> None:
    """``vigil demo`` of ``rows`` predictions in ``workspace`` (reused when it is there already)."""
    build = subprocess.run([str(BIN / "vigil"), "demo", "--dir", str(workspace), "--rows", str(rows)],
                           env=vigil_env(workspace), text=True, capture_output=True)
    if build.returncode != 0:
        sys.exit(f"building the workspace failed: {build.stderr[-2000:]}")


class App:
    """``streamlit run dashboard/app.py`` on 127.0.0.1, ready when its health endpoint answers."""

    def __init__(self, workspace: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.address",
             "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=vigil_env(workspace), stdout=self._fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the app did not start (see {log})") from None
                time.sleep(0.3)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._fh.close()
