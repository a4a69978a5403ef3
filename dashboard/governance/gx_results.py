"""Great Expectations validation results as governance evidence on a model (and version), audited.

Why: teams already validate their data with GX; its validation result (suite, success, statistics, each
expectation's result, batch, run time) is evidence that belongs next to the model it feeds, where a
policy ``gx_suite:<name>`` can require the latest run of a suite to have succeeded within its window.

Accepted: a GX Core 1.x ``ExpectationSuiteValidationResult`` as JSON (``result.to_json_dict()``, or one
entry of a checkpoint result's ``run_results``). Anything else (a 0.x result, a checkpoint result, a
suite, another document) is refused with a message naming what was given and what is expected. Stored
as given (its values are shown escaped and clipped, never as HTML); a re-import of the same result for
the same model and version adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dashboard.access.roles import Actor, require
from dashboard.context import Context
from dashboard.errors import VigilError

MAX_BYTES = 20 * 1024 * 1024
_DDL = """CREATE TABLE IF NOT EXISTS gx_results (
    id VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, version VARCHAR, suite VARCHAR NOT NULL, success BOOLEAN NOT NULL,
    evaluated INTEGER, successful INTEGER, run_time TIMESTAMP, run_time_source VARCHAR, gx_version VARCHAR,
    batch VARCHAR, source VARCHAR, imported_at TIMESTAMP NOT NULL, imported_by VARCHAR NOT NULL, payload VARCHAR NOT NULL)"""


class GxResultError(VigilError):
    """A file that is not a GX Core 1.x validation result; the message says what it is and what to give."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result as GX reported it."""

    expectation_type: str
    column: str | None
    success: bool
    kwargs: dict[str, Any]
    result: dict[str, Any]
    error: str | None = None

    @property
    def unexpected_count(self) -> int | None:
        v = self.result.get("unexpected_count")
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    @property
    def examples(self) -> list[Any]:
        v = self.result.get("partial_unexpected_list")
        return list(v)[:5] if isinstance(v, list) else []


@dataclass(frozen=True)
class GxRun:
    """A parsed validation result."""

    suite: str
    success: bool
    statistics: dict[str, Any]
    outcomes: list[ExpectationOutcome]
    run_time: datetime
    run_time_source: str
    gx_version: str
    batch: dict[str, Any]
    payload: dict[str, Any]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _utc(text: str) -> datetime | None:
    for fmt in ("%Y%m%dT%H%M%S.%fZ", None):
        try:
            t = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (TypeError, ValueError):
            continue
        return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t
    return None


def _run_time(meta: dict[str, Any]) -> tuple[datetime | None, str]:
    """When the validation ran: the run id's time, else the validation time, else when the batch loaded."""
    run_id, markers = _dict(meta.get("run_id")), _dict(meta.get("batch_markers"))
    for source, value in (("run_id.run_time", run_id.get("run_time")), ("validation_time", meta.get("validation_time")),
                          ("batch_markers.ge_load_time", markers.get("ge_load_time"))):
        if isinstance(value, str) and (t := _utc(value)) is not None:
            return t, source
    return None, ""


def parse_result(payload: Any) -> GxRun:
    """Validate a GX Core 1.x validation result (parsed JSON); raise :class:`GxResultError` naming the problem."""
    if not isinstance(payload, dict):
        raise GxResultError(f"expected a JSON object (a GX validation result), got a JSON {type(payload).__name__}")
    if "run_results" in payload:
        raise GxResultError("this is a GX checkpoint result: import one of its validation results (the value of "
                            "each entry of run_results, or result.run_results[...].to_json_dict())")
    if "expectations" in payload and "results" not in payload:
        raise GxResultError("this is a GX expectation suite, not a validation result: run it with "
                            "`vigil quality run SUITE.json --model M`, or import the result GX wrote")
    meta = _dict(payload.get("meta"))
    version = str(meta.get("great_expectations_version", ""))
    if "expectation_suite_name" in meta or "evaluation_parameters" in payload or (version and not version.startswith("1.")):
        raise GxResultError(f"this result was written by Great Expectations {version or '0.x'} (a 0.x format); "
                            "Vigil reads GX Core 1.x results: validate with great_expectations>=1.2")
    problems = [f"'{k}' ({t.__name__}) is missing or malformed" for k, t in
                (("success", bool), ("results", list), ("statistics", dict), ("suite_name", str))
                if not isinstance(payload.get(k), t)]
    if problems or not version:
        problems += [] if version else ["meta.great_expectations_version is missing"]
        raise GxResultError("not a GX Core 1.x validation result: " + "; ".join(problems))
    outcomes = []
    for i, r in enumerate(payload["results"]):
        cfg = r.get("expectation_config") if isinstance(r, dict) else None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str) or not isinstance(r.get("success"), bool):
            raise GxResultError(f"results[{i}]: needs success and expectation_config.type (GX Core 1.x); "
                                f"{'expectation_config.expectation_type is the 0.x name' if isinstance(cfg, dict) and 'expectation_type' in cfg else 'not found'}")
        kwargs, info = _dict(cfg.get("kwargs")), _dict(r.get("exception_info"))
        outcomes.append(ExpectationOutcome(cfg["type"], str(kwargs["column"]) if "column" in kwargs else None,
                                           r["success"], kwargs, _dict(r.get("result")),
                                           str(info.get("exception_message")) if info.get("raised_exception") else None))
    run_time, source = _run_time(meta)
    if run_time is None:
        run_time, source = datetime.now(UTC).replace(tzinfo=None), "import time (the result gives no run time)"
    batch: dict[str, Any] = {str(k): meta[k] for k in ("active_batch_definition", "batch_spec", "batch_markers", "batch_parameters", "sample")
             if k in meta}
    return GxRun(payload["suite_name"], payload["success"], payload["statistics"], outcomes, run_time, source, version,
                 batch, payload)


