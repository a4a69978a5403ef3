"""Prometheus exporter: Vigil's numbers per model (and version) in the Prometheus text format.

Why a custom collector: values are computed fresh from the log store when Prometheus scrapes (through the
same functions the pages use), not pushed into long-lived gauges that go stale. A short cache keeps a
burst of scrapes (several Prometheus replicas, a person with curl) from recomputing each time. Each part
(operations, quality, drift, fairness) fails on its own: ``vigil_collect_ok{model, part}`` is 0 for a
part that could not be computed (no rows in the window, MLflow down for the training reference, ...)
and its gauges are left out rather than faked.

Gauges (``version="all"`` is the whole model; other values are one model version):

====================================  ===============================================================
vigil_latency_p95_ms{model,version}   95th percentile latency (exact) over the window
vigil_error_rate{model,version}       share of requests with status other than 'ok'
vigil_throughput_per_hour{model,...}  requests per hour over the active span of the window
vigil_slo_breach_share{model}         share of hourly buckets whose p95 breaches the latency SLO
vigil_accuracy{model,version}         realised accuracy on labelled rows (absent without labels)
vigil_estimated_accuracy{model,...}   CBPE estimated accuracy over every row of the window
vigil_label_coverage{model,version}   labelled rows / rows
vigil_drift_share{model}              share of drifted columns (compute_drift vs the configured reference)
vigil_disparate_impact{model,attr..}  AIF360 disparate impact per protected attribute
vigil_policy_status{model,policy,..}  policy verdict: 1 pass, 0 fail, -1 no data, -2 error
vigil_policies_passed{model}          1 when no blocking policy fails (the ``vigil check`` gate)
vigil_collect_ok{model,part}          1 when the part was computed, 0 when it failed
====================================  ===============================================================
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from connectors.windows import Window, parse_window
from dashboard.context import Context
from dashboard.errors import USER_ERRORS, VigilError
from dashboard.monitoring.operations import compute_operations
from dashboard.monitoring.quality import compute_quality

__all__ = ["PARTS", "VigilCollector", "serve"]

ALL = "all"
#: The parts a collection computes, in order (each can be left out, e.g. the slower policy evaluation).
PARTS: tuple[str, ...] = ("operations", "quality", "drift", "fairness", "policy")
log = logging.getLogger(__name__)


@dataclass
class _Families:
    """The gauge families of one collection, filled part by part."""

    g: dict[str, GaugeMetricFamily] = field(default_factory=dict)

    def add(self, name: str, doc: str, labels: list[str], values: list[str], value: float | None) -> None:
        if value is None or value != value:  # None or NaN: leave the sample out
            return
        fam = self.g.get(name)
        if fam is None:
            fam = self.g[name] = GaugeMetricFamily(name, doc, labels=labels)
        fam.add_metric(values, float(value))


class VigilCollector(Collector):
    """Computes every model's gauges on scrape (cached ``cache_seconds``) over a rolling window."""

    def __init__(self, ctx: Context, window: str = "24h", drift_reference: str = "config",
                 cache_seconds: float = 15.0, clock: Callable[[], datetime] | None = None,
                 parts: Sequence[str] = PARTS) -> None:
        parse_window(window)  # fail early on a bad window string
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise VigilError(f"unknown metric parts {unknown}; choose from {', '.join(PARTS)}")
        self.parts = tuple(p for p in PARTS if p in parts)
        self.ctx = ctx
        self.window_text = window
        self.drift_reference = drift_reference
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[GaugeMetricFamily] = []
        self._cached_at = -1e18
        self.collections = 0  # how many times values were computed (not served from the cache)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # families depend on the data; describing nothing keeps registration from scraping

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._cached_at > self.cache_seconds:
                self._cached = self._compute()
                self._cached_at = time.monotonic()
                self.collections += 1
            cached = list(self._cached)
        yield from cached

    # ------------------------------------------------------------------ computation

    def _window(self) -> Window:
        return parse_window(self.window_text, now=self._clock() if self._clock else None)

    def _compute(self) -> list[GaugeMetricFamily]:
        started = time.perf_counter()
        fam = _Families()
        window = self._window()
        for model in sorted(self.ctx.settings.models):
            for part in self.parts:
                fn = getattr(self, f"_{part}")
                ok = _attempt(fn, fam, model, window)
                fam.add("vigil_collect_ok", "1 when Vigil computed this part for the model, 0 when it failed "
                        "(no data in the window, a source unavailable)", ["model", "part"], [model, part],
                        1.0 if ok else 0.0)
        fam.add("vigil_collect_seconds", "Seconds the last computation of all gauges took", [], [],
                time.perf_counter() - started)
        fam.add("vigil_window_seconds", "Length of the rolling window the gauges cover", [], [],
                (window.end - window.start).total_seconds())
        return list(fam.g.values())

    def _operations(self, fam: _Families, model: str, window: Window) -> None:
        rep = compute_operations(self.ctx, model, window, bucket="hour")
        rows = [(ALL, rep.latency_p95_ms, rep.error_rate, rep.throughput_per_hour)]
        rows += [(str(v["version"]), v["p95_ms"], v["error_rate"], v["throughput_per_hour"])
                 for v in rep.versions.to_dict(orient="records")]
        for version, p95, err, tput in rows:
            labels = [model, version]
            fam.add("vigil_latency_p95_ms", "95th percentile prediction latency (ms) over the window",
                    ["model", "version"], labels, p95)
            fam.add("vigil_error_rate", "Share of predictions with status other than ok over the window",
                    ["model", "version"], labels, err)
            fam.add("vigil_throughput_per_hour", "Predictions per hour over the active span of the window",
                    ["model", "version"], labels, tput)
        fam.add("vigil_slo_breach_share", "Share of hourly buckets whose p95 latency breaches the SLO",
                ["model"], [model], rep.slo.breach_share)
        fam.add("vigil_latency_slo_ms", "The p95 latency objective (ms)", ["model"], [model], rep.slo.threshold_ms)

    def _quality(self, fam: _Families, model: str, window: Window) -> None:
        overall = compute_quality(self.ctx, model, window)
        versions = [(ALL, overall)]
        with self.ctx.store.connect() as con:
            from connectors.queries.operations import versions as list_versions

            names = list_versions(con, self.ctx.schema(model), window.start, window.end)
        for v in names:
            try:
                versions.append((v, compute_quality(self.ctx, model, window, version=v)))
            except USER_ERRORS:
                continue  # a version with only failed requests has no quality
        for version, rep in versions:
            labels = [model, version]
            fam.add("vigil_accuracy", "Realised accuracy on labelled predictions of the window",
                    ["model", "version"], labels, rep.actual.accuracy)
            fam.add("vigil_estimated_accuracy", "Estimated accuracy (CBPE: mean probability of the predicted "
                    "class; assumes calibrated scores, no concept drift)", ["model", "version"], labels,
                    rep.estimated_accuracy_all)
            fam.add("vigil_label_coverage", "Share of the window's predictions that have a label",
                    ["model", "version"], labels, rep.label_coverage)

    def _drift(self, fam: _Families, model: str, window: Window) -> None:
        from dashboard.monitoring.drift import compute_drift

        res = compute_drift(self.ctx, model, window, reference=self.drift_reference)
        fam.add("vigil_drift_share", "Share of drifted columns versus the reference", ["model"], [model],
                res.share_drifted)
        fam.add("vigil_dataset_drift", "1 when the drift share reaches the model's drift_share threshold",
                ["model"], [model], 1.0 if res.dataset_drift else 0.0)

    def _fairness(self, fam: _Families, model: str, window: Window) -> None:
        from dashboard.monitoring.fairness import compute_fairness

        rep = compute_fairness(self.ctx, model, window)
        for attr in rep.attributes:
            di = attr.metrics.get("disparate_impact")
            fam.add("vigil_disparate_impact", "Disparate impact (unprivileged / privileged favourable rate)",
                    ["model", "attribute"], [model, attr.attribute], None if di is None else di.value)

    def _policy(self, fam: _Families, model: str, window: Window) -> None:
        from dashboard.governance.policy import evaluate

        # An explicit FROM..TO in ISO times, so the policies judge the same window as the other gauges.
        ev = evaluate(self.ctx, model, window=f"{window.start.isoformat()}..{window.end.isoformat()}")
        for r in ev.results:
            value = POLICY_STATUS.get(r.verdict, POLICY_STATUS["error"])
            fam.add("vigil_policy_status", "Policy verdict: 1 pass, 0 fail, -1 no data, -2 error "
                    "(could not be evaluated)", ["model", "policy", "severity"], [model, r.name, r.severity],
                    value)
        fam.add("vigil_policies_passed", "1 when no blocking policy fails (what `vigil check` gates on)",
                ["model"], [model], 1.0 if ev.passed else 0.0)


POLICY_STATUS: dict[str, float] = {"pass": 1.0, "fail": 0.0, "no data": -1.0, "error": -2.0}
def _attempt(fn: Callable[..., None], *args: Any) -> bool:
    """Run one part. Any failure (no data, a source down, a bug in one analysis) makes its
    ``vigil_collect_ok`` 0 and is logged, instead of failing the whole scrape with HTTP 500."""
    try:
        fn(*args)
    except USER_ERRORS as exc:
        log.info("vigil metrics: %s for %s skipped: %s", fn.__name__.lstrip("_"), args[1], exc)
        return False
    except Exception:
        log.exception("vigil metrics: %s for %s failed", fn.__name__.lstrip("_"), args[1])
        return False
    return True


def serve(collector: VigilCollector, host: str = "127.0.0.1", port: int = 9464) -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` of ``collector`` on ``host:port`` (port 0 picks a free one); returns the server
    (``server.server_port``, ``server.shutdown()``) and its thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return start_http_server(port, addr=host, registry=registry)
