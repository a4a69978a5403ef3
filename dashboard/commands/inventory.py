"""``vigil inventory``: every model with its risk tier, owner, intended use, lifecycle state, champion,
open alerts, open findings and last review; ``vigil inventory set`` records profile keys as MLflow tags
(a manager or admin; audited)."""

from __future__ import annotations

import click

from dashboard.commands.common import cli_actor, echo_json, get_context
from dashboard.governance import inventory as inv
from dashboard.settings import LIFECYCLE_STATES


@click.group("inventory", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """The model inventory (configured and registered models)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = inv.inventory(get_context(ctx))
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    frame = inv.frame(rows)
    click.echo(frame.to_string(index=False) if not frame.empty else "No model is configured or registered.")
    for note in sorted({n for r in rows for n in r.notes}):
        click.echo(f"note: {note}")


@command.command("set")
@click.option("--model", "-m", required=True)
@click.option("--risk-tier", default=None, help="One of [controls] risk_tiers (default: prohibited, high, "
              "limited, minimal).")
@click.option("--owner", default=None, help="Who answers for the model.")
@click.option("--intended-use", default=None, help="One sentence: what the model is for.")
@click.option("--lifecycle-state", type=click.Choice(LIFECYCLE_STATES), default=None)
@click.pass_context
def set_cmd(ctx: click.Context, model: str, risk_tier: str | None, owner: str | None, intended_use: str | None,
            lifecycle_state: str | None) -> None:
    """Record profile keys of MODEL as tags of the registered model in MLflow; keys the config sets are
    refused (change them in vigil.toml). Acts as the VIGIL_TOKEN user."""
    values = {k: v for k, v in (("risk_tier", risk_tier), ("owner", owner), ("intended_use", intended_use),
                                ("lifecycle_state", lifecycle_state)) if v is not None}
    profile = inv.set_profile(get_context(ctx), cli_actor(ctx), model, values)
    click.echo(f"{model}: " + ", ".join(f"{k} = {profile.get(k)} ({profile.sources[k]})" for k in sorted(values)))
