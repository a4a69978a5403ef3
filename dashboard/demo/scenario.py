"""The demo workspace: two registered credit-risk versions and 30 days of production logs with known events.

Everything is deterministic by seed, so tests and pages can assert what the demo contains. The facts
(dates, features, magnitudes) live in :class:`DemoScenario`; pages and tests refer to them rather than
repeating numbers. Logs are generated one day at a time in vectorised numpy chunks, scored by the two
real scikit-learn pipelines, written as one Parquet file per day under ``<dir>/demo_logs/`` (labels under
``<dir>/demo_labels/``) and loaded through the log store's ordinary, validated ingestion.

Injected events (days are 1-based within the 30 days ending at ``DemoScenario.end``):

* version 2 (trained on a sample biased against women, using ``sex``) serves 30% of traffic from day 10;
* a latency spike (x6) on day 12, 14:00-17:00 UTC;
* drift from day 20: reported ``income`` scaled by 1.4 (true risk follows real income, so accuracy drops)
  and the ``purpose`` mix shifts towards debt consolidation and business loans;
* an error burst (35% of requests with status 'error') on day 25, 09:00-10:00 UTC;
* a data-quality incident from day 23: ``debt_to_income`` arrives missing in 25% of the logs (the feed
  drops it after scoring) and ``purpose`` gets a category never seen in training (``crypto``, 6% of
  applications, which the model's encoder ignores);
* a Great Expectations validation of the champion's training data, run with GX itself and imported as
  evidence (when GX, the optional extra ``vigil[gx]``, is installed);
* ground truth for 40% of predictions, arriving 2-10 days late (label ``ts`` = arrival; labels that
  would arrive after the end date do not exist yet).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.audit.checkpoints import CHECKPOINT_FILE
from dashboard.demo import population
from dashboard.errors import VigilError

DEMO_CONFIG = Path(__file__).with_name("vigil.toml")
MARKER = "demo.json"
LOGS_DIR = "demo_logs"
LABELS_DIR = "demo_labels"
# Files and folders a demo build creates (and a --force rebuild removes); nothing else is touched.
# A rebuild starts a new store, so its audit trail's checkpoints go with it (the keys stay).
BUILD_OUTPUTS: tuple[str, ...] = ("mlflow.db", "mlartifacts", "vigil.duckdb", "vigil.duckdb.wal", LOGS_DIR,
                                  LABELS_DIR, MARKER, CHECKPOINT_FILE)
# Requests per hour of the day (UTC), relative: quiet nights, busy office hours.
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 4, 6, 9, 11, 12, 12, 11, 12, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3], float)

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class DemoScenario:
    """The facts of the demo scenario. Days are 1-based; day 1 starts at ``end - days``."""

    model: str = "credit-risk"
    seed: int = 42
    rows: int = 200_000
    training_rows: int = 20_000
    end: datetime = datetime(2026, 11, 1)  # exclusive, naive UTC
    days: int = 30
    drift_day: int = 20
    drift_features: tuple[str, ...] = ("income", "purpose")
    income_drift_factor: float = 1.4
    purpose_mix_after_drift: tuple[float, ...] = (0.15, 0.10, 0.45, 0.08, 0.14, 0.08)  # population.PURPOSE order
    v2_day: int = 10
    v2_traffic_share: float = 0.3
    unfair_version: str = "2"
    disadvantaged_group: tuple[str, str] = ("sex", "female")
    latency_spike_day: int = 12
    latency_spike_hours: tuple[int, int] = (14, 17)
    latency_spike_factor: float = 6.0
    latency_median_ms: float = 35.0
    error_burst_day: int = 25
    error_burst_hours: tuple[int, int] = (9, 10)
    error_burst_rate: float = 0.35
    baseline_error_rate: float = 0.002
    label_share: float = 0.4
    label_delay_days: tuple[float, float] = (2.0, 10.0)
    label_source: str = "ground_truth"
    quality_day: int = 23
    quality_null_feature: str = "debt_to_income"
    quality_null_share: float = 0.25
    quality_new_category: tuple[str, str] = ("purpose", "crypto")
    quality_new_category_share: float = 0.06
    gx_suite: str = "credit-risk-training"

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def day_start(self, day: int) -> datetime:
        """Midnight UTC opening 1-based ``day``."""
        return self.start + timedelta(days=day - 1)

    @property
    def drift_start(self) -> datetime:
        return self.day_start(self.drift_day)

    @property
    def quality_start(self) -> datetime:
        return self.day_start(self.quality_day)

    @property
    def v2_start(self) -> datetime:
        return self.day_start(self.v2_day)

    @property
    def latency_spike(self) -> tuple[datetime, datetime]:
        d = self.day_start(self.latency_spike_day)
        return d + timedelta(hours=self.latency_spike_hours[0]), d + timedelta(hours=self.latency_spike_hours[1])

    @property
    def error_burst(self) -> tuple[datetime, datetime]:
        d = self.day_start(self.error_burst_day)
        return d + timedelta(hours=self.error_burst_hours[0]), d + timedelta(hours=self.error_burst_hours[1])

    def rows_per_day(self) -> np.ndarray:
        """Daily volumes summing exactly to ``rows`` (weekends quieter), by largest remainder."""
        weekday = np.array([(self.day_start(d).weekday() < 5) for d in range(1, self.days + 1)])
        w = np.where(weekday, 1.0, 0.7)
        exact = self.rows * w / w.sum()
        counts = np.floor(exact).astype(np.int64)
        counts[np.argsort(-(exact - counts), kind="stable")[: self.rows - int(counts.sum())]] += 1
        return counts

    def facts(self) -> dict[str, Any]:
        """JSON-ready description (written to demo.json next to the data)."""
        out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}
        out.update(start=self.start.isoformat(), drift_start=self.drift_start.isoformat(),
                   v2_start=self.v2_start.isoformat(),
                   latency_spike=[t.isoformat() for t in self.latency_spike],
                   error_burst=[t.isoformat() for t in self.error_burst])
        return out


@dataclass
class DemoWorkspace:
    """A built demo folder."""

    folder: Path
    scenario: DemoScenario
    versions: dict[str, str] = field(default_factory=dict)  # alias -> version
    built: bool = True  # False when an existing build was reused

    @property
    def config_path(self) -> Path:
        return self.folder / "vigil.toml"

    @property
    def duckdb_path(self) -> Path:
        return self.folder / "vigil.duckdb"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"


def read_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return data


def build_workspace(folder: str | Path, *, rows: int = DemoScenario.rows, seed: int = DemoScenario.seed,
                    force: bool = False, progress: Progress | None = None) -> DemoWorkspace:
    """Build the demo into ``folder`` (vigil.toml, MLflow sqlite store + artifacts, DuckDB logs).

    Reuses a complete build with the same rows and seed unless ``force``; a different or incomplete
    build is replaced only with ``force`` (or when it is an unfinished demo build).
    """
    if rows < 1_000:
        raise VigilError(f"--rows {rows}: the demo needs at least 1000 rows to hold its events")
    say: Progress = progress or (lambda _m, _f: None)
    scenario = DemoScenario(rows=rows, seed=seed)
    root = Path(folder).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    marker = read_marker(root)
    if marker and not force:
        if marker.get("rows") == rows and marker.get("seed") == seed:
            _demo_users(root)
            say(f"demo workspace already built in {root} (rows={rows:,}, seed={seed}); use --force to rebuild", 1.0)
            return DemoWorkspace(root, scenario, dict(marker.get("versions", {})), built=False)
        raise VigilError(f"{root} holds a demo built with rows={marker.get('rows')}, seed={marker.get('seed')}; "
                         "pass --force to rebuild it with the new values")
    config = root / "vigil.toml"
    if config.exists() and config.read_text(encoding="utf-8") != DEMO_CONFIG.read_text(encoding="utf-8") \
            and not marker and not force:
        raise VigilError(f"{config} exists and is not the demo's configuration; choose another --dir "
                         "(or pass --force to build the demo there anyway)")
    _clean(root)
    if not config.exists() or config.read_text(encoding="utf-8") != DEMO_CONFIG.read_text(encoding="utf-8"):
        shutil.copyfile(DEMO_CONFIG, config)

    from dashboard.settings import load_settings, log_schema

    settings = load_settings(config, env={})
    workspace = DemoWorkspace(root, scenario)
    models = _train_versions(settings, scenario, workspace, say)
    paths, label_paths = _write_logs(root, scenario, models, workspace.versions, say)

    from connectors.logstore import LogStore

    store = LogStore(settings.duckdb_path, lock_timeout_s=settings.lock_timeout_s)
    schema = log_schema(settings.model(scenario.model))
    done = [0]

    def ingested(_r: Any) -> None:
        done[0] += 1
        say(f"ingested {done[0]}/{len(paths) + len(label_paths)} files", 0.7 + 0.3 * done[0] / (len(paths) + len(label_paths)))

    for report in (store.ingest(paths, schema, progress=ingested),
                   store.ingest_labels(label_paths, schema, source=scenario.label_source, progress=ingested)):
        if report.rejected:
            raise VigilError("the demo's own files were rejected:\n" + "\n".join(report.problem_lines()[:10]))
    _seed_cards(settings, scenario.model, workspace.versions)
    _validate_training_data(settings, scenario, workspace.versions, say)
    _demo_users(root)
    (root / MARKER).write_text(json.dumps({"rows": rows, "seed": seed, "versions": workspace.versions,
                                           "scenario": scenario.facts()}, indent=2), encoding="utf-8")
    say(f"demo workspace ready in {root}", 1.0)
    return workspace


def _seed_cards(settings: Any, model: str, versions: dict[str, str]) -> None:
    """Each demo version's first card revision, from the model_card.md its training run logged; then a
    signed checkpoint of the audit trail."""
    from dashboard.context import Context
    from dashboard.governance.cards import seed_card

    ctx = Context(settings)
    for version in sorted(versions.values(), key=int):
        seed_card(ctx, model, version)
    from dashboard.audit import anchor

    anchor.checkpoint(ctx)  # the demo opens with its audit trail anchored


def _validate_training_data(settings: Any, scenario: DemoScenario, versions: dict[str, str], say: Progress) -> None:
    """Run the demo's GX suite with Great Expectations on the champion's training data and import the
    result as evidence on that version (the demo says so when GX is not installed)."""
    from dashboard.governance import gx_run

    if not gx_run.gx_available():
        say(f"Great Expectations is not installed: no GX evidence in the demo ({gx_run.INSTALL_HINT})", 0.99)
        return
    from dashboard.access.roles import Actor
    from dashboard.context import Context
    from dashboard.governance import gx_results

    ctx = Context(settings)
    version = versions["champion"]
    frame = ctx.registry.load_training_data(scenario.model, version, settings.model(scenario.model).reference.artifact_path)
    payload, _ = gx_run.validate_frame(frame, training_suite(scenario))
    payload["meta"]["sample"] = {"rows": len(frame), "window_rows": len(frame), "window": f"training data of version "
                                 f"{version}", "method": "every row"}
    gx_results.import_result(ctx, Actor("vigil demo", "admin"), scenario.model, payload, version=version,
                             source="demo: training data")
    say(f"validated the training data of version {version} with Great Expectations", 0.99)


def training_suite(scenario: DemoScenario) -> dict[str, Any]:
    """The demo's GX Core 1.x suite for the training data (as a team would keep it in JSON)."""
    expectations: list[dict[str, Any]] = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c}} for c in population.FEATURES]
    expectations += [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 18, "max_value": 120}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "debt_to_income", "min_value": 0,
                                                                   "max_value": 1.5}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "purpose",
                                                                  "value_set": list(population.PURPOSE)}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "income", "min_value": 20_000,
                                                                 "max_value": 80_000}},
    ]
    return {"name": scenario.gx_suite, "expectations": expectations}


