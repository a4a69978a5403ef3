"""The MLflow registry connector against a real tracking server (HTTP) and a local sqlite store."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from mlflow.data.pandas_dataset import from_pandas

from connectors.errors import ConnectorError
from connectors.registry import Registry, RegistryError, RegistryNotFound
from dashboard.demo.population import FEATURES, training_frame
from dashboard.demo.train import FEMALE_FLIP, TrainResult, train_model
from dashboard.settings import Settings, load_settings
from tests.fixtures.mlflow import free_port

REPO = Path(__file__).resolve().parents[1]
MODEL = "credit-risk"
ROWS = 1_500


@dataclass
class Trained:
    registry: Registry
    settings: Settings
    v1: TrainResult
    v2: TrainResult


def _train_two(uri: str, data_dir: Path) -> Trained:
    settings = load_settings(REPO / "dashboard/demo/vigil.toml",
                             env={"VIGIL_MLFLOW_URI": uri, "VIGIL_DATA_DIR": str(data_dir)})
    v1 = train_model(settings, MODEL, seed=3, rows=ROWS, variant="fair", alias=None)
    v2 = train_model(settings, MODEL, seed=4, rows=ROWS, variant="biased", alias="challenger")
    return Trained(Registry(uri, timeout_s=5), settings, v1, v2)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("server", marks=pytest.mark.mlflow_server)])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Two registered versions (fair v1, biased v2 with the challenger alias) in each kind of store."""
    folder = tmp_path_factory.mktemp(f"registry-{request.param}")
    if request.param == "server":
        uri = request.getfixturevalue("mlflow_server_uri")
    else:
        uri = f"sqlite:///{folder / 'mlflow.db'}"
    return _train_two(uri, folder)


def test_versions_aliases_tags_and_descriptions(trained: Trained) -> None:
    reg = trained.registry
    names = [m.name for m in reg.list_models()]
    # The server is shared by the whole session, so other modules' models may be listed beside ours.
    assert names == sorted(names) and MODEL in names
    versions = reg.versions(MODEL)
    assert [v.version for v in versions] == [trained.v2.model_version, trained.v1.model_version]
    assert {v.run_id for v in versions} == {trained.v1.run_id, trained.v2.run_id}
    assert all(v.status == "READY" for v in versions)
    assert reg.version_by_alias(MODEL, "challenger").version == trained.v2.model_version

    reg.set_alias(MODEL, "champion", trained.v1.model_version)
    assert reg.version_by_alias(MODEL, "champion").run_id == trained.v1.run_id
    assert reg.resolve(MODEL, "champion").version == trained.v1.model_version
    table = reg.versions_df(MODEL).set_index("version")
    assert table.loc[trained.v1.model_version, "aliases"] == "champion"
    assert table.loc[trained.v2.model_version, "aliases"] == "challenger"

    reg.set_version_tag(MODEL, trained.v1.model_version, "validation_status", "approved")
    reg.update_version_description(MODEL, trained.v1.model_version, "the fair one")
    v1 = reg.version(MODEL, trained.v1.model_version)
    assert v1.tags["validation_status"] == "approved"
    assert v1.description == "the fair one"

    reg.set_alias(MODEL, "temp", trained.v2.model_version)
    reg.delete_alias(MODEL, "temp")
    with pytest.raises(RegistryNotFound):
        reg.version_by_alias(MODEL, "temp")


def test_run_params_and_metrics(trained: Trained) -> None:
    run = trained.registry.run(trained.v1.run_id)
    assert run.params["variant"] == "fair"
    assert run.params["seed"] == "3"
    assert set(run.params["features"].split(",")) == set(FEATURES)
    for metric in ("accuracy", "f1", "roc_auc"):
        assert run.metrics[metric] == pytest.approx(trained.v1.metrics[metric])
        assert 0.5 < run.metrics[metric] <= 1.0
    biased = trained.registry.run(trained.v2.run_id)
    assert biased.params["variant"] == "biased"
    assert biased.metrics["selection_rate_female"] < biased.metrics["selection_rate_male"]


