"""``vigil metrics``: serve Vigil's per-model gauges at /metrics for Prometheus."""

from __future__ import annotations

import time

import click

from connectors.windows import WindowError
from dashboard.commands.common import get_context
from dashboard.service.metrics import PARTS, VigilCollector, serve


@click.command("metrics")
@click.option("--port", "-p", default=9464, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port of the /metrics endpoint (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; use 0.0.0.0 only behind a firewall (the endpoint has no sign-in).")
@click.option("--window", "-w", "window_text", default="24h", show_default=True,
              help="Rolling window the gauges cover (24h, 7d) or a fixed FROM..TO.")
@click.option("--drift-reference", default="config", show_default=True,
              help="Reference of the drift share: config (the model's), training, or FROM..TO.")
@click.option("--cache-seconds", default=15.0, show_default=True, type=click.FloatRange(0),
              help="Serve repeated scrapes from the last computation for this long.")
@click.option("--skip", "skip", multiple=True, type=click.Choice(PARTS),
              help="Leave out a part (repeatable), e.g. --skip policy to save its evaluation time.")
@click.pass_context
def command(ctx: click.Context, port: int, host: str, window_text: str, drift_reference: str,
            cache_seconds: float, skip: tuple[str, ...]) -> None:
    """Serve Prometheus metrics (latency p95, error rate, throughput, accuracy, estimated accuracy,
    drift share, disparate impact) per model and version at http://HOST:PORT/metrics until Ctrl-C."""
    context = get_context(ctx)
    try:
        collector = VigilCollector(context, window=window_text, drift_reference=drift_reference,
                                   cache_seconds=cache_seconds, parts=[p for p in PARTS if p not in skip])
    except WindowError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    server, thread = serve(collector, host=host, port=port)
    click.echo(f"Serving http://{host}:{server.server_port}/metrics (window {window_text}); Ctrl-C stops.",
               err=True)
    try:
        while thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
