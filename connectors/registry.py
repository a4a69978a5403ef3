"""MLflow registry and runs as plain data: registered models, versions, aliases, runs, datasets, artifacts.

Pages and the core never see MLflow objects, only the dataclasses and DataFrames below, so a change of
MLflow's client API touches this module only. Every failure becomes a :class:`RegistryError` whose
message names the fix. A tracking server that is down or a wrong URI fails fast: HTTP URIs are probed
with ``GET <uri>/health`` under the configured timeout before the client is used, and MLflow's own HTTP
retries are bounded (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT``, unless the
user set them) so a server that dies mid-session cannot hang a page for minutes.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import pandas as pd
import requests

from connectors.errors import ConnectorError
from connectors.registry_cache import RegistryReadCache, sqlite_path

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")

SETTING_HINT = "set VIGIL_MLFLOW_URI or vigil.mlflow_tracking_uri in vigil.toml"
TRAINING_DATA_PATH = "training_data/train.parquet"
CODE_VERSION_TAGS: tuple[str, ...] = ("mlflow.source.git.commit", "code_version")
_HEALTH_TTL_S = 5.0


class RegistryError(ConnectorError):
    """MLflow could not be reached or refused a request; the message names the fix."""


class RegistryNotFound(RegistryError):
    """A registered model, version, alias, run or artifact does not exist."""


@dataclass(frozen=True)
class RegisteredModelInfo:
    name: str
    description: str
    aliases: dict[str, str]  # alias -> version
    tags: dict[str, str]
    latest_version: str | None
    created: datetime | None
    updated: datetime | None


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: str
    run_id: str | None
    status: str
    created: datetime | None
    tags: dict[str, str]
    description: str
    aliases: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str | None
    status: str
    start: datetime | None
    end: datetime | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_uri: str


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str
    profile: str
    context: str | None  # "training", "evaluation", ... (the mlflow.data.context input tag)


@dataclass(frozen=True)
class WebhookInfo:
    """One MLflow registry webhook (its secret is write-only on the server)."""

    id: str
    name: str
    url: str
    events: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class Lineage:
    """version -> run -> training data -> code: what produced a model version."""

    model: str
    version: str
    run_id: str | None
    run_name: str | None
    datasets: tuple[DatasetInfo, ...]
    code_version: str | None
    code_version_tag: str | None
    source_name: str | None
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def training_digest(self) -> str | None:
        """Digest of the training input (the first dataset logged with context "training", else the first)."""
        training = [d for d in self.datasets if d.context in (None, "training")] or list(self.datasets)
        return training[0].digest if training else None


def _ts(ms: int | None) -> datetime | None:
    """MLflow's epoch milliseconds -> naive UTC datetime (the storage convention)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def _source_uri(source: str) -> str:
    """MLflow stores a dataset source as JSON (``{"uri": ...}``); show the URI when there is one."""
    try:
        parsed = json.loads(source)
    except (TypeError, ValueError):
        return str(source)
    if isinstance(parsed, dict):
        for key in ("uri", "url", "path", "table_name"):
            if parsed.get(key):
                return str(parsed[key])
    return str(source)


