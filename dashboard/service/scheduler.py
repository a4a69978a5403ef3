"""The scheduler of ``vigil serve``: which monitor is due, run it under a lease, record it, retry failures.

One :meth:`Scheduler.tick` at a time (the serve loop calls it every ``serve.tick_s``; tests call it with a
clock they move by hand):

1. runs left ``running`` by a process that no longer holds their lease (killed mid-run) are marked
   ``interrupted``, which makes them due again at once;
2. :func:`due_runs` decides from each monitor's cron expression and its last run what is due: a monitor
   whose last run succeeded is due at the latest cron slot after that run (after downtime the missed
   slots collapse into **one** run); one whose last run failed is retried after a back-off that doubles
   per failure in a row (``serve.retry_base_s`` .. ``serve.retry_max_s``), never skipped;
3. each due monitor runs only while this process holds its lease (``monitor:<name>:<model>``), renewed
   while it runs; another process holding it means "not mine now";
4. the tick ends with failed retrain jobs reported as alerts and ``alerting.deliver_due``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from croniter import croniter

from dashboard import alerting
from dashboard.context import Context
from dashboard.errors import USER_ERRORS
from dashboard.service import leases, monitors, runs, state
from dashboard.service.clock import Clock, aware_utc, naive_utc, system_clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    """A monitor run to make now."""

    monitor: str
    model: str
    scheduled_for: datetime  # naive UTC cron slot
    attempt: int
    reason: str


def latest_slot(cron: str, now: datetime) -> datetime:
    """The last cron slot at or before ``now`` (naive UTC)."""
    prev: datetime = croniter(cron, naive_utc(now) + timedelta(microseconds=1)).get_prev(datetime)
    return prev


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempt``-th failure in a row."""
    return float(min(max_s, base_s * 2 ** max(0, attempt - 1)))


def due_runs(crons: Mapping[tuple[str, str], str], last: Mapping[tuple[str, str], runs.Run], now: datetime,
             retry_base_s: float, retry_max_s: float) -> list[Due]:
    """What is due at ``now`` given each (monitor, model)'s cron and last run (a pure function)."""
    now = naive_utc(now)
    out: list[Due] = []
    for (monitor, model), cron in sorted(crons.items()):
        slot = latest_slot(cron, now)
        prev = last.get((monitor, model))
        if prev is None:
            out.append(Due(monitor, model, slot, 1, "first run"))
        elif prev.status == "ok":
            if slot > prev.scheduled_for:
                missed = _slots_between(cron, prev.scheduled_for, slot)
                out.append(Due(monitor, model, slot, 1, "due" if missed <= 1 else
                               f"{missed} slots passed since the last run: running once"))
        elif prev.status in ("failed", "interrupted"):
            wait = 0.0 if prev.status == "interrupted" else backoff_s(prev.attempt, retry_base_s, retry_max_s)
            if now >= (prev.finished or prev.started) + timedelta(seconds=wait):
                out.append(Due(monitor, model, max(slot, prev.scheduled_for), prev.attempt + 1,
                               f"retry {prev.attempt} after the run {prev.status}"))
    return out


def _slots_between(cron: str, after: datetime, until: datetime, cap: int = 1000) -> int:
    it = croniter(cron, after)
    n = 0
    while n < cap and it.get_next(datetime) <= until:
        n += 1
    return n


@dataclass
class RunResult:
    """What one run did (returned by :meth:`Scheduler.tick`)."""

    monitor: str
    model: str
    scheduled_for: datetime
    status: str  # ok | failed | skipped (lease held elsewhere, or no longer due)
    summary: str = ""
    error: str | None = None


@dataclass
class TickReport:
    started: datetime
    interrupted: list[int] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    delivery: str = ""


def lease_name(monitor: str, model: str) -> str:
    return f"monitor:{monitor}:{model}"


