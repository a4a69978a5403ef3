"""Operations of a production model: latency, errors and throughput per time bucket and version, and the SLO.

Why this shape: the database returns one row per bucket (or version) with exact latency quantiles
(:mod:`connectors.queries.operations`); the SLO verdict, breach ranges and gap filling are arithmetic over
those rows. The page, the CLI and the Prometheus exporter call :func:`compute_operations`.

Definitions (also shown on the page):

* latency statistics use every row with a ``latency_ms`` value (failed requests too); rows without one
  (empty, or NaN in a store written before ingestion turned NaN into empty) are counted in ``n``, in
  ``rows_without_latency`` and ``latency_missing_share``, and reported in the notes: a p95 over the few
  rows that have a latency is no evidence about the many that lack one;
* error rate = rows whose ``status`` is not ``'ok'`` / rows;
* throughput = requests per bucket; the overall ``throughput_per_hour`` divides the requests by the hours
  from the first to the end of the last bucket that saw traffic (idle buckets in between count as 0);
* two objectives are judged per bucket, the same way: the latency SLO ``p95 <= threshold`` and the error
  objective ``error rate <= threshold``. Each threshold is the model's declared policy on the metric
  (``latency_p95_ms``; ``error_rate``) when there is one with ``<`` or ``<=``, else
  ``thresholds.latency_p95_ms`` (default 200 ms) or ``thresholds.error_rate``. A bucket breaches when its
  value is above the threshold (at it, too, for a ``<`` policy); consecutive breaching buckets form one
  breach range ``[start, end)``; an idle bucket is not judged and ends a range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from connectors.queries import operations as q
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.settings import ModelConfig

__all__ = ["BUCKETS", "OBJECTIVES", "Objective", "OpsReport", "SloStatus", "breach_ranges", "compute_operations",
           "data_span", "error_objective", "fill_buckets", "judge", "latency_objective", "logged_versions",
           "objective", "slo_threshold"]

BUCKETS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class _ObjectiveSpec:
    """How one objective reads the buckets: the column judged, the policy metrics that set its threshold,
    the default threshold's field, and the names of its per-bucket flag and of its breaches' worst value."""

    column: str
    metrics: tuple[str, ...]
    threshold_field: str
    flag: str
    worst: str
    label: str


OBJECTIVES: dict[str, _ObjectiveSpec] = {
    "latency_p95_ms": _ObjectiveSpec("p95_ms", ("latency_p95_ms", "latency_p95"), "latency_p95_ms", "breach",
                                     "worst_p95_ms", "p95"),
    "error_rate": _ObjectiveSpec("error_rate", ("error_rate",), "error_rate", "error_breach", "worst_error_rate",
                                 "error rate"),
}


@dataclass(frozen=True)
class Objective:
    """One objective judged per bucket: the bucket's ``metric`` value must not be above ``threshold``."""

    metric: str  # a key of OBJECTIVES
    threshold: float
    source: str  # "policy <name>" or "thresholds.<field>"
    strict: bool = False  # from a "<" policy: a value equal to the threshold breaches too

    @property
    def spec(self) -> _ObjectiveSpec:
        return OBJECTIVES[self.metric]

    def shown(self, value: float) -> str:
        """A value of this objective's metric as text: ``200 ms``, ``2.00%``."""
        if self.metric == "error_rate":
            return f"{value:.2%}"
        return f"{value:.1f}".rstrip("0").rstrip(".") + " ms"

    @property
    def text(self) -> str:
        """The promise in words: ``p95 ≤ 200 ms``, ``error rate ≤ 2.00%``."""
        return f"{self.spec.label} {'<' if self.strict else '≤'} {self.shown(self.threshold)}"

    def exceeded(self, value: float | None) -> bool:
        """Whether one value breaks the objective (None never does: nothing is known)."""
        return bool(self.breached(pd.Series([value], dtype="float64")).iloc[0])

    def breached(self, values: pd.Series) -> pd.Series:
        """Per bucket, whether its value breaks the objective (False where there is no value)."""
        v = pd.to_numeric(values, errors="coerce")
        over = v >= self.threshold if self.strict else v > self.threshold
        return (v.notna() & over).astype(bool)


