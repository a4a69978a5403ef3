"""Typed settings: one object read once from ``vigil.toml`` plus ``VIGIL_*`` environment variables.

Why one object: every part of Vigil (app, CLI, background jobs) must agree on where the log store,
the MLflow registry and the per-model configuration are. A bad file produces a single
:class:`ConfigError` listing every problem with its key, so a user fixes them all in one go.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from connectors.engines.base import ENGINES
from connectors.schema import LogSchema

FeatureType = Literal["numerical", "categorical"]
FEATURE_TYPES: tuple[str, ...] = ("numerical", "categorical")
COMPARATORS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "!=", "within", "outside")
SEVERITIES: tuple[str, ...] = ("blocking", "warning")
# When a policy judges a version: before it serves (on the gate's evidence), on its production traffic, or both.
PHASES: tuple[str, ...] = ("pre_deployment", "production", "both")
DEFAULT_CONFIG_NAME = "vigil.toml"
DEFAULT_DATA_DIR = ".vigil"
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")


class ConfigError(ValueError):
    """A configuration problem; ``problems`` holds one ``key: message`` line per problem."""

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} has {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class ProtectedAttribute:
    """A protected attribute: categorical with privileged values, or numeric bucketed by ``bins``.

    For a numeric attribute, ``bins`` are edges ``[e0, e1, ..., ek]`` giving buckets
    ``[e0, e1), [e1, e2), ...``; ``labels`` name the buckets and ``privileged`` lists bucket labels.
    """

    name: str
    privileged: tuple[str, ...]
    bins: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def is_binned(self) -> bool:
        return bool(self.bins)

    def bucket_labels(self) -> tuple[str, ...]:
        """Labels of the numeric buckets (generated as ``lo-hi`` when none are configured)."""
        if self.labels:
            return self.labels
        return tuple(f"{_fmt(lo)}-{_fmt(hi)}" for lo, hi in zip(self.bins, self.bins[1:], strict=False))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class ReferenceSpec:
    """Where the reference data comes from: the champion's training data, or a time window."""

    source: Literal["training", "window"] = "training"
    window: str | None = None  # "FROM..TO" when source == "window"
    artifact_path: str = "training_data/train.parquet"


def compare(value: float, comparator: str, threshold: float | tuple[float, float]) -> bool:
    """True when ``value comparator threshold`` holds (``within``/``outside`` are inclusive bounds)."""
    if comparator in ("within", "outside"):
        if not isinstance(threshold, tuple):
            raise ConfigError([f"'{comparator}' needs a [low, high] threshold"])
        inside = threshold[0] <= value <= threshold[1]
        return inside if comparator == "within" else not inside
    if isinstance(threshold, tuple):
        raise ConfigError([f"'{comparator}' needs a single number as threshold"])
    ops = {"<": value < threshold, "<=": value <= threshold, ">": value > threshold, ">=": value >= threshold,
           "==": value == threshold, "!=": value != threshold}
    if comparator not in ops:
        raise ConfigError([f"comparator '{comparator}' is not one of {', '.join(COMPARATORS)}"])
    return ops[comparator]


@dataclass(frozen=True)
class PolicySpec:
    """One policy as declared in the config: ``metric comparator threshold`` with a severity."""

    name: str
    metric: str
    comparator: str
    threshold: float | tuple[float, float]
    severity: Literal["blocking", "warning"] = "blocking"
    window: str | None = None  # e.g. "7d", "24h" or "FROM..TO"; None means the policy's default
    params: Mapping[str, Any] = field(default_factory=dict)
    phase: str | None = None  # one of PHASES; None means the metric's own phase


@dataclass(frozen=True)
class Thresholds:
    """Default thresholds used by the analytics pages when no explicit policy overrides them."""

    drift_share: float = 0.5
    disparate_impact_low: float = 0.8
    disparate_impact_high: float = 1.25
    parity_difference: float = 0.1  # |SPD|, |EOD|, |AOD|
    latency_p95_ms: float = 200.0
    error_rate: float = 0.01
    min_accuracy: float = 0.7
    min_group_size: int = 30
    # Fewer current values than this in a window or bucket: no drift verdict, "too few rows". At 500 a
    # normed-Wasserstein test flags samples of its own reference <= 5% of the time (README "Drift").
    min_drift_rows: int = 500


@dataclass(frozen=True)
class DriftOverride:
    """Per-column drift method and/or threshold override."""

    method: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class RetrainSpec:
    """When ``vigil retrain --if-needed`` retrains, how it runs, and how the candidate gate judges.

    ``None`` for ``accuracy_below`` / ``disparate_impact_outside`` means: use the model's thresholds.
    """

    drift_share_above: float | None = 0.3
    accuracy_below: float | None = None
    disparate_impact_outside: tuple[float, float] | None = None
    window: str = "7d"
    min_labels: int = 50
    runner: Literal["local", "webhook", "github"] = "local"
    webhook_url: str | None = None
    webhook_timeout_s: float = 10.0
    github_repo: str | None = None
    github_workflow: str | None = None
    github_ref: str = "main"
    github_api_url: str = "https://api.github.com"
    include_labels: bool = True
    reweighing: bool = False
    holdout: str | None = None  # Parquet/CSV with the features and a `label` column
    max_metric_drop: float = 0.02  # the default holdout is in-sample for the champion: allow for it
    max_latency_ratio: float = 2.0
    # Out-of-time evaluation: the labelled production rows of the last ``evaluation_days`` (or the latest
    # ``evaluation_share`` of them) are never given to training; the gate scores both versions on them.
    evaluation_days: float = 7.0
    evaluation_share: float | None = None
    timeout_minutes: float = 120.0  # a training command running longer is stopped and its job failed
    env_passthrough: tuple[str, ...] = ()  # extra environment variables the training command may see


RETRAIN_KEYS: tuple[str, ...] = tuple(RetrainSpec.__dataclass_fields__)


@dataclass(frozen=True)
class LabellingSpec:
    """How the model's Label Studio tasks are shown to annotators (``[models.<name>.labelling]``).

    ``pre_annotate = false`` opens every task with nothing ticked, so the model's own answer cannot
    anchor the annotator (it stays readable in the task's text).
    """

    pre_annotate: bool = True


LABELLING_KEYS: tuple[str, ...] = tuple(LabellingSpec.__dataclass_fields__)

#: The EU AI Act's risk tiers, the default scale of ``risk_tier`` (``[controls] risk_tiers`` replaces it).
RISK_TIERS: tuple[str, ...] = ("prohibited", "high", "limited", "minimal")
LIFECYCLE_STATES: tuple[str, ...] = ("development", "validation", "production", "retired")


@dataclass(frozen=True)
class GovernanceSpec:
    """The inventory profile of a model (``[models.<name>.governance]``); a key left out may come from the
    registered model's MLflow tags instead (``vigil inventory set``), so every field is optional here."""

    risk_tier: str | None = None
    owner: str | None = None
    intended_use: str | None = None
    lifecycle_state: str | None = None


GOVERNANCE_KEYS: tuple[str, ...] = tuple(GovernanceSpec.__dataclass_fields__)


@dataclass(frozen=True)
class ControlsSpec:
    """Which control packs apply (``[controls]``): shipped pack ids or paths of a team's own TOML packs."""

    packs: tuple[str, ...] = ("eu-ai-act", "nist-ai-rmf")
    pack_files: tuple[Path, ...] = ()
    risk_tiers: tuple[str, ...] = RISK_TIERS


CONTROLS_KEYS: tuple[str, ...] = ("packs", "risk_tiers")


