"""The ``vigil`` command: the same governance functions the app uses, headless (CI gates, cron, ops).

Each sub-command lives in ``dashboard/commands/<name>.py`` and is listed in :data:`COMMANDS`.
Errors a user can cause exit with code 2 and one clear message, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from dashboard.commands.common import run_cli

#: Sub-command name -> (module defining it as ``command``, its one-line summary). The module is imported
#: only when the sub-command runs, so ``vigil ingest`` in a cron job does not pay for loading MLflow,
#: Evidently or the Label Studio SDK, and ``vigil --help`` lists the summaries without importing any of
#: them (tests/test_cli.py holds each summary equal to its command's own short help).
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("dashboard.commands.ingest",
               'Ingest Parquet, CSV or JSONL files, globs or folders.'),
    "demo": ("dashboard.commands.demo",
             'Build the demo workspace: two registered model versions, 30 days of logs with injected events.'),
    "config": ("dashboard.commands.config",
               'Inspect the configuration (vigil.toml plus VIGIL_* environment variables).'),
    "queue": ("dashboard.commands.queue",
              'Queue the predictions the model was least sure about and send them to Label Studio.'),
    "sync-labels": ("dashboard.commands.sync_labels",
                    'Pull submitted annotations, resolve several per task by majority, and record changed labels.'),
    "retrain": ("dashboard.commands.retrain",
                'Retrain a model in the background: a new MLflow version with the challenger alias, judged against the champion by the gate (evidence stored on the version).'),
    "fairness": ("dashboard.commands.fairness",
                 'Disparate impact, parity and odds differences, entropy indices per protected attribute.'),
    "audit": ("dashboard.commands.audit",
              'The tamper-evident audit trail of every state-changing action.'),
    "users": ("dashboard.commands.users",
              'Users of the built-in sign-in (file: settings users_file, env VIGIL_USERS_FILE).'),
    "check": ("dashboard.commands.check",
              'Evaluate the policies of MODEL; exit 1 if a blocking policy fails, 0 otherwise.'),
    "ops": ("dashboard.commands.ops",
            'Operations and quality of MODEL: latency p50/p95/p99, error rate, throughput, SLO breaches, per-version comparison, realised and estimated accuracy.'),
    "metrics": ("dashboard.commands.metrics",
                'Serve Prometheus metrics (latency p95, error rate, throughput, accuracy, estimated accuracy, drift share, disparate impact) per model and version at http://HOST:PORT/metrics until Ctrl-C.'),
    "drift": ("dashboard.commands.drift",
              'Per-column drift (method, score, threshold, verdict) and the dataset verdict, as on the Drift page.'),
    "report": ("dashboard.commands.report",
               'The compliance report: policy scorecard with evidence, charts, the model card, approvals and the audit excerpt with the chain status.'),
    "inventory": ("dashboard.commands.inventory",
                  'The model inventory (configured and registered models).'),
    "controls": ("dashboard.commands.controls",
                 "Control status of MODEL's version against each pack: met, partially met, not met or not applicable, with the evidence, its time and what would close each gap."),
    "findings": ("dashboard.commands.findings",
                 'Findings on model versions: open high or critical ones block promotion (policy open_findings).'),
    "evidence": ("dashboard.commands.evidence",
                 "Export the evidence pack of MODEL's version: report (HTML, PDF), control status, card, gate evidence, policy history, audit excerpt with the chain and its checkpoint, manifest."),
    "quality": ("dashboard.commands.quality",
                "Missing, unseen, out-of-range and non-finite values per column against the reference, and the configured expectations (Great Expectations' vocabulary, evaluated in DuckDB), as on the Data quality page."),
    "alerts": ("dashboard.commands.alerts",
               'Alerts opened by failing policies, SLO breaches, retrain rules, failed jobs and external changes.'),
    "serve": ("dashboard.commands.serve",
              "Run Vigil's automation until SIGTERM or Ctrl-C: each model's monitors on their cron schedules ([models.NAME.schedule]), the Label Studio and MLflow webhook receivers (registered at start), the Prometheus /metrics of `vigil metrics` and /healthz."),
    "estimate": ("dashboard.commands.estimate",
                 'Estimated ROC AUC, F1, precision, recall, specificity and accuracy of MODEL (confidence-based performance estimation), each with its ±3 sampling-error band, the reference thresholds and the realised value where labels arrived.'),
    "segments": ("dashboard.commands.segments",
                 "Which segments explain the change of METRIC between two windows: each segment's contribution (mix: its share changed; performance: its own metric changed), adding up to the overall change."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use; its own ``--help`` imports none."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            command: click.Command = importlib.import_module(COMMANDS[cmd_name][0]).command
            if command.name != cmd_name:
                raise RuntimeError(f"{COMMANDS[cmd_name][0]} defines '{command.name}', listed as '{cmd_name}'")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from :data:`COMMANDS`' summaries, shortened as click shortens a command's help."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, click.Command(n, help=COMMANDS[n][1]).get_short_help_str(limit)) for n in names if n in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
