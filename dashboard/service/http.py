"""The HTTP side of ``vigil serve``: ``/metrics``, ``/healthz`` and the two webhook receivers.

Bounded on purpose: a POST must say its ``Content-Length`` (411 otherwise) and stay under
``serve.max_body_bytes`` (413, the body is not read), a connection that stalls is dropped after
:data:`REQUEST_TIMEOUT_S`, and accepted events go to the bounded :class:`~dashboard.service.events.EventQueue`
(503 with ``Retry-After`` when full). Every rejected webhook (bad secret or signature, stale timestamp,
replayed delivery) is answered 401/409 and written to the audit trail. Nothing from a payload is
fetched, executed or echoed back.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dashboard.audit import trail
from dashboard.context import Context
from dashboard.service import state
from dashboard.service.clock import Clock, system_clock
from dashboard.service.events import EventQueue, QueueFull
from dashboard.service.hooks import (
    Event,
    HookRejected,
    label_studio_event,
    mlflow_event,
    verify_label_studio,
    verify_mlflow,
)

REQUEST_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)
Health = Callable[[], tuple[bool, dict[str, Any]]]


class ServeHTTPServer(ThreadingHTTPServer):
    """Holds what the handlers need; one thread per request (daemon threads, so shutdown never waits on
    a client that keeps its connection open)."""

    daemon_threads = True

    def __init__(self, ctx: Context, address: tuple[str, int], events: EventQueue, secret: str,
                 registry: CollectorRegistry | None, health: Health, clock: Clock = system_clock) -> None:
        self.ctx = ctx
        self.events = events
        self.secret = secret
        self.metrics_registry = registry
        self.health = health
        self.clock = clock
        super().__init__(address, Handler)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="vigil serve http", daemon=True)
        thread.start()
        return thread


class Handler(BaseHTTPRequestHandler):
    server: ServeHTTPServer
    timeout = REQUEST_TIMEOUT_S
    server_version = "vigil-serve"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes | dict[str, Any], content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, sort_keys=True, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path == "/healthz":
            ok, report = self.server.health()
            self._send(200 if ok else 503, report)
        elif path == "/metrics" and self.server.metrics_registry is not None:
            self._send(200, generate_latest(self.server.metrics_registry), CONTENT_TYPE_LATEST)
        else:
            self._send(404, {"error": "not found; try /healthz, /metrics or POST /hooks/..."})

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        if path == "/hooks/mlflow":
            self._hook("mlflow", None)
        elif path.startswith("/hooks/label-studio/") and path.count("/") == 3:
            self._hook("label_studio", path.rsplit("/", 1)[1])
        else:
            self._send(404, {"error": "not found; webhooks are POST /hooks/mlflow and /hooks/label-studio/<model>"})

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(411, {"error": "Content-Length is required"})
            return None
        if int(length) > self.server.ctx.settings.serve.max_body_bytes:
            self.close_connection = True
            self._send(413, {"error": f"body larger than serve.max_body_bytes "
                                      f"({self.server.ctx.settings.serve.max_body_bytes} bytes)"})
            return None
        return self.rfile.read(int(length))

    def _hook(self, source: str, model: str | None) -> None:
        body = self._body()
        if body is None:
            return
        now = self.server.clock()
        headers = dict(self.headers.items())
        delivery: str | None = None
        try:
            if source == "mlflow":
                delivery = verify_mlflow(self.server.secret, headers, body, now)
                event = mlflow_event(body, delivery, now)
                if not state.first_delivery(self.server.ctx, "mlflow", delivery, now):
                    delivery = None  # not ours to forget
                    raise HookRejected(f"delivery {event.delivery_id if event else ''} was received before "
                                       "(a replay)", 409)
            else:
                assert model is not None
                verify_label_studio(self.server.secret, headers)
                if model not in self.server.ctx.settings.models:
                    raise HookRejected(f"'{model[:80]}' is not a configured model", 404)
                event = label_studio_event(model, body, now)
        except HookRejected as exc:
            if delivery is not None and exc.status != 409:
                state.forget_delivery(self.server.ctx, "mlflow", delivery)
            self._reject(source, model, exc)
            return
        if event is None:
            self._send(202, {"accepted": False, "why": "not an event Vigil acts on"})
            return
        self._enqueue(event)

    def _enqueue(self, event: Event) -> None:
        try:
            queued = self.server.events.put(event)
        except QueueFull as exc:
            if event.delivery_id:
                state.forget_delivery(self.server.ctx, "mlflow", event.delivery_id)
            self._send(503, {"error": f"{exc}; retry later"}, headers={"Retry-After": "30"})
            return
        self._send(202, {"accepted": True, "queued": queued})

    def _reject(self, source: str, model: str | None, exc: HookRejected) -> None:
        if exc.status in (401, 409):
            try:
                trail.record(self.server.ctx.store, f"webhook from {self.client_address[0]}", "webhook.rejected",
                             model or "", {"source": source, "reason": str(exc), "status": exc.status,
                                           "path": urlparse(self.path).path[:200]})
            except Exception:
                log.exception("could not audit a rejected webhook")
        self._send(exc.status, {"error": str(exc)})