@dataclass(frozen=True)
class QualitySpec:
    """Bounds of the data-quality monitors (``[models.<name>.quality]``): a column fails a monitor when its
    missing share exceeds the reference's by more than ``missing_share_increase``, or its share of unseen
    categories or of values outside the reference range (or ``bounds``) exceeds the given share. Fewer
    than ``min_rows`` rows in a window or bucket: no verdict."""

    missing_share_increase: float = 0.05
    unseen_share: float = 0.01
    out_of_range_share: float = 0.01
    min_rows: int = 100
    bounds: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)


QUALITY_KEYS: tuple[str, ...] = tuple(QualitySpec.__dataclass_fields__)


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation in Great Expectations' vocabulary (``[[models.<name>.expectations]]``); the type is
    checked against the supported vocabulary when evaluated (an unsupported one is reported, never passed)."""

    name: str
    expectation_type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    severity: Literal["blocking", "warning"] = "warning"
    window: str | None = None
    phase: str | None = None
    key: str = ""  # where it is declared, for messages

    @property
    def column(self) -> str | None:
        col = self.kwargs.get("column")
        return str(col) if col is not None else None


EXPECTATION_KEYS: tuple[str, ...] = ("name", "expectation_type", "kwargs", "severity", "window", "phase")


@dataclass(frozen=True)
class ScheduleSpec:
    """When ``vigil serve`` runs each monitor of a model (``[models.<name>.schedule]``): five-field cron
    expressions in UTC, or ``"off"``. The retrain rule is off unless asked for, because it starts retrains."""

    policies: str | None = "*/15 * * * *"
    retrain: str | None = None
    sync_labels: str | None = "*/5 * * * *"
    aliases: str | None = "*/5 * * * *"

    def crons(self) -> dict[str, str]:
        """Monitor name -> cron expression, for the monitors that are on."""
        return {k: v for k in SCHEDULE_KEYS if (v := getattr(self, k))}


SCHEDULE_KEYS: tuple[str, ...] = tuple(ScheduleSpec.__dataclass_fields__)


@dataclass(frozen=True)
class ServeSpec:
    """``[serve]``: where ``vigil serve`` listens and how it bounds work (see README, `vigil serve`)."""

    host: str = "127.0.0.1"
    port: int = 8765
    public_url: str | None = None  # what Label Studio and MLflow call back; default http://127.0.0.1:<port>
    tick_s: float = 30.0
    lease_s: float = 600.0
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    max_body_bytes: int = 1_048_576
    queue_size: int = 100
    metrics_window: str = "24h"
    secret_file: Path | None = None  # webhook secret when VIGIL_SERVE_SECRET is unset (created 0600)

    def callback_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.port}").rstrip("/")


SERVE_KEYS: tuple[str, ...] = tuple(k for k in ServeSpec.__dataclass_fields__ if k != "secret_file")


def _parse_schedule(key: str, t: Any, problems: list[str]) -> ScheduleSpec:
    """The optional ``[models.<name>.schedule]`` table; each value a cron expression or "off"."""
    from croniter import croniter

    if not isinstance(t, Mapping):
        problems.append(f"{key}: must be a table, e.g. [models.<name>.schedule] with policies = \"*/15 * * * *\"")
        return ScheduleSpec()
    problems += [f"{key}.{k}: unknown key (known: {', '.join(SCHEDULE_KEYS)})" for k in sorted(set(t) - set(SCHEDULE_KEYS))]
    values: dict[str, str | None] = {}
    for k in SCHEDULE_KEYS:
        if k not in t:
            continue
        v = t[k]
        if isinstance(v, str) and v.strip().lower() in ("off", ""):
            values[k] = None
        elif isinstance(v, str) and len(v.split()) == 5 and croniter.is_valid(v):
            values[k] = " ".join(v.split())
        else:
            problems.append(f"{key}.{k}: '{v}' is not a five-field cron expression (minute hour day month weekday, "
                            "e.g. \"*/15 * * * *\") or \"off\"")
    return ScheduleSpec(**values)


def _parse_serve(raw: Any, data_dir: Path, env: Mapping[str, str], problems: list[str]) -> ServeSpec:
    """The optional ``[serve]`` table; VIGIL_SERVE_PORT and VIGIL_SERVE_PUBLIC_URL override it."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        problems.append("serve: must be a table ([serve])")
        raw = {}
    problems += [f"serve.{k}: unknown key (known: {', '.join(SERVE_KEYS)})" for k in sorted(set(raw) - set(SERVE_KEYS))]
    if "secret" in raw:
        problems.append("serve.secret: secrets do not belong in vigil.toml; set VIGIL_SERVE_SECRET (else Vigil "
                        "creates <data_dir>/serve.secret)")
    d = ServeSpec()
    values: dict[str, Any] = {"secret_file": data_dir / "serve.secret"}
    port = env.get("VIGIL_SERVE_PORT") or raw.get("port", d.port)
    try:
        values["port"] = int(port)
        if not 0 <= values["port"] < 65536:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"serve.port (or VIGIL_SERVE_PORT): '{port}' is not a port number")
    host = raw.get("host", d.host)
    if not isinstance(host, str) or not host:
        problems.append("serve.host: give the address to bind, e.g. \"127.0.0.1\"")
    else:
        values["host"] = host
    public = env.get("VIGIL_SERVE_PUBLIC_URL") or raw.get("public_url")
    if public is not None:
        if not isinstance(public, str) or not re.match(r"^https?://[^\s/]+", public):
            problems.append(f"serve.public_url (or VIGIL_SERVE_PUBLIC_URL): '{public}' is not an http(s) URL")
        else:
            values["public_url"] = public
    for k in ("tick_s", "lease_s", "retry_base_s", "retry_max_s"):
        if k in raw and (x := _number(raw[k], f"serve.{k}", problems)) is not None:
            values[k] = x
    for k in ("max_body_bytes", "queue_size"):
        if k in raw:
            v = raw[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.append(f"serve.{k}: must be a positive whole number, got {v!r}")
            else:
                values[k] = v
    if "metrics_window" in raw:
        values["metrics_window"] = str(raw["metrics_window"])
    spec = ServeSpec(**values)
    if spec.retry_max_s < spec.retry_base_s:
        problems.append("serve.retry_max_s: must be at least serve.retry_base_s")
    return spec


LAKE_FORMATS: tuple[str, ...] = ("parquet", "delta", "table")


@dataclass(frozen=True)
class LakeSpec:
    """``[models.<name>.lake]``: where a Spark-backed model's logs and labels live, read in place.

    ``logs``/``labels`` are paths (a Parquet folder or file, a Delta table) or, with ``format = "table"``,
    table names of the Spark catalog; both follow the log store's column contract.
    """

    logs: str
    labels: str | None = None
    format: str = "parquet"


@dataclass(frozen=True)
class SparkSpec:
    """``[spark]``: the session a Spark-backed model's queries run in."""

    #: ``local[*]`` (in-process), ``local[2]``, ``spark://host:7077`` or ``sc://host:15002`` (Spark Connect).
    master: str = "local[*]"
    app_name: str = "vigil"
    #: Extra Spark configuration (``spark.sql.shuffle.partitions`` and the like).
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """Everything Vigil needs to know about one model. ``name`` is the MLflow registered model name."""

    name: str
    features: Mapping[str, FeatureType]
    classes: tuple[str, ...]
    favourable: str
    protected: tuple[ProtectedAttribute, ...] = ()
    reference: ReferenceSpec = field(default_factory=ReferenceSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    policies: tuple[PolicySpec, ...] = ()
    drift_overrides: Mapping[str, DriftOverride] = field(default_factory=dict)
    training_command: str | None = None
    description: str = ""
    extra_columns: Literal["reject", "ignore"] = "reject"
    retrain: RetrainSpec = field(default_factory=RetrainSpec)
    labelling: LabellingSpec = field(default_factory=LabellingSpec)
    governance: GovernanceSpec = field(default_factory=GovernanceSpec)
    quality: QualitySpec = field(default_factory=QualitySpec)
    expectations: tuple[ExpectationSpec, ...] = ()
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    #: Query engine of this model (None: the ``[vigil] engine`` default).
    engine: str | None = None
    #: Where a Spark-backed model's logs and labels live.
    lake: LakeSpec | None = None

    @property
    def table_suffix(self) -> str:
        """A SQL-safe identifier derived from the model name (names are validated on load)."""
        return re.sub(r"[^A-Za-z0-9_]", "_", self.name).lower()

    def probability_column(self, cls: str) -> str:
        return f"proba_{re.sub(r'[^A-Za-z0-9_]', '_', cls)}"

    @property
    def probability_columns(self) -> tuple[str, ...]:
        return tuple(self.probability_column(c) for c in self.classes)

    @property
    def protected_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.protected)


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Paths are absolute once loaded."""

    data_dir: Path
    duckdb_path: Path
    mlflow_tracking_uri: str
    mlflow_ui_url: str | None
    mlflow_timeout_s: float
    label_studio_url: str | None
    label_studio_token: str | None = field(repr=False)  # a secret: never in repr or logs
    users_file: Path
    jobs_dir: Path
    models: Mapping[str, ModelConfig]
    config_path: Path | None = None
    lock_timeout_s: float = 60.0
    #: DuckDB ``memory_limit`` of each process's database (an owner's bounds all its users together).
    duckdb_memory_limit: str | None = "4GB"
    #: DuckDB worker threads per database (None: one per core).
    duckdb_threads: int | None = None
    #: Long-running processes (the app's server, ``vigil serve``) own the store and serve the others.
    store_owner: bool = True
    #: A manager may not approve a version they trained (off only for single-person setups).
    separation_of_duties: bool = True
    #: ``[serve]``: the address, callback URL and bounds of ``vigil serve``.
    serve: ServeSpec = field(default_factory=ServeSpec)
    #: Key file that signs audit checkpoints when neither VIGIL_AUDIT_KEY nor the secrets give a key.
    audit_key_file: Path | None = None
    controls: ControlsSpec = field(default_factory=ControlsSpec)
    #: ``[alerts]``: repeat interval, route timeout, retry back-off and the routes.
    alerts: AlertSettings = field(default_factory=lambda: AlertSettings())
    #: ``[vigil] engine``: the query engine of models that name none.
    engine: str = "duckdb"
    spark: SparkSpec = field(default_factory=SparkSpec)

    def engine_of(self, name: str) -> str:
        """The query engine that runs model ``name``'s aggregations."""
        return self.model(name).engine or self.engine

    def model(self, name: str) -> ModelConfig:
        """The configuration of ``name``, or a :class:`ConfigError` listing the configured models."""
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ConfigError(
                [f"models.{name}: no such model is configured (configured: {known}); add a [models.\"{name}\"] table"],
                source=str(self.config_path or "configuration"),
            ) from None


# --------------------------------------------------------------------------------------------- loading

ENV_KEYS: dict[str, str] = {
    "VIGIL_CONFIG": "path of the vigil.toml file (default ./vigil.toml)",
    "VIGIL_DATA_DIR": "folder for embedded state (default .vigil/)",
    "VIGIL_DUCKDB_PATH": "DuckDB log store file (default <data_dir>/vigil.duckdb)",
    "VIGIL_MLFLOW_URI": "MLflow tracking URI (default sqlite:///<data_dir>/mlflow.db)",
    "VIGIL_MLFLOW_UI_URL": "URL of the MLflow UI for links (default none)",
    "VIGIL_MLFLOW_TIMEOUT": "seconds to wait for an MLflow server (default 10)",
    "VIGIL_LABEL_STUDIO_URL": "Label Studio base URL",
    "VIGIL_LABEL_STUDIO_TOKEN": "Label Studio API token (never displayed)",
    "VIGIL_USERS_FILE": "users file for built-in sign-in (default <data_dir>/users.toml)",
    "VIGIL_LOCK_TIMEOUT": "seconds to wait for the DuckDB file lock (default 60)",
    "VIGIL_DUCKDB_MEMORY_LIMIT": "DuckDB memory_limit per process, e.g. 4GB (default 4GB; 'none' for DuckDB's own)",
    "VIGIL_DUCKDB_THREADS": "DuckDB worker threads per process (default: one per core)",
    "VIGIL_STORE_OWNER": "on/off: may the app's server own the store and serve other processes (default on)",
    "VIGIL_TOKEN": "API token a state-changing CLI command acts with (vigil users token create)",
    "VIGIL_SESSION_KEY": "key that signs the app's session cookies (default <data_dir>/session.key)",
    "VIGIL_CHROMIUM": "Chromium executable for PDF reports (default chromium on PATH)",
    "VIGIL_SEPARATION_OF_DUTIES": "on/off: may a manager approve a version they trained (default on)",
    "VIGIL_AUDIT_KEY": "key that signs audit checkpoints (else .streamlit/secrets.toml, else audit_key_file)",
    "VIGIL_AUDIT_KEY_FILE": "audit checkpoint key file (default <data_dir>/audit.key, created 0600)",
    "VIGIL_SERVE_PORT": "port of `vigil serve` (default serve.port, 8765)",
    "VIGIL_SERVE_PUBLIC_URL": "URL Label Studio and MLflow call `vigil serve` back at (default http://127.0.0.1:<port>)",
    "VIGIL_ENGINE": "query engine of models that name none: duckdb (default) or spark",
    "VIGIL_SPARK_MASTER": "Spark master of Spark-backed models (default spark.master, local[*]; sc://host:15002 for Spark Connect)",
    "VIGIL_SERVE_SECRET": "webhook secret of `vigil serve` (else <data_dir>/serve.secret, created 0600)",
}


def load_settings(config_path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if any) and the environment; raise :class:`ConfigError` listing all problems."""
    env = os.environ if env is None else env
    path_text = str(config_path) if config_path is not None else env.get("VIGIL_CONFIG")
    explicit = path_text is not None
    path = Path(path_text or DEFAULT_CONFIG_NAME).expanduser()
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML ({exc})"], source=str(path)) from None
    elif explicit:
        raise ConfigError([f"VIGIL_CONFIG: {path} does not exist; create it or unset VIGIL_CONFIG"],
                          source=str(path))
    base = path.parent.resolve() if path.is_file() else Path.cwd()
    return settings_from_mapping(raw, env=env, base_dir=base, config_path=path if path.is_file() else None)


_ON, _OFF = ("on", "true", "1", "yes"), ("off", "false", "0", "no")


def _switch(value: Any, key: str, problems: list[str]) -> bool:
    """An on/off setting from TOML (a boolean) or the environment (on/off, true/false, 1/0, yes/no)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _ON or text in _OFF:
        return text in _ON
    problems.append(f"{key}: '{value}' is not on or off")
    return True


def settings_from_mapping(raw: Mapping[str, Any], env: Mapping[str, str] | None = None,
                          base_dir: Path | None = None, config_path: Path | None = None) -> Settings:
    """Build :class:`Settings` from parsed TOML; all problems are collected before raising."""
    env = {} if env is None else env
    base_dir = base_dir or Path.cwd()
    problems: list[str] = []
    vig = raw.get("vigil", {})
    if not isinstance(vig, Mapping):
        problems.append("vigil: must be a table")
        vig = {}
    unknown_top = set(raw) - {"vigil", "models", "controls", "alerts", "serve", "spark"}
    problems += [f"{k}: unknown top-level key (expected [vigil], [models.<name>], [controls], [alerts], [serve] "
                 "and [spark])"
                 for k in sorted(unknown_top)]

    def pick(key: str, env_key: str, default: Any) -> Any:
        return env.get(env_key) or vig.get(key) or default

    def resolve(p: Any) -> Path:
        q = Path(str(p)).expanduser()
        return q if q.is_absolute() else (base_dir / q).resolve()

    data_dir = resolve(pick("data_dir", "VIGIL_DATA_DIR", DEFAULT_DATA_DIR))
    duckdb_path = resolve(pick("duckdb_path", "VIGIL_DUCKDB_PATH", data_dir / "vigil.duckdb"))
    mlflow_uri = str(pick("mlflow_tracking_uri", "VIGIL_MLFLOW_URI", f"sqlite:///{data_dir / 'mlflow.db'}"))
    if not re.match(r"^(sqlite|https?|file|postgresql|mysql|databricks)(\+\w+)?:", mlflow_uri) \
            and not mlflow_uri.startswith("/"):
        problems.append(f"vigil.mlflow_tracking_uri: '{mlflow_uri}' is not a URI MLflow accepts "
                        "(use sqlite:///path, http://host:port or file:///path)")
    ui_url = pick("mlflow_ui_url", "VIGIL_MLFLOW_UI_URL", None)
    if ui_url is None and mlflow_uri.startswith("http"):
        ui_url = mlflow_uri
    timeout = _number(pick("mlflow_timeout_s", "VIGIL_MLFLOW_TIMEOUT", 10), "vigil.mlflow_timeout_s", problems)
    lock_timeout = _number(pick("lock_timeout_s", "VIGIL_LOCK_TIMEOUT", 60), "vigil.lock_timeout_s", problems)
    memory_limit = _memory_limit(pick("duckdb_memory_limit", "VIGIL_DUCKDB_MEMORY_LIMIT", "4GB"), problems)
    threads = _threads(pick("duckdb_threads", "VIGIL_DUCKDB_THREADS", 0), problems)
    owner = _switch(env.get("VIGIL_STORE_OWNER", vig.get("store_owner", True)),
                    "vigil.store_owner (or VIGIL_STORE_OWNER)", problems)
    ls_url = pick("label_studio_url", "VIGIL_LABEL_STUDIO_URL", None)
    if "label_studio_token" in vig:
        problems.append("vigil.label_studio_token: secrets do not belong in vigil.toml; set "
                        "VIGIL_LABEL_STUDIO_TOKEN or .streamlit/secrets.toml instead")
    ls_token = env.get("VIGIL_LABEL_STUDIO_TOKEN") or None
    users_file = resolve(pick("users_file", "VIGIL_USERS_FILE", data_dir / "users.toml"))
    jobs_dir = resolve(vig.get("jobs_dir", data_dir / "jobs"))
    audit_key_file = resolve(pick("audit_key_file", "VIGIL_AUDIT_KEY_FILE", data_dir / "audit.key"))
    if "audit_key" in vig:
        problems.append("vigil.audit_key: secrets do not belong in vigil.toml; set the VIGIL_AUDIT_KEY "
                        "environment variable or put VIGIL_AUDIT_KEY in .streamlit/secrets.toml instead")
    if audit_key_file.is_dir():
        problems.append(f"vigil.audit_key_file: {audit_key_file} is a folder; name a file (default "
                        "<data_dir>/audit.key)")
    serve = _parse_serve(raw.get("serve"), data_dir, env, problems)
    sod = _switch(env.get("VIGIL_SEPARATION_OF_DUTIES", vig.get("separation_of_duties", True)),
                  "vigil.separation_of_duties (or VIGIL_SEPARATION_OF_DUTIES)", problems)

    models: dict[str, ModelConfig] = {}
    raw_models = raw.get("models", {})
    if not isinstance(raw_models, Mapping):
        problems.append("models: must be a table of [models.<name>] tables")
        raw_models = {}
    controls = _parse_controls(raw.get("controls", {}), base_dir, problems)
    for name, spec in raw_models.items():
        cfg = _parse_model(str(name), spec, problems, controls.risk_tiers)
        if cfg is not None:
            models[str(name)] = cfg
    suffixes: dict[str, str] = {}
    for name, cfg in models.items():
        other = suffixes.setdefault(cfg.table_suffix, name)
        if other != name:
            problems.append(f"models.{name}: name collides with models.{other} once made SQL-safe; rename one")

    alerts = _parse_alerts(raw.get("alerts"), models, problems)
    engine = str(pick("engine", "VIGIL_ENGINE", "duckdb"))
    if engine not in ENGINES:
        problems.append(f"vigil.engine: '{engine}' is not a query engine; use one of {', '.join(ENGINES)}")
    spark = _parse_spark(raw.get("spark", {}), env, problems)
    for name, cfg in models.items():
        if (cfg.engine or engine) == "spark" and cfg.lake is None:
            problems.append(f"models.{name}: runs on engine \"spark\" but has no [models.{name}.lake] table; "
                            "set lake.logs to the Parquet/Delta path of its prediction logs")

    if problems:
        raise ConfigError(problems, source=str(config_path or "configuration"))
    return Settings(
        data_dir=data_dir, duckdb_path=duckdb_path, mlflow_tracking_uri=mlflow_uri,
        mlflow_ui_url=str(ui_url) if ui_url else None, mlflow_timeout_s=float(timeout or 10),
        label_studio_url=str(ls_url).rstrip("/") if ls_url else None, label_studio_token=ls_token,
        users_file=users_file, jobs_dir=jobs_dir, models=models, config_path=config_path,
        lock_timeout_s=float(lock_timeout or 60), separation_of_duties=sod, audit_key_file=audit_key_file,
        duckdb_memory_limit=memory_limit, duckdb_threads=threads, store_owner=owner, controls=controls,
        serve=serve, alerts=alerts, engine=engine, spark=spark,
    )


def _parse_spark(t: Any, env: Mapping[str, str], problems: list[str]) -> SparkSpec:
    if not isinstance(t, Mapping):
        problems.append("spark: must be a table (master, app_name, conf)")
        return SparkSpec()
    problems += [f"spark.{k}: unknown key (known: app_name, conf, master)"
                 for k in sorted(set(t) - {"master", "app_name", "conf"})]
    master = str(env.get("VIGIL_SPARK_MASTER") or t.get("master", "local[*]"))
    if not re.match(r"^(local(\[(\*|\d+)\])?|spark://\S+|sc://\S+|yarn|k8s://\S+)$", master):
        problems.append(f"spark.master: '{master}' is not a Spark master; use local[*], local[2], "
                        "spark://host:7077 or sc://host:15002 (Spark Connect)")
    conf = t.get("conf", {})
    if not isinstance(conf, Mapping):
        problems.append("spark.conf: must be a table of Spark settings, e.g. \"spark.sql.shuffle.partitions\" = 8")
        conf = {}
    return SparkSpec(master=master, app_name=str(t.get("app_name", "vigil")),
                     conf={str(k): str(v) for k, v in conf.items()})


def _parse_lake(key: str, t: Any, problems: list[str]) -> LakeSpec | None:
    if t is None:
        return None
    if not isinstance(t, Mapping) or not t.get("logs"):
        problems.append(f"{key}: needs logs = \"<path or table of the prediction logs>\" (and optionally labels, "
                        "format)")
        return None
    problems += [f"{key}.{k}: unknown key (known: format, labels, logs)"
                 for k in sorted(set(t) - {"logs", "labels", "format"})]
    fmt = str(t.get("format", "parquet"))
    if fmt not in LAKE_FORMATS:
        problems.append(f"{key}.format: '{fmt}' is not one of {', '.join(LAKE_FORMATS)}")
    labels = t.get("labels")
    return LakeSpec(logs=str(t["logs"]), labels=str(labels) if labels else None, format=fmt)


_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def _memory_limit(value: Any, problems: list[str]) -> str | None:
    """DuckDB's ``memory_limit`` ("4GB", "512MiB"); "none" leaves DuckDB's default (80% of RAM)."""
    text = str(value).strip()
    if text.lower() == "none":
        return None
    if not _MEMORY.match(text):
        problems.append(f"vigil.duckdb_memory_limit: '{value}' is not a size like 4GB or 512MiB (or none)")
        return None
    return text.replace(" ", "")


def _threads(value: Any, problems: list[str]) -> int | None:
    text = str(value).strip()
    n = int(text) if text.isdigit() else -1
    if n < 0 or isinstance(value, bool | float):
        problems.append(f"vigil.duckdb_threads: '{value}' is not a whole number of threads (0 for one per core)")
        return None
    return n or None


def _number(value: Any, key: str, problems: list[str]) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        problems.append(f"{key}: '{value}' is not a number")
        return None
    if not math.isfinite(x) or x <= 0:
        problems.append(f"{key}: must be a positive number, got {value}")
        return None
    return x


def _parse_model(name: str, spec: Any, problems: list[str],
                 risk_tiers: tuple[str, ...] = RISK_TIERS) -> ModelConfig | None:
    key = f"models.{name}"
    if not isinstance(spec, Mapping):
        problems.append(f"{key}: must be a table")
        return None
    start = len(problems)
    if not MODEL_NAME_PATTERN.match(name):
        problems.append(f"{key}: model names start with a letter and use letters, digits, '-' or '_' (max 63)")
    known = {"features", "classes", "favourable", "protected", "reference", "thresholds", "policies",
             "drift", "training_command", "description", "extra_columns", "retrain", "labelling", "governance",
             "quality", "expectations", "schedule", "engine", "lake"}
    problems += [f"{key}.{k}: unknown key (known: {', '.join(sorted(known))})" for k in sorted(set(spec) - known)]

    features: dict[str, FeatureType] = {}
    raw_features = spec.get("features")
    if not isinstance(raw_features, Mapping) or not raw_features:
        problems.append(f"{key}.features: required table of column = \"numerical\"|\"categorical\"")
    else:
        for col, typ in raw_features.items():
            if not _is_identifier(col):
                problems.append(f"{key}.features.{col}: column names must be identifiers (letters, digits, _)")
            if typ not in FEATURE_TYPES:
                problems.append(f"{key}.features.{col}: type '{typ}' is not one of {', '.join(FEATURE_TYPES)}")
            else:
                features[col] = typ

    classes = tuple(str(c) for c in spec.get("classes", []) or [])
    if len(classes) < 2:
        problems.append(f"{key}.classes: list at least two class labels, e.g. classes = [\"bad\", \"good\"]")
    if len(set(classes)) != len(classes):
        problems.append(f"{key}.classes: class labels must be unique")
    favourable = str(spec.get("favourable", ""))
    if not favourable:
        problems.append(f"{key}.favourable: required: the class that benefits the subject, e.g. \"good\"")
    elif classes and favourable not in classes:
        problems.append(f"{key}.favourable: '{favourable}' is not one of classes {list(classes)}")

    protected: list[ProtectedAttribute] = []
    raw_protected = spec.get("protected", [])
    if not isinstance(raw_protected, list):
        problems.append(f"{key}.protected: must be an array of tables ([[models.{name}.protected]])")
        raw_protected = []
    for i, p in enumerate(raw_protected):
        attr = _parse_protected(f"{key}.protected[{i}]", p, problems)
        if attr is not None:
            protected.append(attr)
    names = [p.name for p in protected]
    if len(set(names)) != len(names):
        problems.append(f"{key}.protected: an attribute is listed twice")

    reference = _parse_reference(f"{key}.reference", spec.get("reference", {}), problems)
    thresholds = _parse_thresholds(f"{key}.thresholds", spec.get("thresholds", {}), problems)
    policies = tuple(pol for i, raw_pol in enumerate(spec.get("policies", []) or [])
                     if (pol := _parse_policy(f"{key}.policies[{i}]", raw_pol, problems)) is not None)
    overrides: dict[str, DriftOverride] = {}
    for col, ov in (spec.get("drift", {}) or {}).items():
        if not isinstance(ov, Mapping):
            problems.append(f"{key}.drift.{col}: must be a table with method and/or threshold")
            continue
        if features and col not in features and col not in ("prediction", "label"):
            problems.append(f"{key}.drift.{col}: not a feature of the model")
        thr = ov.get("threshold")
        if thr is not None and not isinstance(thr, int | float):
            problems.append(f"{key}.drift.{col}.threshold: must be a number")
            thr = None
        overrides[col] = DriftOverride(method=ov.get("method"), threshold=None if thr is None else float(thr))
    extra = spec.get("extra_columns", "reject")
    if extra not in ("reject", "ignore"):
        problems.append(f"{key}.extra_columns: must be \"reject\" or \"ignore\"")
    cmd = spec.get("training_command")
    if cmd is not None and not isinstance(cmd, str):
        problems.append(f"{key}.training_command: must be a string")

    retrain = _parse_retrain(f"{key}.retrain", spec.get("retrain", {}), problems)
    labelling = _parse_labelling(f"{key}.labelling", spec.get("labelling", {}), problems)
    governance = parse_governance(f"{key}.governance", spec.get("governance", {}), problems, risk_tiers)
    columns = set(features) | {p.name for p in protected}
    quality = _parse_quality(f"{key}.quality", spec.get("quality", {}), columns, problems)
    expectations = _parse_expectations(f"{key}.expectations", spec.get("expectations", []), problems)
    schedule = _parse_schedule(f"{key}.schedule", spec.get("schedule", {}), problems)
    model_engine = spec.get("engine")
    if model_engine is not None and model_engine not in ENGINES:
        problems.append(f"{key}.engine: '{model_engine}' is not a query engine; use one of {', '.join(ENGINES)}")
    lake = _parse_lake(f"{key}.lake", spec.get("lake"), problems)

    if len(problems) > start:
        return None
    return ModelConfig(
        name=name, features=features, classes=classes, favourable=favourable, protected=tuple(protected),
        reference=reference, thresholds=thresholds, policies=policies, drift_overrides=overrides,
        training_command=cmd, description=str(spec.get("description", "")), extra_columns=extra,
        retrain=retrain, labelling=labelling, governance=governance, quality=quality, expectations=expectations,
        schedule=schedule, engine=str(model_engine) if model_engine else None, lake=lake,
    )


def _is_identifier(col: Any) -> bool:
    return isinstance(col, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", col) is not None


def _parse_protected(key: str, p: Any, problems: list[str]) -> ProtectedAttribute | None:
    if not isinstance(p, Mapping):
        problems.append(f"{key}: must be a table with name and privileged")
        return None
    start = len(problems)
    attr_name = p.get("name")
    if not _is_identifier(attr_name):
        problems.append(f"{key}.name: required column name (letters, digits, _)")
    privileged = p.get("privileged")
    if not isinstance(privileged, list) or not privileged:
        problems.append(f"{key}.privileged: required non-empty list of privileged values")
        privileged = []
    bins = p.get("bins", [])
    labels = p.get("labels", [])
    if bins:
        if not all(isinstance(b, int | float) for b in bins) or len(bins) < 3 \
                or any(b2 <= b1 for b1, b2 in itertools.pairwise(bins)):
            problems.append(f"{key}.bins: need at least three strictly increasing numbers (edges)")
            bins = []
        elif labels and len(labels) != len(bins) - 1:
            problems.append(f"{key}.labels: {len(bins) - 1} bins need {len(bins) - 1} labels, got {len(labels)}")
    elif labels:
        problems.append(f"{key}.labels: labels only apply with bins")
    if len(problems) > start:
        return None
    attr = ProtectedAttribute(name=str(attr_name), privileged=tuple(str(v) for v in privileged),
                              bins=tuple(float(b) for b in bins), labels=tuple(str(label) for label in labels))
    if attr.is_binned:
        missing = [v for v in attr.privileged if v not in attr.bucket_labels()]
        if missing:
            problems.append(f"{key}.privileged: {missing} are not bucket labels {list(attr.bucket_labels())}")
            return None
    return attr


def _parse_reference(key: str, r: Any, problems: list[str]) -> ReferenceSpec:
    if not isinstance(r, Mapping):
        problems.append(f"{key}: must be a table")
        return ReferenceSpec()
    source = r.get("source", "training")
    window = r.get("window")
    if source not in ("training", "window"):
        problems.append(f"{key}.source: must be \"training\" or \"window\"")
        source = "training"
    if source == "window" and (not isinstance(window, str) or ".." not in window):
        problems.append(f"{key}.window: required as \"FROM..TO\" (ISO dates) when source = \"window\"")
    return ReferenceSpec(source=source, window=window,
                         artifact_path=str(r.get("artifact_path", ReferenceSpec.artifact_path)))


def _parse_retrain(key: str, r: Any, problems: list[str]) -> RetrainSpec:
    """The optional ``[models.<name>.retrain]`` table (retrain rule, runner, gate tolerances)."""
    if not isinstance(r, Mapping):
        problems.append(f"{key}: must be a table")
        return RetrainSpec()
    values: dict[str, Any] = {}
    for k, v in r.items():
        if k not in RETRAIN_KEYS:
            problems.append(f"{key}.{k}: unknown key (known: {', '.join(RETRAIN_KEYS)})")
        elif k in ("drift_share_above", "accuracy_below", "max_metric_drop", "max_latency_ratio",
                   "webhook_timeout_s", "min_labels"):
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                problems.append(f"{key}.{k}: must be a non-negative number")
            else:
                values[k] = int(v) if k == "min_labels" else float(v)
        elif k in ("evaluation_days", "timeout_minutes"):
            if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
                problems.append(f"{key}.{k}: must be a positive number (e.g. {getattr(RetrainSpec, k):g})")
            else:
                values[k] = float(v)
        elif k == "evaluation_share":
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0 < v < 1:
                problems.append(f"{key}.{k}: must be a share between 0 and 1 (e.g. 0.2), exclusive")
            else:
                values[k] = float(v)
        elif k == "env_passthrough":
            if not (isinstance(v, list) and all(isinstance(x, str) and x.replace("_", "").isalnum() for x in v)):
                problems.append(f"{key}.{k}: must be a list of environment variable names, e.g. [\"AWS_PROFILE\"]")
            else:
                values[k] = tuple(v)
        elif k == "disparate_impact_outside":
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v)
                    and v[0] < v[1]):
                problems.append(f"{key}.{k}: must be [low, high] with low < high, e.g. [0.8, 1.25]")
            else:
                values[k] = (float(v[0]), float(v[1]))
        elif k in ("include_labels", "reweighing"):
            if not isinstance(v, bool):
                problems.append(f"{key}.{k}: must be true or false")
            else:
                values[k] = v
        elif k == "runner":
            if v not in ("local", "webhook", "github"):
                problems.append(f"{key}.runner: must be \"local\", \"webhook\" or \"github\"")
            else:
                values[k] = v
        elif not isinstance(v, str) or not v:
            problems.append(f"{key}.{k}: must be a non-empty string")
        else:
            values[k] = v
    spec = RetrainSpec(**values)
    if "evaluation_days" in r and "evaluation_share" in r:
        problems.append(f"{key}: set evaluation_days or evaluation_share, not both")
    if spec.runner == "webhook" and not spec.webhook_url:
        problems.append(f"{key}.webhook_url: required when runner = \"webhook\"")
    if spec.runner == "github" and not (spec.github_repo and spec.github_workflow):
        problems.append(f"{key}: runner = \"github\" needs github_repo and github_workflow")
    return spec


