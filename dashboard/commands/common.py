"""Helpers shared by the ``vigil`` sub-commands: context loading, error mapping, JSON output."""

from __future__ import annotations

import getpass
import json
import math
import os
import socket
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from connectors.windows import RELATIVE_WINDOW, Window, WindowError, parse_window
from dashboard import progress
from dashboard.access.roles import Actor
from dashboard.commands.progress_line import TerminalLine
from dashboard.context import Context, load_context
from dashboard.errors import USER_ERRORS, VigilError


def get_context(ctx: click.Context) -> Context:
    """The Context for this invocation, loaded once from ``--config``/``VIGIL_CONFIG``."""
    root = ctx.find_root()
    root.ensure_object(dict)
    if "context" not in root.obj:
        root.obj["context"] = load_context(root.obj.get("config_path"))
        from dashboard.audit import checkpoints

        checkpoints.bind(root.obj["context"])  # entries this command records are anchored where it says
    ctx_obj: Context = root.obj["context"]
    return ctx_obj


def window_option(text: str | None, default: str | None = None) -> Window | None:
    """Parse a FROM..TO option, turning a bad value into a usage error that names the format."""
    value = text or default
    if value is None:
        return None
    try:
        return parse_window(value)
    except WindowError as exc:
        raise click.BadParameter(str(exc)) from None


def analysis_window(context: Context, model: str, text: str, version: str | None = None) -> Window:
    """The window of an analysis command. A relative window (``7d``) ends at the model's latest logged
    prediction, so it judges the most recent data there is (as ``vigil check`` does) even when logs arrive
    late or a workspace holds past data; with no logs it ends now. ``FROM..TO`` is taken as written."""
    from connectors.queries.operations import time_range  # pandas: not for commands that never need it

    anchor = None
    if RELATIVE_WINDOW.match((text or "").strip()):
        schema = context.schema(model)
        if context.has_logs(model):
            with context.connect(model) as con:
                anchor = time_range(con, schema, version)[1]
    try:
        return parse_window(text, now=anchor + timedelta(microseconds=1) if anchor is not None else None)
    except WindowError as exc:
        raise click.BadParameter(str(exc)) from None


#: Help text of a window option whose relative form ends at the latest logged prediction.
WINDOW_HELP = ("FROM..TO (ISO dates or times, TO date inclusive) or a relative window such as 7d / 24h, "
               "which ends at the model's latest logged prediction.")


def to_jsonable(obj: Any) -> Any:
    """Make analytics results JSON-safe: NaN/inf become null, dates ISO strings, frames records."""
    import pandas as pd

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return to_jsonable(obj.item())
    if hasattr(obj, "__dataclass_fields__"):
        return to_jsonable({k: getattr(obj, k) for k in obj.__dataclass_fields__})
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def write_whole(output: Path, data: bytes) -> None:
    """Write ``data`` to ``output`` (a Path) whole or not at all: a partial file is renamed into place."""
    tmp = output.with_name(f".{output.name}.partial")
    try:
        tmp.write_bytes(data)
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {output}: {exc.strerror}; choose a writable path") from None


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), indent=2, sort_keys=False))


def run_cli(group: click.Group, argv: Sequence[str] | None) -> int:
    """Run the group; user-caused errors print one message and exit 2. On a terminal, stderr shows the
    step in progress (:mod:`dashboard.commands.progress_line`)."""
    with progress.reporting(TerminalLine.for_stderr()):
        return _run(group, argv)


def _run(group: click.Group, argv: Sequence[str] | None) -> int:
    try:
        # Without standalone mode, click returns ctx.exit(code) codes instead of raising them.
        code = group.main(args=list(argv) if argv is not None else None, prog_name="vigil", standalone_mode=False)
        if isinstance(code, int):
            return code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except USER_ERRORS as exc:
        click.echo(f"Error: {exc}", err=True)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    return 0


IGNORED_IDENTITY_ENV: tuple[str, ...] = ("VIGIL_ROLE", "VIGIL_ACTOR")


def cli_actor(ctx: click.Context | None = None, *, first_admin: bool = False) -> Actor:
    """The Vigil user a state-changing command acts as, authenticated.

    ``VIGIL_TOKEN`` (an API token, see ``vigil users token create``) names the user; without it, in a
    terminal, the command asks for a user name and password (with the same lockout as the app). The role
    always comes from the users file; ``VIGIL_ROLE``/``VIGIL_ACTOR`` grant nothing. ``first_admin``: a
    store with no users yet lets the local owner (whoever can run Vigil on its data folder) create the
    first admin.
    """
    context = get_context(ctx or click.get_current_context())
    from dashboard.access.users import actor_for_token, authenticate, load_users

    users_file = context.settings.users_file
    ignored = [k for k in IGNORED_IDENTITY_ENV if os.environ.get(k)]
    if ignored:
        click.echo(f"Note: {' and '.join(ignored)} grant nothing; the CLI acts as the user of VIGIL_TOKEN "
                   "or of the password you type", err=True)
    token = os.environ.get("VIGIL_TOKEN")
    if token:
        return actor_for_token(users_file, token)
    if first_admin and not load_users(users_file):
        return Actor(f"{getpass.getuser()} (local owner)", "admin")
    if sys.stdin.isatty():
        name = str(click.prompt("Vigil user", err=True)).strip()
        password = str(click.prompt("Password", hide_input=True, err=True))
        return authenticate(users_file, name, password, store=context.store, address=f"cli@{socket.gethostname()}")
    raise VigilError("this command changes state, so it acts as a Vigil user: set VIGIL_TOKEN to an API token "
                     "(created once with `vigil users token create NAME`), or run it in a terminal to sign in "
                     "with your password")


def reader_actor(ctx: click.Context | None = None) -> Actor | None:
    """Who runs a read-only command: the token's user when ``VIGIL_TOKEN`` is set, else nobody (reads
    need no credentials; the audit trail records them as unauthenticated)."""
    return cli_actor(ctx) if os.environ.get("VIGIL_TOKEN") else None
