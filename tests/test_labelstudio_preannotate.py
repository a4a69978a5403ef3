"""Pre-annotations against a real Label Studio: the same for every model version, and off on request.

Label Studio pre-ticks only the predictions whose model_version equals the project's, which it takes
from the first import; these tests open the tasks through the labelling stream (``/next``), as an
annotator does, so they see exactly what an annotator would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.labelstudio import PREDICTION_VERSION, choice_result, labeling_config
from dashboard.context import Context
from dashboard.learning import annotation
from dashboard.learning.selection import SelectionRequest, select_candidates
from dashboard.settings import ConfigError, LabellingSpec, load_settings
from tests.conftest import DEMO_CONFIG
from tests.fixtures.labelstudio import label_stream
from tests.test_labelstudio import SCIENTIST, WINDOW, ingest_logs, select, workspace

# ------------------------------------------------------------------ the [labelling] table (no server)


MODEL_TABLE = "[models.credit-risk]\n"


def config_with(tmp_path: Path, table: str) -> Path:
    """The demo config plus ``table``: appended, or (starting with the model's own table header) merged into
    that table."""
    text = DEMO_CONFIG.read_text().replace('data_dir = "."', f'data_dir = "{tmp_path / "data"}"')
    if table.startswith(MODEL_TABLE):
        text = text.replace(MODEL_TABLE, table + "\n", 1)
    else:
        text += "\n" + table + "\n"
    path = tmp_path / "vigil.toml"
    path.write_text(text)
    return path


def test_pre_annotate_defaults_to_on_and_reads_false(tmp_path):
    assert load_settings(DEMO_CONFIG, env={}).models["credit-risk"].labelling == LabellingSpec(pre_annotate=True)
    off = load_settings(config_with(tmp_path, "[models.credit-risk.labelling]\npre_annotate = false"), env={})
    assert off.models["credit-risk"].labelling.pre_annotate is False


@pytest.mark.parametrize(("table", "expected"), [
    ('[models.credit-risk.labelling]\npre_annotate = "false"',
     "models.credit-risk.labelling.pre_annotate: must be true or false (without quotes), got 'false'"),
    ("[models.credit-risk.labelling]\npre_annotate = 0",
     "models.credit-risk.labelling.pre_annotate: must be true or false (without quotes), got 0"),
    ("[models.credit-risk.labelling]\npreannotate = false",
     "models.credit-risk.labelling.preannotate: unknown key (known: pre_annotate)"),
    (MODEL_TABLE + "labelling = true",
     "models.credit-risk.labelling: must be a table, e.g. [models.<name>.labelling] with pre_annotate = false"),
], ids=["quoted", "number", "unknown-key", "not-a-table"])
def test_a_wrong_labelling_table_is_a_clear_config_error(tmp_path, table, expected):
    with pytest.raises(ConfigError) as err:
        load_settings(config_with(tmp_path, table), env={})
    assert err.value.problems == [expected]
    assert expected in str(err.value)


# ------------------------------------------------------------------ against the real Label Studio


def two_versions(ctx, model, tmp_path) -> annotation.Selection:
    """Logs of model versions 1 and 2, and a batch holding both (stratified by version)."""
    ingest_logs(ctx, model, tmp_path, n=30, seed=31, version="1", id_prefix="a")
    ingest_logs(ctx, model, tmp_path, n=30, seed=32, version="2", id_prefix="b")
    request = SelectionRequest(WINDOW, budget=6, segment="model_version", bucket="week")
    selection = select_candidates(ctx, model, request)
    assert set(selection.candidates["model_version"]) == {"1", "2"}
    return selection


def opened(server, project_id: int) -> dict[str, list[list[str]]]:
    """Model version -> for each of its tasks, the labels the annotator finds pre-ticked."""
    found: dict[str, list[list[str]]] = {}
    for task in label_stream(server.url, server.token, project_id):
        ticks = [c for p in task["predictions"] for c in p["result"][0]["value"]["choices"]]
        found.setdefault(task["data"]["model_version"], []).append(ticks)
        assert ticks in ([], [task["data"]["prediction"]])
    return found


@pytest.mark.labelstudio
def test_tasks_of_every_version_open_with_the_models_answer(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    client = annotation.client_for(ctx)
    report = annotation.queue_and_send(ctx, SCIENTIST, model, two_versions(ctx, model, tmp_path), client)
    assert report.imported == 6 and report.project_id is not None
    seen = opened(labelstudio_server, report.project_id)
    assert set(seen) == {"1", "2"}
    assert all(len(ticks) == 1 for tasks in seen.values() for ticks in tasks), seen
    assert client.prediction_settings(report.project_id) == (True, PREDICTION_VERSION)


@pytest.mark.labelstudio
def test_pre_annotate_false_opens_every_task_empty(labelstudio_server, tmp_path):
    ctx, model, _ = workspace(tmp_path, labelstudio_server, labelling="pre_annotate = false")
    assert ctx.model(model).labelling.pre_annotate is False
    client = annotation.client_for(ctx)
    report = annotation.queue_and_send(ctx, SCIENTIST, model, two_versions(ctx, model, tmp_path), client)
    assert report.project_id is not None
    raw = list(client._sdk.tasks.list(project=report.project_id, fields="all", page_size=100))
    assert len(raw) == 6 and all(not t.predictions for t in raw)  # the model's answer is not even sent
    seen = opened(labelstudio_server, report.project_id)
    assert set(seen) == {"1", "2"} and all(t == [] for tasks in seen.values() for t in tasks), seen
    assert client.prediction_settings(report.project_id)[0] is False
    trail = ctx.store.query_df("SELECT details FROM audit_log WHERE action = 'queue.send'")
    assert '"pre_annotate":false' in trail["details"].iloc[0].replace(" ", "")


@pytest.mark.labelstudio
def test_a_project_made_before_the_fix_follows_on_the_next_send(labelstudio_server, tmp_path):
    """A project whose model_version Label Studio set from version 1's predictions (as Vigil used to
    tag them) pre-ticks a new batch of version 2 too, once Vigil sends it."""
    ctx, model, _ = workspace(tmp_path, labelstudio_server)
    client = annotation.client_for(ctx)
    cfg = ctx.model(model)
    old = client._sdk.projects.create(title=annotation.project_title(model),
                                      label_config=labeling_config(list(cfg.features), list(cfg.classes), model))
    client.import_tasks(old.id, [{"data": {"prediction_id": "old-1", "model_version": "1", "prediction": "good",
                                           "score": 0.6, "features": {}},
                                  "predictions": [{"model_version": "1", "result": choice_result("good")}]}])
    assert client.prediction_settings(old.id) == (True, "1")
    ingest_logs(ctx, model, tmp_path, n=30, seed=33, version="2", id_prefix="b")
    selection = select_candidates(ctx, model, SelectionRequest(WINDOW, budget=3, segment=None, bucket="week"))
    report = annotation.queue_and_send(ctx, SCIENTIST, model, selection, client)
    assert report.project_id == old.id and report.imported == 3
    assert client.prediction_settings(old.id) == (True, PREDICTION_VERSION)
    seen = opened(labelstudio_server, old.id)
    assert [len(t) for t in seen["2"]] == [1, 1, 1], seen


@pytest.mark.labelstudio
def test_switching_pre_annotate_off_and_on_follows_on_the_next_send(labelstudio_server, tmp_path):
    """The project follows the config: off hides every pre-annotation (earlier tasks' too), on shows them."""
    ctx, model, env = workspace(tmp_path, labelstudio_server)
    client = annotation.client_for(ctx)
    ingest_logs(ctx, model, tmp_path, n=40, seed=34)
    first = annotation.queue_and_send(ctx, SCIENTIST, model, select(ctx, model, budget=2), client)
    project = first.project_id
    assert project is not None and client.prediction_settings(project) == (True, PREDICTION_VERSION)

    def with_pre_annotate(value: str) -> Context:
        config = Path(env["VIGIL_CONFIG"])
        text = config.read_text().split(f"\n[models.{model}.labelling]")[0]
        config.write_text(f"{text}\n[models.{model}.labelling]\npre_annotate = {value}\n")
        return Context(load_settings(config, env=env))

    off = with_pre_annotate("false")
    second = annotation.queue_and_send(off, SCIENTIST, model, select(off, model, budget=2), client)
    assert second.project_id == project and second.imported == 2
    assert client.prediction_settings(project)[0] is False
    seen = opened(labelstudio_server, project)
    assert sum(len(t) for t in seen.values()) == 4 and all(t == [] for ts in seen.values() for t in ts), seen

    on = with_pre_annotate("true")
    third = annotation.queue_and_send(on, SCIENTIST, model, select(on, model, budget=2), client)
    assert third.imported == 2 and client.prediction_settings(project) == (True, PREDICTION_VERSION)
    seen = opened(labelstudio_server, project)  # the tasks not yet labelled: this batch
    assert [len(t) for ts in seen.values() for t in ts] == [1, 1], seen