def _parse_labelling(key: str, t: Any, problems: list[str]) -> LabellingSpec:
    """The optional ``[models.<name>.labelling]`` table (how Label Studio tasks are shown)."""
    if not isinstance(t, Mapping):
        problems.append(f"{key}: must be a table, e.g. [models.<name>.labelling] with pre_annotate = false")
        return LabellingSpec()
    problems += [f"{key}.{k}: unknown key (known: {', '.join(LABELLING_KEYS)})"
                 for k in sorted(set(t) - set(LABELLING_KEYS))]
    pre = t.get("pre_annotate", True)
    if not isinstance(pre, bool):
        problems.append(f"{key}.pre_annotate: must be true or false (without quotes), got {pre!r}")
        pre = True
    return LabellingSpec(pre_annotate=pre)


def check_governance_value(field_name: str, value: Any, risk_tiers: tuple[str, ...]) -> str | None:
    """Why ``value`` is not a valid ``field_name`` of the inventory profile, or None (also used for tags)."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if field_name == "risk_tier" and value not in risk_tiers:
        return f"'{value}' is not one of the risk tiers {', '.join(risk_tiers)} (set [controls] risk_tiers for a custom scale)"
    if field_name == "lifecycle_state" and value not in LIFECYCLE_STATES:
        return f"'{value}' is not one of {', '.join(LIFECYCLE_STATES)}"
    return None


def parse_governance(key: str, t: Any, problems: list[str], risk_tiers: tuple[str, ...] = RISK_TIERS
                     ) -> GovernanceSpec:
    """The optional ``[models.<name>.governance]`` table (risk tier, owner, intended use, lifecycle state)."""
    if not isinstance(t, Mapping):
        problems.append(f"{key}: must be a table, e.g. [models.<name>.governance] with risk_tier = \"high\"")
        return GovernanceSpec()
    problems += [f"{key}.{k}: unknown key (known: {', '.join(GOVERNANCE_KEYS)})"
                 for k in sorted(set(t) - set(GOVERNANCE_KEYS))]
    values: dict[str, str] = {}
    for k in GOVERNANCE_KEYS:
        if k in t:
            problem = check_governance_value(k, t[k], risk_tiers)
            if problem:
                problems.append(f"{key}.{k}: {problem}")
            else:
                values[k] = str(t[k]).strip()
    return GovernanceSpec(**values)


def _parse_controls(t: Any, base_dir: Path, problems: list[str]) -> ControlsSpec:
    """``[controls]``: ``packs`` lists shipped pack ids and/or paths of TOML packs (relative to the config
    file); ``risk_tiers`` a custom tier scale. Pack files are read (and checked) when the controls run."""
    if not isinstance(t, Mapping):
        problems.append("controls: must be a table, e.g. [controls] with packs = [\"eu-ai-act\"]")
        return ControlsSpec()
    problems += [f"controls.{k}: unknown key (known: {', '.join(CONTROLS_KEYS)})"
                 for k in sorted(set(t) - set(CONTROLS_KEYS))]
    default = ControlsSpec()
    packs = t.get("packs", list(default.packs))
    tiers = t.get("risk_tiers", list(default.risk_tiers))
    if not isinstance(packs, list) or not all(isinstance(p, str) and p.strip() for p in packs):
        problems.append("controls.packs: must be a list of pack ids (eu-ai-act, nist-ai-rmf) or .toml paths")
        packs = list(default.packs)
    if not isinstance(tiers, list) or not tiers or not all(isinstance(x, str) and x.strip() for x in tiers) \
            or len(set(tiers)) != len(tiers):
        problems.append("controls.risk_tiers: must be a non-empty list of distinct tier names, e.g. "
                        "[\"prohibited\", \"high\", \"limited\", \"minimal\"]")
        tiers = list(default.risk_tiers)
    ids = tuple(p for p in packs if not p.endswith(".toml"))
    files = tuple((Path(p).expanduser() if Path(p).expanduser().is_absolute() else (base_dir / p)).resolve()
                  for p in packs if p.endswith(".toml"))
    return ControlsSpec(packs=ids, pack_files=files, risk_tiers=tuple(tiers))


def _parse_quality(key: str, t: Any, columns: set[str], problems: list[str]) -> QualitySpec:
    """The optional ``[models.<name>.quality]`` table (monitor bounds and configured value ranges)."""
    if not isinstance(t, Mapping):
        problems.append(f"{key}: must be a table, e.g. [models.<name>.quality] with unseen_share = 0.01")
        return QualitySpec()
    problems += [f"{key}.{k}: unknown key (known: {', '.join(QUALITY_KEYS)})" for k in sorted(set(t) - set(QUALITY_KEYS))]
    values: dict[str, Any] = {}
    for k in ("missing_share_increase", "unseen_share", "out_of_range_share"):
        if k in t:
            v = t[k]
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1:
                problems.append(f"{key}.{k}: must be a share between 0 and 1, got {v!r}")
            else:
                values[k] = float(v)
    if "min_rows" in t:
        v = t["min_rows"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            problems.append(f"{key}.min_rows: must be a whole number of rows, at least 1, got {v!r}")
        else:
            values["min_rows"] = v
    bounds: dict[str, tuple[float | None, float | None]] = {}
    raw_bounds = t.get("bounds", {})
    if not isinstance(raw_bounds, Mapping):
        problems.append(f"{key}.bounds: must be a table of column = [low, high], e.g. bounds = {{ age = [18, 120] }}")
        raw_bounds = {}
    for col, b in raw_bounds.items():
        if col not in columns:
            problems.append(f"{key}.bounds.{col}: not a feature or protected attribute of the model")
        elif not (isinstance(b, list) and len(b) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                               for x in b) and b[0] <= b[1]):
            problems.append(f"{key}.bounds.{col}: must be [low, high] with low <= high, e.g. [0, 1]")
        else:
            bounds[str(col)] = (float(b[0]), float(b[1]))
    return QualitySpec(**values, bounds=bounds)


def _parse_expectations(key: str, raw: Any, problems: list[str]) -> tuple[ExpectationSpec, ...]:
    """``[[models.<name>.expectations]]``: each with ``expectation_type``, ``kwargs``, ``severity``, optional
    ``name``, ``window`` and ``phase``; names must be unique (each becomes a policy)."""
    if not isinstance(raw, list):
        problems.append(f"{key}: must be an array of tables ([[{key}]])")
        return ()
    out: list[ExpectationSpec] = []
    for i, e in enumerate(raw):
        k = f"{key}[{i}]"
        if not isinstance(e, Mapping):
            problems.append(f"{k}: must be a table with expectation_type and kwargs")
            continue
        start = len(problems)
        problems += [f"{k}.{x}: unknown key (known: {', '.join(EXPECTATION_KEYS)})"
                     for x in sorted(set(e) - set(EXPECTATION_KEYS))]
        etype = e.get("expectation_type")
        if not isinstance(etype, str) or not etype.startswith("expect_"):
            problems.append(f"{k}.expectation_type: required, a Great Expectations type such as "
                            "\"expect_column_values_to_not_be_null\"")
        kwargs = e.get("kwargs", {})
        if not isinstance(kwargs, Mapping):
            problems.append(f"{k}.kwargs: must be a table, e.g. kwargs = {{ column = \"age\", mostly = 0.95 }}")
        elif "column" in kwargs and not _is_identifier(kwargs["column"]):
            problems.append(f"{k}.kwargs.column: must be a column name (letters, digits, _)")
        severity = e.get("severity", "warning")
        if severity not in SEVERITIES:
            problems.append(f"{k}.severity: must be \"blocking\" or \"warning\"")
        phase = e.get("phase")
        if phase is not None and phase not in PHASES:
            problems.append(f"{k}.phase: must be one of {', '.join(PHASES)}")
        window = e.get("window")
        if window is not None and not isinstance(window, str):
            problems.append(f"{k}.window: must be a string such as \"7d\"")
        if len(problems) > start:
            continue
        column = kwargs.get("column")
        name = str(e.get("name") or (f"{etype}:{column}" if column else etype))
        out.append(ExpectationSpec(name=name, expectation_type=str(etype), kwargs=dict(kwargs), severity=severity,
                                   window=window, phase=phase, key=k))
    names = [x.name for x in out]
    problems += [f"{key}: the name '{n}' is used twice; give each expectation its own name"
                 for n in sorted({n for n in names if names.count(n) > 1})]
    return tuple(out)


def _parse_thresholds(key: str, t: Any, problems: list[str]) -> Thresholds:
    if not isinstance(t, Mapping):
        problems.append(f"{key}: must be a table")
        return Thresholds()
    defaults = Thresholds()
    values: dict[str, Any] = {}
    for k, v in t.items():
        if not hasattr(defaults, k):
            problems.append(f"{key}.{k}: unknown threshold (known: {', '.join(Thresholds.__dataclass_fields__)})")
        elif not isinstance(v, int | float) or isinstance(v, bool):
            problems.append(f"{key}.{k}: must be a number")
        elif k == "min_drift_rows" and (not float(v).is_integer() or v < 1):  # inf and NaN are not whole
            problems.append(f"{key}.{k}: must be a whole number of rows, at least 1")
        else:
            values[k] = int(v) if k in ("min_group_size", "min_drift_rows") else float(v)
    th = Thresholds(**values)
    if th.disparate_impact_low >= th.disparate_impact_high:
        problems.append(f"{key}: disparate_impact_low must be below disparate_impact_high")
    return th


def _parse_policy(key: str, p: Any, problems: list[str]) -> PolicySpec | None:
    if not isinstance(p, Mapping):
        problems.append(f"{key}: must be a table with metric, comparator, threshold")
        return None
    start = len(problems)
    metric = p.get("metric")
    if not isinstance(metric, str) or not metric:
        problems.append(f"{key}.metric: required")
    comparator = p.get("comparator")
    if comparator not in COMPARATORS:
        problems.append(f"{key}.comparator: must be one of {', '.join(COMPARATORS)}")
    threshold = p.get("threshold")
    thr: float | tuple[float, float] = 0.0
    if comparator in ("within", "outside"):
        if not (isinstance(threshold, list) and len(threshold) == 2
                and all(isinstance(x, int | float) for x in threshold)):
            problems.append(f"{key}.threshold: '{comparator}' needs [low, high]")
        else:
            thr = (float(threshold[0]), float(threshold[1]))
    elif not isinstance(threshold, int | float) or isinstance(threshold, bool):
        problems.append(f"{key}.threshold: must be a number")
    else:
        thr = float(threshold)
    severity = p.get("severity", "blocking")
    if severity not in SEVERITIES:
        problems.append(f"{key}.severity: must be \"blocking\" or \"warning\"")
    phase = p.get("phase")
    if phase is not None and phase not in PHASES:
        problems.append(f"{key}.phase: must be one of {', '.join(PHASES)} (default: the metric's own phase)")
    if len(problems) > start:
        return None
    params = {k: v for k, v in p.items()
              if k not in {"name", "metric", "comparator", "threshold", "severity", "window", "phase"}}
    return PolicySpec(name=str(p.get("name") or metric), metric=str(metric), comparator=str(comparator),
                      threshold=thr, severity=severity, window=p.get("window"), params=params, phase=phase)


def log_schema(cfg: ModelConfig) -> LogSchema:
    """The log-store view of a model: features first, then protected attributes that are not features."""
    columns: dict[str, str] = dict(cfg.features)
    for attr in cfg.protected:
        if attr.name not in columns:
            columns[attr.name] = "numerical" if attr.is_binned else "categorical"
    return LogSchema(model=cfg.name, features=tuple(cfg.features), columns=columns, classes=cfg.classes,
                     extra_columns=cfg.extra_columns)


# --------------------------------------------------------------------------------------------- alerts

ALERT_SEVERITIES: tuple[str, ...] = ("blocking", "warning", "info")  # most severe first
ROUTE_TYPES: tuple[str, ...] = ("webhook", "slack", "email")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ROUTE_KEYS: dict[str, set[str]] = {
    "webhook": {"url", "secret_env"},
    "slack": {"url", "url_env"},
    "email": {"smtp_host", "smtp_port", "starttls", "ca_file", "from", "to", "username", "password_env"},
}


def parse_duration(value: Any) -> float | None:
    """Seconds of ``"30s"``, ``"15m"``, ``"4h"``, ``"2d"`` or a bare number of seconds; ``None`` if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value > 0 else None
    m = _DURATION.match(str(value))
    if not m or float(m.group(1)) <= 0:
        return None
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True)
class AlertRoute:
    """Where alert notifications go. Secrets are named by environment variable, never stored here."""

    name: str
    type: str  # webhook | slack | email
    url: str | None = None
    url_env: str | None = None  # slack: the incoming-webhook URL is itself a secret
    secret_env: str | None = None  # webhook: HMAC key
    smtp_host: str | None = None
    smtp_port: int = 25
    starttls: bool = False
    sender: str | None = None
    to: tuple[str, ...] = ()
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # email: CA bundle that signs the SMTP server's certificate (default: system CAs)
    models: tuple[str, ...] = ()  # empty: every model
    min_severity: str = "info"

    def accepts(self, model: str, severity: str) -> bool:
        """Whether a notification of ``model`` at ``severity`` goes to this route."""
        if self.models and model not in self.models:
            return False
        rank = ALERT_SEVERITIES.index(severity) if severity in ALERT_SEVERITIES else len(ALERT_SEVERITIES)
        return rank <= ALERT_SEVERITIES.index(self.min_severity)


