"""``vigil users``: manage the built-in sign-in users (admin role; passwords are Argon2id-hashed)."""

from __future__ import annotations

import sys

import click

from dashboard.access import users as users_mod
from dashboard.access.roles import ROLES
from dashboard.commands.common import cli_actor, echo_json, get_context


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
    password = _read_password(password_stdin)
    users_mod.add_user(context.settings.users_file, cli_actor(), name, role, password, email=email,
                       store=context.store)
    click.echo(f"Added {name} ({role}) to {context.settings.users_file}")


@command.command("remove")
@click.argument("name")
@click.pass_context
def remove_cmd(ctx: click.Context, name: str) -> None:
    """Remove user NAME."""
    context = get_context(ctx)
    users_mod.remove_user(context.settings.users_file, cli_actor(), name, store=context.store)
    click.echo(f"Removed {name}")


@command.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_context
def set_role_cmd(ctx: click.Context, name: str, role: str) -> None:
    """Change the role of user NAME to ROLE."""
    context = get_context(ctx)
    users_mod.set_role(context.settings.users_file, cli_actor(), name, role, store=context.store)
    click.echo(f"{name} is now {role}")


@command.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def set_password_cmd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password for user NAME."""
    context = get_context(ctx)
    users_mod.set_password(context.settings.users_file, cli_actor(), name, _read_password(password_stdin),
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
