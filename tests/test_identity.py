"""No identity is self-declared: API tokens for the CLI, signed sessions for the app, lockout per account and
per client address. Real users file, real DuckDB store, the real CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard.access import lockout, sessions, users
from dashboard.access.roles import Actor
from dashboard.audit import trail
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.errors import PermissionDenied
from tests.conftest import DEMO_CONFIG
from tests.fixtures.access import PASSWORD, token_for

ADMIN = Actor("root-setup", "admin")


@pytest.fixture
def users_file(ctx: Context) -> Path:
    return ctx.settings.users_file


# ------------------------------------------------------------------------------------------ tokens

def test_a_token_acts_as_its_user_with_the_role_the_file_gives_now(users_file: Path, ctx: Context) -> None:
    users.add_user(users_file, ADMIN, "ci", "data_scientist", PASSWORD)
    token, record = users.create_token(users_file, ADMIN, "ci", label="nightly", expires_days=30)
    assert token.startswith("vgl_") and record.id in token
    assert users.actor_for_token(users_file, token) == Actor("ci", "data_scientist")
    text = users_file.read_text()
    secret = token.split("_", 2)[2]  # vgl_<id>_<secret>; the secret itself may hold "_"
    assert secret not in text and record.secret_hash in text  # only the hash is kept
    users.set_role(users_file, ADMIN, "ci", "annotator")
    assert users.actor_for_token(users_file, token).role == "annotator"
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "vgl_000000000000_" + "x" * 43, "hunter2"):
        with pytest.raises(users.SignInFailed):
            users.actor_for_token(users_file, bad)
    users.revoke_token(users_file, ADMIN, record.id, store=ctx.store)
    with pytest.raises(users.SignInFailed, match="unknown or revoked"):
        users.actor_for_token(users_file, token)
    assert {"users.token_revoke"} <= set(trail.entries(ctx.store)["action"])


def test_expired_tokens_and_removed_users_grant_nothing(users_file: Path) -> None:
    users.add_user(users_file, ADMIN, "temp", "admin", PASSWORD)
    token, record = users.create_token(users_file, ADMIN, "temp", expires_days=1)
    found = users.load_users(users_file)["temp"]
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="seconds")
    users.save_users(users_file, {**users.load_users(users_file),
                                  "temp": replace(found, tokens=(replace(record, expires=past),))})
    with pytest.raises(users.SignInFailed, match="expired"):
        users.actor_for_token(users_file, token)
    fresh, _ = users.create_token(users_file, ADMIN, "temp")
    users.remove_user(users_file, ADMIN, "temp")
    with pytest.raises(users.SignInFailed):
        users.actor_for_token(users_file, fresh)


def test_only_admins_make_tokens_for_others(users_file: Path) -> None:
    users.add_user(users_file, ADMIN, "ann", "annotator", PASSWORD)
    users.add_user(users_file, ADMIN, "max", "manager", PASSWORD)
    with pytest.raises(PermissionDenied):
        users.create_token(users_file, Actor("ann", "annotator"), "max")
    own, record = users.create_token(users_file, Actor("ann", "annotator"), "ann")  # one's own: allowed
    with pytest.raises(PermissionDenied):
        users.revoke_token(users_file, Actor("max", "manager"), record.id)
    assert users.actor_for_token(users_file, own).name == "ann"


# ---------------------------------------------------------------------------------------------- CLI

def _cli(settings_env: dict[str, str], args: list[str], monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str, str]:
    import io
    import sys

    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = run_cli(cli, args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli_env(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in ("VIGIL_TOKEN", "VIGIL_ROLE", "VIGIL_ACTOR"):
        monkeypatch.delenv(key, raising=False)
    return {"VIGIL_CONFIG": str(DEMO_CONFIG), "VIGIL_DATA_DIR": str(ctx.settings.data_dir)}


def test_a_declared_role_grants_nothing(cli_env: dict[str, str], users_file: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    users.add_user(users_file, ADMIN, "manager", "manager", PASSWORD)
    before = users_file.read_text()
    env = {**cli_env, "VIGIL_ROLE": "admin"}
    code, _, err = _cli(env, ["users", "add", "x", "--role", "admin", "--password-stdin"], monkeypatch, capsys,
                        stdin="another-long-password\n")
    assert code == 2 and "VIGIL_TOKEN" in err and "grant nothing" in err
    env = {**cli_env, "VIGIL_ROLE": "annotator", "VIGIL_ACTOR": "manager"}
    code, _, err = _cli(env, ["users", "set-password", "manager", "--password-stdin"], monkeypatch, capsys,
                        stdin="attacker-password\n")
    assert code == 2 and "VIGIL_TOKEN" in err
    assert users_file.read_text() == before  # nothing changed
    with pytest.raises(users.SignInFailed):
        users.authenticate(users_file, "manager", "attacker-password")


def test_the_local_owner_creates_the_first_admin_then_tokens_rule(cli_env: dict[str, str], users_file: Path,
                                                                  ctx: Context, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(cli_env, ["users", "add", "ann", "--role", "annotator", "--password-stdin"], monkeypatch,
                        capsys, stdin="ann-long-password\n")
    assert code == 2, "the first user must be an admin"
    code, out, err = _cli(cli_env, ["users", "add", "boss", "--role", "admin", "--password-stdin"], monkeypatch,
                          capsys, stdin="boss-long-password\n")
    assert code == 0, err
    again = _cli(cli_env, ["users", "add", "eve", "--role", "admin", "--password-stdin"], monkeypatch, capsys,
                 stdin="eve-long-password\n")
    assert again[0] == 2 and "VIGIL_TOKEN" in again[2]  # only while there are no users at all
    entry = trail.entries(ctx.store, action="users.add").iloc[0]
    assert entry["actor"].endswith("(local owner)")
    token = token_for(users_file, "boss")
    code, out, err = _cli({**cli_env, "VIGIL_TOKEN": token}, ["users", "token", "create", "boss", "--label", "ci"],
                          monkeypatch, capsys)
    assert code == 0 and out.strip().startswith("vgl_") and "shown once" in err
    listed = _cli({**cli_env, "VIGIL_TOKEN": token}, ["users", "token", "list", "--json"], monkeypatch, capsys)
    rows = json.loads(listed[1])
    assert len(rows) == 2 and all("hash" not in r for r in rows) and out.strip() not in listed[1]
    code, _, err = _cli({**cli_env, "VIGIL_TOKEN": out.strip()}, ["users", "add", "ann", "--role", "annotator",
                                                                  "--password-stdin"], monkeypatch, capsys,
                        stdin="ann-long-password\n")
    assert code == 0, err
    ann = token_for(users_file, "ann")
    code, _, err = _cli({**cli_env, "VIGIL_TOKEN": ann}, ["users", "remove", "boss"], monkeypatch, capsys)
    assert code == 2 and "users.manage" in err
    rid = rows[0]["id"]
    assert _cli({**cli_env, "VIGIL_TOKEN": token}, ["users", "token", "revoke", rid], monkeypatch, capsys)[0] == 0


def test_read_only_commands_need_no_credentials(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["audit", "verify"], env=cli_env)
    assert "VIGIL_TOKEN" not in result.output
    result = CliRunner().invoke(cli, ["config", "check"], env=cli_env)
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------- sessions

def test_a_session_token_is_signed_expires_and_follows_the_account(users_file: Path, ctx: Context) -> None:
    key = sessions.session_key(ctx.settings.data_dir, {})
    assert (ctx.settings.data_dir / sessions.KEY_FILE).stat().st_mode & 0o077 == 0
    users.add_user(users_file, ADMIN, "dana", "data_scientist", PASSWORD)
    dana = users.load_users(users_file)["dana"]
    token = sessions.issue(key, dana)
    assert sessions.restore(key, token, users_file, ctx.store) == Actor("dana", "data_scientist")
    payload, _, sig = token.partition(".")
    assert sessions.restore(key, payload + "." + sig[:-1] + ("0" if sig[-1] != "0" else "1"), users_file) is None
    forged = sessions.issue(b"another key", dana)
    assert sessions.restore(key, forged, users_file) is None
    old = sessions.issue(key, dana, now=datetime.now(UTC) - timedelta(hours=sessions.SESSION_HOURS + 1))
    assert sessions.restore(key, old, users_file) is None
    users.set_role(users_file, ADMIN, "dana", "manager")
    assert sessions.restore(key, token, users_file, ctx.store) == Actor("dana", "manager")
    sessions.revoke(ctx.store, key, token)
    assert sessions.restore(key, token, users_file, ctx.store) is None  # signed out: a copied cookie is dead
    second = sessions.issue(key, users.load_users(users_file)["dana"])
    users.set_password(users_file, ADMIN, "dana", "a-brand-new-password")
    assert sessions.restore(key, second, users_file, ctx.store) is None  # a password change ends sessions
    third = sessions.issue(key, users.load_users(users_file)["dana"])
    users.remove_user(users_file, ADMIN, "dana")
    assert sessions.restore(key, third, users_file, ctx.store) is None
    assert sessions.revalidate(users_file, Actor("dana", "manager")) is None


# ----------------------------------------------------------------------------------------- lockout

def test_lock_schedule() -> None:
    now = datetime(2026, 10, 1, 12, 0)
    few = [now - timedelta(minutes=m) for m in (1, 2, 3, 4)]
    assert lockout.lock_for(few, now) is None
    five = [*few, now]
    assert lockout.lock_for(five, now) == now + lockout.FIRST_LOCK
    seven = [*five, now, now]
    assert lockout.lock_for(seven, now) == now + 4 * lockout.FIRST_LOCK
    many = [now] * 40
    assert lockout.lock_for(many, now) == now + lockout.MAX_LOCK
    stale = [now - lockout.WINDOW - timedelta(seconds=1)] * 10
    assert lockout.lock_for(stale, now) is None


def test_lockout_per_account_and_per_address_survives_a_new_process(users_file: Path, ctx: Context) -> None:
    users.add_user(users_file, ADMIN, "mia", "manager", PASSWORD)
    users.add_user(users_file, ADMIN, "max", "manager", PASSWORD)
    for _ in range(lockout.MAX_FAILURES):
        with pytest.raises(users.SignInFailed, match="wrong"):
            users.authenticate(users_file, "mia", "guess", store=ctx.store, address="10.0.0.1")
    fresh = Context(ctx.settings)  # another app process or a reload: the count is in the store
    with pytest.raises(users.SignInFailed, match="too many failed sign-ins for this account"):
        users.authenticate(users_file, "mia", PASSWORD, store=fresh.store, address="10.0.0.2")
    with pytest.raises(users.SignInFailed, match="too many failed sign-ins for this address"):
        users.authenticate(users_file, "max", PASSWORD, store=fresh.store, address="10.0.0.1")
    assert users.authenticate(users_file, "max", PASSWORD, store=fresh.store, address="10.0.0.3").name == "max"
    actions = list(trail.entries(ctx.store)["action"])
    assert actions.count("signin.failed") == lockout.MAX_FAILURES and actions.count("signin.locked") == 2
