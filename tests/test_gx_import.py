"""Great Expectations results as evidence: a REAL GX Core 1.x result (produced here by running GX on rows of
a real log store) imported with `vigil quality import`, audited, judged by a `gx_suite:<name>` policy and
counted by `vigil check`; a suite run with GX on a stated sample; files of other formats refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.audit import trail
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.governance import gx_results
from dashboard.governance.gx_run import validate_frame
from dashboard.governance.policy import evaluate
from dashboard.settings import Settings
from tests.conftest import REPO, demo_config_context, make_logs
from tests.fixtures import compliance as fx
from tests.fixtures.access import signed_in, token_for
from tests.fixtures.compliance import MODEL, Registry

migrated_mlflow_db = fx.migrated_mlflow_db
registry = fx.registry

POLICY = """
[[models.credit-risk.policies]]
name = "loans_suite"
metric = "gx_suite:loans"
comparator = "=="
threshold = 1
severity = "blocking"
window = "30d"
"""
SUITE = {"name": "loans", "expectations": [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "income"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 18, "max_value": 120}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "housing", "value_set": ["own", "rent"]},
     "meta": {"note": "<script>alert(1)</script>"}}]}


@pytest.fixture
def ctx(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    return demo_config_context(settings, tmp_path, monkeypatch, POLICY)


@pytest.fixture
def rows(ctx: Context, tmp_path: Path) -> Any:
    """Logs in the store, and the same rows read back (what GX validates)."""
    path = tmp_path / "logs.parquet"
    make_logs(300).to_parquet(path, index=False)
    assert ctx.store.ingest([path], ctx.schema(MODEL)).rows_added == 300
    with ctx.store.connect() as con:
        return con.execute(f"SELECT * FROM {ctx.schema(MODEL).table}").df()


def _write(tmp_path: Path, name: str, payload: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return str(path)


@pytest.mark.usefixtures("fresh_caches")
def test_import_round_trip_of_a_real_gx_result(ctx: Context, registry: Registry, rows: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    version = registry.add_version("dana")
    payload, skipped = validate_frame(rows, SUITE)
    assert not skipped and payload["success"] is False  # housing has "mortgage" too
    monkeypatch.setenv("VIGIL_TOKEN", token_for(ctx.settings.users_file, "dana", "data_scientist"))
    path = _write(tmp_path, "result.json", payload)
    assert run_cli(cli, ["quality", "import", path, "--model", MODEL, "--version", version]) == 0
    assert "imported: suite loans FAILED (2 of 3 expectations)" in capsys.readouterr().out
    assert run_cli(cli, ["quality", "import", path, "--model", MODEL, "--version", version]) == 0
    assert "already imported" in capsys.readouterr().out

    stored = gx_results.runs(ctx, MODEL, version)
    assert len(stored) == 1 and stored.iloc[0]["suite"] == "loans" and not stored.iloc[0]["success"]
    assert stored.iloc[0]["imported_by"] == "dana" and stored.iloc[0]["gx_version"].startswith("1.")
    run = gx_results.load_run(ctx, str(stored.iloc[0]["id"]))
    gx = {r["expectation_config"]["type"]: r for r in payload["results"]}
    for outcome in run.outcomes:
        assert outcome.success is gx[outcome.expectation_type]["success"]
        assert outcome.unexpected_count == gx[outcome.expectation_type]["result"]["unexpected_count"]
    frame = gx_results.outcomes_frame(run)
    assert "mortgage" in frame.loc[frame["column"] == "housing", "examples"].iloc[0]
    entries = trail.entries(ctx.store, action="quality.import")
    assert len(entries) == 1 and entries.iloc[0]["actor"] == "dana"
    assert trail.verify(ctx.store).ok

    ev = evaluate(ctx, MODEL, version=version, phase="all")
    verdict = next(r for r in ev.results if r.policy == "loans_suite")
    assert verdict.verdict == "fail" and verdict.blocking_failure and "2 of 3" in verdict.detail
    assert run_cli(cli, ["check", "--model", MODEL, "--format", "json", "--no-record"]) == 1
    checked = json.loads(capsys.readouterr().out)
    assert "loans_suite[loans]" in checked["blocking_failures"]

    good, _ = validate_frame(rows, {**SUITE, "expectations": SUITE["expectations"][:2]})
    assert good["success"] is True
    assert run_cli(cli, ["quality", "import", _write(tmp_path, "good.json", good), "--model", MODEL]) == 0
    capsys.readouterr()
    ev = evaluate(ctx, MODEL, version=version, phase="all")
    assert next(r for r in ev.results if r.policy == "loans_suite").verdict == "pass"  # the latest run counts

    at = signed_in(AppTest.from_file(str(REPO / "pages" / "8_compliance.py"), default_timeout=180), "mia", "manager")
    at.run()
    assert not at.exception, at.exception
    listed = next(d.value for d in at.dataframe if "suite" in d.value.columns)
    assert list(listed["suite"]) == ["loans", "loans"] and list(listed["success"]) == [True, False]


def test_a_suite_runs_with_gx_on_a_stated_sample(ctx: Context, rows: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    suite = {**SUITE, "expectations": [*SUITE["expectations"],
                                       {"type": "expect_column_values_to_be_somehow_fine", "kwargs": {"column": "age"}}]}
    monkeypatch.setenv("VIGIL_TOKEN", token_for(ctx.settings.users_file, "dana", "data_scientist"))
    code = run_cli(cli, ["quality", "run", _write(tmp_path, "suite.json", suite), "--model", MODEL,
                         "--window", "2026-01-01..2026-01-01", "--sample", "120"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "on a sample of 120 of 300 rows" in captured.out
    assert "expect_column_values_to_be_somehow_fine: skipped, not passed" in captured.err
    stored = gx_results.runs(ctx, MODEL)
    run = gx_results.load_run(ctx, str(stored.iloc[0]["id"]))
    assert run.batch["sample"]["rows"] == 120 and run.batch["sample"]["window_rows"] == 300
    assert run.statistics["evaluated_expectations"] == 3  # the unknown type is not counted as passed
    assert run.payload["meta"]["vigil_skipped"]


@pytest.mark.parametrize("payload,message", [
    ({"success": True, "results": [], "statistics": {}, "meta": {"expectation_suite_name": "s",
                                                                 "great_expectations_version": "0.18.8"}},
     "0.x format"),
    ({"run_results": {}, "success": True}, "checkpoint result"),
    (SUITE, "expectation suite, not a validation result"),
    ([1, 2], "JSON list"),
    ({"success": True, "results": [{"success": True, "expectation_config": {"expectation_type": "expect_x"}}],
      "statistics": {}, "suite_name": "s", "meta": {"great_expectations_version": "1.3.0"}}, "0.x name"),
    ({"success": "yes", "meta": {"great_expectations_version": "1.3.0"}}, "'success' (bool) is missing"),
])
def test_other_formats_are_refused_with_a_message(ctx: Context, tmp_path: Path, payload: Any, message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(cli, ["quality", "import", _write(tmp_path, "x.json", payload), "--model", MODEL]) == 2
    assert message in capsys.readouterr().err
    assert gx_results.runs(ctx, MODEL).empty


def test_import_needs_a_permitted_role_and_a_registered_version(ctx: Context, registry: Registry, rows: Any,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    payload, _ = validate_frame(rows, SUITE)
    path = _write(tmp_path, "r.json", payload)
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setenv("VIGIL_TOKEN", token_for(ctx.settings.users_file, "ann", "annotator"))
    assert run_cli(cli, ["quality", "import", path, "--model", MODEL]) == 2
    assert "may not quality.import" in capsys.readouterr().err
    monkeypatch.setenv("VIGIL_TOKEN", token_for(ctx.settings.users_file, "dana", "data_scientist"))
    assert run_cli(cli, ["quality", "import", path, "--model", MODEL, "--version", "7"]) == 2
    assert "has no version 7" in capsys.readouterr().err
    assert run_cli(cli, ["quality", "import", str(tmp_path / "broken.json"), "--model", MODEL]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert gx_results.runs(ctx, MODEL).empty and trail.entries(ctx.store, action="quality.import").empty