def _demo_users(root: Path) -> None:
    """The demo's sign-in accounts (one per role) and ``demo-users.txt`` listing them for ``make demo``."""
    from dashboard.access.users import DEMO_USERS, ensure_demo_users
    from dashboard.settings import load_settings

    settings = load_settings(root / "vigil.toml", env={})
    ensure_demo_users(settings.users_file)
    lines = ["Demo sign-in accounts (demo only: change or remove them with `vigil users` for real use)", ""]
    lines += [f"{name:<10} role {role:<15} password {password}" for name, (role, password) in DEMO_USERS.items()]
    (root / "demo-users.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _clean(root: Path) -> None:
    _forget_mlflow_stores(f"sqlite:///{root / 'mlflow.db'}")
    for name in BUILD_OUTPUTS:
        p = root / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _forget_mlflow_stores(db_uri: str) -> None:
    """MLflow caches one store and one SQLAlchemy engine per URI for the life of the process; once the
    sqlite file is deleted they write into a vanished file. Drop them so a rebuild opens fresh ones
    (only matters when a long-lived process rebuilds; ``vigil demo`` runs in its own)."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore
    from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    for cls in (TrackingStoreRegistry, ModelRegistryStoreRegistry):
        cached = getattr(cls, "_get_store_with_resolved_uri", None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()
    for store in (TrackingStore, RegistryStore):
        engines = getattr(store, "_engine_map", {})
        engine = engines.pop(db_uri, None)
        if engine is not None:
            engine.dispose()


def _train_versions(settings: Any, scenario: DemoScenario, workspace: DemoWorkspace, say: Progress
                    ) -> dict[str, Any]:
    """Version 1 (fair, champion) and version 2 (biased, challenger); returns version -> fitted pipeline."""
    from connectors.registry import Registry
    from dashboard.demo.train import train_model

    say("training version 1 (fair; champion)", 0.02)
    v1 = train_model(settings, scenario.model, seed=scenario.seed, rows=scenario.training_rows, variant="fair",
                     alias=None, description="Baseline credit-risk model: logistic regression on the ten "
                                             "application features. Serves all traffic.")
    say("training version 2 (biased sample, uses sex; challenger)", 0.08)
    v2 = train_model(settings, scenario.model, seed=scenario.seed + 1, rows=scenario.training_rows,
                     variant="biased", alias=None,
                     description="Challenger trained on a historically biased sample; serves "
                                 f"{scenario.v2_traffic_share:.0%} of traffic from day {scenario.v2_day}.")
    reg = Registry(settings.mlflow_tracking_uri, timeout_s=settings.mlflow_timeout_s)
    reg.update_model_description(scenario.model, settings.model(scenario.model).description)
    reg.set_alias(scenario.model, "champion", v1.model_version)
    reg.set_alias(scenario.model, "challenger", v2.model_version)
    reg.set_version_tag(scenario.model, v1.model_version, "validation_status", "approved")
    reg.set_version_tag(scenario.model, v2.model_version, "validation_status", "pending")
    reg.set_version_tag(scenario.model, v2.model_version, "traffic_share", str(scenario.v2_traffic_share))
    workspace.versions = {"champion": v1.model_version, "challenger": v2.model_version}
    return {v1.model_version: v1.model, v2.model_version: v2.model}


def _write_logs(root: Path, scenario: DemoScenario, models: dict[str, Any], versions: dict[str, str],
                say: Progress) -> tuple[list[Path], list[Path]]:
    logs_dir, labels_dir = root / LOGS_DIR, root / LABELS_DIR
    logs_dir.mkdir(exist_ok=True)
    labels_dir.mkdir(exist_ok=True)
    counts = scenario.rows_per_day()
    paths, label_paths = [], []
    for day in range(1, scenario.days + 1):
        logs, labels = day_frames(scenario, day, int(counts[day - 1]), models, versions)
        path = logs_dir / f"logs_day{day:02d}_{scenario.day_start(day):%Y-%m-%d}.parquet"
        logs.to_parquet(path, index=False)
        paths.append(path)
        if len(labels):
            lpath = labels_dir / f"labels_day{day:02d}.parquet"
            labels.to_parquet(lpath, index=False)
            label_paths.append(lpath)
        say(f"generated day {day}/{scenario.days} ({len(logs):,} rows)", 0.1 + 0.6 * day / scenario.days)
    return paths, label_paths


def day_frames(scenario: DemoScenario, day: int, n: int, models: dict[str, Any], versions: dict[str, str]
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The prediction logs of one day and the labels for them that arrive before the end date."""
    rng = np.random.default_rng([scenario.seed, 2_000 + day])
    start = np.datetime64(scenario.day_start(day), "us")
    hours = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    offsets_us = (hours * 3_600_000_000 + (rng.random(n) * 3_600_000_000).astype(np.int64))
    offsets_us.sort()
    ts = start + offsets_us.astype("timedelta64[us]")

    drifted = day >= scenario.drift_day
    pop = population.generate(rng, n, income_factor=scenario.income_drift_factor if drifted else 1.0,
                              purpose_p=np.array(scenario.purpose_mix_after_drift) if drifted else None)
    frame = pop.frame
    quality_rng = np.random.default_rng([scenario.seed, 3_000 + day])  # its own stream: other events unchanged
    incident = day >= scenario.quality_day
    if incident:
        column, category = scenario.quality_new_category
        frame[column] = np.where(quality_rng.random(n) < scenario.quality_new_category_share, category,
                                 frame[column].to_numpy()).astype(object)
    champion, challenger = versions["champion"], versions["challenger"]
    use_v2 = (rng.random(n) < scenario.v2_traffic_share) if day >= scenario.v2_day else np.zeros(n, bool)
    version = np.where(use_v2, challenger, champion).astype(object)
    proba_good = np.empty(n)
    for v, mask in ((champion, ~use_v2), (challenger, use_v2)):
        if mask.any():
            pipe = models[v]
            cols = list(pipe.feature_names_in_)
            proba_good[mask] = pipe.predict_proba(frame.loc[mask, cols])[:, list(pipe.classes_).index("good")]
    prediction = np.where(proba_good >= 0.5, "good", "bad").astype(object)

    latency = rng.lognormal(np.log(scenario.latency_median_ms), 0.4, n) + np.where(use_v2, 8.0, 0.0)
    spike_lo, spike_hi = (np.datetime64(t, "us") for t in scenario.latency_spike)
    latency = np.where((ts >= spike_lo) & (ts < spike_hi), latency * scenario.latency_spike_factor, latency)
    burst_lo, burst_hi = (np.datetime64(t, "us") for t in scenario.error_burst)
    in_burst = (ts >= burst_lo) & (ts < burst_hi)
    u = rng.random(n)
    error = (u < scenario.baseline_error_rate) | (in_burst & (u < scenario.error_burst_rate))

    truth = pop.draw_labels(rng)
    labelled = rng.random(n) < scenario.label_share
    delay_us = (rng.uniform(*scenario.label_delay_days, n) * 86_400_000_000).astype(np.int64)
    arrival = ts + delay_us.astype("timedelta64[us]")

    ids = pd.Series(np.arange(n)).astype(str).str.zfill(7).radd(f"cr-{day:02d}-").to_numpy()
    logs = pd.DataFrame({"prediction_id": ids, "model_name": scenario.model, "model_version": version,
                         "ts": pd.to_datetime(ts)})
    for col in (*population.FEATURES, "sex"):
        logs[col] = frame[col].to_numpy()
    if incident:
        dropped = quality_rng.random(n) < scenario.quality_null_share
        logs[scenario.quality_null_feature] = np.where(dropped, np.nan, logs[scenario.quality_null_feature])
    logs["prediction"] = prediction
    logs["score"] = np.maximum(proba_good, 1.0 - proba_good).round(6)
    logs["proba_bad"] = (1.0 - proba_good).round(6)
    logs["proba_good"] = proba_good.round(6)
    logs["latency_ms"] = latency.round(2)
    logs["status"] = np.where(error, "error", "ok").astype(object)

    keep = labelled & (arrival < np.datetime64(scenario.end, "us"))
    labels = pd.DataFrame({"prediction_id": ids[keep], "label": truth[keep], "ts": pd.to_datetime(arrival[keep])})
    return logs, labels
