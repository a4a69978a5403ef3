"""``vigil audit``: verify the hash chain, print its head (to anchor it elsewhere), list entries."""

from __future__ import annotations

import click

from dashboard.audit import trail as audit
from dashboard.commands.common import echo_json, get_context, window_option


@click.group("audit")
def command() -> None:
    """The tamper-evident audit trail of every state-changing action."""


@command.command("verify")
@click.option("--expect-head", default=None, metavar="N:HASH",
              help="An anchor kept outside Vigil (from `vigil audit head`): the trail must still end there.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, expect_head: str | None, as_json: bool) -> None:
    """Recompute every hash; exit 1 and name the first bad entry if the trail was altered."""
    context = get_context(ctx)
    anchor = None
    if expect_head:
        count, _, digest = expect_head.partition(":")
        if not count.isdigit() or len(digest) != 64:
            raise click.BadParameter("use N:HASH as printed by `vigil audit head`", param_hint="--expect-head")
        anchor = (int(count), digest)
    result = audit.verify(context.store, expected_head=anchor)
    if as_json:
        echo_json({"ok": result.ok, "entries": result.entries, "first_bad_seq": result.first_bad_seq,
                   "message": result.message, "last_hash": result.last_hash})
    else:
        click.echo(("OK: " if result.ok else "FAILED: ") + result.message)
    ctx.exit(0 if result.ok else 1)


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
