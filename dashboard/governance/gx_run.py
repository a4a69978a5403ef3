"""Run a team's own Great Expectations suite (a GX Core 1.x suite JSON) with GX itself on a stated sample
of a window of logs, and keep the result as evidence like an imported one.

Why a sample: GX's pandas engine needs the rows in memory; the sample (uniform, repeatable, at most
``sample`` rows, drawn inside DuckDB) bounds that, and its size, the window's rows and the seed are
written into the result's ``meta.sample`` so nobody reads it as a check of every row. GX is the optional
extra ``vigil[gx]``; without it the command says how to install it. Expectation types GX does not know
(custom expectations not installed here) are skipped with a note, never counted as passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from connectors.queries import data_quality as q
from connectors.queries import reference as refq
from connectors.windows import Window
from dashboard.access.roles import Actor, require
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.governance import gx_results

DEFAULT_SAMPLE = 10_000
INSTALL_HINT = "install Great Expectations with `pip install 'vigil[gx]'` (great_expectations>=1.2,<2)"


@dataclass(frozen=True)
class SuiteRun:
    """The result GX produced, where it was stored, and what was skipped."""

    payload: dict[str, Any]
    result_id: str
    skipped: list[str] = field(default_factory=list)
    rows: int = 0
    window_rows: int = 0


def gx_available() -> bool:
    return importlib.util.find_spec("great_expectations") is not None


def load_suite(path: str) -> dict[str, Any]:
    """A GX Core 1.x suite from a JSON file (``name`` and ``expectations`` with ``type``/``kwargs``)."""
    data = gx_results.load_result_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise VigilError(f"{path}: not a GX expectation suite (expected an object with a list of expectations)")
    if "expectation_suite_name" in data or any(isinstance(e, dict) and "expectation_type" in e
                                               for e in data["expectations"]):
        raise VigilError(f"{path}: a Great Expectations 0.x suite (expectation_suite_name / expectation_type); "
                         "Vigil runs GX Core 1.x suites (name, expectations[].type): re-save it with GX 1.x")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise VigilError(f"{path}: the suite has no name")
    bad = [i for i, e in enumerate(data["expectations"]) if not (isinstance(e, dict) and isinstance(e.get("type"), str))]
    if bad:
        raise VigilError(f"{path}: expectations {bad} have no type")
    return data


def validate_frame(frame: pd.DataFrame, suite: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate ``frame`` against ``suite`` with GX (in-process, ephemeral context, no usage statistics):
    the result as JSON, and the expectations skipped because GX does not know their type."""
    if not gx_available():
        raise VigilError(f"Great Expectations is not installed: {INSTALL_HINT}")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # never report to GX's servers
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectations, skipped = [], []
    for i, e in enumerate(suite["expectations"]):
        try:
            expectations.append(ExpectationConfiguration(type=e["type"], kwargs=dict(e.get("kwargs") or {}),
                                                         meta=e.get("meta")).to_domain_obj())
        except (ExpectationNotFoundError, ValueError, TypeError) as exc:
            skipped.append(f"expectations[{i}] {e['type']}: skipped, not passed ({' '.join(str(exc).split())[:200]})")
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = context.data_sources.add_pandas("vigil").add_dataframe_asset("logs") \
        .add_batch_definition_whole_dataframe("sample")
    result = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(
        gx.ExpectationSuite(name=suite["name"], expectations=expectations))
    payload: dict[str, Any] = json.loads(json.dumps(result.to_json_dict(), default=str))
    payload["meta"]["validation_time"] = datetime.now(UTC).isoformat()
    if skipped:
        payload["meta"]["vigil_skipped"] = skipped
    return payload, skipped


def run_suite(ctx: Context, actor: Actor, model: str, suite_path: str, window: Window, version: str | None = None,
              sample: int = DEFAULT_SAMPLE, seed: int = 0) -> SuiteRun:
    """Run the suite at ``suite_path`` on a sample of ``model``'s logs in ``window`` and store the result."""
    require(actor, "quality.import")
    if sample < 1:
        raise VigilError(f"--sample {sample}: give a positive number of rows")
    suite = load_suite(suite_path)
    if not gx_available():
        raise VigilError(f"Great Expectations is not installed: {INSTALL_HINT}")
    schema = ctx.schema(model)
    with ctx.store.connect() as con:
        have = set(refq.log_columns(con, schema))
        if not have:
            raise VigilError(f"no logs of '{model}' have been ingested yet; run `vigil ingest --model {model} <files>`")
        cols = tuple(c for c in schema.columns if c in have)
        src = refq.window_source(schema, window.start, window.end, cols, version)
        total = int(q.condition_counts(con, src, {"rows": ("TRUE", [])})["c"].sum())
        if total == 0:
            raise VigilError(f"the window {window.label} has no logged predictions for '{model}'")
        frame = q.sample_rows(con, src, sample, seed)
    payload, skipped = validate_frame(frame, suite)
    payload["meta"]["sample"] = {"rows": len(frame), "window_rows": total, "window": window.label, "seed": seed,
                                 "version": version, "method": "uniform reservoir sample drawn in DuckDB"}
    rid, _ = gx_results.import_result(ctx, actor, model, payload, version=version,
                                      source=f"vigil quality run {os.path.basename(suite_path)}")
    return SuiteRun(payload, rid, skipped, len(frame), total)
