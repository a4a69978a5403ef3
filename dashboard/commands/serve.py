"""``vigil serve``: scheduled monitors, webhook receivers, /metrics and /healthz in one process."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from dashboard.commands.common import get_context


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default serve.host, 127.0.0.1; use 0.0.0.0 only "
                                           "behind a firewall or proxy: /metrics and /healthz have no sign-in).")
@click.option("--port", "-p", default=None, type=click.IntRange(0, 65535),
              help="TCP port (default serve.port or VIGIL_SERVE_PORT, 8765; 0 picks a free one).")
@click.option("--once", is_flag=True, help="Run one scheduler tick (what is due now) and exit: no HTTP server.")
@click.option("--no-register", is_flag=True, help="Do not register webhooks with Label Studio and MLflow at start.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="What the service logs to stderr.")
@click.pass_context
def command(ctx: click.Context, host: str | None, port: int | None, once: bool, no_register: bool,
            log_level: str) -> None:
    """Run Vigil's automation until SIGTERM or Ctrl-C: each model's monitors on their cron schedules
    ([models.NAME.schedule]), the Label Studio and MLflow webhook receivers (registered at start), the
    Prometheus /metrics of `vigil metrics` and /healthz. Stops gracefully: the running monitor finishes,
    its lease is released, exit 0."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    context = get_context(ctx)
    if once:
        from dashboard.service.scheduler import Scheduler

        report = Scheduler(context).tick()
        for r in report.results:
            click.echo(f"{r.monitor} {r.model} {r.scheduled_for:%Y-%m-%d %H:%M}: {r.status} {r.error or r.summary}")
        if not report.results:
            click.echo("nothing due")
        ctx.exit(1 if any(r.status == "failed" for r in report.results) else 0)
    from dashboard.service.runtime import Service

    try:
        service = Service(context, host=host, port=port, register=not no_register)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host or context.settings.serve.host}:"
                                   f"{context.settings.serve.port if port is None else port} ({exc.strerror}); "
                                   "choose another --port or stop what uses it") from None
    if context.settings.store_owner:  # a long-running process: own the store so nobody waits for the file
        owning = context.store.own()
        click.echo("owning the log store (other processes query through this one)" if owning else
                   "the log store is owned by another process (the app); querying through it", err=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    for line in service.registration.lines():
        click.echo(line, err=True)
    click.echo(f"vigil serve on http://{service.http.server_address[0]!s}:{service.port} (healthz, metrics, "
               f"hooks); callbacks to {context.settings.serve.callback_url()}; SIGTERM or Ctrl-C stops.", err=True)
    stop.wait()
    click.echo("stopping: finishing the running monitor ...", err=True)
    clean = service.stop()
    context.store.disown()
    click.echo("stopped" if clean else "stopped with work still running (its lease expires)", err=True)
