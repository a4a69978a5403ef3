"""``vigil serve`` as one object: HTTP server, event worker and scheduler loop, started and stopped together.

Shutdown (SIGTERM/SIGINT, or :meth:`Service.stop`): the HTTP server stops accepting, the scheduler starts
no further monitor and the one running finishes (its lease is then released; if the process is killed
instead, the lease expires and the next start takes the run over as ``interrupted``), the event worker
finishes the event in hand (events still queued are covered by the next scheduled sync and alias poll).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from dashboard.context import Context
from dashboard.errors import USER_ERRORS
from dashboard.service import registration, registry_watch, runs
from dashboard.service.clock import Clock, aware_utc, system_clock
from dashboard.service.events import EventQueue, EventWorker
from dashboard.service.http import ServeHTTPServer
from dashboard.service.metrics import VigilCollector
from dashboard.service.scheduler import Scheduler

log = logging.getLogger(__name__)


class Service:
    """Everything ``vigil serve`` runs in one process."""

    def __init__(self, ctx: Context, host: str | None = None, port: int | None = None, clock: Clock = system_clock,
                 scheduler: Scheduler | None = None, metrics: bool = True, register: bool = True) -> None:
        spec = ctx.settings.serve
        self.ctx = ctx
        self.clock = clock
        self.register = register
        self.scheduler = scheduler or Scheduler(ctx, clock=clock)
        self.events = EventQueue(spec.queue_size)
        self.worker = EventWorker(ctx, self.events, clock=clock)
        registry = None
        if metrics:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(VigilCollector(ctx, window=spec.metrics_window))
        self.http = ServeHTTPServer(ctx, (host or spec.host, spec.port if port is None else port), self.events,
                                    registration.webhook_secret(ctx.settings), registry, self.health, clock)
        self.registration = registration.Registration()
        self.stopping = threading.Event()
        self._loop_thread = threading.Thread(target=self._loop, name="vigil serve scheduler", daemon=True)
        self._http_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    def start(self) -> None:
        """Baseline the aliases, register webhooks, then serve and schedule (each step reports, none is fatal
        except binding the port, which already happened in ``__init__``)."""
        now = self.clock()
        for model in sorted(self.ctx.settings.models):
            try:
                registry_watch.baseline(self.ctx, model, now)
            except USER_ERRORS as exc:
                log.warning("aliases of %s not read at start: %s", model, exc)
        if self.register:
            self.registration = registration.register_all(self.ctx)
            for line in self.registration.lines():
                log.info("%s", line)
        self.worker.start()
        self._http_thread = self.http.serve_in_thread()
        self._loop_thread.start()

    def _loop(self) -> None:
        tick_s = self.ctx.settings.serve.tick_s
        while not self.stopping.is_set():
            try:
                report = self.scheduler.tick()
                for r in report.results:
                    log.info("%s %s (%s): %s %s", r.monitor, r.model, r.scheduled_for, r.status, r.error or r.summary)
            except Exception:
                log.exception("scheduler tick failed; next tick in %.0f s", tick_s)
            if self.register and not self.stopping.is_set():
                self.register_new_projects()
            self.stopping.wait(tick_s)

    def register_new_projects(self) -> None:
        """Give a Label Studio project created since the start (the first batch sent) its webhook within a
        tick, so its first annotations already arrive by webhook. Only models without one are tried."""
        if not self.ctx.settings.label_studio_url:
            return
        from dashboard.learning.annotation import client_for, project_id

        for model in sorted(self.ctx.settings.models):
            if self.registration.label_studio.get(model, "").startswith("webhook "):
                continue
            try:
                if project_id(self.ctx, model) is None:
                    continue
                hook = registration.label_studio(self.ctx, model, client_for(self.ctx))
                self.registration.label_studio[model] = f"webhook {hook}"
                log.info("Label Studio webhook of %s: webhook %s", model, hook)
            except USER_ERRORS as exc:
                self.registration.label_studio[model] = f"not registered: {exc}"

    def stop(self, grace_s: float = 120.0) -> bool:
        """Stop as the module docstring says; True when every part stopped within ``grace_s``."""
        self.stopping.set()
        self.scheduler.stop.set()
        self.worker.stop.set()
        if self._http_thread is not None:  # shutdown() waits for serve_forever, which only start() began
            self.http.shutdown()
        self.http.server_close()
        clean = True
        for thread in (self._loop_thread, self.worker.thread):
            if thread.is_alive():
                thread.join(grace_s)
                clean = clean and not thread.is_alive()
        if clean:
            self.scheduler.release_all()
        return clean

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``/healthz``: ok when the scheduler loop runs, its last tick is recent and the store answers."""
        now = aware_utc(self.clock())
        report: dict[str, Any] = {"now": now.isoformat(timespec="seconds")}
        try:
            latest = runs.latest(self.ctx)
            store_ok, store_error = True, None
        except Exception as exc:
            latest, store_ok, store_error = {}, False, f"{type(exc).__name__}: {exc}"
        last_tick = self.scheduler.last_tick
        limit = timedelta(seconds=3 * self.ctx.settings.serve.tick_s + self.ctx.settings.serve.lease_s)
        running = self._loop_thread.is_alive() and not self.stopping.is_set()
        fresh = last_tick is not None and (now - last_tick) <= limit
        report["scheduler"] = {"running": running, "last_tick": last_tick.isoformat(timespec="seconds")
                               if last_tick else None, "running_monitor": self.scheduler.current}
        report["store"] = {"reachable": store_ok, "error": store_error}
        report["monitors"] = [{"monitor": m, "model": model, "scheduled_for": r.scheduled_for.isoformat(),
                               "finished": r.finished.isoformat() if r.finished else None, "status": r.status,
                               "attempt": r.attempt, "error": r.error}
                              for (m, model), r in sorted(latest.items())]
        c = self.events.counters
        report["events"] = {"queued": self.events.size(), "max": self.events.maxsize, **c.__dict__}
        report["webhooks"] = {"label_studio": self.registration.label_studio, "mlflow": self.registration.mlflow}
        report["ok"] = bool(running and fresh and store_ok)
        return report["ok"], report
