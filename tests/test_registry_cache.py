"""Registry readings kept between processes for a sqlite registry: used while the file is unchanged,
dropped by any write to it, never kept from a file that just changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import registry_cache
from connectors.registry import Registry
from tests.test_registry import MODEL, Trained, _train_two

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    folder = tmp_path_factory.mktemp("registry-cached")
    return _train_two(f"sqlite:///{folder / 'mlflow.db'}", folder)


def cached(t: Trained, folder: Path) -> Registry:
    return Registry(t.registry.tracking_uri, timeout_s=5, cache_file=folder / "registry-cache.json")


def test_a_kept_reading_answers_a_new_process_without_opening_mlflow(local: Trained, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_cache, "QUIET_S", 0.0)
    first = cached(local, tmp_path)
    want = first.version_by_alias(MODEL, "challenger")
    info, versions, models = first.model_info(MODEL), first.versions(MODEL), first.list_models()
    assert first._client is not None and want.version == local.v2.model_version
    again = cached(local, tmp_path)
    assert again.version_by_alias(MODEL, "challenger") == want and again.model_info(MODEL) == info
    assert again.versions(MODEL) == versions and again.list_models() == models and len(versions) == 2
    assert again._client is None  # answered from the kept readings
    code = ("import sys; from pathlib import Path; from connectors.registry import Registry\n"
            f"r = Registry({local.registry.tracking_uri!r}, cache_file=Path({str(tmp_path / 'registry-cache.json')!r}))\n"
            f"print(r.version_by_alias({MODEL!r}, 'challenger').run_id, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == [want.run_id, "False"]


def test_any_write_to_the_registry_drops_the_kept_readings(local: Trained, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_cache, "QUIET_S", 0.0)
    writer = local.registry  # another client, as MLflow's UI or a training job would be
    writer.set_alias(MODEL, "champion", local.v1.model_version)
    assert cached(local, tmp_path).version_by_alias(MODEL, "champion").version == local.v1.model_version
    writer.set_alias(MODEL, "champion", local.v2.model_version)
    assert cached(local, tmp_path).version_by_alias(MODEL, "champion").version == local.v2.model_version
    writer.set_version_tag(MODEL, local.v2.model_version, "reviewed", "yes")
    assert cached(local, tmp_path).version(MODEL, local.v2.model_version).tags.get("reviewed") == "yes"


def test_a_reading_of_a_file_that_just_changed_is_not_kept(local: Trained, tmp_path: Path) -> None:
    local.registry.set_version_tag(MODEL, local.v1.model_version, "touched", "now")
    reg = cached(local, tmp_path)
    assert reg.version(MODEL, local.v1.model_version).tags["touched"] == "now"
    kept = tmp_path / "registry-cache.json"
    assert not kept.exists() or not json.loads(kept.read_text()).get("entries")


def test_a_damaged_cache_file_is_read_past_and_replaced(local: Trained, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_cache, "QUIET_S", 0.0)
    kept = tmp_path / "registry-cache.json"
    kept.write_text("{not json")
    assert cached(local, tmp_path).version(MODEL, local.v1.model_version).version == local.v1.model_version
    state = registry_cache.RegistryReadCache(Path(local.registry.tracking_uri[len("sqlite:///"):]), kept)._state()
    entries = json.loads(kept.read_text())
    assert entries["state"] == state and len(entries["entries"]) == 1
    entries["entries"] = {k: {"model": "wrong shape"} for k in entries["entries"]}
    kept.write_text(json.dumps(entries))  # a reading of another shape: read again, never a crash
    assert cached(local, tmp_path).version(MODEL, local.v1.model_version).version == local.v1.model_version


def test_only_a_sqlite_file_registry_is_kept() -> None:
    assert registry_cache.sqlite_path("sqlite:////tmp/x/mlflow.db") == Path("/tmp/x/mlflow.db")
    assert registry_cache.sqlite_path("sqlite:///:memory:") is None
    assert registry_cache.sqlite_path("http://127.0.0.1:5000") is None
    assert Registry("http://127.0.0.1:5000", cache_file=Path("/tmp/never"))._cache is None
