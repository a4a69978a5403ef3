"""A lake table has no ingest step: the ingest checks come back as findings on the table and as a policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from connectors.windows import parse_window
from dashboard.context import Context
from dashboard.governance.policy_metrics import EvalInput, providers
from dashboard.monitoring.validation import table_findings
from dashboard.settings import PolicySpec, settings_from_mapping
from tests.fixtures.spark import model_spec, tricky_logs, write_parquet


def test_bad_rows_become_findings(tmp_path: Path, spark_session: Any) -> None:
    logs = tricky_logs(40)
    logs = logs.drop(columns=["k"])  # a configured feature the table lacks
    logs["score"] = logs["score"].astype(object)
    logs.loc[0, "score"] = "high"  # not a number
    logs.loc[1, "score"] = 1.5  # not a probability
    logs.loc[2, "prediction_id"] = logs.loc[3, "prediction_id"]  # a duplicate id
    logs["score"] = logs["score"].astype(str)
    (tmp_path / "lake").mkdir()
    write_parquet(logs, tmp_path / "lake" / "part-0.parquet")
    ctx = Context(settings_from_mapping(
        {"vigil": {"data_dir": str(tmp_path / "d")}, "spark": {"master": "local[2]"},
         "models": {"m": model_spec("spark", {"logs": str(tmp_path / "lake")})}}, env={}, base_dir=tmp_path))
    rows, found = table_findings(ctx, "m")
    by = {f.check: f for f in found}
    assert rows == 40
    assert by["missing_columns"].count == 1 and "k" in by["missing_columns"].detail
    assert by["wrong_types"].count == 1 and "score" in by["wrong_types"].detail
    assert by["duplicate_ids"].count == 2
    assert by["scores_out_of_range"].count == 1
    assert by["missing_ids"].ok

    provider = providers()["table_problems"][0]
    spec = PolicySpec(name="clean", metric="table_problems", comparator="==", threshold=0.0)
    measured = {m.subject: m.value for m in provider(EvalInput(ctx, "m", None, parse_window("2026-03-01..2026-03-07")),
                                                     spec)}
    assert measured == {"missing_columns": 1.0, "wrong_types": 1.0, "missing_ids": 0.0, "duplicate_ids": 2.0,
                        "scores_out_of_range": 1.0}


def test_an_ingested_table_is_clean(tmp_path: Path) -> None:
    ctx = Context(settings_from_mapping({"vigil": {"data_dir": str(tmp_path / "d")},
                                         "models": {"m": model_spec("duckdb")}}, env={}, base_dir=tmp_path))
    path = tmp_path / "logs.parquet"
    tricky_logs(50).to_parquet(path, index=False)
    assert not ctx.store.ingest([path], ctx.schema("m")).rejected
    rows, found = table_findings(ctx, "m")
    assert rows == 50 and all(f.ok for f in found)
    assert isinstance(pd.DataFrame([f.__dict__ for f in found]), pd.DataFrame)
