"""Run the installed ``vigil`` console script (the real entry point) with this checkout first on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def vigil(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``vigil ARGS`` in a subprocess, with the test's environment (VIGIL_CONFIG, VIGIL_DATA_DIR)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([str(Path(sys.executable).parent / "vigil"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
