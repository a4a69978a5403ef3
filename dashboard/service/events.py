"""The bounded event queue between the webhook receivers and the one worker thread that acts on events.

Why bounded and a separate worker: a receiver answers within milliseconds (Label Studio gives a webhook
one second), whatever the work costs; a burst fills at most ``serve.queue_size`` slots and the rest is
answered 503 (the senders retry, and the scheduled sync and alias poller catch up), so memory stays
bounded. Label Studio events of one model coalesce: while a label sync of the model waits in the queue,
another event of it adds nothing (one sync reads every annotation anyway; a sync with nothing new
writes nothing, which makes replayed events harmless).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from dashboard.access.roles import SERVICE
from dashboard.context import Context
from dashboard.service import registry_watch
from dashboard.service.clock import Clock, aware_utc, system_clock
from dashboard.service.hooks import Event

#: An alias event is judged this long after it arrived: Vigil's own promotion moves the alias first and
#: records the approval a moment later, and judging before that would call it external.
SETTLE_S = 5.0
log = logging.getLogger(__name__)
#: One label sync per model at a time in this process (webhook worker and scheduled monitor).
LABEL_SYNC_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


class QueueFull(Exception):
    """The event queue is full: answer 503 and let the sender retry."""


@dataclass
class Counters:
    accepted: int = 0
    coalesced: int = 0
    refused_full: int = 0
    processed: int = 0
    failed: int = 0
    last_error: str | None = None
    last_event: str | None = None


@dataclass
class EventQueue:
    """A bounded FIFO with coalescing of same-work events."""

    maxsize: int
    _q: queue.Queue[Event] = field(init=False)
    _pending: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self._q = queue.Queue(maxsize=self.maxsize)

    def put(self, event: Event) -> bool:
        """Queue ``event``; False when an equal one already waits (coalesced). Raises :class:`QueueFull`."""
        key = event.coalesce_key
        with self._lock:
            if key is not None and key in self._pending:
                self.counters.coalesced += 1
                return False
            try:
                self._q.put_nowait(event)
            except queue.Full:
                self.counters.refused_full += 1
                raise QueueFull(f"the event queue is full ({self.maxsize} events waiting)") from None
            if key is not None:
                self._pending.add(key)
            self.counters.accepted += 1
        return True

    def get(self, timeout: float) -> Event | None:
        try:
            event = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        with self._lock:
            if event.coalesce_key is not None:
                self._pending.discard(event.coalesce_key)
        return event

    def size(self) -> int:
        return self._q.qsize()


class EventWorker:
    """Takes events off the queue one at a time until stopped (the event in hand is finished first)."""

    def __init__(self, ctx: Context, events: EventQueue, clock: Clock = system_clock,
                 settle_s: float = SETTLE_S) -> None:
        self.ctx = ctx
        self.events = events
        self.clock = clock
        self.settle_s = settle_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="vigil serve events", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            event = self.events.get(timeout=0.5)
            if event is not None:
                self.handle(event)

    def handle(self, event: Event) -> str:
        """Act on one event; failures are counted and logged (the scheduled monitors catch up)."""
        c = self.events.counters
        try:
            outcome = self._act(event)
            c.processed += 1
        except Exception as exc:
            c.failed += 1
            outcome = c.last_error = f"{event.source} {event.kind} of {event.model}: {type(exc).__name__}: {exc}"
            log.warning("event failed: %s", outcome)
        c.last_event = f"{aware_utc(event.received).isoformat(timespec='seconds')} {event.source} {event.kind} " \
                       f"{event.model}: {outcome}"
        return outcome

    def _act(self, event: Event) -> str:
        if event.source == "label_studio":
            from dashboard.learning.annotation import client_for, sync_labels

            with LABEL_SYNC_LOCKS[event.model]:
                return sync_labels(self.ctx, SERVICE, event.model, client_for(self.ctx)).line()
        if event.kind == "model_version.created":
            return registry_watch.on_version_created(self.ctx, event.model, str(event.data.get("version")))
        wait = (aware_utc(event.received) + timedelta(seconds=self.settle_s) - aware_utc(self.clock())).total_seconds()
        if wait > 0:
            self.stop.wait(wait)
        version = event.data.get("version") if event.kind == "model_version_alias.created" else None
        change = registry_watch.note_alias(self.ctx, event.model, str(event.data.get("alias")),
                                           None if version is None else str(version), "webhook", self.clock())
        if change is None:
            return "alias already as last seen"
        return f"alias {change.alias} -> {change.version}: " + ("external change" if change.external else change.why)