@dataclass(frozen=True)
class AlertSettings:
    """``[alerts]``: when to repeat, how long a route may take, how retries back off."""

    repeat_interval_s: float = 4 * 3600.0
    timeout_s: float = 10.0
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    routes: tuple[AlertRoute, ...] = ()


def _parse_alerts(raw: Any, models: Mapping[str, Any], problems: list[str]) -> AlertSettings:
    if raw is None:
        return AlertSettings()
    if not isinstance(raw, Mapping):
        problems.append("alerts: must be a table ([alerts])")
        return AlertSettings()
    known = {"repeat_interval", "timeout_s", "retry_base_s", "retry_max_s", "routes"}
    problems += [f"alerts.{k}: unknown key (expected {', '.join(sorted(known))})" for k in sorted(set(raw) - known)]
    values: dict[str, float] = {}
    defaults = AlertSettings()
    for key, attr in (("repeat_interval", "repeat_interval_s"), ("timeout_s", "timeout_s"),
                      ("retry_base_s", "retry_base_s"), ("retry_max_s", "retry_max_s")):
        if key in raw:
            seconds = parse_duration(raw[key])
            if seconds is None:
                problems.append(f"alerts.{key}: '{raw[key]}' is not a positive duration (e.g. 30s, 15m, 4h, 2d)")
            else:
                values[attr] = seconds
        else:
            values[attr] = float(getattr(defaults, attr))
    if values["retry_max_s"] < values["retry_base_s"]:
        problems.append("alerts.retry_max_s: must be at least alerts.retry_base_s")
    routes_raw = raw.get("routes", [])
    if not isinstance(routes_raw, list):
        problems.append("alerts.routes: must be an array of tables ([[alerts.routes]])")
        routes_raw = []
    routes: list[AlertRoute] = []
    for i, spec in enumerate(routes_raw):
        route = _parse_route(f"alerts.routes[{i}]", spec, models, problems)
        if route is not None:
            if any(r.name == route.name for r in routes):
                problems.append(f"alerts.routes[{i}].name: '{route.name}' is used by another route; names are unique")
            routes.append(route)
    return AlertSettings(routes=tuple(routes), **values)


