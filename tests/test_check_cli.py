"""`vigil check`: exit codes (0 pass, 1 blocking failure, 2 user error) and valid JUnit XML / JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import load_context
from tests.conftest import DEMO_CONFIG, make_logs

POLICIES = """
[models.credit-risk.reference]
source = "window"
window = "2025-12-01..2025-12-31"

[[models.credit-risk.policies]]
name = "drift_share"
metric = "drift_share"
comparator = "<"
threshold = 0.5
severity = "warning"

[[models.credit-risk.policies]]
name = "disparate_impact"
metric = "disparate_impact"
comparator = "within"
threshold = [0.8, 1.25]
severity = "warning"

[[models.credit-risk.policies]]
name = "latency_p95_ms"
metric = "latency_p95_ms"
comparator = "<="
threshold = 500
severity = "blocking"

[[models.credit-risk.policies]]
name = "error_rate"
metric = "error_rate"
comparator = "<="
threshold = 0.001
severity = "warning"

[[models.credit-risk.policies]]
name = "accuracy"
metric = "accuracy"
comparator = ">="
threshold = 0.7
require_data = false
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """A config (demo model + declared policies) and a log store: version 1 fast, version 2 slow.

    The blocking built-ins that need MLflow (drift against training data, disparate impact) are
    declared as warnings here, so the verdicts under test are the ones declared below.
    """
    tmp_path = tmp_path_factory.mktemp("check")
    text = DEMO_CONFIG.read_text().replace('data_dir = "."', f'data_dir = "{tmp_path / "data"}"')
    text = text.replace('[models.credit-risk.reference]\nsource = "training"', "")
    config = tmp_path / "vigil.toml"
    config.write_text(text + POLICIES)
    env: dict[str, str | None] = {k: None for k in ("VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI", "VIGIL_USERS_FILE",
                                                    "VIGIL_DATA_DIR")}
    env["VIGIL_CONFIG"] = str(config)
    ctx = load_context(str(config))
    fast = make_logs(300, version="1")
    fast.loc[fast.index[:3], "status"] = "error"
    slow = make_logs(300, seed=3, id_prefix="s", version="2")
    slow["latency_ms"] += 2000
    path = tmp_path / "logs.parquet"
    pd.concat([fast, slow]).to_parquet(path, index=False)
    assert ctx.store.ingest([path], ctx.schema("credit-risk")).rows_added == 600
    return env


def _run(env: dict[str, str | None], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", "--model", "credit-risk", "--window", "2026-01-01..2026-01-01",
                                      *args], env=env)
    return result.exit_code, result.stdout


def test_passing_version_exits_0_and_failing_version_exits_1(workspace: dict[str, str | None]) -> None:
    code, text = _run(workspace, "--version", "1")
    assert "PASS    blocking latency_p95_ms" in text
    assert "FAIL    warning  error_rate" in text
    assert code == 0 and "OK: no blocking policy failed" in text, text
    code2, text2 = _run(workspace, "--version", "2")
    assert code2 == 1 and "FAIL    blocking latency_p95_ms" in text2 and "FAILED:" in text2


def test_exit_code_follows_blocking_failures_only(workspace: dict[str, str | None]) -> None:
    code, out = _run(workspace, "--version", "1", "--format", "json")
    data = json.loads(out)
    blocking_bad = [r["name"] for r in data["results"] if r["severity"] == "blocking"
                    and (r["verdict"] == "fail" or r["verdict"].startswith("error"))]
    assert data["blocking_failures"] == blocking_bad
    assert code == (1 if blocking_bad else 0)
    assert "latency_p95_ms" not in blocking_bad
    by = {r["name"]: r for r in data["results"]}
    assert by["error_rate"]["verdict"] == "fail" and by["error_rate"]["value"] == pytest.approx(0.01)
    assert by["accuracy"]["verdict"] == "no data"
    assert by["latency_p95_ms"]["rows"] == 300 and by["latency_p95_ms"]["window"] == "2026-01-01..2026-01-01"


def test_junit_is_valid_and_counts_failures(workspace: dict[str, str | None], tmp_path: Path) -> None:
    junit_file = tmp_path / "reports" / "vigil.xml"
    code, out = _run(workspace, "--version", "2", "--format", "junit", "--junit-file", str(junit_file))
    assert code == 1
    root = ET.fromstring(out)
    assert ET.fromstring(junit_file.read_text()).tag == "testsuites"
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "vigil.credit-risk.v2"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert int(suite.get("tests", "0")) == len(cases) > 0
    failures = [n for n, c in cases.items() if c.find("failure") is not None]
    assert "latency_p95_ms" in failures and int(suite.get("failures", "0")) == len(failures)
    assert cases["error_rate"].find("failure") is None  # a warning never fails CI
    assert cases["accuracy"].find("skipped") is not None
    assert "rows=300" in (cases["latency_p95_ms"].findtext("system-out") or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["model"] == "credit-risk" and props["version"] == "2"


def test_html_in_evidence_is_escaped_in_junit() -> None:
    from datetime import datetime

    from dashboard.commands.check import format_junit
    from dashboard.governance.policy import Evaluation, PolicyResult

    when = datetime(2026, 10, 1)
    result = PolicyResult(policy="<i>p</i>", metric="m", subject=None, value=1.0, comparator="<=", threshold=0.5,
                          severity="blocking", verdict="fail", window="7d", rows=3, evaluated_at=when,
                          data_version="dv", detail="<script>alert(1)</script>")
    out = format_junit(Evaluation("credit-risk", "<b>9</b>", "7d", when, "dv", [result]))
    root = ET.fromstring(out)  # parses: every value is escaped text, not markup
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "vigil.credit-risk.v<b>9</b>"
    assert "<b>9</b>" not in out and "<script>" not in out
    assert "alert(1)" in (suite.find("testcase").findtext("system-out") or "")  # type: ignore[union-attr]


def _cli_error(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               *args: str) -> tuple[int, list[str]]:
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    code = run_cli(cli, ["check", "--model", "credit-risk", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err.strip().splitlines()


def test_unknown_version_is_one_line_and_exit_2(workspace: dict[str, str | None], monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _cli_error(workspace, monkeypatch, capsys, "--version", "99")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and "'credit-risk' is not a registered model in MLflow" in lines[0]


def test_mlflow_down_is_one_line_and_exit_2(workspace: dict[str, str | None], monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**workspace, "VIGIL_MLFLOW_URI": f"http://127.0.0.1:{port}", "VIGIL_MLFLOW_TIMEOUT": "2"}
    code, lines = _cli_error(env, monkeypatch, capsys, "--version", "99")
    assert code == 2 and len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0] and "did not answer" in lines[0]


def test_unknown_model_is_a_user_error_exit_2(workspace: dict[str, str | None], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in workspace.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert run_cli(cli, ["check", "--model", "nope"]) == 2
    assert "no such model" in capsys.readouterr().err


def test_check_keeps_history_unless_told_not_to(workspace: dict[str, str | None]) -> None:
    from dashboard.governance.policy import evaluation_history

    config = workspace["VIGIL_CONFIG"]
    assert config is not None
    ctx = load_context(config)
    before = len(evaluation_history(ctx, "credit-risk", "1"))
    _run(workspace, "--version", "1", "--window", "2026-01-01T00:00..2026-01-01T03:00", "--no-record")
    assert len(evaluation_history(ctx, "credit-risk", "1")) == before
    _run(workspace, "--version", "1", "--window", "2026-01-01T00:00..2026-01-01T03:00")
    kept = evaluation_history(ctx, "credit-risk", "1")
    assert len(kept) > before and set(kept["trigger"]) == {"vigil check"}
