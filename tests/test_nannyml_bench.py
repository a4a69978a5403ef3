"""bench/nannyml.py runs end to end at a tiny size and reports the agreed keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.nannyml_ref import nannyml_python, run_nannyml

REPO = Path(__file__).resolve().parents[1]


def test_bench_script_runs_at_tiny_size(tmp_path: Path) -> None:
    if not nannyml_python().exists():
        run_nannyml({})  # fails with the install command when NannyML is missing
    out = tmp_path / "nannyml.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "nannyml.py"), "--ref-rows", "3000", "--rows", "6000",
                           "--repeats", "1", "--output", str(out)], capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["max_abs_diff"] < 1e-9 and data["alerts_equal"] and data["calibration_equal"]
    assert data["classifier_max_abs_diff"] < 1e-9 and "at most 2,000 rows per day" in data["classifier_sample"]
    for key in ("name", "rows", "vigil_seconds", "reference", "reference_seconds", "speedup", "peak_rss_mb"):
        assert key in data
    assert "speedup" in proc.stdout
