"""Built-in users and sign-in: Argon2 hashes in the users file, CLI management, audited failures, the form."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from dashboard.access.roles import Actor
from dashboard.access.users import (
    DEMO_USERS,
    SignInFailed,
    UserError,
    add_user,
    authenticate,
    ensure_demo_users,
    load_users,
    remove_user,
    role_for_email,
    set_role,
)
from dashboard.audit import trail as audit
from dashboard.cli import cli
from dashboard.errors import PermissionDenied
from dashboard.settings import Settings
from tests.conftest import DEMO_CONFIG, REPO
from tests.fixtures.access import token_for

ADMIN = Actor("root", "admin")


def test_add_stores_a_hash_never_the_password(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, ADMIN, "alice", "manager", "correct horse battery")
    text = path.read_text()
    assert "correct horse battery" not in text
    assert "$argon2id$" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_users(path)["alice"].role == "manager"
    assert authenticate(path, "alice", "correct horse battery") == Actor("alice", "manager")


def test_wrong_password_and_unknown_user_fail_the_same_way_and_are_audited(tmp_path: Path, store) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "users.toml"
    add_user(path, ADMIN, "alice", "manager", "correct horse battery")
    for name, password in (("alice", "wrong password"), ("nobody", "whatever123")):
        with pytest.raises(SignInFailed, match="wrong user name or password"):
            authenticate(path, name, password, store=store)
    failed = audit.entries(store, action="signin.failed")
    assert sorted(failed["actor"]) == ["alice", "nobody"]
    assert audit.verify(store).ok


def test_management_rules(tmp_path: Path, store) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "users.toml"
    with pytest.raises(PermissionDenied):
        add_user(path, Actor("m", "manager"), "bob", "admin", "password123")
    with pytest.raises(UserError, match="at least"):
        add_user(path, ADMIN, "bob", "admin", "short")
    with pytest.raises(UserError, match="not a role"):
        add_user(path, ADMIN, "bob", "owner", "password123")
    with pytest.raises(UserError, match="not a valid user name"):
        add_user(path, ADMIN, "<script>", "admin", "password123")
    add_user(path, ADMIN, "bob", "annotator", "password123", store=store)
    with pytest.raises(UserError, match="already exists"):
        add_user(path, ADMIN, "bob", "admin", "password123")
    set_role(path, ADMIN, "bob", "data_scientist", store=store)
    assert load_users(path)["bob"].role == "data_scientist"
    remove_user(path, ADMIN, "bob", store=store)
    assert load_users(path) == {}
    assert list(audit.entries(store)["action"])[::-1] == ["users.add", "users.set_role", "users.remove"]


def test_demo_users_are_created_once(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    assert sorted(ensure_demo_users(path)) == sorted(DEMO_USERS)
    assert ensure_demo_users(path) == []
    for name, (role, password) in DEMO_USERS.items():
        assert authenticate(path, name, password).role == role


def test_role_for_email(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, ADMIN, "carol", "manager", "password123", email="Carol@Example.com")
    assert role_for_email("carol@example.com", path) == "manager"
    mapping = {"dave@example.com": "annotator", "*@corp.example": "data_scientist"}
    assert role_for_email("dave@example.com", path, mapping) == "annotator"
    assert role_for_email("erin@corp.example", path, mapping) == "data_scientist"
    assert role_for_email("mallory@evil.example", path, mapping) is None
    with pytest.raises(PermissionDenied):
        role_for_email("x@example.com", path, {"x@example.com": "god"})


def test_cli_users_round_trip(settings: Settings) -> None:
    env = {"VIGIL_CONFIG": str(DEMO_CONFIG)}
    runner = CliRunner()
    # No users yet: the local owner creates the first admin without credentials.
    result = runner.invoke(cli, ["users", "add", "admin", "--role", "admin", "--password-stdin"],
                           input="s3cret-pass\n", env=env)
    assert result.exit_code == 0, result.output
    env["VIGIL_TOKEN"] = token_for(settings.users_file, "admin")
    result = runner.invoke(cli, ["users", "add", "ann", "--role", "annotator", "--password-stdin"],
                           input="ann-password\n", env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["users", "set-role", "ann", "manager"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["users", "list"], env=env)
    assert "ann" in result.output and "manager" in result.output and "argon2" not in result.output
    assert authenticate(settings.users_file, "admin", "s3cret-pass").role == "admin"
    manager = token_for(settings.users_file, "ann")
    denied = runner.invoke(cli, ["users", "remove", "admin"], env={**env, "VIGIL_TOKEN": manager})
    assert denied.exit_code != 0 and "admin" in load_users(settings.users_file)
    result = runner.invoke(cli, ["users", "remove", "ann"], env=env)
    assert result.exit_code == 0
    assert "ann" not in load_users(settings.users_file)


# ------------------------------------------------------------------------------------------ the form

def _app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    import streamlit as st

    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    st.cache_resource.clear()
    st.cache_data.clear()
    return AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)


def test_first_run_message_without_users(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(settings, monkeypatch).run()
    assert not at.exception
    assert any("vigil users add admin --role admin" in c.value for c in at.code)
    assert not at.text_input


def test_sign_in_form_and_roles(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_demo_users(settings.users_file)
    at = _app(settings, monkeypatch).run()
    labels = [t.label for t in at.text_input]
    assert labels == ["Username", "Password"]
    at.text_input[0].input("annotator")
    at.text_input[1].input("not-the-password")
    at.button[0].click().run()
    assert any("Wrong user name or password" in e.value for e in at.error)
    assert "user" not in at.session_state
    at.text_input[0].input("annotator")
    at.text_input[1].input(DEMO_USERS["annotator"][1])
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["user"] == {"name": "annotator", "role": "annotator", "method": "password"}
    store = settings_store(settings)
    actions = list(audit.entries(store)["action"])
    assert actions[::-1] == ["signin.failed", "signin"]


def settings_store(settings: Settings):  # type: ignore[no-untyped-def]
    from connectors.logstore import LogStore

    return LogStore(settings.duckdb_path)


def test_oidc_configured_shows_the_provider_button(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(settings, monkeypatch)
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "vigil", "client_secret": "s",
                          "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert not at.text_input  # no password form with an identity provider
    assert [b.label for b in at.button] == ["Sign in"]
    assert "user" not in at.session_state