def test_lineage_digest_matches_the_logged_training_data(trained: Trained) -> None:
    reg = trained.registry
    lin = reg.lineage(MODEL, trained.v1.model_version)
    assert lin.run_id == trained.v1.run_id
    assert [d.context for d in lin.datasets] == ["training"]
    data = reg.load_training_data(MODEL, trained.v1.model_version)
    assert lin.training_digest == from_pandas(data, targets="label").digest
    assert lin.datasets[0].source.endswith("training_data/train.parquet")
    assert '"name": "income"' in lin.datasets[0].schema
    assert lin.code_version  # this checkout's git commit (MLflow's tag or ours)
    assert lin.code_version_tag in ("mlflow.source.git.commit", "code_version")
    other = reg.lineage(MODEL, "challenger")
    assert other.training_digest != lin.training_digest


def test_training_data_round_trip(trained: Trained) -> None:
    reg = trained.registry
    expected = training_frame(3, ROWS)
    pd.testing.assert_frame_equal(reg.load_training_data(MODEL, trained.v1.model_version), expected)
    biased = reg.load_training_data(MODEL, "challenger")
    pd.testing.assert_frame_equal(biased, training_frame(4, ROWS, female_flip=FEMALE_FLIP))


def test_artifacts_model_card_and_logging_to_a_version(trained: Trained, tmp_path: Path) -> None:
    reg = trained.registry
    assert {"model_card.md", "training_data"} <= set(reg.list_artifacts(trained.v1.run_id))
    card = reg.download_artifact(trained.v1.run_id, "model_card.md", tmp_path / "dl").read_text()
    for section in ("Intended use", "Out-of-scope use", "Training data", "Evaluation", "Fairness", "Limitations",
                    "Owners"):
        assert f"## {section}" in card
    report = tmp_path / "report.md"
    report.write_text("# Compliance report\nall good\n")
    path = reg.log_artifact_to_version(MODEL, trained.v1.model_version, report, "reports")
    assert path == "reports/report.md"
    back = reg.download_artifact(trained.v1.run_id, path, tmp_path / "back")
    assert back.read_text() == report.read_text()
    with pytest.raises(RegistryError):
        reg.download_artifact(trained.v1.run_id, "no/such/file.txt", tmp_path / "none")


def test_unknown_model_and_version_are_named(trained: Trained) -> None:
    with pytest.raises(RegistryNotFound, match="nope"):
        trained.registry.versions("nope")
    with pytest.raises(RegistryNotFound):
        trained.registry.version(MODEL, "999")


# ------------------------------------------------------------------------------------------- failures


def test_server_down_fails_fast_naming_the_setting() -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    reg = Registry(uri, timeout_s=1)
    with pytest.raises(RegistryError) as err:
        reg.list_models()
    assert "VIGIL_MLFLOW_URI" in str(err.value) and "vigil.mlflow_tracking_uri" in str(err.value)
    assert uri in str(err.value)
    assert isinstance(err.value, ConnectorError)


@pytest.fixture
def not_mlflow() -> Iterator[str]:
    """A real HTTP server on loopback that is not MLflow (every path answers 404)."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_wrong_uri_pointing_at_another_server(not_mlflow: str) -> None:
    with pytest.raises(RegistryError, match="not an MLflow tracking server") as err:
        Registry(not_mlflow, timeout_s=2).versions(MODEL)
    assert "VIGIL_MLFLOW_URI" in str(err.value)


def test_server_that_accepts_but_never_answers_times_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # connections queue up, nothing ever answers
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(RegistryError, match="did not answer within 1 s") as err:
            Registry(uri, timeout_s=1).list_models()
    assert "VIGIL_MLFLOW_URI" in str(err.value)


def test_sqlite_store_in_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist") as err:
        Registry(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}").list_models()
    assert "VIGIL_MLFLOW_URI" in str(err.value)


def test_file_store_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="sqlite:///"):
        Registry(tmp_path.as_uri()).list_models()


def test_empty_sqlite_store_lists_nothing(mlflow_sqlite_uri: str) -> None:
    reg = Registry(mlflow_sqlite_uri)
    assert reg.list_models() == []
    with pytest.raises(RegistryNotFound):
        reg.load_training_data(MODEL)
