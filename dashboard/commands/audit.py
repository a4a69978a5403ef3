"""``vigil audit``: verify the hash chain against its signed checkpoints, write a checkpoint, print the
head (to anchor it elsewhere too), list entries."""

from __future__ import annotations

import click

from dashboard.audit import anchor
from dashboard.audit import trail as audit
from dashboard.commands.common import cli_actor, echo_json, get_context, window_option
from dashboard.errors import PermissionDenied, VigilError


@click.group("audit")
def command() -> None:
    """The tamper-evident audit trail of every state-changing action."""


def _expected_head(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    count, _, digest = text.partition(":")
    if not count.isdigit() or len(digest) != 64:
        raise click.BadParameter("use N:HASH as printed by `vigil audit head`", param_hint="--expect-head")
    return int(count), digest


def _verdict(result: anchor.AnchoredVerification) -> str:
    if not result.ok:
        return "FAILED: "
    return "OK: audit trail intact: " if result.anchored else "OK (not anchored): "


@command.command("verify")
@click.option("--expect-head", default=None, metavar="N:HASH",
              help="An anchor kept outside Vigil (from `vigil audit head`): the trail must still end there.")
@click.option("--require-anchor", is_flag=True,
              help="Exit 1 when no checkpoint anchors the trail (for CI and cron).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, expect_head: str | None, require_anchor: bool, as_json: bool) -> None:
    """Recompute every hash and hold the chain against its newest signed checkpoint; exit 1 naming what
    is wrong (an altered, deleted or inserted entry, a cut tail or head, an emptied or re-hashed trail,
    a forged or missing checkpoint)."""
    result = anchor.verify(get_context(ctx), expected_head=_expected_head(expect_head))
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(_verdict(result) + result.message)
        for note in result.notes:
            click.echo(f"  note: {note}")
    ctx.exit(0 if result.ok and (result.anchored or not require_anchor) else 1)


@command.command("checkpoint")
@click.option("--restart", "restart", default=None, metavar="REASON",
              help="The old checkpoints are lost or unusable for good (file deleted, key changed): set them "
                   "aside and anchor the trail as it is now; an admin only, recorded in the trail.")
@click.pass_context
def checkpoint_cmd(ctx: click.Context, restart: str | None) -> None:
    """Sign the trail's head now (checkpoint file and MLflow experiment tags); refuses on a trail that
    fails verification. Run it from cron to bound how long new entries stay unanchored."""
    context = get_context(ctx)
    actor = None
    if restart:
        actor = cli_actor()
        if actor.role != "admin":
            raise PermissionDenied(f"{actor.name} ({actor.role}) may not restart the audit checkpoints; "
                                   "it needs the admin role")
    try:
        written = anchor.checkpoint(context, restart=restart, actor=actor or "vigil")
    except VigilError as exc:
        click.echo(f"FAILED: {exc}")
        ctx.exit(1)
        return
    cp = written.checkpoint
    click.echo(f"checkpoint written: entry #{cp.entries} ({cp.last_hash[:16]}…) at {cp.when} to {written.file}")
    if written.tagged:
        click.echo(f"  copied to the MLflow experiment(s): {', '.join(written.tagged)}")
    for problem in written.problems:
        click.echo(f"  warning: {problem}; run the command again when MLflow answers", err=True)


@command.command("head")
@click.pass_context
def head_cmd(ctx: click.Context) -> None:
    """Print N:HASH (entries and last hash); keep it elsewhere and pass it to `verify --expect-head`."""
    count, digest = audit.head(get_context(ctx).store)
    click.echo(f"{count}:{digest}")


@command.command("list")
@click.option("--actor", default=None, help="Only this actor.")
@click.option("--action", default=None, help="Only actions starting with this (e.g. model.).")
@click.option("--target", default=None, help="Only this target (e.g. a model name).")
@click.option("--window", "window_text", default=None, help="FROM..TO (ISO dates, TO inclusive) or 7d / 24h.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, actor: str | None, action: str | None, target: str | None,
             window_text: str | None, limit: int, as_json: bool) -> None:
    """Show the newest entries first."""
    window = window_option(window_text)
    frame = audit.entries(get_context(ctx).store, actor=actor, action=action, target=target,
                          since=window.start if window else None, until=window.end if window else None,
                          limit=limit)
    if as_json:
        echo_json(frame)
        return
    for row in frame.itertuples():
        click.echo(f"#{row.seq:<5} {row.ts:%Y-%m-%d %H:%M:%S}  {row.actor} ({row.role})  {row.action}  "
                   f"{row.target}  {row.details}")