@dataclass(frozen=True)
class SloStatus:
    """One objective over the window: its threshold, where that came from, and the breaches."""

    objective: Objective
    buckets_scored: int  # buckets with a value (latency values; requests)
    buckets_in_breach: int
    breaches: pd.DataFrame  # start, end, buckets, worst_<metric>, requests, errors

    @property
    def threshold(self) -> float:
        return self.objective.threshold

    @property
    def threshold_ms(self) -> float:
        """The threshold under the latency SLO's name (the exporter's ``vigil_latency_slo_ms``)."""
        return self.objective.threshold

    @property
    def source(self) -> str:
        return self.objective.source

    @property
    def breach_share(self) -> float | None:
        return self.buckets_in_breach / self.buckets_scored if self.buckets_scored else None

    @property
    def met(self) -> bool | None:
        """True when no bucket breached (None when no bucket had a value to judge)."""
        return None if not self.buckets_scored else self.buckets_in_breach == 0


@dataclass(frozen=True)
class OpsReport:
    """Latency, errors and throughput of one model (optionally one version) over a window."""

    model: str
    window: Window
    bucket: str
    version: str | None
    requests: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None
    latency_max_ms: float | None
    rows_without_latency: int
    latency_missing_share: float  # rows_without_latency / requests
    throughput_per_hour: float
    buckets: pd.DataFrame  # bucket, n, n_error, n_latency, p50/p95/p99/mean/max_ms, error_rate,
    #                        latency_missing_share, breach (latency), error_breach
    versions: pd.DataFrame  # version, n, n_error, error_rate, latency stats, latency_missing_share,
    #                         throughput_per_hour, share
    version_buckets: pd.DataFrame  # bucket, version, latency stats and counts (for per-version charts)
    slo: SloStatus  # latency
    error_slo: SloStatus
    notes: tuple[str, ...] = field(default=())

    @property
    def error_rate_threshold(self) -> float:
        return self.error_slo.threshold

    @property
    def slos(self) -> tuple[SloStatus, SloStatus]:
        """Every objective judged, latency first (what the page's banners and the CLI list)."""
        return self.slo, self.error_slo

    def summary(self) -> dict[str, Any]:
        """The headline numbers (what the CLI prints and the exporter publishes)."""
        return {"model": self.model, "window": self.window.label, "version": self.version,
                "requests": self.requests, "errors": self.errors, "error_rate": self.error_rate,
                "latency_p50_ms": self.latency_p50_ms, "latency_p95_ms": self.latency_p95_ms,
                "latency_p99_ms": self.latency_p99_ms, "latency_mean_ms": self.latency_mean_ms,
                "latency_max_ms": self.latency_max_ms, "latency_rows": self.requests - self.rows_without_latency,
                "rows_without_latency": self.rows_without_latency,
                "latency_missing_share": self.latency_missing_share, "throughput_per_hour": self.throughput_per_hour,
                "slo_threshold_ms": self.slo.threshold_ms, "slo_source": self.slo.source,
                "slo_met": self.slo.met, "slo_breach_share": self.slo.breach_share,
                "slo_buckets_in_breach": self.slo.buckets_in_breach,
                "error_rate_threshold": self.error_slo.threshold, "error_rate_source": self.error_slo.source,
                "error_slo_met": self.error_slo.met, "error_slo_breach_share": self.error_slo.breach_share,
                "error_slo_buckets_in_breach": self.error_slo.buckets_in_breach,
                "error_slo_buckets_scored": self.error_slo.buckets_scored}


def objective(cfg: ModelConfig, metric: str) -> Objective:
    """The objective on ``metric`` (a key of :data:`OBJECTIVES`): the first declared policy on it with
    ``<`` or ``<=`` and a number wins over the model's threshold (the same threshold ``vigil check``
    holds the window's value to), so the page, the CLI and the policy never disagree on the limit."""
    spec = OBJECTIVES[metric]
    for pol in cfg.policies:
        if pol.metric in spec.metrics and pol.comparator in ("<", "<=") \
                and isinstance(pol.threshold, int | float) and not isinstance(pol.threshold, bool):
            return Objective(metric, float(pol.threshold), f"policy {pol.name}", strict=pol.comparator == "<")
    return Objective(metric, float(getattr(cfg.thresholds, spec.threshold_field)),
                     f"thresholds.{spec.threshold_field}")


def latency_objective(cfg: ModelConfig) -> Objective:
    return objective(cfg, "latency_p95_ms")


def error_objective(cfg: ModelConfig) -> Objective:
    return objective(cfg, "error_rate")


def slo_threshold(cfg: ModelConfig) -> tuple[float, str]:
    """The p95 latency objective (ms) and where it came from."""
    o = latency_objective(cfg)
    return o.threshold, o.source


