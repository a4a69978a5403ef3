"""Run NannyML (in its own virtualenv, see scripts/nannyml.sh) on Parquet files and read its JSON back.

Used by the cross-check tests; a missing NannyML fails them with the command that installs it (make test installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "scripts" / "nannyml_reference.py"


def nannyml_python() -> Path:
    """NannyML's interpreter: ``VIGIL_NANNYML_PYTHON``, else the virtualenv scripts/nannyml.sh installs."""
    if os.environ.get("VIGIL_NANNYML_PYTHON"):
        return Path(os.environ["VIGIL_NANNYML_PYTHON"])
    venv = Path(os.environ.get("VIGIL_NANNYML_VENV", Path.home() / ".cache" / "vigil" / "nannyml-venv"))
    return venv / "bin" / "python"


def run_nannyml(spec: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """NannyML's per-chunk results for ``spec`` (see scripts/nannyml_reference.py); fails without NannyML."""
    python = nannyml_python()
    if not python.exists():
        pytest.fail(f"NannyML is not installed at {python}: run `make nannyml` (bash scripts/nannyml.sh install)")
    proc = subprocess.run([str(python), str(RUNNER), json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    return out