def _parse_route(key: str, spec: Any, models: Mapping[str, Any], problems: list[str]) -> AlertRoute | None:
    if not isinstance(spec, Mapping):
        problems.append(f"{key}: must be a table")
        return None
    start = len(problems)
    name, kind = spec.get("name"), spec.get("type")
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        problems.append(f"{key}.name: give the route a name (letters, digits, _ or -)")
    if kind not in ROUTE_TYPES:
        problems.append(f"{key}.type: must be one of {', '.join(ROUTE_TYPES)}")
        return None
    allowed = _ROUTE_KEYS[str(kind)] | {"name", "type", "models", "min_severity"}
    problems += [f"{key}.{k}: unknown key for a {kind} route (expected {', '.join(sorted(allowed))})"
                 for k in sorted(set(spec) - allowed)]
    for secret in ("secret", "password", "token"):
        if secret in spec:
            problems.append(f"{key}.{secret}: secrets do not belong in vigil.toml; name an environment "
                            f"variable with {secret}_env instead")
    url = spec.get("url")
    needs_url = kind == "webhook" or (kind == "slack" and "url_env" not in spec)
    if needs_url and (not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url)):
        problems.append(f"{key}.url: give the http(s) URL to POST to" +
                        (" (or url_env naming the variable that holds it)" if kind == "slack" else ""))
    if kind == "webhook" and not isinstance(spec.get("secret_env"), str):
        problems.append(f"{key}.secret_env: name the environment variable holding the HMAC key")
    to = spec.get("to", [])
    to = [to] if isinstance(to, str) else to
    if kind == "email":
        if not isinstance(spec.get("smtp_host"), str):
            problems.append(f"{key}.smtp_host: give the SMTP server's host name")
        if not isinstance(spec.get("from"), str) or "@" not in spec.get("from", ""):
            problems.append(f"{key}.from: give the sender address")
        if not to or not isinstance(to, list) or not all(isinstance(a, str) and "@" in a for a in to):
            problems.append(f"{key}.to: give one or more recipient addresses")
        if ("username" in spec) != ("password_env" in spec):
            problems.append(f"{key}: username and password_env go together (SMTP login)")
    port = spec.get("smtp_port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append(f"{key}.smtp_port: must be a port number")
    model_names = spec.get("models", [])
    if not isinstance(model_names, list) or not all(isinstance(m, str) for m in model_names):
        problems.append(f"{key}.models: must be a list of model names")
        model_names = []
    problems += [f"{key}.models: '{m}' is not a configured model" for m in model_names if m not in models]
    min_severity = spec.get("min_severity", "info")
    if min_severity not in ALERT_SEVERITIES:
        problems.append(f"{key}.min_severity: must be one of {', '.join(ALERT_SEVERITIES)}")
    starttls = spec.get("starttls", False)
    if not isinstance(starttls, bool):
        problems.append(f"{key}.starttls: must be true or false")
    if len(problems) > start:
        return None
    return AlertRoute(name=str(name), type=str(kind), url=url, url_env=spec.get("url_env"),
                      secret_env=spec.get("secret_env"), smtp_host=spec.get("smtp_host"), smtp_port=int(port),
                      starttls=bool(starttls), sender=spec.get("from"), to=tuple(to),
                      username=spec.get("username"), password_env=spec.get("password_env"),
                      ca_file=spec.get("ca_file"), models=tuple(model_names), min_severity=str(min_severity))
