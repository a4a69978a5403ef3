"""The ``vigil`` command: the same governance functions the app uses, headless (CI gates, cron, ops).

Each sub-command lives in ``dashboard/commands/<name>.py`` and is listed in :data:`COMMAND_MODULES`.
Errors a user can cause exit with code 2 and one clear message, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from dashboard.commands.common import run_cli

#: Sub-command name -> module defining it as ``command``, imported only when the sub-command runs, so
#: ``vigil ingest`` in a cron job does not pay for loading MLflow, Evidently or the Label Studio SDK.
COMMAND_MODULES: dict[str, str] = {
    "ingest": "dashboard.commands.ingest",
    "demo": "dashboard.commands.demo",
    "config": "dashboard.commands.config",
    "queue": "dashboard.commands.queue",
    "sync-labels": "dashboard.commands.sync_labels",
    "retrain": "dashboard.commands.retrain",
    "fairness": "dashboard.commands.fairness",
    "audit": "dashboard.commands.audit",
    "users": "dashboard.commands.users",
    "check": "dashboard.commands.check",
    "ops": "dashboard.commands.ops",
    "metrics": "dashboard.commands.metrics",
    "drift": "dashboard.commands.drift",
    "report": "dashboard.commands.report",
    "inventory": "dashboard.commands.inventory",
    "controls": "dashboard.commands.controls",
    "findings": "dashboard.commands.findings",
    "evidence": "dashboard.commands.evidence",
    "quality": "dashboard.commands.quality",
    "alerts": "dashboard.commands.alerts",
    "serve": "dashboard.commands.serve",
    "estimate": "dashboard.commands.estimate",
    "segments": "dashboard.commands.segments",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use (``--help`` imports them all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMAND_MODULES and cmd_name not in self.commands:
            command: click.Command = importlib.import_module(COMMAND_MODULES[cmd_name]).command
            if command.name != cmd_name:
                raise RuntimeError(f"{COMMAND_MODULES[cmd_name]} defines '{command.name}', listed as '{cmd_name}'")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", envvar="VIGIL_CONFIG", type=click.Path(dir_okay=False),
              help="Path of vigil.toml (default ./vigil.toml; env VIGIL_CONFIG).")
@click.version_option(package_name="vigil")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Vigil: governance of production ML models (drift, fairness, operations, labels, retraining, compliance)."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(cli, argv))


if __name__ == "__main__":
    main()
