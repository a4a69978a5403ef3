"""Models page (AppTest) over the demo workspace, plus its view logic and chart builder."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from connectors.registry import DatasetInfo, Lineage, Registry, RegistryError
from dashboard.charts.models import metrics_by_version_figure
from dashboard.lifecycle.models import LastGood, lineage_steps, load_snapshot, metrics_long, mlflow_links
from tests.fixtures.mlflow import MlflowServer, free_port

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages/7_models.py")


def plain(markdown: str) -> str:
    """Markdown source without the backslash escapes text from data gets (what the reader sees)."""
    return re.sub(r"\\(.)", r"\1", markdown)


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch: pytest.MonkeyPatch, fresh_caches: None) -> None:
    for key in ("VIGIL_CONFIG", "VIGIL_DATA_DIR", "VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI", "VIGIL_MLFLOW_UI_URL",
                "VIGIL_MLFLOW_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)


def run_page(monkeypatch: pytest.MonkeyPatch, workspace: Path, **env: str) -> AppTest:
    monkeypatch.setenv("VIGIL_CONFIG", str(workspace / "vigil.toml"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(PAGE, default_timeout=90).run()


def frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_models_page_shows_registry_versions_metrics_and_lineage(monkeypatch: pytest.MonkeyPatch,
                                                                 demo_workspace: Path) -> None:
    at = run_page(monkeypatch, demo_workspace)
    assert not at.exception and not at.error
    models, versions = frames(at)[0], frames(at)[1]
    assert list(models["model"]) == ["credit-risk"]
    assert models["aliases"][0] == "challenger → v2, champion → v1"
    assert list(versions["version"]) == ["2", "1"]
    assert list(versions["aliases"]) == ["challenger", "champion"]
    assert "validation_status=approved" in versions.set_index("version").loc["1", "tags"]

    reg = Registry(f"sqlite:///{demo_workspace / 'mlflow.db'}")
    champion = reg.lineage("credit-risk", "champion")
    lineage = next(f for f in frames(at) if "step" in f.columns).set_index("step")
    assert lineage.loc["model version", "value"] == "credit-risk v1"
    assert lineage.loc["run", "value"] == champion.run_id
    assert lineage.loc["training data", "value"] == f"digest {champion.training_digest}"
    assert lineage.loc["code version", "value"] == champion.code_version
    params = next(f for f in frames(at) if "param" in f.columns).set_index("param")["value"]
    assert params["variant"] == "fair"
    assert "[run](http://127.0.0.1:5000/#/experiments/" in text(at)  # demo config's mlflow_ui_url
    assert len(at.get("plotly_chart")) == 1


def test_choosing_another_version_shows_its_lineage(monkeypatch: pytest.MonkeyPatch, demo_workspace: Path) -> None:
    at = run_page(monkeypatch, demo_workspace)
    version = next(s for s in at.selectbox if s.label == "Version")
    assert version.value == "1"  # the champion by default
    version.set_value("2").run()
    assert not at.exception
    lineage = next(f for f in frames(at) if "step" in f.columns).set_index("step")
    assert lineage.loc["model version", "value"] == "credit-risk v2"
    params = next(f for f in frames(at) if "param" in f.columns).set_index("param")["value"]
    assert params["variant"] == "biased" and "sex" in params["features"].split(",")


def test_wrong_uri_is_an_error_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                       demo_workspace: Path) -> None:
    at = run_page(monkeypatch, demo_workspace, VIGIL_MLFLOW_URI=f"http://127.0.0.1:{free_port()}",
                  VIGIL_MLFLOW_TIMEOUT="2")
    assert not at.exception
    assert len(at.error) == 1
    assert "VIGIL_MLFLOW_URI" in plain(at.error[0].value)
    assert not at.dataframe


@pytest.mark.mlflow_server
def test_page_keeps_serving_its_last_read_when_the_server_goes_down(
        monkeypatch: pytest.MonkeyPatch, demo_workspace: Path, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(demo_workspace / "mlflow.db", db)  # the same registry, served over HTTP
    server = MlflowServer(tmp_path / "server", backend_db=db)
    try:
        # A timeout a loaded machine meets (2 s timed out on 2 busy cores); once the server is stopped the
        # connection is refused at once, whatever the timeout.
        at = run_page(monkeypatch, demo_workspace, VIGIL_MLFLOW_URI=server.uri, VIGIL_MLFLOW_TIMEOUT="15")
        assert not at.exception and not at.error and not at.warning
        before = frames(at)[1]
    finally:
        server.stop()
    next(b for b in at.button if b.label == "Refresh").click().run()  # drops the page's cache
    assert not at.exception and not at.error
    assert any("did not answer" in w.value and "VIGIL_MLFLOW_URI" in plain(w.value) for w in at.warning)
    pd.testing.assert_frame_equal(frames(at)[1], before)


# ------------------------------------------------------------------ view logic (no Streamlit)


def test_snapshot_defaults_to_the_champion(demo_workspace: Path) -> None:
    snap = load_snapshot(Registry(f"sqlite:///{demo_workspace / 'mlflow.db'}"), "credit-risk")
    assert snap.default_version() == "1"
    assert set(snap.lineage) == {"1", "2"}
    assert list(snap.metrics.columns[:4]) == ["version", "accuracy", "f1", "roc_auc"]
    long = metrics_long(snap)
    assert set(long["metric"]) == {"accuracy", "f1", "roc_auc"} and len(long) == 6
    fig = metrics_by_version_figure(long, champion="1")
    assert [t.name for t in fig.data] == ["accuracy", "f1", "roc_auc"]
    assert list(fig.data[0].x) == ["v1 (champion)", "v2"]
    acc = snap.metrics.set_index("version")["accuracy"]
    assert list(fig.data[0].y) == [acc["1"], acc["2"]]


def test_lineage_steps_say_what_was_not_logged() -> None:
    bare = Lineage(model="m", version="3", run_id="r1", run_name=None, datasets=(), code_version=None,
                   code_version_tag=None, source_name=None)
    steps = lineage_steps(bare).set_index("step")
    assert steps.loc["training data", "value"] == "not logged"
    assert "mlflow.source.git.commit" in steps.loc["code version", "detail"]
    full = Lineage(model="m", version="3", run_id="r1", run_name="run", code_version="abc",
                   code_version_tag="code_version", source_name="train.py", aliases=("champion",),
                   datasets=(DatasetInfo("d", "1234", "local", "file:///x", "", "", "training"),))
    steps = lineage_steps(full).set_index("step")
    assert steps.loc["training data", "value"] == "digest 1234"
    assert steps.loc["code version", "value"] == "abc"
    assert full.training_digest == "1234"


def test_mlflow_links() -> None:
    assert mlflow_links(None, "m", "1") == {}
    links = mlflow_links("http://h:5000/", "credit risk", "2", "7", "abc")
    assert links == {"registered model": "http://h:5000/#/models/credit%20risk",
                     "model version": "http://h:5000/#/models/credit%20risk/versions/2",
                     "run": "http://h:5000/#/experiments/7/runs/abc"}


def test_last_good_serves_the_previous_value_while_the_source_fails() -> None:
    cache: LastGood[int] = LastGood()
    first = cache.fetch("k", lambda: 1)
    assert first.value == 1 and not first.stale and isinstance(first.fetched_at, datetime)

    def down() -> int:
        raise RegistryError("MLflow at x did not answer")

    stale = cache.fetch("k", down)
    assert stale.value == 1 and stale.stale and stale.fetched_at == first.fetched_at
    missing = cache.fetch("other", down)
    assert missing.value is None and isinstance(missing.error, RegistryError)
    assert cache.fetch("k", lambda: 2).value == 2


def test_a_version_description_renders_as_safe_markdown(monkeypatch: pytest.MonkeyPatch, demo_workspace: Path,
                                                         tmp_path: Path) -> None:
    """A description comes from MLflow (a saved model card, or whoever can write to the registry): its
    Markdown is rendered, its raw HTML shows as text, and it is not dumped as source into the versions table."""
    workspace = tmp_path / "ws"
    shutil.copytree(demo_workspace, workspace)
    reg = Registry(f"sqlite:///{workspace / 'mlflow.db'}")
    reg.update_version_description("credit-risk", "1", "**Intended use**: scoring.\n\n"
                                                      "<script>alert(1)</script><img src=x onerror=alert(2)>")
    at = run_page(monkeypatch, workspace)  # its vigil.toml reads the copied mlflow.db
    assert not at.exception and not at.error
    assert "description" not in frames(at)[1].columns
    shown = "\n".join(h.value for h in at.html)
    assert "<strong>Intended use</strong>" in shown
    assert "&lt;script&gt;" in shown and "<script" not in shown and "<img" not in shown
