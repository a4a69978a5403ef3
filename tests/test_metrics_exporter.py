"""Prometheus exporter: /metrics scraped over real HTTP and parsed with prometheus_client's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.windows import WindowError, parse_window
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.governance.policy import evaluate
from dashboard.monitoring.drift import compute_drift
from dashboard.monitoring.fairness import compute_fairness
from dashboard.monitoring.operations import compute_operations
from dashboard.monitoring.quality import compute_quality
from dashboard.service.metrics import VigilCollector, serve
from dashboard.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
CURRENT = "2026-01-02..2026-01-02"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs_factory) -> Path:
    """The demo configuration with a window reference (no MLflow needed), two days of logs and labels."""
    for key in [k for k in os.environ if k.startswith("VIGIL_")]:
        monkeypatch.delenv(key)
    text = (REPO / "dashboard/demo/vigil.toml").read_text()
    text = text.replace('source = "training"', 'source = "window"\nwindow = "2026-01-01..2026-01-01"')
    cfg = tmp_path / "vigil.toml"
    cfg.write_text(text)
    ctx = Context(load_settings(cfg))
    schema = ctx.schema("credit-risk")
    df = logs_factory(2880, seed=9)
    df["model_version"] = np.where(np.arange(2880) % 3 == 0, "2", "1")
    df.loc[df["ts"].dt.day == 2, "income"] *= 1.8  # drift on day 2
    path = tmp_path / "logs.parquet"
    df.to_parquet(path, index=False)
    assert not ctx.store.ingest([path], schema).rejected
    rng = np.random.default_rng(4)
    lab = df.sample(frac=0.5, random_state=1)
    labels = pd.DataFrame({"prediction_id": lab["prediction_id"],
                           "label": np.where(rng.random(len(lab)) < lab["proba_good"], "good", "bad")})
    ctx.store.add_labels(schema, labels, source="ground_truth")
    return cfg


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == "gauge"
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def sample(metrics, name: str, **labels: str) -> float:
    return metrics[name][tuple(sorted(labels.items()))]


def test_metrics_endpoint_serves_the_same_numbers_as_the_core(workspace: Path):
    ctx = Context(load_settings(workspace))
    collector = VigilCollector(ctx, window=CURRENT, cache_seconds=600)
    server, _thread = serve(collector, host="127.0.0.1", port=0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        m = scrape(url)
        window = parse_window(CURRENT)
        ops = compute_operations(ctx, "credit-risk", window)
        assert sample(m, "vigil_latency_p95_ms", model="credit-risk", version="all") == pytest.approx(ops.latency_p95_ms)
        assert sample(m, "vigil_error_rate", model="credit-risk", version="all") == pytest.approx(ops.error_rate)
        assert sample(m, "vigil_throughput_per_hour", model="credit-risk", version="all") == pytest.approx(60.0)
        v = ops.versions.set_index("version")
        for version in ("1", "2"):
            assert sample(m, "vigil_latency_p95_ms", model="credit-risk", version=version) == \
                pytest.approx(v.loc[version, "p95_ms"])
        q = compute_quality(ctx, "credit-risk", window)
        assert sample(m, "vigil_accuracy", model="credit-risk", version="all") == pytest.approx(q.actual.accuracy)
        assert sample(m, "vigil_estimated_accuracy", model="credit-risk", version="all") == \
            pytest.approx(q.estimated_accuracy_all)
        assert 0.4 < sample(m, "vigil_label_coverage", model="credit-risk", version="2") < 0.6
        drift = compute_drift(ctx, "credit-risk", window, reference="config")
        assert sample(m, "vigil_drift_share", model="credit-risk") == pytest.approx(drift.share_drifted)
        assert drift.share_drifted > 0
        fair = compute_fairness(ctx, "credit-risk", window)
        for attr in ("sex", "age"):
            di = fair.attribute(attr).metrics["disparate_impact"].value
            assert sample(m, "vigil_disparate_impact", model="credit-risk", attribute=attr) == pytest.approx(di)
        ev = evaluate(ctx, "credit-risk", window=f"{window.start.isoformat()}..{window.end.isoformat()}")
        assert ev.results
        for r in ev.results:
            status = {"pass": 1.0, "fail": 0.0, "no data": -1.0}.get(r.verdict, -2.0)
            assert sample(m, "vigil_policy_status", model="credit-risk", policy=r.name, severity=r.severity) == status
        assert sample(m, "vigil_policies_passed", model="credit-risk") == (1.0 if ev.passed else 0.0)
        for part in ("operations", "quality", "drift", "fairness", "policy"):
            assert sample(m, "vigil_collect_ok", model="credit-risk", part=part) == 1.0
        assert collector.collections == 1
        scrape(url)
        assert collector.collections == 1  # served from the short cache
    finally:
        server.shutdown()
        server.server_close()


def test_a_window_without_data_reports_parts_as_failed_not_zero(workspace: Path):
    ctx = Context(load_settings(workspace))
    collector = VigilCollector(ctx, window="2025-01-01..2025-01-01", cache_seconds=0,
                               parts=("operations", "quality"))
    server, _ = serve(collector, port=0)
    try:
        m = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    assert "vigil_latency_p95_ms" not in m and "vigil_accuracy" not in m
    assert sample(m, "vigil_collect_ok", model="credit-risk", part="operations") == 0.0
    assert sample(m, "vigil_collect_ok", model="credit-risk", part="quality") == 0.0


def test_vigil_metrics_command_serves_until_stopped(workspace: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "--config", str(workspace), "metrics",
                             "--port", "0", "--window", CURRENT, "--skip", "policy", "--skip", "drift"],
                            env=env, cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "Serving http://127.0.0.1:" in line, line
        url = line.split()[1]
        m = scrape(url)
        assert sample(m, "vigil_latency_slo_ms", model="credit-risk") == 200.0
        assert sample(m, "vigil_collect_ok", model="credit-risk", part="operations") == 1.0
        assert (("model", "credit-risk"), ("part", "policy")) not in m["vigil_collect_ok"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_one_failing_part_is_flagged_and_the_rest_is_served(workspace: Path):
    ctx = Context(load_settings(workspace))
    # A drift reference window without rows makes compute_drift fail; the other parts still publish.
    collector = VigilCollector(ctx, window=CURRENT, drift_reference="1999-01-01..1999-01-01", cache_seconds=0,
                               parts=("operations", "drift"))
    server, _ = serve(collector, port=0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        m = scrape(url)
        scrape(url)
    finally:
        server.shutdown()
        server.server_close()
    assert sample(m, "vigil_collect_ok", model="credit-risk", part="drift") == 0.0
    assert "vigil_drift_share" not in m
    assert sample(m, "vigil_collect_ok", model="credit-risk", part="operations") == 1.0
    assert "vigil_latency_p95_ms" in m
    assert (("model", "credit-risk"), ("part", "quality")) not in m["vigil_collect_ok"]
    assert collector.collections == 2  # cache_seconds=0: every scrape recomputes


def test_unknown_part_and_bad_window_are_refused(workspace: Path):
    ctx = Context(load_settings(workspace))
    with pytest.raises(VigilError, match=r"unknown metric parts \['latency'\]"):
        VigilCollector(ctx, parts=("latency",))
    with pytest.raises(WindowError, match="is not a window"):
        VigilCollector(ctx, window="yesterday")
