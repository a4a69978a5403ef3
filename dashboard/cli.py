"""The ``vigil`` command: the same governance functions the app uses, headless (CI gates, cron, ops).

Each sub-command lives in ``dashboard/commands/<name>.py`` and is listed in :data:`COMMAND_MODULES`.
Errors a user can cause exit with code 2 and one clear message, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from dashboard.commands.common import run_cli

# Modules that each define a click command or group named ``command``.
COMMAND_MODULES: tuple[str, ...] = (
    "dashboard.commands.ingest",
    "dashboard.commands.demo",
    "dashboard.commands.config",
    "dashboard.commands.queue",
    "dashboard.commands.sync_labels",
    "dashboard.commands.retrain",
    "dashboard.commands.fairness",
    "dashboard.commands.audit",
    "dashboard.commands.users",
    "dashboard.commands.check",
    "dashboard.commands.ops",
    "dashboard.commands.metrics",
    "dashboard.commands.drift",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", envvar="VIGIL_CONFIG", type=click.Path(dir_okay=False),
              help="Path of vigil.toml (default ./vigil.toml; env VIGIL_CONFIG).")
@click.version_option(package_name="vigil")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Vigil: governance of production ML models (drift, fairness, operations, labels, retraining, compliance)."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


for _module in COMMAND_MODULES:
    cli.add_command(importlib.import_module(_module).command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(cli, argv))


if __name__ == "__main__":
    main()