class Scheduler:
    """Runs the monitors of every configured model on their schedules (see the module docstring)."""

    def __init__(self, ctx: Context, holder: str | None = None, clock: Clock = system_clock,
                 monitor_fns: Mapping[str, monitors.Monitor] | None = None) -> None:
        self.ctx = ctx
        self.holder = holder or leases.new_holder()
        self.clock = clock
        self.monitor_fns = dict(monitors.MONITORS if monitor_fns is None else monitor_fns)
        self.stop = threading.Event()  # set: finish the running monitor, start no other
        self.last_tick: datetime | None = None
        self.current: str | None = None

    def crons(self) -> dict[tuple[str, str], str]:
        return {(monitor, model): cron for model, cfg in sorted(self.ctx.settings.models.items())
                for monitor, cron in cfg.schedule.crons().items() if monitor in self.monitor_fns}

    def tick(self) -> TickReport:
        now = self.clock()
        self.last_tick = aware_utc(now)  # when the latest tick began (``/healthz`` judges its age)
        report = TickReport(aware_utc(now))
        report.interrupted = self.mark_interrupted(now)
        spec = self.ctx.settings.serve
        for due in due_runs(self.crons(), runs.latest(self.ctx), now, spec.retry_base_s, spec.retry_max_s):
            if self.stop.is_set():
                break
            report.results.append(self._run(due))
        if not self.stop.is_set():
            self.report_failed_jobs(self.clock())
            try:
                report.delivery = str(alerting.deliver_due(self.ctx, aware_utc(self.clock())))
            except Exception as exc:  # a route's failure is the alerting domain's to log; the tick goes on
                log.exception("alert delivery failed")
                report.delivery = f"failed: {type(exc).__name__}: {exc}"
        return report

    def mark_interrupted(self, now: datetime) -> list[int]:
        """Runs still ``running`` whose lease nobody holds any more: their process died mid-run."""
        marked = []
        for run in runs.running(self.ctx):
            if run.monitor not in self.monitor_fns:
                continue
            holder = leases.holder_of(self.ctx, lease_name(run.monitor, run.model), now)
            if holder is None or (holder == self.holder and self.current != lease_name(run.monitor, run.model)):
                runs.finish(self.ctx, run.id, "interrupted", now,
                            error=f"the process running it ({run.holder}) stopped before it finished")
                marked.append(run.id)
        return marked

    def _run(self, due: Due) -> RunResult:
        name = lease_name(due.monitor, due.model)
        spec = self.ctx.settings.serve
        if not leases.acquire(self.ctx, name, self.holder, spec.lease_s, self.clock()):
            return RunResult(due.monitor, due.model, due.scheduled_for, "skipped", "another process holds the lease")
        try:
            # Re-read under the lease: another process may have run this slot since the due list was made.
            again = due_runs({(due.monitor, due.model): self.crons()[(due.monitor, due.model)]},
                             runs.latest(self.ctx), self.clock(), spec.retry_base_s, spec.retry_max_s)
            if not again:
                return RunResult(due.monitor, due.model, due.scheduled_for, "skipped", "already run by another process")
            due = again[0]
            run_id = runs.start(self.ctx, due.monitor, due.model, due.scheduled_for, due.attempt, self.holder,
                                self.clock())
            self.current = name
            with _Renewal(self.ctx, name, self.holder, spec.lease_s, self.clock):
                try:
                    summary = self.monitor_fns[due.monitor](self.ctx, due.model, aware_utc(self.clock()))
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("monitor %s of %s failed: %s%s", due.monitor, due.model, error,
                                "" if isinstance(exc, USER_ERRORS) else "\n" + traceback.format_exc())
                    runs.finish(self.ctx, run_id, "failed", self.clock(), error=error)
                    self._alert_failure(due, error)
                    return RunResult(due.monitor, due.model, due.scheduled_for, "failed", error=error)
            runs.finish(self.ctx, run_id, "ok", self.clock(), summary=summary)
            return RunResult(due.monitor, due.model, due.scheduled_for, "ok", summary)
        finally:
            self.current = None
            leases.release(self.ctx, name, self.holder)

    def _alert_failure(self, due: Due, error: str) -> None:
        """A monitor that keeps failing is one alert (the subject names the monitor), never silence."""
        try:
            alerting.raise_event(self.ctx, alerting.Signal(
                due.model, None, "job", f"{due.monitor} monitor", "warning",
                f"the scheduled {due.monitor} monitor of {due.model} failed (attempt {due.attempt}): {error}",
                {"monitor": due.monitor, "attempt": due.attempt, "error": error,
                 "scheduled_for": due.scheduled_for.isoformat()}, "6_retraining.py"), aware_utc(self.clock()))
        except Exception:
            log.exception("could not raise the alert of a failed monitor")

    def report_failed_jobs(self, now: datetime) -> int:
        """Raise one ``job`` alert per retrain job that failed since the last look (the first look only
        sets the mark: history before ``vigil serve`` ran is not news)."""
        from dashboard.lifecycle import jobs

        mark = state.get(self.ctx, "jobs.failed_reported_until")
        stamp = naive_utc(now).isoformat()
        if mark is None:
            state.put(self.ctx, "jobs.failed_reported_until", stamp, now)
            return 0
        raised = 0
        for model in sorted(self.ctx.settings.models):
            for job in jobs.list_jobs(self.ctx, model):
                ended = job.ended and naive_utc(job.ended).isoformat()
                if job.state == "failed" and ended and mark < ended <= stamp:
                    alerting.raise_event(self.ctx, alerting.Signal(
                        model, job.model_version, "job", f"retrain job {job.id}", "warning",
                        f"retrain job {job.id} of {model} failed: {job.message or 'see its log'}",
                        {"job_id": job.id, "message": job.message, "requested_by": job.requested_by},
                        "6_retraining.py"), aware_utc(now))
                    raised += 1
        state.put(self.ctx, "jobs.failed_reported_until", stamp, now)
        return raised

    def release_all(self) -> None:
        """Give up every lease this process holds (at shutdown)."""
        for monitor, model in self.crons():
            leases.release(self.ctx, lease_name(monitor, model), self.holder)


class _Renewal:
    """Renews a lease every third of its life while a monitor runs (so a long run keeps it)."""

    def __init__(self, ctx: Context, name: str, holder: str, ttl_s: float, clock: Clock) -> None:
        self.args = (ctx, name, holder, ttl_s)
        self.clock = clock
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"lease {name}", daemon=True)

    def _loop(self) -> None:
        ctx, name, holder, ttl_s = self.args
        while not self.done.wait(max(1.0, ttl_s / 3)):
            try:
                leases.acquire(ctx, name, holder, ttl_s, self.clock())
            except Exception:
                log.exception("could not renew lease %s", name)

    def __enter__(self) -> _Renewal:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)
