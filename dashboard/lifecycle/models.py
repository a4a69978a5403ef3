"""What the Models page shows: registered models, versions with aliases, run metrics/params, lineage.

One call (:func:`load_snapshot`) reads everything about a model from the registry into plain data, so
the page caches a single object and renders it. :class:`LastGood` keeps the last successful snapshot
per key, so when MLflow goes down the page keeps serving what it had (with a warning) instead of
going blank.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import quote

import pandas as pd

from connectors.logstore import utcnow
from connectors.registry import Lineage, Registry, RegistryError

T = TypeVar("T")
MAX_VERSIONS = 20  # versions whose runs are read (newest first); older ones are listed only
HEADLINE_METRICS: tuple[str, ...] = ("accuracy", "f1", "roc_auc")


@dataclass(frozen=True)
class ModelSnapshot:
    """Everything the page shows about one registered model, read at ``fetched_at`` (naive UTC)."""

    model: str
    description: str
    aliases: dict[str, str]
    versions: pd.DataFrame  # version, aliases, status, created, run_id, description, tags
    metrics: pd.DataFrame  # one row per version (newest first), one column per logged metric
    params: dict[str, dict[str, str]]  # version -> run params
    lineage: dict[str, Lineage]  # version -> lineage
    experiment_ids: dict[str, str]  # version -> experiment id of its run
    fetched_at: datetime = field(default_factory=utcnow)

    def default_version(self) -> str | None:
        """The champion if there is one, else the newest version."""
        if "champion" in self.aliases:
            return self.aliases["champion"]
        return str(self.versions["version"].iloc[0]) if len(self.versions) else None


def models_table(registry: Registry) -> pd.DataFrame:
    """Registered models with their latest version and aliases."""
    rows = [{"model": m.name, "latest version": m.latest_version,
             "aliases": ", ".join(f"{a} → v{v}" for a, v in sorted(m.aliases.items())),
             "description": m.description, "updated (UTC)": m.updated} for m in registry.list_models()]
    return pd.DataFrame(rows, columns=["model", "latest version", "aliases", "description", "updated (UTC)"])


def load_snapshot(registry: Registry, model: str) -> ModelSnapshot:
    """Read versions, runs (params, metrics) and lineage of ``model`` (runs of the newest versions)."""
    info = next((m for m in registry.list_models() if m.name == model), None)
    versions = registry.versions_df(model)
    metric_rows: list[dict[str, object]] = []
    params: dict[str, dict[str, str]] = {}
    lineage: dict[str, Lineage] = {}
    experiments: dict[str, str] = {}
    for v in list(versions["version"])[:MAX_VERSIONS]:
        lin = registry.lineage(model, str(v))
        lineage[str(v)] = lin
        row: dict[str, object] = {"version": str(v)}
        if lin.run_id:
            run = registry.run(lin.run_id)
            params[str(v)] = run.params
            experiments[str(v)] = run.experiment_id
            row.update(run.metrics)
        metric_rows.append(row)
    metrics = pd.DataFrame(metric_rows)
    if len(metrics):
        ordered = [c for c in HEADLINE_METRICS if c in metrics.columns]
        metrics = metrics[["version", *ordered, *sorted(set(metrics.columns) - {"version", *ordered})]]
    return ModelSnapshot(model=model, description=info.description if info else "",
                         aliases=dict(info.aliases) if info else {}, versions=versions, metrics=metrics,
                         params=params, lineage=lineage, experiment_ids=experiments)


def lineage_steps(lin: Lineage) -> pd.DataFrame:
    """The lineage chain as rows (step, value, detail) in reading order: version → run → data → code."""
    rows = [{"step": "model version", "value": f"{lin.model} v{lin.version}",
             "detail": ", ".join(lin.aliases) or "no alias"}]
    rows.append({"step": "run", "value": lin.run_id or "not logged", "detail": lin.run_name or ""})
    if lin.datasets:
        for d in lin.datasets:
            rows.append({"step": f"{d.context or 'input'} data", "value": f"digest {d.digest}",
                         "detail": f"{d.name} ({d.source_type}: {d.source})"})
    else:
        rows.append({"step": "training data", "value": "not logged",
                     "detail": "log it with mlflow.log_input(mlflow.data.from_pandas(...))"})
    rows.append({"step": "code version", "value": lin.code_version or "not logged",
                 "detail": (f"tag {lin.code_version_tag}" if lin.code_version_tag
                            else "set the tag mlflow.source.git.commit or code_version on the run")
                           + (f"; entry point {lin.source_name}" if lin.source_name else "")})
    return pd.DataFrame(rows, columns=["step", "value", "detail"])


def params_table(snapshot: ModelSnapshot, version: str) -> pd.DataFrame:
    p = snapshot.params.get(str(version), {})
    return pd.DataFrame(sorted(p.items()), columns=["param", "value"])


def metrics_long(snapshot: ModelSnapshot, metrics: tuple[str, ...] = HEADLINE_METRICS) -> pd.DataFrame:
    """Headline metrics per version in long form (version, metric, value) for a chart."""
    if snapshot.metrics.empty:
        return pd.DataFrame(columns=["version", "metric", "value"])
    cols = [c for c in metrics if c in snapshot.metrics.columns]
    long = snapshot.metrics.melt(id_vars="version", value_vars=cols, var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def mlflow_links(ui_url: str | None, model: str, version: str | None = None, experiment_id: str | None = None,
                 run_id: str | None = None) -> dict[str, str]:
    """Deep links into the MLflow UI (empty when no UI URL is configured)."""
    if not ui_url:
        return {}
    base = ui_url.rstrip("/")
    links = {"registered model": f"{base}/#/models/{quote(model)}"}
    if version:
        links["model version"] = f"{base}/#/models/{quote(model)}/versions/{quote(str(version))}"
    if experiment_id and run_id:
        links["run"] = f"{base}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}"
    return links


@dataclass
class Fetched(Generic[T]):
    """A value with when it was read, and the error that made it stale (None when fresh)."""

    value: T | None
    fetched_at: datetime | None
    error: RegistryError | None = None

    @property
    def stale(self) -> bool:
        return self.error is not None and self.value is not None


class LastGood(Generic[T]):
    """Remember the last successful result per key; serve it (marked stale) while the source is down."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[T, datetime]] = {}
        self._lock = threading.Lock()

    def fetch(self, key: str, fn: Callable[[], T]) -> Fetched[T]:
        try:
            value = fn()
        except RegistryError as exc:
            with self._lock:
                prior = self._values.get(key)
            if prior is None:
                return Fetched(None, None, exc)
            return Fetched(prior[0], prior[1], exc)
        now = utcnow()
        with self._lock:
            self._values[key] = (value, now)
        return Fetched(value, now)
