"""``vigil users``: manage the built-in sign-in users and their API tokens (admin role, authenticated).

Passwords are Argon2id-hashed; API tokens are printed once and stored as hashes. Adding an annotator
also creates their Label Studio account (same password) when Label Studio is configured;
``vigil users label-studio-account NAME`` creates one later. On a store with no
users yet, ``vigil users add NAME --role admin`` needs no credentials: the local owner creates the first
admin; from then on every change acts as an authenticated admin (``VIGIL_TOKEN`` or a password prompt).
"""

from __future__ import annotations

import sys

import click

from dashboard.access import users as users_mod
from dashboard.access.roles import ROLES
from dashboard.commands.common import cli_actor, echo_json, get_context
from dashboard.learning.accounts import account_of, after_user_added
from dashboard.learning.accounts import create_account as create_ls_account
from dashboard.learning.annotation import client_for


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group("users")
def command() -> None:
    """Users of the built-in sign-in (file: settings users_file, env VIGIL_USERS_FILE)."""


@command.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The user's role.")
@click.option("--email", default="", help="E-mail (also maps an OIDC sign-in to this user's role).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def add_cmd(ctx: click.Context, name: str, role: str, email: str, password_stdin: bool) -> None:
    """Add user NAME with a role; the password is prompted for (or read with --password-stdin)."""
    context = get_context(ctx)
    actor = cli_actor(ctx, first_admin=role == "admin")
    password = _read_password(password_stdin)
    users_mod.add_user(context.settings.users_file, actor, name, role, password, email=email,
                       store=context.store)
    click.echo(f"Added {name} ({role}) to {context.settings.users_file}")
    if note := after_user_added(context, actor, name, role, password):  # an annotator's Label Studio account
        click.echo(note, err=True)


@command.command("label-studio-account")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def label_studio_account_cmd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Create the Label Studio account of user NAME, whose labels sync then credits to NAME.

    The password (prompted for, or read with --password-stdin) is the one NAME signs in to Label Studio
    with; it goes to Label Studio only. Needs VIGIL_LABEL_STUDIO_URL and VIGIL_LABEL_STUDIO_TOKEN.
    """
    context = get_context(ctx)
    actor = cli_actor(ctx)
    client = client_for(context)
    password = _read_password(password_stdin)
    had = account_of(context, client, name)
    account = create_ls_account(context, actor, client, name, password)
    if had is not None:
        click.echo(f"{name} already has the Label Studio account {account.email}; its password is unchanged")
    else:
        click.echo(f"Label Studio account {account.email} of {name}: sign in to {client.url} with it and that "
                   "password")


@command.command("remove")
@click.argument("name")
@click.pass_context
def remove_cmd(ctx: click.Context, name: str) -> None:
    """Remove user NAME."""
    context = get_context(ctx)
    users_mod.remove_user(context.settings.users_file, cli_actor(ctx), name, store=context.store)
    click.echo(f"Removed {name}")


@command.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_context
def set_role_cmd(ctx: click.Context, name: str, role: str) -> None:
    """Change the role of user NAME to ROLE."""
    context = get_context(ctx)
    users_mod.set_role(context.settings.users_file, cli_actor(ctx), name, role, store=context.store)
    click.echo(f"{name} is now {role}")


@command.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def set_password_cmd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password for user NAME."""
    context = get_context(ctx)
    actor = cli_actor(ctx)
    users_mod.set_password(context.settings.users_file, actor, name, _read_password(password_stdin),
                           store=context.store)
    click.echo(f"Password of {name} changed")


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List users and roles (never hashes)."""
    context = get_context(ctx)
    found = users_mod.load_users(context.settings.users_file)
    rows = [{"name": u.name, "role": u.role, "email": u.email, "created": u.created} for u in found.values()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"No users in {context.settings.users_file}; add one with `vigil users add admin --role admin`")
    for r in sorted(rows, key=lambda r: r["name"]):
        click.echo(f"{r['name']:<24} {r['role']:<15} {r['email']}")


@command.group("token")
def token_group() -> None:
    """API tokens: how scripts and cron jobs act as a Vigil user (pass one as VIGIL_TOKEN)."""


@token_group.command("create")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown in `token list`).")
@click.option("--expires-days", type=float, default=None, help="Expire after this many days (default: never).")
@click.pass_context
def token_create_cmd(ctx: click.Context, name: str, label: str, expires_days: float | None) -> None:
    """Create an API token for user NAME and print it once (only its hash is kept)."""
    context = get_context(ctx)
    token, record = users_mod.create_token(context.settings.users_file, cli_actor(ctx), name, label, expires_days,
                                           store=context.store)
    click.echo(token)
    click.echo(f"Token {record.id} of {name}" + (f", expires {record.expires}" if record.expires else "")
               + ": shown once, keep it secret (e.g. in your CI's secret store as VIGIL_TOKEN).", err=True)


@token_group.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def token_list_cmd(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List API tokens (ids, owners, dates; never the tokens)."""
    context = get_context(ctx)
    rows = [{"id": t.id, "user": u.name, "label": t.label, "created": t.created, "expires": t.expires or "never"}
            for u in users_mod.load_users(context.settings.users_file).values() if not name or u.name == name
            for t in u.tokens]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No API tokens.")
    for r in rows:
        click.echo(f"{r['id']}  {r['user']:<24} created {r['created']}  expires {r['expires']}  {r['label']}")


@token_group.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke_cmd(ctx: click.Context, token_id: str) -> None:
    """Revoke the API token TOKEN_ID (its owner or an admin)."""
    context = get_context(ctx)
    owner = users_mod.revoke_token(context.settings.users_file, cli_actor(ctx), token_id, store=context.store)
    click.echo(f"Revoked token {token_id} of {owner}")
