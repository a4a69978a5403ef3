"""Annotators credited as themselves, against a real Label Studio: Vigil creates each annotator's Label
Studio account, and label sync credits labels and agreement to the Vigil user names."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.labelstudio import LabelStudioError
from dashboard.access.roles import Actor
from dashboard.access.users import load_users
from dashboard.errors import PermissionDenied, VigilError
from dashboard.learning import accounts, annotation
from tests.fixtures.access import ensure_user, token_for
from tests.fixtures.app import free_port
from tests.fixtures.labelstudio import user_token
from tests.test_labelstudio import current_label, ingest_logs, project_tasks, select, workspace

pytestmark = pytest.mark.labelstudio


def trail(ctx, action: str):
    """The audit entries of ``action`` (none while nothing was audited yet)."""
    if ctx.store.query_df("SELECT * FROM duckdb_tables() WHERE table_name = 'audit_log'").empty:
        return ctx.store.query_df("SELECT NULL AS actor, NULL AS target, NULL AS details WHERE false")
    return ctx.store.query_df("SELECT actor, target, details FROM audit_log WHERE action = ? ORDER BY seq", [action])


def annotators(ctx, model: str, *names: str) -> list[Actor]:
    """Vigil annotators with names unique to this test (one Label Studio serves the whole session)."""
    suffix = model.rsplit("-", 1)[1]
    found = [Actor(f"{n}-{suffix}", "annotator") for n in names]
    for actor in found:
        ensure_user(ctx.settings.users_file, actor.name, actor.role)
    return found


def test_labels_and_agreement_are_credited_to_vigil_users(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    client = annotation.client_for(ctx)
    a, b = annotators(ctx, model, "ann", "bob")
    a_pw, b_pw = f"{a.name}-password", f"{b.name}-password"
    ann = accounts.create_account(ctx, a, client, a.name, a_pw)
    assert ann.email == f"{a.name}@vigil.local"
    assert accounts.create_account(ctx, a, client, a.name, "ignored-now") == ann  # made once
    bob = accounts.create_account(ctx, b, client, b.name, b_pw)
    assert client.users()[ann.ls_user_id] == ann.email and client.users()[bob.ls_user_id] == bob.email

    entries = trail(ctx, "labelstudio.account_create")
    assert list(entries["actor"]) == list(entries["target"]) == [a.name, b.name]
    assert a_pw not in entries.to_string() and b_pw not in entries.to_string()

    ingest_logs(ctx, model, tmp_path, n=20, seed=41)
    report = annotation.queue_and_send(ctx, a, model, select(ctx, model, budget=2), client)
    tasks = project_tasks(ctx, model, client)
    first, second = sorted(tasks)
    as_ann = annotation.client_for(ctx, token=user_token(labelstudio_server.url, ann.email, a_pw))
    as_bob = annotation.client_for(ctx, token=user_token(labelstudio_server.url, bob.email, b_pw))
    as_ann.annotate(tasks[first][0], "good")
    as_bob.annotate(tasks[first][0], "good")
    as_ann.annotate(tasks[second][0], "bad")
    as_bob.annotate(tasks[second][0], "bad")
    client.annotate(tasks[second][0], "good")  # the Label Studio admin, who is no Vigil user
    synced = annotation.sync_labels(ctx, b, model, client)
    assert report.imported == 2 and synced.labelled == 2

    assert (current_label(ctx, model, first), current_label(ctx, model, second)) == ("good", "bad")
    credited = ctx.store.query_df("SELECT DISTINCT annotator FROM current_labels WHERE model_name = ?", [model])
    assert list(credited["annotator"]) == [f"{a.name}, {b.name}"]
    progress = annotation.annotator_progress(ctx, model).set_index("annotator")
    assert set(progress.index) == {a.name, b.name, labelstudio_server.username}
    assert progress.loc[a.name, "labelled"] == progress.loc[b.name, "labelled"] == 2
    assert progress.loc[a.name, "agreement_with_majority"] == 1.0
    assert progress.loc[labelstudio_server.username, "agreement_with_majority"] == 0.0


def test_an_account_vigil_did_not_make_is_not_credited_and_roles_are_checked(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    client = annotation.client_for(ctx)
    eve, other = annotators(ctx, model, "eve", "other")
    made = client.create_account(f"{eve.name}@vigil.local", "someone-elses-pw")  # by hand, with the invitation
    with pytest.raises(VigilError, match="that Vigil did not create"):
        accounts.create_account(ctx, eve, client, eve.name, "a-good-password")
    assert accounts.account_of(ctx, client, eve.name) is None
    assert accounts.author_names(ctx, client)[made] == f"{eve.name}@vigil.local"  # credited as that, not eve

    with pytest.raises(PermissionDenied):
        accounts.create_account(ctx, eve, client, other.name, "a-good-password")  # not for someone else
    with pytest.raises(PermissionDenied):
        accounts.create_account(ctx, Actor("max", "manager"), client, "max", "a-good-password")
    with pytest.raises(VigilError, match="at least 8"):
        accounts.create_account(ctx, other, client, other.name, "short")
    assert trail(ctx, "labelstudio.account_create").empty


def users_cli(ctx, env: dict[str, str], password: str):
    """``vigil users ...`` in a subprocess as the admin ``root``, the password on stdin."""
    vigil = str(Path(sys.executable).with_name("vigil"))
    admin = token_for(ctx.settings.users_file, "root", "admin")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([vigil, "users", *args, "--password-stdin"], input=password + "\n",
                              env={**os.environ, **env, "VIGIL_TOKEN": admin, **extra}, capture_output=True,
                              text=True, timeout=300, check=False)

    return run


def test_users_add_annotator_creates_the_label_studio_account(labelstudio_server, tmp_path):
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    name = f"carl-{model.rsplit('-', 1)[1]}"
    password = "carls-own-password"
    cli = users_cli(ctx, env, password)

    def add(user: str, role: str) -> subprocess.CompletedProcess[str]:
        return cli("add", user, "--role", role)

    done = add(name, "annotator")
    assert done.returncode == 0, done.stderr
    email = f"{name}@vigil.local"
    assert f"Label Studio account {email} made for {name}" in done.stderr
    assert password not in done.stdout + done.stderr and labelstudio_server.token not in done.stdout + done.stderr
    client = annotation.client_for(ctx)
    account = accounts.account_of(ctx, client, name)
    assert account is not None and account.email == email
    assert user_token(labelstudio_server.url, email, password)  # signs in with the same password
    entry = trail(ctx, "labelstudio.account_create")
    assert list(entry["actor"]) == ["root"] and list(entry["target"]) == [name]

    scientist = add(f"sci-{name}", "data_scientist")  # only annotators get one this way
    assert scientist.returncode == 0 and "Label Studio" not in scientist.stderr
    assert accounts.account_of(ctx, client, f"sci-{name}") is None


def test_users_add_with_label_studio_down_keeps_the_user_and_says_how_to_make_the_account(labelstudio_server,
                                                                                         tmp_path):
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    name = f"dora-{model.rsplit('-', 1)[1]}"
    password = "doras-own-password"
    cli = users_cli(ctx, env, password)
    dead = f"http://127.0.0.1:{free_port()}"

    done = cli("add", name, "--role", "annotator", VIGIL_LABEL_STUDIO_URL=dead)
    assert done.returncode == 0, done.stderr
    assert load_users(ctx.settings.users_file)[name].role == "annotator"  # the Vigil user is added all the same
    note = done.stderr
    assert f"No Label Studio account made for {name} (the Vigil user is added)" in note
    assert "not reachable" in note and f"`vigil users label-studio-account {name}`" in note
    assert "Annotation queue page" in note
    assert password not in done.stdout + note and labelstudio_server.token not in done.stdout + note
    client = annotation.client_for(ctx)
    assert accounts.account_of(ctx, client, name) is None

    unset = cli("add", f"un-{name}", "--role", "annotator", VIGIL_LABEL_STUDIO_TOKEN="")
    assert unset.returncode == 0, unset.stderr
    assert "Label Studio is not configured" in unset.stderr and f"label-studio-account un-{name}" in unset.stderr

    later = cli("label-studio-account", name)  # Label Studio is back: what the note said
    assert later.returncode == 0, later.stderr
    email = f"{name}@vigil.local"
    assert f"Label Studio account {email} of {name}" in later.stdout
    assert password not in later.stdout + later.stderr
    assert user_token(labelstudio_server.url, email, password)
    account = accounts.account_of(ctx, client, name)
    assert account is not None and account.email == email
    again = cli("label-studio-account", name)
    assert again.returncode == 0 and f"{name} already has the Label Studio account {email}" in again.stdout
    nobody = cli("label-studio-account", "no-such-user")
    assert nobody.returncode != 0 and "no Vigil user no-such-user" in nobody.stderr
    audit_text = ctx.store.query_df("SELECT * FROM audit_log").to_string()
    assert password not in audit_text and labelstudio_server.token not in audit_text
    assert list(trail(ctx, "labelstudio.account_create")["target"]) == [name]


def test_passwords_and_the_invitation_never_reach_messages_or_logs(labelstudio_server, tmp_path, caplog):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    client = annotation.client_for(ctx)
    (eli,) = annotators(ctx, model, "eli")
    invitation = str(client._sdk.organizations.invites.get_invite_link().token)
    password = f"{eli.name}-secret-pw"
    caplog.set_level(logging.DEBUG)
    made = accounts.create_account(ctx, eli, client, eli.name, password)
    with pytest.raises(LabelStudioError) as refused:  # the same e-mail again: Label Studio's form refuses it
        client.create_account(made.email, "another-secret-pw")
    assert made.email in str(refused.value) and "another-secret-pw" not in str(refused.value)
    assert invitation not in str(refused.value)
    assert "/user/signup/?token=REDACTED" in caplog.text  # httpx logs the sign-up URL, masked
    assert "sessionid=REDACTED" in caplog.text  # httpcore logs response headers: the new session, masked
    assert not re.search(r"sessionid=(?!REDACTED)", caplog.text)
    for secret in (password, "another-secret-pw", invitation, labelstudio_server.token):
        assert secret not in caplog.text
        assert secret not in repr(client)
