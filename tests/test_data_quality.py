"""Data-quality monitors over a real DuckDB log store, each against a pandas computation on the same rows
(exact counts), per window and per bucket; the policies they feed; `vigil quality`; bad input."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors.windows import Window
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context, load_context
from dashboard.governance.policy import evaluate
from dashboard.monitoring.data_quality import compute_data_quality, data_quality_over_time
from dashboard.settings import Settings
from tests.conftest import DEMO_CONFIG, make_logs

MODEL = "credit-risk"
REF = Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
CUR = Window(datetime(2026, 1, 2), datetime(2026, 1, 3))


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ref = make_logs(400, seed=1, start="2026-01-01")
    cur = make_logs(600, seed=2, start="2026-01-02", id_prefix="c")
    rng = np.random.default_rng(18)
    cur.loc[rng.random(600) < 0.2, "income"] = np.nan
    cur.loc[rng.random(600) < 0.1, "purpose"] = "<b>crypto</b>"
    cur.loc[rng.random(600) < 0.05, "loan_amount"] *= 3
    cur.loc[[3, 7], "age"] = np.inf
    cur.loc[[10], "credit_history_years"] = -np.inf
    cur.loc[rng.random(600) < 0.05, "housing"] = None
    return ref, cur


@pytest.fixture
def loaded(ctx: Context, write_file) -> tuple[Context, pd.DataFrame, pd.DataFrame]:
    ref, cur = _frames()
    report = ctx.store.ingest([write_file(ref, "ref.parquet"), write_file(cur, "cur.parquet")], ctx.schema(MODEL))
    assert not report.rejected, report.problem_lines()
    return ctx, ref, cur


def _config(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "",
            **replace: str) -> Context:
    """The demo config on the test's data folder with its reference a window (day 1 of the test logs), plus
    ``extra`` TOML and text replacements; VIGIL_CONFIG points at it for the CLI."""
    text = DEMO_CONFIG.read_text().replace('data_dir = "."', f'data_dir = "{settings.data_dir}"')
    text = text.replace('source = "training"', 'source = "window"\nwindow = "2026-01-01..2026-01-01"')
    for old, new in replace.items():
        text = text.replace(old, new)
    config = tmp_path / "window-reference.toml"
    config.write_text(text + extra)
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    monkeypatch.delenv("VIGIL_DATA_DIR", raising=False)
    return load_context(str(config))


def _expected(ctx: Context, ref: pd.DataFrame, cur: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """(column, monitor) -> (offending rows, rows the share is over), computed by pandas."""
    cfg = ctx.model(MODEL)
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for col, kind in ctx.schema(MODEL).columns.items():
        x, r = cur[col], ref[col]
        present = x.notna()
        out[(col, "missing")] = (int(x.isna().sum()), len(x))
        if kind == "numerical":
            finite = r[np.isfinite(r.astype(float))]
            lo, hi = cfg.quality.bounds.get(col, (finite.min(), finite.max()))
            v = x.astype(float)
            out[(col, "out_of_range")] = (int((present & ((v < lo) | (v > hi))).sum()), int(present.sum()))
            out[(col, "type_violations")] = (int(np.isinf(v).sum()), len(x))
        else:
            out[(col, "unseen")] = (int((present & ~x.isin(set(r.dropna()))).sum()), int(present.sum()))
    return out


def test_each_monitor_equals_pandas_on_the_same_rows(loaded) -> None:
    ctx, ref, cur = loaded
    result = compute_data_quality(ctx, MODEL, CUR, reference=REF)
    expected = _expected(ctx, ref, cur)
    got = {(m.column, m.monitor): (m.count, m.rows) for m in result.monitors}
    assert got == expected
    for m in result.monitors:
        assert m.value == (m.count / m.rows if m.rows else None)
    income = result.monitor("income", "missing")
    assert income is not None and income.status == "fail" and income.reference_value == 0.0
    purpose = result.monitor("purpose", "unseen")
    assert purpose is not None and purpose.status == "fail"
    assert purpose.examples == [("<b>crypto</b>", expected[("purpose", "unseen")][0])]  # escaped where shown
    assert result.monitor("age", "type_violations").status == "fail"  # type: ignore[union-attr]
    assert result.monitor("employment_type", "unseen").status == "pass"  # type: ignore[union-attr]
    assert {"income: missing", "purpose: unseen", "loan_amount: out_of_range"} <= set(result.failures)


def test_monitors_per_bucket_equal_pandas_per_hour(loaded) -> None:
    ctx, _, cur = loaded
    over = data_quality_over_time(ctx, MODEL, CUR, bucket="hour", reference=REF)
    cells = over[(over["column"] == "income") & (over["check"] == "missing")].set_index("bucket")
    hours = cur.assign(h=cur["ts"].dt.tz_convert(None).dt.floor("h")).groupby("h")["income"]
    expected = hours.apply(lambda s: s.isna().mean())
    assert list(cells.index) == list(expected.index)
    assert np.allclose(cells["value"].astype(float), expected.to_numpy())
    assert (cells["rows"] == hours.size()).all()
    # 60 rows an hour is under quality.min_rows (100): values, but no verdict
    assert set(cells["status"]) == {"too few rows"}


def test_policies_judge_the_monitors_and_too_few_rows_measure_nothing(settings: Settings, loaded, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _config(settings, tmp_path, monkeypatch)
    ev = evaluate(ctx, MODEL, window="2026-01-02..2026-01-02")
    by = {r.name: r for r in ev.results}
    assert by["inputs_complete[income]"].verdict == "fail"
    assert by["inputs_complete[age]"].verdict == "pass"
    assert by["no_unseen_categories[purpose]"].verdict == "fail"
    assert by["no_unseen_categories[housing]"].verdict == "pass"
    assert by["expectation:debt_to_income_present[debt_to_income]"].verdict == "pass"
    assert by["training_data_validated[credit-risk-training]"].verdict == "no data"  # nothing imported: warning
    small = evaluate(ctx, MODEL, window="2026-01-02T00:00..2026-01-02T01:00")
    assert {r.verdict for r in small.results if r.metric == "missing_share_increase"} == {"no data"}
    assert all("quality.min_rows" in r.detail for r in small.results if r.metric == "missing_share_increase")


def test_vigil_quality_prints_and_emits_json(settings: Settings, loaded, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _config(settings, tmp_path, monkeypatch)
    assert run_cli(cli, ["quality", "--model", MODEL, "--window", "2026-01-02..2026-01-02", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    got = {(m["column"], m["monitor"]): m["count"] for m in data["monitors"]}
    assert got[("income", "missing")] > 0 and "income: missing" in data["failures"]
    assert run_cli(cli, ["quality", "--model", MODEL, "--window", "2026-01-02..2026-01-02", "--fail-on-error"]) == 1
    out = capsys.readouterr().out
    assert "debt_to_income_present" in out and "failing check(s)" in out and "<b>crypto</b>" in out
    assert run_cli(cli, ["quality"]) == 2
    assert "--model" in capsys.readouterr().err


def test_a_column_missing_from_the_logs_is_reported_not_passed(settings: Settings, loaded, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A feature added to the config after the logs were written: every check on it says so."""
    ctx = _config(settings, tmp_path, monkeypatch, """
[[models.credit-risk.expectations]]
name = "channel_known"
expectation_type = "expect_column_values_to_be_in_set"
kwargs = { column = "channel", value_set = ["web"] }
severity = "blocking"
""", **{'purpose = "categorical"': 'purpose = "categorical"\nchannel = "categorical"'})
    result = compute_data_quality(ctx, MODEL, CUR, reference=REF)
    channel = result.monitor("channel", "missing")
    assert channel is not None and channel.status == "missing column" and "not in the log table" in channel.note
    exp = next(e for e in result.expectations if e.name == "channel_known")
    assert exp.status == "missing column" and exp.success is None
    ev = evaluate(ctx, MODEL, window="2026-01-02..2026-01-02")
    verdict = next(r for r in ev.results if r.policy == "expectation:channel_known")
    assert verdict.verdict == "fail" and verdict.detail.startswith("no data")  # blocking: no data fails


def test_an_unsupported_expectation_in_the_config_errors_its_policy(settings: Settings, loaded, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _config(settings, tmp_path, monkeypatch, """
[[models.credit-risk.expectations]]
name = "ordered"
expectation_type = "expect_column_values_to_be_increasing"
kwargs = { column = "age" }
severity = "blocking"
""")
    ev = evaluate(ctx, MODEL, window="2026-01-02..2026-01-02")
    verdict = next(r for r in ev.results if r.policy == "expectation:ordered")
    assert verdict.verdict.startswith("error") and "expect_column_values_to_be_increasing" in verdict.verdict
    assert verdict.blocking_failure