def fill_buckets(df: pd.DataFrame, step: timedelta) -> pd.DataFrame:
    """Add idle buckets (no requests) between the first and last observed bucket, with ``n = 0``."""
    if df.empty:
        return df
    full = pd.date_range(df["bucket"].min(), df["bucket"].max(), freq=pd.Timedelta(step))
    out = df.set_index("bucket").reindex(full)
    out.index.name = "bucket"
    for col in ("n", "n_error", "n_latency"):
        out[col] = out[col].fillna(0).astype("int64")
    return out.reset_index()


def breach_ranges(buckets: pd.DataFrame, objective: Objective, step: timedelta) -> pd.DataFrame:
    """Consecutive buckets that breach ``objective`` merged into ``[start, end)`` ranges, with the worst
    value, the requests and the errors of each range.

    An idle bucket (no value to judge) ends a range: nothing is known to breach there.
    """
    spec = objective.spec
    flags = objective.breached(buckets[spec.column]).tolist()
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for rec, breach in zip(buckets.to_dict(orient="records"), flags, strict=True):
        start = pd.Timestamp(rec["bucket"]).to_pydatetime()
        if not breach:
            current = None
            continue
        value = float(rec[spec.column])
        if current is None or current["end"] != start:
            current = {"start": start, "end": start, "buckets": 0, spec.worst: value, "requests": 0, "errors": 0}
            rows.append(current)
        current["end"] = start + step
        current["buckets"] += 1
        current[spec.worst] = max(current[spec.worst], value)
        current["requests"] += int(rec["n"])
        current["errors"] += int(rec["n_error"])
    return pd.DataFrame(rows, columns=["start", "end", "buckets", spec.worst, "requests", "errors"])


def judge(buckets: pd.DataFrame, objective: Objective, step: timedelta) -> SloStatus:
    """Flag each bucket against ``objective`` (adds its flag column to ``buckets``) and merge the
    breaches into ranges."""
    spec = objective.spec
    buckets[spec.flag] = objective.breached(buckets[spec.column])
    return SloStatus(objective=objective, buckets_scored=int(buckets[spec.column].notna().sum()),
                     buckets_in_breach=int(buckets[spec.flag].sum()),
                     breaches=breach_ranges(buckets, objective, step))


def data_span(ctx: Context, model: str, version: str | None = None) -> tuple[datetime | None, datetime | None, int]:
    """First and last prediction time and row count (the page's default window)."""
    schema = ctx.schema(model)
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        return q.time_range(con, schema, version)


def logged_versions(ctx: Context, model: str) -> list[str]:
    """Every model version with logged predictions (the page's version selector)."""
    schema = ctx.schema(model)
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        return q.versions(con, schema, datetime.min, datetime.max)


def _hours(df: pd.DataFrame, step: timedelta) -> float:
    """Hours from the first to the end of the last bucket with traffic."""
    active = df[df["n"] > 0]
    if active.empty:
        return 0.0
    span = active["bucket"].max() - active["bucket"].min() + pd.Timedelta(step)
    return float(span / pd.Timedelta(hours=1))


