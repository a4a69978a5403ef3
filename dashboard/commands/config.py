"""``vigil config``: check a configuration and show what Vigil will use."""

from __future__ import annotations

import click

from dashboard.commands.common import echo_json, get_context
from dashboard.settings import ENV_KEYS


@click.group("config")
def command() -> None:
    """Inspect the configuration (vigil.toml plus VIGIL_* environment variables)."""


@command.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved settings as JSON.")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Validate the configuration; every problem is listed with its key (exit 2 when invalid)."""
    settings = get_context(ctx).settings
    summary = {
        "config": str(settings.config_path) if settings.config_path else None,
        "duckdb_path": str(settings.duckdb_path), "mlflow_tracking_uri": settings.mlflow_tracking_uri,
        "label_studio_url": settings.label_studio_url,
        "label_studio_token": "set" if settings.label_studio_token else "not set",
        "models": {name: {"features": dict(m.features), "classes": list(m.classes), "favourable": m.favourable,
                          "protected": [p.name for p in m.protected], "reference": m.reference.source}
                   for name, m in settings.models.items()},
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"config file: {summary['config'] or 'none (embedded defaults)'}")
    click.echo(f"log store:   {summary['duckdb_path']}")
    click.echo(f"MLflow:      {summary['mlflow_tracking_uri']}")
    for name, m in settings.models.items():
        click.echo(f"model {name}: {len(m.features)} features, classes {list(m.classes)}, "
                   f"protected {[p.name for p in m.protected]}")
    click.echo("OK")


@command.command("env")
def env() -> None:
    """List the VIGIL_* environment variables Vigil reads."""
    for key, text in ENV_KEYS.items():
        click.echo(f"{key:28} {text}")
