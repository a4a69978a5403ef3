"""The operations benchmark runs end to end at a tiny size and agrees with pandas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_runs_at_tiny_size_and_agrees_with_pandas(tmp_path: Path):
    out = tmp_path / "operations.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench/operations.py"), "--rows", "20000", "--repeats", "1",
                           "--output", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("operations: 20,000 rows, 720 hours")
    result = json.loads(out.read_text())
    for key in ("name", "rows", "vigil_seconds", "reference", "reference_seconds", "speedup", "peak_rss_mb",
                "max_abs_diff", "reference_with_load_seconds", "speedup_end_to_end"):
        assert key in result
    assert result["rows"] == 20000 and result["buckets"] == 720 and result["same_buckets"] is True
    assert result["max_abs_diff"] < 1e-9
