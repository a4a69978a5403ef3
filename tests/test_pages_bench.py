"""The pages benchmark runs end to end at a tiny size, through the real app in Chromium, and reports
every key its targets are read from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_runs_at_tiny_size_and_reports_its_targets(tmp_path: Path) -> None:
    out = tmp_path / "pages.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench/pages.py"), "--rows", "20000", "--dir",
                           str(tmp_path / "workspace"), "--pages", "overview,drift", "--output", str(out),
                           "--forget-kept"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pages: 20,000 rows: cold max" in proc.stdout
    result = json.loads(out.read_text())
    for key in ("name", "rows", "vigil_seconds", "reference", "reference_seconds", "speedup", "peak_rss_mb",
                "page_cold_seconds", "page_warm_seconds", "scan_seconds", "cold_max_over_scan", "warm_max_seconds",
                "over_time_ratio", "cli_overhead_ratio", "targets_met"):
        assert key in result, key
    assert set(result["page_cold_seconds"]) == {"overview", "drift", "drift_30d_hourly"}
    assert all(v > 0 for v in result["page_warm_seconds"].values())
    assert result["kept_results_forgotten"] is True and result["kept_results_at_page_start"] == 0
    assert result["scan_seconds"] > 0 and set(result["cli_wall_seconds"]) == {"drift", "check", "help"}