def _quote_filter(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def _version_to_json(v: VersionInfo) -> dict[str, Any]:
    return {**asdict(v), "created": v.created.isoformat() if v.created else None}


def _version_from_json(d: dict[str, Any]) -> VersionInfo:
    return VersionInfo(**{**d, "created": datetime.fromisoformat(d["created"]) if d["created"] else None,
                          "aliases": tuple(d["aliases"])})


def _model_to_json(m: RegisteredModelInfo) -> dict[str, Any]:
    return {**asdict(m), "created": m.created.isoformat() if m.created else None,
            "updated": m.updated.isoformat() if m.updated else None}


def _model_from_json(d: dict[str, Any]) -> RegisteredModelInfo:
    return RegisteredModelInfo(**{**d, **{k: datetime.fromisoformat(d[k]) if d[k] else None
                                          for k in ("created", "updated")}})


class Registry:
    """A thin, failure-translating wrapper around ``mlflow.MlflowClient`` for one tracking URI."""

    def __init__(self, tracking_uri: str, timeout_s: float = 10.0, cache_file: Path | None = None) -> None:
        """``cache_file``: where readings of a sqlite registry are kept between processes
        (:mod:`connectors.registry_cache`); None asks the registry every time."""
        self.tracking_uri = tracking_uri
        self.timeout_s = float(timeout_s)
        self._client: MlflowClient | None = None
        database = sqlite_path(tracking_uri)
        self._cache = RegistryReadCache(database, cache_file) if database and cache_file else None
        self._healthy_until = 0.0
        scheme = urlparse(tracking_uri).scheme
        self.is_http = scheme in ("http", "https")
        if self.is_http:
            # Bounded retries: MLflow's default (7 retries with backoff) would hang a page for minutes.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(self.timeout_s))))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in server logs

    # ------------------------------------------------------------------ plumbing

    def check(self) -> None:
        """Fail fast with a :class:`RegistryError` when the tracking store cannot be reached."""
        if self.is_http:
            if time.monotonic() < self._healthy_until:
                return
            url = self.tracking_uri.rstrip("/") + "/health"
            try:
                resp = requests.get(url, timeout=self.timeout_s)
            except requests.RequestException as exc:
                raise RegistryError(
                    f"MLflow at {self.tracking_uri} did not answer within {self.timeout_s:g} s "
                    f"({type(exc).__name__}); start it (make demo, or `mlflow server --host 127.0.0.1 "
                    f"--port {urlparse(self.tracking_uri).port or 5000}`) or {SETTING_HINT}") from None
            if resp.status_code != 200:
                raise RegistryError(
                    f"{url} answered HTTP {resp.status_code}, so {self.tracking_uri} is not an MLflow tracking "
                    f"server; {SETTING_HINT}")
            self._healthy_until = time.monotonic() + _HEALTH_TTL_S
        elif self.tracking_uri.startswith("sqlite:"):
            path = self.tracking_uri.split(":///", 1)[-1] if ":///" in self.tracking_uri else ""
            if path and path != ":memory:" and not Path(path).parent.is_dir():
                raise RegistryError(f"the MLflow store {self.tracking_uri} is in a folder that does not exist; "
                                    f"run `vigil demo` or {SETTING_HINT}")
        elif self.tracking_uri.startswith(("file:", "/")):
            raise RegistryError(f"{self.tracking_uri}: Vigil needs a model registry, which MLflow's file store "
                                f"lacks; use sqlite:///path/mlflow.db or an http:// server ({SETTING_HINT})")

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            # A new sqlite store announces its table creation and migrations on stderr: not Vigil's output.
            for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
                logging.getLogger(name).setLevel(logging.WARNING)
            self.check()
            with self._translate("connect"):
                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """Turn MLflow / network failures into :class:`RegistryError` with the fix named."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except RegistryError:
            raise
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in text.lower():
                raise RegistryNotFound(f"{what}: {text}") from None
            if "max retries" in text.lower() or "connection" in text.lower() or "timed out" in text.lower():
                self._healthy_until = 0.0
                raise RegistryError(f"{what}: MLflow at {self.tracking_uri} did not answer ({text}); "
                                    f"restart it or {SETTING_HINT}") from None
            raise RegistryError(f"{what}: MLflow refused the request ({text})") from None
        except requests.RequestException as exc:
            self._healthy_until = 0.0
            raise RegistryError(f"{what}: MLflow at {self.tracking_uri} did not answer ({type(exc).__name__}); "
                                f"restart it or {SETTING_HINT}") from None
        except OSError as exc:
            raise RegistryError(f"{what}: {exc}; check the MLflow store ({SETTING_HINT})") from None
        except Exception as exc:  # sqlalchemy errors for a broken sqlite store, etc.
            if type(exc).__module__.startswith("sqlalchemy"):
                raise RegistryError(f"{what}: the MLflow store {self.tracking_uri} cannot be opened "
                                    f"({str(exc).splitlines()[0][:200]}); {SETTING_HINT}") from None
            raise

    def _call(self, what: str, fn: Callable[[MlflowClient], T]) -> T:
        client = self.client
        if self.is_http:
            self.check()
        with self._translate(what):
            return fn(client)

    # ------------------------------------------------------------------ registered models and versions

    def list_models(self) -> list[RegisteredModelInfo]:
        """Every registered model, sorted by name."""
        def read() -> list[RegisteredModelInfo]:
            models = self._call("list registered models",
                                lambda c: list(c.search_registered_models(max_results=1000)))
            return sorted((self._model(m) for m in models), key=lambda m: m.name)

        return self._kept(["models"], read, lambda ms: [_model_to_json(m) for m in ms],
                          lambda ds: [_model_from_json(d) for d in ds])

    @staticmethod
    def _model(m: Any) -> RegisteredModelInfo:
        versions = [int(v.version) for v in (m.latest_versions or [])]
        return RegisteredModelInfo(
            name=m.name, description=m.description or "", aliases={k: str(v) for k, v in (m.aliases or {}).items()},
            tags=dict(m.tags or {}), latest_version=str(max(versions)) if versions else None,
            created=_ts(m.creation_timestamp), updated=_ts(m.last_updated_timestamp))

    def versions(self, model: str) -> list[VersionInfo]:
        """All versions of ``model``, newest first."""
        return self._kept(["versions", model], lambda: self._versions(model),
                          lambda vs: [_version_to_json(v) for v in vs], lambda ds: [_version_from_json(d) for d in ds])

    def _versions(self, model: str) -> list[VersionInfo]:
        found = self._call(f"versions of '{model}'", lambda c: list(
            c.search_model_versions(f"name = {_quote_filter(model)}", max_results=10000)))
        # Version searches do not carry aliases on every store; the registered model always does.
        rm = self._call(f"registered model '{model}'", lambda c: c.get_registered_model(model))
        by_version: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        out = [replace(info, aliases=tuple(sorted(set(info.aliases) | set(by_version.get(info.version, [])))))
               for info in (self._version(v) for v in found)]
        return sorted(out, key=lambda v: int(v.version), reverse=True)

    def versions_df(self, model: str) -> pd.DataFrame:
        rows = [{"version": v.version, "aliases": ", ".join(v.aliases), "status": v.status, "created": v.created,
                 "run_id": v.run_id, "description": v.description,
                 "tags": ", ".join(f"{k}={val}" for k, val in sorted(v.tags.items()))} for v in self.versions(model)]
        return pd.DataFrame(rows, columns=["version", "aliases", "status", "created", "run_id", "description", "tags"])

    def _kept(self, key: list[str], read: Callable[[], T], encode: Callable[[T], Any],
              decode: Callable[[Any], T]) -> T:
        """``read()``, or its kept reading while a sqlite registry did not change (see ``cache_file``)."""
        if self._cache is None:
            return read()
        return self._cache.get(json.dumps(key), read, encode, decode)

    def _kept_version(self, key: list[str], read: Callable[[], VersionInfo]) -> VersionInfo:
        return self._kept(key, read, _version_to_json, _version_from_json)

    def version(self, model: str, version: str) -> VersionInfo:
        return self._kept_version(["version", model, str(version)], lambda: self._version(self._call(
            f"version {version} of '{model}'", lambda c: c.get_model_version(model, str(version)))))

    def version_by_alias(self, model: str, alias: str) -> VersionInfo:
        return self._kept_version(["alias", model, alias], lambda: self._version(self._call(
            f"alias '{alias}' of '{model}'", lambda c: c.get_model_version_by_alias(model, alias))))

    def resolve(self, model: str, alias_or_version: str) -> VersionInfo:
        """A version given either its number or an alias."""
        text = str(alias_or_version)
        return self.version(model, text) if text.isdigit() else self.version_by_alias(model, text)

    @staticmethod
    def _version(v: Any) -> VersionInfo:
        return VersionInfo(model=v.name, version=str(v.version), run_id=v.run_id or None, status=str(v.status),
                           created=_ts(v.creation_timestamp), tags=dict(v.tags or {}),
                           description=v.description or "", aliases=tuple(sorted(v.aliases or ())),
                           source=str(v.source or ""))

    def update_model_description(self, model: str, description: str) -> None:
        self._call(f"describe '{model}'", lambda c: c.update_registered_model(model, description=description))

    def model_info(self, model: str) -> RegisteredModelInfo:
        """One registered model (tags, aliases); :class:`RegistryNotFound` when it is not registered."""
        return self._kept(["model", model], lambda: self._call(
            f"registered model '{model}'", lambda c: self._model(c.get_registered_model(model))),
            _model_to_json, _model_from_json)

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self._call(f"tag of registered model '{model}'", lambda c: c.set_registered_model_tag(model, key, value))

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._call(f"set alias '{alias}' of '{model}'",
                   lambda c: c.set_registered_model_alias(model, alias, str(version)))

    def delete_alias(self, model: str, alias: str) -> None:
        self._call(f"delete alias '{alias}' of '{model}'", lambda c: c.delete_registered_model_alias(model, alias))

    def aliases(self, model: str) -> dict[str, str]:
        """Alias -> version of ``model`` as the registry holds them now (the alias poller's reading)."""
        rm = self._call(f"registered model '{model}'", lambda c: c.get_registered_model(model))
        return {str(k): str(v) for k, v in (rm.aliases or {}).items()}

    # ------------------------------------------------------------------ registry webhooks (MLflow >= 3.3)

    @property
    def supports_webhooks(self) -> bool:
        """Only a tracking *server* delivers webhooks (it fires them from its request handlers, and needs a
        SQL backend); a sqlite:/// or file URI used directly by this process never fires one."""
        return self.is_http

    def webhooks(self) -> list[WebhookInfo]:
        """Every registry webhook of the server (secrets are not readable back)."""
        def collect(c: MlflowClient) -> list[Any]:
            found: list[Any] = []
            token: str | None = None
            while True:
                page = c.list_webhooks(max_results=100, page_token=token)
                found += list(page)
                token = page.token
                if not token:
                    return found

        return [WebhookInfo(str(w.webhook_id), str(w.name), str(w.url), tuple(str(e) for e in w.events),
                            str(getattr(w.status, "value", w.status)))
                for w in self._call("list registry webhooks", collect)]

    def ensure_webhook(self, name: str, url: str, events: Sequence[str], secret: str) -> WebhookInfo:
        """Create the webhook ``name`` or bring it to ``url``/``events``/``secret`` (idempotent: one webhook per
        name). The secret is set on every call, so a rotated VIGIL_SERVE_SECRET takes effect at the next start."""
        if not self.supports_webhooks:
            raise RegistryError(f"{self.tracking_uri} is not a tracking server, so it cannot deliver registry "
                                "webhooks; Vigil polls the aliases instead (or point VIGIL_MLFLOW_URI at an "
                                "`mlflow server` with a SQL backend)")
        existing = [w for w in self.webhooks() if w.name == name]
        for extra in existing[1:]:
            self.delete_webhook(extra.id)
        if existing:
            w = self._call(f"update registry webhook '{name}'", lambda c: c.update_webhook(
                existing[0].id, url=url, events=list(events), secret=secret, status="ACTIVE"))  # type: ignore[arg-type]
        else:
            w = self._call(f"create registry webhook '{name}'", lambda c: c.create_webhook(
                name=name, url=url, events=list(events), secret=secret,  # type: ignore[arg-type]
                description="vigil serve: gates new versions, audits alias moves made outside Vigil"))
        return WebhookInfo(str(w.webhook_id), str(w.name), str(w.url), tuple(str(e) for e in w.events),
                           str(getattr(w.status, "value", w.status)))

    def delete_webhook(self, webhook_id: str) -> None:
        self._call(f"delete registry webhook {webhook_id}", lambda c: c.delete_webhook(webhook_id))

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._call(f"tag version {version} of '{model}'",
                   lambda c: c.set_model_version_tag(model, str(version), key, str(value)))

    def update_version_description(self, model: str, version: str, description: str) -> None:
        self._call(f"describe version {version} of '{model}'",
                   lambda c: c.update_model_version(model, str(version), description=description))

    # ------------------------------------------------------------------ experiments

    def experiment_tags(self, name: str) -> dict[str, str] | None:
        """Tags of the experiment called ``name``; ``None`` when there is no such experiment."""
        exp = self._call(f"experiment '{name}'", lambda c: c.get_experiment_by_name(name))
        return None if exp is None else dict(exp.tags or {})

    def set_experiment_tag(self, name: str, key: str, value: str) -> bool:
        """Tag the experiment called ``name``; ``False`` (nothing written) when it does not exist."""
        exp = self._call(f"experiment '{name}'", lambda c: c.get_experiment_by_name(name))
        if exp is None:
            return False
        experiment_id = str(exp.experiment_id)
        self._call(f"tag experiment '{name}'", lambda c: c.set_experiment_tag(experiment_id, key, str(value)))
        return True

    # ------------------------------------------------------------------ runs

    def run(self, run_id: str) -> RunInfo:
        r = self._call(f"run {run_id}", lambda c: c.get_run(run_id))
        return RunInfo(run_id=r.info.run_id, experiment_id=r.info.experiment_id, run_name=r.info.run_name,
                       status=r.info.status, start=_ts(r.info.start_time), end=_ts(r.info.end_time),
                       params=dict(r.data.params), metrics={k: float(v) for k, v in r.data.metrics.items()},
                       tags=dict(r.data.tags), artifact_uri=r.info.artifact_uri)

    def run_datasets(self, run_id: str) -> list[DatasetInfo]:
        """The input datasets logged with the run (``mlflow.log_input``): name, digest, source, schema."""
        r = self._call(f"run {run_id}", lambda c: c.get_run(run_id))
        out = []
        for di in (r.inputs.dataset_inputs if r.inputs else []) or []:
            d = di.dataset
            tags = {t.key: t.value for t in (di.tags or [])}
            out.append(DatasetInfo(name=d.name, digest=d.digest, source_type=d.source_type, source=_source_uri(d.source),
                                   schema=d.schema or "", profile=d.profile or "",
                                   context=tags.get("mlflow.data.context")))
        return out

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        items = self._call(f"artifacts of run {run_id}", lambda c: c.list_artifacts(run_id, path))
        return [i.path for i in items]

    def download_artifact(self, run_id: str, path: str, dst_dir: str | Path | None = None) -> Path:
        """Download one artifact (file or folder) of a run; return its local path."""
        dst = Path(dst_dir) if dst_dir is not None else Path(tempfile.mkdtemp(prefix="vigil-artifact-"))
        dst.mkdir(parents=True, exist_ok=True)
        local = self._call(f"artifact '{path}' of run {run_id}",
                           lambda c: c.download_artifacts(run_id, path, str(dst)))
        p = Path(local)
        if not p.exists():
            raise RegistryNotFound(f"artifact '{path}' of run {run_id} was not found; log it with the run")
        return p

    def load_training_data(self, model: str, alias_or_version: str = "champion",
                           path: str = TRAINING_DATA_PATH) -> pd.DataFrame:
        """The training data logged (as a Parquet artifact) with the run of a version or alias."""
        v = self.resolve(model, alias_or_version)
        if not v.run_id:
            raise RegistryNotFound(f"version {v.version} of '{model}' has no run, so no training data")
        with tempfile.TemporaryDirectory(prefix="vigil-train-") as tmp:
            try:
                local = self.download_artifact(v.run_id, path, tmp)
            except RegistryNotFound:
                raise RegistryNotFound(
                    f"run {v.run_id} of '{model}' version {v.version} has no artifact '{path}'; log the "
                    "training data with the run (see dashboard/demo/train.py) or set reference.source = "
                    "\"window\" for the model") from None
            return pd.read_parquet(local)

    def log_artifact_to_version(self, model: str, version: str, local_path: str | Path,
                                artifact_path: str | None = None) -> str:
        """Attach a file (a model card, a report) to the run behind a version; return its artifact path."""
        v = self.resolve(model, version)
        if not v.run_id:
            raise RegistryError(f"version {v.version} of '{model}' has no run to attach artifacts to")
        run_id = v.run_id
        self._call(f"log artifact to run {run_id}",
                   lambda c: c.log_artifact(run_id, str(local_path), artifact_path))
        name = Path(local_path).name
        return f"{artifact_path.rstrip('/')}/{name}" if artifact_path else name

    # ------------------------------------------------------------------ lineage

    def lineage(self, model: str, version: str) -> Lineage:
        """version -> run -> training data (digest, source) -> code version, as far as it was logged."""
        v = self.resolve(model, version)
        if not v.run_id:
            return Lineage(model=model, version=v.version, run_id=None, run_name=None, datasets=(),
                           code_version=None, code_version_tag=None, source_name=None, aliases=v.aliases)
        run = self.run(v.run_id)
        code_tag = next((t for t in CODE_VERSION_TAGS if run.tags.get(t)), None)
        return Lineage(model=model, version=v.version, run_id=v.run_id, run_name=run.run_name,
                       datasets=tuple(self.run_datasets(v.run_id)),
                       code_version=run.tags.get(code_tag) if code_tag else None, code_version_tag=code_tag,
                       source_name=run.tags.get("mlflow.source.name"), aliases=v.aliases, metrics=run.metrics)
