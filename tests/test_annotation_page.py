"""Annotation queue page (AppTest) over a real DuckDB store and, where marked, a real Label Studio."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.context import Context
from dashboard.learning import accounts, annotation
from dashboard.settings import load_settings
from tests.fixtures.access import signed_in
from tests.test_labelstudio import ingest_logs, project_tasks, workspace

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages/5_annotation.py")


pytestmark = pytest.mark.usefixtures("fresh_caches")


def page(monkeypatch, env: dict[str, str], role: str = "annotator", secrets: dict[str, str] | None = None,
         name: str = "ann"):
    for key in ("VIGIL_LABEL_STUDIO_URL", "VIGIL_LABEL_STUDIO_TOKEN", "VIGIL_DATA_DIR", "VIGIL_DUCKDB_PATH"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(PAGE, default_timeout=120)
    signed_in(at, name, role)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "error", "warning")
             for e in getattr(at, kind)]
    return " ".join(str(p) for p in parts)


def plain(markdown: str) -> str:
    """Text as shown: without the backslashes that keep untrusted values from being Markdown."""
    return markdown.replace("\\", "")


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_candidates_show_with_reasons_and_how_to_configure_label_studio(monkeypatch, tmp_path):
    config = tmp_path / "vigil.toml"
    config.write_text((REPO / "dashboard/demo/vigil.toml").read_text().replace(
        'data_dir = "."', f'data_dir = "{tmp_path / "data"}"'))
    ctx = Context(load_settings(config, env={}))
    ingest_logs(ctx, "credit-risk", tmp_path, n=40)
    at = page(monkeypatch, {"VIGIL_CONFIG": str(config)})
    assert not at.exception
    table = at.dataframe[0].value
    assert 0 < len(table) <= 40 and (table["reason"].str.contains("confidence")).all()
    assert "Label Studio is not configured" in texts(at)
    assert metrics(at) == {"Queued": "0", "In Label Studio": "0", "Labelled": "0", "Skipped": "0"}
    assert [b for b in at.button if b.key == "ann_send"] == []  # nothing to press without Label Studio


@pytest.mark.labelstudio
def test_send_and_sync_from_the_page_with_token_in_secrets(monkeypatch, tmp_path, labelstudio_server):
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=40, seed=21)
    env.pop("VIGIL_LABEL_STUDIO_TOKEN")
    at = page(monkeypatch, env, secrets={"VIGIL_LABEL_STUDIO_TOKEN": labelstudio_server.token})
    assert not at.exception
    at.sidebar.number_input(key="ann_budget").set_value(6).run()
    send = at.button(key="ann_send")
    assert send.label == "Send 6 to Label Studio"
    at = send.click().run()
    assert not at.exception, at.exception
    assert any("6 sent to Label Studio (6 new task(s))" in s.value for s in at.success)
    assert metrics(at)["In Label Studio"] == "6"

    client = annotation.client_for(ctx)
    for task_ids in project_tasks(ctx, model, client).values():
        client.annotate(task_ids[0], "good")
    at = at.button(key="ann_sync").click().run()
    assert not at.exception
    assert any("6 labelled" in s.value for s in at.success)
    assert metrics(at)["Labelled"] == "6"
    assert labelstudio_server.token not in texts(at)
    assert any(b.proto.url.endswith("/data") for b in at.get("link_button"))


@pytest.mark.labelstudio
def test_wrong_token_shows_what_to_do_and_keeps_the_queue(monkeypatch, tmp_path, labelstudio_server):
    ctx, model, env = workspace(tmp_path, labelstudio_server, token="f" * 40)
    ingest_logs(ctx, model, tmp_path, n=30, seed=22)
    at = page(monkeypatch, env, role="data_scientist")
    at.sidebar.number_input(key="ann_budget").set_value(4).run()
    at = at.button(key="ann_send").click().run()
    assert not at.exception
    assert any("rejected the API token" in e.value and "VIGIL_LABEL_STUDIO_TOKEN" in plain(e.value) for e in at.error)
    assert "f" * 40 not in texts(at)
    assert metrics(at)["Queued"] == "4"
    at = at.run()  # the next rerun offers to send the waiting rows
    assert at.button(key="ann_resend").label == "Send 4 waiting"
    assert any("not in Label Studio yet" in w.value and "rejected the API token" in w.value for w in at.warning)


def candidate_ids(at: AppTest) -> set[str]:
    """The prediction ids the candidates table shows."""
    return set(at.dataframe[0].value["prediction_id"])


@pytest.mark.labelstudio
def test_the_candidates_follow_the_sends_and_a_send_sends_what_was_shown(monkeypatch, tmp_path, labelstudio_server):
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=60, seed=23)
    at = page(monkeypatch, env)
    at.sidebar.number_input(key="ann_budget").set_value(5).run()
    first = candidate_ids(at)
    assert len(first) == 5 and at.button(key="ann_send").label == "Send 5 to Label Studio"

    at = at.button(key="ann_send").click().run()
    assert not at.exception, at.exception
    assert any("5 sent to Label Studio" in s.value for s in at.success)
    assert set(annotation.queue_rows(ctx, model)["prediction_id"]) == first
    second = candidate_ids(at)  # the table follows the send: the rows just sent are gone
    assert len(second) == 5 and not second & first
    assert at.button(key="ann_send").label == "Send 5 to Label Studio"

    at = at.button(key="ann_send").click().run()  # sends exactly the rows on the screen
    assert not at.exception, at.exception
    assert set(annotation.queue_rows(ctx, model)["prediction_id"]) == first | second
    assert set(project_tasks(ctx, model, annotation.client_for(ctx))) == first | second
    assert not candidate_ids(at) & (first | second)


@pytest.mark.labelstudio
def test_an_annotator_creates_their_label_studio_account_on_the_page(monkeypatch, tmp_path, labelstudio_server):
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    ingest_logs(ctx, model, tmp_path, n=20, seed=24)
    name = f"ann-{model.rsplit('-', 1)[1]}"
    password = f"{name}-own-password"
    at = page(monkeypatch, env, name=name)
    assert not at.exception
    at.text_input(key="ann_ls_password").input(password)
    at.text_input(key="ann_ls_password2").input(password)
    at = next(b for b in at.button if b.label == "Create my Label Studio account").click().run()
    assert not at.exception, at.exception
    email = f"{name}@vigil.local"
    assert any(email in plain(s.value) and "is ready" in s.value for s in at.success), texts(at)
    account = accounts.account_of(ctx, annotation.client_for(ctx), name)
    assert account is not None and account.email == email
    assert password not in texts(at)
    at = at.run()
    assert f"You label in Label Studio as {email}" in plain(texts(at))
    assert not [b for b in at.button if b.label == "Create my Label Studio account"]


def test_annotators_see_this_page_but_not_retraining_or_promotion():
    from dashboard.ui.nav import pages_for

    annotator = {p.file for p in pages_for("annotator")}
    assert "5_annotation.py" in annotator
    assert not annotator & {"6_retraining.py", "7_models.py", "8_compliance.py"}
    assert "5_annotation.py" not in {p.file for p in pages_for("manager")}