def _opt(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _missing_share(df: pd.DataFrame) -> pd.Series:
    """Per row of ``df`` (a bucket or a version): share of requests without a latency (NaN when idle)."""
    return (df["n"] - df["n_latency"]) / df["n"].where(df["n"] > 0)


def _latency_notes(requests: int, missing: int) -> list[str]:
    """What the latency statistics leave out, said in the report (a p95 of few rows hides the rest)."""
    if missing == requests:
        return [f"none of the {requests} predictions has a latency_ms value (all empty or NaN), so there are "
                "no latency statistics and no SLO verdict; log latency_ms with each prediction"]
    if missing:
        return [f"{missing} of {requests} predictions have no latency_ms value ({missing / requests:.1%}; empty "
                "or NaN) and are left out of the latency statistics; log latency_ms with each prediction"]
    return []


def _single_error_notes(slo: SloStatus, buckets: pd.DataFrame, bucket: str) -> list[str]:
    """Say when breaches of the error objective are single errors: in a quiet bucket one failed request is
    already above the threshold, which the reader should know before taking it for an incident."""
    hit = buckets[buckets[slo.objective.spec.flag]]
    single = int((hit["n_error"] == 1).sum())
    if not single:
        return []
    quiet = f" (in fewer than {math.ceil(1 / slo.threshold)} requests)" if slo.threshold > 0 else ""
    longer = "; a day bucket judges more requests at once" if bucket == "hour" else ""
    return [f"{single} of the {slo.buckets_in_breach} {bucket}s that breach {slo.objective.text} hold a single "
            f"error: one failed request{quiet} is already above the threshold{longer}"]


def _no_rows_message(ctx: Context, model: str, window: Window, version: str | None) -> str:
    first, last, n = data_span(ctx, model, version)
    what = f"model {model}" + (f" version {version}" if version else "")
    if n == 0 and version is not None:
        schema = ctx.schema(model)
        with ctx.connect(model) as con:
            known = q.versions(con, schema, datetime.min, datetime.max)
        return (f"version '{version}' has no predictions of model {model} in the log store; "
                f"versions logged: {', '.join(known) or 'none'}")
    if n == 0:
        return (f"no predictions of {what} are in the log store; ingest logs with "
                f"`vigil ingest --model {model} FILES`")
    return (f"no predictions of {what} in {window.label}; its logs cover "
            f"{first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M} UTC: choose a window inside that range")


@progress.step("operations: latency, errors and throughput per bucket")
def compute_operations(ctx: Context, model: str, window: Window, bucket: str = "hour",
                       version: str | None = None) -> OpsReport:
    """Latency, error rate, throughput and the latency SLO of ``model`` over ``window``.

    Raises :class:`VigilError` for an unknown bucket or version, or a window without predictions.
    """
    if bucket not in BUCKETS:
        raise VigilError(f"bucket '{bucket}' is not one of {', '.join(BUCKETS)}")
    cfg = ctx.model(model)
    schema = ctx.schema(model)
    step = BUCKETS[bucket]
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        overall = q.latency_stats(con, schema, window.start, window.end, version=version)
        per_bucket = q.latency_stats(con, schema, window.start, window.end, bucket=bucket, version=version)
        per_version = q.latency_stats(con, schema, window.start, window.end, by_version=True)
        per_version_buckets = q.latency_stats(con, schema, window.start, window.end, bucket=bucket,
                                              by_version=True)
    tot = overall.iloc[0]
    requests = int(tot["n"])
    if requests == 0:
        raise VigilError(_no_rows_message(ctx, model, window, version))

    missing = requests - int(tot["n_latency"])
    notes = _latency_notes(requests, missing)
    buckets = fill_buckets(per_bucket, step)
    buckets["error_rate"] = buckets["n_error"] / buckets["n"].where(buckets["n"] > 0)
    buckets["latency_missing_share"] = _missing_share(buckets)
    slo = judge(buckets, latency_objective(cfg), step)
    error_slo = judge(buckets, error_objective(cfg), step)
    notes += _single_error_notes(error_slo, buckets, bucket)
    hours = _hours(buckets, step)

    per_version["error_rate"] = per_version["n_error"] / per_version["n"]
    per_version["latency_missing_share"] = _missing_share(per_version)
    per_version["share"] = per_version["n"] / per_version["n"].sum() if len(per_version) else []
    if version is not None and version not in set(per_version["version"]):
        raise VigilError(f"version '{version}' has no predictions in {window.label}; versions there: "
                         f"{', '.join(per_version['version']) or 'none'}")
    spans = per_version_buckets.groupby("version")["bucket"].agg(["min", "max"])
    hours_by_version = {str(v): float((r["max"] - r["min"] + pd.Timedelta(step)) / pd.Timedelta(hours=1))
                        for v, r in spans.iterrows()}
    per_version["throughput_per_hour"] = [n / hours_by_version[str(v)] for v, n in
                                          zip(per_version["version"], per_version["n"], strict=True)]

    return OpsReport(
        model=model, window=window, bucket=bucket, version=version, requests=requests,
        errors=int(tot["n_error"]), error_rate=int(tot["n_error"]) / requests,
        latency_p50_ms=_opt(tot["p50_ms"]), latency_p95_ms=_opt(tot["p95_ms"]), latency_p99_ms=_opt(tot["p99_ms"]),
        latency_mean_ms=_opt(tot["mean_ms"]), latency_max_ms=_opt(tot["max_ms"]),
        rows_without_latency=missing, latency_missing_share=missing / requests,
        throughput_per_hour=requests / hours if hours else 0.0, buckets=buckets, versions=per_version,
        version_buckets=per_version_buckets, slo=slo, error_slo=error_slo,
        notes=tuple(notes))