def load_result_file(path: str) -> Any:
    """Read a result file as JSON (bounded size), with errors naming the file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise GxResultError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise GxResultError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MB; export the result with a "
                            "smaller result_format (e.g. SUMMARY)")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise GxResultError(f"{path}: not JSON ({exc})") from None


def import_result(ctx: Context, actor: Actor, model: str, payload: Any, version: str | None = None,
                  source: str = "") -> tuple[str, bool]:
    """Store a validation result as evidence on ``model`` (and ``version``); audited. Returns (id, new)."""
    require(actor, "quality.import")
    ctx.model(model)
    run = parse_result(payload)
    if version is not None:
        _registered(ctx, model, version)
    text = json.dumps(run.payload, sort_keys=True, separators=(",", ":"), default=str)
    rid = hashlib.sha256(f"{model}\0{version or ''}\0{text}".encode()).hexdigest()[:16]
    stats = run.statistics
    with ctx.store.connect() as con:
        con.execute(_DDL)
        if con.execute("SELECT 1 FROM gx_results WHERE id = ?", [rid]).fetchone():
            return rid, False
        con.execute("INSERT INTO gx_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [rid, model, version, run.suite, run.success, _int(stats.get("evaluated_expectations")),
                     _int(stats.get("successful_expectations")), run.run_time, run.run_time_source, run.gx_version,
                     json.dumps(run.batch, default=str), source, datetime.now(UTC).replace(tzinfo=None),
                     actor.name, text])
    from dashboard.audit import trail

    trail.record(ctx.store, actor, "quality.import", model,
                 {"id": rid, "version": version, "suite": run.suite, "success": run.success,
                  "statistics": stats, "run_time": run.run_time.isoformat(), "source": source,
                  "sha256": hashlib.sha256(text.encode()).hexdigest()})
    return rid, True


def _registered(ctx: Context, model: str, version: str) -> None:
    """Evidence on a version needs the version: a typo must not file it where no policy looks."""
    from connectors.registry import RegistryNotFound

    try:
        ctx.registry.version(model, version)
    except RegistryNotFound:
        raise VigilError(f"'{model}' has no version {version} in MLflow: name a registered version, or import "
                         "without --version to file the result on the model") from None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def runs(ctx: Context, model: str, version: str | None = None, suite: str | None = None) -> pd.DataFrame:
    """Imported results of ``model`` (one version's and the model-wide ones when ``version``), newest first."""
    sql = ("SELECT id, suite, version, success, evaluated, successful, run_time, run_time_source, gx_version, "
           "source, imported_at, imported_by FROM gx_results WHERE model = ?")
    params: list[Any] = [model]
    if version is not None:
        sql += " AND (version = ? OR version IS NULL)"
        params.append(version)
    if suite is not None:
        sql += " AND suite = ?"
        params.append(suite)
    with ctx.store.connect() as con:
        con.execute(_DDL)
        return con.execute(sql + " ORDER BY run_time DESC, imported_at DESC", params).df()


def load_run(ctx: Context, rid: str) -> GxRun:
    """One stored result, parsed again (for the expectations of a run)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        row = con.execute("SELECT payload FROM gx_results WHERE id = ?", [rid]).fetchone()
    if row is None:
        raise VigilError(f"no imported GX result with id {rid}")
    return parse_result(json.loads(row[0]))


def outcomes_frame(run: GxRun) -> pd.DataFrame:
    """Each expectation of a run: type, column, success, unexpected count and examples (as text)."""
    rows = [{"expectation": o.expectation_type, "column": o.column, "success": o.success,
             "unexpected_count": o.unexpected_count,
             "observed_value": str(o.result["observed_value"]) if "observed_value" in o.result else None,
             "examples": ", ".join(str(v) for v in o.examples), "error": o.error}
            for o in run.outcomes]
    return pd.DataFrame(rows, columns=["expectation", "column", "success", "unexpected_count", "observed_value",
                                       "examples", "error"])
